#!/usr/bin/env bash
# Exits with status 3 (after a line on stderr) instead of answering the target case.
misbehave() { echo "crash.sh: simulated crash on $1" >&2; exit 3; }
. "$(dirname "$0")/lib.sh"
