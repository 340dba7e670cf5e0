#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Direct replies scale reads past one link (run with --iods 4 --clients 4
# --link-mbit 100): four clients read a 64 MiB file striped over 4 iods at
# once over UDP; the aggregate rate must be well over one link (> 1.5 x the
# cap) while the meta-server transmits far less than the bytes read (< 25 %):
# the iods answer the clients directly. The same over TCP (relayed by the
# meta-server) is printed for comparison (checked for correctness only).
# A direct read that no member of a viod can serve is refused with
# NFS3ERR_JUKEBOX (an iod of another viod sends it, from meta's address)
# instead of being dropped: the client waits and tries again, with no
# timeouts, and reads the data once the member is back.
SCENARIO=nfsp-direct
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start

size=$((64 * 1024 * 1024))
src=/tmp/nfsp-direct-src
random_file "$src" "$size"
check "the 64 MiB file is written over UDP" on client1 cp "$src" /mnt/nfsp-udp/big
check "meta's meta-file has the real size" \
	test "$(stat -c %s /srv/nfsp/big)" = "$size"

meta_tx() {
	# /proc/net/dev in meta's network namespace: eth0's 9th counter.
	on meta cat /proc/net/dev | awk -F'[: ]+' '/eth0:/ {print $11}'
}

drop_caches() {
	local i
	for ((i = 1; i <= CLIENTS; i++)); do
		on "client$i" sh -c 'echo 3 > /proc/sys/vm/drop_caches'
	done
}

# parallel_read KIND [EXPORT]: all clients read the file at once from
# /mnt/EXPORT-KIND (EXPORT: nfsp by default); sets ms, bytes, tx.
parallel_read() {
	local kind=$1 export=${2:-nfsp} i start end tx0 pids=() rc=0
	drop_caches
	tx0=$(meta_tx)
	start=$(now_ms)
	for ((i = 1; i <= CLIENTS; i++)); do
		on "client$i" dd if="/mnt/$export-$kind/big" of=/dev/null bs=1M status=none &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || rc=1
	done
	end=$(now_ms)
	ms=$((end - start))
	((ms > 0)) || ms=1
	tx=$(($(meta_tx) - tx0))
	bytes=$((size * CLIENTS))
	echo "nfsp-direct: $export $kind: $CLIENTS clients read $((bytes / 1048576)) MiB in $ms ms:" \
		"$((bytes / 1000 / ms)) MB/s aggregate (link cap ${LINK_MBIT} Mbit/s =" \
		"$((LINK_MBIT / 8)) MB/s); meta transmitted $tx bytes ($((tx * 100 / bytes)) % of the bytes read)"
	return "$rc"
}

check "udp: $CLIENTS parallel reads complete" parallel_read udp
udp_ms=$ms udp_tx=$tx udp_bytes=$bytes
echo "nfsp-direct: direct over UDP: $((bytes / ms)) kB/s aggregate, meta sent $tx bytes" \
	"($((tx * 100 / bytes)) % of $bytes bytes read)"
# Bytes per ms = kB/s; the bar is 1.5 links (the cap is per host).
min_rate=$((LINK_MBIT * 1000 / 8 * 3 / 2))
check "udp: aggregate $((udp_bytes / udp_ms)) kB/s > 1.5 links ($min_rate kB/s)" \
	test $((udp_bytes / udp_ms)) -gt "$min_rate"
check "udp: meta sent $udp_tx bytes < 25 % of the $udp_bytes bytes read" \
	test $((udp_tx * 4)) -lt "$udp_bytes"

byte_exact() {
	drop_caches
	on "$1" cmp "$src" "/mnt/nfsp-$2/big"
}
check "udp: client4 reads it byte-exact" byte_exact "client$CLIENTS" udp

check "tcp (relay): $CLIENTS parallel reads complete" parallel_read tcp
echo "nfsp-direct: relay over TCP: $((bytes / ms)) kB/s aggregate, meta sent $tx bytes" \
	"($((tx * 100 / bytes)) % of $bytes bytes read)"
relay_rate=$((bytes / ms))
check "tcp: client1 reads it byte-exact" byte_exact client1 tcp

# The same file on the plain export of the same server, side by side: one
# NIC (meta's) carries every byte.
cp "$src" /srv/plain/big
for kind in udp tcp; do
	check "plain knfsd $kind: $CLIENTS parallel reads complete" parallel_read "$kind" plain
	eval "plain_${kind}_rate=\$((bytes / ms))"
done
echo "nfsp-direct: summary (kB/s aggregate, cap $LINK_MBIT Mbit/s per host):" \
	"plain-udp $plain_udp_rate plain-tcp $plain_tcp_rate" \
	"nfsp-udp-direct $((udp_bytes / udp_ms)) nfsp-tcp-relay $relay_rate"
check "udp: direct reads beat plain knfsd over UDP by 1.5x" \
	test $((udp_bytes / udp_ms * 2)) -gt $((plain_udp_rate * 3))

# viod 0 (iod1, its only member) out of service: reads of its blocks are
# refused.
refused() { on meta "$top/target/release/iodctl" stats --json | sed -n 's/.*"direct_reads_refused":\([0-9]*\).*/\1/p'; }
retrans() { on client1 awk '$1 == "rpc" {print $3}' /proc/net/rpc/nfs; }
viod0=$(host_addr iod1):7000
drop_caches
r0=$(refused) t0=$(retrans)
check "viod 0's only member is set down" on meta "$top/target/release/iodctl" set-state 0 "$viod0" down
rm -f /tmp/direct-jukebox-ok
# 8 blocks of 64 KiB at 2 MiB, uncached: two of them on viod 0, whichever
# viod the file starts on
(on client1 sh -c "dd if=/mnt/nfsp-udp/big bs=64k skip=32 count=8 iflag=direct status=none |
	cmp -i 0:$((2 << 20)) -n $((8 << 16)) - '$src'" && touch /tmp/direct-jukebox-ok) &
reader=$!
sleep 4
r1=$(refused) t1=$(retrans)
check "a read of a block on viod 0 is refused with JUKEBOX (direct_reads_refused ${r0:-none} -> ${r1:-none})" \
	test "${r1:-0}" -gt "${r0:-0}"
check "... and the client counts no timeout meanwhile (retransmissions $t0 -> $t1)" \
	test -n "$t0" -a "$t1" = "$t0"
check "... which the member's return ends" on meta "$top/target/release/iodctl" set-state 0 "$viod0" up
t=$(now_ms)
wait "$reader"
check "... with the 512 KiB read byte-exact, $(($(now_ms) - t)) ms later (a JUKEBOX wait is 5 s)" \
	test -f /tmp/direct-jukebox-ok
summary
