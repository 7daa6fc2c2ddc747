#!/usr/bin/env bash
# .ci/packaging.sh - what users install: make distcheck, the manual pages
# under groff's warnings, the exported symbols and their version, a DESTDIR
# install used through pkg-config, the Debian packages (dpkg-buildpackage -b,
# lintian) and the packaged launcher run against the packaged library from a
# dpkg -x root.  Works on a pristine copy of the tree (git ls-files), in a
# temporary directory it removes.  Last line: "N passed, N failed, N skipped".
#
# Duration, measured on 2 shared cores: 68 s idle, 140-250 s while other
# builds ran; most of it make distcheck (the test suite once more, out of
# tree, from the tarball) and the package build.  The package build runs with DEB_BUILD_OPTIONS=nocheck: .ci/run
# runs the suite already (plain and under the sanitizers).
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
jobs=$(nproc)

pass=0 fail=0 skip=0
# step NAME COMMAND...: run one check, say how long it took, count it
step() {
	local name=$1 t0=$SECONDS
	shift
	echo "== $name"
	if "$@"; then
		pass=$((pass + 1)); echo "   ok: $name ($((SECONDS - t0)) s)"
	else
		fail=$((fail + 1)); echo "   FAILED: $name ($((SECONDS - t0)) s)"
	fi
}
skipped() { skip=$((skip + 1)); echo "== $1: SKIPPED ($2)"; }
finish() {
	echo "packaging checks took $((SECONDS)) s"
	echo "$pass passed, $fail failed, $skip skipped"
	[ "$fail" -eq 0 ]
	exit
}

need="build-essential autoconf automake libtool pkgconf binutils groff debhelper dpkg-dev fakeroot lintian
      libibverbs-dev liburing-dev libunwind-dev"
. .ci/need.sh
ci_need "" $need || { fail=$((fail + 1)); finish; }

w=$(mktemp -d /tmp/safefork-packaging.XXXXXX)
trap 'rm -rf "$w"' EXIT
chmod 755 "$w"
mkdir "$w/tree"
git ls-files -z | xargs -0 cp --parents -t "$w/tree"
cd "$w/tree"

build() {
	{ ./autogen.sh && ./configure -q WERROR_CFLAGS=-Werror && make -j"$jobs"; } >"$w/build.log" 2>&1 ||
		{ tail -n 30 "$w/build.log"; return 1; }
}
step "build (-Werror) from a pristine copy" build || finish
[ -x tools/safefork ] || finish

step "manual pages: groff -ww, as man(1) renders them" make -s check-man

# Every function of safefork.h is exported as name@@SAFEFORK_1.0, and nothing else of ours is.
symbols() {
	local so=src/.libs/$(sed -n 's/^SAFEFORK_SONAME = //p' Makefile)
	local soname api exported
	soname=$(objdump -p "$so" | awk '$1 == "SONAME" { print $2 }')
	[ "$soname" = "$(basename "$so")" ] || { echo "SONAME $soname, expected $(basename "$so")"; return 1; }
	api=$(sed -n 's/^[a-z].*[ *]\(safefork_[a-z_]*\)(.*/\1/p' include/safefork.h | sort -u)
	exported=$(objdump -T "$so" | awk '$NF ~ /^safefork_/ { print $(NF-1), $NF }' | sort -u)
	echo "$exported" | sed 's/^/   /'
	[ "$(echo "$exported" | awk '{ print $2 }')" = "$api" ] || { echo "safefork.h declares: $api"; return 1; }
	! echo "$exported" | grep -v '^SAFEFORK_1\.0 '
}
step "symbols: the API of safefork.h, each at SAFEFORK_1.0 (objdump -T)" symbols

# A program built against an installation through pkg-config, and the installed launcher.
cat >"$w/use.c" <<'EOF'
#include <safefork.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
int main(void)
{
	struct safefork_kernel k;
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || safefork_register(p, 4096, 0) || safefork_probe(&k, sizeof(k)) ||
	    safefork_unregister(p, 4096))
		return 1;
	printf("%s\n", safefork_version());
	return strcmp(safefork_version(), SAFEFORK_VERSION_STRING) != 0;
}
EOF
# use_install ROOT PCDIR LIBDIR BINDIR: compile and run use.c against ROOT, run ROOT's launcher
use_install() {
	local root=$1 pcdir=$2 libdir=$3 bindir=$4 flags maps
	flags=$(PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$root$pcdir pkg-config --cflags --libs safefork) || return 1
	echo "   pkg-config --cflags --libs safefork: $flags"
	# shellcheck disable=SC2086
	cc -DSAFEFORK_VERSION_STRING="\"$version\"" -o "$w/use" "$w/use.c" $flags &&
		LD_LIBRARY_PATH=$root$libdir "$w/use" | sed 's/^/   the program: libsafefork /' &&
		[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "   the program built with those flags failed"; return 1; }
	"$root$bindir/safefork" --probe | sed 's/^/   /'
	"$root$bindir/safefork" --probe | grep -qx "library: $root$libdir/libsafefork.so.0 (libsafefork $version)" ||
		{ echo "   the launcher did not find $root$libdir/libsafefork.so.0"; return 1; }
	maps=$("$root$bindir/safefork" --mode=copy sh -c 'cat /proc/$$/maps') &&
		echo "$maps" | grep -q " $root$libdir/libsafefork.so.0" ||
		{ echo "   $root$libdir/libsafefork.so.0 is not loaded into the command"; return 1; }
}
version=$(sed -n 's/^PACKAGE_VERSION = //p' Makefile)

