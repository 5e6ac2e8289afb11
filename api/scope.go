package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// Scoped keys (ops-v1): a key may be limited to some districts and/or some
// operators. The limit is enforced in one place, by construction:
//
//   - the auth middleware (requireRole) puts the caller's scope into the
//     request's context, and nothing else does;
//   - every read of the outlet registry (Get, List, Select) and every write
//     (Put, Delete) takes that context and applies its scope;
//   - a context without a scope sees nothing (fail closed), so code that
//     forgets to pass the request's context answers empty, never too much.
//
// Everything a handler says of an outlet starts from the registry (figures,
// series, alerts, collections are computed for the ids it returns), so an
// out-of-scope outlet is a 404 exactly like a missing one. Background work
// that is not a request uses cityWideContext.

// scope is what a key may see: the whole city, or the outlets whose
// district is in districts (when given) and whose operator is in operators
// (when given). The zero scope sees nothing.
type scope struct {
	all       bool
	districts []string // nil: any district
	operators []string // nil: any operator
}

// cityWide is the scope of a key without scope fields.
var cityWide = scope{all: true}

// sees reports whether the scope covers the outlet.
func (s scope) sees(o *Outlet) bool {
	if s.all {
		return true
	}
	if s.districts == nil && s.operators == nil {
		return false // the zero scope
	}
	return (s.districts == nil || slices.Contains(s.districts, o.District)) &&
		(s.operators == nil || slices.Contains(s.operators, o.Operator))
}

// scopeJSON is how an answer names a limited scope.
type scopeJSON struct {
	Districts []string `json:"districts,omitempty"`
	Operators []string `json:"operators,omitempty"`
}

// describe is the scope for an answer: nil for the whole city.
func (s scope) describe() *scopeJSON {
	if s.all {
		return nil
	}
	return &scopeJSON{Districts: s.districts, Operators: s.operators}
}

// String is the scope as the keys file writes it (for logs).
func (s scope) String() string {
	if s.all {
		return "city"
	}
	var parts []string
	if s.districts != nil {
		parts = append(parts, "districts="+strings.Join(s.districts, ","))
	}
	if s.operators != nil {
		parts = append(parts, "operators="+strings.Join(s.operators, ","))
	}
	return strings.Join(parts, " ")
}

type scopeKey struct{}

// withScope returns ctx carrying the caller's scope (only requireRole and
// cityWideContext call it).
func withScope(ctx context.Context, s scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}

// scopeOf returns the scope ctx carries; none is the zero scope, which sees
// nothing.
func scopeOf(ctx context.Context) scope {
	s, _ := ctx.Value(scopeKey{}).(scope)
	return s
}

// cityWideContext is ctx seeing the whole city, for work that serves no
// caller (the registry gauge).
func cityWideContext(ctx context.Context) context.Context { return withScope(ctx, cityWide) }

// parseScope reads the scope fields of a keys file line:
// `districts=<id>,<id>...` and `operators=<name>,<name>...`, values
// percent-encoded (`operators=SF%20Express`), each field at most once.
// No field is the whole city.
func parseScope(fields []string) (scope, error) {
	if len(fields) == 0 {
		return cityWide, nil
	}
	var s scope
	for _, f := range fields {
		name, list, ok := strings.Cut(f, "=")
		if !ok || (name != "districts" && name != "operators") {
			return scope{}, fmt.Errorf("%q: want districts=<id>,... or operators=<name>,...", f)
		}
		var vals []string
		for _, raw := range strings.Split(list, ",") {
			v, err := url.PathUnescape(raw)
			if err != nil {
				return scope{}, fmt.Errorf("%s: %q is not percent-encoded correctly", name, raw)
			}
			switch {
			case name == "districts" && !telemetry.ValidID(v):
				return scope{}, fmt.Errorf("districts: %q: want [a-z0-9][a-z0-9_-]{0,63}", v)
			case name == "operators" && (!validText(v, maxOperatorLen, true) || v != strings.TrimSpace(v)):
				return scope{}, fmt.Errorf("operators: %q: want 1 to %d characters of printable UTF-8 (write a space as %%20)", v, maxOperatorLen)
			}
			if !slices.Contains(vals, v) {
				vals = append(vals, v)
			}
		}
		slices.Sort(vals)
		switch {
		case name == "districts" && s.districts == nil:
			s.districts = vals
		case name == "operators" && s.operators == nil:
			s.operators = vals
		default:
			return scope{}, fmt.Errorf("%s given twice", name)
		}
	}
	return s, nil
}
