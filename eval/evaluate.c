// The evaluation run: listing and decoding the images, prompts, features, scores, report files.
#include "eval/evaluate.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/png.h"
#include "data/resize.h"
#include "engine/io/atomic_file.h"
#include "engine/io/file_read.h"
#include "engine/core/error.h"
#include "engine/io/model_files.h"
#include "engine/core/tensor.h"
#include "eval/clip_model.h"
#include "eval/dino.h"
#include "eval/metrics.h"
#include "eval/preprocess.h"

static int is_image_name(const char *n) {
    static const char *const ext[] = {".png", ".jpg", ".jpeg", ".bmp", ".tga", ".gif", ".ppm", ".pgm"};
    size_t ln = strlen(n);
    if (!strcmp(n, "grid.png")) return 0;   // the grid `singlora sample` writes next to its images
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t le = strlen(ext[i]);
        if (ln > le && !strcasecmp(n + ln - le, ext[i])) return 1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Sorted image file names in dir (malloc'd array of malloc'd names). -1 with sl_error.
static int list_images(const char *dir, char ***out, int *n) {
    if (!path_is_dir(dir)) return sl_error(dir, path_exists(dir) ? "not a folder" : "no such folder");
    DIR *d = opendir(dir);
    if (!d) return sl_error(dir, "cannot open the folder");
    char **v = NULL;
    int k = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !is_image_name(e->d_name)) continue;
        if (k == cap) v = sl_realloc(v, sizeof *v * (size_t)(cap = cap ? 2 * cap : 16));
        v[k++] = sl_strdup(e->d_name);
    }
    closedir(d);
    if (k) qsort(v, (size_t)k, sizeof *v, cmp_str);
    *out = v;
    *n = k;
    return 0;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

// ---- prompts ----

// A sidecar or prompts file (NULL when it cannot be read; the caller decides whether that is an error).
static char *read_text(const char *path) {
    size_t n;
    char *text = read_file(path, &n, 16u << 20, "text file");
    if (!text) sl_error_clear();
    return text;
}

char *eval_image_prompt(const char *image_path) {
    char side[4200];
    snprintf(side, sizeof side, "%s", image_path);
    char *dot = strrchr(side, '.'), *slash = strrchr(side, '/');
    if (dot && (!slash || dot > slash)) *dot = 0;
    strncat(side, ".json", sizeof side - strlen(side) - 1);
    char *text = read_text(side);
    if (text) {
        cJSON *j = cJSON_Parse(text);
        free(text);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt");
        char *out = cJSON_IsString(p) ? sl_strdup(p->valuestring) : NULL;
        cJSON_Delete(j);
        if (out) return out;
    }
    // A1111's parameters: "<prompt>\n[Negative prompt: ...\n]Steps: ..."
    char *params = png_read_text(image_path, "parameters");
    sl_error_clear();
    if (!params) return NULL;
    char *cut = strstr(params, "\nNegative prompt: ");
    if (!cut) {
        for (char *s = strstr(params, "\nSteps: "); s; s = strstr(s + 1, "\nSteps: ")) cut = s;
    }
    if (cut) *cut = 0;
    return params;
}

char *eval_strip_identifier(const char *prompt, const char *identifier) {
    size_t n = strlen(prompt);
    char *out = sl_malloc(n + 1);
    size_t o = 0;
    const char *p = prompt;
    while (*p) {
        while (*p && isspace((unsigned char)*p)) p++;
        const char *w = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        size_t wl = (size_t)(p - w);
        if (!wl) break;
        if (identifier && *identifier && wl == strlen(identifier) && !strncmp(w, identifier, wl)) continue;
        if (o) out[o++] = ' ';
        memcpy(out + o, w, wl);
        o += wl;
    }
    out[o] = 0;
    return out;
}

// ---- features ----

