#include "engine/train/latent_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/core/sha256.h"
#include "engine/core/tensor.h"
#include "engine/dist/dist.h"
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

// Where entry i lives on disk and the settings string recorded in it.
typedef struct {
    char path[4200], settings[512];
    const char *prompt;
    image_prep prep;
} entry_key;

static void entry_key_of(entry_key *k, const char *model_sha, const dataset_image *im, const char *default_prompt,
                         const image_prep *prep, uint64_t image_seed0, int i, int flips, const char *cache_dir) {
    k->prompt = im->caption ? im->caption : default_prompt;
    k->prep = *prep;
    k->prep.crop_seed = example_stream_key(image_seed0, 0, i) & 0xffffffffull;
    // the key: everything the entry depends on
    char hex[65];
    snprintf(k->settings, sizeof k->settings, "singlora-cache-1|%s|R%d|center%d|crop%llu|flips%d|", model_sha,
             prep->resolution, k->prep.center_crop, (unsigned long long)(k->prep.center_crop ? 0 : k->prep.crop_seed), flips);
    uint8_t dig[32];
    sha256_ctx h;
    sha256_init(&h);
    sha256_update(&h, k->settings, strlen(k->settings));
    sha256_update(&h, im->sha, 32);
    sha256_update(&h, k->prompt, strlen(k->prompt) + 1);
    sha256_final(&h, dig);
    for (int q = 0; q < 32; q++) snprintf(hex + 2 * q, 3, "%02x", dig[q]);
    snprintf(k->path, sizeof k->path, "%s/%s.safetensors", cache_dir, hex);
}

// Entry e from its cache file; 1 when it was there and whole.
static int read_entry(cached_example *e, const char *path, int64_t nm, int flips, int D, int *Lc) {
    st_file *cf = st_open(path);
    sl_error_clear();
    if (!cf) return 0;
    const st_entry *ce = st_find(cf, "context");
    int L = ce && ce->ndim == 2 && ce->shape[1] == D ? (int)ce->shape[0] : 0;
    e->moments[0] = copy_entry(cf, "moments.0", nm);
    e->moments[1] = flips ? copy_entry(cf, "moments.1", nm) : NULL;
    e->context = L ? copy_entry(cf, "context", (int64_t)L * D) : NULL;
    st_close(cf);
    if (e->moments[0] && (!flips || e->moments[1]) && e->context && (!*Lc || *Lc == L)) {
        *Lc = L;
        return 1;
    }
    free_example(e);   // damaged or of another shape: rebuild
    return 0;
}

