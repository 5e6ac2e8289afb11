package telemetry

import (
	"encoding/base64"
	"strconv"
	"time"
)

// The one line-protocol writer of the project: AppendPoint uses it for
// storage-v1, internal/store for the project's own measurements. Escaping
// lives only here (a tag value escapes , space = and \; a string field
// escapes " and \ and carries valid UTF-8).

// Line builds one line of line protocol: New, then Tag in key order, then
// fields, then End. The zero Line is not usable.
type Line struct {
	buf    []byte
	fields int
}

// NewLine starts a line of the measurement (a name with nothing to escape)
// at the end of dst.
func NewLine(dst []byte, measurement string) Line {
	return Line{buf: append(dst, measurement...)}
}

// Tag adds a tag; the value is escaped.
func (l *Line) Tag(key, value string) {
	l.buf = append(l.buf, ',')
	l.buf = append(l.buf, key...)
	l.buf = append(l.buf, '=')
	l.buf = AppendTagValue(l.buf, value)
}

func (l *Line) field(key string) {
	if l.fields == 0 {
		l.buf = append(l.buf, ' ')
	} else {
		l.buf = append(l.buf, ',')
	}
	l.fields++
	l.buf = append(l.buf, key...)
	l.buf = append(l.buf, '=')
}

// String adds a string field; the value is escaped (and invalid UTF-8
// replaced by U+FFFD).
func (l *Line) String(key, value string) {
	l.field(key)
	l.buf = append(l.buf, '"')
	l.buf = appendLPString(l.buf, value, len(value))
	l.buf = append(l.buf, '"')
}

// Base64 adds a string field holding the standard base64 of data (which
// needs no escaping), encoded straight into the line.
func (l *Line) Base64(key string, data []byte) {
	l.field(key)
	l.buf = append(l.buf, '"')
	l.buf = base64.StdEncoding.AppendEncode(l.buf, data)
	l.buf = append(l.buf, '"')
}

// Float adds a float field.
func (l *Line) Float(key string, v float64) {
	l.field(key)
	l.buf = strconv.AppendFloat(l.buf, v, 'f', -1, 64)
}

// Int adds an integer field.
func (l *Line) Int(key string, v int64) {
	l.field(key)
	l.buf = strconv.AppendInt(l.buf, v, 10)
	l.buf = append(l.buf, 'i')
}

// Bool adds a boolean field.
func (l *Line) Bool(key string, v bool) {
	l.field(key)
	l.buf = strconv.AppendBool(l.buf, v)
}

// End adds the time (ns) and the newline and returns the buffer.
func (l *Line) End(t time.Time) []byte { return appendTime(l.buf, t.UnixNano()) }

// EndNS is End with a time in nanoseconds.
func (l *Line) EndNS(ns int64) []byte { return appendTime(l.buf, ns) }

// AppendTagValue appends s escaped as a line-protocol tag value.
func AppendTagValue(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ',', ' ', '=', '\\':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
