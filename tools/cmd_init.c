// singlora init: a model with random weights at the real shapes a config describes (for
// benchmarks and tests at full scale). Each model component registers a function that lists
// its parameters (the same walk its loader uses), so names and shapes have one source.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/names.h"
#include "clip/text_encoder.h"
#include "clip/tokenizer.h"
#include "engine/atomic_file.h"
#include "engine/config.h"
#include "engine/error.h"
#include "engine/model_files.h"
#include "engine/params.h"
#include "engine/safetensors.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/io.h"
#include "unet/unet.h"
#include "vae/names.h"
#include "vae/vae.h"

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
    "                      one, and tokenizer/ (DIR's tokenizer/ files, and TOK's); when FILE ends\n"
    "                      in .safetensors, just the one component's weights file\n"
    "  --component NAME    only this component (default: every one DIR has a config for)\n"
    "  --tokenizer TOK     with --layout diffusers: copy this CLIP tokenizer (a folder with\n"
    "                      vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz) into tokenizer/\n"
    "  --dtype             storage dtype (default f32); --seed S (default 0)\n"
    "Components: unet, vae, text_encoder.\n";

// ---------------------------------------------------------------- component registry

// Lists a component's parameters for the config in dir: each with its diffusers name (p->name)
// and its name in the original single-file layout (without the component prefix). A tensor the
// original layout stores fused (OpenCLIP's in_proj: q, k, v) arrives as `part` of `n_parts`
// row blocks under the same original name; otherwise part 0 of 1. `original`: list what the
// original layout holds (it may have more than the diffusers one).
typedef int (*component_visitor)(void *ctx, const param_desc *p, const char *original_name, int part, int n_parts);
typedef int (*component_params)(const char *dir, int original, component_visitor fn, void *ctx);

// The walk of one component, with its original-layout name map.
typedef int (*original_namer)(const void *cfg, const char *name, char *out, size_t len, int *part, int *n_parts);
typedef struct {
    const void *cfg;
    original_namer namer;
    component_visitor fn;
    void *ctx;
} lister;

static int list_one(void *ctx, const param_desc *p) {
    lister *l = ctx;
    char name[512];
    int part = 0, n_parts = 1;
    if (l->namer(l->cfg, p->name, name, sizeof name, &part, &n_parts) != 0)
        return sl_error(NULL, "internal: no original name for '%s'", p->name);
    return l->fn(l->ctx, p, name, part, n_parts);
}

static int unet_namer(const void *cfg, const char *name, char *out, size_t len, int *part, int *n_parts) {
    (void)part, (void)n_parts;
    return unet_original_name(cfg, name, out, len);
}

static int unet_params(const char *dir, int original, component_visitor fn, void *ctx) {
    (void)original;
    unet_config cfg;
    if (unet_config_load_dir(&cfg, dir) != 0) return -1;
    lister l = {&cfg, unet_namer, fn, ctx};
    return unet_enumerate(&cfg, list_one, &l);
}

static int vae_namer(const void *cfg, const char *name, char *out, size_t len, int *part, int *n_parts) {
    (void)part, (void)n_parts;
    vae_name_ctx nc = {((const vae_config *)cfg)->n_levels, NULL, NULL};
    return vae_name_original(name, out, len, &nc);
}

static int vae_params(const char *dir, int original, component_visitor fn, void *ctx) {
    (void)original;
    vae_config cfg;
    char path[4096];
    snprintf(path, sizeof path, "%s/vae/config.json", dir);
    if (vae_config_from_json(&cfg, path) != 0) return -1;
    lister l = {&cfg, vae_namer, fn, ctx};
    return vae_enumerate(&cfg, list_one, &l);
}

// cfg: the clip_layout to write
static int clip_namer(const void *layout, const char *name, char *out, size_t len, int *part, int *n_parts) {
    int qkv;
    if (clip_text_stored_name(*(const clip_layout *)layout, name, out, len, &qkv) != 0) return -1;
    if (qkv >= 0) *part = qkv, *n_parts = 3;   // OpenCLIP's fused in_proj: rows [q; k; v]
    return 0;
}

static int clip_params(const char *dir, int original, component_visitor fn, void *ctx) {
    clip_text_config cfg;
    char path[4096];
    snprintf(path, sizeof path, "%s/text_encoder/config.json", dir);
    if (clip_text_config_load(&cfg, path) != 0) return -1;
    // SD 2.x (OpenCLIP, gelu): the single file holds the whole tower, whose last resblock SD 2.x
    // skips; diffusers' config counts only the layers kept, so the original has one more.
    clip_layout layout = cfg.act == CLIP_ACT_GELU ? CLIP_LAYOUT_OPENCLIP : CLIP_LAYOUT_SD1;
    if (original && layout == CLIP_LAYOUT_OPENCLIP) cfg.layers++;
    lister l = {&layout, clip_namer, fn, ctx};
    return clip_text_enumerate(&cfg, list_one, &l);
}