typedef struct {
    int n;
    char **names;           // decoded images' base names
    uint8_t **px;           // (h, w, 3) each
    int *h, *w;
    char **prompts;         // generated only
} image_set;

static void image_set_free(image_set *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->names[i]);
        free(s->px[i]);
        if (s->prompts) free(s->prompts[i]);
    }
    free(s->names);
    free(s->px);
    free(s->h);
    free(s->w);
    free(s->prompts);
}

// Decodes the images of dir (a broken one is warned about by name and skipped); with prompts set,
// also finds each one's prompt (from lines of prompts_file, one per listed image, else the sidecars).
static int load_images(const char *dir, image_set *s, int want_prompts, const char *prompts_file, int *skipped) {
    char **names = NULL;
    int n = 0;
    memset(s, 0, sizeof *s);
    if (list_images(dir, &names, &n) != 0) return -1;
    if (n == 0) return sl_error(dir, "no images here (PNG, JPEG, BMP, ...)");
    char **lines = NULL;
    int n_lines = 0;
    if (want_prompts && prompts_file) {
        char *text = read_text(prompts_file);
        if (!text) { free_list(names, n); return sl_error(prompts_file, "cannot read the prompts file"); }
        lines = sl_calloc((size_t)n + 1, sizeof *lines);
        for (char *line = text, *next; line && n_lines <= n; line = next) {
            next = strchr(line, '\n');
            if (next) *next++ = 0;
            else if (!*line) break;   // after the last newline
            size_t l = strlen(line);
            if (l && line[l - 1] == '\r') line[l - 1] = 0;
            if (n_lines < n + 1) lines[n_lines++] = sl_strdup(line);
        }
        free(text);
        if (n_lines != n) {
            int nl = n_lines;
            for (int i = 0; i < n_lines; i++) free(lines[i]);
            free(lines);
            free_list(names, n);
            return sl_error(prompts_file, "%s%d prompt lines for the %d images of %s (one line per image, in sorted order)",
                            nl > n ? "more than " : "", nl > n ? n : nl, n, dir);
        }
    }
    s->names = sl_calloc((size_t)n, sizeof *s->names);
    s->px = sl_calloc((size_t)n, sizeof *s->px);
    s->h = sl_calloc((size_t)n, sizeof(int));
    s->w = sl_calloc((size_t)n, sizeof(int));
    if (want_prompts) s->prompts = sl_calloc((size_t)n, sizeof *s->prompts);
    for (int i = 0; i < n; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        int h, w;
        uint8_t *px = image_load_u8(path, &h, &w);
        if (!px) {
            sl_warn("skipping %s", sl_error_msg());
            (*skipped)++;
            continue;
        }
        int k = s->n++;
        s->names[k] = sl_strdup(names[i]);
        s->px[k] = px;
        s->h[k] = h;
        s->w[k] = w;
        if (want_prompts) s->prompts[k] = lines ? sl_strdup(lines[i]) : eval_image_prompt(path);
    }
    if (lines) {
        for (int i = 0; i < n_lines; i++) free(lines[i]);
        free(lines);
    }
    free_list(names, n);
    if (s->n == 0) return sl_error(dir, "none of its %d images could be decoded", n);
    return 0;
}

// feats (n, D) of every image of s with the DINO model.
static float *dino_features(const dino_model *m, const image_set *s) {
    const vit_config *c = &m->vit->cfg;
    int S = c->image_size, D = c->hidden;
    preprocess_spec spec = preprocess_dino(S);
    float *px = sl_alloc_f32((int64_t)3 * S * S), *f = sl_alloc_f32((int64_t)s->n * D);
    for (int i = 0; i < s->n; i++) {
        preprocess_image(px, s->px[i], s->h[i], s->w[i], &spec, NULL, NULL);
        dino_forward(m, px, 1, f + (int64_t)i * D, NULL, NULL);
    }
    sl_free_aligned(px);
    return f;
}

