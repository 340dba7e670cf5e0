#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install everything the build and the tests need on a Debian bookworm
# machine (root). Idempotent: when all is there it only checks and returns.
#
# The kernel comes from trixie-backports and nfs-utils' source from trixie;
# both suites are pinned low so that nothing else on the machine upgrades.
set -euo pipefail

BINDGEN_VERSION=0.72.1

packages=(
	# kernel build with Rust
	linux-source-7.3 rustc-web rust-web-src clang-19 lld-19 llvm-19
	libclang-19-dev flex bison bc libelf-dev libssl-dev cpio kmod
	# the VM and the tests inside it
	qemu-system-x86 busybox-static iproute2 rpcbind tshark fio attr
	# the power-cut tests' disk images
	e2fsprogs
	# the units check (systemd-analyze verify/security)
	systemd
	# the package check (scripts/check-packages)
	lintian
	# the benchmark figure's font
	fonts-dejavu-core
	# nfs-utils build
	build-essential patch xz-utils dpkg-dev pkg-config libtirpc-dev
	libevent-dev libblkid-dev libkeyutils-dev libsqlite3-dev uuid-dev
	libcap-dev libnl-3-dev libnl-genl-3-dev libreadline-dev
)

if [[ $(id -u) != 0 ]]; then
	echo "deps: must run as root (apt-get)" >&2
	exit 1
fi

sources=/etc/apt/sources.list.d/nfsp-trixie.sources
prefs=/etc/apt/preferences.d/nfsp-trixie.pref
need_update=no
if [[ ! -f $sources ]]; then
	cat > "$sources" <<SOURCES
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: trixie trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
	need_update=yes
fi
if [[ ! -f $prefs ]]; then
	cat > "$prefs" <<PREFS
Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=trixie-backports
Pin-Priority: 100
PREFS
	need_update=yes
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	need_update=yes
fi
if [[ $need_update == yes ]]; then
	apt-get update -q
fi
if ((${#missing[@]})); then
	# tshark asks whether non-root users may capture: no prompts here.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

bindgen=${CARGO_HOME:-$HOME/.cargo}/bin/bindgen
if ! "$bindgen" --version 2>/dev/null | grep -q " $BINDGEN_VERSION\$"; then
	echo "deps: installing bindgen-cli $BINDGEN_VERSION"
	cargo install --locked bindgen-cli --version "$BINDGEN_VERSION"
fi
echo "deps: all installed"
