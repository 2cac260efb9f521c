// CLIP text encoder: parity with ../shared/fixtures/io/sd{1,2}_text_io.safetensors (a faithful
// re-implementation of transformers' CLIPTextModel, f32) for the diffusers folders, the
// original single files (with --config: the tiny models' widths are not 64·heads), the fp16
// variant, I32 and I64 ids; layer by layer (hidden_states.i) so a wiring error shows where.
#include <stdlib.h>
#include <string.h>

#include "clip/names.h"
#include "clip/text_encoder.h"
#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "tests/test.h"

#define TOL 1e-4   // the fixtures README: f32 forward max abs error

typedef struct {
    st_file *f;
    int N, L, D, n_hs;
    int32_t ids[2 * 77];
} text_io;

static int io_open(text_io *io, const char *which) {
    char rel[64];
    snprintf(rel, sizeof rel, "fixtures/io/%s_text_io.safetensors", which);
    io->f = st_open(shared_path(rel));
    if (!io->f) { fprintf(stderr, "    %s\n", sl_error_msg()); return -1; }
    const st_entry *e = st_find(io->f, "input_ids");
    const st_entry *h = st_find(io->f, "last_hidden_state");
    if (!e || !h || e->dt != DT_I64 || e->ndim != 2 || e->shape[0] * e->shape[1] > 2 * 77) return -1;
    io->N = (int)e->shape[0];
    io->L = (int)e->shape[1];
    io->D = (int)h->shape[2];
    for (int i = 0; i < io->N * io->L; i++) io->ids[i] = (int32_t)raw_i64(e->data, i);
    char name[32];
    for (io->n_hs = 0;; io->n_hs++) {
        snprintf(name, sizeof name, "hidden_states.%d", io->n_hs);
        if (!st_find(io->f, name)) break;
    }
    return 0;
}

static const float *ref(text_io *io, const char *name) {
    const st_entry *e = st_find(io->f, name);
    return e && e->dt == DT_F32 ? (const float *)e->data : NULL;
}

// Runs m on the fixture's ids and compares everything the fixture holds. sd1: also clip skip 2.
static void check_parity(const char *label, clip_text_model *m, text_io *io, double tol) {
    int N = io->N, L = io->L, D = io->D, nl = m->cfg.layers;
    CHECK_EQ_INT(D, m->cfg.hidden);
    CHECK_EQ_INT(nl + 1, io->n_hs);
    if (D != m->cfg.hidden || nl + 1 != io->n_hs) return;
    size_t nd = (size_t)N * L * D;
    float *last = sl_alloc_f32((int64_t)nd), *cond = sl_alloc_f32((int64_t)nd), *pooled = sl_alloc_f32((int64_t)N * D);
    float *hs[8] = {0};
    for (int i = 0; i <= nl && i < 8; i++) hs[i] = sl_alloc_f32((int64_t)nd);
    REQUIRE(clip_text_forward(m, io->ids, N, L, nl, last, hs) == 0);
    char what[128];
    for (int i = 0; i <= nl && i < 8; i++) {
        char name[32];
        snprintf(name, sizeof name, "hidden_states.%d", i);
        snprintf(what, sizeof what, "%s %s", label, name);
        check_close(what, hs[i], ref(io, name), nd, tol);
    }
    snprintf(what, sizeof what, "%s last_hidden_state", label);
    check_close(what, last, ref(io, "last_hidden_state"), nd, tol);
    REQUIRE(clip_text_condition(m, io->ids, N, L, 1, cond) == 0);
    snprintf(what, sizeof what, "%s conditioning", label);
    check_close(what, cond, ref(io, "last_hidden_state"), nd, tol);
    clip_text_pool(m, io->ids, N, L, last, pooled);
    snprintf(what, sizeof what, "%s pooler_output", label);
    check_close(what, pooled, ref(io, "pooler_output"), (size_t)N * D, tol);
    if (!m->sd2) {
        // A1111's clip skip 2 = final LayerNorm of the penultimate layer
        REQUIRE(clip_text_condition(m, io->ids, N, L, 2, cond) == 0);
        snprintf(what, sizeof what, "%s clip-skip 2", label);
        check_close(what, cond, ref(io, "penultimate_hidden_state_final_ln"), nd, tol);
    }
    for (int i = 0; i < 8; i++) sl_free_aligned(hs[i]);
    sl_free_aligned(last);
    sl_free_aligned(cond);
    sl_free_aligned(pooled);
}

static clip_text_model *load(const char *model, const char *config, const char *variant) {
    clip_text_model *m = clip_text_load(shared_path(model), config ? shared_path(config) : NULL, variant);
    if (!m) fprintf(stderr, "    %s\n", sl_error_msg());
    return m;
}

