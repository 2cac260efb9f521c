// VAE parity against diffusers 0.25.1 (../shared/fixtures/io/vae_*), in the diffusers folder, the
// original single file (with --config) and the fp16 variant; stage traces; the name map; config
// detection; tiling; error handling of the loader and the forward command.
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "tests/test.h"
#include "vae/forward.h"
#include "vae/names.h"
#include "vae/vae.h"

#define TOL 1e-4

static float *fixture(st_file *f, const char *name, int64_t *n) {
    const st_entry *e = st_find(f, name);
    if (!e) return NULL;
    if (n) *n = shape_numel(e->ndim, e->shape);
    return st_load_f32(f, name, -1, NULL);
}

static const char *sd1_dir(void) { return shared_path("fixtures/sd1_tiny"); }
static const char *sd1_original(void) { return shared_path("fixtures/sd1_tiny.original.safetensors"); }

// decode vae_decode_io's latent with m and compare with the reference image
static void check_decode(const char *label, vae_model *m, double tol) {
    st_file *io = st_open(shared_path("fixtures/io/vae_decode_io.safetensors"));
    REQUIRE(io);
    int64_t n = 0;
    float *latent = fixture(io, "latent", NULL), *want = fixture(io, "image", &n);
    REQUIRE(latent && want && n == 3 * 64 * 96);
    float *got = sl_alloc_f32(n);
    vae_decode(m, got, latent, 1, 8, 12);
    check_close(label, got, want, (size_t)n, tol);
    sl_free_aligned(latent), sl_free_aligned(want), sl_free_aligned(got);
    st_close(io);
}

static void check_encode(const char *label, vae_model *m, double tol) {
    st_file *io = st_open(shared_path("fixtures/io/vae_encode_io.safetensors"));
    REQUIRE(io);
    int64_t n = 0, nl = 0;
    float *image = fixture(io, "image", NULL), *moments = fixture(io, "moments", &n);
    float *mean = fixture(io, "mean", &nl), *logvar = fixture(io, "logvar", NULL), *noise = fixture(io, "noise", NULL);
    float *sample = fixture(io, "sample", NULL);
    REQUIRE(image && moments && mean && logvar && noise && sample && n == 8 * 8 * 12);
    float *got = sl_alloc_f32(n), *gm = sl_alloc_f32(nl), *gl = sl_alloc_f32(nl), *gs = sl_alloc_f32(nl);
    vae_encode(m, got, image, 1, 64, 96);
    vae_posterior(&m->cfg, gm, gl, gs, got, noise, 1, 8, 12);
    char l[128];
    snprintf(l, sizeof l, "%s moments", label);
    check_close(l, got, moments, (size_t)n, tol);
    snprintf(l, sizeof l, "%s mean", label);
    check_close(l, gm, mean, (size_t)nl, tol);
    snprintf(l, sizeof l, "%s logvar", label);
    check_close(l, gl, logvar, (size_t)nl, tol);
    snprintf(l, sizeof l, "%s sample", label);
    check_close(l, gs, sample, (size_t)nl, tol);
    sl_free_aligned(image), sl_free_aligned(moments), sl_free_aligned(mean), sl_free_aligned(logvar);
    sl_free_aligned(noise), sl_free_aligned(sample), sl_free_aligned(got), sl_free_aligned(gm), sl_free_aligned(gl);
    sl_free_aligned(gs);
    st_close(io);
}

TEST(vae_config_from_diffusers_json) {
    vae_config c;
    REQUIRE(vae_config_from_json(&c, shared_path("fixtures/sd1_tiny/vae/config.json")) == 0);
    CHECK_EQ_INT(c.n_levels, 4);
    CHECK_EQ_INT(c.block_out[0], 16);
    CHECK_EQ_INT(c.block_out[3], 32);
    CHECK_EQ_INT(c.groups, 8);
    CHECK_EQ_INT(c.layers_per_block, 2);
    CHECK_EQ_INT(c.latent_channels, 4);
    CHECK_NEAR(c.scaling_factor, 0.18215, 1e-7);
    CHECK_EQ_INT(vae_factor(&c), 8);
    // the SD 1.5 config has no scaling_factor key: the SD default applies
    REQUIRE(vae_config_from_json(&c, shared_path("models/sd15/vae/config.json")) == 0);
    CHECK_EQ_INT(c.block_out[2], 512);
    CHECK_EQ_INT(c.groups, 32);
    CHECK_NEAR(c.scaling_factor, 0.18215, 1e-7);
}

