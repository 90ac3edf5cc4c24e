#!/usr/bin/env bash
# Builds the Python and JavaScript plugin examples (plugins/python,
# plugins/js) into target/wasm32-wasip2/plugin/ and pins
# policies/examples/ to them.
#
# Toolchains come from the registries, pinned, and are cached:
# componentize-py (PyPI, plugins/python/requirements.txt) in a venv under
# ~/.cache/runwarden, componentize-js (npm, plugins/js/package-lock.json)
# in plugins/js/node_modules. Neither build is byte-for-byte reproducible
# (both snapshot an initialised interpreter), so a component is rebuilt only
# when its inputs change, and the example policies are re-pinned after
# every build: a pin still means "these exact bytes".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/target/wasm32-wasip2/plugin"
mkdir -p "$out"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/runwarden"

venv="$cache/componentize-py"
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q "$(cut -d= -f3 plugins/python/requirements.txt)"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r plugins/python/requirements.txt
fi
lock=$(sha256sum plugins/js/package-lock.json | cut -d' ' -f1)
if [ "$(cat plugins/js/node_modules/.runwarden-lock 2>/dev/null)" != "$lock" ]; then
  (cd plugins/js && npm ci --silent --no-audit --no-fund)
  echo "$lock" > plugins/js/node_modules/.runwarden-lock
fi

# build NAME LANG DIR ENTRY WORLD: skipped when the inputs' digest is unchanged.
build() {
  local name=$1 lang=$2 dir=$3 entry=$4 world=$5
  local wasm="$out/$name.wasm" stamp="$out/$name.inputs"
  local inputs
  inputs=$( (cat "$dir"/*.py "$dir"/*.js 2>/dev/null; cat wit/*.wit; \
    cat plugins/python/requirements.txt plugins/js/package-lock.json) | sha256sum | cut -d' ' -f1)
  if [ -f "$wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$inputs" ]; then
    echo "$name: up to date"
    return
  fi
  case $lang in
    python) "$venv/bin/componentize-py" -d wit -w "$world" componentize -p "$dir" "$entry" -o "$wasm" >/dev/null ;;
    js) node plugins/js/build.mjs "$dir/$entry" wit "$world" "$wasm" >/dev/null ;;
  esac
  echo "$inputs" > "$stamp"
  echo "$name: built ($(du -h "$wasm" | cut -f1))"
}

build pod_restarts python plugins/python/pod-restarts app k8s-source
build restart_crashlooping python plugins/python/restart-crashlooping app k8s-tool
build replica_gap js plugins/js/replica-gap source.js k8s-source
build scale_by js plugins/js/scale-by tool.js k8s-tool

./scripts/pin-policies.sh policies/examples >/dev/null
