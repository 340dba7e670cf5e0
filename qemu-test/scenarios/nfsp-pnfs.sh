#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# pNFS flexfiles on an nfsp export ('nfsp,pnfs'): NFSv4.2 clients get a
# whole-file layout striped over the iods (stripe unit = block size, one
# data server per viod) and read and write the iods directly over
# NFSv3/TCP. Checked: the bytes are exact; the client's mountstats show
# LAYOUTGET and next to no READ or WRITE to the meta-server; the
# meta-server's interface carries only a few per cent of the bytes, each
# iod about 1/N of them (per-interface counters).
SCENARIO=nfsp-pnfs
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start
bin=$top/target/release
mnt=/mnt/nfsp-pnfs

check "an nfsp export with pnfs is mounted over NFSv4.2 on every client" nfsp_pnfs_up

# eth0 bytes (received + sent) of a host.
# (printf: awk would print a sum past 2^31 in exponent notation)
if_bytes() { on "$1" awk '$1 == "eth0:" { printf "%.0f\n", $2 + $10 }' /proc/net/dev; }
all_bytes() {
	local h
	for h in meta $(seq -f iod%g 1 "$IODS"); do printf '%s ' "$(if_bytes "$h")"; done
}
# op_count_on CLIENT OP: the calls of OP on CLIENT's pNFS mount (mountstats).
op_count_on() {
	on "$1" awk -v m="$mnt" -v op="$2:" '
		$1 == "device" { here = ($5 == m) }
		here && $1 == op { print $2; exit }' /proc/self/mountstats
}
op_count() { op_count_on client1 "$1"; }

size=$((32 * 1024 * 1024))
random_file /tmp/pnfs-src "$size"
before=($(all_bytes))
w0=$(op_count WRITE)
check "a 32 MiB file is written through layouts" \
	on client1 dd if=/tmp/pnfs-src of="$mnt/big" bs=1M conv=fsync status=none
mid=($(all_bytes))
check "the file has its size on the meta-server" test "$(stat -c %s /srv/nfsp-pnfs/big)" = "$size"
# Read it back without the client's cache (a fresh mount).
on client1 umount "$mnt"
nfs_mount client1 vers=4.2 /nfsp-pnfs "$mnt"
r0=$(op_count READ)
check "it reads back byte-exact through layouts" on client1 cmp /tmp/pnfs-src "$mnt/big"
after=($(all_bytes))
check "the client got layouts (LAYOUTGET in mountstats)" test "$(op_count LAYOUTGET)" -gt 0
check "the client asked for the data servers (GETDEVICEINFO)" test "$(op_count GETDEVICEINFO)" -gt 0
for op in READ WRITE COMMIT LAYOUTGET GETDEVICEINFO LAYOUTCOMMIT LAYOUTRETURN; do
	printf '%s ' "$op $(op_count "$op")"
done
echo "(calls to the meta-server)"
# The data servers' READs count in the mount's statistics too, each at
# most one stripe unit (64 KiB): the interface counters below tell where
# the bytes went.
check "the reads were cut at the stripe unit (64 KiB)" \
	test "$(($(op_count READ) - r0))" -ge $((size / 65536))
share() { # share HOST_INDEX FROM TO: bytes through that host's eth0, per cent of the file
	local i=$1
	eval "local a=\${$2[$i]} b=\${$3[$i]}"
	echo $(((b - a) * 100 / size))
}
meta_w=$(share 0 before mid) meta_r=$(share 0 mid after)
echo "meta-server's interface: ${meta_w} % of the bytes written, ${meta_r} % of the bytes read"
for ((i = 1; i <= IODS; i++)); do
	echo "iod$i's interface: $(share "$i" before mid) % written, $(share "$i" mid after) % read"
