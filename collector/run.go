package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/greenpost/greenpost/internal/settings"
	"github.com/greenpost/greenpost/internal/spool"
	"github.com/greenpost/greenpost/internal/store"
)

// queueLen bounds the messages between the MQTT callback and the ingester.
// The broker's in-flight window (unacknowledged messages) normally keeps it
// far from full; when it is full the callback waits.
const queueLen = 16384

// maxGroup is the most messages made durable by one fsync.
const maxGroup = 4096

// run is the whole collector; main only calls it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := settings.NewLogger(stderr, cfg.LogLevel, "collector")

	// The metrics come first: the spool reports damage from its first read on.
	var sp *spool.Spool
	pending := new(atomic.Int64)
	m := newPromMetrics(func() (float64, float64) { return float64(pending.Load()), float64(sp.Stats().Bytes) })
	sp, err = spool.Open(cfg.SpoolDir, spool.Options{MaxBytes: cfg.SpoolMaxBytes, OnDamage: spoolDamage(m, log)})
	if err != nil {
		return err
	}
	defer sp.Close()
	logRecovery(log, sp.Recovery())
	n, err := pendingPoints(sp)
	if err != nil {
		return err
	}
	pending.Store(n)
	if n > 0 {
		log.Info("spool holds points from an earlier run: replaying them", "points", n, "bytes", sp.Stats().Bytes)
	}

	st, err := store.Open(store.Config{URL: cfg.InfluxURL, Token: cfg.InfluxToken, Org: cfg.InfluxOrg, Bucket: cfg.Bucket})
	if err != nil {
		return &settings.Error{Problems: []string{"GP_INFLUX_URL/GP_INFLUX_BUCKET: " + err.Error()}}
	}
	defer st.Close()

	queue := make(chan message, queueLen)
	stopConsuming := make(chan struct{})
	var (
		src *mqttSource
		brk *embeddedBroker
	)
	if cfg.EmbeddedBroker != "" {
		lim := brokerLimits{maxPacket: brokerMaxPacket, connectTimeout: brokerConnectTimeout, connsPerAddr: cfg.BrokerConnsPerAddr}
		if brk, err = startEmbeddedBroker(cfg, lim, queue, stopConsuming, log, m); err != nil {
			return err
		}
	} else if src, err = newMQTTSource(cfg, queue, log, m); err != nil {
		return err
	}
	ready := func() string {
		switch {
		case src != nil && !src.Connected():
			return "not connected to the MQTT broker"
		case sp.Stats().Bytes >= cfg.SpoolMaxBytes && m.influxUpValue() == 0:
			return "InfluxDB unreachable and the spool is full"
		}
		return ""
	}
	ops, err := newOpsServer(cfg.Addr, m, ready)
	if err != nil {
		return &settings.Error{Problems: []string{err.Error()}}
	}
	go ops.Serve()

	ing := &ingester{in: queue, spool: sp, m: m, log: log, limiter: newTokenBucket(cfg.DeadLetterPS), retainedLog: newTokenBucket(1), pending: pending, maxGroup: maxGroup}
	wr := &writer{spool: sp, sink: st, m: m, log: log, pending: pending, batchSize: cfg.BatchSize, flushInterval: cfg.FlushInterval}

	// hard bounds the whole shutdown; it is cancelled when the budget is spent.
	hard, cancelHard := context.WithCancel(context.Background())
	defer cancelHard()
	drain := make(chan struct{})
	ingDone, wrDone := make(chan error, 1), make(chan error, 1)
	go func() { ingDone <- ing.Run(hard, stopConsuming) }()
	go func() { wrDone <- wr.Run(hard, drain) }()
	if src != nil {
		src.Start()
	}
	log.Info("started", "addr", ops.Addr(), "mqtt", cfg.MQTTURL, "embedded_broker", cfg.EmbeddedBroker,
		"influx", cfg.InfluxURL, "bucket", cfg.Bucket, "spool", cfg.SpoolDir)

	var runErr error
	ingRunning, wrRunning := true, true
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-ingDone:
		ingRunning = false
	case runErr = <-wrDone:
		wrRunning = false
	}
	if runErr != nil {
		log.Error("stopping after a failure", "err", runErr)
	}

	// Shutdown order:
	// 1. Stop consuming: no new message enters the pipeline; whatever the
	//    broker sends from now on stays unacknowledged and is delivered again.
	// 2. The ingester makes what it already received durable and acknowledges it.
	// 3. Disconnect (acknowledgements leave first) or close the embedded broker.
	// 4. The writer drains the spool to InfluxDB within the budget; what is
	//    left stays in the spool for the next start.
	// 5. Close the ops server; the spool and the store close on return.
	budget := time.AfterFunc(cfg.ShutdownWait, cancelHard)
	defer budget.Stop()
	close(stopConsuming)
	if src != nil {
		src.StopConsuming()
	}
	if ingRunning {
		if err := <-ingDone; err != nil && !errors.Is(err, context.Canceled) {
			runErr = errors.Join(runErr, err)
		}
	}
	if src != nil {
		src.Close()
	}
	if brk != nil {
		brk.Close()
	}
	close(drain)
	if wrRunning {
		if err := <-wrDone; err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ops.Shutdown(sctx)
	log.Info("stopped", "spool_points", pending.Load(), "spool_bytes", sp.Stats().Bytes)
	return runErr
}

// spoolDamage counts and logs damaged spool records, which the spool has
// stepped over and copied to a quarantine file.
func spoolDamage(m *promMetrics, log *slog.Logger) func(spool.Damage) {
	return func(d spool.Damage) {
		m.spoolDamaged.Add(float64(d.Records))
		if d.Err != nil {
			log.Error("spool damaged: records lost, and copying their bytes aside failed", "segment", d.Segment,
				"offset", d.Offset, "bytes", d.Bytes, "records", d.Records, "err", d.Err)
			return
		}
		m.quarantinedBytes.Add(float64(d.Bytes))
		log.Error("spool damaged: records lost, their bytes kept in quarantine", "segment", d.Segment,
			"offset", d.Offset, "bytes", d.Bytes, "records", d.Records, "quarantine", d.Quarantine)
	}
}

// logRecovery tells what opening the spool found.
func logRecovery(log *slog.Logger, rc spool.Recovery) {
	if rc.TornBytes > 0 {
		log.Warn("spool: cut a write a crash interrupted (never acknowledged)", "segment", rc.TornSegment,
			"offset", rc.TornOffset, "bytes", rc.TornBytes)
	}
	if rc.CommittedUnreadable {
		log.Warn("spool: the committed position was unreadable: replaying everything the spool holds (duplicates are harmless)")
	}
	if rc.LegacySegments > 0 {
		log.Info("spool: reading segments written by the previous release", "segments", rc.LegacySegments)
	}
}

// pendingPoints counts the points waiting in the spool (after a crash or an outage).
func pendingPoints(sp *spool.Spool) (int64, error) {
	r := sp.NewReader()
	defer r.Close()
	var n int64
	for {
		data, ok, err := r.Next()
		var ce *spool.CorruptError
		if errors.As(err, &ce) {
			continue
		}
		if err != nil || !ok {
			return n, err
		}
		if points, _, err := parseRecord(data); err == nil {
			n += int64(points)
		}
	}
}
