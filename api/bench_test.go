package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/testenv"
)

// The API's own share of a request at city scale: 1,000 registered outlets
// in 13 districts, a fake engine that answers at once, real HTTP over
// loopback with concurrent clients. What is left of the latency budget
// after this is the engine's (see docs/benchmarks.md).

func benchServer(b *testing.B) (base string, client *http.Client) {
	b.Helper()
	in := testenv.SharedInflux(b)
	cfg := defaultTestConfig()
	name := fmt.Sprintf("apibench_%d", time.Now().UnixNano())
	if err := in.Exec("CREATE DATABASE " + name); err != nil {
		b.Fatal(err)
	}
	cfg.Bucket = name + "/autogen"
	db := openStoreTB(b, in, cfg.Bucket)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	reg := newRegistry(db, nil, log)
	eng := &fakeEngine{outlets: map[string]metrics.Outlet{}}
	var outlets []Outlet
	for i := 1; i <= 1000; i++ {
		id := fmt.Sprintf("o-%04d", i)
		outlets = append(outlets, Outlet{ID: id, Name: "Outlet " + id, District: fmt.Sprintf("d%02d", i%13), Lat: 30, Lon: 114, Operator: []string{"sf", "ems", "jd"}[i%3], Active: true})
		eng.outlets[id] = metrics.Outlet{Parcels: parcels(int64(i), 800, 30, 100, 50, 5, 10, 7), BinsReporting: 2, ServingMinutes: 40000, CountersReporting: 1, CounterReportingMinutes: 43000}
	}
	if _, err := reg.Put(cityCtx, outlets...); err != nil {
		b.Fatal(err)
	}
	app := newApp(&deps{cfg: cfg, log: log, db: db, reg: reg, engine: eng, fill: fakeFill{}, full: fakeFill{},
		targets: loadedTargets(b, db, reg.stamp), audit: db, now: time.Now, promReg: newPromRegistry()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go app.Listener(ln)
	client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	b.Cleanup(func() { client.CloseIdleConnections(); app.Shutdown() })
	return "http://" + ln.Addr().String(), client
}

func benchGet(b *testing.B, path string) {
	base, client := benchServer(b)
	get := func() error {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+viewerKey)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(4) // 4 clients per core
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := get(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

const benchWindow = "from=2026-10-29T00:00:00Z&to=2026-11-28T00:00:00Z"

func BenchmarkHTTPCityRollup(b *testing.B) { benchGet(b, "/v1/rates?group_by=city&"+benchWindow) }
func BenchmarkHTTPDistrictRollup(b *testing.B) {
	benchGet(b, "/v1/rates?group_by=district&"+benchWindow)
}
func BenchmarkHTTPByOutlet(b *testing.B)     { benchGet(b, "/v1/rates?group_by=outlet&"+benchWindow) }
func BenchmarkHTTPOutletRates(b *testing.B)  { benchGet(b, "/v1/outlets/o-0500/rates?"+benchWindow) }
func BenchmarkHTTPWasteFreeCSV(b *testing.B) { benchGet(b, "/v1/waste-free?format=csv&"+benchWindow) }
