package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/settings"
	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

// showMeasurements lists the measurements of one database of the test influxd.
func showMeasurements(t *testing.T, in *testenv.Influx, bucket string) []string {
	t.Helper()
	db, _, _ := strings.Cut(bucket, "/")
	body, err := in.InfluxQL(`SHOW MEASUREMENTS ON "` + db + `"`)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Results []struct {
			Series []struct {
				Values [][]string `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("SHOW MEASUREMENTS: %v: %s", err, body)
	}
	var names []string
	for _, r := range res.Results {
		for _, s := range r.Series {
			for _, v := range s.Values {
				names = append(names, v[0])
			}
		}
	}
	slices.Sort(names)
	return names
}

var (
	rollupBuilt  = regexp.MustCompile(`(?m)^greenpost_rollup_hours_total\{reason="build"\} (\d+)$`)
	rollupLoaded = regexp.MustCompile(`"msg":"roll-up loaded"[^}]*"rows":(\d+)`)
)

// TestAPIBucketKeepsTelemetryReadOnly: with GP_API_BUCKET naming another
// database, bin/api reads telemetry from GP_INFLUX_BUCKET only and keeps the
// registry and the roll-up (rows and state) in GP_API_BUCKET only, across a
// restart (the second run loads both from there). The telemetry database
// ends up holding nothing the API wrote.
func TestAPIBucketKeepsTelemetryReadOnly(t *testing.T) {
	in := testenv.SharedInflux(t)
	tele, own := freshBucket(t, in), freshBucket(t, in)

	// F: a closed hour three hours ago, inside the roll-up's first chunk
	// of history (the 6 hours before the current one).
	F := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	var lines []byte
	seq := 0
	add := func(kind, device string, at time.Duration, body string) {
		seq++
		payload := fmt.Sprintf(`{"ts":%d,"seq":%d,"boot":1,%s}`, F.Add(at).UnixMilli(), seq, body)
		m, err := telemetry.Decode("gp/v1/o-b1/"+kind+"/"+device+"/telemetry", []byte(payload), time.Now())
		if err != nil {
			t.Fatalf("fixture %s: %v", payload, err)
		}
		lines = telemetry.AppendPoint(lines, &m)
	}
	m := time.Minute
	add("counter", "c-b1", -10*m, `"parcels":{"recyclable":100,"plastic":20},"boxes_recovered":3`) // the baseline
	add("counter", "c-b1", 10*m, `"parcels":{"recyclable":130,"plastic":25},"boxes_recovered":5`)  // recyclable +30, plastic +5, boxes +2
	add("counter", "c-b1", 40*m, `"parcels":{"recyclable":150,"plastic":25,"reusable":4,"original":6},"boxes_recovered":5`)
	// recyclable +20, reusable +4, original +6
	add("bin", "b-b1-1", 0, `"fill_pct":30,"deposits":1`)    // serves minutes 0..15 (16)
	add("bin", "b-b1-1", 30*m, `"fill_pct":40,"deposits":2`) // serves 30..45 (16)
	if err := openStore(t, in, tele).Write(context.Background(), lines); err != nil {
		t.Fatal(err)
	}
	// Parcels 30+5+20+4+6 = 65, green (recyclable, reusable, original)
	// 50+4+6 = 60, boxes 2; serving 32 of 60 minutes; counter fresh
	// 0..5 (from F-10m), 10..25, 40..55: 6+16+16 = 38 minutes.
	win := "from=" + F.Format(time.RFC3339) + "&to=" + F.Add(time.Hour).Format(time.RFC3339)
	checkFigures := func(t *testing.T, p *apiProcess) {
		t.Helper()
		var r outletRates
		a := p.do(t, "GET", "/v1/outlets/o-b1/rates?"+win, viewerKey, "", "")
		if a.Status != 200 {
			t.Fatalf("rates: %s", a)
		}
		a.json(t, &r)
		if r.Parcels.Total != 65 || r.Parcels.Green != 60 || r.Parcels.ByClass.counts() != (byClass{telemetry.Recyclable: 50, telemetry.Plastic: 5, telemetry.Reusable: 4, telemetry.Original: 6}) || r.BoxesRecovered != 2 {
			t.Errorf("parcels %+v boxes %d, want total 65 green 60 boxes 2", r.Parcels, r.BoxesRecovered)
		}
		checkRate(t, "green_rate", r.GreenRate, 60.0/65)
		checkRate(t, "reusable_rate", r.ReusableRate, 4.0/65)
		checkRate(t, "no_secondary_rate", r.NoSecondaryRate, 6.0/65)
		if r.BinsReporting != 1 || r.Completeness.ServingMinutes != 32 || !near(r.BinCoverage, 32.0/60) ||
			r.Completeness.CountersReporting != 1 || r.Completeness.CounterReportingMinutes != 38 || r.Completeness.WindowMinutes != 60 {
			t.Errorf("bins %d coverage %v completeness %+v, want 1 bin serving 32 of 60 and a counter fresh 38 minutes", r.BinsReporting, r.BinCoverage, r.Completeness)
		}
		var city groupsAnswer
		p.do(t, "GET", "/v1/rates?group_by=city&"+win, viewerKey, "", "").json(t, &city)
		if len(city.Groups) != 1 || city.Groups[0].Outlets != 1 || city.Groups[0].Parcels.Total != 65 || city.Groups[0].Parcels.Green != 60 {
			t.Errorf("city %+v, want one outlet with 65 parcels, 60 green", city.Groups)
		}
	}

	env := map[string]string{
		"GP_INFLUX_URL": in.URL, "GP_INFLUX_BUCKET": tele, "GP_API_BUCKET": own,
		"GP_API_KEYS": "admin:" + adminKey + ",viewer:" + viewerKey,
	}
	p := startRun(t, env)
	waitUntil(t, 20*time.Second, "readyz", func() bool { return p.do(t, "GET", "/readyz", "", "", "").Status == 200 })
	if a := p.do(t, "PUT", "/v1/outlets/o-b1", adminKey, "application/json",
		`{"name":"Bucket test","district":"east","lat":30,"lon":114,"operator":"sf","active":true}`); a.Status != 200 {
		t.Fatalf("PUT: %s", a)
	}
	// The roll-up has summarized o-b1's two hours (F-1h: the baseline; F)
	// and recorded how far it got.
	waitUntil(t, 20*time.Second, "the roll-up to build the fixture's hours", func() bool {
		mm := rollupBuilt.FindStringSubmatch(string(p.do(t, "GET", "/metrics", "", "", "").Body))
		if mm == nil {
			return false
		}
		n, _ := strconv.Atoi(mm[1])
		return n >= 2 && slices.Contains(showMeasurements(t, in, own), "rollup_state")
	})
	checkFigures(t, p)
	p.stop(t)

	// A second start reads the registry and the persisted roll-up back from
	// GP_API_BUCKET.
	p = startRun(t, env)
	waitUntil(t, 20*time.Second, "readyz after the restart", func() bool { return p.do(t, "GET", "/readyz", "", "", "").Status == 200 })
	if a := p.do(t, "GET", "/v1/outlets/o-b1", viewerKey, "", ""); a.Status != 200 {
		t.Fatalf("the registry after the restart: %s", a)
	}
	var loaded []string
	waitUntil(t, 20*time.Second, "the roll-up to load", func() bool {
		loaded = rollupLoaded.FindStringSubmatch(p.log.String())
		return loaded != nil
	})
	if n, _ := strconv.Atoi(loaded[1]); n < 2 {
		t.Errorf("the restarted roll-up loaded %d rows from %s, want at least o-b1's 2 hours\n%s", n, own, p.log)
	}
	checkFigures(t, p)
	p.stop(t)

	if got, want := showMeasurements(t, in, tele), []string{"bin", "counter"}; !slices.Equal(got, want) {
		t.Errorf("telemetry database %s holds %v, want only %v", tele, got, want)
	}
	if got, want := showMeasurements(t, in, own), []string{"audit", "outlet_registry", "rollup", "rollup_state", "target_set"}; !slices.Equal(got, want) {
		t.Errorf("API database %s holds %v, want %v", own, got, want)
	}
}

// TestAPIBucketSetting: GP_API_BUCKET defaults to GP_INFLUX_BUCKET (one
// bucket, as before) and is a known setting (not refused as unknown).
func TestAPIBucketSetting(t *testing.T) {
	if u := settings.Unknown([]string{"GP_API_BUCKET=gp_api"}); len(u) != 0 {
		t.Errorf("GP_API_BUCKET is refused as unknown: %v", u)
	}
	for _, tc := range []struct {
		env               map[string]string
		bucket, apiBucket string
	}{
		{map[string]string{}, "gp", "gp"},
		{map[string]string{"GP_INFLUX_BUCKET": "gp/autogen"}, "gp/autogen", "gp/autogen"},
		{map[string]string{"GP_API_BUCKET": "gp_api"}, "gp", "gp_api"},
		{map[string]string{"GP_INFLUX_BUCKET": "tele/autogen", "GP_API_BUCKET": "own/autogen"}, "tele/autogen", "own/autogen"},
	} {
		c, err := loadConfig(func(k string) string { return tc.env[k] })
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		if c.Bucket != tc.bucket || c.APIBucket != tc.apiBucket {
			t.Errorf("%v: bucket %q, API bucket %q; want %q, %q", tc.env, c.Bucket, c.APIBucket, tc.bucket, tc.apiBucket)
		}
	}
}
