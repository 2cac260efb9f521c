// `singlora merge`: the merged checkpoint's UNet equals the base UNet with the adapter attached
// (SingLoRA, LoRA and DoRA, scales), every other tensor of a single-file model is copied byte
// for byte, a diffusers folder becomes the original layout (SD 1.x names, SD 2.x OpenCLIP with
// fused q/k/v and the skipped resblock as an identity block) in the folder's dtype, the text
// encoder and VAE load from the merged file with the base's outputs, and bad adapters are
// refused with one line.
#include <stdlib.h>
#include <string.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/dtype.h"
#include "engine/io/model_files.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "pipeline/adapters.h"
#include "tests/test.h"
#include "unet/unet.h"

static float *read_f32(const char *path, const char *name, int64_t *n) {
    st_file *f = st_open(path);
    if (!f) return NULL;
    const st_entry *e = st_find(f, name);
    float *o = NULL;
    if (e && e->dt == DT_F32) {
        *n = shape_numel(e->ndim, e->shape);
        o = st_load_f32(f, name, -1, NULL);
    }
    st_close(f);
    return o;
}

// `singlora forward WHAT --model MODEL EXTRA --in IN --out ...`; returns tensor `name` of the output.
static float *forward(const char *what, const char *model, const char *extra, const char *in_rel, const char *name,
                      int64_t *n) {
    char out[600], log[4096];
    snprintf(out, sizeof out, "%s", tmp_path("fwd_out.safetensors"));
    int rc = run_cmd(log, sizeof log, "%s forward %s --model %s %s --in %s --out %s --threads 1", singlora_bin(), what,
                     model, extra, shared_path(in_rel), out);
    if (rc != 0) { fprintf(stderr, "    forward %s failed: %s", what, log); return NULL; }
    return read_f32(out, name, n);
}

// Max |a - b| over n values.
static double max_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

// A fresh adapter for model (adapter init ... ARGS); nonzero_up: LoRA/DoRA up drawn uniform
// (adapter init leaves it 0, which would make the merge a no-op).
static int make_adapter(const char *model, const char *args, int nonzero_up, const char *out) {
    char log[4096];
    int rc = run_cmd(log, sizeof log, "%s adapter init --model %s %s --seed 4 --out %s", singlora_bin(), model, args, out);
    if (rc != 0) { fprintf(stderr, "    adapter init failed: %s", log); return -1; }
    if (!nonzero_up) return 0;
    adapter_set *s = adapter_set_load(out);
    if (!s) return -1;
    for (int i = 0; i < s->n_slots; i++) {
        adapter *a = &s->slots[i].a;
        if (a->up) fill_uniform(a->up, (size_t)a->d_out * (size_t)a->rank, 100 + (uint64_t)i, -0.5f, 0.5f);
    }
    rc = adapter_set_save(s, out);
    adapter_set_free(s);
    return rc;
}

// forward unet of the merged file vs the base with the adapter attached (and vs the plain
// base: the adapter must change the output, or the comparison proves nothing).
static void unet_matches_adapter(const char *merged, const char *merged_extra, const char *base, const char *base_extra,
                                 const char *adapter, float scale, const char *io, double tol) {
    char extra[1200];
    int64_t n1 = 0, n2 = 0, n3 = 0;
    float *got = forward("unet", merged, merged_extra, io, "out", &n1);
    snprintf(extra, sizeof extra, "%s --adapter %s --adapter-scale %g", base_extra, adapter, (double)scale);
    float *want = forward("unet", base, extra, io, "out", &n2);
    float *plain = forward("unet", base, base_extra, io, "out", &n3);
    REQUIRE(got && want && plain && n1 == n2 && n2 == n3 && n1 > 0);
    check_close("merged vs unmerged adapter (forward unet)", got, want, (size_t)n1, tol);
    double effect = max_diff(want, plain, n1);
    fprintf(stderr, "    adapter's effect on the output: max abs %.3g\n", effect);
    CHECK(effect > 20 * tol && effect > 1e-2);
    sl_free_aligned(got);
    sl_free_aligned(want);
    sl_free_aligned(plain);
}

