#!/usr/bin/env bash
# Installs every Debian package capsim builds, tests, fuzzes or runs with.
# Already installed: exits 0 at once. Missing and root: apt-get installs them.
# Missing and not root: prints the exact apt-get line to run and exits 1.
set -euo pipefail

packages=(
  make gcc pkg-config                          # build
  protobuf-c-compiler libprotobuf-c-dev        # schema code generation, runtime
  protobuf-compiler libprotobuf-dev            # timestamp.proto; independent encoder/decoder in tests
  libcjson-dev                                 # JSON form
  libssl-dev                                   # SHA-256, ECDSA P-256
  libyaml-dev                                  # policy and scenario files
  libuv1-dev                                   # child processes of the conformance harness
  nats-server libnats-dev                      # real-bus certification
  libcmocka-dev                                # unit tests
  jq                                           # JSON report checks in the end-to-end tests
  libxml2-utils                                # xmllint: well-formedness of the HTML report in the tests
  gcovr                                        # coverage reports
  clang llvm libclang-rt-14-dev afl++          # fuzzing (libFuzzer, AFL++)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "capsim: missing Debian packages: ${missing[*]}" >&2
  echo "capsim: run as root, then run make again:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "capsim: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
