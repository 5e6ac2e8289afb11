package deploytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/greenpost/greenpost/internal/testenv"
)

// influx2 stands in front of InfluxDB 1.8.10 and makes it answer the way
// InfluxDB 2.x / Cloud does where 1.8 would be more lenient: /query (the
// InfluxQL path) finds no database, as on a 2.x bucket without a DBRP
// mapping, so everything must go through Flux. It records every request:
// its path, org and token, for the test to check what 2.x would refuse.
type influx2 struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []influx2Req
}

type influx2Req struct {
	method, path, org, bucket, auth string
}

func newInflux2(t *testing.T, target string) *influx2 {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &influx2{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p.mu.Lock()
		p.reqs = append(p.reqs, influx2Req{r.Method, r.URL.Path, q.Get("org"), q.Get("bucket"), r.Header.Get("Authorization")})
		p.mu.Unlock()
		if r.URL.Path == "/query" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"code":"not found","message":"database not found: no dbrp mapping"}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *influx2) requests() []influx2Req {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]influx2Req(nil), p.reqs...)
}

func apiGet(url, key string, into any) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && into != nil {
		return resp.StatusCode, json.Unmarshal(b, into)
	}
	return resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, b)
}

// TestInfluxDB2Paths runs the collector and the API (as the images build
// them) the way an InfluxDB 2.x install runs them, on the 1.8.10 this
// machine has, forcing every 2.x-specific path 1.8 can be made to take:
//   - InfluxQL switched off (the stand-in answers /query as 2.x does for a
//     bucket without a DBRP mapping): the API's figures come from Flux alone
//     and are exact;
//   - tokens with only the rights storage-v1 gives each program (1.8's
//     auth on, users as tokens): the collector may only write the telemetry
//     bucket, the API only read it and read and write its own;
//   - an org on every v2 request (1.8 ignores it; 2.x refuses a request
//     without one);
//   - bucket names without "/" (gp, gp_api), as 2.x names them;
//   - a wrong token stops the collector with exit code 1 (2.x answers 401).
func TestInfluxDB2Paths(t *testing.T) {
	bins := images(t)
	in := testenv.StartInfluxWith(t, testenv.InfluxOptions{Auth: true})
	for _, q := range []string{
		"CREATE DATABASE gp_api",
		`CREATE USER "collector-w" WITH PASSWORD 'c-secret'`, `GRANT WRITE ON "gp" TO "collector-w"`,
		`CREATE USER "api-r" WITH PASSWORD 'a-secret'`, `GRANT READ ON "gp" TO "api-r"`, `GRANT ALL ON "gp_api" TO "api-r"`,
	} {
		if err := in.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	proxy := newInflux2(t, in.URL)
	common := []string{"GP_INFLUX_URL=" + proxy.URL, "GP_INFLUX_ORG=city", "GP_INFLUX_BUCKET=gp"}
	broker := testenv.FreeAddr(t)
	col := startBinary(t, bins["collector"], append(common, "GP_INFLUX_TOKEN=collector-w:c-secret", "GP_EMBEDDED_BROKER="+broker,
		"GP_COLLECTOR_ADDR="+testenv.FreeAddr(t), "GP_SPOOL_DIR="+t.TempDir())...)
	// One outlet's hour, three hours ago (inside the roll-up's first
	// history chunk): parcels 65, green 60; a bin serving 32 of 60 minutes.
	F := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	m := time.Minute
	msgs := []struct {
		topic string
		at    time.Duration
		body  string
	}{
		{"gp/v1/o-b1/counter/c-b1/telemetry", -10 * m, `"parcels":{"recyclable":100,"plastic":20}`},
		{"gp/v1/o-b1/counter/c-b1/telemetry", 10 * m, `"parcels":{"recyclable":130,"plastic":25}`},
		{"gp/v1/o-b1/counter/c-b1/telemetry", 40 * m, `"parcels":{"recyclable":150,"plastic":25,"reusable":4,"original":6}`},
		{"gp/v1/o-b1/bin/b-b1-1/telemetry", 0, `"fill_pct":30,"deposits":1`},
		{"gp/v1/o-b1/bin/b-b1-1/telemetry", 30 * m, `"fill_pct":40,"deposits":2`},
	}
	clients := map[string]mqtt.Client{}
	for i, msg := range msgs {
		dev := strings.Split(msg.topic, "/")[4]
		if clients[dev] == nil {
			testenv.Eventually(t, 30*time.Second, func() string {
				c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + broker).SetClientID(dev).SetUsername(dev).
					SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(2 * time.Second))
				if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					return fmt.Sprintf("connect %s: %v\n%s", dev, tok.Error(), col.String())
				}
				clients[dev] = c
				return ""
			})
			defer clients[dev].Disconnect(100)
		}
		payload := fmt.Sprintf(`{"ts":%d,"seq":%d,"boot":1,%s}`, F.Add(msg.at).UnixMilli(), i+1, msg.body)
		if tok := clients[dev].Publish(msg.topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v\n%s", tok.Error(), col.String())
		}
	}
	// The API starts once the points are in InfluxDB, so that its first
	// build of the hours holds them. Started before, its first late-data
	// check could run before they landed: then the window's hour (within
	// the last 3 h, checked every cycle) was re-rolled, but the hour before
	// it (the counters' 24-h baseline) only when the rotating check of
	// older days came round, after the test's deadline (CheckEvery): the
	// test failed or passed by the hour of the day it ran.
	testenv.Eventually(t, 60*time.Second, func() string {
		out, err := in.InfluxQL(`SELECT count(seq) FROM "gp"."autogen"."counter", "gp"."autogen"."bin" WHERE outlet = 'o-b1'`)
		if err != nil {
			return err.Error()
		}
		if !strings.Contains(out, `"counter","columns":["time","count"],"values":[["1970-01-01T00:00:00Z",3]]`) ||
			!strings.Contains(out, `"bin","columns":["time","count"],"values":[["1970-01-01T00:00:00Z",2]]`) {
			return "points not all in InfluxDB yet: " + out + "\n" + col.String()
		}
		return ""
	})
	apiAddr := testenv.FreeAddr(t)
	const admin, viewer = "admin-key-influx2", "viewer-key-influx2"
	api := startBinary(t, bins["api"], append(common, "GP_INFLUX_TOKEN=api-r:a-secret", "GP_API_BUCKET=gp_api",
		"GP_API_ADDR="+apiAddr, "GP_API_KEYS=admin:"+admin+",viewer:"+viewer)...)
	req, _ := http.NewRequest(http.MethodPost, "http://"+apiAddr+"/v1/outlets/import", bytes.NewReader([]byte(
		"id,name,district,address,lat,lon,operator\no-b1,One,jianghan,,30.6,114.3,SF Express\n")))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "text/csv")
	testenv.Eventually(t, 60*time.Second, func() string {
		resp, err := http.DefaultClient.Do(req.Clone(req.Context()))
		if err != nil {
			return err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			req.Body = io.NopCloser(bytes.NewReader([]byte("id,name,district,address,lat,lon,operator\no-b1,One,jianghan,,30.6,114.3,SF Express\n")))
			return fmt.Sprintf("import: %s %s\n%s", resp.Status, b, api.String())
		}
		return ""
	})

	win := "from=" + F.Format(time.RFC3339) + "&to=" + F.Add(time.Hour).Format(time.RFC3339)
	testenv.Eventually(t, 90*time.Second, func() string {
		var r struct {
			Parcels     struct{ Total, Green int } `json:"parcels"`
			BinCoverage float64                    `json:"bin_coverage"`
		}
		if _, err := apiGet("http://"+apiAddr+"/v1/outlets/o-b1/rates?"+win, viewer, &r); err != nil {
			return "rates: " + err.Error()
		}
		if r.Parcels.Total != 65 || r.Parcels.Green != 60 || r.BinCoverage < 32.0/60-1e-9 || r.BinCoverage > 32.0/60+1e-9 {
			return fmt.Sprintf("rates %+v, want 65 parcels, 60 green, coverage 32/60", r)
		}
		var city struct {
			Groups []struct {
				Parcels struct{ Total, Green int } `json:"parcels"`
			} `json:"groups"`
		}
		if _, err := apiGet("http://"+apiAddr+"/v1/rates?group_by=city&"+win, viewer, &city); err != nil {
			return "city rates: " + err.Error()
		}
		if len(city.Groups) != 1 || city.Groups[0].Parcels.Total != 65 {
			return fmt.Sprintf("city %+v, want 65 parcels", city.Groups)
		}
		return ""
	})

	// What 2.x would have refused never happened.
	collectorAuth, apiAuth := "Token collector-w:c-secret", "Token api-r:a-secret"
	seen := map[string]int{}
	for _, r := range proxy.requests() {
		who := map[string]string{collectorAuth: "collector", apiAuth: "api"}[r.auth]
		seen[who+" "+r.path]++
		switch {
		case r.path == "/ping" || r.path == "/health":
		case who == "":
			t.Errorf("%s %s with token %q: neither program's", r.method, r.path, r.auth)
		case r.path == "/query":
			// The language probe, answered "no mapping" as 2.x does.
		case !strings.HasPrefix(r.path, "/api/v2/"):
			t.Errorf("%s %s %s: not a v2 path", who, r.method, r.path)
		case r.org != "city":
			t.Errorf("%s %s %s without the org (org=%q): 2.x refuses it", who, r.method, r.path, r.org)
		case r.path == "/api/v2/write" && who == "collector" && r.bucket != "gp":
			t.Errorf("the collector wrote to bucket %q", r.bucket)
		case r.path == "/api/v2/write" && who == "api" && r.bucket != "gp_api":
			t.Errorf("the API wrote to bucket %q: its token may only read gp", r.bucket)
		}
	}
	for _, want := range []string{"collector /api/v2/write", "api /api/v2/write", "api /api/v2/query"} {
		if seen[want] == 0 {
			t.Errorf("no %s request seen: %v", want, seen)
		}
	}
	if seen["api /query"] > 2 {
		t.Errorf("the API asked /query %d times: it should settle on Flux after one probe per bucket", seen["api /query"])
	}

	// A token InfluxDB refuses stops the collector (exit 1), keeping its spool.
	bad := exec.Command(bins["collector"])
	bad.Env = append(common, "GP_INFLUX_TOKEN=collector-w:wrong", "GP_EMBEDDED_BROKER="+testenv.FreeAddr(t),
		"GP_COLLECTOR_ADDR="+testenv.FreeAddr(t), "GP_SPOOL_DIR="+t.TempDir())
	var out testenv.SyncBuffer
	bad.Stdout, bad.Stderr = &out, &out
	c, err := testenv.StartChild(bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(syscall.SIGKILL, 10*time.Second)
	badBroker := strings.TrimPrefix(bad.Env[4], "GP_EMBEDDED_BROKER=")
	testenv.Eventually(t, 30*time.Second, func() string {
		cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + badBroker).SetClientID("c-b9").SetUsername("c-b9").
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(2 * time.Second))
		if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			return fmt.Sprintf("connect: %v\n%s", tok.Error(), out.String())
		}
		defer cl.Disconnect(100)
		cl.Publish("gp/v1/o-b9/counter/c-b9/telemetry", 1, false, fmt.Sprintf(`{"ts":%d,"seq":1,"boot":1,"parcels":{"plastic":1}}`, time.Now().UnixMilli())).WaitTimeout(5 * time.Second)
		return ""
	})
	select {
	case <-c.Done():
		if code := bad.ProcessState.ExitCode(); code != 1 {
			t.Errorf("with a refused token the collector exited %d, want 1\n%s", code, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Errorf("the collector kept running with a token InfluxDB refuses\n%s", out.String())
	}
}
