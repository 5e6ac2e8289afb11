package city

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// District is an administrative district: outlets are placed around its
// centre, and a district's weight says how many of the city's outlets it gets.
type District struct {
	ID       string  // [a-z0-9_-], e.g. "jianghan"
	Name     string  // English display name, e.g. "Jiang'an"
	Lat, Lon float64 // centre
	Spread   float64 // degrees: outlets fall within about this distance of the centre
	Weight   float64 // relative share of the city's outlets
	// NameZH is the Chinese display name (江岸区), also the name of the
	// district's outline in WuhanGeoJSON. Empty for a district read from a
	// -districts file: its outlets get English names and addresses.
	NameZH string
	// Streets are real streets of the district (Chinese), for the
	// simulated outlets' names and addresses.
	Streets []string
}

// Bounds is the bounding box that every outlet's coordinates fall into.
type Bounds struct{ MinLat, MaxLat, MinLon, MaxLon float64 }

// WuhanBounds is Wuhan's bounding box (that of its district outlines).
var WuhanBounds = Bounds{MinLat: 29.96, MaxLat: 31.37, MinLon: 113.70, MaxLon: 115.09}

// Wuhan returns Wuhan's 13 districts, ids in pinyin. Central districts are
// dense (many outlets in a small area); outer ones are spread out.
func Wuhan() []District {
	return []District{
		{"jiangan", "Jiang'an", 30.600, 114.305, 0.030, 10, "江岸区", []string{"解放大道", "中山大道", "沿江大道", "黄浦大街", "台北路", "后湖大道"}},
		{"jianghan", "Jianghan", 30.595, 114.270, 0.020, 9, "江汉区", []string{"解放大道", "中山大道", "建设大道", "新华路", "万松园路", "青年路"}},
		{"qiaokou", "Qiaokou", 30.582, 114.215, 0.020, 7, "硚口区", []string{"解放大道", "中山大道", "京汉大道", "古田二路", "硚口路", "汉正街"}},
		{"hanyang", "Hanyang", 30.550, 114.220, 0.030, 7, "汉阳区", []string{"汉阳大道", "鹦鹉大道", "龙阳大道", "琴台大道", "汉阳大街"}},
		{"wuchang", "Wuchang", 30.550, 114.315, 0.030, 10, "武昌区", []string{"武珞路", "中南路", "中北路", "和平大道", "中山路", "徐东大街", "友谊大道"}},
		{"qingshan", "Qingshan", 30.635, 114.385, 0.030, 5, "青山区", []string{"和平大道", "友谊大道", "建设二路", "冶金大道", "工人村路"}},
		{"hongshan", "Hongshan", 30.500, 114.400, 0.060, 12, "洪山区", []string{"珞喻路", "雄楚大道", "民族大道", "光谷大道", "关山大道", "鲁磨路"}},
		{"dongxihu", "Dongxihu", 30.620, 114.140, 0.060, 6, "东西湖区", []string{"东吴大道", "临空港大道", "金山大道", "马池路"}},
		{"hannan", "Hannan", 30.310, 114.085, 0.080, 2, "汉南区", []string{"兴城大道", "汉南大道", "纱帽正街"}},
		{"caidian", "Caidian", 30.580, 114.030, 0.080, 4, "蔡甸区", []string{"蔡甸大街", "树藩大街", "中法大道", "新天大道"}},
		{"jiangxia", "Jiangxia", 30.375, 114.320, 0.100, 6, "江夏区", []string{"文化大道", "纸坊大街", "江夏大道", "藏龙大道"}},
		{"huangpi", "Huangpi", 30.880, 114.375, 0.100, 5, "黄陂区", []string{"黄陂大道", "前川大道", "盘龙大道", "巨龙大道", "百秀街"}},
		{"xinzhou", "Xinzhou", 30.840, 114.800, 0.100, 4, "新洲区", []string{"齐安大道", "问津大道", "邾城大街"}},
	}
}

// Local is the city's time zone (China Standard Time, no daylight saving):
// arrival curves and collection rounds follow local hours.
var Local = time.FixedZone("CST", 8*3600)

