// Pretraining: the flat blocks over a model's parameter walk (AdamW per range, EMA, checkpoints),
// and the whole loop on tiny configs and the stand-in squares: the VAE's reconstruction loss and
// the UNet's ε loss fall, --resume continues exactly, and the written folder samples.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/train/full_params.h"
#include "engine/train/pretrain.h"
#include "tests/test.h"
#include "vae/backward.h"
#include "vae/vae.h"

static int vae_walk_both(void *m, param_visitor fn, void *ctx) { return vae_walk(m, VAE_BOTH, fn, ctx); }

static vae_config small_vae(void) {
    vae_config c = {0};
    c.in_channels = 3, c.out_channels = 3, c.latent_channels = 2, c.n_levels = 2;
    c.block_out[0] = 4, c.block_out[1] = 8;
    c.layers_per_block = 1, c.groups = 2, c.eps = 1e-6f, c.scaling_factor = 1.0f;
    c.mid_attention = 1, c.quant_conv = 1, c.post_quant_conv = 1;
    return c;
}

typedef struct {
    float *p[64];
    int n;
} ptrs;
static int ptr_visitor(void *ctx, const param_desc *p) {
    ptrs *l = ctx;
    if (l->n < 64) l->p[l->n++] = *p->slot;
    return 0;
}

