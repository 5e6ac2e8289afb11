package main

import "strconv"

// The collection list's answer written by hand: a city's list is up to
// every bin (20,000 at 10,000 outlets when the city has gone quiet), and
// encoding/json took about half of such a request (the outlets' Chinese
// names and addresses escaped rune by rune, time.Time's marshaler output
// validated again). appendCollectionsAnswer writes the same bytes as
// json.Marshal (TestCollectionsJSONIsEncodingJSON), each outlet's fields
// once for its bins (jsonappend.go).

// collectionOutletFields are the bin's outlet fields, in the struct's order.
var collectionOutletFields = outletFields

// appendCollectionsAnswer appends a as json.Marshal would.
func appendCollectionsAnswer(b []byte, a collectionsAnswer) ([]byte, error) {
	var err error
	b = append(b, `{"at":`...)
	b = appendJSONTime(b, a.At)
	b = append(b, `,"hours":`...)
	b = strconv.AppendInt(b, int64(a.Hours), 10)
	b = append(b, `,"full_pct":`...)
	if b, err = appendJSONFloat(b, a.FullPct); err != nil {
		return nil, err
	}
	b = append(b, `,"bins":`...)
	if a.Bins == nil {
		return append(b, "null}"...), nil
	}
	b = append(b, '[')
	outlet := fieldRun{known: a.known} // an outlet's bins often come one after another
	for i := range a.Bins {
		cb := &a.Bins[i]
		if i > 0 {
			b = append(b, ',')
		}
		// The first field opens the object: its comma becomes the brace.
		f := outlet.of(collectionOutletFields, cb.Outlet, cb.Name, cb.District, cb.Address, cb.Operator)
		b = append(b, '{')
		b = append(b, f[1:]...)
		b = append(b, `,"device":`...)
		b = appendJSONString(b, cb.Device)
		b = append(b, `,"fill_pct":`...)
		if b, err = appendJSONFloat(b, cb.FillPct); err != nil {
			return nil, err
		}
		b = append(b, `,"reported_at":`...)
		b = appendJSONTime(b, cb.ReportedAt)
		b = append(b, `,"rate_pct_per_hour":`...)
		if b, err = appendJSONFloatOrNull(b, cb.Rate); err != nil {
			return nil, err
		}
		b = append(b, `,"full_at":`...)
		b = appendJSONTimeOrNull(b, cb.FullAt)
		b = append(b, `,"state":`...)
		b = appendJSONString(b, cb.State)
		b = append(b, `,"confidence":`...)
		b = appendJSONString(b, cb.Confidence)
		b = append(b, '}')
	}
	return append(b, "]}"...), nil
}
