#!/bin/sh
# --precision fp32 vs bf16 vs PyTorch, measured in the same run on the full SD 1.5-shaped UNet
# (random weights from `init`, 64×64 latents, 77×768 context): the forward at batch 2
# (classifier-free guidance) and a forward+backward at batch 1 with the cross-attention
# projections' weights trainable (`singlora backward unet --params '*.attn2.to_*'`). PyTorch is
# diffusers 0.25.1's UNet2DConditionModel on Debian's python3-torch through
# ../shared/bench/torch_unet.sh (same config, same threads); its column is skipped when it is not
# installed, bf16's on a CPU without AVX512_BF16. Best of UNET_BENCH_REPEAT (2) each; GFLOP/s
# from the GEMM work counted from the config; peak RSS from /usr/bin/time. Never fails on speed.
set -e
cd "$(dirname "$0")/../.."
SHARED=${SINGLORA_SHARED:-../shared}
CFG=${UNET_BENCH_MODEL:-$SHARED/models/sd15}   # a folder with unet/config.json
S=${UNET_BENCH_SIZE:-64}
REPEAT=${UNET_BENCH_REPEAT:-2}
if [ ! -f "$CFG/unet/config.json" ]; then echo "precision: no $CFG/unet/config.json, skipped"; exit 0; fi
TMP=$(mktemp -d /tmp/singlora-bench-precision.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
LOAD0=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
XATTN='*.attn2.to_q.weight,*.attn2.to_k.weight,*.attn2.to_v.weight,*.attn2.to_out.0.weight'

./singlora init --config "$CFG" --component unet --out "$TMP/unet.safetensors" > /dev/null
build/bench_unet_work --config "$CFG" --batch 2 --size "$S" "$S" --context 77 --inputs "$TMP/in2.safetensors" \
    --no-sgemm > "$TMP/work2.txt"
build/bench_unet_work --config "$CFG" --batch 1 --size "$S" "$S" --context 77 --inputs "$TMP/in1.safetensors" \
    --no-sgemm > "$TMP/work1.txt"

# time_cmd FILE CMD...: CMD's stderr (its per-repeat seconds) and, with /usr/bin/time, its peak RSS
time_cmd() {
    f=$1; shift
    if [ -x /usr/bin/time ]; then /usr/bin/time -v "$@" 2> "$f" || echo "failed" >> "$f"
    else "$@" 2> "$f" || echo "failed" >> "$f"; fi
}
precisions=fp32
if grep -q avx512_bf16 /proc/cpuinfo 2>/dev/null; then precisions="fp32 bf16"; fi
for p in $precisions; do
    time_cmd "$TMP/fwd_$p.txt" ./singlora forward unet --model "$TMP/unet.safetensors" --in "$TMP/in2.safetensors" \
        --out "$TMP/out.safetensors" --repeat "$REPEAT" --precision "$p"
    time_cmd "$TMP/bwd_$p.txt" ./singlora backward unet --model "$TMP/unet.safetensors" --in "$TMP/in1.safetensors" \
        --out "$TMP/grads.safetensors" --params "$XATTN" --repeat "$REPEAT" --precision "$p"
done
: > "$TMP/torch.txt"
for mode in fwd fwdbwd; do
    r=$(sh "$SHARED/bench/torch_unet.sh" "$CFG/unet/config.json" "$mode" "$S" "$REPEAT" 2>/dev/null) || r=""
    [ -n "$r" ] && echo "$mode $r" | tr -d '{}",:' | awk '{print $1, $3, $5}' >> "$TMP/torch.txt"
done
LOAD1=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")

awk -v s="$S" -v threads="${OMP_NUM_THREADS:-all}" -v load0="$LOAD0" -v load1="$LOAD1" -v precs="$precisions" -v cfg="$CFG" '
    FILENAME ~ /work2.txt/ { w2[$1] = $2; next }
    FILENAME ~ /work1.txt/ { w1[$1] = $2; next }
    FILENAME ~ /torch.txt/ { ts[$1] = $2; trss[$1] = $3; next }
    {
        split(FILENAME, parts, "/"); key = parts[length(parts)]; sub(/\.txt$/, "", key)
        if ($0 ~ /^forward [0-9]+:/ || $0 ~ /^forward\+backward [0-9]+:/) {
            t = $3; if (!(key in best) || t < best[key]) best[key] = t
        }
        if ($0 ~ /Maximum resident set size/) rss[key] = $NF / 1048576
        if ($0 ~ /^failed/) bad[key] = 1
    }
    function row(label, key, flops, tkey) {
        if (bad[key] || !(key in best)) { printf "  %-34s failed or not run\n", label; return }
        printf "  %-34s %7.2f s  %6.1f GFLOP/s  peak RSS %5.2f GiB", label, best[key], flops / best[key] / 1e9, rss[key]
        if (tkey in ts) printf "  %5.2fx PyTorch", ts[tkey] / best[key]
        printf "\n"
    }
    function torch_row(label, tkey, flops) {
        if (tkey in ts) printf "  %-34s %7.2f s  %6.1f GFLOP/s  peak RSS %5.2f GiB\n", label, ts[tkey], flops / ts[tkey] / 1e9, trss[tkey]
        else printf "  %-34s not measured (python3-torch not installed)\n", label
    }
    END {
        printf "UNet of %s, %dx%d latents, 77-token context, threads %s; --precision fp32 / bf16 vs PyTorch, same run\n", cfg, s, s, threads
        printf " forward, batch 2 (%.1f GFLOP of GEMM work)\n", w2["flops"] / 1e9
        torch_row("PyTorch 1.13 + diffusers 0.25.1", "fwd", w2["flops"])
        n = split(precs, P, " ")
        for (i = 1; i <= n; i++) row("singlora --precision " P[i], "fwd_" P[i], w2["flops"], "fwd")
        printf " forward+backward, batch 1, attn2 weights trainable (%.1f GFLOP forward)\n", w1["flops"] / 1e9
        torch_row("PyTorch 1.13 + diffusers 0.25.1", "fwdbwd", 3 * w1["flops"])
        for (i = 1; i <= n; i++) row("singlora --precision " P[i], "bwd_" P[i], 3 * w1["flops"], "fwdbwd")
        printf "  (forward+backward GFLOP/s counts 3x the forward work; targets: >= 3x PyTorch in fp32, >= 6x in bf16)\n"
        printf "  load average %s before, %s after (other processes on the cores skew every figure)\n", load0, load1
    }' "$TMP/work2.txt" "$TMP/work1.txt" "$TMP/torch.txt" "$TMP"/fwd_*.txt "$TMP"/bwd_*.txt
