#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the out-of-tree module (Kbuild at the repository root) against the
# test kernel; objects go to $NFSP_CACHE/kmod, never into the checkout.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/kernel-env.sh"
tree=$(kernel_tree)
[[ -f "$tree/.nfsp-stamp" ]] || { echo "kmod: build the kernel first ('make kernel')" >&2; exit 1; }
out=$NFSP_CACHE/kmod
mkdir -p "$out"
log=$out/build.log
make -C "$tree" "${KMAKE_ARGS[@]}" M="$top" MO="$out" -j"$(nproc)" modules 2>&1 | tee "$log"
# Nothing unused is compiled into the module: what only user space uses
# of proto/ is cfg'd out (kmod/proto.rs), and the dead-code lint proves it.
if grep -E '^warning: .* never (used|constructed|read)' "$log" >&2; then
	echo "kmod: unused code compiled into the module (above): cfg it out for the kernel" >&2
	exit 1
fi
echo "kmod: $out/kmod/nfsp_knfsd.ko"
