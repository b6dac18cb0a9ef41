#!/bin/bash
# bench.sh - HAProxy terminating TLS in userspace against the same HAProxy
# handing its records to kernel TLS through ktls-bridge ("ktls" on the bind
# line), TCP mode, in one qemu guest.  Numbers only: nothing is asserted.
#
# Usage: contrib/haproxy/bench.sh [--quick] [--kernel FLAVOUR] [--raw FILE]
#   --quick           2 repetitions of short runs on 16 KiB and 1 MiB files:
#                     a few minutes, to see that it works (no numbers to keep)
#   --kernel FLAVOUR  the guest kernel (test/vm/vm-run --list; default
#                     patched-6.12; debian-6.1 works too)
#   --raw FILE        keep the guest's measurement lines in FILE
#   -h, --help        this text
#
# One binary, HAProxy from contrib/haproxy/build.sh, run twice in the guest
# with "nbthread 1" (one process, one thread) and "mode tcp": TLS ends at
# HAProxy and the plaintext goes to a stock nginx backend in the same guest
# (contrib/nginx/build.sh --stock; plain http, sendfile on, keep-alive):
#   A  bind lines without "ktls": HAProxy's own userspace TLS
#   B  the same bind lines with "ktls": the bridge's delegation
# Each has a TLS 1.2-only and a TLS 1.3-only bind line (ssl-min-ver and
# ssl-max-ver).  Per TLS version and file, on the HAProxy process only:
#   * CPU seconds (user, sys, both) per GiB through it: utime/stime of
#     /proc/PID/stat around one client's keep-alive GETs;
#   * syscalls per request: strace -c -f -p PID around one client's GETs
#     (accept, handshake, backend connect and closes included);
#   * requests per second with that one client;
#   * where the records went: /proc/net/tls_stat TlsTxSw/TlsRxSw deltas of
#     one openssl s_client connection per configuration.
# The client is ktls-client --no-offload --mode recv --get /FILE
# --requests K in the same guest; a run whose client does not end ok with
# every body makes its cell say FAILED.  A figure is the median of the
# repetitions (min-max), A and B alternating in each.  Under qemu TCG (no
# KVM here) every instruction is emulated: req/s is only indicative.
#
# Prints a Markdown report (date, host, versions, one table per TLS
# version with the ratio B/A).  Exit 0 when the benchmark ran (failed
# measurements show in the tables), 1 when it could not (no build, no
# HAProxy or nginx, no guest), 2 on a usage error.  It waits, polling
# every 20 s, while two or more qemu guests run on this machine.
# The guest's half: contrib/haproxy/bench-guest.sh.
# Environment: KTLS_BUILDDIR (default <top>/_build);
# KTLS_HAPROXY_BENCH_PLAN="NAME=VALUE ..." overrides the plan (below, "The
# plan"; e.g. "REPS=3 RS_f64m=1"); what the two build.sh and vm-run read.
set -euo pipefail

say() { echo "bench.sh (haproxy): $*" >&2; }
fail() { say "error: $*"; exit 1; }
usage_error() { say "$*"; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
top=${here%/contrib/haproxy}
export KTLS_BUILDDIR=${KTLS_BUILDDIR:-$top/_build}

quick=0 kernel=patched-6.12 raw=
while [ $# -gt 0 ]; do
	arg=$1
	shift
	case $arg in
	--kernel=* | --raw=*) set -- "${arg%%=*}" "${arg#*=}" "$@" ;;
	--kernel | --raw)
		[ $# -gt 0 ] || usage_error "$arg needs a value"
		if [ "$arg" = --raw ]; then raw=$1; else kernel=$1; fi
		shift
		;;
	--quick) quick=1 ;;
	-h | --help)
		sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	*) usage_error "unknown argument: $arg (see --help)" ;;
	esac
done

# The plan.  REPS repetitions; per file F: K_F GETs on one connection for
# CPU and req/s in the first R_F repetitions (default: all), KS_F GETs
# under strace in the first RS_F.  The full plan (16 KiB and 64 MiB, the
# sizes of issue 15; all 5 repetitions of everything) was sized from a
# --quick run (43 s in a patched-6.12 guest) at about 20 minutes of guest
# time under TCG on this 2-core machine when idle.
if [ $quick = 1 ]; then
	files="f16k:16384 f1m:1048576"
	plan=(REPS=2 K_f16k=100 KS_f16k=20 K_f1m=4 KS_f1m=2)
	timeout=1200
else
	files="f16k:16384 f64m:67108864"
	plan=(REPS=5 K_f16k=1000 KS_f16k=200 K_f64m=1 KS_f64m=1)
	timeout=3600
