// singlora inspect PATH [--tensors]: what a .safetensors file or a diffusers folder holds, or
// the A1111 generation parameters of a PNG.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "engine/io/model_files.h"
#include "pipeline/a1111_params.h"
#include "data/png.h"
#include "tools/args.h"

static const char *HELP =
    "usage: singlora inspect PATH [--tensors]\n\n"
    "PATH is a .safetensors file (single-file checkpoint, diffusers component or adapter) or a\n"
    "diffusers folder. Prints the detected layout, each component's tensor and parameter counts,\n"
    "dtypes and metadata; --tensors also lists every tensor's name, dtype and shape.\n"
    "PATH may also be a PNG image: its A1111 `parameters` chunk (written by singlora sample or\n"
    "A1111), parsed as A1111's PNG Info reads it: prompt, negative prompt and each setting.\n";

typedef struct {
    long long tensors, params;
    long long by_dtype[DT_COUNT];
} component_stats;

static void stats_add(component_stats *s, const st_entry *e) {
    s->tensors++;
    long long n = shape_numel(e->ndim, e->shape);
    s->params += n;
    s->by_dtype[e->dt] += 1;
}

static void stats_print(const char *name, const component_stats *s) {
    printf("  %-14s %6lld tensors  %14lld parameters  dtypes:", name, s->tensors, s->params);
    for (int d = 0; d < DT_COUNT; d++)
        if (s->by_dtype[d]) printf(" %s(%lld)", dtype_name((dtype)d), s->by_dtype[d]);
    printf("\n");
}

static void print_file(const char *path, st_file *f, int list_tensors, const char *as_component) {
    model_layout layout = detect_layout(f);
    printf("file: %s\n", path);
    printf("layout: %s\n", as_component ? "diffusers" : layout_name(layout));
    printf("components:\n");
    if (layout == LAYOUT_ORIGINAL && !as_component) {
        component_stats st[8] = {0}, other = {0};
        for (int i = 0; i < f->n_entries; i++) {
            int c = original_component(f->entries[i].name);
            stats_add(c >= 0 ? &st[c] : &other, &f->entries[i]);
        }
        for (int c = 0; c < N_SD_COMPONENTS; c++)
            if (st[c].tensors) stats_print(SD_COMPONENTS[c].name, &st[c]);
        if (other.tensors) stats_print("other", &other);
    } else {
        component_stats s = {0};
        for (int i = 0; i < f->n_entries; i++) stats_add(&s, &f->entries[i]);
        stats_print(as_component ? as_component : layout == LAYOUT_ADAPTER ? "adapter" : "all", &s);
    }
    if (f->n_meta) {
        printf("metadata:\n");
        for (int i = 0; i < f->n_meta; i++) {
            const char *v = f->meta_values[i];
            int long_value = strlen(v) > 200;
            printf("  %s: %.*s%s\n", f->meta_keys[i], long_value ? 200 : (int)strlen(v), v, long_value ? " ..." : "");
        }
    }
    if (list_tensors) {
        printf("tensors:\n");
        for (int i = 0; i < f->n_entries; i++) {
            char sh[160];
            const st_entry *e = &f->entries[i];
            printf("  %s %s %s\n", e->name, dtype_name(e->dt), shape_str(sh, sizeof sh, e->ndim, e->shape));
        }
    }
}

// A singlora adapter: what it is and what it trains.
static void print_adapter(const char *path) {
    adapter_set *s = adapter_set_load(path);
    if (!s) sl_fail();
    printf("adapter:\n");
    printf("  method: %s\n  rank: %d\n  alpha: %g (scale alpha/rank = %g)\n", adapter_method_name(s->method), s->rank,
           (double)s->alpha, (double)s->alpha / s->rank);
    printf("  step: %lld\n", (long long)s->step);
    if (s->method == ADAPTER_SINGLORA)
        printf("  ramp_steps: %lld (u = %g at this step)\n", (long long)s->ramp_steps, (double)adapter_set_ramp(s));
    printf("  init: %s\n  targets: %s\n  layers: %d\n  trainable parameters: %lld\n  base_model: %s\n", s->init,
           s->targets, s->n_slots, (long long)adapter_set_param_count(s), s->base_model);
    adapter_set_free(s);
}

static int is_png(const char *path) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char b[8];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(b, 1, 8, f);
    fclose(f);
    return n == 8 && memcmp(b, sig, 8) == 0;
}

static int inspect_png(const char *path) {
    sl_error_clear();
    char *text = png_read_text(path, "parameters");
    if (!text) {
        if (sl_error_msg()[0]) sl_fail();
        sl_die(path, "has no A1111 `parameters` text chunk");
    }
    a1111_params p;
    a1111_params_parse(text, &p);
    printf("file: %s\nparameters (A1111 PNG Info):\n  prompt: %s\n", path, p.prompt);
    if (p.negative) printf("  negative prompt: %s\n", p.negative);
    for (int i = 0; i < p.n; i++) printf("  %s: %s\n", p.keys[i], p.values[i]);
    a1111_params_free(&p);
    free(text);
    return 0;
}

static int inspect_folder(const char *dir, int list_tensors) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/model_index.json", dir);
    int has_index = path_exists(buf);
    printf("folder: %s\n", dir);
    printf("layout: %s\n", has_index ? "diffusers" : "unknown (no model_index.json)");
    static const char *components[] = {"unet", "vae", "text_encoder", "text_encoder_2"};
    static const char *variants[] = {NULL, "fp16"};
    int found = 0;
    for (size_t c = 0; c < sizeof components / sizeof *components; c++) {
        for (int v = 0; v < 2; v++) {
            char *path = diffusers_component_file(dir, components[c], variants[v]);
            if (!path) continue;
            st_file *f = st_open(path);
            if (!f) { free(path); sl_fail(); }
            printf("\n");
            char label[64];
            snprintf(label, sizeof label, "%s%s%s", components[c], variants[v] ? "." : "", variants[v] ? variants[v] : "");
            print_file(path, f, list_tensors, label);
            st_close(f);
            free(path);
            found++;
        }
    }
    sl_error_clear();
    if (!found) sl_die(dir, "no unet/, vae/ or text_encoder/ safetensors weights found in this folder");
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int list_tensors = 0;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_flag(argv, i, "--tensors")) list_tensors = 1;
        else if (argv[i][0] == '-' || path) arg_unknown("inspect", argv[i]);
        else path = argv[i];
    }
    if (!path) sl_die(NULL, "inspect: no PATH given (see singlora inspect --help)");
    if (path_is_dir(path)) return inspect_folder(path, list_tensors);
    if (is_png(path)) return inspect_png(path);
    st_file *f = st_open(path);
    if (!f) sl_fail();
    print_file(path, f, list_tensors, NULL);
    int ours = st_meta(f, "singlora.format") != NULL;
    st_close(f);
    if (ours) print_adapter(path);
    return 0;
}
