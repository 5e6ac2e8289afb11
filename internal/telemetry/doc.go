// Package telemetry is the wire contract between outlet devices and the
// collector (telemetry-v1) and its mapping to InfluxDB points (storage-v1).
//
// It is the one place that decides whether a message is valid: the collector
// validates with it and the simulator's tests prove that everything it sends
// passes it. Every way a message can be invalid has a stable Reason, so the
// collector can count dead letters by reason and operators can alert on them.
//
// The package uses the standard library only. Decoding is a hand-written,
// allocation-light JSON scanner because it sits on the collector's hot path;
// its fuzz test checks it against encoding/json.
package telemetry
