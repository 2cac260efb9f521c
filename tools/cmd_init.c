// singlora init: a model with random weights at the real shapes a config describes (for
// benchmarks and tests at full scale), written through pipeline/model_writer.h.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/tokenizer.h"
#include "engine/io/atomic_file.h"
#include "engine/io/folders.h"
#include "engine/io/config.h"
#include "engine/core/error.h"
#include "engine/io/model_files.h"
#include "pipeline/model_writer.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/io.h"

static const char *HELP =
    "usage: singlora init --config DIR --out FILE [--layout original|diffusers] [--dtype f32|f16|bf16]\n"
    "                     [--seed S] [--component NAME] [--tokenizer TOK]\n\n"
    "Writes random weights at the shapes of the configs in DIR (a diffusers-style folder such as\n"
    "../shared/models/sd15: unet/config.json, vae/config.json, text_encoder/config.json, ...).\n"
    "Initialization follows PyTorch's defaults: weights and biases uniform in ±1/sqrt(fan_in), norm\n"
    "weights 1 and biases 0 (the text encoder's embedding tables: ±1/sqrt(width)).\n"
    "  --layout original   (default) one single-file checkpoint FILE (.safetensors), each component\n"
    "                      under its prefix: model.diffusion_model. (UNet), first_stage_model. (VAE),\n"
    "                      cond_stage_model. (text encoder: transformer.text_model.* for SD 1.x; for\n"
    "                      SD 2.x, hidden_act gelu, OpenCLIP's model.* with fused in_proj q/k/v and\n"
    "                      one more resblock than the config's layers, which SD 2.x skips)\n"
    "  --layout diffusers  FILE is a folder: FILE/<component>/ with its weights and config.json;\n"
    "                      also FILE/model_index.json, scheduler/scheduler_config.json when DIR has\n"
    "                      one, and tokenizer/ (DIR's tokenizer/ files, and TOK's vocabulary or the\n"
    "                      built-in CLIP one); when FILE ends in .safetensors, just the\n"
    "                      one component's weights file\n"
    "  --component NAME    only this component (default: every one DIR has a config for)\n"
    "  --tokenizer TOK     with --layout diffusers: copy this CLIP tokenizer (a folder with\n"
    "                      vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz) into tokenizer/\n"
    "  --dtype             storage dtype (default f32); --seed S (default 0)\n"
    "Components: unet, vae, text_encoder.\n";

// ---------------------------------------------------------------- random weights

static uint64_t mix64(uint64_t z) {   // splitmix64 finalizer
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_str(const char *s) {   // FNV-1a
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

// Element i of a tensor depends only on (seed, diffusers name, i): the same in either layout,
// any order and any thread count.
static int random_source(void *ctx, const mw_param *mp, mw_data *d) {
    const uint64_t seed = *(const uint64_t *)ctx;
    const param_desc *p = mp->p;
    int64_t n = shape_numel(p->ndim, p->shape);
    float *data = sl_alloc_f32(n);
    if (p->kind == PARAM_NORM_WEIGHT || p->kind == PARAM_NORM_BIAS) {
        float v = p->kind == PARAM_NORM_WEIGHT ? 1.0f : 0.0f;
        for (int64_t i = 0; i < n; i++) data[i] = v;
    } else {
        float bound = 1.0f / sqrtf((float)(p->fan_in > 0 ? p->fan_in : 1));
        uint64_t key = mix64(seed ^ hash_str(p->name));
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double u = (double)(mix64(key + 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)) >> 11) * 0x1p-53;   // [0, 1)
            data[i] = (float)((2.0 * u - 1.0) * bound);
        }
    }
    d->f32 = data;
    return 0;
}

// ---------------------------------------------------------------- diffusers folder extras

static int has_config(const char *dir, const char *component) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/config.json", dir, component);
    return path_exists(p);
}

static void set_entry(cJSON *index, const char *key, const char *library, const char *class_name) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, library ? cJSON_CreateString(library) : cJSON_CreateNull());
    cJSON_AddItemToArray(a, class_name ? cJSON_CreateString(class_name) : cJSON_CreateNull());
    if (cJSON_GetObjectItemCaseSensitive(index, key)) cJSON_ReplaceItemInObjectCaseSensitive(index, key, a);
    else cJSON_AddItemToObject(index, key, a);
}

// The class a scheduler config names (_class_name), or NULL.
static char *scheduler_class(const char *config_path) {
    json_config *j = config_load(config_path);
    const char *c = NULL;
    char *name = j && config_string_or(j, "_class_name", "", &c) == 0 && *c ? sl_strdup(c) : NULL;
    config_free(j);
    sl_error_clear();
    return name;
}

