// singlora backward <target> ...: one forward and backward of a model on inputs from a file,
// writing the loss and its gradients (parity checks against the reference implementation).
#include <stdio.h>
#include <string.h>

#include "tools/commands.h"

static const struct {
    const char *name, *summary;
    int (*run)(int argc, char **argv);
} TARGETS[] = {
    {"unet", "x, t, context, target -> MSE loss and its gradients (x, context, parameters, adapter)", backward_unet_main},
};
#define N_TARGETS (int)(sizeof TARGETS / sizeof TARGETS[0])

static void usage(FILE *out) {
    fprintf(out, "usage: singlora backward <target> --model PATH --in IN --out OUT [options]\n\ntargets:\n");
    for (int i = 0; i < N_TARGETS; i++) fprintf(out, "  %-12s %s\n", TARGETS[i].name, TARGETS[i].summary);
    fprintf(out, "\nsinglora backward <target> --help for each target's options.\n");
}

int cmd_backward(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    for (int i = 0; i < N_TARGETS; i++)
        if (!strcmp(TARGETS[i].name, argv[1])) return TARGETS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "singlora: backward: unknown target '%s' (singlora backward --help lists them)\n", argv[1]);
    return 1;
}
