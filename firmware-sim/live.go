package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// liveEpoch is where the city's virtual clock starts in live mode: a
// Monday at 09:00 local time. Readings follow the virtual clock (which runs
// -speed times faster than the wall clock), not the wall clock, so the same
// seed gives the same data whenever the run starts; only ts (and so serving
// minutes) follow the wall clock.
var liveEpoch = time.Date(2026, 1, 5, 9, 0, 0, 0, city.Local)

// liveStats counts what the devices did; all fields are updated atomically.
type liveStats struct {
	sent, acked, malformed, duplicates, reboots, offline, reconnects, selfCheck atomic.Int64
}

// runLive runs every device (from start, the truth's from) of the city on its own schedule until ctx ends
// (SIGTERM, -duration) or every device has had its -reports slots, then
// writes the truth.
func runLive(ctx context.Context, cfg config, c *city.City, start time.Time, log *slog.Logger) (map[string]any, error) {
	truth := city.NewTruth(c)
	st := &liveStats{}
	// Each device is one goroutine, owned by the group; a device returns an
	// error only when retrying cannot help (the broker refused it).
	g, gctx := errgroup.WithContext(ctx)
	for _, ref := range c.Devices() {
		d := &liveDevice{cfg: &cfg, ref: ref, model: c.NewDevice(ref), truth: truth, st: st, log: log,
			start: start, acks: make(chan uint16, 8), topic: ref.TelemetryTopic(), status: ref.StatusTopic()}
		g.Go(func() error { return d.run(gctx) })
	}
	err := g.Wait()
	end := time.Now()
	if cfg.TruthFile != "" {
		rep := truth.Report(start, end)
		if werr := writeFileAtomic(cfg.TruthFile, rep.Write); werr != nil {
			err = errors.Join(err, fmt.Errorf("truth: %w", werr))
		} else {
			log.Info("truth written", "file", cfg.TruthFile, "from", rep.From, "to", rep.To)
		}
	}
	return map[string]any{
		"devices": len(c.Outlets) * (cfg.Bins + 1), "sent": st.sent.Load(), "acked": st.acked.Load(),
		"malformed": st.malformed.Load(), "duplicates": st.duplicates.Load(), "reboots": st.reboots.Load(),
		"offline_spells": st.offline.Load(), "reconnects": st.reconnects.Load(),
		"self_check_failures": st.selfCheck.Load(), "seconds": end.Sub(start).Seconds(),
	}, err
}

// liveDevice is one simulated device with its own MQTT connection.
type liveDevice struct {
	cfg           *config
	ref           city.DeviceRef
	model         *city.Device
	truth         *city.Truth
	st            *liveStats
	log           *slog.Logger
	start         time.Time
	topic, status string
	skew          time.Duration

	conn   *mqttConn
	acks   chan uint16 // PUBACK ids from the connection's reader
	pbuf   []byte      // packet buffer
	buf    []byte      // report payload buffer
	sbuf   []byte      // status payload buffer: a reconnect must not overwrite a report being resent
	lastTS int64
}

func (d *liveDevice) run(ctx context.Context) error {
	defer d.hangUp()
	cfg := d.cfg
	sr, fr := d.model.ScheduleRand(), d.model.FaultRand()
	phase := time.Duration(sr.Float64() * float64(cfg.Interval))
	if cfg.Fault.SkewShare > 0 && fr.Float64() < cfg.Fault.SkewShare {
		d.skew = time.Duration((2*fr.Float64() - 1) * float64(cfg.Fault.SkewMax)).Truncate(time.Millisecond)
	}
	if err := d.connect(ctx); err != nil {
		return ignoreCtx(err)
	}
	var offlineUntil time.Duration
	for k := 0; cfg.Reports == 0 || k < cfg.Reports; k++ {
		// Report k is due at phase + k intervals, give or take the jitter.
		off := phase + time.Duration(k)*cfg.Interval + time.Duration((2*sr.Float64()-1)*cfg.Jitter*float64(cfg.Interval))
		if !d.waitUntil(ctx, d.start.Add(off)) {
			return nil
		}
		// Fault draws come in a fixed order, so a seed gives the same faults.
		if cfg.Fault.OfflineRate > 0 && fr.Float64() < cfg.Fault.OfflineRate {
			spell := time.Duration((0.5 + fr.Float64()) * float64(cfg.Fault.OfflineFor))
			offlineUntil = off + spell
			d.st.offline.Add(1)
			d.log.Debug("offline spell", "device", d.ref.ID, "for", spell)
			d.drop()
		}
		if off < offlineUntil {
			continue // the device counts on, but cannot report
		}
		if cfg.Fault.RebootRate > 0 && fr.Float64() < cfg.Fault.RebootRate {
			// Power loss: the connection goes without DISCONNECT and the
			// device comes back with a new boot and counters from 0.
			d.drop()
			d.model.Reboot()
			d.st.reboots.Add(1)
		}
		if d.conn == nil {
			if err := d.connect(ctx); err != nil {
				return ignoreCtx(err)
			}
		}
		d.model.Advance(liveEpoch.Add(time.Duration(float64(off) * cfg.Speed)))
		ts := d.stamp()
		if cfg.Fault.MalformedRate > 0 && fr.Float64() < cfg.Fault.MalformedRate {
			var reason telemetry.Reason
			d.buf, reason = d.model.AppendMalformed(d.buf[:0], ts, fr)
			if err := d.publish(ctx, d.topic, d.buf, false); err != nil {
				return ignoreCtx(err)
			}
			d.st.malformed.Add(1)
			d.truth.Malformed(d.ref.Outlet.ID, reason)
			continue
		}
		d.buf = d.model.AppendTelemetry(d.buf[:0], ts)
		// Prove every message valid before it leaves: the truth is built
		// from exactly what telemetry.Decode reads in the bytes we send.
		m, err := telemetry.Decode(d.topic, d.buf, time.Now())
		if err != nil {
			d.st.selfCheck.Add(1)
			d.log.Error("simulator built an invalid message", "device", d.ref.ID, "payload", string(d.buf), "err", err)
			continue
		}
		if err := d.publish(ctx, d.topic, d.buf, false); err != nil {
			return ignoreCtx(err)
		}
		d.truth.Published(&m)
		if cfg.Fault.DuplicateRate > 0 && fr.Float64() < cfg.Fault.DuplicateRate {
			if err := d.publish(ctx, d.topic, d.buf, false); err != nil {
				return ignoreCtx(err)
			}
			d.st.duplicates.Add(1)
		}
	}
	return nil
}

