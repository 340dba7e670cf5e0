#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The plain export on the meta-server: files written by client1 and read back
# byte-exact by client2 over NFSv3/TCP, NFSv3/UDP and NFSv4.2.
SCENARIO=plain-export
. "$(dirname "$0")/../lib/testlib.sh"

mounted_as() {
	# The mount really uses the transport and version we claim.
	on "$1" grep -E " $2 nfs4? .*$3" /proc/mounts
}
check "client1 mounts TCP as NFSv3/TCP" mounted_as client1 /mnt/plain-tcp "vers=3,.*proto=tcp,"
check "client1 mounts UDP as NFSv3/UDP" mounted_as client1 /mnt/plain-udp "vers=3,.*proto=udp,"
check "client1 mounts v4 as NFSv4.2" mounted_as client1 /mnt/plain-v4 "vers=4.2,"
check "client2 mounts UDP as NFSv3/UDP" mounted_as client2 /mnt/plain-udp "vers=3,.*proto=udp,"

write_then_read() {
	local kind=$1 size=$2 src=/tmp/src-$size name
	name=f-$kind-$size
	[ -f "$src" ] || random_file "$src" "$size"
	on client1 cp "$src" "/mnt/plain-$kind/$name" &&
	on client2 cmp "$src" "/mnt/plain-$kind/$name" &&
	cmp "$src" "/srv/plain/$name" &&
	[ "$(on client2 stat -c %s "/mnt/plain-$kind/$name")" = "$size" ]
}

for kind in tcp udp v4; do
	for size in 0 1 1048576 67108864; do
		check "$kind: $size bytes written by client1, read by client2" \
			write_then_read "$kind" "$size"
	done
done

overwrite_in_place() {
	# A partial overwrite in the middle seen by the other client.
	local f=/mnt/plain-$1/f-$1-1048576
	printf 'nfsp-was-here' | on client1 dd of="$f" bs=1 seek=500000 conv=notrunc status=none &&
	[ "$(on client2 dd if="$f" bs=1 skip=500000 count=13 status=none)" = nfsp-was-here ]
}
for kind in tcp udp v4; do
	check "$kind: partial overwrite visible to the other client" overwrite_in_place "$kind"
done
summary
