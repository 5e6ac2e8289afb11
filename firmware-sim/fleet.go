package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/greenpost/greenpost/internal/city"
)

// fleet is many devices connected at once, each with its own connection and
// client id, publishing as fast as allowed: load mode and history over MQTT.
// Unlike live devices they do not reconnect: a lost connection ends the run
// with an error, since the figures would no longer mean anything.
type fleet struct {
	cfg  *config
	log  *slog.Logger
	devs []*fleetDevice

	sent, acked atomic.Int64 // every publish, status messages included
	statusSent  atomic.Int64
	firstPub    atomic.Int64 // unix ns
	lastAck     atomic.Int64 // unix ns
}

type fleetDevice struct {
	ref   city.DeviceRef
	model *city.Device
	topic string
	conn  *mqttConn
	slots chan struct{} // one per unacknowledged message: the in-flight window
	quota int           // messages this device still has to send
	acked atomic.Int64  // its acknowledged publishes, status included
	gen   func(buf []byte) []byte
}

func newFleet(cfg *config, log *slog.Logger, c *city.City) *fleet {
	f := &fleet{cfg: cfg, log: log}
	for _, ref := range c.Devices() {
		f.devs = append(f.devs, &fleetDevice{ref: ref, model: c.NewDevice(ref), topic: ref.TelemetryTopic(),
			slots: make(chan struct{}, cfg.MaxInflight)})
	}
	return f
}

// connect opens every device's connection, a few at a time.
func (f *fleet) connect(ctx context.Context) error {
	cfg := f.cfg
	// One loopback address gives about 28,000 ephemeral ports; beyond
	// 16,000 devices in the city (all slices' processes together) spread
	// the connections over 127.0.0.1-8.
	spread := max(len(f.devs), cfg.cityDevices) > 16000 && isLoopback(cfg.dial.Addr)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for i, d := range f.devs {
		g.Go(func() error {
			dc := cfg.dial
			if spread {
				dc.Local = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+(cfg.firstDevice+i)%8))}
			}
			var w *will
			if cfg.Status {
				w = &will{Topic: d.ref.StatusTopic(), Payload: city.WillPayload}
			}
			conn, err := dialMQTT(gctx, dc, d.ref.ID, d.ref.ID, w, func(uint16) {
				<-d.slots
				d.acked.Add(1)
				f.acked.Add(1)
				f.lastAck.Store(time.Now().UnixNano())
			})
			if err != nil {
				return err
			}
			d.conn = conn
			if cfg.Status {
				d.slots <- struct{}{}
				_, _, err = conn.publish(nil, d.ref.StatusTopic(), city.AppendStatus(nil, time.Now().UnixMilli()), true, true, false)
				f.sent.Add(1)
				f.statusSent.Add(1)
			}
			return err
		})
	}
	return g.Wait()
}

