package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// outletInput is the JSON body of PUT /v1/outlets/{id} and one element of a
// JSON import. Pointers tell a missing key from a zero value.
type outletInput struct {
	ID       *string  `json:"id"`
	Name     string   `json:"name"`
	District string   `json:"district"`
	Address  string   `json:"address"`
	Lat      *float64 `json:"lat"`
	Lon      *float64 `json:"lon"`
	Operator string   `json:"operator"`
	Active   *bool    `json:"active"`
	// ActiveSince is RFC 3339; absent, null or "": always.
	ActiveSince *string `json:"active_since"`
	Updated     any     `json:"updated"` // accepted so a GET answer can be PUT back; ignored
}

// outlet turns the input into an Outlet; id is the path's id (or "" for an
// import, where the body's id is required). It returns every problem of
// the input's shape (the registry's rules are checked on the Outlet).
func (in *outletInput) outlet(id string) (Outlet, []fieldProblem) {
	o := Outlet{ID: id, Name: in.Name, District: in.District, Address: in.Address, Operator: in.Operator, Active: true}
	var ps []fieldProblem
	switch {
	case in.ID != nil && id != "" && *in.ID != id:
		ps = append(ps, fieldProblem{"id", fmt.Sprintf("the body's id %q differs from the path's", *in.ID)})
	case in.ID != nil:
		o.ID = *in.ID
	case id == "":
		ps = append(ps, fieldProblem{"id", "required"})
	}
	if in.Lat == nil {
		ps = append(ps, fieldProblem{"lat", "required"})
	} else {
		o.Lat = *in.Lat
	}
	if in.Lon == nil {
		ps = append(ps, fieldProblem{"lon", "required"})
	} else {
		o.Lon = *in.Lon
	}
	if in.Active != nil {
		o.Active = *in.Active
	}
	if in.ActiveSince != nil {
		if t, err := parseActiveSince(*in.ActiveSince); err != nil {
			ps = append(ps, fieldProblem{"active_since", err.Error()})
		} else {
			o.ActiveSince = t
		}
	}
	return o, ps
}

// parseActiveSince reads an outlet's active_since: an RFC 3339 time, or
// empty for "always". It is kept in UTC.
func parseActiveSince(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time such as 2026-11-01T08:00:00+08:00, or empty", s)
	}
	return t.UTC(), nil
}

// decodeOutletJSON reads one JSON object strictly: unknown keys and trailing
// data are errors, so a typo never silently drops a field.
func decodeOutletJSON(b []byte) (outletInput, error) {
	var in outletInput
	return in, decodeStrict(b, &in)
}

// decodeStrict decodes a PUT body: one JSON object, no unknown key (a typo
// must not silently drop a field), nothing after it.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errInvalid("body", "body: %s", jsonProblem(err))
	}
	if dec.More() {
		return errInvalid("body", "body: data after the JSON object")
	}
	return nil
}

// jsonProblem describes a decoding error without Go type names.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field == "":
		return "want an object, got " + te.Value
	case errors.As(err, &te):
		return fmt.Sprintf("%s: wrong type (%s)", te.Field, te.Value)
	case errors.As(err, &se):
		return "not valid JSON: " + se.Error()
	case errors.Is(err, io.EOF):
		return "empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "JSON ends early"
	}
	if s := err.Error(); strings.HasPrefix(s, "json: unknown field ") {
		return "unknown key " + strings.TrimPrefix(s, "json: unknown field ")
	}
	return "not valid JSON"
}

// importError is one rejected row of a bulk import.
type importError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// maxImportErrors bounds the errors an import answer lists: a 4 MB body of
// bad rows once made a 100 MB answer. The others are only counted.
const maxImportErrors = 100

// importErrors are an import's errors in line order: the first
// maxImportErrors of them, and how many more there were.
type importErrors struct {
	list []importError
	more int
}

func (e *importErrors) add(line int, msg string) {
	if len(e.list) < maxImportErrors {
		e.list = append(e.list, importError{Line: line, Error: msg})
		return
	}
	e.more++
}

func (e *importErrors) count() int { return len(e.list) + e.more }

// mergeImportErrors merges two lists that are each in line order into one
// in line order, keeping the cap. Each list holds its own first
// maxImportErrors, so the merged first maxImportErrors are among them.
func mergeImportErrors(a, b importErrors) importErrors {
	out := importErrors{more: a.more + b.more}
	i, j := 0, 0
	for i < len(a.list) || j < len(b.list) {
		var e importError
		if j == len(b.list) || (i < len(a.list) && a.list[i].Line <= b.list[j].Line) {
			e, i = a.list[i], i+1
		} else {
			e, j = b.list[j], j+1
		}
		out.add(e.Line, e.Error)
	}
	return out
}

