#!/usr/bin/env bash
# capsim convert-trace: a trace goes from binary to JSONL and back to the
# same bytes and the same hash as the simulator's own files; a malformed
# trace is refused with its record number or line, and no --out file is
# left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
. tests/lib.sh
same() { cmp -s "$1" "$2" || fail "$1 and $2 differ"; checks=$((checks + 1)); }

# The simulator writes both encodings of one run (signed submits, replays,
# duplicates): each converts into the other byte for byte.
"$capsim" sim sim/scenarios/duplicates-replay.yaml --seed 4 --duration 20s \
  --trace "$tmp/run.bin" --jsonl "$tmp/run.jsonl" >"$tmp/sim.out"
hash=$(sed -n 's/^trace: \([0-9]*\) records, sha256 \([0-9a-f]*\)$/\2/p' "$tmp/sim.out")
records=$(sed -n 's/^trace: \([0-9]*\) records, .*/\1/p' "$tmp/sim.out")
[ -n "$hash" ] && [ "$records" -gt 50 ] || fail "the run's trace line: $(cat "$tmp/sim.out")"

expect 0 "$capsim" convert-trace "$tmp/run.bin" --out "$tmp/a.jsonl"
same "$tmp/a.jsonl" "$tmp/run.jsonl"
contains "$tmp/err" "$records records as JSONL, sha256 $hash"
expect 0 "$capsim" convert-trace "$tmp/run.jsonl" --out "$tmp/b.bin"
same "$tmp/b.bin" "$tmp/run.bin"
contains "$tmp/err" "$records records as binary, sha256 $hash"
# Standard input and output, the encodings named.
set +e
"$capsim" convert-trace - --from binary --to jsonl <"$tmp/run.bin" >"$tmp/c.jsonl" 2>"$tmp/err"
rc=$?
set -e
[ $rc -eq 0 ] || fail "stdin to stdout exited $rc: $(cat "$tmp/err")"
same "$tmp/c.jsonl" "$tmp/run.jsonl"
# The same encoding in and out copies the trace.
expect 0 "$capsim" convert-trace "$tmp/run.bin" --to binary --out "$tmp/d.bin"
same "$tmp/d.bin" "$tmp/run.bin"
# A golden case's trace round-trips too.
golden=conformance/cases/fatal-rollback/golden.jsonl
expect 0 "$capsim" convert-trace $golden --out "$tmp/g.bin"
expect 0 "$capsim" convert-trace "$tmp/g.bin" --out "$tmp/g.jsonl"
same "$tmp/g.jsonl" $golden

# A truncated binary trace: refused at the record it breaks off in, and the
# --out file does not appear (nor its temporary file).
size=$(stat -c %s "$tmp/run.bin")
head -c $((size - 7)) "$tmp/run.bin" >"$tmp/trunc.bin"
expect 2 "$capsim" convert-trace "$tmp/trunc.bin" --out "$tmp/trunc.jsonl"
contains "$tmp/err" "record $((records - 1)) at offset"
contains "$tmp/err" "truncated record"
[ -z "$(ls "$tmp" | grep '^trunc\.jsonl')" ] || fail "a refused conversion left $(ls "$tmp" | grep trunc.jsonl)"
# A JSONL line whose bytes and packet disagree: refused with its line.
awk 'NR == 3 { sub(/"senderId":"[^"]*"/, "\"senderId\":\"someone-else\"") } { print }' \
  "$tmp/run.jsonl" >"$tmp/bad.jsonl"
cmp -s "$tmp/bad.jsonl" "$tmp/run.jsonl" && fail "the edit of line 3 changed nothing"
expect 2 "$capsim" convert-trace "$tmp/bad.jsonl" --out "$tmp/bad.bin"
contains "$tmp/err" "line 3"
[ ! -e "$tmp/bad.bin" ] || fail "a refused conversion wrote bad.bin"
# Not a trace at all; usage errors.
printf 'hello\n' >"$tmp/hello.txt"
expect 2 "$capsim" convert-trace "$tmp/hello.txt"
contains "$tmp/err" "hello.txt"
expect 2 "$capsim" convert-trace "$tmp/missing.bin"
contains "$tmp/err" "missing.bin"
expect 2 "$capsim" convert-trace "$tmp/run.bin" --to xml
contains "$tmp/err" '--to: "xml" is not binary or jsonl'
expect 2 "$capsim" convert-trace
expect 2 "$capsim" convert-trace "$tmp/run.bin" --max-packet 10 --out "$tmp/small.jsonl"
contains "$tmp/err" "record 0"
expect 0 "$capsim" convert-trace --help
contains "$tmp/out" "usage: capsim convert-trace"

echo "e2e_convert_trace: $checks checks passed"
