#include "engine/io/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/core/error.h"

static int stored_name(weight_loader *wl, const char *name, char *out, size_t len) {
    char mapped[512];
    if (wl->map_ctx || wl->map) {
        int rc = wl->map_ctx ? wl->map_ctx(name, mapped, sizeof mapped, wl->ctx) : wl->map(name, mapped, sizeof mapped);
        if (rc != 0)
            return sl_error(wl->file->path, "no stored name for tensor '%s' in this layout", name);
    } else {
        snprintf(mapped, sizeof mapped, "%s", name);
    }
    snprintf(out, len, "%s%s", wl->prefix ? wl->prefix : "", mapped);
    return 0;
}

static int squeezed_equal(const st_entry *e, int ndim, const int64_t *shape) {
    // compare shapes ignoring trailing 1s, so (C, C, 1, 1) == (C, C)
    int a = e->ndim, b = ndim;
    while (a > 0 && e->shape[a - 1] == 1) a--;
    while (b > 0 && shape[b - 1] == 1) b--;
    if (a != b) return 0;
    for (int i = 0; i < a; i++)
        if (e->shape[i] != shape[i]) return 0;
    return 1;
}

// Once a tensor is copied out, the pages of the mapped file it covered are dropped from our
// resident set (they stay in the page cache; a second read faults them back in), so peak memory
// while loading is the model as it is kept, not that plus the file.
static void drop_mapped_pages(const void *data, size_t bytes) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)data + page - 1) & ~(page - 1);   // whole pages inside the range
    uintptr_t b = ((uintptr_t)data + bytes) & ~(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

float *weights_load(weight_loader *wl, const char *name, int ndim, const int64_t *shape) {
    char full[640];
    if (stored_name(wl, name, full, sizeof full) != 0) return NULL;
    st_entry *e = (st_entry *)st_find(wl->file, full);
    if (!e) {
        sl_error(wl->file->path, "missing tensor '%s'%s%s%s", full, strcmp(full, name) ? " (for " : "",
                 strcmp(full, name) ? name : "", strcmp(full, name) ? ")" : "");
        return NULL;
    }
    if (!squeezed_equal(e, ndim, shape)) {
        char a[128], b[128];
        sl_error(wl->file->path, "tensor '%s' has shape %s, but the config needs %s", full,
                 shape_str(a, sizeof a, e->ndim, e->shape), shape_str(b, sizeof b, ndim, shape));
        return NULL;
    }
    float *w = st_load_f32(wl->file, full, -1, NULL);
    if (w && e->end > e->begin) drop_mapped_pages(e->data, (size_t)(e->end - e->begin));
    return w;
}

float *weights_load_rows(weight_loader *wl, const char *stored, int row0, int rows, int cols) {
    char full[640];
    snprintf(full, sizeof full, "%s%s", wl->prefix ? wl->prefix : "", stored);
    st_entry *e = (st_entry *)st_find(wl->file, full);
    if (!e) { sl_error(wl->file->path, "missing tensor '%s'", full); return NULL; }
    int64_t ecols = e->ndim == 2 ? e->shape[1] : 1;
    if ((e->ndim != 1 && e->ndim != 2) || ecols != cols || e->shape[0] < (int64_t)row0 + rows || !dtype_is_float(e->dt)) {
        char a[128];
        sl_error(wl->file->path, "tensor '%s' has shape %s %s; expected at least %d rows of %d", full,
                 shape_str(a, sizeof a, e->ndim, e->shape), dtype_name(e->dt), row0 + rows, cols);
        return NULL;
    }
    size_t es = dtype_size(e->dt);
    float *out = sl_alloc_f32((int64_t)rows * cols);
    dtype_to_f32_n(out, (const char *)e->data + (size_t)row0 * (size_t)cols * es, e->dt, (size_t)rows * (size_t)cols);
    if (st_check_finite(wl->file, full, out, (int64_t)rows * cols) != 0) { sl_free_aligned(out); return NULL; }
    drop_mapped_pages((const char *)e->data + (size_t)row0 * (size_t)cols * es, (size_t)rows * (size_t)cols * es);
    e->used = 1;
    return out;
}

int weights_check_unused(weight_loader *wl, const char *const *ignore) {
    size_t plen = wl->prefix ? strlen(wl->prefix) : 0;
    int n = 0;
    char list[600] = "";
    for (int i = 0; i < wl->file->n_entries; i++) {
        const st_entry *e = &wl->file->entries[i];
        if (e->used || (plen && strncmp(e->name, wl->prefix, plen) != 0)) continue;
        const char *rest = e->name + plen;
        int skip = 0;
        for (const char *const *ig = ignore; ig && *ig && !skip; ig++) skip = strncmp(rest, *ig, strlen(*ig)) == 0;
        if (skip) continue;
        if (n < 3) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s'%s'", n ? ", " : "", e->name);
        }
        n++;
    }
    if (n) return sl_error(wl->file->path, "%d unexpected tensor%s the model does not use: %s%s", n, n > 1 ? "s" : "", list, n > 3 ? ", ..." : "");
    return 0;
}