// forward text and vae-decode of the merged file give the base's outputs exactly.
static void text_and_vae_unchanged(const char *merged, const char *merged_extra, const char *base,
                                   const char *base_extra, const char *text_io) {
    static const char *what[] = {"text", "vae-decode"};
    const char *io[] = {text_io, "fixtures/io/vae_decode_io.safetensors"};
    const char *name[] = {"last_hidden_state", "image"};
    for (int k = 0; k < 2; k++) {
        int64_t na = 0, nb = 0;
        float *a = forward(what[k], merged, merged_extra, io[k], name[k], &na);
        float *b = forward(what[k], base, base_extra, io[k], name[k], &nb);
        CHECK_MSG(a && b && na == nb && na > 0, "forward %s on the merged file", what[k]);
        if (a && b && na == nb) {
            char label[64];
            snprintf(label, sizeof label, "merged vs base (forward %s)", what[k]);
            check_close(label, a, b, (size_t)na, 0);
        }
        sl_free_aligned(a);
        sl_free_aligned(b);
    }
}

static int run_merge(char *log, size_t len, const char *model, const char *args, const char *adapter, const char *out) {
    return run_cmd(log, len, "%s merge --model %s %s --adapter %s --out %s --threads 1", singlora_bin(), model, args,
                   adapter, out);
}

// A single original file: UNet merged in place, everything else byte for byte, metadata kept.
TEST(merge_original_singlora) {
    char cfg[600], model[600], ad[600], out[600], extra[700], log[4096];
    snprintf(cfg, sizeof cfg, "%s", shared_path("fixtures/sd1_tiny"));
    snprintf(model, sizeof model, "%s", shared_path("fixtures/sd1_tiny.original.safetensors"));
    snprintf(ad, sizeof ad, "%s", tmp_path("a.safetensors"));
    snprintf(out, sizeof out, "%s", tmp_path("merged.safetensors"));
    snprintf(extra, sizeof extra, "--config %s", cfg);
    char args[900];
    snprintf(args, sizeof args, "%s --method singlora --rank 4 --alpha 4 --ramp-steps 0", extra);
    REQUIRE(make_adapter(model, args, 0, ad) == 0);
    int rc = run_merge(log, sizeof log, model, extra, ad, out);
    REQUIRE(rc == 0);
    CHECK_MSG(!strstr(log, "warning"), "unexpected warning: %s", log);
    unet_matches_adapter(out, extra, model, extra, ad, 1.0f, "fixtures/io/sd1_unet_io.safetensors", 1e-5);

    // every tensor of M, with its dtype and shape; only adapted UNet weights differ
    st_file *a = st_open(model), *b = st_open(out);
    REQUIRE(a && b);
    CHECK_EQ_INT(b->n_entries, a->n_entries);
    int changed = 0, other = 0;
    for (int i = 0; i < a->n_entries; i++) {
        const st_entry *ea = &a->entries[i], *eb = st_find(b, ea->name);
        CHECK_MSG(eb, "'%s' missing from the merged file", ea->name);
        if (!eb) continue;
        CHECK(eb->dt == ea->dt && eb->ndim == ea->ndim);
        CHECK_MSG(eb->begin % dtype_size(eb->dt) == 0, "'%s' (%s) is not aligned", eb->name, dtype_name(eb->dt));
        CHECK(!memcmp(eb->shape, ea->shape, sizeof(int64_t) * (size_t)ea->ndim));
        int same = eb->end - eb->begin == ea->end - ea->begin && !memcmp(ea->data, eb->data, ea->end - ea->begin);
        if (original_component(ea->name) != 0) {
            other++;
            CHECK_MSG(same, "non-UNet tensor '%s' changed", ea->name);
        } else if (!same) {
            changed++;
            CHECK_MSG(strstr(ea->name, ".attn2.to_") != NULL, "'%s' changed but has no adapter", ea->name);
        }
    }
    fprintf(stderr, "    %d non-UNet tensors identical, %d UNet tensors changed\n", other, changed);
    CHECK(other > 280);
    CHECK_EQ_INT(changed, 64);   // attn2 to_q/k/v/out.0 of 16 transformer blocks
    CHECK(st_meta(b, "format") && !strcmp(st_meta(b, "format"), "pt"));
    CHECK(st_meta(b, "singlora.merge.method") && !strcmp(st_meta(b, "singlora.merge.method"), "singlora"));
    CHECK(st_meta(b, "singlora.merge.step") && !strcmp(st_meta(b, "singlora.merge.step"), "0"));
    CHECK(st_meta(b, "singlora.merge.scale") && !strcmp(st_meta(b, "singlora.merge.scale"), "1"));
    CHECK(st_meta(b, "singlora.merge.adapter") && !strcmp(st_meta(b, "singlora.merge.adapter"), "a.safetensors"));
    CHECK(detect_layout(b) == LAYOUT_ORIGINAL);
    st_close(a);
    st_close(b);
    text_and_vae_unchanged(out, extra, model, extra, "fixtures/io/sd1_text_io.safetensors");
}

