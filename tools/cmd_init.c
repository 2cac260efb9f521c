// singlora init: a model with random weights at the real shapes a config describes (for
// benchmarks and tests at full scale). Each model component registers a function that lists
// its parameters (the same walk its loader uses), so names and shapes have one source.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/error.h"
#include "engine/model_files.h"
#include "engine/params.h"
#include "engine/safetensors.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "unet/unet.h"
#include "vae/names.h"
#include "vae/vae.h"

static const char *HELP =
    "usage: singlora init --config DIR --out FILE [--layout original|diffusers] [--dtype f32|f16|bf16]\n"
    "                     [--seed S] [--component NAME]\n\n"
    "Writes random weights at the shapes of the configs in DIR (a diffusers-style folder such as\n"
    "../shared/models/sd15: unet/config.json, ...). Initialization follows PyTorch's defaults:\n"
    "weights and biases uniform in ±1/sqrt(fan_in), norm weights 1 and biases 0.\n"
    "  --layout original   (default) one single-file checkpoint FILE (.safetensors), each component\n"
    "                      under its prefix (model.diffusion_model. for the UNet, first_stage_model.\n"
    "                      for the VAE)\n"
    "  --layout diffusers  FILE is a folder: FILE/<component>/diffusion_pytorch_model.safetensors\n"
    "                      with <component>/config.json (and model_index.json) copied from DIR;\n"
    "                      when FILE ends in .safetensors, just the one component's weights file\n"
    "  --component NAME    only this component (default: every one DIR has a config for)\n"
    "  --dtype             storage dtype (default f32); --seed S (default 0)\n"
    "Components: unet, vae.\n";

// ---------------------------------------------------------------- component registry

// Lists a component's parameters for the config in dir: each with its diffusers name (p->name)
// and its name in the original single-file layout (without the component prefix).
typedef int (*component_visitor)(void *ctx, const param_desc *p, const char *original_name);
typedef int (*component_params)(const char *dir, component_visitor fn, void *ctx);

typedef struct {
    unet_config cfg;
    component_visitor fn;
    void *ctx;
} unet_lister;

static int unet_list_one(void *ctx, const param_desc *p) {
    unet_lister *l = ctx;
    char name[512];
    if (unet_original_name(&l->cfg, p->name, name, sizeof name) != 0)
        return sl_error(NULL, "internal: no original name for '%s'", p->name);
    return l->fn(l->ctx, p, name);
}

static int unet_params(const char *dir, component_visitor fn, void *ctx) {
    unet_lister l = {.fn = fn, .ctx = ctx};
    if (unet_config_load_dir(&l.cfg, dir) != 0) return -1;
    return unet_enumerate(&l.cfg, unet_list_one, &l);
}

typedef struct {
    vae_config cfg;
    component_visitor fn;
    void *ctx;
} vae_lister;

static int vae_list_one(void *ctx, const param_desc *p) {
    vae_lister *l = ctx;
    vae_name_ctx nc = {l->cfg.n_levels, NULL, NULL};
    char name[512];
    if (vae_name_original(p->name, name, sizeof name, &nc) != 0)
        return sl_error(NULL, "internal: no original name for '%s'", p->name);
    return l->fn(l->ctx, p, name);
}

static int vae_params(const char *dir, component_visitor fn, void *ctx) {
    vae_lister l = {.fn = fn, .ctx = ctx};
    char path[4096];
    snprintf(path, sizeof path, "%s/vae/config.json", dir);
    if (vae_config_from_json(&l.cfg, path) != 0) return -1;
    return vae_enumerate(&l.cfg, vae_list_one, &l);
}

static const struct {
    const char *name;              // the diffusers subfolder
    const char *original_prefix;   // tensor-name prefix in the single-file layout
    component_params params;
} COMPONENTS[] = {
    {"unet", "model.diffusion_model.", unet_params},
    {"vae", "first_stage_model.", vae_params},
};
static const int N_COMPONENTS = sizeof COMPONENTS / sizeof COMPONENTS[0];

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

typedef struct {
    st_writer *w;
    const char *prefix;
    int original;   // store under the original names
    dtype dt;
    uint64_t seed;
    void **bufs;
    int n, cap;
    int64_t params;
} init_sink;

// Element i of a tensor depends only on (seed, diffusers name, i): the same in either layout,
// any order and any thread count.
static int init_visitor(void *ctx, const param_desc *p, const char *original_name) {
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
    char name[600];
    snprintf(name, sizeof name, "%s%s", s->prefix, s->original ? original_name : p->name);
    st_writer_add(s->w, name, s->dt, p->ndim, p->shape, stored);
    s->params += n;
    return 0;
}

