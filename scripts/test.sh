#!/usr/bin/env bash
# The whole test suite: the host workspace (unit, end-to-end and CLI tests;
# its build script builds every plugin once), then the plugin workspace's
# native-testable libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
# The example plugins in Python and JavaScript, built and run through the harness.
bash scripts/build-examples.sh
cargo test --manifest-path plugins/Cargo.toml -p platos-plugin-build -p platos-plugin-sdk -p platos-sigv4 --lib --tests
