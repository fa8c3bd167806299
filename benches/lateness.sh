#!/usr/bin/env bash
# Tick lateness on each event log, side by side in one run on this machine (servers, roles and
# bots on the same two cores): `tickcast bots` through
#   - `tickcast up` on the embedded log (one process);
#   - an edge, a gateway and two tick generators, each its own process, on Kafka (a tansu broker);
#   - the same on Kinesis (moto's server), with reads polled every 200 ms and every 50 ms.
# Writes benches/LATENESS.md, which BENCHMARKS.md includes.
# Usage: benches/lateness.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh

quick=0
[ "${1:-}" = "--quick" ] && quick=1
# 200 players at 10 Hz: 200 ticks a second, what moto (one Python process serving every
# reader and writer) keeps up with on this machine; it falls behind at 1,000 (benches/LATENESS-NOTES.md).
duration=20s; sessions=${TICKCAST_BENCH_SESSIONS:-20}; players=10
if [ "$quick" = 1 ]; then duration=5s; sessions=10; fi

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# Every bot comes from 127.0.0.1: no per-address limits.
export TICKCAST_GAME_RATE_PER_IP=0 TICKCAST_MAX_CONNECTIONS_PER_IP=0 TICKCAST_MAX_CONNECTIONS=0
cargo build --release --locked
out=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"; }
trap cleanup EXIT
bin=./target/release/tickcast
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

kafka_port=19292; moto_port=19592
scripts/tansu.sh start "$kafka_port" "$out/tansu"
pids+=("$(cat "$out/tansu/tansu.pid")")
scripts/moto.sh start "$moto_port" target/moto-bench
pids+=("$(cat target/moto-bench/moto.pid)")


bots() { # NAME EDGE_URL SERVER_PID
  echo "== $1: $sessions sessions x $players players"
  $bin bots --edge "$2" --sessions "$sessions" --players-per-session "$players" \
    --duration "$duration" --tick-ms 100 --server-pid "$3" --json > "$out/bots-$1.json" || true
  cat "$out/bots-$1.json"
}

# The embedded log: every role in one process.
RUST_LOG=warn $bin up --listen 127.0.0.1:0 --data-dir "$out/data" --saturation-lag-ms 0 > "$out/up.out" &
up=$!; pids+=("$up")
up_url=$(wait_line "$out/up.out" "  open        ")
bots embedded "${up_url%/}" "$up"
kill "$up"; wait "$up" 2>/dev/null || true

split_roles() { # NAME LOG
  RUST_LOG=warn $bin gateway --log "$2" --region eu-west-1 --listen 127.0.0.1:0 > "$out/gateway.out" &
  gateway=$!; pids+=("$gateway")
  gateway_url=$(wait_line "$out/gateway.out" "gateway listening on ")
  RUST_LOG=warn $bin edge --log "$2" --listen 127.0.0.1:0 --gateway "eu-west-1=$gateway_url" > "$out/edge.out" &
  edge=$!; pids+=("$edge")
  edge_url=$(wait_line "$out/edge.out" "edge listening on ")
  gens=()
  for g in 1 2; do
    RUST_LOG=warn $bin tick-generator --log "$2" --instance-id "gen-$g" &
    gens+=($!); pids+=($!)
  done
  bots "$1" "$edge_url" "$gateway"
  kill "$gateway" "$edge" "${gens[@]}"; wait "$gateway" "$edge" "${gens[@]}" 2>/dev/null || true
}

export TICKCAST_TOKEN_SECRET=lateness-bench-secret-0123456789
kafka="kafka://127.0.0.1:$kafka_port?prefix=lateness-"
$bin topics create --log "$kafka" --partitions 4 > /dev/null
split_roles kafka "$kafka"
for poll in 200 50; do
  kinesis="kinesis://lateness$poll?region=us-east-1&endpoint=http://127.0.0.1:$moto_port&poll_ms=$poll"
  $bin streams create --log "$kinesis" --shards 4 > /dev/null
  split_roles "kinesis-poll-$poll" "$kinesis"
done

python3 - "$out" "$duration" "$sessions" "$players" <<'PY' > benches/LATENESS.md
import json, os, sys
out, duration, sessions, players = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
print("## Tick lateness by event log\n")
print(f"`benches/lateness.sh`: `tickcast bots --sessions {sessions} --players-per-session {players} --duration {duration} --tick-ms 100`")
print("against `tickcast up` on the embedded log, then against an edge, a gateway and two tick generators")
print("(each its own process) on Kafka (a tansu 0.6 broker, 4 partitions) and on Kinesis (moto 5.2.5,")
print("4 shards, reads polled every 200 ms and every 50 ms): one run, servers, roles and bots on this")
print("machine's two cores. Lateness is when a tick reached a bot after its scheduled instant.\n")
print("| log | players | kicked | missing | dup | out of order | p50 ms | p99 ms | p99.9 ms | max ms |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name in ["embedded", "kafka", "kinesis-poll-200", "kinesis-poll-50"]:
    try:
        r = json.load(open(os.path.join(out, f"bots-{name}.json")))
    except (OSError, ValueError):
        print(f"| {name} | run failed | | | | | | | | |")
        continue
    l = r["latenessMs"]
    print(f"| {name} | {r['players']:,} | {r['kicks']} | {r['missingSteps']} | {r['duplicateSteps']} | {r['outOfOrderSteps']} | "
          f"{l['p50']:.2f} | {l['p99']:.2f} | {l['p999']:.2f} | {l['max']:.2f} |")
notes = os.path.join("benches", "LATENESS-NOTES.md")
if os.path.exists(notes):
    print()
    print(open(notes).read().rstrip())
PY
include_section lateness benches/LATENESS.md
