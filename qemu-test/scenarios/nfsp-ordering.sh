#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A WRITE and a truncate of one file, made to race (fault injection, not
# timing): the iods hold every TRUNCATE 2 s, so that a write sent during a
# cut lands on the iods before the cut, and takes the inode lock to extend
# the size only after it. The outcome must be one a serial order gives:
# either the write came first (size = the cut) or the cut did (the write's
# bytes at their place, zeros between the cut and them) — never a size
# that covers the write's range with zeros. Over NFSv3 (TCP) and NFSv4.2.
# Then two overlapping writes to a replicated viod, the first held on the
# second member (fault injection): the members must end up with the same
# bytes, the one or the other write's. Run with --iods 4 --clients 2.
SCENARIO=nfsp-ordering
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start

bin=$top/target/release
# One iod per viod (a scenario before may have left replicas): a held
# TRUNCATE is then held once, not once per member of a chain.
check "viods: one iod each" nfsp_single_viods
export NFSP_IOD_OPTS="--fault-injection hold-truncates"
check "the iods restart with fault injection (hold-truncates)" nfsp_iods_restart
unset NFSP_IOD_OPTS
# toggle_holds on|off: SIGUSR2 to every iod, and each says so.
toggle_holds() {
	local n want=$1
	for ((n = 1; n <= IODS; n++)); do
		kill -USR2 "$(cat "/run/nfsp/iod$n.pid")" || return 1
	done
	for ((n = 1; n <= IODS; n++)); do
		retry 20 sh -c "grep 'SIGUSR2: fault' /tmp/iod$n.log | tail -1 | grep -q 'HoldTruncates $want'" ||
			return 1
	done
}
resent() { on meta "$bin/iodctl" stats --json | sed -n 's/.*"writes_after_cuts":\([0-9]*\).*/\1/p'; }

mib=$((1024 * 1024))
random_file /tmp/order-src $((2 * mib))
random_file /tmp/order-write $((64 * 1024))
cut=$((512 * 1024))
at=$mib
# serial KIND FILE: the file (read on client1, caches dropped) is what the
# write then the cut, or the cut then the write, give.
serial() {
	local f=$2 got=/tmp/order-got size
	on client1 sh -c 'echo 3 > /proc/sys/vm/drop_caches'
	on client1 cat "$f" > "$got" || return 1
	size=$(stat -c %s "$got")
	echo "$1: size $size (cut to $cut, written at $at + 65536)"
	cmp -n "$cut" "$got" /tmp/order-src || return 1
	case $size in
	"$cut") echo "$1: the write came first, the cut removed it" ;;
	$((at + 65536)))
		cmp -i "$cut:0" -n $((at - cut)) "$got" /dev/zero || return 1
		cmp -i "$at:0" "$got" /tmp/order-write || { echo "$1: the written range is not the write's bytes" >&2; return 1; }
		echo "$1: the cut came first, then the write" ;;
	*) echo "$1: size $size is no serial outcome" >&2; return 1 ;;
	esac
}
# race KIND MOUNT: a cut on client1 while client2 writes into the part cut.
race() {
	local m=$2 f=$2/order
	on client1 cp /tmp/order-src "$f" && on client1 sync || return 1
	toggle_holds on || return 1
	on client1 truncate -s "$cut" "$f" &
	local cutter=$!
	sleep 0.7
	on client2 dd if=/tmp/order-write of="$f" bs=64k seek=$((at / 65536)) count=1 \
		conv=notrunc oflag=direct status=none || return 1
	wait "$cutter" || return 1
	toggle_holds off || return 1
	serial "$1" "$f" | tee -a /tmp/order-outcomes
	return "${PIPESTATUS[0]}"
}
: > /tmp/order-outcomes
r0=$(resent)
check "NFSv3: a write into a cut in progress gives a serial outcome" race v3 /mnt/nfsp-tcp
r1=$(resent)
check "... the write was sent again after the cut (writes_after_cuts $r0 -> $r1)" test "$r1" -gt "$r0"
# No delegation, or client2's OPEN would wait for client1's to be
# returned, after the cut.
leases=$(cat /proc/sys/fs/leases-enable)
echo 0 > /proc/sys/fs/leases-enable
check "NFSv4.2: a write into a cut in progress gives a serial outcome" race v4 /mnt/nfsp-v4
echo "$leases" > /proc/sys/fs/leases-enable
r2=$(resent)
check "... the write was sent again after the cut (writes_after_cuts $r1 -> $r2)" test "$r2" -gt "$r1"
echo "writes_after_cuts: $r0 -> $r1 -> $r2"
cat /tmp/order-outcomes

