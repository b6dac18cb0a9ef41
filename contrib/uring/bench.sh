#!/bin/bash
# bench.sh - the io_uring server (ktls-serve --uring --root) against nginx
# with kernel TLS, serving the same files to the same clients in one qemu
# guest (issue 14).  A benchmark: it prints numbers and asserts nothing.
#
# Usage: contrib/uring/bench.sh [--quick] [--with-bridge-nginx] [--raw FILE]
#   --quick              one repetition of small runs (to see that it works,
#                        not for numbers)
#   --with-bridge-nginx  also nginx linked with ktls-bridge (column C)
#   --raw FILE           keep the guest's raw measurement lines in FILE
#   -h, --help           this text
#
# Servers, all over TLS 1.3 with the kernel's TLS on the patched 6.12
# kernel (the only one whose hand-off moves TLS 1.3 receive into the
# kernel and re-keys it), serving /root/www from the page cache:
#   R  ktls-serve --uring --root: one io_uring ring, hand-off, SPLICE
#   H  ktls-serve --handoff --root: sendfile, but one connection at a time
#      (no event loop), so it gets one client only
#   B  Debian's nginx 1.22.1, stock, with "ssl_conf_command Options KTLS;"
#      (epoll; one worker, sendfile on, keepalive_requests 100000)
#   C  (--with-bridge-nginx) the same nginx on the ktls-bridge BIO
# Clients: ktls-client --connections N --get /FILE --requests K
# --expect-sha256 (userspace TLS, same guest, not measured), N = 1, 16,
# 256, for a 16 KiB and a 1 MiB file.  Per cell:
#   * requests per second: the client's (all requests over its wall time);
#   * CPU seconds per GiB: the server's utime+stime (/proc/PID/stat: all
#     its threads, io_uring's io-wq workers included) over the run;
#   * syscalls per request and per MiB: strace -c -f -p SERVER around a
#     separate run of the same size (io_uring_enter counted; what the
#     ring's kernel workers do is no syscall and strace cannot see it).
# Handshakes are in every figure, spread over each connection's K
# requests; a server that closes after each answer (the ring server before
# HTTP keep-alive) costs the client a reconnect, and that shows.
# Medians of the repetitions, with min-max; the ratios R/B (and R/C).
# Under qemu TCG (no KVM here) every instruction is emulated: req/s are
# slow and noisy; compare CPU and syscalls.
#
# Exit 0 when the benchmark ran (a failed run shows in the table), 1 when
# it could not (no build, no nginx, no guest), 2 on a usage error.  Waits
# (polling every 20 s, at most 10 minutes) while two or more qemu guests
# run on this machine.  The guest's half is contrib/uring/bench-guest.sh.
# Environment: KTLS_BUILDDIR (default <top>/_build);
# KTLS_URING_BENCH_PLAN="NAME=VALUE ..." changes the plan (see "The plan").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export KTLS_BUILDDIR=${KTLS_BUILDDIR:-$top/_build}
# log, die, usage, bench_awk_lib
# shellcheck source=contrib/bench-lib.sh
. "$top/contrib/bench-lib.sh"

quick=0 bridge=0 raw=
args=$(getopt -n bench.sh -o h -l quick,with-bridge-nginx,raw:,help -- "$@") ||
	{ log "see --help"; exit 2; }
eval set -- "$args"
while [ "$1" != -- ]; do
	case $1 in
	--quick) quick=1 ;;
	--with-bridge-nginx) bridge=1 ;;
	--raw) raw=$2 && shift ;;
	-h | --help) usage && exit 0 ;;
	esac
	shift