// checkEvery is how many rows an import parses between looks at its
// request's context: a body that outlives the request stops being parsed.
const checkEvery = 256

// importRow is one parsed row, with its line for error reports.
type importRow struct {
	Line     int
	Outlet   Outlet
	Problems []fieldProblem // found while reading the row; the registry's rules add theirs
}

// csvColumns are the import (and export) columns of api-v1 (docs/api.md), in order.
var csvColumns = []string{"id", "name", "district", "address", "lat", "lon", "operator"}

// parseImportCSV reads a CSV import. A header problem fails the whole
// import (no row could be read); every other problem rejects its row only.
// It stops with ctx's error when ctx ends.
func parseImportCSV(ctx context.Context, body []byte) ([]importRow, importErrors, error) {
	var bad importErrors
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = -1 // checked per row, so one short row does not stop the rest
	header, err := r.Read()
	if err != nil {
		return nil, bad, errInvalid("body", "CSV header: %s", csvProblem(err))
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF"))
		// active and active_since are optional; updated (in our own
		// exports) is ignored, so an export imports again as it is.
		if !slices.Contains(csvColumns, h) && h != "active" && h != "active_since" && h != "updated" {
			return nil, bad, errInvalid("body", "CSV header: unknown column %q (want %s and optionally active, active_since)", h, strings.Join(csvColumns, ","))
		}
		if _, dup := col[h]; dup {
			return nil, bad, errInvalid("body", "CSV header: column %q twice", h)
		}
		col[h] = i
	}
	for _, c := range csvColumns {
		if _, ok := col[c]; !ok {
			return nil, bad, errInvalid("body", "CSV header: column %q missing", c)
		}
	}
	var rows []importRow
	for n := 0; ; n++ {
		if n%checkEvery == 0 && ctx.Err() != nil {
			return nil, bad, fmt.Errorf("reading the CSV import: %w", ctx.Err())
		}
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		var line int
		if len(rec) > 0 {
			line, _ = r.FieldPos(0)
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.StartLine
			}
			if pe == nil || !errors.Is(pe.Err, csv.ErrFieldCount) {
				// After a quoting error the reader cannot tell where the
				// next row starts: stop rather than guess.
				bad.add(line, csvProblem(err)+"; the rows after it were not read")
				break
			}
			bad.add(line, csvProblem(err))
			continue
		}
		if len(rec) != len(header) {
			bad.add(line, fmt.Sprintf("want %d fields, got %d", len(header), len(rec)))
			continue
		}
		o, ps := csvOutlet(rec, col)
		rows = append(rows, importRow{Line: line, Outlet: o, Problems: ps})
	}
	return rows, bad, nil
}

// csvOutlet reads one record; a cell that cannot be read is a problem of
// the row, and the others are still read (and checked later).
func csvOutlet(rec []string, col map[string]int) (Outlet, []fieldProblem) {
	// Every cell goes through csvUnguard, the exact inverse of the export's
	// formula guard, so an export imports as it was.
	get := func(name string) string { return csvUnguard(rec[col[name]]) }
	o := Outlet{
		ID: strings.TrimSpace(get("id")), Name: get("name"), District: strings.TrimSpace(get("district")),
		Address: get("address"), Operator: strings.TrimSpace(get("operator")), Active: true,
	}
	var ps []fieldProblem
	var err error
	if o.Lat, err = parseCoord(get("lat")); err != nil {
		ps = append(ps, fieldProblem{"lat", err.Error()})
	}
	if o.Lon, err = parseCoord(get("lon")); err != nil {
		ps = append(ps, fieldProblem{"lon", err.Error()})
	}
	if i, ok := col["active"]; ok {
		if v := strings.TrimSpace(csvUnguard(rec[i])); v != "" {
			if o.Active, err = strconv.ParseBool(v); err != nil {
				ps = append(ps, fieldProblem{"active", fmt.Sprintf("%q is not true or false", v)})
			}
		}
	}
	if i, ok := col["active_since"]; ok {
		if o.ActiveSince, err = parseActiveSince(csvUnguard(rec[i])); err != nil {
			ps = append(ps, fieldProblem{"active_since", err.Error()})
		}
	}
	return o, ps
}

