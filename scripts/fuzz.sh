#!/usr/bin/env bash
# Fuzzes the parsers of everything runwarden takes from outside (webhook
# bodies, policy/runbook/access files, model answers, plugin results), each
# target for SECONDS (default 600), seeded with real payload shapes from
# fuzz/seeds. Uses the pinned stable toolchain with RUSTC_BOOTSTRAP (no
# nightly can be fetched here) and no sanitizer: the code under test is safe
# Rust, and what we hunt are panics, overflows (debug assertions are on) and
# runaway allocations (-rss_limit_mb).
#
#   scripts/fuzz.sh                      # every target, 10 minutes each
#   scripts/fuzz.sh decision 60          # one target, one minute
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
all=(alertmanager pagerduty opsgenie policy decision plugin_results)
if [ $# -ge 1 ] && [ "$1" != all ]; then targets=("$1"); else targets=("${all[@]}"); fi
secs=${2:-600}
export RUSTC_BOOTSTRAP=1
cd fuzz
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  cp -n "seeds/$t/"* "corpus/$t/" 2>/dev/null || true
  echo "== $t for ${secs}s"
  cargo fuzz run --sanitizer none --debug-assertions "$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
done