done
[ $# = 1 ] || { log "no arguments but options (see --help)"; exit 2; }

# The plan: REPS repetitions; K_FILE_N GETs on each of N connections.
# Sized so that each run moves at least 16 MiB or 100 requests where the
# time allows (a client decrypts 5-15 MiB/s under TCG here): about 15
# minutes of guest time on this 2-core machine.
if [ "$quick" = 1 ]; then
	plan="REPS=1
K_f16k_1=8 K_f16k_16=2 K_f16k_64=1
K_f1m_1=2 K_f1m_16=1 K_f1m_64=1"
	clients="1 16 64"
	timeout=1200
else
	plan="REPS=3
K_f16k_1=200 K_f16k_16=16 K_f16k_256=4
K_f1m_1=16 K_f1m_16=2 K_f1m_256=1"
	clients="1 16 256"
	timeout=3600
fi
for kv in ${KTLS_URING_BENCH_PLAN:-}; do
	case $kv in
	[KR]*=[0-9]*) plan="$plan
$kv" ;;
	*) die "KTLS_URING_BENCH_PLAN: not NAME=NUMBER: $kv" ;;
	esac
done
files="f16k:16384 f1m:1048576"
filenames="f16k f1m"
cfgs="R H B"
[ "$bridge" = 0 ] || cfgs="R H B C"

[ -f "$KTLS_BUILDDIR/Makefile" ] ||
	die "the project is not built in $KTLS_BUILDDIR: run scripts/build.sh first"
command -v openssl >/dev/null || die "openssl (the command) is needed for the test certificate"

# nginx from contrib/nginx/build.sh (cached after its first build)
nginx_bin() {
	local out
	out=$("$top/contrib/nginx/build.sh" "$@" </dev/null) ||
		die "contrib/nginx/build.sh $* failed (exit $?)"
	out=$(printf '%s\n' "$out" | tail -n 1)
	[ -x "$out" ] || die "contrib/nginx/build.sh $* printed no binary: $out"
	echo "$out"
}
log "finding or building nginx (contrib/nginx/build.sh)"
stock=$(nginx_bin --stock)
ours=
[ "$bridge" = 0 ] || ours=$(nginx_bin)

