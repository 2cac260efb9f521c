#!/bin/sh
# Fidelity models at real size with random weights built from the key lists in
# ../shared/fixtures/eval/key_lists.json: seconds per image for DINO ViT-S/16 and the CLIP
# ViT-B/32 image tower (224×224; preprocessing of a 512×384 image timed apart). Best of 5.
set -e
cd "$(dirname "$0")/../.."
SHARED=${SINGLORA_SHARED:-../shared}
KEYS=$SHARED/fixtures/eval/key_lists.json
if [ ! -f "$KEYS" ]; then echo "eval: no $KEYS, skipped"; exit 0; fi
build/bench_eval_models --keys "$KEYS" --repeat 5