// The split over ranks (engine/dist/): rank 0 alone reads and writes CACHE_DIR; the entries it
// lacks are computed round-robin by the ranks, and every entry is broadcast from the rank that
// has it, so every rank ends with the whole cache (no shared file is written by two ranks).
int latent_cache_build(latent_cache *c, const sd_model *m, const char *model_sha, const image_folder *f,
                       const char *default_prompt, const image_prep *prep, uint64_t image_seed0, int flips,
                       const char *cache_dir) {
    memset(c, 0, sizeof *c);
    const int fct = vae_factor(&m->vae->cfg), R = prep->resolution, rank = dist_rank();
    c->n = f->n;
    c->C_lat = m->vae->cfg.latent_channels;
    c->h = R / fct;
    c->w = R / fct;
    c->D = m->unet->cfg.cross_attention_dim;
    c->ex = sl_calloc((size_t)f->n + 1, sizeof *c->ex);
    const int64_t nm = (int64_t)2 * c->C_lat * c->h * c->w;
    entry_key *keys = sl_calloc((size_t)f->n + 1, sizeof *keys);
    int *src = sl_calloc((size_t)f->n + 1, sizeof *src);   // -1: read by rank 0, else the building rank
    int *Ls = sl_calloc((size_t)f->n + 1, sizeof *Ls);
    int rc = -1, Lc = 0;
    for (int i = 0; i < f->n; i++) {
        entry_key_of(&keys[i], model_sha, &f->images[i], default_prompt, prep, image_seed0, i, flips, cache_dir);
        src[i] = rank == 0 && read_entry(&c->ex[i], keys[i].path, nm, flips, c->D, &Lc) ? -1 : 0;
    }
    if (dist_bcast(src, sizeof *src * (size_t)f->n, 0) != 0) goto done;
    const char *prev_prompt = NULL;
    float *prev_ctx = NULL;
    int prev_L = 0;
    for (int i = 0, missing = 0; i < f->n; i++) {
        if (src[i] < 0) { c->reused++; continue; }
        src[i] = dist_owner(missing++);
        c->built++;
        if (src[i] != rank) continue;
        const dataset_image *im = &f->images[i];
        cached_example *e = &c->ex[i];
        for (int fl = 0; fl <= flips; fl++) {
            float *img = image_prepare(im->path, &keys[i].prep, fl);
            if (!img) goto done;
            e->moments[fl] = sl_alloc_f32(nm);
            vae_encode(m->vae, e->moments[fl], img, 1, R, R);
            sl_free_aligned(img);
        }
        int L;
        if (prev_prompt && strcmp(prev_prompt, keys[i].prompt) == 0) {
            L = prev_L;
            e->context = sl_alloc_f32((int64_t)L * c->D);
            memcpy(e->context, prev_ctx, sizeof(float) * (size_t)L * c->D);
        } else {
            sd_conditioning cond;
            if (sd_encode_prompts(m, keys[i].prompt, NULL, 0, 0, &cond) != 0) goto done;
            L = cond.L;
            e->context = sl_alloc_f32((int64_t)L * c->D);
            memcpy(e->context, cond.cond, sizeof(float) * (size_t)L * c->D);
            sd_conditioning_free(&cond);
        }
        Ls[i] = L;
        prev_prompt = keys[i].prompt;
        prev_ctx = e->context;
        prev_L = L;
    }
    // every entry from the rank that has it
    for (int i = 0; i < f->n; i++) {
        const int from = src[i] < 0 ? 0 : src[i];
        cached_example *e = &c->ex[i];
        if (src[i] < 0 && rank == 0) Ls[i] = Lc;
        if (dist_bcast(&Ls[i], sizeof *Ls, from) != 0) goto done;
        if (rank != from) {
            e->moments[0] = sl_alloc_f32(nm);
            e->moments[1] = flips ? sl_alloc_f32(nm) : NULL;
            e->context = sl_alloc_f32((int64_t)Ls[i] * c->D);
        }
        if (dist_bcast(e->moments[0], sizeof(float) * (size_t)nm, from) != 0 ||
            (flips && dist_bcast(e->moments[1], sizeof(float) * (size_t)nm, from) != 0) ||
            dist_bcast(e->context, sizeof(float) * (size_t)Ls[i] * c->D, from) != 0)
            goto done;
        if (c->L && c->L != Ls[i]) { sl_error(f->images[i].path, "prompt conditioning has %d tokens, others %d", Ls[i], c->L); goto done; }
        c->L = Ls[i];
    }
    // rank 0 writes what was built
    for (int i = 0; rank == 0 && i < f->n; i++) {
        if (src[i] < 0) continue;
        cached_example *e = &c->ex[i];
        st_writer *w = st_writer_new();
        int64_t sm[3] = {2 * c->C_lat, c->h, c->w}, sc[2] = {c->L, c->D};
        st_writer_add(w, "moments.0", DT_F32, 3, sm, e->moments[0]);
        if (flips) st_writer_add(w, "moments.1", DT_F32, 3, sm, e->moments[1]);
        st_writer_add(w, "context", DT_F32, 2, sc, e->context);
        st_writer_meta(w, "image", f->images[i].path);
        st_writer_meta(w, "prompt", keys[i].prompt);
        st_writer_meta(w, "settings", keys[i].settings);
        int wrc = st_writer_save(w, keys[i].path);
        st_writer_free(w);
        if (wrc != 0) goto done;
    }
    rc = 0;
done:
    free(keys);
    free(src);
    free(Ls);
    return rc;
}

void latent_cache_free(latent_cache *c) {
    for (int i = 0; c->ex && i < c->n; i++) free_example(&c->ex[i]);
    free(c->ex);
    memset(c, 0, sizeof *c);
}