TEST(vae_original_name_map) {
    vae_name_ctx c = {4, NULL, NULL};
    static const char *cases[][2] = {
        {"encoder.conv_in.weight", "encoder.conv_in.weight"},
        {"encoder.down_blocks.1.resnets.0.conv_shortcut.bias", "encoder.down.1.block.0.nin_shortcut.bias"},
        {"encoder.down_blocks.2.downsamplers.0.conv.weight", "encoder.down.2.downsample.conv.weight"},
        {"encoder.mid_block.resnets.1.norm2.weight", "encoder.mid.block_2.norm2.weight"},
        {"encoder.mid_block.attentions.0.to_out.0.weight", "encoder.mid.attn_1.proj_out.weight"},
        {"encoder.mid_block.attentions.0.group_norm.bias", "encoder.mid.attn_1.norm.bias"},
        {"encoder.conv_norm_out.weight", "encoder.norm_out.weight"},
        {"decoder.up_blocks.0.resnets.2.conv1.weight", "decoder.up.3.block.2.conv1.weight"},
        {"decoder.up_blocks.3.resnets.0.conv_shortcut.weight", "decoder.up.0.block.0.nin_shortcut.weight"},
        {"decoder.up_blocks.1.upsamplers.0.conv.bias", "decoder.up.2.upsample.conv.bias"},
        {"decoder.mid_block.attentions.0.to_q.weight", "decoder.mid.attn_1.q.weight"},
        {"quant_conv.weight", "quant_conv.weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        REQUIRE(vae_name_original(cases[i][0], out, sizeof out, &c) == 0);
        CHECK_MSG(!strcmp(out, cases[i][1]), "%s -> %s, want %s", cases[i][0], out, cases[i][1]);
    }
    char out[256];
    CHECK(vae_name_original("decoder.up_blocks.4.resnets.0.conv1.weight", out, sizeof out, &c) != 0);
}

typedef struct { st_file *f; int n, bad; } list_check;

static int visit(void *u, const param_desc *p) {
    const char *name = p->name;
    int ndim = p->ndim;
    const int64_t *shape = p->shape;
    list_check *ctx = u;
    ctx->n++;
    const st_entry *e = st_find(ctx->f, name);
    int ok = e && e->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = e->shape[i] == shape[i];
    if (!ok) {
        ctx->bad++;
        fprintf(stderr, "    tensor list: %s not in the file with this shape\n", name);
    }
    return 0;
}

TEST(vae_tensor_list_matches_files) {
    // the enumeration has exactly the tensors of the diffusers file, with their shapes
    vae_config c;
    REQUIRE(vae_config_from_json(&c, shared_path("fixtures/sd1_tiny/vae/config.json")) == 0);
    st_file *f = st_open(shared_path("fixtures/sd1_tiny/vae/diffusion_pytorch_model.safetensors"));
    REQUIRE(f);
    list_check ctx = {f, 0, 0};
    REQUIRE(vae_enumerate(&c, visit, &ctx) == 0);
    CHECK_EQ_INT(ctx.n, f->n_entries);
    CHECK_EQ_INT(ctx.bad, 0);
    st_close(f);
}
TEST(vae_decode_parity_diffusers) {
    vae_model *m = vae_load(sd1_dir(), NULL, NULL, VAE_DECODER);
    if (!m) { test_fail_at(__FILE__, __LINE__, "%s", sl_error_msg()); return; }
    check_decode("decode diffusers f32", m, TOL);
    vae_free(m);
}

TEST(vae_encode_parity_diffusers) {
    vae_model *m = vae_load(sd1_dir(), NULL, NULL, VAE_BOTH);
    if (!m) { test_fail_at(__FILE__, __LINE__, "%s", sl_error_msg()); return; }
    check_encode("encode diffusers f32", m, TOL);
    check_decode("decode diffusers f32 (both parts)", m, TOL);
    vae_free(m);
}

TEST(vae_parity_original_with_config) {
    vae_model *m = vae_load(sd1_original(), sd1_dir(), NULL, VAE_BOTH);
    if (!m) { test_fail_at(__FILE__, __LINE__, "%s", sl_error_msg()); return; }
    check_encode("encode original f32", m, TOL);
    check_decode("decode original f32", m, TOL);
    vae_free(m);
}

TEST(vae_original_without_config_fails_clearly) {
    // the tiny model has 16 channels: norm_num_groups = 32 cannot be assumed
    vae_model *m = vae_load(sd1_original(), NULL, NULL, VAE_BOTH);
    CHECK(m == NULL);
    CHECK_MSG(strstr(sl_error_msg(), "norm_num_groups") && strstr(sl_error_msg(), "--config"), "%s", sl_error_msg());
}

// Round every weight to f16 and back, as the fp16 file stores them.
static int round_visit(void *u, const param_desc *p) {
    (void)u;
    int64_t n = shape_numel(p->ndim, p->shape);
    for (int64_t i = 0; i < n; i++) (*p->slot)[i] = f16_to_f32(f32_to_f16((*p->slot)[i]));
    return 0;
}

TEST(vae_parity_fp16_variant) {
    // fp16 weights, f32 compute. Reference 1: the f32 model with its weights rounded to f16 must
    // match bit for bit (f16 -> f32 widening is exact). Reference 2: diffusers' f32 outputs, with
    // a tolerance for the weight rounding (relative 2^-11 per weight): measured ~1e-3, limit 1e-2.
    vae_model *m16 = vae_load(sd1_dir(), NULL, "fp16", VAE_BOTH);
    if (!m16) { test_fail_at(__FILE__, __LINE__, "%s", sl_error_msg()); return; }
    vae_model *mr = vae_load(sd1_dir(), NULL, NULL, VAE_BOTH);
    REQUIRE(mr);
    vae_walk(mr, VAE_BOTH, round_visit, NULL);
    st_file *io = st_open(shared_path("fixtures/io/vae_decode_io.safetensors"));
    REQUIRE(io);
    int64_t n = 0;
    float *latent = fixture(io, "latent", NULL), *want = fixture(io, "image", &n);
    float *a = sl_alloc_f32(n), *b = sl_alloc_f32(n);
    vae_decode(m16, a, latent, 1, 8, 12);
    vae_decode(mr, b, latent, 1, 8, 12);
    check_close("decode fp16 file vs f32 rounded to f16", a, b, (size_t)n, 0.0);
    check_close("decode fp16 file vs diffusers f32", a, want, (size_t)n, 1e-2);
    sl_free_aligned(latent), sl_free_aligned(want), sl_free_aligned(a), sl_free_aligned(b);
    st_close(io);
    io = st_open(shared_path("fixtures/io/vae_encode_io.safetensors"));
    REQUIRE(io);
    float *image = fixture(io, "image", NULL), *mom = fixture(io, "moments", &n);
    a = sl_alloc_f32(n), b = sl_alloc_f32(n);
    vae_encode(m16, a, image, 1, 64, 96);
    vae_encode(mr, b, image, 1, 64, 96);
    check_close("encode fp16 file vs f32 rounded to f16", a, b, (size_t)n, 0.0);
    check_close("encode fp16 file vs diffusers f32", a, mom, (size_t)n, 1e-2);
    sl_free_aligned(image), sl_free_aligned(mom), sl_free_aligned(a), sl_free_aligned(b);
    st_close(io);
    vae_free(m16);
    vae_free(mr);
}

TEST(vae_stage_traces) {
    // the stage boundaries the tiling relies on, against diffusers' module outputs
    vae_model *m = vae_load(sd1_dir(), NULL, NULL, VAE_BOTH);
    REQUIRE(m);
    st_file *tr = st_open(shared_path("fixtures/io/vae_trace.safetensors"));
    st_file *io = st_open(shared_path("fixtures/io/vae_encode_io.safetensors"));
    st_file *dio = st_open(shared_path("fixtures/io/vae_decode_io.safetensors"));
    REQUIRE(tr && io && dio);
    int64_t n = 0;
    float *image = fixture(io, "image", NULL), *want = fixture(tr, "trace.encoder.down_blocks.3", &n);
    int h, w;
    float *feat = vae_encoder_levels(m, image, 1, 64, 96, &h, &w);
    CHECK(h == 8 && w == 12);
    check_close("trace encoder.down_blocks.3", feat, want, (size_t)n, TOL);
    sl_free_aligned(feat), sl_free_aligned(want), sl_free_aligned(image);
    float *latent = fixture(dio, "latent", NULL);
    want = fixture(tr, "trace.decoder.mid_block", &n);
    feat = vae_decoder_head(m, latent, 1, 8, 12);
    check_close("trace decoder.mid_block", feat, want, (size_t)n, TOL);
    sl_free_aligned(feat), sl_free_aligned(want), sl_free_aligned(latent);
    st_close(tr), st_close(io), st_close(dio);
    vae_free(m);
}

TEST(vae_forward_command_parity) {
    char out[4096];
    const char *enc = tmp_path("enc.safetensors"), *dec = tmp_path("dec.safetensors");
    int rc = run_cmd(out, sizeof out, "%s forward vae-encode --model %s --config %s --in %s --out %s", singlora_bin(),
                     sd1_original(), sd1_dir(), shared_path("fixtures/io/vae_encode_io.safetensors"), enc);
    CHECK_MSG(rc == 0, "%s", out);
    rc = run_cmd(out, sizeof out, "%s forward vae-decode --model %s --variant fp16 --in %s --out %s", singlora_bin(),
                 sd1_dir(), shared_path("fixtures/io/vae_decode_io.safetensors"), dec);
    CHECK_MSG(rc == 0, "%s", out);
    st_file *a = st_open(enc), *ra = st_open(shared_path("fixtures/io/vae_encode_io.safetensors"));
    REQUIRE(a && ra);
    static const char *names[] = {"moments", "mean", "logvar", "std", "sample"};
    for (int i = 0; i < 5; i++) {
        int64_t n = 0, m = 0;
        float *g = fixture(a, names[i], &n), *w = fixture(ra, names[i], &m);
        REQUIRE(g && w && n == m);
        char l[64];
        snprintf(l, sizeof l, "cli encode original %s", names[i]);
        check_close(l, g, w, (size_t)n, TOL);
        sl_free_aligned(g), sl_free_aligned(w);
    }
    st_close(a), st_close(ra);
    a = st_open(dec), ra = st_open(shared_path("fixtures/io/vae_decode_io.safetensors"));
    REQUIRE(a && ra);
    int64_t n = 0, m = 0;
    float *g = fixture(a, "image", &n), *w = fixture(ra, "image", &m);
    REQUIRE(g && w && n == m);
    check_close("cli decode fp16 image", g, w, (size_t)n, 1e-2);
    sl_free_aligned(g), sl_free_aligned(w);
    st_close(a), st_close(ra);
}

// A small random VAE (channels divisible by 32, so the original layout's config is detectable).
static vae_config small_config(void) {
    vae_config c = {0};
    c.in_channels = 3, c.out_channels = 3, c.latent_channels = 4, c.n_levels = 3;
    c.block_out[0] = 32, c.block_out[1] = 64, c.block_out[2] = 64;
    c.layers_per_block = 1, c.groups = 32, c.eps = 1e-6f, c.scaling_factor = 0.18215f;
    c.mid_attention = 1, c.quant_conv = 1, c.post_quant_conv = 1;
    return c;
}

TEST(vae_original_config_detection_and_roundtrip) {
    vae_config c = small_config();
    vae_model *m = vae_random(&c, VAE_BOTH, 42);
    REQUIRE(m);
    const char *orig = tmp_path("orig.safetensors");
    REQUIRE(vae_save(m, orig, 1, DT_F32) == 0);
    vae_model *l = vae_load(orig, NULL, NULL, VAE_BOTH);   // no config: detected from shapes
    if (!l) { test_fail_at(__FILE__, __LINE__, "%s", sl_error_msg()); vae_free(m); return; }
    CHECK_EQ_INT(l->cfg.n_levels, 3);
    CHECK_EQ_INT(l->cfg.block_out[1], 64);
    CHECK_EQ_INT(l->cfg.layers_per_block, 1);
    CHECK_EQ_INT(l->cfg.latent_channels, 4);
    CHECK_EQ_INT(l->cfg.groups, 32);
    int H = 16, W = 24, h = 4, w = 6;
    float *img = sl_alloc_f32(3 * H * W), *a = sl_alloc_f32(8 * h * w), *b = sl_alloc_f32(8 * h * w);
    fill_uniform(img, 3 * H * W, 5, -1, 1);
    vae_encode(m, a, img, 1, H, W);
    vae_encode(l, b, img, 1, H, W);
    check_close("original roundtrip encode", b, a, 8 * h * w, 0.0);
    float *ia = sl_alloc_f32(3 * H * W), *ib = sl_alloc_f32(3 * H * W);
    vae_decode(m, ia, a, 1, h, w);
    vae_decode(l, ib, a, 1, h, w);
    check_close("original roundtrip decode", ib, ia, 3 * H * W, 0.0);
    sl_free_aligned(img), sl_free_aligned(a), sl_free_aligned(b), sl_free_aligned(ia), sl_free_aligned(ib);
    vae_free(l);
    vae_free(m);
}

// mean |a - b| and mean |b|
static void mean_err(const float *a, const float *b, int64_t n, double *err, double *ref) {
    *err = 0, *ref = 0;
    for (int64_t i = 0; i < n; i++) *err += fabs((double)a[i] - b[i]), *ref += fabs((double)b[i]);
    *err /= (double)n, *ref /= (double)n;
}

// A smooth latent (like real ones) plus some noise, (4, h, w).
static void smooth_latent(float *lat, int h, int w, uint64_t seed) {
    fill_uniform(lat, (size_t)4 * h * w, seed, -0.3f, 0.3f);
    for (int c = 0; c < 4; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) lat[(c * h + y) * w + x] += sinf(0.3f * x + c) * cosf(0.2f * y - c);
}

TEST(vae_tiled_decode_2x2) {
    // a 32×32 latent in 2×2 tiles of 20 overlapping by 8 (starts 0 and 12)
    vae_model *m = vae_load(sd1_dir(), NULL, NULL, VAE_DECODER);
    REQUIRE(m);
    int h = 32, w = 32, H = 256, W = 256, n = 3 * H * W;
    float *lat = sl_alloc_f32(4 * h * w), *a = sl_alloc_f32(n), *b = sl_alloc_f32(n);
    smooth_latent(lat, h, w, 11);
    vae_decode(m, a, lat, 1, h, w);
    // context covering the whole latent: every tile sees everything, so the tiles are exact and
    // the result checks the windows, offsets and that the blend weights sum to 1
    vae_decode_tiled(m, b, lat, 1, h, w, (vae_tiling){20, 8, 32});
    check_close("tiled decode 2x2, full context", b, a, n, 1e-5);
    // the real thing: 4 latent pixels of context, each tile's own GroupNorm statistics
    vae_decode_tiled(m, b, lat, 1, h, w, (vae_tiling){20, 8, 4});
    double err, ref;
    mean_err(b, a, n, &err, &ref);
    err_stats e = compare_f32(b, a, n);
    fprintf(stderr, "    tiled decode 2x2, context 4 (fixture VAE): max abs %.3g, mean abs %.3g (mean |ref| %.3g)\n",
            e.max_abs, err, ref);
    CHECK(err < 0.2 * ref);   // per-tile GroupNorm statistics: ~10% on these random models (see tile.c)
    // the same with weights like a trained network's (norm gains near 1)
    vae_config c = m->cfg;
    vae_free(m);
    m = vae_random(&c, VAE_DECODER, 3);
    vae_decode(m, a, lat, 1, h, w);
    vae_decode_tiled(m, b, lat, 1, h, w, (vae_tiling){20, 8, 4});
    mean_err(b, a, n, &err, &ref);
    e = compare_f32(b, a, n);
    fprintf(stderr, "    tiled decode 2x2, context 4 (random VAE):  max abs %.3g, mean abs %.3g (mean |ref| %.3g)\n",
            e.max_abs, err, ref);
    CHECK(err < 0.2 * ref);   // per-tile GroupNorm statistics: ~10% on these random models (see tile.c)
    sl_free_aligned(lat), sl_free_aligned(a), sl_free_aligned(b);
    vae_free(m);
}

TEST(vae_tiled_encode_2x2) {
    vae_model *m = vae_load(sd1_dir(), NULL, NULL, VAE_ENCODER);
    REQUIRE(m);
    int H = 256, W = 256, n = 8 * 32 * 32;
    float *img = sl_alloc_f32(3 * H * W), *a = sl_alloc_f32(n), *b = sl_alloc_f32(n);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) img[(c * H + y) * W + x] = 0.8f * sinf(0.05f * x + c) * cosf(0.07f * y);
    vae_encode(m, a, img, 1, H, W);
    vae_encode_tiled(m, b, img, 1, H, W, (vae_tiling){20, 8, 32});
    check_close("tiled encode 2x2, full context", b, a, n, 1e-5);
    vae_encode_tiled(m, b, img, 1, H, W, (vae_tiling){20, 8, 4});
    double err, ref;
    mean_err(b, a, n, &err, &ref);
    err_stats e = compare_f32(b, a, n);
    fprintf(stderr, "    tiled encode 2x2, context 4: max abs %.3g, mean abs %.3g (mean |ref| %.3g)\n", e.max_abs, err, ref);
    CHECK(err < 0.2 * ref);   // per-tile GroupNorm statistics: ~10% on these random models (see tile.c)
    sl_free_aligned(img), sl_free_aligned(a), sl_free_aligned(b);
    vae_free(m);
}

