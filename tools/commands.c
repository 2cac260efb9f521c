#include "commands.h"

const command COMMANDS[] = {
    {"inspect", "show what a .safetensors file or diffusers folder holds", cmd_inspect},
    {"forward", "run one model component on tensors from a file (parity, debugging)", cmd_forward},
    {"init", "write a model with random weights at a config's real shapes", cmd_init},
};
const int N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0];
