#!/usr/bin/env bash
# Answers the target case with a line that is not JSON, after flooding
# stderr with 256 KiB (kept up to 64 KiB, the rest dropped; never blocks).
misbehave() { head -c 262144 /dev/zero | tr '\0' 'e' >&2; printf 'this is not json\n'; }
. "$(dirname "$0")/lib.sh"
