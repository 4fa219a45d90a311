#!/usr/bin/env bash
# capsim swarm --json and --junit: the outcome of a swarm for CI pipelines.
# Seeds that hold: the range, the seeds run, each seed's hash in seed order
# (the hash its own run gives), every invariant a passed testcase; the same run writes the same bytes, and "-" puts the document
# alone on standard output. A caught bug: the failing seed and invariant
# are the text report's, the drawn scenario and the shrunk one are named
# and exist, the trace hash is that of the drawn file run with capsim sim,
# and the reproduce commands in the JUnit failure, run as written, break
# the same invariant. --seed N: that run's full report (capsim-sim-v1) on
# the drawn file. Usage errors.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
. tests/lib.sh
root=$PWD

invariants="no-backward one-terminal dispatch-allowed approval-bound handler-once liveness compensation
restart conflict-refused checkpoint journal"

# 1. Seeds that hold.
expect 0 "$capsim" swarm --seeds 1..8 --jobs 2 --out "$tmp/held" --json "$tmp/h.json" --junit "$tmp/h.xml"
contains "$tmp/out" "8 seeds (1..8): every invariant held"
[ "$(jq -c '[.format, .out, .bug, .from, .to, .seedsRun, .held, .violation, .shrunk]' "$tmp/h.json")" = \
  "[\"capsim-swarm-v1\",\"$tmp/held\",null,\"1\",\"8\",8,true,null,null]" ] ||
  fail "held outcome: $(cat "$tmp/h.json")"
