#!/bin/sh
# fetch-kernel.sh CODENAME OUTDIR - a Debian kernel for the QEMU tests:
# OUTDIR/vmlinuz, OUTDIR/release, OUTDIR/modules/*.ko and OUTDIR/modules.list
# (the modules for soft-RoCE, in load order).
#
# The deb comes from CODENAME's suites of the archive this machine already
# uses: a private apt configuration (its own sources file, lists and cache
# under OUTDIR/..) whose sources are the host's Debian entries with the
# host's codename replaced by CODENAME.  No archive address is written here.
# The kernel ABI is resolved through linux-image-amd64's Depends.  A kernel
# already prepared in OUTDIR is reused (VM_REFRESH=1 resolves it again).
# Exit 0 ready, 77 cannot (reason on stderr), 1 error.
# SPDX-License-Identifier: MIT
set -eu

codename=$1
out=$2
mods="rdma_rxe ib_uverbs crc32_generic" # what soft-RoCE and its tools need; dependencies follow

skip() { echo "fetch-kernel: $*" >&2; exit 77; }

if [ -f "$out/vmlinuz" ] && [ -f "$out/modules.list" ] && [ "${VM_REFRESH:-0}" != 1 ]; then
	echo "kernel $codename: cached in $out ($(cat "$out/release"))"
	exit 0
fi
[ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] || skip "the VM tests need an amd64 host (Debian amd64 kernels under qemu-system-x86_64)"
for t in apt-get apt-cache dpkg-deb depmod modprobe; do
	command -v "$t" >/dev/null 2>&1 || skip "$t not found"
done

. /etc/os-release
host=${VERSION_CODENAME:-}
[ -n "$host" ] || skip "no VERSION_CODENAME in /etc/os-release: cannot derive the $codename suites"

apt=$(dirname "$out")/apt-$codename
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/parts" "$apt/debs" "$out"
: >"$apt/status"

# The host's Debian sources (one-line and deb822), suites HOST, HOST-updates
# and HOST-security only, renamed to CODENAME.
{
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		sed -n 's/#.*//; /^[[:space:]]*deb[[:space:]]/p' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# deb822 paragraphs to one-line entries (Enabled: no skipped)
		awk 'function flush() {
			if (types ~ /(^| )deb( |$)/ && enabled != "no")
				for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
					print "deb " (sb != "" ? "[signed-by=" sb "] " : "") u[i] " " s[j] " " comps
			types = ""; nu = ns = 0; comps = ""; sb = ""; enabled = ""
		}
		/^[[:space:]]*#/ { next }
		/^[[:space:]]*$/ { flush(); next }
		{ key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, ""); val = $0 }
		key == "types" { types = val }
		key == "uris" { nu = split(val, u, " ") }
		key == "suites" { ns = split(val, s, " ") }
		key == "components" { comps = val }
		key == "signed-by" { sb = val }
		key == "enabled" { enabled = tolower(val) }
		END { flush() }' "$f"
	done
} | awk -v host="$host" -v new="$codename" '{
	# the suite is the first field after the URI (options in [] may precede it)
	n = 2; if ($2 ~ /^\[/) { while ($n !~ /\]$/) n++; n++ }
	suite = $(n + 1)
	if (suite == host || suite == host "-updates" || suite == host "-security") {
		sub("^" host, new, suite); $(n + 1) = suite; print
	}
}' | sort -u >"$apt/sources.list"
[ -s "$apt/sources.list" ] || skip "no Debian '$host' suites in the host's apt sources: cannot derive '$codename'"

cat >"$apt/apt.conf" <<EOF
Dir::Etc::SourceList "$apt/sources.list";
Dir::Etc::SourceParts "$apt/parts";
Dir::Etc::Preferences "$apt/parts/none";
Dir::Etc::PreferencesParts "$apt/parts";
Dir::State::Lists "$apt/lists";
Dir::State::Status "$apt/status";
Dir::Cache "$apt/cache";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
APT::Sandbox::User "root";
EOF
export APT_CONFIG="$apt/apt.conf"

t0=$(date +%s)
apt-get -qq update >"$apt/update.log" 2>&1 || {
	cat "$apt/update.log" >&2
	skip "apt-get update of the $codename suites failed (no network?)"
}
dep=$(apt-cache show --no-all-versions linux-image-amd64 2>/dev/null | sed -n 's/^Depends: //p' | tr ',' '\n' |
	sed -n 's/^ *\(linux-image-[0-9][^ ]*-amd64\)\( .*\)\{0,1\}$/\1/p' | head -n 1)
[ -n "$dep" ] || skip "linux-image-amd64 in $codename names no linux-image-*-amd64 in its Depends"
abi=${dep#linux-image-}
abi=${abi%-amd64}
pkg=linux-image-$abi-amd64-unsigned
ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
[ -n "$ver" ] || skip "$pkg not found in $codename"
deb=$(ls "$apt/debs/${pkg}_"*.deb 2>/dev/null | grep -F "_$(echo "$ver" | sed 's/:/%3a/')_" | head -n 1 || true)
if [ -z "$deb" ]; then
	(cd "$apt/debs" && apt-get -qq download "$pkg" >"$apt/download.log" 2>&1) || {
		cat "$apt/download.log" >&2
		skip "apt-get download $pkg failed"
	}
	deb=$(ls -t "$apt/debs/${pkg}_"*.deb | head -n 1)
fi
t1=$(date +%s)

# vmlinuz and the modules: the whole module tree goes to a scratch directory
# (modules.dep is made by the package's postinst, so depmod runs here), then
# only the modules modprobe names are kept.
scratch=$apt/unpack
rm -rf "$scratch"
mkdir -p "$scratch"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$scratch" --wildcards './boot/vmlinuz-*' './lib/modules/*'
release=$(ls "$scratch/lib/modules" | head -n 1)
[ -f "$scratch/boot/vmlinuz-$release" ] || { echo "fetch-kernel: no vmlinuz-$release in $deb" >&2; exit 1; }
depmod -b "$scratch" "$release"
rm -rf "$out/modules"
mkdir -p "$out/modules"
: >"$out/modules.list.new"
: >"$apt/depends"
for m in $mods; do
	modprobe -d "$scratch" -S "$release" --show-depends "$m" >>"$apt/depends" 2>&1 ||
		skip "module $m is not in $pkg $ver: $(tail -n 1 "$apt/depends")"
done
while read -r verb path _; do
	[ "$verb" = insmod ] || continue # "builtin NAME": nothing to load
	name=$(basename "$path")
	grep -qx "${name%%.ko*}.ko" "$out/modules.list.new" && continue
	case $name in
	*.ko.xz) xz -dc "$path" >"$out/modules/${name%.xz}" ;;
	*.ko.zst) zstd -qdc "$path" >"$out/modules/${name%.zst}" ;;
	*.ko.gz) gzip -dc "$path" >"$out/modules/${name%.gz}" ;;
	*) cp "$path" "$out/modules/" ;;
	esac
	echo "${name%%.ko*}.ko" >>"$out/modules.list.new"
done <"$apt/depends"
cp "$scratch/boot/vmlinuz-$release" "$out/vmlinuz"
rm -rf "$scratch"
echo "$release" >"$out/release"
echo "$pkg $ver" >"$out/package"
mv "$out/modules.list.new" "$out/modules.list"
t2=$(date +%s)
echo "kernel $codename: $pkg $ver ($release): download $((t1 - t0)) s, unpack $((t2 - t1)) s; modules: $(tr '\n' ' ' <"$out/modules.list")"
