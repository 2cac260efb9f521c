#include "engine/adapters/adapter_set.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/parse_num.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"

float adapter_set_ramp(const adapter_set *s) {
    return s->method == ADAPTER_SINGLORA ? singlora_ramp(s->step, s->ramp_steps) : 1.0f;
}

int adapter_target_matches(const char *targets, const char *module) {
    size_t ml = strlen(module);
    const char *p = targets;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n && n <= ml && strncmp(module + ml - n, p, n) == 0 && (n == ml || module[ml - n - 1] == '.')) return 1;
        p += n + (e ? 1 : 0);
    }
    return 0;
}

const char *adapter_targets_expand(const char *spec, char *buf, size_t len) {
    static const struct { const char *name, *targets; } SHORT[] = {
        {"cross-attn", ADAPTER_DEFAULT_TARGETS},
        {"self-attn", "attn1.to_q,attn1.to_k,attn1.to_v,attn1.to_out.0"},
        {"attn", "attn1.to_q,attn1.to_k,attn1.to_v,attn1.to_out.0," ADAPTER_DEFAULT_TARGETS},
        {"ff", "ff.net.0.proj,ff.net.2"},
        {"proj", "proj_in,proj_out"},
        {"all", "attn1.to_q,attn1.to_k,attn1.to_v,attn1.to_out.0," ADAPTER_DEFAULT_TARGETS ",ff.net.0.proj,ff.net.2"},
        {"resnets", "conv1,conv2,conv_shortcut"},
        {"conv", "conv1,conv2,conv_shortcut,conv"},
    };
    buf[0] = 0;
    const char *p = spec;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *add = NULL;
        for (size_t i = 0; i < sizeof SHORT / sizeof *SHORT; i++)
            if (strlen(SHORT[i].name) == n && strncmp(p, SHORT[i].name, n) == 0) add = SHORT[i].targets;
        size_t l = strlen(buf);
        if (add) snprintf(buf + l, len - l, "%s%s", l ? "," : "", add);
        else if (n) snprintf(buf + l, len - l, "%s%.*s", l ? "," : "", (int)n, p);
        p += n + (e ? 1 : 0);
    }
    return buf;
}

adapter *adapter_set_add(adapter_set *s, const char *module, int d_in, int d_out) {
    s->slots = sl_realloc(s->slots, sizeof(adapter_slot) * (size_t)(s->n_slots + 1));
    adapter_slot *slot = &s->slots[s->n_slots++];
    slot->module = sl_strdup(module);
    adapter_alloc(&slot->a, s->method, d_in, d_out, s->rank, s->alpha);
    return &slot->a;
}

adapter *adapter_set_find(const adapter_set *s, const char *module) {
    for (int i = 0; i < s->n_slots; i++)
        if (strcmp(s->slots[i].module, module) == 0) return &s->slots[i].a;
    return NULL;
}

int64_t adapter_set_param_count(const adapter_set *s) {
    int64_t n = 0;
    for (int i = 0; i < s->n_slots; i++) n += adapter_param_count(&s->slots[i].a);
    return n;
}

void adapter_set_free(adapter_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_slots; i++) {
        free(s->slots[i].module);
        adapter_free(&s->slots[i].a);
    }
    free(s->slots);
    free(s);
}


static const char *tensor_suffix(adapter_method m, int k) {
    if (m == ADAPTER_SINGLORA) return "singlora.A";
    static const char *lora[] = {"lora.down", "lora.up", "dora.magnitude"};
    return lora[k];
}

void adapter_tensor_name(char *buf, size_t len, const char *module, adapter_method m, int k) {
    snprintf(buf, len, "unet.%s.%s", module, tensor_suffix(m, k));
}

int adapter_bind_shape(adapter *a, const char *module, int d_in, int d_out, const char *path) {
    if (a->method == ADAPTER_SINGLORA) {
        int rows = d_in > d_out ? d_in : d_out;
        if (adapter_rows(a) != rows)
            return sl_error(path, "adapter for '%s' has %d rows in A but the layer (%d x %d) needs max(d_in, d_out) = %d",
                            module, adapter_rows(a), d_out, d_in, rows);
        a->d_in = d_in;
        a->d_out = d_out;
        return 0;
    }
    if (a->d_in != d_in || a->d_out != d_out)
        return sl_error(path, "adapter for '%s' is for a %d x %d layer but the model's is %d x %d", module, a->d_out,
                        a->d_in, d_out, d_in);
    return 0;
}

