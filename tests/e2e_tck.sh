#!/usr/bin/env bash
# capsim tck run | list | matrix and capsim adapter, end to end: the seven
# upstream suites against the reference adapter (both roles, both
# profiles), the report formats, misbehaving adapters (tests/adapters/),
# the mutants, byte-stable --deterministic reports, exit codes 0/1/2.
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=$(cd "$(dirname "${CAPSIM:-build/capsim}")" && pwd)/$(basename "${CAPSIM:-build/capsim}")
tck=../shared/tck
adapters=$PWD/tests/adapters
. tests/lib.sh

# Cases the reference adapter may answer UNSUPPORTED: none (every upstream
# case is answered by driving the reference components).
unsupported_ok=()


py=${TCK_PYTHON-$(command -v python3 || true)}
# Checks a report against report.schema.json (python3), or its key shape (jq), or a few keys (grep).
check_schema() {
  if [ -n "$py" ]; then
    "$py" - "$tck/report.schema.json" "$1" <<'PY' || fail "$1 does not fit report.schema.json"
import json, sys
schema = json.load(open(sys.argv[1]))
def pairs_hook(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise SystemExit("duplicate key in report")
    return dict(pairs)
report = json.load(open(sys.argv[2]), object_pairs_hook=pairs_hook)
def resolve(s):
    return resolve(schema["$defs"][s["$ref"].split("/")[-1]]) if "$ref" in s else s
def check(s, v, path):
    s = resolve(s)
    t = s.get("type")
    ok = {"object": lambda x: isinstance(x, dict), "array": lambda x: isinstance(x, list),
          "string": lambda x: isinstance(x, str), "boolean": lambda x: isinstance(x, bool),
          "integer": lambda x: isinstance(x, int) and not isinstance(x, bool)}
    if t and not ok[t](v): raise SystemExit(f"{path}: not {t}")
    if "enum" in s and v not in s["enum"]: raise SystemExit(f"{path}: {v!r} not in enum")
    if "minimum" in s and v < s["minimum"]: raise SystemExit(f"{path}: below minimum")
    if t == "object":
        for k in s.get("required", []):
            if k not in v: raise SystemExit(f"{path}: missing {k}")
        props = s.get("properties", {})
        for k, x in v.items():
            if k in props: check(props[k], x, f"{path}.{k}")
            elif s.get("additionalProperties") is False: raise SystemExit(f"{path}: unexpected {k}")
            elif isinstance(s.get("additionalProperties"), dict): check(s["additionalProperties"], x, f"{path}.{k}")
    if t == "array":
        for i, x in enumerate(v): check(s["items"], x, f"{path}[{i}]")
check(schema, report, "$")
ids = [c["id"] for c in report["cases"]]
if ids != sorted(ids): raise SystemExit("cases not sorted by id")
PY
  elif command -v jq >/dev/null; then
    jq -e '(keys_unsorted - ["adapter","sdk","role","profile","transport","toolVersion","summary","cases"] == [])
           and (.summary | keys == ["conformant","error","fail","na","pass","total","unsupported"])
           and all(.cases[]; (keys_unsorted - ["id","profile","role","required","applicable","status","detail","durationMs","evidence"] == [])
                 and (.status | IN("PASS","FAIL","ERROR","UNSUPPORTED","N/A")))' "$1" >/dev/null \
      || fail "$1 does not have the report-v1 shape"
  else
    for k in '"adapter"' '"profile"' '"summary"' '"cases"' '"conformant"' '"durationMs"'; do contains "$1" "$k"; done
  fi
}

# Every applicable case of a report is PASS (or an allowed UNSUPPORTED).
check_all_pass() {
  local report=$1
  if [ -n "$py" ]; then
    "$py" - "$report" "${unsupported_ok[@]}" <<'PY' || fail "$report: an applicable case is not PASS"
import json, sys
r = json.load(open(sys.argv[1])); allowed = set(sys.argv[2:])
bad = [c for c in r["cases"] if c["applicable"] and c["status"] != "PASS"
       and not (c["status"] == "UNSUPPORTED" and c["id"] in allowed)]
for c in bad: print(c["id"], c["status"], c.get("detail", ""), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
  else
    # One case per "id" line; the status comes 5 lines later.
    local bad
    bad=$( (grep -A6 '"applicable": true' "$report" | grep '"status"' | grep -v '"PASS"' || true) | wc -l)
    [ "$bad" -eq 0 ] || fail "$report: an applicable case is not PASS"
  fi
}

# ---- usage and exit code 2 ----
expect 0 "$capsim" tck --help
contains "$tmp/out" "usage: capsim tck run"
expect 2 "$capsim" tck
expect 2 "$capsim" tck frobnicate
expect 2 "$capsim" tck run --adapter "x=$capsim"
contains "$tmp/err" "--suite FILE is required"
expect 2 "$capsim" tck run --suite $tck/core-safety.json
contains "$tmp/err" "exactly one --adapter"
expect 2 "$capsim" tck run --suite $tck/core-safety.json --adapter "noequals"
contains "$tmp/err" "want label=argv0"
expect 2 "$capsim" tck run --suite $tck/core-safety.json --adapter "x=$capsim" --deadline 30
contains "$tmp/err" "is not a duration"
expect 2 "$capsim" tck run --suite "$tmp/missing.json" --adapter "x=$capsim"
contains "$tmp/err" "missing.json: cannot open"
printf '{"version":1,"scenarios":[{"id":"a","role":"worker","profile":"core","extra":1}]}' >"$tmp/bad.json"
expect 2 "$capsim" tck run --suite "$tmp/bad.json" --adapter "x=$capsim"
contains "$tmp/err" "bad.json: scenarios[0]: unknown field \"extra\""
printf '{"version":1,"scenarios":[{"id":"a","role":"worker","profile":"core"},{"id":"a","role":"worker","profile":"core"}]}' >"$tmp/dup.json"
expect 2 "$capsim" tck list --suite "$tmp/dup.json"
contains "$tmp/err" "duplicate scenario id \"a\""
expect 2 "$capsim" adapter --role gateway
expect 2 "$capsim" adapter --mutant no-such-bug

# ---- list ----
expect 0 "$capsim" tck list --suite $tck/core-retries.json
[ "$(wc -l <"$tmp/out")" -eq 10 ] || fail "list: want 10 lines"
contains "$tmp/out" "$(printf 'retries/cp-ignores-stale-attempt-cancel\tcontrol-plane\tcap-production\trequired')"
expect 0 "$capsim" tck list --suite $tck/core-retries.json --profile core
[ ! -s "$tmp/out" ] || fail "list --profile core of a cap-production suite is not empty"

# ---- the seven suites, both roles, both profiles ----
applicable_total=0
for suite in $tck/core-*.json; do
  for role in worker control-plane; do
    for profile in core cap-production; do
      out=$tmp/$(basename "$suite" .json)-$role-$profile
      set +e
      "$capsim" tck run --suite "$suite" --adapter "ref=$capsim|adapter|--role|$role" --profile "$profile" \
        --json "$out.json" --junit "$out.xml" --deterministic >"$out.txt" 2>"$out.err"
      rc=$?
      set -e
      [ "$rc" -le 1 ] || fail "$suite $role $profile exited $rc: $(cat "$out.err")"
      check_schema "$out.json"
      check_all_pass "$out.json"
      contains "$out.xml" "<testsuite name=\"cap-tck.$profile\""
      contains "$out.txt" "ref [$profile] "
      n=$(grep -c '"applicable": true' "$out.json" || true)
      applicable_total=$((applicable_total + n))
      if [ "$n" -eq 0 ]; then
        [ "$rc" -eq 1 ] || fail "$suite $role $profile: zero applicable cases must exit 1"
        contains "$out.txt" "NON-CONFORMANT: "
        contains "$out.err" "nothing was checked, which is not conformant"
      fi
    done
  done
done
[ "$applicable_total" -eq 49 ] || fail "expected 49 applicable cases over all runs, got $applicable_total"

# A fully passing run exits 0 and says CONFORMANT; --json - prints the summary after the JSON.
expect 0 "$capsim" tck run --suite $tck/core-malformed.json --adapter "ref=$capsim|adapter" --json -
contains "$tmp/out" '"toolVersion": "capsim-tck/1"'
tail -n 1 "$tmp/out" | grep -qF "ref [core] CONFORMANT: 10 cases  pass=10 fail=0 error=0 unsupported=0 na=0" \
  || fail "summary line is not the last line of --json - output"
# Evidence comes from the reference components, not from the case.
contains "$tmp/out" '"decoder": "ERROR_CODE_PROTOCOL_MALFORMED_PACKET (101)'

# ---- deterministic reports are byte-identical ----
for i in 1 2; do
  "$capsim" tck run --suite $tck/core-lifecycle.json --adapter "ref=$capsim|adapter|--role|worker" \
    --json "$tmp/det$i.json" --junit "$tmp/det$i.xml" --deterministic >/dev/null
done
cmp "$tmp/det1.json" "$tmp/det2.json" || fail "--deterministic JSON reports differ"
cmp "$tmp/det1.xml" "$tmp/det2.xml" || fail "--deterministic JUnit reports differ"

# ---- matrix ----
expect 1 "$capsim" tck matrix --suite $tck/core-lifecycle.json \
  --adapter "w=$capsim|adapter|--role|worker" --adapter "m=$capsim|adapter|--mutant|accept-backward"
contains "$tmp/out" "w [core] CONFORMANT: 12 cases"
contains "$tmp/out" "m [core] NON-CONFORMANT: 12 cases"
expect 0 "$capsim" tck matrix --suite $tck/core-lifecycle.json \
  --adapter "w=$capsim|adapter|--role|worker" --adapter "c=$capsim|adapter|--role|control-plane"

# ---- misbehaving adapters: ERROR on the target case, the rest still PASS ----
target=malformed/empty-envelope
check_fault() {
  local name=$1 want=$2
  set +e
  "$capsim" tck run --suite $tck/core-malformed.json --adapter "$name=$adapters/$name.sh" --deadline 1s \
    --json "$tmp/$name.json" >"$tmp/$name.txt" 2>"$tmp/$name.err"
  local rc=$?
  set -e
  [ "$rc" -eq 1 ] || fail "$name: exit $rc, want 1"
  contains "$tmp/$name.txt" "$name [core] NON-CONFORMANT: 10 cases  pass=9 fail=0 error=1"
  check_schema "$tmp/$name.json"
  grep -A6 "\"id\": \"$target\"" "$tmp/$name.json" >"$tmp/$name.case"
  contains "$tmp/$name.case" '"status": "ERROR"'
  contains "$tmp/$name.case" "$want"
}
check_fault hang "no result within the 1s case deadline; adapter killed, restarted for the next case"
check_fault crash "adapter exited with status 3 before replying (stderr: crash.sh: simulated crash"
check_fault garbage "malformed adapter message: invalid JSON at offset 0"
check_fault longline "adapter sent a line longer than 1048576 bytes"
check_fault unknown-field 'malformed adapter message: unknown field \"confidence\"'
check_fault wrong-id 'result id \"malformed/empty-envelope-not\" does not match command id'
expect 1 "$capsim" tck run --suite $tck/core-malformed.json --adapter "nh=$adapters/no-handshake.sh"
contains "$tmp/err" 'adapter "nh": expected handshake, got "result"'
[ ! -s "$tmp/out" ] || fail "a failed handshake must not print a summary"
expect 1 "$capsim" tck run --suite $tck/core-malformed.json --adapter "gone=$tmp/no-such-adapter"
contains "$tmp/err" "cannot start adapter"
# The global timeout: the hang costs its case, the rest are not run.
expect 1 "$capsim" tck run --suite $tck/core-malformed.json --adapter "hang=$adapters/hang.sh" --deadline 5s --timeout 1s --json "$tmp/global.json"
contains "$tmp/global.json" "the global timeout (1s) expired"

# ---- every mutant turns at least one case FAIL ----
kill_mutant() {
  local mutant=$1 role=$2 suite=$3 profile=$4
  expect 1 "$capsim" tck run --suite "$tck/$suite" --adapter "m=$capsim|adapter|--role|$role|--mutant|$mutant" \
    --profile "$profile" --json "$tmp/mutant.json"
  grep -q '"status": "FAIL"' "$tmp/mutant.json" || fail "mutant $mutant: no case FAILs on $suite"
  contains "$tmp/mutant.json" "\"sdk\": \"capsim-reference+mutant:$mutant\""
}
kill_mutant accept-backward worker core-lifecycle.json core
kill_mutant dispatch-on-throttle control-plane core-safety.json core
kill_mutant handler-twice worker core-duplicates.json cap-production
kill_mutant accept-stale-attempt worker core-retries.json cap-production
kill_mutant accept-malformed worker core-malformed.json core
kill_mutant lowest-version control-plane core-negotiation.json core

echo "e2e_tck: ok"
