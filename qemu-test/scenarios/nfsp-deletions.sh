#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Deletion storm: unlinkd drains /dev/nfsp_unlink while ~2000 files (some
# hard-linked, a few MiB-sized) are removed over both mounts, unlinkd is
# killed with SIGKILL at random moments and restarted (>= 5 times), and all
# iods are stopped for a few seconds once (deletions wait and retry). At the
# end unlinkd's journal and the device are empty, 'iodctl fsck' finds no
# orphan and no missing data, and the surviving files read byte-exact.
# Run with --iods 4 --clients 2.
SCENARIO=nfsp-deletions
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start

bin=$top/target/release
journal=/var/lib/nfsp/unlinkd.journal
ulog=/tmp/unlinkd.log
pidfile=/run/nfsp/unlinkd.pid
per_client=${DELETIONS_PER_CLIENT:-1000}
kills=0
: > "$ulog"

unlinkd_start() {
	local pid i
	on meta "$bin/unlinkd" run --journal "$journal" >> "$ulog" 2>&1 < /dev/null &
	pid=$!
	echo "$pid" > "$pidfile"
	sleep 0.3
	kill -0 "$pid" 2>/dev/null || { echo "unlinkd exited:" >&2; tail "$ulog" >&2; return 1; }
}
unlinkd_kill() {
	local pid
	pid=$(cat "$pidfile") || return 1
	kill -"$1" "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	local rc=$?
	rm -f "$pidfile"
	[ "$1" != TERM ] || [ "$rc" = 0 ] || { echo "unlinkd exit status $rc after SIGTERM" >&2; return 1; }
}
status_json() {
	on meta "$bin/unlinkd" status --journal "$journal" --json
}
json_field() { # json_field NAME: the number after "NAME": on stdin
	sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}
device_bytes() {
	on meta dd if=/dev/nfsp_unlink bs=64 iflag=nonblock status=none 2>/dev/null | wc -c
}

check "unlinkd starts on meta" unlinkd_start
check "a second unlinkd on the same journal is refused" \
	bash -c "! on meta '$bin/unlinkd' run --journal '$journal' 2> /tmp/second.err"

# The files: per client, $per_client small files over its mount kind, every
# tenth with a second name; 4 files of 2-3 MiB; 20 survivors kept.
mkdir -p /tmp/del-src
for i in $(seq 1 20); do random_file "/tmp/del-src/keep$i" $((i * 9973)); done
random_file /tmp/del-src/big 3145728
create() { # create CLIENT KIND
	on "$1" bash -c "
		d=/mnt/nfsp-$2/storm-$1
		mkdir -p \$d || exit 1
		for ((i = 0; i < $per_client; i++)); do
			head -c \$((i * 37 % 5000 + 1)) /dev/urandom > \$d/f\$i || exit 1
			if ((i % 10 == 0)); then ln \$d/f\$i \$d/link\$i || exit 1; fi
		done
		for i in 1 2; do head -c \$((2097152 + i * 300000)) /tmp/del-src/big > \$d/big\$i || exit 1; done"
}
start=$SECONDS
check "client1 creates $per_client files (+ links, 2 big) over UDP" create client1 udp
check "client2 creates $per_client files (+ links, 2 big) over TCP" create client2 tcp
check "20 survivors are written" bash -c "
	on client1 mkdir -p /mnt/nfsp-udp/keep &&
	for i in \$(seq 1 20); do on client1 cp /tmp/del-src/keep\$i /mnt/nfsp-udp/keep/ || exit 1; done"
files=$(find /srv/nfsp -type f | wc -l)
bytes=$(du -sb --apparent-size /srv/nfsp | cut -f1)
echo "created: $files names, $bytes bytes (apparent) in $((SECONDS - start)) s"

