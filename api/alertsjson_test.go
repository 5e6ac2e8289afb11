package main

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// alertStrings are strings that take each of encoding/json's escapes.
var alertStrings = []string{"", "o-0001", "汉阳区钟家村快递站", "武汉市 <a> & \"b\" \\ c", "line\nbreak\ttab\r\x01\x1f\x7f",
	"bad \xff utf-8 \xe4\xb8", "sep \u2028 \u2029 end", "emoji 🚚", "no device of this outlet has reported for 12 minutes (staleness 15m0s)"}

// TestAlertsJSONIsEncodingJSON: the hand-written answer is byte for byte
// what json.Marshal writes, for alerts with every kind of string, time and
// value, alone and grouped by outlet, with the registry's outlets written
// before (knownOf) or not.
func TestAlertsJSONIsEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 1))
	pick := func() string { return alertStrings[rng.IntN(len(alertStrings))] }
	values := []float64{0, 1, -2.5, 90.25, 1e-7, 3e-9, 1e21, 1.5e22, 123456789.125, math.SmallestNonzeroFloat64, -0.0000001}
	for n := range 200 {
		a := alertsAnswer{At: time.Unix(1_800_000_000+rng.Int64N(1e6), rng.Int64N(1e9)*int64(rng.IntN(2))).UTC()}
		if n%7 != 0 {
			a.Alerts = []alert{}
		}
		for range rng.IntN(12) {
			al := alert{Kind: alertKinds[rng.IntN(len(alertKinds))], Device: pick(), Detail: pick()}
			if len(a.Alerts) > 0 && rng.IntN(2) == 0 {
				prev := a.Alerts[len(a.Alerts)-1] // the same outlet again
				al.Outlet, al.Name, al.District, al.Address = prev.Outlet, prev.Name, prev.District, prev.Address
				if rng.IntN(4) == 0 {
					al.Name = pick() // its id, another name
				}
			} else {
				al.Outlet, al.Name, al.District, al.Address = pick(), pick(), pick(), pick()
			}
			if rng.IntN(3) > 0 {
				ts := time.UnixMilli(1_790_000_000_000 + rng.Int64N(1e10)).Add(time.Duration(rng.IntN(3)) * 1234567 * time.Nanosecond).UTC()
				al.Since = &ts
			}
			if rng.IntN(3) > 0 {
				v := values[rng.IntN(len(values))]
				if rng.IntN(2) == 0 {
					v = rng.Float64() * 1e3
				}
				al.Value = &v
			}
			a.Alerts = append(a.Alerts, al)
		}
		if n%3 == 0 {
			a.Warnings = []string{pick(), pick()}
		}
		if n%2 == 0 {
			a.known = knownOf(rng, a.Alerts, func(al alert) Outlet {
				return Outlet{ID: al.Outlet, Name: al.Name, District: al.District, Address: al.Address, Operator: pick()}
			})
		}
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendAlertsAnswer(nil, a)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("answer %d:\n got %s\nwant %s", n, got, want)
		}
	}
	nan := math.NaN()
	if _, err := appendAlertsAnswer(nil, alertsAnswer{Alerts: []alert{{Value: &nan}}}); err == nil {
		t.Fatal("NaN written")
	}
}

// knownOf is the registry's outlets written (outletJSON) for rows' outlets:
// most as the rows have them, some since changed (another name or
// address), some missing.
func knownOf[T any](rng *rand.Rand, rows []T, outlet func(T) Outlet) map[string]outletJSON {
	known := map[string]outletJSON{}
	for _, r := range rows {
		o := outlet(r)
		switch rng.IntN(4) {
		case 0:
			continue
		case 1:
			o.Name += "x"
		case 2:
			o.Address = ""
		}
		known[o.ID] = newOutletJSON(&o)
	}
	return known
}

// FuzzAlertsJSON: any strings and value give json.Marshal's bytes, with
// the outlet written before or not.
func FuzzAlertsJSON(f *testing.F) {
	for i, s := range alertStrings {
		f.Add(s, alertStrings[(i+3)%len(alertStrings)], float64(i)*1.25e-7, int64(i)*987654321)
	}
	f.Fuzz(func(t *testing.T, name, detail string, v float64, ns int64) {
		since := time.Unix(0, ns).UTC()
		a := alertsAnswer{At: since, Alerts: []alert{{Kind: alertOutletSilent, Outlet: name, Name: name, Address: detail, Detail: detail, Since: &since, Value: &v}}}
		want, werr := json.Marshal(a)
		for _, known := range []map[string]outletJSON{nil, {name: newOutletJSON(&Outlet{ID: name, Name: name, Address: detail, Operator: detail})}} {
			a.known = known
			got, gerr := appendAlertsAnswer(nil, a)
			if (werr != nil) != (gerr != nil) {
				t.Fatalf("errors: encoding/json %v, by hand %v", werr, gerr)
			}
			if werr == nil && !bytes.Equal(got, want) {
				t.Fatalf("\n got %s\nwant %s", got, want)
			}
		}
	})
}

// BenchmarkAlertsJSON writes a city's outage: 10,000 outlets, each silent
// with its 3 devices offline (40,000 alerts), by encoding/json and by
// hand.
func BenchmarkAlertsJSON(b *testing.B) {
	a := alertsAnswer{At: time.Now().UTC()}
	for i := range 10000 {
		since := time.UnixMilli(1_790_000_000_000 + int64(i)*997).UTC()
		v := 913.25
		o := alert{Outlet: "o-" + strconv.Itoa(i), Name: "汉阳区钟家村快递站" + strconv.Itoa(i), District: "hanyang", Address: "武汉市汉阳区钟家村街道 " + strconv.Itoa(i) + " 号"}
		for j, k := range []string{alertOutletSilent, alertDeviceOffline, alertDeviceOffline, alertDeviceOffline} {
			al := o
			al.Kind, al.Since, al.Value = k, &since, &v
			if j > 0 {
				al.Device = "b-" + strconv.Itoa(i) + "-" + strconv.Itoa(j)
			}
			al.Detail = "no report for 913 minutes (staleness 15m0s)"
			a.Alerts = append(a.Alerts, al)
		}
	}
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("by-hand", func(b *testing.B) {
		for b.Loop() {
			if _, err := appendAlertsAnswer(make([]byte, 0, 256+320*len(a.Alerts)), a); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendJSONString: the strings an alerts answer writes most — a
// device id, a detail, an outlet's Chinese name and address.
func BenchmarkAppendJSONString(b *testing.B) {
	for _, s := range []string{"o-01234-d1", "no report for 913 minutes (staleness 15m0s)", "汉阳区钟家村快递站1234", "武汉市汉阳区钟家村街道 1234 号"} {
		b.Run(strconv.Itoa(len(s)), func(b *testing.B) {
			buf := make([]byte, 0, 256)
			for b.Loop() {
				buf = appendJSONString(buf[:0], s)
			}
		})
	}
}