static void sink_free(init_sink *s) {
    for (int i = 0; i < s->n; i++) sl_free_aligned(s->bufs[i]);
    free(s->bufs);
    s->bufs = NULL;
    s->n = s->cap = 0;
}

// ---------------------------------------------------------------- files

static int has_config(const char *dir, const char *component) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/config.json", dir, component);
    return path_exists(p);
}

static void mkdir_or_die(const char *path) {
    if (mkdir(path, 0777) != 0 && errno != EEXIST) sl_die(path, "cannot create folder: %s", strerror(errno));
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb");
    if (!a) sl_die(from, "cannot open: %s", strerror(errno));
    FILE *b = fopen(to, "wb");
    if (!b) sl_die(to, "cannot create: %s", strerror(errno));
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, k, b) != k) sl_die(to, "write error");
    fclose(a);
    if (fclose(b) != 0) sl_die(to, "write error");
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int cmd_init(int argc, char **argv) {
    const char *dir = NULL, *outp = NULL, *layout = "original", *dts = "f32", *only = NULL, *v;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_value(argc, argv, &i, "--config", &dir)) {}
        else if (arg_value(argc, argv, &i, "--out", &outp)) {}
        else if (arg_value(argc, argv, &i, "--layout", &layout)) {}
        else if (arg_value(argc, argv, &i, "--dtype", &dts)) {}
        else if (arg_value(argc, argv, &i, "--component", &only)) {}
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
    int use[16] = {0}, n_use = 0;
    for (int c = 0; c < N_COMPONENTS; c++) {
        if (only && strcmp(only, COMPONENTS[c].name)) continue;
        if (!has_config(dir, COMPONENTS[c].name)) {
            if (only) sl_die(dir, "no %s/config.json", only);
            continue;
        }
        use[c] = 1;
        n_use++;
    }
    if (only && !n_use) sl_die(NULL, "init: unknown component '%s' (known: unet, vae)", only);
    if (!n_use) sl_die(dir, "no component config (unet/config.json, ...) in this folder");

    int single_component_file = !original && ends_with(outp, ".safetensors");
    if (original && !ends_with(outp, ".safetensors")) sl_die(outp, "the original layout is one .safetensors file");
    if (single_component_file && n_use != 1)
        sl_die(outp, "a single diffusers weights file holds one component; pass --component NAME or a folder");
    if (!original && !single_component_file) mkdir_or_die(outp);

    init_sink sink = {.dt = dt, .seed = seed, .original = original};
    if (original) sink.w = st_writer_new();
    for (int c = 0; c < N_COMPONENTS; c++) {
        if (!use[c]) continue;
        if (!original) sink.w = st_writer_new();
        sink.prefix = original ? COMPONENTS[c].original_prefix : "";
        if (COMPONENTS[c].params(dir, init_visitor, &sink) != 0) sl_fail();
        if (!original) {
            char path[4096], from[4096];
            if (single_component_file) {
                snprintf(path, sizeof path, "%s", outp);
            } else {
                snprintf(path, sizeof path, "%s/%s", outp, COMPONENTS[c].name);
                mkdir_or_die(path);
                snprintf(from, sizeof from, "%s/%s/config.json", dir, COMPONENTS[c].name);
                snprintf(path, sizeof path, "%s/%s/config.json", outp, COMPONENTS[c].name);
                copy_file(from, path);
                snprintf(path, sizeof path, "%s/%s/diffusion_pytorch_model.safetensors", outp, COMPONENTS[c].name);
            }
            st_writer_meta(sink.w, "format", "pt");
            if (st_writer_save(sink.w, path) != 0) sl_fail();
            st_writer_free(sink.w);
            sink_free(&sink);
        }
    }
    if (original) {
        st_writer_meta(sink.w, "format", "pt");
        if (st_writer_save(sink.w, outp) != 0) sl_fail();
        st_writer_free(sink.w);
        sink_free(&sink);
    } else if (!single_component_file) {
        char from[4096], to[4096];
        snprintf(from, sizeof from, "%s/model_index.json", dir);
        snprintf(to, sizeof to, "%s/model_index.json", outp);
        if (path_exists(from)) copy_file(from, to);
    }
    printf("wrote %s (%s layout, %s, %lld parameters, seed %llu)\n", outp, original ? "original" : "diffusers",
           dtype_name(dt), (long long)sink.params, (unsigned long long)seed);
    return 0;
}
