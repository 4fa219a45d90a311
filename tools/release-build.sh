#!/usr/bin/env bash
# make release: the release build (docs/simulator.md "Release build"), with
# link-time and profile-guided optimisation, in two passes over one build
# directory:
#   1. every object compiled with -fprofile-generate; the instrumented
#      capsim runs the training workload below and writes a profile (.gcda)
#      beside each object;
#   2. the objects deleted (not the profiles) and compiled again with
#      -fprofile-use, then capsim and the benchmarks linked.
# Both passes use the same directory because GCC matches a static function's
# profile through the object's path. The tree's sources, the Makefile, this
# script and the compiler's version are hashed into DIR/.release-key; when
# they have not changed since the last complete build, nothing is rebuilt.
#
# The training workload is what the release build is for: a 120 s slice of
# the benchmark's workload (its steady-state paths), then every ready
# scenario once (the paths the slice never takes). A run is single-threaded
# and deterministic, so the profile, and with it the binary, depends only on
# the tree and the compiler.
#
# usage: tools/release-build.sh DIR MAKE_TARGETS...   (run from the project root)
set -euo pipefail
dir=${1:?release build directory}
shift
make=${MAKE:-make}
lto="-O2 -flto=auto"

key=$( { gcc --version; cat Makefile "$0";
         find proto reference sim conformance tools bench -type f \( -name '*.c' -o -name '*.h' -o -name '*.proto' -o -name '*.yaml' \) -print0 |
             sort -z | xargs -0 sha256sum; } | sha256sum | cut -d' ' -f1)
if [ -f "$dir/.release-key" ] && [ "$(cat "$dir/.release-key")" = "$key" ]; then
    ok=1
    for t in "$@"; do [ -e "$t" ] || ok=0; done
    if [ "$ok" = 1 ]; then
        echo "release: $dir is up to date"
        exit 0
    fi
fi
rm -rf "$dir"

echo "release: pass 1 of 2, instrumented build"
"$make" --no-print-directory BUILD="$dir" OPT="$lto -fprofile-generate -fprofile-update=single" \
    EXTRA_LDFLAGS="$lto -fprofile-generate" "$dir/capsim"

echo "release: training run"
train() {
    if ! "$dir/capsim" "$@" > /dev/null 2> "$dir/train.err"; then
        echo "release: training run failed: capsim $*" >&2
        cat "$dir/train.err" >&2
        exit 1
    fi
}
train sim bench/sim-large.yaml --seed 1 --duration 120s
for s in sim/scenarios/*.yaml; do
    train sim "$s" --seed 1
done
n=$(find "$dir/obj" -name '*.gcda' | wc -l)
[ "$n" -gt 0 ] || { echo "release: the training run wrote no profile" >&2; exit 1; }
echo "release: $n object profiles"

echo "release: pass 2 of 2, optimised build"
find "$dir" -name '*.o' -delete
rm -f "$dir/libcapsim.a" "$dir/capsim"
# Warnings do not stop this pass (-w): the regular build compiles the same
# code with -Werror; what only this pass adds are GCC's notes on functions
# the training never ran and link-time false positives.
"$make" --no-print-directory BUILD="$dir" OPT="$lto -fprofile-use -fprofile-partial-training" \
    EXTRA_CFLAGS=-w EXTRA_LDFLAGS="$lto -fprofile-use -w" "$@"
echo "$key" > "$dir/.release-key"
echo "release: $dir built"
