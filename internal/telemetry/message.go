package telemetry

import "time"

// Limits of the contract.
const (
	MaxPayload = 4096           // bytes; larger payloads are invalid
	MaxFuture  = 24 * time.Hour // ts may be at most this far ahead of the receive time
	MaxPast    = 30 * 24 * time.Hour
	MaxFWLen   = 64 // bytes of the status fw string
)

// Class is a packaging class of the parcel counter.
type Class uint8

// The seven packaging classes, green ones first.
const (
	Reusable Class = iota
	Recyclable
	Biodegradable
	Original
	Plastic
	Foam
	Other
	NumClasses = 7
)

// ClassNames are the JSON keys and InfluxDB field names of the classes, by Class.
var ClassNames = [NumClasses]string{
	"reusable", "recyclable", "biodegradable", "original", "plastic", "foam", "other",
}

func (c Class) String() string { return ClassNames[c] }

// Green reports whether parcels of the class count as green packaging.
func (c Class) Green() bool { return c <= Original }

// ClassByName returns the class with the given JSON key.
func ClassByName(name string) (Class, bool) {
	for i, n := range ClassNames {
		if n == name {
			return Class(i), true
		}
	}
	return 0, false
}

// Optional bin fields, as bits of BinReading.Has.
const (
	HasWeight uint8 = 1 << iota
	HasBattery
	HasRSSI
	HasEmptied
)

// BinReading is the body of a bin telemetry message.
type BinReading struct {
	FillPct    float64
	Deposits   int64
	WeightKg   float64
	BatteryPct float64
	RSSIdBm    float64
	Emptied    bool
	Has        uint8 // which optional fields were sent (HasWeight, ...)
}

// CounterReading is the body of a counter telemetry message.
type CounterReading struct {
	Parcels        [NumClasses]int64 // cumulative since boot; absent classes are 0
	BoxesRecovered int64
	HasBoxes       bool
}

// Device states in status messages.
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

// StatusReport is the body of a status message.
type StatusReport struct {
	State string // StateOnline or StateOffline
	FW    string // empty when not sent
}

// Message is a valid message. Which body is filled depends on Topic.Kind and
// Topic.Channel.
type Message struct {
	Topic Topic
	// TS is the device time in milliseconds since the epoch. A status message
	// without ts (a Last Will) gets the receive time.
	TS      int64
	Seq     int64 // telemetry only
	Boot    int64 // telemetry only
	Bin     BinReading
	Counter CounterReading
	Status  StatusReport
}

// Time returns TS as a time.Time.
func (m *Message) Time() time.Time { return time.UnixMilli(m.TS).UTC() }
