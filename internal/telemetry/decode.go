package telemetry

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Decode checks topic and payload against telemetry-v1 and returns the
// message. now is the receive time: ts is judged against it, and a status
// message without ts is stamped with it. An invalid message returns an *Error
// whose Reason says why. The returned Message shares no memory with payload
// but its Topic strings share memory with topic.
//
// Precedence when several things are wrong: topic, size, JSON syntax, then the
// first bad field in document order, then the first missing required field.
func Decode(topic string, payload []byte, now time.Time) (Message, error) {
	t, err := ParseTopic(topic)
	if err != nil {
		return Message{}, err
	}
	return DecodePayload(t, payload, now)
}

// DecodePayload is Decode for a topic that was already parsed.
func DecodePayload(t Topic, payload []byte, now time.Time) (Message, error) {
	if len(payload) > MaxPayload {
		return Message{}, invalid(ReasonTooLarge, "", strconv.Itoa(len(payload))+" bytes, max "+strconv.Itoa(MaxPayload))
	}
	if !utf8.Valid(payload) {
		return Message{}, invalid(ReasonBadJSON, "", "not UTF-8")
	}
	d := decoder{b: payload, now: now.UnixMilli(), msg: Message{Topic: t}}
	d.top()
	if d.syntax != "" {
		return Message{}, invalid(ReasonBadJSON, "", d.syntax+" at offset "+strconv.Itoa(d.i))
	}
	if d.err != nil {
		return Message{}, d.err
	}
	if f := d.missing(); f != "" {
		return Message{}, invalid(ReasonMissingField, f, "")
	}
	if t.Channel == ChannelStatus && d.seen&seenTS == 0 {
		d.msg.TS = d.now
	}
	return d.msg, nil
}

// Bits of decoder.seen, one per known key.
const (
	seenTS uint16 = 1 << iota
	seenSeq
	seenBoot
	seenFill
	seenDeposits
	seenWeight
	seenBattery
	seenRSSI
	seenEmptied
	seenParcels
	seenBoxes
	seenState
	seenFW
)

type decoder struct {
	b         []byte
	i         int
	now       int64 // receive time, ms
	msg       Message
	seen      uint16 // known keys seen, to find duplicates and missing keys
	classSeen uint8  // classes seen inside parcels
	err       *Error // first semantic error; parsing goes on to find syntax errors
	syntax    string // first syntax error; parsing stops
}

func (d *decoder) fail(r Reason, field, detail string) {
	if d.err == nil {
		d.err = invalid(r, field, detail)
	}
}

func (d *decoder) bad(msg string) bool {
	if d.syntax == "" {
		d.syntax = msg
	}
	return false
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// top parses the whole payload: one object and nothing after it.
func (d *decoder) top() {
	d.ws()
	if d.i >= len(d.b) {
		d.bad("empty payload")
		return
	}
	if d.b[d.i] != '{' {
		if d.skipValue() {
			d.ws()
			if d.i != len(d.b) {
				d.bad("data after the value")
				return
			}
			d.fail(ReasonNotObject, "", "want a JSON object")
		}
		return
	}
	if !d.object(objTop) {
		return
	}
	d.ws()
	if d.i != len(d.b) {
		d.bad("data after the object")
	}
}

// What object does with the members of an object. A switch, not a callback,
// keeps the key buffer on the stack.
type objKind uint8

const (
	objSkip    objKind = iota // any object: check syntax only
	objTop                    // the message itself
	objParcels                // the counter's parcels
)

// object parses an object starting at '{' and hands each member's value to
// the reader for kind, which consumes it.
func (d *decoder) object(kind objKind) bool {
	d.i++ // '{'
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return true
	}
	var buf [32]byte
	for {
		d.ws()
		key, ok := d.str(buf[:0])
		if !ok {
			return false
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return d.bad("want ':'")
		}
		d.i++
		d.ws()
		switch kind {
		case objTop:
			ok = d.topKey(key)
		case objParcels:
			ok = d.parcel(key)
		default:
			ok = d.skipValue()
		}
		if !ok {
			return false
		}
		d.ws()
		if d.i >= len(d.b) {
			return d.bad("unterminated object")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return true
		default:
			return d.bad("want ',' or '}'")
		}
	}
}

