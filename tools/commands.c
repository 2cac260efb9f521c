#include "commands.h"

const command COMMANDS[] = {
    {"inspect", "show what a .safetensors file or diffusers folder holds", cmd_inspect},
    {"randn", "write torch.randn(shape) for a seed, bit-exact with PyTorch's CPU generator", cmd_randn},
    {"forward", "run one model component on tensors from a file (parity, debugging)", cmd_forward},
    {"tokenize", "print a prompt's CLIP token ids", cmd_tokenize},
};
const int N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0];
