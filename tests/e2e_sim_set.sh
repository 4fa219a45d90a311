#!/usr/bin/env bash
# capsim sim --set PATH=VALUE: an override makes the run exactly the run of
# the file edited to say so (same trace hash), in one run and in every
# --seeds process; the reports list the overrides; a violation found with
# overrides shrinks to a file that reproduces it with none; a bad override
# is a usage error naming it. --sweep runs every combination of values,
# each variant exactly the run --set gives it.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
. tests/lib.sh

scn=sim/scenarios/breaker.yaml
hash() { sed -n 's/^trace: .* sha256 \([0-9a-f]*\)$/\1/p' "$1"; }

# The file edited by hand: a scalar, an item of a sequence, a new mapping.
# Its policy path is made absolute, since the copy lives elsewhere.
grep -q '^  rate: 1$' "$scn" && grep -q '^  - {id: w, count: 2,' "$scn" && ! grep -q '^bus:' "$scn" ||
  fail "$scn no longer has the lines this test edits"
sed -e "s#^policy: \(.*\)#policy: $PWD/sim/scenarios/\1#" -e 's/^  rate: 1$/  rate: 3/' \
    -e 's/^  - {id: w, count: 2,/  - {id: w, count: 3,/' "$scn" >"$tmp/edited.yaml"
echo 'bus: {latency: {dist: fixed, value: 4ms}}' >>"$tmp/edited.yaml"
sets=(--set workload.rate=3 --set 'workers[1].count=3' --set 'bus.latency={dist: fixed, value: 4ms}')

expect 0 "$capsim" sim "$tmp/edited.yaml" --seed 5
edited=$(hash "$tmp/out")
expect 0 "$capsim" sim "$scn" --seed 5
plain=$(hash "$tmp/out")
lacks "$tmp/out" "set: "
expect 0 "$capsim" sim "$scn" --seed 5 "${sets[@]}" --json "$tmp/a.json"
[ -n "$edited" ] && [ "$(hash "$tmp/out")" = "$edited" ] ||
  fail "--set gave trace $(hash "$tmp/out"), the edited file $edited"
[ "$edited" != "$plain" ] || fail "the overrides changed nothing"
checks=$((checks + 2))

# The reports name the overrides, in order.
[ "$(sed -n 's/^set: //p' "$tmp/out" | tr '\n' '|')" = \
  "workload.rate=3|workers[1].count=3|bus.latency={dist: fixed, value: 4ms}|" ] ||
  fail "the text report's set lines: $(grep '^set' "$tmp/out")"
[ "$(jq -c .scenario.sets "$tmp/a.json")" = \
  '["workload.rate=3","workers[1].count=3","bus.latency={dist: fixed, value: 4ms}"]' ] ||
  fail "JSON sets: $(jq -c .scenario.sets "$tmp/a.json")"
expect 0 "$capsim" sim "$scn" --seed 5 --json "$tmp/b.json"
[ "$(jq -c .scenario.sets "$tmp/b.json")" = '[]' ] || fail "JSON sets without --set: $(jq -c .scenario.sets "$tmp/b.json")"
checks=$((checks + 3))

# Every --seeds process runs with the overrides.
expect 0 "$capsim" sim "$tmp/edited.yaml" --seed 6
edited6=$(hash "$tmp/out")
expect 0 "$capsim" sim "$scn" --seeds 5..6 --each --jobs 2 "${sets[@]}"
contains "$tmp/out" "seed 5: held, trace sha256 $edited"
contains "$tmp/out" "seed 6: held, trace sha256 $edited6"

# A violation found with overrides: the shrunk file reproduces it alone and
# says which overrides the original run had.
bug=sim/scenarios/throttle-storm.yaml
(cd "$tmp" && expect 1 "$OLDPWD/$capsim" sim "$OLDPWD/$bug" --bug dispatch-on-throttle \
   --set workload.burst.size=40 --set 'workers[0].count=6' --shrink-out shrunk.yaml)
contains "$tmp/out" "set: workload.burst.size=40"
contains "$tmp/shrunk.yaml" "# The original run had --set workload.burst.size=40 --set workers[0].count=6."
expect 1 "$capsim" sim "$tmp/shrunk.yaml" --bug dispatch-on-throttle --no-shrink
contains "$tmp/out" "VIOLATION dispatch-allowed"

# A bad override: exit 2, named, nothing run.
bad() {
  expect 2 "$capsim" sim "$scn" --set "$1"
  contains "$tmp/err" "capsim sim: --set $1: $2"
  lacks "$tmp/out" "trace:"
}
bad 'workload.rate=0' 'workload.rate: 0 out of range'
bad 'workload.rte=1' 'workload.rte: unknown key "rte"'
bad 'workers[7].count=1' 'workers: has 2 items: there is no [7]'
bad 'workload.rate.x=1' 'workload.rate: is a scalar, not a mapping'
bad 'workload.rate' "no '=' at offset 13"
bad 'workers[x]=1' 'want [N]'
bad 'bus.latency={dist: [}' 'did not find expected node content'
bad 'bus.latency={dist: fixed, median: 4ms}' 'bus.latency.median: unknown key "median"'

