#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# NFSv4.2 on the nfsp export: the default mount (no vers=) works; cp of
# dense and sparse files is byte-exact to, from and within the export
# (server-side COPY included); SEEK_DATA/SEEK_HOLE never see the sparse
# meta-file's holes; ALLOCATE, DEALLOCATE and CLONE are refused without
# touching the data; a second client sees new content (the change
# attribute moves with every write); byte-range locks and delegations work
# across two clients; a local file on the export is served as it is.
SCENARIO=nfsp-v4
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start
v4=/mnt/nfsp-v4

default_mount() {
	mkdir -p /mnt/nfsp-default
	on client1 mount -t nfs meta:/nfsp /mnt/nfsp-default || return 1
	on client1 grep " /mnt/nfsp-default " /proc/mounts
	on client1 grep -qE " /mnt/nfsp-default nfs4 .*vers=4.2," /proc/mounts
}
check "mount -t nfs meta:/nfsp (no vers=) gives an NFSv4.2 mount" default_mount
random_file /tmp/v4-small 100000
check "the default mount writes and reads back" sh -c \
	"on client1 cp /tmp/v4-small /mnt/nfsp-default/small && on client2 cmp /tmp/v4-small $v4/small"
on client1 umount /mnt/nfsp-default

# A dense file and a sparse one (data at 0, a hole, data at 5 MiB, a hole
# to 8 MiB).
random_file /tmp/v4-dense $((3 * 1024 * 1024 + 12345))
rm -f /tmp/v4-sparse
random_file /tmp/v4-chunk 70000
dd if=/tmp/v4-chunk of=/tmp/v4-sparse bs=70000 count=1 status=none
dd if=/tmp/v4-chunk of=/tmp/v4-sparse bs=70000 seek=$((5 * 1024 * 1024)) oflag=seek_bytes \
	conv=notrunc status=none
truncate -s $((8 * 1024 * 1024)) /tmp/v4-sparse
for kind in dense sparse; do
	check "cp of a $kind file into the export, byte-exact" sh -c \
		"on client1 cp /tmp/v4-$kind $v4/cp-$kind && on client2 cmp /tmp/v4-$kind $v4/cp-$kind"
	check "cp of a $kind file out of the export (cp seeks for data), byte-exact" sh -c \
		"on client2 cp $v4/cp-$kind /tmp/v4-out-$kind && cmp /tmp/v4-$kind /tmp/v4-out-$kind"
	check "cp of a $kind file within the export, byte-exact" sh -c \
		"on client1 cp $v4/cp-$kind $v4/cp2-$kind && on client2 cmp /tmp/v4-$kind $v4/cp2-$kind"
done
# copy_file_range within one NFSv4.2 mount copies on the server (COPY,
# which nfsd does through the module's file operations): count them.
copy_ops() {
	on client1 awk '/^device meta:\/nfsp mounted on \/mnt\/nfsp-v4 /{m=1} m && $1 == "COPY:" {print $2; exit}' \
		/proc/self/mountstats
}
server_side_copy() {
	local before after
	before=$(copy_ops)
	on client1 /usr/bin/python3 - "$v4/cp-dense" "$v4/copied" <<'PY' || return 1
import os, sys
src, dst = os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
left = os.fstat(src).st_size
while left:
    n = os.copy_file_range(src, dst, left)
    if n == 0:
        sys.exit("copy_file_range copied nothing")
    left -= n
os.close(dst)
PY
	after=$(copy_ops)
	echo "COPY operations sent by client1: ${before:-none} before, ${after:-none} after"
	on client2 cmp /tmp/v4-dense "$v4/copied" && [ "${after:-0}" -gt "${before:-0}" ]
}
check "copy_file_range within the export: server-side COPY, byte-exact" server_side_copy

# du counts the data (the meta-file alone takes no blocks).
du_counts_data() {
	local kib
	kib=$(on client2 du -k "$v4/cp-dense" | cut -f1) || return 1
	echo "du of a 3 MiB file: $kib KiB"
	[ "$kib" -ge 3072 ]
}
check "du of a 3 MiB nfsp file counts its 3 MiB" du_counts_data

# SEEK_HOLE on a dense file answers the size, SEEK_DATA at 0 answers 0:
# the meta-file is one big hole, and answering from it would copy zeros.
seek_data_hole() {
	on client2 /usr/bin/python3 - "$v4/cp-dense" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
data, hole = os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 0, os.SEEK_HOLE)
print(f"size {size}: SEEK_DATA(0) = {data}, SEEK_HOLE(0) = {hole}")
sys.exit(0 if (data, hole) == (0, size) else 1)
PY
}
check "SEEK_DATA/SEEK_HOLE see the whole dense file as data" seek_data_hole

# ALLOCATE, DEALLOCATE (punch hole) and CLONE are refused; the data stays.
refused() {
	local what=$1 out
	shift
	if out=$(on client1 "$@" 2>&1); then
		echo "$what succeeded on an nfsp file" >&2
		return 1
	fi
	echo "$out"
	on client2 cmp /tmp/v4-dense "$v4/cp-dense"
}
check "fallocate (ALLOCATE) is refused, the data intact" \
	refused ALLOCATE fallocate -o 0 -l 8M "$v4/cp-dense"
