# HelpCaster build and test entry points. `make help` lists the targets.
# CI runs .ci/run, which runs `make test`.

SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
GO ?= go

# Fuzz targets as "package:FuzzFunc" pairs; add new ones here.
FUZZ_TARGETS ?= ./internal/jsonkeys:FuzzUnique ./objstore:FuzzValidateKey ./signaling/protocol:FuzzDecode ./signaling/auth:FuzzVerify ./signaling/auth:FuzzParseOrgs ./rtpcodec:FuzzKeyframe ./recorder/depack:FuzzDepack ./recorder/depack:FuzzSPS ./recorder/manifest:FuzzSegment ./rtpcodec:FuzzVP8Desc ./sfu:FuzzVP8Rewrite ./sfu:FuzzForward ./sfu:FuzzRTCP ./sfu:FuzzReceive ./sfu/wire:FuzzConnReceive ./sfu/bwe:FuzzFeedback ./turn:FuzzCheck ./bench/rtpstat:FuzzStream
# Fuzzing time per target: FUZZTIME in `make test`, LONG_FUZZTIME in `make fuzz`.
FUZZTIME ?= 10s
LONG_FUZZTIME ?= 5m

E2E_TIMEOUT ?= 10m
E2E_FLAGS = -test.v -test.count=1 -test.timeout=$(E2E_TIMEOUT)

