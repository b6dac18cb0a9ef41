#!/bin/bash
# deps.sh - install what building, testing and the demo need on Debian 12.
# Idempotent: only missing packages are installed (apt-get update once).
set -euo pipefail

PKGS=(
	build-essential autoconf automake libtool pkg-config
	libssl-dev liburing-dev linux-libc-dev openssl gnutls-bin
	python3 python3-pytest valgrind groff-base strace iproute2 curl
	qemu-system-x86 busybox-static cpio xz-utils kmod dash
	linux-source-6.12 bc flex bison libelf-dev rsync
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