// Config describes the city to build.
type Config struct {
	Seed      int64
	Outlets   int        // at least 1
	Bins      int        // recycling bins per outlet, 0..16
	Districts []District // default Wuhan()
	Bounds    Bounds     // default WuhanBounds
	// Shapes are district outlines by district id: an outlet of a district
	// with a shape is placed inside it. Default: WuhanShapes() when
	// Districts is left to its default, none otherwise.
	Shapes map[string]*Shape
}

// Outlet is one express outlet with its devices and its character.
type Outlet struct {
	Index    int
	ID       string // o-0001
	Name     string
	District string
	Address  string
	Lat, Lon float64
	Operator string
	Active   bool

	ParcelsPerDay float64                       // mean over a usual day (see DayFactor)
	DayVar        float64                       // σ of the log of the day-to-day factor (see DayFactor)
	WeekendFactor float64                       // volume on Saturdays and Sundays against the mean
	varSeed       uint64                        // seeds DayFactor's draws
	GreenShare    float64                       // expected share of green parcels
	Mix           [telemetry.NumClasses]float64 // cumulative class probabilities
	BoxShare      float64                       // cartons taken back per parcel

	// Recycling bins: deposits per parcel (spread over the bins), capacity
	// in items, and collection rounds (local hours) with how reliable they are.
	DepositsPerParcel float64
	BinCapacity       float64
	Rounds            []float64 // local hour of each daily collection round
	LateProb          float64   // chance that a round is late by 1 to 5 hours
	SkipProb          float64   // chance that a round does not happen

	Counter string   // c-0001
	BinIDs  []string // b-0001-1 ...
}

// City is the whole simulated city.
type City struct {
	Seed    int64
	Outlets []*Outlet
	bounds  Bounds
}

// Operators run the outlets; weights roughly follow market shares. The
// registry keeps the English name (a filter key); outlet names carry the
// brand as people in the city read it.
type operator struct {
	name, zh string
	weight   float64
}

var operators = []operator{
	{"China Post", "中国邮政", 14}, {"Cainiao Station", "菜鸟驿站", 22}, {"SF Express", "顺丰速运", 12}, {"JD Logistics", "京东物流", 10},
	{"ZTO Express", "中通快递", 14}, {"YTO Express", "圆通速递", 11}, {"Yunda Express", "韵达快递", 9}, {"STO Express", "申通快递", 8},
}

var streets = []string{
	"Jiefang Avenue", "Zhongshan Avenue", "Jianshe Avenue", "Hanyang Avenue", "Wuluo Road",
	"Luoyu Road", "Xudong Avenue", "Heping Avenue", "Zhongbei Road", "Qingnian Road",
	"Minzu Road", "Gongye Road", "Youyi Avenue", "Xiongchu Avenue", "Guanggu Avenue",
	"Jinghan Avenue", "Wansongyuan Road", "Zhongnan Road", "Dongting Road", "Xinhua Road",
}

