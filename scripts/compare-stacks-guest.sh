#!/bin/sh
# shellcheck disable=SC3043 # local: dash and busybox sh have it
# compare-stacks-guest.sh - the guest half of scripts/compare-stacks.sh
# (run by it inside a vm-run guest, not by hand).
#
# Runs every scenario against every server stack named in STACKS, one
# connection at a time on 127.0.0.1, and prints one line per run:
#   RES STACK SCENARIO result=R tx=K|U rx=K|U [detail=WORD] delta=NAME:N,...
# R is ok (the transfer was checked byte for byte, or the expected alert
# arrived), drop (the connection ended early: detail says how), wrong (bytes
# or alert differ), or n/a (the stack has no way to do this; detail says
# why).  tx/rx: whether the kernel took the server's direction, from the
# /proc/net/tls_stat deltas of the run (the clients never offload, so every
# count is the server's); delta: the counters that moved.
# Also: KERNEL uname -r, VERSION STACK text.
#
# Usage: sh compare-stacks-guest.sh STACKS MIB EVERY
#   STACKS  space-separated: ko-t ko-h ossl30 ossl35 gnutls
#   MIB     size of the long run in MiB, EVERY: its KeyUpdate interval in
#           records (of 16 KiB)
# Files it expects in $CS_DIR (default /root): certs/{cert,key}.pem,
# crafted-client, and for ossl35 ossl35/ (OpenSSL 3.5 libraries), for
# gnutls gnutls/ (bin/gnutls-serv, lib/, ktls.conf); ktls-serve,
# ktls-client and openssl on PATH.
set -u
W=${CS_DIR:-/root}
cd $W || exit 1
STACKS=$1 MIB=$2 EVERY=$3
C=$W/certs/cert.pem K=$W/certs/key.pem
PORT=${CS_PORT:-4433}
SMALL=4M
chmod +x $W/crafted-client

# the ktls provider with its default policy, for ktls-serve
mod=${CS_KTLS_MODULE:-$(find / -xdev -name ktls.so -path '*ossl-modules*' 2>/dev/null | head -n 1)}
cat >$W/ko.cnf <<EOF
openssl_conf = init
[init]
providers = prov
[prov]
default = dflt
ktls = ktls
[dflt]
activate = 1
[ktls]
activate = 1
module = $mod
EOF
# stock libssl's own kTLS switch, applied to every SSL_CTX
cat >$W/ossl-ktls.cnf <<EOF
openssl_conf = init
[init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = sysdef
[sysdef]
Options = KTLS
EOF
mkdir -p $W/www
dd if=/dev/urandom of=$W/www/small bs=1M count=4 2>/dev/null
dd if=/dev/urandom of=$W/www/long bs=1M count="$MIB" 2>/dev/null
rm -f $W/hold
mkfifo $W/hold
exec 9<>$W/hold # s_server's stdin: never at its end

listening() { ss -ltnH "( sport = :$PORT )" 2>/dev/null | grep -q .; }
waitport() {
	local i=0
	while ! listening; do
		i=$((i + 1))
		[ $i -gt 400 ] && return 1
		sleep 0.05
	done
}
# snap FILE: tls_stat's counters (none where the kernel has no kTLS)
snap() {
	if [ -r /proc/net/tls_stat ]; then
		awk 'NF == 2 && $2 ~ /^[0-9]+$/ {print $1, $2}' /proc/net/tls_stat >"$1"
	else
		: >"$1"
	fi
}
# delta BEFORE AFTER: NAME:N,... for every counter that moved
delta() {
	awk 'NR == FNR {b[$1] = $2; next}
	     {d = $2 - b[$1]; if (d) {printf "%s%s:%d", s, $1, d; s = ","}}
	     END {print ""}' "$1" "$2"
}
# on DELTA DIR: K if the kernel set up that direction (software or device)
on() {
	case ",$1," in
	*",Tls${2}Sw:"* | *",Tls${2}Device:"*) echo K ;;
	*) echo U ;;
	esac
}
# ready STACK: the server listens; the counters' base is taken.  The
# bridge probes the kernel at its first key install, on sockets of its
# own that tls_stat counts too, so a ktls-serve server has one small
# connection first (not counted) and the base is taken after it.
ready() {
	waitport || return 1
	case $1 in
	ko-*)
		OPENSSL_CONF=/dev/null ktls-client --no-offload --mode echo --bytes 1k \
			--timeout 30 127.0.0.1:$PORT >/dev/null 2>warm.err || return 1
		;;
	esac
	snap before
}
# stop PID: let a server end by itself for up to 10 s, then kill it
stop() {
	local i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
report() { # STACK SCENARIO RESULT DETAIL
	snap after
	d=$(delta before after)
	echo "RES $1 $2 result=$3 tx=$(on "$d" Tx) rx=$(on "$d" Rx) detail=${4:-none} delta=$d"
}
# sha [FILE]: the SHA-256 of FILE, else of stdin
sha() { if [ $# = 1 ]; then sha256sum <"$1"; else sha256sum; fi | cut -d' ' -f1; }
# the JSON field NAME of FILE's last line (strings and numbers only)
field() { tail -n 1 "$2" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"; }

# server STACK MODE VERSION-ARGS...: start the stack's server in the
# background (SP).  MODE: echo (an echo server), www (serves $W/www,
# s_server only), quiet (prints what it reads), cmd (takes commands on
# the FIFO $W/cmd), or ku (ktls-serve: echoes, with its own KeyUpdate
# every 4 records)
server() {
	local st=$1 mode=$2 a lib in
	shift 2
	case $st in
	ko-t | ko-h)
		a=
		[ $st = ko-h ] && a=--handoff
		[ $mode = ku ] && a="$a --keyupdate-every 4"
		# shellcheck disable=SC2086
		# two connections: ready()'s warm-up, then the scenario's
		OPENSSL_CONF=$W/ko.cnf ktls-serve --cert $C --key $K --port $PORT --echo \
			--max-conns 2 --json --timeout 60 $a "$@" >srv.out 2>srv.err &
		;;
	ossl30 | ossl35)
		lib=
		[ $st = ossl35 ] && lib=$W/ossl35
		case $mode in
		www) a=-WWW ;;
		quiet) a=-quiet ;;
		*) a= ;;
		esac
		in=$W/hold
		if [ $mode = cmd ]; then
			rm -f $W/cmd
			mkfifo $W/cmd
			in=$W/cmd
		fi
		# shellcheck disable=SC2086
		(cd $W/www && OPENSSL_CONF=$W/ossl-ktls.cnf \
			LD_LIBRARY_PATH=${lib:+$lib:}${LD_LIBRARY_PATH:-} exec openssl s_server \
			-accept 127.0.0.1:$PORT -cert $C -key $K -naccept 1 $a "$@" \
			<$in >$W/srv.out 2>$W/srv.err) &
		;;
	gnutls)
		GNUTLS_SYSTEM_PRIORITY_FILE=$W/gnutls/ktls.conf \
			LD_LIBRARY_PATH=$W/gnutls/lib $W/gnutls/bin/gnutls-serv --echo \
			--port $PORT --x509certfile $C --x509keyfile $K "$@" >srv.out 2>srv.err &
		;;
	esac
	SP=$!
}