static const struct {
    const char *name;              // the diffusers subfolder (and its name in SD_COMPONENTS)
    const char *weights;           // its weights file: <weights>.safetensors
    const char *library, *class_name;   // its model_index.json entry
    component_params params;
} COMPONENTS[] = {
    {"unet", "diffusion_pytorch_model", "diffusers", "UNet2DConditionModel", unet_params},
    {"vae", "diffusion_pytorch_model", "diffusers", "AutoencoderKL", vae_params},
    {"text_encoder", "model", "transformers", "CLIPTextModel", clip_params},
};
enum { N_COMPONENTS = sizeof COMPONENTS / sizeof COMPONENTS[0] };

static const char *original_prefix(const char *component) {
    for (int i = 0; i < N_SD_COMPONENTS; i++)
        if (!strcmp(SD_COMPONENTS[i].name, component)) return SD_COMPONENTS[i].original_prefix;
    sl_die(NULL, "internal: no original prefix for component '%s'", component);
}

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

// A tensor the original layout stores fused, filled one row block at a time.
typedef struct {
    char name[600];
    float *data;        // (n_parts · rows, ...) f32
    int ndim, filled;
    int64_t shape[4];
} fused_tensor;

typedef struct {
    st_writer *w;
    const char *prefix;
    int original;   // store under the original names
    dtype dt;
    uint64_t seed;
    void **bufs;
    int n, cap;
    fused_tensor fused[4];   // at most a weight and a bias are in flight at once
    int64_t params;
} init_sink;

// Stores f32 `data` (owned) as `name` in the sink's dtype; the buffer lives until the save.
static void sink_add(init_sink *s, const char *name, int ndim, const int64_t *shape, float *data) {
    int64_t n = shape_numel(ndim, shape);
    void *stored = data;
    if (s->dt != DT_F32) {
        stored = sl_alloc_aligned((size_t)n * dtype_size(s->dt));
        dtype_from_f32_n(stored, s->dt, data, (size_t)n);
        sl_free_aligned(data);
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->bufs = realloc(s->bufs, sizeof(void *) * (size_t)s->cap);
        if (!s->bufs) sl_die(NULL, "out of memory");
    }
    s->bufs[s->n++] = stored;
    st_writer_add(s->w, name, s->dt, ndim, shape, stored);
}

// Row block `part` of the fused tensor `name`; stored once all n_parts blocks are in.
static int sink_add_part(init_sink *s, const char *name, const param_desc *p, const float *data, int part, int n_parts) {
    fused_tensor *t = NULL, *free_slot = NULL;
    for (int i = 0; i < 4; i++) {
        if (s->fused[i].data && !strcmp(s->fused[i].name, name)) t = &s->fused[i];
        if (!s->fused[i].data && !free_slot) free_slot = &s->fused[i];
    }
    if (!t) {
        if (!free_slot) return sl_error(NULL, "internal: too many fused tensors in flight ('%s')", name);
        t = free_slot;
        snprintf(t->name, sizeof t->name, "%s", name);
        t->ndim = p->ndim;
        memcpy(t->shape, p->shape, sizeof t->shape);
        t->shape[0] *= n_parts;
        t->filled = 0;
        t->data = sl_alloc_f32(shape_numel(t->ndim, t->shape));
    }
    int64_t block = shape_numel(p->ndim, p->shape);
    memcpy(t->data + part * block, data, sizeof(float) * (size_t)block);
    if (++t->filled == n_parts) {
        sink_add(s, t->name, t->ndim, t->shape, t->data);
        t->data = NULL;
    }
    return 0;
}

// Element i of a tensor depends only on (seed, diffusers name, i): the same in either layout,
// any order and any thread count.
static int init_visitor(void *ctx, const param_desc *p, const char *original_name, int part, int n_parts) {
    init_sink *s = ctx;
    int64_t n = shape_numel(p->ndim, p->shape);
    float *data = sl_alloc_f32(n);
    if (p->kind == PARAM_NORM_WEIGHT || p->kind == PARAM_NORM_BIAS) {
        float v = p->kind == PARAM_NORM_WEIGHT ? 1.0f : 0.0f;
        for (int64_t i = 0; i < n; i++) data[i] = v;
    } else {
        float bound = 1.0f / sqrtf((float)(p->fan_in > 0 ? p->fan_in : 1));
        uint64_t key = mix64(s->seed ^ hash_str(p->name));
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double u = (double)(mix64(key + 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)) >> 11) * 0x1p-53;   // [0, 1)
            data[i] = (float)((2.0 * u - 1.0) * bound);
        }
    }
    s->params += n;
    char name[600];
    snprintf(name, sizeof name, "%s%s", s->prefix, s->original ? original_name : p->name);
    if (s->original && n_parts > 1) {
        int rc = sink_add_part(s, name, p, data, part, n_parts);
        sl_free_aligned(data);
        return rc;
    }
    sink_add(s, name, p->ndim, p->shape, data);
    return 0;
}