done
check "the meta-server carried < 5 % of the bytes written" test "$meta_w" -lt 5
check "the meta-server carried < 5 % of the bytes read" test "$meta_r" -lt 5
even() { # every iod carried about 1/N of the bytes
	local i lo=$((100 / IODS / 2)) hi=$((100 * 2 / IODS))
	for ((i = 1; i <= IODS; i++)); do
		for span in "before mid" "mid after"; do
			# shellcheck disable=SC2086 # two words: the two snapshots
			p=$(share "$i" $span)
			[ "$p" -ge "$lo" ] && [ "$p" -le "$hi" ] ||
				{ echo "iod$i carried $p % ($span), not about $((100 / IODS)) %" >&2; return 1; }
		done
	done
}
check "each iod carried about 1/$IODS of the bytes, both ways" even
layouts() { on meta "$bin/iodctl" stats --json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["layouts"])'; }
check "the module counted the layouts" test "$(layouts)" -gt 0

# The module (NFSv3 relay) and the data servers map blocks the same way.
v3_reads() {
	nfs_mount client2 vers=3,proto=tcp,nolock /srv/nfsp-pnfs /mnt/nfsp-pnfs-v3 &&
		on client2 cmp /tmp/pnfs-src /mnt/nfsp-pnfs-v3/big
}
check "the file reads back byte-exact over NFSv3 (through the module)" v3_reads
random_file /tmp/pnfs-v3 $((3 * 1024 * 1024 + 4321))
check "a file written over NFSv3 reads back byte-exact through layouts" sh -c \
	"on client2 cp /tmp/pnfs-v3 /mnt/nfsp-pnfs-v3/from-v3 && on client1 cmp /tmp/pnfs-v3 $mnt/from-v3"

# A second NFSv4.2 client: new content after the first one closes, and
# two readers of one file at once (their read layouts must not conflict).
check "client2 reads what client1 wrote" on client2 cmp /tmp/pnfs-src "$mnt/big"
random_file /tmp/pnfs-new $((5 * 1024 * 1024))
check "client1 rewrites the start of the file" \
	on client1 dd if=/tmp/pnfs-new of="$mnt/big" bs=1M conv=fsync,notrunc status=none
{ cat /tmp/pnfs-new; tail -c +$((5 * 1024 * 1024 + 1)) /tmp/pnfs-src; } > /tmp/pnfs-want
check "client2 sees the new content" on client2 cmp /tmp/pnfs-want "$mnt/big"
two_readers() {
	local a b
	timeout 60 on client1 cmp /tmp/pnfs-want "$mnt/big" & a=$!
	timeout 60 on client2 cmp /tmp/pnfs-want "$mnt/big" & b=$!
	wait "$a" && wait "$b"
}
# Nothing cached: both read through layouts at the same time.
sync
echo 3 > /proc/sys/vm/drop_caches
g1=$(op_count_on client1 LAYOUTGET) g2=$(op_count_on client2 LAYOUTGET)
check "two clients read the file at once, byte-exact, within 60 s" two_readers
g1=$(($(op_count_on client1 LAYOUTGET) - g1)) g2=$(($(op_count_on client2 LAYOUTGET) - g2))
echo "LAYOUTGETs while both read: client1 $g1, client2 $g2"
# A read layout recalled by the other reader's LAYOUTGET (RECALLCONFLICT)
# would be asked for again and again.
check "both asked for a layout, and their read layouts did not take each other's place" \
	test "$g1" -ge 1 -a "$g1" -le 2 -a "$g2" -ge 1 -a "$g2" -le 2

# O_DIRECT, and a sparse file past 4 GiB.
check "O_DIRECT writes and reads through layouts" sh -c \
	"on client1 dd if=/tmp/pnfs-v3 of=$mnt/direct bs=1M oflag=direct status=none &&
	 on client2 dd if=$mnt/direct of=/tmp/pnfs-direct bs=1M iflag=direct status=none &&
	 cmp /tmp/pnfs-v3 /tmp/pnfs-direct"
far=$((4 * 1024 * 1024 * 1024 + 12345))
head -c 70000 /tmp/pnfs-v3 > /tmp/pnfs-70k
head -c 1048576 /dev/zero > /tmp/pnfs-zeros
check "a write past 4 GiB lands there" sh -c \
	"on client1 dd if=/tmp/pnfs-70k of=$mnt/sparse bs=70000 seek=$far oflag=seek_bytes status=none &&
	 test \$(on client2 stat -c %s $mnt/sparse) = $((far + 70000))"
