#include "commands.h"

const command COMMANDS[] = {
    {"inspect", "show what a .safetensors file or diffusers folder holds", cmd_inspect},
    {"randn", "write torch.randn(shape) for a seed, bit-exact with PyTorch's CPU generator", cmd_randn},
    {"tokenize", "print a prompt's CLIP token ids", cmd_tokenize},
    {"forward", "run one model (unet, vae-encode, vae-decode, text) on inputs from a file", cmd_forward},
    {"sample", "generate images from a prompt (txt2img, img2img)", cmd_sample},
    {"backward", "loss and gradients of one model (unet) on inputs from a file", cmd_backward},
    {"adapter", "create a SingLoRA / LoRA / DoRA adapter (adapter init)", cmd_adapter},
    {"export", "write an adapter as a kohya or diffusers LoRA file", cmd_export},
    {"merge", "write a model with an adapter folded into its UNet (original single-file layout)", cmd_merge},
    {"init", "write a model with random weights at a config's real shapes", cmd_init},
};
const int N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0];
