#!/usr/bin/env bash
# capsim golden end to end: the committed cases pass --check; re-recording
# a copy gives byte-identical golden.jsonl files; an edited golden trace (a
# changed byte of a record, a changed packet field) drifts with the first
# divergence printed; an injected bug drifts; a bad case file is exit 2
# naming FILE:LINE and the key.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. The committed cases hold.
"$capsim" golden --check >"$tmp/check.out" || fail "golden --check: $(cat "$tmp/check.out")"
n=$(find conformance/cases -mindepth 2 -maxdepth 2 -name case.yaml | wc -l)
[ "$n" -ge 14 ] || fail "only $n cases"
grep -q "^$n cases: $n ok, 0 drift$" "$tmp/check.out" || fail "summary: $(tail -1 "$tmp/check.out")"

# --list: one line per case with its roles and clauses.
"$capsim" golden --list >"$tmp/list.out"
[ "$(wc -l <"$tmp/list.out")" -eq "$n" ] || fail "--list printed $(wc -l <"$tmp/list.out") lines"
grep -q "^fatal-rollback  *worker,scheduler  *cap-spec 07 L28" "$tmp/list.out" || fail "--list: $(cat "$tmp/list.out")"

# 2. Re-recording a copy gives the same bytes. The copy keeps the layout the
# scenarios' relative policy paths expect (../../../reference/...).
mkdir -p "$tmp/repo/conformance"
cp -r conformance/cases "$tmp/repo/conformance/cases"
ln -s "$PWD/reference" "$tmp/repo/reference"
rm -f "$tmp"/repo/conformance/cases/*/golden.jsonl
"$capsim" golden --update --dir "$tmp/repo/conformance/cases" >"$tmp/update.out" ||
  fail "golden --update: $(cat "$tmp/update.out")"
[ "$(grep -c '^recorded ' "$tmp/update.out")" -eq "$n" ] || fail "update: $(cat "$tmp/update.out")"
for d in conformance/cases/*/; do
  id=$(basename "$d")
  cmp -s "$d/golden.jsonl" "$tmp/repo/conformance/cases/$id/golden.jsonl" ||
    fail "$id: re-recorded golden.jsonl differs from the committed one"
done
ls "$tmp"/repo/conformance/cases/*/golden.jsonl.tmp.* >/dev/null 2>&1 && fail "a temporary file was left behind"

# 3. One byte of a record changed (the sender of the JobResult): drift at
# that record, with the expected and observed record and the field diff.
case_dir=$tmp/repo/conformance/cases/lifecycle-happy-path
line=$(grep -n '"subject":"sys.job.result"' "$case_dir/golden.jsonl" | head -1 | cut -d: -f1)
[ -n "$line" ] || fail "no JobResult in lifecycle-happy-path"
idx=$((line - 2))
cp "$case_dir/golden.jsonl" "$tmp/orig.jsonl"
sed -i "${line}s/\"sender\":\"w-1\"/\"sender\":\"w-9\"/" "$case_dir/golden.jsonl"
cmp -s "$case_dir/golden.jsonl" "$tmp/orig.jsonl" && fail "the edit changed nothing"
set +e
"$capsim" golden --check --dir "$tmp/repo/conformance/cases" --case lifecycle-happy-path >"$tmp/drift.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "an edited sender: exit $rc, want 1: $(cat "$tmp/drift.out")"
grep -q "^DRIFT lifecycle-happy-path: first difference at record $idx " "$tmp/drift.out" ||
  fail "no first divergence at record $idx: $(cat "$tmp/drift.out")"
grep -q '^  expected: t=0.802000000s w-9 -> sys.job.result: JobResult SUCCEEDED job-1 attempt 1$' "$tmp/drift.out" ||
  fail "expected record not printed: $(cat "$tmp/drift.out")"
grep -q '^  observed: t=0.802000000s w-1 -> sys.job.result: JobResult SUCCEEDED job-1 attempt 1$' "$tmp/drift.out" ||
  fail "observed record not printed: $(cat "$tmp/drift.out")"
grep -q '^    sender: "w-9" -> "w-1"$' "$tmp/drift.out" || fail "no sender diff: $(cat "$tmp/drift.out")"
grep -q '"jobResult":{"jobId":"job-1","status":"JOB_STATUS_SUCCEEDED"' "$tmp/drift.out" ||
  fail "the packet JSON is not printed"

# 4. A packet field changed (a hand-edited golden record: packet without
# bytes): the diff names the JSON path with both values.
jq -c 'del(.bytes) | .packet.jobResult.status = "JOB_STATUS_FAILED"' \
  <(sed -n "${line}p" "$tmp/orig.jsonl") >"$tmp/edited.line"
{ head -n $((line - 1)) "$tmp/orig.jsonl"; cat "$tmp/edited.line"; tail -n +$((line + 1)) "$tmp/orig.jsonl"; } \
  >"$case_dir/golden.jsonl"
set +e
"$capsim" golden --check --dir "$tmp/repo/conformance/cases" --case lifecycle-happy-path >"$tmp/drift2.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "an edited status: exit $rc, want 1: $(cat "$tmp/drift2.out")"
grep -q "first difference at record $idx " "$tmp/drift2.out" || fail "$(cat "$tmp/drift2.out")"
grep -q '^    \$.jobResult.status: "JOB_STATUS_FAILED" -> "JOB_STATUS_SUCCEEDED"$' "$tmp/drift2.out" ||
  fail "no field diff for the status: $(cat "$tmp/drift2.out")"
cp "$tmp/orig.jsonl" "$case_dir/golden.jsonl"
"$capsim" golden --check --dir "$tmp/repo/conformance/cases" --case lifecycle-happy-path >/dev/null ||
  fail "the restored case does not pass"

# 5. Injected bugs drift on the cases made to catch them.
for pair in retry-fatal:fatal-rollback rollback-oldest-first:fatal-rollback \
            dispatch-on-throttle:throttle handler-twice:duplicate-delivery \
            accept-stale-attempt:stale-attempt-result; do
  bug=${pair%%:*} id=${pair#*:}
  set +e
  "$capsim" golden --check --bug "$bug" --case "$id" >"$tmp/bug.out" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 1 ] || fail "--bug $bug on $id: exit $rc, want 1: $(cat "$tmp/bug.out")"
  grep -q "^DRIFT $id: first difference at record " "$tmp/bug.out" || fail "$(cat "$tmp/bug.out")"
done

# 6. Usage and bad case files: exit 2.
set +e
"$capsim" golden >/dev/null 2>&1; [ $? -eq 2 ] || fail "no mode: want exit 2"
"$capsim" golden --check --case no-such-case >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown case: want exit 2"
"$capsim" golden --check --bug no-such-bug >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown bug: want exit 2"
"$capsim" golden --check --dir "$tmp/nowhere" >/dev/null 2>&1; [ $? -eq 2 ] || fail "missing dir: want exit 2"
set -e
sed -i 's/^roles: \[worker, scheduler\]$/roles: [worker, pilot]/' "$case_dir/case.yaml"
set +e
"$capsim" golden --check --dir "$tmp/repo/conformance/cases" >"$tmp/bad.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "a bad role: exit $rc, want 2"
grep -q 'lifecycle-happy-path/case.yaml:[0-9]*:[0-9]*: roles\[1\]: unknown role "pilot"' "$tmp/bad.out" ||
  fail "the error does not name FILE:LINE:COL and the key: $(cat "$tmp/bad.out")"
echo "e2e_golden: ok"
