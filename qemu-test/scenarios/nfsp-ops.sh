#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Namespace and size operations on the nfsp export: truncate then extend
# (the bytes past the cut read as zeros, on both mounts), hard links (data
# stays while a name is left; the last unlink queues a deletion record on
# /dev/nfsp_unlink and the module then refuses rmmod), rename over an
# existing file and remove (each queues the old file's record), over
# NFSv3 and NFSv4.2.
SCENARIO=nfsp-ops
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start

# truncate_extend WKIND RKIND CUT: a 1 MiB file cut to CUT bytes then
# extended to 300000 + CUT over WKIND by client1, read over RKIND by client2.
truncate_extend() {
	local w=$1 r=$2 cut=$3 src=/tmp/ops-src f g name ext
	name=trunc-$w-$r-$cut
	f=/mnt/nfsp-$w/$name
	g=/mnt/nfsp-$r/$name
	ext=$((cut + 300000))
	[ -f "$src" ] || random_file "$src" 1048576
	on client1 cp "$src" "$f" || return 1
	on client1 truncate -s "$cut" "$f" || return 1
	# cmp first: the open revalidates client2's attributes (close-to-open).
	on client2 cmp -n "$cut" "$src" "$g" || { echo "kept part differs after the cut" >&2; return 1; }
	size_is client2 "$g" "$cut" || return 1
	on client1 truncate -s "$ext" "$f" || return 1
	# (No process substitution in the VM: it has no /dev/fd.)
	{ head -c "$cut" "$src"; head -c 300000 /dev/zero; } > /tmp/ops-expect
	on client2 cmp /tmp/ops-expect "$g" ||
		{ echo "not the kept part + zeros after extending to $ext" >&2; return 1; }
	size_is client2 "$g" "$ext"
}
size_is() {
	local got
	got=$(on "$1" stat -c %s "$2") || return 1
	[ "$got" = "$3" ] || { echo "$1 sees size $got for $2, expected $3" >&2; return 1; }
}
# Cuts inside a block, on a block boundary, inside the first block, to 0.
for cut in 100000 131072 1000 0; do
	for pair in "udp tcp" "tcp udp" "v4 udp" "tcp v4"; do
		set -- $pair
		check "truncate to $cut then extend over $1: zeros past the cut over $2" \
			truncate_extend "$1" "$2" "$cut"
	done
done

# Deletion records: read everything available (non-blocking) and keep it,
# whatever the device's read semantics (consume or re-deliver).
records=/tmp/nfsp-unlink-records
: > "$records"
collect_records() {
	dd if=/dev/nfsp_unlink bs=64 iflag=nonblock status=none >> "$records" 2>/dev/null
	return 0
}
# has_record INODE SIZE: a well-formed record for that meta inode and size.
has_record() {
	local ino=$1 size=$2 n i magic rino rsize
	collect_records
	n=$(($(stat -c %s "$records") / 64))
	for ((i = 0; i < n; i++)); do
		magic=$(dd if="$records" bs=1 skip=$((i * 64)) count=4 status=none)
		rino=$(od -An -tu8 -j $((i * 64 + 24)) -N8 "$records" | tr -d ' ')
		rsize=$(od -An -tu8 -j $((i * 64 + 40)) -N8 "$records" | tr -d ' ')
		[ "$magic" = NFUL ] && [ "$rino" = "$ino" ] && [ "$rsize" = "$size" ] && return 0
	done
	echo "no record for inode $ino size $size among $n record(s)" >&2
	return 1
}
no_record() {
	! has_record "$@" 2>/dev/null
}

# A new file extended before any write (truncate -s: CREATE, then SETATTR
# of the size): it gets its layout then (nfsd holds the inode lock), reads
# as zeros, takes writes, and stays an nfsp file (nothing on meta's disk).
new_file_extended() {
	local kind=$1 f=/mnt/nfsp-$1/extended-$1 got
	on client1 truncate -s 300000 "$f" || return 1
	head -c 300000 /dev/zero > /tmp/ops-zeros
	on client2 cmp /tmp/ops-zeros "/mnt/nfsp-tcp/extended-$kind" || return 1
	random_file /tmp/ops-mid 5000
	on client1 dd if=/tmp/ops-mid of="$f" bs=5000 seek=20 conv=notrunc status=none || return 1
	dd if=/tmp/ops-mid of=/tmp/ops-zeros bs=5000 seek=20 conv=notrunc status=none
	on client2 cmp /tmp/ops-zeros "/mnt/nfsp-udp/extended-$kind" || return 1
	if command -v getfattr > /dev/null; then
		getfattr --absolute-names -n trusted.nfsp "/srv/nfsp/extended-$kind" > /dev/null || return 1
	fi
	# Written locally, the 5000 bytes would take two pages on meta.
	got=$(du -k "/srv/nfsp/extended-$kind" | cut -f1)
	echo "meta-file: $got KiB on meta"
	[ "$got" = 0 ]
}
for kind in tcp v4; do
	check "$kind: truncate -s of a new file: zeros, then a write, an nfsp file" new_file_extended "$kind"
