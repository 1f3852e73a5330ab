#!/usr/bin/env bash
# The wasmgate demo: a Go guest fetches two URLs from a loopback server under
# demo/policy.toml. The first (a name the policy allows) succeeds; the second
# (an address the policy does not allow) is denied before any packet leaves,
# and the server never sees it. The audit log shows both decisions.
#
# Needs Linux (the server also listens on 127.0.0.2) and Go.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
server=
cleanup() {
	if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "building wasmgate, the guest (GOOS=wasip1) and the server ..."
go build -o "$tmp/wasmgate" ./cmd/wasmgate
GOOS=wasip1 GOARCH=wasm go build -o "$tmp/guest.wasm" ./demo/guest
go build -o "$tmp/server" ./demo/server

"$tmp/server" >"$tmp/port" 2>"$tmp/server.log" &
server=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
if [ ! -s "$tmp/port" ]; then
	echo "demo: the server did not start:" >&2
	cat "$tmp/server.log" >&2
	exit 1
fi
port=$(cat "$tmp/port")
good="http://api.demo.test:$port/"
bad="http://127.0.0.2:$port/"

echo
echo "== the policy (demo/policy.toml, comments removed):"
grep -v '^#' demo/policy.toml | sed '/^$/d; s/^/   /'
echo
echo "== a loopback server listens on 127.0.0.1:$port and 127.0.0.2:$port"
echo
echo "\$ wasmgate run --policy demo/policy.toml --audit audit.jsonl guest.wasm $good $bad"
set +e
"$tmp/wasmgate" run --policy demo/policy.toml --audit "$tmp/audit.jsonl" "$tmp/guest.wasm" \
	"$good" "$bad" >"$tmp/guest.out" 2>"$tmp/wasmgate.err"
code=$?
set -e
echo "-- the guest's output:"
cat "$tmp/guest.out"
echo "-- wasmgate on stderr (one hint per denied destination):"
cat "$tmp/wasmgate.err"
echo "-- exit code $code (the guest exits with its number of failed GETs)"
echo
echo "== the audit log (audit.jsonl), one JSON record per policy decision:"
cat "$tmp/audit.jsonl"
echo
echo "== what the server saw:"
cat "$tmp/server.log"
if grep -q "127.0.0.2:$port accepted" "$tmp/server.log"; then
	echo "demo: FAILED: the denied connection reached the server" >&2
	exit 1
fi
echo "(nothing on 127.0.0.2: the denied connect never left wasmgate)"

# The story above must be the real one: fail loudly if it is not.
if [ "$code" != 1 ] || ! grep -q '200 OK' "$tmp/guest.out" ||
	! grep -q 'wasmgate: denied tcp.connect 127.0.0.2' "$tmp/wasmgate.err"; then
	echo "demo: FAILED: unexpected result (see above)" >&2
	exit 1
fi
