package metrics

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Outlets that joined during a window (metrics-v1 v1.1): an outlet may have
// an active_since, the moment it and its devices went into service. It is
// judged on [max(from, active_since), to) only; one whose active_since is
// at or after to is left out of the window's roll-ups.

// JudgedWindow is the part of w an outlet with the given active_since
// (zero: always) is judged on. A since inside a minute counts from the next
// whole minute: minutes before it are neither serving nor missing. ok is
// false when nothing of w is left (since at or after to).
func JudgedWindow(w Window, since time.Time) (judged Window, ok bool) {
	if since.IsZero() || !since.After(w.From) {
		return w, true
	}
	from := since.UTC().Truncate(time.Minute)
	if from.Before(since) {
		from = from.Add(time.Minute)
	}
	if !from.Before(w.To) {
		return Window{}, false
	}
	return Window{From: from, To: w.To}, true
}

// Judged is an outlet to answer, with its active_since (zero: always).
type Judged struct {
	ID          string
	ActiveSince time.Time
}

// OutletsJudged answers each outlet over its judged window through ask
// (an Engine's Outlets, or a cache in front of it): res[i] is outlets[i]'s
// answer, judged[i] false when nothing of w is left for it (res[i] is then
// zero and it is left out of roll-ups). Outlets that share a judged window
// are asked together, so the usual case — no active_since, or one before
// from — is one call, whose answer is returned as it is.
func OutletsJudged(ctx context.Context, ask func(context.Context, Window, []string) ([]Outlet, error), w Window, outlets []Judged) (res []Outlet, judged []bool, err error) {
	judged = make([]bool, len(outlets))
	from := make([]int64, len(outlets)) // judged from, in ns
	all := true                         // every outlet judged on w itself
	for i, o := range outlets {
		jw, ok := JudgedWindow(w, o.ActiveSince)
		judged[i], from[i] = ok, jw.From.UnixNano()
		all = all && ok && jw.From.Equal(w.From)
	}
	ids := make([]string, len(outlets))
	for i := range outlets {
		ids[i] = outlets[i].ID
	}
	if all {
		res, err := ask(ctx, w, ids)
		if err == nil && len(res) != len(ids) {
			err = fmt.Errorf("metrics: %d answers for %d outlets", len(res), len(ids))
		}
		return res, judged, err
	}
	byFrom := map[int64][]int{} // judged from → indices into outlets
	for i := range outlets {
		if judged[i] {
			byFrom[from[i]] = append(byFrom[from[i]], i)
		}
	}
	froms := slices.Sorted(maps.Keys(byFrom))
	res = make([]Outlet, len(outlets))
	for _, f := range froms {
		jw := Window{From: time.Unix(0, f).UTC(), To: w.To}
		if f == w.From.UnixNano() {
			jw.From = w.From
		}
		idx := byFrom[f]
		part := make([]string, len(idx))
		for k, i := range idx {
			part[k] = ids[i]
		}
		got, err := ask(ctx, jw, part)
		if err != nil {
			return nil, nil, err
		}
		if len(got) != len(part) {
			return nil, nil, fmt.Errorf("metrics: %d answers for %d outlets", len(got), len(part))
		}
		for k, i := range idx {
			res[i] = got[k]
		}
	}
	return res, judged, nil
}
