#!/bin/bash
# demo.sh - the main job: boot Debian 12's own 6.1 kernel in qemu and show
# the probe, an offloaded TLS 1.2 transfer, a TLS 1.3 connection that
# survives KeyUpdates, and a fallback with its reason.  Installs its own
# dependencies; safe to run again.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/deps.sh
scripts/build.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
	-keyout "$tmp/certs/key.pem" -out "$tmp/certs/cert.pem" -days 2 2>/dev/null
exec test/vm/vm-run --kernel "${KTLS_DEMO_KERNEL:-debian-6.1}" --no-module chacha20poly1305 \
	--put "$tmp/certs:/root/certs" --put "$top/scripts/demo-guest.sh:/root/demo.sh" \
	-- sh /root/demo.sh
