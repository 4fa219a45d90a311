#!/usr/bin/env bash
# capsim sim --set PATH=VALUE: an override makes the run exactly the run of
# the file edited to say so (same trace hash), in one run and in every
# --seeds process; the reports list the overrides; a violation found with
# overrides shrinks to a file that reproduces it with none; a bad override
# is a usage error naming it.
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

echo "e2e_sim_set: $checks checks passed"
