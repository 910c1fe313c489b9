#!/usr/bin/env bash
# Builds the example plugins in other languages with pinned tools and runs
# each through the plugin harness (every static check, plus live mode with
# its fixtures against a mock upstream on 127.0.0.1). scripts/test.sh calls it.
#
#   examples/python-provider: componentize-py 0.25.1 (PyPI), ~18 MB component
#   examples/js-provider:     @bytecodealliance/componentize-js 0.23.0 (npm), ~12 MB
#
# Measured on the 2-core CI machine: about 1 minute in all (each example
# ~25-35 s: building the component ~15-25 s, compiling it for the harness
# and running every check ~10 s); installing the tools the first time adds
# their download (kept under target/examples-tools; compiled components are
# cached under target/examples-data).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/examples
bin="${PLATOS_HOST_BIN:-target/debug/platos-host}"
[ -x "$bin" ] || cargo build -p platos-host
export PLATOS_DATA_DIR="$PWD/target/examples-data"
export PLATOS_LOG=warn
unset PLATOS_PLUGIN_DIR
for example in python js; do
  started=$SECONDS
  echo "== example: $example"
  bash "examples/$example-provider/build.sh" "$out/example_$example.wasm"
  "$bin" plugin test "$out/example_$example.wasm" --fixtures "examples/$example-provider/fixtures"
  echo "example $example built and checked in $((SECONDS - started)) s"
done
