#!/bin/bash
# bench.sh - what kernel TLS through ktls-bridge costs and saves nginx,
# against the same nginx without and with its own kTLS, in one qemu guest.
# A benchmark: it prints numbers and asserts nothing.
#
# Usage: contrib/nginx/bench.sh [--quick] [--kernel FLAVOUR] [--raw FILE]
#   --quick           fewer and smaller runs, files of 16 KiB and 1 MiB only
#                     (a few minutes: to see that it works, not for numbers)
#   --kernel FLAVOUR  the guest's kernel (test/vm/vm-run --list; default
#                     patched-6.12)
#   --raw FILE        keep the guest's raw measurement lines in FILE
#   -h, --help        this text
#
# Three configurations of Debian's nginx 1.22.1 (contrib/nginx/build.sh,
# the same source), all with sendfile on, worker_processes 1,
# keepalive_requests 100000 and access_log off:
#   A  stock nginx, no kTLS
#   B  stock nginx with "ssl_conf_command Options KTLS;"
#   C  nginx with ktls-bridge (no directive: the bridge offloads)
# For TLS 1.2 and TLS 1.3 (ssl_protocols of two server blocks) and each file
# size, measured on nginx's single worker process, from outside it:
#   * CPU seconds (user, sys) per GiB served: utime/stime of the worker
#     (/proc/PID/stat) around one keep-alive connection's GETs;
#   * syscalls per request: strace -c -f -p WORKER around one connection's
#     GETs (its accept, handshake and close included);
#   * requests per second with 1 and 8 keep-alive clients
#     (ktls-client --no-offload --mode recv --get /FILE --requests K, in
#     parallel; each must end ok with every body, else the cell says FAILED);
#   * handshakes per second: fresh connections one after the other, one GET
#     of the 16 KiB file each (a new ktls-client process each: its start is
#     in the time), and the worker's CPU and syscalls per connection.
# Each figure is the median of the repetitions, with min-max.  Under qemu
# TCG (no KVM here) every instruction is emulated: wall-clock figures
# (req/s, handshakes/s) are only indicative; compare CPU and syscalls.
# The clients run in the same guest and are not measured.
#
# Prints a Markdown report (date, versions, a table per TLS version with
# the ratios C/B and C/A).  Exit 0 when the benchmark ran (a failed
# measurement shows in the table), 1 when it could not run (no build, no
# nginx, no guest), 2 on a usage error.
# Before booting it waits (polling every 20 s) while two or more qemu
# guests run on this machine.
# The guest's half is contrib/nginx/bench-guest.sh.
# Environment: KTLS_BUILDDIR (default <top>/_build);
# KTLS_NGINX_BENCH_PLAN="NAME=VALUE ..." changes the plan (request counts
# and repetitions: see "The plan" in this script; e.g. "REPS=3 R8_f64m=0"); and
# what contrib/nginx/build.sh and test/vm/vm-run read.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export KTLS_BUILDDIR=${KTLS_BUILDDIR:-$top/_build}
# log, die, usage, bench_awk_lib
# shellcheck source=contrib/bench-lib.sh
. "$top/contrib/bench-lib.sh"

quick=0 kernel=patched-6.12 raw=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--kernel)
		[ $# -ge 2 ] || { log "--kernel needs a value"; exit 2; }
		kernel=$2
		shift
		;;
	--kernel=*) kernel=${1#--kernel=} ;;
	--raw)
		[ $# -ge 2 ] || { log "--raw needs a value"; exit 2; }
		raw=$2
		shift
		;;
	--raw=*) raw=${1#--raw=} ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		log "unknown argument: $1 (see --help)"
		exit 2
		;;
	esac
	shift
done

# The plan.  REPS repetitions; per file F: K1_F GETs on one connection
# (CPU/GiB and req/s with one client) in the first R1_F repetitions (default
# all), K8_F GETs on each of the N8 parallel connections (req/s with eight)
# in the first R8_F, KS_F GETs under strace in the first RS_F.  M fresh
# connections for handshakes/s, MS under strace.  Sized for 10 minutes of
# guest time under TCG on this 2-core machine when idle (measured: 571 s),
# up to 20 when other guests share it (a client decrypts 5-15 MiB/s
# there): everything gets all 5
# repetitions but the 64 MiB file under strace (A's 6000 syscalls a
# request take long there; the counts hardly vary) and with 8 clients
# (512 MiB a run): one run each.
# KTLS_NGINX_BENCH_PLAN="NAME=VALUE ..." overrides any of them (e.g.
# "R8_f64m=0" or "REPS=1").
if [ "$quick" = 1 ]; then
	files="f16k:16384 f1m:1048576"
	plan="REPS=2
K1_f16k=40 K8_f16k=5 R8_f16k=2 KS_f16k=10 RS_f16k=2
K1_f1m=4 K8_f1m=1 R8_f1m=2 KS_f1m=2 RS_f1m=2
M=3 MS=2"
	timeout=1200
else
	files="f16k:16384 f1m:1048576 f64m:67108864"
	plan="REPS=5
K1_f16k=300 K8_f16k=16 KS_f16k=24
K1_f1m=8 K8_f1m=1 KS_f1m=3
K1_f64m=1 K8_f64m=1 R8_f64m=1 KS_f64m=1 RS_f64m=1
M=6 MS=2"
	timeout=3000
fi
for kv in ${KTLS_NGINX_BENCH_PLAN:-}; do
	case $kv in
	[KRM]*=[0-9]*) plan="$plan
