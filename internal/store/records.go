package store

import (
	"context"
	"fmt"
	"time"
)

// keyedRow is the latest point of one key of a keyed measurement: its
// fields as InfluxDB answers them (string, float64, int64 or bool) and the
// latest time of any of them.
type keyedRow struct {
	Key    string
	Time   time.Time
	Fields map[string]any
}

// latestByKey reads the latest value of every field of every key of a
// measurement in this store's bucket (all time). Writers of keyed
// measurements write every field with every point, so the fields of a key
// all come from its latest point.
func (s *Store) latestByKey(ctx context.Context, measurement, key string) ([]keyedRow, error) {
	flux := `from(bucket: ` + FluxString(s.cfg.Bucket) + `)
  |> range(start: 1970-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == ` + FluxString(measurement) + `)
  |> last()`
	rows, err := s.Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", measurement, err)
	}
	byKey := map[string]*keyedRow{}
	var out []keyedRow
	order := []string{}
	for _, row := range rows {
		k, _ := row[key].(string)
		if k == "" {
			continue
		}
		kr := byKey[k]
		if kr == nil {
			kr = &keyedRow{Key: k, Fields: map[string]any{}}
			byKey[k] = kr
			order = append(order, k)
		}
		if t, ok := row["_time"].(time.Time); ok && t.After(kr.Time) {
			kr.Time = t.UTC()
		}
		if f, ok := row["_field"].(string); ok {
			kr.Fields[f] = row["_value"]
		}
	}
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out, nil
}
