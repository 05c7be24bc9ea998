#!/bin/sh
# `make test`'s deploy check: builds what `wrangler deploy` ships (the optimised WASM, the
# [build] step's default), runs `wrangler deploy --dry-run` on it (bundles and lists the
# bindings, uploads nothing), and checks that the bundle's WASM is the optimised one: smaller
# than the development build and within the README's budget.
set -eu
cd "$(dirname "$0")/.."
dev=$(wc -c < build/index_bg.wasm)
EDGETICK_OPT=1 sh scripts/build-worker.sh
rm -rf target/deploy
WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false EDGETICK_SKIP_BUILD=1 \
  node_modules/.bin/wrangler deploy --dry-run --outdir target/deploy > target/deploy.log 2>&1 ||
  { cat target/deploy.log; exit 1; }
wasm=$(find target/deploy -name '*.wasm' | head -n 1)
[ -n "$wasm" ] || { echo "deploy-check: no WASM in the dry-run bundle" >&2; cat target/deploy.log; exit 1; }
size=$(wc -c < "$wasm")
budget="${WASM_BUDGET_BYTES:-1500000}"
echo "deploy-check: wrangler deploy --dry-run bundles $size bytes of WASM (development build: $dev; budget: $budget)"
if [ "$size" -ge "$dev" ] || [ "$size" -gt "$budget" ]; then
  echo "deploy-check: the deployed WASM is not the optimised build within budget" >&2
  exit 1
fi
grep -q "PRICE_HUB" target/deploy.log || { echo "deploy-check: bindings missing" >&2; cat target/deploy.log; exit 1; }
