#!/usr/bin/env bash
# capsim policy lint | explain | snapshot: outputs, error lines naming
# FILE:LINE:COLUMN and the key, and exit codes (0 ok, 1 rejected, 2 usage).
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
pol=reference/policies
. tests/lib.sh

# Usage.
expect 0 "$capsim" policy --help
contains "$tmp/out" "usage: capsim policy lint"
expect 2 "$capsim" policy
expect 2 "$capsim" policy frobnicate $pol/example.yaml
expect 2 "$capsim" policy lint
expect 2 "$capsim" policy explain $pol/example.yaml
contains "$tmp/err" "--job"
expect 2 "$capsim" policy lint "$tmp/missing.yaml"
expect 2 "$capsim" policy explain - --job -

# lint: clean example, then warnings, then an error with its place.
expect 0 "$capsim" policy lint $pol/example.yaml
contains "$tmp/out" "4 rule(s), 0 warning(s), snapshot v1:"
expect 0 "$capsim" policy lint $pol/tenants.yaml
cat >"$tmp/warn.yaml" <<'YAML'
default_decision: alow
rules:
- id: all
  decision: allow
- id: later
  decision: deny
  match: {topics: [job.x]}
YAML
expect 0 "$capsim" policy lint "$tmp/warn.yaml"
contains "$tmp/out" "$tmp/warn.yaml:1:19: warning: default_decision \"alow\""
contains "$tmp/out" "$tmp/warn.yaml:3:3: warning: rule \"all\" matches every request"
contains "$tmp/out" "[shadowed]"
expect 1 "$capsim" policy lint --werror "$tmp/warn.yaml"
expect 0 "$capsim" policy lint --json "$tmp/warn.yaml"
contains "$tmp/out" '"code":	"unreachable-default"'
printf 'rules:\n- id: a\n  decision: alow\n' >"$tmp/bad.yaml"
expect 1 "$capsim" policy lint "$tmp/bad.yaml"
contains "$tmp/err" "$tmp/bad.yaml:3:13: rules[0].decision: \"alow\" is not a decision"
printf 'rules:\n- {id: a, decision: deny}\n- {id: a, decision: allow}\n' >"$tmp/dup.yaml"
expect 1 "$capsim" policy lint "$tmp/dup.yaml"
contains "$tmp/err" ":3:8: rules[1].id: duplicate rule id \"a\""
printf 'rules: [\n' >"$tmp/yaml.yaml"
expect 1 "$capsim" policy lint "$tmp/yaml.yaml"
contains "$tmp/err" "$tmp/yaml.yaml:2:1:"
expect 1 "$capsim" policy snapshot - <"$tmp/bad.yaml"
contains "$tmp/err" "<stdin>:3:13"

# snapshot: stable across spellings, changed by meaning.
expect 0 "$capsim" policy snapshot $pol/example.yaml
snap=$(cat "$tmp/out")
sed -e 's/decision: deny/decision: block/' -e 's/^#.*//' $pol/example.yaml >"$tmp/respelled.yaml"
expect 0 "$capsim" policy snapshot "$tmp/respelled.yaml"
[ "$(cat "$tmp/out")" = "$snap" ] || fail "respelling changed the snapshot"
sed 's/max_runtime_sec: 120/max_runtime_sec: 121/' $pol/example.yaml >"$tmp/changed.yaml"
expect 0 "$capsim" policy snapshot "$tmp/changed.yaml"
[ "$(cat "$tmp/out")" != "$snap" ] || fail "a budget change kept the snapshot"
expect 0 "$capsim" policy snapshot --canonical $pol/example.yaml
contains "$tmp/out" '"maxRuntimeMs":"120000"'

# explain: the example's five outcomes, from a JobRequest and a BusPacket.
job() { printf '%s' "$2" >"$tmp/$1.json"; }
job read '{"jobId":"r1","topic":"job.tools.fs","labels":{"mcp.action":"read"}}'
job write '{"jobId":"w1","topic":"job.tools.fs","labels":{"mcp.action":"write"},"meta":{"riskTags":["prod"]}}'
job delete '{"jobId":"d1","topic":"job.tools.fs","labels":{"mcp.action":"delete"}}'
job batch '{"jobId":"b1","topic":"job.batch.nightly"}'
job other '{"jobId":"o1","topic":"job.misc"}'
expect 0 "$capsim" policy explain $pol/example.yaml --job "$tmp/read.json"
contains "$tmp/out" "decision: ALLOW"
contains "$tmp/out" "rule:     allow-read-path"
expect 0 "$capsim" policy explain $pol/example.yaml --job "$tmp/write.json"
contains "$tmp/out" "decision: REQUIRE_HUMAN"
contains "$tmp/out" "approval required, ref w1"
contains "$tmp/out" "+ risk_tags        job has risk tag \"prod\""
expect 0 "$capsim" policy explain $pol/example.yaml --job "$tmp/delete.json"
contains "$tmp/out" "decision: DENY"
contains "$tmp/out" "rule:     deny-destructive"
expect 0 "$capsim" policy explain --json $pol/example.yaml --job "$tmp/batch.json"
contains "$tmp/out" '"decision":	"ALLOW_WITH_CONSTRAINTS"'
contains "$tmp/out" '"maxRuntimeMs":	"120000"'
expect 0 "$capsim" policy explain $pol/example.yaml --job - <"$tmp/other.json"
contains "$tmp/out" "decision: DENY"
contains "$tmp/out" "decided by: default"
printf '{"traceId":"t","senderId":"s","protocolVersion":1,"jobRequest":{"jobId":"p1","topic":"job.tools.fs","labels":{"mcp.action":"read"}}}' >"$tmp/packet.json"
expect 0 "$capsim" policy explain $pol/example.yaml --job "$tmp/packet.json"
contains "$tmp/out" "rule:     allow-read-path"
printf '{"jobId": 5}' >"$tmp/badjob.json"
expect 1 "$capsim" policy explain $pol/example.yaml --job "$tmp/badjob.json"
contains "$tmp/err" "jobId"

# Tenant caps through --active.
printf '{"jobId":"a1","topic":"job.tools.x","tenantId":"globex","labels":{"mcp.action":"read"}}' >"$tmp/globex.json"
expect 0 "$capsim" policy explain $pol/tenants.yaml --job "$tmp/globex.json" --active globex=2
contains "$tmp/out" "decision: THROTTLE"
contains "$tmp/out" "max_concurrent_jobs of 2"
expect 0 "$capsim" policy explain $pol/tenants.yaml --job "$tmp/globex.json" --active globex=1
contains "$tmp/out" "decision: ALLOW"
expect 2 "$capsim" policy explain $pol/tenants.yaml --job "$tmp/globex.json" --active globex
echo "e2e_policy: ok"
