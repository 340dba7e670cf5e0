#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Replicated viods under iodmgr: viod 0 = iod1 + iod2, viod 1 = iod3 + iod4.
# A verified random read/write mix runs on client1 (UDP) and client2
# (TCP) while iod2 is killed (-9): no client error, no corrupt byte; iodmgr
# marks iod2 down (failover time = kill -> probe reads progressing again).
# iod2 restarts on its stale data directory: iodmgr re-syncs it from iod1
# (bytes, MB/s) and sets it up; then iod1 is killed and everything reads
# byte-exact from iod2 alone, and iod1 comes back re-synced from iod2.
# Then one iod per viod: the only member of a viod dies during a read and
# comes back up without a re-sync. Run with --iods 4 --clients 2.
SCENARIO=nfsp-replicated
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start

bin=$top/target/release
iodctl() { on meta "$bin/iodctl" "$@"; }
mlog=/tmp/iodmgr.log
state=/run/nfsp/iodmgr.json
iod1=$(host_addr iod1):7000
iod2=$(host_addr iod2):7000
iod3=$(host_addr iod3):7000
iod4=$(host_addr iod4):7000
metrics=$(host_addr meta):9477

reconfigure() {
	local v
	for v in 0 1 2 3; do iodctl del-viod "$v" || return 1; done
	iodctl add-viod 0 "$iod1" "$iod2" && iodctl add-viod 1 "$iod3" "$iod4" && iodctl list
}
check "viods reconfigured: 0 = iod1 iod2, 1 = iod3 iod4" reconfigure
check "four members up" test "$(iodctl list | grep -c ' up ')" = 4

iodmgr_start() { nfsp_iodmgr_start "$state" "$mlog" /run/nfsp/iodmgr.pid --metrics "$metrics"; }
check "iodmgr runs on meta with metrics on $metrics" iodmgr_start
status_ups() { on meta "$bin/iodmgr" status --state "$state" | tee /dev/stderr | grep -c ' up '; }
check "iodmgr status lists the four members up" test "$(status_ups)" = 4

# df of the nfsp export shows the iods' space, which iodmgr tells the
# module from their PONGs: each viod holds as much as its smallest member
# and the two viods add up, here to twice the VM's /srv, where every iod
# keeps its data (the meta-server's own tmpfs is half that).
iod_fs=$(/usr/bin/python3 -c 'import os; s = os.statvfs("/srv"); print(s.f_blocks * s.f_frsize)')
space_stat() { iodctl stats --json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["space_total"])'; }
near() { # near A B: A within 0.5 % of B
	[ "${1:-0}" -gt 0 ] && [ $((($1 > $2 ? $1 - $2 : $2 - $1) * 200)) -le "$2" ] ||
		{ echo "$1 is not $2 (within 0.5 %)" >&2; return 1; }
}
wait_space() {
	local i
	for ((i = 0; i < 50; i++)); do
		[ "$(space_stat)" -gt 0 ] && return 0
		sleep 0.2
	done
	return 1
}
check "iodmgr tells the module the space of every iod" wait_space
check "iodctl stats: space_total is twice the iods' file system" near "$(space_stat)" $((2 * iod_fs))
df_size() { on client1 df -B1 --output=size "$1" | tail -1; }
check "df of the nfsp export over NFSv3 (FSSTAT): the iods' space" near "$(df_size /mnt/nfsp-tcp)" $((2 * iod_fs))
check "df of the nfsp export over NFSv4.2 (space attributes): the iods' space" \
	near "$(df_size /mnt/nfsp-v4)" $((2 * iod_fs))
check "df of the plain export: the meta-server's space, unchanged" \
	near "$(df_size /mnt/plain-tcp)" "$(on meta df -B1 --output=size /srv/plain | tail -1)"

scrape() { on client1 curl -sf -H 'Accept: application/openmetrics-text' "http://$metrics/metrics"; }
# metrics_has LINE...: the scrape has every LINE and ends with '# EOF'.
metrics_has() {
	local m l
	m=$(scrape) || return 1
	for l in "$@"; do
		grep -qxF "$l" <<< "$m" || { echo "missing: $l" >&2; echo "$m" >&2; return 1; }
	done
	[ "$(tail -1 <<< "$m")" = "# EOF" ]
}
metric() { # metric NAME IOD: the value of NAME{viod="0",iod="IOD"}
	scrape | sed -n "s/^$1{viod=\"0\",iod=\"$2\"} //p"
}
check "metrics: iod2 up, OpenMetrics ending with # EOF" \
	metrics_has "nfsp_iod_up{viod=\"0\",iod=\"$iod2\"} 1" "nfsp_iod_resync_bytes_total{viod=\"1\",iod=\"$iod4\"} 0"

