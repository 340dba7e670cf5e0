#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# An iod dies (kill -9) in the middle of reads of a 20 MiB file by two
# clients (UDP and TCP) and comes back 3 s later on the same data: the reads
# complete byte-exact (guest-init fails the run on a kernel warning). Then
# every iod crashes with writes it had not committed, which the client
# sends again; a silent iod; the viod table changing under reads.
SCENARIO=nfsp-iod-restart
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start

size=$((20 * 1024 * 1024))
src=/tmp/restart-src
random_file "$src" "$size"
check "a 20 MiB file is written" on client1 cp "$src" /mnt/nfsp-udp/restart
on client1 sh -c 'echo 3 > /proc/sys/vm/drop_caches'

# O_DIRECT 64 KiB reads: every block goes to the server while iod2 is away.
reader() {
	on "$1" timeout 300 sh -c "dd if=/mnt/nfsp-$2/restart bs=64k iflag=direct status=none |
		cmp - '$src'"
	echo $? > "/tmp/restart-rc-$1"
}
rm -f /tmp/restart-rc-*
reader client1 udp &
p1=$!
reader client2 tcp &
p2=$!
sleep 0.3
running() {
	kill -0 "$p1" 2>/dev/null && kill -0 "$p2" 2>/dev/null
}
check "both reads are still running when iod2 is killed" running
check "kill -9 iod2" nfsp_iod_stop 2 KILL
sleep 3
check "iod2 restarts on the same data directory" nfsp_iod_start 2
wait "$p1" "$p2"
check "the UDP read completes byte-exact" test "$(cat /tmp/restart-rc-client1)" = 0
check "the TCP read completes byte-exact" test "$(cat /tmp/restart-rc-client2)" = 0

after_restart() {
	on "$1" sh -c 'echo 3 > /proc/sys/vm/drop_caches' &&
	on "$1" cmp "$src" "/mnt/nfsp-$2/restart"
}
check "after the restart: byte-exact over udp" after_restart client2 udp
check "after the restart: byte-exact over tcp" after_restart client1 tcp
echo "nfsp-iod-restart: iodctl list after the restart:"
on meta "$top/target/release/iodctl" list

# Writes the iods answered but never committed are lost when an iod's
# machine goes down (its page cache with them): all four iods die and the
# local files written meanwhile are removed, as such a crash would. An iod
# answering as a new instance makes nfsd change its write verifier, so the
# client's COMMIT sees it and sends those writes again: fsync returns with
# every byte on the iods.
unsafe_src=/tmp/uncommitted-src
random_file "$unsafe_src" $((4 * 1024 * 1024))
rm -f /tmp/uncommitted.ready /tmp/uncommitted.go
touch /tmp/uncommitted.stamp
sleep 1
on client1 timeout 300 /usr/bin/python3 "$top/qemu-test/lib/uncommitted-write.py" \
	"$unsafe_src" /mnt/nfsp-tcp/uncommitted /tmp/uncommitted.ready /tmp/uncommitted.go &
writer=$!
check "4 MiB written as UNSTABLE WRITEs, answered, not committed" \
	retry 60 test -e /tmp/uncommitted.ready
lose_uncommitted() {
	local n lost=0
	for n in 1 2 3 4; do nfsp_iod_stop "$n" KILL || return 1; done
	for n in 1 2 3 4; do
		lost=$((lost + $(find "/srv/iod$n" -type f -newer /tmp/uncommitted.stamp -print -delete | wc -l)))
	done
	echo "local files lost: $lost"
	[ "$lost" -ge 4 ] || return 1
	for n in 1 2 3 4; do nfsp_iod_start "$n" || return 1; done
}
check "every iod crashes and loses the uncommitted writes" lose_uncommitted
touch /tmp/uncommitted.go
check "fsync (COMMIT) returns" wait "$writer"
uncommitted_there() {
	on client2 sh -c 'echo 3 > /proc/sys/vm/drop_caches' &&
	on client2 cmp "$unsafe_src" /mnt/nfsp-tcp/uncommitted
}
check "... and the client sent them again: every byte is there" uncommitted_there

# A silent iod (stopped, not dead): the relayed read gets a retryable error
# after the timeout (the nfsd thread is not held), the timeout is counted,
# and the read completes once the iod answers again.
iodctl() { on meta "$top/target/release/iodctl" "$@"; }
# timeouts_of ADDR:PORT: that iod's timeout counter.
timeouts_of() {
	iodctl list --json | tr '{' '\n' | grep "\"iod\":\"$1\"" |
		sed 's/.*"timeouts":\([0-9]*\).*/\1/'
}
iod3=$(host_addr iod3):7000
check "iod timeout set to 500 ms" iodctl timeout 500
t0=$(timeouts_of "$iod3")
kill -STOP "$(cat /run/nfsp/iod3.pid)"
reader client1 tcp &
p3=$!
sleep 4
counted() {
	local t
	t=$(timeouts_of "$iod3")
	echo "iod3 timeouts: $t0 before, $t now"
	[ -n "$t" ] && [ "$t" -gt "${t0:-0}" ]
}
check "a silent iod's timeouts are counted" counted
check "nfsd still serves other requests meanwhile" on client2 ls /mnt/nfsp-tcp
kill -CONT "$(cat /run/nfsp/iod3.pid)"
wait "$p3"
check "the read completes byte-exact once the iod answers" test "$(cat /tmp/restart-rc-client1)" = 0

# The viod table changes while I/O runs: reads are not disturbed.
viods() {
	iodctl list --json | grep -o '"viod":[0-9]*' | sort -u | tr '\n' ' '
}
before=$(viods)
reader client2 tcp &
p4=$!
changes() {
	local i iod1
	iod1=$(host_addr iod1):7000
	for ((i = 0; i < 5; i++)); do
		iodctl add-viod 9 "$iod1" &&
		iodctl set-state 0 "$iod1" up &&
		iodctl timeout 700 &&
		iodctl del-viod 9 || return 1
	done
}
check "viods added, changed and removed during a read" changes
wait "$p4"
check "the read during the changes is byte-exact" test "$(cat /tmp/restart-rc-client2)" = 0
check "the table is as before ($before)" test "$(viods)" = "$before"
summary
