package main

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The alerts' answer written by hand. When a city's devices all go quiet at
// once (a broker down, a power cut) the answer is every device and outlet:
// ~46,000 alerts and 14 MB at 10,000 outlets, and encoding/json spent ~40 %
// of the request on it, most in escaping each alert's outlet name, district
// and address (Chinese text: rune by rune) and in time.Time's marshaler
// (its output validated again). appendAlertsAnswer writes the same bytes as
// json.Marshal (TestAlertsJSONIsEncodingJSON), escaping each outlet's
// strings once however many alerts it has, and strings that need no
// escaping without looking at them twice.

var errAlertValue = errors.New("alerts: a value that JSON cannot hold")

// appendAlertsAnswer appends a as json.Marshal would.
func appendAlertsAnswer(b []byte, a alertsAnswer) ([]byte, error) {
	b = append(b, `{"at":`...)
	b = appendJSONTime(b, a.At)
	b = append(b, `,"alerts":`...)
	if a.Alerts == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		// The outlet's fields of the alert before, escaped: alerts come
		// grouped by kind and outlet, so most reuse them.
		var last struct {
			id, name, district, address string
			enc                         []byte
		}
		for i := range a.Alerts {
			al := &a.Alerts[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"kind":`...)
			b = appendJSONString(b, al.Kind)
			if last.enc == nil || al.Outlet != last.id || al.Name != last.name || al.District != last.district || al.Address != last.address {
				last.id, last.name, last.district, last.address = al.Outlet, al.Name, al.District, al.Address
				last.enc = append(last.enc[:0], `,"outlet":`...)
				last.enc = appendJSONString(last.enc, al.Outlet)
				last.enc = append(last.enc, `,"name":`...)
				last.enc = appendJSONString(last.enc, al.Name)
				last.enc = append(last.enc, `,"district":`...)
				last.enc = appendJSONString(last.enc, al.District)
				last.enc = append(last.enc, `,"address":`...)
				last.enc = appendJSONString(last.enc, al.Address)
			}
			b = append(b, last.enc...)
			b = append(b, `,"device":`...)
			b = appendJSONString(b, al.Device)
			b = append(b, `,"since":`...)
			if al.Since == nil {
				b = append(b, "null"...)
			} else {
				b = appendJSONTime(b, *al.Since)
			}
			b = append(b, `,"value":`...)
			if al.Value == nil {
				b = append(b, "null"...)
			} else {
				var err error
				if b, err = appendJSONFloat(b, *al.Value); err != nil {
					return nil, err
				}
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

// appendJSONString appends s quoted as encoding/json does (with its HTML
// escaping): as it is when nothing in it needs an escape — no control
// byte, quote, backslash, <, > or &, valid UTF-8 without U+2028 or U+2029
// (which encoding/json escapes) — and through encoding/json otherwise.
func appendJSONString(b []byte, s string) []byte {
	plain := true
	ascii := true
	for i := 0; i < len(s) && plain; i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf:
			ascii = false
		case c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&':
			plain = false
		}
	}
	if plain && !ascii {
		plain = utf8.ValidString(s) && !strings.Contains(s, "\u2028") && !strings.Contains(s, "\u2029")
	}
	if !plain {
		q, _ := json.Marshal(s) // a string always encodes
		return append(b, q...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// as many fractional digits as it has).
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONFloat appends f as encoding/json does a float64.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, errAlertValue
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}
