// UNet: parity with diffusers on the tiny SD 1.x / 2.x fixtures (diffusers folder, original
// single file, f16 weights), block-by-block traces, config detection, the name map, init, and
// the errors a user sees for broken models and inputs.
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/kernels/gemm.h"
#include "engine/core/tensor.h"
#include "tests/test.h"
#include "unet/unet.h"

#define TOL 1e-4   // forward max abs error (fixtures README: ~50× the reference's own round-off)

static const char *io_path(const char *m) {
    static char b[4][128];
    static int k;
    char *s = b[k++ % 4];
    snprintf(s, 128, "fixtures/io/%s_unet_io.safetensors", m);
    return shared_path(s);
}

typedef struct {
    float *x, *t, *ctx, *eps, *eps16;
    int N, C, h, w, L, D;
} unet_io;

static int io_load(unet_io *io, const char *model) {
    st_file *f = st_open(io_path(model));
    if (!f) return -1;
    const st_entry *ex = st_find(f, "x"), *ec = st_find(f, "context");
    if (!ex || !ec) { st_close(f); return -1; }
    io->N = (int)ex->shape[0];
    io->C = (int)ex->shape[1];
    io->h = (int)ex->shape[2];
    io->w = (int)ex->shape[3];
    io->L = (int)ec->shape[1];
    io->D = (int)ec->shape[2];
    io->x = st_load_f32(f, "x", -1, NULL);
    io->ctx = st_load_f32(f, "context", -1, NULL);
    io->eps = st_load_f32(f, "eps", -1, NULL);
    io->eps16 = st_find(f, "eps_fp16_weights") ? st_load_f32(f, "eps_fp16_weights", -1, NULL) : NULL;
    const st_entry *et = st_find(f, "t");   // int64 timesteps, as diffusers got them
    io->t = sl_alloc_f32(io->N);
    dtype_to_f32_n(io->t, et->data, et->dt, (size_t)io->N);
    st_close(f);
    return 0;
}

static void io_free(unet_io *io) {
    sl_free_aligned(io->x);
    sl_free_aligned(io->t);
    sl_free_aligned(io->ctx);
    sl_free_aligned(io->eps);
    sl_free_aligned(io->eps16);
}

// Trace hook: compares every intermediate the fixture has.
typedef struct {
    st_file *ref;
    int compared;
} trace_cmp;

static void trace_compare(void *ctx, const char *name, const float *d, int ndim, const int64_t *shape) {
    trace_cmp *tc = ctx;
    char full[300];
    snprintf(full, sizeof full, "trace.%s", name);
    const st_entry *e = st_find(tc->ref, full);
    if (!e) return;
    CHECK_MSG(e->ndim == ndim && shape_numel(ndim, shape) == shape_numel(e->ndim, e->shape), "%s: shape differs", name);
    if (shape_numel(ndim, shape) != shape_numel(e->ndim, e->shape)) return;
    float *want = st_load_f32(tc->ref, full, -1, NULL);
    check_close(name, d, want, (size_t)shape_numel(ndim, shape), TOL);
    sl_free_aligned(want);
    tc->compared++;
}

// Forward of `model_path` on the fixture of `model`, compared with eps (or eps_fp16_weights).
static void parity(const char *model, const char *model_path, const char *config, const char *variant, int f16,
                   int with_trace) {
    unet_io io;
    REQUIRE(io_load(&io, model) == 0);
    unet_model *m = unet_load(model_path, config, variant);
    if (!m) fprintf(stderr, "    %s\n", sl_error_msg());
    REQUIRE(m != NULL);
    CHECK_EQ_INT(m->cfg.cross_attention_dim, io.D);
    float *out = sl_alloc_f32((int64_t)io.N * m->cfg.out_channels * io.h * io.w);
    trace_cmp tc = {0};
    unet_trace tr = {trace_compare, &tc};
    if (with_trace) {
        char rel[128];
        snprintf(rel, sizeof rel, "fixtures/io/%s_unet_trace.safetensors", model);
        tc.ref = st_open(shared_path(rel));
        REQUIRE(tc.ref != NULL);
    }
    CHECK(unet_forward(out, io.x, io.t, io.ctx, io.N, io.h, io.w, io.L, m, with_trace ? &tr : NULL) == 0);
    char label[200];
    snprintf(label, sizeof label, "%s %s%s", model, f16 ? "eps_fp16_weights" : "eps", with_trace ? " (traced)" : "");
    check_close(label, out, f16 ? io.eps16 : io.eps, (size_t)io.N * 4 * io.h * io.w, TOL);
    if (with_trace) {
        CHECK_MSG(tc.compared >= 20, "only %d trace tensors compared", tc.compared);
        st_close(tc.ref);
    }
    sl_free_aligned(out);
    unet_free(m);
    io_free(&io);
}

TEST(unet_sd1_diffusers_parity_trace) { parity("sd1", shared_path("fixtures/sd1_tiny"), NULL, NULL, 0, 1); }
TEST(unet_sd2_diffusers_parity_trace) { parity("sd2", shared_path("fixtures/sd2_tiny"), NULL, NULL, 0, 1); }
TEST(unet_sd1_original_parity) {
    parity("sd1", shared_path("fixtures/sd1_tiny.original.safetensors"), shared_path("fixtures/sd1_tiny"), NULL, 0, 0);
}
TEST(unet_sd2_original_parity) {
    parity("sd2", shared_path("fixtures/sd2_tiny.original.safetensors"), shared_path("fixtures/sd2_tiny"), NULL, 0, 0);
}
TEST(unet_sd1_fp16_variant_parity) { parity("sd1", shared_path("fixtures/sd1_tiny"), NULL, "fp16", 1, 0); }

