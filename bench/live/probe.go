package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// The publish → visible measurement.
//
// A plain MQTT subscriber on every broker sees each message of the sampled
// outlets' parcel counters: its ts (the device stamps it just before it
// publishes), its boot and its cumulative parcels by class. From that stream
// metrics-v1 says what an outlet's parcel total over a fixed window must be
// once the first k messages of the window are stored: T_k (steps per class
// from the series' last value before the window). While a phase runs the
// poller asks the API for that window over and over; message k is visible
// at the first answer whose total reaches T_k. Only messages that raise the
// total (T_k > T_{k-1}) can be seen this way, and only they are counted.
// The latency is that answer's arrival time minus the message's ts: an
// upper bound, coarse by the poll period plus the request's own time.

// sighting is one counter message as the subscriber saw it.
type sighting struct {
	ts      time.Time
	device  string
	counter bool
	boot    int64
	parcels [telemetry.NumClasses]int64
}

// watcher holds what the subscribers saw, per outlet.
type watcher struct {
	mu      sync.Mutex
	reports map[string][]sighting // outlet → its counter's messages, in arrival order
	bad     int
	clients []mqtt.Client
}

func watch(brokerURLs []string, topics map[string]string) (*watcher, error) {
	w := &watcher{reports: map[string][]sighting{}}
	filters := map[string]byte{}
	for topic := range topics {
		filters[topic] = 1
	}
	for i, u := range brokerURLs {
		opts := mqtt.NewClientOptions().AddBroker(u).SetClientID(fmt.Sprintf("bench-live-watch-%d", i)).SetCleanSession(true).
			SetConnectTimeout(10 * time.Second).SetOrderMatters(true).
			SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
				msg, err := telemetry.Decode(m.Topic(), m.Payload(), time.Now())
				w.mu.Lock()
				defer w.mu.Unlock()
				outlet, ok := topics[m.Topic()]
				if err != nil || !ok {
					w.bad++
					return
				}
				w.reports[outlet] = append(w.reports[outlet], sighting{ts: msg.Time(), device: msg.Topic.Device,
					counter: msg.Topic.Kind == telemetry.KindCounter, boot: msg.Boot, parcels: msg.Counter.Parcels})
			})
		c := mqtt.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			w.close()
			return nil, fmt.Errorf("watcher connect: %v", tok.Error())
		}
		w.clients = append(w.clients, c)
		if tok := c.SubscribeMultiple(filters, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			w.close()
			return nil, fmt.Errorf("watcher subscribe: %v", tok.Error())
		}
	}
	return w, nil
}

func (w *watcher) close() {
	for _, c := range w.clients {
		c.Disconnect(100)
	}
}

// seen counts the messages seen with from ≤ ts < to.
func (w *watcher) seen(from, to time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, rs := range w.reports {
		for _, r := range rs {
			if !r.ts.Before(from) && r.ts.Before(to) {
				n++
			}
		}
	}
	return n
}

// A target is what an answer must show once a message (and the outlet's
// messages before it) is stored: a parcel total (metrics-v1, from the
// counter's stream), or a number of bins or counters reporting in the
// window (a device's first message of the window raises it; the r-th first
// message is visible once r devices are, so its latency is an upper bound).
type target struct {
	ts   time.Time
	what string // parcels, bins, counters
	need int64
}

// targets are the outlet's targets for its messages in [from, to), and
// what its answer must end on.
func (w *watcher) targets(outlet string, from, to time.Time) (ts []target, final answer) {
	w.mu.Lock()
	rs := append([]sighting(nil), w.reports[outlet]...)
	w.mu.Unlock()
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].ts.Before(rs[j].ts) })
	prev := map[string][telemetry.NumClasses]int64{} // per device and boot: last value before the window (24 h)
	seen := map[string]bool{}
	for _, r := range rs {
		key := fmt.Sprint(r.device, "/", r.boot)
		switch {
		case r.ts.Before(from.Add(-24 * time.Hour)):
		case r.ts.Before(from):
			prev[key] = r.parcels
		case r.ts.Before(to):
			if !seen[r.device] {
				seen[r.device] = true
				if r.counter {
					final.counters++
					ts = append(ts, target{r.ts, "counters", final.counters})
				} else {
					final.bins++
					ts = append(ts, target{r.ts, "bins", final.bins})
				}
			}
			if !r.counter {
				continue
			}
			p := prev[key]
			var step int64
			for c, v := range r.parcels {
				if v >= p[c] {
					step += v - p[c]
				} else {
					step += v // a reset: counted from 0
				}
			}
			prev[key] = r.parcels
			if step > 0 {
				final.parcels += step
				ts = append(ts, target{r.ts, "parcels", final.parcels})
			}
		}
	}
	return ts, final
}

// answer is one poll's reading of an outlet's parcel total.
type answer struct {
	at                      time.Time
	parcels, bins, counters int64 // bins and counters: -1 when the answer does not say
}

func (a answer) reaches(t target) bool {
	switch t.what {
	case "parcels":
		return a.parcels >= t.need
	case "bins":
		return a.bins >= t.need
	default:
		return a.counters >= t.need
	}
}

