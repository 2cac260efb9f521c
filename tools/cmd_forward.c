// singlora forward <target> ...: run one model component on tensors from a safetensors file
// (for parity checks against PyTorch and for debugging). One file per target.
#include <stdio.h>
#include <string.h>

#include "tools/args.h"
#include "tools/commands.h"

static const struct {
    const char *name, *summary;
    int (*run)(int argc, char **argv);   // argv[0] is the target name
} TARGETS[] = {
    {"unet", "UNet: x, t, context -> out", forward_unet_main},
};
static const int N_TARGETS = sizeof TARGETS / sizeof TARGETS[0];

static void usage(FILE *out) {
    fprintf(out, "usage: singlora forward <target> [options]     (singlora forward <target> --help)\n\ntargets:\n");
    for (int i = 0; i < N_TARGETS; i++) fprintf(out, "  %-12s %s\n", TARGETS[i].name, TARGETS[i].summary);
}

int cmd_forward(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (arg_is_help(argv[1])) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < N_TARGETS; i++)
        if (!strcmp(argv[1], TARGETS[i].name)) return TARGETS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "singlora: forward: unknown target '%s' (singlora forward --help lists them)\n", argv[1]);
    return 1;
}
