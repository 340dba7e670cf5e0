#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The control file and iodctl: the harness's 4 viods are listed up; bad
# input (unknown command, unknown viod, malformed address, over-long line)
# is refused with a message and changes nothing; set-state and timeout work.
SCENARIO=nfsp-control
here=$(dirname "$0")
. "$here/../lib/testlib.sh"
. "$here/../lib/cluster.sh"
top=$(cd "$here/../.." && pwd)
nfsp_scenario_start

iodctl() {
	on meta "$top/target/release/iodctl" "$@"
}
# The configuration without the counters.
config() {
	iodctl list --json | jq -c 'map({viod, iod, state})'
}
initial=$(config)
echo "nfsp-control: configuration: $initial"
unchanged() {
	local now
	now=$(config) || return 1
	[ "$now" = "$initial" ] || { echo "was $initial, now $now" >&2; return 1; }
}

four_up_json() {
	iodctl list --json | jq -e '
		length == 4 and all(.state == "up") and ([.[].viod] | sort) == [0, 1, 2, 3]
		and all(.iod | test("^10\\.99\\.0\\.1[1-4]:7000$"))'
}
check "iodctl list --json: viods 0..3, one iod each, all up" four_up_json
four_up_table() {
	local out
	out=$(iodctl list) || return 1
	echo "$out"
	echo "$out" | head -1 | grep -q '^VIOD *IOD *STATE' &&
	[ "$(echo "$out" | awk 'NR > 1 && $3 == "up"' | wc -l)" = 4 ]
}
check "iodctl list: a table of 4 iods up" four_up_table
stats() {
	iodctl stats && iodctl stats --json | jq -e 'type == "object"'
}
check "iodctl stats (table and JSON)" stats

# raw LINE-FILE: write the file in one write(2) on the control file; print
# the answer; exit status of the write.
raw() {
	on meta sh -c "exec 3<>/proc/fs/nfsd/nfsp || exit 9
		dd if='$1' bs=4096 count=1 status=none >&3; rc=\$?
		cat <&3; exit \$rc"
}
printf 'bogus\n' > /tmp/ctl-bogus
# Refused: the write fails with an errno (the answer, if any, is an error
# line), or it succeeds and the answer is an error line. (nfsd's transaction
# files keep no answer after a failed write.)
raw_refused() {
	local out rc=0
	out=$(raw "$1" 2>&1) || rc=$?
	echo "write exit status $rc, answer: $out"
	if [ "$rc" = 9 ]; then
		return 1
	fi
	if echo "$out" | grep -q '^error [A-Z0-9]'; then
		return 0
	fi
	[ "$rc" != 0 ] && ! echo "$out" | grep -qE '^(ok|viod|stat) '
}
check "raw 'bogus': refused (write error or error answer)" raw_refused /tmp/ctl-bogus
check "  configuration unchanged" unchanged

fails_with() {
	local want=$1 out
	shift
	if out=$("$@" 2>&1); then
		echo "succeeded: $out" >&2
		return 1
	fi
	echo "$out"
	echo "$out" | grep -qE "$want"
}
check "iodctl del-viod 42: non-zero, the kernel's refusal named" \
	fails_with "^iodctl: the kernel refused 'del-viod 42': ENOENT" iodctl del-viod 42
check "  configuration unchanged" unchanged
check "iodctl add-iod 0 10.99.0.300:7000: non-zero, malformed address" \
	fails_with "malformed address '10.99.0.300:7000'" iodctl add-iod 0 10.99.0.300:7000
check "  refused before anything is written (even without a control file)" \
	fails_with "malformed address" iodctl --control /nonexistent add-iod 0 10.99.0.300:7000
check "  configuration unchanged" unchanged
check "iodctl set-state with an unknown state: refused locally" \
	fails_with "unknown state 'sideways'" iodctl --control /nonexistent set-state 0 10.99.0.11:7000 sideways
check "iodctl timeout 0: refused locally" \
	fails_with "1 to 3600000" iodctl --control /nonexistent timeout 0
head -c 1999 /dev/zero | tr '\0' x > /tmp/ctl-long
echo >> /tmp/ctl-long
check "raw 2000-byte line: refused (write error or error answer)" raw_refused /tmp/ctl-long
check "  configuration unchanged" unchanged
check "iodctl add-viod 0 (exists already): refused" \
	fails_with "^iodctl: the kernel refused 'add-viod 0 " iodctl add-viod 0 10.99.0.11:7000
check "  configuration unchanged" unchanged
check "iodctl with no module control file: clear message" \
	fails_with "/nonexistent/nfsp not found: is nfsd running with the nfsp patch" \
	iodctl --control /nonexistent/nfsp list

state_of() {
	iodctl list --json | jq -r "map(select(.iod == \"$1\"))[0].state"
}
set_state_round_trip() {
	local a=10.99.0.14:7000
	iodctl set-state 3 "$a" down &&
	[ "$(state_of "$a")" = down ] &&
	iodctl set-state 3 "$a" resync &&
	[ "$(state_of "$a")" = resync ] &&
	iodctl set-state 3 "$a" up &&
	[ "$(state_of "$a")" = up ]
}
check "iodctl set-state: down, resync, up again" set_state_round_trip
check "iodctl timeout 2000" iodctl timeout 2000
check "  configuration unchanged" unchanged
summary
