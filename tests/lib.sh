# Helpers shared by the end-to-end scripts (sourced, after `cd` to the
# project root): a scratch directory removed on exit, and assertions that
# stop the script with a FAIL line naming what was expected.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
checks=0

fail() { echo "FAIL: $*" >&2; exit 1; }
# expect CODE CMD... : runs CMD, asserts its exit code; output in $tmp/out, $tmp/err.
expect() {
  local want=$1; shift
  set +e; "$@" >"$tmp/out" 2>"$tmp/err"; local got=$?; set -e
  [ "$got" -eq "$want" ] || fail "$* exited $got, expected $want; stderr: $(head -c 600 "$tmp/err")"
  checks=$((checks + 1))
}
contains() { grep -qF -- "$2" "$1" || fail "$1 lacks \"$2\": $(head -c 600 "$1")"; }
lacks() { ! grep -qF -- "$2" "$1" || fail "$1 has \"$2\""; }
# same_doc OPT FIRST CMD... : a run that holds, writing a document with OPT
# (--json, --junit), writes FIRST's bytes again, and with OPT - prints them
# alone on standard output (the text report going to standard error).
same_doc() {
  local opt=$1 first=$2; shift 2
  expect 0 "$@" "$opt" "$tmp/again.doc"
  cmp -s "$first" "$tmp/again.doc" || fail "the same run wrote a different $opt document"
  expect 0 "$@" "$opt" -
  cmp -s "$first" "$tmp/out" || fail "$opt - did not print the document alone: $(head -c 300 "$tmp/out")"
  contains "$tmp/err" "invariants: all held"
}