// Saves the sink's tensors to path and empties it.
static void sink_save(init_sink *s, const char *path) {
    for (int i = 0; i < 4; i++)
        if (s->fused[i].data) sl_die(NULL, "internal: fused tensor '%s' is incomplete", s->fused[i].name);
    st_writer_meta(s->w, "format", "pt");
    if (st_writer_save(s->w, path) != 0) sl_fail();
    st_writer_free(s->w);
    s->w = NULL;
    for (int i = 0; i < s->n; i++) sl_free_aligned(s->bufs[i]);
    free(s->bufs);
    s->bufs = NULL;
    s->n = s->cap = 0;
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
        for (int c = 0; c < N_COMPONENTS; c++)
            if (written[c] && !strcmp(e->string, COMPONENTS[c].name)) have = 1;
        if (!have) set_entry(index, e->string, NULL, NULL);
    }
    if (cJSON_GetObjectItemCaseSensitive(index, "safety_checker") &&
        !cJSON_GetObjectItemCaseSensitive(index, "requires_safety_checker"))
        cJSON_AddBoolToObject(index, "requires_safety_checker", 0);
    for (int c = 0; c < N_COMPONENTS; c++)
        if (written[c]) set_entry(index, COMPONENTS[c].name, COMPONENTS[c].library, COMPONENTS[c].class_name);
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
    if (dir_tok || tokenizer) {
        snprintf(to, sizeof to, "%s/tokenizer", outp);
        if (mkdir_p(to) != 0) sl_fail();
    }
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
    if (dir_tok && !tokenizer) {
        char vocab[4200];
        snprintf(vocab, sizeof vocab, "%s/vocab.json", to);
        if (!path_exists(vocab))
            sl_warn("%s has tokenizer configs but no vocabulary; pass --tokenizer TOK to include one", from);
    }
    if (dir_tok || tokenizer) wrote |= 2;
    return wrote;
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
        else if (arg_value(argc, argv, &i, "--seed", &v)) seed = (uint64_t)arg_long("--seed", v);
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
    int use[N_COMPONENTS] = {0}, n_use = 0;
    for (int c = 0; c < N_COMPONENTS; c++) {
        if (only && strcmp(only, COMPONENTS[c].name)) continue;
        if (!has_config(dir, COMPONENTS[c].name)) {
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
    if (!original && !single_component_file && mkdir_p(outp) != 0) sl_fail();

    init_sink sink = {.dt = dt, .seed = seed, .original = original};
    int64_t params = 0;
    for (int c = 0; c < N_COMPONENTS; c++) {
        if (!use[c]) continue;
        if (!sink.w) sink.w = st_writer_new();
        sink.prefix = original ? original_prefix(COMPONENTS[c].name) : "";
        if (COMPONENTS[c].params(dir, original, init_visitor, &sink) != 0) sl_fail();
        if (original) continue;   // one file for all, saved below
        char path[4096], from[4096];
        if (single_component_file) {
            snprintf(path, sizeof path, "%s", outp);
        } else {
            snprintf(path, sizeof path, "%s/%s", outp, COMPONENTS[c].name);
            if (mkdir_p(path) != 0) sl_fail();
            snprintf(from, sizeof from, "%s/%s/config.json", dir, COMPONENTS[c].name);
            snprintf(path, sizeof path, "%s/%s/config.json", outp, COMPONENTS[c].name);
            if (copy_file(from, path) != 0) sl_fail();
            snprintf(path, sizeof path, "%s/%s/%s.safetensors", outp, COMPONENTS[c].name, COMPONENTS[c].weights);
        }
        sink_save(&sink, path);
    }
    params = sink.params;
    if (original) {
        sink_save(&sink, outp);
    } else if (!single_component_file) {
        int extras = write_extras(dir, outp, tokenizer);
        write_model_index(dir, outp, use, extras & 1, extras & 2);
    }
    printf("wrote %s (%s layout, %s, %lld parameters, seed %llu)\n", outp, original ? "original" : "diffusers",
           dtype_name(dt), (long long)params, (unsigned long long)seed);
    return 0;
}
