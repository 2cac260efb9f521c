#include "commands.h"

const command COMMANDS[] = {
    {"inspect", "show what a .safetensors file or diffusers folder holds", cmd_inspect},
    {"randn", "write torch.randn(shape) for a seed, bit-exact with PyTorch's CPU generator", cmd_randn},
};
const int N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0];
