# GreenPost. `make test` is the test command (CI runs exactly it);
# `make run` starts the whole system on this machine.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
PKGS := ./...
# go test output of the last `make test`, for reading failures.
TESTLOG ?= $(CURDIR)/.cache/test.log

.PHONY: all run build test tools vet lint screenshots bench bench-telemetry bench-spool bench-collector bench-sim bench-live bench-api bench-scale bench-metrics bench-ops clean

all: build

# The main job: the whole system on this machine (InfluxDB built with Go,
# the collector's embedded broker, the API and dashboard, a simulated city).
# In a terminal's foreground, bash -m gives the script a process group of its
# own and the terminal: Ctrl-C then reaches the script alone (not make), it
# stops everything in order, and make exits 0. In the background or without
# a terminal, SIGTERM to make reaches the script, which does the same.
run: build
	@case "$$(ps -o stat= -p $$$$ 2>/dev/null)" in *+*) exec bash -m -c deploy/local/run.sh ;; *) exec deploy/local/run.sh ;; esac

build:
	$(GO) build -o bin/ ./collector ./api ./firmware-sim ./gpctl

# The real servers the integration tests start by themselves.
tools:
	@echo "influxd:   $$(deploy/tools/ensure-influxd.sh)"
	@echo "mosquitto: $$(deploy/tools/ensure-mosquitto.sh)"
	@echo "chromium:  $$(deploy/tools/ensure-chromium.sh)"
	@echo "promtool:  $$(deploy/tools/ensure-promtool.sh)"
	@echo "golangci-lint: $$(deploy/tools/ensure-golangci-lint.sh)"

vet:
	$(GO) vet $(PKGS)

# The house rules a machine can check (.golangci.yml): dependencies point
# inward, vendor types stay in their adapter, no dead code.
lint:
	"$$(deploy/tools/ensure-golangci-lint.sh)" run --allow-parallel-runners $(PKGS)

# Unit tests, fuzz seed corpora and integration tests against real InfluxDB
# 1.8.10 and Mosquitto, all with the race detector. The filter keeps the
# result of every test (not the chatter); a skipped test fails the run,
# because a test that needs a server must never quietly not run.
# -p 4: four packages build or run at once (go's default is one per core).
# Many packages spend most of their time waiting on servers, simulated time
# or an outage they stage, and each holds its slot while it waits. For the
# same reason vet and lint run beside the tests (their output is shown at
# the end, from $(CHECKLOG)): on a cold build cache they compile for minutes,
# which the CPU otherwise spends idle later. Either failing fails make test.
TESTP ?= 4
CHECKLOG ?= $(CURDIR)/.cache/checks.log
test: tools
	@mkdir -p $(dir $(TESTLOG)) $(dir $(CHECKLOG))
	@$(MAKE) --no-print-directory vet lint > $(CHECKLOG) 2>&1 & checks=$$!; \
	echo "go test -race -count=1 -p $(TESTP) $(PKGS)  (full log: $(TESTLOG)); vet and lint beside it"; \
	$(GO) test -race -count=1 -p $(TESTP) -timeout 15m -v $(PKGS) 2>&1 | tee $(TESTLOG) \
	  | grep --line-buffered -E '^(--- |ok |FAIL|PASS|panic|testenv:|\s+--- (FAIL|PASS: Fuzz)|\s+\S+_test\.go:)' || true; \
	failed=0; wait $$checks || failed=$$?; \
	cat $(CHECKLOG); \
	if [ $$failed != 0 ]; then echo "make test: vet or lint FAILED"; exit 1; fi
	@if grep -qE '^(FAIL|--- FAIL|panic)' $(TESTLOG); then echo "make test: FAILED"; exit 1; fi
	@if grep -q -- '--- SKIP' $(TESTLOG); then grep -- '--- SKIP' $(TESTLOG); echo "make test: a test was skipped"; exit 1; fi
	@echo "make test: $$(grep -cE '^\s*--- PASS' $(TESTLOG)) passed, 0 failed"