fi
for setting in ${KTLS_HAPROXY_BENCH_PLAN:-}; do
	[[ $setting =~ ^(REPS|K_|KS_|R_|RS_)[a-z0-9]*=[0-9]+$ ]] ||
		usage_error "KTLS_HAPROXY_BENCH_PLAN: not NAME=NUMBER: $setting"
	plan+=("$setting")
done
reps=$(printf '%s\n' "${plan[@]}" | sed -n 's/^REPS=//p' | tail -n 1)

[ -f "$KTLS_BUILDDIR/Makefile" ] || fail "no project build in $KTLS_BUILDDIR (scripts/build.sh)"
[ -x "$top/test/vm/vm-run" ] || fail "test/vm/vm-run is missing"
command -v openssl >/dev/null || fail "the openssl command is needed (test certificate)"

# built_binary BUILD.SH ARGS...: the last line build.sh prints (cached
# after the first build)
built_binary() {
	local script=$1 printed status=0
	shift
	printed=$("$script" "$@" </dev/null) || status=$?
	[ $status = 0 ] || fail "$script $* exited $status$([ $status != 3 ] || echo ' (no access to the archive)')"
	printed=${printed##*$'\n'}
	[ -x "$printed" ] || fail "$script $* printed no binary ($printed)"
	echo "$printed"
}
say "building or finding HAProxy (contrib/haproxy/build.sh) and the stock nginx backend"
haproxy=$(built_binary "$here/build.sh")
nginx=$(built_binary "$top/contrib/nginx/build.sh" --stock)
say "haproxy: $haproxy"
say "nginx (backend): $nginx"

work=$(mktemp -d "${TMPDIR:-/tmp}/ktls-haproxy-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/certs" "$work/haplib"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
	-keyout "$work/certs/key.pem" -out "$work/certs/cert.pem" >/dev/null 2>&1 ||
	fail "openssl req could not make the certificate"

# Shared libraries the guest may lack: the two binaries' except libc, libm,
# libssl, libcrypto (the guest's openssl has them) and libktls-bridge (the
# project is installed there); and libgcc_s, loaded by glibc at thread exit.
ldd "$haproxy" "$nginx" | awk '$2 == "=>" && substr($3, 1, 1) == "/" { print $3 }' | sort -u |
	while read -r lib; do
		case ${lib##*/} in
		libc.so.* | libm.so.* | libssl.so.* | libcrypto.so.* | libktls-bridge.so.*) continue ;;
		esac
		cp -L "$lib" "$work/haplib/${lib##*/}"
	done
libgcc=$(ldconfig -p | awk '$1 == "libgcc_s.so.1" && /x86-64/ { print $NF; exit }')
[ -n "$libgcc" ] || fail "ldconfig -p knows no x86-64 libgcc_s.so.1"
cp -L "$libgcc" "$work/haplib/"

printf "FILES='%s'\nCFGS='A B'\nPROTOS='tls1_2 tls1_3'\n" "$files" >"$work/bench.params"
printf '%s\n' "${plan[@]}" >>"$work/bench.params"

# at most one other guest besides ours on this 2-core machine
while guests=$(pgrep -c -f qemu-system) && [ "$guests" -ge 2 ]; do
	say "$guests qemu guests are running: waiting 20 s"
	sleep 20
done

# the commit of the library the guest gets (other work may commit while
# the guest runs)
rev=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
say "booting a $kernel guest for the measurements"
t0=$SECONDS
vm=(--kernel "$kernel" --memory 2048 --timeout "$timeout" --timing)
for put in "$haproxy:haproxy" "$nginx:nginx-stock" "$work/haplib:haplib" "$work/certs:certs" \
	"$work/bench.params:bench.params" "$here/bench-guest.sh:bench-guest.sh"; do
	vm+=(--put "${put%:*}:/root/${put##*:}")
done
# the guest's stdout (the measurements) into raw; vm-run's and the
# guest's stderr (progress, timing) to ours and into vm.err
{
	status=0
	"$top/test/vm/vm-run" "${vm[@]}" -- 'bash /root/bench-guest.sh' 2>&1 >"$work/raw" || status=$?
	echo "$status" >"$work/vm.rc"
} | tee "$work/vm.err" >&2
wall=$((SECONDS - t0))
if [ -n "$raw" ]; then cp "$work/raw" "$raw"; fi
vmrc=$(cat "$work/vm.rc")
case $vmrc in
0) grep -q '^M ' "$work/raw" || fail "no measurement came back from the guest" ;;
*) fail "the guest run failed: vm-run exited $vmrc after $wall s $(grep '^FATAL' "$work/raw" | tr '\n' ' ')" ;;
esac

