package metrics

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// points builds storage-v1 line protocol with the telemetry package's own
// encoder, so that the tests read exactly what the collector writes.
type points struct{ lines []byte }

// counter adds a counter point; classes not given are 0, boxes < 0 is not sent.
func (p *points) counter(outlet, device string, boot int64, t time.Time, seq int64, classes map[telemetry.Class]int64, boxes int64) {
	m := telemetry.Message{
		Topic: telemetry.Topic{Outlet: outlet, Kind: telemetry.KindCounter, Device: device, Channel: telemetry.ChannelTelemetry},
		TS:    t.UnixMilli(), Seq: seq, Boot: boot,
	}
	for c, v := range classes {
		m.Counter.Parcels[c] = v
	}
	if boxes >= 0 {
		m.Counter.BoxesRecovered, m.Counter.HasBoxes = boxes, true
	}
	p.lines = telemetry.AppendPoint(p.lines, &m)
}

func (p *points) bin(outlet, device string, boot int64, t time.Time, seq int64, fill float64) {
	m := telemetry.Message{
		Topic: telemetry.Topic{Outlet: outlet, Kind: telemetry.KindBin, Device: device, Channel: telemetry.ChannelTelemetry},
		TS:    t.UnixMilli(), Seq: seq, Boot: boot,
		Bin: telemetry.BinReading{FillPct: fill, Deposits: seq},
	}
	p.lines = telemetry.AppendPoint(p.lines, &m)
}

func (p *points) status(outlet string, kind telemetry.Kind, device, state string, t time.Time) {
	m := telemetry.Message{
		Topic:  telemetry.Topic{Outlet: outlet, Kind: kind, Device: device, Channel: telemetry.ChannelStatus},
		TS:     t.UnixMilli(),
		Status: telemetry.StatusReport{State: state},
	}
	p.lines = telemetry.AppendPoint(p.lines, &m)
}

func (p *points) write(t testing.TB, st *store.Store) {
	t.Helper()
	for len(p.lines) > 0 {
		n := len(p.lines)
		if n > 1<<20 {
			n = 1 << 20
			for p.lines[n-1] != '\n' {
				n--
			}
		}
		if err := st.Write(context.Background(), p.lines[:n]); err != nil {
			t.Fatal(err)
		}
		p.lines = p.lines[n:]
	}
}

