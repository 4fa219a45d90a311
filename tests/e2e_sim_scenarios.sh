#!/usr/bin/env bash
# Every ready scenario in sim/scenarios/: it holds every invariant on a few
# seeds, its trace hash is the same across two runs of one seed and the same
# as that seed's hash inside a --seeds run, and its summary shows what its
# header says it demonstrates. Also: --seeds draws a progress bar on a
# terminal (under `script`, when it is installed) and a single summary line
# otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The number after LABEL in the summary ("rollbacks 9", "failed 8", ...).
num() {
  local v
  v=$(grep -oE "(^|, |; |: )$1 [0-9]+" "$2" | head -1 | awk '{print $NF}')
  [ -n "$v" ] || fail "$2: no \"$1 N\" in the summary"
  echo "$v"
}
positive() { # FILE SCENARIO LABEL...
  local f=$1 s=$2
  shift 2
  for label in "$@"; do
    [ "$(num "$label" "$f")" -gt 0 ] || fail "$s: expected $label > 0: $(sed -n '5,6p' "$f")"
  done
}
zero() {
  local f=$1 s=$2
  shift 2
  for label in "$@"; do
    [ "$(num "$label" "$f")" -eq 0 ] || fail "$s: expected $label 0: $(sed -n '5,6p' "$f")"
  done
}

n=0
for path in sim/scenarios/*.yaml; do
  s=$(basename "$path" .yaml)
  "$capsim" sim "$path" --seeds 1..3 --jobs 2 --each --no-shrink >"$tmp/many.out" 2>&1 ||
    fail "$s: an invariant broke on seeds 1..3: $(grep -v ': held' "$tmp/many.out" | head -3)"
  grep -q "^3 seeds (1..3): every invariant held$" "$tmp/many.out" || fail "$s: summary line: $(tail -1 "$tmp/many.out")"
  [ "$(grep -c ': held, trace sha256 ' "$tmp/many.out")" -eq 3 ] || fail "$s: --each did not print 3 seed lines"
  "$capsim" sim "$path" --seed 2 >"$tmp/a.out"
  "$capsim" sim "$path" --seed 2 >"$tmp/b.out"
  cmp -s "$tmp/a.out" "$tmp/b.out" || fail "$s: seed 2 gave two different reports"
  grep -q "invariants: all held" "$tmp/a.out" || fail "$s: seed 2: $(grep VIOLATION "$tmp/a.out")"
  hash=$(sed -n 's/^trace: .*sha256 //p' "$tmp/a.out")
  [ ${#hash} -eq 64 ] || fail "$s: no trace hash"
  grep -q "^seed 2: held, trace sha256 $hash\$" "$tmp/many.out" ||
    fail "$s: seed 2 hashes differently alone ($hash) and in --seeds: $(grep '^seed 2:' "$tmp/many.out")"
  zero "$tmp/a.out" "$s" unfinished
  f=$tmp/a.out
  case $s in
  retryable-vs-fatal)
    positive "$f" "$s" retries failed failed_fatal rollbacks succeeded
    grep -qE "\(\+[1-9][0-9]* compensations\)" "$f" || fail "$s: no compensation ran" ;;
  duplicates-replay)
    positive "$f" "$s" "duplicates answered" duplicated replayed "signed submits" \
      "signed replays answered as duplicates" "refused as expired" "conflicting twins sent"
    # every twin refused (a bus duplicate of one is refused too)
    [ "$(num "refused as conflicting" "$f")" -ge "$(num "conflicting twins sent" "$f")" ] ||
      fail "$s: a twin was not refused: $(grep '^signing:' "$f")" ;;
  breaker)
    positive "$f" "$s" "breaker openings" retries succeeded
    zero "$f" "$s" failed timeout ;;
  approval-flow)
    positive "$f" "$s" approvals rejections "stale approvals" denied
    zero "$f" "$s" parked ;;
  scheduler-restart)
    positive "$f" "$s" succeeded "conflicting twins sent"
    # twins sent after a restart, each refused: the guard's entries were restored
    [ "$(num "refused as conflicting" "$f")" -eq "$(num "conflicting twins sent" "$f")" ] ||
      fail "$s: twins sent and refused differ: $(grep '^signing:' "$f")" ;;
  partition) positive "$f" "$s" timeout retries succeeded ;;
  example-policy-mixed)
    positive "$f" "$s" denied approvals succeeded
    grep -qE "^latency job.batch.nightly: n=[1-9]" "$f" || fail "$s: no batch job finished" ;;
  fencing) positive "$f" "$s" retries succeeded ;;
  checkpoint-resume)
    # checkpoints reported, and retries that resumed from one
    positive "$f" "$s" reported "resumed from" retries succeeded
    zero "$f" "$s" failed timeout ;;
  missed-heartbeats)
    # taken for lost while alive: its attempts re-dispatched, its own late
    # results for them ignored as stale
    positive "$f" "$s" missed late retries "stale ignored" succeeded
    zero "$f" "$s" failed timeout ;;
  throttle-storm) positive "$f" "$s" succeeded ;;
  worker-timeout-redispatch) positive "$f" "$s" succeeded ;;
  *) fail "$s: a ready scenario this test does not know: add what its summary must show" ;;
  esac
  n=$((n + 1))
done
[ "$n" -ge 10 ] || fail "only $n ready scenarios"

# A progress bar on a terminal, one line otherwise.
"$capsim" sim sim/scenarios/breaker.yaml --seeds 1..4 --jobs 2 >"$tmp/plain.out" 2>"$tmp/plain.err"
[ "$(wc -l <"$tmp/plain.out")" -eq 1 ] && [ ! -s "$tmp/plain.err" ] ||
  fail "not on a terminal: expected one line, got: $(cat "$tmp/plain.out" "$tmp/plain.err")"
if command -v script >/dev/null 2>&1; then
  script -qc "$capsim sim sim/scenarios/breaker.yaml --seeds 1..4 --jobs 2" /dev/null >"$tmp/tty.out" 2>&1 || true
  grep -q "########################################] 4/4" "$tmp/tty.out" ||
    fail "no full progress bar on a terminal: $(od -c "$tmp/tty.out" | head -5)"
  grep -q "4 seeds (1..4): every invariant held" "$tmp/tty.out" || fail "no summary on a terminal"
else
  echo "e2e_sim_scenarios: script(1) not installed, progress bar not checked"
fi
echo "e2e_sim_scenarios: ok ($n scenarios)"
