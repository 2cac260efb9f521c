// singlora: personalize Stable Diffusion with SingLoRA adapters, in C.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/core/version.h"
#include "engine/dist/dist.h"
#include "engine/kernels/gemm.h"
#include "tools/commands.h"

static void usage(FILE *out) {
    fprintf(out,
            "singlora %s - SingLoRA personalization for Stable Diffusion, in C\n\n"
            "usage: singlora <command> [options]     (singlora <command> --help for each)\n\n"
            "commands:\n",
            SINGLORA_VERSION);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "  %-12s %s\n", "help", "this list");
    fprintf(out, "\noptions: --version, --help\n");
}

static int run(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 1; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        if (!strcmp(cmd, "help") && argc > 2) {
            for (int i = 0; i < N_COMMANDS; i++)
                if (!strcmp(COMMANDS[i].name, argv[2])) {
                    char *hargv[] = {argv[2], "--help", NULL};
                    return COMMANDS[i].run(2, hargv);
                }
        }
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("singlora %s\n", SINGLORA_VERSION);
        // the kernels in use: OpenBLAS's core (after gemm_openblas_fix_core) and the bf16 ones
        printf("OpenBLAS core %s%s; bf16 kernel %s\n", gemm_openblas_core(),
               getenv("OPENBLAS_CORETYPE") ? " (OPENBLAS_CORETYPE)" : "",
               !gemm_bf16_supported() ? "none (no AVX512_BF16: --precision fp32 only)" : gemm_bf16_uses_amx() ? "AMX" : "AVX512_BF16");
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(COMMANDS[i].name, cmd)) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "singlora: unknown command '%s' (singlora help lists them)\n", cmd);
    return 1;
}

// Under mpirun every rank runs the same command (engine/dist/): a command that fails on any rank
// ends the whole job with that rank's message.
int main(int argc, char **argv) {
    gemm_openblas_fix_core(argv);   // OpenBLAS's SSE3 fallback on CPUs it does not know: run again with Haswell's
    // every command that loops (sampling steps, training steps, repeats) frees and reallocates the
    // same activations: keep freed memory instead of paying page faults for it again (clearing
    // fresh pages was 17 % of a repeated bf16 UNet forward)
    sl_memory_reuse();
    if (dist_init(&argc, &argv) != 0) sl_fail();
    atexit(dist_finalize);   // commands that exit(0) early (--help) still leave the job cleanly
    int rc = run(argc, argv);
    if (rc != 0 && dist_size() > 1) {
        fprintf(stderr, "singlora: rank %d/%d: exit code %d, aborting the job\n", dist_rank(), dist_size(), rc);
        dist_abort(rc);
    }
    dist_finalize();
    return rc;
}
