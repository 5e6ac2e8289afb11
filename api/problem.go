package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/greenpost/greenpost/internal/fill"
	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/store"
)

// Error codes of the API. Handlers return *apiError with one of these;
// problemStatus maps them to HTTP in one place (WTF's ErrorStatusCode).
const (
	codeInvalid      = "invalid"        // a bad parameter or body
	codeUnauthorized = "unauthorized"   // no key or an unknown key
	codeForbidden    = "forbidden"      // the key's role does not allow this
	codeNotFound     = "not_found"      // no such outlet or route
	codeMethod       = "method"         // the route exists, the method does not
	codeTooLarge     = "too_large"      // body over the limit
	codeMediaType    = "media_type"     // a body of a type we do not read
	codeRateLimited  = "rate_limited"   // the key's token bucket is empty
	codeUnavailable  = "unavailable"    // InfluxDB (or the registry) cannot answer now
	codeTimeout      = "timeout"        // the request ran out of time
	codeSlowClient   = "slow_client"    // the request did not arrive in time
	codeInternal     = "internal"       // a bug: details only in the log
	codeNotReady     = "not_ready"      // /readyz: a dependency is down
	codeBadGateway   = "bad_dependency" // InfluxDB refused our query (a bug or a bad setting)
)

var problemStatus = map[string]int{
	codeInvalid:      http.StatusBadRequest,
	codeUnauthorized: http.StatusUnauthorized,
	codeForbidden:    http.StatusForbidden,
	codeNotFound:     http.StatusNotFound,
	codeMethod:       http.StatusMethodNotAllowed,
	codeTooLarge:     http.StatusRequestEntityTooLarge,
	codeMediaType:    http.StatusUnsupportedMediaType,
	codeRateLimited:  http.StatusTooManyRequests,
	codeUnavailable:  http.StatusServiceUnavailable,
	codeTimeout:      http.StatusGatewayTimeout,
	codeSlowClient:   http.StatusRequestTimeout,
	codeInternal:     http.StatusInternalServerError,
	codeNotReady:     http.StatusServiceUnavailable,
	codeBadGateway:   http.StatusBadGateway,
}

// apiError is an error meant for the client: Code picks the status, Detail
// is safe to show. Err is the internal cause, logged and never sent.
type apiError struct {
	Code       string
	Detail     string
	Param      string        // the offending parameter, when one is to blame
	RetryAfter time.Duration // for rate_limited and unavailable
	Err        error
}

func (e *apiError) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Detail + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Detail
}

func (e *apiError) Unwrap() error { return e.Err }

// errInvalid reports a bad parameter by name.
func errInvalid(param, format string, args ...any) *apiError {
	return &apiError{Code: codeInvalid, Param: param, Detail: fmt.Sprintf(format, args...)}
}

// errNotFound reports a missing resource.
func errNotFound(format string, args ...any) *apiError {
	return &apiError{Code: codeNotFound, Detail: fmt.Sprintf(format, args...)}
}

// problem is an RFC 9457 problem detail, with two extension members.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Code     string `json:"code"`
	Param    string `json:"param,omitempty"`
}

// problemType is the problem's type URI: a URN, so it names no host.
func problemType(code string) string { return "urn:greenpost:problem:" + code }

// classify turns any error a handler or Fiber returned into an *apiError.
// This is the one place where internal failures become client answers:
// InfluxDB's texts, Flux and stacks stay in the log.
func classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case http.StatusNotFound:
			return &apiError{Code: codeNotFound, Detail: "no such route"}
		case http.StatusMethodNotAllowed:
			return &apiError{Code: codeMethod, Detail: "method not allowed on this route"}
		case http.StatusRequestEntityTooLarge:
			return &apiError{Code: codeTooLarge, Detail: "the body is larger than the limit"}
		case http.StatusRequestTimeout:
			return &apiError{Code: codeSlowClient, Detail: "the request took too long to arrive"}
		case http.StatusRequestHeaderFieldsTooLarge:
			return &apiError{Code: codeInvalid, Detail: "request headers too large"}
		}
		if fe.Code >= 400 && fe.Code < 500 {
			// Fiber's own 4xx texts describe the request, not our internals.
			return &apiError{Code: codeInvalid, Detail: fe.Message}
		}
		return &apiError{Code: codeInternal, Detail: "internal error", Err: err}
	}
	switch {
	case errors.Is(err, metrics.ErrNotReady):
		return &apiError{Code: codeUnavailable, Detail: "the figures for this window are still being prepared (the roll-up is catching up); try again shortly", RetryAfter: 10 * time.Second, Err: err}
	case errors.Is(err, fill.ErrNotReady):
		return &apiError{Code: codeUnavailable, Detail: "the bins' recent reports are still being loaded; try again shortly", RetryAfter: 10 * time.Second, Err: err}
	case errors.Is(err, metrics.ErrBadWindow):
		return &apiError{Code: codeInvalid, Param: "from", Detail: "the window must be whole minutes with from before to", Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &apiError{Code: codeTimeout, Detail: "the request took longer than the server allows", Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &apiError{Code: codeUnavailable, Detail: "the request was cancelled", Err: err}
	}
	var we *store.WriteError
	if errors.As(err, &we) {
		switch we.Class {
		case store.Retryable:
			return &apiError{Code: codeUnavailable, Detail: "the database is not available; try again", RetryAfter: max(we.RetryAfter, time.Second), Err: err}
		default:
			return &apiError{Code: codeBadGateway, Detail: "the database refused the request", Err: err}
		}
	}
	return &apiError{Code: codeInternal, Detail: "internal error", Err: err}
}

// errorHandler writes every error as application/problem+json. It is
// Fiber's ErrorHandler and is also called by the metrics middleware, so the
// status is known when the request is counted.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		ae := classify(err)
		status, ok := problemStatus[ae.Code]
		if !ok {
			status = http.StatusInternalServerError
		}
		switch {
		case ae.Code == codeNotReady:
			log.Warn("not ready", "err", err)
		case ae.Err != nil || status >= 500:
			log.Error("request failed", "method", c.Method(), "path", c.Path(), "status", status, "code", ae.Code, "err", err)
		}
		switch ae.Code {
		case codeUnauthorized:
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="greenpost"`)
		case codeRateLimited, codeUnavailable, codeNotReady:
			if ae.RetryAfter > 0 {
				c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((ae.RetryAfter+time.Second-1)/time.Second)))
			}
		}
		return c.Status(status).JSON(problem{
			Type:     problemType(ae.Code),
			Title:    http.StatusText(status),
			Status:   status,
			Detail:   ae.Detail,
			Instance: c.Path(),
			Code:     ae.Code,
			Param:    ae.Param,
		}, "application/problem+json")
	}
}
