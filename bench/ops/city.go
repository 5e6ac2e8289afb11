package main

import (
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/fill"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// fromCity generates the bins' history in this process with internal/city,
// on firmware-sim's history schedule (a phase within the step, then one
// report a step with up to 2 % jitter), each reading decoded by
// telemetry.Decode as the collector would.
func fromCity(p params) ([]*bin, error) {
	c, err := city.New(city.Config{Seed: p.Seed, Outlets: p.Outlets, Bins: 2})
	if err != nil {
		return nil, err
	}
	end := time.Now().UTC().Truncate(p.Step)
	start := end.Add(-time.Duration(p.Days) * 24 * time.Hour)
	var refs []city.DeviceRef
	for _, r := range c.Devices() {
		if r.Kind == telemetry.KindBin {
			refs = append(refs, r)
		}
	}
	bins := make([]*bin, len(refs))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range next {
				ref := refs[i]
				d := c.NewDevice(ref)
				b := &bin{outlet: ref.Outlet.ID, device: ref.ID, sim: ref.Outlet}
				jit := p.Step / 50
				phase := jit + time.Duration(d.ScheduleRand().Float64()*float64(p.Step-2*jit))
				topic := ref.TelemetryTopic()
				for t := start.Add(phase); t.Before(end); t = t.Add(p.Step) {
					at := t.Add(time.Duration((2*d.ScheduleRand().Float64() - 1) * float64(jit))).Truncate(time.Millisecond)
					d.Advance(at)
					buf = d.AppendTelemetry(buf[:0], at.UnixMilli())
					m, err := telemetry.Decode(topic, buf, end)
					if err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						break
					}
					b.rs = append(b.rs, fill.Report{T: m.TS, Pct: float64(float32(m.Bin.FillPct))})
					b.level = append(b.level, d.FillPct())
					b.emptied = append(b.emptied, m.Bin.Emptied)
				}
				bins[i] = b
			}
		}()
	}
	for i := range refs {
		next <- i
	}
	close(next)
	wg.Wait()
	return bins, firstErr
}

// oracle predicts with what only the simulator knows: the bin's true level
// at its last report and its true expected fill rate (the outlet's expected
// parcels, its day factor included, times deposits per parcel, spread over
// its bins). What it misses is the luck of the arrivals, which no model can
// know: it bounds what any model could reach on this data.
func (b *bin) oracle(at int64, full float64, ahead int64) int64 {
	o := b.sim
	i := sort.Search(len(b.rs), func(i int) bool { return b.rs[i].T > at })
	if i == 0 {
		return 0
	}
	t := time.UnixMilli(b.rs[i-1].T)
	level := b.level[i-1]
	perParcel := o.DepositsPerParcel / float64(len(o.BinIDs)) / o.BinCapacity * 100
	limit := time.UnixMilli(at + ahead)
	for t.Before(limit) {
		next := t.Add(time.Minute)
		level += o.Expected(t, next) * perParcel
		t = next
		if level >= full && t.UnixMilli() > at {
			return t.UnixMilli()
		}
	}
	return 0
}
