// The fidelity metrics and `singlora eval`: parity with ../shared/fixtures/eval/io/metrics_io
// (the tiny recipe's preprocessing, embeddings, cosine matrices and scores), then the command end
// to end on those images as files (a broken one among them), prompts, and the bad-input errors.
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "data/png.h"
#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "eval/clip_model.h"
#include "eval/dino.h"
#include "eval/evaluate.h"
#include "eval/metrics.h"
#include "eval/preprocess.h"
#include "tests/test.h"
#include "tests/tiny_tokenizer.h"

static st_file *metrics_io(void) { return st_open(shared_path("fixtures/eval/io/metrics_io.safetensors")); }

static double f64_scalar(st_file *f, const char *name) {
    const st_entry *e = st_find(f, name);
    return e && e->dt == DT_F64 ? raw_f64(e->data, 0) : NAN;
}

static void check_f64(st_file *f, const char *name, const double *got, int n, double tol) {
    const st_entry *e = st_find(f, name);
    REQUIRE(e && e->dt == DT_F64 && shape_numel(e->ndim, e->shape) == n);
    double mx = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, fabs(got[i] - raw_f64(e->data, i)));
    fprintf(stderr, "    %-28s max abs %.3g\n", name, mx);
    CHECK_MSG(mx <= tol, "%s: max abs %g > %g", name, mx, tol);
}

TEST(eval_metrics_match_reference_from_stored_embeddings) {
    st_file *f = metrics_io();
    REQUIRE(f);
    float *gd = st_load_f32(f, "gen_dino_embeds", 2, (int64_t[]){4, 48}), *rd = st_load_f32(f, "real_dino_embeds", 2, (int64_t[]){3, 48});
    float *gc = st_load_f32(f, "gen_clip_image_embeds", 2, (int64_t[]){4, 32});
    float *rc = st_load_f32(f, "real_clip_image_embeds", 2, (int64_t[]){3, 32});
    float *pt = st_load_f32(f, "prompt_text_embeds", 2, (int64_t[]){4, 32});
    REQUIRE(gd && rd && gc && rc && pt);
    double m[16], per[4];
    cosine_matrix(m, gd, 4, rd, 3, 48);
    check_f64(f, "dino_cos_matrix", m, 12, 1e-9);
    double s = matrix_mean(m, 4, 3, NULL);
    CHECK_NEAR(s, f64_scalar(f, "dino_score"), 1e-9);
    cosine_matrix(m, gc, 4, rc, 3, 32);
    check_f64(f, "clip_i_cos_matrix", m, 12, 1e-9);
    double ci = matrix_mean(m, 4, 3, NULL);
    CHECK_NEAR(ci, f64_scalar(f, "clip_i_score"), 1e-9);
    cosine_matrix(m, pt, 4, gc, 4, 32);
    check_f64(f, "clip_t_cos_matrix", m, 16, 1e-9);
    double t = clip_t_score(pt, gc, 4, 32, per);
    check_f64(f, "clip_t_per_prompt", per, 4, 1e-9);
    CHECK_NEAR(t, f64_scalar(f, "clip_t_score"), 1e-9);
    fprintf(stderr, "    scores: dino %.6f clip_i %.6f clip_t %.6f\n", s, ci, t);
    sl_free_aligned(gd); sl_free_aligned(rd); sl_free_aligned(gc); sl_free_aligned(rc); sl_free_aligned(pt);
    st_close(f);
}

// The images through our preprocessing and models give the stored pixel values and embeddings.
TEST(eval_metrics_pipeline_matches_reference_embeddings) {
    st_file *f = metrics_io();
    REQUIRE(f);
    dino_model *dm = dino_load(shared_path("fixtures/eval/dino_tiny.original.safetensors"));
    clip_model *cm = clip_model_load(shared_path("fixtures/eval/clip_tiny"));
    REQUIRE(dm && cm);
    const char *sets[2] = {"gen", "real"};
    for (int s = 0; s < 2; s++) {
        char name[64];
        snprintf(name, sizeof name, "%s_images_u8", sets[s]);
        const st_entry *e = st_find(f, name);
        REQUIRE(e && e->dt == DT_U8 && e->ndim == 4);
        int N = (int)e->shape[0], H = (int)e->shape[1], W = (int)e->shape[2];
        preprocess_spec specs[2] = {preprocess_dino(64), preprocess_clip(64)};
        const char *kinds[2] = {"dino", "clip"};
        for (int k = 0; k < 2; k++) {
            float *px = sl_alloc_f32((int64_t)N * 3 * 64 * 64), *emb = sl_alloc_f32((int64_t)N * 48);
            for (int i = 0; i < N; i++)
                preprocess_image(px + (int64_t)i * 3 * 64 * 64, (const uint8_t *)e->data + (size_t)i * H * W * 3, H, W,
                                 &specs[k], NULL, NULL);
            snprintf(name, sizeof name, "%s_%s_pixel_values", sets[s], kinds[k]);
            float *want = st_load_f32(f, name, 4, (int64_t[]){N, 3, 64, 64});
            check_close(name, px, want, (size_t)N * 3 * 64 * 64, 0.0);
            sl_free_aligned(want);
            if (k == 0) dino_forward(dm, px, N, emb, NULL, NULL);
            else clip_vision_forward(cm->vision, px, N, emb, NULL, NULL, NULL);
            snprintf(name, sizeof name, k == 0 ? "%s_dino_embeds" : "%s_clip_image_embeds", sets[s]);
            int d = k == 0 ? 48 : 32;
            want = st_load_f32(f, name, 2, (int64_t[]){N, d});
            check_close(name, emb, want, (size_t)N * d, 1e-4);
            sl_free_aligned(want);
            sl_free_aligned(px);
            sl_free_aligned(emb);
        }
    }
    // the prompts' text embeddings from their ids
    const st_entry *ids64 = st_find(f, "prompt_input_ids");
    REQUIRE(ids64 && ids64->dt == DT_I64);
    int32_t ids[4 * 77];
    for (int i = 0; i < 4 * 77; i++) ids[i] = (int32_t)raw_i64(ids64->data, i);
    float emb[4 * 32];
    REQUIRE(clip_model_text_forward(cm, ids, 4, 77, emb, NULL, NULL, NULL) == 0);
    float *want = st_load_f32(f, "prompt_text_embeds", 2, (int64_t[]){4, 32});
    check_close("prompt_text_embeds", emb, want, 4 * 32, 1e-4);
    sl_free_aligned(want);
    dino_free(dm);
    clip_model_free(cm);
    st_close(f);
}

