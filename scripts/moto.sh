#!/usr/bin/env bash
# moto's server (PyPI), the local AWS API server the DynamoDB and Kinesis tests run against.
#   scripts/moto.sh start PORT DIR   # installs moto into DIR/venv once, starts it on 127.0.0.1:PORT,
#                                    # writes DIR/moto.pid and DIR/moto.log
set -euo pipefail
MOTO_VERSION=5.2.5

case "${1:-}" in
start)
    port="${2:?usage: moto.sh start PORT DIR}"
    dir="${3:?usage: moto.sh start PORT DIR}"
    mkdir -p "$dir"
    venv="$dir/venv"
    if ! "$venv/bin/python" -c "import moto, flask" 2>/dev/null; then
        echo "installing moto $MOTO_VERSION into $venv (about 30 s, once)" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server,dynamodb]==$MOTO_VERSION"
    fi
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    echo $! >"$dir/moto.pid"
    exec "$(dirname "$0")/wait-for-port.sh" moto "$port" "$dir/moto.pid" "$dir/moto.log"
    ;;
*)
    echo "usage: moto.sh start PORT DIR" >&2
    exit 2
    ;;
esac