// New builds the city for cfg. The same Config always gives the same city.
func New(cfg Config) (*City, error) {
	if cfg.Outlets < 1 {
		return nil, fmt.Errorf("city: outlets %d: want at least 1", cfg.Outlets)
	}
	if cfg.Bins < 0 || cfg.Bins > 16 {
		return nil, fmt.Errorf("city: bins %d: want 0 to 16", cfg.Bins)
	}
	if cfg.Districts == nil {
		cfg.Districts = Wuhan()
		if cfg.Shapes == nil {
			shapes, err := WuhanShapes()
			if err != nil {
				return nil, fmt.Errorf("city: %w", err)
			}
			cfg.Shapes = shapes
		}
	}
	if cfg.Bounds == (Bounds{}) {
		cfg.Bounds = WuhanBounds
	}
	if len(cfg.Districts) == 0 {
		return nil, fmt.Errorf("city: no districts")
	}
	var wsum float64
	for _, d := range cfg.Districts {
		if !telemetry.ValidID(d.ID) {
			return nil, fmt.Errorf("city: district id %q: want [a-z0-9][a-z0-9_-]{0,63}", d.ID)
		}
		if d.Weight <= 0 || math.IsNaN(d.Weight) || math.IsInf(d.Weight, 0) {
			return nil, fmt.Errorf("city: district %s: weight must be above 0", d.ID)
		}
		wsum += d.Weight
	}
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6369747921)) // stream "city!"
	width := max(4, len(strconv.Itoa(cfg.Outlets)))
	c := &City{Seed: cfg.Seed, bounds: cfg.Bounds}
	names := map[string]int{}
	for i := range cfg.Outlets {
		o := &Outlet{Index: i, Active: true}
		num := fmt.Sprintf("%0*d", width, i+1)
		o.ID = "o-" + num
		o.Counter = "c-" + num
		for b := range cfg.Bins {
			o.BinIDs = append(o.BinIDs, fmt.Sprintf("b-%s-%d", num, b+1))
		}
		d := pickDistrict(r, cfg.Districts, wsum)
		o.District = d.ID
		o.Lat = clamp(d.Lat+r.NormFloat64()*d.Spread/2, cfg.Bounds.MinLat, cfg.Bounds.MaxLat)
		o.Lon = clamp(d.Lon+r.NormFloat64()*d.Spread/2, cfg.Bounds.MinLon, cfg.Bounds.MaxLon)
		o.Lat, o.Lon = round(o.Lat, 6), round(o.Lon, 6)
		if s := cfg.Shapes[d.ID]; s != nil && !s.Contains(o.Lat, o.Lon) {
			o.Lat, o.Lon = placeInside(cfg.Seed, i, d, s)
		}
		op := pickOperator(r)
		o.Operator = op.name
		si := r.IntN(len(streets))
		house := 1 + r.IntN(400)
		if d.NameZH != "" && len(d.Streets) > 0 {
			street := d.Streets[si%len(d.Streets)]
			o.Name = uniqueName(names, fmt.Sprintf("%s（%s%s", op.zh, strings.TrimSuffix(d.NameZH, "区"), street), "店）")
			o.Address = fmt.Sprintf("武汉市%s%s%d号", d.NameZH, street, house)
		} else {
			street := streets[si]
			o.Name = fmt.Sprintf("%s %s %s", d.Name, strings.TrimSuffix(strings.TrimSuffix(street, " Road"), " Avenue"), o.ID)
			o.Address = fmt.Sprintf("%d %s, %s District, Wuhan", house, street, d.Name)
		}

		// Sizes are skewed: most outlets handle a few hundred parcels a day,
		// a few handle thousands (log-normal, median 300).
		o.ParcelsPerDay = clamp(300*math.Exp(0.8*r.NormFloat64()), 20, 6000)

		// Most outlets sit near the 90 % target; one in five lags well below.
		if r.Float64() < 0.2 {
			o.GreenShare = 0.55 + 0.30*r.Float64()
		} else {
			o.GreenShare = clamp(0.91+0.03*r.NormFloat64(), 0.80, 0.99)
		}
		o.Mix = classMix(r, o.GreenShare)
		o.BoxShare = 0.02 + 0.08*r.Float64()

		o.DepositsPerParcel = 0.2 + 0.3*r.Float64()
		rounds := 1
		if o.ParcelsPerDay > 500 {
			rounds = 2
		}
		first := 8 + 3*r.Float64()
		o.Rounds = []float64{first}
		if rounds == 2 {
			o.Rounds = append(o.Rounds, first+6+2*r.Float64())
		}
		o.LateProb = 0.05 + 0.25*r.Float64()
		o.SkipProb = 0.02 + 0.06*r.Float64()
		if cfg.Bins > 0 {
			// Sized for somewhat more than a collection period's deposits,
			// so a bin fills up when a round is late or skipped; some
			// outlets have bins too small for their traffic.
			perRound := o.ParcelsPerDay * o.DepositsPerParcel / float64(cfg.Bins) / float64(rounds)
			o.BinCapacity = math.Max(20, math.Round(perRound*(1.1+0.7*r.Float64())))
			if r.Float64() < 0.1 {
				o.BinCapacity = math.Max(20, math.Round(o.BinCapacity*0.6))
			}
		}
		varyDays(o, cfg.Seed)
		c.Outlets = append(c.Outlets, o)
	}
	return c, nil
}

