package telemetry

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

var benchCases = []struct{ name, topic, payload string }{
	{"bin", binTopic, `{"ts":1764324000000,"seq":1024,"boot":3,"fill_pct":63.5,"deposits":10234,"weight_kg":12.4,"battery_pct":88,"rssi_dbm":-71}`},
	{"counter", counterTopic, `{"ts":1764324000000,"seq":77,"boot":2,"parcels":{"reusable":120,"recyclable":3400,"biodegradable":210,"original":800,"plastic":150,"foam":12,"other":40},"boxes_recovered":65}`},
}

// BenchmarkDecodeEncode is the collector's hot path per message: check the
// topic, decode and validate the payload, append the line-protocol point.
func BenchmarkDecodeEncode(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			payload := []byte(bc.payload)
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				m, err := Decode(bc.topic, payload, now)
				if err != nil {
					b.Fatal(err)
				}
				buf = AppendPoint(buf[:0], &m)
			}
		})
	}
}

// BenchmarkEncodingJSONBaseline does the same work the plain way: the same
// topic check, json.Unmarshal into a typed struct, the same range checks and
// the same encoder.
func BenchmarkEncodingJSONBaseline(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			payload := []byte(bc.payload)
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				m, err := plainDecode(bc.topic, payload, now)
				if err != nil {
					b.Fatal(err)
				}
				buf = AppendPoint(buf[:0], &m)
			}
		})
	}
}

type plainPayload struct {
	TS         *int64           `json:"ts"`
	Seq        *int64           `json:"seq"`
	Boot       *int64           `json:"boot"`
	FillPct    *float64         `json:"fill_pct"`
	Deposits   *int64           `json:"deposits"`
	WeightKg   *float64         `json:"weight_kg"`
	BatteryPct *float64         `json:"battery_pct"`
	RSSIdBm    *float64         `json:"rssi_dbm"`
	Emptied    *bool            `json:"emptied"`
	Parcels    map[string]int64 `json:"parcels"`
	Boxes      *int64           `json:"boxes_recovered"`
}

// plainDecode is telemetry decoding as it is usually written (telemetry
// channel only), for the baseline.
func plainDecode(topic string, payload []byte, now time.Time) (Message, error) {
	t, err := ParseTopic(topic)
	if err != nil {
		return Message{}, err
	}
	var p plainPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return Message{}, err
	}
	if p.TS == nil || p.Seq == nil || p.Boot == nil || *p.Seq < 0 || *p.Boot < 0 {
		return Message{}, errors.New("missing or bad ts, seq or boot")
	}
	if d := *p.TS - now.UnixMilli(); d > MaxFuture.Milliseconds() || -d > MaxPast.Milliseconds() {
		return Message{}, errors.New("ts out of range")
	}
	m := Message{Topic: t, TS: *p.TS, Seq: *p.Seq, Boot: *p.Boot}
	if t.Kind == KindBin {
		if p.FillPct == nil || p.Deposits == nil || *p.FillPct < 0 || *p.FillPct > 100 || *p.Deposits < 0 {
			return Message{}, errors.New("bad fill_pct or deposits")
		}
		m.Bin = BinReading{FillPct: *p.FillPct, Deposits: *p.Deposits}
		if p.WeightKg != nil {
			m.Bin.WeightKg, m.Bin.Has = *p.WeightKg, m.Bin.Has|HasWeight
		}
		if p.BatteryPct != nil {
			m.Bin.BatteryPct, m.Bin.Has = *p.BatteryPct, m.Bin.Has|HasBattery
		}
		if p.RSSIdBm != nil {
			m.Bin.RSSIdBm, m.Bin.Has = *p.RSSIdBm, m.Bin.Has|HasRSSI
		}
		if p.Emptied != nil {
			m.Bin.Emptied, m.Bin.Has = *p.Emptied, m.Bin.Has|HasEmptied
		}
		return m, nil
	}
	if p.Parcels == nil {
		return Message{}, errors.New("missing parcels")
	}
	for k, v := range p.Parcels {
		c, ok := ClassByName(k)
		if !ok || v < 0 {
			return Message{}, errors.New("bad class")
		}
		m.Counter.Parcels[c] = v
	}
	if p.Boxes != nil {
		m.Counter.BoxesRecovered, m.Counter.HasBoxes = *p.Boxes, true
	}
	return m, nil
}
