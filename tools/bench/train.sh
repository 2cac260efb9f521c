#!/bin/sh
# DreamBooth training at full SD 1.5 size (random weights from `init`, f16 on disk, widened to
# f32 at load), 512×512, batch 1, SingLoRA r 4 on the default cross-attention targets: seconds
# per optimizer step (from log.csv, the first step excluded) and peak RSS, for the plain step,
# with prior preservation (the class folder pre-filled so no class image is generated) and with
# gradient checkpointing. Photos: ../shared/data/dreambooth/dog. Never fails on speed.
set -e
cd "$(dirname "$0")/../.."
SHARED=${SINGLORA_SHARED:-../shared}
CFG=$SHARED/models/sd15
PHOTOS=$SHARED/data/dreambooth/dog
STEPS=${TRAIN_BENCH_STEPS:-4}
if [ ! -f "$CFG/unet/config.json" ] || [ ! -d "$PHOTOS" ]; then echo "train: no $CFG or $PHOTOS, skipped"; exit 0; fi
if [ ! -x /usr/bin/time ]; then echo "train: needs /usr/bin/time (apt-get install time), skipped"; exit 0; fi
TMP=$(mktemp -d /tmp/singlora-bench-train.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
LOAD0=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
./singlora init --config "$CFG" --layout diffusers --dtype f16 --out "$TMP/sd15" > /dev/null
mkdir -p "$TMP/class"
cp "$PHOTOS"/* "$TMP/class/"
N_CLASS=$(ls "$TMP/class" | wc -l)

run() {   # $1 = label, rest = extra train flags
    label=$1; shift
    out="$TMP/out-$(echo "$label" | tr ' ,+' '___')"
    /usr/bin/time -v ./singlora train --model "$TMP/sd15" --instance-data-dir "$PHOTOS" \
        --instance-prompt "a photo of sks dog" --output-dir "$out" --resolution 512 --center-crop \
        --max-train-steps "$STEPS" --checkpointing-steps 100000 --seed 0 "$@" > "$TMP/log.txt" 2> "$TMP/time.txt" ||
        { echo "train: '$label' failed:"; tail -3 "$TMP/time.txt"; return 0; }
    awk -F, -v label="$label" -v steps="$STEPS" '
        FILENAME ~ /log.csv/ { if (FNR == 2) first = $7; last = $7; next }
        /Maximum resident set size/ { rss = $NF / 1048576 }
        END { printf "  %-34s %6.2f s/step  peak RSS %.2f GiB\n", label, (last - first) / (steps - 1), rss }' \
        "$out/log.csv" "$TMP/time.txt"
}

echo "SD 1.5 DreamBooth training step, 512x512, batch 1, SingLoRA r 4 (attn2 q/k/v/out), threads ${OMP_NUM_THREADS:-all}"
run "instance only"
run "instance + prior (batch 1 + 1)" --with-prior-preservation --class-data-dir "$TMP/class" \
    --class-prompt "a photo of dog" --num-class-images "$N_CLASS"
run "instance, gradient checkpointing" --gradient-checkpointing
run "instance + prior, checkpointing" --with-prior-preservation --class-data-dir "$TMP/class" \
    --class-prompt "a photo of dog" --num-class-images "$N_CLASS" --gradient-checkpointing
# bf16: the frozen weights held in bf16 (target: peak RSS <= 3 GiB with checkpointing)
if grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then
    run "instance, checkpointing, bf16" --gradient-checkpointing --precision bf16
fi
LOAD1=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
echo "  load average $LOAD0 before, $LOAD1 after (other processes on the cores skew every figure)"
