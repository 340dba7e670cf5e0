#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build Debian's nfs-utils 2.8.3 (from trixie) with nfsp's patches
# (patches/nfs-utils-*.patch) into a private, content-keyed prefix:
#
#   ${NFSP_CACHE:-/var/cache/nfsp}/nfs-utils-<key>/{sbin,lib,share}
#   ${NFSP_CACHE:-/var/cache/nfsp}/nfs-utils -> nfs-utils-<key>
#
# <key> hashes the Debian source version, the patches and this script, so
# any change to them rebuilds; an unchanged input is a cache hit that
# returns at once.  The prefix path is the last line printed on stdout.
#
# Usage: scripts/build-nfs-utils.sh        (as root: apt-get source, /var/cache)
#   NFSP_CACHE=DIR   cache root (default /var/cache/nfsp, outside the repo)
#   JOBS=N           make parallelism (default: nproc)
#
# Needs: apt deb-src lines for trixie, and these Debian packages:
#   dpkg-dev build-essential patch xz-utils pkg-config libtirpc-dev
#   libevent-dev libblkid-dev libkeyutils-dev libsqlite3-dev uuid-dev
#   libcap-dev libnl-3-dev libnl-genl-3-dev libreadline-dev
#   (util-linux for flock/unshare is Essential)
# autoconf/automake/libtool are not needed: the release tarball ships
# configure and the patches touch no build files.  Not needed with the
# flags below: libkrb5-dev (gss), libdevmapper-dev (nfsv41/blkmapd),
# libxml2-dev (junction), libmount-dev, libwrap0-dev.
# The binaries need at run time (e.g. in a VM image): libtirpc3,
# libevent-core, libblkid1, libuuid1, libcap2, libkeyutils1, libsqlite3-0,
# libnl-3/libnl-genl-3 and libreadline8 (nfsdctl only).
set -euo pipefail

export LC_ALL=C
UPSTREAM_VERSION=2.8.3

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
self="$repo/scripts/build-nfs-utils.sh"
cache=${NFSP_CACHE:-/var/cache/nfsp}
link="$cache/nfs-utils"

