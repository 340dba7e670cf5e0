# SPDX-License-Identifier: GPL-2.0
# The test cluster inside the VM: one network namespace per host on a
# bridge, 'meta' serving NFS, 'iodN' storage hosts, 'clientM' NFS clients
# (each client also gets its own mount namespace, so every client mounts the
# exports at the same paths, and its own host name). Sourced by guest-init; expects IODS, CLIENTS,
# LINK_MBIT, NFS_UTILS and KMOD from the environment file written by
# qemu-test/run, and 'top' (the checkout) from guest-init.
#
# nfsp: when there are iods, the module file exists and the kernel has the
# nfsp patch (/proc/fs/nfsd/nfsp appears), cluster_up also loads the module,
# starts one iod per iodN host, configures one viod per iod (viod N-1 =
# iodN) and exports /srv/nfsp with the 'nfsp' option, mounted on every
# client at /mnt/nfsp-udp and /mnt/nfsp-tcp (NFSv3). NFSP_SETUP=0 in the
# environment skips it. Otherwise the cluster is the plain one, as before.

SUBNET=10.99.0
MNTNS_DIR=/run/nfsp/mntns
UTSNS_DIR=/run/nfsp/utsns

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
		# Its own host name too: NFSv4 clients name themselves by it, and
		# two clients with one name would be one client to the server
		# (each EXCHANGE_ID would wipe the other's opens and locks).
		mkdir -p "$UTSNS_DIR"
		touch "$UTSNS_DIR/$h"
		unshare --uts="$UTSNS_DIR/$h" hostname "$h" || return 1
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
	# NFSv4 client tracking, so that clients reclaim their state after an
	# nfsd restart: nfsdcld answers nfsd's upcalls on meta's rpc_pipefs.
	mkdir -p /var/lib/nfs/rpc_pipefs /var/lib/nfs/nfsdcld
	on meta mount -t rpc_pipefs sunrpc /var/lib/nfs/rpc_pipefs || return 1
	on meta "$sbin/nfsdcld" -p /var/lib/nfs/rpc_pipefs -s /var/lib/nfs/nfsdcld || return 1
	# Short v4 grace and lease, for the tests.
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

# The cluster key every party reads (/etc/nfsp/cluster.key, the default of
# every tool): made once per boot, like an admin's 'iodctl genkey'.
nfsp_key() {
	[ -s /etc/nfsp/cluster.key ] && return 0
	mkdir -p /etc/nfsp
	"${top:?}/target/release/iodctl" genkey > /dev/null
}

# The iods' address rules: the meta-server's NFS address is the only
# direct-reply source, the cluster's iods the only hops and chain members.
nfsp_iod_rules() {
	local i
	echo --meta "$(host_addr meta):2049"
	for ((i = 1; i <= IODS; i++)); do echo --peer "$(host_addr "iod$i"):7000"; done
}

# nfsp_iod_start N: start iodN's daemon in the background on /srv/iodN (log
# /tmp/iodN.log, pid /run/nfsp/iodN.pid, more options in NFSP_IOD_OPTS)
# and wait until it listens.
nfsp_iod_start() {
	local n=$1 addr log=/tmp/iod$1.log pid i
	addr=$(host_addr "iod$n")
	mkdir -p "/srv/iod$n" /run/nfsp
	nfsp_key || return 1
	: > "$log"
	# shellcheck disable=SC2046 # one word per flag and value
	on "iod$n" "${top:?}/target/release/iod" --listen "$addr:7000" --ds-listen "$addr:7000" \
		--data "/srv/iod$n" \
		$(nfsp_iod_rules) ${NFSP_IOD_OPTS:-} >> "$log" 2>&1 < /dev/null &
	pid=$!
	echo "$pid" > "/run/nfsp/iod$n.pid"
	for ((i = 0; i < 100; i++)); do
		grep -q 'iod listening on' "$log" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "cluster: iod$n did not start:" >&2
	sed 's/^/    /' "$log" >&2
	return 1
}

