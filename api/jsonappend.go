package main

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
)

// Pieces of JSON written as encoding/json writes them, for the answers
// that are written by hand because they can be tens of thousands of rows
// (alertsjson.go, collectionsjson.go).

// appendJSONString appends s quoted as encoding/json does (with its HTML
// escaping): as it is when nothing in it needs an escape — no control
// byte, quote, backslash, <, > or &, valid UTF-8 without U+2028 or U+2029
// (which encoding/json escapes) — and through encoding/json otherwise.
// The ASCII bytes are looked up in a table, 8 at a time (ids and details
// are ASCII: an outage's answer is megabytes of them).
func appendJSONString(b []byte, s string) []byte {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if !jsonPlain[s[i]] || !jsonPlain[s[i+1]] || !jsonPlain[s[i+2]] || !jsonPlain[s[i+3]] ||
			!jsonPlain[s[i+4]] || !jsonPlain[s[i+5]] || !jsonPlain[s[i+6]] || !jsonPlain[s[i+7]] {
			break
		}
	}
	for ; i < len(s) && jsonPlain[s[i]]; i++ {
	}
	if i < len(s) && !plainUTF8(s[i:]) {
		q, _ := json.Marshal(s) // a string always encodes
		return append(b, q...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// jsonPlain says which ASCII bytes go into a JSON string as they are; no
// byte from utf8.RuneSelf up is in it (plainUTF8 judges those).
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// plainUTF8 says whether s, which holds a byte outside jsonPlain, goes into
// a JSON string as it is: its ASCII bytes all plain, valid UTF-8, and
// neither U+2028 nor U+2029.
func plainUTF8(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < utf8.RuneSelf && !jsonPlain[c] {
			return false
		}
	}
	return utf8.ValidString(s) && !strings.Contains(s, "\u2028") && !strings.Contains(s, "\u2029")
}

// appendJSONTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// as many fractional digits as it has).
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONTimeOrNull appends *t as appendJSONTime does, or null.
func appendJSONTimeOrNull(b []byte, t *time.Time) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	return appendJSONTime(b, *t)
}

// appendJSONFloatOrNull appends *f as appendJSONFloat does, or null.
func appendJSONFloatOrNull(b []byte, f *float64) ([]byte, error) {
	if f == nil {
		return append(b, "null"...), nil
	}
	return appendJSONFloat(b, *f)
}

// appendJSONFloat appends f as encoding/json does a float64.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, errJSONValue
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

// fieldRun keeps the escaped JSON of a row's outlet fields for the rows
// after it: rows come grouped by outlet, so most take them as they are.
// Others take them from known, the registry's outlets as written when it
// last changed (outletJSON), when the values are the same.
type fieldRun struct {
	known map[string]outletJSON // by outlet id; may be nil
	vals  [5]string
	n     int
	enc   []byte
}

// of returns `,"name":value` for each of names and vals (at most 5),
// escaped only when the values differ from the last call's and known does
// not hold them.
func (r *fieldRun) of(names []string, vals ...string) []byte {
	same := r.enc != nil && r.n == len(vals)
	for i := 0; same && i < len(vals); i++ {
		same = r.vals[i] == vals[i]
	}
	if same {
		return r.enc
	}
	r.n = copy(r.vals[:], vals)
	if e, ok := r.known[vals[0]]; ok && e.holds(names, vals) {
		r.enc = append(r.enc[:0], e.enc[:e.ends[len(vals)-1]]...)
		return r.enc
	}
	r.enc = r.enc[:0]
	for i, v := range vals {
		r.enc = appendJSONField(r.enc, names[i], v)
	}
	return r.enc
}

// appendJSONField appends `,"name":value`.
func appendJSONField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

// outletFields are an outlet's fields as the alerts (the first four) and
// the collection list write them.
var outletFields = []string{"outlet", "name", "district", "address", "operator"}

// outletJSON is an outlet's fields written as outletFields name them,
// once when the registry changes rather than in each request: a city's
// collection list is 20,000 bins whose outlets come in no order, and
// escaping their Chinese names and addresses again each time was a fifth
// of the request.
type outletJSON struct {
	vals [5]string // the values written: ID, Name, District, Address, Operator
	enc  []byte    // `,"outlet":…,"name":…,…,"operator":…`
	ends [5]int    // where each field ends in enc
}

func newOutletJSON(o *Outlet) outletJSON {
	e := outletJSON{vals: outletValues(o)}
	for i, v := range e.vals {
		e.enc = appendJSONField(e.enc, outletFields[i], v)
		e.ends[i] = len(e.enc)
	}
	return e
}

// outletValues are o's fields that outletFields name, in their order.
func outletValues(o *Outlet) [5]string {
	return [5]string{o.ID, o.Name, o.District, o.Address, o.Operator}
}

// holds says whether e has the first len(vals) fields, named names, with
// these values.
func (e *outletJSON) holds(names, vals []string) bool {
	if len(vals) == 0 || len(vals) > len(e.vals) || len(names) != len(vals) {
		return false
	}
	for i := range vals {
		if names[i] != outletFields[i] || e.vals[i] != vals[i] {
			return false
		}
	}
	return true
}

// sendBuilt answers with what build appends, written into the response's
// own body buffer, which fasthttp keeps in a pool: a city's alerts,
// collection list or export is megabytes, and a new buffer for each
// request set how often the GC marked the API's heap (every byte a
// request allocates brings the next mark of the whole heap closer). size
// is about how long the answer will be (0: unknown).
func sendBuilt(c *fiber.Ctx, contentType string, size int, build func([]byte) ([]byte, error)) error {
	buf := c.Response().SwapBody(nil)[:0]
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	body, err := build(buf)
	if err != nil {
		return err
	}
	c.Response().SwapBody(body)
	c.Set(fiber.HeaderContentType, contentType)
	return nil
}
