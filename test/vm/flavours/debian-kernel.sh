# shellcheck shell=bash
# debian-kernel.sh: shared by the flavours that boot a stock Debian cloud
# kernel (debian-6.1, debian-7).  Sourced, not run: it is not executable, so
# vm-run does not list it as a flavour.
#
# The sourcing script sets `name` (the flavour's name) and then:
#   debian_flavour_init "$@"   cache paths, log/die, `mode` (prepare, check
#                              or refresh, from the argument and
#                              KTLS_VM_REFRESH=1)
#   cached_kernel              print KERNEL=/MODULES= of the cached kernel
#                              ($dir/current), exit status 1 if there is none
#   need_tools TOOL...         die unless the TOOLs exist
#   fetch_kernel KEY PKG...    fetch PKG... with `apt-get "${APT_OPTS[@]}"
#                              download` (skipped if $dir/KEY is unpacked
#                              already), unpack them into $dir/KEY with
#                              dpkg-deb -x, depmod, point $dir/current at it
#                              and print KERNEL=/MODULES=
#   private_apt SUITE          (for suites the system's apt does not list) set
#                              APT_OPTS to the options of an apt state of our
#                              own in $dir/apt/SUITE, whose sources are the
#                              system's Debian archive entries with only the
#                              suite changed; the system's apt configuration
#                              and package state are not touched
#   private_apt_update SUITE   read SUITE's package index into that state
#                              (exit status 1 if no source gave one)
# Contract of a flavour script: see test/vm/README ("Flavour scripts").

debian_flavour_init() {
	: "${name:?the flavour script sets name}"
	cache="${KTLS_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktls-offload/vm}"
	dir="$cache/flavours/$name"
	APT_OPTS=()
	mode=prepare
	case "${1:-}" in
		--check) mode=check ;;
		--refresh) mode=refresh ;;
		"") ;;
		*) die "unknown argument '$1' (usage: $0 [--check|--refresh])" ;;
	esac
	if [ "${KTLS_VM_REFRESH:-0}" = 1 ] && [ "$mode" = prepare ]; then
		mode=refresh
	fi
}

log() { printf '%s: %s\n' "$name" "$*" >&2; }
die() { log "$*"; exit 1; }

# The kernel image under ROOT (an unpacked package tree): boot/vmlinuz-*
# (linux-image-*-unsigned) or lib/modules/<release>/vmlinuz* (the split
# linux-binary-unsigned-* + linux-modules-* packages).
kernel_in() {
	local v
	v=$(find "$1/boot" -maxdepth 1 -name 'vmlinuz-*' -print -quit 2>/dev/null)
	[ -n "$v" ] ||
		v=$(find "$1/lib/modules/" -mindepth 2 -maxdepth 2 -name 'vmlinuz*' -print -quit 2>/dev/null)
	[ -n "$v" ] && echo "$v"
}

# The release of kernel image $1 (as found by kernel_in).
release_of() {
	case $1 in
		*/boot/vmlinuz-*) echo "${1##*/vmlinuz-}" ;;
		*) basename "$(dirname "$1")" ;;
	esac
}

# The cached kernel, if any: $dir/current is a symlink to the unpacked package.
cached_kernel() {
	local root="$dir/current" v rel
	[ -d "$root" ] || return 1
	v=$(kernel_in "$root") || return 1
	rel=$(release_of "$v")
	[ -f "$root/lib/modules/$rel/modules.dep" ] || return 1
	printf 'KERNEL=%s\nMODULES=%s\n' "$v" "$root/lib/modules/$rel"
}

need_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null && continue
		case $t in
			depmod) die "depmod not found (install kmod)" ;;
			apt-get | apt-cache) die "$t not found (install apt)" ;;
			flock) die "flock not found (install util-linux)" ;;
			*) die "$t not found" ;;
		esac
	done
}

# fetch_kernel KEY PKG...: unpack PKG... into $dir/KEY (once), with
# `apt-get "${APT_OPTS[@]}" download` (APT_OPTS may be empty).
fetch_kernel() {
	local key=$1 root deb v rel
	shift
	mkdir -p "$dir"
	root="$dir/$key"
	if [ ! -f "$root/.complete" ]; then
		tmp=$(mktemp -d "$dir/.dl.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		log "downloading $*"
		(cd "$tmp" && apt-get "${APT_OPTS[@]}" download -q -o APT::Sandbox::User=root "$@" >&2) ||
			die "apt-get download $* failed"
		[ -n "$(find "$tmp" -maxdepth 1 -name '*.deb' -print -quit)" ] ||
			die "apt-get download produced no .deb"
		rm -rf "$root"
		for deb in "$tmp"/*.deb; do
			dpkg-deb -x "$deb" "$tmp/root" || die "dpkg-deb -x $deb failed"
		done
		# Packages that install into /usr/lib/modules only (merged /usr):
		# depmod -b and the MODULES path want ROOT/lib/modules.
		if [ -d "$tmp/root/usr/lib/modules" ] && [ ! -e "$tmp/root/lib" ]; then
			ln -s usr/lib "$tmp/root/lib"
		fi
		mv "$tmp/root" "$root"
		v=$(kernel_in "$root") || die "$* has no kernel image (/boot/vmlinuz-* or /lib/modules/*/vmlinuz*)"
		rel=$(release_of "$v")
		depmod -b "$root" "$rel" || die "depmod failed for $rel"
		touch "$root/.complete"
	fi
	ln -sfn "$key" "$dir/current"
	cached_kernel || die "unpacked $* but found no kernel and modules in it"
}