// stamp is the device's clock (skewed when that fault is on), in ms, and
// strictly increasing: a device that wakes late must not send two reports
// with one ts, since a stored point is identified by its tags and time.
func (d *liveDevice) stamp() int64 {
	ts := time.Now().Add(d.skew).UnixMilli()
	if ts <= d.lastTS {
		ts = d.lastTS + 1
	}
	d.lastTS = ts
	return ts
}

// waitUntil sleeps until t, keeping the connection alive; false when ctx ended.
func (d *liveDevice) waitUntil(ctx context.Context, t time.Time) bool {
	for {
		wait := time.Until(t)
		if wait <= 0 {
			return ctx.Err() == nil
		}
		if ka := d.cfg.KeepAlive / 2; ka > 0 && wait > ka {
			wait = ka
		}
		if !sleepCtx(ctx, wait) {
			return false
		}
		if d.conn != nil {
			d.conn.pingIfIdle(time.Now(), d.cfg.KeepAlive) // a failure shows on the next publish
		}
	}
}

// connect dials until it succeeds, then announces the device online
// (retained). Only a refusal by the broker or the end of ctx stop it.
func (d *liveDevice) connect(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		conn, err := dialMQTT(ctx, d.cfg.dial, d.ref.ID, d.ref.ID, &will{Topic: d.status, Payload: city.WillPayload}, d.onAck)
		if err == nil {
			d.conn = conn
			d.sbuf = city.AppendStatus(d.sbuf[:0], d.stamp())
			if err = d.send(ctx, d.status, d.sbuf, true, false); err == nil {
				return nil
			}
			d.drop()
		}
		if errors.Is(err, errRefused) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.log.Debug("connect failed", "device", d.ref.ID, "err", err)
		if !sleepCtx(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// publish sends one message at QoS 1 and waits for its PUBACK, reconnecting
// and sending it again (DUP) when the connection fails: a device keeps a
// report until the broker has it.
func (d *liveDevice) publish(ctx context.Context, topic string, payload []byte, retain bool) error {
	for attempt := 0; ; attempt++ {
		if d.conn == nil {
			if err := d.connect(ctx); err != nil {
				return err
			}
		}
		d.st.sent.Add(1)
		err := d.send(ctx, topic, payload, retain, attempt > 0)
		if err == nil {
			d.st.acked.Add(1)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.log.Debug("publish failed, reconnecting", "device", d.ref.ID, "err", err)
		d.st.reconnects.Add(1)
		d.drop()
	}
}

// send publishes once on the current connection and waits for the PUBACK.
func (d *liveDevice) send(ctx context.Context, topic string, payload []byte, retain, dup bool) error {
	var id uint16
	var err error
	d.pbuf, id, err = d.conn.publish(d.pbuf, topic, payload, true, retain, dup)
	if err != nil {
		return err
	}
	t := time.NewTimer(d.cfg.Timeout)
	defer t.Stop()
	for {
		select {
		case got := <-d.acks:
			if got == id {
				return nil
			}
			// a late ack of an earlier attempt
		case <-d.conn.done:
			return fmt.Errorf("connection lost: %v", d.conn.err)
		case <-t.C:
			return fmt.Errorf("no PUBACK within %v", d.cfg.Timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// onAck runs on the reader goroutine: hand the id over without blocking.
func (d *liveDevice) onAck(id uint16) {
	select {
	case d.acks <- id:
	default:
	}
}

// drop cuts the connection without DISCONNECT, so the Last Will fires.
func (d *liveDevice) drop() {
	if d.conn != nil {
		d.conn.cut()
		d.conn = nil
	}
}

// hangUp ends a device's run cleanly: it says it goes offline (retained)
// and disconnects, on a fresh bounded context since ctx may be over.
func (d *liveDevice) hangUp() {
	if d.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Timeout)
	defer cancel()
	d.sbuf = append(d.sbuf[:0], `{"state":"offline","ts":`...)
	d.sbuf = fmt.Appendf(d.sbuf, "%d}", d.stamp())
	if err := d.send(ctx, d.status, d.sbuf, true, false); err != nil {
		d.log.Debug("offline status not acknowledged", "device", d.ref.ID, "err", err)
	}
	d.conn.disconnect()
	d.conn = nil
}

func ignoreCtx(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}
