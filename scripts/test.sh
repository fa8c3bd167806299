#!/usr/bin/env bash
# Runs every test of tickcast: formatting, lints, unit, integration and end-to-end tests.
# Needs the Rust toolchain, gcc (bundled SQLite, zstd) and python3 with pip (it installs pyarrow
# into target/test-venv to read the exported Parquet files back). Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== test tools"
# An independent reader of the exported Parquet files (pyarrow), in a venv of its own.
venv=target/test-venv
if ! "$venv/bin/python" -c "import pyarrow" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pyarrow==26.0.1"
fi
export TICKCAST_TEST_PYTHON="$PWD/$venv/bin/python"

echo "== tests"
cargo test --workspace --all-targets --locked
