#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# An attacker on the storage network. client2 holds no cluster key; it
# sends every iod message type unsigned and signed with made-up keys (also
# under the cluster's key id), replays datagrams captured on the bridge
# (from its own address and from the meta-server's, forged), floods LIST,
# and holds slow connections to iodmgr's metrics endpoint. Meanwhile
# client1 runs fio with --verify on the nfsp export over TCP and UDP.
# Nothing may be applied (files written before keep their checksums), no
# iod may be marked down, PING latency stays within 2x of the latency under
# the same load without attack, the iods send fewer bytes because of the
# attacker than it sent, and fio's data stays byte-exact.
# Run with --iods 4 --clients 2.
SCENARIO=nfsp-attack
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start
: > /tmp/attack.numbers

bin=$top/target/release
attack() { on client2 "$bin/nfsp-attack" "$@"; }
mlog=/tmp/iodmgr-attack.log
state=/run/nfsp/iodmgr-attack.json
metrics=$(host_addr meta):9477
targets=()
for ((i = 1; i <= IODS; i++)); do targets+=(--target "$(host_addr "iod$i"):7000"); done

iodmgr_start() {
	: > "$mlog"
	rm -f "$state"
	on meta "$bin/iodmgr" run --metrics "$metrics" --state "$state" \
		>> "$mlog" 2>&1 < /dev/null &
	echo $! > /run/nfsp/iodmgr-attack.pid
	for ((i = 0; i < 50; i++)); do
		[ -s "$state" ] && return 0
		sleep 0.1
	done
	cat "$mlog" >&2
	return 1
}
check "iodmgr runs on meta (metrics on $metrics)" iodmgr_start

# Files written before the attack, with their checksums.
before() {
	local f
	for f in 1 2 3; do
		on client1 dd if=/dev/urandom of="/mnt/nfsp-tcp/keep$f" bs=64k count=$((f * 8)) \
			status=none conv=fsync || return 1
	done
	on client1 sh -c 'cd /mnt/nfsp-tcp && sha256sum keep1 keep2 keep3' > /tmp/keep.sha
	cat /tmp/keep.sha
}
check "three files written and checksummed before the attack" before

# Median of the iods' PING round trips over SECS seconds (iodmgr's view).
ping_median_us() {
	local secs=$1 i
	for ((i = 0; i < secs * 2; i++)); do
		jq -r '.iods // . | .[] | .latency_us // empty' "$state" 2>/dev/null
		sleep 0.5
	done | sort -n | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]; else print 0}'
}

# The legitimate load: fio writes with verification on both transports,
# in a loop until /tmp/attack.done exists; failures counted in /tmp/fio.fail.
legit_load() {
	rm -f /tmp/attack.done /tmp/fio.fail
	: > /tmp/fio.log
	(
		while [ ! -e /tmp/attack.done ]; do
			for m in tcp udp; do
				on client1 fio --name="legit-$m" --filename="/mnt/nfsp-$m/fio-$m" \
					--size=4m --bs=64k --rw=randwrite --verify=crc32c --do_verify=1 \
					--verify_fatal=1 --ioengine=psync --direct=0 --end_fsync=1 \
					--output-format=terse >> /tmp/fio.log 2>&1 || echo "fio $m" >> /tmp/fio.fail
			done
		done
	) &
	echo $! > /tmp/legit.pid
}

stop_load() {
	touch /tmp/attack.done
	wait "$(cat /tmp/legit.pid)" 2>/dev/null
	local i
	for ((i = 0; i < 600; i++)); do
		kill -0 "$(cat /tmp/legit.pid)" 2>/dev/null || return 0
		sleep 0.1
	done
}

# Capture the cluster's traffic on the bridge while the load runs.
capture() {
	tshark -q -i br0 -f 'udp port 7000' -a duration:8 -w /tmp/iod.pcapng 2> /tmp/tshark.err &
	local pid=$!
	legit_load
	wait "$pid"
	stop_load
	tshark -r /tmp/iod.pcapng -Y 'udp.dstport == 7000 && !icmp' \
		-T fields -e ip.dst -e udp.dstport -e udp.payload > /tmp/iod-capture.txt 2> /dev/null
	echo "captured $(wc -l < /tmp/iod-capture.txt) datagrams to the iods"
	[ -s /tmp/iod-capture.txt ] && [ ! -e /tmp/fio.fail ]
}
check "legitimate traffic captured on the bridge (fio verified meanwhile)" capture

