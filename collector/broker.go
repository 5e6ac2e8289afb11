package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"github.com/greenpost/greenpost/internal/keyfile"
	"github.com/greenpost/greenpost/internal/ratelimit"
	"github.com/greenpost/greenpost/internal/settings"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// Roles of embedded-broker users.
const (
	roleDevice    = "device"    // publishes, and sets its Will, only under its own topics
	roleCollector = "collector" // subscribes under gp/v1/ (another collector, a tool); never publishes
)

// Limits of the embedded broker (runtime-v1). Telemetry payloads are at
// most 4 KiB, so 64 KiB leaves room for any topic and MQTT 5 properties
// while a peer can no longer make the broker buffer a packet of up to
// 256 MB before it has even authenticated.
const (
	brokerMaxPacket      = 64 << 10
	brokerConnectTimeout = 30 * time.Second
	brokerStateFile      = "embedded-broker.db" // in GP_SPOOL_DIR
)

// brokerUser is one line of GP_EMBEDDED_BROKER_USERS_FILE.
type brokerUser struct {
	role   string
	hash   [sha256.Size]byte
	outlet string         // devices: the one outlet it may publish under
	kind   telemetry.Kind // devices: the one kind it may publish as
}

// brokerLimits are the embedded broker's protections; tests shorten the
// CONNECT deadline.
type brokerLimits struct {
	maxPacket      uint32
	connectTimeout time.Duration
	connsPerAddr   int
}

// embeddedBroker is an MQTT broker inside the collector, for single-machine
// installs and the demo. Its hook hands every device publish straight to the
// ingester and answers the device's PUBACK only once the message is in the
// spool: the device keeps (and resends) anything not yet durable, so a crash
// of this process loses nothing that was acknowledged. Retained messages and
// persistent sessions live in a bolt file in the spool directory, so they
// survive a restart of the collector.
type embeddedBroker struct {
	srv  *mochi.Server
	hook *brokerHook
	ln   *guardedListener
}

