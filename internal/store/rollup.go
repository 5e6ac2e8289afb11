package store

import (
	"github.com/greenpost/greenpost/internal/telemetry"
)

// AppendRollupRow appends one roll-up row: an outlet's encoded summary of
// the hour starting at hour (ns) under roll-up version v, with its serving
// and counting minutes. data nil writes a tombstone (the hour lost its
// data): empty data and zero minutes.
func AppendRollupRow(dst []byte, outlet, v string, hour int64, data []byte, serving, counting int64) []byte {
	l := telemetry.NewLine(dst, MeasurementRollup)
	l.Tag(telemetry.TagOutlet, outlet)
	l.Tag(TagRollupVersion, v)
	l.Base64(FieldRollupData, data)
	l.Int(FieldRollupServing, serving)
	l.Int(FieldRollupCounting, counting)
	return l.EndNS(hour)
}

// AppendRollupState appends the roll-up state of version v: the hours
// [from, to) are built, written at ns.
func AppendRollupState(dst []byte, v string, from, to, at int64) []byte {
	l := telemetry.NewLine(dst, MeasurementRollupState)
	l.Tag(TagRollupVersion, v)
	l.Int(FieldRollupBuiltFrom, from)
	l.Int(FieldRollupBuiltTo, to)
	return l.EndNS(at)
}
