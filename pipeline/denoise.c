#include "pipeline/denoise.h"

#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"

int sd_img2img_start(const sl_sampler *sm, float strength) {
    int steps = sm->steps;
    int init = (int)((float)steps * strength);
    if (init > steps) init = steps;
    int t_start = steps - init;
    if (t_start < 0) t_start = 0;
    int order = sm->n_evals > steps ? 2 : 1;   // heun evaluates twice per step
    return t_start * order;
}

int sd_denoise(const sd_model *m, const float *cond, const float *uncond, int L, float *latents,
               const float *init_latent, int h, int w, const sd_denoise_opts *o, sl_rng *rng) {
    const unet_config *uc = &m->unet->cfg;
    int C = uc->in_channels, D = uc->cross_attention_dim;
    int64_t n = (int64_t)C * h * w;
    int guided = o->cfg != 1.0f;
    if (guided && !uncond) return sl_error(NULL, "classifier-free guidance %g needs an unconditional prompt", (double)o->cfg);
    sl_sampler *sm = sl_sampler_new(&m->sched, &o->sampler, n);
    if (!sm) return -1;
    int start = 0;
    if (init_latent) {
        start = sd_img2img_start(sm, o->strength);
        if (start >= sm->n_evals) {   // strength 0: nothing to do
            memcpy(latents, init_latent, sizeof(float) * (size_t)n);
            sl_sampler_free(sm);
            return 0;
        }
        sl_sampler_add_noise(sm, start, latents, init_latent, latents);
    } else {
        for (int64_t k = 0; k < n; k++) latents[k] *= sm->init_noise_sigma;
    }
    int B = guided ? 2 : 1;
    float *xin = sl_alloc_f32(B * n), *out = sl_alloc_f32(B * n), *g = sl_alloc_f32(n);
    float *ctx = sl_alloc_f32((int64_t)B * L * D), *t = sl_alloc_f32(B);
    // batch order [uncond, cond]
    if (guided) memcpy(ctx, uncond, sizeof(float) * (size_t)L * D);
    memcpy(ctx + (size_t)(B - 1) * L * D, cond, sizeof(float) * (size_t)L * D);
    int rc = 0;
    if (o->on_start) o->on_start(o->ctx, sm->n_evals - start);
    for (int i = start; i < sm->n_evals && rc == 0; i++) {
        sl_sampler_scale_model_input(sm, i, xin, latents);
        if (guided) memcpy(xin + n, xin, sizeof(float) * (size_t)n);
        for (int b = 0; b < B; b++) t[b] = sm->timesteps[i];
        rc = unet_forward(out, xin, t, ctx, B, h, w, L, m->unet, NULL);
        if (rc) break;
        if (guided) {
            // noise_pred = uncond + cfg · (cond − uncond)
            for (int64_t k = 0; k < n; k++) g[k] = out[k] + o->cfg * (out[n + k] - out[k]);
        } else {
            memcpy(g, out, sizeof(float) * (size_t)n);
        }
        rc = sl_sampler_step(sm, i, g, latents, NULL, rng);
        // the inputs are finite (checked at load), so this is an overflow: say where, rather than
        // decoding a black image
        if (rc == 0 && f32_first_nonfinite(latents, n) >= 0)
            rc = sl_error(NULL, "sampling step %d of %d: the latents became non-finite (nan or inf)", i - start + 1,
                          sm->n_evals - start);
        if (rc == 0 && o->on_step) o->on_step(o->ctx, i - start, sm->n_evals - start, latents, g);
    }
    sl_free_aligned(xin);
    sl_free_aligned(out);
    sl_free_aligned(g);
    sl_free_aligned(ctx);
    sl_free_aligned(t);
    sl_sampler_free(sm);
    return rc;
}
