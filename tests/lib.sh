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
