#!/usr/bin/env bash
# capsim check-trace end to end: every trace the reference produces in the
# simulator is clean (binary and JSONL alike); traces produced with an
# injected bug (retry-fatal, handler-twice, accept-stale-attempt) are not,
# and name the rule; signatures (a tampered signed packet, unsigned packets
# when signatures are required); undecodable packets; usage and unreadable
# files exit 2.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
repo=$(pwd)

# check FILE EXPECTED_EXIT [options...]: runs check-trace, output in $tmp/ct.out
check() {
  local f=$1 want=$2
  shift 2
  set +e
  "$capsim" check-trace "$f" "$@" >"$tmp/ct.out" 2>"$tmp/ct.err"
  local rc=$?
  set -e
  [ "$rc" -eq "$want" ] || fail "check-trace $f $* exited $rc, expected $want: $(head -5 "$tmp/ct.out") $(cat "$tmp/ct.err")"
}

# 1. The reference is clean on every shipped scenario, three seeds each,
#    in both encodings.
for s in sim/scenarios/*.yaml; do
  for seed in 1 2 3; do
    "$capsim" sim "$s" --seed "$seed" --no-shrink --trace "$tmp/r.bin" --jsonl "$tmp/r.jsonl" >/dev/null 2>&1 || true
    check "$tmp/r.bin" 0
    grep -q ": 0 violations$" "$tmp/ct.out" || fail "$s seed $seed: $(cat "$tmp/ct.out")"
    check "$tmp/r.jsonl" 0 --format jsonl
  done
done

# 2. Injected bugs. The scenarios check no invariant, so that the run goes on
#    past the bug and its traffic reaches the trace.
policy="$repo/reference/policies/example.yaml"
cat >"$tmp/fatal.yaml" <<EOF
name: fatal-retried
duration: 60s
drain: 5m
policy: $policy
scheduler: {max_retries: 5}
workers:
  - {id: w, pool: job.tools, max_parallel: 4, service: 200ms, p_retryable: 0.3, p_fatal: 0.3}
workload:
  kind: poisson
  rate: 0.5
  max_jobs: 20
  mix:
    - {topic: job.tools, meta_labels: {mcp.action: read}}
invariants: []
EOF
# Redelivered dispatches arriving late: a worker must run each (dispatch,
# attempt) once, whenever its copies come.
cat >"$tmp/redeliver.yaml" <<EOF
name: late-redeliveries
duration: 60s
drain: 5m
policy: $policy
scheduler: {max_retries: 5}
workers:
  - {id: w, pool: job.tools, max_parallel: 4, service: 200ms, p_retryable: 0.5, p_fatal: 0.2}
workload:
  kind: poisson
  rate: 0.5
  max_jobs: 20
  mix:
    - {topic: job.tools, meta_labels: {mcp.action: read}}
faults:
  - {at: 1s, duration: 50s, duplicate: {subject: "worker.>", p: 0.7}}
  - {at: 1s, duration: 50s, reorder: {subject: "worker.>", window: 6s}}
invariants: []
EOF
# Every dispatch delivered twice, the copies up to 5 s late, half the attempts
# retried (as sim/scenarios/fencing.yaml): the late copy of attempt N often
# reaches the worker while attempt N + 1 runs (19 seeds of 1..20 do).
cat >"$tmp/superseded.yaml" <<EOF
name: superseded-dispatches
duration: 60s
drain: 10m
policy: $policy
scheduler: {dispatch_timeout: 30s, running_timeout: 60s, no_worker_wait: 60s, max_retries: 10,
            breaker_threshold: 1000}
workers:
  - {id: w, pool: job.tools, max_parallel: 4, service: 100ms, p_retryable: 0.5}
workload:
  kind: poisson
  rate: 0.5
  max_jobs: 30
  mix:
    - {topic: job.tools, meta_labels: {mcp.action: read}}
faults:
  - {at: 0s, duplicate: {subject: "worker.*.jobs", p: 1}}
  - {at: 0s, reorder: {subject: "worker.*.jobs", window: 5s}}
invariants: []
EOF
expect_bug() { # scenario seed bug rule
  "$capsim" sim "$1" --seed "$2" --no-shrink --trace "$tmp/clean.bin" >/dev/null
  check "$tmp/clean.bin" 0
  "$capsim" sim "$1" --seed "$2" --no-shrink --bug "$3" --trace "$tmp/bug.bin" --jsonl "$tmp/bug.jsonl" >/dev/null
  check "$tmp/bug.bin" 1
  grep -q "\[$4\]" "$tmp/ct.out" || fail "--bug $3: no [$4] line: $(cat "$tmp/ct.out")"
  grep -Eq "^record [0-9]+ t=[0-9]+\.[0-9]{9}s [^ ]+ from [^ ]+ job=job-[0-9]+ \[$4\] .*; rule: .*cap-spec" "$tmp/ct.out" ||
    fail "--bug $3: line format: $(head -2 "$tmp/ct.out")"
  cp "$tmp/ct.out" "$tmp/bin.out"
  check "$tmp/bug.jsonl" 1
  cmp -s <(sed '$d' "$tmp/bin.out") <(sed '$d' "$tmp/ct.out") || fail "--bug $3: JSONL and binary traces judged differently"
}
expect_bug "$tmp/fatal.yaml" 1 retry-fatal state-backward
expect_bug "$tmp/redeliver.yaml" 1 handler-twice duplicate-side-effect
expect_bug "$tmp/superseded.yaml" 1 accept-stale-attempt stale-attempt

# --json: one document with the same violations.
check "$tmp/bug.bin" 1 --json
grep -q '"rule": "stale-attempt"' "$tmp/ct.out" || fail "--json: $(head -5 "$tmp/ct.out")"
grep -q '"clean": false' "$tmp/ct.out" || fail "--json: clean flag"
check "$tmp/clean.bin" 0 --json
grep -q '"clean": true' "$tmp/ct.out" || fail "--json clean: $(cat "$tmp/ct.out")"
grep -q '"violations": \[\]' "$tmp/ct.out" || fail "--json clean: violations not empty"

# 3. Signatures: a hand-written JSONL trace with the signed fixture packet,
#    a copy with one byte of its job id changed, and an unsigned packet.
fix=conformance/fixtures/buspacket_job_request.bin
cp "$fix" "$tmp/tampered.bin"
printf 'X' | dd of="$tmp/tampered.bin" bs=1 seek=52 conv=notrunc status=none
cmp -s "$fix" "$tmp/tampered.bin" && fail "tampering changed nothing"
"$capsim" decode "$tmp/tampered.bin" >/dev/null || fail "the tampered packet should still decode"
"$capsim" sim sim/scenarios/worker-timeout-redispatch.yaml --seed 1 --jsonl "$tmp/sim.jsonl" >/dev/null
unsigned=$(sed -n '3p' "$tmp/sim.jsonl" | sed 's/.*"bytes":"\([^"]*\)".*/\1/')
{
  echo '{"captrace":1}'
  echo "{\"time\":\"1\",\"kind\":\"publish\",\"subject\":\"sys.job.submit\",\"sender\":\"client-1\",\"bytes\":\"$(base64 -w0 "$fix")\"}"
  echo "{\"time\":\"2\",\"kind\":\"publish\",\"subject\":\"sys.job.submit\",\"sender\":\"client-1\",\"bytes\":\"$(base64 -w0 "$tmp/tampered.bin")\"}"
  echo "{\"time\":\"3\",\"kind\":\"publish\",\"subject\":\"sys.heartbeat\",\"sender\":\"w-1\",\"bytes\":\"$unsigned\"}"
} >"$tmp/sig.jsonl"
check "$tmp/sig.jsonl" 1 --pubkey conformance/fixtures/public_key.pem
[ "$(grep -c '\[bad-signature\]' "$tmp/ct.out")" -eq 1 ] || fail "bad-signature: $(cat "$tmp/ct.out")"
grep -q '^record 1 ' "$tmp/ct.out" || fail "the tampered packet is record 1: $(cat "$tmp/ct.out")"
grep -q '2 signatures checked' "$tmp/ct.out" || fail "signatures checked: $(tail -1 "$tmp/ct.out")"
check "$tmp/sig.jsonl" 1 --pubkey conformance/fixtures/public_key.pem --require-signatures
grep -q '^record 2 .*\[missing-signature\]' "$tmp/ct.out" || fail "missing-signature: $(cat "$tmp/ct.out")"
check "$tmp/sig.jsonl" 0 # no key: signatures are not judged

