package main

import (
	"errors"
)

// The alerts' answer written by hand. When a city's devices all go quiet at
// once (a broker down, a power cut) the answer is every device and outlet:
// ~46,000 alerts and 14 MB at 10,000 outlets, and encoding/json spent ~40 %
// of the request on it, most in escaping each alert's outlet name, district
// and address (Chinese text: rune by rune) and in time.Time's marshaler
// (its output validated again). appendAlertsAnswer writes the same bytes as
// json.Marshal (TestAlertsJSONIsEncodingJSON), escaping each outlet's
// strings once however many alerts it has, and strings that need no
// escaping without looking at them twice (jsonappend.go).

// alertOutletFields are the alert's outlet fields, in the struct's order.
var alertOutletFields = outletFields[:4]

var errJSONValue = errors.New("a value that JSON cannot hold (NaN or infinite)")

// appendAlertsAnswer appends a as json.Marshal would.
func appendAlertsAnswer(b []byte, a alertsAnswer) ([]byte, error) {
	b = append(b, `{"at":`...)
	b = appendJSONTime(b, a.At)
	b = append(b, `,"alerts":`...)
	if a.Alerts == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		outlet := fieldRun{known: a.known} // alerts come grouped by kind and outlet
		for i := range a.Alerts {
			al := &a.Alerts[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"kind":`...)
			b = appendJSONString(b, al.Kind)
			b = append(b, outlet.of(alertOutletFields, al.Outlet, al.Name, al.District, al.Address)...)
			b = append(b, `,"device":`...)
			b = appendJSONString(b, al.Device)
			b = append(b, `,"since":`...)
			b = appendJSONTimeOrNull(b, al.Since)
			b = append(b, `,"value":`...)
			var err error
			if b, err = appendJSONFloatOrNull(b, al.Value); err != nil {
				return nil, err
			}
			b = append(b, `,"detail":`...)
			b = appendJSONString(b, al.Detail)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(a.Warnings) > 0 {
		b = append(b, `,"warnings":[`...)
		for i, w := range a.Warnings {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, w)
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}
