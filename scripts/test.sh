#!/usr/bin/env bash
# Runs every test of tickcast: formatting, lints, unit, integration and end-to-end tests, and a
# bounded run of every fuzz target.
# Needs the Rust toolchain, gcc (bundled SQLite, zstd, librdkafka), zlib's headers, node/npm
# and python3 with pip. It installs what the tests use: pyarrow into target/test-venv (to read the exported
# Parquet files back) and tansu, a Kafka-API broker (built once into ~/.cache/tickcast, about
# ten minutes), which it starts on 127.0.0.1 with in-memory storage for the Kafka tests.
# Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== system packages"
# The C libraries the build links, and Debian's Chromium for the web client's browser tests.
scripts/system-packages.sh zlib1g-dev libssl-dev pkg-config chromium

echo "== format"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets --locked --features test-hooks -- -D warnings

echo "== test tools"
# Independent readers of the exported Parquet files (pyarrow, DuckDB), of infra/'s YAML (PyYAML)
# and HCL (python-hcl2), of /metrics (the Prometheus project's own text parser) and of AWS
# resources (boto3), in a venv of their own.
venv=target/test-venv
if ! "$venv/bin/python" -c "import pyarrow, duckdb, yaml, prometheus_client, hcl2, boto3" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pyarrow==26.0.1" "duckdb==2.0.1" "PyYAML==6.0.3" \
    "prometheus-client==0.23.1" "python-hcl2==7.3.1" "boto3==1.40.70"
fi
export TICKCAST_TEST_PYTHON="$PWD/$venv/bin/python"

# A Kafka-API broker for the Kafka backend's tests, stopped when this script exits.
kafka_port="${TICKCAST_TEST_KAFKA_PORT:-19092}"
scripts/tansu.sh start "$kafka_port" target/tansu
trap 'kill "$(cat target/tansu/tansu.pid)" 2>/dev/null || true' EXIT
export TICKCAST_TEST_KAFKA="127.0.0.1:$kafka_port"
# Tests that stop a broker start one of their own from the same binary.
TICKCAST_TEST_TANSU="$(scripts/tansu.sh install)"
export TICKCAST_TEST_TANSU

# moto's server, the AWS API (DynamoDB and Kinesis) the projection store's, the shard leases' and
# the Kinesis log's tests run against, with static test credentials; kinesalite, the second
# Kinesis, for the reshard tests (moto does not route records to a split shard's children). Both
# stopped when this script exits.
moto_port="${TICKCAST_TEST_MOTO_PORT:-19500}"
kinesalite_port="${TICKCAST_TEST_KINESALITE_PORT:-19600}"
scripts/moto.sh start "$moto_port" target/moto
scripts/kinesalite.sh start "$kinesalite_port" target/kinesalite
trap 'kill "$(cat target/tansu/tansu.pid)" "$(cat target/moto/moto.pid)" "$(cat target/kinesalite/kinesalite.pid)" 2>/dev/null || true' EXIT
export TICKCAST_TEST_DYNAMODB="http://127.0.0.1:$moto_port"
export TICKCAST_TEST_KINESALITE="http://127.0.0.1:$kinesalite_port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

echo "== client library"
# @tickcast/client: the state machine, backoff bounds, de-duplication and engine v1 (vitest),
# and its build, which the player page is built on.
(cd clients/typescript && npm ci --no-audit --no-fund && npm test && npm run build)

echo "== web client"
# The player page: its tests (its state from the game's events) and its build, which the
# end-to-end tests serve.
(cd web && npm ci --no-audit --no-fund && npm test && npm run build)

echo "== tests"
# `test-hooks`: hooks only the tests use (a gateway made slow from inside); never in a release.
cargo test --workspace --all-targets --locked --features test-hooks

echo "== fuzzing"
# Every cargo-fuzz target of fuzz/ for 30 s from the committed corpus (cargo-fuzz is installed
# once into ~/.cache/tickcast).
scripts/fuzz.sh 30

echo "== browser tests"
# The player page in real headless Chromium against a real `tickcast up` (the debug binary the
# tests above built); a screenshot lands in target/web-e2e/.
(cd web && TICKCAST_BIN="$PWD/../target/debug/tickcast" npm run e2e)

echo "== client library against tickcast up"
# Packed with `npm pack`, installed from the tarball in a fresh folder, played against the
# debug binary: two clients through a kill -9 and restart, a far client kicked.
(cd clients/typescript && TICKCAST_BIN="$PWD/../../target/debug/tickcast" npm run integration)