TEST(full_params_blocks_adamw_ema_checkpoint) {
    vae_config c = small_vae();
    vae_model *m = vae_random(&c, VAE_BOTH, 5), *ref = vae_random(&c, VAE_BOTH, 5);
    vae_model *g = vae_grads_new(m);
    full_params *fp = full_params_new(m, g, vae_walk_both);
    REQUIRE(fp);
    // the model's slots point into the block, values kept, entries 64-byte aligned
    ptrs pm = {0}, pr = {0}, pg = {0};
    vae_walk(m, VAE_BOTH, ptr_visitor, &pm);
    vae_walk(ref, VAE_BOTH, ptr_visitor, &pr);
    vae_walk(g, VAE_BOTH, ptr_visitor, &pg);
    REQUIRE(pm.n == fp->n_entries || (pm.n == 64 && fp->n_entries > 64));
    int moved = 1, same = 1;
    for (int i = 0; i < pm.n; i++) {
        const fp_entry *e = &fp->entries[i];
        moved &= pm.p[i] == fp->params + e->offset && pg.p[i] == fp->grads + e->offset && e->offset % 16 == 0;
        same &= memcmp(pm.p[i], pr.p[i], sizeof(float) * (size_t)e->count) == 0;
    }
    CHECK(moved);
    CHECK(same);
    // AdamW over the block == adamw_step per tensor with decay on ndim >= 2 only
    for (int64_t i = 0; i < fp->n; i++) fp->grads[i] = (float)sin(0.37 * (double)i);
    for (int i = 0; i < fp->n_entries; i++)   // the gaps carry no gradient
        for (int64_t k = fp->entries[i].offset + fp->entries[i].count;
             k < (i + 1 < fp->n_entries ? fp->entries[i + 1].offset : fp->n); k++)
            fp->grads[k] = 0;
    float *want = sl_alloc_f32(fp->n), *mm = sl_zeros_f32(fp->n), *vv = sl_zeros_f32(fp->n);
    memcpy(want, fp->params, sizeof(float) * (size_t)fp->n);
    adamw_opts o = {0.9, 0.999, 1e-8, 0.1};
    adamw_opts o0 = o;
    o0.weight_decay = 0;
    for (int i = 0; i < fp->n_entries; i++) {
        const fp_entry *e = &fp->entries[i];
        adamw_step(want + e->offset, fp->grads + e->offset, mm + e->offset, vv + e->offset, e->count, 1, 1e-2,
                   e->ndim >= 2 ? &o : &o0);
    }
    full_params_adamw(fp, 1e-2, &o);
    CHECK_EQ_INT(fp->step, 1);
    int eq = 1;
    for (int i = 0; i < fp->n_entries; i++)
        eq &= memcmp(want + fp->entries[i].offset, fp->params + fp->entries[i].offset,
                     sizeof(float) * (size_t)fp->entries[i].count) == 0;
    CHECK(eq);
    // EMA: ema = d·ema + (1-d)·p; swap twice is the identity
    float e0 = fp->ema[3], p0 = fp->params[3];
    full_params_ema_update(fp, 0.75);
    CHECK_NEAR(fp->ema[3], 0.75f * e0 + 0.25f * p0, 1e-7);
    full_params_swap_ema(fp);
    CHECK(fp->params[3] == fp->ema[3] || fp->params[3] != p0);
    full_params_swap_ema(fp);
    CHECK(fp->params[3] == p0);
    // the gradient norm and clipping (clip_grad_norm_)
    double gn = full_params_grad_norm(fp), s = 0;
    for (int64_t i = 0; i < fp->n; i++) s += (double)fp->grads[i] * fp->grads[i];
    CHECK_NEAR(gn, sqrt(s), 1e-9 * sqrt(s));
    float coef = full_params_clip(fp, gn, 0.5 * gn);
    CHECK_NEAR(coef, 0.5 * gn / (gn + 1e-6), 1e-6);
    CHECK_NEAR(full_params_grad_norm(fp), 0.5 * gn, 1e-4 * gn);
    // checkpoint round trip; another layout is refused
    const char *ck = tmp_path("state.safetensors");
    REQUIRE(full_params_save(fp, ck, "k", "v1") == 0);
    float *saved = sl_alloc_f32(fp->n);
    memcpy(saved, fp->params, sizeof(float) * (size_t)fp->n);
    for (int64_t i = 0; i < fp->n; i++) fp->params[i] = 0, fp->m[i] = 0;
    fp->step = 0;
    char *extra = NULL;
    REQUIRE(full_params_load(fp, ck, "k", &extra) == 0);
    CHECK(memcmp(saved, fp->params, sizeof(float) * (size_t)fp->n) == 0);
    CHECK_EQ_INT(fp->step, 1);
    CHECK(extra && !strcmp(extra, "v1"));
    free(extra);
    vae_config c2 = small_vae();
    c2.block_out[1] = 6;
    vae_model *other = vae_random(&c2, VAE_BOTH, 1);
    full_params *fo = full_params_new(other, NULL, vae_walk_both);
    CHECK(full_params_load(fo, ck, NULL, NULL) != 0);
    CHECK(strstr(sl_error_msg(), "another model layout") != NULL);
    full_params_free(fo);
    vae_free(other);
    // freeing gives the model its own buffers back (with the trained values)
    full_params_free(fp);
    vae_walk(m, VAE_BOTH, ptr_visitor, &(ptrs){0});
    ptrs after = {0};
    vae_walk(m, VAE_BOTH, ptr_visitor, &after);
    CHECK(after.p[0] != NULL && after.p[0][0] == saved[0]);
    sl_free_aligned(want), sl_free_aligned(mm), sl_free_aligned(vv), sl_free_aligned(saved);
    vae_free(g), vae_free(m), vae_free(ref);
}

// ---------------------------------------------------------------- the loop on tiny configs

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