// varyDays gives the outlet its day-to-day character and, for one outlet in
// ten, bins far larger than its traffic needs (they never fill between
// rounds: a model must not call them filling). Drawn from a stream of its
// own, so the outlets' other draws stay what they were.
func varyDays(o *Outlet, seed int64) {
	r := rand.New(rand.NewPCG(uint64(seed)^0x64617973, uint64(o.Index))) // "days"
	o.varSeed = r.Uint64()
	o.DayVar = 0.10 + 0.10*r.Float64()
	// Offices' outlets are quieter at weekends, residential ones busier.
	o.WeekendFactor = 0.6 + 0.7*r.Float64()
	if r.Float64() < 0.1 {
		o.BinCapacity = math.Round(o.BinCapacity * 3)
	}
}

// classMix draws an outlet's packaging mix around its green share and returns
// cumulative probabilities in Class order.
func classMix(r *rand.Rand, green float64) [telemetry.NumClasses]float64 {
	// Shares within green: reusable, recyclable, biodegradable, original.
	g := [4]float64{0.03 + 0.05*r.Float64(), 0.55 + 0.2*r.Float64(), 0.04 + 0.06*r.Float64(), 0.15 + 0.15*r.Float64()}
	// Shares within non-green: plastic, foam, other.
	n := [3]float64{0.6 + 0.2*r.Float64(), 0.04 + 0.08*r.Float64(), 0.1 + 0.2*r.Float64()}
	var p [telemetry.NumClasses]float64
	var gs, ns float64
	for _, v := range g {
		gs += v
	}
	for _, v := range n {
		ns += v
	}
	for i, v := range g {
		p[i] = green * v / gs
	}
	for i, v := range n {
		p[4+i] = (1 - green) * v / ns
	}
	var cum [telemetry.NumClasses]float64
	acc := 0.0
	for i, v := range p {
		acc += v
		cum[i] = acc
	}
	cum[telemetry.NumClasses-1] = 1
	return cum
}

func pickDistrict(r *rand.Rand, ds []District, wsum float64) District {
	x := r.Float64() * wsum
	for _, d := range ds {
		if x < d.Weight {
			return d
		}
		x -= d.Weight
	}
	return ds[len(ds)-1]
}

func pickOperator(r *rand.Rand) operator {
	var sum float64
	for _, o := range operators {
		sum += o.weight
	}
	x := r.Float64() * sum
	for _, o := range operators {
		if x < o.weight {
			return o
		}
		x -= o.weight
	}
	return operators[len(operators)-1]
}

// placeInside finds a point of the district's shape for outlet i whose
// first draw fell outside it: more draws around the centre, then anywhere
// in the shape's box, then the shape's own inner point. The draws come
// from a stream of their own, so the rest of the city (every other draw of
// New) is the same as without shapes.
func placeInside(seed int64, i int, d District, s *Shape) (lat, lon float64) {
	r := rand.New(rand.NewPCG(uint64(seed), 0x706c6163<<32|uint64(i))) // "plac"
	for range 200 {
		lat, lon = round(d.Lat+r.NormFloat64()*d.Spread/2, 6), round(d.Lon+r.NormFloat64()*d.Spread/2, 6)
		if s.Contains(lat, lon) {
			return lat, lon
		}
	}
	b := s.Bounds()
	for range 10_000 {
		lat = round(b.MinLat+r.Float64()*(b.MaxLat-b.MinLat), 6)
		lon = round(b.MinLon+r.Float64()*(b.MaxLon-b.MinLon), 6)
		if s.Contains(lat, lon) {
			return lat, lon
		}
	}
	return s.Inside[0], s.Inside[1]
}

// uniqueName returns prefix+suffix, or, when a city already has that name,
// the same with a branch number (二店, 三店, ...), as chains name a second
// shop on one street.
func uniqueName(seen map[string]int, prefix, suffix string) string {
	seen[prefix]++
	n := seen[prefix]
	if n == 1 {
		return prefix + suffix
	}
	nums := []string{"", "", "二", "三", "四", "五", "六", "七", "八", "九", "十"}
	if n < len(nums) {
		return prefix + nums[n] + suffix
	}
	return prefix + strconv.Itoa(n) + suffix
}

