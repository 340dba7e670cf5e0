# SPDX-License-Identifier: GPL-2.0
# Shared settings for building the kernel and out-of-tree modules: the
# toolchain the kernel's Rust support is checked against (Debian's rustc-web
# with matching rust-web-src, clang/lld 19, bindgen from crates.io) and the
# cache location, outside the repository.
NFSP_CACHE=${NFSP_CACHE:-/var/cache/nfsp}
KERNEL_SRC_PKG=linux-source-7.3
KERNEL_TARBALL=/usr/src/linux-source-7.3.tar.xz
KMAKE_ARGS=(LLVM=-19 RUSTC=/usr/bin/rustc
	BINDGEN="${CARGO_HOME:-$HOME/.cargo}/bin/bindgen"
	HOSTRUSTC=/usr/bin/rustc)
export LIBCLANG_PATH=/usr/lib/llvm-19/lib

kernel_pkg_version() {
	dpkg-query -W -f '${Version}' "$KERNEL_SRC_PKG"
}

# One tree per kernel source version; patches are swapped in place so that a
# patch change rebuilds only what it touches.
kernel_tree() {
	echo "$NFSP_CACHE/linux-$(kernel_pkg_version)"
}
