package metrics

import (
	"context"
	"sort"
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
// (an Engine's Outlets, or a cache in front of it). Outlets that share a
// judged window are asked together, so the usual case — no active_since,
// or one before from — is one call. Outlets with nothing left of w are not
// in the answer.
func OutletsJudged(ctx context.Context, ask func(context.Context, Window, []string) (map[string]Outlet, error), w Window, outlets []Judged) (map[string]Outlet, error) {
	byFrom := map[int64][]string{} // judged from, in ns
	for _, o := range outlets {
		jw, ok := JudgedWindow(w, o.ActiveSince)
		if ok {
			f := jw.From.UnixNano()
			byFrom[f] = append(byFrom[f], o.ID)
		}
	}
	froms := make([]int64, 0, len(byFrom))
	for f := range byFrom {
		froms = append(froms, f)
	}
	sort.Slice(froms, func(i, j int) bool { return froms[i] < froms[j] })
	out := make(map[string]Outlet, len(outlets))
	for _, f := range froms {
		from := w.From
		if f != w.From.UnixNano() {
			from = time.Unix(0, f).UTC()
		}
		res, err := ask(ctx, Window{From: from, To: w.To}, byFrom[f])
		if err != nil {
			return nil, err
		}
		for _, id := range byFrom[f] {
			if m, ok := res[id]; ok {
				out[id] = m
			}
		}
	}
	return out, nil
}
