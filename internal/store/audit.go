package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// AuditRecord is one successful write through the API:
//
//	audit,key=<key name> method="PUT",path="/v1/outlets/o-1",target="o-1",change="<JSON>" <ns>
//
// The key's name is a tag, so two keys writing at the same nanosecond keep
// both entries; one replica never stamps two entries with one time.
type AuditRecord struct {
	At                   time.Time
	Key                  string
	Method, Path, Target string
	Change               string // JSON
}

// AppendAudit appends the line of one record.
func AppendAudit(dst []byte, r *AuditRecord) []byte {
	l := telemetry.NewLine(dst, MeasurementAudit)
	l.Tag(TagAuditKey, r.Key)
	l.String(FieldAuditMethod, r.Method)
	l.String(FieldAuditPath, r.Path)
	l.String(FieldAuditTarget, r.Target)
	l.String(FieldAuditChange, r.Change)
	return l.End(r.At)
}

// WriteAudit writes one record.
func (s *Store) WriteAudit(ctx context.Context, r AuditRecord) error {
	if err := s.Write(ctx, AppendAudit(nil, &r)); err != nil {
		return fmt.Errorf("audit write: %w", err)
	}
	return nil
}

// ReadAudit returns up to limit records with from <= At < to, newest first
// (ties: key names in reverse order). A page after a record: pass its At
// and Key as before/beforeKey (the records that follow it in that order);
// a zero before reads from to.
func (s *Store) ReadAudit(ctx context.Context, from, to, before time.Time, beforeKey string, limit int) ([]AuditRecord, error) {
	stop := to
	if !before.IsZero() && before.Before(to) {
		stop = before.Add(time.Nanosecond) // the cursor's own time may hold more entries
	}
	if !from.Before(stop) || limit <= 0 {
		return nil, nil
	}
	// Ties at the cursor's time are few; read a few more than the page.
	flux := `from(bucket: ` + FluxString(s.cfg.Bucket) + `)
  |> range(start: ` + from.UTC().Format(time.RFC3339Nano) + `, stop: ` + stop.UTC().Format(time.RFC3339Nano) + `)
  |> filter(fn: (r) => r._measurement == "` + MeasurementAudit + `")
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> group()
  |> sort(columns: ["_time", "` + TagAuditKey + `"], desc: true)
  |> limit(n: ` + strconv.Itoa(limit+16) + `)`
	cols := []string{"_time", TagAuditKey, FieldAuditMethod, FieldAuditPath, FieldAuditTarget, FieldAuditChange}
	var out []AuditRecord
	err := s.FluxScan(ctx, flux, cols, func(v []string) error {
		t, err := time.Parse(time.RFC3339Nano, v[0])
		if err != nil {
			return fmt.Errorf("audit time %q: %w", v[0], err)
		}
		// InfluxDB 1.8's Flux returns points at the stop time too.
		if t.Before(from) || !t.Before(to) || (!before.IsZero() && (t.After(before) || t.Equal(before) && v[1] >= beforeKey)) {
			return nil
		}
		if len(out) < limit {
			out = append(out, AuditRecord{At: t.UTC(), Key: v[1], Method: v[2], Path: v[3], Target: v[4], Change: v[5]})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit read: %w", err)
	}
	return out, nil
}