// once marks a known key as seen and reports a duplicate.
func (d *decoder) once(bit uint16, field string) {
	if d.seen&bit != 0 {
		d.fail(ReasonDuplicateKey, field, "")
	}
	d.seen |= bit
}

func (d *decoder) topKey(key []byte) bool {
	t := d.msg.Topic
	if t.Channel == ChannelStatus {
		switch string(key) {
		case "state":
			d.once(seenState, "state")
			s, ok := d.stringValue("state")
			switch {
			case !ok:
			case string(s) == StateOnline:
				d.msg.Status.State = StateOnline
			case string(s) == StateOffline:
				d.msg.Status.State = StateOffline
			default:
				d.fail(ReasonBadValue, "state", "want online or offline")
			}
			return d.syntax == ""
		case "ts":
			d.once(seenTS, "ts")
			return d.ts()
		case "fw":
			d.once(seenFW, "fw")
			s, ok := d.stringValue("fw")
			if ok {
				if validFW(s) {
					d.msg.Status.FW = string(s)
				} else {
					d.fail(ReasonBadValue, "fw", "want 1 to 64 of [A-Za-z0-9._+-]")
				}
			}
			return d.syntax == ""
		}
		return d.skipValue()
	}
	switch string(key) {
	case "ts":
		d.once(seenTS, "ts")
		return d.ts()
	case "seq":
		d.once(seenSeq, "seq")
		d.msg.Seq, _ = d.intValue("seq")
	case "boot":
		d.once(seenBoot, "boot")
		d.msg.Boot, _ = d.intValue("boot")
	default:
		if t.Kind == KindBin {
			return d.binKey(key)
		}
		return d.counterKey(key)
	}
	return d.syntax == ""
}

func (d *decoder) binKey(key []byte) bool {
	r := &d.msg.Bin
	switch string(key) {
	case "fill_pct":
		d.once(seenFill, "fill_pct")
		r.FillPct, _ = d.floatValue("fill_pct", 0, 100)
	case "deposits":
		d.once(seenDeposits, "deposits")
		r.Deposits, _ = d.intValue("deposits")
	case "weight_kg":
		d.once(seenWeight, "weight_kg")
		if v, ok := d.floatValue("weight_kg", 0, math.MaxFloat64); ok {
			r.WeightKg, r.Has = v, r.Has|HasWeight
		}
	case "battery_pct":
		d.once(seenBattery, "battery_pct")
		if v, ok := d.floatValue("battery_pct", 0, 100); ok {
			r.BatteryPct, r.Has = v, r.Has|HasBattery
		}
	case "rssi_dbm":
		d.once(seenRSSI, "rssi_dbm")
		if v, ok := d.floatValue("rssi_dbm", -150, 0); ok {
			r.RSSIdBm, r.Has = v, r.Has|HasRSSI
		}
	case "emptied":
		d.once(seenEmptied, "emptied")
		if v, ok := d.boolValue("emptied"); ok {
			r.Emptied, r.Has = v, r.Has|HasEmptied
		}
	default:
		return d.skipValue()
	}
	return d.syntax == ""
}

func (d *decoder) counterKey(key []byte) bool {
	switch string(key) {
	case "parcels":
		d.once(seenParcels, "parcels")
		if d.i < len(d.b) && d.b[d.i] == '{' {
			d.classSeen = 0
			return d.object(objParcels)
		}
		if d.skipValue() {
			d.fail(ReasonWrongType, "parcels", "want an object")
		}
	case "boxes_recovered":
		d.once(seenBoxes, "boxes_recovered")
		if v, ok := d.intValue("boxes_recovered"); ok {
			d.msg.Counter.BoxesRecovered, d.msg.Counter.HasBoxes = v, true
		}
	default:
		return d.skipValue()
	}
	return d.syntax == ""
}

func (d *decoder) parcel(key []byte) bool {
	c, ok := classByKey(key)
	if !ok {
		if d.skipValue() {
			d.fail(ReasonUnknownClass, "parcels."+string(key), "want one of the seven classes")
		}
		return d.syntax == ""
	}
	field := parcelFields[c]
	if d.classSeen&(1<<c) != 0 {
		d.fail(ReasonDuplicateKey, field, "")
	}
	d.classSeen |= 1 << c
	d.msg.Counter.Parcels[c], _ = d.intValue(field)
	return d.syntax == ""
}