log() { echo "build-nfs-utils: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Newest Debian version of upstream 2.8.3 known to apt (only trixie has
# deb-src lines).  apt-cache is fast, unlike `apt-get source --print-uris`,
# which keeps the cache-hit path well under a second.
deb_version() {
	local v best=
	for v in $(apt-cache showsrc nfs-utils 2>/dev/null |
		   sed -n 's/^Version: //p' |
		   grep -E "^([0-9]+:)?${UPSTREAM_VERSION//./\\.}-" || true); do
		if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$best"; then
			best=$v
		fi
	done
	echo "$best"
}

version=$(deb_version)
if [[ -z $version ]]; then
	# A fresh machine may not have read its deb-src lists yet.
	log "nfs-utils $UPSTREAM_VERSION not in apt's source lists; running apt-get update"
	apt-get update -qq >&2
	version=$(deb_version)
fi
[[ -n $version ]] || die "no nfs-utils $UPSTREAM_VERSION source package (deb-src for trixie configured?)"

shopt -s nullglob
patches=("$repo"/patches/nfs-utils-*.patch)
shopt -u nullglob
((${#patches[@]})) || die "no patches/nfs-utils-*.patch in $repo"

key=$({
	printf 'debian-version %s\n' "$version"
	for p in "${patches[@]}"; do
		printf 'patch %s\n' "${p##*/}"
		cat "$p"
	done
	printf 'script\n'
	cat "$self"
} | sha256sum | cut -c1-16)
prefix="$cache/nfs-utils-$key"
stamp="$prefix/.nfsp-build-complete"

publish() {
	# Keep the stable symlink pointing at the current build.
	if [[ $(readlink "$link" 2>/dev/null) != "nfs-utils-$key" ]]; then
		ln -sfn "nfs-utils-$key" "$link.tmp.$$"
		mv -T "$link.tmp.$$" "$link"
	fi
	echo "$prefix"
}

if [[ -f $stamp ]]; then
	publish
	exit 0
fi

mkdir -p "$cache"
# Serialise concurrent builds (e.g. make -j); re-check after the wait.
exec 9>"$cache/.nfs-utils.lock"
flock 9
if [[ -f $stamp ]]; then
	publish
	exit 0
fi

start=$(date +%s)
log "building nfs-utils $version into $prefix"

# Source packages are kept per Debian version so rebuilds need no network.
srcdir="$cache/src/nfs-utils-${version//:/_}"
dsc="$srcdir/nfs-utils_${version#*:}.dsc"
if [[ ! -f $dsc ]]; then
	rm -rf "$srcdir.tmp" && mkdir -p "$srcdir.tmp"
	# Pin the exact version the key was computed from.
	(cd "$srcdir.tmp" && apt-get source --download-only -q "nfs-utils=$version") >&2
	rm -rf "$srcdir" && mv "$srcdir.tmp" "$srcdir"
fi

work="$cache/work/nfs-utils-$key"
rm -rf "$work" && mkdir -p "$work"
# Debian's quilt patches are skipped: multiarch-kerberos-paths only matters
# for GSS/Kerberos and always-run-generator only for systemd, both disabled
# here.  The build then runs on pristine upstream 2.8.3 plus our patches.
dpkg-source --skip-patches -x "$dsc" "$work/src" >&2
cd "$work/src"
for p in "${patches[@]}"; do
	log "applying ${p##*/}"
	patch -p1 --batch --forward --quiet -i "$p" >&2
done

# Fail early if the patch did not land where the tools look for it.
grep -q 'define[[:space:]]*NFSEXP_NFSP[[:space:]]*0x40000' support/include/nfs/export.h ||
	die "NFSEXP_NFSP missing from support/include/nfs/export.h"
grep -q '"nfsp"' support/nfs/exports.c || die '"nfsp" keyword missing from support/nfs/exports.c'

# Minimal server + client tool set: exportfs, rpc.mountd, rpc.nfsd,
# mount.nfs/umount.nfs, showmount, rpc.statd (+start-statd), nfsidmap,
# rpc.idmapd, nfsdctl, nfsstat, and nfsdcld (the NFSv4 client tracking
# daemon: without it, and without the legacy tracking our kernel does not
# have, nfsd refuses every reclaim after a restart).  GSS, Kerberos, the
# old nfsdcltrack, junctions/LDAP, pNFS block (blkmapd), nfsrahead and
# systemd units are off.
# State stays in the standard /var/lib/nfs and config in /etc/nfs.conf
# (the VM provides those); binaries and start-statd live in the prefix, and
# --disable-sbin-override keeps mount.nfs out of /sbin.
configure_flags=(
	--prefix="$prefix"
	--sbindir="$prefix/sbin"
	--disable-sbin-override
	--with-statedir=/var/lib/nfs
	--with-statdpath=/var/lib/nfs
	--with-nfsconfig=/etc/nfs.conf
	--with-start-statd="$prefix/sbin/start-statd"
	--without-systemd
	--without-tcp-wrappers
	--disable-gss
	--disable-svcgss
	--enable-nfsdcld
	--disable-nfsdcltrack
	--disable-nfsv41
	--disable-junction
	--disable-ldap
	--disable-nfsrahead
	--disable-static
	--disable-dependency-tracking
	--enable-silent-rules
)
log "configure ${configure_flags[*]}"
# configure.ac runs PKG_PROG_PKG_CONFIG only inside the --enable-libmount-mount
# branch, so with junctions off it must be told where pkg-config is.
PKG_CONFIG=$(command -v pkg-config) ||
	die "pkg-config not found (apt-get install pkg-config)"
export PKG_CONFIG
./configure "${configure_flags[@]}" >"$work/configure.log" 2>&1 ||
	{ tail -30 "$work/configure.log" >&2; die "configure failed (see $work/configure.log)"; }
make -j"${JOBS:-$(nproc)}" >"$work/make.log" 2>&1 ||
	{ tail -40 "$work/make.log" >&2; die "make failed (see $work/make.log)"; }

# Install into a staging root, then move into place: the prefix either
# holds a complete install (with stamp) or does not exist.
stage="$work/stage"
make install DESTDIR="$stage" >"$work/install.log" 2>&1 ||
	{ tail -40 "$work/install.log" >&2; die "make install failed (see $work/install.log)"; }
sbin="$stage$prefix/sbin"

# mount.nfs is installed setuid (4711) by upstream; it is a private root-only
# copy, so drop the bit.
chmod 0755 "$sbin/mount.nfs"
# start-statd hardcodes PATH=/sbin:...; make it find our rpc.statd first.
sed -i "s|^PATH=\"|PATH=\"$prefix/sbin:|" "$sbin/start-statd"

for t in exportfs rpc.mountd rpc.nfsd rpc.statd mount.nfs showmount nfsdcld; do
	[[ -x $sbin/$t ]] || die "$t was not built"
done
for t in umount.nfs umount.nfs4 mount.nfs4; do
	[[ -L $sbin/$t ]] || die "$t symlink missing"
done
# Both exportfs and mountd parse export options: both must know "nfsp".
for t in exportfs rpc.mountd; do
	grep -aq 'no_nfsp' "$sbin/$t" || die "$t does not know the nfsp option"
done

# Functional check of the option parser/printer with the built exportfs, in
# a private mount namespace whose /var/lib is a tmpfs, so the host's etab
# is never touched (-i: do not read the host's /etc/exports).  Skipped if
# the kernel nfsd is live here (exportfs would talk to it), or if a mount
# namespace cannot be created (e.g. unprivileged container).
if [[ -e /proc/net/rpc/nfsd.export ]]; then
	log "kernel nfsd active on this host: skipping exportfs run check"
elif [[ $stage$prefix == /var/lib/* ]]; then
	log "cache under /var/lib: skipping exportfs run check"
elif ! unshare -m true 2>/dev/null; then
	log "cannot create a mount namespace: skipping exportfs run check"
else
	out=$(unshare -m --propagation private -- sh -ec '
		mount -t tmpfs nfsp-check /var/lib
		mkdir -p /var/lib/nfs /var/lib/x /var/lib/y
		: >/var/lib/nfs/etab
		"$1" -i -o nfsp,rw,no_subtree_check 127.0.0.1:/var/lib/x
		"$1" -i -o rw,no_nfsp,no_subtree_check 127.0.0.1:/var/lib/y
		if "$1" -i -o nfspx 127.0.0.1:/var/lib/y 2>/dev/null; then
			echo "BOGUS-OPTION-ACCEPTED"
		fi
		echo "== exportfs -v"; "$1" -v
		echo "== etab"; cat /var/lib/nfs/etab
	' sh "$sbin/exportfs" 2>&1) || { echo "$out" >&2; die "exportfs run check failed"; }
	printf '%s\n' "$out" | sed 's/^/  | /' >&2
	grep -q '^/var/lib/x.*[(,]nfsp[,)]' <<<"$(sed -n '/^== exportfs -v/,/^== etab/p' <<<"$out")" ||
		die "exportfs -v does not show nfsp"
	grep -q '^/var/lib/x.*[(,]nfsp[,)]' <<<"$(sed -n '/^== etab/,$p' <<<"$out")" ||
		die "etab does not record nfsp"
	! grep -q '^/var/lib/y.*nfsp' <<<"$out" || die "no_nfsp export shows nfsp"
	! grep -q 'BOGUS-OPTION-ACCEPTED' <<<"$out" || die "exportfs accepted a bogus option"
fi

touch "$stage$prefix/.nfsp-build-complete"
rm -rf "$prefix"
mv -T "$stage$prefix" "$prefix"
cd "$cache"
rm -rf "$work"
rmdir "$cache/work" 2>/dev/null || true
log "done in $(($(date +%s) - start))s"
publish
