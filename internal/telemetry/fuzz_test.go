package telemetry

import (
	"testing"
)

// FuzzDecode holds Decode to the encoding/json reference: both must accept
// or reject the same messages and read the same values, Decode must never
// panic, a rejection must carry a known reason, and every accepted message
// must encode to a single well-formed line.
func FuzzDecode(f *testing.F) {
	seeds := []struct{ topic, payload string }{
		{binTopic, `{"ts":1764324000000,"seq":1024,"boot":3,"fill_pct":63.5,"deposits":10234,"weight_kg":12.4,"battery_pct":88,"rssi_dbm":-71}`},
		{binTopic, `{"ts":1764324000000,"seq":1,"boot":1,"fill_pct":1e1,"deposits":5,"emptied":true}`},
		{binTopic, `{"ts":1764324000000,"seq":1,"boot":1,"fill_pct":5,"deposits":5,"seq":2}`},
		{binTopic, `{"ts":1764324000000,"seq":1,"boot":1,"fill_pct":100.5,"deposits":5}`},
		{binTopic, `{"\u0074s":1764324000000,"seq":1,"boot":1,"fill_pct":5,"deposits":5,"x":[{"y":"\ud83d\ude00"}]}`},
		{counterTopic, `{"ts":1764324000000,"seq":77,"boot":2,"parcels":{"reusable":120,"recyclable":3400,"biodegradable":210,"original":800,"plastic":150,"foam":12,"other":40},"boxes_recovered":65}`},
		{counterTopic, `{"ts":1764324000000,"seq":1,"boot":1,"parcels":{"paper":1}}`},
		{counterTopic, `{"ts":1764324000000,"seq":1,"boot":1,"parcels":{"foam":1.0}}`},
		{counterTopic, `{"ts":1764324000000,"seq":1,"boot":1,"parcels":{"foam":99999999999999999999}}`},
		{statusTopic, `{"state":"online","ts":1764324000000,"fw":"1.4.2"}`},
		{statusTopic, `{"state":"offline"}`},
		{statusTopic, `{"state":"onl\u0069ne","fw":"x y"}`},
		{"gp/v1/O/bin/b/telemetry", `{}`},
		{binTopic, `[]`},
		{binTopic, `{"ts":1764324000000,`},
		{binTopic, "{\"a\":\"\xff\"}"},
	}
	for _, s := range seeds {
		f.Add(s.topic, []byte(s.payload))
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		got, err := Decode(topic, payload, now)
		want, ok := refDecode(topic, payload, now)
		if (err == nil) != ok {
			t.Fatalf("Decode err = %v, reference accepts = %v\ntopic %q\npayload %q", err, ok, topic, payload)
		}
		if err != nil {
			r := ReasonOf(err)
			for _, known := range Reasons {
				if r == known {
					return
				}
			}
			t.Fatalf("unknown reason %q", r)
		}
		if got != want {
			t.Fatalf("Decode = %+v\nreference = %+v\npayload %q", got, want, payload)
		}
		line := AppendPoint(nil, &got)
		for i, c := range line {
			if c == '\n' && i != len(line)-1 {
				t.Fatalf("point has an inner newline: %q", line)
			}
		}
	})
}
