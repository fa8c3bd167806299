#!/usr/bin/env bash
# Builds the player page when it is missing or older than its sources, then runs
# `tickcast up` (release build, embedded log in ./data). Extra arguments go to `tickcast up`.
# Usage: ./scripts/run.sh [--listen ADDR] [--data-dir DIR] …
set -euo pipefail
cd "$(dirname "$0")/.."

# The C libraries the build links (librdkafka's zlib and OpenSSL).
scripts/system-packages.sh zlib1g-dev libssl-dev pkg-config

# The page is built on the client library (clients/typescript), built first.
if [[ ! -f web/dist/index.html ]] || [[ -n "$(find web/src web/index.html web/package.json clients/typescript/src -newer web/dist/index.html -print -quit)" ]]; then
    echo "building the player page (web/dist) on @tickcast/client…" >&2
    (cd clients/typescript && npm ci --no-audit --no-fund && npm run build)
    (cd web && npm ci --no-audit --no-fund && npm run build)
fi
exec cargo run --release --locked -- up "$@"
