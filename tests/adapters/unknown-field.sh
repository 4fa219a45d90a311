#!/usr/bin/env bash
# Answers the target case with a result carrying a field adapter-v1 does not have.
misbehave() { printf '{"type":"result","id":"%s","status":"PASS","confidence":"high"}\n' "$1"; }
. "$(dirname "$0")/lib.sh"