# nfsp_iods_restart: every iod stopped and started again (options in
# NFSP_IOD_OPTS).
nfsp_iods_restart() {
	local n
	for ((n = 1; n <= IODS; n++)); do
		nfsp_iod_stop "$n" && nfsp_iod_start "$n" || return 1
	done
}

# nfsp_iod_stop N [SIGNAL]: stop iodN's daemon (SIGTERM by default) and wait.
nfsp_iod_stop() {
	local n=$1 sig=${2:-TERM} pid i
	pid=$(cat "/run/nfsp/iod$n.pid" 2>/dev/null) || return 0
	kill -"$sig" "$pid" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "/run/nfsp/iod$n.pid"
	! kill -0 "$pid" 2>/dev/null
}

# The module on the patched kernel (nfsd is running): load it (if it is not
# yet) and say whether the nfsp control file is there and answers. Otherwise
# the module is unloaded again, so that the cluster is exactly the plain one.
nfsp_available() {
	[ "${NFSP_SETUP:-1}" != 0 ] && [ "${IODS:-0}" -ge 1 ] && [ -f "${KMOD:-}" ] || return 1
	grep -q '^nfsp_knfsd ' /proc/modules || insmod "$KMOD" ||
		{ echo "cluster: insmod $KMOD failed: no nfsp export" >&2; return 1; }
	if [ ! -e /proc/fs/nfsd/nfsp ]; then
		echo "cluster: no /proc/fs/nfsd/nfsp (kernel without the nfsp patch): no nfsp export" >&2
	elif ! on meta "${top:?}/target/release/iodctl" list > /dev/null; then
		# The patched kernel with a module that does not serve yet (ENODEV).
		echo "cluster: the nfsp control file does not answer 'list': no nfsp export" >&2
	else
		return 0
	fi
	rmmod nfsp_knfsd 2>/dev/null
	return 1
}

# nfsp_up: iods, viods and the nfsp export (nfsd is running, module loaded).
nfsp_up() {
	local n
	for ((n = 1; n <= IODS; n++)); do
		nfsp_iod_start "$n" || return 1
	done
	on meta "$top/target/release/iodctl" load-key ||
		{ echo "cluster: iodctl load-key failed" >&2; return 1; }
	for ((n = 1; n <= IODS; n++)); do
		on meta "$top/target/release/iodctl" add-viod $((n - 1)) "$(host_addr "iod$n"):7000" ||
			{ echo "cluster: iodctl add-viod $((n - 1)) failed" >&2; return 1; }
	done
	export_dir /srv/nfsp || return 1
	echo "/srv/nfsp *(rw,no_root_squash,no_subtree_check,insecure,fsid=2,nfsp)" >> /etc/exports
	on meta "$NFS_UTILS/sbin/exportfs" -ra || return 1
	export NFSP_ACTIVE=1
}

# nfsp_pnfs_up: a second nfsp export, with pNFS layouts (nfsp,pnfs), on
# its own tmpfs (or the meta disk), mounted over NFSv4.2 at /mnt/nfsp-pnfs on every client.
nfsp_pnfs_up() {
	local i
	export_dir /srv/nfsp-pnfs || return 1
	grep -q "^/srv/nfsp-pnfs " /etc/exports ||
		echo "/srv/nfsp-pnfs *(rw,no_root_squash,no_subtree_check,insecure,fsid=3,nfsp,pnfs)" >> /etc/exports
	on meta "$NFS_UTILS/sbin/exportfs" -ra || return 1
	# Data servers that stop answering are given up after 3 s (not 60 x 5),
	# so that the failure tests finish fast.
	echo 30 > /sys/module/nfs_layout_flexfiles/parameters/dataserver_timeo || return 1
	echo 1 > /sys/module/nfs_layout_flexfiles/parameters/dataserver_retrans || return 1
	for ((i = 1; i <= CLIENTS; i++)); do
		nfs_mount "client$i" vers=4.2 /nfsp-pnfs /mnt/nfsp-pnfs || return 1
	done
}

