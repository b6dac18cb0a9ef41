#!/bin/bash
# fuzz.sh - run the libFuzzer targets of test/fuzz; see --help.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

usage() {
	cat <<'USAGE'
NAME
	fuzz.sh - coverage-guided fuzzing of the bridge's parsers

SYNOPSIS
	scripts/fuzz.sh [SECONDS [TARGET...]]
	scripts/fuzz.sh --help

DESCRIPTION
	Configures _build-fuzz/ with CC=clang --enable-fuzzing (installing
	clang when it is missing), builds the libFuzzer binaries
	test/fuzz/fuzz-<target>, and runs each target (or only the TARGETs
	named: walker rxwalk keyblock keylog provconf handoff diag ethtool) for SECONDS
	(default 60) on a copy of its seed corpus test/fuzz/corpus/<target>/,
	with test/fuzz/dict/<target>.dict when there is one.  Targets run
	side by side, as many at a time as there are CPUs.

	New inputs go to _build-fuzz/fuzz-out/<target>/corpus, crash files
	(crash-*, leak-*, timeout-*, oom-*) to _build-fuzz/fuzz-out/<target>/,
	the log to _build-fuzz/fuzz-out/<target>.log; the checked-in corpus
	is never written.  To keep a finding, copy it into the target's
	corpus directory: `make check` replays it from then on.

	Per target it prints the executions, executions per second, the
	coverage (libFuzzer's "cov:" edges at the end) and the findings.

ENVIRONMENT
	KTLS_FUZZ_JOBS   targets run at a time (default: the number of CPUs)
	KTLS_FUZZ_ARGS   extra libFuzzer arguments for every target

EXIT STATUS
	0 no target found anything, 1 a target found a crash (or failed to
	run), 2 usage error.
USAGE
}

case "${1:-}" in
-h|--help) usage; exit 0 ;;
'') secs=60 ;;
*[!0-9]*) usage >&2; exit 2 ;;
*) secs=$1 ;;
esac

builddir=$top/_build-fuzz
out=$builddir/fuzz-out
targets=(walker rxwalk keyblock keylog provconf handoff diag ethtool)
if [ $# -gt 1 ]; then
	shift
	for t in "$@"; do
		case " ${targets[*]} " in
		*" $t "*) ;;
		*) echo "fuzz.sh: no target '$t' (${targets[*]})" >&2; exit 2 ;;
		esac
	done
	targets=("$@")
fi
jobs=${KTLS_FUZZ_JOBS:-$(nproc)}

if ! command -v clang >/dev/null; then
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "fuzz: installing clang" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang >&2
fi
KTLS_BUILDDIR=$builddir "$top/scripts/build.sh" CC=clang --enable-fuzzing

# one target: a fresh copy of the corpus, SECONDS of fuzzing, a log
run_one() {
	local t=$1 dir=$out/$1 dict=()

	rm -rf "$dir" "$out/$t.log"
	mkdir -p "$dir/corpus"
	cp "$top/test/fuzz/corpus/$t"/* "$dir/corpus/"
	[ -f "$top/test/fuzz/dict/$t.dict" ] && dict=(-dict="$top/test/fuzz/dict/$t.dict")
	# stderr of the target closed: the provider reports bad values there
	(cd "$dir" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$builddir/test/fuzz/fuzz-$t" -max_total_time="$secs" -print_final_stats=1 \
		-close_fd_mask=2 -artifact_prefix="$dir/" "${dict[@]}" ${KTLS_FUZZ_ARGS:-} \
		corpus) >"$out/$t.log" 2>&1 || true
}

mkdir -p "$out"
echo "fuzz: ${#targets[@]} targets, $secs s each, $jobs at a time" >&2
running=0
for t in "${targets[@]}"; do
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
	fi
done
wait

status=0
printf '%-10s %12s %10s %8s %s\n' target execs exec/s cov findings
for t in "${targets[@]}"; do
	log=$out/$t.log
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	found=$(find "$out/$t" -maxdepth 1 -type f \
		\( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) |
		sort)
	if [ -z "$execs" ]; then
		found="${found:+$found }(did not finish, see $log)"
	fi
	[ -z "$found" ] || status=1
	printf '%-10s %12s %10s %8s %s\n' "$t" "${execs:--}" "${rate:--}" "${cov:--}" \
		"${found:-none}"
done
exit $status