work=$(mktemp -d "${TMPDIR:-/tmp}/ktls-uring-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/certs" "$work/ngxlib"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$work/certs/key.pem" -out "$work/certs/cert.pem" -subj /CN=localhost -days 2 \
	>/dev/null 2>&1 || die "openssl req failed"

# nginx's shared libraries but those the guest has (libc, libm, libssl,
# libcrypto, the bridge's), and libgcc_s
puts=(--put "$stock:/root/nginx-stock")
[ -z "$ours" ] || puts+=(--put "$ours:/root/nginx")
ldd "$stock" ${ours:+"$ours"} | awk '$2 == "=>" && $3 ~ /^\// &&
	$1 !~ /^lib(c|m|ssl|crypto|ktls-bridge)\.so/ { print $3 }' | sort -u |
	xargs -r cp -L -t "$work/ngxlib/"
cp -L "$(ldconfig -p | awk '$1 == "libgcc_s.so.1" && /x86-64/ { print $NF; exit }')" "$work/ngxlib/" ||
	die "libgcc_s.so.1 not found"

{
	echo "FILES='$files'"
	echo "CFGS='$cfgs'"
	echo "CLIENTS='$clients'"
	echo "$plan"
} >"$work/bench.params"
reps=$(printf '%s\n' "$plan" | sed -n 's/^REPS=//p' | tail -n 1)

waited=0
while n=$(pgrep -c -f qemu-system) && [ "$n" -ge 2 ] && [ "$waited" -lt 600 ]; do
	log "$n qemu guests running; waiting 20 s"
	sleep 20
	waited=$((waited + 20))
done
load_before=$(uptime)
guests_before=$(pgrep -c -f qemu-system || true)
rev=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
# the ring server is built from the working tree: say when it is not HEAD's
ringdiff=$(git -C "$top" status --porcelain -- apps/uring.c apps/common.c apps/ktls-serve.c 2>/dev/null |
	awk '{ printf "%s%s", sep, $2; sep = ", " }')

log "booting the patched-6.12 guest"
start=$SECONDS
rc=0
"$top/test/vm/vm-run" --kernel patched-6.12 --memory 2048 --smp 2 --timeout "$timeout" --timing \
	--put "$work/certs:/root/certs" --put "$work/ngxlib:/root/ngxlib" "${puts[@]}" \
	--put "$work/bench.params:/root/bench.params" \
	--put "$here/bench-guest.sh:/root/bench-guest.sh" \
	-- 'bash /root/bench-guest.sh' 2>&1 >"$work/raw" | tee "$work/stderr" >&2 ||
	rc=${PIPESTATUS[0]}
wall=$((SECONDS - start))
load_after=$(uptime)
[ -z "$raw" ] || cp "$work/raw" "$raw"
if [ "$rc" != 0 ]; then
	grep '^FATAL' "$work/raw" >&2 || true
	die "the guest run failed (vm-run exit $rc after $wall s)"
fi
grep -q '^M ' "$work/raw" || die "the guest printed no measurements"
vmtiming=$(sed -n 's/^vm-run: timing: //p' "$work/stderr" | tail -n 1)

read -r -d '' report_awk <<'EOF' || true
function add(key, val) { vals[key] = vals[key] " " val }
# median of the values of key into med (and lo, hi); how many there were
function stats(key) { return median_of(vals[key]) }
function kv(from,    i, p) {
	delete v
	for (i = from; i <= NF; i++) { p = index($i, "="); v[substr($i, 1, p - 1)] = substr($i, p + 1) }
}
# a cell: median (min-max), or why there is none; the median in got[cfg]
function cell(key, cfg,    c) {
	delete got[cfg]
	if (fails[key, cfg]) return "**FAILED** " fails[key, cfg] "×"
	c = stats(key SUBSEP cfg)
	if (!c) return "–"
	got[cfg] = med
	if (c == 1) return fmt(med)
	return fmt(med) " (" fmt(lo) "–" fmt(hi) ")"
}
function ratio(x, y) { return ((x in got) && (y in got) && got[y] > 0) ? sprintf("%.2f", got[x] / got[y]) : "–" }
function row(label, key,    i, line) {
	line = "| " label
	for (i = 1; i <= ncfg; i++) line = line " | " cell(key, cfgs[i])
	line = line " | " ratio("R", "B")
	if (hasC) line = line " | " ratio("R", "C")
	print line " |"
	for (i = 1; i <= ncfg; i++) if (cfgs[i] in got) keep[key, cfgs[i]] = got[cfgs[i]]
}
$1 == "INFO" {
	k = $2; had = (k in info); $1 = ""; $2 = ""; sub(/^  */, "")
	info[k] = had ? info[k] "; " $0 : $0
	next
}
$1 == "ERR" { errs[++nerr] = $0; next }
$1 == "M" {
	cfg = $2; key = $3 SUBSEP $4; kv(6)
	if (v["ok"] != "1") { fails[key SUBSEP "cpu", cfg]++; fails[key SUBSEP "rps", cfg]++; next }
	add(key SUBSEP "cpu" SUBSEP cfg, (v["ut"] + v["st"]) / clk / (v["bytes"] / 1073741824))
	add(key SUBSEP "cpuu" SUBSEP cfg, v["ut"] / clk / (v["bytes"] / 1073741824))
	add(key SUBSEP "rps" SUBSEP cfg, v["rps"])
	add(key SUBSEP "rec" SUBSEP cfg, v["reconnects"] / v["reqs"])
	next
}
$1 == "S" {
	cfg = $2; key = $3 SUBSEP $4; kv(5)
	if (v["ok"] != "1") { fails[key SUBSEP "scr", cfg]++; fails[key SUBSEP "scm", cfg]++; next }
	sreq[key, cfg] = v["reqs"]
	add(key SUBSEP "scr" SUBSEP cfg, v["calls"] / v["reqs"])
	add(key SUBSEP "scm" SUBSEP cfg, v["calls"] / (v["bytes"] / 1048576))
	next
}
$1 == "SC" { sc[$3, $4, $2, $5] = $6; if (!(($3, $4, $5) in seen)) { seen[$3, $4, $5] = 1; names[$3, $4] = names[$3, $4] " " $5 }; next }
END {
	ncfg = split(cfglist, cfgs, " ")
	for (i = 1; i <= ncfg; i++) hasC = hasC || cfgs[i] == "C"
	name["R"] = "R ring"; name["H"] = "H hand-off"; name["B"] = "B nginx+KTLS"; name["C"] = "C nginx+bridge"
	label["f16k"] = "16 KiB"; label["f1m"] = "1 MiB"
	head = "| file, clients | metric"; sep = "|---|---"
	for (i = 1; i <= ncfg; i++) { head = head " | " name[cfgs[i]]; sep = sep "|---" }
	head = head " | R/B"; sep = sep "|---"
	if (hasC) { head = head " | R/C"; sep = sep "|---" }
	head = head " |"; sep = sep "|"
	print "### ktls-serve --uring against nginx with kTLS (contrib/uring/bench.sh" (quick ? " --quick" : "") ")"
	print ""
	print "* date: " date "; host: " hostcpu "; qemu TCG guest (no KVM), " info["cpus"] " vCPUs, " int(info["memory_kib"] / 1024) " MiB"
	print "* machine load (uptime on the host): before the run `" load0 "`, after `" load1 "`; " guests " qemu guest(s) running as it started (other engineers' included)"
	print "* guest kernel " info["kernel"] " (flavour patched-6.12); " info["openssl"] " (servers and clients); liburing " liburing " (the build's); " info["nginx"] " (Debian's package, built by contrib/nginx/build.sh" (hasC ? ", stock and with the bridge" : ", stock") ")"
	print "* ktls-offload " rev " (the build in KTLS_BUILDDIR)" (ringdiff != "" ? "; the ring server was built from the working tree with uncommitted changes in " ringdiff : "")
	print "* servers: R = `ktls-serve --uring --root`; H = `ktls-serve --handoff --root` (one connection at a time: 1 client only); B = nginx `ssl_conf_command Options KTLS;`" (hasC ? "; C = nginx on the ktls-bridge BIO" : "") ".  nginx: `worker_processes 1; sendfile on; keepalive_requests 100000; access_log off; ssl_protocols TLSv1.3;`.  All TLS 1.3 with the default ciphersuites (TLS_AES_256_GCM_SHA384), ECDSA P-256 certificate"
	print "* where each server's records went (tls_stat TlsTxSw/TlsRxSw deltas over one warm-up connection): " info["offload"]
	print "* clients: `ktls-client --connections N --get /FILE --requests K --expect-sha256 ... --no-offload` in the same guest (userspace TLS, not measured); K per file and N: " kplan
	print "* " reps " repetitions, servers interleaved in each; medians (min–max).  CPU: the server's utime+stime from /proc/PID/stat at CLK_TCK " clk " (all threads, io_uring's io-wq workers included).  Syscalls: one more run of the same size under `strace -c -f -p SERVER`; io_uring_enter is counted, but the work io_uring's kernel workers (io-wq) do for the ring makes no syscalls and strace cannot see it (SPLICE always runs there, other operations when they would block); their CPU time is in the CPU row"
	print "* every figure includes each connection's handshake, spread over its K requests; \"reconnects / request\": the client's new connections after the server closed (a server that answers one request per connection costs one per request)"
	print "* **under TCG every instruction is emulated on a shared 2-core host: req/s are slow and noisy** (the clients' own decryption runs on the same two vCPUs); compare syscalls and CPU"
	print "* time: " wall " s on the host (vm-run " vmtiming "); guest: setup " fmt(info["setup_s"]) " s, strace runs " fmt(info["strace_s"]) " s, total " fmt(info["guest_s"]) " s"
	print ""
	print head
	print sep
	nf = split(filelist, fl, " "); nc = split(clientlist, cl, " ")
	for (a = 1; a <= nf; a++) for (b = 1; b <= nc; b++) {
		f = fl[a]; n = cl[b]; key = f SUBSEP n; l = label[f] ", " n
		row(l " | syscalls / request", key SUBSEP "scr")
		row(l " | syscalls / MiB", key SUBSEP "scm")
		row(l " | CPU s / GiB", key SUBSEP "cpu")
		row(l " | req/s", key SUBSEP "rps")
		row(l " | reconnects / request", key SUBSEP "rec")
	}
	print ""
	print "#### The goal at 256 clients: syscalls per request at most half of nginx's, CPU per GiB no more than nginx's"
	print ""
	for (a = 1; a <= nf; a++) {
		key = fl[a] SUBSEP cl[nc]
		if (!((key SUBSEP "scr", "R") in keep) || !((key SUBSEP "scr", "B") in keep) ||
		    !((key SUBSEP "cpu", "R") in keep) || !((key SUBSEP "cpu", "B") in keep)) {
			print "* " label[fl[a]] ": not measured (a run failed)"
			continue
		}
		s = keep[key SUBSEP "scr", "R"] / keep[key SUBSEP "scr", "B"]
		c = keep[key SUBSEP "cpu", "R"] / keep[key SUBSEP "cpu", "B"]
		printf "* %s: syscalls/request R/B = %.2f (%s, goal ≤ 0.50): %s; CPU/GiB R/B = %.2f (%s, goal ≤ 1.00): %s\n",
			label[fl[a]], s, fmt(keep[key SUBSEP "scr", "R"]) " vs " fmt(keep[key SUBSEP "scr", "B"]), s <= 0.5 ? "met" : "**missed**",
			c, fmt(keep[key SUBSEP "cpu", "R"]) " vs " fmt(keep[key SUBSEP "cpu", "B"]) " s", c <= 1 ? "met" : "**missed**"
	}
	print ""
	print "#### Server syscalls by name, per request (the strace runs; shown when at least 0.1 for one server)"
	print ""
	print "| file, clients | syscall | " substr(head, index(head, "metric") + 9)
	print "|---|---" substr(sep, 9)
	for (a = 1; a <= nf; a++) for (b = 1; b <= nc; b++) {
		f = fl[a]; n = cl[b]
		m = split(names[f, n], nm, " ")
		for (j = 1; j <= m; j++) {
			line = ""; show = 0; delete got
			for (i = 1; i <= ncfg; i++) {
				c = cfgs[i]
				if (sreq[f, n, c] > 0) {
					x = sc[f, n, c, nm[j]] / sreq[f, n, c]; got[c] = x
					if (x >= 0.1) show = 1
					line = line " | " fmt(x)
				} else line = line " | –"
			}
			if (show) print "| " label[f] ", " n " | " nm[j] line " | " ratio("R", "B") (hasC ? " | " ratio("R", "C") : "") " |"
		}
	}
	if (nerr) {
		print ""
		print "Failed runs:"
		print ""
		for (i = 1; i <= nerr && i <= 30; i++) print "    " errs[i]
	}
}
EOF

kplan=$(printf '%s\n' "$plan" | tr ' ' '\n' | sed -n 's/^K_\(f16k\|f1m\)_\([0-9]*\)=\([0-9]*\)$/\1 N=\2: K=\3/p' |
	sed 's/^f16k/16 KiB/; s/^f1m/1 MiB/' | paste -sd ';' | sed 's/;/; /g')
awk -v clk="$(awk '$2 == "clk_tck" { print $3; exit }' "$work/raw")" \
	-v date="$(date -u '+%Y-%m-%d %H:%M UTC')" -v wall="$wall" -v rev="$rev" -v ringdiff="$ringdiff" \
	-v vmtiming="$vmtiming" -v quick="$quick" -v reps="$reps" -v kplan="$kplan" \
	-v cfglist="$cfgs" -v filelist="$filenames" -v clientlist="$clients" \
	-v load0="$load_before" -v load1="$load_after" -v guests="$guests_before" \
	-v liburing="$(dpkg-query -W -f '${Version}' liburing-dev 2>/dev/null || echo unknown)" \
	-v hostcpu="$(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
	"$bench_awk_lib
$report_awk" "$work/raw"
