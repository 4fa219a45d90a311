#!/usr/bin/env bash
# capsim sim --junit: the outcome as JUnit XML for a CI server. The file is
# well-formed; it has one testcase per invariant the scenario checks plus
# the journal check, and its counts agree with them; the trace hash is the
# text report's; the same run writes the same bytes; "-" puts the document
# alone on standard output. A violation is a failure of its invariant (the
# others skipped, cut short) whose reproduce commands, run as written,
# break the same invariant; --seeds names the failing seed --json names;
# --sweep gives a suite per variant with that variant's trace hash.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
. tests/lib.sh
root=$PWD


# One seed that holds.
scn=sim/scenarios/breaker.yaml
expect 0 "$capsim" sim "$scn" --seed 3 --junit "$tmp/a.xml"
cp "$tmp/out" "$tmp/a.txt"
xmllint --noout "$tmp/a.xml" || fail "not well-formed: $(head -c 300 "$tmp/a.xml")"
[ "$(count "$tmp/a.xml" '//testsuite')" = 1 ] || fail "want one testsuite"
[ "$(count "$tmp/a.xml" '//testcase')" = 11 ] || fail "want 10 invariants and the journal: $(count "$tmp/a.xml" '//testcase')"
names=$(xq "$tmp/a.xml" '//testcase/@name' | tr -s ' \n' ' ')
for n in no-backward one-terminal dispatch-allowed approval-bound handler-once liveness compensation \
         restart conflict-refused checkpoint journal; do
  case " $names " in *" name=\"$n\" "*) ;; *) fail "no testcase $n: $names" ;; esac
done
[ "$(count "$tmp/a.xml" '//failure | //skipped | //error')" = 0 ] || fail "a held run has failures or skips"
[ "$(xq "$tmp/a.xml" 'string(/testsuites/@tests)')" = 11 ] || fail "testsuites tests"
[ "$(xq "$tmp/a.xml" 'string(/testsuites/@failures)')" = 0 ] || fail "testsuites failures"
hash=$(sed -n 's/^trace: .*sha256 \([0-9a-f]*\).*/\1/p' "$tmp/a.txt")
[ -n "$hash" ] || fail "no trace hash in the text report"
[ "$(xq "$tmp/a.xml" 'string(//property[@name="trace_sha256"]/@value)')" = "$hash" ] ||
  fail "trace_sha256 is not the text report's hash $hash"
[ "$(xq "$tmp/a.xml" 'string(//property[@name="seed"]/@value)')" = 3 ] || fail "seed property"
checks=$((checks + 8))

# The same run, the same bytes; "-" is the document alone on standard output.
same_doc --junit "$tmp/a.xml" "$capsim" sim "$scn" --seed 3

# The scenario's own list of invariants (here through --set), and its overrides as properties.
expect 0 "$capsim" sim "$scn" --seed 3 --set 'invariants=[liveness, one-terminal]' --junit "$tmp/sub.xml"
[ "$(xq "$tmp/sub.xml" '//testcase/@name' | tr -s ' \n' ' ' | sed 's/ $//;s/^ //')" = \
  'name="one-terminal" name="liveness" name="journal"' ] ||
  fail "want the two invariants (in the documented order) and the journal: $(xq "$tmp/sub.xml" '//testcase/@name')"
[ "$(xq "$tmp/sub.xml" 'string(//property[@name="set"]/@value)')" = 'invariants=[liveness, one-terminal]' ] ||
  fail "the override is not a property"

# A violation: a failure of its invariant, the others skipped; the reproduce commands break it again.
mkdir -p "$tmp/v"
(cd "$tmp/v" && "$root/$capsim" sim "$root/sim/scenarios/throttle-storm.yaml" --seed 1 \
   --bug dispatch-on-throttle --junit v.xml --json v.json >v.txt 2>v.err) && fail "the bug was not caught" || true