sparse_reads() {
	on client2 dd if="$mnt/sparse" of=/tmp/pnfs-far bs=70000 skip="$far" iflag=skip_bytes count=1 status=none &&
		cmp /tmp/pnfs-70k /tmp/pnfs-far &&
		on client2 dd if="$mnt/sparse" of=/tmp/pnfs-hole bs=1M skip=4000 count=1 status=none &&
		cmp /tmp/pnfs-zeros /tmp/pnfs-hole &&
		on client1 dd if="$mnt/sparse" of=/tmp/pnfs-hole bs=1M skip=4001 count=1 iflag=direct status=none &&
		cmp /tmp/pnfs-zeros /tmp/pnfs-hole
}
check "it reads back there, zeros in the hole before (O_DIRECT too)" sparse_reads

# A file of width 1 (the viods 1.. taken out while it is made): one data
# server, which every flexfiles client handles, and RPCs that span blocks
# (a client cuts them at the stripe unit only when it stripes).
width_one() {
	local v rc=0
	for ((v = 1; v < IODS; v++)); do on meta "$bin/iodctl" del-viod "$v" > /dev/null || return 1; done
	timeout 60 on client1 dd if=/tmp/pnfs-v3 of="$mnt/one" bs=1M conv=fsync status=none || rc=1
	for ((v = 1; v < IODS; v++)); do
		on meta "$bin/iodctl" add-viod "$v" "$(host_addr "iod$((v + 1))"):7000" > /dev/null || rc=1
	done
	[ "$rc" = 0 ] && timeout 60 on client2 dd if="$mnt/one" of=/tmp/pnfs-one bs=1M iflag=direct status=none &&
		cmp /tmp/pnfs-v3 /tmp/pnfs-one
}
check "a file of width 1 is written and read (O_DIRECT) through its one data server" width_one

# Write, cut, write: a block written through a layout and then cut off
# by the same client (which drops its pages) reads as zeros once the file
# grows past it again, although the meta-server never heard of the block
# (no LAYOUTCOMMIT covered it) and the cut, to a size above the
# meta-file's, looked like a growth to it.
write_cut_write() {
	on client1 /usr/bin/python3 -c '
import os, sys
b = 64 * 1024
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.pwrite(fd, b"\x01" * b, 0)
os.fsync(fd)
os.pwrite(fd, b"\x02" * b, 9 * b)
os.ftruncate(fd, 7 * b)
os.pwrite(fd, b"\x03" * b, 32 * b)
os.fsync(fd)
os.close(fd)' "$mnt/cut-between" || return 1
	on client2 sh -c 'echo 3 > /proc/sys/vm/drop_caches'
	on client2 /usr/bin/python3 -c '
import os, sys
b = 64 * 1024
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
cut = os.pread(fd, b, 9 * b)
last = os.pread(fd, b, 32 * b)
print(f"size {size}, block 9 holds {sorted(set(cut))}, block 32 {sorted(set(last))}")
sys.exit(0 if size == 33 * b and cut == bytes(b) and last == b"\x03" * b else 1)' "$mnt/cut-between"
}
check "write, cut below it, write past it: the cut-off block reads as zeros" write_cut_write

