#!/usr/bin/env bash
# Waits until the server NAME (pid in PIDFILE, log in LOG) listens on 127.0.0.1:PORT, for 10 s.
# Usage: scripts/wait-for-port.sh NAME PORT PIDFILE LOG
set -euo pipefail
name="$1" port="$2" pidfile="$3" log="$4"
for _ in $(seq 1 100); do
    if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "$name listening on 127.0.0.1:$port (pid $(cat "$pidfile"))" >&2
        exit 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        cat "$log" >&2
        echo "$name exited before listening" >&2
        exit 1
    fi
    sleep 0.1
done
echo "$name did not listen on 127.0.0.1:$port within 10 s; see $log" >&2
exit 1
