#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# nfsp_knfsd.ko loads into our kernel, says which version it is, and unloads
# without a kernel warning (guest-init checks the log after every run).
SCENARIO=kmod-load
. "$(dirname "$0")/../lib/testlib.sh"

check "the module file exists" test -f "$KMOD"
check "insmod succeeds" insmod "$KMOD"
check "the module is listed" grep -q '^nfsp_knfsd ' /proc/modules
# The iod protocol it speaks: the one proto/ defines.
wire=$(sed -n 's/^pub const VERSION: u8 = \([0-9]*\);/\1/p' "$(dirname "$0")/../../proto/src/wire.rs")
check "it logs its version" sh -c "dmesg | grep -q 'nfsp_knfsd [0-9.]* loaded (meta-file format 1, iod protocol $wire)'"
check "rmmod succeeds" rmmod nfsp_knfsd
check "it is gone" sh -c "! grep -q '^nfsp_knfsd ' /proc/modules"
check "it logs its unload" sh -c "dmesg | grep -q 'nfsp_knfsd [0-9.]* unloaded'"
check "a second load/unload cycle works" sh -c "insmod '$KMOD' && rmmod nfsp_knfsd"
summary