// A diffusers folder to the original layout: the names, dtypes and shapes of the fixture's own
// original file (the same weights), with a LoRA merged at a strength.
TEST(merge_diffusers_lora_to_original) {
    char cfg[600], ad[600], out[600], extra[700], log[4096];
    snprintf(cfg, sizeof cfg, "%s", shared_path("fixtures/sd1_tiny"));
    snprintf(ad, sizeof ad, "%s", tmp_path("lora.safetensors"));
    snprintf(out, sizeof out, "%s", tmp_path("merged.safetensors"));
    snprintf(extra, sizeof extra, "--config %s", cfg);
    REQUIRE(make_adapter(cfg, "--method lora --rank 4 --alpha 8 --targets attn2.to_k,attn1.to_q,ff", 1, ad) == 0);
    REQUIRE(run_merge(log, sizeof log, cfg, "--scale 0.7", ad, out) == 0);
    unet_matches_adapter(out, extra, cfg, "", ad, 0.7f, "fixtures/io/sd1_unet_io.safetensors", 1e-5);

    st_file *ref = st_open(shared_path("fixtures/sd1_tiny.original.safetensors")), *b = st_open(out);
    REQUIRE(ref && b);
    int same = 0, unet_changed = 0;
    for (int i = 0; i < b->n_entries; i++) {
        const st_entry *eb = &b->entries[i], *er = st_find(ref, eb->name);
        CHECK_MSG(er, "'%s' is not an original-layout name", eb->name);
        if (!er) continue;
        CHECK_MSG(eb->dt == er->dt && eb->ndim == er->ndim && !memcmp(eb->shape, er->shape, sizeof(int64_t) * (size_t)er->ndim),
                  "'%s': dtype or shape differs from the original layout's", eb->name);
        int eq = eb->end - eb->begin == er->end - er->begin && !memcmp(er->data, eb->data, er->end - er->begin);
        if (eq) same++;
        else if (original_component(eb->name) == 0) unet_changed++;
        else CHECK_MSG(0, "'%s' differs from the fixture's original file", eb->name);
    }
    // everything but the schedule buffers and position_ids (which diffusers folders lack)
    CHECK_EQ_INT(b->n_entries, ref->n_entries - 6);
    // attn2.to_k (16), attn1.to_q (16), ff.net.0.proj and ff.net.2 (2·16) weights
    CHECK_EQ_INT(unet_changed, 64);
    fprintf(stderr, "    %d tensors as in the fixture's original file, %d UNet tensors merged\n", same, unet_changed);
    CHECK(st_meta(b, "singlora.merge.method") && !strcmp(st_meta(b, "singlora.merge.method"), "lora"));
    CHECK(st_meta(b, "singlora.merge.scale") && !strcmp(st_meta(b, "singlora.merge.scale"), "0.7"));
    st_close(ref);
    st_close(b);
    text_and_vae_unchanged(out, extra, cfg, "", "fixtures/io/sd1_text_io.safetensors");
}

