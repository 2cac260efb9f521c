#!/bin/sh
# Data-parallel training (./singlora-mpi under mpirun, one OpenMP thread per rank): the same
# global batch of 2 as P = 1 × batch 2 and as P = 2 × batch 1 — optimizer steps per second
# (from log.csv, the first step excluded), the scaling efficiency (speed-up / 2) and the bytes
# all-reduced per optimizer step (the gradient block as f32 + the losses as f64). On the tiny
# model (configs/tiny, 64×64: communication and start-up dominate) and, when ../shared has its
# config, SD 1.5 at MPI_BENCH_RES (default 256) with SingLoRA r 4 on the default targets.
# Without ./singlora-mpi (make MPI=1) or mpirun it says so. Never fails on speed.
set -e
cd "$(dirname "$0")/../.."
SHARED=${SINGLORA_SHARED:-../shared}
CFG=$SHARED/models/sd15
PHOTOS=$SHARED/data/dreambooth/dog
RES=${MPI_BENCH_RES:-256}
if [ ! -x ./singlora-mpi ] || ! command -v mpirun > /dev/null 2>&1; then
    echo "mpi: no ./singlora-mpi (make MPI=1) or no mpirun (make deps), skipped"; exit 0
fi
MPIRUN="mpirun --oversubscribe"
[ "$(id -u)" = 0 ] && MPIRUN="$MPIRUN --allow-run-as-root"
TMP=$(mktemp -d /tmp/singlora-bench-mpi.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
LOAD0=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")

run() {   # $1 = label, $2 = model, $3 = photos, $4 = resolution, $5 = steps, $6 = ranks, $7 = batch per rank
    out="$TMP/out-$6-$(basename "$2")"
    OMP_NUM_THREADS=1 $MPIRUN -np "$6" ./singlora-mpi train --model "$2" --instance-data-dir "$3" \
        --instance-prompt "a photo of sks dog" --output-dir "$out" --resolution "$4" --center-crop \
        --max-train-steps "$5" --checkpointing-steps 100000 --seed 0 --threads 1 --train-batch-size "$7" \
        > "$TMP/log.txt" 2>&1 || { echo "mpi: $1 P=$6 failed:"; tail -3 "$TMP/log.txt"; return 1; }
    bytes=$(sed -n 's/.*rank.*, \([0-9]*\) bytes all-reduced per optimizer step.*/\1/p' "$TMP/log.txt" | tail -1)
    awk -F, -v steps="$5" -v P="$6" -v B="$7" -v bytes="$bytes" '
        FNR == 2 { first = $7 } { last = $7 }
        END { sps = (steps - 1) / (last - first); printf "%s %.4f\n", bytes, sps > "/dev/stderr"
              printf "    P = %d x batch %d: %7.3f steps/s (%.2f s/step), %s bytes all-reduced per step\n", P, B, sps, 1 / sps, bytes }' \
        "$out/log.csv" 2> "$TMP/sps"
    cut -d' ' -f2 "$TMP/sps" >> "$TMP/speeds"
}

bench() {   # $1 = label, $2 = model, $3 = photos, $4 = resolution, $5 = steps
    echo "  $1, global batch 2, one thread per rank"
    : > "$TMP/speeds"
    run "$1" "$2" "$3" "$4" "$5" 1 2 || return 0
    run "$1" "$2" "$3" "$4" "$5" 2 1 || return 0
    awk 'NR == 1 { s1 = $1 } NR == 2 { s2 = $1 }
         END { printf "    speed-up %.2fx on 2 ranks, scaling efficiency %.0f %%\n", s2 / s1, 50 * s2 / s1 }' "$TMP/speeds"
}

./singlora init --config configs/tiny --layout diffusers --out "$TMP/tiny" > /dev/null
mkdir -p "$TMP/photos"
./singlora world subject --spec zebra-star --n 4 --out "$TMP/photos" > /dev/null && rm -f "$TMP/photos"/*.txt
bench "tiny model 64x64" "$TMP/tiny" "$TMP/photos" 64 ${MPI_BENCH_TINY_STEPS:-21}
if [ -f "$CFG/unet/config.json" ] && [ -d "$PHOTOS" ]; then
    ./singlora init --config "$CFG" --layout diffusers --dtype f16 --out "$TMP/sd15" > /dev/null
    bench "SD 1.5 ${RES}x${RES}, SingLoRA r 4 (attn2)" "$TMP/sd15" "$PHOTOS" "$RES" ${MPI_BENCH_STEPS:-4}
else
    echo "  SD 1.5: no $CFG/unet/config.json or $PHOTOS, skipped"
fi
LOAD1=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
echo "  load average $LOAD0 before, $LOAD1 after ($(nproc) cores; other processes on the cores skew every figure)"
