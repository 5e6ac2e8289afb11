package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/greenpost/greenpost/internal/settings"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// Roles of embedded-broker users.
const (
	roleDevice    = "device"    // publishes only under its own topics
	roleCollector = "collector" // may subscribe (another collector, a debugging tool)
)

type brokerUser struct {
	role string
	hash [sha256.Size]byte
}

// embeddedBroker is an MQTT broker inside the collector, for single-machine
// installs and the demo. Its hook hands every device publish straight to the
// ingester and answers the device's PUBACK only once the message is in the
// spool: the device keeps (and resends) anything not yet durable, so a crash
// of this process loses nothing that was acknowledged.
type embeddedBroker struct {
	srv  *mochi.Server
	hook *brokerHook
}

func startEmbeddedBroker(cfg config, out chan<- message, stopped <-chan struct{}, log *slog.Logger) (*embeddedBroker, error) {
	users, err := readBrokerUsers(cfg.BrokerUsersFile)
	if err != nil {
		return nil, err
	}
	if users == nil {
		log.Warn("embedded broker without GP_EMBEDDED_BROKER_USERS_FILE: any device id may connect (development only); devices still publish only under their own topics")
	}
	srv := mochi.New(&mochi.Options{Logger: log.With("part", "broker")})
	hook := &brokerHook{users: users, out: out, stopped: stopped, log: log}
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.EmbeddedBroker})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("GP_EMBEDDED_BROKER: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("GP_EMBEDDED_BROKER: %w", err)
	}
	log.Info("embedded broker listening", "addr", tcp.Address())
	return &embeddedBroker{srv: srv, hook: hook}, nil
}

// Close disconnects every client and stops the listener.
func (b *embeddedBroker) Close() { b.srv.Close() }

// readBrokerUsers reads `<device|collector> <username> <sha256 hex of password>`
// lines. No file means open (development) mode: nil map.
func readBrokerUsers(path string) (map[string]brokerUser, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &settings.Error{Problems: []string{"GP_EMBEDDED_BROKER_USERS_FILE: " + err.Error()}}
	}
	defer f.Close()
	users := map[string]brokerUser{}
	var problems []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.Fields(line)
		h, herr := []byte(nil), error(nil)
		if len(p) == 3 {
			h, herr = hex.DecodeString(p[2])
		}
		switch {
		case len(p) != 3 || (p[0] != roleDevice && p[0] != roleCollector):
			problems = append(problems, fmt.Sprintf("GP_EMBEDDED_BROKER_USERS_FILE: line %d: want `<device|collector> <username> <sha256 hex>`", n))
		case !telemetry.ValidID(p[1]):
			// Also refuses + and # (CVE-2017-7650: wildcard usernames bypassing ACLs).
			problems = append(problems, fmt.Sprintf("GP_EMBEDDED_BROKER_USERS_FILE: line %d: username must match [a-z0-9][a-z0-9_-]{0,63}", n))
		case herr != nil || len(h) != sha256.Size:
			problems = append(problems, fmt.Sprintf("GP_EMBEDDED_BROKER_USERS_FILE: line %d: hash is not 64 hex digits", n))
		default:
			u := brokerUser{role: p[0]}
			copy(u.hash[:], h)
			users[p[1]] = u
		}
	}
	if len(problems) > 0 {
		return nil, &settings.Error{Problems: problems}
	}
	return users, nil
}

// brokerHook authenticates clients, enforces topic rights and feeds the ingester.
type brokerHook struct {
	mochi.HookBase
	users   map[string]brokerUser // nil: open mode
	out     chan<- message
	stopped <-chan struct{}
	log     *slog.Logger
}

func (h *brokerHook) ID() string { return "greenpost" }

func (h *brokerHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish, mochi.OnWillSent}, []byte{b})
}

func (h *brokerHook) role(cl *mochi.Client) string {
	name := string(cl.Properties.Username)
	if h.users == nil {
		return roleDevice
	}
	return h.users[name].role
}

func (h *brokerHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	name := string(cl.Properties.Username)
	if !telemetry.ValidID(name) {
		return false
	}
	if h.users == nil {
		return true
	}
	u, ok := h.users[name]
	sum := sha256.Sum256(pk.Connect.Password)
	// Compare even for unknown users, so timing does not tell which exist.
	match := subtle.ConstantTimeCompare(sum[:], u.hash[:]) == 1
	return ok && match
}

func (h *brokerHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	switch h.role(cl) {
	case roleCollector:
		return true
	case roleDevice:
		if !write {
			return false // devices never subscribe
		}
		t, err := telemetry.ParseTopic(topic)
		return err == nil && t.Device == string(cl.Properties.Username)
	}
	return false
}

// OnPublish makes a device's message durable before mochi acknowledges it.
func (h *brokerHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || !strings.HasPrefix(pk.TopicName, telemetry.TopicPrefix) {
		return pk, nil
	}
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

// OnWillSent records a device's Last Will (its offline status) like a publish.
func (h *brokerHook) OnWillSent(cl *mochi.Client, pk packets.Packet) {
	if !strings.HasPrefix(pk.TopicName, telemetry.TopicPrefix) {
		return
	}
	select {
	case h.out <- message{topic: pk.TopicName, payload: pk.Payload, recv: time.Now(), ack: func() {}}:
	case <-h.stopped:
	}
}
