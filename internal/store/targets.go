package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// TargetSetRecord is one dated set of targets as stored. Like the registry:
// every write is a whole record, the latest point of an id wins, and a
// delete is a record with Deleted set.
//
//	target_set,id=<id> name="..",source="..",valid_from="<RFC 3339>",valid_to="<RFC 3339 or empty>",targets="<JSON>",deleted=<bool> <ns>
//
// The targets are one JSON object (indicator → number, or null for "not
// judged"), so that a new indicator needs no new field.
type TargetSetRecord struct {
	ID, Name, Source string
	ValidFrom        time.Time
	ValidTo          time.Time // zero: open-ended
	Targets          map[string]*float64
	Deleted          bool
	Updated          time.Time // the point's time
}

// AppendTargetSet appends the line of one record.
func AppendTargetSet(dst []byte, r *TargetSetRecord) ([]byte, error) {
	vals, err := json.Marshal(r.Targets)
	if err != nil {
		return dst, fmt.Errorf("target set %s: %w", r.ID, err)
	}
	l := telemetry.NewLine(dst, MeasurementTargets)
	l.Tag(TagID, r.ID)
	l.String(FieldTargetsName, r.Name)
	l.String(FieldTargetsSource, r.Source)
	l.String(FieldTargetsValidFrom, rfc3339(r.ValidFrom))
	l.String(FieldTargetsValidTo, rfc3339(r.ValidTo))
	l.String(FieldTargetsValues, string(vals))
	l.Bool(FieldTargetsDeleted, r.Deleted)
	return l.End(r.Updated), nil
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// WriteTargetSets writes records in one request.
func (s *Store) WriteTargetSets(ctx context.Context, recs []TargetSetRecord) error {
	var buf []byte
	for i := range recs {
		var err error
		if buf, err = AppendTargetSet(buf, &recs[i]); err != nil {
			return err
		}
	}
	if err := s.Write(ctx, buf); err != nil {
		return fmt.Errorf("target sets write: %w", err)
	}
	return nil
}

// LoadTargetSets reads the latest record of every id, tombstones included.
func (s *Store) LoadTargetSets(ctx context.Context) ([]TargetSetRecord, error) {
	rows, err := s.latestByKey(ctx, MeasurementTargets, TagID)
	if err != nil {
		return nil, fmt.Errorf("target sets load: %w", err)
	}
	out := make([]TargetSetRecord, 0, len(rows))
	for _, row := range rows {
		r := TargetSetRecord{ID: row.Key, Updated: row.Time}
		r.Name, _ = row.Fields[FieldTargetsName].(string)
		r.Source, _ = row.Fields[FieldTargetsSource].(string)
		r.Deleted, _ = row.Fields[FieldTargetsDeleted].(bool)
		for _, f := range []struct {
			name string
			dst  *time.Time
		}{{FieldTargetsValidFrom, &r.ValidFrom}, {FieldTargetsValidTo, &r.ValidTo}} {
			v, _ := row.Fields[f.name].(string)
			if v == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, fmt.Errorf("target set %s: %s %q: %w", row.Key, f.name, v, err)
			}
			*f.dst = t.UTC()
		}
		if v, _ := row.Fields[FieldTargetsValues].(string); v != "" {
			if err := json.Unmarshal([]byte(v), &r.Targets); err != nil {
				return nil, fmt.Errorf("target set %s: targets %q: %w", row.Key, v, err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}
