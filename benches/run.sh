#!/usr/bin/env bash
# Measures tickcast on this machine and writes BENCHMARKS.md:
#   - criterion micro-benchmarks (engine, embedded log, gateway fan-out);
#   - end-to-end: `tickcast up` (release, embedded log) and `tickcast bots` on the same machine,
#     10 Hz ticks, at growing numbers of players;
#   - the same loads against a naive broadcaster (benches/naive: axum, a broadcast channel per
#     session, a task per player, no log), side by side in the same run;
#   - 10,000 players to `tickcast up` as it ships (admission on): every one must be admitted;
#   - graceful overload: 14,000 players offered as games arriving one by one (staggered, 500
#     players/s), and as a burst (every game created back to back, then every player connects),
#     to `tickcast up` with its admission control and with it off;
#   - adaptive pace under load: a load past capacity, admitted whole, as fixed-pace games and as
#     adaptive ones (maxTickMs 400) whose generator slows them when it runs late.
# Usage: benches/run.sh [--quick]     (--quick: shorter runs, for a smoke test of the script)
#        TICKCAST_BENCH_LOADS="800x10 1000x10" benches/run.sh   (other loads: sessions x players)
#        TICKCAST_BENCH_SKIP_MICRO=1 benches/run.sh              (keep the last criterion results)
#        TICKCAST_BENCH_OVERLOAD="1400x10" benches/run.sh        (the overload offered; "" skips it)
#        TICKCAST_BENCH_ADMITTED="1000x10" benches/run.sh        (the load admission must admit; "" skips it)
#        TICKCAST_BENCH_PACE="1400x10" benches/run.sh            (adaptive against fixed past capacity; "" skips it)
#        TICKCAST_BENCH_OUT=DIR benches/run.sh                   (keep the raw reports in DIR)
# The bots all come from 127.0.0.1 and offer up to 18,000 sockets: the limits per client
# address and the cap on sockets are turned off here, as any limit the load client would trip
# must be.
export TICKCAST_GAME_RATE_PER_IP=0 TICKCAST_MAX_CONNECTIONS_PER_IP=0 TICKCAST_MAX_CONNECTIONS=0
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
duration=30s
loads="${TICKCAST_BENCH_LOADS:-500x10 800x10 1000x10 1400x10 1800x10}"
overload="${TICKCAST_BENCH_OVERLOAD-1400x10}"
admitted="${TICKCAST_BENCH_ADMITTED-1000x10}"
paced="${TICKCAST_BENCH_PACE-1400x10}"
overload_duration=40s
if [ "$quick" = 1 ]; then duration=5s; loads="50x10"; overload="50x10"; admitted="50x10"; paced="50x10"; overload_duration=8s; fi

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release --locked -p tickcast -p tickcast-naive-broadcaster
if [ -n "${TICKCAST_BENCH_OUT:-}" ]; then
  out=$TICKCAST_BENCH_OUT; mkdir -p "$out"
  trap '[ -n "${server:-}" ] && kill "$server" 2>/dev/null || true' EXIT
else
  out=$(mktemp -d)
  trap 'rm -rf "$out"; [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true' EXIT
fi

# TICKCAST_BENCH_SKIP_MICRO=1 reuses the criterion results already in target/criterion.
if [ "$quick" = 0 ] && [ -z "${TICKCAST_BENCH_SKIP_MICRO:-}" ]; then
  cargo bench --locked --bench engine --bench eventlog --bench fanout -- --noplot 2>&1 | tee "$out/criterion.txt"
fi

# Starts a server with the command after PORT ("$@", where {port} stands for it), waits for
# /healthz, runs the bots against it (with $bots_args) into $out/NAME-LOAD.json, and stops it.
bots_args=()
measure() {
  local name=$1 port=$2; shift 2
  "${@//\{port\}/$port}" > /dev/null &
  server=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.1; done
  echo "== $name: $sessions sessions x $players players"
  ./target/release/tickcast bots --edge "http://127.0.0.1:$port" --sessions "$sessions" \
    --players-per-session "$players" --duration "$duration" --tick-ms 100 \
    --server-pid "$server" "${bots_args[@]}" --json > "$out/$name-$load.json" || true
  cat "$out/$name-$load.json"
  kill "$server"; wait "$server" 2>/dev/null || true
  server=
}

port=18800
for load in $loads; do
  sessions=${load%x*}; players=${load#*x}
  data=$(mktemp -d)
  # Capacity is measured with every player admitted; the overload below measures admission.
  RUST_LOG=warn measure bots $port ./target/release/tickcast up --listen "127.0.0.1:{port}" --data-dir "$data" \
    --saturation-lag-ms 0 --max-players 0
  rm -rf "$data"
  measure naive $((port + 1)) ./target/release/naive-broadcaster "127.0.0.1:{port}"
  port=$((port + 2))
done

# A load the machine carries, to `tickcast up` as it ships: admission must let every player in.
if [ -n "$admitted" ]; then
  load=$admitted; sessions=${load%x*}; players=${load#*x}
  data=$(mktemp -d)
  RUST_LOG=warn measure admitted $port ./target/release/tickcast up --listen "127.0.0.1:{port}" --data-dir "$data"
  rm -rf "$data"
  port=$((port + 1))
fi

# The overload: the same offered games with admission control (the default) and without,
# arriving one by one (staggered) and all at once (burst).
if [ -n "$overload" ]; then
  load=$overload; sessions=${load%x*}; players=${load#*x}
  e2e_duration=$duration
  duration=$overload_duration
  for arrival in staggered burst; do
    if [ "$arrival" = staggered ]; then bots_args=(--staggered --connect-rate 500); else bots_args=(--burst); fi
    for admission in on off; do
      data=$(mktemp -d)
      flag=(); [ "$admission" = off ] && flag=(--saturation-lag-ms 0 --max-players 0)
      RUST_LOG=warn measure "$arrival-$admission" $port ./target/release/tickcast up --listen "127.0.0.1:{port}" \
        --data-dir "$data" "${flag[@]}"
      rm -rf "$data"
      port=$((port + 1))
    done
  done
  bots_args=()
  duration=$e2e_duration
fi

# Adaptive pace past capacity: every player admitted (admission off), the generator's load policy
# on (late past 5 ms); games of 10–20-step rounds, fixed or adaptive up to 400 ms a step.
if [ -n "$paced" ]; then
  load=$paced; sessions=${load%x*}; players=${load#*x}
  e2e_duration=$duration
  duration=$overload_duration
  for pace in fixed adaptive; do
    bots_args=(--min-break-steps 10 --max-break-steps 20)
    [ "$pace" = adaptive ] && bots_args+=(--max-tick-ms 400)
    data=$(mktemp -d)
    RUST_LOG=warn measure "pace-$pace" $port ./target/release/tickcast up --listen "127.0.0.1:{port}" \
      --data-dir "$data" --saturation-lag-ms 0 --max-players 0 --pace-load-limit-ms 5
    rm -rf "$data"
    port=$((port + 1))
  done
  bots_args=()
  duration=$e2e_duration
fi

python3 benches/report.py "$out" "$duration" "$loads" $quick "$overload" "$overload_duration" "$admitted" "$paced" > BENCHMARKS.md.new
mv BENCHMARKS.md.new BENCHMARKS.md
echo "wrote BENCHMARKS.md"