// model_index.json for what the folder holds: DIR's own index (when it has one) with every
// part this folder lacks set to [null, null], as diffusers writes for a removed component.
static void write_model_index(const char *dir, const char *outp, const int *written, int has_scheduler,
                              int has_tokenizer) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    cJSON *index = NULL;
    if (path_exists(path)) {
        json_config *j = config_load(path);
        if (!j) sl_fail();
        index = cJSON_Duplicate(j->root, 1);
        config_free(j);
    } else {
        index = cJSON_CreateObject();
        cJSON_AddStringToObject(index, "_class_name", "StableDiffusionPipeline");
    }
    // parts of DIR's pipeline this folder does not have (safety checker, feature extractor, ...)
    for (cJSON *e = index->child, *next; e; e = next) {
        next = e->next;   // set_entry replaces (frees) e
        if (e->string[0] == '_' || !cJSON_IsArray(e)) continue;
        int have = (!strcmp(e->string, "scheduler") && has_scheduler) || (!strcmp(e->string, "tokenizer") && has_tokenizer);
        for (int c = 0; c < MW_N_COMPONENTS; c++)
            if (written[c] && !strcmp(e->string, MW_COMPONENTS[c].name)) have = 1;
        if (!have) set_entry(index, e->string, NULL, NULL);
    }
    if (cJSON_GetObjectItemCaseSensitive(index, "safety_checker") &&
        !cJSON_GetObjectItemCaseSensitive(index, "requires_safety_checker"))
        cJSON_AddBoolToObject(index, "requires_safety_checker", 0);
    for (int c = 0; c < MW_N_COMPONENTS; c++)
        if (written[c]) set_entry(index, MW_COMPONENTS[c].name, MW_COMPONENTS[c].library, MW_COMPONENTS[c].class_name);
    if (has_tokenizer) set_entry(index, "tokenizer", "transformers", "CLIPTokenizer");
    if (has_scheduler) {
        snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", outp);
        char *cls = scheduler_class(path);
        set_entry(index, "scheduler", "diffusers", cls ? cls : "PNDMScheduler");
        free(cls);
    }
    char *text = cJSON_Print(index);
    size_t len = strlen(text);
    snprintf(path, sizeof path, "%s/model_index.json", outp);
    const void *bufs[1] = {text};
    if (atomic_write(path, bufs, &len, 1) != 0) sl_fail();
    free(text);
    cJSON_Delete(index);
}

// scheduler/ and tokenizer/ of the folder; returns which it wrote (bit 0: scheduler, 1: tokenizer).
static int write_extras(const char *dir, const char *outp, const char *tokenizer) {
    char from[4096], to[4096];
    int wrote = 0;
    snprintf(from, sizeof from, "%s/scheduler/scheduler_config.json", dir);
    if (path_exists(from)) {
        snprintf(to, sizeof to, "%s/scheduler", outp);
        if (mkdir_p(to) != 0) sl_fail();
        snprintf(to, sizeof to, "%s/scheduler/scheduler_config.json", outp);
        if (copy_file(from, to) != 0) sl_fail();
        wrote |= 1;
    }
    snprintf(from, sizeof from, "%s/tokenizer", dir);
    int dir_tok = path_is_dir(from);
    snprintf(to, sizeof to, "%s/tokenizer", outp);
    if (mkdir_p(to) != 0) sl_fail();
    if (tokenizer) {
        // TOK's vocabulary first; DIR's tokenizer configs after it (the model's special tokens win)
        char src[4096];
        snprintf(src, sizeof src, "%s/tokenizer", tokenizer);
        if (!path_is_dir(src)) snprintf(src, sizeof src, "%s", tokenizer);
        if (path_is_dir(src)) {
            if (copy_folder_files(src, to) != 0) sl_fail();
        } else {
            char gz[4200];
            snprintf(gz, sizeof gz, "%s/bpe_simple_vocab_16e6.txt.gz", to);
            if (copy_file(src, gz) != 0) sl_fail();
        }
    }
    if (dir_tok && copy_folder_files(from, to) != 0) sl_fail();
    if (!tokenizer) {   // the built-in vocabulary, unless DIR's tokenizer/ brought one
        char vocab[4200], gz[4200];
        snprintf(vocab, sizeof vocab, "%s/vocab.json", to);
        snprintf(gz, sizeof gz, "%s/bpe_simple_vocab_16e6.txt.gz", to);
        if (!path_exists(vocab) && !path_exists(gz)) {
            size_t n;
            const void *bufs[1] = {clip_default_vocab_gz(&n)};
            if (atomic_write(gz, bufs, &n, 1) != 0) sl_fail();
        }
    }
    return wrote | 2;
}

// ---------------------------------------------------------------- the command

