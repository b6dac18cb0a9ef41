#!/bin/sh
# demo-guest-rekey.sh - runs inside the VM guest on the patched 6.12 kernel
# (kernel/), which re-keys TLS 1.3 and takes pre-staged keys (see
# scripts/demo.sh).
set -e
exec 2>&1	# one stream, in order
cd /root
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
stat() { grep -E "$1" /proc/net/tls_stat | awk '{printf "%s=%s ", $1, $2}'; echo; }
# until the port listens (never a fixed sleep)
waitport() { i=0; while ! ss -ltnH "( sport = :$1 )" 2>/dev/null | grep -q .; do i=$((i+1)); [ $i -gt 600 ] && return 1; sleep 0.05; done; }
C="--cert certs/cert.pem --key certs/key.pem"
COUNTERS='TlsTxRekeyOk|TlsRxRekeyOk|TlsTxStagedSwitch|TlsRxStagedSwitch|TlsRxRekeyReceived'

say "5. The patched kernel: what ktls-probe says about re-keying"
uname -r
ktls-probe | grep -E 'TLS 1.3 re-key|pre-staged'

say "6. TLS 1.3 offloaded, a KeyUpdate every 16 records both ways (transparent mode)"
echo "The applications use SSL_read/SSL_write; libssl (3.0) offloads TLS 1.3 transmit."
echo "Each KeyUpdate libssl writes is sent by the kernel under the old key, then the"
echo "kernel switches to the next key the bridge staged for it (TLS_TX_NEXT)."
echo "Kernel TLS counters before:  $(stat "$COUNTERS")"
ktls-serve $C --port 4436 --echo --max-conns 1 --verbose 2>serve13k.log &
waitport 4436
ktls-client --tls1_3 --bytes 8M --keyupdate-every 16 --keyupdate-requested 127.0.0.1:4436
wait
echo "server side:"; sed -n '2,$p' serve13k.log
echo "Kernel TLS counters after:   $(stat "$COUNTERS")"

say "7. Hand-off mode: the kernel carries both directions, KeyUpdates run by the bridge"
echo "After the handshake, ktls_conn_handoff() gives both keys to the kernel; the"
echo "applications read and write the socket; KeyUpdates arriving are handed to the"
echo "bridge, which has the next receive key staged already (TLS_RX_NEXT).  A KeyUpdate"
echo "every 64 records here; the bridge's storm guard lets an eager peer through (data"
echo "between its KeyUpdates) and ends only runs of KeyUpdates without data (keyupdate_burst)."
echo "Kernel TLS counters before:  $(stat "$COUNTERS")"
ktls-serve $C --port 4437 --echo --handoff --max-conns 1 --verbose 2>serveho.log &
waitport 4437
ktls-client --handoff --tls1_3 --bytes 16M --keyupdate-every 64 --keyupdate-requested \
	127.0.0.1:4437
wait
echo "server side:"; sed -n '2,$p' serveho.log
echo "Kernel TLS counters after:   $(stat "$COUNTERS")"

say "8. What a KeyUpdate costs the receiver (ktls-rekey-bench, 8 MiB, median of 3 runs)"
echo "(qemu without KVM: compare the modes with each other, not with real hardware)"
ktls-rekey-bench --bytes 8M --every 16 --runs 3
say "done"
