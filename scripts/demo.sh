#!/bin/bash
# demo.sh - the main job, in qemu on real kTLS kernels:
#   1. Debian 12's own 6.1 kernel: the probe, an offloaded TLS 1.2 transfer,
#      a TLS 1.3 connection that survives KeyUpdates (kept in userspace: 6.1
#      cannot re-key), and a fallback with its reason;
#   2. the patched 6.12 kernel (kernel/, built once and cached): TLS 1.3
#      offloaded through KeyUpdates in both modes, each re-key shown by the
#      kernel's counters, and what a KeyUpdate costs the receiver.
# Installs its own dependencies; safe to run again.
#   KTLS_DEMO_PATCHED=0   stop after part 1 (no kernel build)
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

printf '\n\033[1m#### Part 1: Debian 12 kernel 6.1 (stock kTLS)\033[0m\n'
test/vm/vm-run --kernel debian-6.1 --no-module chacha20poly1305 \
	--put "$tmp/certs:/root/certs" --put "$top/scripts/demo-guest.sh:/root/demo.sh" \
	-- sh /root/demo.sh
[ "${KTLS_DEMO_PATCHED:-1}" = 0 ] && exit 0

printf '\n\033[1m#### Part 2: Linux 6.12 with the ktls-offload kernel series\033[0m\n'
if ! kernel/build.sh --print-path >/dev/null; then
	echo "Building the patched kernel once (3-4 minutes on two idle cores; cached after)"
	kernel/build.sh >/dev/null
fi
exec test/vm/vm-run --kernel patched-6.12 \
	--put "$tmp/certs:/root/certs" --put "$top/scripts/demo-guest-rekey.sh:/root/demo.sh" \
	-- sh /root/demo.sh