// --precision bf16: every GEMM's operands rounded to bf16, f32 accumulation. The error against
// diffusers' f32 output must stay within BF16_TOL of max|ref| (README, "Precision") and be far
// above f32 round-off (else the bf16 path did not run).
#define BF16_TOL 3e-2
static void parity_bf16(const char *model) {
    if (!gemm_bf16_supported()) {
        fprintf(stderr, "    skipped: this CPU has no AVX512_BF16\n");
        return;
    }
    unet_io io;
    REQUIRE(io_load(&io, model) == 0);
    char rel[64];
    snprintf(rel, sizeof rel, "fixtures/%s_tiny", model);
    unet_model *m = unet_load(shared_path(rel), NULL, NULL);
    REQUIRE(m != NULL);
    size_t n = (size_t)io.N * m->cfg.out_channels * io.h * io.w;
    float *out = sl_alloc_f32((int64_t)n);
    REQUIRE(gemm_set_precision(GEMM_BF16) == 0);
    int rc = unet_forward(out, io.x, io.t, io.ctx, io.N, io.h, io.w, io.L, m, NULL);
    gemm_set_precision(GEMM_FP32);
    CHECK(rc == 0);
    err_stats e = compare_f32(out, io.eps, n);
    fprintf(stderr, "    %s bf16: max abs %.3g = %.3g of max|ref| %.3g\n", model, e.max_abs, e.max_abs / e.max_ref, e.max_ref);
    CHECK_MSG(e.max_abs <= BF16_TOL * e.max_ref, "%s bf16: max abs %g > %g x max|ref| %g", model, e.max_abs, BF16_TOL, e.max_ref);
    CHECK_MSG(e.max_abs > 1e-4 * e.max_ref, "%s bf16: max abs %g is f32 round-off: the bf16 kernel did not run", model, e.max_abs);
    sl_free_aligned(out);
    unet_free(m);
    io_free(&io);
}

TEST(unet_sd1_bf16_parity) { parity_bf16("sd1"); }
TEST(unet_sd2_bf16_parity) { parity_bf16("sd2"); }

// ---------------------------------------------------------------- through the command line

static float *read_out(const char *path, int64_t n) {
    st_file *f = st_open(path);
    if (!f) return NULL;
    const st_entry *e = st_find(f, "out");
    float *o = e && e->dt == DT_F32 && shape_numel(e->ndim, e->shape) == n ? st_load_f32(f, "out", -1, NULL) : NULL;
    st_close(f);
    return o;
}

static void cli_parity(const char *model, const char *model_path, const char *extra, int f16) {
    unet_io io;
    REQUIRE(io_load(&io, model) == 0);
    char out[4096];
    const char *o = tmp_path("out.safetensors");
    int rc = run_cmd(out, sizeof out, "%s forward unet --model %s %s --in %s --out %s --threads 1", singlora_bin(),
                     model_path, extra, io_path(model), o);
    if (rc != 0) fprintf(stderr, "    %s", out);
    REQUIRE(rc == 0);
    int64_t n = (int64_t)io.N * 4 * io.h * io.w;
    float *got = read_out(o, n);
    REQUIRE(got != NULL);
    char label[200];
    snprintf(label, sizeof label, "cli %s %s %s", model, strstr(model_path, ".original.") ? "original" : "diffusers", extra);
    check_close(label, got, f16 ? io.eps16 : io.eps, (size_t)n, TOL);
    sl_free_aligned(got);
    io_free(&io);
}

TEST(unet_cli_parity_sd1) {
    cli_parity("sd1", shared_path("fixtures/sd1_tiny"), "", 0);
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "--config %s", shared_path("fixtures/sd1_tiny"));
    cli_parity("sd1", shared_path("fixtures/sd1_tiny.original.safetensors"), cfg, 0);
    cli_parity("sd1", shared_path("fixtures/sd1_tiny"), "--variant fp16", 1);
}

TEST(unet_cli_parity_sd2) {
    cli_parity("sd2", shared_path("fixtures/sd2_tiny"), "", 0);
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "--config %s", shared_path("fixtures/sd2_tiny"));
    cli_parity("sd2", shared_path("fixtures/sd2_tiny.original.safetensors"), cfg, 0);
    // the component file itself, config.json next to it
    cli_parity("sd2", shared_path("fixtures/sd2_tiny/unet/diffusion_pytorch_model.safetensors"), "", 0);
}

// --precision on the command line: bf16 within BF16_TOL of max|ref|; an unknown value is one error line.
TEST(unet_cli_precision) {
    char out[4096];
    int rc = run_cmd(out, sizeof out, "%s forward unet --model %s --in %s --out %s --precision fp8", singlora_bin(),
                     shared_path("fixtures/sd1_tiny"), io_path("sd1"), tmp_path("bad.safetensors"));
    CHECK_EQ_INT(rc, 1);
    CHECK_MSG(strstr(out, "--precision: 'fp8' is not a precision (fp32 or bf16)") != NULL, "%s", out);
    rc = run_cmd(out, sizeof out, "%s forward unet --model %s --in %s --out %s --precision bf16 --threads 1",
                 singlora_bin(), shared_path("fixtures/sd1_tiny"), io_path("sd1"), tmp_path("out.safetensors"));
    if (!gemm_bf16_supported()) {
        CHECK_EQ_INT(rc, 1);
        CHECK_MSG(strstr(out, "AVX512_BF16") != NULL, "%s", out);
        return;
    }
    REQUIRE(rc == 0);
    unet_io io;
    REQUIRE(io_load(&io, "sd1") == 0);
    int64_t n = (int64_t)io.N * 4 * io.h * io.w;
    float *got = read_out(tmp_path("out.safetensors"), n);
    REQUIRE(got != NULL);
    err_stats e = compare_f32(got, io.eps, (size_t)n);
    fprintf(stderr, "    cli sd1 --precision bf16: max abs %.3g = %.3g of max|ref|\n", e.max_abs, e.max_abs / e.max_ref);
    CHECK(e.max_abs <= BF16_TOL * e.max_ref && e.max_abs > 1e-4 * e.max_ref);
    sl_free_aligned(got);
    io_free(&io);
}