check "fallocate --punch-hole (DEALLOCATE) is refused, the data intact" \
	refused DEALLOCATE fallocate -p -o 0 -l 65536 "$v4/cp-dense"
check "cp --reflink=always (CLONE) is refused, the data intact" \
	refused CLONE cp --reflink=always "$v4/cp-dense" "$v4/clone"

# Client2 caches the file, client1 overwrites it in place (same size): on
# its next open client2 must see the new bytes, not only a new size.
new_content() {
	random_file /tmp/v4-a 200000
	random_file /tmp/v4-b 200000
	on client1 cp /tmp/v4-a "$v4/change" || return 1
	on client2 cmp /tmp/v4-a "$v4/change" || return 1
	on client1 dd if=/tmp/v4-b of="$v4/change" bs=200000 conv=notrunc status=none || return 1
	on client2 cmp /tmp/v4-b "$v4/change"
}
check "a second client sees new content after the first one writes" new_content

# Byte-range locks: client1 holds an exclusive lock, client2 cannot take
# one until it is released.
locks() {
	local f=$v4/locked holder
	on client1 cp /tmp/v4-small "$f" || return 1
	on client1 flock -x "$f" sleep 4 &
	holder=$!
	sleep 1.5
	if on client2 flock -n -x "$f" true; then
		echo "client2 got the lock client1 holds" >&2
		wait "$holder"
		return 1
	fi
	wait "$holder" || return 1
	on client2 flock -n -x "$f" true
}
check "a lock held by client1 keeps client2 out, then lets it in" locks

# Delegations: client1 keeps the file open for reading and gets a read
# delegation; client2's write recalls it; client1 then reads the new data.
delegation() {
	local f=$v4/deleg reader n
	random_file /tmp/v4-d1 150000
	random_file /tmp/v4-d2 150000
	on client1 cp /tmp/v4-d1 "$f" || return 1
	on client1 sh -c "exec 3< $f; cat <&3 > /dev/null; sleep 4" &
	reader=$!
	sleep 1.5
	n=$(cat /proc/fs/nfsd/clients/*/states 2>/dev/null | grep -c 'type: deleg')
	echo "delegations held while client1 reads: $n"
	on client2 dd if=/tmp/v4-d2 of="$f" bs=150000 conv=notrunc status=none || { wait "$reader"; return 1; }
	wait "$reader"
	on client1 cmp /tmp/v4-d2 "$f" || return 1
	[ "$n" -gt 0 ]
}
check "a read delegation is granted, recalled by a write, and the reader sees it" delegation

# A file made on the meta-server's export directly (or there before 'nfsp'
# was added): no layout header, so it is served as the local file it is.
local_file() {
	random_file /srv/nfsp/local-file 123456
	on client1 cmp /srv/nfsp/local-file "$v4/local-file" &&
	on client2 cmp /srv/nfsp/local-file /mnt/nfsp-tcp/local-file &&
	on client2 cmp /srv/nfsp/local-file /mnt/nfsp-udp/local-file
}
check "a local file on the export (no header) reads as it is over v4 and v3" local_file

# NFSv4 state survives an nfsd restart (nfsdcld tracks the clients): client1
# holds an open file with a lock; nfsd stops and starts again; client1
# reclaims both during the grace period, writes through its open file
# afterwards, and client2 still cannot take the lock.
reclaim() {
	local f=$v4/reclaim dir=/tmp/reclaim holder rc=0 i
	rm -rf "$dir" && mkdir -p "$dir"
	random_file "$dir/one" 100000
	random_file "$dir/two" 100000
	on client1 cp "$dir/one" "$f" || return 1
	on client1 /usr/bin/python3 - "$f" "$dir" <<'PY' &
import fcntl, os, sys, time
path, dir = sys.argv[1], sys.argv[2]
def wait_for(name):
    for _ in range(600):
        if os.path.exists(f"{dir}/{name}"):
            return
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {name}")
fd = os.open(path, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
open(f"{dir}/locked", "w").close()
wait_for("restarted")
with open(f"{dir}/two", "rb") as two:
    os.pwrite(fd, two.read(), 0)
os.fsync(fd)
open(f"{dir}/written", "w").close()
wait_for("release")
os.close(fd)
PY
	holder=$!
	for ((i = 0; i < 100; i++)); do [ -e "$dir/locked" ] && break; sleep 0.1; done
	[ -e "$dir/locked" ] || { echo "client1 did not get its lock" >&2; kill "$holder"; return 1; }
	on meta "$NFS_UTILS/sbin/rpc.nfsd" 0 || rc=1
	on meta "$NFS_UTILS/sbin/rpc.nfsd" --udp -G 10 -L 10 "${NFSD_THREADS:-8}" || rc=1
	touch "$dir/restarted"
	for ((i = 0; i < 600; i++)); do [ -e "$dir/written" ] && break; sleep 0.1; done
	if [ ! -e "$dir/written" ]; then
		echo "client1 could not write through its open file after the restart" >&2
		rc=1
	elif on client2 /usr/bin/python3 -c '
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)' "$f" 2> /dev/null; then
		echo "client2 got the lock client1 held before the restart" >&2
		rc=1
	fi
	on client2 cmp "$dir/two" "$f" || rc=1
	touch "$dir/release"
	wait "$holder" || rc=1
	return "$rc"
}
check "an open file and its lock are reclaimed after nfsd restarts" reclaim
summary
