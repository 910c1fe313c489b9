#!/usr/bin/env bash
# Builds the Python example plugin into a WebAssembly component.
#   bash examples/python-provider/build.sh [OUT.wasm]
# Installs the pinned componentize-py into a virtualenv under target/ the
# first time (set COMPONENTIZE_PY to use another binary).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/target/examples/example_python.wasm}"
version="0.25.1"
tools="$root/target/examples-tools/python"
if [ -z "${COMPONENTIZE_PY:-}" ]; then
  if ! "$tools/bin/componentize-py" --version 2>/dev/null | grep -q "$version"; then
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
  fi
  COMPONENTIZE_PY="$tools/bin/componentize-py"
fi
mkdir -p "$(dirname "$out")"
"$COMPONENTIZE_PY" -d "$root/wit/since_v0.1.0" -w provider \
  componentize -p "$here" app -o "$out"
