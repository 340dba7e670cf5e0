#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Two nfsd instances, each with its own viod table: a second meta-server,
# meta2, in a network namespace (and mount namespace) of its own, runs its
# own nfsd, rpcbind and mountd and exports /srv2/nfsp with the nfsp option;
# its table has one viod, iod3, while meta's keeps its four. Files written
# through meta2 land on iod3 alone and read back byte-exact; meta's table
# and export are untouched; when meta2's namespace goes, so does its table
# (the module holds no reference on the namespace), without a warning.
SCENARIO=nfsp-netns
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start
sbin=$NFS_UTILS/sbin
iodctl=$top/target/release/iodctl
addr2=$SUBNET.2

# meta2: its own network namespace on the bridge, and a mount namespace in
# which /run, /var/lib/nfs, /etc/exports and /proc/fs/nfsd are its own.
meta2_up() {
	mkdir -p /srv2 && mount -t tmpfs -o mode=0755 srv2 /srv2 &&
		mkdir -p /srv2/nfsp && mount -t tmpfs -o mode=0755 nfsp2 /srv2/nfsp || return 1
	cat > /tmp/meta2-exports <<EXPORTS
/srv2 *(ro,fsid=0,no_subtree_check,insecure)
/srv2/nfsp *(rw,no_root_squash,no_subtree_check,insecure,fsid=3,nfsp)
EXPORTS
	ip netns add meta2 &&
		ip link add v-meta2 type veth peer name eth0 netns meta2 &&
		ip link set v-meta2 master br0 up || return 1
	nsenter --net=/run/netns/meta2 sh -c "
		ip link set lo up && ip addr add $addr2/24 dev eth0 && ip link set eth0 up" || return 1
	echo "$addr2 meta2" >> /etc/hosts
	touch "$MNTNS_DIR/meta2"
	unshare --mount="$MNTNS_DIR/meta2" --propagation slave sh -c "
		mount -t tmpfs tmpfs /run && mkdir -p /run/rpcbind &&
		mount -t tmpfs tmpfs /var/lib/nfs && mkdir -p /var/lib/nfs/sm &&
		touch /var/lib/nfs/etab /var/lib/nfs/rmtab &&
		mount --bind /tmp/meta2-exports /etc/exports" || return 1
	on meta2 rpcbind -w &&
		on meta2 mount -t nfsd nfsd /proc/fs/nfsd &&
		on meta2 "$sbin/exportfs" -ra &&
		on meta2 "$sbin/rpc.mountd" -N 2 &&
		on meta2 "$sbin/rpc.nfsd" -G 10 -L 10 4 || return 1
	on meta2 "$iodctl" load-key && on meta2 "$iodctl" add-viod 0 "$(host_addr iod3):7000"
}
check "a second nfsd instance (meta2) with an nfsp export and a one-viod table" meta2_up

tables_apart() {
	local mine theirs
	mine=$(on meta2 "$iodctl" list) || return 1
	theirs=$(on meta "$iodctl" list) || return 1
	echo "meta2: $mine"
	echo "meta: $theirs"
	[ "$(echo "$mine" | grep -c ':7000 ')" = 1 ] && echo "$mine" | grep -q "$(host_addr iod3):7000 " &&
		[ "$(echo "$theirs" | grep -c ':7000 ')" = 4 ]
}
check "meta2 lists its one iod, meta still its four" tables_apart

iod_bytes() {
	local n
	for ((n = 1; n <= IODS; n++)); do du -sb "/srv/iod$n" | cut -f1; done
}
random_file /tmp/netns-data $((4 * 1024 * 1024))
before=($(iod_bytes))
through_meta2() {
	mkdir -p /mnt/meta2
	on client1 mount -t nfs -o vers=4.2 meta2:/nfsp /mnt/meta2 || return 1
	on client1 cp /tmp/netns-data /mnt/meta2/data || return 1
	on client1 umount /mnt/meta2 || return 1
	on client2 mount -t nfs -o vers=3,proto=tcp,nolock meta2:/srv2/nfsp /mnt/meta2 || return 1
	on client2 cmp /tmp/netns-data /mnt/meta2/data
}
check "a file written through meta2 (v4.2) reads back byte-exact (v3, another client)" through_meta2
after=($(iod_bytes))
only_iod3() {
	local n grew rc=0
	for ((n = 1; n <= IODS; n++)); do
		grew=$((after[n - 1] - before[n - 1]))
		echo "iod$n: +$grew bytes"
		if [ "$n" = 3 ]; then
			((grew >= 4 * 1024 * 1024)) || rc=1
		else
			((grew < 65536)) || rc=1
		fi
	done
	return "$rc"
}
check "its data is on iod3 alone (meta2's table), not on meta's four iods" only_iod3
check "meta's export still reads and writes over its own table" sh -c \
	"on client1 cp /tmp/netns-data /mnt/nfsp-v4/netns-meta && on client2 cmp /tmp/netns-data /mnt/nfsp-tcp/netns-meta"

meta2_down() {
	on client2 umount /mnt/meta2
	on meta2 "$sbin/rpc.nfsd" 0
	# Everything of meta2 dies with its namespaces: the module's table too.
	ip netns pids meta2 | xargs -r kill
	sleep 0.5
	umount "$MNTNS_DIR/meta2" && rm -f "$MNTNS_DIR/meta2" && ip netns del meta2 || return 1
	local i
	for ((i = 0; i < 100; i++)); do
		dmesg | grep -q 'nfsp: a network namespace exited: its viod table is dropped' && break
		sleep 0.1
	done
	dmesg | grep 'nfsp: a network namespace exited' || return 1
	on meta "$iodctl" list | grep -c ':7000 ' | grep -qx 4
}
check "meta2's namespace goes (and its table with it); meta keeps its table" meta2_down
summary
