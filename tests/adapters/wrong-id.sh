#!/usr/bin/env bash
# Answers the target case with another case's id.
misbehave() { printf '{"type":"result","id":"%s-not","status":"PASS"}\n' "$1"; }
. "$(dirname "$0")/lib.sh"