// ---------------------------------------------------------------- one transformer block, kept activations

TEST(unet_tblock_acts_match_trace) {
    // the input of down_blocks.0.attentions.0.transformer_blocks.0 is the traced proj_in output
    const char *pre = "trace.down_blocks.0.attentions.0";
    for (int k = 0; k < 2; k++) {
        const char *model = k ? "sd2" : "sd1";
        unet_io io;
        REQUIRE(io_load(&io, model) == 0);
        char rel[128], name[300];
        snprintf(rel, sizeof rel, "fixtures/io/%s_unet_trace.safetensors", model);
        st_file *ref = st_open(shared_path(rel));
        REQUIRE(ref != NULL);
        unet_model *m = unet_load(shared_path(k ? "fixtures/sd2_tiny" : "fixtures/sd1_tiny"), NULL, NULL);
        REQUIRE(m != NULL);
        const unet_tblock *tb = &m->down[0].attn[0].blocks[0];
        int N = io.N, L = io.h * io.w, C = tb->C;
        snprintf(name, sizeof name, "%s.proj_in", pre);
        float *pin = st_load_f32(ref, name, -1, NULL);
        float *x = sl_alloc_f32((int64_t)N * L * C);
        if (m->cfg.use_linear_projection) {
            memcpy(x, pin, sizeof(float) * (size_t)N * L * C);   // already tokens
        } else {                                                  // NCHW -> tokens
            for (int n = 0; n < N; n++)
                for (int c = 0; c < C; c++)
                    for (int p = 0; p < L; p++) x[((int64_t)n * L + p) * C + c] = pin[((int64_t)n * C + c) * L + p];
        }
        float *out = sl_alloc_f32((int64_t)N * L * C);
        tblock_acts a = {0};
        tblock_forward(out, x, io.ctx, tb, NULL, N, L, io.L, &a, NULL, "b");
        size_t n = (size_t)N * L * C;
        float *d = sl_alloc_f32((int64_t)n);
        snprintf(name, sizeof name, "%s.transformer_blocks.0.norm1", pre);
        float *want = st_load_f32(ref, name, -1, NULL);
        check_close("acts n1 = norm1", a.n1, want, n, TOL);
        sl_free_aligned(want);
        for (size_t i = 0; i < n; i++) d[i] = a.x1[i] - x[i];
        snprintf(name, sizeof name, "%s.transformer_blocks.0.attn1", pre);
        want = st_load_f32(ref, name, -1, NULL);
        check_close("acts x1 - x = attn1", d, want, n, TOL);
        sl_free_aligned(want);
        for (size_t i = 0; i < n; i++) d[i] = a.x2[i] - a.x1[i];
        snprintf(name, sizeof name, "%s.transformer_blocks.0.attn2", pre);
        want = st_load_f32(ref, name, -1, NULL);
        check_close("acts x2 - x1 = attn2", d, want, n, TOL);
        sl_free_aligned(want);
        snprintf(name, sizeof name, "%s.transformer_blocks.0", pre);
        want = st_load_f32(ref, name, -1, NULL);
        check_close("block out", out, want, n, TOL);
        sl_free_aligned(want);
        CHECK(a.q1 && a.k1 && a.v1 && a.a1 && a.n2 && a.q2 && a.k2 && a.v2 && a.a2 && a.n3 && a.ff_h && a.ff_g);
        CHECK(a.mean1 && a.rstd1 && a.mean2 && a.rstd2 && a.mean3 && a.rstd3);
        tblock_acts_free(&a);
        CHECK(a.n1 == NULL && a.ff_h == NULL);
        sl_free_aligned(d);
        sl_free_aligned(out);
        sl_free_aligned(x);
        sl_free_aligned(pin);
        st_close(ref);
        unet_free(m);
        io_free(&io);
    }
}

// ---------------------------------------------------------------- names and the parameter walk

static void check_name(const unet_config *c, const char *from, const char *want) {
    char got[512] = "";
    int rc = unet_original_name(c, from, got, sizeof got);
    CHECK_MSG(rc == 0 && !strcmp(got, want), "%s -> '%s' (rc %d), want '%s'", from, got, rc, want);
}

