// singlora backward <target> ...: one forward and backward of a model on inputs from a file,
// writing the loss and its gradients (parity checks against the reference implementation).
#include "tools/commands.h"

static const command TARGETS[] = {
    {"unet", "x, t, context, target -> MSE loss and its gradients (x, context, parameters, adapter)", backward_unet_main},
};
#define N_TARGETS (int)(sizeof TARGETS / sizeof TARGETS[0])

int cmd_backward(int argc, char **argv) { return run_target("backward", TARGETS, N_TARGETS, argc, argv); }
