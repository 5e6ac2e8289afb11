package store

import (
	"context"
	"fmt"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// MaxFill returns, for each step of [from, to) starting at from (the last
// may be shorter), the highest fill_pct any bin of the outlet reported in
// it (nil for a step without a report). Raw points are bucketed here, so
// steps start at from whatever its alignment (Flux 0.65's windows align to
// the epoch).
func (s *Store) MaxFill(ctx context.Context, outlet string, from, to time.Time, step time.Duration) ([]*float64, error) {
	if step <= 0 || !from.Before(to) {
		return nil, fmt.Errorf("fill levels of %s: empty window or step", outlet)
	}
	flux := `from(bucket: ` + FluxString(s.cfg.Bucket) + `)
  |> range(start: ` + from.UTC().Format(time.RFC3339Nano) + `, stop: ` + to.UTC().Format(time.RFC3339Nano) + `)
  |> filter(fn: (r) => r._measurement == "` + telemetry.MeasurementBin + `" and r._field == "` + telemetry.FieldFillPct + `" and r.` + telemetry.TagOutlet + ` == ` + FluxString(outlet) + `)
  |> keep(columns: ["_time", "_value"])`
	rows, err := s.Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("fill levels of %s: %w", outlet, err)
	}
	out := make([]*float64, int((to.Sub(from)+step-1)/step))
	for _, r := range rows {
		t, ok1 := r["_time"].(time.Time)
		v, ok2 := r["_value"].(float64)
		if !ok1 || !ok2 || t.Before(from) || !t.Before(to) {
			continue
		}
		i := int(t.Sub(from) / step)
		if i >= len(out) {
			continue
		}
		if out[i] == nil || v > *out[i] {
			out[i] = &v
		}
	}
	return out, nil
}
