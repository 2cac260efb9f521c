#include "commands.h"

const command COMMANDS[] = {
    {"inspect", "show what a .safetensors file or diffusers folder holds", cmd_inspect},
};
const int N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0];