destdir_install() {
	local stamp=$w/stamp prefix newer
	prefix=$(sed -n 's/^prefix = //p' Makefile)
	touch "$stamp"
	make -s install DESTDIR="$w/destdir" >"$w/install.log" 2>&1 || { tail -n 20 "$w/install.log"; return 1; }
	newer=$(find "$prefix" -newer "$stamp" ! -type d 2>/dev/null | head)
	[ -z "$newer" ] || { echo "   make install DESTDIR= wrote outside DESTDIR: $newer"; return 1; }
	(cd "$w/destdir" && find . ! -type d | sort | sed 's/^/   /')
	use_install "$w/destdir" "$prefix/lib/pkgconfig" "$prefix/lib" "$prefix/bin"
}
step "make install DESTDIR=: nothing outside it; pkg-config, a program and the launcher use it" destdir_install

distcheck() {
	make -j"$jobs" distcheck >"$w/distcheck.log" 2>&1 || { tail -n 40 "$w/distcheck.log"; return 1; }
	grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR):' "$w/distcheck.log" | sed 's/^/   /'
	tail -n 4 "$w/distcheck.log" | sed 's/^/   /'
}
step "make distcheck (the suite again, out of tree, from the tarball)" distcheck

tarball=$w/tree/libsafefork-$version.tar.gz
[ -f "$tarball" ] || make -s dist >/dev/null 2>&1
debs() {
	mkdir -p "$w/deb" && tar -C "$w/deb" -xzf "$tarball" &&
		(cd "$w/deb/libsafefork-$version" && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -us -uc -b) \
			>"$w/deb.log" 2>&1 || { tail -n 40 "$w/deb.log"; return 1; }
	ls "$w/deb"/*.deb | sed 's/^/   /'
}
step "Debian packages from the release tarball (dpkg-buildpackage -us -uc -b, DEB_BUILD_OPTIONS=nocheck)" debs

if ls "$w/deb"/*.changes >/dev/null 2>&1; then
	run_lintian() {
		local out rc
		lintian --fail-on error "$w/deb"/*.changes >"$w/lintian.log" 2>&1
		rc=$?
		out=$(grep -v 'running with root privileges' "$w/lintian.log")
		[ -z "$out" ] || echo "$out" | sed 's/^/   /'
		echo "   lintian: $(echo "$out" | grep -c '^E:') errors, $(echo "$out" | grep -c '^W:') warnings"
		[ "$rc" -eq 0 ]
	}
	step "lintian (no errors)" run_lintian

	installed() {
		local root=$w/root libdir
		libdir=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)
		for d in "$w/deb"/*.deb; do
			case $d in *-dbgsym_*) ;; *) dpkg -x "$d" "$root" || return 1 ;; esac
		done
		for m in man1/safefork.1 man7/safefork.7 man3/safefork.3 man3/safefork_probe.3; do
			[ -f "$root/usr/share/man/$m.gz" ] || { echo "   no $m in the packages"; return 1; }
		done
		use_install "$root" "$libdir/pkgconfig" "$libdir" /usr/bin
	}
	step "the packages unpacked (dpkg -x): the launcher runs commands with the packaged library" installed

	# safefork(1)'s two ways under MPI: the launcher per rank, and the job launcher under it (-x).
	under_mpi() {
		local sf=$w/root/usr/bin/safefork lib rank='echo "rank: $SAFEFORK_MODE $(grep -c " $SAFEFORK_EXPECT" /proc/$$/maps)"'
		lib=$w/root/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/libsafefork.so.0
		export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SAFEFORK_EXPECT=$lib
		local a b
		a=$(timeout 120 mpirun --oversubscribe -np 2 "$sf" --mode=copy sh -c "$rank" 2>&1)
		b=$(timeout 120 "$sf" --mode=copy mpirun --oversubscribe -x LD_PRELOAD -x SAFEFORK_MODE -np 2 sh -c "$rank" 2>&1)
		echo "$a" "$b" | sed 's/^/   /'
		[ "$(echo "$a" | grep -cE '^rank: copy [1-9]')" = 2 ] && [ "$(echo "$b" | grep -cE '^rank: copy [1-9]')" = 2 ]
	}
	if command -v mpirun >/dev/null; then
		step "under mpirun -np 2: safefork per rank, and mpirun -x LD_PRELOAD under safefork" under_mpi
	else
		skipped "under mpirun" "no mpirun (Open MPI)"
	fi
else
	skipped "lintian" "no packages"
	skipped "the packaged launcher" "no packages"
	skipped "under mpirun" "no packages"
fi
finish
