#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The client side of a crash (qemu-test/run --disks): every iod's storage
# crashes alone, with writes the iods acknowledged but never committed.
# The iods drop COMMITs (fault injection, SIGUSR2) while a client writes
# UNSTABLE; then each iod's file system is shut down without flushing
# (FS_IOC_SHUTDOWN, as xfstests' godown: its page cache is lost, the disk
# keeps what was flushed), the iod killed, the disk mounted again (journal
# replayed) and the iod restarted on it: a new instance. The module sees
# the new instance and changes nfsd's write verifier; the client's COMMIT
# sees the change and sends its writes again: fsync returns with every
# byte on the iods. Without the verifier change the data is gone.
SCENARIO=nfsp-iod-crash
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start

check "every iod's data is on its own ext4 disk" iods_on_disks

export NFSP_IOD_OPTS=--fault-injection
check "the iods restart with fault injection" nfsp_iods_restart
unset NFSP_IOD_OPTS

# drop_commits: SIGUSR2 to every iod, and each says it drops COMMITs.
drop_commits() {
	local n
	for ((n = 1; n <= IODS; n++)); do
		kill -USR2 "$(cat "/run/nfsp/iod$n.pid")" || return 1
	done
	for ((n = 1; n <= IODS; n++)); do
		retry 20 grep -q 'SIGUSR2: fault DropCommits on' "/tmp/iod$n.log" || return 1
	done
}
check "every iod drops COMMITs" drop_commits

src=/tmp/uncommitted-src
size=$((4 * 1024 * 1024))
random_file "$src" "$size"
rm -f /tmp/uncommitted.ready /tmp/uncommitted.go
on client1 timeout 300 /usr/bin/python3 "$top/qemu-test/lib/uncommitted-write.py" \
	"$src" /mnt/nfsp-tcp/uncommitted /tmp/uncommitted.ready /tmp/uncommitted.go &
writer=$!
check "4 MiB written as UNSTABLE WRITEs over NFSv3/TCP, answered, not committed" \
	retry 120 test -e /tmp/uncommitted.ready

# FS_IOC_SHUTDOWN with EXT4_GOING_FLAGS_NOLOGFLUSH: nothing more reaches
# the disk, neither dirty pages nor the journal.
shutdown_fs() {
	/usr/bin/python3 -c '
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.ioctl(fd, 0x8004587D, struct.pack("I", 2))' "$1"
}
# crash_storage N: iodN's disk loses what it had not flushed; the iod dies.
crash_storage() {
	local n=$1 dev
	dev=$(findmnt -n -o SOURCE "/srv/disk/iod$n") || return 1
	shutdown_fs "/srv/disk/iod$n" || return 1
	nfsp_iod_stop "$n" KILL || return 1
	umount "/srv/iod$n" && umount "/srv/disk/iod$n" || return 1
	mount -t ext4 "$dev" "/srv/disk/iod$n" &&
		mount --bind "/srv/disk/iod$n/data" "/srv/iod$n"
}
# The bytes the iods' disks hold (allocated, holes not counted) of files
# written since the writer began.
on_iods_now() {
	local n t=0 b
	for ((n = 1; n <= IODS; n++)); do
		b=$(find "/srv/iod$n" -type f -newer "$src" -printf '%b\n' | awk '{s += $1 * 512} END {print s + 0}')
		t=$((t + b))
	done
	echo "$t"
}
crash_all() {
	local n
	for ((n = 1; n <= IODS; n++)); do
		crash_storage "$n" || return 1
	done
	lost_to=$(on_iods_now)
	echo "after the crash the iods' disks hold $lost_to of the $size bytes acknowledged" |
		tee /tmp/iod-crash.numbers
	# The crash must have lost data, or this test shows nothing.
	[ "$lost_to" -lt "$size" ] || return 1
	for ((n = 1; n <= IODS; n++)); do
		nfsp_iod_start "$n" || return 1
	done
}
check "every iod's storage crashes, losing the uncommitted writes; the iods restart" crash_all
cat /tmp/iod-crash.numbers

touch /tmp/uncommitted.go
check "fsync (COMMIT) returns" wait "$writer"
uncommitted_there() {
	on client2 sh -c 'echo 3 > /proc/sys/vm/drop_caches' &&
		on client2 cmp "$src" /mnt/nfsp-tcp/uncommitted
}
check "... and the client sent the lost writes again: every byte is there" uncommitted_there
echo "after fsync the iods' disks hold $(on_iods_now) bytes"
check "the iods' disks hold every byte again" test "$(on_iods_now)" -ge "$size"
summary
