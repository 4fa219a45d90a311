#!/usr/bin/env bash
# The capsim command line: outputs, error lines and exit codes
# (0 ok, 1 input rejected, 2 usage or unreadable file).
set -euo pipefail
cd "$(dirname "$0")/.."
capsim=${CAPSIM:-build/capsim}
fx=conformance/fixtures
. tests/lib.sh

# Help and usage.
expect 0 "$capsim" --help
contains "$tmp/out" "decode"
for c in decode encode sign verify fixtures; do
  expect 0 "$capsim" $c --help
  contains "$tmp/out" "usage: capsim $c"
done
expect 2 "$capsim"
expect 2 "$capsim" no-such-command
contains "$tmp/err" 'unknown command "no-such-command"'
expect 2 "$capsim" decode
expect 2 "$capsim" decode --bogus $fx/buspacket_alert.bin
expect 2 "$capsim" decode "$tmp/does-not-exist.bin"
contains "$tmp/err" "cannot open"
expect 2 "$capsim" decode --max-string lots $fx/buspacket_alert.bin

# decode: binary -> the committed JSON form, from a file and from stdin.
for f in $fx/buspacket_*.bin; do
  expect 0 "$capsim" decode "$f"
  cmp -s "$tmp/out" "${f%.bin}.json" || fail "decode $f differs from its JSON form"
done
set +e; "$capsim" decode --strict - <$fx/buspacket_heartbeat.bin >"$tmp/out"; rc=$?; set -e
[ $rc -eq 0 ] && cmp -s "$tmp/out" $fx/buspacket_heartbeat.json || fail "decode from stdin"
expect 0 "$capsim" decode --compact $fx/buspacket_job_cancel.bin
[ "$(wc -l <"$tmp/out")" -eq 1 ] || fail "--compact is not one line"
expect 1 "$capsim" decode --max-string 4 $fx/buspacket_alert.bin
contains "$tmp/err" "ERROR_CODE_PROTOCOL_MALFORMED_PACKET (101): BusPacket.trace_id at offset 2: string of 11 bytes, over the bound of 4"

# Every malformed fixture is rejected with the code its manifest names.
n=0
while read -r file code; do
  expect 1 "$capsim" decode "$fx/$file"
  contains "$tmp/err" "($code)"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$file: the error is not one line"
  n=$((n + 1))
done < <(sed -n 's/.*"file": "\([^"]*\)", "error_code": \([0-9]*\).*/\1 \2/p' $fx/malformed/manifest.json)
[ $n -eq 10 ] || fail "manifest lists $n cases, expected 10"

# encode: JSON form -> the exact fixture bytes.
for f in $fx/buspacket_*.json; do
  expect 0 "$capsim" encode --out "$tmp/enc.bin" "$f"
  cmp -s "$tmp/enc.bin" "${f%.json}.bin" || fail "encode $f differs from its .bin"
done
echo '{"traceId": 5}' >"$tmp/bad.json"
expect 1 "$capsim" encode "$tmp/bad.json"
contains "$tmp/err" '$.traceId'
printf '{"traceId":"t","senderId":"s","createdAt":"2024-01-02T03:04:05Z","protocolVersion":1}' >"$tmp/nopayload.json"
expect 1 "$capsim" encode "$tmp/nopayload.json"
contains "$tmp/err" "(101): BusPacket.payload"
printf '{"traceId":"t"' >"$tmp/syntax.json"
expect 1 "$capsim" encode "$tmp/syntax.json"

# sign: the private key with scalar 1 (SEC1 DER, public key derived by OpenSSL)
# re-signs an unsigned fixture to the very same bytes: RFC 6979 is deterministic.
zeros=$(printf '\\x00%.0s' $(seq 31))
printf "\\x30\\x31\\x02\\x01\\x01\\x04\\x20${zeros}\\x01\\xa0\\x0a\\x06\\x08\\x2a\\x86\\x48\\xce\\x3d\\x03\\x01\\x07" >"$tmp/d1.der"
openssl ec -inform DER -in "$tmp/d1.der" -out "$tmp/d1.pem" 2>/dev/null || fail "cannot build the d = 1 key"
for name in job_request heartbeat handshake; do
  python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); del p["signature"]; print(json.dumps(p))' \
    $fx/buspacket_$name.json >"$tmp/unsigned.json"
  expect 0 "$capsim" encode --out "$tmp/unsigned.bin" "$tmp/unsigned.json"
  expect 1 "$capsim" verify --pub $fx/public_key.pem "$tmp/unsigned.bin"
  contains "$tmp/err" "(104)"
  expect 0 "$capsim" verify --optional --pub $fx/public_key.pem "$tmp/unsigned.bin"
  expect 0 "$capsim" sign --key "$tmp/d1.pem" --out "$tmp/signed.bin" "$tmp/unsigned.bin"
  cmp -s "$tmp/signed.bin" $fx/buspacket_$name.bin || fail "re-signing $name does not reproduce the fixture"