int cmd_init(int argc, char **argv) {
    const char *dir = NULL, *outp = NULL, *layout = "original", *dts = "f32", *only = NULL, *tokenizer = NULL, *v;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_value(argc, argv, &i, "--config", &dir)) {}
        else if (arg_value(argc, argv, &i, "--out", &outp)) {}
        else if (arg_value(argc, argv, &i, "--layout", &layout)) {}
        else if (arg_value(argc, argv, &i, "--dtype", &dts)) {}
        else if (arg_value(argc, argv, &i, "--component", &only)) {}
        else if (arg_value(argc, argv, &i, "--tokenizer", &tokenizer)) {}
        else if (arg_value(argc, argv, &i, "--seed", &v)) seed = arg_seed("--seed", v);
        else arg_unknown("init", argv[i]);
    }
    if (!dir || !outp) sl_die(NULL, "init: --config DIR and --out FILE are required (see --help)");
    int original;
    if (!strcmp(layout, "original")) original = 1;
    else if (!strcmp(layout, "diffusers")) original = 0;
    else sl_die(NULL, "init: --layout '%s': expected original or diffusers", layout);
    dtype dt;
    if (!strcmp(dts, "f32")) dt = DT_F32;
    else if (!strcmp(dts, "f16")) dt = DT_F16;
    else if (!strcmp(dts, "bf16")) dt = DT_BF16;
    else sl_die(NULL, "init: --dtype '%s': expected f32, f16 or bf16", dts);
    if (!path_is_dir(dir)) sl_die(dir, "not a folder (--config wants a diffusers-style config folder)");

    // the components to write
    int use[MW_N_COMPONENTS] = {0}, n_use = 0;
    for (int c = 0; c < MW_N_COMPONENTS; c++) {
        if (only && strcmp(only, MW_COMPONENTS[c].name)) continue;
        if (!has_config(dir, MW_COMPONENTS[c].name)) {
            if (only) sl_die(dir, "no %s/config.json", only);
            continue;
        }
        use[c] = 1;
        n_use++;
    }
    if (only && !n_use) sl_die(NULL, "init: unknown component '%s' (known: unet, vae, text_encoder)", only);
    if (!n_use) sl_die(dir, "no component config (unet/config.json, ...) in this folder");

    int single_component_file = !original && ends_with(outp, ".safetensors");
    if (original && !ends_with(outp, ".safetensors")) sl_die(outp, "the original layout is one .safetensors file");
    if (single_component_file && n_use != 1)
        sl_die(outp, "a single diffusers weights file holds one component; pass --component NAME or a folder");
    if (tokenizer && (original || single_component_file))
        sl_die(NULL, "init: --tokenizer goes into a diffusers folder's tokenizer/ (a single weights file carries none)");
    if (tokenizer) {   // check it is one before writing anything
        clip_tokenizer *t = clip_tokenizer_load(tokenizer);
        if (!t) sl_fail();
        clip_tokenizer_free(t);
    }
    // a folder appears whole or not at all: written under OUT.tmp.PID, renamed at the end
    staged_folder staged;
    const char *dest = outp;
    if (!original && !single_component_file) {
        if (staged_folder_begin(&staged, outp) != 0) sl_fail();
        dest = staged.staging;
    }

    model_writer *w = mw_new(original, dt);
    for (int c = 0; c < MW_N_COMPONENTS; c++) {
        if (!use[c]) continue;
        if (mw_add_component(w, MW_COMPONENTS[c].name, dir, random_source, &seed) != 0) sl_fail();
        if (original) continue;   // one file for all, saved below
        char path[4400], from[4400];   // (dest: up to a staging name)
        if (single_component_file) {
            snprintf(path, sizeof path, "%s", outp);
        } else {
            snprintf(path, sizeof path, "%s/%s", dest, MW_COMPONENTS[c].name);
            if (mkdir_p(path) != 0) sl_fail();
            snprintf(from, sizeof from, "%s/%s/config.json", dir, MW_COMPONENTS[c].name);
            snprintf(path, sizeof path, "%s/%s/config.json", dest, MW_COMPONENTS[c].name);
            if (copy_file(from, path) != 0) sl_fail();
            snprintf(path, sizeof path, "%s/%s/%s.safetensors", dest, MW_COMPONENTS[c].name, MW_COMPONENTS[c].weights);
        }
        if (mw_save(w, path) != 0) sl_fail();
    }
    int64_t params = mw_param_count(w);
    if (original) {
        if (mw_save(w, outp) != 0) sl_fail();
    } else if (!single_component_file) {
        int extras = write_extras(dir, dest, tokenizer);
        write_model_index(dir, dest, use, extras & 1, extras & 2);
        if (staged_folder_commit(&staged) != 0) sl_fail();
    }
    mw_free(w);
    printf("wrote %s (%s layout, %s, %lld parameters, seed %llu)\n", outp, original ? "original" : "diffusers",
           dtype_name(dt), (long long)params, (unsigned long long)seed);
    return 0;
}
