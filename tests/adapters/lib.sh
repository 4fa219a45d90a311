# Shared by the misbehaving test adapters: a well-behaved worker adapter
# (handshake, PASS for every run) that calls `misbehave ID` instead of
# answering for the case named by $TARGET (default malformed/empty-envelope).
# Each adapter script defines misbehave() and sources this file last.
TARGET=${TARGET:-malformed/empty-envelope}
handshake() {
  printf '{"type":"handshake","protocolVersion":1,"role":"worker","profiles":["core"],"sdk":"bash","transport":"none"}\n'
}
serve() {
  local line id
  IFS= read -r line || exit 0   # hello
  handshake
  while IFS= read -r line; do
    case $line in *'"type":"bye"'*) exit 0 ;; esac
    id=$(printf '%s' "$line" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
    [ -n "$id" ] || continue
    if [ "$id" = "$TARGET" ]; then
      misbehave "$id"
    else
      printf '{"type":"result","id":"%s","status":"PASS"}\n' "$id"
    fi
  done
}
serve