TEST(unet_name_map_sd15) {
    unet_config c;
    REQUIRE(unet_config_load_dir(&c, shared_path("models/sd15")) == 0);
    check_name(&c, "time_embedding.linear_2.bias", "time_embed.2.bias");
    check_name(&c, "conv_in.weight", "input_blocks.0.0.weight");
    check_name(&c, "down_blocks.0.resnets.1.norm1.weight", "input_blocks.2.0.in_layers.0.weight");
    check_name(&c, "down_blocks.1.resnets.0.conv_shortcut.weight", "input_blocks.4.0.skip_connection.weight");
    check_name(&c, "down_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k.weight",
               "input_blocks.5.1.transformer_blocks.0.attn2.to_k.weight");
    check_name(&c, "down_blocks.2.downsamplers.0.conv.bias", "input_blocks.9.0.op.bias");
    check_name(&c, "down_blocks.3.resnets.1.time_emb_proj.weight", "input_blocks.11.0.emb_layers.1.weight");
    check_name(&c, "mid_block.resnets.1.conv2.weight", "middle_block.2.out_layers.3.weight");
    check_name(&c, "mid_block.attentions.0.proj_in.weight", "middle_block.1.proj_in.weight");
    check_name(&c, "up_blocks.0.resnets.2.conv1.weight", "output_blocks.2.0.in_layers.2.weight");
    check_name(&c, "up_blocks.0.upsamplers.0.conv.weight", "output_blocks.2.1.conv.weight");   // no transformer
    check_name(&c, "up_blocks.1.upsamplers.0.conv.weight", "output_blocks.5.2.conv.weight");   // after one
    check_name(&c, "up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2.bias",
               "output_blocks.11.1.transformer_blocks.0.ff.net.2.bias");
    check_name(&c, "conv_norm_out.weight", "out.0.weight");
    check_name(&c, "conv_out.bias", "out.2.bias");
    char buf[256];
    CHECK(unet_original_name(&c, "down_blocks.3.downsamplers.0.conv.weight", buf, sizeof buf) != 0);   // last level
    CHECK(unet_original_name(&c, "down_blocks.0.resnets.2.conv1.weight", buf, sizeof buf) != 0);   // only 2
    CHECK(unet_original_name(&c, "down_blocks.0.resnets.0.bogus.weight", buf, sizeof buf) != 0);
    CHECK(unet_original_name(&c, "encoder.conv_in.weight", buf, sizeof buf) != 0);
}

// The walk lists exactly the UNet tensors of both tiny files, with their shapes.
typedef struct {
    st_file *f;
    const char *prefix;
    const unet_config *cfg;
    int n, bad;
    int64_t params;
} walk_check;

static int walk_check_visitor(void *ctx, const param_desc *p) {
    walk_check *w = ctx;
    char name[512], full[600];
    if (w->cfg) {
        if (unet_original_name(w->cfg, p->name, name, sizeof name) != 0) { w->bad++; return 0; }
    } else {
        snprintf(name, sizeof name, "%s", p->name);
    }
    snprintf(full, sizeof full, "%s%s", w->prefix, name);
    const st_entry *e = st_find(w->f, full);
    int ok = e && e->ndim == p->ndim;
    for (int i = 0; ok && i < p->ndim; i++) ok = e->shape[i] == p->shape[i];
    if (!ok) {
        if (w->bad++ < 5) fprintf(stderr, "    not in the file (or other shape): %s\n", full);
        return 0;
    }
    w->n++;
    w->params += shape_numel(p->ndim, p->shape);
    return 0;
}

TEST(unet_walk_matches_fixture_files) {
    const char *models[] = {"sd1", "sd2"};
    for (int k = 0; k < 2; k++) {
        char dir[64], rel[128];
        snprintf(dir, sizeof dir, "fixtures/%s_tiny", models[k]);
        unet_config c;
        REQUIRE(unet_config_load_dir(&c, shared_path(dir)) == 0);
        for (int orig = 0; orig < 2; orig++) {
            if (orig) snprintf(rel, sizeof rel, "fixtures/%s_tiny.original.safetensors", models[k]);
            else snprintf(rel, sizeof rel, "fixtures/%s_tiny/unet/diffusion_pytorch_model.safetensors", models[k]);
            st_file *f = st_open(shared_path(rel));
            REQUIRE(f != NULL);
            walk_check w = {f, orig ? "model.diffusion_model." : "", orig ? &c : NULL, 0, 0, 0};
            CHECK(unet_enumerate(&c, walk_check_visitor, &w) == 0);
            int in_file = 0;
            for (int i = 0; i < f->n_entries; i++) in_file += !strncmp(f->entries[i].name, w.prefix, strlen(w.prefix));
            fprintf(stderr, "    %s: %d tensors, %lld parameters walked; %d UNet tensors in the file\n", rel, w.n,
                    (long long)w.params, in_file);
            CHECK_EQ_INT(w.bad, 0);
            CHECK_EQ_INT(w.n, in_file);
            st_close(f);
        }
    }
}

// ---------------------------------------------------------------- config

TEST(unet_config_json) {
    unet_config a, b;
    REQUIRE(unet_config_load_dir(&a, shared_path("models/sd15")) == 0);
    CHECK_EQ_INT(a.n_levels, 4);
    CHECK_EQ_INT(a.block_out_channels[3], 1280);
    CHECK_EQ_INT(a.heads[0], 8);
    CHECK_EQ_INT(a.heads[3], 8);
    CHECK_EQ_INT(a.cross_attention_dim, 768);
    CHECK_EQ_INT(a.use_linear_projection, 0);
    CHECK_EQ_INT(a.time_embed_dim, 1280);
    CHECK_EQ_INT(a.down_attn[2] + 2 * a.down_attn[3], 1);
    CHECK_EQ_INT(a.up_attn[0] + 2 * a.up_attn[1], 2);
    REQUIRE(unet_config_load_dir(&b, shared_path("models/sd21")) == 0);
    CHECK_EQ_INT(b.heads[0], 5);   // 320 / 5 = head dim 64
    CHECK_EQ_INT(b.heads[2], 20);
    CHECK_EQ_INT(b.cross_attention_dim, 1024);
    CHECK_EQ_INT(b.use_linear_projection, 1);
    CHECK_EQ_INT(b.upcast_attention, 1);
    REQUIRE(unet_config_load_dir(&b, shared_path("fixtures/sd2_tiny")) == 0);
    CHECK_EQ_INT(b.heads[1], 3);   // 24 channels / 3 heads
    // unsupported options name the key
    json_config *j = config_parse("x.json", "{\"block_out_channels\": [32, 64], \"cross_attention_dim\": 8,"
                                            "\"down_block_types\": [\"DownBlock2D\", \"DownBlock2D\"],"
                                            "\"up_block_types\": [\"UpBlock2D\", \"UpBlock2D\"],"
                                            "\"norm_num_groups\": 8, \"class_embed_type\": \"timestep\"}");
    REQUIRE(j != NULL);
    CHECK(unet_config_from_json(&a, j) != 0);
    CHECK(strstr(sl_error_msg(), "class_embed_type") != NULL);
    config_free(j);
    j = config_parse("x.json", "{\"block_out_channels\": [32, 64], \"cross_attention_dim\": 8,"
                               "\"down_block_types\": [\"DownBlock2D\", \"DownBlock2D\"],"
                               "\"up_block_types\": [\"UpBlock2D\", \"UpBlock2D\"],"
                               "\"norm_num_groups\": 8, \"attention_head_dim\": 5}");
    REQUIRE(j != NULL);
    CHECK(unet_config_from_json(&a, j) != 0);   // 64 channels do not split into 5 heads
    CHECK(strstr(sl_error_msg(), "heads") != NULL);
    config_free(j);
}