static float *clip_features(const clip_model *m, const image_set *s) {
    const vit_config *c = &m->vision->vit->cfg;
    int S = c->image_size, P = m->proj_dim;
    preprocess_spec spec = preprocess_clip(S);
    float *px = sl_alloc_f32((int64_t)3 * S * S), *f = sl_alloc_f32((int64_t)s->n * P);
    for (int i = 0; i < s->n; i++) {
        preprocess_image(px, s->px[i], s->h[i], s->w[i], &spec, NULL, NULL);
        clip_vision_forward(m->vision, px, 1, f + (int64_t)i * P, NULL, NULL, NULL);
    }
    sl_free_aligned(px);
    return f;
}

// ---- the run ----

int eval_run(const eval_options *o, eval_report *r) {
    memset(r, 0, sizeof *r);
    r->opt = *o;
    r->dino = r->clip_i = r->clip_t = r->dino_std = r->clip_i_std = r->clip_t_std = NAN;
    if (!o->dino && !o->clip) return sl_error(NULL, "eval: give --dino and/or --clip (the models the metrics use)");
    // the models first: a wrong model fails before the images are decoded
    dino_model *dm = NULL;
    clip_model *cm = NULL;
    if (o->dino && !(dm = dino_load(o->dino))) return -1;
    if (o->clip && !(cm = clip_model_load(o->clip))) { dino_free(dm); return -1; }
    image_set real, gen;
    int rc = -1;
    if (load_images(o->real_dir, &real, 0, NULL, &r->n_skipped) != 0) goto out_models;
    if (load_images(o->generated_dir, &gen, 1, o->prompts_file, &r->n_skipped) != 0) { image_set_free(&real); goto out_models; }
    int R = real.n, G = gen.n;
    r->n_real = R;
    r->n_generated = G;
    r->real_files = sl_calloc((size_t)R, sizeof *r->real_files);
    for (int j = 0; j < R; j++) r->real_files[j] = sl_strdup(real.names[j]);
    r->gen = sl_calloc((size_t)G, sizeof *r->gen);
    for (int i = 0; i < G; i++) {
        r->gen[i].file = sl_strdup(gen.names[i]);
        r->gen[i].prompt = gen.prompts[i] ? sl_strdup(gen.prompts[i]) : NULL;
        r->gen[i].dino = r->gen[i].clip_i = r->gen[i].clip_t = NAN;
    }
    double *mat = sl_malloc(sizeof(double) * (size_t)G * R), *row = sl_malloc(sizeof(double) * (size_t)G);
    if (dm) {
        float *fr = dino_features(dm, &real), *fg = dino_features(dm, &gen);
        cosine_matrix(mat, fg, G, fr, R, dm->vit->cfg.hidden);
        r->dino = matrix_mean(mat, G, R, row);
        for (int i = 0; i < G; i++) r->gen[i].dino = row[i];
        r->dino_std = std_dev(row, G);
        sl_free_aligned(fr);
        sl_free_aligned(fg);
    }
    if (cm) {
        int P = cm->proj_dim;
        float *fr = clip_features(cm, &real), *fg = clip_features(cm, &gen);
        cosine_matrix(mat, fg, G, fr, R, P);
        r->clip_i = matrix_mean(mat, G, R, row);
        for (int i = 0; i < G; i++) r->gen[i].clip_i = row[i];
        r->clip_i_std = std_dev(row, G);
        // CLIP-T over the generated images whose prompt is known
        int n_t = 0;
        double sum = 0;
        float *t = sl_alloc_f32(P);
        for (int i = 0; i < G; i++) {
            if (!gen.prompts[i]) continue;
            char *text = eval_strip_identifier(gen.prompts[i], o->identifier);
            int e = clip_model_encode_text(cm, text, t);
            free(text);
            if (e != 0) { sl_free_aligned(t); sl_free_aligned(fr); sl_free_aligned(fg); goto out_scores; }
            r->gen[i].clip_t = cosine_similarity(t, fg + (int64_t)i * P, P);
            row[n_t++] = r->gen[i].clip_t;
            sum += r->gen[i].clip_t;
        }
        if (n_t) {
            r->clip_t = sum / n_t;
            r->clip_t_std = std_dev(row, n_t);
        }
        if (n_t && n_t < G) sl_warn("CLIP-T over %d of %d generated images (the others have no known prompt)", n_t, G);
        sl_free_aligned(t);
        sl_free_aligned(fr);
        sl_free_aligned(fg);
    }
    rc = 0;
out_scores:
    free(mat);
    free(row);
    image_set_free(&real);
    image_set_free(&gen);
out_models:
    dino_free(dm);
    clip_model_free(cm);
    return rc;
}