# --sweep: every variant is exactly the run --set gives it, in variant
# order (the first axis slowest) whatever the processes' order; the same
# output with one process or two; JSON with each variant's full report.
expect 0 "$capsim" sim "$scn" --seed 5 --sweep 'workload.rate=[3, 0.5]' \
  --sweep 'bus.latency=[{dist: fixed, value: 4ms}, {dist: fixed, value: 1ms}]' --jobs 2 --json "$tmp/sw.json"
cp "$tmp/out" "$tmp/sweep2.txt"
contains "$tmp/out" "sweep: workload.rate (2 values) x bus.latency (2 values): 4 variants, seed 5"
contains "$tmp/out" "4 variants: every invariant held"
[ "$(jq -r .format "$tmp/sw.json")" = capsim-sim-sweep-v1 ] || fail "sweep format"
[ "$(jq -r .held "$tmp/sw.json")" = true ] || fail "sweep held"
[ "$(jq -c '[.axes[] | .path]' "$tmp/sw.json")" = '["workload.rate","bus.latency"]' ] || fail "axes: $(jq -c .axes "$tmp/sw.json")"
i=0
for rate in 3 0.5; do
  for lat in '{dist: fixed, value: 4ms}' '{dist: fixed, value: 1ms}'; do
    i=$((i + 1))
    expect 0 "$capsim" sim "$scn" --seed 5 --set "workload.rate=$rate" --set "bus.latency=$lat"
    want=$(hash "$tmp/out")
    row=$(awk -v v=$i '$1 == v && NF > 5' "$tmp/sweep2.txt" | head -1)
    case "$row" in "$i "*"$rate "*"${want:0:16}") ;; *) fail "variant $i row: '$row', want rate $rate and trace ${want:0:16}" ;; esac
    [ "$(jq -r ".variants[$((i - 1))].report.trace.sha256" "$tmp/sw.json")" = "$want" ] ||
      fail "variant $i JSON trace differs from --set's $want"
    [ "$(jq -c ".variants[$((i - 1))].sets" "$tmp/sw.json")" = "[\"workload.rate=$rate\",\"bus.latency=$lat\"]" ] ||
      fail "variant $i sets: $(jq -c ".variants[$((i - 1))].sets" "$tmp/sw.json")"
  done
done
expect 0 "$capsim" sim "$scn" --seed 5 --sweep 'workload.rate=[3, 0.5]' \
  --sweep 'bus.latency=[{dist: fixed, value: 4ms}, {dist: fixed, value: 1ms}]' --jobs 1
cmp -s "$tmp/out" "$tmp/sweep2.txt" || fail "the sweep's output differs with --jobs 1: $(diff "$tmp/out" "$tmp/sweep2.txt" | head -5)"

# A variant that breaks an invariant: exit 1, and the command printed for
# it runs it alone to the same violation.
expect 1 "$capsim" sim "$bug" --bug dispatch-on-throttle --sweep 'workload.burst.size=[1, 40]'
contains "$tmp/out" "variant 2 breaks dispatch-allowed"
lacks "$tmp/out" "variant 1 breaks"
alone=$(sed -n 's/^run it alone (and shrink it): capsim //p' "$tmp/out")
[ -n "$alone" ] || fail "no command for the broken variant"
eval "expect 1 \"\$capsim\" $alone --no-shrink"
contains "$tmp/out" "VIOLATION dispatch-allowed"

# Sweeps refused before anything runs.
badsweep() {
  expect 2 "$capsim" sim "$scn" --sweep "$1" ${2:+"$2"} ${3:+"$3"}
  contains "$tmp/err" "$4"
  lacks "$tmp/out" "variant"
}
badsweep 'workload.rate=5' '' '' "want a list of 1 to 64 values"
badsweep 'workload.rate=[]' '' '' "want a list of 1 to 64 values"
badsweep 'workload.rate=[1, 0]' '' '' "capsim sim: --sweep workload.rate: the value 0: workload.rate: 0 out of range"
badsweep 'workload.rat=[1]' '' '' 'workload.rat: unknown key "rat"'
badsweep 'workload.rate=[1]' --seeds 1..2 "it does not take --seeds"
badsweep 'workload.rate=[1]' --trace "$tmp/x.bin" "it does not take --trace"
expect 2 "$capsim" sim "$scn" --sweep "workload.rate=[$(seq -s, 1 20)]" --sweep "workers[1].count=[$(seq -s, 1 20)]"
contains "$tmp/err" "more than 256 variants"

echo "e2e_sim_set: $checks checks passed"
