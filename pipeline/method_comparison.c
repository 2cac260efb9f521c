#include "pipeline/method_comparison.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "engine/io/file_read.h"
#include "engine/io/model_files.h"

// pct: 1 = a percentage, 2 = percentage points
const cmp_metric CMP_METRICS[CMP_N_METRICS] = {
    {"adapter.subject_fidelity", "subject fidelity", 0},
    {"adapter.prompt_accuracy_pct", "prompt accuracy", 1},
    {"adapter.no_subject_accuracy_pct", "without the subject", 1},
    {"drift_points", "drift (points)", 2},
    {"adapter.dino", "DINO", 0},
    {"adapter.clip_i", "CLIP-I", 0},
    {"adapter.clip_t", "CLIP-T", 0},
    {"base.subject_fidelity", "base fidelity", 0},
};
enum { M_FIDELITY, M_PROMPT, M_WITHOUT, M_DRIFT };

// "a.b" in j: a number, or NAN when absent or null
static double number_at(const cJSON *j, const char *key) {
    char head[64];
    const char *dot = strchr(key, '.');
    if (dot) {
        snprintf(head, sizeof head, "%.*s", (int)(dot - key), key);
        return number_at(cJSON_GetObjectItemCaseSensitive(j, head), dot + 1);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

typedef struct {
    double sum[CMP_N_METRICS], sum2[CMP_N_METRICS];
    double params, train_s;
} accum;

static int add_run(cmp_setting *s, accum *a, const char *path, cmp_table *t) {
    size_t len;
    char *text = read_file(path, &len, 1u << 24, "result file");
    if (!text) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) return sl_error(path, "not valid JSON");
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(j, "method");
    double rank = number_at(j, "rank"), params = number_at(j, "trainable_params"), train_s = number_at(j, "train_seconds");
    int rc = 0;
    if (!cJSON_IsString(method) || isnan(rank) || isnan(params) || isnan(train_s) ||
        isnan(number_at(j, CMP_METRICS[M_FIDELITY].key)) || isnan(number_at(j, CMP_METRICS[M_DRIFT].key)))
        rc = sl_error(path, "not a demo result (method, rank, trainable_params, train_seconds, adapter scores, drift_points)");
    else if (s->n && (strcmp(s->method, method->valuestring) || s->rank != (int)rank))
        rc = sl_error(path, "setting '%s' mixes runs: %s rank %d here, %s rank %d before", s->name, method->valuestring,
                      (int)rank, s->method, s->rank);
    if (rc == 0) {
        snprintf(s->method, sizeof s->method, "%s", method->valuestring);
        s->rank = (int)rank;
        s->n++;
        a->params += params, a->train_s += train_s;
        for (int k = 0; k < CMP_N_METRICS; k++) {
            double v = number_at(j, CMP_METRICS[k].key);
            if (isnan(v)) continue;
            s->n_metric[k]++;
            a->sum[k] += v, a->sum2[k] += v * v;
        }
        double total = number_at(j, "total_seconds");
        if (!isnan(total)) t->total_seconds += total;
        t->n_runs++;
    }
    cJSON_Delete(j);
    return rc;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int names_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// The subfolder names of dir, sorted (NULL-terminated, free with free_names); NULL with sl_error.
static char **subfolders(const char *dir, int *n) {
    DIR *d = opendir(dir);
    if (!d) {
        sl_error(dir, "cannot open folder");
        return NULL;
    }
    int cap = 16;
    char **v = sl_malloc(sizeof *v * (size_t)cap);
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[4400];
        if (e->d_name[0] == '.' || is_atomic_temporary(e->d_name)) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (!path_is_dir(p)) continue;
        if (*n + 1 >= cap) v = sl_realloc(v, sizeof *v * (size_t)(cap *= 2));
        v[(*n)++] = sl_strdup(e->d_name);
    }
    closedir(d);
    qsort(v, (size_t)*n, sizeof *v, names_cmp);
    v[*n] = NULL;
    return v;
}

static void free_names(char **v) {
    for (int i = 0; v && v[i]; i++) free(v[i]);
    free(v);
}

static int method_order(const char *m) { return !strcmp(m, "singlora") ? 0 : !strcmp(m, "dora") ? 1 : 2; }

static int setting_cmp(const void *a, const void *b) {
    const cmp_setting *x = a, *y = b;
    int d = method_order(x->method) - method_order(y->method);
    return d ? d : strcmp(x->name, y->name);
}

int cmp_load(cmp_table *t, const char *runs_dir) {
    memset(t, 0, sizeof *t);
    int n_set;
    char **sets = subfolders(runs_dir, &n_set);
    if (!sets) return -1;
    t->settings = sl_calloc((size_t)(n_set ? n_set : 1), sizeof *t->settings);
    int rc = 0;
    for (int i = 0; i < n_set && rc == 0; i++) {
        cmp_setting *s = &t->settings[t->n_settings];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", sets[i]);
        char dir[4400];
        snprintf(dir, sizeof dir, "%s/%s", runs_dir, sets[i]);
        int n_runs;
        char **runs = subfolders(dir, &n_runs);
        if (!runs) { rc = -1; break; }
        accum a = {0};
        for (int r = 0; r < n_runs && rc == 0; r++) {
            char path[4600];
            snprintf(path, sizeof path, "%s/%s/result.json", dir, runs[r]);
            if (is_file(path)) rc = add_run(s, &a, path, t);   // a run without one is unfinished
        }
        free_names(runs);
        if (rc != 0 || s->n == 0) continue;
        s->trainable_params = a.params / s->n, s->train_seconds = a.train_s / s->n;
        for (int k = 0; k < CMP_N_METRICS; k++) {
            int m = s->n_metric[k];
            if (!m) { s->mean[k] = s->std[k] = NAN; continue; }
            s->mean[k] = a.sum[k] / m;
            double var = m > 1 ? (a.sum2[k] - m * s->mean[k] * s->mean[k]) / (m - 1) : 0.0;
            s->std[k] = var > 0 ? sqrt(var) : 0.0;
        }
        t->n_settings++;
    }
    free_names(sets);
    if (rc != 0) {
        cmp_free(t);
        return -1;
    }
    if (t->n_settings == 0) {
        cmp_free(t);
        return sl_error(runs_dir, "no finished runs (RUNS/<setting>/<run>/result.json)");
    }
    qsort(t->settings, (size_t)t->n_settings, sizeof *t->settings, setting_cmp);
    return 0;
}

void cmp_free(cmp_table *t) {
    free(t->settings);
    memset(t, 0, sizeof *t);
}

int cmp_best(const cmp_table *t, const char *method, double max_drift) {
    int best = -1, best_any = -1;
    for (int i = 0; i < t->n_settings; i++) {
        const cmp_setting *s = &t->settings[i];
        if (strcmp(s->method, method)) continue;
        double f = s->mean[M_FIDELITY];
        if (best_any < 0 || f > t->settings[best_any].mean[M_FIDELITY]) best_any = i;
        if (s->mean[M_DRIFT] <= max_drift && (best < 0 || f > t->settings[best].mean[M_FIDELITY])) best = i;
    }
    return best >= 0 ? best : best_any;
}

static void cell(FILE *f, const cmp_setting *s, int k) {
    if (!s->n_metric[k]) { fprintf(f, " – |"); return; }
    if (CMP_METRICS[k].pct) fprintf(f, " %.1f ± %.1f |", s->mean[k], s->std[k]);
    else fprintf(f, " %.3f ± %.3f |", s->mean[k], s->std[k]);
}

static const char *METHODS[3] = {"singlora", "dora", "lora"};

int cmp_write_markdown(const cmp_table *t, const char *path, const char *title, double max_drift) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return sl_error(path, "out of memory");
    int used[CMP_N_METRICS] = {0};
    for (int i = 0; i < t->n_settings; i++)
        for (int k = 0; k < CMP_N_METRICS; k++) used[k] |= t->settings[i].n_metric[k] > 0;
    fprintf(f, "# %s\n\n", title);
    fprintf(f, "%d runs in %d settings; %.0f s of demo runs in all. Each cell: mean ± std (sample) over the "
               "setting's runs (subjects × seeds).\n\n", t->n_runs, t->n_settings, t->total_seconds);
    fprintf(f, "| setting | method | rank | trainable params | runs | train s |");
    for (int k = 0; k < CMP_N_METRICS; k++)
        if (used[k]) fprintf(f, " %s |", CMP_METRICS[k].label);
    fprintf(f, "\n|---|---|---|---|---|---|");
    for (int k = 0; k < CMP_N_METRICS; k++)
        if (used[k]) fprintf(f, "---|");
    fprintf(f, "\n");
    for (int i = 0; i < t->n_settings; i++) {
        const cmp_setting *s = &t->settings[i];
        fprintf(f, "| %s | %s | %d | %.0f | %d | %.0f |", s->name, s->method, s->rank, s->trainable_params, s->n,
                s->train_seconds);
        for (int k = 0; k < CMP_N_METRICS; k++)
            if (used[k]) cell(f, s, k);
        fprintf(f, "\n");
    }
    fprintf(f, "\n## Best setting per method\n\nThe highest mean subject fidelity among a method's settings whose mean "
               "drift is at most %.0f points (else the highest overall).\n\n", max_drift);
    int best[3];
    for (int m = 0; m < 3; m++) {
        best[m] = cmp_best(t, METHODS[m], max_drift);
        if (best[m] < 0) continue;
        const cmp_setting *s = &t->settings[best[m]];
        fprintf(f, "- %s: `%s` — fidelity %.3f ± %.3f, prompt accuracy %.1f %%, drift %.1f points, %.0f trainable "
                   "parameters\n", METHODS[m], s->name, s->mean[M_FIDELITY], s->std[M_FIDELITY], s->mean[M_PROMPT],
                s->mean[M_DRIFT], s->trainable_params);
    }
    if (best[0] >= 0 && best[1] >= 0 && best[2] >= 0) {
        double fs = t->settings[best[0]].mean[M_FIDELITY], fd = t->settings[best[1]].mean[M_FIDELITY],
               fl = t->settings[best[2]].mean[M_FIDELITY];
        double sd = t->settings[best[0]].std[M_FIDELITY];
        int holds = fs > fd && fd > fl;
        fprintf(f, "\nThe paper's ordering (SingLoRA > DoRA > LoRA in subject fidelity) %s here: best SingLoRA %.3f, "
                   "DoRA %.3f, LoRA %.3f%s.\n", holds ? "holds" : "does not hold", fs, fd, fl,
                fabs(fs - fd) < sd || fabs(fs - fl) < sd ? " (differences within one standard deviation)" : "");
    }
    if (fclose(f) != 0) {
        free(buf);
        return sl_error(path, "out of memory");
    }
    const void *bufs[1] = {buf};
    int rc = atomic_write(path, bufs, &len, 1);
    free(buf);
    return rc;
}
