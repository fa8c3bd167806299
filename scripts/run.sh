#!/usr/bin/env bash
# Builds the player page when it is missing or older than its sources, then runs
# `tickcast up` (release build, embedded log in ./data). Extra arguments go to `tickcast up`.
# Usage: ./scripts/run.sh [--listen ADDR] [--data-dir DIR] …
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -f web/dist/index.html ]] || [[ -n "$(find web/src web/index.html web/package.json -newer web/dist/index.html -print -quit)" ]]; then
    echo "building the player page (web/dist)…" >&2
    (cd web && npm ci --no-audit --no-fund && npm run build)
fi
exec cargo run --release --locked -- up "$@"
