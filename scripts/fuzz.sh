#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time, from the committed corpus, and prints
# each one's executions. Part of scripts/test.sh; alone: scripts/fuzz.sh [SECONDS per target].
#
# cargo-fuzz is installed once into ~/.cache/tickcast. It builds with nightly-only flags (-Z,
# sanitizer coverage): the machine's one toolchain is stable, so RUSTC_BOOTSTRAP=1 lets it take
# them. Targets run without a sanitizer: tickcast forbids `unsafe`, so what a fuzzer can find is
# a panic, an overflow (debug assertions are on), a hang or unbounded memory — all of which
# libFuzzer reports by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-${TICKCAST_FUZZ_SECONDS:-30}}"
version=0.13.1
root="$HOME/.cache/tickcast/cargo-fuzz-$version"
if [ ! -x "$root/bin/cargo-fuzz" ]; then
  echo "installing cargo-fuzz $version into $root"
  cargo install cargo-fuzz --version "$version" --locked --root "$root"
fi
export PATH="$root/bin:$PATH" RUSTC_BOOTSTRAP=1

# New inputs go to target/fuzz-corpus (the first corpus directory); the committed corpus in
# fuzz/corpus is read, not written.
summary=()
for target in $(cd fuzz && cargo fuzz list); do
  mkdir -p "target/fuzz-corpus/$target"
  log="target/fuzz-$target.log"
  if ! (cd fuzz && cargo fuzz run --sanitizer none "$target" "../target/fuzz-corpus/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1) > "$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target failed: its input is in fuzz/artifacts/$target/ (see $log)" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  summary+=("$target: $runs executions in ${seconds} s")
done
printf 'fuzzed %s\n' "${summary[@]}"
