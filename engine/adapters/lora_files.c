#include "engine/adapters/lora_files.h"

#include "engine/kernels/gemm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/strmap.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"

// ---------------------------------------------------------------- export

static void kohya_key(char *buf, size_t len, const char *module) {
    snprintf(buf, len, "lora_unet_%s", module);
    for (char *p = buf; *p; p++)
        if (*p == '.') *p = '_';
}

int lora_export_meta(const adapter_set *s, lora_format fmt, const char *path, const char *const *keys,
                     const char *const *values, int n_meta) {
    if (s->method == ADAPTER_DORA && fmt != LORA_FORMAT_KOHYA)
        return sl_error(path, "a DoRA adapter exports only to the kohya format (dora_scale); the diffusers LoRA format has no magnitude");
    float u = adapter_set_ramp(s);
    int r = s->rank;
    st_writer *w = st_writer_new();
    // the writer borrows data until save: keep every converted buffer alive
    float **keep = sl_calloc((size_t)s->n_slots * 4 + 1, sizeof(float *));
    int nkeep = 0;
    for (int i = 0; i < s->n_slots; i++) {
        const adapter *a = &s->slots[i].a;
        int di = a->d_in, dout = a->d_out;
        float *down = sl_alloc_f32((int64_t)r * di), *up = sl_alloc_f32((int64_t)dout * r);
        float *alpha = sl_alloc_f32(1);
        keep[nkeep++] = down;
        keep[nkeep++] = up;
        keep[nkeep++] = alpha;
        float scale;   // what up is multiplied by so that (alpha/r)·up·down is the layer's ΔW
        if (a->method == ADAPTER_SINGLORA) {
            // ΔW = s·u·A[:d_out]·A[:d_in]ᵀ = up·down with up = s·u·A[:d_out], down = A[:d_in]ᵀ, alpha = r
            for (int j = 0; j < r; j++)
                for (int c = 0; c < di; c++) down[(size_t)j * di + c] = a->A[(size_t)c * r + j];
            scale = a->alpha / (float)r * u;
            *alpha = (float)r;
        } else {
            memcpy(down, a->down, sizeof(float) * (size_t)r * di);
            scale = 1.0f;
            *alpha = a->alpha;
        }
        const float *src_up = a->method == ADAPTER_SINGLORA ? a->A : a->up;
        if (fmt == LORA_FORMAT_DIFFUSERS) scale *= *alpha / (float)r;   // no alpha in this format
        for (int o = 0; o < dout; o++)
            for (int j = 0; j < r; j++) up[(size_t)o * r + j] = scale * src_up[(size_t)o * r + j];
        // a k×k conv's factors as convs (LoCon): down (r, C_in, k, k), up (d_out, r, 1, 1)
        const int k = a->kernel, nd = k > 0 ? 4 : 2;
        const int64_t down_shape[4] = {r, k > 0 ? di / (k * k) : di, k, k}, up_shape[4] = {dout, r, 1, 1};
        char base[600], name[700];
        if (fmt == LORA_FORMAT_KOHYA) {
            kohya_key(base, sizeof base, s->slots[i].module);
            snprintf(name, sizeof name, "%s.lora_down.weight", base);
            st_writer_add(w, name, DT_F32, nd, down_shape, down);
            snprintf(name, sizeof name, "%s.lora_up.weight", base);
            st_writer_add(w, name, DT_F32, nd, up_shape, up);
            snprintf(name, sizeof name, "%s.alpha", base);
            st_writer_add(w, name, DT_F32, 0, NULL, alpha);
            if (a->method == ADAPTER_DORA) {
                snprintf(name, sizeof name, "%s.dora_scale", base);
                st_writer_add(w, name, DT_F32, nd, (int64_t[]){dout, 1, 1, 1}, a->magnitude);
            }
        } else {
            snprintf(name, sizeof name, "unet.%s.lora.down.weight", s->slots[i].module);
            st_writer_add(w, name, DT_F32, nd, down_shape, down);
            snprintf(name, sizeof name, "unet.%s.lora.up.weight", s->slots[i].module);
            st_writer_add(w, name, DT_F32, nd, up_shape, up);
        }
    }
    char buf[128];
    if (fmt == LORA_FORMAT_KOHYA) {
        st_writer_meta(w, "ss_network_module", "networks.lora");
        snprintf(buf, sizeof buf, "%d", r);
        st_writer_meta(w, "ss_network_dim", buf);
        snprintf(buf, sizeof buf, "%.9g", s->method == ADAPTER_SINGLORA ? (double)r : (double)s->alpha);
        st_writer_meta(w, "ss_network_alpha", buf);
        if (s->method == ADAPTER_DORA) st_writer_meta(w, "ss_network_args", "{\"dora_wd\": \"true\"}");
        st_writer_meta(w, "ss_base_model_version", "sd_v1");
        snprintf(buf, sizeof buf, "exported by singlora from a %s adapter at step %lld", adapter_method_name(s->method),
                 (long long)s->step);
        st_writer_meta(w, "ss_training_comment", buf);
        snprintf(buf, sizeof buf, "%lld", (long long)s->step);
        st_writer_meta(w, "ss_steps", buf);
        st_writer_meta(w, "modelspec.sai_model_spec", "1.0.0");
        st_writer_meta(w, "modelspec.architecture", "stable-diffusion-v1/lora");
        st_writer_meta(w, "modelspec.implementation", "https://github.com/Stability-AI/generative-models");
        st_writer_meta(w, "modelspec.title", "singlora export");
    }
    st_writer_meta(w, "singlora.exported_from", adapter_method_name(s->method));
    st_writer_meta(w, "singlora.base_model", s->base_model);
    for (int i = 0; i < n_meta; i++) st_writer_meta(w, keys[i], values[i]);
    int rc = st_writer_save(w, path);
    st_writer_free(w);
    for (int i = 0; i < nkeep; i++) sl_free_aligned(keep[i]);
    free(keep);
    return rc;
}

