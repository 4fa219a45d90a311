#!/usr/bin/env bash
# Answers the target case with a 2 MiB line.
misbehave() { head -c 2097152 /dev/zero | tr '\0' 'x'; printf '\n'; }
. "$(dirname "$0")/lib.sh"
