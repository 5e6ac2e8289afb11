package telemetry

import "fmt"

// Reason is the stable, machine-readable code for why a message is invalid.
// Reasons are used as Prometheus label values and as the `reason` tag of
// dead-letter points, so they never change once released.
type Reason string

// Every way a message can be invalid.
const (
	ReasonBadTopic     Reason = "bad_topic"     // topic outside gp/v1/{outlet}/{kind}/{device}/{channel}
	ReasonTooLarge     Reason = "too_large"     // payload over MaxPayload bytes
	ReasonBadJSON      Reason = "bad_json"      // not JSON, not UTF-8, or trailing data
	ReasonNotObject    Reason = "not_object"    // valid JSON, but not an object at the top
	ReasonDuplicateKey Reason = "duplicate_key" // a known key given twice (which one wins is ambiguous)
	ReasonMissingField Reason = "missing_field" // a required key is absent
	ReasonWrongType    Reason = "wrong_type"    // e.g. a string or a fraction where an int is required
	ReasonOutOfRange   Reason = "out_of_range"  // a number outside its allowed range (or not representable)
	ReasonUnknownClass Reason = "unknown_class" // a parcels key outside the seven classes
	ReasonBadValue     Reason = "bad_value"     // a string outside its allowed set (status state, fw)
	ReasonTSFuture     Reason = "ts_future"     // ts more than MaxFuture ahead of the receive time
	ReasonTSPast       Reason = "ts_past"       // ts more than MaxPast behind the receive time
)

// Reasons lists every reason, for pre-registering counters at zero.
var Reasons = []Reason{
	ReasonBadTopic, ReasonTooLarge, ReasonBadJSON, ReasonNotObject, ReasonDuplicateKey,
	ReasonMissingField, ReasonWrongType, ReasonOutOfRange, ReasonUnknownClass, ReasonBadValue,
	ReasonTSFuture, ReasonTSPast,
}

// Error says why a message is invalid. Field names the offending key
// ("parcels.foam" for nested keys) when there is one.
type Error struct {
	Reason Reason
	Field  string
	Detail string
}

func (e *Error) Error() string {
	switch {
	case e.Field != "" && e.Detail != "":
		return fmt.Sprintf("%s: %s: %s", e.Reason, e.Field, e.Detail)
	case e.Field != "":
		return fmt.Sprintf("%s: %s", e.Reason, e.Field)
	case e.Detail != "":
		return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
	}
	return string(e.Reason)
}

func invalid(r Reason, field, detail string) *Error {
	return &Error{Reason: r, Field: field, Detail: detail}
}

// ReasonOf returns the reason of an *Error, or "" for nil and other errors.
func ReasonOf(err error) Reason {
	if e, ok := err.(*Error); ok && e != nil {
		return e.Reason
	}
	return ""
}