func startEmbeddedBroker(cfg config, lim brokerLimits, out chan<- message, stopped <-chan struct{}, log *slog.Logger, m *promMetrics) (*embeddedBroker, error) {
	users, err := readBrokerUsers(cfg.BrokerUsersFile)
	if err != nil {
		return nil, err
	}
	if users == nil {
		log.Warn("embedded broker without GP_EMBEDDED_BROKER_USERS_FILE (development only): any valid device id may connect, " +
			"with its id as client id, and publish under its own device id, but under any outlet and kind; nobody may subscribe")
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = lim.maxPacket
	blog := slog.New(clippedHandler{log.With("part", "broker").Handler()})
	srv := mochi.New(&mochi.Options{Logger: blog, Capabilities: caps})
	hook := &brokerHook{users: users, out: out, stopped: stopped, log: log, m: m, srv: srv, logs: newLogLimiter(10)}
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, err
	}
	// The store goes after the auth hook: hooks run in the order added.
	store := filepath.Join(cfg.SpoolDir, brokerStateFile)
	if err := srv.AddHook(new(brokerStore), &bolt.Options{Path: store, Options: &bbolt.Options{Timeout: time.Second}}); err != nil {
		return nil, fmt.Errorf("embedded broker state %s (is another collector using this GP_SPOOL_DIR?): %w", store, err)
	}
	nl, err := net.Listen("tcp", cfg.EmbeddedBroker)
	if err != nil {
		srv.Close()
		return nil, &settings.Error{Problems: []string{"GP_EMBEDDED_BROKER: " + err.Error()}}
	}
	ln := &guardedListener{id: "tcp", ln: nl, lim: lim, hook: hook}
	if err := srv.AddListener(ln); err != nil {
		nl.Close()
		srv.Close()
		return nil, fmt.Errorf("GP_EMBEDDED_BROKER: %w", err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	log.Info("embedded broker listening", "addr", ln.Address(), "state", store,
		"max_packet_bytes", lim.maxPacket, "connect_timeout", lim.connectTimeout.String(), "conns_per_addr", lim.connsPerAddr)
	return &embeddedBroker{srv: srv, hook: hook, ln: ln}, nil
}

// Close disconnects every client, stops the listener and closes the store.
func (b *embeddedBroker) Close() { b.srv.Close() }

// Addr is where the broker listens.
func (b *embeddedBroker) Addr() string { return b.ln.Address() }

// brokerStore is mochi's bolt storage hook without the $SYS statistics,
// which it would otherwise write (and fsync) every second for nothing.
//
// Why bolt: one small pure-Go dependency (go.etcd.io/bbolt, a single file,
// every transaction fsynced), which mochi ships a hook for. Badger and
// Pebble, mochi's other local stores, bring dozens of modules and
// background compaction and caches sized for databases far larger than a
// broker's sessions and retained statuses.
type brokerStore struct{ bolt.Hook }

func (s *brokerStore) Provides(b byte) bool {
	return b != mochi.OnSysInfoTick && b != mochi.StoredSysInfo && s.Hook.Provides(b)
}

// StoredInflightMessages works around a bug of mochi 2.7.9's bolt hook: it
// stores in-flight messages without their packet id (its badger and pebble
// hooks keep it), so after a restart they would all share id 0 and resending
// them fails ("missing packet id"). The id is also the last part of each
// message's key (IFM_<client id>:<packet id>): it is read back from there.
func (s *brokerStore) StoredInflightMessages() ([]storage.Message, error) {
	msgs, err := s.Hook.StoredInflightMessages()
	for i := range msgs {
		if msgs[i].PacketID != 0 {
			continue
		}
		if j := strings.LastIndexByte(msgs[i].ID, ':'); j >= 0 {
			if id, perr := strconv.ParseUint(msgs[i].ID[j+1:], 10, 16); perr == nil {
				msgs[i].PacketID = uint16(id)
			}
		}
	}
	return msgs, err
}

// readBrokerUsers reads GP_EMBEDDED_BROKER_USERS_FILE (runtime-v1):
//
//	device <device id> <sha256 hex> <outlet id> <bin|counter>
//	collector <username> <sha256 hex>
//
// No file means open (development) mode: nil map.
func readBrokerUsers(path string) (map[string]brokerUser, error) {
	if path == "" {
		return nil, nil
	}
	const usage = "want `device <device id> <sha256 hex> <outlet id> <bin|counter>` or `collector <username> <sha256 hex>`"
	entries, problems := keyfile.Read(path, usage, roleDevice, roleCollector)
	for i := range problems {
		problems[i] = "GP_EMBEDDED_BROKER_USERS_FILE: " + problems[i]
	}
	users := map[string]brokerUser{}
	bad := func(n int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("GP_EMBEDDED_BROKER_USERS_FILE: line %d: ", n)+fmt.Sprintf(format, args...))
	}
	for _, e := range entries {
		n := e.Line
		u := brokerUser{role: e.Role, hash: e.Hash}
		switch {
		case e.Role == roleDevice && len(e.More) == 2:
			u.outlet = e.More[0]
			u.kind = telemetry.ParseKind(e.More[1])
			if !telemetry.ValidID(u.outlet) {
				bad(n, "outlet %q must match [a-z0-9][a-z0-9_-]{0,63}", clip(u.outlet, 80))
				continue
			}
			if u.kind == 0 {
				bad(n, "kind %q: want bin or counter", clip(e.More[1], 80))
				continue
			}
		case e.Role == roleCollector && len(e.More) == 0:
		default:
			bad(n, usage)
			continue
		}
		if !telemetry.ValidID(e.Name) {
			// Also refuses + and # (CVE-2017-7650: wildcard usernames bypassing ACLs).
			bad(n, "username must match [a-z0-9][a-z0-9_-]{0,63}")
			continue
		}
		if _, dup := users[e.Name]; dup {
			bad(n, "%s is listed twice", e.Name)
			continue
		}
		users[e.Name] = u
	}
	if len(problems) > 0 {
		return nil, &settings.Error{Problems: problems}
	}
	return users, nil
}

// Refusal reasons, the labels of greenpost_collector_broker_refused_total.
// Every refused connection, publish and subscription is counted under one.
var brokerRefusals = []struct{ action, reason string }{
	{"connect", "bad_credentials"},      // unknown user, wrong password, username outside the id charset
	{"connect", "client_id"},            // client id is not the username
	{"connect", "will_topic"},           // the Will is outside the device's own topics
	{"connect", "too_many_connections"}, // the remote address holds GP_EMBEDDED_BROKER_MAX_CONNS_PER_ADDR
	{"connect", "connect_timeout"},      // CONNECT not complete within 30 s
	{"packet", "too_large"},             // a packet over 64 KiB (connection closed)
	{"publish", "bad_topic"},            // not gp/v1/{outlet}/{kind}/{device}/{channel}
	{"publish", "other_device"},         // another device's id
	{"publish", "other_outlet"},         // the device's id under an outlet that is not its own
	{"publish", "other_kind"},           // the device's id as the other kind
	{"publish", "read_only"},            // a collector user publishing
	{"subscribe", "device"},             // devices never subscribe
	{"subscribe", "outside_gp"},         // a collector filter outside gp/v1/
}

// brokerHook authenticates clients, enforces who may publish what and feeds
// the ingester.
type brokerHook struct {
	mochi.HookBase
	users   map[string]brokerUser // nil: open mode
	out     chan<- message
	stopped <-chan struct{}
	log     *slog.Logger
	m       *promMetrics
	srv     *mochi.Server
	logs    *logLimiter
}

func (h *brokerHook) ID() string { return "greenpost" }

func (h *brokerHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish, mochi.OnWillSent}, []byte{b})
}

