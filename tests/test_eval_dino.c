// DINO ViT: parity with the original facebookresearch code on the tiny random model in both
// layouts (../shared/fixtures/eval/io/dino_io.safetensors), and the loader's refusals.
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "eval/dino.h"
#include "tests/test.h"

static void check_layout(const char *model, dino_layout want_layout) {
    dino_model *m = dino_load(shared_path(model));
    CHECK_MSG(m, "load: %s", sl_error_msg());
    if (!m) return;
    CHECK_EQ_INT(m->layout, want_layout);
    const vit_config *c = &m->vit->cfg;
    CHECK_EQ_INT(c->hidden, 48);
    CHECK_EQ_INT(c->heads, 4);
    CHECK_EQ_INT(c->layers, 2);
    CHECK_EQ_INT(c->image_size, 64);
    CHECK_NEAR(c->eps, 1e-6, 1e-12);   // not the 1e-12 transformers' conversion writes
    st_file *io = st_open(shared_path("fixtures/eval/io/dino_io.safetensors"));
    REQUIRE(io);
    const st_entry *pe = st_find(io, "pixel_values");
    int N = (int)pe->shape[0], T = vit_tokens(c), D = c->hidden, L = c->layers;
    float *px = st_load_f32(io, "pixel_values", 4, (int64_t[]){N, 3, 64, 64});
    float *cls = sl_alloc_f32((int64_t)N * D), *last = sl_alloc_f32((int64_t)N * T * D);
    float *hs[8];
    for (int i = 0; i <= L; i++) hs[i] = sl_alloc_f32((int64_t)N * T * D);
    dino_forward(m, px, N, cls, last, hs);
    char label[128];
    for (int i = 0; i <= L; i++) {
        char name[32];
        snprintf(name, sizeof name, "hidden_states.%d", i);
        float *want = st_load_f32(io, name, 3, (int64_t[]){N, T, D});
        snprintf(label, sizeof label, "%s %s", dino_layout_name(want_layout), name);
        check_close(label, hs[i], want, (size_t)N * T * D, 1e-4);
        sl_free_aligned(want);
    }
    float *want = st_load_f32(io, "last_hidden_state", 3, (int64_t[]){N, T, D});
    snprintf(label, sizeof label, "%s last_hidden_state", dino_layout_name(want_layout));
    check_close(label, last, want, (size_t)N * T * D, 1e-4);
    sl_free_aligned(want);
    want = st_load_f32(io, "cls_embedding", 2, (int64_t[]){N, D});
    snprintf(label, sizeof label, "%s cls_embedding", dino_layout_name(want_layout));
    check_close(label, cls, want, (size_t)N * D, 1e-4);
    sl_free_aligned(want);
    for (int i = 0; i <= L; i++) sl_free_aligned(hs[i]);
    sl_free_aligned(px);
    sl_free_aligned(cls);
    sl_free_aligned(last);
    st_close(io);
    dino_free(m);
}

TEST(eval_dino_hf_layout_matches_reference) { check_layout("fixtures/eval/dino_tiny_hf", DINO_LAYOUT_HF); }
TEST(eval_dino_original_layout_matches_reference) {
    check_layout("fixtures/eval/dino_tiny.original.safetensors", DINO_LAYOUT_ORIGINAL);
}

// An original file without the `config` metadata: the sizes come from the shapes (64-wide heads),
// so a 48-wide model is refused with a clear message; a `vit.` prefix and a pooler are accepted.
TEST(eval_dino_original_without_metadata_and_vit_prefix) {
    st_file *f = st_open(shared_path("fixtures/eval/dino_tiny.original.safetensors"));
    REQUIRE(f);
    st_writer *w = st_writer_new();
    for (int i = 0; i < f->n_entries; i++)
        st_writer_add(w, f->entries[i].name, f->entries[i].dt, f->entries[i].ndim, f->entries[i].shape, f->entries[i].data);
    const char *p = tmp_path("nometa.safetensors");
    REQUIRE(st_writer_save(w, p) == 0);
    st_writer_free(w);
    st_close(f);
    CHECK(!dino_load(p));
    fprintf(stderr, "    %s\n", sl_error_msg());
    CHECK(strstr(sl_error_msg(), "64-wide heads"));

    // HF weights under vit. with a pooler, config.json beside
    f = st_open(shared_path("fixtures/eval/dino_tiny_hf/model.safetensors"));
    REQUIRE(f);
    w = st_writer_new();
    char names[64][128];
    REQUIRE(f->n_entries < 63);
    for (int i = 0; i < f->n_entries; i++) {
        snprintf(names[i], sizeof names[i], "vit.%s", f->entries[i].name);
        st_writer_add(w, names[i], f->entries[i].dt, f->entries[i].ndim, f->entries[i].shape, f->entries[i].data);
    }
    float pool[48 * 48] = {0};
    st_writer_add(w, "vit.pooler.dense.weight", DT_F32, 2, (int64_t[]){48, 48}, pool);
    st_writer_add(w, "classifier.weight", DT_F32, 2, (int64_t[]){1, 48}, pool);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tmp_path("vitprefix"));
    char cmd[1200], out[256];
    run_cmd(out, sizeof out, "mkdir -p %s && cp %s %s/", dir, shared_path("fixtures/eval/dino_tiny_hf/config.json"), dir);
    snprintf(cmd, sizeof cmd, "%s/model.safetensors", dir);
    REQUIRE(st_writer_save(w, cmd) == 0);
    st_writer_free(w);
    st_close(f);
    dino_model *m = dino_load(dir);
    CHECK_MSG(m, "%s", sl_error_msg());
    dino_free(m);
}

TEST(eval_dino_refuses_wrong_models) {
    // a UNet, a CLIP folder, a missing config key: one error naming the file
    CHECK(!dino_load(shared_path("fixtures/sd1_tiny")));
    fprintf(stderr, "    %s\n", sl_error_msg());
    CHECK(strstr(sl_error_msg(), "not a DINO ViT"));
    CHECK(!dino_load(shared_path("fixtures/eval/clip_tiny")));
    fprintf(stderr, "    %s\n", sl_error_msg());
    CHECK(strstr(sl_error_msg(), "CLIP"));
    const char *dir = tmp_path("nokey");
    char out[512];
    run_cmd(out, sizeof out,
            "mkdir -p %s && cp %s %s/ && grep -v num_attention_heads %s > %s/config.json", dir,
            shared_path("fixtures/eval/dino_tiny_hf/model.safetensors"), dir,
            shared_path("fixtures/eval/dino_tiny_hf/config.json"), dir);
    CHECK(!dino_load(dir));
    fprintf(stderr, "    %s\n", sl_error_msg());
    CHECK(strstr(sl_error_msg(), "num_attention_heads"));
}
