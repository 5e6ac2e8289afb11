package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/greenpost/greenpost/internal/store"
)

// The audit (ops-v1): one entry per successful write through the API —
// outlet PUT, DELETE and import, target set PUT and DELETE — with the
// key's name (never the key), stored in InfluxDB (GP_API_BUCKET,
// measurement audit) and never changed: no route writes it but the one
// wrapper below, and none deletes it.
//
// Every write route of the route table passes through auditWrites, so a
// new write route is audited by construction; its handler says what it
// changed with audited(). A write that fails (any error, any status outside
// 2xx) leaves no entry.

// auditStore is what the audit needs of storage.
type auditStore interface {
	WriteAudit(ctx context.Context, r store.AuditRecord) error
	ReadAudit(ctx context.Context, from, to, before time.Time, beforeKey string, limit int) ([]store.AuditRecord, error)
}

var _ auditStore = (*store.Store)(nil)

const localAudit = "gp.audit"

// auditNote is what a write handler changed.
type auditNote struct {
	target  string
	change  any
	nothing bool // the request changed nothing: no entry
}

// audited records, for auditWrites, what a successful write changed: the
// id it wrote and a JSON-able description (before and after).
func audited(c *fiber.Ctx, target string, change any) {
	c.Locals(localAudit, &auditNote{target: target, change: change})
}

// auditImport records an import: how many outlets it wrote and which (the
// first maxAuditIDs ids), how many rows it refused. An import that wrote
// nothing changed nothing and leaves no entry.
func auditImport(c *fiber.Ctx, written []Outlet, refused int) {
	if len(written) == 0 {
		c.Locals(localAudit, &auditNote{nothing: true})
		return
	}
	ids := make([]string, 0, min(len(written), maxAuditIDs))
	for _, o := range written[:min(len(written), maxAuditIDs)] {
		ids = append(ids, o.ID)
	}
	audited(c, "import", map[string]any{"imported": len(written), "refused": refused, "ids": ids, "more_ids": len(written) - len(ids)})
}

// maxAuditIDs is how many ids of an import its entry lists.
const maxAuditIDs = 200

// maxAuditChange bounds an entry's change (InfluxDB keeps a string field
// of at most 64 KiB); an import's list of ids is cut to fit.
const maxAuditChange = 32 << 10

// auditWrites is the middleware of every write route: after the handler
// has succeeded, it writes the entry. When that write fails the change is
// made but not recorded: the client is told (503), the log says which.
func auditWrites(db auditStore, stamp *stamper, log interface {
	Error(msg string, args ...any)
}) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := c.Next(); err != nil {
			return err
		}
		if st := c.Response().StatusCode(); st < 200 || st > 299 {
			return nil
		}
		note, _ := c.Locals(localAudit).(*auditNote)
		if note != nil && note.nothing {
			return nil
		}
		if note == nil {
			// A write route that says nothing of its change is a bug; the
			// write is still recorded, with what is known.
			log.Error("a write route did not describe its change", "method", c.Method(), "path", c.Path())
			note = &auditNote{target: param(c, "id")}
		}
		change, err := json.Marshal(note.change)
		if err != nil || len(change) > maxAuditChange {
			change = []byte(`{"error":"the change was too large to record"}`)
		}
		key, _ := c.Locals(localKeyName).(string)
		rec := store.AuditRecord{At: stamp.next(), Key: key, Method: methodLabel(c.Method()),
			Path: strings.Clone(c.Path()), Target: note.target, Change: string(change)}
		if err := db.WriteAudit(c.UserContext(), rec); err != nil {
			log.Error("audit entry not written", "method", rec.Method, "path", rec.Path, "key", rec.Key, "err", err)
			c.Response().ResetBody()
			return &apiError{Code: codeUnavailable, RetryAfter: 5 * time.Second, Err: err,
				Detail: "the change was stored, but its audit entry could not be written; the operator has been told by the log"}
		}
		return nil
	}
}

// auditEntry is one entry of GET /v1/audit.
type auditEntry struct {
	At     time.Time       `json:"at"`
	Key    string          `json:"key"`
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Target string          `json:"target"`
	Change json.RawMessage `json:"change"`
}

// auditPage is GET /v1/audit.
type auditPage struct {
	Entries    []auditEntry `json:"entries"`
	NextCursor *string      `json:"next_cursor"`
}

// Audit cursors are opaque: base64url of "<ns> <key name>" of the last
// entry of a page.
func encodeAuditCursor(at time.Time, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixNano(), 10) + " " + key))
}

func decodeAuditCursor(v string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	ns, key, ok := strings.Cut(string(b), " ")
	n, perr := strconv.ParseInt(ns, 10, 64)
	if err != nil || !ok || perr != nil || n <= 0 {
		return time.Time{}, "", errInvalid("cursor", "cursor: not a cursor this API gave out")
	}
	return time.Unix(0, n).UTC(), key, nil
}

var auditCSVHeader = []string{"at", "key", "method", "path", "target", "change"}

// auditEnd is the default end of an audit question: later than any entry.
var auditEnd = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

func getAudit(db auditStore, loc *time.Location) fiber.Handler {
	return func(c *fiber.Ctx) error {
		// from and to are the audit's own: open-ended by default, not the
		// figures' 24 h window.
		in, err := readInput(c, takes{CSV: true, Own: []string{"from", "to", "limit", "cursor"}})
		if err != nil {
			return err
		}
		q, csv := in.Q, in.CSV
		// The whole audit by default: it is small (one entry per write).
		// The end is open: entries carry this replica's write times, which
		// may run ahead of another replica's clock.
		from, to := time.Unix(0, 0).UTC(), auditEnd
		if v, ok := q["from"]; ok {
			if from, err = parseTime("from", v, loc); err != nil {
				return err
			}
		}
		if v, ok := q["to"]; ok {
			if to, err = parseTime("to", v, loc); err != nil {
				return err
			}
		}
		if !from.Before(to) {
			return errInvalid("from", "from must be before to")
		}
		limit, err := q.limit(defaultPageSize, maxPageSize)
		if err != nil {
			return err
		}
		var before time.Time
		var beforeKey string
		if v, ok := q["cursor"]; ok {
			if before, beforeKey, err = decodeAuditCursor(v); err != nil {
				return err
			}
		}
		recs, err := db.ReadAudit(c.UserContext(), from, to, before, beforeKey, limit+1)
		if err != nil {
			return err
		}
		p := auditPage{Entries: []auditEntry{}}
		for i, r := range recs {
			if i == limit {
				cur := encodeAuditCursor(recs[i-1].At, recs[i-1].Key)
				p.NextCursor = &cur
				c.Set("X-Next-Cursor", cur)
				break
			}
			e := auditEntry{At: r.At, Key: r.Key, Method: r.Method, Path: r.Path, Target: r.Target, Change: json.RawMessage(r.Change)}
			if !json.Valid(e.Change) {
				e.Change = json.RawMessage("null")
			}
			p.Entries = append(p.Entries, e)
		}
		if csv {
			rows := make([][]string, len(p.Entries))
			for i, e := range p.Entries {
				rows[i] = []string{ftime(e.At), e.Key, e.Method, e.Path, e.Target, string(e.Change)}
			}
			return sendCSV(c, auditCSVHeader, rows)
		}
		return c.Status(http.StatusOK).JSON(p)
	}
}