// poller asks the API for the sampled outlets' totals over [from, to) until
// stopped: each outlet's own rates every period, and (every groupEvery)
// /v1/rates?group_by=outlet, the whole city's list, for the same outlets.
type poller struct {
	s                *stack
	outlets          []string
	from, to         time.Time
	mu               sync.Mutex
	own, group       map[string][]answer
	errs             int
	lastErr          string
	groupSecs        []float64 // response times of the city-wide list
	ownSecs          []float64
	stop             context.CancelFunc
	done             sync.WaitGroup
	period, groupGap time.Duration
}

// The window ends two minutes from now (no message is newer), not at
// p.to: the engine reads a window's end past the roll-up raw, and 24 hours
// of the future for 10,000 outlets is past its limit for raw reads (503).
func (p *poller) window() string {
	to := nowWindowEnd()
	if to.After(p.to) {
		to = p.to
	}
	return "from=" + url.QueryEscape(p.from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))
}

// nowWindowEnd is the end of a window that holds every message sent so
// far: two whole minutes ahead.
func nowWindowEnd() time.Time {
	return time.Now().UTC().Truncate(time.Minute).Add(2 * time.Minute)
}

func startPoller(s *stack, outlets []string, from, to time.Time, period, groupGap time.Duration) *poller {
	p := &poller{s: s, outlets: outlets, from: from, to: to, own: map[string][]answer{}, group: map[string][]answer{},
		period: period, groupGap: groupGap}
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	p.done.Go(func() { p.pollOwn(ctx) })
	if groupGap > 0 {
		p.done.Go(func() { p.pollGroup(ctx) })
	}
	return p
}

func (p *poller) halt() { p.stop(); p.done.Wait() }

func (p *poller) fail(err error) {
	p.mu.Lock()
	p.errs++
	p.lastErr = err.Error()
	p.mu.Unlock()
}

func (p *poller) pollOwn(ctx context.Context) {
	for next := time.Now(); ctx.Err() == nil; next = next.Add(p.period) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for _, id := range p.outlets {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				var a struct {
					Parcels       struct{ Total int64 } `json:"parcels"`
					BinsReporting int64                 `json:"bins_reporting"`
					Completeness  struct {
						CountersReporting int64 `json:"counters_reporting"`
					} `json:"completeness"`
				}
				t0 := time.Now()
				if err := p.s.get("/v1/outlets/"+id+"/rates?"+p.window(), &a); err != nil {
					p.fail(err)
					return
				}
				at := time.Now()
				p.mu.Lock()
				p.own[id] = append(p.own[id], answer{at, a.Parcels.Total, a.BinsReporting, a.Completeness.CountersReporting})
				p.ownSecs = append(p.ownSecs, at.Sub(t0).Seconds())
				p.mu.Unlock()
			})
		}
		wg.Wait()
		sleepUntil(ctx, next.Add(p.period))
	}
}

func (p *poller) pollGroup(ctx context.Context) {
	want := map[string]bool{}
	for _, id := range p.outlets {
		want[id] = true
	}
	for next := time.Now(); ctx.Err() == nil; next = next.Add(p.groupGap) {
		var a struct {
			Groups []struct {
				Key     string
				Parcels struct{ Total int64 } `json:"parcels"`
			}
		}
		t0 := time.Now()
		if err := p.s.get("/v1/rates?group_by=outlet&"+p.window(), &a); err != nil {
			p.fail(err)
		} else {
			at := time.Now()
			p.mu.Lock()
			for _, g := range a.Groups {
				if want[g.Key] {
					p.group[g.Key] = append(p.group[g.Key], answer{at, g.Parcels.Total, -1, -1})
				}
			}
			p.groupSecs = append(p.groupSecs, at.Sub(t0).Seconds())
			p.mu.Unlock()
		}
		sleepUntil(ctx, next.Add(p.groupGap))
	}
}

// latest are the outlets' last answers from their own rates and from the
// city-wide list.
func (p *poller) latest(id string) (own, group answer, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, g := p.own[id], p.group[id]
	if len(o) == 0 || (p.groupGap > 0 && len(g) == 0) {
		return own, group, false
	}
	own = o[len(o)-1]
	if len(g) > 0 {
		group = g[len(g)-1]
	}
	return own, group, true
}

// latencies matches targets with answers (in the order they came): for
// each target, the first answer that reaches it. Targets an answer cannot
// show (bins and counters in the city-wide list) are left out; unseen
// counts those no answer reached.
func latencies(ts map[string][]target, answers map[string][]answer, parcelsOnly bool) (lat []float64, unseen int) {
	for id, tg := range ts {
		as := answers[id]
		for _, t := range tg {
			if parcelsOnly && t.what != "parcels" {
				continue
			}
			i := slices.IndexFunc(as, func(a answer) bool { return a.reaches(t) })
			if i < 0 {
				unseen++
				continue
			}
			lat = append(lat, as[i].at.Sub(t.ts).Seconds())
		}
	}
	sort.Float64s(lat)
	return lat, unseen
}

// quantiles formats p50 / p95 / max of sorted seconds.
func quantiles(s []float64) string {
	if len(s) == 0 {
		return "–"
	}
	q := func(f float64) float64 { return s[min(len(s)-1, int(f*float64(len(s))))] }
	return fmt.Sprintf("%.1f / %.1f / %.1f s", q(0.5), q(0.95), s[len(s)-1])
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}
