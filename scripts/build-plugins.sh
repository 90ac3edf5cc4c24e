#!/usr/bin/env bash
# Builds every first-party plugin and test guest as a wasm32-wasip2 component.
#
# Builds are reproducible: paths are remapped so the bytes (and so the sha256
# pinned in policies/) do not depend on where the repository is checked out.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

cargo_home=${CARGO_HOME:-$HOME/.cargo}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
export RUSTFLAGS="--remap-path-prefix=$root=/runwarden --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$rustup_home=/rustup"

packages=(k8s-remediation prometheus prometheus-query k8s-read loki-query loki k8s-changes slack pagerduty cert-manager dns-failover hostile-guests legacy-v0-1-guest)
args=()
for p in "${packages[@]}"; do args+=(-p "$p"); done
cargo build --quiet --target wasm32-wasip2 --profile plugin "${args[@]}"
ls "$root"/target/wasm32-wasip2/plugin/*.wasm
