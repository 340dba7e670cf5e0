# SPDX-License-Identifier: GPL-2.0
# Tiny assertion helpers for VM scenarios: each 'check' is one test case;
# 'summary' prints the closing 'N passed, N failed' line and sets the exit
# status.
passed=0
failed=0

# check NAME CMD...: run CMD, count it as passed when it exits 0.
check() {
	local name=$1 err
	shift
	err=$(mktemp)
	if "$@" > "$err" 2>&1; then
		passed=$((passed + 1))
		echo "ok   - $name"
	else
		failed=$((failed + 1))
		echo "FAIL - $name"
		sed 's/^/       /' "$err" | tail -20
	fi
	rm -f "$err"
}

summary() {
	echo "${SCENARIO:-scenario}: $passed passed, $failed failed"
	[ "$failed" = 0 ]
}

# A file of SIZE random bytes at PATH (SIZE in bytes).
random_file() {
	head -c "$2" /dev/urandom > "$1"
}

# Milliseconds since boot, for timing inside the VM.
now_ms() {
	local up
	read -r up _ < /proc/uptime
	echo $(( ${up%.*} * 1000 + 10#${up#*.} * 10 ))
}

# retry SECONDS CMD...: run CMD every 0.2 s until it succeeds (status 0)
# or SECONDS have passed (its last status).
retry() {
	local end=$(($(now_ms) + $1 * 1000))
	shift
	until "$@"; do
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.2
	done
}
