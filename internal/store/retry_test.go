package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetry(t *testing.T) {
	retryable := &WriteError{Class: Retryable, Err: errors.New("503")}
	permanent := &WriteError{Class: Permanent, Err: errors.New("400")}
	tests := []struct {
		name     string
		r        Retry
		errs     []error // what each try returns; past the end: nil
		want     error
		tries    int
		retryTip []time.Duration
	}{
		{"succeeds at once", Retry{}, nil, nil, 1, nil},
		{"retries retryable", Retry{Initial: time.Millisecond}, []error{retryable, retryable}, nil, 3, []time.Duration{time.Millisecond, 2 * time.Millisecond}},
		{"stops on permanent", Retry{Initial: time.Millisecond}, []error{retryable, permanent}, permanent, 2, []time.Duration{time.Millisecond}},
		{"a plain error is not retried", Retry{}, []error{errors.New("bug")}, nil, 1, nil},
		{"attempts bound", Retry{Initial: time.Millisecond, Attempts: 2}, []error{retryable, retryable, retryable}, retryable, 2, []time.Duration{time.Millisecond}},
		{"capped", Retry{Initial: time.Millisecond, Max: 2 * time.Millisecond}, []error{retryable, retryable, retryable}, nil, 4, []time.Duration{time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}},
		{"retry-after wins", Retry{Initial: time.Millisecond}, []error{&WriteError{Class: Retryable, RetryAfter: 5 * time.Millisecond, Err: errors.New("429")}}, nil, 2, []time.Duration{5 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var waits []time.Duration
			tt.r.OnRetry = func(_ error, d time.Duration) { waits = append(waits, d) }
			n := 0
			err := tt.r.Do(context.Background(), func(context.Context) error {
				n++
				if n <= len(tt.errs) {
					return tt.errs[n-1]
				}
				return nil
			})
			if tt.name == "a plain error is not retried" {
				if err == nil || n != 1 {
					t.Fatalf("err %v after %d tries", err, n)
				}
				return
			}
			if err != tt.want || n != tt.tries {
				t.Errorf("err %v after %d tries, want %v after %d", err, n, tt.want, tt.tries)
			}
			if len(waits) != len(tt.retryTip) {
				t.Fatalf("waits %v, want %v", waits, tt.retryTip)
			}
			for i := range waits {
				if waits[i] != tt.retryTip[i] {
					t.Errorf("waits %v, want %v", waits, tt.retryTip)
				}
			}
		})
	}
	t.Run("jitter stays in the upper half", func(t *testing.T) {
		var waits []time.Duration
		r := Retry{Initial: 8 * time.Millisecond, Jitter: true, Attempts: 3, OnRetry: func(_ error, d time.Duration) { waits = append(waits, d) }}
		r.Do(context.Background(), func(context.Context) error { return retryable })
		if len(waits) != 2 || waits[0] < 4*time.Millisecond || waits[0] > 8*time.Millisecond || waits[1] < 8*time.Millisecond || waits[1] > 16*time.Millisecond {
			t.Errorf("waits %v", waits)
		}
	})
	t.Run("ctx ends the wait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		r := Retry{Initial: time.Hour, OnRetry: func(error, time.Duration) { cancel() }}
		if err := r.Do(ctx, func(context.Context) error { return retryable }); !errors.Is(err, context.Canceled) {
			t.Errorf("err %v, want context.Canceled", err)
		}
	})
}
