#!/usr/bin/env bash
# The checker finds each job by its id whatever the id looks like: the
# gateway's own "job-<n>" ids (reached through n) run beside scripted ids
# that share n's place in that table (job-131073 and job-262145 with
# job-1), that look like the gateway's but are not (a leading zero, no
# digits, a letter after the digits, 19 digits) or that are of another
# form. Every job is one job to the checker: each ends SUCCEEDED, none is
# taken for a job the checker did not submit (a compensation), and no
# invariant breaks, on several seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat >"$tmp/ids.yaml" <<EOF
name: job-ids
description: scripted job ids beside the gateway's own
seed: 3
duration: 30s
drain: 2m
policy: $PWD/reference/policies/example.yaml
workers:
  - {id: w, count: 2, pool: job.tools, max_parallel: 4, service: {dist: fixed, value: 3s}}
workload:
  kind: poisson
  rate: 1
  max_jobs: 40
  mix:
    - {topic: job.tools, meta_labels: {mcp.action: read}}
  script:
    - {at: 0s, job_id: job-131073}
    - {at: 0s, job_id: job-262145}
    - {at: 1s, job_id: job-131074}
    - {at: 1s, job_id: job-01}
    - {at: 1s, job_id: job-0}
    - {at: 2s, job_id: job-x}
    - {at: 2s, job_id: job-2a}
    - {at: 2s, job_id: job-}
    - {at: 3s, job_id: job-999999999999999999}
    - {at: 3s, job_id: job-1000000000000000000}
    - {at: 3s, job_id: jobs-3}
invariants: [no-backward, one-terminal, dispatch-allowed, handler-once, liveness]
EOF

for seed in 1 2 3 4; do
  "$capsim" sim "$tmp/ids.yaml" --seed "$seed" --no-shrink >"$tmp/out" ||
    fail "seed $seed: $(cat "$tmp/out")"
  grep -q "invariants: all held" "$tmp/out" || fail "seed $seed: $(cat "$tmp/out")"
  line=$(grep '^jobs: ' "$tmp/out")
  submitted=$(echo "$line" | sed -n 's/^jobs: submitted \([0-9]*\) .*/\1/p')
  [ -n "$submitted" ] && [ "$submitted" -ge 20 ] || fail "seed $seed: too few jobs: $line"
  echo "$line" | grep -q "(+0 compensations); succeeded $submitted," ||
    fail "seed $seed: not every job is one succeeded job to the checker: $line"
  echo "$line" | grep -q "unfinished 0$" || fail "seed $seed: $line"
  grep -q "handler calls $submitted$" "$tmp/out" ||
    fail "seed $seed: handler calls differ from jobs: $(grep 'handler calls' "$tmp/out")"
done
echo "e2e_sim_jobids: ok"