// A fake st_file holding only names and shapes (no data): what detection reads.
typedef struct {
    st_file f;
    int cap;
    const unet_config *cfg;
} fake_file;

static int fake_add(void *ctx, const param_desc *p) {
    fake_file *ff = ctx;
    if (ff->f.n_entries == ff->cap) {
        ff->cap = ff->cap ? 2 * ff->cap : 512;
        ff->f.entries = realloc(ff->f.entries, sizeof(st_entry) * (size_t)ff->cap);
    }
    st_entry *e = &ff->f.entries[ff->f.n_entries++];
    memset(e, 0, sizeof *e);
    char name[512], full[600];
    unet_original_name(ff->cfg, p->name, name, sizeof name);
    snprintf(full, sizeof full, "model.diffusion_model.%s", name);
    e->name = sl_strdup(full);
    e->dt = DT_F16;
    e->ndim = p->ndim;
    memcpy(e->shape, p->shape, sizeof p->shape);
    return 0;
}

static int entry_cmp(const void *a, const void *b) { return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name); }

static void detect_roundtrip(const char *dir) {
    unet_config want, got;
    REQUIRE(unet_config_load_dir(&want, shared_path(dir)) == 0);
    fake_file ff = {.cfg = &want};
    ff.f.path = "fake.safetensors";
    REQUIRE(unet_enumerate(&want, fake_add, &ff) == 0);
    qsort(ff.f.entries, (size_t)ff.f.n_entries, sizeof(st_entry), entry_cmp);   // st_find bisects
    int rc = unet_config_detect(&got, &ff.f, "model.diffusion_model.");
    if (rc) fprintf(stderr, "    %s\n", sl_error_msg());
    CHECK(rc == 0);
    CHECK_EQ_INT(got.n_levels, want.n_levels);
    for (int i = 0; i < want.n_levels; i++) {
        CHECK_EQ_INT(got.block_out_channels[i], want.block_out_channels[i]);
        CHECK_EQ_INT(got.heads[i], want.heads[i]);
        CHECK_EQ_INT(got.down_attn[i], want.down_attn[i]);
        CHECK_EQ_INT(got.up_attn[i], want.up_attn[i]);
        CHECK_EQ_INT(got.transformer_layers[i], want.transformer_layers[i]);
    }
    CHECK_EQ_INT(got.layers_per_block, want.layers_per_block);
    CHECK_EQ_INT(got.cross_attention_dim, want.cross_attention_dim);
    CHECK_EQ_INT(got.use_linear_projection, want.use_linear_projection);
    CHECK_EQ_INT(got.in_channels, want.in_channels);
    CHECK_EQ_INT(got.out_channels, want.out_channels);
    CHECK_EQ_INT(got.time_embed_dim, want.time_embed_dim);
    CHECK_EQ_INT(got.norm_num_groups, want.norm_num_groups);
    fprintf(stderr, "    %s: %d tensors, detected %d levels, D %d, heads %d..%d, %s proj\n", dir, ff.f.n_entries,
            got.n_levels, got.cross_attention_dim, got.heads[0], got.heads[got.n_levels - 1],
            got.use_linear_projection ? "linear" : "conv");
    for (int i = 0; i < ff.f.n_entries; i++) free(ff.f.entries[i].name);
    free(ff.f.entries);
}

TEST(unet_config_detect_sd15_sd21) {
    detect_roundtrip("models/sd15");   // SD 1.x: conv proj_in, context 768, 8 heads
    detect_roundtrip("models/sd21");   // SD 2.x: linear proj_in, context 1024, head dim 64
}

TEST(unet_config_detect_tiny_needs_config) {
    // the tiny models have 8 groups and 4 heads: not detectable, and the error says what to do
    char out[4096];
    int rc = run_cmd(out, sizeof out, "%s forward unet --model %s --in %s --out %s", singlora_bin(),
                     shared_path("fixtures/sd2_tiny.original.safetensors"), io_path("sd2"), tmp_path("o.safetensors"));
    CHECK_EQ_INT(rc, 1);
    CHECK(strstr(out, "--config") != NULL);
    CHECK(strstr(out, "sd2_tiny.original.safetensors") != NULL);
    fprintf(stderr, "    %s", out);
    // the shapes it can see are right
    st_file *f = st_open(shared_path("fixtures/sd1_tiny.original.safetensors"));
    REQUIRE(f != NULL);
    unet_config c;
    CHECK(unet_config_detect(&c, f, "model.diffusion_model.") != 0);   // 16 channels, 32 groups
    CHECK(strstr(sl_error_msg(), "norm_num_groups") != NULL);
    st_close(f);
}