# Width 2 now: a probe file read in 128 KiB O_DIRECT pieces (both viods)
# every 50 ms, each completion's time (ms since boot) logged.
random_file /tmp/probe-src $((1024 * 1024))
check "a probe file is written" on client2 cp /tmp/probe-src /mnt/nfsp-tcp/probe
rm -f /tmp/probe.log /tmp/probe.stop
on client2 bash -c '
	i=0
	while [ ! -e /tmp/probe.stop ]; do
		dd if=/mnt/nfsp-tcp/probe of=/dev/null bs=128k count=1 skip=$((i % 8)) \
			iflag=direct status=none || echo "probe read failed" >&2
		read -r up _ < /proc/uptime
		echo $(( ${up%.*} * 1000 + 10#${up#*.} * 10 )) >> /tmp/probe.log
		i=$((i + 1))
		sleep 0.05
	done' 2> /tmp/probe.err &
probe=$!

# The workload: verified random 64 KiB reads and writes, O_DIRECT, two
# jobs (files) per client, one client per transport (nfsp-rwverify: fio
# needs SysV shared memory, which this kernel does not have).
rw_run() { # rw_run CLIENT KIND
	on "$1" "$bin/nfsp-rwverify" --dir "/mnt/nfsp-$2/rw-$1" --jobs 2 --size-mib 16 \
		--ops 800 --direct > "/tmp/rw-$1.log" 2>&1
	echo $? > "/tmp/rw-$1.rc"
}
rw_ok() {
	test "$(cat "/tmp/rw-$1.rc")" = 0 && grep -q ' 0 errors' "/tmp/rw-$1.log" ||
		{ tail -20 "/tmp/rw-$1.log" >&2; return 1; }
}
rm -f /tmp/rw-*.rc
rw_run client1 udp &
f1=$!
rw_run client2 tcp &
f2=$!
sleep 4
check "the workload runs on both clients when iod2 is killed" \
	bash -c "kill -0 $f1 && kill -0 $f2"
t_kill=$(now_ms)
wall_kill=$(date +%s%3N)
check "kill -9 iod2" nfsp_iod_stop 2 KILL
check "iodmgr marks iod2 down" wait_state "$iod2" down 30
# log_ms PATTERN: the time (ms since the epoch) of iodmgr's first log line
# matching PATTERN.
log_ms() {
	local t
	t=$(grep -m1 "$1" "$mlog" | sed -n 's/^\[\([0-9T:.-]*\)Z .*/\1/p')
	[ -n "$t" ] && date -u -d "$t" +%s%3N
}
t_mark=$(log_ms "$iod2 down")
echo "iodmgr marked iod2 down $((${t_mark:-0} - wall_kill)) ms after the kill"

# During the outage: a file written now lives on iod1 alone until re-sync.
random_file /tmp/outage-src $((6 * 1024 * 1024))
check "a file is written during the outage" on client2 cp /tmp/outage-src /mnt/nfsp-tcp/outage
check "metrics: iod2 down" metrics_has "nfsp_iod_up{viod=\"0\",iod=\"$iod2\"} 0"
sleep 3
check "iod2 restarts on its (stale) data directory" nfsp_iod_start 2
t_back=$(now_ms)
check "iodmgr re-syncs iod2 and sets it up" wait_state "$iod2" up 240
echo "iod2 up again $(( $(now_ms) - t_back )) ms after its restart"
resync=$(grep "$iod2 re-synced" "$mlog" | tail -1)
echo "iodmgr: ${resync#*INFO }"
copied=$(echo "$resync" | sed -n 's/.* \([0-9]*\) bytes copied.*/\1/p')
compared=$(echo "$resync" | sed -n 's/.* \([0-9]*\) bytes compared.*/\1/p')
secs=$(echo "$resync" | sed -n 's/.* in \([0-9.]*\) s (.*/\1/p')
echo "re-sync: ${copied:-?} bytes copied, ${compared:-?} bytes compared in ${secs:-?} s" \
	"($(awk -v b="${copied:-0}" -v s="${secs:-0}" 'BEGIN { if (s > 0) printf "%.1f", b / s / 1e6; else print "?" }') MB/s copied," \
	"$(awk -v b="${compared:-0}" -v s="${secs:-0}" 'BEGIN { if (s > 0) printf "%.1f", b / s / 1e6; else print "?" }') MB/s compared)"
check "the re-sync copied data (the outage file at least)" test "${copied:-0}" -ge $((6 * 1024 * 1024 / 2))
check "metrics: iod2 up again" metrics_has "nfsp_iod_up{viod=\"0\",iod=\"$iod2\"} 1"
check "metrics: the re-sync's bytes are counted" test "$(metric nfsp_iod_resync_bytes_total "$iod2")" -ge "${copied:-1}"

wait "$f1" "$f2"
touch /tmp/probe.stop
wait "$probe"
for c in client1 client2; do
	check "workload on $c: no I/O error, every read verified" rw_ok "$c"
	sed "s/^/$c: /" "/tmp/rw-$c.log"
done
check "the probe reads never failed" test ! -s /tmp/probe.err
# Failover: the longest pause between two probe completions after the kill.
stall=$(awk -v k="$t_kill" 'NR > 1 && $1 > k { if ($1 - prev > m) m = $1 - prev } { prev = $1 } END { print m + 0 }' /tmp/probe.log)
echo "failover: probe reads stalled at most $stall ms after the kill (kill -> clients progressing again; iodmgr's mark: $((${t_mark:-0} - wall_kill)) ms)"

# Every file, as read with both replicas up, then from iod2 alone.
sums() {
	on client1 sh -c 'echo 3 > /proc/sys/vm/drop_caches' &&
	on client1 sh -c 'cd /mnt/nfsp-tcp && find . -type f | sort | xargs md5sum'
}
check "checksums of every file with both replicas up" eval 'sums > /tmp/sums-both'
check "kill -9 iod1" nfsp_iod_stop 1 KILL
check "iodmgr marks iod1 down" wait_state "$iod1" down 30
check "iod2 serves viod 0 alone: every file byte-exact (TCP)" \
	eval 'sums > /tmp/sums-iod2 && cmp /tmp/sums-both /tmp/sums-iod2'
outage_udp() {
	on client2 sh -c 'echo 3 > /proc/sys/vm/drop_caches' &&
	on client2 cmp /tmp/outage-src /mnt/nfsp-udp/outage
}
check "the outage file reads byte-exact from iod2 (UDP)" outage_udp
echo "files checked: $(wc -l < /tmp/sums-both)"

# iod1 returns: re-synced from iod2 (the chain's head this time).
check "iod1 restarts" nfsp_iod_start 1
check "iodmgr re-syncs iod1 from iod2 and sets it up" wait_state "$iod1" up 240
grep "$iod1 re-synced" "$mlog" | tail -1 | sed 's/.*INFO /iodmgr: /'
iodmgr_stop() {
	local pid
	pid=$(cat /run/nfsp/iodmgr.pid) && kill -TERM "$pid" && sleep 1.5 && ! kill -0 "$pid" 2>/dev/null
}
# Unreplicated: one iod per viod again (new files only: the files above
# are striped over the replicated viods). A viod's only member dies during
# a read: iodmgr marks it down anyway (clients get NFS3ERR_JUKEBOX either
# way) and, as it was its viod's last writer, sets it up again as soon as
# it answers, without a re-sync; the read completes byte-exact.
unreplicated() {
	local i
	iodctl del-viod 0 && iodctl del-viod 1 || return 1
	for i in 1 2 3 4; do iodctl add-viod $((i - 1)) "$(host_addr "iod$i"):7000" || return 1; done
	iodctl list
}
check "viods reconfigured: one iod each" unreplicated
random_file /tmp/single-src $((12 * 1024 * 1024))
check "a 12 MiB file is written over 4 viods" on client1 cp /tmp/single-src /mnt/nfsp-tcp/single
on client1 sh -c 'echo 3 > /proc/sys/vm/drop_caches'
on client1 sh -c "dd if=/mnt/nfsp-tcp/single bs=64k iflag=direct status=none | cmp - /tmp/single-src" \
	> /tmp/single.err 2>&1 &
reader=$!
sleep 0.5
check "kill -9 iod3 during the read" nfsp_iod_stop 3 KILL
iod3_addr=$(host_addr iod3):7000
check "iodmgr marks iod3 (viod 2's only member) down" wait_state "$iod3_addr" down 30
check "iodmgr says viod 2 has no up member left" grep -q "viod 2 has no up member left" "$mlog"
sleep 2
check "iod3 restarts" nfsp_iod_start 3
check "iodmgr sets iod3 up again" wait_state "$iod3_addr" up 30
check "... directly: it holds its viod's newest data (no re-sync)" \
	grep -q "$iod3_addr up: answers again; holds its viod's newest data" "$mlog"
check "the read completes byte-exact" wait "$reader"
cat /tmp/single.err

check "iodmgr stops on SIGTERM" iodmgr_stop
echo "nfsp-replicated: iodmgr log:"
sed 's/^/    /' "$mlog" | tail -30
summary
