#!/bin/bash
# bench-guest.sh - the guest half of contrib/uring/bench.sh (run there by
# test/vm/vm-run as `bash /root/bench-guest.sh`; not useful on its own).
#
# Expects in /root: certs/{cert,key}.pem, bench.params (files, client
# counts, requests, repetitions, configurations; written by bench.sh) and,
# when a configuration needs it, nginx-stock / nginx (with the bridge) and
# ngxlib/ (their libraries).  The servers, all serving /root/www over TLS
# 1.3 with kernel TLS:
#   R  ktls-serve --uring --root     (one io_uring ring, hand-off, splice)
#   H  ktls-serve --handoff --root   (one connection at a time: 1 client)
#   B  stock nginx, ssl_conf_command Options KTLS (epoll, one worker)
#   C  nginx with ktls-bridge (epoll, one worker)
# Each is measured from outside, on the process that serves (ktls-serve
# itself, the nginx worker).  One line per measurement on stdout:
#   INFO KEY VALUE...
#   M CFG FILE N REP ok=0|1 reqs= bytes= rps= wall= ut= st= reconnects=
#       N clients of ktls-client --connections, K GETs each; ut/st the
#       server's CPU ticks over the run (/proc/PID/stat, all its threads,
#       io_uring's workers included)
#   S CFG FILE N ok=0|1 reqs= bytes= calls=     the same run under strace -c -f
#   SC CFG FILE N SYSCALL CALLS                 that run's syscalls by name
#   ERR CFG FILE N REP MESSAGE
# Progress on stderr.  Exit 0 when the measurements ran (some may have
# failed: ok=0), 3 when the setup failed.
set -uo pipefail
cd /root || exit 3
# shellcheck disable=SC1091
. /root/bench.params
export LD_LIBRARY_PATH=/root/ngxlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# progress to stderr; a setup failure ends the run (FATAL for bench.sh)
say() { echo "bench-guest: $*" >&2; }
fatal() { echo "FATAL $*" && say "error: $*" && exit 3; }
# seconds since the float START (an $EPOCHREALTIME)
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'; }
t_begin=$EPOCHREALTIME

echo "INFO clk_tck $(getconf CLK_TCK 2>/dev/null || echo 100)"
echo "INFO kernel $(uname -r)"
echo "INFO openssl $(openssl version)"
echo "INFO cpus $(grep -c '^processor' /proc/cpuinfo)"
echo "INFO memory_kib $(awk '$1 == "MemTotal:" {print $2}' /proc/meminfo)"
[ ! -x ./nginx-stock ] || echo "INFO nginx $(./nginx-stock -v 2>&1)"

# FILES: NAME:BYTES ...
mkdir -p www
declare -A size hash
for f in $FILES; do
	name=${f%%:*}
	size[$name]=${f#*:}
	head -c "${size[$name]}" /dev/urandom >"www/$name" || fatal "cannot write www/$name"
	hash[$name]=$(sha256sum "www/$name" | cut -c1-64)
done

declare -A port pid
port[R]=8501 port[H]=8502 port[B]=8503 port[C]=8504

# nginx's configuration for B (stock + Options KTLS) or C (bridge)
nginx_conf() {
	mkdir -p "$1/logs"
	cat >"$1/nginx.conf" <<EOC
user root;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    keepalive_timeout 300s;
    ssl_certificate /root/certs/cert.pem;
    ssl_certificate_key /root/certs/key.pem;
    ssl_protocols TLSv1.3;
    $2
    server {
        listen 127.0.0.1:${port[$1]} ssl backlog=1024;
        root /root/www;
    }
}
EOC
}

# the nginx worker: the one process whose parent is the master
child_of() {
	local s l
	for s in /proc/[0-9]*/stat; do
		read -r l 2>/dev/null <"$s" || continue
		# shellcheck disable=SC2086 # pid (comm) state ppid ...
		set -- $l
		[ "$4" != "$CHILD_OF" ] || echo "$1"
	done
}

listening() { ss -ltnH "( sport = :$1 )" | grep -q .; }

for c in $CFGS; do
	case $c in
	R | H)
		mode=--uring
		[ "$c" = R ] || mode=--handoff
		ktls-serve --cert certs/cert.pem --key certs/key.pem --port "${port[$c]}" \
			--root /root/www "$mode" 2>"serve-$c.err" >/dev/null &
		pid[$c]=$!
		;;
	B | C)
		bin=./nginx
		extra=
		[ "$c" = C ] || { bin=./nginx-stock extra='ssl_conf_command Options KTLS;'; }
		nginx_conf "$c" "$extra"
		"$bin" -p "/root/$c" -c nginx.conf || fatal "nginx $c did not start: $(cat "$c/logs/error.log")"
		;;
	esac
	for _ in $(seq 1 200); do
		listening "${port[$c]}" && break
		sleep 0.05
	done
	listening "${port[$c]}" || fatal "$c does not listen: $(cat "serve-$c.err" 2>/dev/null)"
	if [ "$c" = B ] || [ "$c" = C ]; then
		CHILD_OF=$(cat "$c/logs/nginx.pid")
		w=$(child_of)
		[ "$(echo "$w" | wc -w)" = 1 ] || fatal "nginx $c: not one worker: $w"
		pid[$c]=$w
	fi
	echo "INFO server $c ${pid[$c]}"
done

# shellcheck disable=SC2317 # run and straced (every_cell's) call these
ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; } # utime stime
# until the server has no connection left on PORT, at most 20 s
idle() {
	for _ in $(seq 1 400); do
		ss -tnH state established state close-wait state syn-recv state fin-wait-1 \
			"( sport = :$1 )" 2>/dev/null | grep -q . || return 0
		sleep 0.05
	done
	say "port $1 still has connections after 20 s"
}
num() { sed -n "s/.*\"$1\":\\([0-9.]*\\).*/\\1/p" "$2"; }

