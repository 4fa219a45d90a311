#!/usr/bin/env bash
# Never answers the target case (sleeps, holding its pipes open).
misbehave() { sleep 1000; }
. "$(dirname "$0")/lib.sh"
