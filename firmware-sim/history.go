package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// History writes -days of past reports for every device, -step apart, in
// real local time (the arrival curve and collection rounds follow the
// timestamps). The same seed and -end give the same points.

const (
	historyBatch   = 5000 // lines per InfluxDB write: InfluxDB's recommended batch size
	historyWriters = 3    // concurrent writes; more only queue inside influxd on 2 cores
)

// historyDevice walks one device through its report times.
type historyDevice struct {
	ref   city.DeviceRef
	model *city.Device
	topic string
	start time.Time
	step  time.Duration
	phase time.Duration
	n, k  int
	jit   time.Duration
}

// newHistoryDevice places the device's reports in [start, end): a phase
// within the step, then one report a step with up to 2 % jitter, kept
// inside the step so times stay in order and inside the window.
func newHistoryDevice(c *city.City, ref city.DeviceRef, start, end time.Time, step time.Duration) *historyDevice {
	h := &historyDevice{ref: ref, model: c.NewDevice(ref), topic: ref.TelemetryTopic(), start: start, step: step}
	h.jit = step / 50
	h.phase = h.jit + time.Duration(h.model.ScheduleRand().Float64()*float64(step-2*h.jit))
	if span := end.Sub(start); span > h.phase {
		h.n = int((span-h.phase-1)/step) + 1
	}
	return h
}

// next returns the time of the next report, or false at the end.
func (h *historyDevice) next() (time.Time, bool) {
	if h.k >= h.n {
		return time.Time{}, false
	}
	j := time.Duration((2*h.model.ScheduleRand().Float64() - 1) * float64(h.jit))
	t := h.start.Add(h.phase + time.Duration(h.k)*h.step + j).Truncate(time.Millisecond)
	h.k++
	return t, true
}

// report builds the device's report at t: usually valid (returned decoded
// as well), sometimes malformed when that fault is on.
func (h *historyDevice) report(buf []byte, t time.Time, cfg *config, now time.Time) ([]byte, *telemetry.Message, telemetry.Reason, error) {
	fr := h.model.FaultRand()
	if cfg.Fault.RebootRate > 0 && fr.Float64() < cfg.Fault.RebootRate {
		h.model.Reboot()
	}
	h.model.Advance(t)
	if cfg.Fault.MalformedRate > 0 && fr.Float64() < cfg.Fault.MalformedRate {
		buf, reason := h.model.AppendMalformed(buf, t.UnixMilli(), fr)
		return buf, nil, reason, nil
	}
	buf = h.model.AppendTelemetry(buf, t.UnixMilli())
	m, err := telemetry.Decode(h.topic, buf, now)
	if err != nil {
		return buf, nil, "", fmt.Errorf("simulator built an invalid message for %s: %s: %w", h.ref.ID, buf, err)
	}
	return buf, &m, "", nil
}

// historyStart is where the history begins: -days before -end, clipped so
// that a point older than 30 days, which fails telemetry-v1 (ts_past), is
// never made: the oldest ones stay a minute inside the limit, so every
// point is valid when written (and over MQTT, when the collector gets it).
func historyStart(cfg config, log *slog.Logger) time.Time {
	start := cfg.End.Add(-time.Duration(cfg.Days) * 24 * time.Hour)
	if oldest := time.Now().Add(-telemetry.MaxPast + time.Minute).Truncate(time.Minute); start.Before(oldest) {
		log.Info("history clipped to telemetry-v1's 30 days", "from", oldest, "asked", start)
		start = oldest
	}
	return start
}

// runHistory makes the data of [start, cfg.End) (start from historyStart).
func runHistory(ctx context.Context, cfg config, c *city.City, start time.Time, log *slog.Logger) (map[string]any, error) {
	end := cfg.End
	var truth *city.Truth
	if cfg.TruthFile != "" {
		truth = city.NewTruth(c)
	}
	var devs []*historyDevice
	points := 0
	for _, ref := range c.Devices() {
		h := newHistoryDevice(c, ref, start, end, cfg.Step)
		devs = append(devs, h)
		points += h.n
	}
	log.Info("history", "from", start, "to", end, "step", cfg.Step, "devices", len(devs), "reports", points, "influx", cfg.Influx)
	t0 := time.Now()
	var out map[string]any
	var err error
	if cfg.Influx {
		out, err = historyInflux(ctx, &cfg, devs, points+len(devs), truth, log)
	} else {
		out, err = historyMQTT(ctx, &cfg, c, devs, truth, log)
	}
	secs := time.Since(t0).Seconds()
	out["from"], out["to"], out["seconds_total"] = start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), secs
	if truth != nil && err == nil {
		rep := truth.Report(start, end)
		if werr := writeFileAtomic(cfg.TruthFile, rep.Write); werr != nil {
			err = fmt.Errorf("truth: %w", werr)
		}
	}
	return out, err
}

// historyProgressEvery is how often a history run into InfluxDB logs its
// progress.
const historyProgressEvery = 2 * time.Second