$kv" ;;
	*) die "KTLS_NGINX_BENCH_PLAN: not NAME=NUMBER: $kv" ;;
	esac
done
reps=$(printf '%s\n' "$plan" | sed -n 's/^REPS=//p' | tail -n 1)
n8=8

[ -f "$KTLS_BUILDDIR/Makefile" ] ||
	die "the project is not built in $KTLS_BUILDDIR: run scripts/build.sh first"
command -v openssl >/dev/null || die "openssl (the command) is needed for the test certificate"
[ -x "$top/test/vm/vm-run" ] || die "test/vm/vm-run is missing"

# the two nginx binaries (cached after their first build)
nginx_bin() {
	local out rc=0
	out=$("$here/build.sh" "$@" </dev/null) || rc=$?
	case $rc in
	0) ;;
	3) die "contrib/nginx/build.sh $* could not download nginx's source (no archive access?)" ;;
	*) die "contrib/nginx/build.sh $* failed (exit $rc)" ;;
	esac
	out=$(printf '%s\n' "$out" | tail -n 1)
	[ -x "$out" ] || die "contrib/nginx/build.sh $* printed no binary: $out"
	echo "$out"
}
log "building or finding the nginx binaries (contrib/nginx/build.sh)"
ours=$(nginx_bin)
stock=$(nginx_bin --stock)
log "nginx + bridge: $ours"
log "stock nginx:    $stock"

work=$(mktemp -d "${TMPDIR:-/tmp}/ktls-nginx-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/certs" "$work/ngxlib"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$work/certs/key.pem" -out "$work/certs/cert.pem" -subj /CN=localhost -days 2 \
	>/dev/null 2>&1 || die "openssl req failed"

# Libraries the guest may lack: all of the binaries' but libc's, libm's,
# libssl's, libcrypto's (the guest has them, for its openssl) and the
# bridge's (installed there with the project), plus libgcc_s.
for b in "$ours" "$stock"; do
	ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'
done | sort -u | while read -r name path; do
	case $name in
	libc.so* | libm.so* | libssl.so* | libcrypto.so* | libktls-bridge.so*) ;;
	*) cp -L "$path" "$work/ngxlib/$name" ;;
	esac
done
gcc_s=$(ldconfig -p | awk '$1 == "libgcc_s.so.1" && /x86-64/ { print $NF; exit }')
[ -n "$gcc_s" ] || die "libgcc_s.so.1 not found by ldconfig -p"
cp -L "$gcc_s" "$work/ngxlib/"

{
	echo "FILES='$files'"
	echo "CFGS='A B C'"
	echo "PROTOS='tls1_2 tls1_3'"
	echo "N8=$n8"
	echo "$plan"
} >"$work/bench.params"

# one guest at a time on this machine where possible
while n=$(pgrep -f qemu-system | wc -l) && [ "$n" -ge 2 ]; do
	log "$n qemu guests running; waiting 20 s"
	sleep 20
done

log "booting the $kernel guest; the measurements take $([ "$quick" = 1 ] && echo 'a few' || echo '10-20') minutes"
start=$SECONDS
rc=0
"$top/test/vm/vm-run" --kernel "$kernel" --memory 2048 --timeout "$timeout" --timing \
	--put "$work/certs:/root/certs" --put "$work/ngxlib:/root/ngxlib" \
	--put "$ours:/root/nginx" --put "$stock:/root/nginx-stock" \
	--put "$work/bench.params:/root/bench.params" \
	--put "$here/bench-guest.sh:/root/bench-guest.sh" \
	-- 'bash /root/bench-guest.sh' 2>&1 >"$work/raw" | tee "$work/stderr" >&2 ||
	rc=${PIPESTATUS[0]}