# 4. An undecodable packet.
{
  echo '{"captrace":1}'
  echo "{\"time\":\"1\",\"kind\":\"publish\",\"subject\":\"sys.job.result\",\"sender\":\"w-1\",\"bytes\":\"$(base64 -w0 conformance/fixtures/malformed/non-minimal-encoding.bin)\"}"
} >"$tmp/bad.jsonl"
check "$tmp/bad.jsonl" 1
grep -q '\[undecodable\].*ERROR_CODE_PROTOCOL_MALFORMED_PACKET' "$tmp/ct.out" || fail "undecodable: $(cat "$tmp/ct.out")"

# 4b. A trace cannot forge lines of the report: a job id holding a newline
#     and what looks like a violation line is printed escaped, on its line.
at='"createdAt":"1970-01-01T00:00:00Z","protocolVersion":1'
job='"jobId":"a\nrecord 9 t=0s sys.job.result from w job=x [forged]"'
{
  echo '{"captrace":1}'
  echo '{"time":"0","kind":"publish","subject":"sys.job.submit","sender":"gateway","packet":{"traceId":"t","senderId":"gateway",'"$at"',"jobRequest":{'"$job"',"topic":"job.x"}}}'
  echo '{"time":"1","kind":"publish","subject":"sys.job.result","sender":"w","packet":{"traceId":"t","senderId":"w",'"$at"',"jobResult":{'"$job"',"status":"JOB_STATUS_SUCCEEDED","workerId":"w"}}}'
  echo '{"time":"2","kind":"publish","subject":"sys.job.result","sender":"w\u001b[2J","packet":{"traceId":"t","senderId":"w",'"$at"',"jobResult":{'"$job"',"status":"JOB_STATUS_FAILED","workerId":"w"}}}'
} >"$tmp/forge.jsonl"
check "$tmp/forge.jsonl" 1
[ "$(wc -l <"$tmp/ct.out")" -eq 2 ] || fail "a forged job id split the report: $(cat "$tmp/ct.out")"
grep -qF 'from w\x1B[2J job=a\x0Arecord 9 t=0s sys.job.result from w job=x [forged] [one-terminal]' "$tmp/ct.out" ||
  fail "forged job id: $(cat "$tmp/ct.out")"
grep -q '\[forged\]$' "$tmp/ct.out" && fail "a forged violation line: $(cat "$tmp/ct.out")"

# 5. Usage and unreadable input: exit 2.
check "$tmp/missing.bin" 2
check "$tmp/bug.bin" 2 --format yaml
check "$tmp/bug.bin" 2 --pubkey "$tmp/missing.pem"
check "$tmp/bug.bin" 2 --no-such-option
head -c 300 "$tmp/bug.bin" >"$tmp/cut.bin"
check "$tmp/cut.bin" 2
grep -q 'truncated record' "$tmp/ct.err" || fail "truncated trace: $(cat "$tmp/ct.err")"
echo 'not a trace' >"$tmp/junk.txt"
check "$tmp/junk.txt" 2
"$capsim" check-trace --help | grep -q -- '--require-signatures' || fail "--help"
echo "e2e_checktrace: ok"