# The cluster key id and the file keys seen on the wire (an attacker's
# knowledge: they travel in clear).
# (no process substitution: the VM has no /dev/fd)
/usr/bin/python3 - > /tmp/wire-facts.txt <<'EOF'
import struct
ids, keys = set(), set()
for line in open('/tmp/iod-capture.txt'):
    w = line.split()
    if len(w) < 3:
        continue
    try:
        p = bytes.fromhex(w[2].replace(':', ''))
    except ValueError:
        continue
    if len(p) < 80 or p[:4] != b'NFSP':
        continue
    ids.add(struct.unpack_from('<I', p, 8)[0])
    if p[5] in (1, 3, 5):  # READ, WRITE, TRUNCATE carry a key first
        keys.add(struct.unpack_from('<QQQ', p, 56))
print('%08x' % min(ids) if ids else '00000001',
      ','.join('%x:%x:%x' % k for k in sorted(keys)[:4]))
EOF
read -r key_id files < /tmp/wire-facts.txt
file_args=()
IFS=, read -ra fl <<< "$files"
for f in "${fl[@]}"; do file_args+=(--file "$f"); done
echo "nfsp-attack: cluster key id $key_id, ${#fl[@]} file keys from the capture" | tee -a /tmp/attack.numbers
[ -n "$key_id" ] || { echo "no key id: capture starts with"; head -c 400 /tmp/iod-capture.txt; echo; }

# Bytes the iods transmitted (their veth, bridge side, receives them).
iods_tx() {
	local i t=0
	for ((i = 1; i <= IODS; i++)); do
		t=$((t + $(cat "/sys/class/net/v-iod$i/statistics/rx_bytes")))
	done
	echo "$t"
}

# iod_stat FIELD: the sum of a counter over the iods (SIGUSR1 makes each
# log a 'stats {json}' line).
iod_stat() {
	local i pid t=0 v
	for ((i = 1; i <= IODS; i++)); do
		pid=$(cat "/run/nfsp/iod$i.pid") || return 1
		kill -USR1 "$pid" || return 1
	done
	sleep 0.5
	for ((i = 1; i <= IODS; i++)); do
		v=$(grep -o 'stats {.*}' "/tmp/iod$i.log" | tail -1 | cut -c7- | jq -r ".$1") || return 1
		t=$((t + v))
	done
	echo "$t"
}

amplification() {
	local q0 q1 a0 a1 quiet noisy sent out b0 b1 r0 r1 forged
	sleep 1
	q0=$(iods_tx); sleep 5; q1=$(iods_tx)
	b0=$(iod_stat bad_auth) && r0=$(( $(iod_stat replays) + $(iod_stat refused) )) || return 1
	a0=$(iods_tx)
	out=$( { attack forge "${targets[@]}" --key-id "$key_id" "${file_args[@]}" --rounds 10 &&
		attack replay --capture /tmp/iod-capture.txt --times 2; } ) || return 1
	sleep 1
	a1=$(iods_tx)
	b1=$(iod_stat bad_auth) && r1=$(( $(iod_stat replays) + $(iod_stat refused) )) || return 1
	echo "$out"
	forged=$(jq -s 'map(select(.attack == "forge")) | map(.sent) | add' <<< "$out")
	echo "nfsp-attack: iods bad_auth +$((b1 - b0)) (forged datagrams sent: $forged), replays+refused +$((r1 - r0))" | tee -a /tmp/attack.numbers
	# Every forged datagram was dropped for its tag; the replays as replays.
	[ $((b1 - b0)) -ge "$forged" ] && [ $((r1 - r0)) -gt 0 ] || return 1
	sent=$(jq -s 'map(.sent_bytes) | add' <<< "$out")
	quiet=$((q1 - q0))
	noisy=$((a1 - a0))
	echo "iods sent $quiet bytes in 5 s of quiet, $noisy bytes during the attack; attacker sent $sent bytes"
	echo "nfsp-attack: iods sent $quiet bytes in 5 s of quiet, $noisy bytes during the attack; attacker sent $sent bytes" >> /tmp/attack.numbers
	echo "nfsp-attack: amplification $(awk -v n="$noisy" -v q="$quiet" -v s="$sent" \
		'BEGIN {x = n - q; if (x < 0) x = 0; printf "%.4f", x / s}') (iod bytes caused / attacker bytes)" | tee -a /tmp/attack.numbers
	# Whatever the iods sent beyond their heartbeats must be less than
	# what the attacker sent; nothing may come back to the attacker.
	[ $((noisy - quiet)) -lt "$sent" ] &&
		[ "$(jq -s 'map(.received_bytes) | add' <<< "$out")" = 0 ]
}
check "no amplification: forged and replayed datagrams, nothing answered to the attacker" amplification

