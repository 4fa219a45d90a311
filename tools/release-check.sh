#!/usr/bin/env bash
# make release-check: the release build must behave exactly as the regular
# one. Runs every ready scenario (seeds 1 and 2) and a 120 s slice of the
# benchmark's workload with both binaries and compares their whole output
# (summary and trace hash) byte for byte. Exit 0 when all are identical.
#
# usage: tools/release-check.sh REGULAR_CAPSIM RELEASE_CAPSIM
set -uo pipefail
a=${1:?regular capsim}
b=${2:?release capsim}
for bin in "$a" "$b"; do
    [ -x "$bin" ] || { echo "release-check: $bin is missing" >&2; exit 2; }
done
runs=0
fail=0
check() {
    local out_a out_b
    out_a=$("$a" sim "$@" 2>&1)
    out_b=$("$b" sim "$@" 2>&1)
    runs=$((runs + 1))
    if [ "$out_a" != "$out_b" ]; then
        echo "release-check: capsim sim $* differs between $a and $b:" >&2
        diff <(printf '%s\n' "$out_a") <(printf '%s\n' "$out_b") | head -20 >&2
        fail=1
    fi
}
for s in sim/scenarios/*.yaml; do
    for seed in 1 2; do
        check "$s" --seed "$seed"
    done
done
check bench/sim-large.yaml --seed 1 --duration 120s
if [ "$fail" = 0 ]; then
    echo "release-check: $runs runs, every output identical"
fi
exit "$fail"
