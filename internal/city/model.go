package city

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// hourWeights is the daily arrival curve in local hours: quiet at night, a
// morning rise, a lunch dip and an evening peak when people collect parcels
// after work.
var hourWeights = [24]float64{
	0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 1.5, 3, 5, 6.5, 6.5,
	5, 5.5, 6, 6, 6.5, 7, 7, 5.5, 4, 3, 1.5, 0.5,
}

var hourShare = func() [24]float64 {
	var sum float64
	for _, w := range hourWeights {
		sum += w
	}
	var s [24]float64
	for i, w := range hourWeights {
		s[i] = w / sum
	}
	return s
}()

const localOffsetMs = 8 * 3600 * 1000

// Expected returns the mean number of parcels the outlet receives in
// [t0, t1): its daily volume spread over the local hours by the arrival
// curve, times the local day's factor (DayFactor). Within the interval
// arrivals are Poisson.
func (o *Outlet) Expected(t0, t1 time.Time) float64 {
	a, b := t0.UnixMilli()+localOffsetMs, t1.UnixMilli()+localOffsetMs
	var sum float64
	day, factor := int64(math.MinInt64), 1.0
	for a < b {
		hourStart := a - mod(a, 3600_000)
		end := min(b, hourStart+3600_000)
		h := mod(hourStart, 86400_000) / 3600_000
		if d := floorDiv(hourStart, 86400_000); d != day {
			day, factor = d, o.dayFactor(d)
		}
		sum += hourShare[h] * factor * float64(end-a) / 3600_000
		a = end
	}
	return sum * o.ParcelsPerDay
}

// DayFactor is how busy the local day that t falls in is against the
// outlet's mean: its weekend factor on Saturdays and Sundays, times a
// log-normal draw for the day, shared in part by the whole city (a sales
// day, rain) and in part the outlet's own. A model that learned the
// outlet's usual day must notice a busier one. 1 when the outlet has no
// day-to-day variation (DayVar 0 and WeekendFactor 0 or 1).
func (o *Outlet) DayFactor(t time.Time) float64 {
	return o.dayFactor(floorDiv(t.UnixMilli()+localOffsetMs, 86400_000))
}

func (o *Outlet) dayFactor(day int64) float64 {
	f := 1.0
	// 1970-01-01 was a Thursday: day 2 is a Saturday.
	if wd := mod(day, 7); (wd == 2 || wd == 3) && o.WeekendFactor > 0 {
		f = o.WeekendFactor
	}
	if o.DayVar > 0 {
		// Half the variance is the city's, half the outlet's; the mean
		// factor stays 1 (minus σ²/2 on the log).
		zc := normal(splitmix(o.varSeed ^ 0x63697479 ^ uint64(day)<<24)) // "city": the same for every outlet
		zo := normal(splitmix(o.varSeed ^ uint64(o.Index+1)<<44 ^ uint64(day)))
		s := o.DayVar / math.Sqrt2
		f *= math.Exp(s*zc + s*zo - o.DayVar*o.DayVar/2)
	}
	return f
}

// Collection returns the latest collection round of the outlet's bins in
// (t0, t1], if any. Rounds are a pure function of seed, outlet and local day,
// so every mode (live, load, history) sees the same schedule for the same
// times: most rounds come within 20 minutes of their hour, some 1 to 5
// hours late, some not at all.
func (o *Outlet) Collection(seed int64, t0, t1 time.Time) (time.Time, bool) {
	a, b := t0.UnixMilli(), t1.UnixMilli()
	var best int64
	found := false
	// A late round can spill into the next day: look one day back.
	for day := floorDiv(a+localOffsetMs, 86400_000) - 1; day <= floorDiv(b+localOffsetMs, 86400_000); day++ {
		dayStart := day*86400_000 - localOffsetMs
		for ri, hour := range o.Rounds {
			h := splitmix(uint64(seed) ^ uint64(o.Index)<<20 ^ uint64(day)<<36 ^ uint64(ri))
			u1 := float64(h>>11) / (1 << 53)
			u2 := float64(splitmix(h)>>11) / (1 << 53)
			var at int64
			switch {
			case u1 < o.SkipProb:
				continue
			case u1 < o.SkipProb+o.LateProb:
				at = dayStart + int64((hour+1+4*u2)*3600_000)
			default:
				at = dayStart + int64((hour+(u2-0.5)*2/3)*3600_000)
			}
			if at > a && at <= b && (!found || at > best) {
				best, found = at, true
			}
		}
	}
	return time.UnixMilli(best), found
}

