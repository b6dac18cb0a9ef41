#!/bin/bash
# bench-guest.sh - the guest half of contrib/nginx/bench.sh (run there by
# test/vm/vm-run as `bash /root/bench-guest.sh`; not useful on its own).
#
# Expects in /root: nginx (with the bridge), nginx-stock, ngxlib/ (their
# libraries), certs/{cert,key}.pem and bench.params (the sizes, request
# counts and repetitions, written by bench.sh).  Starts three nginx
# instances of the same source:
#   A  nginx-stock, no kTLS
#   B  nginx-stock with "ssl_conf_command Options KTLS;"
#   C  nginx with ktls-bridge (the bridge offloads on its own)
# each with a TLS 1.2-only and a TLS 1.3-only server block (ssl_protocols),
# and measures its single worker from outside.  stdout carries one line per
# measurement, parsed by bench.sh:
#   INFO KEY VALUE...
#   OFFLOAD CFG PROTO tx=N rx=N            tls_stat deltas of one s_client connection
#   M CFG PROTO FILE KIND REP ok=0|1 k=v...
#   SC CFG PROTO FILE SYSCALL CALLS        strace -c of the first repetition
#   ERR CFG PROTO FILE KIND REP MESSAGE    a failed client (the M line has ok=0)
# KIND: n1 (one keep-alive client: wall time and the worker's CPU ticks),
# n8 (N8 clients in parallel), sc (the worker under strace -c), hs (sequential
# fresh connections, one GET of the smallest file each), hsc (hs under
# strace).  Progress goes to stderr.  Exit 0 when the measurements ran (some
# may have failed: ok=0), 3 when the setup failed.
set -uo pipefail
cd /root || exit 3
# shellcheck disable=SC1091
. /root/bench.params
export LD_LIBRARY_PATH=/root/ngxlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

t_begin=$EPOCHREALTIME
say() { echo "bench-guest: $*" >&2; }
fatal() {
	echo "FATAL $*"
	say "error: $*"
	exit 3
}
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }

clk=$(getconf CLK_TCK 2>/dev/null) || clk=100
[ -n "$clk" ] || clk=100
echo "INFO clk_tck $clk"
echo "INFO kernel $(uname -r)"
echo "INFO openssl $(openssl version)"
echo "INFO nginx_stock $(./nginx-stock -v 2>&1)"
echo "INFO nginx_bridge $(./nginx -v 2>&1)"
echo "INFO cpus $(grep -c '^processor' /proc/cpuinfo)"
echo "INFO memory_kib $(awk '$1 == "MemTotal:" {print $2}' /proc/meminfo)"

# the files: NAME:BYTES (FILES from bench.params); hs uses the first one
mkdir -p www
declare -A size
for f in $FILES; do
	name=${f%%:*} bytes=${f#*:}
	size[$name]=$bytes
	head -c "$bytes" /dev/urandom >"www/$name" || fatal "cannot write www/$name"
done
hsfile=${FILES%%:*}
hsfile=${hsfile%% *}

# nginx.conf for CFG: BINARY, EXTRA (http-level directive), PORT BASE
declare -A bin extra base master worker
bin[A]=./nginx-stock extra[A]='' base[A]=8410
bin[B]=./nginx-stock extra[B]='ssl_conf_command Options KTLS;' base[B]=8420
bin[C]=./nginx extra[C]='' base[C]=8430
port() { # CFG PROTO
	case $2 in
	tls1_2) echo $((base[$1] + 2)) ;;
	tls1_3) echo $((base[$1] + 3)) ;;
	esac
}
for c in $CFGS; do
	mkdir -p "$c/logs"
	cat >"$c/nginx.conf" <<EOC
user root;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    keepalive_timeout 300s;
    ssl_certificate /root/certs/cert.pem;
    ssl_certificate_key /root/certs/key.pem;
    ${extra[$c]}
    server {
        listen 127.0.0.1:$(port "$c" tls1_2) ssl;
        ssl_protocols TLSv1.2;
        root /root/www;
    }
    server {
        listen 127.0.0.1:$(port "$c" tls1_3) ssl;
        ssl_protocols TLSv1.3;
        root /root/www;
    }
}
EOC
	"${bin[$c]}" -t -p "/root/$c" -c nginx.conf 2>/dev/null ||
		fatal "nginx.conf of $c: $("${bin[$c]}" -t -p "/root/$c" -c nginx.conf 2>&1 | tr '\n' ' ')"
	"${bin[$c]}" -p "/root/$c" -c nginx.conf || fatal "nginx $c did not start: $(cat "$c/logs/error.log")"
