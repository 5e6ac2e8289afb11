package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// FluxScan runs a Flux query and streams its result: fn is called once per
// data row with that row's values of cols, in the order of cols ("" where
// the row's table has no such column). The slice and its strings are only
// valid during the call.
//
// Query answers the same question, but the client library builds a map per
// row; results of hundreds of thousands of rows (the metrics engine's raw
// reads) are parsed here from the plain CSV dialect instead, several times
// faster and with one allocation per row.
func (s *Store) FluxScan(ctx context.Context, flux string, cols []string, fn func(vals []string) error) error {
	body, err := json.Marshal(map[string]any{
		"query": flux,
		"type":  "flux",
		// No annotations: a header row per table is all a reader of known
		// columns needs, and it keeps the answer small.
		"dialect": map[string]any{"header": true, "annotations": []string{}, "delimiter": ","},
	})
	if err != nil {
		return err
	}
	u := strings.TrimRight(s.cfg.URL, "/") + "/api/v2/query?org=" + url.QueryEscape(s.cfg.Org)
	resp, err := s.do(ctx, http.MethodPost, u, "application/json", "text/csv", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return scanFluxCSV(ctx, resp.Body, cols, fn)
}

// scanFluxCSV reads Flux's CSV answer without annotations: blocks of one
// header row and data rows, separated by empty lines. An error inside the
// stream (after HTTP 200) arrives as a block with the columns error and
// reference.
func scanFluxCSV(ctx context.Context, r io.Reader, cols []string, fn func(vals []string) error) error {
	cr := csv.NewReader(bufio.NewReaderSize(r, 256<<10))
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	var (
		idx      = make([]int, len(cols))
		vals     = make([]string, len(cols))
		inHeader = true // the next record is a header
		errCol   = -1
		line     int
	)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return classify(ctx, fmt.Errorf("reading flux answer: %w", err))
		}
		line++
		// A header row starts every table: its second field is "result"
		// (data rows carry the result's name there, "_result" by default),
		// or "error" for an error block.
		if len(rec) > 1 && isHeader(rec) {
			inHeader = false
			errCol = -1
			if rec[1] == "error" {
				errCol = 1
			}
			for i, c := range cols {
				idx[i] = -1
				for j, h := range rec {
					if h == c {
						idx[i] = j
						break
					}
				}
			}
			continue
		}
		if inHeader {
			return &WriteError{Class: Permanent, Err: fmt.Errorf("flux answer: data before a header at record %d", line)}
		}
		if errCol >= 0 {
			msg := "unknown error"
			if len(rec) > errCol {
				msg = rec[errCol]
			}
			return &WriteError{Class: Permanent, Err: fmt.Errorf("flux: %s", msg)}
		}
		for i, j := range idx {
			if j >= 0 && j < len(rec) {
				vals[i] = rec[j]
			} else {
				vals[i] = ""
			}
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
}

// isHeader tells a header row from a data row: data rows carry the
// result's name ("_result") in the second column, never "result".
func isHeader(rec []string) bool {
	return rec[0] == "" && (rec[1] == "error" || (rec[1] == "result" && len(rec) > 2 && rec[2] == "table"))
}

// InfluxQLScan runs InfluxQL statements through the /query endpoint (1.x,
// and 2.x's v1 compatibility API with a DBRP mapping) against the bucket's
// database and retention policy, and streams every row: fn is called with
// the statement's index, the series' measurement and tags, and the row's
// values (time first, in ns) as raw JSON. Raw, so that integers keep every
// digit: a float64 would round counters above 2^53.
//
// The JSON format is used on purpose: the CSV format of 1.x leaves out
// statement errors (a dropped database or a killed query would read as "no
// data"), and JSON carries them and the "partial" flag of a truncated
// answer. The answer is chunked, so memory stays bounded.
func (s *Store) InfluxQLScan(ctx context.Context, q string, fn func(stmt int, measurement string, tags map[string]string, row []json.RawMessage) error) error {
	db, rp, _ := strings.Cut(s.cfg.Bucket, "/")
	form := url.Values{"q": {q}, "db": {db}, "epoch": {"ns"}, "chunked": {"true"}, "chunk_size": {"20000"}}
	if rp != "" {
		form.Set("rp", rp)
	}
	u := strings.TrimRight(s.cfg.URL, "/") + "/query"
	resp, err := s.do(ctx, http.MethodPost, u, "application/x-www-form-urlencoded", "application/json", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 256<<10))
	var row []json.RawMessage
	for {
		var chunk struct {
			Results []struct {
				StatementID int `json:"statement_id"`
				Series      []struct {
					Name string            `json:"name"`
					Tags map[string]string `json:"tags"`
					// Split by splitRows: decoding every value into
					// its own RawMessage costs an allocation per value.
					Values json.RawMessage `json:"values"`
				} `json:"series"`
				Partial bool   `json:"partial"`
				Err     string `json:"error"`
			} `json:"results"`
			Err string `json:"error"`
		}
		err := dec.Decode(&chunk)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return classify(ctx, fmt.Errorf("reading influxql answer: %w", err))
		}
		if chunk.Err != "" {
			return &WriteError{Class: Permanent, Err: fmt.Errorf("influxql: %s", chunk.Err)}
		}
		for _, res := range chunk.Results {
			if res.Err != "" {
				return &WriteError{Class: Permanent, Err: fmt.Errorf("influxql: %s", res.Err)}
			}
			for _, se := range res.Series {
				err := splitRows(se.Values, &row, func(row []json.RawMessage) error {
					return fn(res.StatementID, se.Name, se.Tags, row)
				})
				if err != nil {
					return err
				}
			}
		}
	}
}

