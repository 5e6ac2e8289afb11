package metrics

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// OutletsJudged puts each answer at its outlet's position, whichever
// judged window asked for it, and refuses an ask that answers short.
func TestOutletsJudgedByPosition(t *testing.T) {
	w := Window{From: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)}
	var calls int
	ask := func(_ context.Context, jw Window, ids []string) ([]Outlet, error) {
		calls++
		out := make([]Outlet, len(ids))
		for i, id := range ids {
			// An answer that names its outlet and window: BinsReporting
			// the id's number, WindowMinutes the judged window's.
			out[i] = Outlet{BinsReporting: int(id[1] - '0'), WindowMinutes: jw.Minutes()}
		}
		return out, nil
	}
	js := []Judged{
		{ID: "o1"},
		{ID: "o2", ActiveSince: w.From.Add(6 * time.Hour)},
		{ID: "o3", ActiveSince: w.To}, // nothing left
		{ID: "o4", ActiveSince: w.From.Add(-time.Hour)},
		{ID: "o5", ActiveSince: w.From.Add(6 * time.Hour)},
	}
	res, judged, err := OutletsJudged(context.Background(), ask, w, js)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		judged       bool
		bins, minute int
	}{{true, 1, 1440}, {true, 2, 1080}, {false, 0, 0}, {true, 4, 1440}, {true, 5, 1080}}
	for i, x := range want {
		if judged[i] != x.judged || res[i].BinsReporting != x.bins || res[i].WindowMinutes != x.minute {
			t.Errorf("%s: judged %v, %+v; want judged %v, bins %d over %d minutes", js[i].ID, judged[i], res[i], x.judged, x.bins, x.minute)
		}
	}
	if calls != 2 {
		t.Errorf("%d asks; want 2 (one per judged window)", calls)
	}

	short := func(_ context.Context, _ Window, ids []string) ([]Outlet, error) {
		return make([]Outlet, len(ids)-1), nil
	}
	for _, js := range [][]Judged{{{ID: "o1"}, {ID: "o2"}}, {{ID: "o1"}, {ID: "o2", ActiveSince: w.From.Add(time.Hour)}}} {
		if _, _, err := OutletsJudged(context.Background(), short, w, js); err == nil || !strings.Contains(err.Error(), "answers for") {
			t.Errorf("%d outlets, an ask answering one short: err %v", len(js), err)
		}
	}
}

// snapshot.hists finds each outlet's history whether the ids come sorted
// (walked beside the snapshot's names) or not (looked up), unknown ids
// and duplicates among them.
func TestSnapshotHists(t *testing.T) {
	s := &snapshot{outlets: map[string]*outletHist{}}
	for i := range 200 {
		if i%3 != 0 { // every third id unknown
			s.outlets[fmt.Sprintf("o-%04d", i)] = &outletHist{num: i}
		}
	}
	var ids []string
	for i := range 210 {
		ids = append(ids, fmt.Sprintf("o-%04d", i))
		if i%50 == 0 {
			ids = append(ids, fmt.Sprintf("o-%04d", i)) // twice
		}
	}
	ids = append([]string{"a-first"}, ids...)
	rev := slices.Clone(ids)
	slices.Reverse(rev)
	for _, ids := range [][]string{ids, rev, ids[:10]} {
		got := s.hists(ids)
		found := 0
		for i, id := range ids {
			if got[i] != s.outlets[id] {
				t.Fatalf("%s (#%d of %d): %v; want %v", id, i, len(ids), got[i], s.outlets[id])
			}
			if got[i] != nil {
				found++
			}
		}
		if found == 0 {
			t.Fatalf("%d ids: none found", len(ids))
		}
	}
}
