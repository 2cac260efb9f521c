#include "engine/train/latent_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/core/sha256.h"
#include "engine/core/tensor.h"
#include "engine/train/example_rng.h"
#include "pipeline/prompt.h"

static float *copy_entry(const st_file *f, const char *name, int64_t n) {
    const st_entry *e = st_find(f, name);
    if (!e || e->dt != DT_F32 || (int64_t)(e->end - e->begin) != n * 4) return NULL;
    float *p = sl_alloc_f32(n);
    memcpy(p, e->data, sizeof(float) * (size_t)n);
    return p;
}

static void free_example(cached_example *e) {
    sl_free_aligned(e->moments[0]);
    sl_free_aligned(e->moments[1]);
    sl_free_aligned(e->context);
    memset(e, 0, sizeof *e);
}

int latent_cache_build(latent_cache *c, const sd_model *m, const char *model_sha, const image_folder *f,
                       const char *default_prompt, const image_prep *prep, uint64_t image_seed0, int flips,
                       const char *cache_dir) {
    memset(c, 0, sizeof *c);
    const int fct = vae_factor(&m->vae->cfg), R = prep->resolution;
    c->n = f->n;
    c->C_lat = m->vae->cfg.latent_channels;
    c->h = R / fct;
    c->w = R / fct;
    c->D = m->unet->cfg.cross_attention_dim;
    c->ex = sl_calloc((size_t)f->n + 1, sizeof *c->ex);
    const int64_t nm = (int64_t)2 * c->C_lat * c->h * c->w;
    const char *prev_prompt = NULL;
    float *prev_ctx = NULL;
    int prev_L = 0;
    for (int i = 0; i < f->n; i++) {
        const dataset_image *im = &f->images[i];
        const char *prompt = im->caption ? im->caption : default_prompt;
        image_prep p = *prep;
        p.crop_seed = example_stream_key(image_seed0, 0, i) & 0xffffffffull;
        // the key: everything the entry depends on
        char settings[512], hex[65], path[4200];
        snprintf(settings, sizeof settings, "singlora-cache-1|%s|R%d|center%d|crop%llu|flips%d|", model_sha, R,
                 p.center_crop, (unsigned long long)(p.center_crop ? 0 : p.crop_seed), flips);
        uint8_t dig[32];
        sha256_ctx h;
        sha256_init(&h);
        sha256_update(&h, settings, strlen(settings));
        sha256_update(&h, im->sha, 32);
        sha256_update(&h, prompt, strlen(prompt) + 1);
        sha256_final(&h, dig);
        for (int k = 0; k < 32; k++) snprintf(hex + 2 * k, 3, "%02x", dig[k]);
        snprintf(path, sizeof path, "%s/%s.safetensors", cache_dir, hex);
        cached_example *e = &c->ex[i];
        st_file *cf = st_open(path);
        sl_error_clear();
        if (cf) {
            const st_entry *ce = st_find(cf, "context");
            int L = ce && ce->ndim == 2 && ce->shape[1] == c->D ? (int)ce->shape[0] : 0;
            e->moments[0] = copy_entry(cf, "moments.0", nm);
            e->moments[1] = flips ? copy_entry(cf, "moments.1", nm) : NULL;
            e->context = L ? copy_entry(cf, "context", (int64_t)L * c->D) : NULL;
            st_close(cf);
            if (e->moments[0] && (!flips || e->moments[1]) && e->context && (!c->L || c->L == L)) {
                c->L = L;
                c->reused++;
                continue;
            }
            free_example(e);   // damaged or of another shape: rebuild
        }
        for (int fl = 0; fl <= flips; fl++) {
            float *img = image_prepare(im->path, &p, fl);
            if (!img) return -1;
            e->moments[fl] = sl_alloc_f32(nm);
            vae_encode(m->vae, e->moments[fl], img, 1, R, R);
            sl_free_aligned(img);
        }
        int L;
        if (prev_prompt && strcmp(prev_prompt, prompt) == 0) {
            L = prev_L;
            e->context = sl_alloc_f32((int64_t)L * c->D);
            memcpy(e->context, prev_ctx, sizeof(float) * (size_t)L * c->D);
        } else {
            sd_conditioning cond;
            if (sd_encode_prompts(m, prompt, NULL, 0, 0, &cond) != 0) return -1;
            L = cond.L;
            e->context = sl_alloc_f32((int64_t)L * c->D);
            memcpy(e->context, cond.cond, sizeof(float) * (size_t)L * c->D);
            sd_conditioning_free(&cond);
        }
        if (c->L && c->L != L) return sl_error(im->path, "prompt conditioning has %d tokens, others %d", L, c->L);
        c->L = L;
        prev_prompt = prompt;
        prev_ctx = e->context;
        prev_L = L;
        st_writer *w = st_writer_new();
        int64_t sm[3] = {2 * c->C_lat, c->h, c->w}, sc[2] = {L, c->D};
        st_writer_add(w, "moments.0", DT_F32, 3, sm, e->moments[0]);
        if (flips) st_writer_add(w, "moments.1", DT_F32, 3, sm, e->moments[1]);
        st_writer_add(w, "context", DT_F32, 2, sc, e->context);
        st_writer_meta(w, "image", im->path);
        st_writer_meta(w, "prompt", prompt);
        st_writer_meta(w, "settings", settings);
        int rc = st_writer_save(w, path);
        st_writer_free(w);
        if (rc != 0) return -1;
        c->built++;
    }
    return 0;
}

void latent_cache_free(latent_cache *c) {
    for (int i = 0; c->ex && i < c->n; i++) free_example(&c->ex[i]);
    free(c->ex);
    memset(c, 0, sizeof *c);
}