# Overlapping writes on replicas: viod 0 = iod1 + iod2, viod 1 = iod3 +
# iod4; each write covers a block of each viod.
iodctl() { on meta "$bin/iodctl" "$@"; }
for n in 1 2 3 4; do
	eval "iod$n=$(host_addr "iod$n"):7000"
done
check "viods: 0 = iod1 iod2, 1 = iod3 iod4" nfsp_paired_viods
seconds() {
	local n
	for n in 2 4; do nfsp_iod_stop "$n" && nfsp_iod_start "$n" || return 1; done
}
export NFSP_IOD_OPTS="--fault-injection hold-next-write"
check "iod2 and iod4 restart with fault injection (hold-next-write)" seconds
unset NFSP_IOD_OPTS
random_file /tmp/order-a $((128 * 1024))
random_file /tmp/order-b $((128 * 1024))
f=/mnt/nfsp-tcp/overlap
# Flushed before the fault is on: only the writes below may meet it.
check "a 128 KiB file on the replicas" \
	on client1 dd if=/tmp/order-src of="$f" bs=128k count=1 conv=fsync status=none
holds() { cat /tmp/iod2.log /tmp/iod4.log | grep -c 'fault injection: Write'; }
hold_next_write() {
	local n
	for n in 2 4; do
		kill -USR2 "$(cat "/run/nfsp/iod$n.pid")" &&
			retry 20 sh -c "grep 'SIGUSR2: fault' /tmp/iod$n.log | tail -1 | grep -q 'HoldNextWrite on'" ||
			return 1
	done
}
waited() { on meta "$bin/iodctl" stats --json | sed -n 's/.*"overlapping_writes_waited":\([0-9]*\).*/\1/p'; }
w0=$(waited)
both_held() { [ "$(holds)" -ge $((h0 + 2)) ]; }
overlap() {
	hold_next_write || return 1
	h0=$(holds)
	on client1 dd if=/tmp/order-a of="$f" bs=128k count=1 conv=notrunc oflag=direct status=none &
	local first=$!
	# The second write goes while the first is held on iod2 and iod4.
	retry 10 both_held || { echo "iod2 and iod4 held $(($(holds) - h0)) writes" >&2; return 1; }
	on client2 dd if=/tmp/order-b of="$f" bs=128k count=1 conv=notrunc oflag=direct status=none || return 1
	wait "$first"
}
check "two overlapping writes, the first held 2 s on iod2 and iod4" overlap
for n in 2 4; do kill -USR2 "$(cat "/run/nfsp/iod$n.pid")"; done
w1=$(waited)
# viod_of ADDR: the viod of a member (iod1, iod2: 0; iod3, iod4: 1).
viod_of() { case $1 in "$iod1" | "$iod2") echo 0 ;; *) echo 1 ;; esac; }
# from_members DOWN OUT: the file as the members not in DOWN (one per
# viod) alone serve it, the members DOWN taken out meanwhile.
from_members() {
	local d rc
	for d in $1; do iodctl set-state "$(viod_of "$d")" "$d" down || return 1; done
	on client2 sh -c 'echo 3 > /proc/sys/vm/drop_caches'
	on client2 dd if="$f" of="$2" bs=128k count=1 iflag=direct status=none
	rc=$?
	for d in $1; do iodctl set-state "$(viod_of "$d")" "$d" up; done
	return "$rc"
}
same() {
	from_members "$iod2 $iod4" /tmp/order-m1 && from_members "$iod1 $iod3" /tmp/order-m2 || return 1
	local w
	for w in a b; do cmp -s /tmp/order-m1 "/tmp/order-$w" && echo "iod1 and iod3 hold write $w"; done
	for w in a b; do cmp -s /tmp/order-m2 "/tmp/order-$w" && echo "iod2 and iod4 hold write $w"; done
	cmp /tmp/order-m1 /tmp/order-m2 &&
		{ cmp -s /tmp/order-m1 /tmp/order-a || cmp -s /tmp/order-m1 /tmp/order-b; }
}
check "both members of each viod hold the same write" same
same 2>&1 | tail -3
check "the second write waited for the first (overlapping_writes_waited $w0 -> $w1)" test "${w1:-0}" -gt "${w0:-0}"
check "the iods restart without fault injection" nfsp_iods_restart
summary
