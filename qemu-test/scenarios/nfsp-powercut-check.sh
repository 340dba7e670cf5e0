#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Second half of a power cut (qemu-test/powercut): booted again on the
# same disks, every operation the writers of nfsp-powercut-load logged as
# acknowledged must be there, read back through the same kind of mount.
SCENARIO=nfsp-powercut-check
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start
check "an nfsp export with pnfs is mounted over NFSv4.2" nfsp_pnfs_up
acks=/run/nfsp-share/acks
check "the writers logged acknowledged operations before the cut" \
	test "$(cat "$acks"/* 2> /dev/null | wc -l)" -gt 20
# pc_check CLIENT DIR ACKS LOG: the checker's verdict, its report in LOG.
pc_check() {
	local rc
	on "$1" /usr/bin/python3 "$top/qemu-test/lib/powercut.py" check "$2" "$3" > "$4" 2>&1
	rc=$?
	cat "$4"
	return "$rc"
}
for a in "$acks"/*; do
	[ -f "$a" ] || continue
	w=${a##*/} c=${w%-*} kind=${w#*-}
	check "after the power cut: what $c acknowledged over nfsp-$kind is there" \
		pc_check "$c" "/mnt/nfsp-$kind/pc-$c-$kind" "$a" "/tmp/powercut-$w.log"
	head -1 "/tmp/powercut-$w.log"
done
summary
