#include "engine/io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/io/atomic_file.h"
#include "engine/core/error.h"
#include "engine/core/strmap.h"
#include "engine/core/utf8.h"

// ---------------------------------------------------------------- reader

static int entry_cmp_name(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

static int entry_cmp_begin(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

// A JSON number that is a non-negative integer representable exactly (< 2^53).
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int parse_entry(const char *path, const cJSON *item, st_entry *e, size_t data_size) {
    const char *name = item->string;
    if (!cJSON_IsObject(item)) return sl_error(path, "tensor '%s': header entry is not an object", name);
    const cJSON *jdt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *jshape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *joff = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(jdt)) return sl_error(path, "tensor '%s': missing or non-string dtype", name);
    int dt = dtype_from_name(jdt->valuestring);
    if (dt < 0) return sl_error(path, "tensor '%s': unknown dtype '%s'", name, jdt->valuestring);
    e->dt = (dtype)dt;
    if (!cJSON_IsArray(jshape)) return sl_error(path, "tensor '%s': missing or non-array shape", name);
    int nd = cJSON_GetArraySize(jshape);
    if (nd > TENSOR_MAX_DIMS) return sl_error(path, "tensor '%s': %d dims (max %d)", name, nd, TENSOR_MAX_DIMS);
    e->ndim = nd;
    uint64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (!json_uint(cJSON_GetArrayItem(jshape, i), &d))
            return sl_error(path, "tensor '%s': shape entry %d is not a non-negative integer", name, i);
        if (d != 0 && numel > UINT64_MAX / 8 / d) return sl_error(path, "tensor '%s': shape is too large", name);
        numel *= d;
        e->shape[i] = (int64_t)d;
    }
    if (!cJSON_IsArray(joff) || cJSON_GetArraySize(joff) != 2)
        return sl_error(path, "tensor '%s': data_offsets must be an array of two integers", name);
    uint64_t b, en;
    if (!json_uint(cJSON_GetArrayItem(joff, 0), &b) || !json_uint(cJSON_GetArrayItem(joff, 1), &en))
        return sl_error(path, "tensor '%s': data_offsets must be non-negative integers", name);
    if (en < b) return sl_error(path, "tensor '%s': data_offsets [%llu, %llu] end before they begin", name,
                                (unsigned long long)b, (unsigned long long)en);
    if (en > data_size)
        return sl_error(path, "tensor '%s': data_offsets [%llu, %llu] run past the end of the data (%zu bytes)",
                        name, (unsigned long long)b, (unsigned long long)en, data_size);
    uint64_t want = numel * dtype_size(e->dt);
    if (en - b != want)
        return sl_error(path, "tensor '%s': shape and dtype %s need %llu bytes but data_offsets give %llu", name,
                        dtype_name(e->dt), (unsigned long long)want, (unsigned long long)(en - b));
    e->begin = (size_t)b;
    e->end = (size_t)en;
    return 0;
}

