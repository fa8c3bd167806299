#!/usr/bin/env bash
# Installs tansu (a Kafka-API broker written in Rust) once into a cache directory and prints
# the binary's path. The build takes about ten minutes on two cores, so a later run reuses it.
#
#   scripts/tansu.sh install          # prints the path of the tansu binary
#   scripts/tansu.sh start PORT DIR   # starts a broker with in-memory storage on 127.0.0.1:PORT,
#                                     # writes its pid to DIR/tansu.pid, logs to DIR/tansu.log
set -euo pipefail

TANSU_VERSION=0.6.0
CACHE_DIR="${TICKCAST_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tickcast}"
ROOT="$CACHE_DIR/tansu-$TANSU_VERSION"
BIN="$ROOT/bin/tansu"

install_tansu() {
    if [[ ! -x "$BIN" ]]; then
        echo "installing tansu $TANSU_VERSION into $ROOT (about 10 minutes, once)" >&2
        CARGO_TARGET_DIR="$CACHE_DIR/tansu-build" \
            cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore --root "$ROOT" >&2
        rm -rf "$CACHE_DIR/tansu-build"
    fi
    echo "$BIN"
}

case "${1:-}" in
install)
    install_tansu
    ;;
start)
    port="${2:?usage: tansu.sh start PORT DIR}"
    dir="${3:?usage: tansu.sh start PORT DIR}"
    bin="$(install_tansu)"
    mkdir -p "$dir"
    "$bin" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ >"$dir/tansu.log" 2>&1 &
    echo $! >"$dir/tansu.pid"
    exec "$(dirname "$0")/wait-for-port.sh" tansu "$port" "$dir/tansu.pid" "$dir/tansu.log"
    ;;
*)
    echo "usage: tansu.sh install | start PORT DIR" >&2
    exit 2
    ;;
esac