TEST(vae_tiled_single_tile_is_exact) {
    vae_model *m = vae_load(sd1_dir(), NULL, NULL, VAE_DECODER);
    REQUIRE(m);
    float *lat = sl_alloc_f32(4 * 8 * 12), *a = sl_alloc_f32(3 * 64 * 96), *b = sl_alloc_f32(3 * 64 * 96);
    fill_uniform(lat, 4 * 8 * 12, 3, -1, 1);
    vae_decode(m, a, lat, 1, 8, 12);
    vae_decode_tiled(m, b, lat, 1, 8, 12, vae_tiling_default());
    check_close("tiled decode, one tile == untiled", b, a, 3 * 64 * 96, 0.0);
    sl_free_aligned(lat), sl_free_aligned(a), sl_free_aligned(b);
    vae_free(m);
}

TEST(vae_batch_of_two_matches_singles) {
    vae_model *m = vae_load(sd1_dir(), NULL, NULL, VAE_DECODER);
    REQUIRE(m);
    int n1 = 4 * 8 * 12, o1 = 3 * 64 * 96;
    float *lat = sl_alloc_f32(2 * n1), *a = sl_alloc_f32(2 * o1), *b = sl_alloc_f32(o1);
    fill_uniform(lat, 2 * n1, 9, -1, 1);
    vae_decode(m, a, lat, 2, 8, 12);
    vae_decode(m, b, lat + n1, 1, 8, 12);
    check_close("batch 2, second == single", a + o1, b, o1, 1e-5);
    sl_free_aligned(lat), sl_free_aligned(a), sl_free_aligned(b);
    vae_free(m);
}

