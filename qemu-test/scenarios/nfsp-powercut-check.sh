#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Second half of a power cut (qemu-test/powercut): booted again on the
# same disks, every operation the writers of nfsp-powercut-load logged as
# acknowledged must be there, read back through the same kind of mount;
# after the boot-time recovery pass and unlinkd's replay no removed file
# has data left on the iods.
SCENARIO=nfsp-powercut-check
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start
iodctl() { on meta "$top/target/release/iodctl" "$@"; }
# The exports' directories on the meta disk (both on one file system).
pc_exports="/srv/disk/meta/nfsp /srv/disk/meta/nfsp-pnfs"

# What nfsp-recover@.service does at boot before nfsd serves (here: before
# the clients do anything): delete the data of files whose removal was
# acknowledged but never reached unlinkd's journal. Then unlinkd replays
# its journal.
recover() {
	local d out
	for d in $pc_exports; do
		out=$(iodctl fsck --delete --min-age 0 --journal "$PC_JOURNAL" --json "$d") ||
			{ echo "$out" >&2; return 1; }
		echo "recovery of ${d##*/}: $(jq -r '"\(.files) files, \(.orphans | length) orphans (\(.orphan_bytes) bytes), \(.deleted) deleted, \(.live_elsewhere) live elsewhere, \(.pending) pending in the journal"' <<< "$out")" >> /tmp/recovery.numbers
	done
}
check "recovery: orphans of removals the cut kept from unlinkd are deleted" recover
cat /tmp/recovery.numbers
check "unlinkd runs on meta, its journal on the meta disk" pc_unlinkd_start
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

# journal_drained: unlinkd has deleted every pending removal.
journal_drained() {
	local i
	for ((i = 0; i < 60; i++)); do
		on meta "$top/target/release/unlinkd" status --journal "$PC_JOURNAL" --json |
			grep -q '"pending":0[,}]' && return 0
		sleep 1
	done
	on meta "$top/target/release/unlinkd" status --journal "$PC_JOURNAL" >&2
	return 1
}
check "unlinkd drains the removals its journal held at the cut" journal_drained
# clean DIR: iodctl fsck finds no orphan in DIR. Missing data (a stripe
# of a live file with no local file on its iod) is counted, not failed:
# ext4 may have made a meta-file's size durable before an iod made the
# local file of an append durable (a COMMIT does that), and a stripe that
# held acknowledged data would have read as zeros in the per-page check
# above, which failed the round then.
clean() {
	local out
	out=$(iodctl fsck --min-age 0 --journal "$PC_JOURNAL" --json "$1")
	echo "fsck ${1##*/}: $(jq -c '{files, orphans: (.orphans | length), missing: (.missing | length), live_elsewhere}' <<< "$out")" >> /tmp/fsck.numbers
	jq -e '.orphans | length == 0' <<< "$out" > /dev/null || { jq -c '.orphans[:5]' <<< "$out" >&2; return 1; }
	jq -c '.missing[:5][]' <<< "$out" | sed 's/^/missing (never committed): /' >> /tmp/fsck.numbers
}
for d in $pc_exports; do
	check "iodctl fsck $d: 0 orphans (no removed file left data)" clean "$d"
done
cat /tmp/fsck.numbers
summary
