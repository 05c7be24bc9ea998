#!/bin/sh
# Builds the worker into build/ for wrangler ([build] command in wrangler.toml).
# EDGETICK_SKIP_BUILD=1 reuses an existing build (the tests build once, then start wrangler
# many times). EDGETICK_OPT=1 also runs wasm-opt (npm binaryen) for the smallest, fastest WASM.
set -eu
cd "$(dirname "$0")/.."
if [ "${EDGETICK_SKIP_BUILD:-0}" = 1 ] && [ -f build/index.js ]; then
  exit 0
fi
# worker-build would download these tools from a host we cannot reach; point it at ours.
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-${CARGO_HOME:-$HOME/.cargo}/bin/wasm-bindgen}"
if [ "${EDGETICK_OPT:-0}" = 1 ]; then
  export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
  worker-build --release
else
  worker-build --release --no-opt
fi
size=$(wc -c < build/index_bg.wasm)
echo "edgetick: build/index_bg.wasm is $size bytes" >&2
