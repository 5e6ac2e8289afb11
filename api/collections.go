package main

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/greenpost/greenpost/internal/fill"
)

// GET /v1/collections (ops-v1): the bins to empty — full, filling within the
// look-ahead, or stale — as of a time `at`, from internal/fill's model
// (docs/collections.md).

// binJudge is what the collection list needs of internal/fill.
type binJudge interface {
	Judge(ctx context.Context, at time.Time, ahead time.Duration, outlets []string) ([]fill.Bin, error)
}

var _ binJudge = (*fill.Tracker)(nil)

// Look-ahead of the collection list, in hours.
const (
	defaultCollectionHours = 24
	maxCollectionHours     = 168
)

// collectionBin is one bin of the list.
type collectionBin struct {
	Outlet     string     `json:"outlet"`
	Name       string     `json:"name"`
	District   string     `json:"district"`
	Address    string     `json:"address"`
	Operator   string     `json:"operator"`
	Device     string     `json:"device"`
	FillPct    float64    `json:"fill_pct"`
	ReportedAt time.Time  `json:"reported_at"`
	Rate       *float64   `json:"rate_pct_per_hour"`
	FullAt     *time.Time `json:"full_at"`
	State      string     `json:"state"`
	Confidence string     `json:"confidence"`
}

// collectionsAnswer is GET /v1/collections.
type collectionsAnswer struct {
	At      time.Time       `json:"at"`
	Hours   int             `json:"hours"`
	FullPct float64         `json:"full_pct"`
	Bins    []collectionBin `json:"bins"`

	known map[string]outletJSON // the registry's outlets written (fieldRun)
}

func getCollections(reg *registry, judge binJudge, now clock, fullPct float64, loc *time.Location) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{Filter: true, CSV: true, Own: []string{"hours", "at"}})
		if err != nil {
			return err
		}
		q, csv, f := in.Q, in.CSV, in.F
		hours := defaultCollectionHours
		if v, ok := q["hours"]; ok {
			if hours, err = strconv.Atoi(v); err != nil || hours < 1 || hours > maxCollectionHours {
				return errInvalid("hours", "hours: want an integer from 1 to %d", maxCollectionHours)
			}
		}
		t := now()
		at := t
		if v, ok := q["at"]; ok {
			if at, err = parseTime("at", v, loc); err != nil {
				return err
			}
			// A minute of clock difference between client and server is
			// not the future.
			if at.After(t.Add(time.Minute)) {
				return errInvalid("at", "at: in the future (the list is judged from reports at or before it)")
			}
		}
		at = at.UTC().Truncate(time.Millisecond)
		f.ActiveOnly = true
		outlets := reg.Select(c.UserContext(), f) // in id order
		ids := make([]string, len(outlets))
		for i := range outlets {
			ids[i] = outlets[i].ID
		}
		judged, err := judge.Judge(c.UserContext(), at, time.Duration(hours)*time.Hour, ids)
		if err != nil {
			return err
		}
		bins := collectionList(judged, outlets)
		if csv {
			return sendCSV(c, collectionCSVHeader, collectionCSVRows(bins))
		}
		// By hand (collectionsjson.go): up to a row per bin of the city.
		a := collectionsAnswer{At: at, Hours: hours, FullPct: fullPct, Bins: bins, known: reg.Written()}
		return sendBuilt(c, fiber.MIMEApplicationJSON, 128+360*len(bins), func(b []byte) ([]byte, error) { return appendCollectionsAnswer(b, a) })
	}
}

// stateOrder is ops-v1's order: full, then filling, then stale.
func stateOrder(s fill.State) int {
	switch s {
	case fill.Full:
		return 0
	case fill.Filling:
		return 1
	}
	return 2
}

