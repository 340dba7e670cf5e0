#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Iod identity: each data directory has one (drawn at the first start on
# it); the table learns it and keeps it in viods.conf. An iod that comes
# back on a wiped directory, or on another iod's, must never serve what it
# does not hold (zeros, or another viod's blocks) to any kind of client:
# NFSv3 over TCP (relayed) and UDP (direct), NFSv4.2 with pNFS layouts.
# The module takes it down; putting the disk back, or accepting the new
# directory (iodctl accept-identity), brings it back. With replicas,
# iodmgr re-syncs a wiped member under its new identity and sets it up;
# it then serves the viod alone, byte-exact. Run with --iods 4 --clients 2.
SCENARIO=nfsp-identity
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start

bin=$top/target/release
iodctl() { on meta "$bin/iodctl" "$@"; }
mlog=/tmp/iodmgr-identity.log
state=/run/nfsp/iodmgr-identity.json
for n in 1 2 3 4; do
	eval "iod$n=$(host_addr "iod$n"):7000"
done
size=$((4 * 1024 * 1024))

# field ADDR NAME: a field of the member's line in 'iodctl list --json'.
field() {
	iodctl list --json | tr '{' '\n' | grep "\"iod\":\"$1\"" | head -1 |
		sed -n "s/.*\"$2\":\"\\{0,1\\}\\([0-9a-z]*\\).*/\\1/p"
}
# identity_of N: the identity iodN's data directory holds.
identity_of() { cat "/srv/iod$1/nfsp-identity"; }
# wipe N: iodN comes back on an empty data directory (its old one kept
# aside in /srv/iodN.away).
wipe() {
	nfsp_iod_stop "$1" && mv "/srv/iod$1" "/srv/iod$1.away" && mkdir "/srv/iod$1" &&
		nfsp_iod_start "$1"
}
# restore N: iodN back on its own data directory.
restore() {
	nfsp_iod_stop "$1" && rm -rf "/srv/iod$1" && mv "/srv/iod$1.away" "/srv/iod$1" &&
		nfsp_iod_start "$1"
}
# mnt KIND: the mount point of one way to read.
mnt() { case $1 in pnfs) echo /mnt/nfsp-pnfs ;; *) echo "/mnt/nfsp-$1" ;; esac; }
# read_to HOST KIND NAME OUT: O_DIRECT read of NAME (at most 20 s) into OUT.
read_to() {
	on "$1" sh -c 'echo 3 > /proc/sys/vm/drop_caches'
	on "$1" timeout -s KILL 20 dd if="$(mnt "$2")/$3" of="$4" bs=64k iflag=direct status=none
}
# no_wrong_bytes HOST KIND NAME SRC: what a read of NAME returns (before it
# is given up) is a prefix of SRC, and not all of it: never a hole of
# zeros nor another viod's blocks for the data the iod no longer holds.
no_wrong_bytes() {
	local got=/tmp/identity-got n
	rm -f "$got"
	read_to "$1" "$2" "$3" "$got"
	n=$(stat -c %s "$got" 2>/dev/null || echo 0)
	echo "$2: $n of $(stat -c %s "$4") bytes read before the read was given up"
	[ "$n" -lt "$(stat -c %s "$4")" ] || { echo "the whole file was read" >&2; return 1; }
	[ "$n" = 0 ] || cmp -n "$n" "$got" "$4"
}
# exact HOST KIND NAME SRC: a read of NAME returns SRC.
exact() {
	local got=/tmp/identity-got
	rm -f "$got"
	read_to "$1" "$2" "$3" "$got" && cmp "$got" "$4"
}

check "viods: one iod each" nfsp_single_viods
check "an nfsp export with pnfs is mounted over NFSv4.2" nfsp_pnfs_up
random_file /tmp/identity-src "$size"
check "a 4 MiB file is written over v3 (TCP)" on client1 cp /tmp/identity-src /mnt/nfsp-tcp/identity
check "and one through pNFS layouts" \
	on client1 dd if=/tmp/identity-src of=/mnt/nfsp-pnfs/identity bs=1M conv=fsync status=none
learned() {
	local n
	for n in 1 2 3 4; do
		eval "local a=\$iod$n"
		[ "$(field "$a" identity)" = "$(identity_of "$n")" ] ||
			{ echo "iod$n: table $(field "$a" identity), directory $(identity_of "$n")" >&2; return 1; }
	done
}
check "the table learned every iod's data-directory identity" learned
iodctl list
saved() {
	iodctl save --file /tmp/identity-viods.conf &&
		[ "$(grep -c '^identity ' /tmp/identity-viods.conf)" = 4 ] &&
		grep -q "^identity 2 $iod3 $(identity_of 3)\$" /tmp/identity-viods.conf
}
check "iodctl save records the four identities" saved
mismatches() { iodctl stats --json | sed -n 's/.*"identity_mismatches":\([0-9]*\).*/\1/p'; }
m0=$(mismatches)

# iod3 (viod 2) comes back on an empty disk.
old3=$(identity_of 3)
check "iod3 restarts on an empty data directory" wipe 3
new3=$(identity_of 3)
check "... which drew a new identity ($old3 -> $new3)" test "$new3" != "$old3"
for kind in tcp udp pnfs; do
	check "v3/$kind read after the wipe: no wrong byte" no_wrong_bytes client2 "$kind" identity /tmp/identity-src
done
check "iod3 is down, answering as $new3 (FOREIGN)" \
	eval 'test "$(field "$iod3" state)" = down && test "$(field "$iod3" foreign)" = "$new3"'
