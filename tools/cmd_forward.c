// singlora forward <target> ...: run one model on inputs from a file and write its outputs
// (parity checks against the reference implementation). One file per target.
#include <stdio.h>
#include <string.h>

#include "tools/commands.h"

static const struct {
    const char *name, *summary;
    int (*run)(int argc, char **argv);
} TARGETS[] = {
    {"unet", "x, t, context -> the UNet's output (noise / v prediction)", forward_unet_main},
    {"vae-encode", "image -> VAE posterior moments, mean, logvar (and a sample)", forward_vae_encode_main},
    {"vae-decode", "latent -> image through the VAE decoder", forward_vae_decode_main},
    {"txt2img", "token ids + initial noise -> latents after each step and the decoded image", forward_txt2img_main},
    {"text", "CLIP text encoder: input_ids -> last_hidden_state, conditioning, pooler_output", forward_text_main},
};
#define N_TARGETS (int)(sizeof TARGETS / sizeof TARGETS[0])

static void usage(FILE *out) {
    fprintf(out, "usage: singlora forward <target> --model PATH --in IN --out OUT [options]\n\ntargets:\n");
    for (int i = 0; i < N_TARGETS; i++) fprintf(out, "  %-12s %s\n", TARGETS[i].name, TARGETS[i].summary);
    fprintf(out, "\nsinglora forward <target> --help for each target's options.\n");
}

int cmd_forward(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    for (int i = 0; i < N_TARGETS; i++)
        if (!strcmp(TARGETS[i].name, argv[1])) return TARGETS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "singlora: forward: unknown target '%s' (singlora forward --help lists them)\n", argv[1]);
    return 1;
}
