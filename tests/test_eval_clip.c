// CLIP (transformers CLIPModel layout): both towers against transformers 4.36 on the tiny random
// model (../shared/fixtures/eval/io/clip_{image,text}_io.safetensors), and the loader's refusals.
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "eval/clip_model.h"
#include "tests/test.h"
#include "tests/tiny_tokenizer.h"

static void check_tensor(st_file *io, const char *name, const float *got, int ndim, const int64_t *shape, double tol) {
    float *want = st_load_f32(io, name, ndim, shape);
    CHECK_MSG(want, "%s: %s", name, sl_error_msg());
    if (!want) return;
    char label[96];
    snprintf(label, sizeof label, "clip %s", name);
    check_close(label, got, want, (size_t)shape_numel(ndim, shape), tol);
    sl_free_aligned(want);
}

TEST(eval_clip_image_tower_matches_transformers) {
    clip_model *m = clip_model_load(shared_path("fixtures/eval/clip_tiny"));
    REQUIRE(m || (fprintf(stderr, "%s\n", sl_error_msg()), 0));
    const vit_config *c = &m->vision->vit->cfg;
    CHECK_EQ_INT(c->hidden, 48);
    CHECK_EQ_INT(m->proj_dim, 32);
    CHECK(c->pre_norm && !c->patch_bias && c->act == VIT_ACT_QUICK_GELU);
    st_file *io = st_open(shared_path("fixtures/eval/io/clip_image_io.safetensors"));
    REQUIRE(io);
    int N = (int)st_find(io, "pixel_values")->shape[0], T = vit_tokens(c), D = c->hidden, P = m->proj_dim, L = c->layers;
    float *px = st_load_f32(io, "pixel_values", 4, (int64_t[]){N, 3, c->image_size, c->image_size});
    REQUIRE(px);
    float *emb = sl_alloc_f32((int64_t)N * P), *pool = sl_alloc_f32((int64_t)N * D), *last = sl_alloc_f32((int64_t)N * T * D);
    float *hs[8];
    for (int i = 0; i <= L; i++) hs[i] = sl_alloc_f32((int64_t)N * T * D);
    clip_vision_forward(m->vision, px, N, emb, pool, last, hs);
    for (int i = 0; i <= L; i++) {
        char name[32];
        snprintf(name, sizeof name, "hidden_states.%d", i);
        check_tensor(io, name, hs[i], 3, (int64_t[]){N, T, D}, 1e-4);
        sl_free_aligned(hs[i]);
    }
    check_tensor(io, "last_hidden_state", last, 3, (int64_t[]){N, T, D}, 1e-4);
    check_tensor(io, "pooler_output", pool, 2, (int64_t[]){N, D}, 1e-4);
    check_tensor(io, "image_embeds", emb, 2, (int64_t[]){N, P}, 1e-4);
    sl_free_aligned(px);
    sl_free_aligned(emb);
    sl_free_aligned(pool);
    sl_free_aligned(last);
    st_close(io);
    clip_model_free(m);
}

TEST(eval_clip_text_tower_matches_transformers) {
    clip_model *m = clip_model_load(shared_path("fixtures/eval/clip_tiny"));
    REQUIRE(m);
    CHECK(!m->tokenizer);   // the fixture folder has no vocabulary
    st_file *io = st_open(shared_path("fixtures/eval/io/clip_text_io.safetensors"));
    REQUIRE(io);
    const st_entry *e = st_find(io, "input_ids");
    REQUIRE(e && e->dt == DT_I64);
    int N = (int)e->shape[0], L = (int)e->shape[1], D = m->text->cfg.hidden, P = m->proj_dim, nl = m->text->cfg.layers;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)N * L);
    for (int i = 0; i < N * L; i++) ids[i] = (int32_t)raw_i64(e->data, i);
    float *emb = sl_alloc_f32((int64_t)N * P), *pool = sl_alloc_f32((int64_t)N * D), *last = sl_alloc_f32((int64_t)N * L * D);
    float *hs[8];
    for (int i = 0; i <= nl; i++) hs[i] = sl_alloc_f32((int64_t)N * L * D);
    REQUIRE(clip_model_text_forward(m, ids, N, L, emb, pool, last, hs) == 0);
    for (int i = 0; i <= nl; i++) {
        char name[32];
        snprintf(name, sizeof name, "hidden_states.%d", i);
        check_tensor(io, name, hs[i], 3, (int64_t[]){N, L, D}, 1e-4);
        sl_free_aligned(hs[i]);
    }
    check_tensor(io, "last_hidden_state", last, 3, (int64_t[]){N, L, D}, 1e-4);
    check_tensor(io, "pooler_output", pool, 2, (int64_t[]){N, D}, 1e-4);
    check_tensor(io, "text_embeds", emb, 2, (int64_t[]){N, P}, 1e-4);
    free(ids);
    sl_free_aligned(emb);
    sl_free_aligned(pool);
    sl_free_aligned(last);
    st_close(io);
    clip_model_free(m);
}

// With a tokenizer in the folder, a prompt's embedding is that of its ids ([BOS, tokens, EOS, pad]).
TEST(eval_clip_text_through_tokenizer) {
    const char *tok = tiny_tokenizer();
    REQUIRE(tok);
    const char *dir = tmp_path("clipfolder");
    char out[512];
    REQUIRE(run_cmd(out, sizeof out, "mkdir -p %s && cp %s/* %s/* %s/", dir, shared_path("fixtures/eval/clip_tiny"), tok, dir) == 0);
    clip_model *m = clip_model_load(dir);
    REQUIRE(m && m->tokenizer);
    float a[64], b[64];
    REQUIRE(clip_model_encode_text(m, "a dog", a) == 0);
    int32_t ids[77];
    clip_encode(m->tokenizer, "a dog", 77, ids, 0);
    CHECK_EQ_INT(ids[0], 998);
    REQUIRE(clip_model_text_forward(m, ids, 1, 77, b, NULL, NULL, NULL) == 0);
    check_close("prompt vs its ids", a, b, (size_t)m->proj_dim, 0);
    clip_model_free(m);
}

TEST(eval_clip_refuses_wrong_models) {
    CHECK(!clip_model_load(shared_path("fixtures/eval/dino_tiny_hf")));
    fprintf(stderr, "    %s\n", sl_error_msg());
    CHECK(strstr(sl_error_msg(), "not a CLIPModel"));
    CHECK(!clip_model_load(shared_path("fixtures/sd1_tiny/unet")));
    fprintf(stderr, "    %s\n", sl_error_msg());
    CHECK(strstr(sl_error_msg(), "not a CLIP"));
    const char *dir = tmp_path("nokey");
    char out[512];
    run_cmd(out, sizeof out, "mkdir -p %s && cp %s %s/ && grep -v patch_size %s > %s/config.json", dir,
            shared_path("fixtures/eval/clip_tiny/model.safetensors"), dir,
            shared_path("fixtures/eval/clip_tiny/config.json"), dir);
    CHECK(!clip_model_load(dir));
    fprintf(stderr, "    %s\n", sl_error_msg());
    CHECK(strstr(sl_error_msg(), "patch_size") && strstr(sl_error_msg(), "vision_config"));
}
