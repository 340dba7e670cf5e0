#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The harness's per-host link cap (--link-mbit) really limits throughput: a
# 20 MiB read from meta over a capped link takes at least 80% of the time the
# cap allows; without a cap the same read is much faster. Prints the
# measured rates (plain knfsd, NFSv3 over TCP and UDP).
SCENARIO=link-cap
. "$(dirname "$0")/../lib/testlib.sh"

size=$((20 * 1024 * 1024))
random_file /srv/plain/cap-test "$size"

read_ms() {
	local start end
	start=$(now_ms)
	on client1 dd if="$1" of=/dev/null bs=1M status=none || return 1
	end=$(now_ms)
	echo $((end - start))
}

for kind in tcp udp; do
	# A fresh name each time: nothing in the client's page cache.
	cp /srv/plain/cap-test "/srv/plain/cap-$kind"
	ms=$(read_ms "/mnt/plain-$kind/cap-$kind")
	echo "link-cap: cap ${LINK_MBIT} Mbit/s, NFSv3/$kind read 20 MiB in $ms ms" \
		"($((size * 1000 / ms / 1024 / 1024)) MiB/s)"
	if [ "$LINK_MBIT" != 0 ]; then
		# 20 MiB at the cap takes size*8/cap µs; allow 20% for bursts.
		min_ms=$((size * 8 / LINK_MBIT / 1000 * 8 / 10))
		check "$kind: 20 MiB read over a $LINK_MBIT Mbit/s link takes >= $min_ms ms" \
			test "$ms" -ge "$min_ms"
	else
		# Uncapped must beat a 100 Mbit/s link by far (it would take
		# 1678 ms); the VM's CPU is the limit here (~30-50 MiB/s).
		check "$kind: uncapped 20 MiB read takes < 1100 ms" test "$ms" -lt 1100
	fi
done
summary
