package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// genConfig says what city to generate. The same config gives the same
// points, so a filled data directory is reused when its config matches.
type genConfig struct {
	Outlets  int           `json:"outlets"`
	Bins     int           `json:"bins"`
	Days     int           `json:"days"`
	Interval time.Duration `json:"interval"`
	Seed     uint64        `json:"seed"`
	End      time.Time     `json:"end"` // data in [End - Days, End)
	Version  int           `json:"version"`
}

// genVersion changes whenever the generator's output changes.
const genVersion = 1

func (c genConfig) start() time.Time { return c.End.Add(-time.Duration(c.Days) * 24 * time.Hour) }

func outletID(i int) string   { return fmt.Sprintf("o-%04d", i+1) }
func districtOf(i int) string { return fmt.Sprintf("d-%02d", i%12+1) }
func counterID(i int) string  { return fmt.Sprintf("c-%04d", i+1) }
func binID(i, b int) string   { return fmt.Sprintf("b-%04d-%d", i+1, b+1) }

// device is one simulated device's state between reports.
type device struct {
	rng          *rand.Rand
	msg          telemetry.Message
	phase        time.Duration // offset of its reports within the interval
	offlineUntil time.Time
	weights      [telemetry.NumClasses]float64
	fullFor      int // reports the bin has stayed full
	offline      bool
	status       telemetry.Message
}

// newDevice seeds each device from (seed, outlet, slot), so that the data
// does not depend on how the work is split between goroutines.
func newDevice(c genConfig, outlet, slot int, kind telemetry.Kind, id string) *device {
	d := &device{rng: rand.New(rand.NewPCG(c.Seed, uint64(outlet)<<8|uint64(slot)))}
	d.msg.Topic = telemetry.Topic{Outlet: outletID(outlet), Kind: kind, Device: id, Channel: telemetry.ChannelTelemetry}
	d.phase = time.Duration(d.rng.Int64N(int64(c.Interval)))
	d.msg.Boot = d.rng.Int64N(3)
	if kind == telemetry.KindCounter {
		// Outlets differ in how green they are: most near the 90 % target.
		green := 0.75 + 0.23*d.rng.Float64()
		for i, share := range []float64{0.05, 0.6, 0.08, 0.27} {
			d.weights[i] = green * share
		}
		for i, share := range []float64{0.7, 0.1, 0.2} {
			d.weights[4+i] = (1 - green) * share
		}
		for i := range d.msg.Counter.Parcels {
			d.msg.Counter.Parcels[i] = d.rng.Int64N(50000)
		}
		d.msg.Counter.HasBoxes = true
	} else {
		d.msg.Bin.FillPct = 100 * d.rng.Float64()
		d.msg.Bin.Has = telemetry.HasBattery
		d.msg.Bin.BatteryPct = 100
	}
	return d
}