void eval_report_free(eval_report *r) {
    for (int j = 0; j < r->n_real; j++) free(r->real_files[j]);
    free(r->real_files);
    for (int i = 0; i < r->n_generated; i++) {
        free(r->gen[i].file);
        free(r->gen[i].prompt);
    }
    free(r->gen);
    memset(r, 0, sizeof *r);
}

// ---- report files ----

static void add_num(cJSON *o, const char *k, double v) {
    if (isnan(v)) cJSON_AddNullToObject(o, k);
    else cJSON_AddNumberToObject(o, k, v);
}

static void add_str(cJSON *o, const char *k, const char *v) {
    if (v) cJSON_AddStringToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static int write_text(const char *path, const char *text) {
    const void *bufs[1] = {text};
    size_t lens[1] = {strlen(text)};
    return atomic_write(path, bufs, lens, 1);
}

int eval_write_json(const eval_report *r, const char *path) {
    cJSON *j = cJSON_CreateObject();
    add_num(j, "dino", r->dino);
    add_num(j, "clip_i", r->clip_i);
    add_num(j, "clip_t", r->clip_t);
    cJSON_AddNumberToObject(j, "n_real", r->n_real);
    cJSON_AddNumberToObject(j, "n_generated", r->n_generated);
    cJSON *per = cJSON_AddArrayToObject(j, "per_image");
    for (int i = 0; i < r->n_generated; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", r->gen[i].file);
        add_str(o, "prompt", r->gen[i].prompt);
        add_num(o, "dino", r->gen[i].dino);
        add_num(o, "clip_i", r->gen[i].clip_i);
        add_num(o, "clip_t", r->gen[i].clip_t);
        cJSON_AddItemToArray(per, o);
    }
    cJSON *m = cJSON_AddObjectToObject(j, "models");
    add_str(m, "dino", r->opt.dino);
    add_str(m, "clip", r->opt.clip);
    // beyond the fields: the spread the protocol table reports, and the inputs
    add_num(j, "dino_std", r->dino_std);
    add_num(j, "clip_i_std", r->clip_i_std);
    add_num(j, "clip_t_std", r->clip_t_std);
    add_str(j, "identifier", r->opt.identifier);
    add_str(j, "real_dir", r->opt.real_dir);
    add_str(j, "generated_dir", r->opt.generated_dir);
    cJSON_AddNumberToObject(j, "n_skipped", r->n_skipped);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    size_t l = strlen(text);
    text = sl_realloc(text, l + 2);
    strcpy(text + l, "\n");
    int rc = write_text(path, text);
    free(text);
    return rc;
}

static void fmt(char *buf, size_t n, double v) {
    if (isnan(v)) snprintf(buf, n, "–");
    else snprintf(buf, n, "%.4f", v);
}

int eval_write_markdown(const eval_report *r, const char *path) {
    size_t cap = 4096 + (size_t)r->n_generated * 512, o = 0;
    char *t = sl_malloc(cap), a[32], b[32], c[32], sa[32], sb[32], sc[32];
    fmt(a, sizeof a, r->dino); fmt(b, sizeof b, r->clip_i); fmt(c, sizeof c, r->clip_t);
    fmt(sa, sizeof sa, r->dino_std); fmt(sb, sizeof sb, r->clip_i_std); fmt(sc, sizeof sc, r->clip_t_std);
    o += (size_t)snprintf(t + o, cap - o,
                          "# Fidelity: %s vs %s\n\n%d generated, %d real images. Raw cosine similarities.\n\n"
                          "| metric | mean | std |\n|---|---|---|\n| DINO | %s | %s |\n| CLIP-I | %s | %s |\n| CLIP-T | %s | %s |\n\n"
                          "| image | prompt | DINO | CLIP-I | CLIP-T |\n|---|---|---|---|---|\n",
                          r->opt.generated_dir, r->opt.real_dir, r->n_generated, r->n_real, a, sa, b, sb, c, sc);
    for (int i = 0; i < r->n_generated && o < cap; i++) {
        fmt(a, sizeof a, r->gen[i].dino); fmt(b, sizeof b, r->gen[i].clip_i); fmt(c, sizeof c, r->gen[i].clip_t);
        char prompt[300];
        snprintf(prompt, sizeof prompt, "%s", r->gen[i].prompt ? r->gen[i].prompt : "–");
        for (char *p = prompt; *p; p++)
            if (*p == '|' || *p == '\n') *p = ' ';
        o += (size_t)snprintf(t + o, cap - o, "| %s | %s | %s | %s | %s |\n", r->gen[i].file, prompt, a, b, c);
    }
    int rc = write_text(path, t);
    free(t);
    return rc;
}

// A square thumbnail: short-side resize to `cell`, center crop.
static void thumbnail(uint8_t *out, const uint8_t *px, int h, int w, int cell) {
    int rh, rw;
    resize_short_side_hw(h, w, cell, &rh, &rw);
    uint8_t *rs = sl_malloc((size_t)rh * rw * 3);
    image_resize_bicubic_u8(rs, rw, rh, px, w, h, 3);
    int top = center_crop_offset(rh, cell), left = center_crop_offset(rw, cell);
    for (int y = 0; y < cell; y++) memcpy(out + (size_t)y * cell * 3, rs + ((size_t)(y + top) * rw + left) * 3, (size_t)cell * 3);
    free(rs);
}

int eval_write_grid(const eval_report *r, const char *path, int cell) {
    int cols = r->n_generated > r->n_real ? r->n_generated : r->n_real;
    if (cols > 8) cols = 8;
    int rows_real = (r->n_real + cols - 1) / cols, rows_gen = (r->n_generated + cols - 1) / cols;
    int GW = cols * cell, GH = (rows_real + rows_gen) * cell + 4;   // a 4-pixel band between the groups
    uint8_t *grid = sl_calloc((size_t)GW * GH * 3, 1);                // (GH, GW, 3), black
    uint8_t *th = sl_malloc((size_t)cell * cell * 3);
    for (int g = 0; g < 2; g++) {
        const char *dir = g ? r->opt.generated_dir : r->opt.real_dir;
        int n = g ? r->n_generated : r->n_real, y0 = g ? rows_real * cell + 4 : 0;
        for (int i = 0; i < n; i++) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", dir, g ? r->gen[i].file : r->real_files[i]);
            int h, w;
            uint8_t *px = image_load_u8(p, &h, &w);
            if (!px) { free(grid); free(th); return -1; }
            thumbnail(th, px, h, w, cell);
            free(px);
            int gx = (i % cols) * cell, gy = y0 + (i / cols) * cell;
            for (int y = 0; y < cell; y++)
                memcpy(grid + ((size_t)(gy + y) * GW + gx) * 3, th + (size_t)y * cell * 3, (size_t)cell * 3);
        }
    }
    int rc = png_write(path, grid, GW, GH, 3, NULL, NULL, 0);
    free(grid);
    free(th);
    return rc;
}
