// singlora forward <target> ...: run one model on inputs from a file and write its outputs
// (parity checks against the reference implementation). One file per target.
#include "tools/commands.h"

static const command TARGETS[] = {
    {"unet", "x, t, context -> the UNet's output (noise / v prediction)", forward_unet_main},
    {"vae-encode", "image -> VAE posterior moments, mean, logvar (and a sample)", forward_vae_encode_main},
    {"vae-decode", "latent -> image through the VAE decoder", forward_vae_decode_main},
    {"txt2img", "token ids + initial noise -> latents after each step and the decoded image", forward_txt2img_main},
    {"text", "CLIP text encoder: input_ids -> last_hidden_state, conditioning, pooler_output", forward_text_main},
    {"dino", "DINO ViT: pixel_values or images -> cls_embedding, last_hidden_state", forward_dino_main},
    {"clip-image", "CLIP image tower: pixel_values or images -> image_embeds, pooler_output", forward_clip_image_main},
    {"clip-text", "CLIP text tower: input_ids -> text_embeds, pooler_output, last_hidden_state", forward_clip_text_main},
};
#define N_TARGETS (int)(sizeof TARGETS / sizeof TARGETS[0])

int cmd_forward(int argc, char **argv) { return run_target("forward", TARGETS, N_TARGETS, argc, argv); }