// publish sends every device's quota of messages from workers that each own
// a slice of the devices (so a device's model has one user), paced to
// cfg.Rate in total, then waits for the last acknowledgements.
func (f *fleet) publish(ctx context.Context) error {
	cfg := f.cfg
	total := 0
	for _, d := range f.devs {
		total += d.quota
	}
	workers := cfg.Workers
	if workers == 0 {
		workers = 4 * runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(f.devs))
	// The keepalive pinger runs beside the workers until they are done.
	pctx, stopPing := context.WithCancel(ctx)
	var pinger sync.WaitGroup
	pinger.Go(func() { f.ping(pctx) })
	defer func() { stopPing(); pinger.Wait() }()

	g, gctx := errgroup.WithContext(ctx)
	for w := range workers {
		mine := f.devs[w*len(f.devs)/workers : (w+1)*len(f.devs)/workers]
		share := 0
		for _, d := range mine {
			share += d.quota
		}
		g.Go(func() error { return f.work(gctx, mine, share, total) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Everything is written; the acknowledgements trail behind.
	deadline := time.Now().Add(cfg.AckTimeout)
	for f.acked.Load() < f.sent.Load() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d messages not acknowledged after %v", f.sent.Load()-f.acked.Load(), f.sent.Load(), cfg.AckTimeout)
		}
		for _, d := range f.devs {
			if !d.conn.alive() {
				return fmt.Errorf("device %s lost its connection: %v", d.ref.ID, d.conn.err)
			}
		}
		if !sleepCtx(ctx, 5*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

func (f *fleet) work(ctx context.Context, devs []*fleetDevice, share, total int) error {
	var rate float64 // messages per second for this worker
	if f.cfg.Rate > 0 && total > 0 {
		rate = f.cfg.Rate * float64(share) / float64(total)
	}
	var pbuf, buf []byte
	start := time.Now()
	sent := 0
	for left := share; left > 0; {
		for _, d := range devs {
			if d.quota == 0 {
				continue
			}
			if rate > 0 {
				due := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
				if wait := time.Until(due); wait > time.Millisecond && !sleepCtx(ctx, wait) {
					return ctx.Err()
				}
			}
			select {
			case d.slots <- struct{}{}:
			case <-d.conn.done:
				return fmt.Errorf("device %s lost its connection: %v", d.ref.ID, d.conn.err)
			case <-ctx.Done():
				return ctx.Err()
			}
			if f.firstPub.Load() == 0 {
				f.firstPub.CompareAndSwap(0, time.Now().UnixNano())
			}
			buf = d.gen(buf[:0])
			var err error
			if pbuf, _, err = d.conn.publish(pbuf, d.topic, buf, true, false, false); err != nil {
				return fmt.Errorf("device %s: %w", d.ref.ID, err)
			}
			f.sent.Add(1)
			d.quota--
			left--
			sent++
		}
	}
	return nil
}

// ping keeps quiet devices connected while the workers run.
func (f *fleet) ping(ctx context.Context) {
	ka := f.cfg.KeepAlive
	if ka <= 0 {
		return
	}
	for sleepCtx(ctx, ka/4) {
		now := time.Now()
		for _, d := range f.devs {
			if d.conn != nil {
				d.conn.pingIfIdle(now, ka)
			}
		}
	}
}

// close disconnects every device cleanly (no Last Will).
func (f *fleet) close() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, d := range f.devs {
		if d.conn == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d.conn.disconnect()
		})
	}
	wg.Wait()
}

func (f *fleet) result() map[string]any {
	first, last := f.firstPub.Load(), f.lastAck.Load()
	secs := 0.0
	if first > 0 && last > first {
		secs = time.Duration(last - first).Seconds()
	}
	// Telemetry only: a device's status goes first on its connection and
	// PUBACKs come in order, so the first acks of each device are its status.
	status := f.statusSent.Load()
	sent, acked := f.sent.Load()-status, max(0, f.acked.Load()-status)
	out := map[string]any{"devices": len(f.devs), "sent": sent, "acked": acked, "status_sent": status, "seconds": secs, "rate": 0.0}
	if secs > 0 {
		out["rate"] = float64(acked) / secs
	}
	if first > 0 {
		out["first_publish"] = time.Unix(0, first).UTC().Format(time.RFC3339Nano)
	}
	if last > 0 {
		out["last_ack"] = time.Unix(0, last).UTC().Format(time.RFC3339Nano)
	}
	return out
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() && ip.To4() != nil
}

// runLoad publishes exactly cfg.Messages valid telemetry messages (ts = now)
// spread over every device, at cfg.Rate in total or as fast as possible.
func runLoad(ctx context.Context, cfg config, c *city.City, log *slog.Logger) (map[string]any, error) {
	f := newFleet(&cfg, log, c)
	n := len(f.devs)
	for i, d := range f.devs {
		d.quota = cfg.Messages / n
		if i < cfg.Messages%n {
			d.quota++
		}
		k := 0
		var lastTS int64
		d.gen = func(buf []byte) []byte {
			// The virtual clock moves one interval per message, so the
			// readings are those of live mode for the same seed.
			d.model.Advance(liveEpoch.Add(time.Duration(k) * cfg.Interval))
			k++
			// A point is identified by its tags and time: two messages of a
			// device in the same millisecond would overwrite each other, and
			// a load test counting stored points would never see them all.
			ts := time.Now().UnixMilli()
			if ts <= lastTS {
				ts = lastTS + 1
			}
			lastTS = ts
			return d.model.AppendTelemetry(buf, ts)
		}
	}
	rssBefore, heapBefore := rss(), heapAndStacks()
	t0 := time.Now()
	err := f.connect(ctx)
	connectSecs := time.Since(t0).Seconds()
	rssConnected, heapConnected := rss(), heapAndStacks()
	log.Info("connected", "devices", n, "seconds", connectSecs, "rss_mib", rssConnected>>20)
	if err == nil {
		err = f.publish(ctx)
	}
	f.close()
	out := f.result()
	if cfg.TruthFile != "" {
		if werr := writeFileAtomic(cfg.TruthFile, f.writeTruth); werr != nil {
			err = errors.Join(err, fmt.Errorf("truth: %w", werr))
		}
	}
	out["target_rate"] = cfg.Rate
	out["connect_seconds"] = connectSecs
	out["rss_before_connect_bytes"] = rssBefore
	out["rss_connected_bytes"] = rssConnected
	out["heap_stacks_before_connect_bytes"] = heapBefore
	out["heap_stacks_connected_bytes"] = heapConnected
	if n > 0 {
		out["rss_per_10k_devices_bytes"] = (rssConnected - rssBefore) * 10000 / int64(n)
		out["heap_stacks_per_10k_devices_bytes"] = (heapConnected - heapBefore) * 10000 / int64(n)
	}
	return out, ignoreCtx(err)
}

// loadTruth is load mode's ground truth (-truth): how many telemetry
// messages of each device the broker acknowledged, what a loss check
// counts the stored points of each device against.
type loadTruth struct {
	Mode         string           `json:"mode"`
	FirstPublish time.Time        `json:"first_publish"`
	LastAck      time.Time        `json:"last_ack"`
	Acked        map[string]int64 `json:"acked"`
}

func (f *fleet) writeTruth(w io.Writer) error {
	t := loadTruth{Mode: modeLoad, Acked: make(map[string]int64, len(f.devs)),
		FirstPublish: time.Unix(0, f.firstPub.Load()).UTC(), LastAck: time.Unix(0, f.lastAck.Load()).UTC()}
	for _, d := range f.devs {
		n := d.acked.Load()
		if f.cfg.Status && n > 0 {
			n-- // its status goes first on its connection, and acks come in order
		}
		t.Acked[d.ref.ID] = n
	}
	return json.NewEncoder(w).Encode(t)
}
