package telemetry

import (
	"strings"
	"testing"
)

func TestParseTopic(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		topic string
		want  Topic
		field string // "" with want set: valid
	}{
		{"gp/v1/o-0001/bin/b-0001-1/telemetry", Topic{"o-0001", KindBin, "b-0001-1", ChannelTelemetry}, ""},
		{"gp/v1/o1/counter/c_1/status", Topic{"o1", KindCounter, "c_1", ChannelStatus}, ""},
		{"gp/v1/" + long + "/bin/" + long + "/telemetry", Topic{long, KindBin, long, ChannelTelemetry}, ""},
		{"gp/v1/0/bin/9/telemetry", Topic{"0", KindBin, "9", ChannelTelemetry}, ""},
		{"gp/v2/o1/bin/b1/telemetry", Topic{}, ""},
		{"gp/v1/o1/bin/b1", Topic{}, ""},
		{"gp/v1/o1/bin/b1/telemetry/extra", Topic{}, ""},
		{"gp/v1/O1/bin/b1/telemetry", Topic{}, "outlet"},
		{"gp/v1/-o1/bin/b1/telemetry", Topic{}, "outlet"},
		{"gp/v1/_o/bin/b1/telemetry", Topic{}, "outlet"},
		{"gp/v1//bin/b1/telemetry", Topic{}, "outlet"},
		{"gp/v1/" + long + "a/bin/b1/telemetry", Topic{}, "outlet"},
		{"gp/v1/o1/bin/b 1/telemetry", Topic{}, "device"},
		{"gp/v1/o1/bin/+/telemetry", Topic{}, "device"},
		{"gp/v1/o1/bin/b,1/telemetry", Topic{}, "device"},
		{"gp/v1/o1/bins/b1/telemetry", Topic{}, "kind"},
		{"gp/v1/o1/bin/b1/Telemetry", Topic{}, "channel"},
		{"gp/v1/o1/bin/b1/", Topic{}, "channel"},
		{"", Topic{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			got, err := ParseTopic(tt.topic)
			if tt.want != (Topic{}) {
				if err != nil || got != tt.want {
					t.Fatalf("ParseTopic = %+v, %v; want %+v", got, err, tt.want)
				}
				if s := got.String(); s != tt.topic {
					t.Fatalf("round trip: String() = %q", s)
				}
				return
			}
			e, ok := err.(*Error)
			if !ok || e.Reason != ReasonBadTopic || e.Field != tt.field {
				t.Fatalf("ParseTopic err = %#v; want bad_topic on %q", err, tt.field)
			}
		})
	}
}

func TestTopicBuildParseRoundTrip(t *testing.T) {
	for _, k := range []Kind{KindBin, KindCounter} {
		for _, build := range []func(string, Kind, string) string{TelemetryTopic, StatusTopic} {
			s := build("o-12", k, "dev_3")
			got, err := ParseTopic(s)
			if err != nil || got.Outlet != "o-12" || got.Device != "dev_3" || got.Kind != k {
				t.Fatalf("ParseTopic(%q) = %+v, %v", s, got, err)
			}
		}
	}
}
