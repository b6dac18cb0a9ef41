#!/bin/bash
# compare-stacks.sh - ktls-offload beside the stock TLS stacks' own kTLS, on
# a kernel without TLS 1.3 re-key (Debian 12's 6.1), our patched 6.12 and
# Debian's stock 7.x (mainline's re-key): one table of what each server
# stack offloads and survives, measured in qemu guests, never assumed.
#
# Server stacks (one connection at a time, clients that never offload, so
# every /proc/net/tls_stat count is the server's):
#   ko-t    ktls-serve, transparent (the ktls provider, default policy)
#   ko-h    ktls-serve --handoff
#   ossl30  openssl s_server on Debian 12's OpenSSL 3.0, Options = KTLS
#   ossl35  the same app on OpenSSL 3.5's libraries (scripts/openssl-next.sh)
#   gnutls  gnutls-serv 3.8 with ktls = true (scripts/gnutls-next.sh)
# Scenarios: TLS 1.2 and 1.3 transfers; the peer's KeyUpdates, not
# requested and requested; the server's own; a long run with a requested
# KeyUpdate every few records; a malformed KeyUpdate (the alert must
# arrive); ChaCha20-Poly1305 with the kernel's chacha20poly1305 module
# blocked (a cipher the kernel lacks: the stack must fall back) where the
# kernel has modules (Debian's; ours has everything built in, so there the
# row shows ChaCha20 offloaded).  The guest
# half is scripts/compare-stacks-guest.sh, the table
# scripts/compare-stacks-table.py (a cell's legend is there).
#
# Usage: scripts/compare-stacks.sh [--kernels "FLAVOUR..."] [--stacks "STACK..."]
#            [--mib N] [--every R] [--out DIR] [--markdown] [--details]
#   --kernels  vm-run flavours (default "debian-6.1 patched-6.12 debian-7";
#              one that vm-run cannot boot here is reported and left out)
#   --stacks   a subset of the stacks above (default: all five)
#   --mib N    the long run's size in MiB (default 64)
#   --every R  its KeyUpdate interval in 16 KiB records (default 4: 1,024
#              KeyUpdates over 64 MiB)
#   --out DIR  keep the guests' raw output there (default: a temporary dir)
#   --markdown the table as Markdown (for the README)
#   --details  every run's detail and tls_stat deltas under the table
# A stack whose build is not available (no archive access for OpenSSL 3.5
# or GnuTLS 3.8) is left out with the reason on stderr.
# Environment: KTLS_BUILDDIR (default <top>/_build; built with
# scripts/build.sh when it holds no build).
# Exit status: 0 table printed, 1 no guest gave results, 2 usage.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "compare-stacks.sh: $*" >&2; }
usage() { sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'; }

kernels="debian-6.1 patched-6.12 debian-7"
want="ko-t ko-h ossl30 ossl35 gnutls"
mib=64 every=4 out='' fmt=()
while [ $# -gt 0 ]; do
	case $1 in
	--kernels) kernels=${2:?}; shift ;;
	--stacks) want=${2:?}; shift ;;
	--mib) mib=${2:?}; shift ;;
	--every) every=${2:?}; shift ;;
	--out) out=${2:?}; shift ;;
	--markdown | --details) fmt+=("$1") ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
case $mib$every in *[!0-9]*) log "--mib and --every take numbers"; exit 2 ;; esac
for s in $want; do
	case $s in ko-t | ko-h | ossl30 | ossl35 | gnutls) ;; *) log "unknown stack: $s"; exit 2 ;; esac
done

build=${KTLS_BUILDDIR:-$top/_build}
if [ ! -x "$build/apps/ktls-serve" ] || [ ! -x "$build/test/peer/crafted-client" ]; then
	log "no build in $build: scripts/build.sh"
	KTLS_BUILDDIR=$build "$top/scripts/build.sh" >&2
fi
if [ -z "$out" ]; then
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

wanted() { case " $want " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
stacks=""
for s in ko-t ko-h ossl30; do
	if wanted $s; then stacks="$stacks $s"; fi
done
puts=(--put "$build/test/peer/crafted-client:/root/crafted-client")
# optional STACK SCRIPT GUEST-DIR WHAT: the stack, if SCRIPT builds it here
optional() {
	local d
	wanted "$1" || return 0
	if d=$("$top/scripts/$2" </dev/null 2>"$out/$1.log" | tail -n 1) && [ -n "$d" ]; then
		stacks="$stacks $1"
		puts+=(--put "$d:$3")
	else
		log "$1 left out: $4 not built ($(tail -n 1 "$out/$1.log"))"
	fi
}
optional ossl35 openssl-next.sh /root/ossl35 "OpenSSL 3.5"
optional gnutls gnutls-next.sh /root/gnutls "GnuTLS 3.8"

mkdir -p "$out/certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=localhost -keyout "$out/certs/key.pem" -out "$out/certs/cert.pem" 2>/dev/null
puts+=(--put "$out/certs:/root/certs" --put "$top/scripts/compare-stacks-guest.sh:/root/cs.sh")

results=()
for k in $kernels; do
	log "$k: $stacks (long run ${mib} MiB, a KeyUpdate every $every records)"
	rc=0
	nomod=(--no-module chacha20poly1305)
	case $k in patched-*) nomod=() ;; esac # built in: nothing to block
	KTLS_BUILDDIR=$build "$top/test/vm/vm-run" --kernel "$k" --timeout 3000 \
		${nomod[@]+"${nomod[@]}"} "${puts[@]}" \
		-- "sh /root/cs.sh '$stacks' $mib $every" >"$out/$k.out" 2>"$out/$k.err" || rc=$?
	if grep -q '^RES ' "$out/$k.out"; then
		results+=("$out/$k.out")
		[ $rc = 0 ] || log "$k: the guest ended with status $rc (see the table's notes)"
	else
		log "$k: no results (vm-run status $rc): $(tail -n 3 "$out/$k.err" | tr '\n' ' ')"
	fi
done
if [ ${#results[@]} = 0 ]; then
	log "no guest gave results"
	exit 1
fi
python3 "$top/scripts/compare-stacks-table.py" ${fmt[@]+"${fmt[@]}"} "${results[@]}"
echo "ktls-offload: $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)," \
	"$(date -u +%Y-%m-%d)"