static int parse_header(st_file *f, const char *json, size_t len, size_t data_size, const unsigned char *data) {
    const char *path = f->path;
    size_t bad = utf8_invalid_at(json, len);
    if (bad < len) return sl_error(path, "header is not valid UTF-8 (byte %zu)", bad + 8);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) return sl_error(path, "header is not valid JSON (near byte %ld)", (long)((end ? end : json) - json) + 8);
    // safetensors pads the header with spaces; anything else after the object is an error
    for (const char *p = end; p < json + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
            cJSON_Delete(root);
            return sl_error(path, "header has trailing bytes after the JSON object");
        }
    if (!cJSON_IsObject(root)) { cJSON_Delete(root); return sl_error(path, "header is not a JSON object"); }

    int n = cJSON_GetArraySize(root);
    f->entries = sl_calloc((size_t)n, sizeof(st_entry));
    int rc = 0;
    for (cJSON *it = root->child; it && rc == 0; it = it->next) {
        if (!it->string || !it->string[0]) { rc = sl_error(path, "header has an entry with an empty name"); break; }
        if (strcmp(it->string, "__metadata__") == 0) {
            if (f->meta_keys) { rc = sl_error(path, "header has __metadata__ twice"); break; }
            if (!cJSON_IsObject(it)) { rc = sl_error(path, "__metadata__ is not an object"); break; }
            int m = cJSON_GetArraySize(it);
            f->meta_keys = sl_calloc((size_t)m, sizeof(char *));
            f->meta_values = sl_calloc((size_t)m, sizeof(char *));
            for (cJSON *kv = it->child; kv; kv = kv->next) {
                if (!cJSON_IsString(kv)) { rc = sl_error(path, "__metadata__ value for '%s' is not a string", kv->string); break; }
                f->meta_keys[f->n_meta] = sl_strdup(kv->string);
                f->meta_values[f->n_meta++] = sl_strdup(kv->valuestring);
            }
            continue;
        }
        st_entry *e = &f->entries[f->n_entries];
        if (parse_entry(path, it, e, data_size) != 0) { rc = -1; break; }
        e->name = sl_strdup(it->string);
        e->data = data + e->begin;
        f->n_entries++;
    }
    cJSON_Delete(root);
    if (rc) return rc;

    qsort(f->entries, (size_t)f->n_entries, sizeof(st_entry), entry_cmp_name);
    for (int i = 1; i < f->n_entries; i++)
        if (strcmp(f->entries[i - 1].name, f->entries[i].name) == 0)
            return sl_error(path, "tensor '%s' appears twice in the header", f->entries[i].name);
    // As the format's reference reader requires: in offset order the tensors' bytes follow one
    // another with no overlap and no gap, and they cover the data section to its last byte
    // (zero-length tensors take no bytes and sit anywhere).
    const st_entry **by_begin = sl_malloc(sizeof(st_entry *) * (size_t)(f->n_entries + 1));
    int n_bytes = 0;
    for (int i = 0; i < f->n_entries; i++)
        if (f->entries[i].end > f->entries[i].begin) by_begin[n_bytes++] = &f->entries[i];
    qsort(by_begin, (size_t)n_bytes, sizeof(st_entry *), entry_cmp_begin);
    size_t covered = 0;   // bytes [0, covered) belong to the tensors so far
    for (int i = 0; i < n_bytes && rc == 0; i++) {
        const st_entry *a = i ? by_begin[i - 1] : NULL, *b = by_begin[i];
        if (a && b->begin < covered)
            rc = sl_error(path, "tensors '%s' and '%s' overlap (bytes %zu-%zu and %zu-%zu)", a->name, b->name,
                          a->begin, a->end, b->begin, b->end);
        else if (b->begin > covered)
            rc = sl_error(path, "bytes %zu-%zu of the data section belong to no tensor (a gap before '%s')", covered,
                          b->begin, b->name);
        covered = b->end;
    }
    if (rc == 0 && covered != data_size)
        rc = sl_error(path, "%zu trailing bytes after the last tensor's data (the data section is %zu bytes)",
                      data_size - covered, data_size);
    free(by_begin);
    return rc;
}

