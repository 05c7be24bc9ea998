#!/bin/sh
# Copies into public/ what the service serves from other sources: the client package's module
# (clients/js, the one source) as /edgetick.js and /edgetick/*.js with their declarations, and TradingView's
# lightweight-charts (npm, Apache-2.0) for the dashboard's chart, so the page makes no
# external request. Run by every build.
set -eu
cd "$(dirname "$0")/.."
cp clients/js/edgetick.js public/edgetick.js
cp clients/js/edgetick.d.ts public/edgetick.d.ts
mkdir -p public/edgetick
cp clients/js/edgetick/*.js clients/js/edgetick/*.d.ts public/edgetick/
charts=node_modules/lightweight-charts
if [ -f "$charts/dist/lightweight-charts.standalone.production.js" ]; then
  mkdir -p public/vendor
  cp "$charts/dist/lightweight-charts.standalone.production.js" public/vendor/lightweight-charts.js
  cp "$charts/LICENSE" public/vendor/lightweight-charts.LICENSE.txt
else
  echo "client-assets: $charts is missing (run make setup): the dashboard has no chart" >&2
fi