check "files written before the attack are unchanged" \
	on client1 sh -c 'cd /mnt/nfsp-tcp && sha256sum -c' < /tmp/keep.sha

under_attack() {
	local base during out
	legit_load
	base=$(ping_median_us 6)
	attack slowloris --target "$metrics" --secs 12 > /tmp/slow.json &
	local slow=$!
	attack list-flood "${targets[@]}" --rate 500 --secs 12 > /tmp/flood.json &
	local flood=$!
	attack replay --capture /tmp/iod-capture.txt --source "$(host_addr meta)" --times 3 \
		> /tmp/forged.json &
	local forged=$!
	attack forge "${targets[@]}" --key-id "$key_id" "${file_args[@]}" --rounds 30 > /tmp/forge2.json &
	local forge=$!
	sleep 1
	during=$(ping_median_us 8)
	# The metrics endpoint answers while slow clients hold connections.
	local t0 t1
	t0=$(now_ms)
	on client1 curl -sf -m 3 "http://$metrics/metrics" > /tmp/scrape.txt || { echo "scrape failed" >&2; return 1; }
	t1=$(now_ms)
	wait "$slow" "$flood" "$forged" "$forge"
	stop_load
	cat /tmp/slow.json /tmp/flood.json /tmp/forged.json /tmp/forge2.json
	echo "nfsp-attack: PING median ${base} us without attack, ${during} us under attack; scrape $((t1 - t0)) ms under slowloris" | tee -a /tmp/attack.numbers
	jq -c . /tmp/slow.json /tmp/flood.json /tmp/forged.json /tmp/forge2.json >> /tmp/attack.numbers
	[ ! -e /tmp/fio.fail ] || { cat /tmp/fio.fail /tmp/fio.log >&2; return 1; }
	[ "$during" -le $((2 * base + 2000)) ] || { echo "PING latency more than doubled" >&2; return 1; }
	[ $((t1 - t0)) -lt 2000 ]
}
check "under attack: fio verified, PING within 2x, metrics answer" under_attack

all_up() {
	jq -r '.iods // . | .[] | "\(.iod) \(.state) misses=\(.misses)"' "$state"
	[ "$(jq -r '.iods // . | [.[] | select(.state != "up")] | length' "$state")" = 0 ]
}
check "no iod was marked down" all_up

check "files written before the attack are still unchanged" \
	on client1 sh -c 'cd /mnt/nfsp-tcp && sha256sum -c' < /tmp/keep.sha

# Key rotation under load: prepare, reload everyone, commit, reload,
# finish, reload, while fio verifies; the module ends signing with the new
# key and accepting no other.
hup_all() {
	local i
	for ((i = 1; i <= IODS; i++)); do kill -HUP "$(cat "/run/nfsp/iod$i.pid")" || return 1; done
	kill -HUP "$(cat /run/nfsp/iodmgr-attack.pid)" || return 1
	sleep 1
}
module_key() { on meta "$bin/iodctl" stats --json | jq -r ".$1"; }
rotation() {
	local old new
	old=$(module_key key_sign_id)
	legit_load
	sleep 2
	on meta "$bin/iodctl" rotate-key prepare && hup_all &&
		on meta "$bin/iodctl" rotate-key commit && hup_all &&
		on meta "$bin/iodctl" rotate-key finish && hup_all || { stop_load; return 1; }
	sleep 2
	stop_load
	new=$(module_key key_sign_id)
	echo "nfsp-attack: key rotated under load: module signs with $new (was $old), accepts $(module_key key_accept_id)" |
		tee -a /tmp/attack.numbers
	[ ! -e /tmp/fio.fail ] || { cat /tmp/fio.fail /tmp/fio.log >&2; return 1; }
	[ "$new" != "$old" ] && [ "$(module_key key_accept_id)" = 0 ] && [ "$new" != 0 ]
}
check "key rotation (prepare, commit, finish) under a verified load" rotation
check "no iod was marked down during the rotation" all_up

kill "$(cat /run/nfsp/iodmgr-attack.pid)" 2>/dev/null
cat /tmp/attack.numbers
summary