// ---------------------------------------------------------------- errors users see

// Copies the sd1 tiny diffusers UNet into dir with `drop` left out, `reshape` given a wrong
// shape, or an extra tensor added.
static void broken_model(const char *dir, const char *drop, const char *reshape, const char *extra) {
    char path[1024];
    snprintf(path, sizeof path, "mkdir -p %s/unet && cp %s %s/unet/config.json", dir,
             shared_path("fixtures/sd1_tiny/unet/config.json"), dir);
    char out[256];
    REQUIRE(run_cmd(out, sizeof out, "%s", path) == 0);
    st_file *f = st_open(shared_path("fixtures/sd1_tiny/unet/diffusion_pytorch_model.safetensors"));
    REQUIRE(f != NULL);
    st_writer *w = st_writer_new();
    static float junk[64 * 64];
    for (int i = 0; i < f->n_entries; i++) {
        const st_entry *e = &f->entries[i];
        if (drop && !strcmp(e->name, drop)) continue;
        if (reshape && !strcmp(e->name, reshape)) {
            int64_t s[1] = {shape_numel(e->ndim, e->shape)};   // flattened: same data, wrong shape
            st_writer_add(w, e->name, e->dt, 1, s, e->data);
            continue;
        }
        st_writer_add(w, e->name, e->dt, e->ndim, e->shape, e->data);
    }
    if (extra) st_writer_add(w, extra, DT_F32, 2, (int64_t[]){8, 8}, junk);
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    REQUIRE(st_writer_save(w, path) == 0);
    st_writer_free(w);
    st_close(f);
}

static void expect_one_line_error(const char *model, const char *in, const char *needle) {
    char out[4096];
    int rc = run_cmd(out, sizeof out, "%s forward unet --model %s --in %s --out %s", singlora_bin(), model, in,
                     tmp_path("o.safetensors"));
    fprintf(stderr, "    exit %d: %s", rc, out);
    CHECK_EQ_INT(rc, 1);
    CHECK_MSG(strstr(out, needle) != NULL, "error does not name '%s'", needle);
    CHECK_MSG(strncmp(out, "singlora: ", 10) == 0, "not a singlora error line");
    size_t len = strlen(out);
    CHECK_MSG(len > 0 && strchr(out, '\n') == out + len - 1, "not exactly one line");
}

TEST(unet_error_missing_tensor) {
    const char *dir = tmp_path("missing");
    broken_model(dir, "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", NULL, NULL);
    expect_one_line_error(dir, io_path("sd1"), "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight");
}

TEST(unet_error_wrong_shape) {
    const char *dir = tmp_path("reshaped");
    broken_model(dir, NULL, "up_blocks.2.resnets.1.conv1.weight", NULL);
    expect_one_line_error(dir, io_path("sd1"), "up_blocks.2.resnets.1.conv1.weight");
}

TEST(unet_error_unexpected_tensor) {
    const char *dir = tmp_path("extra");
    broken_model(dir, NULL, NULL, "down_blocks.0.attentions.0.transformer_blocks.1.norm1.weight");
    expect_one_line_error(dir, io_path("sd1"), "down_blocks.0.attentions.0.transformer_blocks.1.norm1.weight");
}

TEST(unet_error_original_missing_tensor) {
    // the original layout names the stored tensor
    st_file *f = st_open(shared_path("fixtures/sd1_tiny.original.safetensors"));
    REQUIRE(f != NULL);
    st_writer *w = st_writer_new();
    const char *drop = "model.diffusion_model.output_blocks.5.2.conv.weight";   // up_blocks.1 upsampler
    for (int i = 0; i < f->n_entries; i++)
        if (strcmp(f->entries[i].name, drop))
            st_writer_add(w, f->entries[i].name, f->entries[i].dt, f->entries[i].ndim, f->entries[i].shape, f->entries[i].data);
    const char *p = tmp_path("orig.safetensors");
    REQUIRE(st_writer_save(w, p) == 0);
    st_writer_free(w);
    st_close(f);
    char out[4096];
    int rc = run_cmd(out, sizeof out, "%s forward unet --model %s --config %s --in %s --out %s", singlora_bin(), p,
                     shared_path("fixtures/sd1_tiny"), io_path("sd1"), tmp_path("o.safetensors"));
    fprintf(stderr, "    exit %d: %s", rc, out);
    CHECK_EQ_INT(rc, 1);
    CHECK(strstr(out, drop) != NULL);
}

static float *forward_file(const char *model, const char *extra, const char *in, int64_t n) {
    char out[4096];
    const char *o = tmp_path("init_out.safetensors");
    int rc = run_cmd(out, sizeof out, "%s forward unet --model %s %s --in %s --out %s", singlora_bin(), model, extra, in, o);
    if (rc != 0) { fprintf(stderr, "    %s", out); return NULL; }
    return read_out(o, n);
}

