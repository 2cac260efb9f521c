// singlora pretrain: trains the toy-world base model from scratch (engine/train/pretrain.h).
#include <stdio.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/train/pretrain.h"
#include "tools/args.h"
#include "tools/commands.h"

static const char *HELP =
    "usage: singlora pretrain --out DIR [--steps N] [--seed S] [--threads N] [--precision fp32|bf16] [--profile] [--resume]\n"
    "                         [--config DIR] [--ckpt DIR] [--vae-steps N] [--vae-batch N] [--latents N]\n"
    "                         [--batch N] [--lr LR] [--text-lr LR] [--ckpt-every SECONDS]\n"
    "                         [--data world|squares] [--size 64] [--init-from MODEL] [--lr-schedule NAME]\n"
    "Trains an SD-architecture model from scratch: the VAE as an autoencoder (KL added late), the\n"
    "data set encoded to latents once, then every UNet weight (AdamW, EMA, caption dropout 0.1)\n"
    "jointly with a CLIP-architecture text encoder (the real tokenizer; random init from the seed).\n"
    "Writes DIR as a diffusers folder (f16, EMA weights) at every checkpoint; checkpoints, the\n"
    "latent cache and log.csv go to\n"
    "--ckpt (default DIR.ckpt). --resume continues from them exactly.\n"
    "  --steps N        UNet optimizer steps (6000)     --batch N      UNet batch (64)\n"
    "  --vae-steps N    VAE steps (1200; KL from 75 %)  --vae-batch N  VAE batch (8)\n"
    "  --vae-crop N     VAE training crops (32; 0: whole images)\n"
    "  --lr LR          UNet learning rate (1e-3)       --text-lr LR   text encoder's (1e-3; 0: frozen)\n"
    "  --latents N      examples encoded once (16384)   --config DIR   model configs (configs/toyworld)\n"
    "  --data world     the toy world (default; data/world), or squares: the stand-in coloured squares\n"
    "  --vae-subjects   half the VAE's images are photos of random subjects (patterns, outlines), so\n"
    "                   the codec keeps their detail; the UNet and text encoder see only the world\n"
    "  --init-from MODEL  continue from a diffusers folder: its configs and VAE (no VAE phase), its UNet\n"
    "                   and text encoder weights as the start (fresh AdamW states; --steps counts anew)\n"
    "  --vae-continue   with --init-from: train its VAE on for --vae-steps first (KL from --kl-start,\n"
    "                   default 0), then re-encode the latents with it\n"
    "  --lr-schedule NAME  constant_with_warmup (default), constant, linear or cosine (200 warm-up steps)\n";

int cmd_pretrain(int argc, char **argv) {
    pretrain_opts o = pretrain_defaults();
    const char *v, *data = "world";
    int kl_set = 0, size = 64, vae_subjects = 0;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_value(argc, argv, &i, "--out", &o.out)) {}
        else if (arg_value(argc, argv, &i, "--ckpt", &o.ckpt)) {}
        else if (arg_value(argc, argv, &i, "--config", &o.config)) {}
        else if (arg_value(argc, argv, &i, "--data", &data)) {}
        else if (arg_value(argc, argv, &i, "--steps", &v)) o.unet_steps = (int)arg_int_range("--steps", v, 0, 100000000);
        else if (arg_value(argc, argv, &i, "--batch", &v)) o.unet_batch = (int)arg_int_range("--batch", v, 1, 65536);
        else if (arg_value(argc, argv, &i, "--lr", &v)) o.unet_lr = arg_double_range("--lr", v, 0, 100);
        else if (arg_value(argc, argv, &i, "--text-lr", &v)) o.text_lr = arg_double_range("--text-lr", v, 0, 100);
        else if (arg_value(argc, argv, &i, "--vae-steps", &v)) o.vae_steps = (int)arg_int_range("--vae-steps", v, 0, 100000000);
        else if (arg_value(argc, argv, &i, "--vae-batch", &v)) o.vae_batch = (int)arg_int_range("--vae-batch", v, 1, 65536);
        else if (arg_value(argc, argv, &i, "--kl-start", &v)) o.vae_kl_start = (int)arg_int_range("--kl-start", v, 0, 100000000), kl_set = 1;
        else if (arg_value(argc, argv, &i, "--latents", &v)) o.n_latents = (int)arg_int_range("--latents", v, 1, 100000000);
        else if (arg_value(argc, argv, &i, "--seed", &v)) o.seed = arg_seed("--seed", v);
        else if (arg_precision(argc, argv, &i)) {}
        else if (arg_profile(argv, i)) {}
        else if (arg_value(argc, argv, &i, "--threads", &v)) o.threads = arg_threads("--threads", v);
        else if (arg_value(argc, argv, &i, "--ckpt-every", &v)) o.ckpt_every_s = arg_double_range("--ckpt-every", v, 0, 1e9);
        else if (arg_value(argc, argv, &i, "--log-every", &v)) o.log_every = (int)arg_int_range("--log-every", v, 1, 100000000);
        else if (arg_value(argc, argv, &i, "--size", &v)) size = (int)arg_int_range("--size", v, 16, 1024);
        else if (arg_value(argc, argv, &i, "--vae-lr", &v)) o.vae_lr = arg_double_range("--vae-lr", v, 0, 100);
        else if (arg_value(argc, argv, &i, "--vae-crop", &v)) o.vae_crop = (int)arg_int_range("--vae-crop", v, 0, 1024);
        else if (arg_value(argc, argv, &i, "--init-from", &o.init_from)) {}
        else if (arg_value(argc, argv, &i, "--lr-schedule", &v)) {
            int k = lr_schedule_from_name(v);
            if (k < 0) sl_die(NULL, "pretrain: --lr-schedule '%s': expected constant, constant_with_warmup, linear or cosine", v);
            o.unet_lr_schedule = (lr_schedule_kind)k;
        }
        else if (arg_flag(argv, i, "--resume")) o.resume = 1;
        else if (arg_flag(argv, i, "--vae-subjects")) vae_subjects = 1;
        else if (arg_flag(argv, i, "--vae-continue")) o.vae_continue = 1;
        else arg_unknown("pretrain", argv[i]);
    }
    if (!o.out) sl_die(NULL, "pretrain: --out DIR is required (see --help)");
    if (o.vae_continue && !o.init_from) sl_die(NULL, "pretrain: --vae-continue needs --init-from MODEL (the VAE to continue)");
    if (!kl_set) o.vae_kl_start = o.vae_continue ? 0 : o.vae_steps * 3 / 4;
    pretrain_source sq = {o.seed, size};
    pretrain_data d;
    if (!strcmp(data, "world")) d = vae_subjects ? pretrain_data_world_vae_subjects(&sq) : pretrain_data_world(&sq);
    else if (vae_subjects) sl_die(NULL, "pretrain: --vae-subjects needs --data world");
    else if (!strcmp(data, "squares")) d = pretrain_data_squares(&sq);
    else sl_die(NULL, "pretrain: --data '%s': expected world or squares", data);
    if (pretrain_run(&o, &d) != 0) sl_fail();
    return 0;
}