// Compares each UNet tensor of the in-memory merge, rounded to f16, with the merged file's bytes.
typedef struct {
    const st_file *f;
    const unet_config *cfg;
    int checked, bad;
} f16_cmp;

static int f16_cmp_visitor(void *ctx, const param_desc *p) {
    f16_cmp *c = ctx;
    char name[512], full[640];
    if (unet_original_name(c->cfg, p->name, name, sizeof name) != 0) return -1;
    snprintf(full, sizeof full, "model.diffusion_model.%s", name);
    const st_entry *e = st_find(c->f, full);
    int64_t n = shape_numel(p->ndim, p->shape);
    c->checked++;
    if (!e || e->dt != DT_F16 || shape_numel(e->ndim, e->shape) != n) {
        c->bad++;
        return 0;
    }
    uint16_t *want = malloc(sizeof(uint16_t) * (size_t)n);
    dtype_from_f32_n(want, DT_F16, *p->slot, (size_t)n);
    if (memcmp(want, e->data, sizeof(uint16_t) * (size_t)n) != 0) c->bad++;
    free(want);
    return 0;
}

// --variant fp16 with DoRA: every tensor F16 as the folder stores it; the UNet's bytes are the
// in-memory merge rounded to f16. Merging into that file again keeps the dtypes, copies the
// rest and appends to the merge record.
TEST(merge_fp16_variant_dora) {
    char cfg[600], ad[600], out[600], out2[600], extra[700], log[4096];
    snprintf(cfg, sizeof cfg, "%s", shared_path("fixtures/sd1_tiny"));
    snprintf(ad, sizeof ad, "%s", tmp_path("dora.safetensors"));
    snprintf(out, sizeof out, "%s", tmp_path("merged16.safetensors"));
    snprintf(out2, sizeof out2, "%s", tmp_path("merged16b.safetensors"));
    snprintf(extra, sizeof extra, "--config %s", cfg);
    REQUIRE(make_adapter(cfg, "--variant fp16 --method dora --rank 2 --alpha 2", 1, ad) == 0);
    REQUIRE(run_merge(log, sizeof log, cfg, "--variant fp16 --scale 0.5", ad, out) == 0);

    unet_model *m = unet_load(cfg, NULL, "fp16");
    adapter_set *s = adapter_set_load(ad);
    REQUIRE(m && s && unet_merge_adapters(m, s, 0.5f, ad) == 0);
    st_file *b = st_open(out);
    REQUIRE(b);
    int n16 = 0;
    for (int i = 0; i < b->n_entries; i++) n16 += b->entries[i].dt == DT_F16;
    CHECK_EQ_INT(n16, b->n_entries);
    f16_cmp c = {b, &m->cfg, 0, 0};
    CHECK(unet_walk(m, f16_cmp_visitor, &c) == 0);
    fprintf(stderr, "    %d UNet tensors vs the in-memory merge rounded to f16: %d differ\n", c.checked, c.bad);
    CHECK_EQ_INT(c.checked, 686);
    CHECK_EQ_INT(c.bad, 0);
    st_close(b);
    unet_free(m);
    adapter_set_free(s);
    // f16 rounding of the merged weights is the only difference from the unmerged adapter
    unet_matches_adapter(out, extra, cfg, "--variant fp16", ad, 0.5f, "fixtures/io/sd1_unet_io.safetensors", 2e-3);

    // and once more into the f16 single file
    REQUIRE(run_merge(log, sizeof log, out, extra, ad, out2) == 0);
    st_file *f1 = st_open(out), *f2 = st_open(out2);
    REQUIRE(f1 && f2);
    CHECK_EQ_INT(f2->n_entries, f1->n_entries);
    for (int i = 0; i < f1->n_entries; i++) {
        const st_entry *e1 = &f1->entries[i], *e2 = st_find(f2, e1->name);
        CHECK(e2 && e2->dt == DT_F16);
        if (e2 && original_component(e1->name) != 0)
            CHECK_MSG(!memcmp(e1->data, e2->data, e1->end - e1->begin), "'%s' changed", e1->name);
    }
    CHECK(st_meta(f2, "singlora.merge.scale") && !strcmp(st_meta(f2, "singlora.merge.scale"), "0.5; 1"));
    CHECK(st_meta(f2, "singlora.merge.method") && !strcmp(st_meta(f2, "singlora.merge.method"), "dora; dora"));
    st_close(f1);
    st_close(f2);
}

