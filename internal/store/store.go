// Package store is GreenPost's only door to InfluxDB: the one package that
// imports influxdb-client-go. It takes and returns plain values (line
// protocol bytes, rows of named values) and classifies every failure where it
// happens, so callers decide with errors.As alone whether to retry, split or
// give up.
//
// It speaks the v2 HTTP API, which InfluxDB 2.x/Cloud serve natively and
// OSS 1.8 serves as its compatibility API (bucket "db/rp", token
// "user:password", org ignored).
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
)

// Config says where InfluxDB is.
type Config struct {
	URL    string
	Token  string // 2.x token, or "user:password" for 1.8 (empty when auth is off)
	Org    string // ignored by 1.8
	Bucket string // 1.8: "database/retention-policy"
	// Timeout bounds every HTTP request (default 10s).
	Timeout time.Duration
	// GZip compresses write bodies: worth it across a network, not on loopback.
	GZip bool
}

// Store reads and writes one bucket.
type Store struct {
	// ql: whether the server answers InfluxQL (0 not known yet, 1 yes,
	// 2 no), for BinReports.
	ql     atomic.Int32
	cfg    Config
	client influxdb2.Client
	write  api.WriteAPIBlocking
	query  api.QueryAPI
}

// Open checks cfg and prepares a client; it does not contact the server.
func Open(cfg Config) (*Store, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("influx url %q: want http(s)://host:port", cfg.URL)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("influx bucket is empty")
	}
	secs := uint((cfg.Timeout + time.Second - 1) / time.Second)
	opts := influxdb2.DefaultOptions().
		SetPrecision(time.Nanosecond).
		SetHTTPRequestTimeout(secs).
		SetUseGZip(cfg.GZip).
		SetLogLevel(0) // errors come back to us; the client must not log on its own
	client := influxdb2.NewClientWithOptions(strings.TrimRight(cfg.URL, "/"), cfg.Token, opts)
	return &Store{
		cfg:    cfg,
		client: client,
		write:  client.WriteAPIBlocking(cfg.Org, cfg.Bucket),
		query:  client.QueryAPI(cfg.Org),
	}, nil
}

// Bucket returns the bucket this store reads and writes.
func (s *Store) Bucket() string { return s.cfg.Bucket }

// Close releases idle connections.
func (s *Store) Close() { s.client.Close() }

// Write sends lines of line protocol (nanosecond precision, '\n'-separated)
// in one request. Failures are *WriteError.
func (s *Store) Write(ctx context.Context, lines []byte) error {
	if len(lines) == 0 {
		return nil
	}
	body := string(lines)
	if err := s.write.WriteRecord(ctx, strings.TrimSuffix(body, "\n")); err != nil {
		return classify(ctx, err)
	}
	return nil
}

// Ping reports whether the server answers.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.client.Ping(ctx)
	if err != nil {
		return classify(ctx, err)
	}
	if !ok {
		return &WriteError{Class: Retryable, Err: errors.New("ping failed")}
	}
	return nil
}

// Row is one record of a Flux result: its columns by name (_time, _value,
// tags, ...), with times as time.Time.
type Row map[string]any

// Query runs a Flux query and returns every row of every table.
// Build flux only from allow-listed, escaped values (see FluxString).
func (s *Store) Query(ctx context.Context, flux string) ([]Row, error) {
	res, err := s.query.Query(ctx, flux)
	if err != nil {
		return nil, classify(ctx, err)
	}
	defer res.Close()
	var rows []Row
	for res.Next() {
		rows = append(rows, Row(res.Record().Values()))
	}
	if err := res.Err(); err != nil {
		return nil, classify(ctx, err)
	}
	return rows, nil
}

// FluxString quotes s as a Flux string literal.
func FluxString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`)
	return `"` + r.Replace(s) + `"`
}