TEST(eval_prompt_sources_and_identifier) {
    char *p = eval_strip_identifier("a  sks dog\ton the beach sks", "sks");
    CHECK(!strcmp(p, "a dog on the beach"));
    free(p);
    p = eval_strip_identifier("a sksdog", "sks");   // whole words only
    CHECK(!strcmp(p, "a sksdog"));
    free(p);
    // PNG parameters chunk, A1111 style, with and without a negative prompt
    uint8_t px[4 * 4 * 3] = {0};
    const char *png = tmp_path("a.png");
    const char *k[] = {"parameters"};
    const char *v1[] = {"a sks dog\non two lines\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a"};
    REQUIRE(png_write(png, px, 4, 4, 3, k, v1, 1) == 0);
    p = eval_image_prompt(png);
    CHECK(p && !strcmp(p, "a sks dog\non two lines"));
    free(p);
    const char *v2[] = {"a sks dog\nSteps: 20, Sampler: Euler a"};
    REQUIRE(png_write(png, px, 4, 4, 3, k, v2, 1) == 0);
    p = eval_image_prompt(png);
    CHECK(p && !strcmp(p, "a sks dog"));
    free(p);
    // the sidecar wins
    FILE *s = fopen(tmp_path("a.json"), "w");
    REQUIRE(s);
    fputs("{\"prompt\": \"from the sidecar\", \"steps\": 3}\n", s);
    fclose(s);
    p = eval_image_prompt(png);
    CHECK(p && !strcmp(p, "from the sidecar"));
    free(p);
    png_write(tmp_path("b.png"), px, 4, 4, 3, NULL, NULL, 0);
    CHECK(eval_image_prompt(tmp_path("b.png")) == NULL);
}

// ---- singlora eval end to end ----

static void write_images(st_file *f, const char *tensor, const char *dir, int sidecars) {
    const st_entry *e = st_find(f, tensor);
    int N = (int)e->shape[0], H = (int)e->shape[1], W = (int)e->shape[2];
    for (int i = 0; i < N; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%02d.png", dir, i);
        png_write(p, (const uint8_t *)e->data + (size_t)i * H * W * 3, W, H, 3, NULL, NULL, 0);
        if (sidecars) {
            snprintf(p, sizeof p, "%s/%02d.json", dir, i);
            FILE *s = fopen(p, "w");
            if (s) { fprintf(s, "{\"prompt\": \"a sks dog number %d\"}\n", i); fclose(s); }
        }
    }
}

static cJSON *read_report(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return cJSON_Parse(buf);
}