# Go files to check: tracked ones plus new, not ignored ones (in CI all are
# tracked). `make fmt` rewrites tracked files only.
GOFILES_CHECK = $(wildcard $(shell git ls-files --cached --others --exclude-standard -- '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
GOFILES_TRACKED = $(wildcard $(shell git ls-files -- '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))

.PHONY: help run build test deps fmt-check vet test-unit fuzz-short fuzz test-browser bench chaos lint fmt samples clean

help:
	@echo "make run           run the server in dev mode (demo org, demo pages at /demo/)"
	@echo "make build         build bin/helpcaster"
	@echo "make test          everything CI runs: deps, gofmt, vet, unit tests (-race), short fuzzing, browser test"
	@echo "make test-unit     unit and integration tests with -race (all packages but ./e2e)"
	@echo "make test-browser  the headless Chromium and Firefox tests (./e2e) in a loopback-only network namespace"
	@echo "make fuzz          fuzz each target in FUZZ_TARGETS for LONG_FUZZTIME ($(LONG_FUZZTIME))"
	@echo "make bench         Go benchmarks and a short helpcaster bench set (reports in bench-results/)"
	@echo "make chaos         CHAOS_ROUNDS ($(CHAOS_ROUNDS)) random fault-injection rounds on three nodes (CHAOS_SEED replays a run)"
	@echo "make lint          go vet, staticcheck, and the Lua files (luac5.1 -p, luacheck)"
	@echo "make fmt           gofmt -w the tracked Go files"
	@echo "make samples       regenerate testdata/sample.ivf and testdata/sample.ogg (needs ffmpeg)"

run:
	$(GO) run ./cmd/helpcaster serve --dev

build:
	@mkdir -p bin
	$(GO) build -o bin/helpcaster ./cmd/helpcaster

# The steps run in this order, each only if the previous one passed.
test:
	$(MAKE) deps
	$(MAKE) fmt-check
	$(MAKE) vet
	$(MAKE) test-unit
	$(MAKE) fuzz-short
	$(MAKE) test-browser

deps:
	bash scripts/install-test-deps.sh

fmt-check:
	@files="$(GOFILES_CHECK)"; \
	unformatted="$$( [ -z "$$files" ] || gofmt -l $$files)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting (run make fmt):"; echo "$$unformatted"; exit 1; \
	fi; \
	echo "gofmt: ok"

vet:
	$(GO) vet ./...

test-unit:
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v /e2e)

# run_fuzz runs every FUZZ_TARGETS entry for $(1). A target that does not
# exist is an error (go test -fuzz would otherwise pass without fuzzing).
# Go 1.26's fuzz coordinator sometimes fails a target with a bare "context
# deadline exceeded" when -fuzztime runs out (golang/go#75804, fixed in Go
# 1.27); such a failure that wrote no failing input is reported and ignored.
# A real failure writes the input to <pkg>/testdata/fuzz/<Target>/ and fails.
# Minimizing new corpus entries is capped at 2 s each, so a short run spends
# its time fuzzing (minimizing does not count as executions).
define run_fuzz
	@set -e; log="$$(mktemp)"; trap 'rm -f "$$log"' EXIT; \
	for t in $(FUZZ_TARGETS); do \
		pkg="$${t%%:*}"; fn="$${t##*:}"; \
		if ! $(GO) test -list "^$$fn\$$" "$$pkg" | grep -qx "$$fn"; then \
			echo "fuzz: no fuzz target $$fn in $$pkg (check FUZZ_TARGETS)"; exit 1; \
		fi; \
		corpus="$$pkg/testdata/fuzz/$$fn"; before="$$(ls "$$corpus" 2>/dev/null || true)"; \
		echo "fuzz: $$pkg $$fn for $(1)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(1) -fuzzminimizetime 2s "$$pkg" 2>&1 | tee "$$log"; \
		rc="$${PIPESTATUS[0]}"; \
		if [ "$$rc" != 0 ]; then \
			after="$$(ls "$$corpus" 2>/dev/null || true)"; \
			if [ "$$before" = "$$after" ] && tail -n 5 "$$log" | grep -q 'context deadline exceeded'; then \
				echo "fuzz: WARNING: $$fn stopped with Go's spurious deadline error (golang/go#75804), no failing input; ignored"; \
			else \
				echo "fuzz: $$fn FAILED (see above; a failing input is saved under $$corpus)"; exit 1; \
			fi; \
		fi; \
	done
endef

fuzz-short:
	$(call run_fuzz,$(FUZZTIME))

fuzz:
	$(call run_fuzz,$(LONG_FUZZTIME))

# The browser tests run in a fresh network namespace with only loopback, so
# the browsers (Chromium, Firefox) and the server can reach nothing else.
# Without the privilege to make one (not root), they run unisolated with a
# warning. The binary runs in ./e2e, as `go test` would run it.
test-browser:
	@if ! ls e2e/*_test.go >/dev/null 2>&1; then \
		echo "test-browser: skipped: ./e2e has no Go test files yet"; exit 0; \
	fi; \
	set -e; mkdir -p bin; \
	echo "$(GO) test -race -c -o bin/e2e.test ./e2e"; \
	$(GO) test -race -c -o bin/e2e.test ./e2e; \
	if unshare --net true 2>/dev/null; then \
		echo "test-browser: running in a loopback-only network namespace"; \
		unshare --net sh -c 'ip link set lo up && cd e2e && exec ../bin/e2e.test $(E2E_FLAGS)'; \
	else \
		echo "test-browser: WARNING: cannot create a network namespace (unshare --net needs root);" \
			"running the browser test without network isolation" >&2; \
		cd e2e && ../bin/e2e.test $(E2E_FLAGS); \
	fi

bench:
	GO=$(GO) bash scripts/bench.sh

# The long fault-injection run: random storms, faults and moments, seeded
# (the seed is printed; CHAOS_SEED=<seed> replays it). The short version,
# TestChaos, runs in test-unit.
CHAOS_ROUNDS ?= 20
CHAOS_SEED ?=
chaos:
	HELPCASTER_CHAOS_ROUNDS=$(CHAOS_ROUNDS) HELPCASTER_CHAOS_SEED=$(CHAOS_SEED) \
		$(GO) test -count=1 -timeout 0 -v -run '^TestChaosRounds$$' ./cmd/helpcaster

# Lua files (the Redis queue store's scripts) must parse as Lua 5.1, Redis's
# Lua (luac5.1 -p), and pass luacheck, run in each directory that has a
# .luacheckrc (the globals Redis gives its scripts are declared there).
LUA_FILES = $(wildcard $(shell git ls-files --cached --others --exclude-standard -- '*.lua' 2>/dev/null || find . -name '*.lua' -not -path './.git/*'))
LUACHECK_DIRS = $(patsubst %/,%,$(dir $(wildcard $(shell git ls-files --cached --others --exclude-standard -- '*.luacheckrc' 2>/dev/null || find . -name .luacheckrc -not -path './.git/*'))))

lint:
	bash scripts/install-test-deps.sh --lint
	$(GO) vet ./...
	bin/staticcheck ./...
	@files="$(LUA_FILES)"; if [ -n "$$files" ]; then echo "luac5.1 -p (every .lua file)"; luac5.1 -p $$files; fi
	@set -e; for d in $(LUACHECK_DIRS); do echo "luacheck $$d"; (cd "$$d" && luacheck --no-color -q .); done

fmt:
	@files="$(GOFILES_TRACKED)"; \
	if [ -n "$$files" ]; then echo "gofmt -w (tracked Go files)"; gofmt -w $$files; fi

samples:
	bash testdata/gen-samples.sh

clean:
	rm -rf bin