# The dashboard's screenshots (docs/screenshots/, shown in the README):
# every view in Chinese and English, 1280 px and 400 px wide, taken by the
# dashboard's browser test on its simulated city.
screenshots: tools
	@mkdir -p docs/screenshots
	GREENPOST_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run 'TestDashboardInChromium/(every_view|printable|a_key_scoped)' ./api/

# Benchmarks (never timed assertions in tests). See docs/benchmarks.md.
# Each part adds its own bench-<part> target to this list.
bench: bench-telemetry bench-spool bench-collector bench-sim bench-live bench-api bench-metrics bench-ops

bench-telemetry:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/telemetry/

# The spool's share of a group commit, framed per group and per point, and
# the collector's own CPU per message from the callback to the InfluxDB request.
bench-spool:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/spool/ ./collector/

# The API: its own share of a request (1,000 outlets, fake engine, real
# HTTP), then bin/api end to end at city scale (1,000 outlets × 30 days,
# filled once by the simulator into ~/.cache/greenpost/bench-api).
bench-api: tools build
	$(GO) test -run '^$$' -bench . -benchmem ./api/
	$(GO) run ./bench/api -bin bin

# City scale ×10 (docs/benchmarks.md, docs/scaling.md): the engine's own
# work per city question and its memory per outlet-day at 1,000 / 3,000 /
# 10,000 outlets (in memory), then bin/api end to end at the three sizes
# side by side, figure cache off, each city filled once by the simulator
# into ~/.cache/greenpost/bench-api (10,000 outlets × 30 days ≈ 260 M
# points: an hour or more on a busy machine, then the roll-up's first build).
bench-scale: tools build
	$(GO) test -run '^$$' -bench CityWindow -benchtime 10x -timeout 60m ./internal/metrics/
	$(GO) run ./bench/api -bin bin -outlets 1000,3000,10000 -ttls 0s

# The metrics engine on its own at city scale (the simulator's 1,000 outlets
# × 30 days in a private InfluxDB 1.8.10, filled once into
# ~/.cache/greenpost/bench-data): roll-up build and load, concurrent clients,
# and the naive raw path.
bench-metrics: tools build
	$(GO) run ./bench/apiscale -bin bin

# The collection list's fill model (internal/fill) backtested on 30 days ×
# 400 outlets of simulator history in a private InfluxDB 1.8.10 (filled once
# into ~/.cache/greenpost/bench-ops), beside the naive baseline.
bench-ops: tools build
	$(GO) run ./bench/ops -bin bin

# End to end on this machine, side by side in one run: the broker's ceiling,
# the collector, a tuned Telegraf 1.37 (built once), latency at 5k msg/s.
bench-collector: build
	@deploy/tools/ensure-telegraf.sh >/dev/null
	$(GO) run ./bench/collector -bin bin -telegraf "$$(deploy/tools/ensure-telegraf.sh)"

# Simulator: publish rate against a real Mosquitto beside the broker's
# ceiling, CPU per message, memory per 10,000 connected devices (whole runs).
bench-sim: tools
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 20m ./firmware-sim/

# The live path at city scale (docs/benchmarks.md, "Live path at 10,000
# outlets"): 10,000 outlets' 30,000 devices, each its own connection, from
# several firmware-sim load processes through Mosquitto (split over brokers
# past the open-file limit) and bin/collector into a fresh InfluxDB 1.8.10,
# read by bin/api; 5 minutes at the real cadence, then 5 at 60×: zero loss
# per device, publish → visible in /v1/rates, CPU per message. ~15 minutes.
# BENCH_LIVE_FLAGS: e.g. -outlets 500 for a quick look.
bench-live: tools build
	$(GO) run ./bench/live -bin bin $(BENCH_LIVE_FLAGS)

clean:
	rm -rf bin
