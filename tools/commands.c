#include "commands.h"

const command COMMANDS[] = {
    {"inspect", "show what a .safetensors file or diffusers folder holds", cmd_inspect},
    {"forward", "run one model (unet, vae-encode, vae-decode, ...) on inputs from a file", cmd_forward},
    {"init", "write a model with random weights at a config's real shapes", cmd_init},
};
const int N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0];
