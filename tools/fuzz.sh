#!/bin/sh
# Runs libFuzzer targets (make fuzz): tools/fuzz.sh BUILD_DIR SECONDS TARGET...
# Each runs SECONDS from BUILD_DIR/seeds/TARGET plus BUILD_DIR/corpus/TARGET (kept between runs,
# where new inputs go), one thread, leak detection on; prints executions per target. A crash,
# leak, sanitizer report or timeout stops with the target's log tail; its input is left as
# BUILD_DIR/crash-TARGET-* (replay: BUILD_DIR/TARGET FILE).
set -e
dir=$1 seconds=$2
shift 2
export OMP_NUM_THREADS=1
# the targets write each input to a file: in memory where there is a tmpfs
[ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm
for t in "$@"; do
    mkdir -p "$dir/corpus/$t" "$dir/seeds/$t"
    log="$dir/$t.log"
    if ! "$dir/$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 \
            -artifact_prefix="$dir/crash-$t-" "$dir/corpus/$t" "$dir/seeds/$t" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz: $t failed (log: $log)" >&2
        exit 1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    echo "fuzz: $t ok: $execs executions in ${seconds} s ($rate/s), corpus $(ls "$dir/corpus/$t" | wc -l) inputs"
done