int adapter_set_save(const adapter_set *s, const char *path) {
    st_writer *w = st_writer_new();
    char name[600], buf[64];
    for (int i = 0; i < s->n_slots; i++) {
        adapter *a = &s->slots[i].a;
        for (int k = 0; k < adapter_tensor_count(s->method); k++) {
            adapter_tensor_ref t = adapter_tensor(a, k);
            adapter_tensor_name(name, sizeof name, s->slots[i].module, s->method, k);
            st_writer_add(w, name, DT_F32, t.ndim, t.shape, *t.data);   // the writer copies the shape
        }
    }
    st_writer_meta(w, "singlora.format", "1");
    st_writer_meta(w, "singlora.method", adapter_method_name(s->method));
    snprintf(buf, sizeof buf, "%d", s->rank);
    st_writer_meta(w, "singlora.rank", buf);
    snprintf(buf, sizeof buf, "%.9g", (double)s->alpha);
    st_writer_meta(w, "singlora.alpha", buf);
    snprintf(buf, sizeof buf, "%lld", (long long)s->ramp_steps);
    st_writer_meta(w, "singlora.ramp_steps", buf);
    snprintf(buf, sizeof buf, "%lld", (long long)s->step);
    st_writer_meta(w, "singlora.step", buf);
    st_writer_meta(w, "singlora.init", s->init);
    st_writer_meta(w, "singlora.targets", s->targets);
    st_writer_meta(w, "singlora.base_model", s->base_model);
    int rc = st_writer_save(w, path);
    st_writer_free(w);
    return rc;
}

// "<file>: adapter metadata <key>", the subject of a value's error
static const char *meta_subject(const st_file *f, const char *key, char *buf, size_t n) {
    snprintf(buf, n, "%s: adapter metadata %s", f->path, key);
    return buf;
}

static int meta_int(const st_file *f, const char *key, long long lo, long long hi, long long *out) {
    const char *v = st_meta(f, key);
    if (!v) return sl_error(f->path, "adapter metadata has no '%s'", key);
    char what[4200];
    return parse_int(meta_subject(f, key, what, sizeof what), v, lo, hi, out);
}

static int meta_str(const st_file *f, const char *key, char *out, size_t len) {
    const char *v = st_meta(f, key);
    if (!v) return sl_error(f->path, "adapter metadata has no '%s'", key);
    if (strlen(v) >= len) return sl_error(f->path, "adapter metadata '%s' is too long", key);
    snprintf(out, len, "%s", v);
    return 0;
}

