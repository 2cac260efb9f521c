// singlora forward dino | clip-image | clip-text: the fidelity models on inputs from files.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "eval/clip_model.h"
#include "eval/dino.h"
#include "eval/preprocess.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/io.h"

static const char *HELP_IMAGE =
    "usage: singlora forward %s --model PATH --in IN [--in IN2 ...] --out OUT.safetensors [--threads N] [--precision fp32|bf16] [--profile]\n\n"
    "IN: a .safetensors with pixel_values (N, 3, S, S), already normalised, or image files (PNG, JPEG,\n"
    "...), preprocessed as torchvision on PIL does (%s); OUT then also holds the\n"
    "pixel_values used. S is the model's image_size.\n"
    "OUT: %s\n";

typedef struct {
    const char *model, *out;
    const char *in[256];
    int n_in, threads;
} image_args;

static void parse_image_args(int argc, char **argv, const char *target, const char *help, image_args *a) {
    memset(a, 0, sizeof *a);
    const char *v;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(help, stdout); exit(0); }
        else if (arg_value(argc, argv, &i, "--model", &a->model)) {}
        else if (arg_value(argc, argv, &i, "--in", &v)) {
            if (a->n_in == 256) sl_die(NULL, "forward %s: at most 256 --in files", target);
            a->in[a->n_in++] = v;
        }
        else if (arg_value(argc, argv, &i, "--out", &a->out)) {}
        else if (arg_precision(argc, argv, &i)) {}
        else if (arg_profile(argv, i)) {}
        else if (arg_value(argc, argv, &i, "--threads", &v)) a->threads = arg_threads("--threads", v);
        else arg_unknown(target, argv[i]);
    }
    if (!a->model || !a->n_in || !a->out) sl_die(NULL, "forward %s: --model, --in and --out are required (see --help)", target);
    set_threads(a->threads);
}

// pixel_values (N, 3, S, S): from a safetensors IN, or the preprocessed image files.
static float *input_pixels(const image_args *a, const preprocess_spec *spec, int C, int S, int *N, int *from_images) {
    *from_images = !(a->n_in == 1 && ends_with(a->in[0], ".safetensors"));
    if (!*from_images) {
        st_file *f = st_open(a->in[0]);
        if (!f) sl_fail();
        const st_entry *e = input_tensor(f, "pixel_values", 4, "(N, C, S, S) pixel_values");
        if (e->shape[1] != C || e->shape[2] != S || e->shape[3] != S)
            sl_die(a->in[0], "pixel_values is [%lld, %lld, %lld, %lld]; the model takes (N, %d, %d, %d)",
                   (long long)e->shape[0], (long long)e->shape[1], (long long)e->shape[2], (long long)e->shape[3], C, S, S);
        input_require_f32(f, e, "pixel_values");
        *N = (int)e->shape[0];
        float *px = input_copy_f32(e);
        st_close(f);
        return px;
    }
    if (C != 3) sl_die(a->model, "the model takes %d channels; image inputs are RGB", C);
    float *px = sl_alloc_f32((int64_t)a->n_in * 3 * S * S);
    for (int i = 0; i < a->n_in; i++) {
        int h, w;
        uint8_t *img = image_load_u8(a->in[i], &h, &w);
        if (!img) sl_fail();
        preprocess_image(px + (int64_t)i * 3 * S * S, img, h, w, spec, NULL, NULL);
        free(img);
    }
    *N = a->n_in;
    return px;
}

static void add_hidden_states(st_writer *w, char (*names)[32], float **hs, int L, const int64_t *shp) {
    for (int i = 0; i <= L && i < 64; i++) {
        snprintf(names[i], 32, "hidden_states.%d", i);
        st_writer_add(w, names[i], DT_F32, 3, shp, hs[i]);
    }
}