static double num(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

TEST(eval_command_end_to_end) {
    st_file *f = metrics_io();
    REQUIRE(f);
    char out[8192], real[512], gen[512], clip[512];
    snprintf(real, sizeof real, "%s", tmp_path("real"));
    snprintf(gen, sizeof gen, "%s", tmp_path("gen"));
    snprintf(clip, sizeof clip, "%s", tmp_path("clip"));
    const char *tok = tiny_tokenizer();
    REQUIRE(tok);
    REQUIRE(run_cmd(out, sizeof out, "mkdir -p %s %s %s && cp %s/* %s/* %s/", real, gen, clip,
                    shared_path("fixtures/eval/clip_tiny"), tok, clip) == 0);
    write_images(f, "real_images_u8", real, 0);
    write_images(f, "gen_images_u8", gen, 1);
    // a broken image (named, skipped) and the grid `sample` writes (ignored)
    REQUIRE(run_cmd(out, sizeof out, "head -c 100 %s/00.png > %s/03b_broken.png && cp %s/00.png %s/grid.png", gen, gen, gen, gen) == 0);
    const char *rep = tmp_path("report.json");
    int rc = run_cmd(out, sizeof out, "%s eval --real %s --generated %s --dino %s --clip %s --identifier sks --out %s "
                     "--markdown %s --grid %s", singlora_bin(), real, gen,
                     shared_path("fixtures/eval/dino_tiny.original.safetensors"), clip, rep, tmp_path("r.md"), tmp_path("g.png"));
    fprintf(stderr, "%s", out);
    REQUIRE(rc == 0);
    CHECK(strstr(out, "03b_broken.png"));
    cJSON *j = read_report(rep);
    REQUIRE(j);
    CHECK_EQ_INT((int)num(j, "n_real"), 3);
    CHECK_EQ_INT((int)num(j, "n_generated"), 4);
    // from images as files: within the f32 embedding error of the reference scores
    CHECK_NEAR(num(j, "dino"), f64_scalar(f, "dino_score"), 1e-5);
    CHECK_NEAR(num(j, "clip_i"), f64_scalar(f, "clip_i_score"), 1e-5);
    double clip_t = num(j, "clip_t");
    CHECK(!isnan(clip_t) && clip_t >= -1 && clip_t <= 1);
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(j, "per_image");
    REQUIRE(cJSON_GetArraySize(per) == 4);
    const cJSON *p0 = cJSON_GetArrayItem(per, 0);
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(p0, "file")->valuestring, "00.png"));
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(p0, "prompt")->valuestring, "a sks dog number 0"));
    double mean = 0;
    for (int i = 0; i < 4; i++) mean += num(cJSON_GetArrayItem(per, i), "dino") / 4;
    CHECK_NEAR(mean, num(j, "dino"), 1e-12);
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(j, "models");
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(models, "dino")));
    // --prompts with the identifier already removed gives the same CLIP-T; the broken file keeps its line
    FILE *pf = fopen(tmp_path("prompts.txt"), "w");
    REQUIRE(pf);
    fputs("a dog number 0\na dog number 1\na dog number 2\na dog number 3\nbroken\n", pf);   // 03.png sorts before 03b_broken.png
    fclose(pf);
    const char *rep2 = tmp_path("report2.json");
    rc = run_cmd(out, sizeof out, "%s eval --real %s --generated %s --clip %s --prompts %s --out %s", singlora_bin(), real,
                 gen, clip, tmp_path("prompts.txt"), rep2);
    REQUIRE(rc == 0);
    cJSON *j2 = read_report(rep2);
    REQUIRE(j2);
    CHECK_NEAR(num(j2, "clip_t"), clip_t, 1e-12);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j2, "dino")));   // no --dino: null
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j2, "models"), "dino")));
    // no prompts known -> CLIP-T null
    rc = run_cmd(out, sizeof out, "%s eval --real %s --generated %s --clip %s --out %s", singlora_bin(), gen, real, clip, rep2);
    REQUIRE(rc == 0);
    cJSON_Delete(j2);
    j2 = read_report(rep2);
    REQUIRE(j2);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j2, "clip_t")));
    CHECK(!isnan(num(j2, "clip_i")));
    cJSON_Delete(j);
    cJSON_Delete(j2);
    st_close(f);
}

// Bad input: one error line, exit 1.
TEST(eval_command_bad_input) {
    char out[4096], empty[512], real[512];
    snprintf(empty, sizeof empty, "%s", tmp_path("empty"));
    snprintf(real, sizeof real, "%s", tmp_path("real"));
    REQUIRE(run_cmd(out, sizeof out, "mkdir -p %s %s && cp %s/dog/00.jpg %s/", empty, real,
                    shared_path("data/dreambooth"), real) == 0);
    const char *dino = shared_path("fixtures/eval/dino_tiny_hf");
    struct { const char *args, *want; } cases[] = {
        {"--real %s --generated %s --dino %s --out /dev/null", "no images"},
        {"--real %s --generated %s --dino ../shared/fixtures/sd1_tiny --out /dev/null", "not a DINO"},
        {"--real %s --generated %s --clip %s --out /dev/null", "not a CLIPModel"},
        {"--real %s --generated %s --out /dev/null", "--dino and/or --clip"},
    };
    for (int c = 0; c < 4; c++) {
        char args[2048], fmt[256];
        snprintf(fmt, sizeof fmt, "%%s eval %s", cases[c].args);
        if (c == 0) snprintf(args, sizeof args, fmt, singlora_bin(), real, empty, dino);
        else if (c == 1) snprintf(args, sizeof args, fmt, singlora_bin(), real, real);
        else if (c == 2) snprintf(args, sizeof args, fmt, singlora_bin(), real, real, dino);
        else snprintf(args, sizeof args, fmt, singlora_bin(), real, real);
        int rc = run_cmd(out, sizeof out, "%s", args);
        fprintf(stderr, "    exit %d: %s", rc, out);
        CHECK_EQ_INT(rc, 1);
        CHECK_MSG(strstr(out, cases[c].want), "case %d: %s", c, out);
        int lines = 0;
        for (char *p = out; *p; p++) lines += *p == '\n';
        CHECK_EQ_INT(lines, 1);
    }
}
