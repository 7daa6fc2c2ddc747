#!/bin/sh
# setup.sh - on a fresh Debian 12 machine: install what the build needs,
# build libsafefork, and run the demo (a device reading stale data after a
# fork hidden in a library, then the same run with libsafefork).
#
#   ./setup.sh            install (as root, or with sudo), build, demo
#   ./setup.sh --deps     only install the packages
#   ./setup.sh --build    only build (packages already there)
set -eu
cd "$(dirname "$0")"

PACKAGES="build-essential autoconf automake libtool pkg-config binutils
          liburing-dev libibverbs-dev libunwind-dev"

deps() {
	missing=""
	for p in $PACKAGES; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
	echo "== installing:$missing"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

build() {
	echo "== building"
	[ -x configure ] || ./autogen.sh >/dev/null 2>&1
	[ -f Makefile ] || ./configure --enable-silent-rules WERROR_CFLAGS=-Werror >/dev/null
	make -j"$(nproc)" >/dev/null
	# configure's summary of optional features
	sed -n '/^  libsafefork /,/sanitizers/p' config.log | sed 's/^configure: //' || true
}

case "${1:-all}" in
	--deps) deps ;;
	--build) build ;;
	all) deps; build; make -s demo ;;
	*) echo "usage: $0 [--deps|--build]" >&2; exit 2 ;;
esac