# The nfsp export three ways: NFSv3 over UDP (direct reads) and TCP, and
# NFSv4.2 (below the pseudo root /srv).
mount_nfsp_exports() {
	nfs_mount "$1" vers=3,proto=udp,nolock /srv/nfsp /mnt/nfsp-udp &&
	nfs_mount "$1" vers=3,proto=tcp,nolock /srv/nfsp /mnt/nfsp-tcp &&
	nfs_mount "$1" vers=4.2 /nfsp /mnt/nfsp-v4
}

# With qemu-test/run --disks: each virtio disk (named by its serial: meta,
# iodN) is mounted at /srv/disk/NAME; iodN's data directory and the nfsp
# exports are directories of them, bound where the tmpfs would be.
mount_disks() {
	local d name
	[ "${DISKS:-}" = yes ] || return 0
	for d in /sys/block/vd*; do
		name=$(cat "$d/serial") || return 1
		mkdir -p "/srv/disk/$name"
		mount -t ext4 "/dev/${d##*/}" "/srv/disk/$name" ||
			{ echo "cluster: cannot mount disk $name" >&2; return 1; }
		case $name in
		iod*)
			mkdir -p "/srv/disk/$name/data" "/srv/$name"
			mount --bind "/srv/disk/$name/data" "/srv/$name" || return 1
			;;
		esac
	done
}

# The power-cut writers (nfsp-powercut-load, -check): CLIENT:MOUNT, one
# per kind of nfsp mount: NFSv3 over TCP and UDP, NFSv4.2 through the
# meta-server, NFSv4.2 with layouts (the iods directly).
POWERCUT_WRITERS="client1:tcp client1:pnfs client2:v4 client2:udp"

# iods_on_disks: every iodN's data directory is on its own disk (--disks).
iods_on_disks() {
	local n
	for ((n = 1; n <= IODS; n++)); do
		[ "$(stat -c %d "/srv/iod$n")" = "$(stat -c %d "/srv/disk/iod$n")" ] || return 1
	done
}

# unlinkd's journal in the power-cut VMs: on the meta disk, with the
# meta-files, as /var/lib/nfsp would be on a real meta-server.
PC_JOURNAL=/srv/disk/meta/unlinkd.journal

# pc_unlinkd_start: unlinkd on meta with that journal (log /tmp/unlinkd-pc.log).
pc_unlinkd_start() {
	local pid
	on meta "$top/target/release/unlinkd" run --journal "$PC_JOURNAL" >> /tmp/unlinkd-pc.log 2>&1 < /dev/null &
	pid=$!
	sleep 0.3
	kill -0 "$pid" 2> /dev/null || { tail /tmp/unlinkd-pc.log >&2; return 1; }
}

# export_dir DIR: DIR on the meta disk if there is one, else on a tmpfs.
export_dir() {
	mkdir -p "$1"
	mountpoint -q "$1" && return 0
	if [ -d /srv/disk/meta ]; then
		mkdir -p "/srv/disk/meta/${1##*/}"
		mount --bind "/srv/disk/meta/${1##*/}" "$1"
	else
		mount -t tmpfs -o mode=0755 "${1##*/}" "$1"
	fi
}

cluster_up() {
	local h
	mount_disks || return 1
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
	if nfsp_available; then
		nfsp_up || { echo "cluster: cannot set up the nfsp export" >&2; return 1; }
	fi
	for ((i = 1; i <= CLIENTS; i++)); do
		mount_exports "client$i" || return 1
		if [ "${NFSP_ACTIVE:-0}" = 1 ]; then
			mount_nfsp_exports "client$i" || return 1
		fi
	done
}

# The module stays loaded: it refuses rmmod while deletions are pending.
cluster_down() {
	local i
	for ((i = 1; i <= CLIENTS; i++)); do
		on "client$i" umount -f /mnt/nfsp-udp /mnt/nfsp-tcp /mnt/nfsp-v4 2>/dev/null
		on "client$i" umount -a -f -t nfs,nfs4 2>/dev/null
	done
	on meta "$NFS_UTILS/sbin/rpc.nfsd" 0 2>/dev/null
	for ((i = 1; i <= IODS; i++)); do
		nfsp_iod_stop "$i" 2>/dev/null
	done
	return 0
}

