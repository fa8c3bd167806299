# Shell functions the benchmark scripts share; sourced, not run.

# wait_line FILE PREFIX: the rest of the first line of FILE that starts with PREFIX, waiting up
# to 20 s for a process to print it.
wait_line() {
  for _ in $(seq 400); do
    line=$(grep -m1 "^$2" "$1" || true)
    [ -n "$line" ] && { echo "${line#"$2"}"; return; }
    sleep 0.05
  done
  echo "no line '$2' in $1" >&2; exit 1
}

# include_section NAME FILE: FILE as BENCHMARKS.md's section between <!-- NAME --> and
# <!-- /NAME --> (appended the first time).
include_section() {
  python3 - "$1" "$2" <<'PY'
import re, sys
name, path = sys.argv[1], sys.argv[2]
bench = open("BENCHMARKS.md").read()
start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
section = start + "\n" + open(path).read().rstrip() + "\n" + end
if start in bench:
    bench = re.sub(re.escape(start) + ".*" + re.escape(end), lambda _: section, bench, flags=re.S)
else:
    bench = bench.rstrip() + "\n\n" + section + "\n"
open("BENCHMARKS.md", "w").write(bench)
PY
  echo "wrote $2 and its section of BENCHMARKS.md"
}
