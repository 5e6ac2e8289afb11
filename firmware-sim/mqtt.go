package main

// A lean MQTT 3.1.1 client: only what a publishing device needs (CONNECT
// with a Last Will and credentials, PUBLISH at QoS 0/1, PUBACK, PINGREQ,
// DISCONNECT), one TCP, TLS or WebSocket connection per device.
//
// Why not paho: a paho client is several goroutines, buffers and channels
// per connection; load mode keeps 20,000 and more devices connected in one
// process on a 2-core machine, each with its own connection and client id,
// and needs to cut a connection without DISCONNECT (so the broker fires the
// Last Will), which paho cannot do. Memory per 10,000 devices for both is in
// docs/benchmarks.md. The collector, which subscribes, keeps using paho.

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// errRefused is a CONNACK with a non-zero return code: retrying with the
// same credentials will not help.
var errRefused = errors.New("mqtt: connection refused by the broker")

// dialConfig says how devices reach the broker.
type dialConfig struct {
	Addr      string      // host:port
	TLS       *tls.Config // nil for tcp:// and ws://
	WebSocket string      // ws:// or wss:// URL with its path; empty for tcp:// and ssl://
	Password  string      // sent with every device's username when set
	// Passwords are the devices' own (-credentials), by username; they win
	// over Password.
	Passwords map[string]string
	Username  string // overrides the device id as username when set
	KeepAlive time.Duration
	Timeout   time.Duration // bounds dial, CONNECT/CONNACK and every write
	Local     net.Addr      // source address (load mode spreads over 127.0.0.x)
}

// will is a Last Will: published by the broker, retained, when the
// connection ends without DISCONNECT.
type will struct {
	Topic   string
	Payload string
}

// mqttConn is one device's connection.
type mqttConn struct {
	conn    net.Conn
	timeout time.Duration
	wmu     sync.Mutex
	nextID  uint16 // under wmu
	// lastWrite is when something was last sent (unix ns), for keepalive.
	lastWrite atomic.Int64
	onAck     func(id uint16)
	done      chan struct{} // closed when the reader has ended
	err       error         // why the reader ended; read after done
}

// dialMQTT connects and completes the CONNECT handshake. onAck runs on the
// connection's reader goroutine for every PUBACK: it must not block.
func dialMQTT(ctx context.Context, cfg dialConfig, clientID, username string, w *will, onAck func(uint16)) (*mqttConn, error) {
	d := net.Dialer{Timeout: cfg.Timeout, LocalAddr: cfg.Local}
	var nc net.Conn
	var err error
	switch {
	case cfg.WebSocket != "":
		nc, err = dialWebSocket(ctx, cfg, &d)
	case cfg.TLS != nil:
		td := tls.Dialer{NetDialer: &d, Config: cfg.TLS}
		nc, err = td.DialContext(ctx, "tcp", cfg.Addr)
	default:
		nc, err = d.DialContext(ctx, "tcp", cfg.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("mqtt dial %s: %w", cfg.Addr, err)
	}
	if cfg.Username != "" {
		username = cfg.Username
	}
	password := cfg.Password
	if p, ok := cfg.Passwords[username]; ok {
		password = p
	}
	pkt := appendConnect(nil, clientID, username, password, w, cfg.KeepAlive)
	nc.SetDeadline(time.Now().Add(cfg.Timeout))
	if _, err := nc.Write(pkt); err != nil {
		nc.Close()
		return nil, fmt.Errorf("mqtt connect %s: %w", clientID, err)
	}
	var ack [4]byte
	if _, err := io.ReadFull(nc, ack[:]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("mqtt connack %s: %w", clientID, err)
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		nc.Close()
		return nil, fmt.Errorf("mqtt connack %s: unexpected packet % x", clientID, ack)
	}
	if ack[3] != 0 {
		nc.Close()
		return nil, fmt.Errorf("%w: %s: return code %d", errRefused, clientID, ack[3])
	}
	nc.SetDeadline(time.Time{})
	c := &mqttConn{conn: nc, timeout: cfg.Timeout, onAck: onAck, done: make(chan struct{})}
	c.lastWrite.Store(time.Now().UnixNano())
	go c.readLoop() // ends when the connection closes; close() waits for it
	return c, nil
}

// readLoop reads what the broker sends a publisher: PUBACK and PINGRESP.
// It parses from a small fixed buffer so that an idle device costs a
// goroutine and no heap.
func (c *mqttConn) readLoop() {
	defer close(c.done)
	var rb [64]byte
	n := 0
	for {
		m, err := c.conn.Read(rb[n:])
		if err != nil {
			c.err = err
			return
		}
		n += m
		for n >= 2 {
			rl := int(rb[1])
			if rl >= 0x80 || 2+rl > len(rb) {
				// We never subscribe, so no large packet should come.
				c.err = fmt.Errorf("mqtt: unexpected packet type %#x of %d+ bytes", rb[0], rl)
				c.conn.Close()
				return
			}
			if n < 2+rl {
				break
			}
			if rb[0]>>4 == 4 && rl == 2 && c.onAck != nil { // PUBACK
				c.onAck(binary.BigEndian.Uint16(rb[2:4]))
			}
			copy(rb[:], rb[2+rl:n])
			n -= 2 + rl
		}
	}
}

// publish sends one PUBLISH and returns its packet id (0 at QoS 0). A
// device's messages go out in the order of the calls.
func (c *mqttConn) publish(buf []byte, topic string, payload []byte, qos1, retain, dup bool) ([]byte, uint16, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var id uint16
	if qos1 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		id = c.nextID
	}
	buf = appendPublish(buf[:0], topic, payload, id, qos1, retain, dup)
	return buf, id, c.writeLocked(buf)
}