// ---- errors ----
static void expect_cmd_error(const char *label, const char *must_contain, const char *fmt, const char *a1, const char *a2,
                             const char *a3) {
    char out[4096], cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, a1, a2, a3);
    int rc = run_cmd(out, sizeof out, "%s %s", singlora_bin(), cmd);
    CHECK_MSG(rc == 1, "%s: exit %d, want 1: %s", label, rc, out);
    CHECK_MSG(strstr(out, "singlora: ") && strstr(out, must_contain), "%s: message '%s' lacks '%s'", label, out, must_contain);
    CHECK_MSG(!strstr(out, "Sanitizer") && !strstr(out, "Segmentation"), "%s crashed: %s", label, out);
}

TEST(vae_command_errors) {
    // shared_path/tmp_path return rotating static buffers: keep copies
    char dio[1024], eio[1024], o[1024];
    snprintf(dio, sizeof dio, "%s", shared_path("fixtures/io/vae_decode_io.safetensors"));
    snprintf(eio, sizeof eio, "%s", shared_path("fixtures/io/vae_encode_io.safetensors"));
    snprintf(o, sizeof o, "%s", tmp_path("o.safetensors"));
    expect_cmd_error("missing model", "no such file", "forward vae-decode --model %s --in %s --out %s", "/nonexistent/m",
                     dio, o);
    expect_cmd_error("bad variant", "variant 'bf16'", "forward vae-decode --model %s --variant bf16 --in %s --out %s",
                     sd1_dir(), dio, o);
    expect_cmd_error("latent missing", "no tensor 'latent'", "forward vae-decode --model %s --in %s --out %s", sd1_dir(),
                     eio, o);
    expect_cmd_error("image missing", "no tensor 'image'", "forward vae-encode --model %s --in %s --out %s", sd1_dir(),
                     shared_path("fixtures/io/sd1_unet_io.safetensors"), o);
    expect_cmd_error("original without config", "norm_num_groups", "forward vae-decode --model %s --in %s --out %s",
                     sd1_original(), dio, o);
    expect_cmd_error("unet file as vae", "no VAE weights", "forward vae-decode --model %s --in %s --out %s",
                     shared_path("fixtures/sd1_tiny/unet/diffusion_pytorch_model.safetensors"), dio, o);
    expect_cmd_error("bad config folder", "no vae/config.json", "forward vae-decode --model %s --config %s --in %s --out x.safetensors",
                     sd1_original(), "/tmp", dio);
    expect_cmd_error("unknown target", "unknown target", "forward %s%s%s", "vae-nothing", "", "");
    expect_cmd_error("no out", "--out is required", "forward vae-decode --model %s --in %s%s", sd1_dir(), dio, "");
}

