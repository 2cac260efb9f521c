// Adapter files: save -> load is bit-exact for every method, the metadata is exactly the
// documented keys, target patterns match module paths, and broken files are refused clearly.
#include <stdlib.h>
#include <string.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "tests/test.h"
#include "unet/unet.h"

static adapter_set *make_set(adapter_method m) {
    adapter_set *s = calloc(1, sizeof *s);
    s->method = m;
    s->rank = 4;
    s->alpha = 8;
    s->ramp_steps = 100;
    s->step = 37;
    snprintf(s->init, sizeof s->init, "kaiming");
    snprintf(s->targets, sizeof s->targets, ADAPTER_DEFAULT_TARGETS);
    snprintf(s->base_model, sizeof s->base_model, "0123456789abcdef");
    sl_rng rng;
    sl_rng_seed(&rng, 1);
    float w0[24 * 32];
    fill_uniform(w0, 24 * 32, 9, -1, 1);
    adapter *a = adapter_set_add(s, "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k", 32, 24);
    adapter_init(a, &rng, 0, w0);
    if (a->up) fill_uniform(a->up, 24 * 4, 3, -1, 1);
    a = adapter_set_add(s, "mid_block.attentions.0.transformer_blocks.0.attn2.to_q", 16, 16);
    adapter_init(a, &rng, 0.5f, w0);
    return s;
}

static void round_trip(adapter_method m) {
    adapter_set *s = make_set(m);
    const char *path = tmp_path("a.safetensors");
    REQUIRE(adapter_set_save(s, path) == 0);
    adapter_set *t = adapter_set_load(path);
    REQUIRE(t);
    CHECK(t->method == m && t->rank == 4 && t->alpha == 8 && t->ramp_steps == 100 && t->step == 37);
    CHECK(strcmp(t->targets, ADAPTER_DEFAULT_TARGETS) == 0 && strcmp(t->base_model, "0123456789abcdef") == 0);
    CHECK(strcmp(t->init, "kaiming") == 0);
    REQUIRE(t->n_slots == 2);
    for (int i = 0; i < 2; i++) {
        adapter *a = &s->slots[i].a, *b = adapter_set_find(t, s->slots[i].module);
        REQUIRE(b);
        CHECK(adapter_bind_shape(b, s->slots[i].module, a->d_in, a->d_out, path) == 0);
        if (a->A) CHECK(memcmp(a->A, b->A, sizeof(float) * (size_t)adapter_rows(a) * 4) == 0);
        if (a->down) CHECK(memcmp(a->down, b->down, sizeof(float) * (size_t)a->d_in * 4) == 0);
        if (a->up) CHECK(memcmp(a->up, b->up, sizeof(float) * (size_t)a->d_out * 4) == 0);
        if (a->magnitude) CHECK(memcmp(a->magnitude, b->magnitude, sizeof(float) * (size_t)a->d_out) == 0);
    }
    CHECK(adapter_set_param_count(t) == adapter_set_param_count(s));
    // the metadata holds exactly the documented keys
    st_file *f = st_open(path);
    REQUIRE(f);
    CHECK_EQ_INT(f->n_meta, 9);
    CHECK(strcmp(st_meta(f, "singlora.format"), "1") == 0);
    CHECK(strcmp(st_meta(f, "singlora.method"), adapter_method_name(m)) == 0);
    CHECK(strcmp(st_meta(f, "singlora.step"), "37") == 0);
    if (m == ADAPTER_SINGLORA)
        CHECK(st_find(f, "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.singlora.A")->shape[0] == 32);
    else
        CHECK(st_find(f, "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora.up")->shape[0] == 24);
    st_close(f);
    adapter_set_free(s);
    adapter_set_free(t);
}

TEST(adapter_file_round_trip_singlora) { round_trip(ADAPTER_SINGLORA); }
TEST(adapter_file_round_trip_lora) { round_trip(ADAPTER_LORA); }
TEST(adapter_file_round_trip_dora) { round_trip(ADAPTER_DORA); }

