package store

import (
	"context"
	"fmt"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// OutletRecord is one outlet of the registry as stored. Every write is a
// whole record; the latest point of an id wins (last writer wins), and a
// delete is a record with Deleted set (a tombstone).
//
//	outlet_registry,id=<id> name="..",district="..",address="..",operator="..",lat=..,lon=..,active=<bool>,active_since="<RFC 3339 or empty>",deleted=<bool> <ns>
type OutletRecord struct {
	ID, Name, District, Address, Operator string
	Lat, Lon                              float64
	Active                                bool
	ActiveSince                           time.Time // zero: always
	Deleted                               bool
	Updated                               time.Time // the point's time
}

// AppendOutlet appends the line of one record.
func AppendOutlet(dst []byte, o *OutletRecord) []byte {
	l := telemetry.NewLine(dst, MeasurementRegistry)
	l.Tag(TagID, o.ID)
	l.String(FieldRegistryName, o.Name)
	l.String(FieldRegistryDistrict, o.District)
	l.String(FieldRegistryAddress, o.Address)
	l.String(FieldRegistryOperator, o.Operator)
	l.Float(FieldRegistryLat, o.Lat)
	l.Float(FieldRegistryLon, o.Lon)
	l.Bool(FieldRegistryActive, o.Active)
	since := ""
	if !o.ActiveSince.IsZero() {
		since = o.ActiveSince.UTC().Format(time.RFC3339Nano)
	}
	// Written even when empty: the latest point must clear an older value.
	l.String(FieldRegistrySince, since)
	l.Bool(FieldRegistryDeleted, o.Deleted)
	return l.End(o.Updated)
}

// WriteOutlets writes records in one request.
func (s *Store) WriteOutlets(ctx context.Context, recs []OutletRecord) error {
	var buf []byte
	for i := range recs {
		buf = AppendOutlet(buf, &recs[i])
	}
	if err := s.Write(ctx, buf); err != nil {
		return fmt.Errorf("registry write: %w", err)
	}
	return nil
}

// LoadOutlets reads the latest record of every id, tombstones included.
func (s *Store) LoadOutlets(ctx context.Context) ([]OutletRecord, error) {
	rows, err := s.latestByKey(ctx, MeasurementRegistry, TagID)
	if err != nil {
		return nil, fmt.Errorf("registry load: %w", err)
	}
	out := make([]OutletRecord, 0, len(rows))
	for _, r := range rows {
		o := OutletRecord{ID: r.Key, Updated: r.Time}
		o.Name, _ = r.Fields[FieldRegistryName].(string)
		o.District, _ = r.Fields[FieldRegistryDistrict].(string)
		o.Address, _ = r.Fields[FieldRegistryAddress].(string)
		o.Operator, _ = r.Fields[FieldRegistryOperator].(string)
		o.Lat, _ = r.Fields[FieldRegistryLat].(float64)
		o.Lon, _ = r.Fields[FieldRegistryLon].(float64)
		o.Active, _ = r.Fields[FieldRegistryActive].(bool)
		o.Deleted, _ = r.Fields[FieldRegistryDeleted].(bool)
		if v, _ := r.Fields[FieldRegistrySince].(string); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, fmt.Errorf("registry load: outlet %s: active_since %q: %w", r.Key, v, err)
			}
			o.ActiveSince = t.UTC()
		}
		out = append(out, o)
	}
	return out, nil
}