var parcelFields = [NumClasses]string{
	"parcels.reusable", "parcels.recyclable", "parcels.biodegradable", "parcels.original",
	"parcels.plastic", "parcels.foam", "parcels.other",
}

func classByKey(key []byte) (Class, bool) {
	switch string(key) {
	case "reusable":
		return Reusable, true
	case "recyclable":
		return Recyclable, true
	case "biodegradable":
		return Biodegradable, true
	case "original":
		return Original, true
	case "plastic":
		return Plastic, true
	case "foam":
		return Foam, true
	case "other":
		return Other, true
	}
	return 0, false
}

func (d *decoder) ts() bool {
	v, ok := d.intValue("ts")
	if !ok {
		return d.syntax == ""
	}
	switch {
	case v-d.now > MaxFuture.Milliseconds():
		d.fail(ReasonTSFuture, "ts", "more than 24h ahead of the receive time")
	case d.now-v > MaxPast.Milliseconds():
		d.fail(ReasonTSPast, "ts", "more than 30 days behind the receive time")
	default:
		d.msg.TS = v
	}
	return true
}

// missing returns the first required key that was not seen.
func (d *decoder) missing() string {
	type req struct {
		bit  uint16
		name string
	}
	var reqs []req
	switch {
	case d.msg.Topic.Channel == ChannelStatus:
		reqs = []req{{seenState, "state"}}
	case d.msg.Topic.Kind == KindBin:
		reqs = []req{{seenTS, "ts"}, {seenSeq, "seq"}, {seenBoot, "boot"}, {seenFill, "fill_pct"}, {seenDeposits, "deposits"}}
	default:
		reqs = []req{{seenTS, "ts"}, {seenSeq, "seq"}, {seenBoot, "boot"}, {seenParcels, "parcels"}}
	}
	for _, r := range reqs {
		if d.seen&r.bit == 0 {
			return r.name
		}
	}
	return ""
}

func validFW(s []byte) bool {
	if len(s) == 0 || len(s) > MaxFWLen {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '+', c == '-':
		default:
			return false
		}
	}
	return true
}

// ---- typed values. Each consumes one value; on a type or range error it
// records the error and reports ok=false, leaving syntax errors in d.syntax.

// number scans a JSON number and reports whether it is an int (no fraction,
// no exponent).
func (d *decoder) number() (raw []byte, isInt bool, ok bool) {
	start := d.i
	b := d.b
	if d.i < len(b) && b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(b) && b[d.i] == '0':
		d.i++
	case d.i < len(b) && b[d.i] >= '1' && b[d.i] <= '9':
		for d.i < len(b) && b[d.i] >= '0' && b[d.i] <= '9' {
			d.i++
		}
	default:
		return nil, false, d.bad("bad number")
	}
	isInt = true
	if d.i < len(b) && b[d.i] == '.' {
		isInt = false
		d.i++
		n := d.i
		for d.i < len(b) && b[d.i] >= '0' && b[d.i] <= '9' {
			d.i++
		}
		if d.i == n {
			return nil, false, d.bad("bad number")
		}
	}
	if d.i < len(b) && (b[d.i] == 'e' || b[d.i] == 'E') {
		isInt = false
		d.i++
		if d.i < len(b) && (b[d.i] == '+' || b[d.i] == '-') {
			d.i++
		}
		n := d.i
		for d.i < len(b) && b[d.i] >= '0' && b[d.i] <= '9' {
			d.i++
		}
		if d.i == n {
			return nil, false, d.bad("bad number")
		}
	}
	return b[start:d.i], isInt, true
}

// isNumberStart reports whether the next value is a number.
func (d *decoder) isNumberStart() bool {
	if d.i >= len(d.b) {
		return false
	}
	c := d.b[d.i]
	return c == '-' || (c >= '0' && c <= '9')
}

