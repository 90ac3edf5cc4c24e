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
cargo test --locked -p runwarden --test llm_real -- --ignored --nocapture \
  a_real_model_over_the_shipped_scenarios_stays_within_policy
kill "$pid" 2>/dev/null || true

# The investigation loop with real tool calls: the same model behind
# llama-cpp-python's function-calling chat format (OpenAI tools), the first
# turn forced to a read tool so the loop runs, two steps at most.
url=$(./scripts/llm-server.sh start --chat_format chatml-function-calling 3>"$pidfile")
pid=$(cat "$pidfile")
echo "function-calling model server at $url (pid $pid)"
RUNWARDEN_LLM_BASE_URL=$url RUNWARDEN_LLM_DIALECT=openai RUNWARDEN_LLM_MAX_STEPS=2 \
  RUNWARDEN_LLM_TOOL_CHOICE=k8s-read__list_pods \
  cargo test --locked -p runwarden --test llm_real -- --ignored --nocapture \
  a_real_model_investigates_through_the_sandbox_within_policy_and_budget
echo "real-model tier: $(( $(date +%s) - start )) s"
