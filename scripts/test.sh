#!/usr/bin/env bash
# Runs every test of tickcast: formatting, lints, unit, integration and end-to-end tests.
# Needs only the Rust toolchain (and gcc for the bundled SQLite). Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
cargo test --workspace --all-targets --locked
