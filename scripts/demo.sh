#!/usr/bin/env bash
# `make demo`: the fake exchange and the service together, offline, with both sources: the
# exchange speaks Binance and Twelve Data (stocks, forex, crypto; a demo key). Ctrl-C (or
# SIGTERM) stops both. Arguments are passed to `wrangler dev` (the Makefile passes port and
# --var flags).
set -euo pipefail
cd "$(dirname "$0")/.."
exchange_port="${EXCHANGE_PORT:-9001}"
target/debug/fake-exchange --port "$exchange_port" &
fx=$!
td_symbols="${TWELVEDATA_SYMBOLS:-AAPL,MSFT,NVDA,SPY,EUR/USD,BTC/USD,ETH/USD}"
EDGETICK_SKIP_BUILD=1 node_modules/.bin/wrangler dev "$@" \
  --persist-to .wrangler/demo-state --var "UPSTREAM_URL:ws://127.0.0.1:$exchange_port/stream" \
  --var "BINANCE_REST_URL:http://127.0.0.1:$exchange_port" --var "FUTURES_REST_URL:http://127.0.0.1:$exchange_port" \
  --var "TWELVEDATA_URL:ws://127.0.0.1:$exchange_port/v1/quotes/price" \
  --var "TWELVEDATA_SYMBOLS:$td_symbols" --var "TWELVEDATA_API_KEY:demo" &
wr=$!
trap 'kill "$fx" "$wr" 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM
echo "demo: fake exchange on ws://127.0.0.1:$exchange_port (Binance /stream, Twelve Data /v1/quotes/price); service on http://127.0.0.1:${PORT:-8787}/"
wait -n "$fx" "$wr"
