// bench_eval_models: seconds per image for the fidelity models at real size with random weights:
// DINO ViT-S/16 (transformers ViTModel names) and the CLIP ViT-B/32 image tower, each built from
// the tensor names and shapes in fixtures/eval/key_lists.json (every walked tensor must be listed
// there with that shape). Times the preprocessing of a 512×384 photo-sized image and the forward
// of one 224×224 image, best of --repeat runs after a warm-up.
//   build/bench_eval_models --keys key_lists.json [--repeat 5]
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "eval/clip_vision.h"
#include "eval/dino.h"
#include "eval/preprocess.h"
#include "tools/args.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float uniform(void) {   // [-1, 1)
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23)) - 1.0);
}

typedef struct {
    const cJSON *keys;   // name -> shape
    int64_t params;
    int n;
} init_ctx;

// Random weights (PyTorch's default ranges) for every walked tensor, checked against the key list.
static int init_visitor(void *ctx, const param_desc *p) {
    init_ctx *c = ctx;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(c->keys, p->name);
    if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) != p->ndim) sl_die(NULL, "key list: no tensor '%s' of %d dims", p->name, p->ndim);
    for (int i = 0; i < p->ndim; i++)
        if ((int64_t)cJSON_GetArrayItem(s, i)->valuedouble != p->shape[i]) sl_die(NULL, "key list: '%s' has another shape", p->name);
    int64_t n = shape_numel(p->ndim, p->shape);
    float *x = sl_alloc_f32(n);
    float b = p->kind == PARAM_WEIGHT || p->kind == PARAM_BIAS ? 1.0f / sqrtf((float)(p->fan_in > 0 ? p->fan_in : 1)) : 0;
    for (int64_t i = 0; i < n; i++) x[i] = p->kind == PARAM_NORM_WEIGHT ? 1.0f : b * uniform();
    *p->slot = x;
    c->params += n;
    c->n++;
    return 0;
}

static int dim(const cJSON *keys, const char *name, int i) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(keys, name);
    if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) <= i) sl_die(NULL, "key list: no tensor '%s'", name);
    return (int)cJSON_GetArrayItem(s, i)->valuedouble;
}

static int count_layers(const cJSON *keys, const char *fmt) {
    char name[160];
    int n = 0;
    for (;; n++) {
        snprintf(name, sizeof name, fmt, n);
        if (!cJSON_GetObjectItemCaseSensitive(keys, name)) return n;
    }
}

static const cJSON *section(const cJSON *root, const char *prefix) {
    for (const cJSON *c = root->child; c; c = c->next)
        if (!strncmp(c->string, prefix, strlen(prefix))) return c;
    sl_die(NULL, "key list: no section '%s...'", prefix);
}

int main(int argc, char **argv) {
    const char *keys_path = NULL, *v;
    int repeat = 5;
    for (int i = 1; i < argc; i++) {
        if (arg_value(argc, argv, &i, "--keys", &keys_path)) {}
        else if (arg_value(argc, argv, &i, "--repeat", &v)) repeat = (int)arg_int_range("--repeat", v, 1, 1000000);
        else arg_unknown("bench_eval_models", argv[i]);
    }
    if (!keys_path) sl_die(NULL, "bench_eval_models: --keys FILE is required");
    FILE *f = fopen(keys_path, "rb");
    if (!f) sl_die(keys_path, "cannot open");
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    cJSON *root = cJSON_Parse(text);
    if (!root) sl_die(keys_path, "not JSON");

    // a photo-sized test image (H, W, 3)
    int IH = 384, IW = 512;
    uint8_t *img = malloc((size_t)IH * IW * 3);
    for (int i = 0; i < IH * IW * 3; i++) img[i] = (uint8_t)(128 + 127 * uniform());

    for (int which = 0; which < 2; which++) {
        vit_config c = {0};
        const cJSON *keys;
        const vit_names *names;
        const char *label;
        if (which == 0) {
            keys = section(root, "dino_hf_vits16");
            names = &DINO_HF_NAMES;
            label = "DINO ViT-S/16";
            c.hidden = dim(keys, "embeddings.cls_token", 2);
            c.patch_size = dim(keys, "embeddings.patch_embeddings.projection.weight", 2);
            c.image_size = (int)lround(sqrt(dim(keys, "embeddings.position_embeddings", 1) - 1.0)) * c.patch_size;
            c.layers = count_layers(keys, "encoder.layer.%d.layernorm_before.weight");
            c.intermediate = dim(keys, "encoder.layer.0.intermediate.dense.weight", 0);
            c.eps = 1e-6f;
            c.act = VIT_ACT_GELU;
            c.patch_bias = c.qkv_bias = 1;
        } else {
            keys = section(root, "clip_hf_vit_b32");
            names = &CLIP_VISION_NAMES;
            label = "CLIP ViT-B/32 image";
            c.hidden = dim(keys, "vision_model.embeddings.class_embedding", 0);
            c.patch_size = dim(keys, "vision_model.embeddings.patch_embedding.weight", 2);
            c.image_size = (int)lround(sqrt(dim(keys, "vision_model.embeddings.position_embedding.weight", 0) - 1.0)) * c.patch_size;
            c.layers = count_layers(keys, "vision_model.encoder.layers.%d.layer_norm1.weight");
            c.intermediate = dim(keys, "vision_model.encoder.layers.0.mlp.fc1.weight", 0);
            c.eps = 1e-5f;
            c.act = VIT_ACT_QUICK_GELU;
            c.qkv_bias = c.pre_norm = 1;
        }
        c.channels = 3;
        c.heads = c.hidden / 64;   // the released models' 64-wide heads
        if (vit_config_check(&c, keys_path) != 0) sl_fail();
        vit_model *m = vit_model_new(&c);
        init_ctx ic = {keys, 0, 0};
        vit_walk(m, names, init_visitor, &ic);
        int S = c.image_size, D = c.hidden, T = vit_tokens(&c);
        preprocess_spec spec = which == 0 ? preprocess_dino(S) : preprocess_clip(S);
        float *px = sl_alloc_f32((int64_t)3 * S * S), *x = sl_alloc_f32((int64_t)T * D), *cls = sl_alloc_f32(D);
        double best_pre = 1e30, best_fwd = 1e30;
        for (int r = 0; r <= repeat; r++) {   // r = 0 warms up
            double t0 = now_s();
            preprocess_image(px, img, IH, IW, &spec, NULL, NULL);
            double t1 = now_s();
            vit_forward(m, px, 1, x, NULL);
            vit_final_norm(m, cls, x, 1);
            double t2 = now_s();
            if (r) {
                if (t1 - t0 < best_pre) best_pre = t1 - t0;
                if (t2 - t1 < best_fwd) best_fwd = t2 - t1;
            }
        }
        printf("%-20s %dpx/%d, %d layers, width %d, %d heads, %lld params (%d tensors from the key list): "
               "preprocess %.4f s, forward %.4f s per image\n",
               label, S, c.patch_size, c.layers, D, c.heads, (long long)ic.params, ic.n, best_pre, best_fwd);
        sl_free_aligned(px);
        sl_free_aligned(x);
        sl_free_aligned(cls);
        vit_free(m);
    }
    free(img);
    cJSON_Delete(root);
    return 0;
}
