#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the test kernel: Debian's linux-source-7.3 + patches/linux-*.patch,
# configured from qemu-test/kernel.config on top of tinyconfig, with Rust.
#
# The tree lives in $NFSP_CACHE (outside the repository). A stamp records the
# hash of every input (source version, config fragment, patches, this
# script); when it matches, nothing is done. When only the patches changed,
# the old ones are reverted and the new ones applied in place, so make
# rebuilds only what they touch.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/kernel-env.sh"

tree=$(kernel_tree)
fragment="$top/qemu-test/kernel.config"
shopt -s nullglob
patches=("$top"/patches/linux-*.patch)
shopt -u nullglob

key=$( { kernel_pkg_version; cat "$fragment" "$0" "$top/scripts/kernel-env.sh";
	 cat "${patches[@]}" /dev/null; } | sha256sum | cut -c1-16)

if [[ -f "$tree/.nfsp-stamp" && "$(cat "$tree/.nfsp-stamp")" == "$key" &&
      -f "$tree/arch/x86/boot/bzImage" ]]; then
	echo "kernel: up to date ($tree, key $key)"
	exit 0
fi

mkdir -p "$NFSP_CACHE"
applied="$tree/.nfsp-applied-patches"

unpack() {
	echo "kernel: unpacking $KERNEL_TARBALL into $tree"
	rm -rf "$tree" "$tree.tmp"
	mkdir -p "$tree.tmp"
	tar -C "$tree.tmp" --strip-components=1 -xf "$KERNEL_TARBALL"
	mv "$tree.tmp" "$tree"
	mkdir -p "$applied"
}

[[ -f "$tree/Makefile" && -d "$applied" ]] || unpack
rm -f "$tree/.nfsp-stamp"

# Revert what an earlier build applied (newest first) unless it is identical
# to what we are about to apply.
old=$(cd "$applied" && ls | sort)
new=$(for p in "${patches[@]}"; do basename "$p"; done | sort)
same=yes
if [[ "$old" != "$new" ]]; then
	same=no
else
	for p in "${patches[@]}"; do
		cmp -s "$p" "$applied/$(basename "$p")" || same=no
	done
fi
if [[ $same == no ]]; then
	for p in $(cd "$applied" && ls | sort -r); do
		echo "kernel: reverting $p"
		if ! patch -d "$tree" -p1 -R -s -f < "$applied/$p"; then
			echo "kernel: could not revert $p; starting from a clean tree"
			unpack
			break
		fi
		rm -f "$applied/$p"
	done
	for p in "${patches[@]}"; do
		echo "kernel: applying $(basename "$p")"
		patch -d "$tree" -p1 -s -N < "$p"
		cp "$p" "$applied/"
	done
fi

cd "$tree"
make "${KMAKE_ARGS[@]}" -s tinyconfig >/dev/null
scripts/kconfig/merge_config.sh -m .config "$fragment" >/dev/null
make "${KMAKE_ARGS[@]}" -s olddefconfig
# Every option of the fragment must have survived olddefconfig: a missing
# dependency would otherwise silently give a kernel without it.
missing=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=n) opt=${line%%=*}
		grep -q "^$opt=" .config && { echo "kernel: $opt is set, wanted off"; missing=1; } ;;
	CONFIG_*=*) grep -qx "$line" .config || { echo "kernel: $line did not stick"; missing=1; } ;;
	esac
done < "$fragment"
[[ $missing == 0 ]] || { echo "kernel: configuration incomplete (is 'make rustavailable' happy?)"; exit 1; }

jobs=$(nproc)
echo "kernel: building with $jobs jobs (log: $tree/build.log)"
if ! make "${KMAKE_ARGS[@]}" -j"$jobs" bzImage modules > build.log 2>&1; then
	tail -40 build.log
	exit 1
fi
echo "$key" > .nfsp-stamp
echo "kernel: built $tree/arch/x86/boot/bzImage (key $key)"