wall=$((SECONDS - start))
[ -z "$raw" ] || cp "$work/raw" "$raw"
if [ "$rc" != 0 ]; then
	grep '^FATAL' "$work/raw" >&2 || true
	die "the guest run failed (vm-run exit $rc after $wall s)"
fi
grep -q '^M ' "$work/raw" || die "the guest printed no measurements"

rev=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
vmtiming=$(sed -n 's/^vm-run: timing: //p' "$work/stderr" | tail -n 1)

# The report: an awk program over the guest's lines (bench-guest.sh).
read -r -d '' report_awk <<'EOF' || true
function add(key, cfg, val) { vals[key, cfg] = vals[key, cfg] " " val; n[key, cfg]++ }
function bad(key, cfg) { fails[key, cfg]++ }
# median, min, max of the values of (key, cfg) into med, lo, hi
function stats(key, cfg) { return median_of(vals[key, cfg]) }
# a table cell: median (min–max), the number of runs when not all
# repetitions had one, FAILED when any run failed
function cell(key, cfg, want,    c, f) {
	f = fails[key, cfg] + 0
	c = n[key, cfg] + 0
	ok[cfg] = 0
	if (f > 0) return "**FAILED** " f " of " (f + c) " runs"
	if (c == 0) return want == 0 ? "not run (time)" : "–"
	stats(key, cfg)
	ok[cfg] = 1; mv[cfg] = med
	if (c == 1) return fmt(med) " (1 run)"
	return fmt(med) " (" fmt(lo) "–" fmt(hi) (c != reps ? "; " c " runs" : "") ")"
}
function ratio(x, y) {
	if (!ok[x] || !ok[y] || mv[y] == 0) return "–"
	return sprintf("%.2f", mv[x] / mv[y])
}
function row(label, key, want,    a, b, c) {
	a = cell(key, "A", want); b = cell(key, "B", want); c = cell(key, "C", want)
	printf "| %s | %s | %s | %s | %s | %s |\n", label, a, b, c, ratio("C", "B"), ratio("C", "A")
}
function kv(    i, p) {
	delete v
	for (i = 7; i <= NF; i++) { p = index($i, "="); v[substr($i, 1, p - 1)] = substr($i, p + 1) }
}
$1 == "INFO" {
	if ($2 == "clk_tck") clk = $3
	k = $2; had = (k in info); $1 = ""; $2 = ""; sub(/^  */, "")
	info[k] = had ? info[k] "; " $0 : $0
	if (k == "spent_s") spent = spent (spent ? ", " : "") (label[$1] ? label[$1] : "new connections") " " fmt($2) " s"
	next
}
$1 == "OFFLOAD" { off[$2, $3] = $4 " " $5; next }
$1 == "ERR" { errs[++nerr] = $0; next }
$1 == "NGXERR" { ngxerr[++nngx] = $0; next }
$1 == "SC" { sc[$2, $3, $4, $5] = $6; scn[$2, $3, $4] = scn[$2, $3, $4] " " $5; next }
$1 == "M" {
	cfg = $2; proto = $3; file = $4; kind = $5; kv()
	good = (v["ok"] == "1")
	if (!(file in seenf) && kind != "hs" && kind != "hsc") { seenf[file] = 1; files[++nfiles] = file }
	if (kind == "n1") {
		gib = v["bytes"] / 1073741824
		split("cpu_user cpu_sys cpu_total rps1", ks, " ")
		if (!good) { for (i in ks) bad(proto SUBSEP file SUBSEP ks[i], cfg); next }
		add(proto SUBSEP file SUBSEP "cpu_user", cfg, v["ut"] / clk / gib)
		add(proto SUBSEP file SUBSEP "cpu_sys", cfg, v["st"] / clk / gib)
		add(proto SUBSEP file SUBSEP "cpu_total", cfg, (v["ut"] + v["st"]) / clk / gib)
		add(proto SUBSEP file SUBSEP "rps1", cfg, v["reqs"] / v["wall"])
	} else if (kind == "n8") {
		if (!good) { bad(proto SUBSEP file SUBSEP "rps8", cfg); next }
		add(proto SUBSEP file SUBSEP "rps8", cfg, v["reqs"] / v["wall"])
	} else if (kind == "sc") {
		if ($6 == 1) screqs[cfg, proto, file] = v["reqs"]
		if (!good) { bad(proto SUBSEP file SUBSEP "sc", cfg); next }
		add(proto SUBSEP file SUBSEP "sc", cfg, v["calls"] / v["reqs"])
	} else if (kind == "hs") {
		if (!good) { bad(proto SUBSEP "hs" SUBSEP "rate", cfg); bad(proto SUBSEP "hs" SUBSEP "cpu", cfg); next }
		add(proto SUBSEP "hs" SUBSEP "rate", cfg, v["conns"] / v["wall"])
		add(proto SUBSEP "hs" SUBSEP "cpu", cfg, (v["ut"] + v["st"]) / clk * 1000 / v["conns"])
	} else if (kind == "hsc") {
		if ($6 == 1) screqs[cfg, proto, "hs"] = v["conns"]
		if (!good) { bad(proto SUBSEP "hs" SUBSEP "sc", cfg); next }
		add(proto SUBSEP "hs" SUBSEP "sc", cfg, v["calls"] / v["conns"])
	}
	next
}
function nruns(k) { return k == 0 ? "not run" : k == 1 ? "1 run" : k " runs" }
function runs(name) { return (name in P) ? (P[name] < reps ? P[name] : reps) : reps }
BEGIN {
	label["f16k"] = "16 KiB"; label["f1m"] = "1 MiB"; label["f64m"] = "64 MiB"
	np = split(plan, pl, " ")
	for (i = 1; i <= np; i++) { split(pl[i], kvp, "="); P[kvp[1]] = kvp[2] + 0 }
}
END {
	plabel["tls1_2"] = "TLS 1.2"; plabel["tls1_3"] = "TLS 1.3"
	print "### nginx: stock, stock + `Options KTLS`, ktls-bridge (contrib/nginx/bench.sh" (quick ? " --quick" : "") ")"
	print ""
	print "* date: " date "; host: " hostcpu ", qemu TCG guest (no KVM), " info["cpus"] " vCPUs, " int(info["memory_kib"] / 1024) " MiB"
	print "* guest kernel: " info["kernel"] " (flavour " flavour "); " info["openssl"] " (libssl of A, B, C and of the clients)"
	print "* nginx: " info["nginx_stock"] " (Debian " ourver "), built twice by contrib/nginx/build.sh: stock (A, B) and with -DNGX_KTLS_BRIDGE (C); ktls-offload " rev " (the build in KTLS_BUILDDIR)"
	print "* A = stock, no kTLS; B = stock + `ssl_conf_command Options KTLS;`; C = nginx + ktls-bridge (default policy, no directive).  All: `sendfile on; worker_processes 1; keepalive_requests 100000; access_log off;`, one server block per TLS version (`ssl_protocols`), default ciphers, ECDSA P-256 certificate"
	printf "* where the worker's records went (/proc/net/tls_stat TlsTxSw/TlsRxSw deltas of one openssl s_client connection):"
	for (pi = 1; pi <= 2; pi++) {
		p = pi == 1 ? "tls1_2" : "tls1_3"
		printf " %s: A %s, B %s, C %s%s", plabel[p], off["A", p], off["B", p], off["C", p], pi == 1 ? ";" : "\n"
	}
	print "* clients: ktls-client --no-offload (userspace records) in the same guest, not measured; CPU and syscalls are the nginx worker's only (utime/stime from /proc/PID/stat at CLK_TCK " clk "; strace -c -f -p WORKER)"
	printf "* runs: median of %d repetitions (min–max), A, B and C interleaved in each.  A run: one client doing K GETs on one connection (CPU/GiB and req/s with 1 client; the CPU is that run's), %d such clients in parallel (req/s with %d), one client under strace.  K per file:", reps, n8, n8
	for (fi = 1; fi <= nfiles; fi++) {
		f = files[fi]
		printf "%s %s: 1 client × %d (%s), %d × %d (%s), strace %d (%s)", (fi > 1 ? ";" : ""), label[f], P["K1_" f], nruns(runs("R1_" f)), n8, P["K8_" f], nruns(runs("R8_" f)), P["KS_" f], nruns(runs("RS_" f))
	}
	printf "; new connections: %d one after the other, %d under strace\n", P["M"], P["MS"]
	print "* CPU/GiB, req/s and syscalls per request include each connection's accept, handshake and close, spread over its K requests; req/s and handshakes/s include each client process's start"
	print "* **wall-clock figures (req/s, handshakes/s) are only indicative**: every instruction is emulated (TCG) on a shared 2-core host, the clients' own decryption and start-up dominate them; compare CPU and syscalls"
	print "* time: " wall " s on the host for the guest run (vm-run " vmtiming "); guest: setup " fmt(info["setup_s"]) " s, measurements by file: " spent "; total " fmt(info["guest_s"]) " s"
	print ""
	for (pi = 1; pi <= 2; pi++) {
		p = pi == 1 ? "tls1_2" : "tls1_3"
		print "#### " plabel[p]
		print ""
		print "| file | metric | A stock | B stock + KTLS | C bridge | C/B | C/A |"
		print "|---|---|---|---|---|---|---|"
		for (fi = 1; fi <= nfiles; fi++) {
			f = files[fi]; l = label[f] ? label[f] : f
			row(l " | worker CPU user, s/GiB", p SUBSEP f SUBSEP "cpu_user", runs("R1_" f))
			row(l " | worker CPU sys, s/GiB", p SUBSEP f SUBSEP "cpu_sys", runs("R1_" f))
			row(l " | worker CPU user+sys, s/GiB", p SUBSEP f SUBSEP "cpu_total", runs("R1_" f))
			row(l " | worker syscalls / request", p SUBSEP f SUBSEP "sc", runs("RS_" f))
			row(l " | req/s, 1 client", p SUBSEP f SUBSEP "rps1", runs("R1_" f))
			row(l " | req/s, " n8 " clients", p SUBSEP f SUBSEP "rps8", runs("R8_" f))
		}
		row("new conn. | handshakes/s (sequential)", p SUBSEP "hs" SUBSEP "rate", reps)
		row("new conn. | worker CPU ms / connection", p SUBSEP "hs" SUBSEP "cpu", reps)
		row("new conn. | worker syscalls / connection", p SUBSEP "hs" SUBSEP "sc", reps)
		print ""
	}
	# which syscalls: first repetition, per request (per connection for hs)
	print "#### Worker syscalls by name where A, B and C differ (first strace run; per request, per new connection in the last rows of each TLS version; shown when at least 0.5 in one configuration)"
	print ""
	print "| TLS | file | syscall | A | B | C |"
	print "|---|---|---|---|---|---|"
	for (pi = 1; pi <= 2; pi++) {
		p = pi == 1 ? "tls1_2" : "tls1_3"
		for (fi = 1; fi <= nfiles + 1; fi++) {
			f = fi <= nfiles ? files[fi] : "hs"
			l = f == "hs" ? "new conn." : label[f]
			delete names; nn = 0
			for (ci = 1; ci <= 3; ci++) {
				c = substr("ABC", ci, 1)
				cnt = split(scn[c, p, f], a, " ")
				for (i = 1; i <= cnt; i++) if (!(a[i] in names)) { names[a[i]] = 1; order[++nn] = a[i] }
			}
			for (i = 1; i <= nn; i++) {
				s = order[i]; show = 0; line = ""; same = 1
				for (ci = 1; ci <= 3; ci++) {
					c = substr("ABC", ci, 1)
					x = (screqs[c, p, f] > 0) ? sc[c, p, f, s] / screqs[c, p, f] : 0
					if (x >= 0.5) show = 1
					if (ci > 1 && fmt(x) != first) same = 0
					if (ci == 1) first = fmt(x)
					line = line " | " ((c SUBSEP p SUBSEP f SUBSEP s) in sc ? fmt(x) : "0")
				}
				if (show && !same) printf "| %s | %s | %s%s |\n", plabel[p], l, s, line
			}
		}
	}
	if (nerr) {
		print ""
		print "Failed runs:"
		print ""
		for (i = 1; i <= nerr && i <= 40; i++) print "    " errs[i]
		if (nerr > 40) print "    ... " (nerr - 40) " more"
	}
	if (nngx) {
		print ""
		print "nginx error logs (alert, crit, emerg):"
		print ""
		for (i = 1; i <= nngx; i++) print "    " ngxerr[i]
	}
}
EOF

awk -v clk=100 -v date="$(date -u '+%Y-%m-%d %H:%M UTC')" -v flavour="$kernel" -v wall="$wall" -v rev="$rev" \
	-v vmtiming="$vmtiming" -v quick="$quick" -v reps="$reps" -v plan="${plan//$'\n'/ }" \
	-v n8="$n8" -v ourver="$(cat "$(dirname "$ours")/version" 2>/dev/null)" \
	-v hostcpu="$(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$bench_awk_lib
$report_awk" "$work/raw"
