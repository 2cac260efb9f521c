#include "pipeline/generate.h"

#include <string.h>

#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/core/tensor.h"
#include "vae/vae.h"

void sd_encode_image(const sd_model *m, float *moments, const float *image, int H, int W, int tiling) {
    if (tiling) vae_encode_tiled(m->vae, moments, image, 1, H, W, vae_tiling_default());
    else vae_encode(m->vae, moments, image, 1, H, W);
}

void sd_decode_latents(const sd_model *m, float *image, const float *latents, int h, int w, int tiling) {
    int64_t n = (int64_t)m->vae->cfg.latent_channels * h * w;
    float *z = sl_alloc_f32(n);
    for (int64_t q = 0; q < n; q++) z[q] = latents[q] / m->vae->cfg.scaling_factor;
    if (tiling) vae_decode_tiled(m->vae, image, z, 1, h, w, vae_tiling_default());
    else vae_decode(m->vae, image, z, 1, h, w);
    sl_free_aligned(z);
}

int sd_generator_init(sd_generator *g, const sd_model *m, const sd_generate_opts *o) {
    memset(g, 0, sizeof *g);
    g->m = m;
    g->o = *o;
    int f = vae_factor(&m->vae->cfg);
    if (o->width <= 0 || o->height <= 0 || o->width % f || o->height % f)
        return sl_error(NULL, "width and height must be positive multiples of %d (the VAE's factor), got %dx%d", f,
                        o->width, o->height);
    g->h = o->height / f, g->w = o->width / f, g->C = m->unet->cfg.in_channels;
    if (sd_encode_prompts(m, o->prompt, o->negative, o->denoise.cfg != 1.0f,
                          (o->long_prompts ? SD_PROMPT_LONG : 0) | (o->no_emphasis ? 0 : SD_PROMPT_EMPHASIS), &g->cond) != 0) return -1;
    if (o->init_image) {
        if (!(m->vae->parts & VAE_ENCODER)) return sl_error(NULL, "img2img needs the VAE encoder (load it with vae_parts = VAE_BOTH)");
        g->moments = sl_alloc_f32((int64_t)2 * g->C * g->h * g->w);
        sd_encode_image(m, g->moments, o->init_image, o->height, o->width, o->vae_tiling);
    }
    return 0;
}

int sd_generate_latents(sd_generator *g, uint64_t seed, float *lat) {
    const int64_t n = (int64_t)g->C * g->h * g->w;
    float *init_latent = NULL;
    sl_rng rng;
    sl_rng_seed(&rng, seed);
    if (g->moments) {
        // diffusers' img2img: the posterior sample draws from the generator first, then the noise
        float *eps = sl_alloc_f32(n);
        init_latent = sl_alloc_f32(n);
        sl_rng_randn(&rng, eps, (size_t)n);
        vae_posterior(&g->m->vae->cfg, NULL, NULL, init_latent, g->moments, eps, 1, g->h, g->w);
        for (int64_t q = 0; q < n; q++) init_latent[q] *= g->m->vae->cfg.scaling_factor;
        sl_free_aligned(eps);
    }
    sl_rng_randn(&rng, lat, (size_t)n);
    int rc = sd_denoise(g->m, g->cond.cond, g->cond.uncond, g->cond.L, lat, init_latent, g->h, g->w, &g->o.denoise, &rng);
    sl_free_aligned(init_latent);
    return rc;
}

void sd_generator_decode(const sd_generator *g, const float *latents, float *image) {
    sd_decode_latents(g->m, image, latents, g->h, g->w, g->o.vae_tiling);
}

int sd_generate(sd_generator *g, uint64_t seed, float *image) {
    float *lat = sl_alloc_f32((int64_t)g->C * g->h * g->w);
    int rc = sd_generate_latents(g, seed, lat);
    if (rc == 0) sd_generator_decode(g, lat, image);
    sl_free_aligned(lat);
    return rc;
}

void sd_generator_free(sd_generator *g) {
    sd_conditioning_free(&g->cond);
    sl_free_aligned(g->moments);
    g->moments = NULL;
}