// ---------------------------------------------------------------- import

typedef struct {
    char module[512];
    const st_entry *down, *up, *alpha, *dora_scale;
} lora_group;

static int ends_with(const char *s, const char *suf, size_t *stem) {
    size_t n = strlen(s), k = strlen(suf);
    if (n < k || strcmp(s + n - k, suf) != 0) return 0;
    *stem = n - k;
    return 1;
}

// Splits a tensor name into (module key, role). Returns the role: 0 down, 1 up, 2 alpha,
// 3 dora_scale, -1 not a LoRA tensor; 4 a text-encoder tensor.
static int parse_name(const char *name, char *key, size_t len) {
    static const struct { const char *suffix; int role; } SUFFIXES[] = {
        {".lora_down.weight", 0}, {".lora_up.weight", 1}, {".alpha", 2}, {".dora_scale", 3},
        {".lora.down.weight", 0}, {".lora.up.weight", 1}, {".lora_A.weight", 0}, {".lora_B.weight", 1},
        {"_lora.down.weight", 0}, {"_lora.up.weight", 1},   // old diffusers attention processors
    };
    if (!strncmp(name, "lora_te", 7) || !strncmp(name, "text_encoder", 12) || !strncmp(name, "base_model.model.text_model", 27))
        return 4;
    for (size_t i = 0; i < sizeof SUFFIXES / sizeof *SUFFIXES; i++) {
        size_t stem;
        if (!ends_with(name, SUFFIXES[i].suffix, &stem)) continue;
        const char *s = name;
        if (!strncmp(s, "lora_unet_", 10)) s += 10;
        else if (!strncmp(s, "unet.", 5)) s += 5;
        else if (!strncmp(s, "base_model.model.", 17)) s += 17;
        snprintf(key, len, "%.*s", (int)(stem - (size_t)(s - name)), s);
        if (SUFFIXES[i].suffix[0] == '_') {
            // "attn2.processor.to_k" -> "attn2.to_k", "to_out" -> "to_out.0"
            char *p = strstr(key, ".processor.");
            if (p) memmove(p, p + 10, strlen(p + 10) + 1);
            size_t kl = strlen(key);
            if (kl >= 7 && !strcmp(key + kl - 7, ".to_out")) snprintf(key + kl, len - kl, ".0");
        }
        return SUFFIXES[i].role;
    }
    return -1;
}

// kohya keys replace every '.' of the module path by '_': compare that way.
static int key_matches(const char *key, const char *module) {
    for (; *key && *module; key++, module++)
        if (*key != *module && !(*key == '_' && *module == '.')) return 0;
    return *key == 0 && *module == 0;
}

static void note_unmatched(lora_apply_report *rep, const char *name) {
    size_t l = strlen(rep->unmatched);
    if (l < 300) snprintf(rep->unmatched + l, sizeof rep->unmatched - l, "%s%s", l ? ", " : "", name);
    else if (!strstr(rep->unmatched, "...")) snprintf(rep->unmatched + l, sizeof rep->unmatched - l, ", ...");
}