# load OUT CFG FILE N K: N clients at once, K GETs each (userspace records
# on the client's side: the server's kTLS is what is measured)
load() {
	ktls-client --connections "$4" --json --no-offload --tls1_3 --mode recv \
		--timeout 300 --get "/$3" --requests "$5" --expect-sha256 "${hash[$3]}" \
		"127.0.0.1:${port[$2]}" >"$1" 2>"$1.err"
	idle "${port[$2]}"
}
# verdict OUT N K FILE: "" when the run is complete, else why not
verdict() {
	local reqs bytes
	reqs=$(num requests "$1") bytes=$(num bytes "$1")
	if ! grep -q '"ok":true' "$1"; then
		echo "failed: $(grep -v '^ *[tr]x:' "$1.err" | head -n 3 | tr '\n' ' ')"
	elif [ "$reqs" != $(($2 * $3)) ] || [ "$bytes" != $(($2 * $3 * ${size[$4]})) ]; then
		echo "requests=$reqs bytes=$bytes, want $(($2 * $3)) and $(($2 * $3 * ${size[$4]}))"
	fi
}

# run CFG FILE N K REP
# shellcheck disable=SC2317 # called by every_cell
run() {
	local c=$1 f=$2 n=$3 k=$4 r=$5 a b t0 wall msg ok=1
	a=$(ticks "${pid[$c]}")
	t0=$EPOCHREALTIME
	load run.json "$c" "$f" "$n" "$k"
	wall=$(since "$t0")
	b=$(ticks "${pid[$c]}")
	msg=$(verdict run.json "$n" "$k" "$f")
	kill -0 "${pid[$c]}" 2>/dev/null || msg="server ${pid[$c]} is gone $msg"
	[ -z "$msg" ] || { ok=0; echo "ERR $c $f $n $r $msg"; }
	# shellcheck disable=SC2086 # utime stime before, after
	set -- $a $b
	echo "M $c $f $n $r ok=$ok reqs=$(num requests run.json) bytes=$(num bytes run.json)" \
		"rps=$(num requests_per_s run.json) wall=$wall ut=$(($3 - $1))" \
		"st=$(($4 - $2)) reconnects=$(num reconnects run.json)"
}

# straced CFG FILE N K: the same run with strace -c -f on the server
# shellcheck disable=SC2317 # called by every_cell
straced() {
	local c=$1 f=$2 n=$3 k=$4 sp msg ok=1 calls
	rm -f sc.txt sc.err
	strace -f -c -U calls,name -o sc.txt -p "${pid[$c]}" 2>sc.err &
	sp=$!
	for _ in $(seq 1 200); do
		grep -q attached sc.err 2>/dev/null && break
		sleep 0.05
	done
	load sc.json "$c" "$f" "$n" "$k"
	kill -INT "$sp" 2>/dev/null
	wait "$sp"
	calls=$(awk '$2 == "total" { print $1 }' sc.txt 2>/dev/null)
	msg=$(verdict sc.json "$n" "$k" "$f")
	[ -n "$calls" ] || msg="strace counted nothing: $(tr '\n' ' ' <sc.err) $msg"
	[ -z "$msg" ] || { ok=0; echo "ERR $c $f $n strace $msg"; }
	echo "S $c $f $n ok=$ok reqs=$(num requests sc.json) bytes=$(num bytes sc.json) calls=${calls:-0}"
	awk -v h="SC $c $f $n" '$1 ~ /^[0-9]+$/ && NF == 2 && $2 != "total" { print h, $2, $1 }' sc.txt
}

# warm-up: one GET from each (the bridge probes the kernel on its first
# connection), and where each server's records go (tls_stat deltas)
tlsstat() { awk -v n="$1" '$1 == n { print $2 }' /proc/net/tls_stat; }
for c in $CFGS; do
	f=${FILES%%:*}
	tx=$(tlsstat TlsTxSw) rx=$(tlsstat TlsRxSw)
	load warm.json "$c" "$f" 1 1
	msg=$(verdict warm.json 1 1 "$f")
	[ -z "$msg" ] || fatal "warm-up of $c: $msg"
	echo "INFO offload $c tx=$(($(tlsstat TlsTxSw) - tx)) rx=$(($(tlsstat TlsRxSw) - rx))"
done
echo "INFO setup_s $(since "$t_begin")"

# every_cell WHAT ARGS...: WHAT CFG FILE N K ARGS... for each file, client
# count and server, servers innermost (a slow spell of the shared, emulated
# machine hits them alike); the one-at-a-time hand-off server (H) gets one
# client only
every_cell() {
	local what=$1 f n c kv
	shift
	for f in $FILES; do
		f=${f%%:*}
		for n in $CLIENTS; do
			kv=K_${f}_$n
			for c in $CFGS; do
				[ "$c" != H ] || [ "$n" = 1 ] || continue
				say "$what${*:+ $*} $f $n clients $c"
				"$what" "$c" "$f" "$n" "${!kv}" "$@"
			done
		done
	done
}
for r in $(seq 1 "$REPS"); do
	every_cell run "$r"
done
# strace once per cell, after the repetitions (its counts hardly vary; it
# slows the server)
t_strace=$EPOCHREALTIME
every_cell straced
echo "INFO strace_s $(since "$t_strace")"
for c in $CFGS; do
	case $c in
	R | H) kill "${pid[$c]}" 2>/dev/null ;;
	*) kill "$(cat "$c/logs/nginx.pid")" 2>/dev/null ;;
	esac
done
echo "INFO guest_s $(since "$t_begin")"
exit 0