done

check "the deletion device /dev/nfsp_unlink exists" test -c /dev/nfsp_unlink
collect_records

random_file /tmp/ops-link 200000
check "a file is written" on client1 cp /tmp/ops-link /mnt/nfsp-udp/link-a
ino=$(stat -c %i /srv/nfsp/link-a)
check "ln: a second name" on client1 ln /mnt/nfsp-udp/link-a /mnt/nfsp-udp/link-b
check "removing the first name" on client1 rm /mnt/nfsp-udp/link-a
check "the data still reads through the second name (udp)" \
	on client2 cmp /tmp/ops-link /mnt/nfsp-udp/link-b
check "the data still reads through the second name (tcp)" \
	on client2 cmp /tmp/ops-link /mnt/nfsp-tcp/link-b
check "no deletion record while a name is left" no_record "$ino" 200000
check "removing the last name" on client1 rm /mnt/nfsp-tcp/link-b
check "a deletion record for it appears on /dev/nfsp_unlink" has_record "$ino" 200000

rmmod_busy() {
	local out
	if out=$(rmmod nfsp_knfsd 2>&1); then
		echo "rmmod succeeded with deletions pending" >&2
		return 1
	fi
	echo "$out"
	echo "$out" | grep -qiE 'in use|busy'
}
check "the module refuses rmmod (EBUSY) while records are pending" rmmod_busy
check "the module is still loaded" grep -q '^nfsp_knfsd ' /proc/modules

random_file /tmp/ops-old 70000
random_file /tmp/ops-new 90000
check "two files for rename" sh -c "on client1 cp /tmp/ops-old /mnt/nfsp-udp/ren-old &&
	on client1 cp /tmp/ops-new /mnt/nfsp-udp/ren-new"
ino=$(stat -c %i /srv/nfsp/ren-old)
check "rename over an existing file" on client1 mv /mnt/nfsp-tcp/ren-new /mnt/nfsp-tcp/ren-old
check "the new content is under the old name" on client2 cmp /tmp/ops-new /mnt/nfsp-udp/ren-old
check "the overwritten file's record is queued" has_record "$ino" 70000

random_file /tmp/ops-rm 65537
check "a file to remove" on client1 cp /tmp/ops-rm /mnt/nfsp-tcp/rm-me
ino=$(stat -c %i /srv/nfsp/rm-me)
check "rm" on client1 rm /mnt/nfsp-udp/rm-me
check "it is gone for the other client" on client2 sh -c '! test -e /mnt/nfsp-tcp/rm-me'
check "its record is queued" has_record "$ino" 65537

# The same over NFSv4.2: REMOVE and RENAME over an existing file.
random_file /tmp/ops-v4 80000
check "a file written over v4" on client1 cp /tmp/ops-v4 /mnt/nfsp-v4/v4-rm
ino=$(stat -c %i /srv/nfsp/v4-rm)
check "rm over v4" on client1 rm /mnt/nfsp-v4/v4-rm
check "its record is queued (v4 REMOVE)" has_record "$ino" 80000
check "two files for a v4 rename" sh -c "on client1 cp /tmp/ops-old /mnt/nfsp-v4/v4-old &&
	on client1 cp /tmp/ops-new /mnt/nfsp-v4/v4-new"
ino=$(stat -c %i /srv/nfsp/v4-old)
check "rename over an existing file over v4" on client1 mv /mnt/nfsp-v4/v4-new /mnt/nfsp-v4/v4-old
check "the new content is under the old name (read over udp)" \
	on client2 cmp /tmp/ops-new /mnt/nfsp-udp/v4-old
check "the overwritten file's record is queued (v4 RENAME)" has_record "$ino" 70000
check "NFSv4.2 on the plain export still works" on client1 ls /mnt/plain-v4
summary
