#include "engine/train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/train/files.h"

static int64_t checkpoint_number(const char *name) {
    if (strncmp(name, "checkpoint-", 11) != 0) return -1;
    char *end;
    long long n = strtoll(name + 11, &end, 10);
    return *end || end == name + 11 || n < 0 ? -1 : n;
}

typedef struct { int64_t n; char name[64]; } ckpt_item;
static int cmp_items(const void *a, const void *b) {
    int64_t x = ((const ckpt_item *)a)->n, y = ((const ckpt_item *)b)->n;
    return x < y ? -1 : x > y;
}

// The checkpoint-N folders of root, sorted by N (malloc'd; *n items).
static ckpt_item *list_checkpoints(const char *root, int *n) {
    *n = 0;
    DIR *d = opendir(root);
    if (!d) return NULL;
    ckpt_item *items = NULL;
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t k = checkpoint_number(de->d_name);
        if (k < 0 || strlen(de->d_name) >= sizeof items->name) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            ckpt_item *ni = realloc(items, sizeof *ni * (size_t)cap);
            if (!ni) sl_die(root, "out of memory");
            items = ni;
        }
        items[*n].n = k;
        snprintf(items[*n].name, sizeof items->name, "%s", de->d_name);
        (*n)++;
    }
    closedir(d);
    if (*n) qsort(items, (size_t)*n, sizeof *items, cmp_items);
    return items;
}

int checkpoint_save(const char *root, const param_block *pb, const checkpoint_state *st, int keep) {
    char tmp[4200], final_dir[4200], path[4300], buf[64];
    if (train_mkdir_p(root) != 0) return -1;
    snprintf(tmp, sizeof tmp, "%s/.checkpoint-%lld.tmp", root, (long long)st->step);
    snprintf(final_dir, sizeof final_dir, "%s/checkpoint-%lld", root, (long long)st->step);
    if (train_rmtree(tmp) != 0 || train_mkdir_p(tmp) != 0) return -1;
    snprintf(path, sizeof path, "%s/adapter.safetensors", tmp);
    if (adapter_set_save(pb->set, path) != 0) return -1;
    st_writer *w = st_writer_new();
    char (*names)[620] = sl_calloc((size_t)pb->n_entries * 2 + 1, sizeof *names);
    for (int j = 0; j < pb->n_entries; j++) {
        const param_entry *e = &pb->entries[j];
        snprintf(names[2 * j], sizeof names[0], "m.%s", e->name);
        snprintf(names[2 * j + 1], sizeof names[0], "v.%s", e->name);
        st_writer_add(w, names[2 * j], DT_F32, e->ndim, e->shape, pb->m + e->offset);
        st_writer_add(w, names[2 * j + 1], DT_F32, e->ndim, e->shape, pb->v + e->offset);
    }
    st_writer_meta(w, "singlora.checkpoint", "1");
    snprintf(buf, sizeof buf, "%lld", (long long)st->step);
    st_writer_meta(w, "step", buf);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)st->seed);
    st_writer_meta(w, "seed", buf);
    snprintf(buf, sizeof buf, "%.17g", st->loss_ema);
    st_writer_meta(w, "loss_ema", buf);
    st_writer_meta(w, "data_position", "examples are keyed by (seed, step, index): the next step is step + 1");
    snprintf(path, sizeof path, "%s/optimizer.safetensors", tmp);
    int rc = st_writer_save(w, path);
    st_writer_free(w);
    free(names);
    if (rc != 0) return -1;
    if (train_fsync_dir(tmp) != 0 || train_rmtree(final_dir) != 0) return -1;
    if (rename(tmp, final_dir) != 0) return sl_error(final_dir, "cannot rename the checkpoint into place: %s", strerror(errno));
    train_fsync_dir(root);
    if (keep > 0) {
        int n;
        ckpt_item *items = list_checkpoints(root, &n);
        for (int i = 0; i + keep < n; i++) {
            snprintf(path, sizeof path, "%s/%s", root, items[i].name);
            if (train_rmtree(path) != 0) { free(items); return -1; }
        }
        free(items);
    }
    return 0;
}

int checkpoint_latest(const char *root, char *out, size_t len) {
    int n;
    ckpt_item *items = list_checkpoints(root, &n);
    if (!n) { free(items); return 1; }
    snprintf(out, len, "%s/%s", root, items[n - 1].name);
    free(items);
    return 0;
}

int checkpoint_load_optimizer(const char *dir, param_block *pb, checkpoint_state *st) {
    char path[4200];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    st_file *f = st_open(path);
    if (!f) return -1;
    const char *step = st_meta(f, "step"), *seed = st_meta(f, "seed"), *ema = st_meta(f, "loss_ema");
    if (!step || !seed || !st_meta(f, "singlora.checkpoint")) { st_close(f); return sl_error(path, "not a singlora checkpoint (no step/seed metadata)"); }
    st->step = strtoll(step, NULL, 10);
    st->seed = strtoull(seed, NULL, 10);
    st->loss_ema = ema ? strtod(ema, NULL) : 0.0;
    for (int j = 0; j < pb->n_entries; j++) {
        const param_entry *e = &pb->entries[j];
        for (int k = 0; k < 2; k++) {
            char name[620];
            snprintf(name, sizeof name, "%c.%s", k ? 'v' : 'm', e->name);
            const st_entry *t = st_find(f, name);
            if (!t || t->dt != DT_F32 || (int64_t)(t->end - t->begin) != e->count * 4) {
                st_close(f);
                return sl_error(path, "AdamW state '%s' is missing or has another shape than the adapter's", name);
            }
            memcpy((k ? pb->v : pb->m) + e->offset, t->data, sizeof(float) * (size_t)e->count);
        }
    }
    st_close(f);
    return 0;
}
