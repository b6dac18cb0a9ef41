#!/bin/bash
# valgrind-interop.sh - ktls-serve and ktls-client under valgrind, talking
# TLS 1.2 and 1.3 (with KeyUpdates) over loopback, and ktls-client's error
# exit when nothing listens; any valgrind error fails.
set -euo pipefail
cpids=()
top=$(cd "$(dirname "$0")/.." && pwd)
b=${KTLS_BUILDDIR:-$top/_build}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 2 2>/dev/null
vg=("$b/libtool" --mode=execute valgrind -q --error-exitcode=99 --leak-check=full
	--errors-for-leak-kinds=definite)
# --port 0: the kernel picks a free port and the server prints it (a port
# picked here at random could be taken, e.g. by a connection in TIME_WAIT)
listening() {	# SERVER-PID STDERR-FILE: prints the port
	local p=
	for _ in $(seq 600); do
		p=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\)$/\1/p' "$2")
		[ -n "$p" ] && break
		kill -0 "$1" 2>/dev/null || break
		sleep 0.2
	done
	[ -n "$p" ] || {
		echo "valgrind-interop: ktls-serve did not listen within 120 s:" >&2
		cat "$2" >&2
		return 1
	}
	echo "$p"
}
"${vg[@]}" "$b/apps/ktls-serve" --cert "$tmp/cert.pem" --key "$tmp/key.pem" --port 0 \
	--echo --max-conns 2 2>"$tmp/serve.err" &
spid=$!
port=$(listening $spid "$tmp/serve.err")
"${vg[@]}" "$b/apps/ktls-client" --tls1_2 --bytes 2M "127.0.0.1:$port" 2>"$tmp/c1.err" ||
	{ cat "$tmp/c1.err"; exit 1; }
"${vg[@]}" "$b/apps/ktls-client" --tls1_3 --bytes 2M --keyupdate-every 8 \
	--keyupdate-requested "127.0.0.1:$port" 2>"$tmp/c2.err" || { cat "$tmp/c2.err"; exit 1; }
wait $spid || { cat "$tmp/serve.err"; exit 1; }
# an error exit frees what it made too: the server is gone, so the connect
# fails (exit 3; valgrind's own error status is 99)
rc=0
"${vg[@]}" "$b/apps/ktls-client" "127.0.0.1:$port" 2>"$tmp/c3.err" || rc=$?
[ $rc = 3 ] || { echo "ktls-client with no server: exit $rc, expected 3"; cat "$tmp/c3.err"; exit 1; }
# the io_uring server, three connections at once (this host has no kTLS:
# each hand-off is refused and the ring serves it through libssl)
"${vg[@]}" "$b/apps/ktls-serve" --cert "$tmp/cert.pem" --key "$tmp/key.pem" --port 0 \
	--uring --max-conns 3 2>"$tmp/ring.err" &
spid=$!
port=$(listening $spid "$tmp/ring.err")
for i in 1 2 3; do
	"$b/apps/ktls-client" --tls1_3 --bytes 1M --keyupdate-every 8 "127.0.0.1:$port" \
		2>"$tmp/r$i.err" &
	cpids+=($!)
done
for p in "${cpids[@]}"; do wait "$p" || { cat "$tmp"/r*.err; exit 1; }; done
wait $spid || { cat "$tmp/ring.err"; exit 1; }
grep -q 'ring: 3 connections, 0 failed' "$tmp/ring.err" || { cat "$tmp/ring.err"; exit 1; }
echo "valgrind: ktls-serve <-> ktls-client (TLS 1.2, TLS 1.3 + KeyUpdates), a failed" \
	"connect, and ktls-serve --uring with three connections at once: clean"