# nfsp_ready: the nfsp export is there (for the nfsp scenarios' first
# check): control file, module, and the three mounts of it on client1.
nfsp_ready() {
	local kind
	[ -e /proc/fs/nfsd/nfsp ] ||
		{ echo "no /proc/fs/nfsd/nfsp: kernel without the nfsp patch?" >&2; return 1; }
	grep -q '^nfsp_knfsd ' /proc/modules || { echo "nfsp_knfsd is not loaded" >&2; return 1; }
	for kind in udp tcp; do
		on client1 grep -qE " /mnt/nfsp-$kind nfs .*vers=3,.*proto=$kind," /proc/mounts ||
			{ echo "/mnt/nfsp-$kind is not an NFSv3/$kind mount on client1" >&2; return 1; }
	done
	on client1 grep -qE " /mnt/nfsp-v4 nfs4 .*vers=4.2," /proc/mounts ||
		{ echo "/mnt/nfsp-v4 is not an NFSv4.2 mount on client1" >&2; return 1; }
}

# nfsp_single_viods: viods 0..3 = iod1..iod4, one iod each (whatever
# viods 0..3 were).
nfsp_single_viods() {
	local v
	for v in 0 1 2 3; do on meta "${top:?}/target/release/iodctl" del-viod "$v" 2>/dev/null; done
	for v in 1 2 3 4; do
		on meta "$top/target/release/iodctl" add-viod $((v - 1)) "$(host_addr "iod$v"):7000" || return 1
	done
}

# nfsp_paired_viods: viod 0 = iod1 + iod2, viod 1 = iod3 + iod4 (viods
# 0..3 removed first).
nfsp_paired_viods() {
	local v
	for v in 0 1 2 3; do on meta "${top:?}/target/release/iodctl" del-viod "$v" 2>/dev/null; done
	on meta "$top/target/release/iodctl" add-viod 0 "$(host_addr iod1):7000" "$(host_addr iod2):7000" &&
		on meta "$top/target/release/iodctl" add-viod 1 "$(host_addr iod3):7000" "$(host_addr iod4):7000"
}

# state_of ADDR: the member's state in 'iodctl list' (its first viod).
state_of() {
	on meta "${top:?}/target/release/iodctl" list --json | tr '{' '\n' | grep "\"iod\":\"$1\"" |
		sed 's/.*"state":"\([a-z]*\)".*/\1/' | head -1
}

# wait_state ADDR STATE SECONDS: poll until the member is in STATE (else
# show the table and the end of iodmgr's log, $mlog).
wait_state() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$(state_of "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	echo "$1 is $(state_of "$1"), not $2, after $3 s" >&2
	on meta "$top/target/release/iodctl" list >&2
	tail -20 "${mlog:-/tmp/iodmgr.log}" >&2
	return 1
}

# nfsp_iodmgr_start STATE LOG PIDFILE [OPTIONS...]: start iodmgr on meta
# with its state file STATE and log LOG, and wait for its first snapshot.
nfsp_iodmgr_start() {
	local state=$1 log=$2 pidfile=$3 i
	shift 3
	: > "$log"
	rm -f "$state"
	on meta "${top:?}/target/release/iodmgr" run --state "$state" "$@" \
		>> "$log" 2>&1 < /dev/null &
	echo $! > "$pidfile"
	for ((i = 0; i < 50; i++)); do
		[ -s "$state" ] && return 0
		sleep 0.1
	done
	cat "$log" >&2
	return 1
}

# nfsp_scenario_start: the nfsp scenarios' first check; stop at once when
# there is no nfsp export (nothing else would mean anything).
nfsp_scenario_start() {
	check "the nfsp export is set up (control file, module, v3 and v4.2 mounts)" nfsp_ready
	if [ "$failed" != 0 ]; then
		echo "${SCENARIO:-scenario}: no nfsp export in this VM: all checks skipped, FAILED" >&2
		summary
		exit 1
	fi
}
