#!/usr/bin/env bash
# Validates deploy/kubernetes against the Kubernetes 1.32 OpenAPI schemas
# (kubernetes-validate from PyPI, strict: unknown fields fail), and checks
# that the committed rbac.yaml is exactly what `runwarden rbac` derives from
# policies/ today. Usage: scripts/validate-deploy.sh [path/to/runwarden]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-./target/debug/runwarden}
venv="${XDG_CACHE_HOME:-$HOME/.cache}/runwarden/kubernetes-validate"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes-validate==1.37.0"
fi
rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
"$bin" rbac --lease runwarden-leader > "$rendered"
if ! diff -u deploy/kubernetes/rbac.yaml "$rendered"; then
  echo "deploy/kubernetes/rbac.yaml is stale: run '$bin rbac --lease runwarden-leader > deploy/kubernetes/rbac.yaml'" >&2
  exit 1
fi
"$venv/bin/kubernetes-validate" --strict --quiet -k 1.32.0 deploy/kubernetes/*.yaml
echo "deploy/kubernetes: $(ls deploy/kubernetes/*.yaml | wc -l) files valid against Kubernetes 1.32 (strict); rbac.yaml matches the policies"
