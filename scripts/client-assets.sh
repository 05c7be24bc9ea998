#!/bin/sh
# Copies the client package's module (clients/js, the one source) into public/, where the
# service serves it as /edgetick.js with its declarations. Run by every build.
set -eu
cd "$(dirname "$0")/.."
cp clients/js/edgetick.js public/edgetick.js
cp clients/js/edgetick.d.ts public/edgetick.d.ts
