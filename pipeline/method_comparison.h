// The method comparison's table (tools/compare_methods.sh, `singlora compare`): reads the
// result.json of every demo run under RUNS/<setting>/<run>/, groups the runs by setting, and
// writes a markdown table of mean ± std over subjects × seeds, the best setting per method and
// whether the paper's ordering (SingLoRA > DoRA > LoRA in subject fidelity) holds.
#pragma once

#define CMP_N_METRICS 8

// One column: the key in result.json ("adapter.subject_fidelity", "drift_points", ...).
typedef struct {
    const char *key, *label;
    int pct;               // printed as a percentage
} cmp_metric;
extern const cmp_metric CMP_METRICS[CMP_N_METRICS];

typedef struct {
    char name[128];        // the setting's folder name, e.g. "singlora-r8-lr1e-3"
    char method[16];       // singlora | lora | dora (all runs agree)
    int rank;
    double trainable_params, train_seconds;   // means
    int n;                                    // runs
    int n_metric[CMP_N_METRICS];              // runs that have each metric (DINO etc. are optional)
    double mean[CMP_N_METRICS], std[CMP_N_METRICS];   // sample std (n - 1); 0 for one run
} cmp_setting;

typedef struct {
    cmp_setting *settings;   // sorted by method, then name
    int n_settings;
    int n_runs;
    double total_seconds;    // sum of every run's total_seconds
} cmp_table;

// Reads RUNS/*/*/result.json (a setting folder without results is skipped; a result.json that does
// not parse, lacks a field or mixes methods is an error naming it). 0, or -1 with sl_error.
int cmp_load(cmp_table *t, const char *runs_dir);
void cmp_free(cmp_table *t);
// The best setting of a method: the highest mean subject fidelity among its settings whose mean
// drift is at most max_drift points, else the highest overall; -1 when the method has none.
int cmp_best(const cmp_table *t, const char *method, double max_drift);
// Writes the markdown (atomically). 0, or -1 with sl_error.
int cmp_write_markdown(const cmp_table *t, const char *path, const char *title, double max_drift);