// Devices returns every device of the city: per outlet its bins, then its
// counter, in outlet order. The order is stable for a Config.
func (c *City) Devices() []DeviceRef {
	var out []DeviceRef
	for _, o := range c.Outlets {
		for _, b := range o.BinIDs {
			out = append(out, DeviceRef{Outlet: o, ID: b, Kind: telemetry.KindBin})
		}
		out = append(out, DeviceRef{Outlet: o, ID: o.Counter, Kind: telemetry.KindCounter})
	}
	return out
}

// Outlet returns the outlet with the given id, or nil.
func (c *City) Outlet(id string) *Outlet {
	for _, o := range c.Outlets {
		if o.ID == id {
			return o
		}
	}
	return nil
}

// DeviceRef names one device of the city.
type DeviceRef struct {
	Outlet *Outlet
	ID     string
	Kind   telemetry.Kind
}

// TelemetryTopic and StatusTopic are the device's two topics.
func (d DeviceRef) TelemetryTopic() string {
	return telemetry.TelemetryTopic(d.Outlet.ID, d.Kind, d.ID)
}

// StatusTopic is the device's status topic, also its Last Will topic.
func (d DeviceRef) StatusTopic() string { return telemetry.StatusTopic(d.Outlet.ID, d.Kind, d.ID) }

// RegistryHeader is the header of the API's registry import (api-v1, with
// metrics-v1 v1.1's active_since).
var RegistryHeader = []string{"id", "name", "district", "address", "lat", "lon", "operator", "active", "active_since"}

// WriteRegistry writes the outlets as CSV in the API's import format, each
// active since activeSince (zero: the column is left empty, "always").
func (c *City) WriteRegistry(w io.Writer, activeSince time.Time) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(RegistryHeader); err != nil {
		return err
	}
	since := ""
	if !activeSince.IsZero() {
		since = activeSince.UTC().Format(time.RFC3339Nano)
	}
	for _, o := range c.Outlets {
		rec := []string{o.ID, o.Name, o.District, o.Address,
			strconv.FormatFloat(o.Lat, 'f', 6, 64), strconv.FormatFloat(o.Lon, 'f', 6, 64),
			o.Operator, strconv.FormatBool(o.Active), since}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ParseDistricts reads districts from CSV with the header
// id,name,lat,lon,spread,weight (the -districts file of firmware-sim).
func ParseDistricts(r io.Reader) ([]District, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 6
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != "id,name,lat,lon,spread,weight" {
		return nil, fmt.Errorf("want the header id,name,lat,lon,spread,weight")
	}
	var out []District
	for i, rec := range recs[1:] {
		d := District{ID: rec[0], Name: rec[1]}
		var nums [4]float64
		for j, s := range rec[2:] {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("line %d: %q is not a number", i+2, s)
			}
			nums[j] = v
		}
		d.Lat, d.Lon, d.Spread, d.Weight = nums[0], nums[1], nums[2], nums[3]
		if !telemetry.ValidID(d.ID) {
			return nil, fmt.Errorf("line %d: id %q: want [a-z0-9][a-z0-9_-]{0,63}", i+2, d.ID)
		}
		if d.Lat < -90 || d.Lat > 90 || d.Lon < -180 || d.Lon > 180 || d.Spread < 0 || d.Weight <= 0 {
			return nil, fmt.Errorf("line %d: lat, lon, spread or weight out of range", i+2)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no districts")
	}
	return out, nil
}

// BoundsOf returns a box around the districts (centre ± 2 spreads), for a
// city other than Wuhan.
func BoundsOf(ds []District) Bounds {
	b := Bounds{MinLat: 90, MaxLat: -90, MinLon: 180, MaxLon: -180}
	for _, d := range ds {
		b.MinLat = math.Min(b.MinLat, d.Lat-2*d.Spread)
		b.MaxLat = math.Max(b.MaxLat, d.Lat+2*d.Spread)
		b.MinLon = math.Min(b.MinLon, d.Lon-2*d.Spread)
		b.MaxLon = math.Max(b.MaxLon, d.Lon+2*d.Spread)
	}
	return b
}

func clamp(v, lo, hi float64) float64 { return math.Min(hi, math.Max(lo, v)) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