// Device is the state of one simulated device. It is not safe for
// concurrent use: each device has one owner.
type Device struct {
	Ref    DeviceRef
	seed   int64
	idHash uint64     // of the device id, for draws that are a function of time
	data   *rand.Rand // readings: arrivals, classes, battery, radio
	flt    *rand.Rand // fault decisions, kept apart so faults leave readings alone
	sched  *rand.Rand // report times, kept apart so faults leave the schedule alone

	Boot, Seq int64 // Seq is the seq of the next message
	last      time.Time
	started   bool

	// counter
	parcels [telemetry.NumClasses]int64
	boxes   int64
	// bin
	items    float64
	deposits int64
	battery  float64
	rssiBase float64
	rssi     float64
	emptied  bool
}

// NewDevice returns the device's state at power-on: counters at 0, a boot
// number, a bin's initial fill, battery and radio.
func (c *City) NewDevice(ref DeviceRef) *Device {
	h := fnv.New64a()
	h.Write([]byte(ref.ID))
	id := h.Sum64()
	d := &Device{
		Ref:    ref,
		seed:   c.Seed,
		idHash: id,
		data:   rand.New(rand.NewPCG(uint64(c.Seed), id)),
		flt:    rand.New(rand.NewPCG(uint64(c.Seed)^0x66617531, id)), // "fau1"
		sched:  rand.New(rand.NewPCG(uint64(c.Seed)^0x73636831, id)), // "sch1"
	}
	d.Boot = int64(1 + d.data.IntN(8))
	if ref.Kind == telemetry.KindBin {
		d.items = math.Round(ref.Outlet.BinCapacity * 0.8 * d.data.Float64())
		d.battery = 40 + 60*d.data.Float64()
		d.rssiBase = -105 + 50*d.data.Float64()
		d.rssi = d.rssiBase
	}
	return d
}

// FaultRand is the device's random stream for fault decisions.
func (d *Device) FaultRand() *rand.Rand { return d.flt }

// ScheduleRand is the device's random stream for its report times.
func (d *Device) ScheduleRand() *rand.Rand { return d.sched }

// Advance moves the device to virtual time t: parcels and deposits arrive
// since the previous call, a collection round may empty a bin, the battery
// drains. The first call only sets the clock.
func (d *Device) Advance(t time.Time) {
	if !d.started {
		d.last, d.started = t, true
		return
	}
	t0 := d.last
	if !t.After(t0) {
		return
	}
	d.last = t
	o := d.Ref.Outlet
	switch d.Ref.Kind {
	case telemetry.KindCounter:
		n := poisson(d.data, o.Expected(t0, t))
		for range n {
			u := d.data.Float64()
			c := 0
			for c < telemetry.NumClasses-1 && u >= o.Mix[c] {
				c++
			}
			d.parcels[c]++
			if d.data.Float64() < o.BoxShare {
				d.boxes++
			}
		}
	case telemetry.KindBin:
		mean := o.Expected(t0, t) * o.DepositsPerParcel / float64(len(o.BinIDs))
		n := poisson(d.data, mean)
		if c, ok := o.Collection(d.seed, t0, t); ok {
			after := binomial(d.data, n, float64(t.Sub(c))/float64(t.Sub(t0)))
			d.deposit(n - after)
			d.items = 0
			d.emptied = true
			d.deposit(after)
		} else {
			d.deposit(n)
		}
		d.battery -= (0.002 + 0.004*d.data.Float64()) * t.Sub(t0).Minutes()
		if d.battery < 5 {
			d.battery = 100 // swapped by the maintenance crew
		}
		d.rssi = math.Max(-140, math.Min(-20, d.rssiBase+2.5*d.data.NormFloat64()))
	}
}