# The system's own release codename: its archive entries for that suite are
# the ones copied into a private apt state.
host_suite() {
	local VERSION_CODENAME=
	# shellcheck disable=SC1091
	[ -r /etc/os-release ] && . /etc/os-release
	echo "${VERSION_CODENAME:-bookworm}"
}

private_apt() {
	local suite=$1 apt="$dir/apt/$1"
	APT_OPTS=(-o "Dir::Etc=$apt/etc" -o "Dir::Etc::SourceParts=$apt/etc/sources.list.d"
		-o "Dir::Etc::SourceList=$apt/etc/sources.list"
		-o "Dir::Etc::Preferences=$apt/etc/preferences"
		-o "Dir::Etc::PreferencesParts=$apt/etc/preferences.d"
		-o "Dir::Etc::Trusted=/etc/apt/trusted.gpg"
		-o "Dir::Etc::TrustedParts=/etc/apt/trusted.gpg.d"
		-o "Dir::State=$apt" -o "Dir::State::Lists=$apt/lists"
		-o "Dir::Cache=$apt" -o "Dir::Cache::Archives=$apt/archives"
		-o "Dir::State::status=/var/lib/dpkg/status"
		-o "Acquire::Languages=none" -o "APT::Sandbox::User=root")
}

private_apt_update() {
	local suite=$1 apt="$dir/apt/$1" base f
	base=$(host_suite)
	rm -rf "$apt"
	mkdir -p "$apt/etc/sources.list.d" "$apt/etc/preferences.d" \
		"$apt/lists/partial" "$apt/archives/partial"
	# deb822 entries: the stanzas that list the plain $base suite (not
	# $base-updates or $base-security, which have no $suite counterpart).
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v base="$base" -v suite="$suite" '
			function flush(   i, n, w, keep) {
				keep = 0
				n = split(suites, w, /[ \t]+/)
				for (i = 1; i <= n; i++) if (w[i] == base) keep = 1
				if (keep && !disabled && types ~ /(^|[ \t])deb([ \t]|$)/) {
					for (i = 1; i <= nl; i++) print l[i]
					print ""
				}
				nl = 0; suites = ""; types = ""; disabled = 0; field = ""
			}
			/^#/ { next }
			/^[ \t]*$/ { flush(); next }
			/^[ \t]/ { if (field != "suites" && field != "types") l[++nl] = $0; next }
			{
				field = tolower($0); sub(/:.*/, "", field)
				val = $0; sub(/^[^:]*:[ \t]*/, "", val)
				if (field == "suites") { suites = val; l[++nl] = "Suites: " suite }
				else if (field == "types") { types = val; l[++nl] = "Types: deb" }
				else {
					if (field == "enabled" && tolower(val) == "no") disabled = 1
					l[++nl] = $0
				}
			}
			END { flush() }' "$f" >"$apt/etc/sources.list.d/${f##*/}"
		[ -s "$apt/etc/sources.list.d/${f##*/}" ] || rm -f "$apt/etc/sources.list.d/${f##*/}"
	done
	# One-line entries: "deb [options] URI $base components".
	if [ -f /etc/apt/sources.list ]; then
		sed -n "s/^[ \t]*deb\([ \t]\+\[[^]]*\]\)\?\([ \t]\+[^ \t]\+[ \t]\+\)$base\([ \t]\)/deb\1\2$suite\3/p" \
			/etc/apt/sources.list >"$apt/etc/sources.list"
	fi
	ls "$apt/etc/sources.list.d"/*.sources >/dev/null 2>&1 || [ -s "$apt/etc/sources.list" ] ||
		die "no Debian $base archive in the system's apt sources to derive $suite's from"
	private_apt "$suite"
	log "reading $suite's package index"
	# A source that fails (say a third-party repository that also names
	# $base) need not spoil the others: what counts is an index read.
	apt-get "${APT_OPTS[@]}" -qq update >&2 ||
		log "apt-get update for $suite reported errors (above)"
	[ -n "$(find "$apt/lists" -maxdepth 1 -name '*_Packages*' -print -quit)" ]
}