# Fencing. client1 writes a file and keeps it open (a read-write layout
# out) while client2 cuts it: client1's layout is recalled (LAYOUTRETURN)
# and the file's layout epoch raised, so that a WRITE with a data-server
# filehandle seen on the storage network before the cut (a client's late
# write, or anyone replaying it) gets NFS3ERR_STALE and lands nowhere.
fsize=$((4 * 1024 * 1024))
# write_and_hold NAME SECONDS: client1 writes /tmp/pnfs-NAME (fsize bytes)
# to NAME on the mount through a read-write layout and keeps it open for
# SECONDS (pid in $holder), while iod1 records the data-server traffic it
# receives; then fh and at: the filehandle and offset of the first of
# client1's WRITEs to iod1 at MIN_OFFSET or past (default 0).
write_and_hold() {
	local name=$1 pcap=/tmp/pnfs-$1.pcap capture ds_write
	random_file "/tmp/pnfs-$name" "$fsize"
	on iod1 dumpcap -q -i eth0 -f "tcp dst port 7000" -P -w "$pcap" 2> "$pcap.log" &
	capture=$!
	for _ in $(seq 50); do grep -q "Capturing on" "$pcap.log" && break; sleep 0.2; done
	on client1 sh -c "exec 3> $mnt/$name; dd if=/tmp/pnfs-$name bs=1M conv=fsync status=none >&3; exec sleep $2" &
	holder=$!
	written() { test "$(stat -c %s "/srv/nfsp-pnfs/$name" 2> /dev/null)" = "$fsize"; }
	retry 60 written
	kill "$capture"
	wait "$capture" 2> /dev/null
	ds_write=$(tshark -r "$pcap" -o rpc.find_fragment_start:TRUE -d tcp.port==7000,rpc \
		-Y "nfs.procedure_v3 == 7 && nfs.offset3 >= ${3:-0}" -T fields -e nfs.fhandle -e nfs.offset3 \
		2> /dev/null | head -n 1)
	fh=${ds_write%%$'\t'*} at=${ds_write##*$'\t'}
	test -n "$fh" -a -n "$at"
}
drop_holder() {
	kill -9 "$holder" 2> /dev/null
	wait "$holder" 2> /dev/null
}
# A WRITE client1 sent iod1 past the first MiB.
check "client1 writes a file through layouts and keeps it open; a WRITE to iod1 is captured" \
	write_and_hold fence 30 2097152
echo "captured on iod1: a WRITE at $at with a ${#fh}-digit filehandle"
replay() { # replay BYTE: that WRITE of 4 KiB of BYTE from client2; prints the NFSv3 status
	on client2 /usr/bin/python3 "$top/qemu-test/lib/ds-write.py" "$(host_addr iod1)" 7000 "$fh" "$at" 4096 "$1"
}
check "the captured filehandle writes on iod1 before the cut" test "$(replay 0x55)" = 0
r0=$(op_count_on client1 LAYOUTRETURN)
check "client2 cuts the file to 1 MiB" on client2 truncate -s 1M "$mnt/fence"
returned() { test "$(op_count_on client1 LAYOUTRETURN)" -gt "$r0"; }
check "client1's layout was recalled: it gave it back (LAYOUTRETURN)" retry 20 returned
check "the same WRITE after the cut: NFS3ERR_STALE" test "$(replay 0xaa)" = 70
drop_holder
zeros_after_cut() {
	on client2 truncate -s "$fsize" "$mnt/fence" &&
		on client2 cmp -n 1048576 /tmp/pnfs-fence "$mnt/fence" &&
		test "$(on client2 tail -c +1048577 "$mnt/fence" | tr -d '\0' | wc -c)" = 0
}
check "nothing landed: past the cut the file reads as zeros" zeros_after_cut
# Through layouts, not a fallback to the meta-server: it carries < 5 %.
new_epoch_writes() {
	local a b
	a=$(if_bytes meta)
	on client1 dd if=/tmp/pnfs-fence of="$mnt/fence" bs=1M conv=fsync status=none || return 1
	b=$(if_bytes meta)
	echo "the meta-server's interface carried $(((b - a) * 100 / fsize)) % of the bytes"
	[ $(((b - a) * 100 / fsize)) -lt 5 ] && on client2 cmp /tmp/pnfs-fence "$mnt/fence"
}
check "new layouts (of the new epoch) write the file, the meta-server carrying < 5 %; it reads back" \
	new_epoch_writes

# mmap: fio writes random blocks through a mapping on client1; client2
# verifies every block (crc32c headers) through a mapping of its own.
fio_mmap() {
	local job=(--name=mmap --filename="$mnt/mmap" --ioengine=mmap --rw=randwrite --bs=64k --size=8m
		--verify=crc32c --end_fsync=1 --output-format=terse)
	on client1 fio "${job[@]}" --do_verify=0 > /dev/null &&
		on client2 fio "${job[@]}" --verify_only > /tmp/pnfs-fio.log
}
check "fio writes through mmap on client1; client2 verifies every block (mmap, crc32c)" fio_mmap

# An iod killed (SIGKILL) in the middle of a read, then of a write, and
# started again 2 s later: the clients fall back (to the meta-server, or
# to a new layout) and finish with no error and no wrong byte. The links
# are capped meanwhile so that the I/O lasts long enough to be cut.
slow_links() { # slow_links MBIT|off: client2's and the iods' links
	local h
	for h in client2 $(seq -f iod%g 1 "$IODS"); do
		if [ "$1" = off ]; then
			on "$h" tc qdisc del dev eth0 root 2> /dev/null
		else
			cap_link "$h" eth0 "$1" || return 1
		fi
	done
}
# midway_kill CMD...: run CMD; 1 s in (CMD must still be running), SIGKILL
# iod2, start it again 2 s later; CMD's status.
midway_kill() {
	local io
	"$@" &
	io=$!
	sleep 1
	if ! kill -0 "$io" 2> /dev/null; then
		echo "the I/O was over before the kill: nothing tested" >&2
		wait "$io"
		return 1
	fi
	nfsp_iod_stop 2 KILL || return 1
	sleep 2
	nfsp_iod_start 2 || return 1
	wait "$io"
}
size=$((24 * 1024 * 1024))
random_file /tmp/pnfs-kill "$size"
check "a 24 MiB file to read" on client1 dd if=/tmp/pnfs-kill of="$mnt/kill" bs=1M conv=fsync status=none
check "links capped at 10 Mbit/s" slow_links 10
sync
echo 3 > /proc/sys/vm/drop_caches
t0=$(now_ms)
check "iod2 killed in the middle of a read: it completes, byte-exact" \
	midway_kill timeout 300 on client2 cmp /tmp/pnfs-kill "$mnt/kill"
echo "read with the kill in $(($(now_ms) - t0)) ms"
random_file /tmp/pnfs-kill-w "$size"
t0=$(now_ms)
check "iod2 killed in the middle of a write: it completes" \
	midway_kill timeout 300 on client2 dd if=/tmp/pnfs-kill-w of="$mnt/kill-w" bs=1M conv=fsync status=none
echo "write with the kill in $(($(now_ms) - t0)) ms"
slow_links off
sync
echo 3 > /proc/sys/vm/drop_caches
# The client returned layouts on errors, before the LAYOUTCOMMIT that would
# have told the size (Linux then ignores the NFS4ERR_BADLAYOUT it gets):
# the meta-server takes the size from the iods when a layout comes back.
check "... and the file written reads back byte-exact on the other client" \
	on client1 cmp /tmp/pnfs-kill-w "$mnt/kill-w"
ds_errors_of() { # ds_errors_of IOD: the data-server errors clients reported (iodctl list)
	on meta "$bin/iodctl" list --json | /usr/bin/python3 -c '
import json, sys
print(sum(m["ds_errors"] for m in json.load(sys.stdin) if m["iod"] == sys.argv[1]))' "$(host_addr "$1"):7000"
}
echo "data-server errors clients reported: $(for h in $(seq -f iod%g 1 "$IODS"); do printf '%s %s ' "$h" "$(ds_errors_of "$h")"; done)"
check "the clients reported iod2's errors as they returned their layouts (iodctl list: ds_errors)" \
	test "$(ds_errors_of iod2)" -gt 0

# A rule that gives layouts of width-1 files only: such a file is read
# through its data server, a striped one through the meta-server.
share_of_read() { # share_of_read FILE WANT: per cent of its size through the meta-server's interface
	local a b
	a=$(if_bytes meta)
	on client2 cmp "$2" "/mnt/nfsp-pnfs-single/$1" || return 1
	b=$(if_bytes meta)
	echo $(((b - a) * 100 / $(stat -c %s "$2")))
}
single_rule() {
	local one big
	on meta "$bin/iodctl" layouts single || return 1
	nfs_mount client2 vers=4.2 /nfsp-pnfs /mnt/nfsp-pnfs-single || return 1
	sync
	echo 3 > /proc/sys/vm/drop_caches
	one=$(share_of_read one /tmp/pnfs-v3) && big=$(share_of_read big /tmp/pnfs-want) || return 1
	echo "with 'single': ${one} % of the width-1 file and ${big} % of the striped one through the meta-server"
	on client2 umount /mnt/nfsp-pnfs-single
	[ "$one" -lt 5 ] && [ "$big" -ge 90 ]
}
check "iodctl layouts single: the width-1 file through its data server, the striped one through the meta-server" single_rule

# An admin rule refuses layouts: the clients still read and write, through
# the meta-server.
off_rule() {
	on meta "$bin/iodctl" layouts off || return 1
	# A new mount: no layout kept from before.
	nfs_mount client2 vers=4.2 /nfsp-pnfs /mnt/nfsp-pnfs-off
}
check "iodctl layouts off" off_rule
random_file /tmp/pnfs-off $((8 * 1024 * 1024))
b0=($(all_bytes))
check "without layouts a client writes and reads byte-exact" sh -c \
	"on client2 cp /tmp/pnfs-off /mnt/nfsp-pnfs-off/off && on client2 umount /mnt/nfsp-pnfs-off &&
	 on client2 mount -t nfs -o vers=4.2 meta:/nfsp-pnfs /mnt/nfsp-pnfs-off &&
	 on client2 cmp /tmp/pnfs-off /mnt/nfsp-pnfs-off/off"
b1=($(all_bytes))
size=$((8 * 1024 * 1024))
echo "without layouts the meta-server's interface carried $(share 0 b0 b1) % of the bytes"
check "... and its bytes went through the meta-server (>= 180 %: written, then read)" \
	test "$(share 0 b0 b1)" -ge 180
check "iodctl layouts auto" on meta "$bin/iodctl" layouts auto

# A client that does not give back a recalled layout is fenced: client1
# holds a read-write layout and goes silent to the meta-server (blackhole
# routes both ways) while client2 asks for a read-write layout of the same
# file. nfsd's recall goes unanswered and client1's lease runs out; nfsd
# expires it and has the module fence the file (its layout epoch goes up
# on every iod) and take its size from the iods: client1's filehandles then
# get NFS3ERR_STALE.
fences() { on meta "$bin/iodctl" stats --json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["fences"])'; }
check "client1 writes a file through a read-write layout and keeps it open; a WRITE to iod1 is captured" \
	write_and_hold fc 120
echo "captured on iod1: a WRITE at $at with a ${#fh}-digit filehandle"
f0=$(fences)
cut_client1() { # cut_client1 add|del: client1 and the meta-server stop hearing each other (or hear again)
	on meta ip route "$1" blackhole "$(host_addr client1)/32" &&
		on client1 ip route "$1" blackhole "$(host_addr meta)/32"
}
check "client1 and the meta-server stop hearing each other (the iods still hear client1)" cut_client1 add
random_file /tmp/pnfs-fc2 $((1024 * 1024))
client2_writes() {
	timeout 120 on client2 dd if=/tmp/pnfs-fc2 of="$mnt/fc" bs=1M conv=notrunc,fsync status=none
}
t0=$(now_ms)
check "client2 writes the file meanwhile" client2_writes
# client2 goes on writing (asking for a read-write layout) until client1,
# whose lease ran out, is expired with its layout: nfsd then fences it.
fenced() { client2_writes && test "$(fences)" -gt "$f0"; }
check "nfsd fenced client1 as it expired it (the module's fences counter)" retry 90 fenced
echo "client1 fenced $(($(now_ms) - t0)) ms after client2 started writing"
check "client1's filehandle seen before: NFS3ERR_STALE" test "$(replay 0x77)" = 70
cut_client1 del
drop_holder
{ cat /tmp/pnfs-fc2; tail -c +$((1024 * 1024 + 1)) /tmp/pnfs-fc; } > /tmp/pnfs-fc-want
# Not from client2's cache: a write on an iod bumps no change attribute.
sync
echo 3 > /proc/sys/vm/drop_caches
check "the file holds client1's data with client2's first MiB" on client2 cmp /tmp/pnfs-fc-want "$mnt/fc"
summary
