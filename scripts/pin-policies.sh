#!/usr/bin/env bash
# Re-pins DIR/*.toml (default: policies/) to the sha256 of the components
# they name. Run it after changing a first-party plugin (or the SDK) and
# review the diff: a pin is the operator's statement "these exact bytes may
# run".
set -euo pipefail
cd "$(dirname "$0")/.."
cd "${1:-policies}"
for policy in *.toml; do
  component=$(sed -n 's/^component = "\(.*\)"$/\1/p' "$policy")
  [ -n "$component" ] || continue
  digest=$(sha256sum "$component" | cut -d' ' -f1)
  sed -i "s/^sha256 = \".*\"$/sha256 = \"$digest\"/" "$policy"
  echo "$policy -> $digest"
done