int forward_dino_main(int argc, char **argv) {
    char help[2048];
    snprintf(help, sizeof help, HELP_IMAGE, "dino", "Resize(int(S*256/224), BICUBIC), CenterCrop(S), ImageNet mean/std",
             "cls_embedding (N, D) = the final LayerNorm of the CLS token (the DINO feature),\n"
             "     last_hidden_state (N, T, D) after the final LayerNorm, hidden_states.i (N, T, D)\n"
             "PATH: a transformers ViTModel folder (config.json + model.safetensors, e.g. facebook/dino-vits16)\n"
             "or an original DINO .safetensors (fused qkv; config from its `config` metadata or the shapes).");
    image_args a;
    parse_image_args(argc, argv, "dino", help, &a);
    dino_model *m = dino_load(a.model);
    if (!m) sl_fail();
    const vit_config *c = &m->vit->cfg;
    int S = c->image_size, D = c->hidden, T = vit_tokens(c), L = c->layers, N, imgs;
    preprocess_spec spec = preprocess_dino(S);
    float *px = input_pixels(&a, &spec, c->channels, S, &N, &imgs);
    float *cls = sl_alloc_f32((int64_t)N * D), *last = sl_alloc_f32((int64_t)N * T * D);
    float **hs = sl_calloc((size_t)L + 1, sizeof *hs);
    for (int i = 0; i <= L; i++) hs[i] = sl_alloc_f32((int64_t)N * T * D);
    double t0 = now_seconds();
    dino_forward(m, px, N, cls, last, hs);
    fprintf(stderr, "DINO ViT (%s, %d layers, width %d, %dpx/%d): %d images in %.3f s\n", dino_layout_name(m->layout), L, D, S,
            c->patch_size, N, now_seconds() - t0);
    st_writer *w = st_writer_new();
    int64_t shp[3] = {N, T, D};
    st_writer_add(w, "cls_embedding", DT_F32, 2, (int64_t[]){N, D}, cls);
    st_writer_add(w, "last_hidden_state", DT_F32, 3, shp, last);
    char names[64][32];
    add_hidden_states(w, names, hs, L, shp);
    if (imgs) st_writer_add(w, "pixel_values", DT_F32, 4, (int64_t[]){N, 3, S, S}, px);
    if (st_writer_save(w, a.out) != 0) sl_fail();
    st_writer_free(w);
    for (int i = 0; i <= L; i++) sl_free_aligned(hs[i]);
    free(hs);
    sl_free_aligned(px);
    sl_free_aligned(cls);
    sl_free_aligned(last);
    dino_free(m);
    return 0;
}

int forward_clip_image_main(int argc, char **argv) {
    char help[2048];
    snprintf(help, sizeof help, HELP_IMAGE, "clip-image", "Resize(S, BICUBIC), CenterCrop(S), CLIP mean/std",
             "image_embeds (N, P) = visual_projection(post_layernorm(CLS)) (the CLIP-I feature),\n"
             "     pooler_output (N, D), last_hidden_state (N, T, D) before post_layernorm, hidden_states.i\n"
             "PATH: a transformers CLIPModel folder (config.json + model.safetensors).");
    image_args a;
    parse_image_args(argc, argv, "clip-image", help, &a);
    clip_model *m = clip_model_load(a.model);
    if (!m) sl_fail();
    const vit_config *c = &m->vision->vit->cfg;
    int S = c->image_size, D = c->hidden, T = vit_tokens(c), L = c->layers, P = m->proj_dim, N, imgs;
    preprocess_spec spec = preprocess_clip(S);
    float *px = input_pixels(&a, &spec, c->channels, S, &N, &imgs);
    float *emb = sl_alloc_f32((int64_t)N * P), *pool = sl_alloc_f32((int64_t)N * D), *last = sl_alloc_f32((int64_t)N * T * D);
    float **hs = sl_calloc((size_t)L + 1, sizeof *hs);
    for (int i = 0; i <= L; i++) hs[i] = sl_alloc_f32((int64_t)N * T * D);
    double t0 = now_seconds();
    clip_vision_forward(m->vision, px, N, emb, pool, last, hs);
    fprintf(stderr, "CLIP image tower (%d layers, width %d, %dpx/%d, projection %d): %d images in %.3f s\n", L, D, S,
            c->patch_size, P, N, now_seconds() - t0);
    st_writer *w = st_writer_new();
    int64_t shp[3] = {N, T, D};
    st_writer_add(w, "image_embeds", DT_F32, 2, (int64_t[]){N, P}, emb);
    st_writer_add(w, "pooler_output", DT_F32, 2, (int64_t[]){N, D}, pool);
    st_writer_add(w, "last_hidden_state", DT_F32, 3, shp, last);
    char names[64][32];
    add_hidden_states(w, names, hs, L, shp);
    if (imgs) st_writer_add(w, "pixel_values", DT_F32, 4, (int64_t[]){N, 3, S, S}, px);
    if (st_writer_save(w, a.out) != 0) sl_fail();
    st_writer_free(w);
    for (int i = 0; i <= L; i++) sl_free_aligned(hs[i]);
    free(hs);
    sl_free_aligned(px);
    sl_free_aligned(emb);
    sl_free_aligned(pool);
    sl_free_aligned(last);
    clip_model_free(m);
    return 0;
}

