#!/usr/bin/env bash
# A job's history (capsim sim --history JOB): the story of one job, step by
# step, in time order; the run is otherwise the same (same summary, same
# trace hash); a violation is followed by the story of its job; a job the
# run never saw is said to be absent; --history with --seeds or an empty
# id is a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
. tests/lib.sh

# The story's lines are in time order (the first column, "S.UUUUUUs").
in_time_order() {
  awk '$3 ~ /^(publish|deliver|drop|refuse|journal|handler|approver|timeline|violation)$/ {
         t = substr($1, 1, length($1) - 1) + 0
         if (t < last) { print "out of order: " $0; bad = 1 }
         last = t }
       END { exit bad }' "$1" || fail "$1: story lines out of time order"
}
hash_of() { sed -n 's/^trace: .*sha256 //p' "$1"; }

dup=sim/scenarios/duplicates-replay.yaml

# The injected bug: the story shows the duplicate copy of the dispatch
# reaching w-2 after the job succeeded, and the handler running again.
expect 1 "$capsim" sim "$dup" --bug handler-twice --no-shrink --history job-12
cp "$tmp/out" "$tmp/bug.out"
contains "$tmp/bug.out" "history of job-12 (seed 3):"
contains "$tmp/bug.out" "scheduler    journal   SUCCEEDED after result"
contains "$tmp/bug.out" "w-2          deliver   #40 on worker.w-2.jobs (a duplicate copy)"
contains "$tmp/bug.out" "checker      violation handler-once (job job-12)"
[ "$(grep -c "w-2          handler   runs dispatch" "$tmp/bug.out")" -eq 2 ] ||
  fail "the handler should run twice in the story: $(cat "$tmp/bug.out")"
in_time_order "$tmp/bug.out"
lacks "$tmp/bug.out" "the job of the violation" # asked for already: not told twice

# Without --history, the violation is followed by its job's story.
expect 1 "$capsim" sim "$dup" --bug handler-twice --no-shrink
contains "$tmp/out" "VIOLATION handler-once: job job-12"
contains "$tmp/out" "history of job-12, the job of the violation (the same run again with --history job-12):"
contains "$tmp/out" "w-2          deliver   #40 on worker.w-2.jobs (a duplicate copy)"
[ "$(hash_of "$tmp/out")" = "$(hash_of "$tmp/bug.out")" ] || fail "the story changed the run's hash"

# capsim swarm --seed N tells the story of its violation's job too.
expect 1 "$capsim" swarm --seed 14 --bug checkpoint-from-heartbeat --no-shrink --out "$tmp/swarm"
contains "$tmp/out" ", the job of the violation (the same run again with --history "
contains "$tmp/out" "checker      violation checkpoint (job "
in_time_order "$tmp/out"

# A story only reads: every ready scenario gives the same report with one.
for s in sim/scenarios/*.yaml; do
  expect 0 "$capsim" sim "$s"
  sed -n '/^scenario:/,$p' "$tmp/out" >"$tmp/plain"
  expect 0 "$capsim" sim "$s" --history job-5
  sed -n '/^scenario:/,$p' "$tmp/out" >"$tmp/told"
  cmp -s "$tmp/plain" "$tmp/told" || fail "$s: --history changed the report: $(diff "$tmp/plain" "$tmp/told" | head -5)"
  contains "$tmp/out" "publish   #"
  in_time_order "$tmp/out"
done

# A submit that reached the scheduler while it was down is held, then
# delivered at the restart, before the job's first journal record.
expect 0 "$capsim" sim sim/scenarios/scheduler-restart.yaml --history job-60
grep -A3 "held, the scheduler is down" "$tmp/out" >"$tmp/held"
contains "$tmp/held" "operator     timeline  restart scheduler"
contains "$tmp/held" "scheduler    deliver   #267 on sys.job.submit"
contains "$tmp/held" "scheduler    journal   PENDING after submit"

# Copies cut by a partition are told as drops.
expect 0 "$capsim" sim sim/scenarios/partition.yaml --history job-20
contains "$tmp/out" "bus          drop      "
contains "$tmp/out" "to scheduler: partition"

# A retry resumes from a checkpoint its job reported before (checkpoint-resume):
# the memo it resumed from went out in an earlier progress of the job.
expect 0 "$capsim" sim sim/scenarios/checkpoint-resume.yaml --history job-2
memo=$(sed -n 's/.* handler   runs dispatch [0-9a-f]* attempt 2, resumed from \(checkpoint [^:]*\): .*/\1/p' "$tmp/out")
[ -n "$memo" ] || fail "job-2's second attempt did not resume: $(grep ' handler ' "$tmp/out")"
first_resume=$(grep -n "resumed from" "$tmp/out" | head -1 | cut -d: -f1)
reported=$(grep -n "progress JOB_STATUS_RUNNING [0-9]*% (\"$memo\")" "$tmp/out" | head -1 | cut -d: -f1)
[ -n "$reported" ] && [ "$reported" -lt "$first_resume" ] || fail "job-2 resumed from \"$memo\", never reported before"

# A job the run never saw.
expect 0 "$capsim" sim sim/scenarios/partition.yaml --history no-such-job
contains "$tmp/out" "(no step of this run concerns no-such-job"

# Usage errors.
expect 2 "$capsim" sim "$dup" --history job-1 --seeds 1..3
contains "$tmp/err" "--history tells one run"
expect 2 "$capsim" sim "$dup" --history ""
expect 2 "$capsim" sim "$dup" --history "$(printf 'j%.0s' $(seq 1 300))"

# A line the same as the one before but for its time (a job tried again
# by its wake timer while it waits) is counted and told once.
expect 0 "$capsim" sim sim/scenarios/breaker.yaml --history job-47
contains "$tmp/out" "story        again     the line above, 1 more time (the last at this time)"
awk '/^ *[0-9]+\.[0-9]+s  / { body = substr($0, index($0, "s  ") + 3)
       if (body == last) { print "repeated: " $0; bad = 1 }
       last = body }
     END { exit bad }' "$tmp/out" || fail "a story line repeats the one before it"
in_time_order "$tmp/out"

echo "e2e_sim_history: $checks checks passed"