# The report, from the guest's lines (see bench-guest.sh for their format).
read -r -d '' report <<'AWK' || true
function num(x) {
	if (x == 0) return "0"
	return sprintf(x >= 100 ? "%.0f" : x >= 10 ? "%.1f" : x >= 1 ? "%.2f" : "%.3f", x)
}
# one value of a metric; a failed run is counted apart
function put(cfg, what, x) { series[cfg, what] = series[cfg, what] " " x }
function failed(cfg, what) { nfail[cfg, what]++ }
# the median, lowest and highest of a metric's values
function summary(cfg, what,    v, k, i, j, swap) {
	k = split(series[cfg, what], v, " ")
	for (i = 1; i < k; i++)
		for (j = k; j > i; j--)
			if (v[j - 1] + 0 > v[j] + 0) { swap = v[j]; v[j] = v[j - 1]; v[j - 1] = swap }
	mid = k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
	low = v[1]; high = v[k]
	return k
}
function shown(cfg, what,    k) {
	have[cfg] = 0
	if (nfail[cfg, what]) return "**FAILED** " nfail[cfg, what] " of " (nfail[cfg, what] + summary(cfg, what)) " runs"
	k = summary(cfg, what)
	if (!k) return "–"
	have[cfg] = 1; median[cfg] = mid
	return num(mid) (k == 1 ? " (1 run)" : " (" num(low) "–" num(high) (k < reps ? "; " k " runs" : "") ")")
}
function line(title, what,    a, b, r) {
	a = shown("A", what); b = shown("B", what)
	r = have["A"] && have["B"] && median["A"] ? sprintf("%.2f", median["B"] / median["A"]) : "–"
	print "| " title " | " a " | " b " | " r " |"
}
# NAME=VALUE words from field 7 on, into kv[]
function fields(    i, eq) {
	delete kv
	for (i = 7; i <= NF; i++) { eq = index($i, "="); kv[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
}
BEGIN {
	size["f16k"] = "16 KiB"; size["f1m"] = "1 MiB"; size["f64m"] = "64 MiB"
	tls["tls1_2"] = "TLS 1.2"; tls["tls1_3"] = "TLS 1.3"
	hz = 100
	n = split(plan, words, " ")
	for (i = 1; i <= n; i++) { eq = index(words[i], "="); want[substr(words[i], 1, eq - 1)] = substr(words[i], eq + 1) }
}
$1 == "INFO" {
	key = $2; $1 = $2 = ""; sub(/^ +/, "")
	if (key == "spent_s") { spent = spent (spent ? ", " : "") (size[$1] ? size[$1] : $1) " " num($2) " s"; next }
	if (key == "clk_tck") hz = $0 + 0
	if (key in info) info[key] = info[key] "; " $0
	else info[key] = $0
	next
}
$1 == "OFFLOAD" { where[$2, $3] = $4 " " $5; next }
$1 == "ERR" { errors[++nerr] = $0; next }
$1 == "HAPERR" { alerts[++nalert] = $0; next }
$1 == "SC" { bycall[$2, $3, $4, $5] = $6; if (!(($3, $4, $5) in named)) { named[$3, $4, $5] = 1; calls[$3, $4] = calls[$3, $4] " " $5 }; next }
$1 == "M" {
	fields()
	if (!($4 in known)) { known[$4] = 1; order[++nfiles] = $4 }
	what = $3 SUBSEP $4
	if ($5 == "cpu") {
		if (kv["ok"] != 1) { failed($2, what SUBSEP "user"); failed($2, what SUBSEP "sys"); failed($2, what SUBSEP "both"); failed($2, what SUBSEP "rps"); next }
		gib = kv["bytes"] / 2 ^ 30
		put($2, what SUBSEP "user", kv["ut"] / hz / gib)
		put($2, what SUBSEP "sys", kv["st"] / hz / gib)
		put($2, what SUBSEP "both", (kv["ut"] + kv["st"]) / hz / gib)
		put($2, what SUBSEP "rps", kv["reqs"] / kv["wall"])
	} else if ($5 == "sc") {
		if ($6 == 1) traced[$2, $3, $4] = kv["reqs"]
		if (kv["ok"] != 1) { failed($2, what SUBSEP "sc"); next }
		put($2, what SUBSEP "sc", kv["calls"] / kv["reqs"])
	}
	next
}
function times(f, k, r) {
	r = (("R" k "_" f) in want) && want["R" k "_" f] < reps ? want["R" k "_" f] : reps
	return want["K" k "_" f] (want["K" k "_" f] == 1 ? " GET (" : " GETs (") r (r == 1 ? " run" : " runs") ")"
}
END {
	print "### HAProxy: userspace TLS vs ktls-bridge, TCP mode (contrib/haproxy/bench.sh" (quick ? " --quick" : "") ")"
	print ""
	print "* date: " date "; host: " host ", qemu TCG guest (no KVM), " info["cpus"] " vCPUs, " int(info["memory_kib"] / 1024) " MiB"
	print "* guest kernel: " info["kernel"] " (flavour " flavour "); " info["openssl"] " (HAProxy's libssl and the client's)"
	print "* HAProxy: " info["haproxy"] " (" info["haproxy_ssl"] "), built by contrib/haproxy/build.sh with the bridge's patch; ktls-offload " rev " (the library of KTLS_BUILDDIR)"
	print "* A = bind lines without `ktls` (userspace TLS); B = the same binary, bind lines with `ktls` (the bridge's delegation, default policy).  Both: `nbthread 1`, `mode tcp`, one bind line per TLS version (`ssl-min-ver`/`ssl-max-ver`), default ciphers, ECDSA P-256 certificate, plaintext to the backend"
	print "* backend: " info["nginx"] " (contrib/nginx/build.sh --stock), plain http in the same guest, `sendfile on`, keep-alive, one worker"
	printf "* where HAProxy's records went (/proc/net/tls_stat TlsTxSw/TlsRxSw deltas of one openssl s_client connection):"
	for (p = 2; p <= 3; p++) printf " %s: A %s, B %s%s", tls["tls1_" p], where["A", "tls1_" p], where["B", "tls1_" p], (p == 2 ? ";" : "\n")
	print "* client: ktls-client --no-offload --mode recv --get /FILE --requests K (userspace records) in the same guest, not measured; CPU and syscalls are the HAProxy process's (utime/stime of /proc/PID/stat at CLK_TCK " hz "; strace -c -f -p PID)"
	printf "* runs: median of %d repetitions (min–max), A and B alternating in each; per run one client, K GETs on one connection, for CPU and req/s, then another under strace.  K:", reps
	for (i = 1; i <= nfiles; i++) printf "%s %s: %s, strace %s", (i > 1 ? ";" : ""), size[order[i]], times(order[i], ""), times(order[i], "S")
	print ""
	print "* every figure includes each connection's handshake, backend connect and closes, spread over its K requests; **req/s is only indicative**: every instruction is emulated (TCG) on a shared 2-core host and the client's own decryption dominates it"
	print "* time: " wall " s on the host for the guest run (vm-run " timing "); in the guest: setup " num(info["setup_s"]) " s, measurements " spent "; total " num(info["guest_s"]) " s"
	for (p = 2; p <= 3; p++) {
		pr = "tls1_" p
		print ""
		print "#### " tls[pr]
		print ""
		print "| file | metric | A userspace TLS | B `ktls` (bridge) | B/A |"
		print "|---|---|---|---|---|"
		for (i = 1; i <= nfiles; i++) {
			f = order[i]; w = pr SUBSEP f
			line(size[f] " | HAProxy CPU user, s/GiB", w SUBSEP "user")
			line(size[f] " | HAProxy CPU sys, s/GiB", w SUBSEP "sys")
			line(size[f] " | HAProxy CPU user+sys, s/GiB", w SUBSEP "both")
			line(size[f] " | HAProxy syscalls / request", w SUBSEP "sc")
			line(size[f] " | req/s, 1 client", w SUBSEP "rps")
		}
	}
	print ""
	print "#### HAProxy's syscalls by name, per request, where A and B differ (first strace run; at least 0.5 in one of them)"
	print ""
	print "| TLS | file | syscall | A | B |"
	print "|---|---|---|---|---|"
	for (p = 2; p <= 3; p++)
		for (i = 1; i <= nfiles; i++) {
			pr = "tls1_" p; f = order[i]
			k = split(calls[pr, f], names, " ")
			for (j = 1; j <= k; j++) {
				a = traced["A", pr, f] ? bycall["A", pr, f, names[j]] / traced["A", pr, f] : 0
				b = traced["B", pr, f] ? bycall["B", pr, f, names[j]] / traced["B", pr, f] : 0
				if ((a >= 0.5 || b >= 0.5) && num(a) != num(b))
					print "| " tls[pr] " | " size[f] " | " names[j] " | " num(a) " | " num(b) " |"
			}
		}
	quote("Failed runs", errors, nerr)
	quote("HAProxy's alerts", alerts, nalert)
}
# a titled list of at most 40 raw lines, indented (Markdown code)
function quote(title, lines, count,    i) {
	if (!count) return
	printf "\n%s:\n\n", title
	for (i = 1; i <= count && i <= 40; i++) print "    " lines[i]
	if (count > 40) print "    (" count - 40 " more)"
}
AWK

awk -v date="$(date -u '+%Y-%m-%d %H:%M UTC')" \
	-v host="$(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
	-v flavour="$kernel" -v wall="$wall" -v quick="$quick" -v reps="$reps" -v plan="${plan[*]}" \
	-v rev="$rev" \
	-v timing="$(sed -n 's/^vm-run: timing: //p' "$work/vm.err" | tail -n 1)" \
	"$report" "$work/raw"