// A LoRA tensor's values, widened: -1 with sl_error naming the file and tensor on a nan/inf.
static int values_finite(const char *path, const st_entry *e, const float *x, int64_t n) {
    int64_t i = f32_first_nonfinite(x, n);
    if (i < 0) return 0;
    return sl_error(path, "LoRA tensor '%s' holds a non-finite value (%g at index %lld)", e->name, (double)x[i], (long long)i);
}

static float *entry_matrix(const char *path, const st_entry *e, int rows, int cols) {
    // (rows, cols), a 1×1 conv's (rows, cols, 1, 1) or a k×k conv's (rows, C_in, k, k) with C_in·k·k = cols
    int ok = e->ndim >= 2 && e->shape[0] == rows;
    int64_t inner = 1;
    for (int d = 1; ok && d < e->ndim; d++) inner *= e->shape[d];
    ok = ok && inner == cols && (e->ndim != 4 || e->shape[2] == e->shape[3]) && e->ndim <= 4;
    if (!ok || !dtype_is_float(e->dt)) {
        char a[128];
        sl_error(path, "LoRA tensor '%s' has shape %s %s, the model needs [%d, %d]", e->name,
                 shape_str(a, sizeof a, e->ndim, e->shape), dtype_name(e->dt), rows, cols);
        return NULL;
    }
    float *m = sl_alloc_f32((int64_t)rows * cols);
    dtype_to_f32_n(m, e->data, e->dt, (size_t)rows * cols);
    if (values_finite(path, e, m, (int64_t)rows * cols) != 0) { sl_free_aligned(m); return NULL; }
    return m;
}

static int apply_group(const char *path, const lora_group *g, float scale, float *w, int dout, int di) {
    const st_entry *d = g->down, *u = g->up;
    if (d->ndim < 2 || u->ndim < 2) return sl_error(path, "LoRA tensors of '%s' are not matrices", g->module);
    int r = (int)d->shape[0];
    float *down = entry_matrix(path, d, r, di), *up = down ? entry_matrix(path, u, dout, r) : NULL;
    if (!down || !up) { sl_free_aligned(down); return -1; }
    float alpha = (float)r;
    if (g->alpha) {
        if (shape_numel(g->alpha->ndim, g->alpha->shape) != 1 || !dtype_is_float(g->alpha->dt)) {
            sl_free_aligned(down); sl_free_aligned(up);
            return sl_error(path, "'%s' is not a scalar", g->alpha->name);
        }
        dtype_to_f32_n(&alpha, g->alpha->data, g->alpha->dt, 1);
        if (!(fabsf(alpha) <= ADAPTER_MAX_ALPHA)) {   // also nan
            sl_free_aligned(down); sl_free_aligned(up);
            return sl_error(path, "'%s' = %g is not a number in -%g..%g", g->alpha->name, (double)alpha, ADAPTER_MAX_ALPHA,
                            ADAPTER_MAX_ALPHA);
        }
    }
    float s = alpha / (float)r;
    if (!g->dora_scale) {
        gemm(GEMM_N, GEMM_N, dout, di, r, scale * s, up, r, down, di, 1.0f, w, di);
    } else {
        // W' = m ⊙ V / ‖V‖ with V = W + s·up·down, the norm per output row (m (d_out, 1)) or per
        // input column (m (1, d_in)); the strength interpolates: W += scale·(W' − W)
        const st_entry *m = g->dora_scale;
        int64_t n = shape_numel(m->ndim, m->shape);
        int per_row = m->ndim >= 1 && m->shape[0] == dout && n == dout;
        if (!per_row && n != di) {
            sl_free_aligned(down); sl_free_aligned(up);
            return sl_error(path, "'%s' has %lld values; the layer has %d outputs and %d inputs", m->name, (long long)n, dout, di);
        }
        float *mag = sl_alloc_f32(n), *v = sl_alloc_f32((int64_t)dout * di);
        dtype_to_f32_n(mag, m->data, m->dt, (size_t)n);
        if (values_finite(path, m, mag, n) != 0) {
            sl_free_aligned(mag); sl_free_aligned(v); sl_free_aligned(down); sl_free_aligned(up);
            return -1;
        }
        memcpy(v, w, sizeof(float) * (size_t)dout * di);
        gemm(GEMM_N, GEMM_N, dout, di, r, s, up, r, down, di, 1.0f, v, di);
        int outer = per_row ? dout : di, inner = per_row ? di : dout;
        for (int a = 0; a < outer; a++) {
            double nn = 0;
            for (int b = 0; b < inner; b++) {
                float x = per_row ? v[(size_t)a * di + b] : v[(size_t)b * di + a];
                nn += (double)x * x;
            }
            float f = mag[a] / (float)sqrt(nn);
            for (int b = 0; b < inner; b++) {
                size_t idx = per_row ? (size_t)a * di + b : (size_t)b * di + a;
                w[idx] += scale * (v[idx] * f - w[idx]);
            }
        }
        sl_free_aligned(mag);
        sl_free_aligned(v);
    }
    sl_free_aligned(down);
    sl_free_aligned(up);
    return 0;
}

