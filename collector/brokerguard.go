package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// guardedListener is the embedded broker's TCP listener (a mochi
// listeners.Listener). Beyond accepting, it caps the connections of one
// remote address and gives every new connection a deadline to complete
// CONNECT: mochi itself waits for the first packet for ever, and a peer that
// opens connections and never finishes CONNECT would hold them for good.
type guardedListener struct {
	id   string
	ln   net.Listener
	lim  brokerLimits
	hook *brokerHook

	mu     sync.Mutex
	byAddr map[string]int // open connections per remote IP
	closed atomic.Bool
}

var _ listeners.Listener = (*guardedListener)(nil)

func (l *guardedListener) ID() string              { return l.id }
func (l *guardedListener) Address() string         { return l.ln.Addr().String() }
func (l *guardedListener) Protocol() string        { return "tcp" }
func (l *guardedListener) Init(*slog.Logger) error { return nil }
func (l *guardedListener) Close(closeClients listeners.CloseFn) {
	if l.closed.CompareAndSwap(false, true) {
		l.ln.Close()
		closeClients(l.id)
	}
}

// Serve accepts until Close. Every connection runs establish (mochi's
// whole life of a client) on its own goroutine.
func (l *guardedListener) Serve(establish listeners.EstablishFn) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and go on, rather
			// than stop serving for good.
			l.hook.log.Error("embedded broker accept failed", "err", err, "retry_in", backoff.String())
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		ip := remoteIP(c)
		if !l.acquire(ip) {
			c.Close()
			l.hook.refuse("connect", "too_many_connections", nil, "remote", c.RemoteAddr().String())
			continue
		}
		gc := &guardedConn{Conn: c, release: func() { l.release(ip) }}
		// mochi replaces this deadline with the keepalive's once CONNECT
		// has been read.
		c.SetDeadline(time.Now().Add(l.lim.connectTimeout))
		go func() {
			err := establish(l.id, gc)
			gc.Close()
			l.ended(gc, err)
		}()
	}
}

// ended counts and logs why a connection ended, when that was a protection
// at work; an ordinary end is only a debug line.
func (l *guardedListener) ended(gc *guardedConn, err error) {
	switch {
	case err == nil:
	case errors.Is(err, packets.ErrPacketTooLarge):
		l.hook.refuse("packet", "too_large", nil, "remote", gc.RemoteAddr().String(), "admitted", gc.admitted.Load())
	case !gc.admitted.Load() && errors.Is(err, os.ErrDeadlineExceeded):
		l.hook.refuse("connect", "connect_timeout", nil, "remote", gc.RemoteAddr().String())
	default:
		l.hook.log.Debug("embedded broker connection ended", "remote", gc.RemoteAddr().String(), "err", clip(err.Error(), 200))
	}
}

func (l *guardedListener) acquire(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr == nil {
		l.byAddr = map[string]int{}
	}
	if l.byAddr[ip] >= l.lim.connsPerAddr {
		return false
	}
	l.byAddr[ip]++
	return true
}

func (l *guardedListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[ip]--; l.byAddr[ip] <= 0 {
		delete(l.byAddr, ip)
	}
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	return host
}

// guardedConn is a broker connection that gives its address's slot back
// once, however often it is closed, and knows whether CONNECT was accepted.
type guardedConn struct {
	net.Conn
	release  func()
	once     sync.Once
	admitted atomic.Bool
}

func (c *guardedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// clippedHandler is the embedded broker's log handler. mochi logs whole
// packets (a refused 1 MiB publish became a 1.4 MB log line) and strings
// straight from the network: here a packet becomes its type, topic and
// payload size, and every string is clipped.
type clippedHandler struct{ slog.Handler }

func (h clippedHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, clip(r.Message, 200), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(clipAttr(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h clippedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	cs := make([]slog.Attr, len(as))
	for i, a := range as {
		cs[i] = clipAttr(a)
	}
	return clippedHandler{h.Handler.WithAttrs(cs)}
}

func (h clippedHandler) WithGroup(name string) slog.Handler {
	return clippedHandler{h.Handler.WithGroup(name)}
}

func clipAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, clip(v.String(), 200))
	case slog.KindGroup:
		g := v.Group()
		cs := make([]any, len(g))
		for i, ga := range g {
			cs[i] = clipAttr(ga)
		}
		return slog.Group(a.Key, cs...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case packets.Packet:
			return packetAttr(a.Key, &x)
		case *packets.Packet:
			return packetAttr(a.Key, x)
		case []byte:
			return slog.Int(a.Key+"_bytes", len(x))
		case error:
			return slog.String(a.Key, clip(x.Error(), 200))
		default:
			return slog.String(a.Key, clip(fmt.Sprint(x), 200))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func packetAttr(key string, pk *packets.Packet) slog.Attr {
	if pk == nil {
		return slog.String(key, "nil")
	}
	return slog.Group(key, "type", packets.PacketNames[pk.FixedHeader.Type], "topic", clip(pk.TopicName, 200),
		"payload_bytes", len(pk.Payload), "id", pk.PacketID)
}