// Writes IN with x in `x_dt`, t in `t_dt` and the context with `ctx_width` columns.
static const char *write_inputs(const char *name, dtype x_dt, dtype t_dt, int ctx_width, int h, int w) {
    unet_io io;
    if (io_load(&io, "sd1") != 0) return NULL;
    st_writer *wr = st_writer_new();
    int64_t n = (int64_t)io.N * io.C * h * w;
    float *x = sl_alloc_f32(n);
    for (int64_t i = 0; i < n; i++) x[i] = io.x[i % ((int64_t)io.N * io.C * io.h * io.w)];
    void *xd = sl_alloc_aligned((size_t)n * 4);
    dtype_from_f32_n(xd, x_dt, x, (size_t)n);
    float *ctx = sl_alloc_f32((int64_t)io.N * io.L * ctx_width);
    for (int64_t i = 0; i < (int64_t)io.N * io.L * ctx_width; i++) ctx[i] = io.ctx[i % ((int64_t)io.N * io.L * io.D)];
    st_writer_add(wr, "x", x_dt, 4, (int64_t[]){io.N, io.C, h, w}, xd);
    int32_t t32[16];
    for (int n = 0; n < io.N && n < 16; n++) t32[n] = (int32_t)io.t[n];
    st_writer_add(wr, "t", t_dt, 1, (int64_t[]){io.N}, t_dt == DT_I32 ? (void *)t32 : (void *)io.t);
    st_writer_add(wr, "context", DT_F32, 3, (int64_t[]){io.N, io.L, ctx_width}, ctx);
    const char *p = tmp_path(name);
    int rc = st_writer_save(wr, p);
    st_writer_free(wr);
    sl_free_aligned(x);
    sl_free_aligned(xd);
    sl_free_aligned(ctx);
    io_free(&io);
    return rc == 0 ? p : NULL;
}

TEST(unet_error_inputs) {
    const char *model = shared_path("fixtures/sd1_tiny");
    const char *in = write_inputs("in_f16.safetensors", DT_F16, DT_F32, 32, 16, 24);
    REQUIRE(in != NULL);
    expect_one_line_error(model, in, "'x'");
    in = write_inputs("in_ctx.safetensors", DT_F32, DT_F32, 48, 16, 24);
    REQUIRE(in != NULL);
    expect_one_line_error(model, in, "'context'");
    in = write_inputs("in_t16.safetensors", DT_F32, DT_F16, 32, 16, 24);
    REQUIRE(in != NULL);
    expect_one_line_error(model, in, "'t'");
    // t as F32 or I32 gives the fixture's eps (it holds I64)
    unet_io io;
    REQUIRE(io_load(&io, "sd1") == 0);
    for (int k = 0; k < 2; k++) {
        in = write_inputs(k ? "in_i32.safetensors" : "in_f32.safetensors", DT_F32, k ? DT_I32 : DT_F32, 32, 16, 24);
        REQUIRE(in != NULL);
        float *got = forward_file(model, "", in, (int64_t)io.N * 4 * io.h * io.w);
        REQUIRE(got != NULL);
        check_close(k ? "t as I32" : "t as F32", got, io.eps, (size_t)io.N * 4 * io.h * io.w, TOL);
        sl_free_aligned(got);
    }
    io_free(&io);
}

// ---------------------------------------------------------------- init

TEST(unet_init_layouts_agree) {
    // the same seed gives the same weights in both layouts (and f16 close to them)
    char out[4096], cfg[1100];
    const char *dir = shared_path("fixtures/sd2_tiny");
    snprintf(cfg, sizeof cfg, "--config %s", dir);
    const char *orig = tmp_path("init.safetensors"), *folder = tmp_path("initdir"), *half = tmp_path("init16.safetensors");
    REQUIRE(run_cmd(out, sizeof out, "%s init --config %s --out %s --seed 7", singlora_bin(), dir, orig) == 0);
    fprintf(stderr, "    %s", out);
    REQUIRE(run_cmd(out, sizeof out, "%s init --config %s --out %s --layout diffusers --seed 7", singlora_bin(), dir, folder) == 0);
    REQUIRE(run_cmd(out, sizeof out, "%s init --config %s --out %s --dtype bf16 --seed 7", singlora_bin(), dir, half) == 0);
    unet_io io;
    REQUIRE(io_load(&io, "sd2") == 0);
    int64_t n = (int64_t)io.N * 4 * io.h * io.w;
    float *a = forward_file(orig, cfg, io_path("sd2"), n);
    float *b = forward_file(folder, "", io_path("sd2"), n);
    float *c = forward_file(half, cfg, io_path("sd2"), n);
    REQUIRE(a && b && c);
    check_close("init original vs diffusers", a, b, (size_t)n, 0);
    double maxa = 0;
    for (int64_t i = 0; i < n; i++) maxa = fmax(maxa, fabs(a[i]));
    fprintf(stderr, "    max |out| %.3g\n", maxa);
    CHECK(maxa > 1e-3 && maxa < 100 && isfinite(maxa));
    check_close("init bf16 vs f32", c, a, (size_t)n, 0.05 * maxa);
    // another seed: other weights
    REQUIRE(run_cmd(out, sizeof out, "%s init --config %s --out %s --seed 8", singlora_bin(), dir, orig) == 0);
    float *d = forward_file(orig, cfg, io_path("sd2"), n);
    REQUIRE(d != NULL);
    CHECK(compare_f32(d, a, (size_t)n).max_abs > 1e-3);
    sl_free_aligned(a);
    sl_free_aligned(b);
    sl_free_aligned(c);
    sl_free_aligned(d);
    io_free(&io);
}