done

# the worker of a master: the process whose parent it is (comm is the
# binary's name, nginx or nginx-stock: no spaces)
worker_of() {
	local m=$1 s l
	for s in /proc/[0-9]*/stat; do
		read -r l 2>/dev/null <"$s" || continue
		# shellcheck disable=SC2086 # pid (comm) state ppid ...
		set -- $l
		[ "$4" != "$m" ] || echo "$1"
	done
}
for c in $CFGS; do
	for _ in $(seq 1 200); do
		[ -s "$c/logs/nginx.pid" ] && master[$c]=$(cat "$c/logs/nginx.pid") &&
			w=$(worker_of "${master[$c]}") && [ -n "$w" ] && [ "$(echo "$w" | wc -w)" = 1 ] &&
			ss -ltnH "( sport = :$(port "$c" tls1_3) )" | grep -q . && break
		w=
		sleep 0.05
	done
	[ -n "$w" ] || fatal "no single worker for nginx $c"
	worker[$c]=$w
	echo "INFO worker $c ${master[$c]} $w"
done

ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; } # utime stime
# until the worker has no connection on PORT left (it has finished the
# closes too), at most 10 s
idle() {
	local i
	for i in $(seq 1 200); do
		ss -tnH state established state close-wait state syn-recv "( sport = :$1 )" 2>/dev/null |
			grep -q . || return 0
		sleep 0.05
	done
	say "port $1 still has connections after 10 s"
}
tlsstat() { awk -v n="$1" '$1 == n { print $2 }' /proc/net/tls_stat; }

