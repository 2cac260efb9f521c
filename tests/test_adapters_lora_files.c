// Standard LoRA export/import: a SingLoRA/LoRA/DoRA adapter exported to kohya or diffusers names
// and folded back in with lora_apply gives the same weights as merging the adapter itself (a 3×3
// conv's as LoCon-shaped factors); PEFT names, 1×1-conv shapes, text-encoder keys and unmatched
// names are reported.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/adapters/lora_files.h"
#include "engine/io/safetensors.h"
#include "tests/test.h"

static const char *MODULES[] = {
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",   // (24, 32): d_in > d_out
    "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_out.0", // (24, 16): d_out > d_in
    "down_blocks.0.attentions.0.proj_in",                           // (16, 16)
    "down_blocks.1.resnets.0.conv1",                                // (8, 4, 3, 3) = (8, 36): a 3×3 conv
};
static const int DOUT[] = {24, 24, 16, 8}, DIN[] = {32, 16, 16, 36}, KERNEL[] = {0, 0, 0, 3};
#define N_MODULES 4

typedef struct { float *w[N_MODULES]; } fake_model;

static float *fake_weight(void *ctx, const char *module, int *d_out, int *d_in) {
    fake_model *m = ctx;
    for (int i = 0; i < N_MODULES; i++)
        if (!strcmp(module, MODULES[i])) { *d_out = DOUT[i]; *d_in = DIN[i]; return m->w[i]; }
    return NULL;
}

static void fresh_model(fake_model *m) {
    for (int i = 0; i < N_MODULES; i++) {
        m->w[i] = malloc(sizeof(float) * (size_t)DOUT[i] * DIN[i]);
        fill_uniform(m->w[i], (size_t)DOUT[i] * DIN[i], 10 + i, -0.5f, 0.5f);
    }
}

