// Multi-process runs (engine/dist/, ./singlora-mpi under mpirun -np 2): the collectives, the
// timeout on a hung rank and the abort with the failing rank's message; training with P = 2 ×
// batch 1 equal to P = 1 × batch 2 (and bit-identical across reruns; the stand-in build equal to
// P = 1 MPI); a P = 2 run killed at a checkpoint and resumed; sample --n and the DreamBooth
// protocol script at P = 2 equal to P = 1. Without ./singlora-mpi or mpirun each test says why
// and passes (`make test` builds the MPI binary whenever mpicc is installed; make deps installs it).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/io/safetensors.h"
#include "tests/test.h"
#include "tests/tiny_tokenizer.h"

#define MPIRUN "OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe"

static const char *mpi_bin(void) {
    const char *b = getenv("SINGLORA_MPI_BIN");
    return b ? b : "./singlora-mpi";
}

// 1 when ./singlora-mpi, build-mpi/dist_check and mpirun are there; else prints why.
static int mpi_ready(void) {
    char log[4096];
    // make test SAN=1: ./singlora is the sanitizer build, singlora-mpi is not, and their float
    // results differ in the last bits (other vectorization), so the byte equalities cannot hold
    const char *san = getenv("SINGLORA_SAN");
    if (san && *san == '1') {
        printf("    SKIP under SAN=1: singlora-mpi is not a sanitizer build\n");
        return 0;
    }
    if (access(mpi_bin(), X_OK) != 0 || access("build-mpi/dist_check", X_OK) != 0) {
        printf("    SKIP: no %s or build-mpi/dist_check (install Open MPI: make deps; make test builds them)\n", mpi_bin());
        return 0;
    }
    if (run_cmd(log, sizeof log, "mpirun --version") != 0) {
        printf("    SKIP: mpirun does not run (install openmpi-bin: make deps)\n");
        return 0;
    }
    return 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

TEST(dist_mpi_collectives_timeout_abort) {
    if (!mpi_ready()) return;
    char log[16384];
    int rc = run_cmd(log, sizeof log, MPIRUN " -np 2 build-mpi/dist_check sum");
    CHECK_MSG(rc == 0 && strstr(log, "ok 2 "), "collectives: rc %d: %s", rc, log);
    // rank 1 sleeps 20 s before the all-reduce; with a 1 s limit rank 0 must fail long before
    double t0 = now_s();
    rc = run_cmd(log, sizeof log, "SINGLORA_DIST_TIMEOUT=1 " MPIRUN " -np 2 build-mpi/dist_check stall 20");
    double dt = now_s() - t0;
    printf("    hung rank: rc %d after %.1f s\n", rc, dt);
    CHECK_MSG(rc != 0 && strstr(log, "rank 0/2: dist: all-reduce") && strstr(log, "timed out after 1 s"), "timeout: %s", log);
    CHECK_MSG(dt < 15, "the job took %.1f s: the timeout did not end it", dt);
    rc = run_cmd(log, sizeof log, MPIRUN " -np 2 build-mpi/dist_check fail");
    CHECK_MSG(rc != 0 && strstr(log, "singlora: rank 1/2: dist_check: deliberate failure on rank 1"), "abort: %s", log);
}

// ---------------------------------------------------------------- training

static char g_model[512], g_inst[512];

static int setup(void) {
    char log[8192];
    snprintf(g_model, sizeof g_model, "%s", tmp_path("tiny"));
    snprintf(g_inst, sizeof g_inst, "%s", tmp_path("inst"));
    if (run_cmd(log, sizeof log, "%s init --config configs/tiny --layout diffusers --out %s && "
                "%s world subject --spec zebra-star --n 3 --out %s && rm -f %s/*.txt",
                singlora_bin(), g_model, singlora_bin(), g_inst, g_inst) != 0) {
        test_fail_at(__FILE__, __LINE__, "setup: %s", log);
        return -1;
    }
    return 0;
}

// prior preservation (class images generated), flips, accumulation 2, default lr 1e-4
#define TRAIN_OPTS "--instance-prompt 'a photo of sks star' --class-prompt 'a photo of star' --with-prior-preservation " \
                   "--num-class-images 3 --resolution 64 --quiet --threads 1 --random-flip --seed 7 " \
                   "--gradient-accumulation-steps 2 --checkpointing-steps 2"

// bin "" = the one-process ./singlora, else an mpirun of np ranks; `extra` may set --max-train-steps (else 6)
static int train(char *log, size_t n, int np, const char *out, int batch, const char *extra) {
    char launch[256];
    if (np == 0) snprintf(launch, sizeof launch, "%s", singlora_bin());
    else snprintf(launch, sizeof launch, MPIRUN " -np %d %s", np, mpi_bin());
    return run_cmd(log, n, "%s train --model %s --instance-data-dir %s --output-dir %s --class-data-dir %s/class " TRAIN_OPTS
                   " --train-batch-size %d %s %s", launch, g_model, g_inst, out, out, batch,
                   strstr(extra, "--max-train-steps") ? "" : "--max-train-steps 6", extra);
}

// max |a - b| / max |a| over every tensor of two adapter files (NAN when they do not pair up)
static double adapter_rel_diff(const char *da, const char *db) {
    char pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/adapter.safetensors", da);
    snprintf(pb, sizeof pb, "%s/adapter.safetensors", db);
    st_file *a = st_open(pa), *b = st_open(pb);
    double diff = NAN, mx = 0, md = 0;
    if (a && b && a->n_entries == b->n_entries && a->n_entries > 0) {
        diff = 0;
        for (int i = 0; i < a->n_entries; i++) {
            const st_entry *x = &a->entries[i], *y = st_find(b, x->name);
            if (!y || x->dt != DT_F32 || y->dt != DT_F32 || x->end - x->begin != y->end - y->begin) { diff = NAN; break; }
            const float *u = x->data, *v = y->data;
            for (size_t q = 0; q < (x->end - x->begin) / 4; q++) {
                if (fabs(u[q]) > mx) mx = fabs(u[q]);
                if (fabs((double)u[q] - v[q]) > md) md = fabs((double)u[q] - v[q]);
            }
        }
        if (!isnan(diff)) diff = mx > 0 ? md / mx : NAN;
        printf("    %s vs %s: max |diff| %.3g, max |tensor| %.3g, ratio %.3g\n", strrchr(da, '/') + 1, strrchr(db, '/') + 1, md, mx, diff);
    }
    if (a) st_close(a);
    if (b) st_close(b);
    return diff;
}

// every tensor of a equals b's bit for bit (metadata aside: a cache entry names its image's path)
static int same_tensors(const char *a, const char *b) {
    st_file *fa = st_open(a), *fb = st_open(b);
    int ok = fa && fb && fa->n_entries == fb->n_entries && fa->n_entries > 0;
    for (int i = 0; ok && i < fa->n_entries; i++) {
        const st_entry *x = &fa->entries[i], *y = st_find(fb, x->name);
        ok = y && x->end - x->begin == y->end - y->begin && memcmp(x->data, y->data, x->end - x->begin) == 0;
    }
    if (fa) st_close(fa);
    if (fb) st_close(fb);
    return ok;
}

static int same_file(const char *a, const char *b) {
    char log[256];
    return run_cmd(log, sizeof log, "cmp -s %s %s", a, b) == 0;
}

TEST(dist_mpi_train_p2_equals_p1_batch2) {
    if (!mpi_ready()) return;
    REQUIRE(setup() == 0);
    char one[512], mpi1[512], p2a[512], p2b[512], log[16384];
    snprintf(one, sizeof one, "%s", tmp_path("p1-standin"));
    snprintf(mpi1, sizeof mpi1, "%s", tmp_path("p1-mpi"));
    snprintf(p2a, sizeof p2a, "%s", tmp_path("p2-a"));
    snprintf(p2b, sizeof p2b, "%s", tmp_path("p2-b"));
    REQUIRE(train(log, sizeof log, 0, one, 2, "") == 0 || (printf("%s\n", log), 0));
    REQUIRE(train(log, sizeof log, 1, mpi1, 2, "") == 0 || (printf("%s\n", log), 0));
    REQUIRE(train(log, sizeof log, 2, p2a, 1, "") == 0 || (printf("%s\n", log), 0));
    REQUIRE(train(log, sizeof log, 2, p2b, 1, "") == 0 || (printf("%s\n", log), 0));
    CHECK_MSG(adapter_rel_diff(one, mpi1) == 0.0, "the stand-in build and P = 1 MPI differ");
    double d = adapter_rel_diff(one, p2a);
    CHECK_MSG(d <= 1e-5, "P = 2 x batch 1 vs P = 1 x batch 2: %.3g > 1e-5 of max |tensor|", d);
    CHECK_MSG(d > 0 || d == 0, "no adapter to compare");
    CHECK_MSG(adapter_rel_diff(p2a, p2b) == 0.0, "two P = 2 runs differ");
    // the class images the ranks generated are the one process's, byte for byte
    char a[700], b[700];
    for (int k = 0; k < 3; k++) {
        snprintf(a, sizeof a, "%s/class/class-%05d.png", one, k);
        snprintf(b, sizeof b, "%s/class/class-%05d.png", p2a, k);
        CHECK_MSG(same_file(a, b), "class image %d differs", k);
    }
    // rank 0 alone wrote OUT: the same files as one process (the class folder aside), nothing more
    char l1[8192], l2[8192];
    REQUIRE(run_cmd(l1, sizeof l1, "cd %s && find . -path ./class -prune -o -type f -print | sed 's/cache\\/[0-9a-f]*/cache\\/X/' | sort", one) == 0);
    REQUIRE(run_cmd(l2, sizeof l2, "cd %s && find . -path ./class -prune -o -type f -print | sed 's/cache\\/[0-9a-f]*/cache\\/X/' | sort", p2a) == 0);
    CHECK_MSG(!strcmp(l1, l2), "OUT differs:\n%s\nvs\n%s", l1, l2);
    // the cache entries hold the same tensors (rank 0 wrote the entries rank 1 computed)
    REQUIRE(run_cmd(l1, sizeof l1, "ls %s/cache", one) == 0);
    int n_entries = 0;
    for (char *name = strtok(l1, "\n"); name; name = strtok(NULL, "\n"), n_entries++) {
        snprintf(a, sizeof a, "%s/cache/%s", one, name);
        snprintf(b, sizeof b, "%s/cache/%s", p2a, name);
        CHECK_MSG(same_tensors(a, b), "cache entry %s differs", name);
    }
    CHECK_EQ_INT(n_entries, 6);   // 3 instance + 3 class images
    REQUIRE(run_cmd(log, sizeof log, "grep -c . %s/log.csv", p2a) == 0);
    CHECK_MSG(atoi(log) == 7, "log.csv has %s lines", log);
}

TEST(dist_mpi_train_resume_killed_p2) {
    if (!mpi_ready()) return;
    REQUIRE(setup() == 0);
    char full[512], killed[512], log[16384];
    snprintf(full, sizeof full, "%s", tmp_path("full"));
    snprintf(killed, sizeof killed, "%s", tmp_path("killed"));
    // 24 steps, killed once checkpoint-2 exists: 22 steps (well over a second) are left to kill it in
    // (with 6 steps and a kill at checkpoint-4, a loaded CI machine once saw the run finish first)
#define STEPS "--max-train-steps 24"
    REQUIRE(train(log, sizeof log, 2, full, 1, STEPS) == 0 || (printf("%s\n", log), 0));
    // the same run, its ranks SIGKILLed once checkpoint-2 exists, then resumed at P = 2
    int rc = run_cmd(log, sizeof log,
                     MPIRUN " -np 2 %s train --model %s --instance-data-dir %s --output-dir %s --class-data-dir %s/class "
                     TRAIN_OPTS " " STEPS " --train-batch-size 1 & pid=$!; "
                     "while [ ! -d %s/checkpoints/checkpoint-2 ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done; "
                     "kill -9 $(pgrep -P $pid) 2>/dev/null; wait $pid; ls %s/checkpoints; test -f %s/adapter.safetensors && echo FINISHED",
                     mpi_bin(), g_model, g_inst, killed, killed, killed, killed, killed);
    printf("    killed run: rc %d, %s\n", rc, log);
    CHECK_MSG(!strstr(log, "FINISHED"), "the run finished before it was killed: the test proves nothing");
    // a different global batch is refused with a clear message
    rc = train(log, sizeof log, 1, killed, 1, STEPS " --resume-from-checkpoint latest");
    CHECK_MSG(rc != 0 && strstr(log, "global batch 2") && strstr(log, "1 x 1 = 1"), "P = 1 x 1 resume: rc %d: %s", rc, log);
    char reshard[512];
    snprintf(reshard, sizeof reshard, "%s", tmp_path("reshard"));
    REQUIRE(run_cmd(log, sizeof log, "cp -r %s %s", killed, reshard) == 0);
    REQUIRE(train(log, sizeof log, 2, killed, 1, STEPS " --resume-from-checkpoint latest") == 0 || (printf("%s\n", log), 0));
    CHECK_MSG(adapter_rel_diff(full, killed) == 0.0, "the resumed P = 2 run differs from the uninterrupted one");
    // the same global batch on one process (1 x 2) re-shards: equal up to float summation order
    REQUIRE(train(log, sizeof log, 0, reshard, 2, STEPS " --resume-from-checkpoint latest") == 0 || (printf("%s\n", log), 0));
    double d = adapter_rel_diff(full, reshard);
    CHECK_MSG(d <= 1e-5, "P = 2 checkpoint resumed as 1 x 2: %.3g > 1e-5 of max |tensor|", d);
#undef STEPS
}

// ---------------------------------------------------------------- evaluation

TEST(dist_mpi_sample_n_p2_equals_p1) {
    if (!mpi_ready()) return;
    char model[512], a[512], b[512], log[16384];
    snprintf(model, sizeof model, "%s", tmp_path("tiny"));
    snprintf(a, sizeof a, "%s", tmp_path("s1"));
    snprintf(b, sizeof b, "%s", tmp_path("s2"));
    REQUIRE(run_cmd(log, sizeof log, "%s init --config configs/tiny --layout diffusers --out %s", singlora_bin(), model) == 0);
    const char *opts = "--prompt 'a photo of sks star' --steps 3 --width 64 --height 64 --n 5 --seed 11 --threads 1";
    REQUIRE(run_cmd(log, sizeof log, "%s sample --model %s %s --out %s", singlora_bin(), model, opts, a) == 0);
    REQUIRE(run_cmd(log, sizeof log, MPIRUN " -np 2 %s sample --model %s %s --out %s", mpi_bin(), model, opts, b) == 0 ||
            (printf("%s\n", log), 0));
    int rc = run_cmd(log, sizeof log, "diff -r %s %s && ls %s | wc -l", a, b, b);
    CHECK_MSG(rc == 0 && atoi(log) == 11, "sample folders differ or are incomplete: %s", log);
}

TEST(dist_mpi_eval_protocol_ranks2_equals_ranks1) {
    if (!mpi_ready()) return;
    char model[600], clip[600], o1[600], o2[600], cmd[4096], log[16384];
    const char *tok = tiny_tokenizer();
    REQUIRE(tok);
    snprintf(model, sizeof model, "%s", tmp_path("model"));
    snprintf(clip, sizeof clip, "%s", tmp_path("clip"));
    snprintf(o1, sizeof o1, "%s", tmp_path("r1"));
    snprintf(o2, sizeof o2, "%s", tmp_path("r2"));
    REQUIRE(run_cmd(log, sizeof log, "mkdir -p %s && cp %s/config.json %s/model.safetensors %s/ && cp %s/vocab.json %s/merges.txt %s/",
                    clip, shared_path("fixtures/eval/clip_tiny"), shared_path("fixtures/eval/clip_tiny"), clip, tok, tok, clip) == 0);
    REQUIRE(run_cmd(log, sizeof log, "%s init --config configs/tiny --layout diffusers --out %s", singlora_bin(), model) == 0);
    for (int r = 1; r <= 2; r++) {
        snprintf(cmd, sizeof cmd,
                 "SINGLORA_BIN=%s SINGLORA_MPIRUN='mpirun --oversubscribe' OMP_NUM_THREADS=1 sh tools/eval_dreambooth.sh %s "
                 "--model %s --methods singlora,lora --rank 2 --steps 2 --prompts 1 --images-per-prompt 2 --resolution 64 "
                 "--sample-steps 2 --dino %s --clip %s --out %s --ranks %d",
                 singlora_bin(), shared_path("data/dreambooth"), model, shared_path("fixtures/eval/dino_tiny_hf"), clip,
                 r == 1 ? o1 : o2, r);
        int rc = run_cmd(log, sizeof log, "%s", cmd);
        REQUIRE(rc == 0 || (fprintf(stderr, "%s\n", log), 0));
    }
    // the same rows and numbers; the measured train seconds (column 4) aside
    int rc = run_cmd(log, sizeof log, "cut -d, -f1-3,5- %s/results.csv > %s/a.csv && cut -d, -f1-3,5- %s/results.csv > %s/b.csv && "
                     "diff %s/a.csv %s/b.csv && grep -c , %s/a.csv", o1, o1, o2, o2, o1, o2, o1);
    CHECK_MSG(rc == 0 && atoi(log) == 5, "reports differ: %s", log);
    rc = run_cmd(log, sizeof log, "awk -F'|' '{$5 = \"\"; print}' %s/results.md > %s/a.md && awk -F'|' '{$5 = \"\"; print}' %s/results.md > %s/b.md && "
                 "diff %s/a.md %s/b.md", o1, o1, o2, o2, o1, o2);
    CHECK_MSG(rc == 0, "results.md differ: %s", log);
}
