// Gradient mirrors: a unet_model of the same structure whose parameter pointers are gradient
// buffers for the parameters that train (chosen by name) and NULL for the frozen ones.
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "unet/unet.h"

typedef struct {
    char **items;      // the comma-separated names / patterns
    int *hits;
    int n, all;
} select_ctx;

static int select_visitor(void *ctx, const param_desc *p) {
    select_ctx *s = ctx;
    int take = s->all;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->items[i], p->name) == 0 || fnmatch(s->items[i], p->name, 0) == 0) {
            s->hits[i]++;
            take = 1;
        }
    if (take) {
        int64_t n = shape_numel(p->ndim, p->shape);
        *p->slot = sl_alloc_f32(n);
        memset(*p->slot, 0, sizeof(float) * (size_t)n);
    }
    return 0;
}

unet_model *unet_grads_new(const unet_model *m, const char *params) {
    unet_model *g = unet_model_new(&m->cfg);
    select_ctx s = {0};
    char *list = sl_strdup(params ? params : "");
    if (strcmp(list, "all") == 0) s.all = 1;
    else if (strcmp(list, "none") != 0) {
        s.items = sl_calloc(strlen(list) + 1, sizeof(char *));
        for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            if (*tok) s.items[s.n++] = tok;
        s.hits = sl_calloc((size_t)s.n + 1, sizeof(int));
    }
    unet_walk(g, select_visitor, &s);
    int rc = 0;
    for (int i = 0; i < s.n && rc == 0; i++)
        if (!s.hits[i]) rc = sl_error(NULL, "--params: '%s' is not a parameter of this UNet", s.items[i]);
    free(s.items);
    free(s.hits);
    free(list);
    if (rc) {
        unet_free(g);
        return NULL;
    }
    return g;
}

static int zero_visitor(void *ctx, const param_desc *p) {
    int64_t *count = ctx;
    if (!*p->slot) return 0;
    int64_t n = shape_numel(p->ndim, p->shape);
    if (count) *count += n;
    else memset(*p->slot, 0, sizeof(float) * (size_t)n);
    return 0;
}

void unet_grads_zero(unet_model *g) { unet_walk(g, zero_visitor, NULL); }

int64_t unet_grads_count(unet_model *g) {
    int64_t n = 0;
    unet_walk(g, zero_visitor, &n);
    return n;
}