// splitRows calls fn for each row of a JSON array of arrays (already
// checked by the decoder), with the row's values as slices of b.
func splitRows(b json.RawMessage, row *[]json.RawMessage, fn func([]json.RawMessage) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		if string(bytes.TrimSpace(b)) == "null" || len(bytes.TrimSpace(b)) == 0 {
			return nil
		}
		return fmt.Errorf("influxql values: want an array")
	}
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != ']' {
		if b[i] != '[' {
			return fmt.Errorf("influxql values: want a row array at %d", i)
		}
		r := (*row)[:0]
		i = skipSpace(b, i+1)
		for i < len(b) && b[i] != ']' {
			end := valueEnd(b, i)
			r = append(r, bytes.TrimRight(b[i:end], " \n\t\r"))
			i = skipSpace(b, end)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
			}
		}
		*row = r
		if err := fn(r); err != nil {
			return err
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the end of the JSON value at b[i:] (a scalar, string,
// or nested array/object, which InfluxQL values never are but may be).
func valueEnd(b []byte, i int) int {
	depth := 0
	inStr := false
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
				if depth == 0 {
					return i + 1
				}
			}
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case c == ',' && depth == 0:
			return i
		}
	}
	return i
}

// InfluxQLString quotes s as an InfluxQL string literal.
func InfluxQLString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// do sends one request with the store's token on the client library's HTTP
// client (its timeout bounds the whole exchange) and classifies a failed
// answer like every other call of this package.
func (s *Store) do(ctx context.Context, method, u, contentType, accept string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", accept)
	if s.cfg.Token != "" {
		req.Header.Set("Authorization", "Token "+s.cfg.Token)
	}
	resp, err := s.client.Options().HTTPOptions().HTTPClient().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &WriteError{Class: Retryable, Err: err}
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	we := &WriteError{Class: classOfStatus(resp.StatusCode), Status: resp.StatusCode, Err: fmt.Errorf("%s %s: %s", method, redactQuery(u), bytes.TrimSpace(msg))}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 {
		we.RetryAfter = time.Duration(ra) * time.Second
	}
	return nil, we
}

// redactQuery drops the query string of a URL for error messages.
func redactQuery(u string) string {
	p, _, _ := strings.Cut(u, "?")
	return p
}
