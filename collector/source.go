package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/greenpost/greenpost/internal/settings"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// message is one MQTT message handed from paho to the pipeline. Past this
// point nothing sees a paho type: ack is the message's Ack, to be called
// once the message is durable.
type message struct {
	topic   string
	payload []byte
	recv    time.Time
	ack     func()
	// retained marks a message the broker re-sent from its retained store
	// because we (re)subscribed, not one published now (MQTT 3.1.1
	// §3.3.1.3: live deliveries carry the flag 0).
	retained bool
}

// mqttSource is the paho adapter: it subscribes on a persistent session with
// manual acknowledgement and hands every message to out. The paho callback
// does no I/O and never waits on InfluxDB (STYLE rule 8).
type mqttSource struct {
	log     *slog.Logger
	m       *promMetrics
	out     chan<- message
	filters map[string]byte
	client  mqtt.Client

	wg        sync.WaitGroup // the connect loop
	stopOnce  sync.Once
	stopped   chan struct{} // closed by StopConsuming
	connected atomic.Bool
}

func newMQTTSource(cfg config, out chan<- message, log *slog.Logger, m *promMetrics) (*mqttSource, error) {
	s := &mqttSource{log: log, m: m, out: out, stopped: make(chan struct{}), filters: map[string]byte{}}
	for _, f := range []string{telemetry.FilterTelemetry, telemetry.FilterStatus} {
		if cfg.ShareGroup != "" {
			f = "$share/" + cfg.ShareGroup + "/" + f
		}
		s.filters[f] = 1
	}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.MQTTURL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.MQTTUser).
		SetPassword(cfg.MQTTPassword).
		// The broker keeps our subscription and queues messages while we are away.
		SetCleanSession(false).
		// Acknowledge only when durable (ingester), never when the handler returns.
		SetAutoAckDisabled(true).
		// One handler at a time, in arrival order: acks then go out in order too.
		SetOrderMatters(true).
		// After the first connection paho reconnects by itself; the first
		// connection is retried by Start, which can log why it fails.
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetMaxReconnectInterval(30 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		// Queued messages may arrive before Subscribe returns: the default
		// handler catches them (mqtt-notes.md).
		SetDefaultPublishHandler(s.onMessage).
		SetOnConnectHandler(s.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.connected.Store(false)
			s.m.mqttConnected.Set(0)
			s.log.Warn("mqtt connection lost", "err", err)
		}).
		SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) { s.log.Info("mqtt reconnecting") })
	if strings.HasPrefix(cfg.MQTTURL, "tcp://") {
		opts.SetCustomOpenConnectionFn(dialBuffered)
	}
	opts.SetStore(noStore{})
	if strings.HasPrefix(cfg.MQTTURL, "ssl://") || strings.HasPrefix(cfg.MQTTURL, "wss://") {
		tc, err := settings.ClientTLS(cfg.MQTTCAFile, "")
		if err != nil {
			return nil, fmt.Errorf("GP_MQTT_CA_FILE: %w", err)
		}
		opts.SetTLSConfig(tc)
	}
	s.client = mqtt.NewClient(opts)
	return s, nil
}

// Start connects in the background, retrying with capped backoff (and a
// log line per failure) until it succeeds or StopConsuming is called.
func (s *mqttSource) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		backoff := 500 * time.Millisecond
		for {
			tok := s.client.Connect()
			tok.Wait() // bounded by the connect timeout
			if tok.Error() == nil {
				return
			}
			s.log.Warn("mqtt connect failed", "err", tok.Error(), "retry_in", backoff.String())
			select {
			case <-s.stopped:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
		}
	}()
}

func (s *mqttSource) onConnect(c mqtt.Client) {
	s.m.mqttConnectCount.Inc()
	// Subscribing again after every reconnect is harmless and covers a
	// broker that lost our session.
	for attempt := 1; ; attempt++ {
		tok := c.SubscribeMultiple(s.filters, nil)
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			break
		}
		s.log.Error("mqtt subscribe failed", "attempt", attempt, "err", tok.Error())
		select {
		case <-s.stopped:
			return
		case <-time.After(min(time.Duration(attempt)*time.Second, 10*time.Second)):
		}
		if !c.IsConnectionOpen() {
			return // the next onConnect subscribes
		}
	}
	s.connected.Store(true)
	s.m.mqttConnected.Set(1)
	s.log.Info("mqtt connected and subscribed", "filters", len(s.filters))
}

func (s *mqttSource) onMessage(_ mqtt.Client, msg mqtt.Message) {
	s.m.received.Inc()
	select {
	case s.out <- message{topic: msg.Topic(), payload: msg.Payload(), recv: time.Now(), ack: msg.Ack, retained: msg.Retained()}:
	case <-s.stopped:
		// Shutting down: not acknowledged, so the broker delivers it again
		// when we (or another collector of the group) reconnect.
	}
}

// Connected reports whether the client is connected and subscribed.
func (s *mqttSource) Connected() bool { return s.connected.Load() && s.client.IsConnectionOpen() }

// StopConsuming makes the handler refuse new messages (they stay
// unacknowledged at the broker).
func (s *mqttSource) StopConsuming() { s.stopOnce.Do(func() { close(s.stopped) }) }

// Close disconnects, giving queued acknowledgements time to leave.
func (s *mqttSource) Close() {
	s.StopConsuming()
	s.wg.Wait()
	s.client.Disconnect(1000)
	s.connected.Store(false)
	s.m.mqttConnected.Set(0)
}

// dialBuffered opens a tcp:// connection whose reads go through a buffer.
// paho reads each packet's header a byte at a time straight from the
// connection: three or four read syscalls per message, which profiling
// showed to be a third of the collector's CPU. (TLS connections already
// read whole records; WebSockets whole frames.)
func dialBuffered(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	d := net.Dialer{Timeout: o.ConnectTimeout}
	c, err := d.Dial("tcp", uri.Host)
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

// bufferedConn is a net.Conn with buffered reads.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// noStore is a paho Store that keeps nothing. paho stores every inbound
// QoS 1 message until it is acknowledged and every outbound packet until it
// is confirmed, to resend them after a reconnect. The collector publishes
// nothing, and an inbound message it has not acknowledged is the broker's
// to resend (persistent session), so the store only cost a locked map
// insert and delete per message.
type noStore struct{}

func (noStore) Open()                             {}
func (noStore) Put(string, packets.ControlPacket) {}
func (noStore) Get(string) packets.ControlPacket  { return nil }
func (noStore) All() []string                     { return nil }
func (noStore) Del(string)                        {}
func (noStore) Close()                            {}
func (noStore) Reset()                            {}

var _ mqtt.Store = noStore{}