func (c *mqttConn) writeLocked(b []byte) error {
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := c.conn.Write(b)
	if err != nil {
		return fmt.Errorf("mqtt write: %w", err)
	}
	c.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// pingIfIdle sends PINGREQ when nothing was sent for half the keepalive,
// so the broker does not drop a quiet device.
func (c *mqttConn) pingIfIdle(now time.Time, keepAlive time.Duration) error {
	if keepAlive <= 0 || now.UnixNano()-c.lastWrite.Load() < int64(keepAlive/2) {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked([]byte{0xC0, 0})
}

// disconnect ends the session cleanly: the broker discards the Last Will.
func (c *mqttConn) disconnect() {
	c.wmu.Lock()
	c.writeLocked([]byte{0xE0, 0})
	c.wmu.Unlock()
	c.close()
}

// cut drops the connection without DISCONNECT, as a device that loses power
// or radio: the broker publishes the Last Will.
func (c *mqttConn) cut() { c.close() }

func (c *mqttConn) close() {
	c.conn.Close()
	<-c.done
}

// alive reports whether the reader still runs (the connection is up).
func (c *mqttConn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// wsWriteBuffers lends gorilla/websocket its write buffers only while a
// message is written: a device writes a few hundred bytes a minute, and
// 20,000 devices each holding a 4 KiB buffer for life would cost 80 MiB.
var wsWriteBuffers sync.Pool

// wsReadBuffer is each WebSocket connection's read buffer. The broker sends
// a publisher only PUBACK, PINGRESP and control frames (at most 125 bytes,
// gorilla's minimum), so a small one is enough and it is held for life.
const wsReadBuffer = 256

// dialWebSocket opens MQTT over a WebSocket (MQTT 3.1.1 §6, subprotocol
// "mqtt"), with TLS for wss://, and returns it as the byte stream the client
// reads and writes.
func dialWebSocket(ctx context.Context, cfg dialConfig, d *net.Dialer) (net.Conn, error) {
	wd := websocket.Dialer{
		NetDialContext:   d.DialContext,
		TLSClientConfig:  cfg.TLS,
		HandshakeTimeout: cfg.Timeout,
		Subprotocols:     []string{"mqtt"},
		ReadBufferSize:   wsReadBuffer,
		WriteBufferPool:  &wsWriteBuffers,
		// Proxy stays nil: devices reach the broker directly, whatever
		// HTTP_PROXY the simulator's environment holds.
	}
	ws, resp, err := wd.DialContext(ctx, cfg.WebSocket, nil)
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 && resp.StatusCode < 500 {
			// A wrong path or credentials: trying again will not help.
			return nil, fmt.Errorf("%w: websocket handshake with %s: HTTP %s", errRefused, cfg.WebSocket, resp.Status)
		}
		if resp != nil {
			return nil, fmt.Errorf("websocket handshake with %s: HTTP %s: %w", cfg.WebSocket, resp.Status, err)
		}
		return nil, fmt.Errorf("websocket %s: %w", cfg.WebSocket, err)
	}
	return &wsConn{Conn: ws.UnderlyingConn(), ws: ws}, nil
}

// errTextMessage: MQTT over WebSocket travels in binary messages only.
var errTextMessage = errors.New("mqtt over websocket: the broker sent a non-binary message")

// wsConn is a WebSocket seen as the net.Conn the client expects. Every
// Write is one binary message (the client writes one packet per call); Read
// treats the messages' payloads as one byte stream, since a packet may span
// messages and a message may hold several packets (MQTT 3.1.1 §6). Read runs
// on one goroutine at a time (the handshake, then the reader) and Write
// under mqttConn.wmu, which is the concurrency gorilla allows.
type wsConn struct {
	net.Conn                 // the TCP or TLS connection under the WebSocket: addresses
	ws       *websocket.Conn // framing, masking, ping/pong and close frames
	r        io.Reader       // the message being read; nil between messages
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errTextMessage
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil // the message is done; the stream goes on with the next one
			err = nil
		}
		if n > 0 || err != nil || len(p) == 0 {
			return n, err
		}
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close drops the TCP connection without a WebSocket close frame, as cut()
// needs: to the broker it is a device that lost power. A clean end has
// already sent DISCONNECT, which is what tells the broker to drop the will.
func (c *wsConn) Close() error { return c.ws.Close() }

// The deadlines go through gorilla: it sets its own write deadline on the
// connection before every frame, so one set on the TCP connection directly
// would be overwritten.
func (c *wsConn) SetDeadline(t time.Time) error {
	c.ws.SetWriteDeadline(t)
	return c.ws.SetReadDeadline(t)
}
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

func appendConnect(b []byte, clientID, username, password string, w *will, keepAlive time.Duration) []byte {
	flags := byte(0x02) // clean session: a device only publishes
	body := 10 + 2 + len(clientID)
	if w != nil {
		flags |= 0x04 | 0x08 | 0x20 // will, will QoS 1, will retain
		body += 2 + len(w.Topic) + 2 + len(w.Payload)
	}
	if username != "" {
		flags |= 0x80
		body += 2 + len(username)
		if password != "" {
			flags |= 0x40
			body += 2 + len(password)
		}
	}
	ka := min(int(keepAlive/time.Second), 65535)
	b = append(b, 0x10)
	b = appendVarint(b, body)
	b = append(b, 0, 4, 'M', 'Q', 'T', 'T', 4, flags, byte(ka>>8), byte(ka))
	b = appendString(b, clientID)
	if w != nil {
		b = appendString(b, w.Topic)
		b = appendString(b, w.Payload)
	}
	if username != "" {
		b = appendString(b, username)
		if password != "" {
			b = appendString(b, password)
		}
	}
	return b
}

func appendPublish(b []byte, topic string, payload []byte, id uint16, qos1, retain, dup bool) []byte {
	h := byte(0x30)
	rl := 2 + len(topic) + len(payload)
	if qos1 {
		h |= 0x02
		rl += 2
	}
	if retain {
		h |= 0x01
	}
	if dup && qos1 {
		h |= 0x08
	}
	b = append(b, h)
	b = appendVarint(b, rl)
	b = appendString(b, topic)
	if qos1 {
		b = append(b, byte(id>>8), byte(id))
	}
	return append(b, payload...)
}

func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

func appendVarint(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}
