#!/usr/bin/env bash
# The injected-bug catalogue: every bug `capsim sim --list-bugs` knows is
# caught. For each bug the table below names where: a ready scenario, the
# seed range to run it over and the invariant that breaks; or, for a bug
# the simulator cannot exercise, the TCK suite whose case kills it, and
# why not the simulator. The list is read from the binary, so a new bug
# without a row fails this test.
#
# A simulator row: `capsim sim SCENARIO --seeds A..B --bug NAME` must report
# a violation of the invariant, write the shrunk scenario, and that file
# must reproduce the same violation on its own (`capsim sim FILE --seed N
# --bug NAME`) and hold every invariant without the bug.
# A TCK row: the mutant adapter must fail a case of the suite (as in
# tests/e2e_tck.sh, which must still list it), and the bug must still have
# no effect in the simulator (every ready scenario holds with it on two
# seeds); when it starts to, the row belongs in the simulator part.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
tck=../shared/tck
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

#   bug                    scenario (sim/scenarios/)   seeds  invariant
sim_table="
dispatch-on-throttle       throttle-storm.yaml         1..3   dispatch-allowed
handler-twice              duplicates-replay.yaml      1..3   handler-once
accept-stale-attempt       fencing.yaml                1..3   handler-once
retry-fatal                retryable-vs-fatal.yaml     1..3   one-terminal
lose-journal-tail          scheduler-restart.yaml      1..3   restart
rollback-oldest-first      retryable-vs-fatal.yaml     1..3   compensation
accept-conflict            duplicates-replay.yaml      1..3   conflict-refused
forget-replay-store        scheduler-restart.yaml      1..3   conflict-refused
checkpoint-from-heartbeat  checkpoint-resume.yaml      1..3   checkpoint
"
#   bug               role           suite (upstream kit)    profile  why not the simulator
tck_table="
accept-backward   worker         core-lifecycle.json     core     the reference never attempts a backward move (the scheduler only moves jobs forward, the worker's record only from RUNNING to its result), so the switched table has nothing to accept; the kit feeds a worker a backward transition directly
accept-malformed  worker         core-malformed.json     core     the switch lives in the adapter's packet intake; in the simulator every delivery is decoded by the bus's strict decoder before an actor sees it, and the reference components never take bytes
lowest-version    control-plane  core-negotiation.json   core     the simulated workers do not send a Handshake (they announce themselves by heartbeat), so no version is ever negotiated in a run
"

bugs=$("$capsim" sim --list-bugs | awk '{print $1}')
[ -n "$bugs" ] || fail "capsim sim --list-bugs printed nothing"
for bug in $bugs; do
  n=$( (echo "$sim_table"; echo "$tck_table") | awk -v b="$bug" '$1 == b' | wc -l)
  [ "$n" -eq 1 ] || fail "bug $bug has $n rows in the catalogue (want exactly one: add the scenario that catches it)"
done
for row_bug in $( (echo "$sim_table"; echo "$tck_table") | awk 'NF {print $1}'); do
  echo "$bugs" | grep -qx -- "$row_bug" || fail "the catalogue names $row_bug, which capsim sim --list-bugs does not know"
done

# ---- caught by the simulator, shrunk, and the shrunk file reproduces ----
while read -r bug scn seeds inv; do
  [ -n "$bug" ] || continue
  out="$tmp/$bug.yaml"
  set +e
  "$capsim" sim "sim/scenarios/$scn" --seeds "$seeds" --jobs 2 --bug "$bug" --shrink-out "$out" >"$tmp/run.out" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 1 ] || fail "$bug: sim/scenarios/$scn --seeds $seeds exited $rc, expected 1 (a violation): $(tail -3 "$tmp/run.out")"
  grep -q "breaks $inv:" "$tmp/run.out" || fail "$bug: expected a $inv violation: $(head -3 "$tmp/run.out")"
  [ -s "$out" ] || fail "$bug: no shrunk scenario written to $out: $(tail -3 "$tmp/run.out")"
  grep -q "^# .*invariant $inv breaks with seed" "$out" || fail "$bug: the shrunk file's header does not name the invariant: $(head -3 "$out")"
  grep -q "^# Reproduce: .*--bug $bug" "$out" || fail "$bug: the shrunk file's header does not say how to reproduce"
  seed=$(sed -n 's/.*breaks with seed \([0-9]*\).*/\1/p' "$out" | head -1)
  [ -n "$seed" ] || fail "$bug: no seed in the shrunk file's header"
  set +e
  "$capsim" sim "$out" --seed "$seed" --bug "$bug" --no-shrink >"$tmp/repro.out" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 1 ] && grep -q "^VIOLATION $inv:" "$tmp/repro.out" ||
    fail "$bug: the shrunk scenario does not reproduce the $inv violation (exit $rc): $(tail -3 "$tmp/repro.out")"
  "$capsim" sim "$out" --seed "$seed" --no-shrink >"$tmp/clean.out" 2>&1 ||
    fail "$bug: the shrunk scenario breaks an invariant without the bug: $(grep VIOLATION "$tmp/clean.out")"
  # It is smaller than what it came from.
  orig_jobs=$(awk '$1 == "max_jobs:" {print $2}' "sim/scenarios/$scn")
  new_jobs=$(awk '$1 == "max_jobs:" {print $2}' "$out")
  [ -z "$orig_jobs" ] || [ "$new_jobs" -le "$orig_jobs" ] || fail "$bug: the shrunk scenario submits more jobs ($new_jobs > $orig_jobs)"
  echo "caught: $bug by $scn ($inv), shrunk to max_jobs $new_jobs"
done <<<"$sim_table"

# ---- caught by the TCK instead ----
while read -r bug role suite profile why; do
  [ -n "$bug" ] || continue
  [ -n "$why" ] || fail "$bug: the table gives no reason why the simulator cannot catch it"
  grep -Eq "^kill_mutant $bug $role $suite $profile\$" tests/e2e_tck.sh ||
    fail "$bug: tests/e2e_tck.sh no longer kills it with $role $suite $profile (the mapping is stale)"
  set +e
  "$capsim" tck run --suite "$tck/$suite" --adapter "m=$capsim|adapter|--role|$role|--mutant|$bug" \
    --profile "$profile" --json "$tmp/mutant.json" >"$tmp/tck.out" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 1 ] && grep -q '"status": "FAIL"' "$tmp/mutant.json" ||
    fail "$bug: no case of $suite fails against the mutant (exit $rc)"
  for s in sim/scenarios/*.yaml; do
    "$capsim" sim "$s" --seeds 1..2 --jobs 2 --bug "$bug" --no-shrink >"$tmp/nosim.out" 2>&1 ||
      fail "$bug: $s now catches it ($(head -1 "$tmp/nosim.out")): move it to the simulator table"
  done
  echo "caught: $bug by the TCK ($suite, $role); not reachable in the simulator"
done <<<"$tck_table"
echo "e2e_sim_bugs: ok"
