#!/usr/bin/env bash
# End-to-end: the reference worker and scheduler as processes on a real NATS
# bus, certified against every golden case of their role (capsim certify
# --start-nats); known mutants fail with a readable divergence; capsim
# record captures a run into a trace that reads back.
# Needs nats-server (tools/install-deps.sh installs it): missing is a failure.
set -u
CAPSIM=${CAPSIM:-build/capsim}
CAPSIM=$(cd "$(dirname "$CAPSIM")" && pwd)/$(basename "$CAPSIM")
cd "$(dirname "$0")/.."
fail() { echo "e2e_certify: FAIL: $*" >&2; exit 1; }

NATS_SERVER=${CAPSIM_NATS_SERVER:-}
for c in /usr/sbin/nats-server /usr/bin/nats-server /usr/local/bin/nats-server; do
    [ -z "$NATS_SERVER" ] && [ -x "$c" ] && NATS_SERVER=$c
done
[ -z "$NATS_SERVER" ] && NATS_SERVER=$(command -v nats-server || true)
[ -n "$NATS_SERVER" ] || fail "nats-server is not installed (tools/install-deps.sh installs it)"

T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT INT TERM

WORKER="$CAPSIM|worker|--nats|{nats}|--id|{worker_id}|--pool|{pool}|--heartbeat|{heartbeat}"
SCHED="$CAPSIM|scheduler|--nats|{nats}|--policy|{policy}|--dispatch-timeout|{dispatch_timeout}"
SCHED="$SCHED|--running-timeout|{running_timeout}|--no-worker-wait|{no_worker_wait}"
SCHED="$SCHED|--max-retries|{max_retries}|--worker-grace|{worker_grace}"
SCHED="$SCHED|--breaker-threshold|{breaker_threshold}"

# cases of a role, from the case files
cases_of() {
    for f in conformance/cases/*/case.yaml; do
        grep -qE "^roles:.*\b$1\b" "$f" && sed -n 's/^id: *//p' "$f"
    done
}

# ---- every case of each role passes with the reference implementation ----
for role in worker scheduler; do
    if [ "$role" = worker ]; then impl=$WORKER; else impl=$SCHED; fi
    "$CAPSIM" certify --role "$role" --start-nats --impl "$impl" \
        --json "$T/$role.json" --junit "$T/$role.xml" --trace-dir "$T/traces-$role" \
        >"$T/$role.out" 2>&1
    rc=$?
    [ $rc -eq 0 ] || { cat "$T/$role.out"; fail "certify --role $role exited $rc"; }
    n=0
    for id in $(cases_of "$role"); do
        grep -q "^PASS  $id \[$role\]" "$T/$role.out" || { cat "$T/$role.out"; fail "$role case $id did not pass"; }
        [ -s "$T/traces-$role/$id.$role.jsonl" ] || fail "no observed trace for $id"
        n=$((n + 1))
    done
    [ $n -gt 0 ] || fail "no case certifies the $role role"
    grep -qE '^(FAIL|ERROR) ' "$T/$role.out" && fail "a $role case failed"
    grep -q '"conformant": true' "$T/$role.json" || fail "$role report is not conformant"
    grep -q "<testsuite" "$T/$role.xml" || fail "$role JUnit report missing"
    # cases of the other role only are listed as not applicable, with the reason
    for f in conformance/cases/*/case.yaml; do
        id=$(sed -n 's/^id: *//p' "$f")
        grep -qE "^roles:.*\b$role\b" "$f" && continue
        grep -q "^N/A   $id \[$role\]" "$T/$role.out" || fail "$id not listed as N/A for $role"
    done
    # an observed trace reads back and breaks no protocol rule
    first=$(cases_of "$role" | head -n 1)
    "$CAPSIM" check-trace "$T/traces-$role/$first.$role.jsonl" >"$T/ct.out" 2>&1 ||
        { cat "$T/ct.out"; fail "observed trace of $first does not check"; }
    echo "e2e_certify: $role: $n cases passed"
done

# ---- mutants fail with a readable first divergence ----
"$CAPSIM" certify --role scheduler --start-nats --impl "$SCHED|--mutant|retry-fatal" \
    --case fatal-rollback --html "$T/m1.html" >"$T/m1.out" 2>&1
rc=$?
[ $rc -eq 1 ] || { cat "$T/m1.out"; fail "retry-fatal mutant: exit $rc, want 1"; }
grep -q '^FAIL  fatal-rollback \[scheduler\]' "$T/m1.out" || fail "retry-fatal: no FAIL line"
grep -q 'mismatch for job wf-1-s3: golden record [0-9]* (JobResult from scheduler on sys.job.dlq' "$T/m1.out" ||
    { cat "$T/m1.out"; fail "retry-fatal: divergence does not name the DLQ entry"; }
grep -q 'subject: "sys.job.dlq" → "worker.w-1.jobs"' "$T/m1.out" ||
    { cat "$T/m1.out"; fail "retry-fatal: no subject diff"; }
grep -q '"attempt":"2"' "$T/m1.out" || fail "retry-fatal: the observed re-dispatch is not shown"
# the page draws the observed trace beside the golden one, the divergence highlighted
xmllint --noout "$T/m1.html" || fail "retry-fatal: certify page is not well-formed"
grep -q '>golden (' "$T/m1.html" && grep -q '>observed (' "$T/m1.html" ||
    fail "retry-fatal: certify page lacks the golden and observed diagrams"
