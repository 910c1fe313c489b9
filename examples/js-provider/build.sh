#!/usr/bin/env bash
# Builds the JavaScript example plugin into a WebAssembly component.
#   bash examples/js-provider/build.sh [OUT.wasm]
# Installs the pinned @bytecodealliance/componentize-js under target/ the
# first time. Every WASI feature but stdio is disabled: no fetch (it would
# import wasi:http, which the host refuses), no clocks, no random.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/target/examples/example_js.wasm}"
version="0.23.0"
tools="$root/target/examples-tools/js"
bin="$tools/node_modules/.bin/componentize-js"
if ! "$bin" --version 2>/dev/null | grep -q "$version"; then
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-audit --no-fund --silent \
    "@bytecodealliance/componentize-js@$version"
fi
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
# The sources, and manifest.toml as the module manifest-toml.js (a default
# export of its text), in a build directory: componentize-js resolves the
# imports from there when it runs the module at build time.
src="$root/target/examples-build/js"
rm -rf "$src" && mkdir -p "$src"
cp "$here/provider.js" "$here/platos-plugin.js" "$src/"
node -e 'const fs = require("fs");
  fs.writeFileSync(process.argv[2], "export default " + JSON.stringify(fs.readFileSync(process.argv[1], "utf8")) + ";\n");' \
  "$here/manifest.toml" "$src/manifest-toml.js"
# componentize-js reads its inputs relative to the working directory.
cd "$root"
"$bin" target/examples-build/js/provider.js --wit wit/since_v0.1.0 --world-name provider \
  --disable http fetch-event clocks random -o "$out"
