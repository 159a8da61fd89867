#!/usr/bin/env bash
# Run every part of the test suite, whatever the earlier parts gave, then print one summary line per
# part (status, pytest's passed/failed/skipped counts, seconds) and fail if any part failed.
# One failing part never hides the others.
#
#   scripts/test-parts.sh PART...      (each PART a make target, e.g. test-serial docs)
#
# Environment: MAKE (default make); TEST_LOG_DIR keeps each part's log (default: a temporary
# directory, removed afterwards unless a part failed).
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: test-parts.sh PART..." >&2; exit 2; }

read -r -a make_cmd <<< "${MAKE:-make}"  # a command with its options, e.g. "make -C DIR"
keep_logs=${TEST_LOG_DIR:+yes}
log_dir=${TEST_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/mpiq-test.XXXXXX")}
mkdir -p "$log_dir"

# Sum the counts of every pytest summary line ("3 failed, 120 passed, 4 skipped in 12.3s") of a log.
count() {
    sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '^(=+ )?[0-9]+ [a-z]+.* in [0-9.]+s' \
        | grep -oE "[0-9]+ ($2)\b" | awk '{ n += $1 } END { print n + 0 }'
}

rows=()
failed=0
for part in "$@"; do
    printf '\n######## %s\n' "$part"
    log="$log_dir/$part.log"
    start=$(date +%s)
    "${make_cmd[@]}" --no-print-directory "$part" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    seconds=$(( $(date +%s) - start ))
    verdict=passed
    if [ "$status" -ne 0 ]; then verdict="FAILED($status)"; failed=$((failed + 1)); fi
    rows+=("$(printf '%-16s %-11s %7s %7s %7s %7ss' "$part" "$verdict" \
        "$(count "$log" passed)" "$(count "$log" "failed|errors?")" "$(count "$log" skipped)" "$seconds")")
done

printf '\n######## summary\n%-16s %-11s %7s %7s %7s %8s\n' part status passed failed skipped time
printf '%s\n' "${rows[@]}"
if [ "$failed" -gt 0 ]; then
    echo "$failed of $# parts FAILED; logs in $log_dir"
    exit 1
fi
echo "all $# parts passed"
[ -n "$keep_logs" ] || rm -rf "$log_dir"
