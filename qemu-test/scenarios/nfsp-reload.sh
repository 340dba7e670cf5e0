#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The viod table survives a module reload (as it would a reboot) through
# its configuration file: 'iodctl save' writes it, nfsd stops, the module
# is unloaded and loaded again (empty table), nfsd starts: reads of nfsp
# files wait (NFS3ERR_JUKEBOX) and give no data until 'iodctl load-key' and
# 'iodctl load' put the same table back; then every file reads back
# byte-exact over NFSv3 and NFSv4.2. Loading again changes nothing; a file
# that disagrees with the module is refused before anything changes.
# Needs no deletion pending (run after nfsp-deletions, whose unlinkd
# drains everything): the module refuses rmmod otherwise.
SCENARIO=nfsp-reload
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start
iodctl=$top/target/release/iodctl
conf=/etc/nfsp/viods.conf
sbin=$NFS_UTILS/sbin

random_file /tmp/reload-a $((3 * 1024 * 1024 + 999))
random_file /tmp/reload-b 300000
check "two files are written (v3/tcp, v4.2)" sh -c \
	"on client1 cp /tmp/reload-a /mnt/nfsp-tcp/reload-a && on client1 cp /tmp/reload-b /mnt/nfsp-v4/reload-b"

saved() {
	on meta "$iodctl" save || return 1
	cat "$conf"
	[ "$(grep -c '^add-viod ' "$conf")" = "$IODS" ] &&
		grep -qx "add-viod 0 $(host_addr iod1):7000" "$conf"
}
check "iodctl save writes one add-viod line per viod to $conf" saved

reload_module() {
	local i
	on meta "$sbin/rpc.nfsd" 0 || return 1
	# nfsd's last file references go asynchronously (delayed fput).
	for ((i = 0; i < 50; i++)); do
		rmmod nfsp_knfsd 2> /dev/null && break
		sleep 0.1
	done
	! grep -q '^nfsp_knfsd ' /proc/modules || { rmmod nfsp_knfsd; return 1; }
	insmod "$KMOD" || return 1
	[ "$(on meta "$iodctl" list | grep -c ':7000 ')" = 0 ] || { echo "the new module has viods" >&2; return 1; }
	on meta "$sbin/rpc.nfsd" --udp -G 10 -L 10 "${NFSD_THREADS:-8}"
}
check "nfsd stops, the module is reloaded (empty table), nfsd starts" reload_module

# Without its table the module serves nothing: the read waits (JUKEBOX
# retries) and is killed after 4 s with no byte read.
no_data_before_load() {
	local rc
	on client2 sh -c 'echo 3 > /proc/sys/vm/drop_caches'
	timeout -s KILL 4 on client2 cat /mnt/nfsp-tcp/reload-a > /tmp/reload-early
	rc=$?
	echo "cat exited $rc with $(stat -c %s /tmp/reload-early) bytes"
	[ "$rc" = 137 ] && [ ! -s /tmp/reload-early ]
}
check "before the table is loaded a read gives no data (it waits)" no_data_before_load

loaded() {
	on meta "$iodctl" load-key > /dev/null && on meta "$iodctl" load || return 1
	[ "$(on meta "$iodctl" list | grep -c ':7000 ')" = "$IODS" ]
}
check "iodctl load-key and iodctl load put the table back" loaded
check "the v3 file reads back byte-exact (tcp and udp)" sh -c \
	"on client2 cmp /tmp/reload-a /mnt/nfsp-tcp/reload-a && on client2 cmp /tmp/reload-a /mnt/nfsp-udp/reload-a"
check "the v4.2 file reads back byte-exact (v4.2 and tcp)" sh -c \
	"on client2 cmp /tmp/reload-b /mnt/nfsp-v4/reload-b && on client1 cmp /tmp/reload-b /mnt/nfsp-tcp/reload-b"
check "iodctl load again changes nothing" sh -c \
	"on meta '$iodctl' load | grep -q '0 added, $IODS already there'"

conflict_refused() {
	local out
	sed "s|^add-viod 0 .*|add-viod 0 $(host_addr iod2):7000|" "$conf" > /tmp/reload-bad.conf
	if out=$(on meta "$iodctl" load --file /tmp/reload-bad.conf 2>&1); then
		echo "a conflicting file was loaded: $out" >&2
		return 1
	fi
	echo "$out"
	on meta "$iodctl" list | grep -q "^0 .*$(host_addr iod1):7000 "
}
check "a file that disagrees with the module is refused, the table unchanged" conflict_refused
summary
