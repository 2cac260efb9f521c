#!/bin/sh
# UNet forward+backward at full SD 1.5 size (random weights from `init`): batch 1, 64×64
# latents, 77×768 context, loss = MSE against a random target (`singlora backward unet`, which
# also returns dL/dx and dL/dcontext). Seconds for the training forward and the backward, and
# peak RSS, with only the cross-attention projections' weights requiring gradients, without
# and with gradient checkpointing; then the extra cost of a SingLoRA r=4 adapter on the
# default targets when only the adapter trains. Best of 2 interleaved runs per setting (in one
# process: build/bench_unet_backward); peak RSS includes the 3.4 GB of f32 weights. Never fails
# on speed.
set -e
cd "$(dirname "$0")/../.."
SHARED=${SINGLORA_SHARED:-../shared}
CFG=$SHARED/models/sd15
S=${UNET_BENCH_SIZE:-64}
if [ ! -f "$CFG/unet/config.json" ]; then echo "unet_backward: no $CFG/unet/config.json, skipped"; exit 0; fi
TMP=$(mktemp -d /tmp/singlora-bench-unet-bw.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

./singlora init --config "$CFG" --component unet --out "$TMP/unet.safetensors" > /dev/null
build/bench_unet_work --config "$CFG" --batch 1 --size "$S" "$S" --context 77 --inputs "$TMP/in.safetensors" \
    --no-sgemm > "$TMP/work.txt"
# ramp off (u = 1): at u = 0 a SingLoRA adapter is skipped altogether
./singlora adapter init --model "$TMP/unet.safetensors" --config "$CFG" --method singlora --rank 4 --ramp-steps 0 \
    --out "$TMP/adapter.safetensors" 2>&1 | sed -n 's/.* \([0-9]*\) trainable parameters.*/adapter \1/p' > "$TMP/adapter.txt"
XATTN='*.attn2.to_q.weight,*.attn2.to_k.weight,*.attn2.to_v.weight,*.attn2.to_out.0.weight'

# the four settings interleaved in one process, best of 2 each (the machine's load varies);
# passive OpenMP waiting: a thread whose partner was descheduled by another job sleeps instead of
# spinning, so CPU seconds count work
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} build/bench_unet_backward --model "$TMP/unet.safetensors" --in "$TMP/in.safetensors" --params "$XATTN" \
    --adapter "$TMP/adapter.safetensors" --repeat "${UNET_BENCH_REPEAT:-2}" > "$TMP/results.txt" 2> "$TMP/runs.txt"

awk -v s="$S" -v threads="${OMP_NUM_THREADS:-all}" '
    FILENAME ~ /work.txt/ { v[$1] = $2; next }
    FILENAME ~ /adapter.txt/ { params = $2; next }
    $1 == "adapter_gflop" { agf = $2; next }
    $1 == "adapter_isolated" { isf = $2; isb = $3; next }
    { fw[$1] = $2; bw[$1] = $3; rss[$1] = $4; cfw[$1] = $5; cbw[$1] = $6 }
    function line(label, k) {
        printf "  %-30s forward %6.2f s  backward %6.2f s (%.2fx)  total %6.2f s  peak RSS %.2f GiB | CPU s: %.1f + %.1f (%.2fx)\n",
            label, fw[k], bw[k], bw[k] / fw[k], fw[k] + bw[k], rss[k], cfw[k], cbw[k], cbw[k] / cfw[k]
    }
    END {
        printf "SD 1.5 UNet forward+backward, batch 1, %dx%d latents, 77x768 context, threads %s (%.0f GFLOP per forward)\n",
            s, s, threads, v["flops"] / 1e9
        line("cross-attn weights train", "xattn")
        line("  + gradient checkpointing", "xattn_ckpt")
        printf "  %-30s the precision bench measures it in the same run (targets: <= 6 GiB with checkpointing, backward <= 2x forward)\n",
            "PyTorch 1.13 + diffusers"
        printf "  SingLoRA r=4 on the default targets (%s parameters), checkpointing, only the adapter trains:\n", params
        line("  base model (nothing trains)", "base_ckpt")
        line("  with the adapter", "adapter_ckpt")
        base = fw["base_ckpt"] + bw["base_ckpt"]; ad = fw["adapter_ckpt"] + bw["adapter_ckpt"]
        cbase = cfw["base_ckpt"] + cbw["base_ckpt"]; cad = cfw["adapter_ckpt"] + cbw["adapter_ckpt"]
        printf "  %-30s %+.2f s wall (%+.1f %%), %+.1f CPU s (%+.1f %%): whole steps, within their run-to-run noise\n",
            "adapter cost", ad - base, 100 * (ad - base) / base, cad - cbase, 100 * (cad - cbase) / cbase
        printf "  %-30s %.3f s forward + %.3f s backward (%.1f %% of the base step); its GEMMs: %.2f GFLOP per step\n",
            "  the adapted Linears alone", isf, isb, 100 * (isf + isb) / base, agf
    }' "$TMP/work.txt" "$TMP/adapter.txt" "$TMP/results.txt"
