#!/usr/bin/env bash
# Measures tickcast on Kafka on this machine (broker, roles and bots on the same two cores) and
# writes benches/KAFKA.md, which BENCHMARKS.md includes:
#   - `tickcast bots` through an edge, a gateway and two tick generators, each its own process,
#     on a tansu broker (in-memory storage), 10 Hz ticks, at growing numbers of players;
#   - the stalls of the scaling test (kill -9, scale-out, SIGTERM of a tick generator).
# Usage: benches/kafka.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh

quick=0
[ "${1:-}" = "--quick" ] && quick=1
duration=30s
loads="100x10 300x10 1000x10"
if [ "$quick" = 1 ]; then duration=5s; loads="20x10"; fi

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# Every bot comes from 127.0.0.1: no per-address limits.
export TICKCAST_GAME_RATE_PER_IP=0 TICKCAST_MAX_CONNECTIONS_PER_IP=0 TICKCAST_MAX_CONNECTIONS=0
cargo build --release --locked
out=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"; }
trap cleanup EXIT

port=19192
scripts/tansu.sh start "$port" "$out/tansu"
pids+=("$(cat "$out/tansu/tansu.pid")")
bin=./target/release/tickcast


for load in $loads; do
  sessions=${load%x*}; players=${load#*x}
  log="kafka://127.0.0.1:$port?prefix=bench-$load-"
  $bin topics create --log "$log" --partitions 6 > /dev/null
  RUST_LOG=warn $bin gateway --log "$log" --region eu-west-1 --listen 127.0.0.1:0 > "$out/gateway.out" &
  gateway=$!; pids+=("$gateway")
  gateway_url=$(wait_line "$out/gateway.out" "gateway listening on ")
  RUST_LOG=warn $bin edge --log "$log" --listen 127.0.0.1:0 --gateway "eu-west-1=$gateway_url" > "$out/edge.out" &
  edge=$!; pids+=("$edge")
  edge_url=$(wait_line "$out/edge.out" "edge listening on ")
  gens=()
  for g in 1 2; do
    RUST_LOG=warn $bin tick-generator --log "$log" --instance-id "gen-$g" &
    gens+=($!); pids+=($!)
  done
  echo "== Kafka: $sessions sessions x $players players"
  $bin bots --edge "$edge_url" --sessions "$sessions" --players-per-session "$players" \
    --duration "$duration" --tick-ms 100 --server-pid "$gateway" --json > "$out/bots-$load.json" || true
  cat "$out/bots-$load.json"
  kill "$gateway" "$edge" "${gens[@]}"; wait "$gateway" "$edge" "${gens[@]}" 2>/dev/null || true
done

echo "== scaling test"
TICKCAST_TEST_KAFKA="127.0.0.1:$port" cargo test --locked --release --test it \
  kafka::generators_scale_out -- --nocapture 2>&1 | grep "longest stall" | tee "$out/stalls.txt" || true

python3 - "$out" "$duration" "$loads" <<'PY' > benches/KAFKA.md
import json, os, sys
out, duration, loads = sys.argv[1], sys.argv[2], sys.argv[3].split()
print("## Kafka: roles as separate processes on a tansu broker\n")
print("`benches/kafka.sh`: a tansu 0.6 broker (in-memory storage), `tickcast topics create --partitions 6`,")
print("one gateway, the edge and two tick generators, each its own process, and")
print(f"`tickcast bots --sessions S --players-per-session P --duration {duration} --tick-ms 100 --server-pid GATEWAY` —")
print("broker, roles and bots all on this machine's two cores. Server CPU is the gateway's.\n")
print("| players | kicked | missing | dup | out of order | p50 ms | p99 ms | p99.9 ms | max ms | gateway µs/msg | gateway CPU | bots µs/msg |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for load in loads:
    try:
        r = json.load(open(os.path.join(out, f"bots-{load}.json")))
    except (OSError, ValueError):
        print(f"| {load} | run failed | | | | | | | | | | |")
        continue
    s, l = r.get("server") or {}, r["latenessMs"]
    print(f"| {r['players']:,} ({load}) | {r['kicks']} | {r['missingSteps']} | {r['duplicateSteps']} | {r['outOfOrderSteps']} | "
          f"{l['p50']:.2f} | {l['p99']:.2f} | {l['p999']:.2f} | {l['max']:.2f} | "
          f"{s.get('cpuUsPerMessage', 0):.2f} | {s.get('cpuPercent', 0):.0f}% | {r['botsCpuUsPerMessage']:.2f} |")
print()
print("Hand-over stalls, from the scaling test (200 games × 2 players on 3 generators, `session.timeout.ms=6000`;")
print("`cargo test --release --test it kafka::generators_scale_out -- --nocapture`): the longest gap between two")
print("ticks any player saw after each event.\n")
for line in open(os.path.join(out, "stalls.txt")):
    print(f"- {line.strip()}")
notes = os.path.join("benches", "KAFKA-NOTES.md")
if os.path.exists(notes):
    print()
    print(open(notes).read().rstrip())
PY
include_section kafka benches/KAFKA.md