TEST(text_sd1_diffusers_parity) {
    text_io io;
    REQUIRE(io_open(&io, "sd1") == 0);
    clip_text_model *m = load("fixtures/sd1_tiny", NULL, NULL);
    REQUIRE(m);
    CHECK_EQ_INT(m->layout, CLIP_LAYOUT_DIFFUSERS);
    CHECK(!m->sd2 && m->cfg.act == CLIP_ACT_QUICK_GELU && m->cfg.heads == 4);
    check_parity("sd1 diffusers", m, &io, TOL);
    clip_text_free(m);
    st_close(io.f);
}

TEST(text_sd1_original_parity) {
    text_io io;
    REQUIRE(io_open(&io, "sd1") == 0);
    clip_text_model *m = load("fixtures/sd1_tiny.original.safetensors", "fixtures/sd1_tiny", NULL);
    REQUIRE(m);
    CHECK_EQ_INT(m->layout, CLIP_LAYOUT_SD1);
    check_parity("sd1 original", m, &io, TOL);
    clip_text_free(m);
    st_close(io.f);
}

TEST(text_sd2_diffusers_parity) {
    text_io io;
    REQUIRE(io_open(&io, "sd2") == 0);
    clip_text_model *m = load("fixtures/sd2_tiny", NULL, NULL);
    REQUIRE(m);
    CHECK(m->sd2 && m->cfg.act == CLIP_ACT_GELU && m->cfg.layers == 2);
    check_parity("sd2 diffusers", m, &io, TOL);
    CHECK_EQ_INT(clip_text_cond_layers(m, 2), 2);   // clip skip is ignored for SD 2.x (with a warning)
    clip_text_free(m);
    st_close(io.f);
}

TEST(text_sd2_original_parity) {
    // the file holds 3 resblocks; SD 2.x conditions on the penultimate: 2 are used
    text_io io;
    REQUIRE(io_open(&io, "sd2") == 0);
    clip_text_model *m = load("fixtures/sd2_tiny.original.safetensors", "fixtures/sd2_tiny", NULL);
    REQUIRE(m);
    CHECK_EQ_INT(m->layout, CLIP_LAYOUT_OPENCLIP);
    CHECK(m->sd2 && m->cfg.layers == 2);
    check_parity("sd2 original", m, &io, TOL);
    clip_text_free(m);
    st_close(io.f);
}

// Rounds a weight array to f16 and back.
static void round_f16(float *w, size_t n) {
    for (size_t i = 0; i < n; i++) w[i] = f16_to_f32(f32_to_f16(w[i]));
}

TEST(text_sd1_fp16_variant) {
    text_io io;
    REQUIRE(io_open(&io, "sd1") == 0);
    clip_text_model *h = load("fixtures/sd1_tiny", NULL, "fp16");
    clip_text_model *r = load("fixtures/sd1_tiny", NULL, NULL);
    REQUIRE(h && r);
    // exact check of the f16 path: the f32 weights rounded to f16 give the same outputs
    const clip_text_config *c = &r->cfg;
    int D = c->hidden, I = c->intermediate;
    round_f16(r->tok_emb, (size_t)c->vocab * D);
    round_f16(r->pos_emb, (size_t)c->max_pos * D);
    round_f16(r->lnf_w, (size_t)D);
    round_f16(r->lnf_b, (size_t)D);
    for (int l = 0; l < c->layers; l++) {
        clip_text_layer *y = &r->layer[l];
        float *vecs[] = {y->ln1_w, y->ln1_b, y->q_b, y->k_b, y->v_b, y->o_b, y->ln2_w, y->ln2_b, y->fc2_b};
        for (size_t k = 0; k < sizeof vecs / sizeof vecs[0]; k++) round_f16(vecs[k], (size_t)D);
        float *mats[] = {y->q_w, y->k_w, y->v_w, y->o_w};
        for (size_t k = 0; k < 4; k++) round_f16(mats[k], (size_t)D * D);
        round_f16(y->fc1_w, (size_t)I * D);
        round_f16(y->fc1_b, (size_t)I);
        round_f16(y->fc2_w, (size_t)D * I);
    }
    size_t nd = (size_t)io.N * io.L * D;
    float *a = sl_alloc_f32((int64_t)nd), *b = sl_alloc_f32((int64_t)nd);
    REQUIRE(clip_text_forward(h, io.ids, io.N, io.L, c->layers, a, NULL) == 0);
    REQUIRE(clip_text_forward(r, io.ids, io.N, io.L, c->layers, b, NULL) == 0);
    check_close("sd1 fp16 file vs f32 weights rounded to f16", a, b, nd, 1e-6);
    // against the f32 reference: weight rounding (relative 2^-11 ≈ 4.9e-4 per weight) moves the
    // unit-variance LayerNorm outputs by a few 1e-3; 1e-2 is a loose bound that still catches a
    // wrong tensor (errors O(0.1-1))
    check_close("sd1 fp16 vs f32 reference", a, ref(&io, "last_hidden_state"), nd, 1e-2);
    sl_free_aligned(a);
    sl_free_aligned(b);
    clip_text_free(h);
    clip_text_free(r);
    st_close(io.f);
}