grep -q 'class="divergence"' "$T/m1.html" || fail "retry-fatal: divergence not highlighted on the page"
grep -q 'subject: &#34;sys.job.dlq&#34; → &#34;worker.w-1.jobs&#34;' "$T/m1.html" ||
    fail "retry-fatal: the page does not list the field diff"
[ -s "$T/m1.html.traces/fatal-rollback.scheduler.jsonl" ] || fail "retry-fatal: observed trace not kept beside the page"

"$CAPSIM" certify --role worker --start-nats --impl "$WORKER|--mutant|handler-twice" \
    --case duplicate-delivery >"$T/m2.out" 2>&1
rc=$?
[ $rc -eq 1 ] || { cat "$T/m2.out"; fail "handler-twice mutant: exit $rc, want 1"; }
grep -q 'mismatch for job job-1: golden record [0-9]* (JobResult from w-1 on sys.job.result' "$T/m2.out" ||
    { cat "$T/m2.out"; fail "handler-twice: divergence does not name the replayed result"; }
grep -q 'subject: "sys.job.result" → "sys.job.progress"' "$T/m2.out" ||
    { cat "$T/m2.out"; fail "handler-twice: no subject diff"; }
grep -q '\$.jobProgress: (absent) → {' "$T/m2.out" || fail "handler-twice: no field diff"
echo "e2e_certify: mutants retry-fatal and handler-twice caught"

# ---- an unknown placeholder is an ERROR of the case, naming it ----
"$CAPSIM" certify --role worker --start-nats --impl "$CAPSIM|worker|--id|{no_such_key}" \
    --case lifecycle-happy-path >"$T/ph.out" 2>&1
rc=$?
[ $rc -eq 1 ] || { cat "$T/ph.out"; fail "unknown placeholder: exit $rc, want 1"; }
grep -q '^ERROR lifecycle-happy-path \[worker\]' "$T/ph.out" || fail "unknown placeholder: no ERROR line"
grep -q 'unknown placeholder {no_such_key}' "$T/ph.out" || fail "unknown placeholder not named"

# ---- usage errors ----
"$CAPSIM" certify --role gateway --start-nats >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad role: want exit 2"
"$CAPSIM" certify --role worker >/dev/null 2>&1; [ $? -eq 2 ] || fail "no bus: want exit 2"
"$CAPSIM" certify --role worker --start-nats --case no-such-case >/dev/null 2>&1
[ $? -eq 2 ] || fail "unknown case: want exit 2"

# ---- record: a worker's heartbeats into a trace that reads back ----
mkdir -p "$T/ports"
"$NATS_SERVER" -a 127.0.0.1 -p -1 --ports_file_dir "$T/ports" >/dev/null 2>&1 &
PIDS+=($!)
disown $!
url=""
for _ in $(seq 1 50); do
    url=$(sed -n 's/.*"nats":\["\([^"]*\)".*/\1/p' "$T"/ports/*.ports 2>/dev/null | head -n 1)
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || fail "nats-server did not start"
"$CAPSIM" record --nats "$url" --out "$T/rec.bin" >"$T/rec.out" 2>"$T/rec.err" &
REC=$!
PIDS+=($REC)
sleep 0.5
"$CAPSIM" worker --nats "$url" --id w-rec --pool job.rec --heartbeat 200ms --quiet &
W=$!
PIDS+=($W)
sleep 1.2
kill -TERM $W
wait $W || fail "worker did not stop cleanly on SIGTERM"
kill -INT $REC
wait $REC || { cat "$T/rec.err"; fail "record did not stop cleanly on SIGINT"; }
n=$(sed -n 's/^recorded \([0-9]*\) packets.*/\1/p' "$T/rec.out")
[ -n "$n" ] && [ "$n" -ge 3 ] || { cat "$T/rec.out"; fail "record captured too few packets"; }
grep -qE '^trace hash [0-9a-f]{64}$' "$T/rec.out" || fail "record printed no trace hash"
"$CAPSIM" check-trace "$T/rec.bin" >"$T/rc.out" 2>&1 || { cat "$T/rc.out"; fail "recorded trace does not read back"; }
grep -q ": $n records," "$T/rc.out" || { cat "$T/rc.out"; fail "record count $n differs on read-back"; }
# the JSONL form, bounded by --max-packets
"$CAPSIM" worker --nats "$url" --id w-rec2 --pool job.rec --heartbeat 100ms --quiet &
W=$!
PIDS+=($W)
"$CAPSIM" record --nats "$url" --subjects 'sys.heartbeat' --format jsonl --max-packets 3 \
    --duration 10s --out "$T/rec.jsonl" >"$T/rec2.out" 2>/dev/null || fail "record --max-packets failed"
kill -TERM $W
wait $W
grep -q '^recorded 3 packets' "$T/rec2.out" || { cat "$T/rec2.out"; fail "--max-packets 3 not honoured"; }
head -n 1 "$T/rec.jsonl" | grep -q '"captrace"' || fail "JSONL trace header missing"
grep -q '"sender":"w-rec2"' "$T/rec.jsonl" || fail "JSONL records lack the sender"
# a worker whose server goes away reports it and exits 1
"$CAPSIM" worker --nats "$url" --id w-lost --pool job.rec --quiet 2>"$T/lost.err" &
W=$!
PIDS+=($W)
sleep 0.5
kill -9 "${PIDS[0]}"
wait $W
rc=$?
[ $rc -eq 1 ] || fail "worker on a lost connection: exit $rc, want 1"
grep -q 'connection lost' "$T/lost.err" || fail "worker did not say the connection was lost"
echo "e2e_certify: record and connection loss ok"
echo "e2e_certify: ok"
