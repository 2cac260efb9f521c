#!/bin/sh
# The DreamBooth fidelity protocol (../shared/SINGLORA.md, "Fidelity protocol"):
#   tools/eval_dreambooth.sh DATASET --model M [--methods singlora,lora,dora] [--rank 4]
#       [--subjects a,b] [--prompts N] [--images-per-prompt 4] --dino D --clip C --out DIR
#       [--steps 400] [--resolution 512] [--sample-steps 30] [--seed 0] [--token sks] [--bin PATH]
#       [--ranks P]
# DATASET is a google/dreambooth folder: <subject>/NN.jpg and prompts_and_classes.txt (parsed as
# the dataset ships it: the subject,class table, then the object and the live-subject prompt
# lists; cats and dogs take the live-subject list). For each subject and method: train with the
# same recipe and seed (`singlora train`), sample the subject's first N prompts × images
# (`singlora sample`, prompt "a sks <class> ..."), evaluate against the subject's photos
# (`singlora eval`, identifier removed for CLIP-T), and collect DIR/results.md + results.csv:
# trainable parameters, training seconds, DINO / CLIP-I / CLIP-T mean ± std (over the generated
# images), and an overall row per method (mean ± std over subjects). Finished (subject, method)
# pairs (DIR/runs/<subject>/<method>/eval.json) are skipped on a rerun, so an interrupted protocol
# continues where it stopped.
# --ranks P runs the (subject, method) pairs on P ranks of one mpirun ($SINGLORA_MPIRUN, default
# `mpirun`, with --allow-run-as-root when root): pair i (subjects outer, methods inner) on rank
# i mod P, each pair in one process of the one-process binary (--bin: ./singlora, not
# ./singlora-mpi); once every rank is done the tables are written once, as one process writes
# them (the same rows and numbers; only the measured train seconds differ). Every rank must see
# DATASET, the models and DIR (one machine or a shared filesystem).
set -eu

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 1; }
die() { echo "eval_dreambooth: $*" >&2; exit 1; }

[ $# -ge 1 ] || usage
DATASET=$1; shift
MODEL= METHODS=singlora,lora,dora RANK=4 SUBJECTS= NPROMPTS=25 PER=4 DINO= CLIP= OUT=
STEPS=400 RES=512 SSTEPS=30 SEED=0 TOKEN=sks BIN=${SINGLORA_BIN:-./singlora} RANKS=1 WORKER=0
parse_args() {   # the options, in a function so that "$@" stays whole for the ranks of --ranks
while [ $# -gt 0 ]; do
    if [ "$1" = --worker ]; then WORKER=1; shift; continue; fi   # internal: one rank of --ranks P
    [ $# -ge 2 ] || die "option $1 needs a value"
    case $1 in
        --model) MODEL=$2 ;; --methods) METHODS=$2 ;; --rank) RANK=$2 ;; --subjects) SUBJECTS=$2 ;;
        --prompts) NPROMPTS=$2 ;; --images-per-prompt) PER=$2 ;; --dino) DINO=$2 ;; --clip) CLIP=$2 ;;
        --out) OUT=$2 ;; --steps) STEPS=$2 ;; --resolution) RES=$2 ;; --sample-steps) SSTEPS=$2 ;;
        --seed) SEED=$2 ;; --token) TOKEN=$2 ;; --bin) BIN=$2 ;; --ranks) RANKS=$2 ;;
        *) die "unknown option $1" ;;
    esac
    shift 2
done
}
parse_args "$@"
[ -n "$MODEL" ] && [ -n "$OUT" ] || die "--model and --out are required"
[ -n "$DINO" ] || [ -n "$CLIP" ] || die "give --dino and/or --clip"
LIST=$DATASET/prompts_and_classes.txt
[ -f "$LIST" ] || die "$LIST: missing (expected a google/dreambooth dataset folder)"
"$BIN" train --help > /dev/null 2>&1 || die "$BIN has no 'train' command"
case $RANKS in ''|*[!0-9]*|0) die "--ranks must be a positive integer" ;; esac
mkdir -p "$OUT/runs"
MYRANK=0
if [ "$WORKER" = 1 ]; then
    MYRANK=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${PMI_RANK:-}}}
    [ -n "$MYRANK" ] || die "--worker runs under mpirun only (no OMPI_COMM_WORLD_RANK / PMIX_RANK / PMI_RANK)"
