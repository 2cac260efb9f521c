#!/bin/sh
# make bench: speed and memory figures. Prints numbers; never fails on speed.
set -e
cd "$(dirname "$0")/.."
echo "singlora bench — $(nproc) cores, OMP_NUM_THREADS=${OMP_NUM_THREADS:-all}"
# every program here (bench binaries, PyTorch when it uses OpenBLAS) on the OpenBLAS kernels
# singlora runs: it swaps OpenBLAS's SSE3 fallback for Haswell's on CPUs OpenBLAS does not know
if [ -z "$OPENBLAS_CORETYPE" ]; then
    core=$(./singlora --version | sed -n 's/^OpenBLAS core \([A-Za-z0-9]*\) (OPENBLAS_CORETYPE).*/\1/p')
    if [ -n "$core" ]; then export OPENBLAS_CORETYPE="$core"; fi
fi
./singlora --version | sed -n 2p
for b in tools/bench/*.sh; do
    [ -f "$b" ] || continue
    echo "== $(basename "$b" .sh)"
    sh "$b"
done
