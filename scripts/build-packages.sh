#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build dist/nfsp-tools_<version>_amd64.deb from the release binaries
# ('make tools'; $CARGO_TARGET_DIR or target/) with dpkg-deb alone: the
# staging tree is laid out here, no debhelper. Version: the workspace
# version of Cargo.toml, Debian revision DEB_REVISION (default 1), which
# must be the top entry of packaging/changelog. Prints the .deb's path.
#
# The kernel side (patched nfsd, nfsp_knfsd) is not in this package, nor
# the patched nfs-utils (so no Suggests: nfs-kernel-server, whose stock
# exportfs lacks the nfsp option).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
pkgdir=$top/packaging
target=${CARGO_TARGET_DIR:-$top/target}
release=$target/release
dist=$top/dist
pkg=nfsp-tools
arch=amd64

die() {
	echo "build-packages: $*" >&2
	exit 1
}

for t in dpkg-deb dpkg-shlibdeps strip gzip; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found (apt-get install dpkg-dev binutils)"
done
[[ $(dpkg --print-architecture) == "$arch" ]] || die "only $arch is built"

# [workspace.package] version = "X.Y.Z"
upstream=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$top/Cargo.toml")
[[ -n $upstream ]] || die "no [workspace.package] version in Cargo.toml"
version=$upstream-${DEB_REVISION:-1}
top_entry=$(sed -n '1s/^'"$pkg"' (\([^)]*\)).*/\1/p' "$pkgdir/changelog")
[[ $top_entry == "$version" ]] ||
	die "packaging/changelog's top entry is ${top_entry:-missing}, not $version: add an entry"

bins=(iod iodctl iodmgr unlinkd)
for b in "${bins[@]}"; do
	[[ -x $release/$b ]] || die "$release/$b missing: run 'make tools' first"
done

# Reproducible: mtimes and gzip headers from the last commit, not now.
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
	SOURCE_DATE_EPOCH=$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
umask 022
doc=$root/usr/share/doc/$pkg
man8=$root/usr/share/man/man8
mkdir -p "$root/DEBIAN" "$root/usr/sbin" "$root/usr/lib/systemd/system" \
	"$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" "$root/etc/nfsp" \
	"$man8" "$doc/examples" \
	"$root/usr/share/bash-completion/completions" \
	"$root/usr/share/zsh/vendor-completions" \
	"$root/usr/share/fish/vendor_completions.d"

# Binaries, stripped as dh_strip does (lintian: unstripped-binary-or-object).
for b in "${bins[@]}"; do
	strip --strip-unneeded --remove-section=.comment --remove-section=.note \
		-o "$root/usr/sbin/$b" "$release/$b"
	chmod 0755 "$root/usr/sbin/$b"
done

# Units, sysusers.d and tmpfiles.d snippets (the units name /usr/sbin).
install -m 0644 "$top"/userspace/systemd/*.service "$root/usr/lib/systemd/system/"
install -m 0644 "$top/userspace/systemd/nfsp.conf" "$root/usr/lib/sysusers.d/nfsp.conf"
install -m 0644 "$top/userspace/systemd/nfsp-tmpfiles.conf" "$root/usr/lib/tmpfiles.d/nfsp.conf"

# Manual pages (section 8) from the CLI definitions of the binaries
# themselves, so they cannot drift from --help.
pages=$work/man
"$release/iod" --generate-man "$pages"
"$release/iodctl" man --dir "$pages"
"$release/iodmgr" man --dir "$pages"
"$release/unlinkd" man --dir "$pages"
for p in "$pages"/*.8; do
	gzip -9n <"$p" >"$man8/$(basename "$p").gz"
done

# Shell completions (iodctl only: the daemons are started by systemd).
"$release/iodctl" completions bash >"$root/usr/share/bash-completion/completions/iodctl"
"$release/iodctl" completions zsh >"$root/usr/share/zsh/vendor-completions/_iodctl"
"$release/iodctl" completions fish >"$root/usr/share/fish/vendor_completions.d/iodctl.fish"

# Commented defaults (conffiles). Not viods.conf ('iodctl save' writes it,
# and its presence starts nfsp-viods.service) nor cluster.key (genkey).
install -m 0644 "$pkgdir/iod.env" "$pkgdir/iodmgr.env" "$root/etc/nfsp/"
install -m 0644 "$pkgdir/viods.conf.example" "$doc/examples/viods.conf"
install -m 0644 "$pkgdir/copyright" "$doc/copyright"
install -D -m 0644 "$pkgdir/lintian-overrides" "$root/usr/share/lintian/overrides/$pkg"
gzip -9n <"$pkgdir/changelog" >"$doc/changelog.Debian.gz"

# Depends: the shared libraries (dpkg-shlibdeps wants a debian/control),
# and the sysusers/tmpfiles implementations the postinst calls.
mkdir -p "$work/src/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: %s\n' "$pkg" "$pkg" "$arch" >"$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "${bins[@]/#/$root/usr/sbin/}" 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')
[[ -n $shlibs ]] || die "dpkg-shlibdeps found no dependencies"
depends="$shlibs, systemd | systemd-standalone-sysusers | systemd-sysusers, systemd | systemd-standalone-tmpfiles | systemd-tmpfiles"

maintainer=$(git -C "$top" log -1 --format='%an <%ae>')
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: $pkg
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $depends
Section: admin
Priority: optional
Description: parallel NFS server - storage daemon and administration tools
 nfsp is a parallel NFS server for Linux: a meta-server (nfsd with the
 nfsp_knfsd module) keeps the namespace and stripes file data over
 storage daemons (iods), which answer clients directly.
 .
 This package holds the userspace side:
  - iod, the storage daemon of every storage host;
  - iodctl, which configures the meta-server's viods and iods, manages
    the cluster key and checks exports (fsck);
  - iodmgr, the monitor that fails over dead or slow iods and re-syncs
    returning replicas;
  - unlinkd, which deletes the data of removed files on the iods;
 with their systemd units, manual pages and shell completions.
 .
 The kernel side, the patched nfsd and the nfsp_knfsd module, and the
 meta-server's nfs-utils with the nfsp export option are not part of this
 package.
CONTROL
printf '/etc/nfsp/iod.env\n/etc/nfsp/iodmgr.env\n' >"$root/DEBIAN/conffiles"
install -m 0755 "$pkgdir/postinst" "$pkgdir/postrm" "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
	xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

find "$root" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$dist"
deb=$dist/${pkg}_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
