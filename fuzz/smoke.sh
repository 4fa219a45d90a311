#!/usr/bin/env bash
# Runs every fuzz target under libFuzzer and AFL++ for FUZZ_SECONDS each,
# seeded with the golden fixtures (binary packets for fuzz_decode, their
# JSON forms for fuzz_json, the policies for fuzz_policy, the ready scenarios and the
# benchmark's for fuzz_scenario, the golden traces and the binary traces in
# fuzz/seeds/fuzz_trace for fuzz_trace, the adapter-v1 lines in
# fuzz/seeds/fuzz_adapter for fuzz_adapter, the upstream suites in ../shared/tck
# for fuzz_suite, the overrides in fuzz/seeds/fuzz_set for fuzz_set). Fails if either engine finds a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-15}
work=build-fuzz/smoke
rm -rf "$work"
mkdir -p "$work"
status=0

seeds_for() {
  local target=$1 dir=$2
  mkdir -p "$dir"
  case $target in
    fuzz_decode) find conformance/fixtures -name '*.bin' -size -512k -exec cp {} "$dir" \; ;;
    fuzz_json) cp conformance/fixtures/*.json "$dir" ;;
    fuzz_policy) cp reference/policies/*.yaml "$dir" ;;
    fuzz_scenario) cp sim/scenarios/*.yaml bench/*.yaml "$dir" ;;
    fuzz_trace)
      for c in conformance/cases/*/; do cp "$c/golden.jsonl" "$dir/$(basename "$c").jsonl"; done
      cp fuzz/seeds/fuzz_trace/* "$dir" ;;
    fuzz_adapter) cp fuzz/seeds/fuzz_adapter/* "$dir" ;;
    fuzz_set) cp fuzz/seeds/fuzz_set/* "$dir" ;;
    fuzz_suite) cp "${TCK_DIR:-../shared/tck}"/core-*.json "$dir" ;;
  esac
  # Every input that once broke a target runs again (one file per fixed bug).
  if [ -d "fuzz/regressions/$target" ]; then cp fuzz/regressions/"$target"/* "$dir"; fi
}

for t in "$@"; do
  seeds_for "$t" "$work/$t-seeds"
  mkdir -p "$work/$t-corpus"
  echo "== libFuzzer $t (${secs}s)"
  if ! build-fuzz/"$t" -max_total_time="$secs" -seed=1 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix="$work/$t-" "$work/$t-corpus" "$work/$t-seeds" >"$work/$t-libfuzzer.log" 2>&1; then
    echo "FAIL libFuzzer $t:"; tail -n 30 "$work/$t-libfuzzer.log"; status=1
  else
    grep -E 'stat::number_of_executed_units|Done' "$work/$t-libfuzzer.log" | tail -n 2
  fi
  echo "== AFL++ $t (${secs}s)"
  AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 \
    AFL_SKIP_BIN_CHECK=0 AFL_QUIET=1 \
    timeout $((secs + 60)) afl-fuzz -i "$work/$t-seeds" -o "$work/$t-afl" -V "$secs" -- build-afl/"$t" \
      >"$work/$t-afl.log" 2>&1 || true
  stats="$work/$t-afl/default/fuzzer_stats"
  if [ ! -f "$stats" ]; then
    echo "FAIL AFL++ $t did not run:"; tail -n 30 "$work/$t-afl.log"; status=1
  else
    crashes=$(find "$work/$t-afl/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
    execs=$(sed -n 's/^execs_done *: *//p' "$stats")
    echo "AFL++ $t: $execs executions, $crashes crashes"
    [ "$crashes" -eq 0 ] || { echo "FAIL AFL++ $t found crashes in $work/$t-afl/default/crashes"; status=1; }
  fi
done
exit $status