func openStore(t testing.TB, in *testenv.Influx) *store.Store {
	t.Helper()
	st, err := store.Open(store.Config{URL: in.URL, Bucket: in.Bucket, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// The hand-computed cases live on 2030-03-12; the clock of the roll-up is
// stopped at 12:34:56, so hours up to 12:00 are rolled, [12:00, 12:33) is
// the partial hour, and what follows is read raw.
var handNow = at("2030-03-12T12:34:56Z")

const (
	recyclable    = telemetry.Recyclable
	reusable      = telemetry.Reusable
	original      = telemetry.Original
	biodegradable = telemetry.Biodegradable
	plastic       = telemetry.Plastic
	foam          = telemetry.Foam
	other         = telemetry.Other
)

func handData() *points {
	p := &points{}
	c := func(outlet, dev string, boot int64, ts string, cls telemetry.Class, v int64, boxes int64) {
		p.counter(outlet, dev, boot, at(ts), 1, map[telemetry.Class]int64{cls: v}, boxes)
	}
	// h-reset: 100 before the window, then 110, 5 (a reset), 8, 20.
	c("h-reset", "c-reset", 0, "2030-03-12T07:50:00Z", recyclable, 100, 3)
	c("h-reset", "c-reset", 0, "2030-03-12T08:15:00Z", recyclable, 110, 4)
	c("h-reset", "c-reset", 0, "2030-03-12T08:40:00Z", recyclable, 5, -1)
	c("h-reset", "c-reset", 0, "2030-03-12T09:30:00Z", recyclable, 8, -1)
	c("h-reset", "c-reset", 0, "2030-03-12T10:00:00Z", recyclable, 20, -1)
	// h-decrease: reusable goes down (a reset of that class only) while
	// plastic goes on.
	p.counter("h-decrease", "c-dec", 0, at("2030-03-12T07:00:00Z"), 1, map[telemetry.Class]int64{reusable: 50, plastic: 10}, -1)
	p.counter("h-decrease", "c-dec", 0, at("2030-03-12T09:05:00Z"), 2, map[telemetry.Class]int64{reusable: 40, plastic: 12}, -1)
	p.counter("h-decrease", "c-dec", 0, at("2030-03-12T10:05:00Z"), 3, map[telemetry.Class]int64{reusable: 45, plastic: 12}, -1)
	// h-newseries: boot 0 only before the window; boot 1 starts inside it.
	c("h-newseries", "c-new", 0, "2030-03-12T07:00:00Z", original, 30, -1)
	c("h-newseries", "c-new", 1, "2030-03-12T09:10:00Z", original, 7, -1)
	c("h-newseries", "c-new", 1, "2030-03-12T11:10:00Z", original, 9, -1)
	// Baselines 23 h, exactly 24 h and 25 h before from (08:10).
	c("h-base23", "c-b23", 0, "2030-03-11T09:10:00Z", other, 1000, -1)
	c("h-base23", "c-b23", 0, "2030-03-12T08:30:00Z", other, 1010, -1)
	c("h-base24", "c-b24", 0, "2030-03-11T08:10:00Z", foam, 500, -1)
	c("h-base24", "c-b24", 0, "2030-03-12T08:30:00Z", foam, 510, -1)
	c("h-base25", "c-b25", 0, "2030-03-11T07:10:00Z", foam, 1000, -1)
	c("h-base25", "c-b25", 0, "2030-03-12T08:30:00Z", foam, 1010, -1)
	// h-justbefore: a report 1 ms before from, one at from, one 1 ms before
	// to, one at to (outside); a bin report 15 minutes before from.
	c("h-justbefore", "c-jb", 0, "2030-03-12T08:09:59.999Z", biodegradable, 500, -1)
	c("h-justbefore", "c-jb", 0, "2030-03-12T08:10:00Z", biodegradable, 505, -1)
	c("h-justbefore", "c-jb", 0, "2030-03-12T11:19:59.999Z", biodegradable, 510, -1)
	c("h-justbefore", "c-jb", 0, "2030-03-12T11:20:00Z", biodegradable, 600, -1)
	p.bin("h-justbefore", "b-jb1", 0, at("2030-03-12T07:55:00Z"), 1, 50)
	p.bin("h-justbefore", "b-jb1", 0, at("2030-03-12T08:30:00Z"), 2, 20)
	// h-stale: reports at 08:00, 08:05, 09:00, 11:00.
	for i, ts := range []string{"08:00", "08:05", "09:00", "11:00"} {
		p.bin("h-stale", "b-st1", 0, at("2030-03-12T"+ts+":00Z"), int64(i), 10)
	}
	// h-full: 95 and exactly 90 are not serving, 89.9 is; a second bin.
	p.bin("h-full", "b-fu1", 0, at("2030-03-12T08:10:00Z"), 1, 95)
	p.bin("h-full", "b-fu1", 0, at("2030-03-12T08:20:00Z"), 2, 90)
	p.bin("h-full", "b-fu1", 0, at("2030-03-12T08:30:00Z"), 3, 89.9)
	p.bin("h-full", "b-fu2", 0, at("2030-03-12T08:40:00Z"), 1, 0)
	// h-boots: one bin device, two boots; at 09:10 both boots report and
	// the later boot (full) decides.
	p.bin("h-boots", "b-bo1", 0, at("2030-03-12T09:00:00Z"), 1, 10)
	p.bin("h-boots", "b-bo1", 0, at("2030-03-12T09:10:00Z"), 2, 10)
	p.bin("h-boots", "b-bo1", 1, at("2030-03-12T09:10:00Z"), 0, 95)
	// h-recent: data in the last rolled hour, the partial hour and after it.
	c("h-recent", "c-rec", 0, "2030-03-12T11:40:00Z", recyclable, 100, -1)
	c("h-recent", "c-rec", 0, "2030-03-12T12:10:00Z", recyclable, 150, -1)
	c("h-recent", "c-rec", 0, "2030-03-12T12:33:30Z", recyclable, 170, -1)
	p.bin("h-recent", "b-rec", 0, at("2030-03-12T12:20:00Z"), 1, 30)
	return p
}

// handCases are metrics-v1 worked out by hand for the data above.
var handCases = []struct {
	name    string
	w       Window
	outlet  string
	want    Outlet
	explain string
}{
	{"reset and decrease", Window{at("2030-03-12T08:10:00Z"), at("2030-03-12T11:20:00Z")}, "h-reset",
		outletWith(190, map[telemetry.Class]int64{recyclable: 30}, 1, 0, 0, 1, 64),
		"b=100 (07:50); 110-100=10, 5<110 so 5, 8-5=3, 20-8=12: 30. boxes 3 then 4: 1. Counter fresh 08:15..08:30, 08:40..08:55, 09:30..09:45, 10:00..10:15"},
	{"aligned window", Window{at("2030-03-12T09:00:00Z"), at("2030-03-12T11:00:00Z")}, "h-reset",
		outletWith(120, map[telemetry.Class]int64{recyclable: 15}, 0, 0, 0, 1, 32),
		"b=5 (08:40); 8-5=3, 20-8=12: 15; boxes has no value in the window. Fresh 09:30..09:45, 10:00..10:15"},
	{"a decrease is a reset of that class", Window{at("2030-03-12T08:10:00Z"), at("2030-03-12T11:20:00Z")}, "h-decrease",
		outletWith(190, map[telemetry.Class]int64{reusable: 45, plastic: 2}, 0, 0, 0, 1, 32),
		"reusable b=50: 40<50 so 40, then 5: 45; plastic b=10: 2, 0. Fresh 09:05..09:20, 10:05..10:20"},
	{"series starting in the window", Window{at("2030-03-12T08:10:00Z"), at("2030-03-12T11:20:00Z")}, "h-newseries",
		outletWith(190, map[telemetry.Class]int64{original: 9}, 0, 0, 0, 1, 26),
		"boot 0 has no value in the window: 0; boot 1 counts from 0: 7, then 2. Fresh 09:10..09:25, 11:10..11:19"},
	{"baseline 23 h before", Window{at("2030-03-12T08:10:00Z"), at("2030-03-12T11:20:00Z")}, "h-base23",
		outletWith(190, map[telemetry.Class]int64{other: 10}, 0, 0, 0, 1, 16), "1010-1000; fresh 08:30..08:45"},
	{"baseline exactly 24 h before", Window{at("2030-03-12T08:10:00Z"), at("2030-03-12T11:20:00Z")}, "h-base24",
		outletWith(190, map[telemetry.Class]int64{foam: 10}, 0, 0, 0, 1, 16), "[from-24h, from) includes from-24h: 510-500"},
	{"baseline 25 h before", Window{at("2030-03-12T08:10:00Z"), at("2030-03-12T11:20:00Z")}, "h-base25",
		outletWith(190, map[telemetry.Class]int64{foam: 1010}, 0, 0, 0, 1, 16), "beyond 24 h: b=0"},
	{"reports just before from and at to", Window{at("2030-03-12T08:10:00Z"), at("2030-03-12T11:20:00Z")}, "h-justbefore",
		func() Outlet {
			o := outletWith(190, map[telemetry.Class]int64{biodegradable: 10}, 0, 1, 17, 1, 16)
			return o
		}(),
		"b=500 (1 ms before): 5, 5; 600 at to is outside. Bin: 07:55 serves 08:10 (15 min old), 08:30 serves 08:30..08:45: 17. Counter fresh 08:10..08:25: 16"},
	{"stale bins", Window{at("2030-03-12T08:10:00Z"), at("2030-03-12T11:20:00Z")}, "h-stale",
		outletWith(190, nil, 0, 1, 11+16+16, 0, 0), "08:05 serves 08:10..08:20 (11), 09:00..09:15 (16), 11:00..11:15 (16)"},
	{"full bins and two bins", Window{at("2030-03-12T08:10:00Z"), at("2030-03-12T11:20:00Z")}, "h-full",
		outletWith(190, nil, 0, 2, 26, 0, 0), "95 and 90 do not serve; 89.9 at 08:30 and 0 at 08:40: 08:30..08:55"},
	{"boots of one bin", Window{at("2030-03-12T08:10:00Z"), at("2030-03-12T11:20:00Z")}, "h-boots",
		outletWith(190, nil, 0, 1, 10, 0, 0), "09:00..09:09; at 09:10 boot 1 (full) is the last report; one device"},
	{"no data", Window{at("2030-03-12T08:10:00Z"), at("2030-03-12T11:20:00Z")}, "h-nodata",
		outletWith(190, nil, 0, 0, 0, 0, 0), "zero counts, coverage 0"},
	{"partial hour and after", Window{at("2030-03-12T11:30:00Z"), at("2030-03-12T12:34:00Z")}, "h-recent",
		outletWith(64, map[telemetry.Class]int64{recyclable: 170}, 0, 1, 14, 1, 32),
		"b=0: 100, 50, 20. Bin 12:20 serves 12:20..12:33 (14). Counter 11:40..11:55 and 12:10..12:25: 32"},
}

func ptr(o Outlet) *Outlet { return &o }

func outletWith(minutes int, classes map[telemetry.Class]int64, boxes int64, bins, serving, counters, counting int) Outlet {
	o := Outlet{WindowMinutes: minutes, Parcels: Parcels{BoxesRecovered: boxes}, BinsReporting: bins, ServingMinutes: serving,
		CountersReporting: counters, CounterReportingMinutes: counting}
	for c, v := range classes {
		o.Parcels.ByClass[c] = v
	}
	return o
}

// TestHandComputed checks every definition of metrics-v1 on hand-worked
// data against the real InfluxDB 1.8.10: the raw path in both query
// languages, and the roll-up path (whole hours, the partial hour, raw
// edges).
func TestHandComputed(t *testing.T) {
	in := testenv.StartInflux(t)
	st := openStore(t, in)
	ctx := context.Background()
	handData().write(t, st)

	opts := DefaultOptions()
	engines := map[string]Engine{}
	for _, lang := range []QueryLanguage{Flux, InfluxQL} {
		raw, err := NewRawEngine(st, opts, lang)
		if err != nil {
			t.Fatal(err)
		}
		engines["raw-"+lang.String()] = raw
		roll, err := NewRollup(st, opts, RollupConfig{Language: lang, Now: func() time.Time { return handNow }, Horizon: 3 * 24 * time.Hour, LiveTTL: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := roll.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		eng, err := NewInfluxEngine(st, opts, roll)
		if err != nil {
			t.Fatal(err)
		}
		engines["rollup-"+lang.String()] = eng
	}
	for _, c := range handCases {
		t.Run(c.name, func(t *testing.T) {
			for name, e := range engines {
				got, err := e.Outlets(ctx, c.w, []string{c.outlet})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !reflect.DeepEqual(got[0], c.want) {
					t.Errorf("%s %s over %v..%v (%s):\n got %+v\nwant %+v", name, c.outlet, c.w.From.Format("15:04"), c.w.To.Format("15:04"), c.explain, got[0], c.want)
				}
			}
		})
	}
	// metrics-v1 v1.1: an outlet is judged from its active_since on.
	t.Run("active_since", func(t *testing.T) {
		w := Window{at("2030-03-12T08:10:00Z"), at("2030-03-12T11:20:00Z")}
		for _, c := range []struct {
			outlet, since string
			want          *Outlet // nil: left out of the answer
			explain       string
		}{
			{"h-reset", "2030-03-12T09:29:30Z", ptr(outletWith(110, map[telemetry.Class]int64{recyclable: 15}, 0, 0, 0, 1, 32)),
				"judged from 09:30 (the next whole minute): b=5 (08:40); 8-5=3, 20-8=12; boxes b=4, none after: 0. Fresh 09:30..09:45, 10:00..10:15"},
			{"h-stale", "2030-03-12T08:59:59.5Z", ptr(outletWith(140, nil, 0, 1, 32, 0, 0)),
				"from 09:00: 09:00..09:15 (16), 11:00..11:15 (16); the 08:05 report is stale by then"},
			{"h-full", "2030-03-12T07:00:00Z", ptr(handCases[9].want), "before from: the whole window, as without it"},
			{"h-full", "", ptr(handCases[9].want), "absent: always"},
			{"h-stale", "2030-03-12T11:20:00Z", nil, "at to: left out"},
			{"h-stale", "2030-03-13T00:00:00Z", nil, "after to: left out"},
		} {
			var since time.Time
			if c.since != "" {
				since = at(c.since)
			}
			for name, e := range engines {
				got, in, err := OutletsJudged(ctx, e.Outlets, w, []Judged{{ID: c.outlet, ActiveSince: since}, {ID: "h-nodata"}})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				m, ok := got[0], in[0]
				switch {
				case c.want == nil && ok:
					t.Errorf("%s %s since %s: %+v; want it left out (%s)", name, c.outlet, c.since, m, c.explain)
				case c.want != nil && !reflect.DeepEqual(m, *c.want):
					t.Errorf("%s %s since %s:\n got %+v\nwant %+v (%s)", name, c.outlet, c.since, m, *c.want, c.explain)
				}
				if !in[1] || got[1] != outletWith(190, nil, 0, 0, 0, 0, 0) {
					t.Errorf("%s: an outlet without active_since beside it: %+v (judged: %v)", name, got[1], in[1])
				}
			}
		}
	})
	t.Run("rates", func(t *testing.T) {
		o := handCases[2].want // h-decrease: 45 green of 47
		if got := *Ratio(o.Parcels.Green(), o.Parcels.Total()); got != 45.0/47 {
			t.Errorf("green rate %v, want 45/47", got)
		}
		if Ratio(0, 0) != nil {
			t.Error("a rate over 0 parcels is not null")
		}
	})
}

func (p *points) String() string { return fmt.Sprintf("%d bytes of line protocol", len(p.lines)) }
