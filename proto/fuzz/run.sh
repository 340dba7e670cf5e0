#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make fuzz`: builds every cargo-fuzz target of nfsp_proto and runs each
# for FUZZ_SECONDS (default 60) from its committed seeds (seeds/<target>,
# only read) plus the scratch corpus (corpus/<target>, which collects new
# inputs). Fails if any target crashes; the input is then in
# artifacts/<target>/. FUZZ_TARGETS="wire auth" runs only those.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
secs=${FUZZ_SECONDS:-60}
# cargo-fuzz passes nightly-only flags (-Z...); this allows them on stable.
export RUSTC_BOOTSTRAP=1

if ! "$cargo" fuzz --version >/dev/null 2>&1; then
    "$cargo" install cargo-fuzz --locked
fi
# No ASan: nfsp_proto forbids unsafe code, so the sanitizer would only
# halve the rate. Overflow checks and debug assertions stay on.
flags=(--sanitizer none)
targets=${FUZZ_TARGETS:-$("$cargo" fuzz list)}
"$cargo" fuzz build "${flags[@]}"

logs=fuzz/target/fuzz-logs
mkdir -p "$logs"
summary=()
failed=()
for t in $targets; do
    mkdir -p "fuzz/corpus/$t"
    if [ ! -d "fuzz/seeds/$t" ]; then
        echo "no seeds for $t in proto/fuzz/seeds/$t" >&2
        failed+=("$t")
        continue
    fi
    echo "=== fuzzing $t for ${secs}s"
    # New inputs go to the first directory only: the seeds stay as committed.
    set +e
    "$cargo" fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 2>&1 | tee "$logs/$t.log" |
        grep --line-buffered -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|SUMMARY|thread .* panicked|artifact_prefix=)'
    rc=${PIPESTATUS[0]}
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
    summary+=("$(printf '%-10s %12s execs  %s' "$t" "${execs:-?}" "$([ "$rc" = 0 ] && echo ok || echo "FAILED (rc $rc, log $logs/$t.log)")")")
    [ "$rc" = 0 ] || failed+=("$t")
done

echo "=== fuzz summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes or errors in: ${failed[*]} (inputs in proto/fuzz/artifacts/)" >&2
    exit 1
fi
