#include "data/world/score_folder.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/image.h"
#include "data/png.h"
#include "data/world/caption.h"
#include "data/world/palette.h"
#include "data/world/score.h"
#include "engine/io/atomic_file.h"
#include "engine/core/error.h"
#include "engine/io/file_read.h"

double score_pct(int num, int den) { return den > 0 ? 100.0 * num / den : 0.0; }

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// the whole of a small text file (malloc'd), or NULL when it cannot be read
static char *read_small(const char *path) {
    size_t n;
    char *text = read_file(path, &n, 1u << 20, "caption file");
    if (!text) sl_error_clear();
    return text;
}

// cuts s at its first newline and strips trailing blanks
static void first_line(char *s) {
    s[strcspn(s, "\r\n")] = 0;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
}

// The caption of DIR/NAME.png (malloc'd), or NULL with sl_error.
static char *find_caption(const char *dir, const char *name) {
    char base[4096], path[4200];
    snprintf(base, sizeof base, "%s/%.*s", dir, (int)(strlen(name) - 4), name);
    snprintf(path, sizeof path, "%s.txt", base);
    char *t = read_small(path);
    if (t) { first_line(t); return t; }
    snprintf(path, sizeof path, "%s.json", base);
    if ((t = read_small(path))) {
        cJSON *j = cJSON_Parse(t);
        free(t);
        const cJSON *p = j ? cJSON_GetObjectItemCaseSensitive(j, "prompt") : NULL;
        if (!cJSON_IsString(p)) {
            cJSON_Delete(j);
            sl_error(path, "not a JSON object with a \"prompt\" string");
            return NULL;
        }
        t = sl_strdup(p->valuestring);
        cJSON_Delete(j);
        first_line(t);
        return t;
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sl_error_clear();
    if ((t = png_read_text(path, "parameters"))) { first_line(t); return t; }
    if (!*sl_error_msg()) sl_error(path, "no caption: no %s.txt, no %s.json and no PNG `parameters` text", base, base);
    return NULL;
}

static cJSON *object_json(const object_score *o) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "want_shape", shape_name(o->want_shape));
    if (o->got_shape >= 0) cJSON_AddStringToObject(j, "got_shape", shape_name(o->got_shape));
    else cJSON_AddNullToObject(j, "got_shape");
    cJSON_AddBoolToObject(j, "shape_right", o->shape_right);
    cJSON_AddNumberToObject(j, "shape_iou", o->shape_iou);
    if (o->is_subject) {
        cJSON_AddBoolToObject(j, "subject", 1);
        cJSON_AddNumberToObject(j, "subject_fidelity", o->fidelity.fidelity);
        cJSON_AddNumberToObject(j, "fidelity_colour", o->fidelity.colour);
        cJSON_AddNumberToObject(j, "fidelity_pattern", o->fidelity.pattern);
        cJSON_AddNumberToObject(j, "fidelity_accent", o->fidelity.accent);
        cJSON_AddNumberToObject(j, "fidelity_shape", o->fidelity.shape);
    } else {
        cJSON_AddStringToObject(j, "want_colour", palette_name(o->want_colour));
        if (o->got_colour >= 0) cJSON_AddStringToObject(j, "got_colour", palette_name(o->got_colour));
        else cJSON_AddNullToObject(j, "got_colour");
        cJSON_AddBoolToObject(j, "colour_right", o->colour_right);
    }
    return j;
}

int score_folder(const char *dir, const world_subject *subject, const char *token, const char *out_json,
                 score_totals *totals) {
    memset(totals, 0, sizeof *totals);
    DIR *d = opendir(dir);
    if (!d) return sl_error(dir, "cannot open folder: %s", strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcasecmp(e->d_name + len - 4, ".png") || !strcmp(e->d_name, "grid.png")) continue;
        if (n == cap) names = sl_realloc(names, sizeof *names * (size_t)(cap = cap ? 2 * cap : 64));
        names[n++] = sl_strdup(e->d_name);
    }
    closedir(d);
    if (n == 0) { free(names); return sl_error(dir, "no .png images in the folder"); }
    qsort(names, (size_t)n, sizeof *names, by_name);

    subject_reference ref;
    if (subject) fidelity_reference(&ref, subject);
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "images");
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *cap_text = find_caption(dir, names[i]);
        if (!cap_text) { rc = -1; break; }
        world_scene want;
        if (caption_parse(cap_text, subject ? token : NULL, &want, path) != 0) { free(cap_text); rc = -1; break; }
        int w, h;
        uint8_t *rgb = image_load_u8(path, &h, &w);
        if (!rgb) { free(cap_text); rc = -1; break; }
        image_score s;
        score_image(rgb, w, h, &want, subject ? &ref : NULL, &s);
        free(rgb);

        totals->images++;
        totals->background_right += s.background_right;
        cJSON *im = cJSON_CreateObject();
        cJSON_AddStringToObject(im, "file", names[i]);
        cJSON_AddStringToObject(im, "caption", cap_text);
        cJSON *bg = cJSON_AddObjectToObject(im, "background");
        cJSON_AddStringToObject(bg, "want", palette_name(s.want_background));
        if (s.got_background >= 0) cJSON_AddStringToObject(bg, "got", palette_name(s.got_background));
        else cJSON_AddNullToObject(bg, "got");
        cJSON_AddBoolToObject(bg, "right", s.background_right);
        cJSON_AddNumberToObject(im, "components", s.n_components);
        cJSON *objs = cJSON_AddArrayToObject(im, "objects");
        for (int k = 0; k < s.n_objects; k++) {
            const object_score *o = &s.obj[k];
            totals->objects++;
            totals->shape_right += o->shape_right;
            if (o->is_subject) totals->subject_objects++, totals->fidelity_sum += o->fidelity.fidelity;
            else totals->plain_objects++, totals->colour_right += o->colour_right;
            cJSON_AddItemToArray(objs, object_json(o));
        }
        cJSON_AddItemToArray(arr, im);
        free(cap_text);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (rc == 0 && out_json) {
        cJSON *a = cJSON_AddObjectToObject(root, "aggregate");
        cJSON_AddNumberToObject(a, "images", totals->images);
        cJSON_AddNumberToObject(a, "background_right_pct", score_pct(totals->background_right, totals->images));
        cJSON_AddNumberToObject(a, "objects", totals->objects);
        cJSON_AddNumberToObject(a, "object_colour_right_pct", score_pct(totals->colour_right, totals->plain_objects));
        cJSON_AddNumberToObject(a, "shape_right_pct", score_pct(totals->shape_right, totals->objects));
        cJSON_AddNumberToObject(a, "subject_images", totals->subject_objects);
        if (totals->subject_objects)
            cJSON_AddNumberToObject(a, "subject_fidelity_mean", totals->fidelity_sum / totals->subject_objects);
        else cJSON_AddNullToObject(a, "subject_fidelity_mean");
        if (subject) {
            char spec[128];
            subject_format(subject, spec, sizeof spec);
            cJSON_AddStringToObject(a, "subject", spec);
            cJSON_AddStringToObject(a, "token", token);
        }
        char *text = cJSON_Print(root);
        const void *bufs[2] = {text, "\n"};
        size_t lens[2] = {strlen(text), 1};
        rc = atomic_write(out_json, bufs, lens, 2);
        free(text);
    }
    cJSON_Delete(root);
    return rc;
}
