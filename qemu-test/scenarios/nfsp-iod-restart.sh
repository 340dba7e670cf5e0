#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# An iod dies (kill -9) in the middle of reads of a 20 MiB file by two
# clients (UDP and TCP) and comes back 3 s later on the same data: the reads
# complete byte-exact (guest-init fails the run on a kernel warning).
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