# client OUT CFG PROTO FILE K: one ktls-client doing K GETs on one
# keep-alive connection (records decrypted in userspace: --no-offload)
client() {
	ktls-client --json --no-offload --mode recv --timeout 120 "--$3" --get "/$4" \
		--requests "$5" "127.0.0.1:$(port "$2" "$3")" >"$1" 2>"$1.err"
}
# check OUT K FILE: the client's result; prints the reason when it failed
check() {
	local j rc=0 resp body want
	j=$(cat "$1" 2>/dev/null)
	want=$(($2 * ${size[$3]}))
	resp=$(echo "$j" | sed -n 's/.*"responses":\([0-9]*\).*/\1/p')
	body=$(echo "$j" | sed -n 's/.*"body_bytes":\([0-9]*\).*/\1/p')
	if [[ $j != *'"ok":true'* ]]; then
		echo "not ok: $(echo "$j" | sed -n 's/.*"error":"\([^"]*\)".*/\1/p') $(tail -n 2 "$1.err" 2>/dev/null | tr '\n' ' ')"
		rc=1
	elif [ "$resp" != "$2" ] || [ "$body" != "$want" ]; then
		echo "responses=$resp (want $2) body_bytes=$body (want $want)"
		rc=1
	fi
	return $rc
}

alive() { # CFG: the same worker still runs
	[ "$(worker_of "${master[$1]}")" = "${worker[$1]}" ]
}

# n1 CFG PROTO FILE REP K
n1() {
	local c=$1 p=$2 f=$3 r=$4 k=$5 w=${worker[$1]} t0 t1 a b ok=1 msg
	a=$(ticks "$w")
	t0=$(now)
	client n1.json "$c" "$p" "$f" "$k"
	t1=$(now)
	idle "$(port "$c" "$p")"
	b=$(ticks "$w")
	msg=$(check n1.json "$k" "$f") || ok=0
	alive "$c" || { ok=0 msg="worker ${worker[$c]} is gone"; }
	[ $ok = 1 ] || echo "ERR $c $p $f n1 $r $msg"
	# shellcheck disable=SC2086 # utime stime before, after
	set -- $a $b
	echo "M $c $p $f n1 $r ok=$ok reqs=$k bytes=$((k * ${size[$f]})) wall=$(elapsed "$t0" "$t1") ut=$(($3 - $1)) st=$(($4 - $2))"
}

# n8 CFG PROTO FILE REP K: N8 clients in parallel, K GETs each
n8() {
	local c=$1 p=$2 f=$3 r=$4 k=$5 w=${worker[$1]} t0 t1 a b ok=1 msg i pids=()
	a=$(ticks "$w")
	t0=$(now)
	for i in $(seq 1 "$N8"); do
		client "n8.$i.json" "$c" "$p" "$f" "$k" &
		pids+=($!)
	done
	wait "${pids[@]}"
	t1=$(now)
	idle "$(port "$c" "$p")"
	b=$(ticks "$w")
	for i in $(seq 1 "$N8"); do
		if ! msg=$(check "n8.$i.json" "$k" "$f"); then
			ok=0
			echo "ERR $c $p $f n8 $r client $i: $msg"
		fi
	done
	alive "$c" || { ok=0; echo "ERR $c $p $f n8 $r worker ${worker[$c]} is gone"; }
	# shellcheck disable=SC2086 # utime stime before, after
	set -- $a $b
	echo "M $c $p $f n8 $r ok=$ok reqs=$((N8 * k)) bytes=$((N8 * k * ${size[$f]})) wall=$(elapsed "$t0" "$t1") ut=$(($3 - $1)) st=$(($4 - $2))"
}

# strace -c of the worker around COMMAND...; sets calls (the total) and
# keeps the summary in sc.txt
strace_around() {
	local w=$1 sp i
	shift
	rm -f sc.txt sc.err
	strace -f -c -U calls,name -o sc.txt -p "$w" 2>sc.err &
	sp=$!
	for i in $(seq 1 200); do
		grep -q attached sc.err 2>/dev/null && break
		sleep 0.05
	done
	"$@"
	kill -INT $sp 2>/dev/null
	wait $sp
	calls=$(awk '$2 == "total" { print $1 }' sc.txt 2>/dev/null)
	[ -n "$calls" ] || calls=0
}

# sc CFG PROTO FILE REP K
# shellcheck disable=SC2317 # called through strace_around
sc_batch() { # CFG PROTO FILE K
	client sc.json "$1" "$2" "$3" "$4"
	idle "$(port "$1" "$2")"
}
sc() {
	local c=$1 p=$2 f=$3 r=$4 k=$5 ok=1 msg calls
	strace_around "${worker[$c]}" sc_batch "$c" "$p" "$f" "$k"
	msg=$(check sc.json "$k" "$f") || ok=0
	[ "$calls" -gt 0 ] || { ok=0 msg="strace counted nothing: $(tr '\n' ' ' <sc.err)"; }
	[ $ok = 1 ] || echo "ERR $c $p $f sc $r $msg"
	echo "M $c $p $f sc $r ok=$ok reqs=$k calls=$calls"
	[ "$r" != 1 ] || awk -v h="SC $c $p $f" '$1 ~ /^[0-9]+$/ && NF == 2 && $2 != "total" { print h, $2, $1 }' sc.txt
}

# hs CFG PROTO REP M: M fresh connections one after the other
hs_batch() { # CFG PROTO M OUTPREFIX
	local i
	hsok=1
	for i in $(seq 1 "$3"); do
		client "$4.json" "$1" "$2" "$hsfile" 1
		if ! hsmsg=$(check "$4.json" 1 "$hsfile"); then
			hsok=0
			break
		fi
	done
	idle "$(port "$1" "$2")"
}
hs() {
	local c=$1 p=$2 r=$3 m=$4 w=${worker[$1]} t0 t1 a b
	a=$(ticks "$w")
	t0=$(now)
	hs_batch "$c" "$p" "$m" hs
	t1=$(now)
	b=$(ticks "$w")
	alive "$c" || { hsok=0 hsmsg="worker ${worker[$c]} is gone"; }
	[ $hsok = 1 ] || echo "ERR $c $p $hsfile hs $r $hsmsg"
	# shellcheck disable=SC2086 # utime stime before, after
	set -- $a $b
	echo "M $c $p $hsfile hs $r ok=$hsok conns=$m wall=$(elapsed "$t0" "$t1") ut=$(($3 - $1)) st=$(($4 - $2))"
}
hsc() {
	local c=$1 p=$2 r=$3 m=$4 calls
	strace_around "${worker[$c]}" hs_batch "$c" "$p" "$m" hsc
	[ "$calls" -gt 0 ] || { hsok=0 hsmsg="strace counted nothing: $(tr '\n' ' ' <sc.err)"; }
	[ $hsok = 1 ] || echo "ERR $c $p $hsfile hsc $r $hsmsg"
	echo "M $c $p $hsfile hsc $r ok=$hsok conns=$m calls=$calls"
	[ "$r" != 1 ] || awk -v h="SC $c $p hs" '$1 ~ /^[0-9]+$/ && NF == 2 && $2 != "total" { print h, $2, $1 }' sc.txt
}

# Warm-up (the bridge probes the kernel on its first connection), then one
# connection per configuration and protocol with tls_stat around it: where
# nginx's records went.  The client there is stock openssl s_client (no
# kTLS of its own; ktls-client runs the bridge's probe even with
# --no-offload, which tls_stat would count).
for c in $CFGS; do
	for p in $PROTOS; do
		client warm.json "$c" "$p" "$hsfile" 1
		msg=$(check warm.json 1 "$hsfile") || fatal "warm-up of $c $p: $msg"
		idle "$(port "$c" "$p")"
		tx0=$(tlsstat TlsTxSw) rx0=$(tlsstat TlsRxSw)
		printf 'GET /%s HTTP/1.0\r\n\r\n' "$hsfile" |
			openssl s_client -quiet "-$p" -connect "127.0.0.1:$(port "$c" "$p")" >chk.out 2>chk.err
		idle "$(port "$c" "$p")"
		if ! head -n 1 chk.out | grep -q ' 200 ' || [ "$(wc -c <chk.out)" -le "${size[$hsfile]}" ]; then
			fatal "openssl s_client to $c $p: $(head -c 200 chk.out) $(tail -n 3 chk.err)"
		fi
		echo "OFFLOAD $c $p tx=$(($(tlsstat TlsTxSw) - tx0)) rx=$(($(tlsstat TlsRxSw) - rx0))"
	done
done
echo "INFO setup_s $(elapsed "$t_begin" "$(now)")"

# Repetitions outermost and configurations innermost: a slow spell of the
# (shared, emulated) machine hits A, B and C alike.
declare -A spent
for r in $(seq 1 "$REPS"); do
	for p in $PROTOS; do
		for f in $FILES; do
			f=${f%%:*}
			k1=K1_$f ks=KS_$f k8=K8_$f r1=R1_$f r8=R8_$f rs=RS_$f
			for c in $CFGS; do
				say "rep $r/$REPS $p $f $c"
				t=$(now)
				if [ "$r" -le "${!r1:-$REPS}" ]; then
					n1 "$c" "$p" "$f" "$r" "${!k1}"
				fi
				if [ "$r" -le "${!r8:-$REPS}" ]; then
					n8 "$c" "$p" "$f" "$r" "${!k8}"
				fi
				if [ "$r" -le "${!rs:-$REPS}" ]; then
					sc "$c" "$p" "$f" "$r" "${!ks}"
				fi
				spent[$f]=$(awk -v s="${spent[$f]:-0}" -v d="$(elapsed "$t" "$(now)")" 'BEGIN { print s + d }')
			done
		done
		for c in $CFGS; do
			say "rep $r/$REPS $p handshakes $c"
			t=$(now)
			hs "$c" "$p" "$r" "$M"
			hsc "$c" "$p" "$r" "$MS"
			spent[hs]=$(awk -v s="${spent[hs]:-0}" -v d="$(elapsed "$t" "$(now)")" 'BEGIN { print s + d }')
		done
	done
done
for k in "${!spent[@]}"; do echo "INFO spent_s $k ${spent[$k]}"; done

for c in $CFGS; do
	kill "${master[$c]}" 2>/dev/null
done
sleep 0.5
for c in $CFGS; do
	grep -h -E '\[(alert|emerg|crit)\]' "$c/logs/error.log" | sed "s/^/NGXERR $c /" | head -n 20
done
echo "INFO guest_s $(elapsed "$t_begin" "$(now)")"
exit 0
