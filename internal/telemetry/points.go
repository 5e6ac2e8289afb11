package telemetry

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// The names of storage-v1, declared once: AppendPoint writes them, and the
// readers of the data (internal/metrics, internal/store) ask for them.
// The project's own measurements (registry, roll-up) are internal/store's.
const (
	MeasurementBin        = "bin"
	MeasurementCounter    = "counter"
	MeasurementStatus     = "device_status"
	MeasurementDeadLetter = "deadletter"

	TagOutlet = "outlet"
	TagDevice = "device"
	TagBoot   = "boot"
	TagKind   = "kind"
	TagReason = "reason"

	FieldFillPct        = "fill_pct"
	FieldDeposits       = "deposits"
	FieldSeq            = "seq"
	FieldWeightKg       = "weight_kg"
	FieldBatteryPct     = "battery_pct"
	FieldRSSIdBm        = "rssi_dbm"
	FieldEmptied        = "emptied"
	FieldBoxesRecovered = "boxes_recovered"
	FieldState          = "state"
	FieldFW             = "fw"
	FieldTopic          = "topic"
	FieldPayload        = "payload"
)

// DeadLetterPayloadMax is how many payload bytes a dead letter keeps.
const DeadLetterPayloadMax = 256

// AppendPoint appends the storage-v1 point of a valid message to dst as one
// line of InfluxDB line protocol (nanosecond precision), ending in '\n'.
//
// Tag values come only from the checked topic, so they never need escaping.
// Tags are written in key order, as InfluxDB prefers.
func AppendPoint(dst []byte, m *Message) []byte {
	t := &m.Topic
	if t.Channel == ChannelStatus {
		dst = append(dst, MeasurementStatus+","+TagDevice+"="...)
		dst = append(dst, t.Device...)
		dst = append(dst, ","+TagKind+"="...)
		dst = append(dst, t.Kind.String()...)
		dst = append(dst, ","+TagOutlet+"="...)
		dst = append(dst, t.Outlet...)
		dst = append(dst, " "+FieldState+"=\""...)
		dst = append(dst, m.Status.State...) // online|offline: nothing to escape
		dst = append(dst, '"')
		if m.Status.FW != "" {
			dst = append(dst, ","+FieldFW+"=\""...)
			dst = append(dst, m.Status.FW...) // [A-Za-z0-9._+-]: nothing to escape
			dst = append(dst, '"')
		}
		return appendTime(dst, m.TS*int64(time.Millisecond))
	}
	if t.Kind == KindBin {
		dst = append(dst, MeasurementBin...)
	} else {
		dst = append(dst, MeasurementCounter...)
	}
	dst = append(dst, ","+TagBoot+"="...)
	dst = strconv.AppendInt(dst, m.Boot, 10)
	dst = append(dst, ","+TagDevice+"="...)
	dst = append(dst, t.Device...)
	dst = append(dst, ","+TagOutlet+"="...)
	dst = append(dst, t.Outlet...)
	if t.Kind == KindBin {
		r := &m.Bin
		dst = appendFloatField(dst, " "+FieldFillPct+"=", r.FillPct)
		dst = appendIntField(dst, ","+FieldDeposits+"=", r.Deposits)
		dst = appendIntField(dst, ","+FieldSeq+"=", m.Seq)
		if r.Has&HasWeight != 0 {
			dst = appendFloatField(dst, ","+FieldWeightKg+"=", r.WeightKg)
		}
		if r.Has&HasBattery != 0 {
			dst = appendFloatField(dst, ","+FieldBatteryPct+"=", r.BatteryPct)
		}
		if r.Has&HasRSSI != 0 {
			dst = appendFloatField(dst, ","+FieldRSSIdBm+"=", r.RSSIdBm)
		}
		if r.Has&HasEmptied != 0 {
			dst = append(dst, ","+FieldEmptied+"="...)
			dst = strconv.AppendBool(dst, r.Emptied)
		}
	} else {
		c := &m.Counter
		sep := " "
		for i, name := range ClassNames {
			dst = append(dst, sep...)
			dst = append(dst, name...)
			dst = append(dst, '=')
			dst = strconv.AppendInt(dst, c.Parcels[i], 10)
			dst = append(dst, 'i')
			sep = ","
		}
		dst = appendIntField(dst, ","+FieldSeq+"=", m.Seq)
		if c.HasBoxes {
			dst = appendIntField(dst, ","+FieldBoxesRecovered+"=", c.BoxesRecovered)
		}
	}
	return appendTime(dst, m.TS*int64(time.Millisecond))
}

// AppendDeadLetter appends the dead-letter point of an invalid message: its
// reason, its topic and the first DeadLetterPayloadMax bytes of its payload,
// stamped with the receive time in nanoseconds so that dead letters never
// overwrite each other.
func AppendDeadLetter(dst []byte, reason Reason, topic string, payload []byte, received time.Time) []byte {
	dst = append(dst, MeasurementDeadLetter+","+TagReason+"="...)
	dst = append(dst, reason...) // [a-z_]: nothing to escape
	dst = append(dst, " "+FieldTopic+"=\""...)
	dst = appendLPString(dst, topic, DeadLetterPayloadMax)
	dst = append(dst, "\","+FieldPayload+"=\""...)
	dst = appendLPString(dst, unsafeBytesToString(payload), DeadLetterPayloadMax)
	dst = append(dst, '"')
	return appendTime(dst, received.UnixNano())
}

// TruncateUTF8 returns the first max bytes of s cut back to a whole
// character, with invalid UTF-8 replaced by U+FFFD.
func TruncateUTF8(s string, max int) string {
	return string(appendTruncated(nil, s, max, false))
}

// appendLPString appends s as the inside of a line-protocol string field.
func appendLPString(dst []byte, s string, max int) []byte {
	return appendTruncated(dst, s, max, true)
}

func appendTruncated(dst []byte, s string, max int, escape bool) []byte {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if i+size > max {
			break
		}
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, "\uFFFD"...)
		case escape && (r == '"' || r == '\\'):
			dst = append(dst, '\\', byte(r))
		case size == 1:
			dst = append(dst, byte(r))
		default:
			dst = append(dst, s[i-size:i]...)
		}
	}
	return dst
}

func appendFloatField(dst []byte, key string, v float64) []byte {
	dst = append(dst, key...)
	// 'f' never writes an exponent; a float field needs no suffix.
	return strconv.AppendFloat(dst, v, 'f', -1, 64)
}

func appendIntField(dst []byte, key string, v int64) []byte {
	dst = append(dst, key...)
	dst = strconv.AppendInt(dst, v, 10)
	return append(dst, 'i')
}

func appendTime(dst []byte, ns int64) []byte {
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, ns, 10)
	return append(dst, '\n')
}
