"""Writes BENCHMARKS.md from the outputs of benches/run.sh (criterion estimates, bots reports)."""
import json, os, platform, subprocess, sys, datetime

out, duration, loads, quick = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4] == "1"
overload, overload_duration = sys.argv[5], sys.argv[6]
admitted = sys.argv[7] if len(sys.argv) > 7 else ""
paced = sys.argv[8] if len(sys.argv) > 8 else ""

def sysctl(name):
    try:
        return open("/proc/sys/" + name.replace(".", "/")).read().strip()
    except OSError:
        return "?"

def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    mem_kib = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")))
    return (f"{os.cpu_count()} cores ({cpu}), {mem_kib / 1024 / 1024:.1f} GiB memory, Linux {platform.release()}, "
            f"net.core.netdev_max_backlog={sysctl('net.core.netdev_max_backlog')}")

def criterion(group, bench):
    # criterion writes group "a/b" as "a_b", a function id "x/y" as "x_y", and a
    # function-with-parameter id as nested "function/parameter" directories.
    for name in (bench.replace("/", "_"), bench):
        path = os.path.join("target", "criterion", group.replace("/", "_"), name, "new", "estimates.json")
        if os.path.exists(path):
            return json.load(open(path))["mean"]["point_estimate"]  # ns per iteration
    return None

def fmt_ns(ns):
    return f"{ns / 1e6:.3f} ms" if ns >= 1e6 else f"{ns / 1e3:.2f} µs" if ns >= 1e3 else f"{ns:.0f} ns"

print("# Benchmarks\n")
print(f"Measured {datetime.date.today()} on {machine()}, by `benches/run.sh`"
      f"{' --quick' if quick else ''} (release build, bots and server on the same machine).\n")

if not quick:
    print("## Micro-benchmarks (criterion)\n")
    print("`cargo bench --bench engine --bench eventlog --bench fanout`\n")
    print("| benchmark | time per iteration | throughput |")
    print("|---|---|---|")
    rows = [("engine/state_at", str(s), None) for s in (1000, 10000, 100000, 1000000, 10000000)]
    rows += [("engine/stepper", "advance_1M", 1_000_000)]
    for d in ("durable", "relaxed"):
        rows += [("eventlog/append", f"{d}/64_writers_x1", 64 * 20), ("eventlog/append", f"{d}/1024_writers_x1", 1024 * 20),
                 ("eventlog/append", f"{d}/batch_1000", 1000)]
    rows += [("eventlog/read", "scan_100k_from_sqlite", 100_000)]
    rows += [("gateway/fanout", f"serialize_once_send_to/{n}", n) for n in (10, 100, 1000)]
    found = 0
    for group, bench, elements in rows:
        ns = criterion(group, bench)
        if ns is None:
            continue
        found += 1
        rate = f"{elements / (ns / 1e9):,.0f} /s" if elements else ""
        print(f"| {group}/{bench} | {fmt_ns(ns)} | {rate} |")
    if not found:
        print("| not run in this run (`TICKCAST_BENCH_SKIP_MICRO=1` and no earlier results in target/criterion) | | |")
    print()