# Remove everything but the survivors, in the background, while unlinkd is
# killed and restarted, and the iods are stopped once.
start=$SECONDS
on client1 rm -rf /mnt/nfsp-udp/storm-client1 & rm1=$!
on client2 rm -rf /mnt/nfsp-tcp/storm-client2 & rm2=$!
outage=0
storm() {
	local n
	while kill -0 "$rm1" 2>/dev/null || kill -0 "$rm2" 2>/dev/null || ((kills < 5)); do
		sleep "$((RANDOM % 2)).$((RANDOM % 10))"
		unlinkd_kill KILL || return 1
		kills=$((kills + 1))
		if ((kills == 3)); then
			for ((n = 1; n <= IODS; n++)); do nfsp_iod_stop "$n" || return 1; done
			outage=1
			sleep "$((RANDOM % 10 / 5)).$((RANDOM % 10))"
		fi
		unlinkd_start || return 1
		if ((kills == 3)); then
			sleep 4 # unlinkd runs and retries with every iod down
			for ((n = 1; n <= IODS; n++)); do nfsp_iod_start "$n" || return 1; done
		fi
	done
}
storm_rc=0
storm || storm_rc=$?
wait "$rm1"; r1=$?
wait "$rm2"; r2=$?
check "the removals over UDP and TCP succeed" test "$r1$r2" = 00
check "unlinkd was killed (SIGKILL) and restarted at least 5 times ($kills)" \
	test "$storm_rc" = 0 -a "$kills" -ge 5
check "all iods were stopped once during the storm" test "$outage" = 1
echo "removed in $((SECONDS - start)) s with $kills kills"

drained() {
	local i p d
	for ((i = 0; i < 240; i++)); do
		p=$(status_json | json_field pending)
		d=$(device_bytes)
		[ "$p" = 0 ] && [ "$d" = 0 ] && return 0
		sleep 0.5
	done
	echo "still pending: journal $p, device $d bytes" >&2
	tail -5 "$ulog" >&2
	return 1
}
check "unlinkd drains everything (journal 0 pending, /dev/nfsp_unlink empty)" drained
check "the journal is compacted once everything is done" \
	bash -c "sleep 1; test \$(stat -c %s '$journal') = 0"
check "unlinkd stops cleanly on SIGTERM" unlinkd_kill TERM

fsck_out=/tmp/fsck.json
fsck_clean() {
	on meta "$bin/iodctl" fsck /srv/nfsp --json --min-age 0 --journal "$journal" > "$fsck_out"
	local rc=$?
	cat "$fsck_out"
	return "$rc"
}
check "iodctl fsck: zero orphans, zero missing data" fsck_clean
orphans=$(grep -o '"iod":"[^"]*","key"' "$fsck_out" | wc -l)
missing=$(grep -o '"viod":' "$fsck_out" | wc -l)
live=$(json_field files < "$fsck_out")
check "fsck sees the survivors" test "${live:-0}" -ge 20
survivors() {
	local i k
	for k in udp tcp; do
		for i in $(seq 1 20); do
			on client2 cmp "/tmp/del-src/keep$i" "/mnt/nfsp-$k/keep/keep$i" || return 1
		done
	done
}
check "the 20 survivors read byte-exact over UDP and TCP" survivors

# fsck finds a planted orphan, --delete removes it, and spares live data.
plant() {
	local d
	# data of this export (its id from fsck) under a key no file has
	d=$(on meta "$bin/iodctl" fsck /srv/nfsp --json --min-age 0 --journal "$journal" |
		sed -n 's/.*"export":"\([0-9a-f]*\)".*/\1/p') || return 1
	python3 - "$d" <<'PY' || return 1
import sys, struct, os
exp = int(sys.argv[1], 16)
POLY = 0x82F63B78
def crc(data, c=0):
    c ^= 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (POLY if c & 1 else 0)
    return c ^ 0xFFFFFFFF
key = (exp, 424242, 77)
h = crc(struct.pack("<QQQ", *key)).to_bytes(4, "little")
p = "/srv/iod2/%02x/%02x/%016x-%016x-%016x" % (h[0], h[1], *key)
os.makedirs(os.path.dirname(p), exist_ok=True)
open(p, "wb").write(b"x" * 1000)
PY
	! on meta "$bin/iodctl" fsck /srv/nfsp --min-age 0 --journal "$journal" > /tmp/fsck.txt &&
		grep -q '1 orphan' /tmp/fsck.txt &&
		on meta "$bin/iodctl" fsck /srv/nfsp --min-age 0 --journal "$journal" --delete &&
		on meta "$bin/iodctl" fsck /srv/nfsp --min-age 0 --journal "$journal" --json |
		grep -q '"orphans":\[\]'
}
check "fsck reports a planted orphan and --delete removes it" plant
check "the survivors still read byte-exact after fsck --delete" survivors

echo "nfsp-deletions: files=$files bytes=$bytes kills=$kills iod_outages=$outage live_after=$live leaks: orphans=$orphans missing=$missing"
summary
