// `singlora init` writes whole models: the text encoder in both layouts (SD 1.x names, SD 2.x
// OpenCLIP with fused q/k/v and the extra skipped resblock), a diffusers folder with
// model_index.json, scheduler/ and tokenizer/, and the forward commands and `sample` load them.
#include <stdlib.h>
#include <string.h>

#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "tests/test.h"
#include "tests/tiny_tokenizer.h"

static float *read_tensor(const char *path, const char *name, int64_t *n) {
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

static int64_t count_prefix(const char *path, const char *prefix) {
    st_file *f = st_open(path);
    if (!f) return -1;
    int64_t k = 0;
    for (int i = 0; i < f->n_entries; i++)
        if (!strncmp(f->entries[i].name, prefix, strlen(prefix))) k++;
    st_close(f);
    return k;
}

// forward text on the fixture's ids; returns last_hidden_state (N, L, D).
static float *text_out(const char *model, const char *extra, const char *which, int64_t *n) {
    char io[600], log[4096], rel[64], out[600];
    snprintf(rel, sizeof rel, "fixtures/io/%s_text_io.safetensors", which);
    snprintf(io, sizeof io, "%s", shared_path(rel));
    snprintf(out, sizeof out, "%s", tmp_path("text_out.safetensors"));
    int rc = run_cmd(log, sizeof log, "%s forward text --model %s %s --in %s --out %s --threads 1", singlora_bin(), model,
                     extra, io, out);
    if (rc != 0) { fprintf(stderr, "    %s", log); return NULL; }
    return read_tensor(out, "last_hidden_state", n);
}

// Both layouts of one seed hold the same text encoder, and each loads as the right kind.
static void text_layouts_agree(const char *fixture, const char *which, int sd2) {
    char cfg[600], orig[600], dir[600], extra[700], log[4096];
    snprintf(cfg, sizeof cfg, "%s", shared_path(fixture));
    snprintf(orig, sizeof orig, "%s", tmp_path("init.safetensors"));
    snprintf(dir, sizeof dir, "%s", tmp_path("initdir"));
    REQUIRE(run_cmd(log, sizeof log, "%s init --config %s --out %s --seed 3", singlora_bin(), cfg, orig) == 0);
    REQUIRE(run_cmd(log, sizeof log, "%s init --config %s --out %s --layout diffusers --seed 3 --component text_encoder",
                    singlora_bin(), cfg, dir) == 0);
    // original names: SD 1.x transformers names; SD 2.x OpenCLIP, fused q/k/v, one more resblock
    if (sd2) {
        CHECK_EQ_INT(count_prefix(orig, "cond_stage_model.model.transformer.resblocks."), 12 * 3);   // 2 layers + 1
        CHECK_EQ_INT(count_prefix(orig, "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"), 1);
        CHECK_EQ_INT(count_prefix(orig, "cond_stage_model.model.positional_embedding"), 1);
    } else {
        CHECK_EQ_INT(count_prefix(orig, "cond_stage_model.transformer.text_model.encoder.layers."), 16 * 2);
        CHECK_EQ_INT(count_prefix(orig, "cond_stage_model.transformer.text_model.final_layer_norm."), 2);
    }
    char path[700];
    snprintf(path, sizeof path, "%s/text_encoder/model.safetensors", dir);
    CHECK_EQ_INT(count_prefix(path, "text_model.encoder.layers."), 16 * 2);
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    CHECK(run_cmd(log, sizeof log, "grep -c CLIPTextModel %s", path) == 0);
    // the same numbers through either layout (the tiny widths need --config for the original)
    snprintf(extra, sizeof extra, "--config %s", cfg);
    int64_t na = 0, nb = 0;
    float *a = text_out(orig, extra, which, &na);
    float *b = text_out(dir, "", which, &nb);
    REQUIRE(a && b && na == nb && na > 0);
    check_close("init text: original vs diffusers", a, b, (size_t)na, 0);
    double m = 0;
    for (int64_t i = 0; i < na; i++) m = fmax(m, fabs(a[i]));
    fprintf(stderr, "    max |last_hidden_state| %.3g\n", m);
    CHECK(m > 0.1 && m < 100);
    sl_free_aligned(a);
    sl_free_aligned(b);
}

TEST(init_text_sd1_layouts_agree) { text_layouts_agree("fixtures/sd1_tiny", "sd1", 0); }
TEST(init_text_sd2_openclip_layouts_agree) { text_layouts_agree("fixtures/sd2_tiny", "sd2", 1); }

// A whole diffusers folder: each forward command loads it, and `sample` runs on it with the
// tokenizer that init copied in; the original file samples too.
TEST(init_whole_model_samples) {
    const char *tok = tiny_tokenizer();
    REQUIRE(tok);
    char tokdir[600], cfg[600], dir[600], orig[600], out[600], log[8192], path[800];
    snprintf(tokdir, sizeof tokdir, "%s", tok);
    snprintf(cfg, sizeof cfg, "%s", shared_path("fixtures/sd1_tiny"));
    snprintf(dir, sizeof dir, "%s", tmp_path("model"));
    snprintf(orig, sizeof orig, "%s", tmp_path("model.safetensors"));
    int rc = run_cmd(log, sizeof log, "%s init --config %s --layout diffusers --tokenizer %s --dtype f16 --out %s",
                     singlora_bin(), cfg, tokdir, dir);
    REQUIRE(rc == 0);
    REQUIRE(run_cmd(log, sizeof log, "%s init --config %s --out %s", singlora_bin(), cfg, orig) == 0);
    static const char *files[] = {"model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json",
                                  "tokenizer/merges.txt", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                                  "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                                  "text_encoder/config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        CHECK_MSG(run_cmd(log, sizeof log, "test -f %s", path) == 0, "missing %s", files[i]);
    }
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    CHECK(run_cmd(log, sizeof log, "grep -q CLIPTokenizer %s && grep -q DDIMScheduler %s", path, path) == 0);
    // forward unet and vae-decode load both layouts
    char o[600];
    snprintf(o, sizeof o, "%s", tmp_path("o.safetensors"));
    rc = run_cmd(log, sizeof log, "%s forward unet --model %s --in %s --out %s --threads 1", singlora_bin(), dir,
                 shared_path("fixtures/io/sd1_unet_io.safetensors"), o);
    CHECK_MSG(rc == 0, "%s", log);
    rc = run_cmd(log, sizeof log, "%s forward unet --model %s --config %s --in %s --out %s --threads 1", singlora_bin(),
                 orig, cfg, shared_path("fixtures/io/sd1_unet_io.safetensors"), o);
    CHECK_MSG(rc == 0, "%s", log);
    rc = run_cmd(log, sizeof log, "%s forward vae-decode --model %s --in %s --out %s --threads 1", singlora_bin(), dir,
                 shared_path("fixtures/io/vae_decode_io.safetensors"), o);
    CHECK_MSG(rc == 0, "%s", log);
    rc = run_cmd(log, sizeof log, "%s forward vae-decode --model %s --config %s --in %s --out %s --threads 1",
                 singlora_bin(), orig, cfg, shared_path("fixtures/io/vae_decode_io.safetensors"), o);
    CHECK_MSG(rc == 0, "%s", log);
    // sample: the folder carries its tokenizer; the single file needs --tokenizer and --config
    snprintf(out, sizeof out, "%s", tmp_path("out"));
    rc = run_cmd(log, sizeof log, "%s sample --model %s --prompt 'a dog' --steps 2 --seed 5 --width 64 --height 64 "
                 "--threads 1 --out %s", singlora_bin(), dir, out);
    CHECK_MSG(rc == 0, "%s", log);
    snprintf(path, sizeof path, "%s/00000-5.png", out);
    CHECK(run_cmd(log, sizeof log, "test -s %s", path) == 0);
    rc = run_cmd(log, sizeof log, "%s sample --model %s --config %s --tokenizer %s --prompt 'a dog' --steps 2 --seed 6 "
                 "--width 64 --height 64 --threads 1 --out %s", singlora_bin(), orig, cfg, tokdir, out);
    CHECK_MSG(rc == 0, "%s", log);
    snprintf(path, sizeof path, "%s/00000-6.png", out);
    CHECK(run_cmd(log, sizeof log, "test -s %s", path) == 0);
}

TEST(init_errors) {
    char log[4096];
    // a tokenizer only goes into a diffusers folder, and must be one
    int rc = run_cmd(log, sizeof log, "%s init --config %s --out %s --tokenizer %s", singlora_bin(),
                     shared_path("fixtures/sd1_tiny"), tmp_path("x.safetensors"), shared_path("models/clip-tokenizer"));
    CHECK(rc == 1 && strstr(log, "--tokenizer"));
    rc = run_cmd(log, sizeof log, "%s init --config %s --layout diffusers --out %s --tokenizer %s", singlora_bin(),
                 shared_path("fixtures/sd1_tiny"), tmp_path("d"), shared_path("fixtures/sd1_tiny/unet"));
    CHECK(rc == 1 && strstr(log, "tokenizer"));
    rc = run_cmd(log, sizeof log, "%s init --config %s --out %s --component clip", singlora_bin(),
                 shared_path("fixtures/sd1_tiny"), tmp_path("x.safetensors"));
    CHECK(rc == 1 && strstr(log, "text_encoder"));
}

// Without --tokenizer, a diffusers folder gets the built-in CLIP vocabulary in tokenizer/, so it
// runs with nothing from outside the program.
TEST(init_writes_builtin_vocabulary) {
    char dir[600], log[8192], path[800];
    snprintf(dir, sizeof dir, "%s", tmp_path("model"));
    int rc = run_cmd(log, sizeof log, "%s init --config configs/tiny --layout diffusers --component text_encoder --out %s",
                     singlora_bin(), dir);
    REQUIRE(rc == 0);
    snprintf(path, sizeof path, "%s/tokenizer/bpe_simple_vocab_16e6.txt.gz", dir);
    CHECK(run_cmd(log, sizeof log, "cmp -s %s clip/vocab/bpe_simple_vocab_16e6.txt.gz", path) == 0);
    rc = run_cmd(log, sizeof log, "%s tokenize --model %s \"a photo of sks dog\"", singlora_bin(), dir);
    CHECK_EQ_INT(rc, 0);
    CHECK_MSG(!strncmp(log, "[49406, 320, 1125, 539, 48136, 1929, 49407, 49407,", 50), "%s", log);
}