done
expect 2 "$capsim" sign --key $fx/public_key.pem $fx/buspacket_alert.bin
contains "$tmp/err" "a public key cannot sign"

# verify: good, flipped byte, wrong key.
expect 0 "$capsim" verify --pub $fx/public_key.pem $fx/buspacket_job_cancel.bin
contains "$tmp/out" "ok"
sed 's/user_request/user_requesT/' $fx/buspacket_job_cancel.bin >"$tmp/flipped.bin"
cmp -s "$tmp/flipped.bin" $fx/buspacket_job_cancel.bin && fail "the byte flip did nothing"
expect 1 "$capsim" verify --pub $fx/public_key.pem "$tmp/flipped.bin"
contains "$tmp/err" "(103)"
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/other.pem" 2>/dev/null
openssl ec -in "$tmp/other.pem" -pubout -out "$tmp/other.pub" 2>/dev/null
expect 1 "$capsim" verify --pub "$tmp/other.pub" $fx/buspacket_job_cancel.bin
contains "$tmp/err" "(103)"
openssl ecparam -name secp384r1 -genkey -noout -out "$tmp/p384.pem" 2>/dev/null
expect 2 "$capsim" verify --pub "$tmp/p384.pem" $fx/buspacket_job_cancel.bin

# CAP-PRODUCTION: sign once, verify the exact bytes against a trust binding.
cat >"$tmp/prod.json" <<'JSON'
{"traceId":"trace-prod","senderId":"sender-tck","createdAt":"2030-01-01T00:00:00Z",
 "protocolVersion":1,
 "signatureMetadata":{"profileVersion":"cap-production-v1","algorithm":"ECDSA-P256-SHA256",
   "messageId":"AAECAwQFBgcICQoLDA0ODw==","audience":"job.tools",
   "expiresAt":"2030-01-01T00:04:00Z","keyId":"k-1"},
 "identity":{"tenantId":"tenant-tck"},
 "jobCancel":{"jobId":"job-1"}}
JSON
expect 0 "$capsim" encode --out "$tmp/prod.bin" "$tmp/prod.json"
expect 0 "$capsim" sign --production --key "$tmp/d1.pem" --out "$tmp/prod.signed" "$tmp/prod.bin"
now=1893456000000000000
expect 0 "$capsim" verify --production --pub $fx/public_key.pem --audience job.tools --key-id k-1 \
  --tenant tenant-tck --sender sender-tck --now $now "$tmp/prod.signed"
contains "$tmp/out" "signed-body sha256"
expect 1 "$capsim" verify --production --pub $fx/public_key.pem --audience job.other --key-id k-1 \
  --now $now "$tmp/prod.signed"
expect 1 "$capsim" verify --production --pub $fx/public_key.pem --audience job.tools --key-id k-1 \
  --now 1893459999000000000 "$tmp/prod.signed"
expect 2 "$capsim" verify --production --pub $fx/public_key.pem "$tmp/prod.signed"

# fixtures: the committed set checks; a tampered copy does not.
expect 0 "$capsim" fixtures --check
contains "$tmp/out" "0 failed"
cp -r $fx "$tmp/fx"
printf 'X' | dd of="$tmp/fx/buspacket_alert.bin" bs=1 seek=20 conv=notrunc 2>/dev/null
expect 1 "$capsim" fixtures --check --dir "$tmp/fx"
contains "$tmp/out" "buspacket_alert.bin: drift"
expect 0 "$capsim" fixtures --write --dir "$tmp/fx2"
diff -r $fx "$tmp/fx2" >/dev/null || fail "fixtures --write differs from the committed set"

echo "e2e_cli: $checks command checks passed"
