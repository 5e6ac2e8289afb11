package telemetry

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// refDecode is a second, independent reading of telemetry-v1 written the
// plain way, with encoding/json. The fuzz test holds Decode to it, and the
// benchmark uses it as the baseline. It reports only accept or reject.
func refDecode(topic string, payload []byte, now time.Time) (Message, bool) {
	m := refTopic.FindStringSubmatch(topic)
	if m == nil || len(payload) > 4096 || !utf8.Valid(payload) {
		return Message{}, false
	}
	msg := Message{Topic: Topic{Outlet: m[1], Device: m[3]}}
	msg.Topic.Kind = map[string]Kind{"bin": KindBin, "counter": KindCounter}[m[2]]
	msg.Topic.Channel = map[string]Channel{"telemetry": ChannelTelemetry, "status": ChannelStatus}[m[4]]

	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return Message{}, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return Message{}, false
	}
	if refHasDuplicates(payload, msg.Topic) {
		return Message{}, false
	}
	nowMS := now.UnixMilli()
	tsOK := func(v int64) bool { return v-nowMS <= 24*3600*1000 && nowMS-v <= 30*24*3600*1000 }

	if msg.Topic.Channel == ChannelStatus {
		st, ok := obj["state"].(string)
		if !ok || (st != "online" && st != "offline") {
			return Message{}, false
		}
		msg.Status.State = st
		msg.TS = nowMS
		if v, present := obj["ts"]; present {
			ts, ok := refInt(v)
			if !ok || !tsOK(ts) {
				return Message{}, false
			}
			msg.TS = ts
		}
		if v, present := obj["fw"]; present {
			fw, ok := v.(string)
			if !ok || !regexp.MustCompile(`^[A-Za-z0-9._+-]{1,64}$`).MatchString(fw) {
				return Message{}, false
			}
			msg.Status.FW = fw
		}
		return msg, true
	}

	var ok bool
	for _, f := range []struct {
		key string
		dst *int64
	}{{"ts", &msg.TS}, {"seq", &msg.Seq}, {"boot", &msg.Boot}} {
		if *f.dst, ok = refInt(obj[f.key]); !ok {
			return Message{}, false
		}
	}
	if !tsOK(msg.TS) {
		return Message{}, false
	}
	if msg.Topic.Kind == KindBin {
		b := &msg.Bin
		if b.FillPct, ok = refFloat(obj["fill_pct"], 0, 100); !ok {
			return Message{}, false
		}
		if b.Deposits, ok = refInt(obj["deposits"]); !ok {
			return Message{}, false
		}
		for _, f := range []struct {
			key      string
			min, max float64
			dst      *float64
			bit      uint8
		}{{"weight_kg", 0, math.MaxFloat64, &b.WeightKg, HasWeight}, {"battery_pct", 0, 100, &b.BatteryPct, HasBattery}, {"rssi_dbm", -150, 0, &b.RSSIdBm, HasRSSI}} {
			if v, present := obj[f.key]; present {
				if *f.dst, ok = refFloat(v, f.min, f.max); !ok {
					return Message{}, false
				}
				b.Has |= f.bit
			}
		}
		if v, present := obj["emptied"]; present {
			if b.Emptied, ok = v.(bool); !ok {
				return Message{}, false
			}
			b.Has |= HasEmptied
		}
		return msg, true
	}
	parcels, ok := obj["parcels"].(map[string]any)
	if !ok {
		return Message{}, false
	}
	for k, v := range parcels {
		c, known := ClassByName(k)
		if !known {
			return Message{}, false
		}
		if msg.Counter.Parcels[c], ok = refInt(v); !ok {
			return Message{}, false
		}
	}
	if v, present := obj["boxes_recovered"]; present {
		if msg.Counter.BoxesRecovered, ok = refInt(v); !ok {
			return Message{}, false
		}
		msg.Counter.HasBoxes = true
	}
	return msg, true
}

var refTopic = regexp.MustCompile(`^gp/v1/([a-z0-9][a-z0-9_-]{0,63})/(bin|counter)/([a-z0-9][a-z0-9_-]{0,63})/(telemetry|status)$`)

func refInt(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok || strings.ContainsAny(string(n), ".eE") {
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	return i, err == nil && i >= 0
}

func refFloat(v any, min, max float64) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return f, err == nil && f >= min && f <= max
}

// refHasDuplicates reports a key of the contract given twice at the top
// level, or a class given twice inside parcels (encoding/json keeps the last).
func refHasDuplicates(payload []byte, t Topic) bool {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.Token() // {
	seen := map[string]bool{}
	for dec.More() {
		tok, _ := dec.Token()
		key, _ := tok.(string)
		known := map[string]bool{"ts": true, "seq": true, "boot": true}
		switch {
		case t.Channel == ChannelStatus:
			known = map[string]bool{"state": true, "ts": true, "fw": true}
		case t.Kind == KindBin:
			for _, k := range []string{"fill_pct", "deposits", "weight_kg", "battery_pct", "rssi_dbm", "emptied"} {
				known[k] = true
			}
		default:
			known["parcels"], known["boxes_recovered"] = true, true
		}
		if known[key] && seen[key] {
			return true
		}
		seen[key] = true
		var raw json.RawMessage
		dec.Decode(&raw)
		if key == "parcels" && t.Kind == KindCounter && t.Channel == ChannelTelemetry {
			inner := json.NewDecoder(bytes.NewReader(raw))
			if tok, _ := inner.Token(); tok != json.Delim('{') {
				continue
			}
			classes := map[string]bool{}
			for inner.More() {
				tok, _ := inner.Token()
				k, _ := tok.(string)
				if classes[k] {
					return true
				}
				classes[k] = true
				var skip json.RawMessage
				inner.Decode(&skip)
			}
		}
	}
	return false
}
