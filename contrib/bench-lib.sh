# shellcheck shell=bash
# bench-lib.sh - sourced (bash) by contrib/*/bench.sh: messages, --help
# from the script's header comment, and the awk functions their reports
# share.

log() { echo "bench.sh: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
# the script's header comment, without its first line
usage() { awk 'NR == 1 { next } !/^#/ { exit } { sub(/^# ?/, ""); print }' "$0"; }

# Prepended to a report's awk program:
#   fmt(x)          x with three significant digits or so (no exponent)
#   median_of(LIST) LIST's numbers (space-separated) sorted: sets med (the
#                   median), lo and hi; returns how many (0: none set)
# shellcheck disable=SC2034 # used by the sourcing scripts
read -r -d '' bench_awk_lib <<'EOF' || true
function fmt(x) {
	if (x == 0) return "0"
	if (x >= 100) return sprintf("%.0f", x)
	if (x >= 10) return sprintf("%.1f", x)
	if (x >= 1) return sprintf("%.2f", x)
	return sprintf("%.3f", x)
}
function median_of(list,    a, c, i, j, t) {
	c = split(list, a, " ")
	for (i = 2; i <= c; i++) {
		t = a[i] + 0
		for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
		a[j + 1] = t
	}
	if (!c) return 0
	med = (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
	lo = a[1]; hi = a[c]
	return c
}
EOF
