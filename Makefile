# edgetick — two commands on a fresh machine:
#   make dev    install what is missing, build, run `wrangler dev` (real Binance upstream)
#   make test   install what is missing, build, run every test (lint, unit, end to end)
# Also: make demo (offline: fake exchange + service), make build, make lint, make clean.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PORT ?= 8787
EXCHANGE_PORT ?= 9001
WORKER_BUILD_VERSION := 0.8.7
# wasm-bindgen-cli must match the wasm-bindgen the worker links (pinned in Cargo.toml).
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ {getline; gsub(/"/, "", $$3); print $$3}' Cargo.lock)
CARGO_BIN := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
export PATH := $(CARGO_BIN):$(PATH)
export WASM_BINDGEN_BIN := $(CARGO_BIN)/wasm-bindgen
export WRANGLER_SEND_METRICS := false
export CLOUDFLARE_CF_FETCH_ENABLED := false
WRANGLER := node_modules/.bin/wrangler
DEV_FLAGS := --ip 127.0.0.1 --port $(PORT) --local --show-interactive-dev-session=false

# The variables of docs/configuration.md set in the environment override wrangler.toml for `make dev`/`make demo`.
CONFIG_VARS := UPSTREAM_URL SYMBOLS PRICE_TTL_SECONDS MAX_CONNECTIONS MAX_SYMBOLS_PER_CONNECTION \
  CLIENT_MESSAGES_PER_SECOND MAX_FRAME_BYTES ALLOWED_ORIGINS AUTH_TOKEN UPSTREAM_MODE LEADER_LOCATION \
  UPSTREAM_WATCHDOG_SECONDS UPSTREAM_MAX_AGE_SECONDS UPSTREAM_IDLE_CLOSE_SECONDS REST_CACHE_SECONDS FLUSH_MS SEND_MODE FANOUT_SHARDS \
  PUBLISH_TOKEN EVENT_CHANNELS MAX_EVENT_BYTES PUBLISH_PER_SECOND EVENT_HISTORY PRIVATE_HISTORY_EVENTS \
  PRIVATE_HISTORY_BYTES JWT_SECRET \
  SOCKETIO_PING_INTERVAL_SECONDS SOCKETIO_PING_TIMEOUT_SECONDS SOCKETIO_BROADCAST \
  TWELVEDATA_SYMBOLS TWELVEDATA_URL TWELVEDATA_HEARTBEAT_SECONDS \
  CANDLE_HISTORY BINANCE_REST_URL FUTURES_REST_URL HEATMAP_INTERVAL_SECONDS
var_flags = $(foreach v,$(1),$(if $($(v)),--var '$(v):$($(v))'))

.PHONY: help setup toolchain npm tools build dev demo test lint unit js types e2e deploy-check deploy bench sim clean

help:
	@echo "make dev    run the service on http://127.0.0.1:$(PORT) (real Binance upstream)"
	@echo "make demo   run it offline against the bundled fake exchange"
	@echo "make test   lint, unit tests and end-to-end tests"
	@echo "make bench  load benchmark (results in target/bench/results.md)"
	@echo "make sim    the deterministic simulation over SEEDS=N seeds"
	@echo "make deploy build the optimised worker and run wrangler deploy"

setup: toolchain npm

# Each step checks before it installs, so a second run costs seconds.
toolchain:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@worker-build --version 2>/dev/null | grep -qF "$(WORKER_BUILD_VERSION)" || \
	  cargo install worker-build --version =$(WORKER_BUILD_VERSION) --locked
	@wasm-bindgen --version 2>/dev/null | grep -qF " $(WASM_BINDGEN_VERSION)" || \
	  cargo install wasm-bindgen-cli --version =$(WASM_BINDGEN_VERSION)

# Test-only tools: promtool (Debian's prometheus), Debian's chromium for the browser tests
# (driven by npm playwright-core; no browser is downloaded), schemathesis (PyPI, in a venv).
VENV := .tools/venv
APT_TOOLS := $(if $(shell command -v promtool),,prometheus) $(if $(wildcard /usr/bin/chromium),,chromium)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
tools: $(VENV)/.installed
	@if [ -n "$(strip $(APT_TOOLS))" ]; then \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_TOOLS); fi
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r tests/requirements.txt
	@touch $@

npm: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# Development builds skip wasm-opt (seconds, not a minute); `wrangler deploy` and `make deploy`
# get the optimised one (the [build] step's default).
build: setup
	EDGETICK_OPT=0 sh scripts/build-worker.sh
	cargo build -q -p fake-exchange

dev: build
	EDGETICK_SKIP_BUILD=1 $(WRANGLER) dev $(DEV_FLAGS) $(call var_flags,$(CONFIG_VARS))

demo: build
	EXCHANGE_PORT=$(EXCHANGE_PORT) PORT=$(PORT) scripts/demo.sh $(DEV_FLAGS) $(call var_flags,$(filter-out UPSTREAM_URL TWELVEDATA_URL TWELVEDATA_SYMBOLS BINANCE_REST_URL FUTURES_REST_URL,$(CONFIG_VARS)))

test: build tools lint unit js e2e deploy-check

lint:
	python3 scripts/sizes.py
	python3 scripts/cycles.py
	cargo fmt --all --check
	cargo clippy -q --workspace --all-targets --all-features -- -D warnings
	cargo clippy -q --target wasm32-unknown-unknown -- -D warnings

unit:
	cargo test -q --workspace --lib --bins

# The client package's modules (clients/js), each with its generated declarations.
CLIENT_MODULES := edgetick edgetick/model edgetick/holdings edgetick/transports edgetick/candles react
CLIENT_FILES := $(foreach m,$(CLIENT_MODULES),clients/js/$(m).js clients/js/$(m).d.ts)

js: public/edgetick.js
	node --test clients/js/test/ tests/js/
	node_modules/.bin/tsc -p clients/js/tsconfig.json
	node_modules/.bin/tsc -p tsconfig.json
	rm -rf target/types && node_modules/.bin/tsc -p tsconfig.types.json
	@for f in $(CLIENT_MODULES); do diff -u clients/js/$$f.d.ts target/types/$$f.d.ts || \
	  { echo "clients/js/$$f.d.ts is out of date with $$f.js's JSDoc: run make types"; exit 1; }; done

# Regenerates the client package's declarations from its JSDoc.
types: npm
	rm -rf target/types && node_modules/.bin/tsc -p tsconfig.types.json
	@for f in $(CLIENT_MODULES); do cp target/types/$$f.d.ts clients/js/$$f.d.ts; done

# The service serves the client package's module as /edgetick.js (one source: clients/js).
public/edgetick.js public/edgetick.d.ts: $(CLIENT_FILES)
	sh scripts/client-assets.sh

e2e:
	cargo test -q --features e2e --test e2e

# What `wrangler deploy` ships, checked without uploading (last: it replaces build/).
deploy-check: setup
	sh scripts/deploy-check.sh

# One command to deploy: the optimised build, then `wrangler deploy` (needs a Cloudflare login
# or CLOUDFLARE_API_TOKEN; secrets with `wrangler secret put`, see docs/operations.md).
deploy: setup
	EDGETICK_OPT=1 sh scripts/build-worker.sh
	EDGETICK_SKIP_BUILD=1 $(WRANGLER) deploy

# The benchmark measures the optimised worker (wasm-opt from npm binaryen) and release
# builds of the fake exchange and the load generator. BENCH_ARGS, e.g. --loads B --duration 30.
bench: setup
	EDGETICK_OPT=1 sh scripts/build-worker.sh
	cargo build -q --release -p fake-exchange -p edgetick-bench
	target/release/edgetick-bench $(BENCH_ARGS)

# The deterministic simulation over as many seeds as asked: SEEDS=N (1 to N), A-B, or A,B,C;
# SEED=S replays one (a failing seed prints that command; TRACE=1 prints every step).
SEEDS ?= 1000
sim:
	SIM_SEEDS=$(SEEDS) $(if $(SEED),SIM_SEED=$(SEED)) $(if $(TRACE),SIM_TRACE=1) \
	  cargo test -q --release --lib sim::fixed_seeds -- --nocapture

clean:
	rm -rf build target node_modules .wrangler test-artifacts
