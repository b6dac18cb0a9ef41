#!/bin/bash
# test.sh - the whole suite: unit tests, sanitizers, valgrind, distcheck,
# host interop and the VM tests on real kTLS kernels (KTLS_EXPECTED=1).
# Installs its own dependencies; safe to run again.
#   KTLS_VM=0            skip the VM part (quick host-only run)
#   KTLS_QUICK=1         skip sanitizers, valgrind and distcheck
#   KTLS_LIBURING_NEXT=0 skip the build against the newer liburing
#   KTLS_GNUTLS_NEXT=0   skip the newer GnuTLS (built from source)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export KTLS_BUILDDIR=${KTLS_BUILDDIR:-$top/_build}
step() { printf '\n=== %s\n' "$*"; }
t0=$SECONDS

step "dependencies"
scripts/deps.sh
step "build (-Wall -Wextra -Werror)"
scripts/build.sh

step "unit tests (make check)"
make -s -C "$KTLS_BUILDDIR" check

if [ "${KTLS_QUICK:-0}" != 1 ]; then
	step "unit tests under ASan + UBSan"
	KTLS_BUILDDIR="$top/_build-asan" scripts/build.sh --enable-sanitizers
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		make -s -C "$top/_build-asan" check
	# the sanitizer must really be in what runs, not only asked for
	for f in ktls-bridge/.libs/libktls-bridge.so test/unit/bio-contract-test; do
		# (grep -c reads to the end: no SIGPIPE for nm under pipefail)
		[ "$(nm "$top/_build-asan/$f" 2>/dev/null | grep -c __asan_init)" -gt 0 ] ||
			{ echo "test.sh: $f in _build-asan has no ASan" >&2; exit 1; }
	done
	echo "ASan + UBSan: in the library and the unit tests"

	step "unit tests and an interop run under valgrind"
	# every unit program: the list is test/Makefile.am's check_PROGRAMS
	units=$(sed -n '/^check_PROGRAMS/,/[^\\]$/p' test/Makefile.am |
		grep -o 'unit/[a-z0-9-]*' | sed 's|unit/||')
	[ -n "$units" ] || { echo "test.sh: no unit tests in test/Makefile.am" >&2; exit 1; }
	for t in $units; do
		"$KTLS_BUILDDIR/libtool" --mode=execute valgrind -q --error-exitcode=99 \
			--leak-check=full --errors-for-leak-kinds=definite \
			"$KTLS_BUILDDIR/test/unit/$t" >/dev/null
		echo "valgrind: $t clean"
	done
	# the fuzz corpora (valgrind reports on fd 3: the provider's complaints
	# about the bad values in its corpus go to stderr)
	for t in walker rxwalk keyblock keylog provconf handoff diag ethtool; do
		"$KTLS_BUILDDIR/libtool" --mode=execute valgrind -q --error-exitcode=99 \
			--leak-check=full --errors-for-leak-kinds=definite --log-fd=3 \
			"$KTLS_BUILDDIR/test/fuzz/replay-$t" "$top/test/fuzz/corpus/$t" \
			3>&2 >/dev/null 2>/dev/null
		echo "valgrind: replay-$t clean"
	done
	scripts/valgrind-interop.sh

	step "make distcheck"
	# tar leaves out what its format cannot hold and says so on stderr
	# only: a tarball missing a file is a failure here
	make -s -C "$KTLS_BUILDDIR" distcheck >/dev/null 2>"$KTLS_BUILDDIR/distcheck.err" ||
		{ cat "$KTLS_BUILDDIR/distcheck.err" >&2; exit 1; }
	if grep -E "not dumped|too long" "$KTLS_BUILDDIR/distcheck.err" >&2; then
		echo "distcheck: the tarball misses files" >&2
		exit 1
	fi
	echo "distcheck: ok"
fi

step "pytest (host interop, provider, man pages, VM)"
# every part must run (a skip fails) unless the VM part was turned off
[ "${KTLS_VM:-1}" = 0 ] && export KTLS_EXPECTED=${KTLS_EXPECTED:-0}
export KTLS_EXPECTED=${KTLS_EXPECTED:-1}
# the newest liburing Debian has, built from source (about 20 s, cached), and
# the project built against it (test/test_host_liburing_next.py)
export KTLS_LIBURING_NEXT=${KTLS_LIBURING_NEXT:-1}
# the newest GnuTLS 3.8 Debian has, with kTLS, built from source (about 7
# minutes on two cores, cached; test/test_host_gnutls_next.py)
export KTLS_GNUTLS_NEXT=${KTLS_GNUTLS_NEXT:-1}
echo "elapsed before pytest: $((SECONDS - t0)) s"
cd test
# --durations: the slowest steps at the end (a module's guest boots are its
# fixtures' setup), which is where the suite's time per flavour is read
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider --durations=40 "$@"
