#!/usr/bin/env bash
# The whole test suite: the host workspace (unit, end-to-end and CLI tests;
# its build script builds every plugin once), then the plugin workspace's
# native-testable libraries.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests need beyond the toolchain, installed when it can be, else
# a stop at once saying how.
need_apt() { # need_apt COMMAND PACKAGE
  command -v "$1" >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing $2 (for the tests) with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
  command -v "$1" >/dev/null || {
    echo "error: the tests need $1; install it with: sudo apt-get update && sudo apt-get install -y $2" >&2
    exit 1
  }
}
# The providers-page test drives Debian's headless Chromium with Node.js.
need_apt chromium chromium
need_apt node nodejs
# The plugins build for wasm32-wasip2 (host/build.rs installs it through
# rustup too; doing it here fails faster when rustup is missing).
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2 || {
    echo "error: the Rust target wasm32-wasip2 is missing; install it with: rustup target add wasm32-wasip2" >&2
    exit 1
  }
fi
# The real-clients test runs the official SDKs and the AI SDK from
# target/clients (installed only when their pins change).
bash scripts/install-clients.sh
# The PostgreSQL store's tests run against one throw-away cluster on a
# loopback port (installed with apt-get when missing), each in its own
# fresh database.
PLATOS_TEST_POSTGRES="$(bash scripts/postgres-test-server.sh)"
export PLATOS_TEST_POSTGRES
cargo test --workspace --all-targets
# The example plugins in Python and JavaScript, built and run through the harness.
bash scripts/build-examples.sh
cargo test --manifest-path plugins/Cargo.toml -p platos-plugin-build -p platos-plugin-sdk -p platos-sigv4 -p platos-plugin-vertex -p platos-plugin-azure-openai-entra --lib --tests
# The SDK and the build helper as a third party gets them: packaged, then
# each built from its package alone (a file outside its folder, such as the
# repository's wit/, fails here). The first run compiles their dependencies
# natively (a few minutes); later runs reuse them.
cargo package --manifest-path plugins/Cargo.toml -p platos-plugin-sdk -p platos-plugin-build --allow-dirty
