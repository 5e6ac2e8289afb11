package telemetry

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// now is the fixed receive time of the tests: 2025-11-28T10:00:00Z.
var now = time.UnixMilli(1764324000000).UTC()

const (
	binTopic     = "gp/v1/o-0001/bin/b-0001-1/telemetry"
	counterTopic = "gp/v1/o-0001/counter/c-0001/telemetry"
	statusTopic  = "gp/v1/o-0001/bin/b-0001-1/status"
	nowMS        = "1764324000000"
)

func TestDecodeValid(t *testing.T) {
	topic := Topic{"o-0001", KindBin, "b-0001-1", ChannelTelemetry}
	ctopic := Topic{"o-0001", KindCounter, "c-0001", ChannelTelemetry}
	stopic := Topic{"o-0001", KindBin, "b-0001-1", ChannelStatus}
	tests := []struct {
		name, topic, payload string
		want                 Message
	}{
		{"bin, contract example", binTopic,
			`{"ts":1764324000000,"seq":1024,"boot":3,"fill_pct":63.5,"deposits":10234,"weight_kg":12.4,"battery_pct":88,"rssi_dbm":-71}`,
			Message{Topic: topic, TS: 1764324000000, Seq: 1024, Boot: 3,
				Bin: BinReading{FillPct: 63.5, Deposits: 10234, WeightKg: 12.4, BatteryPct: 88, RSSIdBm: -71, Has: HasWeight | HasBattery | HasRSSI}}},
		{"bin, required only, edges", binTopic,
			`{"ts":1764324000000,"seq":0,"boot":0,"fill_pct":100,"deposits":0}`,
			Message{Topic: topic, TS: 1764324000000, Bin: BinReading{FillPct: 100}}},
		{"bin, exponent and emptied, whitespace", binTopic,
			" {\n\t\"ts\" : 1764324000000 , \"seq\":1,\"boot\":1,\"fill_pct\":1e1,\"deposits\":5,\"emptied\":true,\"rssi_dbm\":-150,\"battery_pct\":0}\r\n",
			Message{Topic: topic, TS: 1764324000000, Seq: 1, Boot: 1,
				Bin: BinReading{FillPct: 10, Deposits: 5, Emptied: true, RSSIdBm: -150, Has: HasEmptied | HasRSSI | HasBattery}}},
		{"bin, unknown keys ignored, any JSON inside", binTopic,
			`{"x":{"a":[1,2,{"b":null}],"c":"\u00e9\"\\"},"ts":1764324000000,"seq":1,"boot":1,"fill_pct":-0,"deposits":-0,"parcels":"not mine"}`,
			Message{Topic: topic, TS: 1764324000000, Seq: 1, Boot: 1}},
		{"bin, escaped key", binTopic,
			`{"\u0074s":1764324000000,"seq":1,"boot":1,"fill_pct":5,"deposits":5}`,
			Message{Topic: topic, TS: 1764324000000, Seq: 1, Boot: 1, Bin: BinReading{FillPct: 5, Deposits: 5}}},
		{"counter, contract example", counterTopic,
			`{"ts":1764324000000,"seq":77,"boot":2,"parcels":{"reusable":120,"recyclable":3400,"biodegradable":210,"original":800,"plastic":150,"foam":12,"other":40},"boxes_recovered":65}`,
			Message{Topic: ctopic, TS: 1764324000000, Seq: 77, Boot: 2,
				Counter: CounterReading{Parcels: [NumClasses]int64{120, 3400, 210, 800, 150, 12, 40}, BoxesRecovered: 65, HasBoxes: true}}},
		{"counter, some classes", counterTopic,
			`{"ts":1764324000000,"seq":1,"boot":1,"parcels":{"foam":9223372036854775807}}`,
			Message{Topic: ctopic, TS: 1764324000000, Seq: 1, Boot: 1,
				Counter: CounterReading{Parcels: [NumClasses]int64{Foam: 9223372036854775807}}}},
		{"counter, empty parcels", counterTopic,
			`{"ts":1764324000000,"seq":1,"boot":1,"parcels":{}}`,
			Message{Topic: ctopic, TS: 1764324000000, Seq: 1, Boot: 1}},
		{"status online", statusTopic, `{"state":"online","ts":1764324000000,"fw":"1.4.2"}`,
			Message{Topic: stopic, TS: 1764324000000, Status: StatusReport{State: StateOnline, FW: "1.4.2"}}},
		{"last will: no ts takes the receive time", statusTopic, `{"state":"offline"}`,
			Message{Topic: stopic, TS: 1764324000000, Status: StatusReport{State: StateOffline}}},
		{"ts at the future limit", binTopic,
			`{"ts":` + ms(now.Add(MaxFuture)) + `,"seq":1,"boot":1,"fill_pct":5,"deposits":5}`,
			Message{Topic: topic, TS: now.Add(MaxFuture).UnixMilli(), Seq: 1, Boot: 1, Bin: BinReading{FillPct: 5, Deposits: 5}}},
		{"ts at the past limit", binTopic,
			`{"ts":` + ms(now.Add(-MaxPast)) + `,"seq":1,"boot":1,"fill_pct":5,"deposits":5}`,
			Message{Topic: topic, TS: now.Add(-MaxPast).UnixMilli(), Seq: 1, Boot: 1, Bin: BinReading{FillPct: 5, Deposits: 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.topic, []byte(tt.payload), now)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Decode =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func TestDecodeInvalid(t *testing.T) {
	const okBin = `"ts":1764324000000,"seq":1,"boot":1,"fill_pct":5,"deposits":5`
	const okCounter = `"ts":1764324000000,"seq":1,"boot":1`
	tests := []struct {
		name, topic, payload string
		reason               Reason
		field                string
	}{
		{"bad topic", "gp/v1/o1/bin/B1/telemetry", `{` + okBin + `}`, ReasonBadTopic, "device"},
		{"too large", binTopic, `{` + okBin + `,"pad":"` + strings.Repeat("x", MaxPayload) + `"}`, ReasonTooLarge, ""},
		{"empty", binTopic, ``, ReasonBadJSON, ""},
		{"not json", binTopic, `hello`, ReasonBadJSON, ""},
		{"truncated", binTopic, `{` + okBin, ReasonBadJSON, ""},
		{"trailing data", binTopic, `{` + okBin + `}{}`, ReasonBadJSON, ""},
		{"trailing comma", binTopic, `{` + okBin + `,}`, ReasonBadJSON, ""},
		{"single quotes", binTopic, `{'ts':1}`, ReasonBadJSON, ""},
		{"leading zero", binTopic, `{` + okBin + `,"x":01}`, ReasonBadJSON, ""},
		{"bare fraction", binTopic, `{` + okBin + `,"x":1.}`, ReasonBadJSON, ""},
		{"NaN", binTopic, `{"ts":1764324000000,"seq":1,"boot":1,"fill_pct":NaN,"deposits":5}`, ReasonBadJSON, ""},
		{"control char in string", binTopic, "{" + okBin + ",\"x\":\"a\x01\"}", ReasonBadJSON, ""},
		{"bad escape", binTopic, `{` + okBin + `,"x":"\q"}`, ReasonBadJSON, ""},
		{"invalid utf-8", binTopic, "{" + okBin + ",\"x\":\"\xff\"}", ReasonBadJSON, ""},
		{"syntax beats type", binTopic, `{"ts":"x",`, ReasonBadJSON, ""},
		{"array", binTopic, `[1,2]`, ReasonNotObject, ""},
		{"null", binTopic, `null`, ReasonNotObject, ""},
		{"duplicate key", binTopic, `{` + okBin + `,"seq":2}`, ReasonDuplicateKey, "seq"},
		{"duplicate class", counterTopic, `{` + okCounter + `,"parcels":{"foam":1,"foam":2}}`, ReasonDuplicateKey, "parcels.foam"},
		{"missing ts", binTopic, `{"seq":1,"boot":1,"fill_pct":5,"deposits":5}`, ReasonMissingField, "ts"},
		{"missing seq", binTopic, `{"ts":1764324000000,"boot":1,"fill_pct":5,"deposits":5}`, ReasonMissingField, "seq"},
		{"missing boot", binTopic, `{"ts":1764324000000,"seq":1,"fill_pct":5,"deposits":5}`, ReasonMissingField, "boot"},
		{"missing fill_pct", binTopic, `{"ts":1764324000000,"seq":1,"boot":1,"deposits":5}`, ReasonMissingField, "fill_pct"},
		{"missing deposits", binTopic, `{"ts":1764324000000,"seq":1,"boot":1,"fill_pct":5}`, ReasonMissingField, "deposits"},
		{"missing parcels", counterTopic, `{` + okCounter + `}`, ReasonMissingField, "parcels"},
		{"missing state", statusTopic, `{"ts":1764324000000}`, ReasonMissingField, "state"},
		{"bin payload on counter topic", counterTopic, `{` + okBin + `}`, ReasonMissingField, "parcels"},
		{"ts as string", binTopic, `{"ts":"1764324000000","seq":1,"boot":1,"fill_pct":5,"deposits":5}`, ReasonWrongType, "ts"},
		{"seq as fraction", binTopic, `{"ts":1764324000000,"seq":1.0,"boot":1,"fill_pct":5,"deposits":5}`, ReasonWrongType, "seq"},
		{"boot with exponent", binTopic, `{"ts":1764324000000,"seq":1,"boot":1e0,"fill_pct":5,"deposits":5}`, ReasonWrongType, "boot"},
		{"deposits as string", binTopic, `{"ts":1764324000000,"seq":1,"boot":1,"fill_pct":5,"deposits":"5"}`, ReasonWrongType, "deposits"},
		{"fill_pct as string", binTopic, `{"ts":1764324000000,"seq":1,"boot":1,"fill_pct":"5","deposits":5}`, ReasonWrongType, "fill_pct"},
		{"weight null", binTopic, `{` + okBin + `,"weight_kg":null}`, ReasonWrongType, "weight_kg"},
		{"emptied as 1", binTopic, `{` + okBin + `,"emptied":1}`, ReasonWrongType, "emptied"},
		{"parcels as array", counterTopic, `{` + okCounter + `,"parcels":[1]}`, ReasonWrongType, "parcels"},
		{"class as float", counterTopic, `{` + okCounter + `,"parcels":{"foam":1.5}}`, ReasonWrongType, "parcels.foam"},
		{"boxes as string", counterTopic, `{` + okCounter + `,"parcels":{},"boxes_recovered":"1"}`, ReasonWrongType, "boxes_recovered"},
		{"state as number", statusTopic, `{"state":1}`, ReasonWrongType, "state"},
		{"fill_pct over 100", binTopic, `{"ts":1764324000000,"seq":1,"boot":1,"fill_pct":100.01,"deposits":5}`, ReasonOutOfRange, "fill_pct"},
		{"fill_pct negative", binTopic, `{"ts":1764324000000,"seq":1,"boot":1,"fill_pct":-0.5,"deposits":5}`, ReasonOutOfRange, "fill_pct"},
		{"fill_pct 1e400", binTopic, `{"ts":1764324000000,"seq":1,"boot":1,"fill_pct":1e400,"deposits":5}`, ReasonOutOfRange, "fill_pct"},
		{"deposits negative", binTopic, `{"ts":1764324000000,"seq":1,"boot":1,"fill_pct":5,"deposits":-1}`, ReasonOutOfRange, "deposits"},
		{"seq over int64", binTopic, `{"ts":1764324000000,"seq":9223372036854775808,"boot":1,"fill_pct":5,"deposits":5}`, ReasonOutOfRange, "seq"},
		{"weight negative", binTopic, `{` + okBin + `,"weight_kg":-1}`, ReasonOutOfRange, "weight_kg"},
		{"battery over 100", binTopic, `{` + okBin + `,"battery_pct":101}`, ReasonOutOfRange, "battery_pct"},
		{"rssi positive", binTopic, `{` + okBin + `,"rssi_dbm":1}`, ReasonOutOfRange, "rssi_dbm"},
		{"rssi below -150", binTopic, `{` + okBin + `,"rssi_dbm":-150.5}`, ReasonOutOfRange, "rssi_dbm"},
		{"class negative", counterTopic, `{` + okCounter + `,"parcels":{"plastic":-3}}`, ReasonOutOfRange, "parcels.plastic"},
		{"boxes negative", counterTopic, `{` + okCounter + `,"parcels":{},"boxes_recovered":-1}`, ReasonOutOfRange, "boxes_recovered"},
		{"unknown class", counterTopic, `{` + okCounter + `,"parcels":{"paper":3}}`, ReasonUnknownClass, "parcels.paper"},
		{"bad state", statusTopic, `{"state":"sleeping"}`, ReasonBadValue, "state"},
		{"bad fw", statusTopic, `{"state":"online","fw":"1.0 beta"}`, ReasonBadValue, "fw"},
		{"empty fw", statusTopic, `{"state":"online","fw":""}`, ReasonBadValue, "fw"},
		{"ts in the future", binTopic, `{"ts":` + ms(now.Add(MaxFuture+time.Millisecond)) + `,"seq":1,"boot":1,"fill_pct":5,"deposits":5}`, ReasonTSFuture, "ts"},
		{"ts in the past", binTopic, `{"ts":` + ms(now.Add(-MaxPast-time.Millisecond)) + `,"seq":1,"boot":1,"fill_pct":5,"deposits":5}`, ReasonTSPast, "ts"},
		{"status ts in the past", statusTopic, `{"state":"online","ts":0}`, ReasonTSPast, "ts"},
		{"first bad field wins", binTopic, `{"ts":1764324000000,"seq":-1,"boot":"x","fill_pct":5,"deposits":5}`, ReasonOutOfRange, "seq"},
	}
	seen := map[Reason]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.topic, []byte(tt.payload), now)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode err = %v; want reason %s", err, tt.reason)
			}
			if e.Reason != tt.reason || e.Field != tt.field {
				t.Fatalf("Decode err = %q (reason %s, field %q); want reason %s, field %q", e, e.Reason, e.Field, tt.reason, tt.field)
			}
			if ReasonOf(err) != tt.reason {
				t.Fatalf("ReasonOf = %q", ReasonOf(err))
			}
		})
		seen[tt.reason] = true
	}
	for _, r := range Reasons {
		if !seen[r] {
			t.Errorf("no test case for reason %s", r)
		}
	}
}