// deposit adds n items as far as the bin takes them: a full bin refuses
// deposits, so they are not counted either.
func (d *Device) deposit(n int) {
	room := int(math.Max(0, d.Ref.Outlet.BinCapacity-d.items))
	n = min(n, room)
	d.items += float64(n)
	d.deposits += int64(n)
}

// Reboot restarts the device: a new boot, seq and counters from 0.
func (d *Device) Reboot() {
	d.Boot++
	d.Seq = 0
	d.parcels = [telemetry.NumClasses]int64{}
	d.boxes = 0
	d.deposits = 0
}

// FillPct is the bin's true fill level (one decimal).
func (d *Device) FillPct() float64 {
	return math.Min(100, math.Round(d.items/d.Ref.Outlet.BinCapacity*1000)/10)
}

// Sensor noise of a bin's level sensor (an ultrasonic range finder looking
// down at a heap of boxes): every reading is off by a normal error of
// sensorSigma points, and one reading in sensorGlitchEvery is a glitch off
// by up to ±sensorGlitch points (a box held over the sensor, an echo off
// the lid). Readings stay within 0..100.
const (
	sensorSigma       = 0.8
	sensorGlitchEvery = 400
	sensorGlitch      = 30.0
)

// ReadingPct is what the bin's sensor reads now (at the device's virtual
// time, the last Advance): the true level plus the sensor's noise, one
// decimal. The noise is a pure function of the seed, the device and that
// time, so it draws nothing from the device's streams (the same arrivals
// with or without it) and the same seed gives the same readings whatever
// the wall clock stamps the message with.
func (d *Device) ReadingPct() float64 {
	h := splitmix(uint64(d.seed) ^ d.idHash ^ uint64(d.last.UnixMilli())*0x9e3779b97f4a7c15)
	v := d.items/d.Ref.Outlet.BinCapacity*100 + sensorSigma*normal(h)
	if g := splitmix(h ^ 0x676c6974); g%sensorGlitchEvery == 0 { // "glit"
		v += sensorGlitch * (2*unit(splitmix(g)) - 1)
	}
	return math.Round(math.Max(0, math.Min(100, v))*10) / 10
}

// Parcels returns the counter's cumulative parcels by class since boot.
func (d *Device) Parcels() [telemetry.NumClasses]int64 { return d.parcels }

func poisson(r *rand.Rand, mean float64) int {
	switch {
	case mean <= 0:
		return 0
	case mean < 30:
		// Knuth: multiply uniforms until the product drops below e^-mean.
		l, k, p := math.Exp(-mean), 0, 1.0
		for {
			p *= r.Float64()
			if p <= l {
				return k
			}
			k++
		}
	default:
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
}

func binomial(r *rand.Rand, n int, p float64) int {
	if n <= 0 || p <= 0 {
		return 0
	}
	if p >= 1 {
		return n
	}
	if n <= 64 {
		k := 0
		for range n {
			if r.Float64() < p {
				k++
			}
		}
		return k
	}
	mean := float64(n) * p
	k := int(math.Round(mean + math.Sqrt(mean*(1-p))*r.NormFloat64()))
	return min(n, max(0, k))
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// normal maps a hash to a standard normal draw (Box–Muller).
func normal(h uint64) float64 {
	u1 := unit(h)
	u2 := unit(splitmix(h))
	return math.Sqrt(-2*math.Log(1-u1)) * math.Cos(2*math.Pi*u2)
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func mod(a, m int64) int64 { return ((a % m) + m) % m }

func floorDiv(a, m int64) int64 { return (a - mod(a, m)) / m }
