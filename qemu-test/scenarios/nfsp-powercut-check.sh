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
# every_writer_started: each writer's log is there and says it started
# (its first files were created, written and synced).
every_writer_started() {
	local w
	for w in $POWERCUT_WRITERS; do
		grep -qx started "$acks/${w/:/-}" || { echo "no log of $w" >&2; return 1; }
	done
}
check "every writer logged acknowledged operations before the cut" every_writer_started
# pc_check CLIENT DIR ACKS LOG: the checker's verdict, its report in LOG.
pc_check() {
	local rc
	on "$1" /usr/bin/python3 "$top/qemu-test/lib/powercut.py" check "$2" "$3" > "$4" 2>&1
	rc=$?
	cat "$4"
	return "$rc"
}
for w in $POWERCUT_WRITERS; do
	c=${w%:*} kind=${w#*:} w=${w/:/-} a=$acks/$w
	check "after the power cut: what $c acknowledged over nfsp-$kind is there" \
		pc_check "$c" "/mnt/nfsp-$kind/pc-$c-$kind" "$a" "/tmp/powercut-$w.log"
	head -1 "/tmp/powercut-$w.log"
done
summary
