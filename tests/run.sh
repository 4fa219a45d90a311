#!/usr/bin/env bash
# Runs every unit-test binary given as an argument and every tests/e2e_*.sh,
# each in its own process with a time limit, then prints one summary line.
set -u
here=$(cd "$(dirname "$0")" && pwd)
limit=${TEST_TIMEOUT:-300}
passed=0 failed=0 failures=()

run_one() {
  local name=$1; shift
  local log
  log=$(mktemp)
  if timeout "$limit" "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    printf 'PASS %s\n' "$name"
  else
    local rc=$?
    failed=$((failed + 1))
    failures+=("$name")
    printf 'FAIL %s (exit %d%s)\n' "$name" "$rc" "$([ "$rc" -eq 124 ] && echo ', timed out')"
    sed 's/^/    /' "$log"
  fi
  rm -f "$log"
}

for bin in "$@"; do
  run_one "$(basename "$bin")" "$bin"
done
for script in "$here"/e2e_*.sh; do
  [ -e "$script" ] || continue
  run_one "$(basename "$script")" bash "$script"
done

[ "${#failures[@]}" -gt 0 ] && printf 'failed: %s\n' "${failures[*]}"
printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
