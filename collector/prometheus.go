package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// The one reason for dropping beyond telemetry's: a point InfluxDB refused
// even alone. (A dead letter over the rate limit is counted by
// deadLetterSkips, by telemetry's reason, and not written.)
const (
	reasonInfluxRejected telemetry.Reason = "influx_rejected"
)

// promMetrics are the Prometheus metrics an operator watches
// (docs/collector.md lists them); "metrics" alone names the figures engine.
type promMetrics struct {
	reg *prometheus.Registry

	received         prometheus.Counter
	accepted         *prometheus.CounterVec // by kind and channel
	invalid          *prometheus.CounterVec // by reason
	deadLetterSkips  *prometheus.CounterVec // dead letters over the rate limit, by reason
	acked            prometheus.Counter
	ackLag           prometheus.Histogram
	spoolGroup       prometheus.Histogram
	spoolFull        prometheus.Counter
	spoolBytes       prometheus.GaugeFunc
	spoolRecords     prometheus.GaugeFunc
	batchPoints      prometheus.Histogram
	writeSeconds     prometheus.Histogram
	pointsWritten    prometheus.Counter
	retries          prometheus.Counter
	influxErrors     *prometheus.CounterVec // by HTTP status ("0" = no answer)
	rejectedPoints   prometheus.Counter
	spoolDamaged     prometheus.Counter
	quarantinedBytes prometheus.Counter
	mqttConnected    prometheus.Gauge
	influxUp         prometheus.Gauge
	mqttConnectCount prometheus.Counter
	brokerRefused    *prometheus.CounterVec // embedded broker: by action and reason
	retainedInvalid  *prometheus.CounterVec // invalid retained replays, by reason
}

func newPromMetrics(spoolStats func() (records, bytes float64)) *promMetrics {
	const ns = "greenpost_collector_"
	m := &promMetrics{reg: prometheus.NewRegistry()}
	m.received = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "messages_received_total", Help: "MQTT messages received."})
	m.accepted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "messages_accepted_total", Help: "Valid messages made durable, by device kind and channel."}, []string{"kind", "channel"})
	m.invalid = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "messages_invalid_total", Help: "Invalid messages, by reason."}, []string{"reason"})
	m.deadLetterSkips = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "deadletters_not_written_total", Help: "Invalid messages over the dead-letter rate limit: counted, not written."}, []string{"reason"})
	m.acked = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "messages_acked_total", Help: "Messages acknowledged to the broker (after they were durable)."})
	m.ackLag = prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "ack_lag_seconds", Help: "From receipt to acknowledgement.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)})
	m.spoolGroup = prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "spool_group_messages", Help: "Messages per group commit (one fsync).", Buckets: prometheus.ExponentialBuckets(1, 4, 8)})
	m.spoolFull = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "spool_full_total", Help: "Times the spool was full and acknowledgements paused (back-pressure)."})
	m.spoolBytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "spool_bytes", Help: "Bytes in the spool not yet in InfluxDB."}, func() float64 { _, b := spoolStats(); return b })
	m.spoolRecords = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "spool_points", Help: "Points in the spool not yet in InfluxDB."}, func() float64 { r, _ := spoolStats(); return r })
	m.batchPoints = prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "batch_points", Help: "Points per InfluxDB write.", Buckets: prometheus.ExponentialBuckets(1, 4, 9)})
	m.writeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "influx_write_seconds", Help: "InfluxDB write latency.", Buckets: prometheus.ExponentialBuckets(0.001, 3, 10)})
	m.pointsWritten = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "points_written_total", Help: "Points written to InfluxDB."})
	m.retries = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "influx_retries_total", Help: "InfluxDB writes retried."})
	m.influxErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "influx_errors_total", Help: "Failed InfluxDB requests by HTTP status (0: no answer)."}, []string{"status"})
	m.rejectedPoints = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "influx_rejected_points_total", Help: "Points InfluxDB refused even alone (stored as dead letters)."})
	m.spoolDamaged = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "spool_corrupt_records_total", Help: "Spool records lost to disk damage: stepped over, their bytes copied to a quarantine file."})
	m.quarantinedBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "spool_quarantined_bytes_total", Help: "Damaged spool bytes copied to quarantine files in the spool directory."})
	m.mqttConnected = prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "mqtt_connected", Help: "1 while connected to the broker."})
	m.influxUp = prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "influx_up", Help: "1 while the last InfluxDB request succeeded."})
	m.mqttConnectCount = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "mqtt_connects_total", Help: "Connections (and reconnections) to the broker."})
	m.brokerRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "broker_refused_total", Help: "Embedded broker: connections, packets, publishes and subscriptions refused, by action and reason."}, []string{"action", "reason"})
	m.retainedInvalid = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "retained_invalid_total", Help: "Invalid retained messages the broker sent again at a (re)subscription: counted here, not dead-lettered again."}, []string{"reason"})
	m.reg.MustRegister(m.received, m.accepted, m.invalid, m.deadLetterSkips, m.acked, m.ackLag, m.spoolGroup, m.spoolFull,
		m.spoolBytes, m.spoolRecords, m.batchPoints, m.writeSeconds, m.pointsWritten, m.retries, m.influxErrors,
		m.rejectedPoints, m.spoolDamaged, m.quarantinedBytes, m.mqttConnected, m.influxUp, m.mqttConnectCount, m.brokerRefused, m.retainedInvalid,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every reason shows up at zero, so alerts can use rate() from the start.
	for _, r := range telemetry.Reasons {
		m.invalid.WithLabelValues(string(r))
		m.deadLetterSkips.WithLabelValues(string(r))
		m.retainedInvalid.WithLabelValues(string(r))
	}
	for _, r := range brokerRefusals {
		m.brokerRefused.WithLabelValues(r.action, r.reason)
	}
	return m
}

// influxUpValue reads the influx_up gauge.
func (m *promMetrics) influxUpValue() float64 {
	var out dto.Metric
	m.influxUp.Write(&out)
	return out.GetGauge().GetValue()
}
