#!/bin/sh
# `singlora sample` at full SD 1.5 size (random f16 weights from `init`, with the CLIP tokenizer
# from ../shared copied in): 512×512, classifier-free guidance (the UNet runs on a batch of 2
# each step), Euler (one UNet call per step). Prints seconds per sampling step (from sample's
# progress line, which times the denoising loop alone), the whole run's wall time (load, text
# encoder, steps, VAE decode, PNG) and the peak RSS, in fp32 and (where the CPU has AVX512_BF16)
# bf16. Never fails on speed.
set -e
cd "$(dirname "$0")/../.."
SHARED=${SINGLORA_SHARED:-../shared}
CFG=$SHARED/models/sd15
TOK=$SHARED/models/clip-tokenizer
S=${SAMPLE_BENCH_SIZE:-512}
STEPS=${SAMPLE_BENCH_STEPS:-2}
if [ ! -f "$CFG/unet/config.json" ] || [ ! -f "$TOK/vocab.json" ]; then
    echo "sample: no $CFG/unet/config.json or $TOK/vocab.json, skipped"; exit 0
fi
TMP=$(mktemp -d /tmp/singlora-bench-sample.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

t0=$(date +%s)
./singlora init --config "$CFG" --dtype f16 --layout diffusers --tokenizer "$TOK" --out "$TMP/sd15" > /dev/null
t_init=$(( $(date +%s) - t0 ))
# each precision this CPU has (bf16: the frozen weights held in bf16 as they load)
PRECS="fp32"
grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null && PRECS="fp32 bf16"
for prec in $PRECS; do
    set -- ./singlora sample --model "$TMP/sd15" --prompt "a photo of an astronaut riding a horse on the moon" \
        --sampler euler --steps "$STEPS" --cfg 7.5 --seed 1 --width "$S" --height "$S" --precision "$prec" --out "$TMP/out-$prec"
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -v "$@" > /dev/null 2> "$TMP/sample.txt"
    else
        t0=$(date +%s)
        "$@" > /dev/null 2> "$TMP/sample.txt"
        echo "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:$(( $(date +%s) - t0 ))" >> "$TMP/sample.txt"
    fi
    awk -v s="$S" -v steps="$STEPS" -v t_init="$t_init" -v threads="${OMP_NUM_THREADS:-all}" -v prec="$prec" '
        /^image 1\/1 [0-9]+\/[0-9]+ / { per = $4; unit = $5 }     # the last progress line wins
        /Elapsed \(wall clock\)/ {
            n = split($NF, p, ":"); wall = 0
            for (i = 1; i <= n; i++) wall = wall * 60 + p[i]
        }
        /Maximum resident set size/ { rss = $NF / 1048576 }
        END {
            if (unit == "step/s,") per = 1 / per
            printf "SD 1.5 sample, %dx%d, euler, %d steps, CFG 7.5 (UNet batch 2), f16 file, --precision %s, threads %s\n", s, s, steps, prec, threads
            printf "  seconds/step       %.3g (one UNet call on the batch of 2 + the sampler update)\n", per
            printf "  whole run          %.1f s (load, text encoder, %d steps, VAE decode, PNG; %.1f s besides the steps)\n",
                   wall, steps, wall - steps * per
            if (rss > 0) printf "  peak RSS           %.2f GiB (target for bf16: <= 2.3, stable-diffusion.cpp f16)\n", rss
        }' "$TMP/sample.txt"
done
echo "  (init of the random f16 model: $t_init s, not counted)"
