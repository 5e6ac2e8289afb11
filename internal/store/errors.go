package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
)

// Class says what a caller should do about a failure.
type Class int

const (
	// Retryable failures (network, timeout, 429, 5xx) may succeed later:
	// wait (at least RetryAfter) and send the same data again.
	Retryable Class = iota
	// Permanent failures (400, 413, 422, partial writes) will fail again
	// with the same data: split the batch to isolate the bad points.
	Permanent
	// Fatal failures (401, 403, 404: bad token or bucket) need an operator.
	Fatal
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	case Fatal:
		return "fatal"
	}
	return "unknown"
}

// WriteError is a classified failure of a request to InfluxDB.
type WriteError struct {
	Class      Class
	Status     int           // HTTP status, 0 when there was no answer
	RetryAfter time.Duration // from the server's Retry-After, 0 when not sent
	Err        error
}

func (e *WriteError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("influxdb %s error (HTTP %d): %v", e.Class, e.Status, e.Err)
	}
	return fmt.Sprintf("influxdb %s error: %v", e.Class, e.Err)
}

func (e *WriteError) Unwrap() error { return e.Err }

// ClassOf returns the class of err: Fatal for errors that are not a
// *WriteError (a bug is no reason to retry forever).
func ClassOf(err error) Class {
	var we *WriteError
	if errors.As(err, &we) {
		return we.Class
	}
	return Fatal
}

// classify maps a client error to a *WriteError. A cancelled or expired
// context is returned as the context's error: the caller chose to stop.
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var he *ihttp.Error
	if !errors.As(err, &he) {
		return &WriteError{Class: Retryable, Err: err}
	}
	return &WriteError{Class: classOfStatus(he.StatusCode), Status: he.StatusCode, RetryAfter: time.Duration(he.RetryAfter) * time.Second, Err: err}
}

// classOfStatus is the one mapping of an HTTP status to a class, for the
// client library's errors and for this package's own requests alike.
func classOfStatus(status int) Class {
	switch {
	case status == 0: // no answer: network error or timeout
		return Retryable
	case status == http.StatusTooManyRequests || status >= 500:
		return Retryable
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound:
		return Fatal
	}
	return Permanent
}