// intValue reads an int ≥ 0 that fits in int64.
func (d *decoder) intValue(field string) (int64, bool) {
	if !d.isNumberStart() {
		if d.skipValue() {
			d.fail(ReasonWrongType, field, "want an integer")
		}
		return 0, false
	}
	raw, isInt, ok := d.number()
	if !ok {
		return 0, false
	}
	if !isInt {
		d.fail(ReasonWrongType, field, "want an integer, not a fraction or exponent")
		return 0, false
	}
	neg := raw[0] == '-'
	if neg {
		raw = raw[1:]
	}
	var v int64
	for _, c := range raw {
		if v > (math.MaxInt64-int64(c-'0'))/10 {
			d.fail(ReasonOutOfRange, field, "too large")
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg && v != 0 {
		d.fail(ReasonOutOfRange, field, "want ≥ 0")
		return 0, false
	}
	return v, true
}

// floatValue reads a finite number within [min, max].
func (d *decoder) floatValue(field string, min, max float64) (float64, bool) {
	if !d.isNumberStart() {
		if d.skipValue() {
			d.fail(ReasonWrongType, field, "want a number")
		}
		return 0, false
	}
	raw, _, ok := d.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(unsafeBytesToString(raw), 64)
	if err != nil || math.IsInf(v, 0) || v < min || v > max {
		d.fail(ReasonOutOfRange, field, "want "+strconv.FormatFloat(min, 'g', -1, 64)+".."+strconv.FormatFloat(max, 'g', -1, 64))
		return 0, false
	}
	return v, true
}

func (d *decoder) boolValue(field string) (bool, bool) {
	switch {
	case d.lit("true"):
		return true, true
	case d.lit("false"):
		return false, true
	}
	if d.skipValue() {
		d.fail(ReasonWrongType, field, "want true or false")
	}
	return false, false
}

// stringValue reads a string; the result is valid until the next call.
func (d *decoder) stringValue(field string) ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		if d.skipValue() {
			d.fail(ReasonWrongType, field, "want a string")
		}
		return nil, false
	}
	s, ok := d.str(nil)
	return s, ok
}

func (d *decoder) lit(word string) bool {
	if len(d.b)-d.i >= len(word) && string(d.b[d.i:d.i+len(word)]) == word {
		d.i += len(word)
		return true
	}
	return false
}

// str scans a string at d.i. Without escapes it returns a slice of the
// payload; with escapes it unescapes into buf (growing it as needed).
func (d *decoder) str(buf []byte) ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, d.bad("want a string")
	}
	d.i++
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return d.b[start : d.i-1], true
		case c == '\\':
			return d.strEscaped(append(buf, d.b[start:d.i]...))
		case c < 0x20:
			return nil, d.bad("control character in string")
		}
		d.i++
	}
	return nil, d.bad("unterminated string")
}

func (d *decoder) strEscaped(out []byte) ([]byte, bool) {
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return out, true
		case c < 0x20:
			return nil, d.bad("control character in string")
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		d.i++ // backslash
		if d.i >= len(d.b) {
			break
		}
		e := d.b[d.i]
		d.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return nil, false
			}
			if utf16IsSurrogate(r) {
				// A valid pair decodes to one rune; a lone half becomes U+FFFD, as in encoding/json.
				if r < 0xDC00 && len(d.b)-d.i >= 6 && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					r2, ok := d.hex4()
					if !ok {
						return nil, false
					}
					if r2 >= 0xDC00 && r2 < 0xE000 {
						r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
					} else {
						d.i = save
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, d.bad("bad escape")
		}
	}
	return nil, d.bad("unterminated string")
}

func utf16IsSurrogate(r rune) bool { return r >= 0xD800 && r < 0xE000 }

func (d *decoder) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, d.bad("bad \\u escape")
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, d.bad("bad \\u escape")
		}
	}
	d.i += 4
	return r, true
}

// skipValue consumes any JSON value, checking its syntax. Recursion is
// bounded by MaxPayload: at most 2048 levels of nesting fit in 4 KiB.
func (d *decoder) skipValue() bool {
	if d.i >= len(d.b) {
		return d.bad("want a value")
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(objSkip)
	case c == '[':
		return d.array()
	case c == '"':
		_, ok := d.str(nil)
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		_, _, ok := d.number()
		return ok
	case d.lit("true"), d.lit("false"), d.lit("null"):
		return true
	}
	return d.bad("want a value")
}

func (d *decoder) array() bool {
	d.i++ // '['
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return true
	}
	for {
		d.ws()
		if !d.skipValue() {
			return false
		}
		d.ws()
		if d.i >= len(d.b) {
			return d.bad("unterminated array")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return true
		default:
			return d.bad("want ',' or ']'")
		}
	}
}

// unsafeBytesToString views b as a string without copying; the caller must
// not keep the string past b's lifetime.
func unsafeBytesToString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