// Tiny model configs in a temporary folder; v: the toy world's v-prediction on linear betas
// (else SD's epsilon on scaled_linear).
static const char *tiny_configs(int v) {
    const char *dir = tmp_path(v ? "cfg-v" : "cfg");
    char p[4096];
    const char *sub[] = {"unet", "vae", "text_encoder", "scheduler"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "mkdir -p %s/%s", dir, sub[i]);
        if (system(p)) return NULL;
    }
    snprintf(p, sizeof p, "%s/unet/config.json", dir);
    write_file(p, "{\"_class_name\": \"UNet2DConditionModel\", \"in_channels\": 2, \"out_channels\": 2,"
                  "\"block_out_channels\": [16, 32], \"layers_per_block\": 1,"
                  "\"down_block_types\": [\"DownBlock2D\", \"CrossAttnDownBlock2D\"],"
                  "\"up_block_types\": [\"CrossAttnUpBlock2D\", \"UpBlock2D\"],"
                  "\"attention_head_dim\": 2, \"cross_attention_dim\": 16, \"use_linear_projection\": true,"
                  "\"norm_num_groups\": 8, \"sample_size\": 4}");
    snprintf(p, sizeof p, "%s/vae/config.json", dir);
    write_file(p, "{\"_class_name\": \"AutoencoderKL\", \"in_channels\": 3, \"out_channels\": 3, \"latent_channels\": 2,"
                  "\"block_out_channels\": [8, 16, 16], \"layers_per_block\": 1,"
                  "\"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"],"
                  "\"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"],"
                  "\"norm_num_groups\": 4, \"scaling_factor\": 1.0}");
    snprintf(p, sizeof p, "%s/text_encoder/config.json", dir);
    write_file(p, "{\"vocab_size\": 49408, \"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 1,"
                  "\"num_attention_heads\": 2, \"max_position_embeddings\": 77, \"hidden_act\": \"quick_gelu\","
                  "\"layer_norm_eps\": 1e-05, \"bos_token_id\": 49406, \"eos_token_id\": 49407, \"pad_token_id\": 49407}");
    snprintf(p, sizeof p, "%s/scheduler/scheduler_config.json", dir);
    if (v)
        write_file(p, "{\"_class_name\": \"DDIMScheduler\", \"num_train_timesteps\": 1000, \"beta_schedule\": \"linear\","
                      "\"beta_start\": 0.0001, \"beta_end\": 0.02, \"prediction_type\": \"v_prediction\","
                      "\"timestep_spacing\": \"trailing\", \"steps_offset\": 0, \"set_alpha_to_one\": false}");
    else
        write_file(p, "{\"_class_name\": \"DDIMScheduler\", \"num_train_timesteps\": 1000, \"beta_schedule\": \"scaled_linear\","
                      "\"beta_start\": 0.00085, \"beta_end\": 0.012, \"prediction_type\": \"epsilon\","
                      "\"timestep_spacing\": \"leading\", \"steps_offset\": 1, \"set_alpha_to_one\": false, \"clip_sample\": false}");
    return dir;
}

// mean loss of a phase's steps [a, b] from log.csv
static double log_mean(const char *path, const char *phase, int a, int b, int *last_step) {
    FILE *f = fopen(path, "r");
    if (!f) return NAN;
    char line[512], ph[16];
    double s = 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        int step;
        double loss;
        if (sscanf(line, "%15[^,],%d,%lf", ph, &step, &loss) != 3 || strcmp(ph, phase)) continue;
        if (last_step) *last_step = step;
        if (step >= a && step <= b) s += loss, n++;
    }
    fclose(f);
    return n ? s / n : NAN;
}

TEST(pretrain_loss_falls_resumes_and_samples) {
    const char *cfg = tiny_configs(0);
    REQUIRE(cfg);
    char out[4096], ck[4096], logp[4200];
    snprintf(out, sizeof out, "%s", tmp_path("model"));
    snprintf(ck, sizeof ck, "%s", tmp_path("ckpt"));
    snprintf(logp, sizeof logp, "%s/log.csv", ck);
    pretrain_opts o = pretrain_defaults();
    o.out = out, o.ckpt = ck, o.config = cfg, o.seed = 0, o.threads = 2;
    o.vae_steps = 100, o.vae_batch = 8, o.vae_lr = 2e-3, o.vae_kl_start = 90;
    o.n_latents = 256;
    o.unet_steps = 80, o.unet_batch = 16, o.unet_warmup = 5, o.unet_lr = 2e-3;
    o.log_every = 1000, o.ckpt_every_s = 1e9;
    pretrain_source sq = {0, 16};
    pretrain_data d = pretrain_data_squares(&sq);
    // first the VAE alone and 40 UNet steps, then --resume to 80
    o.unet_steps = 40;
    REQUIRE(pretrain_run(&o, &d) == 0);
    int last = 0;
    double v0 = log_mean(logp, "vae", 1, 10, NULL), v1 = log_mean(logp, "vae", 81, 90, &last);
    fprintf(stderr, "    vae reconstruction (L1+L2): steps 1-10 %.4f, steps 81-90 %.4f\n", v0, v1);
    CHECK(v1 < 0.75 * v0);
    CHECK_EQ_INT(last, 100);
    o.resume = 1, o.unet_steps = 80;
    REQUIRE(pretrain_run(&o, &d) == 0);
    double u0 = log_mean(logp, "unet", 1, 10, NULL), u1 = log_mean(logp, "unet", 71, 80, &last);
    fprintf(stderr, "    unet eps MSE: steps 1-10 %.4f, steps 71-80 %.4f\n", u0, u1);
    CHECK_EQ_INT(last, 80);
    CHECK(u1 < 0.8 * u0);
    // the resumed run logged steps 41..80 only (no VAE steps again, no UNet step twice)
    FILE *f = fopen(logp, "r");
    REQUIRE(f);
    char line[512];
    int vae_rows = 0, unet_rows = 0;
    while (fgets(line, sizeof line, f)) vae_rows += !strncmp(line, "vae,", 4), unet_rows += !strncmp(line, "unet,", 5);
    fclose(f);
    CHECK_EQ_INT(vae_rows, 100);
    CHECK_EQ_INT(unet_rows, 80);
    // the loss curve beside the weights: a PNG of the plot's size
    char png[4200];
    snprintf(png, sizeof png, "%s/loss.png", out);
    int H = 0, W = 0;
    uint8_t *px = image_load_u8(png, &H, &W);
    CHECK_MSG(px && H > 100 && W > 100, "%s: %dx%d", png, W, H);
    free(px);
    // the folder is a model `sample` loads
    char cmd_out[8192];
    int rc = run_cmd(cmd_out, sizeof cmd_out, "%s sample --model %s --prompt 'a red square on a blue background' "
                     "--steps 2 --width 16 --height 16 --out %s 2>&1", singlora_bin(), out, tmp_path("samples"));
    CHECK_MSG(rc == 0, "sample failed: %s", cmd_out);
}

