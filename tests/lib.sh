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
  grep -qE 'invariants: all held|every invariant held' "$tmp/err" ||
    fail "$opt -: the text report did not go to standard error: $(head -c 300 "$tmp/err")"
}
# XPath over one XML file: xq FILE EXPR prints the result, count FILE EXPR
# the number of nodes EXPR selects.
xq() { xmllint --xpath "$2" "$1" 2>/dev/null; }
count() { xq "$1" "count($2)"; }
# junit_reproduces XML DIR INVARIANT PREFIX : the "reproduce:" and "minimal
# reproduction:" commands of XML's JUnit failure start with PREFIX and,
# run as written in DIR with $capsim, break INVARIANT.
junit_reproduces() {
  local xml=$1 dir=$2 inv=$3 prefix=$4 top=$PWD what cmd
  for what in "reproduce" "minimal reproduction"; do
    cmd=$(xq "$xml" 'string(//failure)' | sed -n "s/^$what: //p")
    case "$cmd" in "$prefix"*) ;; *) fail "$what: no command starting '$prefix': '$cmd'" ;; esac
    (cd "$dir" && eval "\"$top/$capsim\" ${cmd#capsim } --no-shrink" >r.txt 2>&1) &&
      fail "$what: '$cmd' held" || true
    grep -q "VIOLATION $inv\|breaks $inv\|violation $inv" "$dir/r.txt" ||
      fail "$what: '$cmd' did not break $inv: $(tail -3 "$dir/r.txt")"
  done
}
