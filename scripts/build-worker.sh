#!/bin/sh
# Builds the worker into build/ for wrangler ([build] command in wrangler.toml, so a plain
# `wrangler deploy` runs it too). Optimised by default (wasm-opt from npm binaryen: the
# smallest, fastest WASM), and then held under the budget in the README; EDGETICK_OPT=0 skips
# wasm-opt for a quick development build (`make build`, `make dev` and the tests use it).
# EDGETICK_SKIP_BUILD=1 reuses an existing build (the tests build once, then start wrangler
# many times).
set -eu
cd "$(dirname "$0")/.."
# /edgetick.js is the client package's module (clients/js), copied into the static assets.
sh scripts/client-assets.sh
if [ "${EDGETICK_SKIP_BUILD:-0}" = 1 ] && [ -f build/index.js ]; then
  exit 0
fi
# The README's budget for the optimised WASM.
budget="${WASM_BUDGET_BYTES:-1500000}"
# worker-build would download these tools from a host we cannot reach; point it at ours.
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-${CARGO_HOME:-$HOME/.cargo}/bin/wasm-bindgen}"
if [ "${EDGETICK_OPT:-1}" = 1 ]; then
  export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
  if [ ! -x "$WASM_OPT_BIN" ]; then
    echo "edgetick: $WASM_OPT_BIN is missing: run 'make setup' (npm binaryen)" >&2
    exit 1
  fi
  worker-build --release
  # The names section only names WASM frames in a stack trace (a panic's message and place
  # come from the panic hook without it): it goes from what is deployed, about 230 KB, and
  # target/edgetick-names.wasm keeps a copy to name the frames of a trace by hand.
  mkdir -p target
  cp build/index_bg.wasm target/edgetick-names.wasm
  "$WASM_OPT_BIN" target/edgetick-names.wasm --strip-debug -o build/index_bg.wasm
  kind=optimised
else
  worker-build --release --no-opt
  kind="not optimised (EDGETICK_OPT=0)"
fi
size=$(wc -c < build/index_bg.wasm)
echo "$kind" > build/.wasm-kind
echo "edgetick: build/index_bg.wasm is $size bytes, $kind" >&2
if [ "${EDGETICK_OPT:-1}" = 1 ] && [ "$size" -gt "$budget" ]; then
  echo "edgetick: the optimised WASM ($size bytes) is over its budget of $budget bytes (README)" >&2
  exit 1
fi
