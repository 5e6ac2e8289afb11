package telemetry

import (
	"strings"
	"testing"
	"time"
)

func TestAppendPoint(t *testing.T) {
	tests := []struct {
		name, topic, payload, want string
	}{
		{"bin, all fields", binTopic,
			`{"ts":1764324000000,"seq":1024,"boot":3,"fill_pct":63.5,"deposits":10234,"weight_kg":12.4,"battery_pct":88,"rssi_dbm":-71,"emptied":false}`,
			"bin,boot=3,device=b-0001-1,outlet=o-0001 fill_pct=63.5,deposits=10234i,seq=1024i,weight_kg=12.4,battery_pct=88,rssi_dbm=-71,emptied=false 1764324000000000000\n"},
		{"bin, required only, tiny float without exponent", binTopic,
			`{"ts":1764324000001,"seq":0,"boot":0,"fill_pct":1e-7,"deposits":0}`,
			"bin,boot=0,device=b-0001-1,outlet=o-0001 fill_pct=0.0000001,deposits=0i,seq=0i 1764324000001000000\n"},
		{"counter: all seven classes, absent as 0", counterTopic,
			`{"ts":1764324000000,"seq":77,"boot":2,"parcels":{"recyclable":3400,"foam":12}}`,
			"counter,boot=2,device=c-0001,outlet=o-0001 reusable=0i,recyclable=3400i,biodegradable=0i,original=0i,plastic=0i,foam=12i,other=0i,seq=77i 1764324000000000000\n"},
		{"counter with boxes", counterTopic,
			`{"ts":1764324000000,"seq":77,"boot":2,"parcels":{},"boxes_recovered":65}`,
			"counter,boot=2,device=c-0001,outlet=o-0001 reusable=0i,recyclable=0i,biodegradable=0i,original=0i,plastic=0i,foam=0i,other=0i,seq=77i,boxes_recovered=65i 1764324000000000000\n"},
		{"status", "gp/v1/o-0001/counter/c-0001/status", `{"state":"online","ts":1764324000000,"fw":"1.4.2"}`,
			"device_status,device=c-0001,kind=counter,outlet=o-0001 state=\"online\",fw=\"1.4.2\" 1764324000000000000\n"},
		{"last will", statusTopic, `{"state":"offline"}`,
			"device_status,device=b-0001-1,kind=bin,outlet=o-0001 state=\"offline\" 1764324000000000000\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.topic, []byte(tt.payload), now)
			if err != nil {
				t.Fatal(err)
			}
			prefix := []byte("keep\n")
			got := string(AppendPoint(prefix, &m))
			if got != "keep\n"+tt.want {
				t.Fatalf("AppendPoint =\n%q\nwant\n%q", got, "keep\n"+tt.want)
			}
		})
	}
}

func TestAppendDeadLetter(t *testing.T) {
	recv := time.Unix(1764324000, 123456789)
	tests := []struct {
		name, topic, payload, want string
	}{
		{"quotes and backslashes escaped", binTopic, `{"a":"x\"y"}`,
			`deadletter,reason=bad_json topic="gp/v1/o-0001/bin/b-0001-1/telemetry",payload="{\"a\":\"x\\\"y\"}" 1764324000123456789` + "\n"},
		{"invalid utf-8 replaced", "gp/\xff", "a\xffb",
			"deadletter,reason=bad_json topic=\"gp/\uFFFD\",payload=\"a\uFFFDb\" 1764324000123456789\n"},
		{"cut to 256 bytes", binTopic, strings.Repeat("x", 300),
			`deadletter,reason=bad_json topic="gp/v1/o-0001/bin/b-0001-1/telemetry",payload="` + strings.Repeat("x", 256) + `" 1764324000123456789` + "\n"},
		{"cut back to a whole character", binTopic, strings.Repeat("x", 255) + "é",
			`deadletter,reason=bad_json topic="gp/v1/o-0001/bin/b-0001-1/telemetry",payload="` + strings.Repeat("x", 255) + `" 1764324000123456789` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendDeadLetter(nil, ReasonBadJSON, tt.topic, []byte(tt.payload), recv))
			if got != tt.want {
				t.Fatalf("AppendDeadLetter =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestTruncateUTF8(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"héllo", 2, "h"},
		{"héllo", 3, "hé"},
		{"a\xff\xfeb", 10, "a\uFFFD\uFFFDb"},
		{"", 5, ""},
	}
	for _, tt := range tests {
		if got := TruncateUTF8(tt.in, tt.max); got != tt.want {
			t.Errorf("TruncateUTF8(%q, %d) = %q; want %q", tt.in, tt.max, got, tt.want)
		}
	}
}
