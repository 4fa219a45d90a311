#!/usr/bin/env bash
# The simulator end to end: same seed, same trace hash (and the same bytes
# in both trace files across runs); another seed, another run; latency
# over every finished job of a long run; a scenario's
# invariants catch an injected bug and the violation is shrunk to a command
# that reproduces it on its own; bad scenarios are refused with exit 2.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

scn=sim/scenarios/worker-timeout-redispatch.yaml
"$capsim" sim "$scn" --seed 3 --trace "$tmp/a.bin" --jsonl "$tmp/a.jsonl" >"$tmp/a.out"
"$capsim" sim "$scn" --seed 3 --trace "$tmp/b.bin" --jsonl "$tmp/b.jsonl" >"$tmp/b.out"
cmp -s "$tmp/a.out" "$tmp/b.out" || fail "same seed, different report"
cmp -s "$tmp/a.bin" "$tmp/b.bin" || fail "same seed, different binary trace"
cmp -s "$tmp/a.jsonl" "$tmp/b.jsonl" || fail "same seed, different JSONL trace"
grep -q "^seed: 3$" "$tmp/a.out" || fail "the report does not print the seed"
grep -q "invariants: all held" "$tmp/a.out" || fail "the reference broke an invariant: $(cat "$tmp/a.out")"
hash_a=$(sed -n 's/.*sha256 //p' "$tmp/a.out")
[ "$(sha256sum <"$tmp/a.bin" | cut -d' ' -f1)" = "$hash_a" ] || fail "the printed hash is not the binary trace's SHA-256"
"$capsim" sim "$scn" --seed 4 >"$tmp/c.out"
[ "$(sed -n 's/.*sha256 //p' "$tmp/c.out")" != "$hash_a" ] || fail "seeds 3 and 4 gave the same trace"

# Every shipped scenario holds its invariants on its own seed.
for s in sim/scenarios/*.yaml; do
  "$capsim" sim "$s" --no-shrink >"$tmp/s.out" || fail "$s: $(tail -3 "$tmp/s.out")"
done

# Latency percentiles cover every job, past the exact-sample range too:
# 220 s of the bench workload finishes about 110 000 jobs (> 65 536 exact
# samples, and more than any sample cap of 100 000).
"$capsim" sim bench/sim-large.yaml --seed 1 --duration 220s >"$tmp/l.out"
done_jobs=$(sed -n 's/.*succeeded \([0-9]*\),.*/\1/p' "$tmp/l.out")
lat_n=$(sed -n 's/^latency job.tools: n=\([0-9]*\) .*/\1/p' "$tmp/l.out")
[ -n "$done_jobs" ] && [ "$done_jobs" -gt 100000 ] || fail "the long run finished too few jobs: $(cat "$tmp/l.out")"
[ "$lat_n" = "$done_jobs" ] || fail "latency counted $lat_n of $done_jobs finished jobs"

# Many seeds, one line of summary when not on a terminal.
"$capsim" sim "$scn" --seeds 1..6 --jobs 2 >"$tmp/m.out" || fail "seeds 1..6: $(cat "$tmp/m.out")"
grep -q "6 seeds (1..6): every invariant held" "$tmp/m.out" || fail "many-seed summary: $(cat "$tmp/m.out")"

# An injected bug is caught, shrunk, and the shrunk command reproduces it.
set +e
"$capsim" sim sim/scenarios/throttle-storm.yaml --bug dispatch-on-throttle --shrink-out "$tmp/shrunk.yaml" >"$tmp/bug.out"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "dispatch-on-throttle not caught (exit $rc): $(tail -3 "$tmp/bug.out")"
grep -q "VIOLATION dispatch-allowed" "$tmp/bug.out" || fail "wrong invariant: $(cat "$tmp/bug.out")"
repro=$(grep -A1 "reproduce with:" "$tmp/bug.out" | tail -1 | sed 's/^ *capsim //')
[ -n "$repro" ] || fail "no shrunk reproduction printed"
set +e
# shellcheck disable=SC2086
"$capsim" $repro >"$tmp/repro.out"
rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q "VIOLATION dispatch-allowed" "$tmp/repro.out" || fail "the shrunk reproduction does not fail: $repro"

# Bad input: exit 2 with file:line.
printf 'name: x\nduration: 10s\npolicy: ../../reference/policies/example.yaml\nworkload: {kind: poisson, rate: 1, mix: [{topic: job.a}]}\nfaults:\n  - {at: 1s, crash: nobody}\n' >"$tmp/bad.yaml"
cp reference/policies/example.yaml "$tmp/../example-$$.yaml" 2>/dev/null || true
set +e
"$capsim" sim "$tmp/bad.yaml" 2>"$tmp/bad.err"
rc=$?
set -e
rm -f "$tmp/../example-$$.yaml"
[ "$rc" -eq 2 ] || fail "a bad scenario exited $rc"
grep -q "bad.yaml:" "$tmp/bad.err" || fail "the error does not name the file: $(cat "$tmp/bad.err")"
# A loop of steps that take no time (zero latency, service and think time)
# never moves the clock on: the run stops with exit 2 and says so, named
# once even when many seeds' processes hit it.
cat >"$tmp/zero.yaml" <<EOF
name: zero-time
duration: 10s
policy: $PWD/reference/policies/example.yaml
max_events_per_instant: 5000
bus: {latency: 0}
workers: [{id: w, pool: job.tools, service: 0}]
workload: {kind: closed, concurrency: 2, mix: [{topic: job.tools, meta_labels: {mcp.action: read}}]}
EOF
for args in "--seed 1" "--seeds 1..6 --jobs 3"; do
  set +e
  # shellcheck disable=SC2086
  timeout 60 "$capsim" sim "$tmp/zero.yaml" $args >"$tmp/zero.out" 2>"$tmp/zero.err"
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "a zero-time loop ($args) exited $rc: $(cat "$tmp/zero.err")"
  grep -q "virtual time stalled: max_events_per_instant: stood still at 0.000000s: 5000 events at one instant" "$tmp/zero.err" ||
    fail "the stall is not explained ($args): $(cat "$tmp/zero.err")"
  [ "$(grep -c "stood still" "$tmp/zero.err")" -eq 1 ] || fail "the stall is reported more than once ($args): $(cat "$tmp/zero.err")"
done
grep -q "seed 1 could not be run: " "$tmp/zero.err" || fail "--seeds does not name the seed: $(cat "$tmp/zero.err")"
# 20 000 jobs wait for a worker that never comes and all give up at the same
# instant: each one's end drains the waiting queue from inside the drain
# that ended it. The drains nest only so deep (the scheduler's stack once
# overflowed here); every job ends FAILED and the run holds.
cat >"$tmp/giveup.yaml" <<EOF
name: give-up-at-once
duration: 2s
policy: $PWD/reference/policies/example.yaml
scheduler: {no_worker_wait: 1s}
workers: [{id: w, pool: job.other}]
workload: {kind: burst, burst: {size: 20000, every: 10s}, mix: [{topic: job.tools, meta_labels: {mcp.action: read}}]}
EOF
timeout 120 "$capsim" sim "$tmp/giveup.yaml" --seed 1 >"$tmp/giveup.out" 2>&1 || fail "20 000 jobs giving up at once: $(tail -3 "$tmp/giveup.out")"
grep -q "submitted 20000 (+0 compensations); succeeded 0, failed 20000," "$tmp/giveup.out" || fail "the jobs did not all give up: $(cat "$tmp/giveup.out")"
echo "e2e_sim: ok"