static const char *HELP_TEXT =
    "usage: singlora forward clip-text --model PATH --in IN.safetensors --out OUT.safetensors [--threads N] [--precision fp32|bf16] [--profile]\n\n"
    "IN: input_ids (N, L) I32 or I64 (L <= 77). OUT: text_embeds (N, P) = text_projection of the final-LN\n"
    "state at each row's first EOS (the CLIP-T feature), pooler_output (N, D), last_hidden_state (N, L, D)\n"
    "after the final LayerNorm, hidden_states.i (N, L, D).\n"
    "PATH: a transformers CLIPModel folder (config.json + model.safetensors).\n";

int forward_clip_text_main(int argc, char **argv) {
    const char *model = NULL, *in = NULL, *outp = NULL, *v;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP_TEXT, stdout); return 0; }
        else if (arg_value(argc, argv, &i, "--model", &model)) {}
        else if (arg_value(argc, argv, &i, "--in", &in)) {}
        else if (arg_value(argc, argv, &i, "--out", &outp)) {}
        else if (arg_precision(argc, argv, &i)) {}
        else if (arg_profile(argv, i)) {}
        else if (arg_value(argc, argv, &i, "--threads", &v)) threads = arg_threads("--threads", v);
        else arg_unknown("forward clip-text", argv[i]);
    }
    if (!model || !in || !outp) sl_die(NULL, "forward clip-text: --model, --in and --out are required (see --help)");
    set_threads(threads);
    st_file *f = st_open(in);
    if (!f) sl_fail();
    const st_entry *e = input_tensor(f, "input_ids", 2, "(N, L) token ids, I32 or I64");
    int N = (int)e->shape[0], L = (int)e->shape[1];
    int32_t *ids = input_token_ids(f, e);
    clip_model *m = clip_model_load(model);
    if (!m) sl_fail();
    int D = m->text->cfg.hidden, P = m->proj_dim, nl = m->text->cfg.layers;
    float *emb = sl_alloc_f32((int64_t)N * P), *pool = sl_alloc_f32((int64_t)N * D), *last = sl_alloc_f32((int64_t)N * L * D);
    float **hs = sl_calloc((size_t)nl + 1, sizeof *hs);
    for (int i = 0; i <= nl; i++) hs[i] = sl_alloc_f32((int64_t)N * L * D);
    double t0 = now_seconds();
    if (clip_model_text_forward(m, ids, N, L, emb, pool, last, hs) != 0) sl_die(in, "%s", sl_error_msg());
    fprintf(stderr, "CLIP text tower (%d layers, width %d, projection %d): %d x %d tokens in %.3f s\n", nl, D, P, N, L,
            now_seconds() - t0);
    st_writer *w = st_writer_new();
    int64_t shp[3] = {N, L, D};
    st_writer_add(w, "text_embeds", DT_F32, 2, (int64_t[]){N, P}, emb);
    st_writer_add(w, "pooler_output", DT_F32, 2, (int64_t[]){N, D}, pool);
    st_writer_add(w, "last_hidden_state", DT_F32, 3, shp, last);
    char names[64][32];
    add_hidden_states(w, names, hs, nl, shp);
    if (st_writer_save(w, outp) != 0) sl_fail();
    st_writer_free(w);
    for (int i = 0; i <= nl; i++) sl_free_aligned(hs[i]);
    free(hs);
    sl_free_aligned(emb);
    sl_free_aligned(pool);
    sl_free_aligned(last);
    free(ids);
    clip_model_free(m);
    st_close(f);
    return 0;
}
