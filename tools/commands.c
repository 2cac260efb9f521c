#include "tools/commands.h"

#include <stdio.h>
#include <string.h>

const command COMMANDS[] = {
    {"inspect", "show what a .safetensors file or diffusers folder holds", cmd_inspect},
    {"randn", "write torch.randn(shape) for a seed, bit-exact with PyTorch's CPU generator", cmd_randn},
    {"tokenize", "print a prompt's CLIP token ids", cmd_tokenize},
    {"forward", "run one model (unet, vae-encode, vae-decode, text, dino, clip-image, clip-text) on inputs from a file", cmd_forward},
    {"sample", "generate images from a prompt (txt2img, img2img)", cmd_sample},
    {"backward", "loss and gradients of one model (unet) on inputs from a file", cmd_backward},
    {"adapter", "create a SingLoRA / LoRA / DoRA adapter (adapter init)", cmd_adapter},
    {"export", "write an adapter as a kohya or diffusers LoRA file", cmd_export},
    {"merge", "write a model with an adapter folded into its UNet (original single-file layout)", cmd_merge},
    {"init", "write a model with random weights at a config's real shapes", cmd_init},
    {"eval", "DINO, CLIP-I and CLIP-T of generated images against real photos", cmd_eval},
    {"train", "DreamBooth: train a SingLoRA / LoRA / DoRA adapter on a folder of photos", cmd_train},
    {"world", "the toy world: render images + captions, subjects' photos, score images", cmd_world},
    {"demo", "personalize the shipped toy-world model to a new subject, sample, score: report.md", cmd_demo},
    {"compare", "the method comparison's table from a folder of demo runs (tools/compare_methods.sh)", cmd_compare},
    {"pretrain", "train the toy-world base model from scratch (VAE, then every UNet weight)", cmd_pretrain},
};
const int N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0];

static void target_usage(FILE *out, const char *cmd, const command *targets, int n_targets) {
    fprintf(out, "usage: singlora %s <target> --model PATH --in IN --out OUT [options]\n\ntargets:\n", cmd);
    for (int i = 0; i < n_targets; i++) fprintf(out, "  %-12s %s\n", targets[i].name, targets[i].summary);
    fprintf(out, "\nsinglora %s <target> --help for each target's options.\n", cmd);
}

int run_target(const char *cmd, const command *targets, int n_targets, int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        target_usage(argc < 2 ? stderr : stdout, cmd, targets, n_targets);
        return argc < 2 ? 1 : 0;
    }
    for (int i = 0; i < n_targets; i++)
        if (!strcmp(targets[i].name, argv[1])) return targets[i].run(argc - 1, argv + 1);
    fprintf(stderr, "singlora: %s: unknown target '%s' (singlora %s --help lists them)\n", cmd, argv[1], cmd);
    return 1;
}
