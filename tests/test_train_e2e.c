// `singlora train` end to end on configs/tiny (random weights, CLIP's real tokenizer): the loss
// falls over 30 steps on a few images; kill -9 + --resume-from-checkpoint latest ends with the
// uninterrupted run's adapter bit for bit; the exported lora.safetensors applied with --lora
// equals the adapter; the trace holds SINGLORA.md's tensors; recipes and both flag spellings;
// prior preservation generates class images; and the data edge cases (empty folder, broken
// image skipped, resolution not a multiple of 8, unwritable OUT, prompt without identifier).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/png.h"
#include "engine/adapters/adapter_set.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "pipeline/adapters.h"
#include "tests/test.h"
#include "unet/unet.h"

static char g_model[512], g_inst[512];

// the tiny model and a folder of 3 synthetic 64x64 photos plus one broken file
static int setup(void) {
    snprintf(g_model, sizeof g_model, "%s", tmp_path("tiny-model"));
    snprintf(g_inst, sizeof g_inst, "%s", tmp_path("inst"));
    char log[8192];
    int rc = run_cmd(log, sizeof log, "%s init --config configs/tiny --layout diffusers --tokenizer %s --out %s", singlora_bin(),
                     shared_path("models/clip-tokenizer"), g_model);
    if (rc != 0) { test_fail_at(__FILE__, __LINE__, "init: %s", log); return -1; }
    mkdir(g_inst, 0777);
    uint8_t px[64 * 64 * 3];
    for (int k = 0; k < 3; k++) {
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++) {
                uint8_t *p = px + (y * 64 + x) * 3;
                p[0] = (uint8_t)(x * 4 + k * 40), p[1] = (uint8_t)(y * 4), p[2] = (uint8_t)((x + y) * 2 + k * 80);
            }
        char path[600];
        snprintf(path, sizeof path, "%s/%02d.png", g_inst, k);
        if (png_write(path, px, 64, 64, 3, NULL, NULL, 0) != 0) return -1;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/zz-broken.png", g_inst);
    FILE *f = fopen(path, "wb");
    fputs("\x89PNG\r\n\x1a\nnot really", f);
    fclose(f);
    return 0;
}

static int train(char *log, size_t n, const char *out, const char *extra) {
    return run_cmd(log, n, "%s train --model %s --instance-data-dir %s --instance-prompt 'a photo of sks dog' --output-dir %s "
                   "--resolution 64 --quiet --threads 1 %s", singlora_bin(), g_model, g_inst, out, extra);
}

static double csv_mean(const char *path, int from, int to) {   // mean loss of steps from..to
    FILE *f = fopen(path, "r");
    if (!f) return NAN;
    char line[512];
    double s = 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        int k;
        double loss;
        if (sscanf(line, "%d,%lf", &k, &loss) == 2 && k >= from && k <= to) s += loss, n++;
    }
    fclose(f);
    return n ? s / n : NAN;
}

static int file_exists(const char *dir, const char *name) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0 && st.st_size > 0;
}

// every tensor of a equals b's bit for bit (metadata aside)
static int same_tensors(const char *a, const char *b) {
    st_file *fa = st_open(a), *fb = st_open(b);
    int ok = fa && fb && fa->n_entries == fb->n_entries && fa->n_entries > 0;
    for (int i = 0; ok && i < fa->n_entries; i++) {
        const st_entry *x = &fa->entries[i], *y = st_find(fb, x->name);
        ok = y && x->end - x->begin == y->end - y->begin && memcmp(x->data, y->data, x->end - x->begin) == 0;
    }
    if (fa) st_close(fa);
    if (fb) st_close(fb);
    return ok;
}

