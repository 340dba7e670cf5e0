# SPDX-License-Identifier: GPL-2.0
# The test cluster inside the VM: one network namespace per host on a
# bridge, 'meta' serving NFS, 'iodN' storage hosts, 'clientM' NFS clients
# (each client also gets its own mount namespace, so every client mounts the
# exports at the same paths). Sourced by guest-init; expects IODS, CLIENTS,
# LINK_MBIT and NFS_UTILS from the environment file written by qemu-test/run.

SUBNET=10.99.0
MNTNS_DIR=/run/nfsp/mntns

host_addr() {
	case "$1" in
	meta) echo "$SUBNET.1" ;;
	iod*) echo "$SUBNET.$((10 + ${1#iod}))" ;;
	client*) echo "$SUBNET.$((100 + ${1#client}))" ;;
	*) return 1 ;;
	esac
}

cluster_hosts() {
	local i
	echo meta
	for ((i = 1; i <= IODS; i++)); do echo "iod$i"; done
	for ((i = 1; i <= CLIENTS; i++)); do echo "client$i"; done
}

# Cap a device's transmit rate. tbf's queue must hold several UDP datagrams
# of 32 KiB (as IP fragments) or NFS over UDP loses whole replies.
cap_link() {
	local ns=$1 dev=$2 mbit=$3 burst
	burst=$((mbit * 1000000 / 8 / 100))
	((burst < 16384)) && burst=16384
	${ns:+nsenter --net=/run/netns/$ns} tc qdisc replace dev "$dev" root \
		tbf rate "${mbit}mbit" burst "$burst" limit $((burst * 4 + 524288))
}

add_host() {
	local h=$1 addr
	addr=$(host_addr "$h")
	ip netns add "$h"
	ip link add "v-$h" type veth peer name eth0 netns "$h"
	ip link set "v-$h" master br0 up
	nsenter --net="/run/netns/$h" sh -c "
		ip link set lo up &&
		ip addr add $addr/24 dev eth0 &&
		ip link set eth0 up" || return 1
	echo "$addr $h" >> /etc/hosts
	if [ "${LINK_MBIT:-0}" != 0 ]; then
		cap_link "$h" eth0 "$LINK_MBIT" && cap_link "" "v-$h" "$LINK_MBIT" || return 1
	fi
	case "$h" in
	client*)
		touch "$MNTNS_DIR/$h"
		unshare --mount="$MNTNS_DIR/$h" --propagation slave true || return 1
		;;
	esac
}

start_nfs_server() {
	local sbin=$NFS_UTILS/sbin
	mkdir -p /srv/plain /var/lib/nfs/v4recovery /var/lib/nfs/sm /run/rpcbind
	touch /var/lib/nfs/etab /var/lib/nfs/rmtab
	mount -t tmpfs -o mode=0755 plain /srv/plain
	# /srv is the NFSv4 pseudo root (the VM's / is an overlay over 9p,
	# which cannot give file handles): v4 clients mount meta:/plain.
	cat > /etc/exports <<EXPORTS
/srv *(ro,fsid=0,no_subtree_check,insecure)
/srv/plain *(rw,no_root_squash,no_subtree_check,insecure,fsid=1)
EXPORTS
	on meta rpcbind -w || return 1
	on meta mount -t nfsd nfsd /proc/fs/nfsd || return 1
	on meta "$sbin/exportfs" -ra || return 1
	on meta "$sbin/rpc.mountd" -N 2 || return 1
	# Short v4 grace and lease: nothing is ever recovered in a fresh VM.
	on meta "$sbin/rpc.nfsd" --udp -G 10 -L 10 "${NFSD_THREADS:-8}" || return 1
}

# nfs_mount CLIENT OPTIONS EXPORT MOUNTPOINT
nfs_mount() {
	mkdir -p "$4"
	on "$1" mount -t nfs -o "$2" "meta:$3" "$4" ||
		{ echo "cluster: $1 cannot mount $3 at $4 ($2)" >&2; return 1; }
}

mount_exports() {
	nfs_mount "$1" vers=3,proto=tcp,nolock /srv/plain /mnt/plain-tcp &&
	nfs_mount "$1" vers=3,proto=udp,nolock /srv/plain /mnt/plain-udp &&
	nfs_mount "$1" vers=4.2 /plain /mnt/plain-v4
}

cluster_up() {
	local h
	mkdir -p "$MNTNS_DIR"
	mount --bind "$MNTNS_DIR" "$MNTNS_DIR" && mount --make-private "$MNTNS_DIR" || return 1
	# mount(8) looks for helpers in /sbin only: use ours, from nfs-utils.
	ln -sf "$NFS_UTILS/sbin/mount.nfs" /sbin/mount.nfs
	ln -sf "$NFS_UTILS/sbin/mount.nfs" /sbin/mount.nfs4
	ln -sf "$NFS_UTILS/sbin/mount.nfs" /sbin/umount.nfs
	ln -sf "$NFS_UTILS/sbin/mount.nfs" /sbin/umount.nfs4
	: > /etc/hosts
	echo "127.0.0.1 localhost" >> /etc/hosts
	ip link add br0 type bridge || return 1
	ip addr add "$SUBNET.254/24" dev br0
	ip link set br0 up
	for h in $(cluster_hosts); do
		add_host "$h" || { echo "cluster: cannot set up $h" >&2; return 1; }
	done
	start_nfs_server || { echo "cluster: cannot start the NFS server" >&2; return 1; }
	for ((i = 1; i <= CLIENTS; i++)); do
		mount_exports "client$i" || return 1
	done
}

cluster_down() {
	local i
	for ((i = 1; i <= CLIENTS; i++)); do
		on "client$i" umount -a -f -t nfs,nfs4 2>/dev/null
	done
	on meta "$NFS_UTILS/sbin/rpc.nfsd" 0 2>/dev/null
	return 0
}