// kohya's form of a module path or key: every '.' replaced by '_' (buf holds len bytes).
static const char *kohya_form(char *buf, size_t len, const char *s) {
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++) buf[i] = s[i] == '.' ? '_' : s[i];
    buf[i] = 0;
    return buf;
}

// The model module a LoRA key names, or NULL. `by_kohya_form` maps each module's kohya form to
// its index (the first module of that form); key_matches confirms, and only a key whose form
// several modules share (form_shared[first index]) falls back to the scan.
static const char *find_module(const char *key, const char *const *modules, int n_modules, const strmap *by_kohya_form,
                               const char *form_shared) {
    char form[512];
    int m = strmap_get(by_kohya_form, kohya_form(form, sizeof form, key));
    if (m < 0) return NULL;
    if (key_matches(key, modules[m])) return modules[m];
    if (!form_shared[m]) return NULL;
    for (int i = 0; i < n_modules; i++)
        if (key_matches(key, modules[i])) return modules[i];
    return NULL;
}

int lora_apply(const char *path, float scale, const char *const *modules, int n_modules, lora_weight_fn weight,
               void *ctx, lora_apply_report *rep) {
    memset(rep, 0, sizeof *rep);
    st_file *f = st_open(path);
    if (!f) return -1;
    // the file's tensors grouped by module key, through a hash of the keys (files with 10^5
    // tensors import in time linear in their size)
    lora_group *groups = sl_calloc((size_t)f->n_entries + 1, sizeof(lora_group));
    strmap group_of;
    strmap_init(&group_of, (size_t)f->n_entries);
    rep->tensors_total = f->n_entries;
    int ng = 0, rc = 0;
    for (int i = 0; i < f->n_entries; i++) {
        char key[512];
        int role = parse_name(f->entries[i].name, key, sizeof key);
        if (role == 4) { rep->text_encoder++; continue; }
        if (role < 0) { note_unmatched(rep, f->entries[i].name); continue; }
        int g = strmap_get(&group_of, key);
        if (g < 0) {
            g = ng++;
            snprintf(groups[g].module, sizeof groups[g].module, "%s", key);
            strmap_put(&group_of, groups[g].module, g);
        }
        const st_entry **slot = role == 0 ? &groups[g].down : role == 1 ? &groups[g].up : role == 2 ? &groups[g].alpha : &groups[g].dora_scale;
        *slot = &f->entries[i];
    }
    char (*forms)[512] = sl_calloc((size_t)n_modules + 1, sizeof *forms);
    strmap by_kohya_form;
    char *form_shared = sl_calloc((size_t)n_modules + 1, 1);
    strmap_init(&by_kohya_form, (size_t)n_modules);
    for (int m = 0; m < n_modules; m++) {
        int first = strmap_put(&by_kohya_form, kohya_form(forms[m], sizeof forms[m], modules[m]), m);
        if (first >= 0) form_shared[first] = 1;
    }
    for (int g = 0; g < ng && rc == 0; g++) {
        rep->total++;
        if (!groups[g].down || !groups[g].up) {
            rc = sl_error(path, "LoRA module '%s' lacks its %s tensor", groups[g].module, groups[g].down ? "up" : "down");
            break;
        }
        const char *module = find_module(groups[g].module, modules, n_modules, &by_kohya_form, form_shared);
        int dout = 0, di = 0;
        float *w = module ? weight(ctx, module, &dout, &di) : NULL;
        if (!w) { note_unmatched(rep, groups[g].down->name); continue; }
        rc = apply_group(path, &groups[g], scale, w, dout, di);
        if (rc == 0) {
            rep->applied++;
            rep->tensors_applied += 2 + (groups[g].alpha != NULL) + (groups[g].dora_scale != NULL);
        }
    }
    strmap_free(&by_kohya_form);
    strmap_free(&group_of);
    free(forms);
    free(form_shared);
    free(groups);
    st_close(f);
    return rc;
}

int lora_export(const adapter_set *s, lora_format fmt, const char *path) { return lora_export_meta(s, fmt, path, NULL, NULL, 0); }