// collectionList turns the model's bins into the list, in ops-v1's order:
// full by full_at (longest full first), filling by full_at, then stale
// (longest silent first); ties by outlet and device. outlets are the ones
// asked about, in id order; the rows' rates and times are kept in one slab
// each.
func collectionList(judged []fill.Bin, outlets []Outlet) []collectionBin {
	at := outletsOf(judged, outlets)
	out := make([]collectionBin, 0, len(judged))
	rates := make([]float64, 0, len(judged))
	fulls := make([]time.Time, 0, len(judged))
	for _, i := range collectionOrder(judged) {
		b := &judged[i]
		if at[i] < 0 {
			continue // the model only judged what was asked; belt and braces
		}
		o := &outlets[at[i]]
		cb := collectionBin{Outlet: o.ID, Name: o.Name, District: o.District, Address: o.Address, Operator: o.Operator,
			Device: b.Device, FillPct: round(b.FillPct, 2), ReportedAt: time.UnixMilli(b.ReportedAt).UTC(),
			State: string(b.State), Confidence: string(b.Confidence)}
		if b.HasRate {
			rates = append(rates, round(b.Rate, 2))
			cb.Rate = &rates[len(rates)-1]
		}
		if b.FullAt != 0 {
			t := time.UnixMilli(b.FullAt).UTC()
			if b.State == fill.Filling {
				// A prediction, not a report: to the second is plenty.
				t = t.Truncate(time.Second)
			}
			fulls = append(fulls, t)
			cb.FullAt = &fulls[len(fulls)-1]
		}
		out = append(out, cb)
	}
	return out
}

// outletsOf returns each bin's outlet's position in outlets (in id order),
// -1 for none. The judge lists bins by outlet, so the two are walked
// together, a search only where they are not in step (a map of a city's
// 10,000 outlets, built for each request, cost more).
func outletsOf(judged []fill.Bin, outlets []Outlet) []int32 {
	at := make([]int32, len(judged))
	j := 0
	for i := range judged {
		id := judged[i].Outlet
		if i > 0 && id == judged[i-1].Outlet {
			at[i] = at[i-1]
			continue
		}
		for j < len(outlets) && outlets[j].ID < id {
			j++
		}
		if j < len(outlets) && outlets[j].ID == id {
			at[i] = int32(j)
			continue
		}
		k, found := slices.BinarySearchFunc(outlets, id, func(o Outlet, id string) int { return strings.Compare(o.ID, id) })
		at[i] = -1
		if found {
			at[i] = int32(k)
		}
	}
	return at
}

// collectionOrder returns the positions of judged in ops-v1's order: by
// state (stateOrder), then full_at (reported_at for a stale bin), then
// outlet and device. Outlet and device name one bin, so the order is total.
// The judge lists bins by outlet and device already: then a bin's position
// breaks ties as they would, and small keys are sorted instead of the
// 150-byte bins (a fifth of a city list's CPU was moving them).
func collectionOrder(judged []fill.Bin) []int {
	type key struct {
		state int
		t     int64
		i     int
	}
	byID := slices.IsSortedFunc(judged, func(a, b fill.Bin) int {
		return cmp.Or(cmp.Compare(a.Outlet, b.Outlet), cmp.Compare(a.Device, b.Device))
	})
	keys := make([]key, len(judged))
	for i, b := range judged {
		keys[i] = key{stateOrder(b.State), b.FullAt, i}
		if b.State == fill.Stale {
			keys[i].t = b.ReportedAt
		}
	}
	slices.SortFunc(keys, func(x, y key) int {
		if c := cmp.Or(cmp.Compare(x.state, y.state), cmp.Compare(x.t, y.t)); c != 0 || byID {
			return cmp.Or(c, cmp.Compare(x.i, y.i))
		}
		a, b := &judged[x.i], &judged[y.i]
		return cmp.Or(cmp.Compare(a.Outlet, b.Outlet), cmp.Compare(a.Device, b.Device))
	})
	order := make([]int, len(keys))
	for j, k := range keys {
		order[j] = k.i
	}
	return order
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

var collectionCSVHeader = []string{"outlet", "name", "district", "address", "operator", "device", "state",
	"fill_pct", "reported_at", "rate_pct_per_hour", "full_at", "confidence"}

func collectionCSVRows(bs []collectionBin) [][]string {
	rows := make([][]string, len(bs))
	for i, b := range bs {
		full := ""
		if b.FullAt != nil {
			full = ftime(*b.FullAt)
		}
		rows[i] = []string{b.Outlet, b.Name, b.District, b.Address, b.Operator, b.Device, b.State,
			fnum(b.FillPct), ftime(b.ReportedAt), fptr(b.Rate), full, b.Confidence}
	}
	return rows
}