[ "$(jq -r '[.runs[] | .seed] | join(" ")' "$tmp/h.json")" = "1 2 3 4 5 6 7 8" ] || fail "runs: not 1..8 in order"
xmllint --noout "$tmp/h.xml" || fail "not well-formed: $(head -c 300 "$tmp/h.xml")"
[ "$(xq "$tmp/h.xml" 'string(/testsuites/@name)')" = "capsim swarm" ] || fail "testsuites name"
[ "$(xq "$tmp/h.xml" 'string(//testsuite/@name)')" = capsim.swarm ] || fail "suite name"
[ "$(count "$tmp/h.xml" '//testcase')" = 11 ] || fail "want 10 invariants and the journal"
[ "$(count "$tmp/h.xml" '//failure | //skipped')" = 0 ] || fail "a held swarm has failures or skips"
[ "$(xq "$tmp/h.xml" 'string(//testsuite/@tests)')" = 11 ] || fail "suite tests count"
for n in $invariants; do
  [ "$(count "$tmp/h.xml" "//testcase[@name='$n']")" = 1 ] || fail "no testcase $n"
done
[ "$(xq "$tmp/h.xml" 'string(//property[@name="seeds"]/@value)')" = 1..8 ] || fail "seeds property"
[ "$(xq "$tmp/h.xml" 'string(//property[@name="seeds_run"]/@value)')" = 8 ] || fail "seeds_run property"
[ "$(xq "$tmp/h.xml" 'string(//property[@name="out"]/@value)')" = "$tmp/held" ] || fail "out property"
[ "$(count "$tmp/h.xml" '//property[@name="scenario" or @name="bug" or @name="shrunk"]')" = 0 ] ||
  fail "a held swarm names a scenario, bug or shrunk file"
[ ! -e "$tmp/held" ] || fail "held seeds left files"
same_doc --json "$tmp/h.json" "$capsim" swarm --seeds 1..8 --jobs 2 --out "$tmp/held"
same_doc --junit "$tmp/h.xml" "$capsim" swarm --seeds 1..8 --jobs 2 --out "$tmp/held"
checks=$((checks + 13))

# 2. A caught bug.
bug=retry-fatal inv=one-terminal
mkdir -p "$tmp/v"
(cd "$tmp/v" && "$root/$capsim" swarm --seeds 1..60 --jobs 2 --bug $bug --json v.json --junit v.xml \
   >v.txt 2>v.err) && fail "the swarm did not catch $bug" || true
line=$(grep " breaks $inv: " "$tmp/v/v.txt") || fail "no violation line: $(head -c 400 "$tmp/v/v.txt")"
seed=$(sed -n 's/.*; seed \([0-9]*\) breaks.*/\1/p' <<< "$line")
j="$tmp/v/v.json"
[ "$(jq -r .format "$j")" = capsim-swarm-v1 ] || fail "format"
[ "$(jq -r .held "$j")" = false ] || fail "held"
[ "$(jq -r .bug "$j")" = $bug ] || fail "bug"
[ "$(jq -r .violation.seed "$j")" = "$seed" ] || fail "violation seed: $(jq -c .violation "$j") vs $line"
[ "$(jq -r .violation.invariant "$j")" = $inv ] || fail "violation invariant"
[ "$(jq -r .violation.scenario "$j")" = "swarm-out/seed-$seed/scenario.yaml" ] || fail "drawn scenario"
[ "$(jq -r .shrunk "$j")" = "swarm-out/seed-$seed/shrunk.yaml" ] || fail "shrunk file"
[ -f "$tmp/v/swarm-out/seed-$seed/scenario.yaml" ] && [ -f "$tmp/v/swarm-out/seed-$seed/shrunk.yaml" ] ||
  fail "the drawn or shrunk scenario is missing"
[ "$(jq -r '[.runs[] | select(.held | not) | .seed] | join(" ")' "$j")" = "$seed" ] ||
  fail "runs: the failing seed is not the last and only failing one: $(jq -c .runs "$j")"
[ "$(jq -r '.runs[-1].traceSha256' "$j")" = "$(jq -r .violation.traceSha256 "$j")" ] || fail "runs: last hash"
[ "$(jq -r '.runs | length' "$j")" = "$seed" ] || fail "runs: want seeds 1..$seed"
job=$(jq -r .violation.job "$j")
grep -qF "job $job at" <<< "$line" || fail "violation job $job is not the text's: $line"
(cd "$tmp/v" && "$root/$capsim" sim "swarm-out/seed-$seed/scenario.yaml" --seed "$seed" --bug $bug \
   --no-shrink >d.txt 2>&1) && fail "the drawn scenario held" || true
grep -qF "sha256 $(jq -r .violation.traceSha256 "$j")" "$tmp/v/d.txt" ||
  fail "traceSha256 is not the drawn run's: $(grep '^trace' "$tmp/v/d.txt")"
x="$tmp/v/v.xml"
xmllint --noout "$x" || fail "violation report not well-formed"
[ "$(count "$x" '//failure')" = 1 ] || fail "want one failure"
[ "$(xq "$x" 'string(//testcase[failure]/@name)')" = $inv ] || fail "the failure is not $inv"
[ "$(count "$x" '//testcase[skipped]')" = 10 ] || fail "want the 10 others skipped"
[ "$(xq "$x" 'string(//property[@name="scenario"]/@value)')" = "swarm-out/seed-$seed/scenario.yaml" ] ||
  fail "scenario property"
[ "$(xq "$x" 'string(//property[@name="bug"]/@value)')" = $bug ] || fail "bug property"
[ "$(xq "$x" 'string(//property[@name="seeds_run"]/@value)')" = "$(jq -r .seedsRun "$j")" ] ||
  fail "seeds_run differs from --json's"
xq "$x" 'string(//failure/@message)' | grep -qF "seed $seed: job $job at" || fail "failure message"
junit_reproduces "$x" "$tmp/v" $inv "capsim sim swarm-out/seed-$seed/"
checks=$((checks + 25))

# 3. One seed: its run's report on the drawn file.
expect 0 "$capsim" swarm --seed 5 --out "$tmp/one" --json "$tmp/o.json" --junit "$tmp/o.xml"
[ "$(jq -r .format "$tmp/o.json")" = capsim-sim-v1 ] || fail "one seed: format"
[ "$(jq -r .scenario.path "$tmp/o.json")" = "$tmp/one/seed-5/scenario.yaml" ] || fail "one seed: path"
[ "$(jq -r .seed "$tmp/o.json")" = 5 ] || fail "one seed: seed"
hash=$(jq -r .trace.sha256 "$tmp/o.json")
contains "$tmp/out" "sha256 $hash"
[ "$(jq -r '.runs[4] | .seed + " " + .traceSha256' "$tmp/h.json")" = "5 $hash" ] ||
  fail "the swarm's runs[] does not give seed 5 the hash of its own run"
[ "$(xq "$tmp/o.xml" 'string(//property[@name="trace_sha256"]/@value)')" = "$hash" ] || fail "one seed: junit hash"
[ "$(xq "$tmp/o.xml" 'string(//property[@name="seed"]/@value)')" = 5 ] || fail "one seed: seed property"
[ "$(xq "$tmp/o.xml" 'string(//testsuite/@name)')" = capsim.swarm ] || fail "one seed: suite name"
expect 0 "$capsim" sim "$tmp/one/seed-5/scenario.yaml" --seed 5 --json "$tmp/o2.json"
cmp -s "$tmp/o.json" "$tmp/o2.json" || fail "swarm --seed 5 --json differs from capsim sim's on the drawn file"
checks=$((checks + 8))

# 4. Usage errors.
expect 2 "$capsim" swarm --seed 5 --generate --out "$tmp/g" --json "$tmp/g.json"
contains "$tmp/err" "--generate runs nothing"
expect 2 "$capsim" swarm --seeds 1..2 --json - --junit -
contains "$tmp/err" "only one document can go to standard output"
expect 2 "$capsim" swarm --seeds 1..2 --out "$tmp/u" --junit "$tmp/no/such/dir/u.xml"
contains "$tmp/err" "$tmp/no/such/dir/u.xml"
[ ! -e "$tmp/no" ] || fail "an unwritable report left something behind"
checks=$((checks + 1))

echo "e2e_swarm_reports: $checks checks ok"
