#!/bin/sh
# demo-guest.sh - runs inside the VM guest (see scripts/demo.sh).
set -e
exec 2>&1	# one stream, in order
cd /root
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
stat() { grep -E "$1" /proc/net/tls_stat | awk '{printf "%s=%s ", $1, $2}'; echo; }
# until the port listens (never a fixed sleep)
waitport() { i=0; while ! ss -ltnH "( sport = :$1 )" 2>/dev/null | grep -q .; do i=$((i+1)); [ $i -gt 600 ] && return 1; sleep 0.05; done; }

say "1. What can this kernel offload?  (ktls-probe)"
ktls-probe
echo "(Most of that is the kernel running modprobe, under qemu without KVM, for each"
echo " cipher this guest has no module for: SM4, ARIA, ChaCha20.  Again, with modprobe"
echo " answering at once: $(echo /bin/true >/proc/sys/kernel/modprobe; ktls-probe | grep 'probe took'))"
echo /sbin/modprobe >/proc/sys/kernel/modprobe

say "2. TLS 1.2, AES-128-GCM, 8 MiB echoed through the kernel"
echo "Kernel TLS counters before:  $(stat 'TlsTxSw|TlsRxSw')"
ktls-serve --cert certs/cert.pem --key certs/key.pem --port 4433 --echo --max-conns 1 \
	--verbose 2>serve.log &
waitport 4433
ktls-client --tls1_2 --cipher ECDHE-ECDSA-AES128-GCM-SHA256 --bytes 8M 127.0.0.1:4433
wait
echo "server side:"; sed -n '2,$p' serve.log
echo "Kernel TLS counters after:   $(stat 'TlsTxSw|TlsRxSw')"
echo "(+2 TX and +2 RX for the connection's two ends; each process's probe adds one"
echo " more of each on a loopback pair, to learn whether TLS 1.3 can be re-keyed)"

say "3. TLS 1.3 with a KeyUpdate every 16 records, both ways"
echo "This kernel cannot re-key TLS 1.3, so policy 'auto' keeps TLS 1.3 in userspace"
echo "and says why; stock OpenSSL + kTLS would drop the connection at the first KeyUpdate."
ktls-serve --cert certs/cert.pem --key certs/key.pem --port 4434 --echo --max-conns 1 \
	--verbose 2>serve13.log &
waitport 4434
ktls-client --tls1_3 --bytes 4M --keyupdate-every 16 --keyupdate-requested 127.0.0.1:4434
wait
echo "server side:"; sed -n '2,$p' serve13.log

say "4. A cipher the kernel lacks: ChaCha20-Poly1305 without its module"
echo "(this guest was booted without chacha20poly1305: the bridge falls back, with the reason)"
ktls-serve --cert certs/cert.pem --key certs/key.pem --port 4435 --echo --max-conns 1 \
	2>/dev/null &
waitport 4435
ktls-client --tls1_2 --cipher ECDHE-ECDSA-CHACHA20-POLY1305 --bytes 2M 127.0.0.1:4435
wait
say "done"
