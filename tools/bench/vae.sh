#!/bin/sh
# VAE encode and decode of one 512×512 image with a full-size SD 1.5 VAE (random weights from
# `init`): seconds per encode / decode, and the resident memory the decode needs untiled and
# tiled (the peak during the compute, measured after the weights are loaded, plus the process
# peak from /usr/bin/time). Never fails on speed.
set -e
cd "$(dirname "$0")/../.."
SHARED=${SINGLORA_SHARED:-../shared}
CFG=$SHARED/models/sd15
S=${VAE_BENCH_SIZE:-512}
TILE=${VAE_BENCH_TILE:-32}
if [ ! -f "$CFG/vae/config.json" ]; then echo "vae: no $CFG/vae/config.json, skipped"; exit 0; fi
TMP=$(mktemp -d /tmp/singlora-bench-vae.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

./singlora init --config "$CFG" --component vae --layout diffusers --out "$TMP/sd15" > /dev/null
build/bench_vae_inputs --size "$S" "$S" --image "$TMP/image.safetensors" --latent "$TMP/latent.safetensors"

run() {   # run LABEL singlora-args...: its stderr (+ /usr/bin/time -v) into $TMP/LABEL.txt
    label=$1
    shift
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -v ./singlora "$@" > /dev/null 2> "$TMP/$label.txt"
    else
        ./singlora "$@" > /dev/null 2> "$TMP/$label.txt"
    fi
}
run encode forward vae-encode --model "$TMP/sd15" --in "$TMP/image.safetensors" --out "$TMP/enc.safetensors"
run decode forward vae-decode --model "$TMP/sd15" --in "$TMP/latent.safetensors" --out "$TMP/dec.safetensors"
run decode_tiled forward vae-decode --model "$TMP/sd15" --in "$TMP/latent.safetensors" --out "$TMP/dect.safetensors" \
    --tile "$TILE"

for f in encode decode decode_tiled; do
    awk -v label="$f" -v s="$S" -v tile="$TILE" '
        /^vae-(en|de)code: load/ { load = $3; comp = $6; rss_load = $11; peak = $16 }
        /Maximum resident set size/ { total = $NF / 1024 }
        END {
            name = label == "encode" ? "encode" : label == "decode" ? "decode" : "decode, tiled (--tile " tile ")"
            printf "  %-26s %6.2f s (%dx%d; load %.1f s)  RSS: after load %4d MB, peak during compute %5d MB, process peak %5d MB\n",
                   name, comp, s, s, load, rss_load, peak, total
        }' "$TMP/$f.txt"
done
