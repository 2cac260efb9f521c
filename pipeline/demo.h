// `singlora demo`: the main job end to end on the shipped toy-world base model (issue 14).
//   1. renders the subject's "photos" (OUT/photos, captioned "a photo of sks star on a blue
//      background") and class images (OUT/class: plain shapes of the subject's class in random
//      colours, with their world captions) for prior preservation;
//   2. DreamBooth-trains an adapter with the recipe (configs/train/toyworld.json, the same file
//      `singlora train --config` reads) into OUT/train;
//   3. samples the same prompts and seeds with the base and with the adapter: prompts that put
//      the subject in contexts its photos never show (new backgrounds, a second object), and
//      world prompts without the subject (drift);
//   4. scores every image with the world's scorer (and DINO / CLIP when their models are given)
//      and writes OUT/report.md (before/after table, grids, the loss plot) and OUT/result.json
//      (the same numbers, for scripts such as tools/compare_methods.sh).
#pragma once
#include <stdint.h>

typedef struct {
    const char *model;          // the base model folder
    const char *recipe;         // the training recipe (JSON of singlora train options)
    const char *subject;        // SHAPE:BODY:PATTERN-COLOUR:ACCENT-COLOUR or a named subject
    const char *token;          // the identifier ("sks")
    const char *method;         // NULL: the recipe's
    const char *out;            // output folder
    const char *dino, *clip;    // optional evaluation models (NULL: skipped)
    int n_photos, n_class;      // subject photos, class images
    int n_prompts, n_drift;     // subject prompts in new contexts, prompts without the subject
    int sample_steps;           // DDIM steps per image
    float cfg;                  // guidance scale
    int64_t max_train_steps;    // 0: the recipe's
    const char *const *train_set;   // "option=value" overrides of the recipe (singlora train's names)
    int n_train_set;
    uint64_t seed;
    int threads, quiet;
} demo_opts;

// Percentages of caption facts an image set gets right, and the subject's fidelity.
typedef struct {
    double fidelity;            // mean subject fidelity over the subject prompts, in [0, 1]
    double prompt_pct;          // subject prompts: background, objects' colours and shapes right (% of facts)
    double drift_pct;           // prompts without the subject: the same
    double dino, clip_i, clip_t;   // against the photos (NAN when not computed)
} demo_scores;

typedef struct {
    demo_scores base, adapter;
    double train_seconds, total_seconds;
    int64_t trainable_params, train_steps;
    int rank;
    char method[16];
} demo_result;

// The defaults (`singlora demo` with no options).
demo_opts demo_defaults(void);
// 0, or -1 with sl_error naming the file or option at fault.
int demo_run(const demo_opts *o, demo_result *r);