print("## End to end: `tickcast up` + `tickcast bots`, 10 Hz ticks, embedded log\n")
print(f"`tickcast up --saturation-lag-ms 0 --max-players 0` (every player admitted: this table measures capacity) and")
print(f"`tickcast bots --sessions S --players-per-session P --duration {duration} --tick-ms 100 --server-pid PID --json`\n")
print("| players | kicked | missing | dup | out of order | live p50 ms | live p99 ms | live p99.9 ms | live max ms | history ticks | server-side p99 ms | gateway lag p99 / max ms | not judged | bots lag p99 / max ms | server µs/msg | server CPU | bots µs/msg | server RSS/player |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for load in loads:
    path = os.path.join(out, f"bots-{load}.json")
    try:
        r = json.load(open(path))
    except (OSError, ValueError):
        print(f"| {load} | run failed | | | | | | | | | | | | | | | | |")
        continue
    s, l = r.get("server") or {}, r["latenessMs"]
    sl = r.get("serverLatenessMs") or {}
    gl, bl = r.get("serverLagMs") or {}, r.get("botsLagMs") or {}
    lag = lambda d: f"{d['p99']:.0f} / {d['max']:.0f}" if d else "—"
    print(f"| {r['players']:,} ({load}) | {r['kicks']} | {r['missingSteps']} | {r['duplicateSteps']} | {r['outOfOrderSteps']} | "
          f"{l['p50']:.2f} | {l['p99']:.2f} | {l['p999']:.2f} | {l['max']:.2f} | {r.get('backlogTicks', 0):,} | {sl.get('p99', 0):.0f} | "
          f"{lag(gl)} | {r.get('samplesNotJudged', 0)} | {lag(bl)} | "
          f"{s.get('cpuUsPerMessage', 0):.2f} | {s.get('cpuPercent', 0):.0f}% | {r['botsCpuUsPerMessage']:.2f} | "
          f"{s.get('rssPerPlayerKib', 0):.1f} KiB |")
print()
print("Lateness is receive time − scheduledAt (startAt + step·tickMs) for every live tick every player received: one")
print("scheduled at or after the player sent its join. Ticks scheduled before it are history a server may replay on join;")
print("they count as delivered (missing steps are judged on every step) and are listed apart (history ticks).")
print("server-side p99 is serverTimestamp − scheduledAt (when the gateway wrote the tick, ms resolution).")
print("Missing/dup/out-of-order count players that were not kicked; kicked players are listed apart.")
print("CPU per message is the process's CPU time over the measured window divided by the frames the bots received in it.")
print("Gateway lag is the server's own `tickcast_gateway_lag_ms` (how late its timers fire, how old its fan-out queue is; the")
print("worst per 50 ms, read twice a second); while it is over 50 ms the server judges nobody's latency, and \"not judged\" counts")
print("the RTT samples it set aside. Bots lag is how late the load client's own 50 ms timers fired: its share of any delay.")
print()
print("## Side by side: `tickcast up` and a naive broadcaster\n")
print("The same bots against `benches/naive` (axum WebSockets, a tokio broadcast channel per session, a task per player;")
print("no log, no engine, no tokens, no latency policy), in the same run. The ratio is tickcast's server CPU per delivered")
print("tick over the naive broadcaster's (below 1: tickcast costs less).\n")
print("| players | naive p50 / p99 ms | tickcast p50 / p99 ms | naive kicked / missing | tickcast kicked / missing | naive µs/tick | tickcast µs/tick | ratio | naive RSS/player | tickcast RSS/player |")
print("|---|---|---|---|---|---|---|---|---|---|")
for load in loads:
    try:
        t = json.load(open(os.path.join(out, f"bots-{load}.json")))
        n = json.load(open(os.path.join(out, f"naive-{load}.json")))
    except (OSError, ValueError):
        print(f"| {load} | run failed | | | | | | | | |")
        continue
    ts, ns = t.get("server") or {}, n.get("server") or {}
    tc, nc = ts.get("cpuUsPerMessage", 0), ns.get("cpuUsPerMessage", 0)
    ratio = f"{tc / nc:.2f}×" if nc else "—"
    print(f"| {t['players']:,} ({load}) | {n['latenessMs']['p50']:.1f} / {n['latenessMs']['p99']:.1f} | "
          f"{t['latenessMs']['p50']:.1f} / {t['latenessMs']['p99']:.1f} | {n['kicks']} / {n['missingSteps']} | "
          f"{t['kicks']} / {t['missingSteps']} | {nc:.2f} | {tc:.2f} | {ratio} | "
          f"{ns.get('rssPerPlayerKib', 0):.1f} KiB | {ts.get('rssPerPlayerKib', 0):.1f} KiB |")
def admission_row(label, arrival, r):
    l, gl, s_ = r["latenessMs"], r.get("serverLagMs") or {}, r.get("server") or {}
    lag = f"{gl['p99']:.0f} / {gl['max']:.0f}" if gl else "—"
    return (f"| {r['players']:,} ({label}) | {arrival} | {r.get('refused', 0):,} | {r['connected']:,} | {r['kicks']} | "
            f"{r['missingSteps']} | {l['p50']:.1f} | {l['p99']:.1f} | {l['p999']:.1f} | {l['max']:.1f} | "
            f"{r.get('backlogTicks', 0):,} | {lag} | {s_.get('cpuUsPerMessage', 0):.2f} | {s_.get('cpuPercent', 0):.0f}% |")

ADMISSION_HEADER = ("| offered | arrival | refused | playing | kicked | missing | live p50 ms | live p99 ms | live p99.9 ms | live max ms | history ticks | gateway lag p99 / max ms | server µs/msg | server CPU |\n"
                    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")

if admitted:
    print()
    print("## A load the machine carries, admission on\n")
    print(f"`tickcast up` as it ships (admission on: `--max-players auto`, `--saturation-lag-ms 5`) and")
    print(f"`tickcast bots --sessions S --players-per-session P --duration {duration} --tick-ms 100 --server-pid PID --json`:")
    print("every player offered must be admitted.\n")
    print(ADMISSION_HEADER)
    try:
        print(admission_row(admitted, "together", json.load(open(os.path.join(out, f"admitted-{admitted}.json")))))
    except (OSError, ValueError):
        print(f"| {admitted} | together | run failed | | | | | | | | | | | |")

if overload:
    print()
    print("## Graceful overload: admission control\n")
    print(f"`tickcast bots --sessions S --players-per-session P --duration {overload_duration} --staggered --connect-rate 500`:")
    print("games arrive one by one, each starting its 3 s countdown when created, until the offered players are in.")
    print(f"`tickcast bots … --duration {overload_duration} --burst`: every game is created back to back as fast as the edge")
    print("answers, each starting its 3 s countdown when created, then every player connects at once (256 handshakes in flight).")
    print("Each game is measured for the duration from its own start. `tickcast up` as it ships (admission on: players counted")
    print("against the capacity it learns, `--max-players auto`, and its own lag over 5 ms for 250 ms) and with")
    print("`--saturation-lag-ms 0 --max-players 0` (admitting all).\n")
    print(ADMISSION_HEADER.replace("| arrival |", "| arrival, admission |", 1))
    for arrival in ("staggered", "burst"):
        for admission in ("on", "off"):
            try:
                r = json.load(open(os.path.join(out, f"{arrival}-{admission}-{overload}.json")))
            except (OSError, ValueError):
                print(f"| {overload} | {arrival}, {admission} | run failed | | | | | | | | | | | |")
                continue
            print(admission_row(overload, f"{arrival}, {admission}", r))

if paced:
    print()
    print("## Adaptive pace past capacity\n")
    print(f"`tickcast up --saturation-lag-ms 0 --max-players 0 --pace-load-limit-ms 5` (every player admitted, the")
    print(f"tick generator's load policy on) and `tickcast bots --sessions S --players-per-session P --duration {overload_duration}")
    print("--min-break-steps 10 --max-break-steps 20 [--max-tick-ms 400]`: the same load as fixed-pace games (100 ms a step)")
    print("and as adaptive ones (100–400 ms), which slow by ×1.5 a round while most of a round's ticks are emitted")
    print("more than 5 ms late. Lateness is against each tick's own (paced) `scheduledAt`.\n")
    print("| players | games | refused | kicked | missing | live p50 ms | live p99 ms | live p99.9 ms | pace at the end p50 / max ms | players slowed | server µs/msg | server CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for pace in ("fixed", "adaptive"):
        try:
            r = json.load(open(os.path.join(out, f"pace-{pace}-{paced}.json")))
        except (OSError, ValueError):
            print(f"| {paced} | {pace} | run failed | | | | | | | | | |")
            continue
        l, s_, p = r["latenessMs"], r.get("server") or {}, r.get("pace")
        reached = f"{p['finalP50Ms']} / {p['finalMaxMs']}" if p else f"{r['tickMs']} / {r['tickMs']}"
        slowed = f"{p['playersSlowed']:,}" if p else "—"
        print(f"| {r['players']:,} ({paced}) | {pace} | {r.get('refused', 0):,} | {r['kicks']} | {r['missingSteps']} | "
              f"{l['p50']:.1f} | {l['p99']:.1f} | {l['p999']:.1f} | {reached} | {slowed} | "
              f"{s_.get('cpuUsPerMessage', 0):.2f} | {s_.get('cpuPercent', 0):.0f}% |")

notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")
if os.path.exists(notes):
    print()
    print(open(notes).read().rstrip())
kafka = os.path.join(os.path.dirname(os.path.abspath(__file__)), "KAFKA.md")
if os.path.exists(kafka):
    print()
    print("<!-- kafka -->")
    print(open(kafka).read().rstrip())
    print("<!-- /kafka -->")