// Two files with the same bytes (1), different (0), or missing (-1).
static int same_bytes(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int r = -1;
    if (fa && fb) {
        int ca, cb;
        do ca = getc(fa), cb = getc(fb);
        while (ca == cb && ca != EOF);
        r = ca == cb;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return r;
}

// The joint text-encoder training under v-prediction: 30 steps then --resume to 60 ends with the
// same UNet and text-encoder states, byte for byte, as 60 steps in one go; the folder's text
// encoder moved away from its random start (a frozen run, --text-lr 0, keeps that start).
TEST(pretrain_text_encoder_trains_and_resumes_exactly) {
    const char *cfg = tiny_configs(1);
    REQUIRE(cfg);
    char out[3][1024], ck[3][1024], p[3][4300];
    const char *names[3] = {"split", "whole", "frozen"};
    pretrain_source sq = {0, 16};
    pretrain_data d = pretrain_data_squares(&sq);
    for (int r = 0; r < 3; r++) {
        snprintf(out[r], sizeof out[r], "%s-model", tmp_path(names[r]));
        snprintf(ck[r], sizeof ck[r], "%s-ckpt", tmp_path(names[r]));
        pretrain_opts o = pretrain_defaults();
        o.out = out[r], o.ckpt = ck[r], o.config = cfg, o.seed = 3, o.threads = 2;
        o.vae_steps = 20, o.vae_batch = 4, o.vae_kl_start = 15, o.n_latents = 64;
        o.unet_batch = 8, o.unet_warmup = 5, o.unet_lr = 2e-3, o.text_lr = r == 2 ? 0 : 2e-3;
        o.log_every = 1000, o.ckpt_every_s = 1e9;
        o.unet_steps = r == 0 ? 30 : 60;
        REQUIRE(pretrain_run(&o, &d) == 0);
        if (r == 0) {
            o.resume = 1, o.unet_steps = 60;
            REQUIRE(pretrain_run(&o, &d) == 0);
        }
    }
    const char *states[2] = {"unet_state.safetensors", "text_state.safetensors"};
    for (int k = 0; k < 2; k++) {
        snprintf(p[0], sizeof p[0], "%s/%s", ck[0], states[k]);
        snprintf(p[1], sizeof p[1], "%s/%s", ck[1], states[k]);
        CHECK_MSG(same_bytes(p[0], p[1]) == 1, "%s: resumed and uninterrupted runs differ", states[k]);
    }
    snprintf(p[2], sizeof p[2], "%s/text_state.safetensors", ck[2]);
    CHECK(same_bytes(p[2], p[2]) == -1);   // a frozen text encoder has no state
    for (int r = 0; r < 3; r++) snprintf(p[r], sizeof p[r], "%s/text_encoder/model.safetensors", out[r]);
    CHECK(same_bytes(p[0], p[1]) == 1);
    CHECK(same_bytes(p[1], p[2]) == 0);    // trained != the random start

    // --init-from: a second run continues from the 60-step folder's weights (no VAE phase); its
    // first losses are the trained model's, far below a fresh run's first steps
    char out2[1024], ck2[1024], log1[1100], log2[1100];
    snprintf(out2, sizeof out2, "%s-model", tmp_path("continued"));
    snprintf(ck2, sizeof ck2, "%s-ckpt", tmp_path("continued"));
    pretrain_opts o = pretrain_defaults();
    o.out = out2, o.ckpt = ck2, o.init_from = out[1], o.seed = 3, o.threads = 2, o.n_latents = 64;
    o.unet_batch = 8, o.unet_warmup = 2, o.unet_lr = 2e-3, o.text_lr = 2e-3, o.unet_steps = 5;
    o.unet_lr_schedule = LR_COSINE, o.log_every = 1000, o.ckpt_every_s = 1e9;
    REQUIRE(pretrain_run(&o, &d) == 0);
    snprintf(log1, sizeof log1, "%s/log.csv", ck[1]);
    snprintf(log2, sizeof log2, "%s/log.csv", ck2);
    int last = 0;
    double fresh = log_mean(log1, "unet", 1, 5, NULL), cont = log_mean(log2, "unet", 1, 5, &last);
    fprintf(stderr, "    v-MSE steps 1-5: fresh %.4f, continued from step 60 %.4f\n", fresh, cont);
    CHECK(cont < 0.8 * fresh);
    CHECK_EQ_INT(last, 5);
    CHECK(isnan(log_mean(log2, "vae", 0, 1 << 30, NULL)));   // the VAE was taken as trained
    char va[1200], vb[1200], vc[1200];
    snprintf(va, sizeof va, "%s/vae/diffusion_pytorch_model.safetensors", out[1]);
    snprintf(vb, sizeof vb, "%s/vae/diffusion_pytorch_model.safetensors", out2);
    CHECK_MSG(same_bytes(va, vb) == 1, "the VAE taken as trained was rewritten differently");
    // --vae-continue: the VAE trains on from the loaded weights (its log has the VAE's steps,
    // its losses start at the trained VAE's) and the written VAE differs from the one it read
    char out3[1024], ck3[1024], log3[1100];
    snprintf(out3, sizeof out3, "%s-model", tmp_path("vae-continued"));
    snprintf(ck3, sizeof ck3, "%s-ckpt", tmp_path("vae-continued"));
    pretrain_opts o3 = o;
    o3.out = out3, o3.ckpt = ck3, o3.vae_continue = 1, o3.vae_steps = 6, o3.vae_batch = 4, o3.vae_kl_start = 0;
    o3.unet_steps = 2;
    REQUIRE(pretrain_run(&o3, &d) == 0);
    snprintf(log3, sizeof log3, "%s/log.csv", ck3);
    snprintf(vc, sizeof vc, "%s/vae/diffusion_pytorch_model.safetensors", out3);
    int vlast = 0;
    double vfresh = log_mean(log1, "vae", 1, 1, NULL), vend = log_mean(log1, "vae", 18, 20, NULL);
    double vcont = log_mean(log3, "vae", 1, 1, &vlast);
    fprintf(stderr, "    VAE loss: fresh step 1 %.4f, steps 18-20 %.4f; continued step 1 %.4f\n", vfresh, vend, vcont);
    CHECK_EQ_INT(vlast, 6);
    CHECK(vcont < vfresh && fabs(vcont - vend) < fabs(vcont - vfresh));
    CHECK(same_bytes(va, vc) == 0);
    o.out = out[1];   // rewriting the folder it reads from is refused
    CHECK(pretrain_run(&o, &d) != 0);
    CHECK(strstr(sl_error_msg(), "must differ") != NULL);
}