v="$tmp/v/v.xml"
xmllint --noout "$v" || fail "violation report not well-formed"
[ "$(count "$v" '//failure')" = 1 ] || fail "want one failure"
[ "$(xq "$v" 'string(//testcase[failure]/@name)')" = dispatch-allowed ] || fail "the failure is not dispatch-allowed"
[ "$(xq "$v" 'string(//failure/@type)')" = dispatch-allowed ] || fail "failure type"
[ "$(count "$v" '//testcase[skipped]')" = 10 ] || fail "want the 10 others skipped: $(count "$v" '//testcase[skipped]')"
[ "$(xq "$v" 'string(/testsuites/@skipped)')" = 10 ] || fail "testsuites skipped"
[ "$(xq "$v" 'string(/testsuites/@failures)')" = 1 ] || fail "testsuites failures"
job=$(jq -r .invariants.violation.job "$tmp/v/v.json")
xq "$v" 'string(//failure/@message)' | grep -qF "job $job at " || fail "the message does not name job $job"
[ "$(xq "$v" 'string(//property[@name="bug"]/@value)')" = dispatch-on-throttle ] || fail "bug property"
shrunk=$(xq "$v" 'string(//property[@name="shrunk"]/@value)')
[ -n "$shrunk" ] && [ -f "$tmp/v/$shrunk" ] || fail "the shrunk property names no file: '$shrunk'"
junit_reproduces "$v" "$tmp/v" dispatch-allowed "capsim sim "
checks=$((checks + 12))

# Many seeds: the range and the seeds run; a violation names the seed --json names.
expect 0 "$capsim" sim "$scn" --seeds 1..4 --jobs 2 --junit "$tmp/s.xml"
[ "$(xq "$tmp/s.xml" 'string(//property[@name="seeds"]/@value)')" = 1..4 ] || fail "seeds property"
[ "$(xq "$tmp/s.xml" 'string(//property[@name="seeds_run"]/@value)')" = 4 ] || fail "seeds_run property"
[ "$(count "$tmp/s.xml" '//property[@name="trace_sha256"]')" = 0 ] || fail "a hash for many seeds"
[ "$(count "$tmp/s.xml" '//failure')" = 0 ] || fail "held seeds with a failure"
(cd "$tmp/v" && "$root/$capsim" sim "$root/sim/scenarios/retryable-vs-fatal.yaml" --seeds 1..6 --jobs 2 \
   --bug retry-fatal --no-shrink --junit s.xml --json s.json >s.txt 2>&1) && fail "retry-fatal not caught" || true
seed=$(jq -r .violation.seed "$tmp/v/s.json")
xq "$tmp/v/s.xml" 'string(//failure/@message)' | grep -q "^seed $seed: " ||
  fail "the failure does not name seed $seed: $(xq "$tmp/v/s.xml" 'string(//failure/@message)')"
[ "$(xq "$tmp/v/s.xml" 'string(//testcase[failure]/@name)')" = "$(jq -r .violation.invariant "$tmp/v/s.json")" ] ||
  fail "the failing testcase is not the JSON's invariant"
checks=$((checks + 6))

# A sweep: a suite per variant, named by its overrides, with its trace hash.
expect 0 "$capsim" sim "$scn" --sweep 'workload.rate=[5, 10]' --sweep 'workers[0].count=[2, 3]' \
  --junit "$tmp/w.xml" --json "$tmp/w.json"
[ "$(count "$tmp/w.xml" '//testsuite')" = 4 ] || fail "want 4 suites"
[ "$(xq "$tmp/w.xml" 'string(/testsuites/@tests)')" = 44 ] || fail "want 44 tests"
for i in 1 2 3 4; do
  label=$(jq -r ".variants[$((i - 1))].sets | join(\", \")" "$tmp/w.json")
  [ "$(xq "$tmp/w.xml" "string(//testsuite[$i]/@name)")" = "capsim.sim.breaker [$label]" ] ||
    fail "suite $i: $(xq "$tmp/w.xml" "string(//testsuite[$i]/@name)"), want label $label"
  [ "$(xq "$tmp/w.xml" "string(//testsuite[$i]//property[@name='trace_sha256']/@value)")" = \
    "$(jq -r ".variants[$((i - 1))].report.trace.sha256" "$tmp/w.json")" ] || fail "suite $i: not the variant's hash"
done
checks=$((checks + 3))

# Usage errors: both documents on standard output; an unwritable file leaves nothing.
expect 2 "$capsim" sim "$scn" --seed 3 --json - --junit -
contains "$tmp/err" "only one document can go to standard output"
expect 2 "$capsim" sim "$scn" --seed 3 --junit "$tmp/no-such-dir/x.xml"
[ ! -e "$tmp/no-such-dir/x.xml" ] || fail "a file was left"
checks=$((checks + 3))

echo "e2e_sim_junit: $checks checks ok"