// SD 2.x folder -> original: OpenCLIP names with fused in_proj, and the resblock SD 2.x skips
// written as zeros (an identity block); the fixture's own original file has the same tensors.
TEST(merge_sd2_diffusers_to_openclip) {
    char cfg[600], ad[600], out[600], extra[700], log[4096];
    snprintf(cfg, sizeof cfg, "%s", shared_path("fixtures/sd2_tiny"));
    snprintf(ad, sizeof ad, "%s", tmp_path("a.safetensors"));
    snprintf(out, sizeof out, "%s", tmp_path("merged.safetensors"));
    snprintf(extra, sizeof extra, "--config %s", cfg);
    REQUIRE(make_adapter(cfg, "--method singlora --rank 4 --alpha 4 --ramp-steps 0 --targets attn", 0, ad) == 0);
    REQUIRE(run_merge(log, sizeof log, cfg, "", ad, out) == 0);
    unet_matches_adapter(out, extra, cfg, "", ad, 1.0f, "fixtures/io/sd2_unet_io.safetensors", 1e-5);

    st_file *ref = st_open(shared_path("fixtures/sd2_tiny.original.safetensors")), *b = st_open(out);
    REQUIRE(ref && b);
    // the last resblock: 2 layers in diffusers' config, resblocks.2 is the skipped one
    const char *last = "cond_stage_model.model.transformer.resblocks.2.";
    int n_last = 0, n_text = 0, unet_changed = 0;
    for (int i = 0; i < b->n_entries; i++) {
        const st_entry *eb = &b->entries[i], *er = st_find(ref, eb->name);
        CHECK_MSG(er, "'%s' is not an original-layout name", eb->name);
        if (!er) continue;
        CHECK_MSG(eb->dt == er->dt && eb->ndim == er->ndim && !memcmp(eb->shape, er->shape, sizeof(int64_t) * (size_t)er->ndim),
                  "'%s': dtype or shape differs from the original layout's", eb->name);
        if (!strncmp(eb->name, last, strlen(last))) {
            n_last++;
            const float *x = eb->data;
            int zero = 1;
            for (int64_t k = 0; k < shape_numel(eb->ndim, eb->shape); k++) zero &= x[k] == 0;
            CHECK_MSG(zero, "'%s' is not zeros", eb->name);
            continue;
        }
        n_text += original_component(eb->name) == 2;
        int eq = !memcmp(er->data, eb->data, er->end - er->begin);
        if (!eq && original_component(eb->name) == 0) unet_changed++;
        else CHECK_MSG(eq, "'%s' differs from the fixture's original file", eb->name);
    }
    CHECK_EQ_INT(n_last, 12);
    CHECK_EQ_INT(n_text, 4 + 2 * 12);   // token/positional embeddings, ln_final; 12 per resblock (fused q/k/v)
    CHECK_EQ_INT(unet_changed, 16 * 8);  // attn1 and attn2 q/k/v/out.0 of 16 blocks
    // the fused in_proj: (3·D, D)
    const st_entry *qkv = st_find(b, "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight");
    CHECK(qkv && qkv->ndim == 2 && qkv->shape[0] == 3 * qkv->shape[1]);
    // ours lacks only the schedule buffers, text_projection and logit_scale
    CHECK_EQ_INT(b->n_entries, ref->n_entries - 7);
    st_close(ref);
    st_close(b);
    text_and_vae_unchanged(out, extra, cfg, "", "fixtures/io/sd2_text_io.safetensors");
}