TEST(train_tiny_loss_falls_and_outputs) {
    REQUIRE(setup() == 0);
    const char *out = tmp_path("run");
    char log[16384];
    int rc = train(log, sizeof log, out,
                   "--max-train-steps 30 --train-batch-size 4 --learning-rate 1e-2 --targets all --rank 8 --seed 3 --random-flip");
    REQUIRE(rc == 0 || (printf("%s\n", log), 0));
    CHECK_MSG(strstr(log, "zz-broken.png") && strstr(log, "skipped"), "the broken image is named in a warning: %s", log);
    char csv[600];
    snprintf(csv, sizeof csv, "%s/log.csv", out);
    double first = csv_mean(csv, 1, 5), last = csv_mean(csv, 26, 30);
    printf("loss: steps 1-5 mean %.4f, steps 26-30 mean %.4f\n", first, last);
    CHECK_MSG(last < 0.9 * first, "loss did not fall: %.4f -> %.4f", first, last);
    const char *files[] = {"adapter.safetensors", "lora.safetensors", "log.csv", "loss.png", "config.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) CHECK_MSG(file_exists(out, files[i]), "no %s", files[i]);
    char p[700];
    snprintf(p, sizeof p, "%s/adapter.safetensors", out);
    adapter_set *s = adapter_set_load(p);
    REQUIRE(s);
    CHECK_EQ_INT(s->step, 30);
    CHECK_EQ_INT(s->ramp_steps, 3);   // min(100, 30/10)
    CHECK_MSG(!strcmp(s->init, "normal:0.01"), "SingLoRA's default init is normal:0.01, got %s", s->init);
    adapter_set_free(s);
    snprintf(p, sizeof p, "%s/lora.safetensors", out);
    st_file *f = st_open(p);
    REQUIRE(f);
    const char *keys[] = {"ss_network_dim", "ss_network_alpha", "ss_base_model_version", "ss_resolution", "ss_learning_rate",
                          "ss_max_train_steps", "ss_num_train_images", "ss_num_reg_images", "ss_seed", "ss_output_name",
                          "ss_training_started_at", "ss_sd_model_hash"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) CHECK_MSG(st_meta(f, keys[i]), "lora.safetensors lacks %s", keys[i]);
    CHECK(st_meta(f, "ss_num_train_images") && strcmp(st_meta(f, "ss_num_train_images"), "3") == 0);
    CHECK(st_meta(f, "ss_max_train_steps") && strcmp(st_meta(f, "ss_max_train_steps"), "30") == 0);
    st_close(f);
}

TEST(train_tiny_kill9_resume_bit_identical) {
    REQUIRE(setup() == 0);
    char a[512], b[512], log[16384];
    snprintf(a, sizeof a, "%s", tmp_path("full"));
    snprintf(b, sizeof b, "%s", tmp_path("killed"));
    const char *opts = "--max-train-steps 24 --train-batch-size 2 --gradient-accumulation-steps 2 --learning-rate 1e-2 "
                       "--lr-scheduler cosine --lr-warmup-steps 3 --random-flip --seed 5 --checkpointing-steps 4 "
                       "--checkpoints-total-limit 2";
    REQUIRE(train(log, sizeof log, a, opts) == 0 || (printf("%s\n", log), 0));
    // the same run, SIGKILLed once its second checkpoint exists, then resumed
    int rc = run_cmd(log, sizeof log,
                     "%s train --model %s --instance-data-dir %s --instance-prompt 'a photo of sks dog' --output-dir %s "
                     "--resolution 64 --quiet --threads 1 %s & pid=$!; "
                     "while [ ! -d %s/checkpoints/checkpoint-8 ] && kill -0 $pid 2>/dev/null; do :; done; kill -9 $pid; wait $pid; "
                     "ls %s/checkpoints",
                     singlora_bin(), g_model, g_inst, b, opts, b, b);
    printf("killed run: rc %d, checkpoints: %s\n", rc, log);
    char extra[600];
    snprintf(extra, sizeof extra, "%s --resume-from-checkpoint latest", opts);
    REQUIRE(train(log, sizeof log, b, extra) == 0 || (printf("%s\n", log), 0));
    char pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/adapter.safetensors", a);
    snprintf(pb, sizeof pb, "%s/adapter.safetensors", b);
    CHECK_MSG(same_tensors(pa, pb), "resumed adapter differs from the uninterrupted run's");
    // --checkpoints-total-limit 2 kept the newest two of 4, 8, 12, 16, 20
    CHECK(file_exists(a, "checkpoints/checkpoint-20/optimizer.safetensors"));
    CHECK(file_exists(a, "checkpoints/checkpoint-16/adapter.safetensors"));
    CHECK(!file_exists(a, "checkpoints/checkpoint-12/adapter.safetensors"));
    char csv_a[700], csv_b[700];   // the resumed log continues the killed one's rows with the same losses
    snprintf(csv_a, sizeof csv_a, "%s/log.csv", a);
    snprintf(csv_b, sizeof csv_b, "%s/log.csv", b);
    CHECK_NEAR(csv_mean(csv_b, 1, 24), csv_mean(csv_a, 1, 24), 0);
}


TEST(train_tiny_lora_export_equals_adapter) {
    REQUIRE(setup() == 0);
    const char *out = tmp_path("run");
    char log[16384];
    REQUIRE(train(log, sizeof log, out, "--max-train-steps 6 --learning-rate 1e-2 --ramp-steps 10 --seed 2") == 0 ||
            (printf("%s\n", log), 0));
    char ap[700], lp[700];
    snprintf(ap, sizeof ap, "%s/adapter.safetensors", out);
    snprintf(lp, sizeof lp, "%s/lora.safetensors", out);
    unet_model *m1 = unet_load(g_model, NULL, NULL), *m2 = unet_load(g_model, NULL, NULL);
    REQUIRE(m1 && m2);
    adapter_set *s = adapter_set_load(ap);
    REQUIRE(s && unet_attach_adapters(m1, s, 1.0f, ap) == 0);
    CHECK_NEAR(adapter_set_ramp(s), 0.6, 1e-7);   // u(6) with T = 10: sampling uses the last update's u
    REQUIRE(unet_apply_lora_spec(m2, lp) == 0);
    const int N = 1, C = m1->cfg.in_channels, h = 8, w = 8, L = 77, D = m1->cfg.cross_attention_dim;
    float *x = sl_alloc_f32(N * C * h * w), *ctx = sl_alloc_f32(N * L * D), t[1] = {500.0f};
    float *o1 = sl_alloc_f32(N * C * h * w), *o2 = sl_alloc_f32(N * C * h * w), *o0 = sl_alloc_f32(N * C * h * w);
    fill_uniform(x, (size_t)N * C * h * w, 1, -1, 1);
    fill_uniform(ctx, (size_t)N * L * D, 2, -1, 1);
    REQUIRE(unet_forward(o1, x, t, ctx, N, h, w, L, m1, NULL) == 0);
    REQUIRE(unet_forward(o2, x, t, ctx, N, h, w, L, m2, NULL) == 0);
    unet_attach_adapters(m1, NULL, 1.0f, NULL);
    REQUIRE(unet_forward(o0, x, t, ctx, N, h, w, L, m1, NULL) == 0);
    err_stats moved = compare_f32(o1, o0, (size_t)N * C * h * w);
    CHECK_MSG(moved.max_abs > 1e-4, "the trained adapter changes the output (%.3g)", moved.max_abs);
    check_close("lora.safetensors via --lora vs adapter", o2, o1, (size_t)N * C * h * w, 1e-4 * (moved.max_ref + 1));
    float *bufs[] = {x, ctx, o0, o1, o2};
    for (int i = 0; i < 5; i++) sl_free_aligned(bufs[i]);
    adapter_set_free(s);
    unet_free(m1);
    unet_free(m2);
}

TEST(train_tiny_trace_recipe_and_prior) {
    REQUIRE(setup() == 0);
    char out[512], cls[512], recipe[512], trace[512], log[16384];
    snprintf(out, sizeof out, "%s", tmp_path("run"));
    snprintf(cls, sizeof cls, "%s", tmp_path("class"));
    snprintf(recipe, sizeof recipe, "%s", tmp_path("recipe.json"));
    snprintf(trace, sizeof trace, "%s", tmp_path("trace.safetensors"));
    FILE *f = fopen(recipe, "w");
    fprintf(f, "{\"max_train_steps\": 5, \"--learning-rate\": 0.001, \"random-flip\": true, \"rank\": 2}\n");
    fclose(f);
    char extra[2400];
    snprintf(extra, sizeof extra,
             "--config %s --max_train_steps=3 --with-prior-preservation --class-data-dir %s --class_prompt 'a photo of dog' "
             "--num-class-images 2 --gradient-accumulation-steps 2 --trace %s",
             recipe, cls, trace);
    REQUIRE(train(log, sizeof log, out, extra) == 0 || (printf("%s\n", log), 0));
    CHECK(file_exists(cls, "class-00000.png") && file_exists(cls, "class-00001.png"));
    st_file *t = st_open(trace);
    REQUIRE(t);
    CHECK(st_meta(t, "singlora.trace") && strcmp(st_meta(t, "singlora.trace"), "1") == 0);
    CHECK(st_meta(t, "config") && strstr(st_meta(t, "config"), "\"max_train_steps\":3"));   // the command line won
    CHECK(strstr(st_meta(t, "config"), "\"rank\":2"));                                       // the recipe's
    int n_init = 0;
    for (int i = 0; i < t->n_entries; i++) n_init += strncmp(t->entries[i].name, "init.", 5) == 0;
    CHECK(n_init > 0);
    for (int K = 1; K <= 3; K++) {
        char k[64];
        const char *scal[] = {"lr", "u", "grad_norm"};
        for (int q = 0; q < 3; q++) {
            snprintf(k, sizeof k, "step.%d.%s", K, scal[q]);
            CHECK_MSG(st_find(t, k) && st_find(t, k)->ndim == 0, "trace lacks %s", k);
        }
        for (int j = 0; j < 2; j++) {
            const char *names[] = {"latents", "noise", "timesteps", "context", "prior", "image", "flip", "loss"};
            for (int q = 0; q < 8; q++) {
                snprintf(k, sizeof k, "step.%d.%d.%s", K, j, names[q]);
                CHECK_MSG(st_find(t, k), "trace lacks %s", k);
            }
            snprintf(k, sizeof k, "step.%d.%d.prior", K, j);
            const st_entry *p = st_find(t, k);
            REQUIRE(p && p->dt == DT_I64 && p->shape[0] == 2);
            CHECK(raw_i64(p->data, 0) == 0 && raw_i64(p->data, 1) == 1);   // [instance, class]
            snprintf(k, sizeof k, "step.%d.%d.latents", K, j);
            const st_entry *l = st_find(t, k);
            CHECK(l && l->ndim == 4 && l->shape[0] == 2 && l->shape[2] == 8 && l->shape[3] == 8);
        }
    }
    st_close(t);
    // the cache is reused by a second run with the same model, images and settings
    REQUIRE(train(log, sizeof log, out, extra) == 0);
}

TEST(train_bad_inputs) {
    REQUIRE(setup() == 0);
    char log[16384], empty[512], out[512], keep[700], extra[1200];
    snprintf(empty, sizeof empty, "%s", tmp_path("empty"));
    snprintf(out, sizeof out, "%s", tmp_path("out"));
    mkdir(empty, 0777);
    mkdir(out, 0777);
    snprintf(keep, sizeof keep, "%s/precious.txt", out);
    FILE *f = fopen(keep, "w");
    fputs("keep me", f);
    fclose(f);
    int rc = run_cmd(log, sizeof log, "%s train --model %s --instance-data-dir %s --instance-prompt 'sks dog' --output-dir %s "
                     "--resolution 64", singlora_bin(), g_model, empty, out);
    CHECK_MSG(rc != 0 && strstr(log, empty) && strstr(log, "no readable image"), "empty folder: %s", log);
    rc = train(log, sizeof log, out, "--resolution 60 --max-train-steps 1");
    CHECK_MSG(rc != 0 && strstr(log, "multiple of 8"), "resolution 60: %s", log);
    rc = run_cmd(log, sizeof log, "%s train --model %s --instance-data-dir %s/none --instance-prompt 'sks dog' --output-dir %s",
                 singlora_bin(), g_model, g_inst, out);
    CHECK_MSG(rc != 0 && strstr(log, "/none"), "missing folder: %s", log);
    snprintf(extra, sizeof extra, "%s/out", keep);   // a file where a folder should be: OUT cannot be made
    rc = run_cmd(log, sizeof log, "%s train --model %s --instance-data-dir %s --instance-prompt 'sks dog' --output-dir %s "
                 "--resolution 64", singlora_bin(), g_model, g_inst, extra);
    CHECK_MSG(rc != 0 && strstr(log, "precious.txt"), "unwritable OUT: %s", log);
    rc = run_cmd(log, sizeof log, "%s train --model %s --instance-data-dir %s --instance-prompt 'a photo of dog' --class-prompt "
                 "'a photo of dog' --output-dir %s --resolution 64 --max-train-steps 1 --quiet", singlora_bin(), g_model, g_inst, out);
    CHECK_MSG(rc == 0 && strstr(log, "warning") && strstr(log, "identifier"), "prompt without identifier: %s", log);
    rc = train(log, sizeof log, out, "--max-train-steps 1 --bogus-flag 3");
    CHECK_MSG(rc != 0 && strstr(log, "bogus"), "unknown flag: %s", log);
    f = fopen(keep, "r");
    char buf[32] = "";
    CHECK(f && fgets(buf, sizeof buf, f) && strcmp(buf, "keep me") == 0);   // nothing already in OUT was lost
    if (f) fclose(f);
}