TEST(vae_loader_errors) {
    // wrong shapes (an sd2 text encoder config?) : a config whose channels disagree with the file
    const char *dir = tmp_path("cfg");
    char cmd[1024], out[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/vae", dir);
    run_cmd(out, sizeof out, "%s", cmd);
    char p[600];
    snprintf(p, sizeof p, "%s/vae/config.json", dir);
    FILE *f = fopen(p, "w");
    REQUIRE(f);
    fputs("{\"block_out_channels\": [16, 32, 64, 32], \"layers_per_block\": 2, \"norm_num_groups\": 8}", f);
    fclose(f);
    vae_model *m = vae_load(sd1_original(), dir, NULL, VAE_BOTH);
    CHECK(m == NULL);
    CHECK_MSG(strstr(sl_error_msg(), "has shape") && strstr(sl_error_msg(), "needs"), "%s", sl_error_msg());
    // fewer layers than the file: leftover tensors are reported
    f = fopen(p, "w");
    fputs("{\"block_out_channels\": [16, 32, 32, 32], \"layers_per_block\": 1, \"norm_num_groups\": 8}", f);
    fclose(f);
    m = vae_load(sd1_original(), dir, NULL, VAE_BOTH);
    CHECK(m == NULL);
    CHECK_MSG(strstr(sl_error_msg(), "does not use"), "%s", sl_error_msg());
    // bad JSON
    f = fopen(p, "w");
    fputs("{\"block_out_channels\": [16, 32,", f);
    fclose(f);
    m = vae_load(sd1_original(), dir, NULL, VAE_BOTH);
    CHECK(m == NULL);
    CHECK_MSG(strstr(sl_error_msg(), "invalid JSON"), "%s", sl_error_msg());
    // groups that do not divide the channels
    f = fopen(p, "w");
    fputs("{\"block_out_channels\": [16, 32, 32, 32], \"layers_per_block\": 2, \"norm_num_groups\": 5}", f);
    fclose(f);
    m = vae_load(sd1_original(), dir, NULL, VAE_BOTH);
    CHECK(m == NULL);
    CHECK_MSG(strstr(sl_error_msg(), "not divisible"), "%s", sl_error_msg());
    // missing tensor: a diffusers vae file without config next to it is an error too
    m = vae_load(shared_path("fixtures/sd1_tiny/vae/diffusion_pytorch_model.safetensors"), NULL, NULL, VAE_BOTH);
    CHECK(m != NULL);   // config.json is next to it
    vae_free(m);
}

TEST(vae_command_png_in_and_out) {
    // decode to a PNG, encode that PNG back: the command's image paths end to end
    char out[4096], png[512], enc[512];
    snprintf(png, sizeof png, "%s", tmp_path("dec.png"));
    snprintf(enc, sizeof enc, "%s", tmp_path("enc.safetensors"));
    int rc = run_cmd(out, sizeof out, "%s forward vae-decode --model %s --in %s --out %s --tile 8 --overlap 2", singlora_bin(),
                     sd1_dir(), shared_path("fixtures/io/vae_decode_io.safetensors"), png);
    CHECK_MSG(rc == 0, "%s", out);
    int h, w;
    float *img = image_load(png, &h, &w);
    REQUIRE(img);
    CHECK(h == 64 && w == 96);
    rc = run_cmd(out, sizeof out, "%s forward vae-encode --model %s --in %s --out %s", singlora_bin(), sd1_dir(), png, enc);
    CHECK_MSG(rc == 0, "%s", out);
    // the command's moments equal the in-process encode of the loaded PNG
    vae_model *m = vae_load(sd1_dir(), NULL, NULL, VAE_ENCODER);
    REQUIRE(m);
    float *mom = sl_alloc_f32(8 * 8 * 12);
    vae_encode(m, mom, img, 1, 64, 96);
    st_file *f = st_open(enc);
    REQUIRE(f);
    float *got = fixture(f, "moments", NULL);
    REQUIRE(got);
    check_close("cli encode of a PNG", got, mom, 8 * 8 * 12, 1e-5);
    CHECK(st_find(f, "sample") == NULL);   // no noise given, no sample
    st_close(f);
    sl_free_aligned(img), sl_free_aligned(mom), sl_free_aligned(got);
    vae_free(m);
}

TEST(vae_old_diffusers_attention_names) {
    // diffusers < 0.14 files name the attention query/key/value/proj_attn: they load the same
    st_file *f = st_open(shared_path("fixtures/sd1_tiny/vae/diffusion_pytorch_model.safetensors"));
    REQUIRE(f);
    char dir[512], cmd[1200], out[256];
    snprintf(dir, sizeof dir, "%s", tmp_path("old"));
    snprintf(cmd, sizeof cmd, "mkdir -p %s/vae && cp %s %s/vae/", dir, shared_path("fixtures/sd1_tiny/vae/config.json"), dir);
    REQUIRE(run_cmd(out, sizeof out, "%s", cmd) == 0);
    st_writer *w = st_writer_new();
    static const char *from[] = {".to_q.", ".to_k.", ".to_v.", ".to_out.0."}, *to[] = {".query.", ".key.", ".value.", ".proj_attn."};
    char names[64][256];
    int nn = 0;
    for (int i = 0; i < f->n_entries; i++) {
        const st_entry *e = &f->entries[i];
        const char *name = e->name;
        for (int k = 0; k < 4 && nn < 64; k++) {
            const char *p = strstr(e->name, from[k]);
            if (!p) continue;
            snprintf(names[nn], sizeof names[nn], "%.*s%s%s", (int)(p - e->name), e->name, to[k], p + strlen(from[k]));
            name = names[nn++];
        }
        st_writer_add(w, name, e->dt, e->ndim, e->shape, e->data);
    }
    CHECK_EQ_INT(nn, 16);   // 4 projections × weight/bias × encoder/decoder
    char path[600];
    snprintf(path, sizeof path, "%s/vae/diffusion_pytorch_model.safetensors", dir);
    REQUIRE(st_writer_save(w, path) == 0);
    st_writer_free(w);
    st_close(f);
    vae_model *m = vae_load(dir, NULL, NULL, VAE_BOTH);
    if (!m) { test_fail_at(__FILE__, __LINE__, "%s", sl_error_msg()); return; }
    check_decode("decode, pre-0.14 attention names", m, TOL);
    vae_free(m);
}

TEST(vae_encode_seeded_sample) {
    // --seed draws the posterior noise as torch.randn(seed): sample = mean + std·randn
    st_file *fx = st_open(shared_path("fixtures/io/vae_encode_io.safetensors"));
    REQUIRE(fx);
    const st_entry *img = st_find(fx, "image");
    REQUIRE(img);
    const char *in = tmp_path("img.safetensors"), *out = tmp_path("enc.safetensors"), *rn = tmp_path("randn.safetensors");
    st_writer *w = st_writer_new();
    st_writer_add(w, "image", DT_F32, img->ndim, img->shape, img->data);
    REQUIRE(st_writer_save(w, in) == 0);
    st_writer_free(w);
    char log[4096];
    CHECK(run_cmd(log, sizeof log, "%s forward vae-encode --model %s --in %s --out %s --seed 5", singlora_bin(),
                  shared_path("fixtures/sd1_tiny"), in, out) == 0);
    st_file *o = st_open(out);
    REQUIRE(o);
    const st_entry *mean = st_find(o, "mean"), *sd = st_find(o, "std"), *sample = st_find(o, "sample");
    REQUIRE(mean && sd && sample);
    char shape[64];
    snprintf(shape, sizeof shape, "%lld,%lld,%lld,%lld", (long long)mean->shape[0], (long long)mean->shape[1],
             (long long)mean->shape[2], (long long)mean->shape[3]);
    CHECK(run_cmd(log, sizeof log, "%s randn --seed 5 --shape %s --out %s", singlora_bin(), shape, rn) == 0);
    st_file *r = st_open(rn);
    REQUIRE(r);
    const float *m = mean->data, *s = sd->data, *e = st_find(r, "randn")->data, *z = sample->data;
    int64_t n = shape_numel(mean->ndim, mean->shape);
    float *want = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) want[i] = m[i] + s[i] * e[i];
    check_close("sample = mean + std·randn(5)", z, want, (size_t)n, 1e-6);
    free(want);
    st_close(r);
    st_close(o);
    st_close(fx);
}
