#!/bin/bash
# bench-guest.sh - the guest half of contrib/haproxy/bench.sh: test/vm/vm-run
# runs it as `bash /root/bench-guest.sh`; on its own it is of no use.
#
# /root holds what bench.sh put there: haproxy (built by
# contrib/haproxy/build.sh), nginx-stock (contrib/nginx/build.sh --stock,
# the backend), haplib/ (libraries the guest lacks), certs/{cert,key}.pem
# and bench.params (files, request counts, repetitions).  It starts one
# plain-http nginx backend (sendfile on, keep-alive) and two HAProxy
# processes of the same binary, nbthread 1, mode tcp, TLS terminated there:
#   A  bind lines without "ktls" (HAProxy's own userspace TLS)
#   B  the same bind lines with "ktls" (the bridge's delegation)
# each with a TLS 1.2-only and a TLS 1.3-only bind line, and measures the
# HAProxy process from outside (/proc/PID/stat, strace -c -f -p PID).
# stdout, read by bench.sh, one line per fact:
#   INFO KEY VALUE...
#   OFFLOAD CFG PROTO tx=N rx=N          tls_stat TlsTxSw/TlsRxSw deltas of
#                                        one openssl s_client connection
#   M CFG PROTO FILE KIND REP ok=0|1 k=v...
#   SC CFG PROTO FILE SYSCALL CALLS      by name, first strace repetition
#   ERR CFG PROTO FILE KIND REP TEXT     why a measurement has ok=0
#   HAPERR CFG LINE                      HAProxy's ALERT lines
# KIND: cpu (one keep-alive client: wall time and HAProxy's CPU ticks), sc
# (the same under strace -c).  Progress on stderr.  Exit 0 once measured
# (failures are ok=0 lines), 3 when the setup failed.
set -uo pipefail
started=$EPOCHREALTIME
note() { echo "bench-guest: $*" >&2; }
# setup_failed TEXT: a FATAL line for bench.sh, then exit 3
setup_failed() { echo "FATAL $*"; note "error: $*"; exit 3; }
cd /root || setup_failed "no /root"
# shellcheck disable=SC1091
. ./bench.params
export LD_LIBRARY_PATH=/root/haplib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# seconds from $1 to now (or to $2)
since() { awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%.4f", b - a }'; }

hz=$(getconf CLK_TCK 2>/dev/null)
echo "INFO clk_tck ${hz:-100}"
echo "INFO kernel $(uname -r)"
echo "INFO openssl $(openssl version)"
echo "INFO haproxy $(./haproxy -v 2>&1 | head -n 1)"
echo "INFO haproxy_ssl $(./haproxy -vv 2>&1 | grep -m 1 'Running on OpenSSL' | sed 's/^ *//')"
echo "INFO nginx $(./nginx-stock -v 2>&1)"
echo "INFO cpus $(nproc)"
echo "INFO memory_kib $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"

# the files served: FILES="NAME:BYTES ..."
declare -A bytes_of
mkdir -p www
for spec in $FILES; do
	bytes_of[${spec%%:*}]=${spec#*:}
	head -c "${spec#*:}" /dev/urandom >"www/${spec%%:*}" || setup_failed "writing www/${spec%%:*}"
done
first_file=${FILES%%:*}

# the backend: stock nginx, plain http on 127.0.0.1:9080
backend=9080
mkdir -p be/logs
cat >be/nginx.conf <<EOF
user root; worker_processes 1; pid logs/nginx.pid; error_log logs/error.log warn;
events { worker_connections 256; }
http {
    server {
        listen 127.0.0.1:$backend;
        root /root/www;
        access_log off; sendfile on; tcp_nopush on;
        keepalive_requests 1000000; keepalive_timeout 600s;
    }
}
EOF
./nginx-stock -p /root/be -c nginx.conf ||
	setup_failed "the nginx backend did not start: $(tr '\n' ' ' <be/logs/error.log)"

# HAProxy: A and B differ only in the bind lines' "ktls"
cat certs/cert.pem certs/key.pem >crt.pem
declare -A kw=([A]='' [B]=' ktls') first_port=([A]=8410 [B]=8420) pid
listen_port() { # CFG PROTO
	if [ "$2" = tls1_2 ]; then echo $((first_port[$1] + 2)); else echo $((first_port[$1] + 3)); fi
}
for cfg in $CFGS; do
	{
		printf 'global\n    nbthread 1\n    maxconn 512\n'
		printf 'defaults\n    mode tcp\n    timeout connect 5s\n'
		printf '    timeout client 300s\n    timeout server 300s\n'
		printf 'frontend fe\n'
		printf '    bind 127.0.0.1:%s ssl crt /root/crt.pem ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2%s\n' \
			"$(listen_port "$cfg" tls1_2)" "${kw[$cfg]}"
		printf '    bind 127.0.0.1:%s ssl crt /root/crt.pem ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3%s\n' \
			"$(listen_port "$cfg" tls1_3)" "${kw[$cfg]}"
		printf '    default_backend be\n'
		printf 'backend be\n    server www 127.0.0.1:%s\n' "$backend"
	} >"$cfg.cfg"
	./haproxy -c -q -f "$cfg.cfg" >"$cfg.check" 2>&1 ||
		setup_failed "$cfg.cfg: $(tr '\n' ' ' <"$cfg.check")"
	./haproxy -db -f "$cfg.cfg" >"$cfg.out" 2>"$cfg.err" </dev/null &
	pid[$cfg]=$!
done

listening() { ss -ltnH "( sport = :$1 )" | grep -q .; }
for cfg in $CFGS; do
	n=0
	until listening "$(listen_port "$cfg" tls1_3)" && listening "$(listen_port "$cfg" tls1_2)"; do
		n=$((n + 1))
		if [ $n -gt 200 ] || ! kill -0 "${pid[$cfg]}" 2>/dev/null; then
			setup_failed "haproxy $cfg is not listening: $(tr '\n' ' ' <"$cfg.err")"
		fi
		sleep 0.05
	done
	# one process, one thread (nbthread 1): what /proc/PID/stat and strace see
	echo "INFO process $cfg ${pid[$cfg]} threads=$(awk '/^Threads:/ { print $2 }' "/proc/${pid[$cfg]}/status")"
done
listening $backend || setup_failed "the nginx backend is not listening"

# utime and stime of a process, in ticks (all its threads)
cpu_ticks() { awk '{ print $14 + 0, $15 + 0 }' "/proc/$1/stat"; }
# wait (at most 10 s) until HAProxy has no connection left on port $1 or
# to the backend: it has done the closes too
drained() {
	local tries=0
	while ss -tnH state established state close-wait state syn-recv \
		"( sport = :$1 or dport = :$backend )" 2>/dev/null | grep -q .; do
		tries=$((tries + 1))
		[ $tries -lt 200 ] || { note "port $1 still busy after 10 s"; return; }
		sleep 0.05
	done
}
stat_of() { awk -v k="$1" '$1 == k { print $2 }' /proc/net/tls_stat; }

# fetch RESULT CFG PROTO FILE K: K keep-alive GETs of FILE on one
# connection, the client's records in userspace (--no-offload)
fetch() {
	ktls-client --json --no-offload --mode recv --timeout 120 "--$3" --get "/$4" \
		--requests "$5" "127.0.0.1:$(listen_port "$2" "$3")" >"$1" 2>"$1.err"
}
# verdict RESULT K FILE: empty and true when the client got K whole
# bodies, else the reason
verdict() {
	local out got_resp got_body
	out=$(cat "$1" 2>/dev/null)
	got_resp=$(printf '%s' "$out" | sed -n 's/.*"responses":\([0-9]*\).*/\1/p')
	got_body=$(printf '%s' "$out" | sed -n 's/.*"body_bytes":\([0-9]*\).*/\1/p')
	case $out in
	*'"ok":true'*) ;;
	*)
		echo "client not ok: $(printf '%s' "$out" | sed -n 's/.*"error":"\([^"]*\)".*/\1/p')" \
			"$(tail -n 2 "$1.err" 2>/dev/null | tr '\n' ' ')"
		return 1
		;;
	esac
	if [ "$got_resp" != "$2" ] || [ "$got_body" != $(($2 * bytes_of[$3])) ]; then
		echo "responses=$got_resp of $2, body_bytes=$got_body of $(($2 * bytes_of[$3]))"
		return 1
	fi
}
running() { kill -0 "${pid[$1]}" 2>/dev/null; }

# measure_cpu CFG PROTO FILE REP K
measure_cpu() {
	local before after t0 t1 why ok=1 ut0 st0 ut1 st1
	before=$(cpu_ticks "${pid[$1]}")
	t0=$EPOCHREALTIME
	fetch cpu.json "$1" "$2" "$3" "$5"
	t1=$EPOCHREALTIME
	drained "$(listen_port "$1" "$2")"
	after=$(cpu_ticks "${pid[$1]}")
	why=$(verdict cpu.json "$5" "$3") || ok=0
	running "$1" || { ok=0 why="haproxy ${pid[$1]} exited"; }
	[ $ok = 1 ] || echo "ERR $1 $2 $3 cpu $4 $why"
	read -r ut0 st0 <<<"$before"
	read -r ut1 st1 <<<"$after"
	echo "M $1 $2 $3 cpu $4 ok=$ok reqs=$5 bytes=$(($5 * bytes_of[$3])) wall=$(since "$t0" "$t1") ut=$((ut1 - ut0)) st=$((st1 - st0))"
}

# measure_sc CFG PROTO FILE REP K: the same GETs with strace -c -f on the
# HAProxy process; the first repetition also lists the calls by name
measure_sc() {
	local tracer waited=0 total why ok=1
	rm -f sc.out sc.log
	strace -f -c -U calls,name -o sc.out -p "${pid[$1]}" 2>sc.log &
	tracer=$!
	until grep -q attached sc.log 2>/dev/null || [ $waited -ge 200 ]; do
		waited=$((waited + 1))
		sleep 0.05
	done
	fetch sc.json "$1" "$2" "$3" "$5"
	drained "$(listen_port "$1" "$2")"
	kill -INT "$tracer" 2>/dev/null
	wait "$tracer"
	total=$(awk '$2 == "total" { print $1 }' sc.out 2>/dev/null)
	why=$(verdict sc.json "$5" "$3") || ok=0
	[ "${total:-0}" -gt 0 ] || { ok=0 why="strace counted nothing: $(tr '\n' ' ' <sc.log)"; }
	running "$1" || { ok=0 why="haproxy ${pid[$1]} exited"; }
	[ $ok = 1 ] || echo "ERR $1 $2 $3 sc $4 $why"
	echo "M $1 $2 $3 sc $4 ok=$ok reqs=$5 calls=${total:-0}"
	if [ "$4" = 1 ]; then
		awk -v tag="SC $1 $2 $3" 'NF == 2 && $1 ~ /^[0-9]+$/ && $2 != "total" { print tag, $2, $1 }' sc.out
	fi
}

# First a warm-up connection each (the bridge probes the kernel on B's
# first one), then one stock openssl s_client connection with tls_stat
# around it: where HAProxy's records went.  (ktls-client would add its own
# probe to tls_stat even with --no-offload.)
for cfg in $CFGS; do
	for proto in $PROTOS; do
		port=$(listen_port "$cfg" "$proto")
		fetch warm.json "$cfg" "$proto" "$first_file" 2
		why=$(verdict warm.json 2 "$first_file") || setup_failed "warm-up of $cfg $proto: $why"
		drained "$port"
		tx=$(stat_of TlsTxSw) rx=$(stat_of TlsRxSw)
		printf 'GET /%s HTTP/1.0\r\n\r\n' "$first_file" |
			openssl s_client -quiet "-$proto" -connect "127.0.0.1:$port" >sclient.out 2>sclient.err
		drained "$port"
		if ! head -n 1 sclient.out | grep -q ' 200 ' ||
			[ "$(wc -c <sclient.out)" -le "${bytes_of[$first_file]}" ]; then
			setup_failed "openssl s_client through $cfg $proto: $(head -c 200 sclient.out) $(tail -n 3 sclient.err)"
		fi
		echo "OFFLOAD $cfg $proto tx=$(($(stat_of TlsTxSw) - tx)) rx=$(($(stat_of TlsRxSw) - rx))"
	done
done
echo "INFO setup_s $(since "$started")"

# Repetitions outermost, the configurations innermost: A and B alternate,
# so a slow spell of the shared, emulated machine hits both.
declare -A took
for rep in $(seq 1 "$REPS"); do
	for proto in $PROTOS; do
		for spec in $FILES; do
			f=${spec%%:*}
			kcpu=K_$f ksc=KS_$f rcpu=R_$f rsc=RS_$f
			for cfg in $CFGS; do
				note "repetition $rep/$REPS: $proto $f $cfg"
				t=$EPOCHREALTIME
				[ "$rep" -gt "${!rcpu:-$REPS}" ] || measure_cpu "$cfg" "$proto" "$f" "$rep" "${!kcpu}"
				[ "$rep" -gt "${!rsc:-$REPS}" ] || measure_sc "$cfg" "$proto" "$f" "$rep" "${!ksc}"
				took[$f]=$(awk -v a="${took[$f]:-0}" -v b="$(since "$t")" 'BEGIN { print a + b }')
			done
		done
	done
done
for f in "${!took[@]}"; do echo "INFO spent_s $f ${took[$f]}"; done

kill "${pid[@]}" "$(cat be/logs/nginx.pid)" 2>/dev/null
wait
# HAProxy's alerts, "HAPERR CFG LINE" (CFG.err: its stderr)
for cfg in $CFGS; do
	awk -v cfg="$cfg" '/^\[?(ALERT|EMERG)/ && n++ < 20 { print "HAPERR", cfg, $0 }' "$cfg.err"
done
echo "INFO guest_s $(since "$started")"
exit 0