st_file *st_open(const char *path) {
    size_t plen = strlen(path);
    int pickle_name = (plen >= 5 && strcmp(path + plen - 5, ".ckpt") == 0) ||
                      (plen >= 3 && strcmp(path + plen - 3, ".pt") == 0) ||
                      (plen >= 4 && strcmp(path + plen - 4, ".pth") == 0);
    int fd = open(path, O_RDONLY);
    if (fd < 0) { sl_error(path, "cannot open: %s", strerror(errno)); return NULL; }
    struct stat stbuf;
    if (fstat(fd, &stbuf) != 0 || !S_ISREG(stbuf.st_mode)) {
        close(fd);
        sl_error(path, "not a regular file");
        return NULL;
    }
    size_t size = (size_t)stbuf.st_size;
    unsigned char head[9];
    ssize_t got = size >= 9 ? pread(fd, head, 9, 0) : size >= 8 ? pread(fd, head, 8, 0) : -1;
    // a safetensors header length can start with byte 0x80 too (e.g. 3968 = 0x0f80): a JSON '{' right
    // after the 8 length bytes means safetensors, not a pickle (whose second byte is the protocol)
    int json_after = got == 9 && head[8] == '{';
    if (pickle_name || (got >= 8 && !json_after && (head[0] == 0x80 || (head[0] == 'P' && head[1] == 'K')))) {
        close(fd);
        sl_error(path, "this is a PyTorch pickle checkpoint (.ckpt/.pt), which can run arbitrary code when loaded; "
                       "singlora reads only .safetensors - convert it first, e.g. with diffusers' "
                       "convert_original_stable_diffusion_to_diffusers.py --to_safetensors, or "
                       "safetensors.torch.save_file(torch.load(f, weights_only=True)['state_dict'], out)");
        return NULL;
    }
    if (size < 8) { close(fd); sl_error(path, "truncated: %zu bytes, too short for a safetensors header", size); return NULL; }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | head[i];
    if (hlen > ST_MAX_HEADER) {
        close(fd);
        sl_error(path, "header length %llu is larger than the 100 MB limit (not a safetensors file, or corrupt)",
                 (unsigned long long)hlen);
        return NULL;
    }
    if (hlen > size - 8) {
        close(fd);
        sl_error(path, "truncated: header length %llu runs past the end of the file (%zu bytes)",
                 (unsigned long long)hlen, size);
        return NULL;
    }
    if (hlen < 2) { close(fd); sl_error(path, "header of %llu bytes cannot hold a JSON object", (unsigned long long)hlen); return NULL; }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) { sl_error(path, "cannot map the file: %s", strerror(errno)); return NULL; }

    st_file *f = sl_calloc(1, sizeof *f);
    f->path = sl_strdup(path);
    f->map = map;
    f->map_size = size;
    const unsigned char *base = map;
    if (parse_header(f, (const char *)base + 8, (size_t)hlen, size - 8 - (size_t)hlen, base + 8 + hlen) != 0) {
        st_close(f);
        return NULL;
    }
    return f;
}

void st_close(st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_entries; i++) free(f->entries[i].name);
    for (int i = 0; i < f->n_meta; i++) { free(f->meta_keys[i]); free(f->meta_values[i]); }
    free(f->entries);
    free(f->meta_keys);
    free(f->meta_values);
    if (f->map) munmap(f->map, f->map_size);
    free(f->path);
    free(f);
}

const st_entry *st_find(const st_file *f, const char *name) {
    st_entry key = {.name = (char *)name};
    return bsearch(&key, f->entries, (size_t)f->n_entries, sizeof(st_entry), entry_cmp_name);
}

const char *st_meta(const st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

tensor st_tensor_view(const st_entry *e) { return tensor_view(e->dt, e->ndim, e->shape, (void *)e->data); }

int st_check_finite(const st_file *f, const char *name, const float *x, int64_t n) {
    int64_t i = f32_first_nonfinite(x, n);
    if (i < 0) return 0;
    return sl_error(f->path, "tensor '%s' holds a non-finite value (%g at index %lld)", name, (double)x[i], (long long)i);
}

float *st_load_f32(st_file *f, const char *name, int ndim, const int64_t *shape) {
    st_entry *e = (st_entry *)st_find(f, name);
    if (!e) { sl_error(f->path, "missing tensor '%s'", name); return NULL; }
    if (ndim >= 0) {
        int ok = e->ndim == ndim;
        for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || shape[i] == e->shape[i];
        if (!ok) {
            char a[128], b[128];
            sl_error(f->path, "tensor '%s' has shape %s, expected %s", name, shape_str(a, sizeof a, e->ndim, e->shape),
                     shape_str(b, sizeof b, ndim, shape));
            return NULL;
        }
    }
    if (!dtype_is_float(e->dt)) { sl_error(f->path, "tensor '%s' has dtype %s, expected a float type", name, dtype_name(e->dt)); return NULL; }
    int64_t n = shape_numel(e->ndim, e->shape);
    float *out = sl_alloc_f32(n);
    dtype_to_f32_n(out, e->data, e->dt, (size_t)n);
    if (st_check_finite(f, name, out, n) != 0) { sl_free_aligned(out); return NULL; }
    e->used = 1;
    return out;
}

// ---------------------------------------------------------------- writer

typedef struct {
    char *name;
    dtype dt;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    const void *data;
} writer_tensor;

struct st_writer {
    writer_tensor *t;
    int n, cap;
    cJSON *meta;
};

st_writer *st_writer_new(void) {
    st_writer *w = sl_calloc(1, sizeof *w);
    w->meta = cJSON_CreateObject();
    return w;
}

void st_writer_add(st_writer *w, const char *name, dtype dt, int ndim, const int64_t *shape, const void *data) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->t = sl_realloc(w->t, sizeof(writer_tensor) * (size_t)w->cap);
    }
    writer_tensor *t = &w->t[w->n++];
    t->name = sl_strdup(name);
    t->dt = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
}

