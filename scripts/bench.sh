#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md in one run, release build. Needs Debian's
# prometheus-alertmanager for the intake comparison (installed if missing,
# like the test command does). Extra arguments go to `runwarden bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v prometheus-alertmanager >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null
fi
./scripts/build-plugins.sh >/dev/null
cargo build --release --locked -p runwarden
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
./target/release/runwarden --data-dir "$data" bench "$@"
