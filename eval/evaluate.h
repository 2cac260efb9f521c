// `singlora eval`: DINO, CLIP-I and CLIP-T of a folder of generated images against a folder of
// real photos, with per-image scores, written as report.json (+ a Markdown table and a grid).
#pragma once

typedef struct {
    const char *real_dir, *generated_dir;
    const char *dino, *clip;     // model paths (NULL: that metric is null)
    const char *identifier;      // removed (as a word) from the prompts before CLIP-T; NULL = none
    const char *prompts_file;    // one prompt per generated image in sorted order; NULL = sidecars
} eval_options;

typedef struct {
    char *file;      // base name
    char *prompt;    // as found (NULL when unknown)
    double dino, clip_i, clip_t;   // NAN when not computed
} eval_image;

typedef struct {
    eval_options opt;
    int n_real, n_generated;
    char **real_files;            // base names of the real images used (n_real)
    eval_image *gen;              // n_generated
    double dino, clip_i, clip_t;  // means; NAN = null
    double dino_std, clip_i_std, clip_t_std;   // over the generated images' scores
    int n_skipped;                // images that did not decode (each warned about by name)
} eval_report;

// Runs the evaluation. 0, or -1 with sl_error (no images, a model of the wrong kind, ...).
int eval_run(const eval_options *o, eval_report *r);
void eval_report_free(eval_report *r);

// The prompt `singlora sample` recorded for an image: NAME.json's "prompt", else the PNG's
// `parameters` text up to its "Negative prompt:" / "Steps:" line. NULL when neither exists.
char *eval_image_prompt(const char *image_path);
// prompt with every whitespace-separated word equal to `identifier` removed (malloc'd).
char *eval_strip_identifier(const char *prompt, const char *identifier);

// report.json as the issue specifies (null for metrics without a model). 0, or -1 with sl_error.
int eval_write_json(const eval_report *r, const char *path);
int eval_write_markdown(const eval_report *r, const char *path);
// Real images in the top row(s), generated ones below, each as a cell x cell thumbnail.
int eval_write_grid(const eval_report *r, const char *path, int cell);
