#!/bin/sh
# SingLoRA vs LoRA vs DoRA on the shipped toy-world base (issue 19): every setting below, for N
# subjects x K seeds, as `singlora demo` runs (same recipe, prompts and sampling seeds), then
# `singlora compare` writes OUT/method_comparison.md (mean ± std over subjects x seeds).
#
#   tools/compare_methods.sh [--subjects N (5)] [--seeds K (3)] [--out DIR (docs)] [--jobs J (1)]
#                            [--mpi P] [--threads T (2/J)] [--steps N] [--prompts N] [--drift-prompts N]
#                            [--class-images N] [--settings LIST] [--scratch DIR (build/compare)]
#
# A run's result.json is kept under OUT/method_comparison/runs/<setting>/<subject>-s<seed>/ and
# a run that has one is skipped, so an interrupted comparison resumes (also from a commit of
# those files). --jobs J runs J demos at once (each on 2/J threads). --mpi P spreads the runs
# over P mpirun ranks instead (rank r takes runs r, r + P, ...; several hosts through mpirun's
# own options in MPIRUN, e.g. MPIRUN="mpirun --hostfile H"), J at a time on each. The full runs'
# images stay in --scratch; the adapter grids of the first two subjects (seed 0) are copied next
# to the table.
set -e
cd "$(dirname "$0")/.."
bin=${SINGLORA_BIN:-./singlora}

# one demo (the script calls itself this way, J at a time): its full output in SCRATCH, its
# result.json (written last) copied into the runs tree under a temporary name, then renamed
if [ "$1" = --one-run ]; then
    shift
    scratch=$1 runs=$2 threads=$3 name=$4 run=$5 subject=$6 seed=$7
    shift 7
    dir="$scratch/$name/$run" log="$scratch/$name/$run.log"
    mkdir -p "$scratch/$name" "$runs/$name/$run"
    start=$(date +%s)
    if "$bin" demo --subject "$subject" --seed "$seed" --threads "$threads" --quiet --out "$dir" "$@" > "$log" 2>&1; then
        cp "$dir/result.json" "$runs/$name/$run/result.json.tmp.$$"
        mv "$runs/$name/$run/result.json.tmp.$$" "$runs/$name/$run/result.json"
        echo "compare_methods: $name $run done in $(( $(date +%s) - start )) s"
    else
        echo "compare_methods: $name $run FAILED (log: $log): $(tail -n 1 "$log")" >&2
        exit 1
    fi
    exit 0
fi

# one mpirun rank (the script calls itself this way under --mpi): its share of the task list
if [ "$1" = --rank-runs ]; then
    shift
    tasks=$1 jobs=$2
    shift 2
    rank=${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}} size=${OMPI_COMM_WORLD_SIZE:-${PMI_SIZE:-1}}
    sed 's/[[:space:]]*$//' "$tasks" | awk -v r="$rank" -v p="$size" '(NR - 1) % p == r' |
        xargs -P "$jobs" -L 1 sh "$0" --one-run "$@"
    exit $?
fi

subjects=5 seeds=3 out=docs jobs=1 mpi=0 threads="" scratch=build/compare extra="" settings=""
while [ $# -gt 0 ]; do
    case "$1" in
        --subjects) subjects=$2; shift 2 ;;
        --seeds) seeds=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --mpi) mpi=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --scratch) scratch=$2; shift 2 ;;
        --settings) settings=$2; shift 2 ;;
        --steps|--prompts|--drift-prompts|--class-images|--sample-steps|--photos) extra="$extra $1 $2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "compare_methods.sh: unknown option '$1' (see --help)" >&2; exit 1 ;;
    esac
done
for n in "$subjects" "$seeds" "$jobs" ${threads:+"$threads"} $([ "$mpi" = 0 ] || echo "$mpi"); do
    case "$n" in ''|*[!0-9]*|0) echo "compare_methods.sh: '$n' is not a positive count" >&2; exit 1 ;; esac
done
[ -x "$bin" ] || { echo "compare_methods.sh: no $bin (run make)" >&2; exit 1; }

