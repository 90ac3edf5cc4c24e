#!/usr/bin/env bash
# The real-model tier: starts a model server on loopback (installing it the
# first time, ~8 minutes, then cached) and runs the LLM planner over every
# shipped scenario through the guardrails, then prints the replay table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/build-plugins.sh >/dev/null
start=$(date +%s)
pidfile=$(mktemp)
url=$(./scripts/llm-server.sh start 3>"$pidfile")
pid=$(cat "$pidfile")
trap 'kill "$pid" 2>/dev/null || true; rm -f "$pidfile"' EXIT
echo "model server at $url (pid $pid)"
export RUNWARDEN_LLM_BASE_URL=$url RUNWARDEN_LLM_MODEL=gemma3-270m RUNWARDEN_LLM_DIALECT=llama-cpp
# The investigation's budget for the small model: a few tool calls at most.
export RUNWARDEN_LLM_MAX_STEPS=3 RUNWARDEN_LLM_MAX_SECONDS=120
cargo test --locked -p runwarden --test llm_real -- --ignored --nocapture
echo "real-model tier: $(( $(date +%s) - start )) s"
