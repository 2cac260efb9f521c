#!/bin/sh
# UNet forward at full SD 1.5 size (random weights from `init`): batch 2 (classifier-free
# guidance), 64×64 latents, 77×768 context. Prints seconds per forward, GFLOP/s (conv, linear
# and attention GEMM FLOPs counted from the config), peak RSS, and plain sgemm's rate on the
# same GEMM shapes measured in the same run; with the own GEMM kernel the default, the same
# forward on OpenBLAS too. Never fails on speed.
set -e
cd "$(dirname "$0")/../.."
SHARED=${SINGLORA_SHARED:-../shared}
CFG=$SHARED/models/sd15
N=${UNET_BENCH_BATCH:-2}
S=${UNET_BENCH_SIZE:-64}
REPEAT=${UNET_BENCH_REPEAT:-2}
if [ ! -f "$CFG/unet/config.json" ]; then echo "unet: no $CFG/unet/config.json, skipped"; exit 0; fi
TMP=$(mktemp -d /tmp/singlora-bench-unet.XXXXXX)
LOAD0=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
trap 'rm -rf "$TMP"' EXIT

./singlora init --config "$CFG" --component unet --out "$TMP/unet.safetensors" > /dev/null
build/bench_unet_work --config "$CFG" --batch "$N" --size "$S" "$S" --context 77 --inputs "$TMP/in.safetensors" \
    > "$TMP/work.txt"
if [ -x /usr/bin/time ]; then
    /usr/bin/time -v ./singlora forward unet --model "$TMP/unet.safetensors" --in "$TMP/in.safetensors" \
        --out "$TMP/out.safetensors" --repeat "$REPEAT" 2> "$TMP/fwd.txt"
else
    ./singlora forward unet --model "$TMP/unet.safetensors" --in "$TMP/in.safetensors" \
        --out "$TMP/out.safetensors" --repeat "$REPEAT" 2> "$TMP/fwd.txt"
fi

# The same forward on OpenBLAS (SINGLORA_GEMM=openblas) when the default kernel is the own one,
# in the same run so the ratio is comparable (UNET_BENCH_OPENBLAS=0 skips it).
: > "$TMP/fwd_openblas.txt"
if [ "${UNET_BENCH_OPENBLAS:-1}" != 0 ] && [ "$(sed -n 's/^gemm_kernel //p' "$TMP/work.txt")" != openblas ]; then
    SINGLORA_GEMM=openblas ./singlora forward unet --model "$TMP/unet.safetensors" --in "$TMP/in.safetensors" \
        --out "$TMP/out_openblas.safetensors" --repeat "$REPEAT" 2> "$TMP/fwd_openblas.txt"
fi

LOAD1=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
awk -v n="$N" -v load0="$LOAD0" -v load1="$LOAD1" -v s="$S" -v threads="${OMP_NUM_THREADS:-all}" '
    FILENAME ~ /work.txt/ { v[$1] = $2; next }
    FILENAME ~ /fwd_openblas.txt/ { if ($0 ~ /^forward [0-9]+:/ && (ob == "" || $3 < ob)) ob = $3; next }
    /^forward [0-9]+:/ { t = $3; sum += t; cnt++; if (best == "" || t < best) best = t; next }
    /^load:/ { load = $2; next }
    /Maximum resident set size/ { rss = $NF / 1048576; next }
    END {
        printf "SD 1.5 UNet forward, batch %d, %dx%d latents, 77x768 context, threads %s\n", n, s, s, threads
        printf "  GEMM work          %.1f GFLOP per forward (attention %.1f)\n", v["flops"] / 1e9, v["attention_flops"] / 1e9
        printf "  seconds/forward    %.2f best, %.2f mean of %d (load %.1f s; PyTorch: the precision bench)\n", best, sum / cnt, cnt, load
        printf "  achieved           %.1f GFLOP/s (gemm kernel %s, OpenBLAS core %s)\n", v["flops"] / best / 1e9, v["gemm_kernel"], v["openblas_core"]
        if (ob != "") printf "  on OpenBLAS        %.2f s best (SINGLORA_GEMM=openblas, same run): own kernel %.2fx faster\n", ob, ob / best
        printf "  sgemm, same shapes %.1f GFLOP/s (%.1f s for the same GEMMs; conv+linear shapes %.1f,\n", v["sgemm_gflops"], v["sgemm_seconds"], v["sgemm_convlin_gflops"]
        printf "                     attention shapes %.1f, 2048^3 %.1f GFLOP/s)\n", v["sgemm_attention_gflops"], v["sgemm_square_gflops"]
        printf "  ratio              %.0f %% of sgemm on the same shapes, %.0f %% of its conv+linear rate (target >= 60 %%)\n", 100 * v["flops"] / best / 1e9 / v["sgemm_gflops"], 100 * v["flops"] / best / 1e9 / v["sgemm_convlin_gflops"]
        if (rss > 0) printf "  peak RSS           %.2f GiB\n", rss
        printf "  load average       %s before, %s after (other processes on the cores skew every figure)\n", load0, load1
    }' "$TMP/work.txt" "$TMP/fwd.txt" "$TMP/fwd_openblas.txt"
