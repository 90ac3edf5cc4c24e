#!/usr/bin/env bash
# The whole test suite, from a fresh clone with only the Rust toolchain:
# installs the wasm target, builds the plugin components, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-plugins.sh
cargo test --locked