// An adapter module the UNet lacks: one line naming it, no output. A different base-model
// hash: a warning only. Inputs merge does not take: one line each.
TEST(merge_errors) {
    char cfg[600], ad[600], bad[600], out[600], log[4096];
    snprintf(cfg, sizeof cfg, "%s", shared_path("fixtures/sd1_tiny"));
    snprintf(ad, sizeof ad, "%s", tmp_path("a.safetensors"));
    snprintf(bad, sizeof bad, "%s", tmp_path("bad.safetensors"));
    snprintf(out, sizeof out, "%s", tmp_path("merged.safetensors"));
    REQUIRE(make_adapter(cfg, "--method lora --rank 2", 1, ad) == 0);

    adapter_set *s = adapter_set_load(ad);
    REQUIRE(s);
    free(s->slots[3].module);
    s->slots[3].module = strdup("down_blocks.7.attentions.0.transformer_blocks.0.attn2.to_k");
    REQUIRE(adapter_set_save(s, bad) == 0);
    int rc = run_merge(log, sizeof log, cfg, "", bad, out);
    fprintf(stderr, "    %s", log);
    CHECK(rc == 1 && strstr(log, "down_blocks.7.attentions.0.transformer_blocks.0.attn2.to_k") && strstr(log, bad));
    CHECK(strchr(log, '\n') == log + strlen(log) - 1);   // one line
    CHECK(run_cmd(log, sizeof log, "test -e %s", out) != 0);

    // another base model: merged, with a warning naming both hashes
    adapter_set *t = adapter_set_load(ad);
    REQUIRE(t);
    snprintf(t->base_model, sizeof t->base_model, "0123456789abcdef");
    REQUIRE(adapter_set_save(t, bad) == 0);
    rc = run_merge(log, sizeof log, cfg, "", bad, out);
    fprintf(stderr, "    %s", log);
    CHECK(rc == 0 && strstr(log, "0123456789abcdef") && strstr(log, "warning"));
    CHECK(run_cmd(log, sizeof log, "test -s %s", out) == 0);
    adapter_set_free(s);
    adapter_set_free(t);

    // an SD 2.x adapter on an SD 1.x model: the same module paths, other shapes
    char ad2[600];
    snprintf(ad2, sizeof ad2, "%s", tmp_path("sd2.safetensors"));
    REQUIRE(make_adapter(shared_path("fixtures/sd2_tiny"), "--method singlora --rank 2", 0, ad2) == 0);
    rc = run_merge(log, sizeof log, cfg, "", ad2, tmp_path("x.safetensors"));
    fprintf(stderr, "    %s", log);
    CHECK(rc == 1 && strstr(log, "attn2.to_"));

    // a diffusers component file, --variant on a single file, a missing model
    char unet_file[700];
    snprintf(unet_file, sizeof unet_file, "%s/unet/diffusion_pytorch_model.safetensors", cfg);
    rc = run_merge(log, sizeof log, unet_file, "", ad, tmp_path("x.safetensors"));
    CHECK(rc == 1 && strstr(log, "single-file"));
    rc = run_merge(log, sizeof log, shared_path("fixtures/sd1_tiny.original.safetensors"), "--variant fp16", ad,
                   tmp_path("x.safetensors"));
    CHECK(rc == 1 && strstr(log, "--variant"));
    rc = run_merge(log, sizeof log, tmp_path("nope"), "", ad, tmp_path("x.safetensors"));
    CHECK(rc == 1 && strstr(log, "nope"));
}