elif [ "$RANKS" -gt 1 ]; then
    MPIRUN=${SINGLORA_MPIRUN:-mpirun}
    command -v "${MPIRUN%% *}" > /dev/null 2>&1 || die "--ranks $RANKS needs mpirun (make deps installs Open MPI)"
    [ "$(id -u)" = 0 ] && MPIRUN="$MPIRUN --allow-run-as-root"
    # every rank runs this script on its share of the pairs; the tables come after, here
    # shellcheck disable=SC2086
    $MPIRUN -np "$RANKS" sh "$0" "$DATASET" "$@" --worker || die "a rank of the $RANKS-rank run failed"
fi

# subject,class pairs of the table; then the prompt lists: 'a {0} {1} ...'.format(unique_token, class_token)
classes=$(awk -F, '/^subject_name,class/ {t = 1; next} t && NF == 2 {print $1 "," $2} t && /^[[:space:]]*$/ && n++ {t = 0}' "$LIST" | tr -d '\r')
prompts() {   # $1 = object | live
    awk -v want="$1" '
        /^Object Prompts/ {list = "object"} /^Live Subject Prompts/ {list = "live"}
        list == want && /\.format\(/ { s = $0; sub(/^[^'"'"']*'"'"'/, "", s); sub(/'"'"'\.format.*$/, "", s); print s }' "$LIST"
}
if [ -z "$SUBJECTS" ]; then
    SUBJECTS=$(for d in "$DATASET"/*/; do b=$(basename "$d"); echo "$classes" | grep -q "^$b," && echo "$b"; done | paste -sd, -)
fi
[ -n "$SUBJECTS" ] || die "$DATASET: no subject folders listed in $LIST"

field() {   # top-level number of an eval report (null -> empty)
    awk -v k="\"$2\":" '$1 == k {v = $2; sub(/,$/, "", v); if (v != "null") print v; exit}' "$1"
}

pair=-1
for subject in $(echo "$SUBJECTS" | tr , ' '); do
    [ -d "$DATASET/$subject" ] || die "$DATASET/$subject: no such subject folder"
    class=$(echo "$classes" | awk -F, -v s="$subject" '$1 == s {print $2}')
    [ -n "$class" ] || die "$LIST: no class for subject '$subject'"
    case $class in cat|dog) kind=live ;; *) kind=object ;; esac
    for method in $(echo "$METHODS" | tr , ' '); do
        pair=$((pair + 1))
        # --ranks P: the ranks did the pairs (pair i on rank i mod P); one process does them all
        if [ "$RANKS" -gt 1 ] && { [ "$WORKER" = 0 ] || [ $((pair % RANKS)) -ne "$MYRANK" ]; }; then continue; fi
        run=$OUT/runs/$subject/$method
        if [ -f "$run/eval.json" ]; then echo "== $subject / $method: done, skipped"; continue; fi
        echo "== $subject / $method"
        mkdir -p "$run"
        if [ ! -f "$run/adapter.safetensors" ] || [ ! -f "$run/train_seconds" ]; then
            t0=$(date +%s.%N)
            "$BIN" train --model "$MODEL" --instance-data-dir "$DATASET/$subject" \
                --instance-prompt "a photo of $TOKEN $class" --output-dir "$run" --method "$method" --rank "$RANK" \
                --max-train-steps "$STEPS" --resolution "$RES" --seed "$SEED"
            [ -f "$run/adapter.safetensors" ] || die "$run: train wrote no adapter.safetensors"
            echo "$(date +%s.%N) $t0" | awk '{printf "%.1f\n", $1 - $2}' > "$run/train_seconds"
        fi
        if [ ! -f "$run/samples/.done" ]; then
            rm -rf "$run/samples"
            mkdir -p "$run/samples"
            p=0
            prompts "$kind" | head -n "$NPROMPTS" > "$run/prompts.txt"
            while IFS= read -r tmpl; do
                prompt=$(echo "$tmpl" | sed "s/{0}/$TOKEN/; s/{1}/$class/")
                # seeds SEED + p·PER ..: every image has its own name NNNNN-SEED.png
                "$BIN" sample --model "$MODEL" --adapter "$run/adapter.safetensors" --prompt "$prompt" --n "$PER" \
                    --seed $((SEED + p * PER)) --steps "$SSTEPS" --width "$RES" --height "$RES" --out "$run/samples" \
                    < /dev/null
                p=$((p + 1))
            done < "$run/prompts.txt"
            rm -f "$run/samples/grid.png"
            touch "$run/samples/.done"
        fi
        "$BIN" eval --real "$DATASET/$subject" --generated "$run/samples" ${DINO:+--dino "$DINO"} ${CLIP:+--clip "$CLIP"} \
            --identifier "$TOKEN" --out "$run/eval.tmp.json" --markdown "$run/eval.md"
        "$BIN" inspect "$run/adapter.safetensors" | awk '/^  [a-z_]+ +[0-9]+ tensors/ {p += $4} END {print p + 0}' > "$run/params"
        mv "$run/eval.tmp.json" "$run/eval.json"
    done
done

[ "$WORKER" = 1 ] && exit 0   # a rank of --ranks P: the tables are written once, after mpirun

# ---- the tables ----
csv=$OUT/results.csv
echo "subject,method,trainable_params,train_seconds,dino,dino_std,clip_i,clip_i_std,clip_t,clip_t_std,n_generated" > "$csv"
for subject in $(echo "$SUBJECTS" | tr , ' '); do
    for method in $(echo "$METHODS" | tr , ' '); do
        run=$OUT/runs/$subject/$method
        [ -f "$run/eval.json" ] || die "$run/eval.json: missing (the pair did not finish)"
        r=$run/eval.json
        echo "$subject,$method,$(cat "$run/params"),$(cat "$run/train_seconds"),$(field "$r" dino),$(field "$r" dino_std),$(field "$r" clip_i),$(field "$r" clip_i_std),$(field "$r" clip_t),$(field "$r" clip_t_std),$(field "$r" n_generated)" >> "$csv"
    done
done
awk -F, -v methods="$METHODS" '
    function pm(m, s) { return m == "" ? "–" : sprintf("%.4f ± %.4f", m, s) }
    NR == 1 { next }
    { rows[++n] = $0; m = $2; k[m]++; P[m] = $3; T[m] += $4
      for (i = 0; i < 3; i++) { v = $(5 + 2 * i); if (v != "") { S[m, i] += v; Q[m, i] += v * v; C[m, i]++ } } }
    END {
        print "# DreamBooth fidelity\n"
        print "Raw cosine similarities, mean ± std over each run'"'"'s generated images; overall: mean ± std over subjects.\n"
        print "| subject | method | trainable params | train s | DINO | CLIP-I | CLIP-T |"
        print "|---|---|---|---|---|---|---|"
        for (r = 1; r <= n; r++) { split(rows[r], f, ",")
            printf "| %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], f[3], f[4], pm(f[5], f[6]), pm(f[7], f[8]), pm(f[9], f[10]) }
        nm = split(methods, ms, ",")
        for (j = 1; j <= nm; j++) { m = ms[j]; if (!k[m]) continue; line = sprintf("| **overall** | %s | %s | %.1f |", m, P[m], T[m] / k[m])
            for (i = 0; i < 3; i++) { if (!C[m, i]) { line = line " – |"; continue }
                mu = S[m, i] / C[m, i]; var = Q[m, i] / C[m, i] - mu * mu; if (var < 0) var = 0
                line = line " " pm(mu, sqrt(var)) " |" }
            print line }
    }' "$csv" > "$OUT/results.md"
echo "wrote $OUT/results.md and $csv"
