#!/bin/sh
# make bench: speed and memory figures. Prints numbers; never fails on speed.
set -e
cd "$(dirname "$0")/.."
echo "singlora bench — $(nproc) cores, OMP_NUM_THREADS=${OMP_NUM_THREADS:-all}"
for b in tools/bench/*.sh; do
    [ -f "$b" ] || continue
    echo "== $(basename "$b" .sh)"
    sh "$b"
done
