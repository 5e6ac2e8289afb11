package city

import (
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

func binMsg(outlet, device string, boot int64, ts time.Time, fill float64) *telemetry.Message {
	return &telemetry.Message{
		Topic: telemetry.Topic{Outlet: outlet, Kind: telemetry.KindBin, Device: device, Channel: telemetry.ChannelTelemetry},
		TS:    ts.UnixMilli(), Boot: boot, Bin: telemetry.BinReading{FillPct: fill},
	}
}

func counterMsg(outlet, device string, boot, seq int64, ts time.Time, reusable, plastic int64) *telemetry.Message {
	m := &telemetry.Message{
		Topic: telemetry.Topic{Outlet: outlet, Kind: telemetry.KindCounter, Device: device, Channel: telemetry.ChannelTelemetry},
		TS:    ts.UnixMilli(), Boot: boot, Seq: seq,
	}
	m.Counter.Parcels[telemetry.Reusable] = reusable
	m.Counter.Parcels[telemetry.Plastic] = plastic
	return m
}

// TestServingMinutes checks bin coverage against metrics-v1 on cases worked
// out by hand: minutes are the boundaries from, from+1m, ... before to; a
// report serves at or after its time for at most 15 minutes (limit
// included) while below 90 %.
func TestServingMinutes(t *testing.T) {
	at := func(hms string) time.Time {
		v, err := time.Parse("15:04:05.000", hms)
		if err != nil {
			t.Fatal(err)
		}
		return time.Date(2026, 11, 28, v.Hour(), v.Minute(), v.Second(), v.Nanosecond(), time.UTC)
	}
	type rep struct {
		bin  string
		at   string
		fill float64
	}
	for _, tc := range []struct {
		name       string
		start, end string
		reports    []rep
		window     int
		bins       [2]int // serving minutes of b-0001-1 and b-0001-2
		outlet     int
	}{
		{"no reports", "10:00:20.000", "10:05:10.000", nil, 6, [2]int{0, 0}, 0},
		{"report on the first minute", "10:00:20.000", "10:05:10.000", []rep{{"1", "10:00:00.000", 10}}, 6, [2]int{6, 0}, 6},
		{"report after the first minute", "10:00:00.000", "10:05:10.000", []rep{{"1", "10:00:30.000", 10}}, 6, [2]int{5, 0}, 5},
		{"full", "10:00:00.000", "10:05:10.000", []rep{{"1", "10:00:00.000", 95}}, 6, [2]int{0, 0}, 0},
		{"exactly at the full mark", "10:00:00.000", "10:05:10.000", []rep{{"1", "10:00:00.000", 90}}, 6, [2]int{0, 0}, 0},
		{"just below the full mark", "10:00:00.000", "10:05:10.000", []rep{{"1", "10:00:00.000", 89.9}}, 6, [2]int{6, 0}, 6},
		{"staleness limit included", "10:00:00.000", "10:20:00.000", []rep{{"1", "10:00:00.000", 10}}, 20, [2]int{16, 0}, 16},
		{"one ms past the limit", "10:00:00.000", "10:20:00.000", []rep{{"1", "10:00:00.001", 10}}, 20, [2]int{15, 0}, 15},
		{"emptied after full", "10:00:00.000", "10:05:10.000", []rep{{"1", "10:00:00.000", 95}, {"1", "10:03:00.000", 0}}, 6, [2]int{3, 0}, 3},
		{"outlet is the union of its bins", "10:00:00.000", "10:05:10.000",
			[]rep{{"1", "10:00:00.000", 10}, {"1", "10:03:00.000", 95}, {"2", "10:02:00.000", 10}}, 6, [2]int{3, 4}, 6},
		{"a late report widens the window", "10:00:00.000", "10:02:00.000", []rep{{"1", "10:04:59.999", 10}}, 5, [2]int{0, 0}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustCity(t, Config{Seed: 1, Outlets: 1, Bins: 2})
			tr := NewTruth(c)
			for _, r := range tc.reports {
				tr.Published(binMsg("o-0001", "b-0001-"+r.bin, 1, at(r.at), r.fill))
			}
			rep := tr.Report(at(tc.start), at(tc.end))
			o := rep.Outlets[0]
			if rep.WindowMinutes != tc.window || o.Bins[0].ServingMinutes != tc.bins[0] || o.Bins[1].ServingMinutes != tc.bins[1] || o.ServingMinutes != tc.outlet {
				t.Fatalf("window %d, bins %d %d, outlet %d; want %d, %v, %d",
					rep.WindowMinutes, o.Bins[0].ServingMinutes, o.Bins[1].ServingMinutes, o.ServingMinutes, tc.window, tc.bins, tc.outlet)
			}
			if !rep.From.Equal(at(tc.start).Truncate(time.Minute)) {
				t.Fatalf("from %v", rep.From)
			}
		})
	}
}

func TestParcelsAcrossBootsAndDuplicates(t *testing.T) {
	c := mustCity(t, Config{Seed: 1, Outlets: 2, Bins: 1})
	tr := NewTruth(c)
	base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	min := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }
	for _, m := range []*telemetry.Message{
		counterMsg("o-0001", "c-0001", 3, 0, min(0), 1, 0),
		counterMsg("o-0001", "c-0001", 3, 1, min(1), 5, 2),
		counterMsg("o-0001", "c-0001", 3, 1, min(1), 5, 2), // duplicate
		counterMsg("o-0001", "c-0001", 4, 0, min(2), 2, 1), // rebooted
		counterMsg("o-0001", "c-0001", 4, 1, min(3), 7, 1),
		binMsg("o-0001", "b-0001-1", 1, min(1), 10),
		binMsg("o-0001", "b-0001-1", 1, min(1), 10), // duplicate
		binMsg("o-0001", "b-0001-1", 2, min(2), 10),
	} {
		tr.Published(m)
	}
	tr.Malformed("o-0001", telemetry.ReasonBadJSON)
	rep := tr.Report(base, min(4))
	o := rep.Outlets[0]
	// Boot 3 ended at 5 reusable + 2 plastic, boot 4 at 7 + 1.
	if o.Parcels["reusable"] != 12 || o.Parcels["plastic"] != 3 || o.Total != 15 || o.Green != 12 {
		t.Fatalf("parcels %v total %d green %d", o.Parcels, o.Total, o.Green)
	}
	if o.GreenRate == nil || *o.GreenRate != 12.0/15 {
		t.Fatalf("green rate %v", o.GreenRate)
	}
	if o.Bins[0].Reports != 2 || o.BinsReporting != 1 {
		t.Fatalf("bin reports %d, bins reporting %d", o.Bins[0].Reports, o.BinsReporting)
	}
	if len(o.Counters) != 1 || len(o.Counters[0].Series) != 2 || o.Counters[0].Series[0].Reports != 2 {
		t.Fatalf("counters %+v", o.Counters)
	}
	if o.Malformed[telemetry.ReasonBadJSON] != 1 || rep.Malformed[telemetry.ReasonBadJSON] != 1 {
		t.Fatalf("malformed %v %v", o.Malformed, rep.Malformed)
	}
	if other := rep.Outlets[1]; other.Total != 0 || other.GreenRate != nil || other.BinsReporting != 0 {
		t.Fatalf("outlet without data: %+v", other)
	}
}
