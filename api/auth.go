package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/greenpost/greenpost/internal/ratelimit"
)

// keyring checks presented keys against the configured SHA-256 hashes.
type keyring struct {
	keys []apiKey
}

// lookup returns the index of the key whose hash matches, or -1. It compares
// against every key in constant time and never stops early, so the answer's
// timing tells nothing about which or how many keys exist.
func (k *keyring) lookup(presented string) int {
	h := sha256.Sum256([]byte(presented))
	found := -1
	for i := range k.keys {
		if subtle.ConstantTimeCompare(h[:], k.keys[i].Hash[:]) == 1 && found < 0 {
			found = i
		}
	}
	return found
}

// allows reports whether a key may use a route that needs need.
func allows(k *apiKey, need string) bool {
	switch need {
	case roleViewer:
		return k.Role == roleViewer || k.Role == roleAdmin
	case roleAdmin:
		return k.Role == roleAdmin
	case roleCityAdmin:
		return k.Role == roleAdmin && k.Scope.all
	}
	return false
}

// bearer extracts the token of an `Authorization: Bearer <key>` header.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// localKeyName is where requireRole leaves the caller's key name for logs.
const localKeyName = "gp.key"

// requireRole is the auth middleware of a route: 401 without a known key,
// 403 when the key's role is not enough, 429 when the key is over its rate.
// It is the one place a request gets its scope (scope.go): the handlers'
// context carries it to every read and write of the registry.
func requireRole(need string, keys *keyring, limit *limiter) fiber.Handler {
	return func(c *fiber.Ctx) error {
		tok, ok := bearer(c.Get(fiber.HeaderAuthorization))
		if !ok {
			return &apiError{Code: codeUnauthorized, Detail: "send Authorization: Bearer <key>"}
		}
		i := keys.lookup(tok)
		if i < 0 {
			return &apiError{Code: codeUnauthorized, Detail: "unknown key"}
		}
		k := &keys.keys[i]
		if !allows(k, need) {
			detail := "this needs the " + need + " role"
			if need == roleCityAdmin {
				detail = "this needs an admin key without scope (districts= or operators=)"
			}
			return &apiError{Code: codeForbidden, Detail: detail}
		}
		if wait := limit.take(i, time.Now()); wait > 0 {
			return &apiError{Code: codeRateLimited, Detail: "too many requests for this key", RetryAfter: wait}
		}
		c.Locals(localKeyName, k.Name)
		c.SetUserContext(withScope(c.UserContext(), k.Scope))
		return c.Next()
	}
}

// limiter is a token bucket per key (internal/ratelimit): rate tokens per
// second, up to burst. Keys are configured, so the set of buckets is bounded.
type limiter struct {
	mu      sync.Mutex
	buckets []*ratelimit.Bucket
}

func newLimiter(keys int, rate float64, burst int) *limiter {
	l := &limiter{buckets: make([]*ratelimit.Bucket, keys)}
	for i := range l.buckets {
		l.buckets[i] = ratelimit.New(rate, float64(burst))
	}
	return l
}

// take spends one token of key i; when none is left it returns how long
// until one will be.
func (l *limiter) take(i int, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buckets[i].Take(now)
}
