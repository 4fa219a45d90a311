#!/usr/bin/env bash
# capsim sim --json: the report as one JSON document. Every figure equals
# the text report's; the trace hash is the binary trace's SHA-256; the same
# run writes the same bytes; with "-" standard output holds the document
# alone; a violation names its invariant, job, time and shrunk file; many
# seeds give their outcome and each seed's hash, in seed order, as its own
# run gives it; an unwritable file is a usage error that
# leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
. tests/lib.sh

scn=sim/scenarios/retryable-vs-fatal.yaml
expect 0 "$capsim" sim "$scn" --seed 2 --json "$tmp/a.json" --trace "$tmp/a.bin"
cp "$tmp/out" "$tmp/a.txt"
jq -e . "$tmp/a.json" >/dev/null || fail "not JSON: $(head -c 300 "$tmp/a.json")"
[ "$(jq -r .format "$tmp/a.json")" = capsim-sim-v1 ] || fail "format: $(jq -r .format "$tmp/a.json")"
[ "$(jq -r .seed "$tmp/a.json")" = 2 ] || fail "seed: $(jq -r .seed "$tmp/a.json")"
[ "$(jq -r '.seed | type' "$tmp/a.json")" = string ] || fail "the seed is not a string"
[ "$(jq -r .invariants.held "$tmp/a.json")" = true ] || fail "held: $(jq -c .invariants "$tmp/a.json")"
[ "$(jq -r .invariants.violation "$tmp/a.json")" = null ] || fail "a violation where none was"
[ "$(jq -r .trace.sha256 "$tmp/a.json")" = "$(sha256sum <"$tmp/a.bin" | cut -d' ' -f1)" ] ||
  fail "the JSON hash is not the binary trace's SHA-256"
checks=$((checks + 5))

