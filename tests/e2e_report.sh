#!/usr/bin/env bash
# capsim report: the whole conformance run against the reference writes
# report-v1 JSON, JUnit and one self-contained, well-formed HTML page; the
# page draws a sequence diagram only for failing golden cases, with the
# divergence highlighted, and carries the spec-coverage table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
CAPSIM=${CAPSIM:-$root/build/capsim}
case $CAPSIM in /*) ;; *) CAPSIM=$root/$CAPSIM ;; esac
TCK=${TCK_DIR:-$root/../shared/tck}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "e2e_report: $*" >&2; exit 1; }
cd "$root"

# 1. The reference: every run conformant, every golden case identical.
"$CAPSIM" report --out-dir "$tmp/ok" --tck "$TCK" --cases conformance/cases >"$tmp/ok.out" 2>&1 \
  || { cat "$tmp/ok.out"; fail "report on the reference exited $?"; }
grep -q 'golden cases: [0-9]* identical, 0 not' "$tmp/ok.out" || fail "golden summary missing"
[ "$(grep -c ' CONFORMANT:' "$tmp/ok.out")" -eq 4 ] || fail "expected 4 conformant TCK runs"
for f in index.html golden.json golden.junit.xml tck-worker-core.json tck-worker-core.junit.xml \
         tck-control-plane-core.json tck-worker-cap-production.json tck-control-plane-cap-production.json; do
  [ -s "$tmp/ok/$f" ] || fail "missing $f"
done
# Every upstream case passes across the four runs (49 in all).
passes=$(cat "$tmp"/ok/tck-*.json | jq -s 'map(.summary.pass) | add')
[ "$passes" -eq 49 ] || fail "expected 49 upstream passes, got $passes"
ncases=$(ls -d conformance/cases/*/ | wc -l)
[ "$(jq '.summary.pass' "$tmp/ok/golden.json")" -eq "$ncases" ] || fail "golden.json: not every case passed"
jq -e '.cases[] | select(.evidence.clauses == null)' "$tmp/ok/golden.json" >/dev/null \
  && fail "a golden case without clauses in its evidence"
xmllint --noout "$tmp/ok/index.html" || fail "index.html is not well-formed"
xmllint --noout "$tmp/ok/golden.junit.xml" || fail "golden.junit.xml is not well-formed"
grep -q '<svg' "$tmp/ok/index.html" && fail "a passing run drew a sequence diagram"
# Self-contained: no external resource, no script.
grep -Eo '(src|href)="[^"#][^"]*"' "$tmp/ok/index.html" && fail "external reference in index.html"
grep -qi '<script' "$tmp/ok/index.html" && fail "script in index.html"
# The coverage table has one row per behaviour of the upstream coverage map.
nbeh=$(jq '.behaviors | length' "$TCK/coverage.json")
rows=$(xmllint --xpath 'count(//table[@class="coverage"]//tr[td])' "$tmp/ok/index.html")
[ "$rows" -eq "$nbeh" ] || fail "coverage table has $rows rows, coverage.json has $nbeh behaviours"
# Byte-stable: a second run writes the same files.
"$CAPSIM" report --out-dir "$tmp/ok2" --tck "$TCK" --cases conformance/cases >/dev/null 2>&1 || fail "second run"
diff -r "$tmp/ok" "$tmp/ok2" >/dev/null || fail "two runs wrote different reports"

# 2. A known bug in the reference: the fatal-rollback golden case diverges;
# the page draws its observed trace beside the golden one.
if "$CAPSIM" report --out-dir "$tmp/bug" --tck "$TCK" --cases conformance/cases --bug retry-fatal \
     >"$tmp/bug.out" 2>&1; then fail "report with --bug retry-fatal exited 0"; fi
grep -q 'golden fatal-rollback: record [0-9]* differs' "$tmp/bug.out" || { cat "$tmp/bug.out"; fail "no divergence named"; }
xmllint --noout "$tmp/bug/index.html" || fail "index.html (bug) is not well-formed"
nsvg=$(grep -o '<svg' "$tmp/bug/index.html" | wc -l)
[ "$nsvg" -ge 1 ] || fail "no sequence diagram for the failing case"
grep -q ">golden (" "$tmp/bug/index.html" && grep -q ">observed (" "$tmp/bug/index.html" || fail "golden and observed diagrams not both drawn"
grep -q 'class="divergence"' "$tmp/bug/index.html" || fail "divergence not highlighted"
jq -e '.cases[] | select(.id == "fatal-rollback") | .status == "FAIL" and (.evidence.firstDivergence | length > 0)' \
  "$tmp/bug/golden.json" >/dev/null || fail "golden.json does not record the divergence"

# 3. Bad input: a missing kit directory is a usage error naming it.
set +e
"$CAPSIM" report --out-dir "$tmp/x" --tck "$tmp/nope" >"$tmp/bad.out" 2>&1; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "missing --tck dir: exit $rc, want 2"
grep -q "$tmp/nope" "$tmp/bad.out" || fail "error does not name the directory"
echo "e2e_report: ok"
