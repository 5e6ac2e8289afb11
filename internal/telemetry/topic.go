package telemetry

import "strings"

// Kind is the device kind, the fourth topic part.
type Kind uint8

// Device kinds.
const (
	KindBin     Kind = iota + 1 // recycling bin for packaging waste
	KindCounter                 // parcel intake counter
)

func (k Kind) String() string {
	switch k {
	case KindBin:
		return "bin"
	case KindCounter:
		return "counter"
	}
	return "unknown"
}

// ParseKind returns the kind named s ("bin" or "counter"), or 0.
func ParseKind(s string) Kind {
	switch s {
	case "bin":
		return KindBin
	case "counter":
		return KindCounter
	}
	return 0
}

// Channel is the last topic part.
type Channel uint8

// Channels.
const (
	ChannelTelemetry Channel = iota + 1
	ChannelStatus
)

func (c Channel) String() string {
	switch c {
	case ChannelTelemetry:
		return "telemetry"
	case ChannelStatus:
		return "status"
	}
	return "unknown"
}

// TopicPrefix starts every v1 topic.
const TopicPrefix = "gp/v1/"

// Subscription filters for the collector.
const (
	FilterTelemetry = "gp/v1/+/+/+/telemetry"
	FilterStatus    = "gp/v1/+/+/+/status"
)

// MaxIDLen is the longest outlet or device id.
const MaxIDLen = 64

// Topic is a parsed, checked topic. Outlet and Device match ValidID, so they
// are safe as InfluxDB tag values and in Flux strings.
type Topic struct {
	Outlet  string
	Kind    Kind
	Device  string
	Channel Channel
}

// String builds the topic gp/v1/{outlet}/{kind}/{device}/{channel}.
func (t Topic) String() string {
	return TopicPrefix + t.Outlet + "/" + t.Kind.String() + "/" + t.Device + "/" + t.Channel.String()
}

// TelemetryTopic and StatusTopic build a device's two topics.
func TelemetryTopic(outlet string, k Kind, device string) string {
	return Topic{outlet, k, device, ChannelTelemetry}.String()
}

// StatusTopic builds a device's status topic (also its Last Will topic).
func StatusTopic(outlet string, k Kind, device string) string {
	return Topic{outlet, k, device, ChannelStatus}.String()
}

// ValidID reports whether s matches [a-z0-9][a-z0-9_-]{0,63}, the charset of
// outlet and device ids.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ParseTopic checks a topic against the v1 scheme. The returned strings share
// memory with s.
func ParseTopic(s string) (Topic, error) {
	rest, ok := strings.CutPrefix(s, TopicPrefix)
	if !ok {
		return Topic{}, invalid(ReasonBadTopic, "", "not under "+TopicPrefix)
	}
	outlet, rest, ok1 := strings.Cut(rest, "/")
	kind, rest, ok2 := strings.Cut(rest, "/")
	device, channel, ok3 := strings.Cut(rest, "/")
	if !ok1 || !ok2 || !ok3 || strings.IndexByte(channel, '/') >= 0 {
		return Topic{}, invalid(ReasonBadTopic, "", "want gp/v1/{outlet}/{kind}/{device}/{channel}")
	}
	t := Topic{Outlet: outlet, Device: device}
	if !ValidID(outlet) {
		return Topic{}, invalid(ReasonBadTopic, "outlet", "want [a-z0-9][a-z0-9_-]{0,63}")
	}
	if !ValidID(device) {
		return Topic{}, invalid(ReasonBadTopic, "device", "want [a-z0-9][a-z0-9_-]{0,63}")
	}
	if t.Kind = ParseKind(kind); t.Kind == 0 {
		return Topic{}, invalid(ReasonBadTopic, "kind", "want bin or counter")
	}
	switch channel {
	case "telemetry":
		t.Channel = ChannelTelemetry
	case "status":
		t.Channel = ChannelStatus
	default:
		return Topic{}, invalid(ReasonBadTopic, "channel", "want telemetry or status")
	}
	return t, nil
}