// Compares a tensor of the CLI's output file with the fixture.
static void check_file(const char *label, const char *out, text_io *io, const char *got_name, const char *ref_name,
                       double tol) {
    st_file *o = st_open(out);
    REQUIRE(o);
    const st_entry *e = st_find(o, got_name);
    const float *want = ref(io, ref_name);
    REQUIRE(e && want);
    check_close(label, (const float *)e->data, want, (size_t)shape_numel(e->ndim, e->shape), tol);
    st_close(o);
}

TEST(text_cli_i64_and_i32) {
    text_io io;
    REQUIRE(io_open(&io, "sd2") == 0);
    char out[4096];
    const char *o = tmp_path("text_out.safetensors");
    int rc = run_cmd(out, sizeof out, "%s forward text --model %s --config %s --in %s --out %s", singlora_bin(),
                     shared_path("fixtures/sd2_tiny.original.safetensors"), shared_path("fixtures/sd2_tiny"),
                     shared_path("fixtures/io/sd2_text_io.safetensors"), o);
    CHECK_MSG(rc == 0, "%s", out);
    check_file("cli sd2 original I64 conditioning", o, &io, "conditioning", "last_hidden_state", TOL);
    check_file("cli sd2 original I64 pooler_output", o, &io, "pooler_output", "pooler_output", TOL);
    check_file("cli sd2 original I64 hidden_states.2", o, &io, "hidden_states.2", "hidden_states.2", TOL);
    st_close(io.f);
    REQUIRE(io_open(&io, "sd1") == 0);
    rc = run_cmd(out, sizeof out, "%s forward text --model %s --in %s --in-name input_ids_i32 --clip-skip 2 --out %s",
                 singlora_bin(), shared_path("fixtures/sd1_tiny"), shared_path("fixtures/io/sd1_text_io.safetensors"), o);
    CHECK_MSG(rc == 0, "%s", out);
    check_file("cli sd1 I32 last_hidden_state", o, &io, "last_hidden_state", "last_hidden_state", TOL);
    check_file("cli sd1 I32 clip-skip 2 conditioning", o, &io, "conditioning", "penultimate_hidden_state_final_ln", TOL);
    st_close(io.f);
}

// Writes ids (n, l) of dtype dt to a temp file and runs forward text on it; returns the exit code.
static int run_ids(char *out, size_t len, dtype dt, int ndim, const int64_t *shape, const void *data, const char *extra) {
    const char *in = tmp_path("ids.safetensors");
    st_writer *w = st_writer_new();
    st_writer_add(w, "input_ids", dt, ndim, shape, data);
    if (st_writer_save(w, in) != 0) return -1;
    st_writer_free(w);
    return run_cmd(out, len, "%s forward text --model %s %s --in %s --out %s", singlora_bin(),
                   shared_path("fixtures/sd1_tiny"), extra, in, tmp_path("o.safetensors"));
}