// historyInflux writes the points straight to InfluxDB in the storage-v1
// schema: each payload is decoded by telemetry.Decode and turned into its
// point by telemetry.AppendPoint, exactly as the collector would store it.
func historyInflux(ctx context.Context, cfg *config, devs []*historyDevice, total int, truth *city.Truth, log *slog.Logger) (map[string]any, error) {
	st, err := store.Open(store.Config{URL: cfg.InfluxURL, Token: cfg.InfluxToken, Org: cfg.InfluxOrg, Bucket: cfg.InfluxBucket, Timeout: 30 * time.Second})
	if err != nil {
		return map[string]any{}, err
	}
	defer st.Close()
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	err = st.Ping(pctx)
	cancel()
	if err != nil {
		return map[string]any{}, fmt.Errorf("influxdb at %s: %w", cfg.InfluxURL, err)
	}
	now := time.Now()
	var written, lines, retries atomic.Int64
	batches := make(chan []byte, 2*historyWriters)
	gens := max(1, runtime.GOMAXPROCS(0))
	g, gctx := errgroup.WithContext(ctx)
	var generating sync.WaitGroup
	for w := range gens {
		generating.Add(1)
		g.Go(func() error {
			defer generating.Done()
			var buf, payload []byte
			n := 0
			flush := func() error {
				select {
				case batches <- buf:
				case <-gctx.Done():
					return gctx.Err()
				}
				buf, n = make([]byte, 0, cap(buf)), 0
				return nil
			}
			for i := w; i < len(devs); i += gens {
				h := devs[i]
				first := true
				for t, ok := h.next(); ok; t, ok = h.next() {
					var m *telemetry.Message
					var err error
					payload, m, _, err = h.report(payload[:0], t, cfg, now)
					if err != nil {
						return err
					}
					if first {
						// The device came online with its first report.
						sm, err := telemetry.Decode(h.ref.StatusTopic(), city.AppendStatus(payload[:0], t.UnixMilli()), now)
						if err != nil {
							return err
						}
						buf = telemetry.AppendPoint(buf, &sm)
						n++
						first = false
					}
					buf = telemetry.AppendPoint(buf, m)
					if truth != nil {
						truth.Published(m)
					}
					if n++; n >= historyBatch {
						if err := flush(); err != nil {
							return err
						}
					}
				}
			}
			if n > 0 {
				return flush()
			}
			return nil
		})
	}
	g.Go(func() error { generating.Wait(); close(batches); return nil })
	// Progress for whoever waits (make run prints it): points written so
	// far of the total (reports and each device's first status).
	writing := make(chan struct{})
	var progress sync.WaitGroup
	progress.Go(func() {
		tick := time.NewTicker(historyProgressEvery)
		defer tick.Stop()
		start := time.Now()
		report := func() {
			n := lines.Load()
			secs := time.Since(start).Seconds()
			rate := float64(n) / max(secs, 1e-3)
			eta := "unknown"
			if n > 0 {
				eta = (time.Duration(float64(int64(total)-n) / rate * float64(time.Second))).Round(time.Second).String()
			}
			log.Info("history progress", "points", n, "of", total, "percent", 100*n/int64(max(total, 1)),
				"points_per_second", int64(rate), "eta", eta)
		}
		for {
			select {
			case <-writing:
				report() // the last word, also for a run shorter than a tick
				return
			case <-tick.C:
				report()
			}
		}
	})
	defer func() { close(writing); progress.Wait() }()
	for range historyWriters {
		g.Go(func() error {
			for b := range batches {
				if err := writeRetry(gctx, st, b, &retries, log); err != nil {
					return err
				}
				written.Add(int64(len(b)))
				lines.Add(int64(countLines(b)))
			}
			return nil
		})
	}
	err = g.Wait()
	return map[string]any{"devices": len(devs), "points": lines.Load(), "bytes": written.Load(), "retries": retries.Load()}, ignoreCtx(err)
}

// writeRetry writes one batch, retrying what InfluxDB says may succeed later.
func writeRetry(ctx context.Context, st *store.Store, b []byte, retries *atomic.Int64, log *slog.Logger) error {
	r := store.Retry{Initial: 200 * time.Millisecond, Max: 10 * time.Second, Attempts: 10,
		OnRetry: func(err error, wait time.Duration) {
			retries.Add(1)
			log.Warn("influxdb write failed, retrying", "err", err, "in", wait)
		}}
	if err := r.Do(ctx, func(ctx context.Context) error { return st.Write(ctx, b) }); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("write %d lines: %w", countLines(b), err)
	}
	return nil
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

// historyMQTT publishes the history over MQTT, every device on its own
// connection, at QoS 1: the collector stores it like live data.
func historyMQTT(ctx context.Context, cfg *config, c *city.City, devs []*historyDevice, truth *city.Truth, log *slog.Logger) (map[string]any, error) {
	f := newFleet(cfg, log, c)
	now := time.Now()
	var firstErr error
	var mu sync.Mutex
	var malformed atomic.Int64
	for i, d := range f.devs {
		h := devs[i]
		d.quota = h.n
		d.gen = func(buf []byte) []byte {
			t, _ := h.next()
			buf, m, reason, err := h.report(buf, t, cfg, now)
			switch {
			case err != nil:
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				mu.Unlock()
			case reason != "":
				malformed.Add(1)
				if truth != nil {
					truth.Malformed(h.ref.Outlet.ID, reason)
				}
			case truth != nil:
				truth.Published(m)
			}
			return buf
		}
	}
	err := f.connect(ctx)
	if err == nil {
		err = f.publish(ctx)
	}
	f.close()
	out := f.result()
	out["malformed"] = malformed.Load()
	return out, errors.Join(ignoreCtx(err), firstErr)
}
