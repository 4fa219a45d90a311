#!/usr/bin/env bash
# capsim swarm (docs/swarm.md): a scenario drawn from every seed.
#  1. a seed draws the same files every time, and they load and run with
#     plain `capsim sim` to the hash the swarm reports for that seed;
#  2. 400 seeds hold every invariant on the reference, and give the same
#     per-seed hashes when run again (other processes, other order);
#  3. the held seeds leave no files behind; --keep keeps them;
#  4. every injected bug the simulator can reach is caught by the swarm
#     within its seed range, and the shrunk scenario it writes breaks the
#     same invariant on its own and holds without the bug;
#  5. the regression scenarios in tests/regressions/ (shrunk swarm finds,
#     each naming the fix) hold every invariant;
#  6. bad options are usage errors.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
. tests/lib.sh

# 1. determinism of the draw, and the files run as they are
expect 0 "$capsim" swarm --seed 17 --generate --out "$tmp/a"
contains "$tmp/out" "$tmp/a/seed-17/scenario.yaml"
expect 0 "$capsim" swarm --seed 17 --generate --out "$tmp/b"
diff -r "$tmp/a/seed-17" "$tmp/b/seed-17" >/dev/null || fail "seed 17 drew two different cases"
[ -f "$tmp/a/seed-17/policy-0.yaml" ] || fail "seed 17 wrote no policy"
expect 0 "$capsim" swarm --seed 18 --generate --out "$tmp/a"
cmp -s "$tmp/a/seed-17/scenario.yaml" "$tmp/a/seed-18/scenario.yaml" && fail "seeds 17 and 18 drew the same scenario"
expect 0 "$capsim" sim "$tmp/a/seed-17/scenario.yaml" --seed 17
hash17=$(sed -n 's/^trace: .* sha256 //p' "$tmp/out")
[ -n "$hash17" ] || fail "no trace hash for seed 17"
contains "$tmp/out" "invariants: all held"

# 2. many seeds, twice
expect 0 "$capsim" swarm --seeds 1..400 --each --out "$tmp/many"
contains "$tmp/out" "400 seeds (1..400): every invariant held"
grep '^seed ' "$tmp/out" | sort > "$tmp/each1"
[ "$(wc -l < "$tmp/each1")" -eq 400 ] || fail "expected 400 seed lines, got $(wc -l < "$tmp/each1")"
grep -q "^seed 17: held, trace sha256 $hash17\$" "$tmp/each1" || fail "seed 17 hashed otherwise in the swarm than alone"
expect 0 "$capsim" swarm --seeds 1..400 --each --jobs 1 --out "$tmp/many"
grep '^seed ' "$tmp/out" | sort > "$tmp/each2"
cmp -s "$tmp/each1" "$tmp/each2" || fail "a second swarm over 1..400 gave other hashes"

# 3. files of held seeds
[ ! -e "$tmp/many" ] || fail "held seeds left files: $(ls "$tmp/many" | head -3)"
mkdir "$tmp/own" && touch "$tmp/own/mine"
expect 0 "$capsim" swarm --seeds 1..2 --out "$tmp/own"
[ -f "$tmp/own/mine" ] || fail "the swarm removed a file of its --out directory"
expect 0 "$capsim" swarm --seeds 3..4 --keep --out "$tmp/kept"
[ -f "$tmp/kept/seed-3/scenario.yaml" ] && [ -f "$tmp/kept/seed-4/policy-0.yaml" ] ||
  fail "--keep did not keep the files"

# 4. the injected bugs: the swarm finds each within the seeds given
#   bug                    seeds     invariant
table="
dispatch-on-throttle       1..60     dispatch-allowed
handler-twice              1..60     handler-once
accept-stale-attempt       1..3000   handler-once
retry-fatal                1..60     one-terminal
lose-journal-tail          1..60     restart
rollback-oldest-first      1..60     compensation
accept-conflict            1..60     conflict-refused
forget-replay-store        1..2000   conflict-refused
checkpoint-from-heartbeat  1..60     checkpoint
"
while read -r bug seeds inv; do
  [ -n "$bug" ] || continue
  out="$tmp/bug-$bug"
  expect 1 "$capsim" swarm --seeds "$seeds" --bug "$bug" --out "$out"
  contains "$tmp/out" "breaks $inv:"
  seed=$(sed -n 's/^.* seeds run; seed \([0-9]*\) breaks.*/\1/p' "$tmp/out")
  [ -n "$seed" ] || fail "$bug: no failing seed in: $(head -c 300 "$tmp/out")"
  shrunk="$out/seed-$seed/shrunk.yaml"
  [ -f "$shrunk" ] || fail "$bug: no shrunk scenario at $shrunk"
  [ -f "$out/seed-$seed/scenario.yaml" ] || fail "$bug: the drawn scenario was not kept"
  expect 1 "$capsim" sim "$shrunk" --seed "$seed" --bug "$bug" --no-shrink
  contains "$tmp/out" "VIOLATION $inv:"
  expect 0 "$capsim" sim "$shrunk" --seed "$seed" --no-shrink
  contains "$tmp/out" "invariants: all held"
done <<< "$table"
# every bug the binary knows has a row here or is one the simulator cannot
# reach (tests/e2e_sim_bugs.sh holds that list)
for bug in $("$capsim" sim --list-bugs | awk '{print $1}'); do
  case "$bug" in accept-backward|accept-malformed|lowest-version) continue ;; esac
  grep -q "^$bug " <<< "$table" || fail "the swarm has no row for the bug $bug"
done

# 5. regressions
n=0
for f in tests/regressions/*.yaml; do
  seed=$(sed -n 's/^seed: *//p' "$f")
  expect 0 "$capsim" sim "$f" --seed "$seed" --no-shrink
  contains "$tmp/out" "invariants: all held"
  n=$((n + 1))
done
[ "$n" -ge 8 ] || fail "expected at least 8 regression scenarios, found $n"
# the summary adds up the counts of every scheduler incarnation: job-2 and
# job-3 were answered as duplicates before the crash
expect 0 "$capsim" sim tests/regressions/resubmit-after-duplicate.yaml
contains "$tmp/out" "duplicates answered 2,"
contains "$tmp/out" "succeeded 2,"

# 6. usage
expect 2 "$capsim" swarm --seeds 5..1
contains "$tmp/err" "want A..B"
expect 2 "$capsim" swarm --generate
contains "$tmp/err" "--generate goes with --seed N"
expect 2 "$capsim" swarm --out ""
expect 2 "$capsim" swarm --bug no-such-bug
expect 2 "$capsim" swarm --seed x
expect 2 "$capsim" swarm extra
echo "e2e_swarm: ok ($checks checks)"
