package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/settings"
)

// run is the whole simulator; main only calls it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := settings.NewLogger(stderr, cfg.LogLevel, "firmware-sim")
	ccfg := city.Config{Seed: cfg.Seed, Outlets: cfg.Outlets, Bins: cfg.Bins, Districts: cfg.Districts}
	if cfg.Districts != nil {
		ccfg.Bounds = city.BoundsOf(cfg.Districts)
	}
	c, err := city.New(ccfg)
	if err != nil {
		return &settings.Error{Problems: []string{err.Error()}}
	}
	// The registry describes the whole city; the devices run are the slice's.
	whole := c
	cfg.cityDevices = len(whole.Outlets) * (cfg.Bins + 1)
	if cfg.Slices > 1 {
		lo, hi := cfg.sliceBounds(len(whole.Outlets))
		part := *whole
		part.Outlets = whole.Outlets[lo:hi]
		c = &part
		cfg.firstDevice = lo * (cfg.Bins + 1)
	}
	devices := len(c.Outlets) * (cfg.Bins + 1)
	if cfg.dial.Passwords != nil {
		var missing []string
		for _, d := range c.Devices() {
			if _, ok := cfg.dial.Passwords[d.ID]; !ok {
				missing = append(missing, d.ID)
			}
		}
		if len(missing) > 0 {
			return &settings.Error{Problems: []string{fmt.Sprintf("-credentials: %d devices of this city have none (first %s): provision the same -outlets, -bins and -seed",
				len(missing), missing[0])}}
		}
	}
	log.Info("started", "mode", cfg.Mode, "mqtt", cfg.MQTTURL, "outlets", cfg.Outlets, "bins", cfg.Bins,
		"slice", fmt.Sprintf("%d/%d", cfg.Slice, cfg.Slices), "devices", devices, "seed", cfg.Seed, "faults", strings.Join(cfg.Faults, ","), "rates", cfg.Fault.String())
	// The simulated data starts here: the truth's from, and (rounded down
	// to the minute) the outlets' active_since in the registry, so the API
	// judges them from when their data begins (metrics-v1 v1.1).
	start := time.Now()
	if cfg.Mode == modeHistory {
		start = historyStart(cfg, log)
	}
	if cfg.RegistryFile != "" {
		// A device with a skewed clock may stamp reports up to SkewMax
		// before the start (the truth's from widens for them too).
		first := start
		if cfg.Mode == modeLive && cfg.Fault.SkewShare > 0 {
			first = start.Add(-cfg.Fault.SkewMax)
		}
		since := first.UTC().Truncate(time.Minute)
		if !cfg.ActiveSince.IsZero() {
			since = cfg.ActiveSince // an earlier run's data start (make run keeps it)
		}
		err := writeFileAtomic(cfg.RegistryFile, func(w io.Writer) error { return whole.WriteRegistry(w, since) })
		if err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		log.Info("registry written", "file", cfg.RegistryFile, "outlets", len(whole.Outlets), "active_since", since)
	}
	if cfg.Mode != modeHistory || !cfg.Influx {
		if err := raiseFileLimit(uint64(devices) + 32); err != nil {
			return err
		}
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var summary map[string]any
	switch cfg.Mode {
	case modeLive:
		summary, err = runLive(ctx, cfg, c, start, log)
	case modeLoad:
		summary, err = runLoad(ctx, cfg, c, log)
	case modeHistory:
		summary, err = runHistory(ctx, cfg, c, start, log)
	}
	if summary != nil {
		summary["mode"] = cfg.Mode
		summary["cpu_seconds"] = cpuSeconds()
		summary["max_rss_bytes"] = maxRSS()
		line, _ := json.Marshal(summary)
		fmt.Fprintf(stdout, "%s\n", line)
	}
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// writeFileAtomic writes a file through a temporary one, so a reader never
// sees half of it.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// raiseFileLimit makes room for one socket per device. Go already lifts the
// soft limit to the hard one; beyond that only root can go, up to nr_open.
func raiseFileLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	want := lim
	want.Cur = need
	if want.Max < need {
		want.Max = need
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("%d devices need %d open files, the limit is %d/%d (%v): raise it with ulimit -n", need-32, need, lim.Cur, lim.Max, err)
	}
	return nil
}

// cpuSeconds is the CPU time (user + system) the process used so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// maxRSS is the peak resident set size of the process in bytes.
func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024
}

// rss is the current resident set size in bytes (Linux /proc).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// heapAndStacks is what the Go runtime holds for live objects and goroutine
// stacks, a steadier figure than RSS.
func heapAndStacks() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// sleepCtx waits for d or ctx, whichever ends first, and reports whether the
// full time passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