# setting name | demo options. Equal rank: r 8 for all three; equal trainable parameters: a
# LoRA/DoRA of rank r has r*(d_in + d_out) per layer, SingLoRA r*max(d_in, d_out); on the
# toy-world UNet with the demo's targets (all,conv) LoRA rank 6 has 185,568 against SingLoRA
# rank 8's 201,728 (rank 7: 216,496), the closest (result.json has each run's exact count).
all_settings() {
    cat <<'LIST'
singlora-r8-lr5e-4|--method singlora --train-option learning-rate=5e-4
singlora-r8-lr1e-3|--method singlora --train-option learning-rate=1e-3
singlora-r8-lr2e-3|--method singlora --train-option learning-rate=2e-3
singlora-r8-kaiming|--method singlora --train-option init=kaiming --train-option learning-rate=1e-3
singlora-r8-ramp100|--method singlora --train-option ramp-steps=100 --train-option learning-rate=1e-3
lora-r8-lr5e-4|--method lora --train-option learning-rate=5e-4
lora-r8-lr1e-3|--method lora --train-option learning-rate=1e-3
lora-r8-lr2e-3|--method lora --train-option learning-rate=2e-3
lora-r6-lr1e-3|--method lora --train-option rank=6 --train-option learning-rate=1e-3
dora-r8-lr5e-4|--method dora --train-option learning-rate=5e-4
dora-r8-lr1e-3|--method dora --train-option learning-rate=1e-3
dora-r8-lr2e-3|--method dora --train-option learning-rate=2e-3
dora-r6-lr1e-3|--method dora --train-option rank=6 --train-option learning-rate=1e-3
LIST
}

runs="$out/method_comparison/runs"
mkdir -p "$runs" "$scratch"
if [ "$mpi" != 0 ] && ! command -v "${MPIRUN:-mpirun}" > /dev/null 2>&1; then
    echo "compare_methods.sh: --mpi needs mpirun (make deps installs Open MPI)" >&2; exit 1
fi
ranks=1
[ "$mpi" = 0 ] || ranks=$mpi
[ -n "$threads" ] || threads=$((2 / (jobs * ranks)))
[ "$threads" -ge 1 ] || threads=1
names=$("$bin" world subjects | awk '{print $1}' | head -n "$subjects")
[ "$(echo "$names" | wc -l)" -ge "$subjects" ] || { echo "compare_methods.sh: only $(echo "$names" | wc -l) named subjects" >&2; exit 1; }
tasks="$scratch/tasks.txt"
all_settings | while IFS='|' read -r name opts; do
    if [ -n "$settings" ] && ! echo ",$settings," | grep -q ",$name,"; then continue; fi
    for subject in $names; do
        s=0
        while [ "$s" -lt "$seeds" ]; do
            [ -f "$runs/$name/$subject-s$s/result.json" ] || echo "$name $subject-s$s $subject $s $opts $extra"
            s=$((s + 1))
        done
    done
done > "$tasks"
todo=$(wc -l < "$tasks")
if [ "$mpi" = 0 ]; then
    echo "compare_methods: $todo runs to do, $jobs at a time on $threads threads each; results under $runs"
else
    echo "compare_methods: $todo runs to do over $mpi mpirun ranks, $jobs at a time on each, $threads threads each; results under $runs"
fi
start=$(date +%s)
failed=0
if [ "$todo" -gt 0 ]; then
    # (xargs -L joins a line that ends in a blank to the next: strip them)
    if [ "$mpi" = 0 ]; then
        sed 's/[[:space:]]*$//' "$tasks" | xargs -P "$jobs" -L 1 sh "$0" --one-run "$scratch" "$runs" "$threads" || failed=1
    else   # (Open MPI refuses root without these; they are harmless for other users)
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ${MPIRUN:-mpirun} --oversubscribe -n "$mpi" \
            sh "$0" --rank-runs "$tasks" "$jobs" "$scratch" "$runs" "$threads" || failed=1
    fi
fi
echo "compare_methods: $todo runs in $(( $(date +%s) - start )) s"

# the adapter grids of the first two subjects, seed 0, of each setting run here
grids="$out/method_comparison/grids"
mkdir -p "$grids"
for subject in $(echo "$names" | head -n 2); do
    for g in "$scratch"/*/"$subject-s0"/grid-adapter.png; do
        [ -f "$g" ] || continue
        setting=$(basename "$(dirname "$(dirname "$g")")")
        cp "$g" "$grids/$setting-$subject.png"
    done
done
"$bin" compare --runs "$runs" --out "$out/method_comparison.md"
# the grids under the table (prompts of the demo, in order: the subject in new contexts)
if ls "$grids"/*.png > /dev/null 2>&1; then
    {
        printf '\n## Grids (adapter samples, seed 0; the prompts of `singlora demo`, in order)\n\n'
        for g in "$grids"/*.png; do
            b=$(basename "$g" .png)
            printf '%s\n\n![%s](method_comparison/grids/%s.png)\n\n' "$b" "$b" "$b"
        done
    } >> "$out/method_comparison.md"
fi
[ "$failed" = 0 ] || { echo "compare_methods.sh: some runs failed (their logs are under $scratch)" >&2; exit 1; }
