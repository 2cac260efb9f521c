#!/bin/sh
# GEMM kernels on the SD 1.5 UNet forward's GEMM shapes (batch 2, 64×64 latents, 77 tokens):
# GFLOP/s of the own AVX-512 f32 kernel (and bf16 where the CPU has AVX512_BF16) next to
# OpenBLAS, interleaved in the same run, timed in CPU seconds per thread (GEMM_BENCH_CLOCK=wall
# for elapsed time). Never fails on speed.
set -e
cd "$(dirname "$0")/../.."
SHARED=${SINGLORA_SHARED:-../shared}
CFG=$SHARED/models/sd15
if [ ! -f "$CFG/unet/config.json" ]; then echo "gemm: no $CFG/unet/config.json, skipped"; exit 0; fi
build/bench_gemm --config "$CFG" --batch "${UNET_BENCH_BATCH:-2}" --size "${UNET_BENCH_SIZE:-64}" "${UNET_BENCH_SIZE:-64}" \
    --context 77 --reps "${GEMM_BENCH_REPS:-5}" --clock "${GEMM_BENCH_CLOCK:-cpu}"