TEST(text_bad_inputs) {
    char out[4096];
    int64_t ids[2 * 3] = {998, 5, 999, 998, 1000, 999};   // 1000: outside the 1000-token vocabulary
    CHECK_EQ_INT(run_ids(out, sizeof out, DT_I64, 2, (int64_t[]){2, 3}, ids, ""), 1);
    CHECK_MSG(strstr(out, "outside the vocabulary") && strstr(out, "[1, 1]"), "%s", out);
    ids[4] = -3;
    CHECK_EQ_INT(run_ids(out, sizeof out, DT_I64, 2, (int64_t[]){2, 3}, ids, ""), 1);
    CHECK_MSG(strstr(out, "not a token id"), "%s", out);
    ids[4] = 5;
    CHECK_EQ_INT(run_ids(out, sizeof out, DT_I64, 3, (int64_t[]){1, 2, 3}, ids, ""), 1);   // wrong rank
    CHECK_MSG(strstr(out, "expected (N, L)"), "%s", out);
    float fids[3] = {1, 2, 3};
    CHECK_EQ_INT(run_ids(out, sizeof out, DT_F32, 2, (int64_t[]){1, 3}, fids, ""), 1);    // wrong dtype
    CHECK_MSG(strstr(out, "expected I32 or I64"), "%s", out);
    int32_t longids[78] = {0};
    CHECK_EQ_INT(run_ids(out, sizeof out, DT_I32, 2, (int64_t[]){1, 78}, longids, ""), 1);   // longer than 77
    CHECK_MSG(strstr(out, "at most 77"), "%s", out);
    CHECK_EQ_INT(run_ids(out, sizeof out, DT_I64, 2, (int64_t[]){2, 3}, ids, "--clip-skip 3"), 1);   // 2 layers
    CHECK_MSG(strstr(out, "--clip-skip 3"), "%s", out);
    CHECK_EQ_INT(run_ids(out, sizeof out, DT_I64, 2, (int64_t[]){2, 3}, ids, ""), 0);   // and a good one runs
    // the tiny original's heads cannot be detected (width 32): asks for --config
    CHECK(!clip_text_load(shared_path("fixtures/sd1_tiny.original.safetensors"), NULL, NULL));
    CHECK_MSG(strstr(sl_error_msg(), "--config"), "%s", sl_error_msg());
    // a config whose layer count does not match the file
    CHECK(!clip_text_load(shared_path("fixtures/sd2_tiny.original.safetensors"), shared_path("fixtures/sd1_tiny"), NULL));
    CHECK_MSG(strstr(sl_error_msg(), "shape") || strstr(sl_error_msg(), "layers"), "%s", sl_error_msg());
    // no text encoder in the file; a variant that does not exist
    CHECK(!clip_text_load(shared_path("fixtures/io/sd1_text_io.safetensors"), NULL, NULL));
    CHECK_MSG(strstr(sl_error_msg(), "no CLIP text encoder"), "%s", sl_error_msg());
    CHECK(!clip_text_load(shared_path("fixtures/sd2_tiny"), NULL, "fp16"));
    CHECK_MSG(strstr(sl_error_msg(), "fp16"), "%s", sl_error_msg());
    // ids out of range through the library too
    clip_text_model *m = clip_text_load(shared_path("fixtures/sd1_tiny"), NULL, NULL);
    REQUIRE(m);
    int32_t bad[2] = {998, 4000};
    float o[2 * 32];
    CHECK(clip_text_forward(m, bad, 1, 2, 2, o, NULL) != 0);
    CHECK_MSG(strstr(sl_error_msg(), "4000"), "%s", sl_error_msg());
    clip_text_free(m);
}

TEST(text_weight_names) {
    char s[256];
    int qkv;
    CHECK(clip_text_stored_name(CLIP_LAYOUT_SD1, "text_model.encoder.layers.11.mlp.fc1.weight", s, sizeof s, &qkv) == 0);
    CHECK(!strcmp(s, "transformer.text_model.encoder.layers.11.mlp.fc1.weight") && qkv == -1);
    CHECK(clip_text_stored_name(CLIP_LAYOUT_SD1_OLD, "text_model.final_layer_norm.bias", s, sizeof s, &qkv) == 0);
    CHECK(!strcmp(s, "transformer.final_layer_norm.bias"));
    CHECK(clip_text_stored_name(CLIP_LAYOUT_OPENCLIP, "text_model.encoder.layers.22.self_attn.k_proj.bias", s, sizeof s,
                                &qkv) == 0);
    CHECK(!strcmp(s, "model.transformer.resblocks.22.attn.in_proj_bias") && qkv == 1);
    CHECK(clip_text_stored_name(CLIP_LAYOUT_OPENCLIP, "text_model.encoder.layers.0.mlp.fc2.weight", s, sizeof s, &qkv) == 0);
    CHECK(!strcmp(s, "model.transformer.resblocks.0.mlp.c_proj.weight") && qkv == -1);
    CHECK(clip_text_stored_name(CLIP_LAYOUT_OPENCLIP, "text_model.embeddings.position_embedding.weight", s, sizeof s,
                                &qkv) == 0);
    CHECK(!strcmp(s, "model.positional_embedding"));
    CHECK(clip_text_stored_name(CLIP_LAYOUT_OPENCLIP, "text_model.final_layer_norm.weight", s, sizeof s, &qkv) == 0);
    CHECK(!strcmp(s, "model.ln_final.weight"));
    CHECK(clip_text_stored_name(CLIP_LAYOUT_DIFFUSERS, "text_model.encoder.layers.x.mlp.fc1.weight", s, sizeof s, &qkv) != 0);
    CHECK(clip_text_stored_name(CLIP_LAYOUT_DIFFUSERS, "text_model.bogus", s, sizeof s, &qkv) != 0);
}