// Widest elements first (stable otherwise), as Python's safetensors orders them: with the data
// section 8-byte aligned, every tensor then starts aligned to its element size.
static void widest_first(st_writer *w) {
    writer_tensor *sorted = sl_malloc(sizeof(writer_tensor) * (size_t)(w->n ? w->n : 1));
    int k = 0;
    for (size_t size = 8; size >= 1; size /= 2)
        for (int i = 0; i < w->n; i++)
            if (dtype_size(w->t[i].dt) == size) sorted[k++] = w->t[i];
    if (k != w->n) sl_die(NULL, "internal: a tensor's element size is not 1, 2, 4 or 8 bytes");
    memcpy(w->t, sorted, sizeof(writer_tensor) * (size_t)k);
    free(sorted);
}

void st_writer_meta(st_writer *w, const char *key, const char *value) {
    cJSON_DeleteItemFromObjectCaseSensitive(w->meta, key);
    cJSON_AddStringToObject(w->meta, key, value);
}

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    free(w->t);
    cJSON_Delete(w->meta);
    free(w);
}

int st_writer_save(st_writer *w, const char *path) {
    widest_first(w);
    cJSON *root = cJSON_CreateObject();
    if (cJSON_GetArraySize(w->meta) > 0) cJSON_AddItemToObject(root, "__metadata__", cJSON_Duplicate(w->meta, 1));
    size_t off = 0;
    strmap names;   // a hash, so that files of 10^5 tensors save in linear time
    strmap_init(&names, (size_t)w->n);
    for (int i = 0; i < w->n; i++) {
        writer_tensor *t = &w->t[i];
        if (strmap_put(&names, t->name, i) >= 0) {
            strmap_free(&names);
            cJSON_Delete(root);
            return sl_error(path, "tensor '%s' added twice", t->name);
        }
        size_t nb = (size_t)shape_numel(t->ndim, t->shape) * dtype_size(t->dt);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "dtype", dtype_name(t->dt));
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + nb)));
        cJSON_AddItemToObject(root, t->name, e);
        off += nb;
    }
    strmap_free(&names);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) return sl_error(path, "out of memory building the header");
    size_t jlen = strlen(json);
    size_t hlen = (jlen + 7) & ~(size_t)7;   // the data section starts 8-byte aligned
    char *header = sl_malloc(8 + hlen);
    for (int i = 0; i < 8; i++) header[i] = (char)((uint64_t)hlen >> (8 * i));
    memcpy(header + 8, json, jlen);
    memset(header + 8 + jlen, ' ', hlen - jlen);
    free(json);

    // tensor data follows the header in the order the tensors were added
    int nb = w->n + 1;
    const void **bufs = sl_malloc(sizeof(void *) * (size_t)nb);
    size_t *lens = sl_malloc(sizeof(size_t) * (size_t)nb);
    bufs[0] = header;
    lens[0] = 8 + hlen;
    for (int i = 0; i < w->n; i++) {
        bufs[i + 1] = w->t[i].data;
        lens[i + 1] = (size_t)shape_numel(w->t[i].ndim, w->t[i].shape) * dtype_size(w->t[i].dt);
    }
    int rc = atomic_write(path, bufs, lens, nb);
    free(bufs);
    free(lens);
    free(header);
    return rc;
}
