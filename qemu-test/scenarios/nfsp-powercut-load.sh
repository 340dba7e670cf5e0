#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# First half of a power cut (qemu-test/powercut runs it with --disks and
# --share, then kills QEMU): writers on every kind of nfsp mount write,
# fsync, truncate, create, rename, hard-link and remove files or names
# (unlinkd deletes the removed files' data), and log each
# acknowledged operation to /run/nfsp-share/acks (outside the VM). It only
# ends by itself if a writer fails.
SCENARIO=nfsp-powercut-load
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start
on_disks() {
	[ "$(stat -c %d /srv/nfsp)" = "$(stat -c %d /srv/disk/meta)" ] && iods_on_disks
}
check "the nfsp exports and the iods' data are on the disks" on_disks
check "an nfsp export with pnfs is mounted over NFSv4.2" nfsp_pnfs_up
check "unlinkd runs on meta, its journal on the meta disk" pc_unlinkd_start
acks=/run/nfsp-share/acks
mkdir -p "$acks"

# The kernel log goes to the share every second: the power cut leaves no
# other trace of a warning (qemu-test/powercut fails the round on one).
while :; do
	dmesg > /run/nfsp-share/dmesg.tmp && mv /run/nfsp-share/dmesg.tmp /run/nfsp-share/dmesg
	sleep 1
done &
logger=$!
pids=()
for w in $POWERCUT_WRITERS; do
	c=${w%:*} kind=${w#*:}
	on "$c" /usr/bin/python3 "$top/qemu-test/lib/powercut.py" load \
		"/mnt/nfsp-$kind/pc-$c-$kind" "$acks/$c-$kind" 2> "/tmp/powercut-$c-$kind.err" &
	pids+=($!)
done
# unlinkd freezes 2 s in, as a stuck or slow one would: the removals
# after that stay in the kernel's queue and the cut loses their records,
# which the recovery pass of the check must make up for.
(sleep 2 && pkill -STOP -x unlinkd && echo "nfsp-powercut-load: unlinkd frozen") &
echo "nfsp-powercut-load: writers running, waiting for the power cut"
wait -n "${pids[@]}"
check "the writers run until the power cut" false
# The others stop too: their dirty pages would hold up the VM's shutdown.
kill -KILL "${pids[@]}" "$logger" 2> /dev/null
for w in /tmp/powercut-*.err; do sed "s|^|$w: |" "$w"; done
summary