adapter_set *adapter_set_load(const char *path) {
    st_file *f = st_open(path);
    if (!f) return NULL;
    adapter_set *s = sl_calloc(1, sizeof *s);
    const char *fmt = st_meta(f, "singlora.format");
    const char *method = st_meta(f, "singlora.method");
    long long rank, ramp, step;
    char alpha_s[64];
    if (!fmt) { sl_error(path, "not a singlora adapter (no singlora.format metadata); other tools' LoRA files load with --lora"); goto fail; }
    if (strcmp(fmt, "1") != 0) { sl_error(path, "adapter format '%s' is newer than this singlora understands (1)", fmt); goto fail; }
    if (!method || adapter_method_from_name(method) < 0) { sl_error(path, "adapter metadata singlora.method '%s' is not singlora, lora or dora", method ? method : ""); goto fail; }
    s->method = (adapter_method)adapter_method_from_name(method);
    double alpha;
    char what[4200];
    if (meta_int(f, "singlora.rank", 1, ADAPTER_MAX_RANK, &rank) ||
        meta_int(f, "singlora.ramp_steps", 0, ADAPTER_MAX_STEPS, &ramp) ||
        meta_int(f, "singlora.step", 0, ADAPTER_MAX_STEPS, &step) || meta_str(f, "singlora.alpha", alpha_s, sizeof alpha_s) ||
        parse_double(meta_subject(f, "singlora.alpha", what, sizeof what), alpha_s, 0, ADAPTER_MAX_ALPHA, &alpha) ||
        meta_str(f, "singlora.init", s->init, sizeof s->init) || meta_str(f, "singlora.targets", s->targets, sizeof s->targets) ||
        meta_str(f, "singlora.base_model", s->base_model, sizeof s->base_model))
        goto fail;
    s->alpha = (float)alpha;
    s->rank = (int)rank;
    s->ramp_steps = ramp;
    s->step = step;

    // group tensors by module: every tensor must be unet.<module>.<suffix of this method>
    int nt = adapter_tensor_count(s->method);
    for (int i = 0; i < f->n_entries; i++) {
        const st_entry *e = &f->entries[i];
        const char *suffix = tensor_suffix(s->method, 0);
        size_t nl = strlen(e->name), sl = strlen(suffix);
        if (strncmp(e->name, "unet.", 5) != 0 || nl <= 5 + sl + 1 || strcmp(e->name + nl - sl, suffix) != 0 ||
            e->name[nl - sl - 1] != '.') {
            int known = 0;
            for (int k = 1; k < nt; k++) {
                const char *sf = tensor_suffix(s->method, k);
                size_t l = strlen(sf);
                known |= nl > l && strcmp(e->name + nl - l, sf) == 0 && strncmp(e->name, "unet.", 5) == 0;
            }
            if (!known) { sl_error(path, "tensor '%s' is not a %s adapter tensor (unet.<module>.%s)", e->name, method, suffix); goto fail; }
            continue;
        }
        char module[512];
        snprintf(module, sizeof module, "%.*s", (int)(nl - 5 - sl - 1), e->name + 5);
        if (e->ndim != 2 || e->dt != DT_F32) { sl_error(path, "tensor '%s' must be a 2-D F32 tensor", e->name); goto fail; }
        int d_in, d_out;
        if (s->method == ADAPTER_SINGLORA) {
            if (e->shape[1] != s->rank) { sl_error(path, "tensor '%s' has %lld columns but rank is %d", e->name, (long long)e->shape[1], s->rank); goto fail; }
            // the layer's exact (d_out, d_in) is known only from the model: keep the rows and
            // let attach fill the split; until then treat the layer as square
            d_in = d_out = (int)e->shape[0];
        } else {
            if (e->shape[0] != s->rank) { sl_error(path, "tensor '%s' has %lld rows but rank is %d", e->name, (long long)e->shape[0], s->rank); goto fail; }
            d_in = (int)e->shape[1];
            char up[600];
            snprintf(up, sizeof up, "unet.%s.lora.up", module);
            const st_entry *ue = st_find(f, up);
            if (!ue || ue->ndim != 2 || ue->dt != DT_F32 || ue->shape[1] != s->rank) { sl_error(path, "adapter for '%s' has no valid '%s' (F32, [d_out, %d])", module, up, s->rank); goto fail; }
            d_out = (int)ue->shape[0];
        }
        adapter *a = adapter_set_add(s, module, d_in, d_out);
        for (int k = 0; k < nt; k++) {
            char name[600];
            adapter_tensor_name(name, sizeof name, module, s->method, k);
            adapter_tensor_ref t = adapter_tensor(a, k);
            float *src = st_load_f32(f, name, t.ndim, t.shape);
            if (!src) goto fail;
            memcpy(*t.data, src, sizeof(float) * (size_t)shape_numel(t.ndim, t.shape));
            sl_free_aligned(src);
        }
    }
    if (s->n_slots == 0) { sl_error(path, "adapter holds no tensors"); goto fail; }
    st_close(f);
    return s;
fail:
    st_close(f);
    adapter_set_free(s);
    return NULL;
}

static int hash_cmp(const void *a, const void *b, void *names) {
    const char *const *n = names;
    return strcmp(n[*(const int *)a], n[*(const int *)b]);
}

void model_hash(char out[17], const char *const *names, const int64_t *const *shapes, const int *ndims, int n) {
    int *order = sl_malloc(sizeof(int) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) order[i] = i;
    qsort_r(order, (size_t)n, sizeof(int), hash_cmp, (void *)names);
    uint64_t h = 0xcbf29ce484222325ull;
    for (int k = 0; k < n; k++) {
        int i = order[k];
        char buf[64];
        for (const char *p = names[i]; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
        for (int d = 0; d < ndims[i]; d++) {
            snprintf(buf, sizeof buf, "%c%lld", d ? ',' : ':', (long long)shapes[i][d]);
            for (const char *p = buf; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
        }
        h = (h ^ ';') * 0x100000001b3ull;
    }
    free(order);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}
