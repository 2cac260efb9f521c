// What the user made is never lost or half-written: temporaries a killed writer left are removed
// by the next write into their folder (only those whose process is gone), `init --layout
// diffusers` builds the folder under a temporary name and renames it (a failure leaves nothing,
// an existing folder is replaced whole), and `sample` checks its output folder before sampling.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/io/atomic_file.h"
#include "engine/io/folders.h"
#include "tests/test.h"

static int exists(const char *dir, const char *name) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

static void touch(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) fputs("partial", f), fclose(f);
}

static long dead_pid(void) {   // a process that has exited (and been reaped)
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return (long)p;
}

TEST(atomic_write_removes_stale_temporaries_of_dead_writers) {
    const char *dir = tmp_path("out");
    REQUIRE(mkdir_p(dir) == 0);
    long dead = dead_pid();
    char stale_file[64], stale_dir[64], live[64], lookalike[64];
    snprintf(stale_file, sizeof stale_file, "adapter.safetensors.tmp.%ld", dead);
    snprintf(stale_dir, sizeof stale_dir, "model.tmp.%ld", dead);
    snprintf(live, sizeof live, "other.safetensors.tmp.%ld", (long)getppid());   // the runner: alive
    snprintf(lookalike, sizeof lookalike, "notes.tmp.txt");
    touch(dir, stale_file);
    touch(dir, live);
    touch(dir, lookalike);
    char sub[700];
    snprintf(sub, sizeof sub, "%s/%s/unet", dir, stale_dir);
    REQUIRE(mkdir_p(sub) == 0);
    touch(sub, "diffusion_pytorch_model.safetensors");
    CHECK(is_atomic_temporary(stale_file) && is_atomic_temporary(stale_dir) && !is_atomic_temporary(lookalike));
    CHECK(!is_atomic_temporary("a.tmp.") && !is_atomic_temporary("a.tmp.12x") && !is_atomic_temporary("a.png"));

    char path[700];
    snprintf(path, sizeof path, "%s/result.json", dir);
    const void *bufs[1] = {"{}"};
    size_t len = 2;
    REQUIRE(atomic_write(path, bufs, &len, 1) == 0);
    CHECK_MSG(!exists(dir, stale_file), "a dead writer's temporary file survived");
    CHECK_MSG(!exists(dir, stale_dir), "a dead writer's staging folder survived");
    CHECK_MSG(exists(dir, live), "a running process's temporary was removed");
    CHECK(exists(dir, lookalike) && exists(dir, "result.json"));
}

TEST(init_diffusers_folder_is_staged_and_replaced_whole) {
    char log[8192];
    const char *out = tmp_path("model"), *bad = tmp_path("badcfg");
    // a config folder whose VAE config is broken: init fails after writing the UNet
    REQUIRE(run_cmd(log, sizeof log, "mkdir -p %s && cp -r configs/tiny/unet configs/tiny/text_encoder %s/ && "
                                     "mkdir -p %s/vae && echo '{\"block_out_channels\": [' > %s/vae/config.json",
                    bad, bad, bad, bad) == 0);
    int rc = run_cmd(log, sizeof log, "%s init --config %s --layout diffusers --out %s", singlora_bin(), bad, out);
    CHECK_MSG(rc != 0 && strstr(log, "vae"), "init on a broken VAE config: rc %d: %s", rc, log);
    REQUIRE(run_cmd(log, sizeof log, "ls -a $(dirname %s)", out) == 0);
    CHECK_MSG(!strstr(log, "model"), "a failed init left something behind:\n%s", log);

    // a good init, then one over it: the old folder's extra file is gone, the model complete
    REQUIRE(run_cmd(log, sizeof log, "%s init --config configs/tiny --layout diffusers --out %s", singlora_bin(), out) == 0);
    touch(out, "stale-extra.txt");
    REQUIRE(run_cmd(log, sizeof log, "%s init --config configs/tiny --layout diffusers --out %s/ --seed 5", singlora_bin(), out) == 0 ||
            (printf("%s\n", log), 0));
    CHECK(!exists(out, "stale-extra.txt"));
    CHECK(exists(out, "model_index.json") && exists(out, "unet/diffusion_pytorch_model.safetensors") &&
          exists(out, "vae/config.json"));
    REQUIRE(run_cmd(log, sizeof log, "ls -a $(dirname %s)", out) == 0);
    CHECK_MSG(!strstr(log, ".tmp."), "temporaries left beside the model:\n%s", log);

    // init killed mid-way leaves MODEL.tmp.PID; the next init removes it
    long dead = dead_pid();
    char stale[700];
    snprintf(stale, sizeof stale, "%s.tmp.%ld/unet", out, dead);
    REQUIRE(mkdir_p(stale) == 0);
    REQUIRE(run_cmd(log, sizeof log, "%s init --config configs/tiny --layout diffusers --out %s", singlora_bin(), out) == 0);
    snprintf(stale, sizeof stale, "%s.tmp.%ld", out, dead);
    struct stat st;
    CHECK_MSG(stat(stale, &st) != 0, "%s survived the next init", stale);
}

TEST(sample_checks_its_output_folder_before_loading) {
    char log[8192];
    // /proc exists and no one can create files in it; the model does not exist either, and the
    // folder is what the error names: the check comes before any work
    int rc = run_cmd(log, sizeof log, "%s sample --model %s --prompt x --steps 1 --width 64 --height 64 --out /proc",
                     singlora_bin(), tmp_path("no-such-model"));
    CHECK_MSG(rc == 1 && strstr(log, "/proc") && strstr(log, "not writable"), "rc %d: %s", rc, log);
    rc = run_cmd(log, sizeof log, "%s sample --model %s --prompt x --steps 1 --width 64 --height 64 -o /proc/x.png",
                 singlora_bin(), tmp_path("no-such-model"));
    CHECK_MSG(rc == 1 && strstr(log, "/proc") && strstr(log, "not writable"), "rc %d: %s", rc, log);
}