// user returns the client's user: in open mode every client is a device
// without a bound outlet and kind.
func (h *brokerHook) user(cl *mochi.Client) (brokerUser, bool) {
	if h.users == nil {
		return brokerUser{role: roleDevice}, true
	}
	u, ok := h.users[string(cl.Properties.Username)]
	return u, ok
}

// refuse counts a refusal and logs it (at most 10 lines a second), never
// with a payload.
func (h *brokerHook) refuse(action, reason string, cl *mochi.Client, attrs ...any) {
	h.m.brokerRefused.WithLabelValues(action, reason).Inc()
	if h.logs.allow() {
		attrs = append([]any{"action", action, "reason", reason}, attrs...)
		if cl != nil {
			attrs = append(attrs, "username", clip(string(cl.Properties.Username), 80), "client_id", clip(cl.ID, 80), "remote", cl.Net.Remote)
		}
		h.log.Warn("embedded broker refused", attrs...)
	}
}

// admit decides a CONNECT: credentials, the client id, the Will. It has no
// side effects, so OnConnect and OnConnectAuthenticate can both ask.
func (h *brokerHook) admit(cl *mochi.Client, pk packets.Packet) (reason string, code packets.Code) {
	name := string(cl.Properties.Username)
	if !telemetry.ValidID(name) {
		return "bad_credentials", packets.ErrBadUsernameOrPassword
	}
	u, ok := h.user(cl)
	if h.users != nil {
		sum := sha256.Sum256(pk.Connect.Password)
		// Compare even for unknown users, so timing does not tell which exist.
		match := subtle.ConstantTimeCompare(sum[:], u.hash[:]) == 1
		if !ok || !match {
			return "bad_credentials", packets.ErrBadUsernameOrPassword
		}
	}
	// The client id is the username: nobody can take over another
	// device's or a collector's session (and with it its in-flight
	// messages), or kick a device so that its Will fires.
	if pk.Connect.ClientIdentifier != name {
		return "client_id", packets.ErrClientIdentifierNotValid
	}
	if pk.Connect.WillFlag {
		if u.role != roleDevice {
			return "will_topic", packets.ErrNotAuthorized
		}
		if r := u.publishRefusal(name, pk.Connect.WillTopic); r != "" {
			return "will_topic", packets.ErrNotAuthorized
		}
	}
	return "", packets.CodeSuccess
}

// OnConnect refuses a CONNECT with the CONNACK code that says why (bad
// credentials, identifier rejected, not authorised for the Will).
func (h *brokerHook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	reason, code := h.admit(cl, pk)
	if reason == "" {
		if gc, ok := cl.Net.Conn.(*guardedConn); ok {
			gc.admitted.Store(true)
		}
		return nil
	}
	var attrs []any
	if reason == "will_topic" {
		attrs = append(attrs, "will_topic", clip(pk.Connect.WillTopic, 200))
	}
	h.refuse("connect", reason, cl, attrs...)
	if err := h.srv.SendConnack(cl, connackCode(cl, code), false, nil); err != nil {
		return err
	}
	return code
}