# client run: its exit status and JSON in cli.out
ossl_args() { # VERSION: s_server's arguments for it
	case $1 in
	tls12) echo -tls1_2 ;;
	*) echo -tls1_3 ;;
	esac
}
kuevery() { # STACK: the KeyUpdate interval of ku and ku-req, in records
	# GnuTLS ends a connection whose peer sends more than 8 KeyUpdates
	# within a second ("Too many handshake packets"): 6 KeyUpdates over
	# the 4 MiB for it, 15 for the others
	if [ "$1" = gnutls ]; then echo 40; else echo 16; fi
}
textarg() { # STACK: ktls-client's payload argument for its echo server
	if [ "$1" = gnutls ]; then echo --text; fi
}
gnutls_prio() {
	case $1 in
	tls12) echo "--priority NORMAL:-VERS-ALL:+VERS-TLS1.2" ;;
	*) echo "--priority NORMAL:-VERS-ALL:+VERS-TLS1.3" ;;
	esac
}
# transfer STACK SCENARIO VERSION BYTES FILE CLIENT-ARGS...: data both ways
# (an echo server, or s_server -WWW sending FILE), checked byte for byte
transfer() {
	local st=$1 sc=$2 v=$3 n=$4 f=$5 cv=--tls1_3 rc size
	shift 5
	[ $v = tls12 ] && cv=--tls1_2
	case $st in
	ossl*)
		# shellcheck disable=SC2046
		server $st www $(ossl_args $v)
		if ! ready $st; then stop $SP; report $st $sc drop not-ready; return; fi
		OPENSSL_CONF=/dev/null ktls-client --no-offload $cv --json --mode recv \
			--request "GET /$f HTTP/1.0\r\n\r\n" --output got --timeout 120 "$@" \
			127.0.0.1:$PORT >cli.out 2>cli.err
		rc=$?
		stop $SP
		size=$(wc -c <$W/www/$f)
		if [ "$(tail -c "$size" got | sha)" = "$(sha $W/www/$f)" ]; then
			report $st $sc ok "$(field keyupdates_sent cli.out)-ku-sent-rc-$rc"
		elif [ "$(wc -c <got)" -lt "$size" ]; then
			report $st $sc drop "got-$(wc -c <got)-of-$size"
		else
			report $st $sc wrong bytes-differ
		fi
		rm -f got
		;;
	*)
		if [ $st = gnutls ]; then
			# shellcheck disable=SC2046
			server $st echo $(gnutls_prio $v)
		else
			server $st echo $cv
		fi
		if ! ready $st; then stop $SP; report $st $sc drop not-ready; return; fi
		# gnutls-serv --echo echoes lines of text only
		# shellcheck disable=SC2046
		OPENSSL_CONF=/dev/null ktls-client --no-offload $cv --json --mode echo \
			$(textarg $st) --bytes $n --timeout 120 "$@" 127.0.0.1:$PORT \
			>cli.out 2>cli.err
		rc=$?
		if [ $st = gnutls ]; then
			# after a drop its reason (stderr) may follow its alert
			[ $rc = 0 ] || sleep 1
			kill $SP 2>/dev/null
		fi
		stop $SP
		if [ $rc = 0 ]; then
			report $st $sc ok "$(field keyupdates_sent cli.out)-ku-sent"
		elif [ $st = gnutls ] && grep -q 'Too many handshake packets' srv.out srv.err; then
			report $st $sc drop "gnutls-ku-rate-limit-after-$(field keyupdates_sent cli.out)"
		else
			report $st $sc drop "$(field error cli.out | tr ' ' - | cut -c1-40)"
		fi
		;;
	esac
}