TEST(adapter_param_counts) {
    // SingLoRA max(d_in, d_out)·r against LoRA (d_in + d_out)·r for a non-square layer
    adapter_set *s = make_set(ADAPTER_SINGLORA);
    CHECK_EQ_INT(adapter_set_param_count(s), 32 * 4 + 16 * 4);
    adapter_set_free(s);
    s = make_set(ADAPTER_LORA);
    CHECK_EQ_INT(adapter_set_param_count(s), (32 + 24) * 4 + (16 + 16) * 4);
    adapter_set_free(s);
}

TEST(adapter_bind_checks_shapes) {
    adapter_set *s = make_set(ADAPTER_SINGLORA);
    adapter *a = &s->slots[0].a;
    CHECK(adapter_bind_shape(a, "m", 32, 24, "f") == 0);
    CHECK(adapter_bind_shape(a, "m", 24, 32, "f") == 0);   // d_out > d_in uses the same rows
    CHECK(adapter_bind_shape(a, "m", 40, 24, "f") != 0);
    CHECK(strstr(sl_error_msg(), "needs max(d_in, d_out) = 40") != NULL);
    adapter_set_free(s);
}

TEST(adapter_targets) {
    const char *t = ADAPTER_DEFAULT_TARGETS;
    CHECK(adapter_target_matches(t, "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"));
    CHECK(adapter_target_matches(t, "mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0"));
    CHECK(!adapter_target_matches(t, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k"));
    CHECK(!adapter_target_matches(t, "x.xattn2.to_k"));   // whole components only
    char buf[512];
    adapter_targets_expand("attn,proj_in", buf, sizeof buf);
    CHECK(adapter_target_matches(buf, "a.attn1.to_v") && adapter_target_matches(buf, "a.attn2.to_v"));
    CHECK(adapter_target_matches(buf, "down_blocks.1.attentions.0.proj_in"));
    CHECK(!adapter_target_matches(buf, "down_blocks.1.attentions.0.proj_out"));
    adapter_targets_expand("ff", buf, sizeof buf);
    CHECK(adapter_target_matches(buf, "a.ff.net.0.proj") && adapter_target_matches(buf, "a.ff.net.2"));
}

TEST(adapter_file_errors) {
    const char *path = tmp_path("bad.safetensors");
    float A[8] = {0};
    st_writer *w = st_writer_new();
    st_writer_add(w, "unet.x.singlora.A", DT_F32, 2, (int64_t[]){4, 2}, A);
    REQUIRE(st_writer_save(w, path) == 0);
    CHECK(adapter_set_load(path) == NULL);
    CHECK(strstr(sl_error_msg(), "not a singlora adapter") != NULL);
    st_writer_meta(w, "singlora.format", "1");
    st_writer_meta(w, "singlora.method", "singlora");
    st_writer_meta(w, "singlora.rank", "4");   // A has 2 columns
    st_writer_meta(w, "singlora.alpha", "4");
    st_writer_meta(w, "singlora.ramp_steps", "10");
    st_writer_meta(w, "singlora.step", "0");
    st_writer_meta(w, "singlora.init", "kaiming");
    st_writer_meta(w, "singlora.targets", "attn2.to_k");
    st_writer_meta(w, "singlora.base_model", "0");
    REQUIRE(st_writer_save(w, path) == 0);
    CHECK(adapter_set_load(path) == NULL);
    CHECK(strstr(sl_error_msg(), "has 2 columns but rank is 4") != NULL);
    st_writer_meta(w, "singlora.rank", "two");
    REQUIRE(st_writer_save(w, path) == 0);
    CHECK(adapter_set_load(path) == NULL);
    CHECK(strstr(sl_error_msg(), "singlora.rank") != NULL);
    st_writer_meta(w, "singlora.rank", "2");
    st_writer_meta(w, "singlora.method", "lokr");
    REQUIRE(st_writer_save(w, path) == 0);
    CHECK(adapter_set_load(path) == NULL);
    CHECK(strstr(sl_error_msg(), "lokr") != NULL);
    st_writer_meta(w, "singlora.method", "singlora");
    st_writer_add(w, "unet.y.lora.down", DT_F32, 2, (int64_t[]){2, 4}, A);
    REQUIRE(st_writer_save(w, path) == 0);
    CHECK(adapter_set_load(path) == NULL);
    CHECK(strstr(sl_error_msg(), "'unet.y.lora.down' is not a singlora adapter tensor") != NULL);
    st_writer_free(w);
}

TEST(model_hash_is_order_independent) {
    const char *n1[] = {"b", "a"}, *n2[] = {"a", "b"};
    int64_t sa[] = {3, 4}, sb[] = {5};
    const int64_t *s1[] = {sb, sa}, *s2[] = {sa, sb};
    int d1[] = {1, 2}, d2[] = {2, 1};
    char h1[17], h2[17], h3[17];
    model_hash(h1, n1, s1, d1, 2);
    model_hash(h2, n2, s2, d2, 2);
    CHECK(strcmp(h1, h2) == 0);
    int64_t sc[] = {3, 5};
    const int64_t *s3[] = {sc, sb};
    model_hash(h3, n2, s3, d2, 2);
    CHECK(strcmp(h1, h3) != 0);
}

TEST(inspect_adapter) {
    adapter_set *s = make_set(ADAPTER_SINGLORA);
    const char *path = tmp_path("ad.safetensors");
    REQUIRE(adapter_set_save(s, path) == 0);
    char out[8192];
    CHECK(run_cmd(out, sizeof out, "%s inspect %s", singlora_bin(), path) == 0);
    CHECK(strstr(out, "layout: adapter") != NULL);
    CHECK(strstr(out, "method: singlora") != NULL);
    CHECK(strstr(out, "rank: 4") != NULL);
    CHECK(strstr(out, "step: 37") != NULL);
    CHECK(strstr(out, "u = 0.37") != NULL);
    CHECK(strstr(out, "trainable parameters: 192") != NULL);   // 32·4 + 16·4
    CHECK(strstr(out, "targets: " ADAPTER_DEFAULT_TARGETS) != NULL);
    adapter_set_free(s);
}

TEST(adapter_infer_sd_shapes) {
    // SD 1.5-like widths: C = 320 (D = 768 > C) and C = 1280 (D < C), plus feed-forward layers
    adapter_set s = {.method = ADAPTER_SINGLORA, .rank = 2, .alpha = 2};
    const char *b0 = "down_blocks.0.attentions.0.transformer_blocks.0.", *b3 = "up_blocks.1.attentions.0.transformer_blocks.0.";
    const struct { const char *blk, *name; int d_in, d_out; } L[] = {
        {b0, "attn2.to_q", 320, 320}, {b0, "attn2.to_k", 768, 320}, {b0, "attn2.to_v", 768, 320}, {b0, "attn2.to_out.0", 320, 320},
        {b3, "attn2.to_q", 1280, 1280}, {b3, "attn2.to_k", 768, 1280}, {b3, "attn2.to_out.0", 1280, 1280},
        {b0, "ff.net.0.proj", 320, 2560}, {b0, "ff.net.2", 1280, 320}, {b3, "attn1.to_v", 1280, 1280},
    };
    int n = sizeof L / sizeof *L;
    for (int i = 0; i < n; i++) {
        char m[256];
        snprintf(m, sizeof m, "%s%s", L[i].blk, L[i].name);
        int rows = L[i].d_in > L[i].d_out ? L[i].d_in : L[i].d_out;
        adapter_set_add(&s, m, rows, rows);   // as loaded from a file: only the rows are known
    }
    REQUIRE(unet_infer_adapter_shapes(&s, "f") == 0);
    for (int i = 0; i < n; i++) {
        CHECK_MSG(s.slots[i].a.d_in == L[i].d_in && s.slots[i].a.d_out == L[i].d_out, "%s%s: %d x %d", L[i].blk,
                  L[i].name, s.slots[i].a.d_out, s.slots[i].a.d_in);
    }
    // without the 320-wide attention, D cannot be known for the 1280-wide one
    adapter_set t = {.method = ADAPTER_SINGLORA, .rank = 2, .alpha = 2};
    adapter_set_add(&t, "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_q", 1280, 1280);
    adapter_set_add(&t, "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k", 1280, 1280);
    CHECK(unet_infer_adapter_shapes(&t, "f") != 0);
    CHECK(strstr(sl_error_msg(), "pass --model") != NULL);
    for (int i = 0; i < s.n_slots; i++) { adapter_free(&s.slots[i].a); free(s.slots[i].module); }
    for (int i = 0; i < t.n_slots; i++) { adapter_free(&t.slots[i].a); free(t.slots[i].module); }
    free(s.slots);
    free(t.slots);
}