// next returns the device's report for the slot starting at t, or false
// when the device is silent then, and a status message when its state
// changes. Rare events on purpose: outages of minutes to a day (stale
// data), reboots (a new boot series from 0), and a counter that goes down
// within one boot (a reset judged per class).
func (d *device) next(slot time.Time, interval time.Duration) (*telemetry.Message, *telemetry.Message) {
	r := d.rng
	t := slot.Add(d.phase)
	if t.Before(d.offlineUntil) {
		return nil, nil
	}
	d.status.Topic = d.msg.Topic
	d.status.Topic.Channel = telemetry.ChannelStatus
	d.status.TS = t.UnixMilli()
	if r.IntN(3000) == 0 {
		d.offlineUntil = t.Add(10*time.Minute + time.Duration(r.Int64N(int64(20*time.Hour))))
		d.offline = true
		d.status.Status = telemetry.StatusReport{State: telemetry.StateOffline}
		return nil, &d.status
	}
	var status *telemetry.Message
	if d.offline || d.msg.Seq == 0 {
		d.offline = false
		d.status.Status = telemetry.StatusReport{State: telemetry.StateOnline, FW: "1.4.2"}
		status = &d.status
	}
	m := &d.msg
	// Reports are not on whole minutes: jitter of up to 30 s, in ms.
	m.TS = t.Add(time.Duration(r.Int64N(30000)) * time.Millisecond).UnixMilli()
	m.Seq++
	if r.IntN(5000) == 0 {
		m.Boot++
		status = &d.status
		d.status.Status = telemetry.StatusReport{State: telemetry.StateOnline, FW: "1.4.2"}
		m.Seq = 0
		m.Counter.Parcels = [telemetry.NumClasses]int64{}
		m.Counter.BoxesRecovered = 0
	}
	if m.Topic.Kind == telemetry.KindCounter {
		hour := float64(time.UnixMilli(m.TS).UTC().Hour())
		// About 5,000 parcels a day, most in the daytime.
		mean := 17 * (1 + 0.8*math.Sin((hour-9)/24*2*math.Pi)) * interval.Minutes() / 5
		n := int(mean*2*r.Float64() + 0.5)
		for ; n > 0; n-- {
			x, c := r.Float64(), 0
			for c < telemetry.NumClasses-1 && x > d.weights[c] {
				x -= d.weights[c]
				c++
			}
			m.Counter.Parcels[c]++
		}
		m.Counter.BoxesRecovered += int64(r.IntN(3))
		if r.IntN(20000) == 0 {
			c := r.IntN(telemetry.NumClasses)
			m.Counter.Parcels[c] /= 2
		}
		return m, status
	}
	b := &m.Bin
	b.Has &^= telemetry.HasEmptied
	if b.FillPct >= 90 {
		d.fullFor++
		// Full bins wait for a crew: some for a report, some for hours.
		if r.IntN(4) == 0 || d.fullFor > 40 {
			b.FillPct = 5 * r.Float64()
			b.Has |= telemetry.HasEmptied
			b.Emptied = true
			d.fullFor = 0
		}
	} else {
		b.FillPct = math.Min(100, b.FillPct+2.5*r.Float64())
	}
	b.FillPct = math.Round(b.FillPct*10) / 10
	b.Deposits += int64(r.IntN(20))
	b.BatteryPct = math.Max(5, b.BatteryPct-0.001)
	return m, status
}

// fill writes the whole city into InfluxDB: outlets split between
// generators, each walking its outlets day by day, and writers posting
// batches of 5,000 lines. Returns the number of points written.
func fill(ctx context.Context, st *store.Store, c genConfig, writers int, progress func(points int64)) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []byte, 2*writers)
	var (
		points   atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if err := writeRetry(ctx, st, b); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	const gens = 2
	var gwg sync.WaitGroup
	for g := 0; g < gens; g++ {
		gwg.Add(1)
		go func() {
			defer gwg.Done()
			var devs []*device
			for o := g; o < c.Outlets; o += gens {
				devs = append(devs, newDevice(c, o, 0, telemetry.KindCounter, counterID(o)))
				for b := 0; b < c.Bins; b++ {
					devs = append(devs, newDevice(c, o, b+1, telemetry.KindBin, binID(o, b)))
				}
			}
			buf := make([]byte, 0, 1<<20)
			lines := 0
			flush := func() bool {
				if lines == 0 {
					return true
				}
				select {
				case batches <- buf:
				case <-ctx.Done():
					return false
				}
				points.Add(int64(lines))
				if progress != nil {
					progress(points.Load())
				}
				buf, lines = make([]byte, 0, 1<<20), 0
				return true
			}
			// Time-major within each day keeps every batch inside one shard.
			for day := c.start(); day.Before(c.End); day = day.Add(24 * time.Hour) {
				for _, d := range devs {
					for slot := day; slot.Before(day.Add(24*time.Hour)) && slot.Before(c.End); slot = slot.Add(c.Interval) {
						m, status := d.next(slot, c.Interval)
						if status != nil && time.UnixMilli(status.TS).Before(c.End) {
							buf = telemetry.AppendPoint(buf, status)
							lines++
						}
						if m == nil || !time.UnixMilli(m.TS).Before(c.End) {
							continue
						}
						buf = telemetry.AppendPoint(buf, m)
						lines++
						if lines >= 5000 && !flush() {
							return
						}
					}
				}
			}
			flush()
		}()
	}
	gwg.Wait()
	close(batches)
	wg.Wait()
	if firstErr != nil {
		return points.Load(), firstErr
	}
	return points.Load(), ctx.Err()
}

// writeRetry writes one batch, waiting out the server's backpressure (its
// write cache fills during a bulk load).
func writeRetry(ctx context.Context, st *store.Store, b []byte) error {
	return store.Retry{Initial: 200 * time.Millisecond, Max: 10 * time.Second}.Do(ctx, func(ctx context.Context) error { return st.Write(ctx, b) })
}