# own_ku STACK: the server sends KeyUpdates of its own while sending data
own_ku() {
	st=$1
	case $st in
	gnutls)
		snap before
		report $st own-ku n/a no-command-to-send-one
		;;
	ossl*)
		server $st cmd -tls1_3
		exec 8<>$W/cmd
		if ! ready $st; then stop $SP; exec 8>&-; report $st own-ku drop not-ready; return; fi
		OPENSSL_CONF=/dev/null ktls-client --no-offload --tls1_3 --json --mode recv \
			--output got --timeout 30 127.0.0.1:$PORT >cli.out 2>cli.err &
		cp=$!
		sleep 1
		: >want
		for i in 1 2 3 4; do
			printf 'k\n' >&8
			sleep 0.3
			echo "line $i after a KeyUpdate" | tee -a want >&8
			sleep 0.3
		done
		printf 'q\n' >&8
		wait $cp
		exec 8>&-
		stop $SP
		if [ "$(sha got)" = "$(sha want)" ]; then
			report $st own-ku ok 4-k-commands
		else
			report $st own-ku drop "got-$(wc -c <got)-of-$(wc -c <want)"
		fi
		rm -f got
		;;
	*)
		server $st ku --tls1_3
		if ! ready $st; then stop $SP; report $st own-ku drop not-ready; return; fi
		OPENSSL_CONF=/dev/null ktls-client --no-offload --tls1_3 --json --mode echo \
			--bytes 1M --timeout 60 127.0.0.1:$PORT >cli.out 2>cli.err
		rc=$?
		stop $SP
		kus=$(field keyupdates_sent srv.out)
		if [ $rc = 0 ] && [ "${kus:-0}" -gt 0 ]; then
			report $st own-ku ok "$kus-ku-sent"
		else
			report $st own-ku drop "rc-$rc-$(field error cli.out | tr ' ' - | cut -c1-40)"
		fi
		;;
	esac
}

# bad_ku STACK: a KeyUpdate with request_update = 2; RFC 8446 4.6.3 asks
# for illegal_parameter (47)
bad_ku() {
	st=$1
	ne=
	case $st in
	ossl*) server $st quiet -tls1_3; ne=--no-echo ;;
	gnutls)
		# it echoes lines of text, not the client's binary probe
		server $st echo --priority NORMAL:-VERS-ALL:+VERS-TLS1.3
		ne=--no-echo
		;;
	*) server $st echo --tls1_3 ;;
	esac
	if ! ready $st; then stop $SP; report $st bad-ku drop not-ready; return; fi
	OPENSSL_CONF=/dev/null ./crafted-client --case badvalue --value 2 $ne --timeout 20 \
		127.0.0.1:$PORT >cli.out 2>cli.err
	rc=$?
	case $st in gnutls | ossl*) kill $SP 2>/dev/null ;; esac
	stop $SP
	alert=$(field alert cli.out)
	end=$(field end cli.out)
	if [ $rc = 0 ]; then
		report $st bad-ku ok "alert-$alert"
	elif [ "$end" = alert ]; then
		report $st bad-ku wrong "alert-$alert"
	else
		report $st bad-ku drop "${end:-no-result}"
	fi
}

echo "KERNEL $(uname -r)"
echo "PARAM $MIB $EVERY"
for st in $STACKS; do
	case $st in
	ko-*) echo "VERSION $st ktls-offload on $(openssl version)" ;;
	ossl30) echo "VERSION $st $(openssl version)" ;;
	ossl35) echo "VERSION $st $(LD_LIBRARY_PATH=$W/ossl35 openssl version)" ;;
	gnutls) echo "VERSION $st GnuTLS $(cat $W/gnutls/version)" ;;
	esac
	transfer $st tls12 tls12 $SMALL small
	transfer $st tls13 tls13 $SMALL small
	transfer $st ku tls13 $SMALL small --keyupdate-every "$(kuevery $st)"
	transfer $st ku-req tls13 $SMALL small --keyupdate-every "$(kuevery $st)" \
		--keyupdate-requested
	own_ku $st
	transfer $st ku-1000 tls13 ${MIB}M long --keyupdate-every $EVERY --keyupdate-requested
	bad_ku $st
	transfer $st chacha tls13 $SMALL small --ciphersuites TLS_CHACHA20_POLY1305_SHA256
done
echo "DONE"
