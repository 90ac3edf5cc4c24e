#!/usr/bin/env bash
# Builds the plugins and runs `runwarden demo` on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-plugins.sh >/dev/null
cargo run --quiet --locked -p runwarden -- demo "$@"