# Each figure of the text report, as the JSON has it.
jobs_text=$(sed -n 's/^jobs: submitted \([0-9]*\) (+\([0-9]*\) compensations); succeeded \([0-9]*\), failed \([0-9]*\), failed_fatal \([0-9]*\), cancelled \([0-9]*\), denied \([0-9]*\), timeout \([0-9]*\), parked \([0-9]*\), unfinished \([0-9]*\)$/\1 \2 \3 \4 \5 \6 \7 \8 \9/p' "$tmp/a.txt")
jobs_json=$(jq -r '.jobs | "\(.submitted) \(.compensations) \(.succeeded) \(.failed) \(.failedFatal) \(.cancelled) \(.denied) \(.timeout) \(.parked)"' "$tmp/a.json")
[ -n "$jobs_text" ] && [ "$jobs_text" = "$jobs_json" ] || fail "jobs: text '$jobs_text', JSON '$jobs_json'"
line=$(grep '^retries ' "$tmp/a.txt")
for pair in "retries:retries" "rollbacks:rollbacks" "breaker openings:breakerOpenings" "dlq:dlq" \
            "duplicates answered:duplicatesAnswered" "stale ignored:staleIgnored"; do
  text=$(echo "$line" | sed -n "s/.*${pair%%:*} \([0-9]*\).*/\1/p")
  [ "$text" = "$(jq -r ".${pair#*:}" "$tmp/a.json")" ] || fail "${pair%%:*}: text $text, JSON $(jq -r ".${pair#*:}" "$tmp/a.json")"
done
[ "$(jq -r .rollbacks "$tmp/a.json")" -gt 0 ] || fail "the rollback scenario reports no rollback"
bus_text=$(sed -n 's/^bus: published \([0-9]*\), delivered \([0-9]*\), dropped \([0-9]*\).*/\1 \2 \3/p' "$tmp/a.txt")
[ "$bus_text" = "$(jq -r '.bus | "\(.published) \(.delivered) \(.dropped)"' "$tmp/a.json")" ] || fail "bus counts differ"
lat_text=$(sed -n 's/^latency \([^:]*\): n=\([0-9]*\) .*/\1 \2/p' "$tmp/a.txt" | tr '\n' ' ')
[ "$lat_text" = "$(jq -r '.latency[] | "\(.topic) \(.n)"' "$tmp/a.json" | tr '\n' ' ')" ] || fail "latency topics differ"
[ "$(jq -r '.trace.records' "$tmp/a.json")" = "$(sed -n 's/^trace: \([0-9]*\) records.*/\1/p' "$tmp/a.txt")" ] ||
  fail "trace records differ"
streams_text=$(sed -n 's/^streams: //p' "$tmp/a.txt")
[ "$streams_text" = "$(jq -r '.streams | to_entries | map("\(.key)=\(.value)") | join(" ")' "$tmp/a.json")" ] ||
  fail "streams: text '$streams_text', JSON $(jq -c .streams "$tmp/a.json")"
checks=$((checks + 6))

# The same run, the same bytes; with "-", standard output is the document alone.
same_doc --json "$tmp/a.json" "$capsim" sim "$scn" --seed 2

# A violation: held false, the invariant, its job and time, the shrunk file.
(cd "$tmp" && "$OLDPWD/$capsim" sim "$OLDPWD/sim/scenarios/throttle-storm.yaml" --seed 1 \
   --bug dispatch-on-throttle --json v.json >v.txt 2>v.err) && fail "the bug was not caught" || true
v="$tmp/v.json"
[ "$(jq -r .invariants.held "$v")" = false ] || fail "held: $(jq -c .invariants "$v")"
[ "$(jq -r .invariants.violation.invariant "$v")" = dispatch-allowed ] || fail "invariant: $(jq -c .invariants "$v")"
[ "$(jq -r .bug "$v")" = dispatch-on-throttle ] || fail "bug: $(jq -r .bug "$v")"
job=$(jq -r .invariants.violation.job "$v")
grep -q "^VIOLATION dispatch-allowed: job $job at " "$tmp/v.txt" || fail "the text names another job than $job"
[ "$(jq -r '.invariants.violation.atNs | type' "$v")" = number ] || fail "atNs is not a number"
shrunk=$(jq -r .shrunk "$v")
[ "$shrunk" != null ] && [ -f "$tmp/$shrunk" ] || fail "shrunk: '$shrunk' (no such file)"
checks=$((checks + 6))

# Many seeds: the outcome, held or the smallest failing seed.
expect 0 "$capsim" sim "$scn" --seeds 1..4 --json "$tmp/s.json"
[ "$(jq -c '{format, from, to, seedsRun, held, violation, shrunk}' "$tmp/s.json")" = \
  '{"format":"capsim-sim-seeds-v1","from":"1","to":"4","seedsRun":4,"held":true,"violation":null,"shrunk":null}' ] ||
  fail "seeds outcome: $(cat "$tmp/s.json")"
# runs: every seed in order, each with the hash its own single run gives
[ "$(jq -r '[.runs[] | .seed] | join(" ")' "$tmp/s.json")" = "1 2 3 4" ] || fail "runs: not seeds 1..4 in order"
[ "$(jq -r '[.runs[] | .held] | all' "$tmp/s.json")" = true ] || fail "runs: a seed did not hold"
for n in 1 4; do
  expect 0 "$capsim" sim "$scn" --seed $n
  contains "$tmp/out" "sha256 $(jq -r ".runs[$((n - 1))].traceSha256" "$tmp/s.json")"
done
expect 0 "$capsim" sim "$scn" --seeds 1..4 --jobs 1 --json "$tmp/s1.json"
cmp -s "$tmp/s.json" "$tmp/s1.json" || fail "--seeds --json differs between --jobs 1 and all cores"
expect 1 "$capsim" sim sim/scenarios/throttle-storm.yaml --seeds 1..3 --jobs 1 --bug dispatch-on-throttle \
  --no-shrink --json -
jq -e . "$tmp/out" >/dev/null || fail "--seeds --json - printed more than the document: $(head -c 300 "$tmp/out")"
[ "$(jq -c '{held, seed: .violation.seed, inv: .violation.invariant, shrunk}' "$tmp/out")" = \
  '{"held":false,"seed":"1","inv":"dispatch-allowed","shrunk":null}' ] || fail "seeds violation: $(cat "$tmp/out")"
contains "$tmp/err" "seed 1 breaks dispatch-allowed"
[ "$(jq -c '[.runs[] | [.seed, .held]]' "$tmp/out")" = '[["1",false]]' ] ||
  fail "runs of a violation: want seed 1 only, failing: $(jq -c .runs "$tmp/out")"

# An unwritable report: exit 2, the error names the file.
expect 2 "$capsim" sim "$scn" --json "$tmp/no/such/dir/r.json"
contains "$tmp/err" "$tmp/no/such/dir/r.json"
[ ! -e "$tmp/no" ] || fail "something was left behind"
checks=$((checks + 3))

echo "e2e_sim_json: $checks checks passed"
