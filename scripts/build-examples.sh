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
# The helper modules read manifests as the Rust build helper does: every
# manifest here, read by platos-plugin.js's own TOML reader, must equal what
# Python's tomllib (which platos_plugin.py uses) reads.
python3 -c 'import tomllib' 2>/dev/null || { echo "error: checking the helper modules needs Python 3.11 or later (tomllib)" >&2; exit 1; }
node --input-type=module -e '
  import { parseToml } from "./examples/js-provider/platos-plugin.js";
  import { readFileSync } from "node:fs";
  const read = {};
  for (const file of process.argv.slice(1)) read[file] = parseToml(readFileSync(file, "utf8"));
  console.log(JSON.stringify(read));
' manifests/*.toml examples/*/manifest.toml | python3 -c '
import json, sys, tomllib
read = json.load(sys.stdin)
differ = [file for file, value in read.items()
          if json.loads(json.dumps(tomllib.load(open(file, "rb")))) != value]
assert read and not differ, f"platos-plugin.js reads these manifests differently from tomllib: {differ}"
print(f"helper modules: {len(read)} manifests read alike")
'
for example in python js; do
  started=$SECONDS
  echo "== example: $example"
  bash "examples/$example-provider/build.sh" "$out/example_$example.wasm"
  "$bin" plugin test "$out/example_$example.wasm" --fixtures "examples/$example-provider/fixtures"
  echo "example $example built and checked in $((SECONDS - started)) s"
done