func parseCoord(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return f, nil
}

func csvProblem(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	if errors.Is(err, io.EOF) {
		return "empty"
	}
	return "unreadable CSV"
}

// parseImportJSON reads a JSON array of outlet objects. Each element is
// reported by the line its object starts on. It stops with ctx's error when
// ctx ends.
func parseImportJSON(ctx context.Context, body []byte) ([]importRow, importErrors, error) {
	var bad importErrors
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('[') {
		return nil, bad, errInvalid("body", "body: want a JSON array of outlets")
	}
	lines := lineCounter{body: body, line: 1}
	var rows []importRow
	for n := 0; dec.More(); n++ {
		if n%checkEvery == 0 && ctx.Err() != nil {
			return nil, bad, fmt.Errorf("reading the JSON import: %w", ctx.Err())
		}
		line := lines.at(int(dec.InputOffset()))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			// The array itself is broken: nothing after this can be read.
			bad.add(line, jsonProblem(err)+"; the rest was not read")
			return rows, bad, nil
		}
		in, err := decodeOutletJSON(raw)
		if err == nil {
			o, ps := in.outlet("")
			rows = append(rows, importRow{Line: line, Outlet: o, Problems: ps})
			continue
		}
		msg := err.Error()
		var ae *apiError
		if errors.As(err, &ae) {
			msg = strings.TrimPrefix(ae.Detail, "body: ")
		}
		bad.add(line, msg)
	}
	if _, err := dec.Token(); err != nil {
		bad.add(lines.at(int(dec.InputOffset())), "the array is not closed")
	}
	return rows, bad, nil
}

// lineCounter gives the 1-based lines of increasing offsets into body in
// one pass: counting from the start for every element made an import of
// many small elements quadratic (400,000 of them took 7.8 s).
type lineCounter struct {
	body    []byte
	off     int // newlines before off are counted in line
	line    int
	scanned int // bytes looked at, for the test of the one pass
}

// at returns the line of the first byte at or after off that is not white
// space or a comma (where the next array element starts). Offsets must not
// decrease from one call to the next.
func (lc *lineCounter) at(off int) int {
	off = max(off, lc.off)
	for off < len(lc.body) && (lc.body[off] == ' ' || lc.body[off] == '\t' || lc.body[off] == '\r' || lc.body[off] == '\n' || lc.body[off] == ',') {
		off++
		lc.scanned++
	}
	off = min(off, len(lc.body))
	lc.line += bytes.Count(lc.body[lc.off:off], []byte{'\n'})
	lc.scanned += off - lc.off
	lc.off = off
	return lc.line
}

// fieldOrder is the order in which a row's problems are told: its columns'.
var fieldOrder = append(append([]string{}, csvColumns...), "active", "active_since")

// allProblems adds the registry's rules to the problems found while reading
// an outlet (a field that could not be read is not judged again), in column
// order, so that one answer tells everything wrong with the row.
func allProblems(read []fieldProblem, o *Outlet, districts []string) []fieldProblem {
	ps := slices.Clone(read)
	for _, p := range o.problems(districts) {
		if !slices.ContainsFunc(read, func(q fieldProblem) bool { return q.Field == p.Field }) {
			ps = append(ps, p)
		}
	}
	slices.SortStableFunc(ps, func(a, b fieldProblem) int {
		return slices.Index(fieldOrder, a.Field) - slices.Index(fieldOrder, b.Field)
	})
	return ps
}

// checkImportRows validates rows and rejects repeated ids (keeping the first),
// so that one import never writes two versions of an outlet, and rows the
// caller may not write (writable: the registry's scope check), each as a
// row error.
func checkImportRows(rows []importRow, districts []string, writable func(*Outlet) error) ([]Outlet, importErrors) {
	seen := map[string]int{}
	var good []Outlet
	var bad importErrors
	for _, row := range rows {
		if ps := allProblems(row.Problems, &row.Outlet, districts); len(ps) > 0 {
			bad.add(row.Line, joinProblems(ps))
			continue
		}
		if err := writable(&row.Outlet); err != nil {
			bad.add(row.Line, err.Error())
			continue
		}
		if first, dup := seen[row.Outlet.ID]; dup {
			bad.add(row.Line, fmt.Sprintf("id %q repeats line %d", row.Outlet.ID, first))
			continue
		}
		seen[row.Outlet.ID] = row.Line
		good = append(good, row.Outlet)
	}
	return good, bad
}