static void export_import(adapter_method method, lora_format fmt) {
    adapter_set s = {.method = method, .rank = 4, .alpha = 6, .ramp_steps = 10, .step = 4};
    snprintf(s.base_model, sizeof s.base_model, "feed");
    fake_model base, want, got;
    fresh_model(&base);
    fresh_model(&want);
    fresh_model(&got);
    sl_rng rng;
    sl_rng_seed(&rng, 3);
    for (int i = 0; i < N_MODULES; i++) {
        adapter *a = adapter_set_add(&s, MODULES[i], DIN[i], DOUT[i]);
        a->kernel = KERNEL[i];
        adapter_init(a, &rng, 0, base.w[i]);
        if (a->up) fill_uniform(a->up, (size_t)DOUT[i] * 4, 20 + i, -0.3f, 0.3f);
        if (a->magnitude) for (int o = 0; o < DOUT[i]; o++) a->magnitude[o] *= 1.1f;
        adapter_merge_into(want.w[i], a, adapter_set_ramp(&s), 0.8f);
    }
    const char *path = tmp_path("export.safetensors");
    REQUIRE(lora_export(&s, fmt, path) == 0);
    lora_apply_report rep;
    REQUIRE(lora_apply(path, 0.8f, MODULES, N_MODULES, fake_weight, &got, &rep) == 0);
    CHECK_EQ_INT(rep.applied, N_MODULES);
    CHECK_EQ_INT(rep.total, N_MODULES);
    CHECK(rep.unmatched[0] == 0);
    char label[96];
    for (int i = 0; i < N_MODULES; i++) {
        snprintf(label, sizeof label, "%s -> %s, %s", adapter_method_name(method), fmt == LORA_FORMAT_KOHYA ? "kohya" : "diffusers", MODULES[i] + strlen(MODULES[i]) - 12);
        check_close(label, got.w[i], want.w[i], (size_t)DOUT[i] * DIN[i], 2e-6);
    }
    // the export is not a no-op
    err_stats e = compare_f32(got.w[0], base.w[0], (size_t)DOUT[0] * DIN[0]);
    CHECK(e.max_abs > 1e-3);
    st_file *f = st_open(path);
    REQUIRE(f);
    if (fmt == LORA_FORMAT_KOHYA) {
        CHECK(st_find(f, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight") != NULL);
        CHECK(st_find(f, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha")->ndim == 0);
        CHECK(st_meta(f, "ss_network_dim") && !strcmp(st_meta(f, "ss_network_dim"), "4"));
        CHECK(st_meta(f, "modelspec.architecture") != NULL);
    } else {
        CHECK(st_find(f, "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora.up.weight") != NULL);
    }
    // the conv's factors are convs, as kohya's LoCon writes them: down (r, C_in, 3, 3), up (C_out, r, 1, 1)
    const st_entry *cd = st_find(f, fmt == LORA_FORMAT_KOHYA ? "lora_unet_down_blocks_1_resnets_0_conv1.lora_down.weight"
                                                             : "unet.down_blocks.1.resnets.0.conv1.lora.down.weight");
    const st_entry *cu = st_find(f, fmt == LORA_FORMAT_KOHYA ? "lora_unet_down_blocks_1_resnets_0_conv1.lora_up.weight"
                                                             : "unet.down_blocks.1.resnets.0.conv1.lora.up.weight");
    REQUIRE(cd && cu);
    CHECK(cd->ndim == 4 && cd->shape[0] == 4 && cd->shape[1] == 4 && cd->shape[2] == 3 && cd->shape[3] == 3);
    CHECK(cu->ndim == 4 && cu->shape[0] == 8 && cu->shape[1] == 4 && cu->shape[2] == 1 && cu->shape[3] == 1);
    st_close(f);
    for (int i = 0; i < N_MODULES; i++) { free(base.w[i]); free(want.w[i]); free(got.w[i]); adapter_free(&s.slots[i].a); free(s.slots[i].module); }
    free(s.slots);
}

TEST(lora_export_singlora_kohya) { export_import(ADAPTER_SINGLORA, LORA_FORMAT_KOHYA); }
TEST(lora_export_singlora_diffusers) { export_import(ADAPTER_SINGLORA, LORA_FORMAT_DIFFUSERS); }
TEST(lora_export_lora_kohya) { export_import(ADAPTER_LORA, LORA_FORMAT_KOHYA); }
TEST(lora_export_lora_diffusers) { export_import(ADAPTER_LORA, LORA_FORMAT_DIFFUSERS); }
TEST(lora_export_dora_kohya) { export_import(ADAPTER_DORA, LORA_FORMAT_KOHYA); }

TEST(lora_export_dora_diffusers_refused) {
    adapter_set s = {.method = ADAPTER_DORA, .rank = 2, .alpha = 2};
    CHECK(lora_export(&s, LORA_FORMAT_DIFFUSERS, tmp_path("x.safetensors")) != 0);
    CHECK(strstr(sl_error_msg(), "kohya") != NULL);
}

TEST(lora_import_peft_conv_and_text_encoder) {
    // PEFT names, a 1×1-conv-shaped proj_in, a text-encoder key and a key for no module
    float down[4 * 16], up[16 * 4], te[8];
    fill_uniform(down, 64, 1, -1, 1);
    fill_uniform(up, 64, 2, -1, 1);
    const char *path = tmp_path("peft.safetensors");
    st_writer *w = st_writer_new();
    st_writer_add(w, "unet.down_blocks.0.attentions.0.proj_in.lora_A.weight", DT_F32, 4, (int64_t[]){4, 16, 1, 1}, down);
    st_writer_add(w, "unet.down_blocks.0.attentions.0.proj_in.lora_B.weight", DT_F32, 4, (int64_t[]){16, 4, 1, 1}, up);
    st_writer_add(w, "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight", DT_F32, 2, (int64_t[]){2, 4}, te);
    st_writer_add(w, "unet.no_such_block.lora_A.weight", DT_F32, 2, (int64_t[]){4, 16}, down);
    st_writer_add(w, "unet.no_such_block.lora_B.weight", DT_F32, 2, (int64_t[]){16, 4}, up);
    REQUIRE(st_writer_save(w, path) == 0);
    st_writer_free(w);
    fake_model m;
    fresh_model(&m);
    float before[256];
    memcpy(before, m.w[2], sizeof before);
    lora_apply_report rep;
    REQUIRE(lora_apply(path, 1.0f, MODULES, 3, fake_weight, &m, &rep) == 0);
    CHECK_EQ_INT(rep.applied, 1);
    CHECK_EQ_INT(rep.total, 2);
    CHECK_EQ_INT(rep.text_encoder, 1);
    CHECK_EQ_INT(rep.tensors_applied, 2);
    CHECK_EQ_INT(rep.tensors_total, 5);
    CHECK(strstr(rep.unmatched, "no_such_block") != NULL);
    // W += (alpha/r = 1)·up·down
    double want = before[5 * 16 + 7];
    for (int j = 0; j < 4; j++) want += (double)up[5 * 4 + j] * down[j * 16 + 7];
    CHECK_NEAR(m.w[2][5 * 16 + 7], want, 1e-5);
    for (int i = 0; i < N_MODULES; i++) free(m.w[i]);
}

TEST(lora_import_shape_mismatch_is_an_error) {
    float down[4 * 20] = {0}, up[24 * 4] = {0};
    const char *path = tmp_path("bad.safetensors");
    st_writer *w = st_writer_new();
    st_writer_add(w, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight", DT_F32, 2, (int64_t[]){4, 20}, down);
    st_writer_add(w, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight", DT_F32, 2, (int64_t[]){24, 4}, up);
    REQUIRE(st_writer_save(w, path) == 0);
    st_writer_free(w);
    fake_model m;
    fresh_model(&m);
    lora_apply_report rep;
    CHECK(lora_apply(path, 1.0f, MODULES, 3, fake_weight, &m, &rep) != 0);
    CHECK(strstr(sl_error_msg(), "the model needs [4, 32]") != NULL);
    for (int i = 0; i < N_MODULES; i++) free(m.w[i]);
}

// an alpha of inf or 1e39 and nan in a matrix are refused at load, naming the file and tensor
TEST(lora_import_nonfinite_is_an_error) {
    const char *K = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k";
    float down[4 * 32] = {0}, up[24 * 4] = {0};
    const struct { double alpha; float up0; const char *want; } cases[] = {
        {INFINITY, 0, ".alpha' = inf is not a number in -1e+06..1e+06"},
        {1e39, 0, ".alpha' = inf is not a number"},   // an F64 alpha beyond f32's range
        {4, NAN, ".lora_up.weight' holds a non-finite value (nan at index 0)"},
    };
    for (int c = 0; c < 3; c++) {
        char name[3][160];
        snprintf(name[0], sizeof name[0], "%s.lora_down.weight", K);
        snprintf(name[1], sizeof name[1], "%s.lora_up.weight", K);
        snprintf(name[2], sizeof name[2], "%s.alpha", K);
        up[0] = cases[c].up0;
        double alpha = cases[c].alpha;
        const char *path = tmp_path("nonfinite.safetensors");
        st_writer *w = st_writer_new();
        st_writer_add(w, name[0], DT_F32, 2, (int64_t[]){4, 32}, down);
        st_writer_add(w, name[1], DT_F32, 2, (int64_t[]){24, 4}, up);
        st_writer_add(w, name[2], DT_F64, 0, NULL, &alpha);
        REQUIRE(st_writer_save(w, path) == 0);
        st_writer_free(w);
        fake_model m;
        fresh_model(&m);
        lora_apply_report rep;
        CHECK(lora_apply(path, 1.0f, MODULES, 3, fake_weight, &m, &rep) != 0);
        CHECK_MSG(strstr(sl_error_msg(), "nonfinite.safetensors: ") && strstr(sl_error_msg(), cases[c].want), "%s",
                  sl_error_msg());
        for (int i = 0; i < N_MODULES; i++) free(m.w[i]);
    }
}

// two (16, 16) modules: "mid_proj.in" -> w[0], "mid.proj_in" -> w[1]
static float *two_weights(void *ctx, const char *module, int *d_out, int *d_in) {
    float **w = ctx;
    *d_out = *d_in = 16;
    return !strcmp(module, "mid_proj.in") ? w[0] : !strcmp(module, "mid.proj_in") ? w[1] : NULL;
}

// Keys are matched through hashes: a file with 40 000 modules of which one is the model's
// imports that one (and only it), and a kohya key whose '_' form two modules share still finds
// the module whose path it spells ('.' and '_' both as in the key).
TEST(lora_import_many_tensors_and_shared_kohya_forms) {
    enum { N_JUNK = 40000 };
    static float down[4 * 16], up[16 * 4];
    fill_uniform(down, 64, 3, -1, 1);
    fill_uniform(up, 64, 4, -1, 1);
    char (*names)[96] = malloc(sizeof *names * (2 * N_JUNK + 4));
    st_writer *w = st_writer_new();
    int n = 0;
    for (int i = 0; i < N_JUNK; i++) {
        snprintf(names[n], sizeof names[n], "lora_unet_junk_%05d.lora_down.weight", i);
        st_writer_add(w, names[n++], DT_F32, 2, (int64_t[]){4, 16}, down);
        snprintf(names[n], sizeof names[n], "lora_unet_junk_%05d.lora_up.weight", i);
        st_writer_add(w, names[n++], DT_F32, 2, (int64_t[]){16, 4}, up);
    }
    // "a.b_c" (diffusers spelling) must land on module "a.b_c", not on "a_b.c", whose kohya
    // form "a_b_c" it shares
    st_writer_add(w, "unet.mid.proj_in.lora.down.weight", DT_F32, 2, (int64_t[]){4, 16}, down);
    st_writer_add(w, "unet.mid.proj_in.lora.up.weight", DT_F32, 2, (int64_t[]){16, 4}, up);
    const char *path = tmp_path("many.safetensors");
    REQUIRE(st_writer_save(w, path) == 0);
    st_writer_free(w);
    free(names);
    static const char *mods[] = {"mid_proj.in", "mid.proj_in"};
    float *wts[2] = {calloc(256, sizeof(float)), calloc(256, sizeof(float))};
    lora_apply_report rep;
    REQUIRE(lora_apply(path, 1.0f, mods, 2, two_weights, wts, &rep) == 0);
    CHECK_EQ_INT(rep.total, N_JUNK + 1);
    CHECK_EQ_INT(rep.applied, 1);
    CHECK(strstr(rep.unmatched, "junk_00000") && strstr(rep.unmatched, "..."));
    double want = 0;
    for (int j = 0; j < 4; j++) want += (double)up[5 * 4 + j] * down[j * 16 + 7];
    CHECK_NEAR(wts[1][5 * 16 + 7], want, 1e-5);
    CHECK_EQ_INT(wts[0][5 * 16 + 7] == 0.0f, 1);
    free(wts[0]);
    free(wts[1]);
}