check "identity mismatches are counted" test "$(mismatches)" -gt "${m0:-0}"
check "the kernel log names the other directory" eval "dmesg | grep -q 'answers as data directory $new3'"
iodctl list

# Its disk comes back: set up again, it serves byte-exact.
check "iod3 restarts on its own data directory" restore 3
check "iodctl set-state 2 iod3 up" iodctl set-state 2 "$iod3" up
for kind in tcp udp pnfs; do
	check "v3/$kind read with the disk back: byte-exact" exact client2 "$kind" identity /tmp/identity-src
done
check "... and the table holds its identity again, FOREIGN cleared" \
	eval 'test "$(field "$iod3" identity)" = "$old3" && test "$(field "$iod3" foreign)" = null'

# The admin accepts an empty directory (the data is lost, knowingly), and
# then the old disk again.
check "iod3 restarts on an empty data directory again" wipe 3
new3=$(identity_of 3)
no_wrong_bytes client2 tcp identity /tmp/identity-src > /dev/null
check "iodctl accept-identity 2 iod3 takes the FOREIGN one ($new3)" iodctl accept-identity 2 "$iod3"
check "... the table holds it" test "$(field "$iod3" identity)" = "$new3"
check "iodctl set-state 2 iod3 up" iodctl set-state 2 "$iod3" up
lost() { # the read completes, with viod 2's blocks lost
	local got=/tmp/identity-got
	read_to client2 tcp identity "$got" && ! cmp -s "$got" /tmp/identity-src
}
check "the read completes, without what the wiped disk held" lost
check "the old disk back" restore 3
no_wrong_bytes client2 tcp identity /tmp/identity-src > /dev/null
check "iodctl accept-identity 2 iod3 $old3 (explicit)" iodctl accept-identity 2 "$iod3" "$old3"
check "iodctl set-state 2 iod3 up" iodctl set-state 2 "$iod3" up
check "byte-exact again" exact client2 tcp identity /tmp/identity-src

# Two iods' disks swapped: each holds the other viod's blocks.
swap() {
	nfsp_iod_stop 3 && nfsp_iod_stop 4 &&
		mv /srv/iod3 /srv/iod-swap && mv /srv/iod4 /srv/iod3 && mv /srv/iod-swap /srv/iod4 &&
		nfsp_iod_start 3 && nfsp_iod_start 4
}
check "iod3 and iod4 restart on each other's disk" swap
for kind in tcp udp pnfs; do
	check "v3/$kind read with swapped disks: no wrong byte" no_wrong_bytes client2 "$kind" identity /tmp/identity-src
done
check "the disks swapped back" swap
for v in 2 3; do iodctl set-state "$v" "$(host_addr "iod$((v + 1))"):7000" up; done
check "byte-exact with the disks back (tcp)" exact client2 tcp identity /tmp/identity-src
check "byte-exact with the disks back (pnfs)" exact client2 pnfs identity /tmp/identity-src

# Replicas under iodmgr: viod 0 = iod1 + iod2, viod 1 = iod3 + iod4. iod2
# comes back wiped while a client reads: every read byte-exact; iodmgr
# re-syncs iod2 under its new identity and sets it up.
check "viods: 0 = iod1 iod2, 1 = iod3 iod4" nfsp_paired_viods
check "iodmgr runs" nfsp_iodmgr_start "$state" "$mlog" /run/nfsp/iodmgr-identity.pid
check "a 4 MiB file is written on the replicas" on client1 cp /tmp/identity-src /mnt/nfsp-tcp/replicated
check "iodmgr records the members' identities from their PONGs" \
	retry 10 eval 'test "$(field "$iod2" identity)" = "$(identity_of 2)"'
reads() { # reads until /tmp/identity-stop: each byte-exact
	local i=0
	while [ ! -e /tmp/identity-stop ]; do
		on client2 sh -c 'echo 3 > /proc/sys/vm/drop_caches'
		on client2 cmp /tmp/identity-src /mnt/nfsp-tcp/replicated || { echo "read $i differs"; return 1; }
		i=$((i + 1))
	done
	echo "$i reads, all byte-exact"
}
rm -f /tmp/identity-stop
reads > /tmp/identity-reads.log 2>&1 &
reader=$!
old2=$(identity_of 2)
check "iod2 restarts on an empty data directory" wipe 2
new2=$(identity_of 2)
check "iodmgr takes iod2 down: another data directory" \
	retry 20 grep -q "$iod2 answers as data directory $new2" "$mlog"
check "iodmgr re-syncs iod2 under its new identity and sets it up" wait_state "$iod2" up 180
check "... the table holds $new2 for it" test "$(field "$iod2" identity)" = "$new2"
touch /tmp/identity-stop
check "every read during the wipe and the re-sync was byte-exact" wait "$reader"
cat /tmp/identity-reads.log
check "kill iod1" nfsp_iod_stop 1 KILL
check "iodmgr marks iod1 down" wait_state "$iod1" down 30
check "iod2 alone serves viod 0 byte-exact" exact client2 tcp replicated /tmp/identity-src
check "iod1 restarts" nfsp_iod_start 1
check "iodmgr brings iod1 back" wait_state "$iod1" up 180
grep -E "$iod2|data directory" "$mlog" | sed 's/^/    iodmgr: /' | tail -8
stop_iodmgr() {
	local pid
	pid=$(cat /run/nfsp/iodmgr-identity.pid) && kill -TERM "$pid" && sleep 1.5 && ! kill -0 "$pid" 2>/dev/null
}
check "iodmgr stops" stop_iodmgr
rm -rf /srv/iod2.away
summary