// connackCode is the CONNACK return code for an MQTT 3.1.1 client: 4 for bad
// credentials and 5 for a Will it may not set (mochi would send the MQTT 5
// code 0x87, which a 3.1.1 client cannot read, and 5 for bad credentials).
func connackCode(cl *mochi.Client, code packets.Code) packets.Code {
	if cl.Properties.ProtocolVersion >= 5 {
		return code
	}
	switch code {
	case packets.ErrBadUsernameOrPassword:
		return packets.Code{Code: 0x04, Reason: code.Reason}
	case packets.ErrNotAuthorized:
		return packets.Err3NotAuthorized
	}
	return code // identifier rejected: mochi maps it to 2
}

// OnConnectAuthenticate repeats admit: mochi refuses everyone unless a hook
// says yes here, and the answer must not depend on OnConnect having run.
func (h *brokerHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	reason, _ := h.admit(cl, pk)
	return reason == ""
}

// publishRefusal says why the device name may not publish (or set its Will)
// on topic, or "" when it may: only under
// gp/v1/<its outlet>/<its kind>/<its id>/<channel>. In open mode the
// outlet and kind are not known, so only the id is checked.
func (u brokerUser) publishRefusal(name, topic string) string {
	t, err := telemetry.ParseTopic(topic)
	switch {
	case err != nil:
		return "bad_topic"
	case t.Device != name:
		return "other_device"
	case u.outlet != "" && t.Outlet != u.outlet:
		return "other_outlet"
	case u.kind != 0 && t.Kind != u.kind:
		return "other_kind"
	}
	return ""
}

// OnACLCheck is asked for every publish (write), every subscription filter
// and every delivery (read).
func (h *brokerHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	u, ok := h.user(cl)
	if !ok {
		return false // a restored session of a user since removed from the file
	}
	name := string(cl.Properties.Username)
	switch {
	case write && u.role == roleDevice:
		if r := u.publishRefusal(name, topic); r != "" {
			h.refuse("publish", r, cl, "topic", clip(topic, 200))
			return false
		}
		return true
	case write:
		h.refuse("publish", "read_only", cl, "topic", clip(topic, 200))
		return false
	case u.role == roleDevice:
		// A read check for a device can only be a subscription: it has
		// none, so nothing is ever delivered to it.
		h.refuse("subscribe", "device", cl, "filter", clip(topic, 200))
		return false
	default:
		filter := topic
		if rest, shared := strings.CutPrefix(filter, "$share/"); shared {
			_, filter, _ = strings.Cut(rest, "/")
		}
		if !strings.HasPrefix(filter, telemetry.TopicPrefix) {
			h.refuse("subscribe", "outside_gp", cl, "filter", clip(topic, 200))
			return false
		}
		return true
	}
}

// OnPublish makes a device's message durable before mochi acknowledges it.
func (h *brokerHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || !strings.HasPrefix(pk.TopicName, telemetry.TopicPrefix) {
		return pk, nil
	}
	h.m.received.Inc()
	done := make(chan struct{})
	msg := message{topic: pk.TopicName, payload: pk.Payload, recv: time.Now(), ack: func() { close(done) }}
	select {
	case h.out <- msg:
	case <-h.stopped:
		return pk, packets.ErrRejectPacket // no PUBACK: the device sends it again
	}
	select {
	case <-done:
		return pk, nil
	case <-h.stopped:
		return pk, packets.ErrRejectPacket
	}
}

// OnWillSent records a device's Last Will (its offline status) like a
// publish. The Will was checked at CONNECT; it is checked again here so that
// only a device's own Will is ever stored, whatever restored it.
func (h *brokerHook) OnWillSent(cl *mochi.Client, pk packets.Packet) {
	u, ok := h.user(cl)
	if !ok || u.role != roleDevice || u.publishRefusal(string(cl.Properties.Username), pk.TopicName) != "" {
		return
	}
	h.m.received.Inc()
	select {
	case h.out <- message{topic: pk.TopicName, payload: pk.Payload, recv: time.Now(), ack: func() {}}:
	case <-h.stopped:
	}
}

// logLimiter lets through at most perSecond log lines (a flood of refusals
// is counted in full, but logged by example).
type logLimiter struct {
	mu sync.Mutex
	tb *ratelimit.Bucket
}

func newLogLimiter(perSecond int) *logLimiter { return &logLimiter{tb: newTokenBucket(perSecond)} }

func (l *logLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tb.Allow(time.Now())
}

// clip shortens s for a log line: topics, client ids and usernames come from
// the network and may be up to 64 KiB.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:n], len(s))
}