// A non-SD structure (3 levels, 1 resnet per level, 2 transformer layers, 4 groups, odd head
// counts, linear projections): both layouts give the same output, so the name map and the
// structure agree for configs other than the fixtures'.
TEST(unet_other_config_runs) {
    const char *dir = tmp_path("cfg");
    char out[4096], path[1024];
    snprintf(path, sizeof path, "%s/unet", dir);
    REQUIRE(run_cmd(out, sizeof out, "mkdir -p %s", path) == 0);
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("{\"_class_name\": \"UNet2DConditionModel\", \"block_out_channels\": [8, 12, 20],"
          "\"layers_per_block\": 1, \"attention_head_dim\": [2, 3, 5], \"cross_attention_dim\": 12,"
          "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\", \"CrossAttnDownBlock2D\"],"
          "\"up_block_types\": [\"CrossAttnUpBlock2D\", \"UpBlock2D\", \"CrossAttnUpBlock2D\"],"
          "\"norm_num_groups\": 4, \"transformer_layers_per_block\": 2, \"use_linear_projection\": true,"
          "\"in_channels\": 3, \"out_channels\": 5, \"time_embedding_dim\": 24}",
          f);
    fclose(f);
    const char *orig = tmp_path("o.safetensors"), *folder = tmp_path("d");
    REQUIRE(run_cmd(out, sizeof out, "%s init --config %s --out %s", singlora_bin(), dir, orig) == 0);
    REQUIRE(run_cmd(out, sizeof out, "%s init --config %s --out %s --layout diffusers", singlora_bin(), dir, folder) == 0);
    // inputs: N=3, 3×8×12 latents, context 5×12
    int N = 3, h = 8, w = 12, L = 5;
    float x[3 * 3 * 8 * 12], t[3] = {1, 500, 999}, ctx[3 * 5 * 12];
    fill_uniform(x, sizeof x / 4, 1, -1, 1);
    fill_uniform(ctx, sizeof ctx / 4, 2, -1, 1);
    st_writer *wr = st_writer_new();
    st_writer_add(wr, "x", DT_F32, 4, (int64_t[]){N, 3, h, w}, x);
    st_writer_add(wr, "t", DT_F32, 1, (int64_t[]){N}, t);
    st_writer_add(wr, "context", DT_F32, 3, (int64_t[]){N, L, 12}, ctx);
    const char *in = tmp_path("in.safetensors");
    REQUIRE(st_writer_save(wr, in) == 0);
    st_writer_free(wr);
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "--config %s", dir);
    int64_t n = (int64_t)N * 5 * h * w;
    float *a = forward_file(orig, cfg, in, n);
    float *b = forward_file(folder, "", in, n);
    REQUIRE(a && b);
    check_close("3-level config: original vs diffusers", a, b, (size_t)n, 0);
    // batch rows are independent: row 1 alone gives the same numbers
    unet_model *m = unet_load(folder, NULL, NULL);
    REQUIRE(m != NULL);
    float one[5 * 8 * 12];
    CHECK(unet_forward(one, x + 3 * h * w, t + 1, ctx + L * 12, 1, h, w, L, m, NULL) == 0);
    check_close("batch row 1 alone", one, a + 5 * h * w, 5 * h * w, 1e-5);
    unet_free(m);
    sl_free_aligned(a);
    sl_free_aligned(b);
}

// Latent sizes that are not multiples of 8 run as in diffusers (stride-2 convs round up, the
// upsamplers match the skip sizes): 13×21 -> 7×11 -> 4×6 -> 2×3 and back.
TEST(unet_odd_latent_size) {
    unet_io io;
    REQUIRE(io_load(&io, "sd1") == 0);
    unet_model *m = unet_load(shared_path("fixtures/sd1_tiny"), NULL, NULL);
    REQUIRE(m != NULL);
    int h = 13, w = 21;
    float *x = sl_alloc_f32((int64_t)io.N * 4 * h * w), *out = sl_alloc_f32((int64_t)io.N * 4 * h * w);
    for (int n = 0; n < io.N; n++)   // the top-left 13×21 of the fixture's latents
        for (int c = 0; c < 4; c++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++)
                    x[((n * 4 + c) * h + y) * w + xx] = io.x[((n * 4 + c) * io.h + y) * io.w + xx];
    CHECK(unet_forward(out, x, io.t, io.ctx, io.N, h, w, io.L, m, NULL) == 0);
    double mx = 0;
    int finite = 1;
    for (int64_t i = 0; i < (int64_t)io.N * 4 * h * w; i++) {
        finite &= isfinite(out[i]);
        mx = fmax(mx, fabs(out[i]));
    }
    fprintf(stderr, "    13×21: max |out| %.3g\n", mx);
    CHECK(finite && mx > 0.1 && mx < 100);
    sl_free_aligned(x);
    sl_free_aligned(out);
    unet_free(m);
    io_free(&io);
}

TEST(unet_cli_trace_file) {
    char out[4096];
    const char *tr = tmp_path("trace.safetensors");
    int rc = run_cmd(out, sizeof out, "%s forward unet --model %s --in %s --out %s --trace %s", singlora_bin(),
                     shared_path("fixtures/sd2_tiny"), io_path("sd2"), tmp_path("o.safetensors"), tr);
    REQUIRE(rc == 0);
    st_file *got = st_open(tr), *want = st_open(shared_path("fixtures/io/sd2_unet_trace.safetensors"));
    REQUIRE(got && want);
    int matched = 0;
    for (int i = 0; i < want->n_entries; i++) {
        const st_entry *w = &want->entries[i], *g = st_find(got, w->name);
        CHECK_MSG(g != NULL, "no %s in the trace file", w->name);
        if (!g) continue;
        float *a = st_load_f32(got, g->name, -1, NULL), *b = st_load_f32(want, w->name, -1, NULL);
        CHECK_EQ_INT(shape_numel(g->ndim, g->shape), shape_numel(w->ndim, w->shape));
        err_stats e = compare_f32(a, b, (size_t)shape_numel(w->ndim, w->shape));
        CHECK_MSG(e.max_abs <= TOL, "%s: max abs %.3g", w->name, e.max_abs);
        matched++;
        sl_free_aligned(a);
        sl_free_aligned(b);
    }
    fprintf(stderr, "    %d of %d fixture trace tensors in the --trace file, all within %g\n", matched, want->n_entries, TOL);
    st_close(got);
    st_close(want);
}
