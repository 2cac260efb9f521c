// The UNet's block structure and its parameter list: the one place that knows every tensor's
// diffusers name, shape and field. Loading, init, counting and freeing all walk it.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "unet/unet.h"

static void tblock_init(unet_tblock *tb, int C, int D, int heads) {
    tb->C = C;
    tb->D = D;
    tb->heads = heads;
    tb->head_dim = C / heads;
    tb->ff_inner = 4 * C;
}

static void transformer_init(unet_transformer *tr, const unet_config *cfg, int C, int heads, int n_blocks) {
    tr->C = C;
    tr->groups = cfg->norm_num_groups;
    tr->n_blocks = n_blocks;
    tr->linear_proj = cfg->use_linear_projection;
    tr->blocks = sl_calloc((size_t)n_blocks, sizeof *tr->blocks);
    for (int k = 0; k < n_blocks; k++) tblock_init(&tr->blocks[k], C, cfg->cross_attention_dim, heads);
}

static void resnet_init(resnet_block *rb, const unet_config *cfg, int C_in, int C_out, float scale) {
    memset(rb, 0, sizeof *rb);
    rb->C_in = C_in;
    rb->C_out = C_out;
    rb->groups = cfg->norm_num_groups;
    rb->temb_dim = cfg->time_embed_dim;
    rb->eps = cfg->norm_eps;
    rb->output_scale_factor = scale;
}

static void block_init(unet_block *b, const unet_config *cfg, int lv, int n_res, int has_attn, int has_resample) {
    b->n_res = n_res;
    b->has_attn = has_attn;
    b->has_resample = has_resample;
    b->C_out = cfg->block_out_channels[lv];
    b->heads = cfg->heads[lv];
    b->res = sl_calloc((size_t)n_res, sizeof *b->res);
    b->res_ad = sl_calloc((size_t)n_res, sizeof *b->res_ad);
    if (has_attn) {
        b->attn = sl_calloc((size_t)n_res, sizeof *b->attn);
        for (int j = 0; j < n_res; j++) transformer_init(&b->attn[j], cfg, b->C_out, b->heads, cfg->transformer_layers[lv]);
    }
}

unet_model *unet_model_new(const unet_config *cfg) {
    unet_model *m = sl_calloc(1, sizeof *m);
    m->cfg = *cfg;
    m->adapter_scale = 1.0f;
    int n = cfg->n_levels, L = cfg->layers_per_block;
    const int *boc = cfg->block_out_channels;
    float rs = cfg->resnet_out_scale_factor;
    for (int i = 0; i < n; i++) {   // down block i: boc[i-1] -> boc[i]
        unet_block *b = &m->down[i];
        block_init(b, cfg, i, L, cfg->down_attn[i], i < n - 1);
        for (int j = 0; j < L; j++) resnet_init(&b->res[j], cfg, j == 0 ? boc[i > 0 ? i - 1 : 0] : boc[i], boc[i], rs);
    }
    resnet_init(&m->mid_res[0], cfg, boc[n - 1], boc[n - 1], cfg->mid_block_scale_factor);
    resnet_init(&m->mid_res[1], cfg, boc[n - 1], boc[n - 1], cfg->mid_block_scale_factor);
    transformer_init(&m->mid_attn, cfg, boc[n - 1], cfg->heads[n - 1], cfg->transformer_layers[n - 1]);
    for (int i = 0; i < n; i++) {   // up block i at level lv; resnet j takes [h, skip] channels
        int lv = unet_up_level(cfg, i);
        unet_block *b = &m->up[i];
        block_init(b, cfg, lv, L + 1, cfg->up_attn[i], i < n - 1);
        int prev = boc[i == 0 ? n - 1 : lv + 1];   // the previous up block's output
        int below = boc[lv > 0 ? lv - 1 : 0];       // channels of the skip the last resnet takes
        for (int j = 0; j <= L; j++) {
            int skip = j == L ? below : boc[lv];
            resnet_init(&b->res[j], cfg, (j == 0 ? prev : boc[lv]) + skip, boc[lv], rs);
        }
    }
    return m;
}

// ---------------------------------------------------------------- the walk

// One walk serves both enumerations: parameters (fn) and adaptable modules (lfn).
typedef struct {
    param_visitor fn;
    unet_linear_visitor lfn;
    void *ctx;
    int rc;
} walker;

static void visit(walker *w, float **slot, param_kind kind, int64_t fan_in, int ndim, int64_t d0, int64_t d1,
                  int64_t d2, int64_t d3, const char *fmt, ...) __attribute__((format(printf, 10, 11)));
static void visit(walker *w, float **slot, param_kind kind, int64_t fan_in, int ndim, int64_t d0, int64_t d1,
                  int64_t d2, int64_t d3, const char *fmt, ...) {
    if (w->rc || !w->fn) return;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    param_desc p = {.name = name, .ndim = ndim, .shape = {d0, d1, d2, d3}, .kind = kind, .fan_in = fan_in, .slot = slot};
    w->rc = w->fn(w->ctx, &p);
}

// weight (d_out, d_in) [+ bias (d_out)] of a Linear
static void linear_params(walker *w, float **wt, float **b, int d_out, int d_in, const char *pre, const char *layer) {
    visit(w, wt, PARAM_WEIGHT, d_in, 2, d_out, d_in, 0, 0, "%s.%s.weight", pre, layer);
    if (b) visit(w, b, PARAM_BIAS, d_in, 1, d_out, 0, 0, 0, "%s.%s.bias", pre, layer);
}

// A Linear module adapters can target: its parameters (as linear_params, or a 1×1 conv's when
// conv) and the module itself for unet_walk_linears.
static void module_linear(walker *w, float **wt, float **b, adapter **ad, int d_out, int d_in, int conv, const char *pre,
                          const char *layer);

static void conv_params(walker *w, float **wt, float **b, int C_out, int C_in, int k, const char *pre, const char *layer) {
    int64_t fan = (int64_t)C_in * k * k;
    visit(w, wt, PARAM_WEIGHT, fan, 4, C_out, C_in, k, k, "%s%s%s.weight", pre, *pre ? "." : "", layer);
    visit(w, b, PARAM_BIAS, fan, 1, C_out, 0, 0, 0, "%s%s%s.bias", pre, *pre ? "." : "", layer);
}

static void visit_module(walker *w, float **wt, float **b, adapter **ad, int d_out, int d_in, int kernel, const char *pre,
                         const char *layer) {
    if (w->rc || !w->lfn) return;
    char path[320];
    snprintf(path, sizeof path, "%.280s.%.32s", pre, layer);
    unet_linear l = {.path = path, .d_in = d_in, .d_out = d_out, .kernel = kernel, .weight = wt, .bias = b, .adapter = ad};
    w->rc = w->lfn(w->ctx, &l);
}

static void module_linear(walker *w, float **wt, float **b, adapter **ad, int d_out, int d_in, int conv, const char *pre,
                          const char *layer) {
    if (conv) conv_params(w, wt, b, d_out, d_in, 1, pre, layer);
    else linear_params(w, wt, b, d_out, d_in, pre, layer);
    visit_module(w, wt, b, ad, d_out, d_in, 0, pre, layer);
}

// A convolution adapters can target (LoCon): its parameters and the module, W (C_out, C_in·k·k).
static void module_conv(walker *w, float **wt, float **b, adapter **ad, int C_out, int C_in, int k, const char *pre,
                        const char *layer) {
    conv_params(w, wt, b, C_out, C_in, k, pre, layer);
    visit_module(w, wt, b, ad, C_out, C_in * k * k, k, pre, layer);
}

static void norm_params(walker *w, float **g, float **b, int C, const char *pre, const char *layer) {
    visit(w, g, PARAM_NORM_WEIGHT, 0, 1, C, 0, 0, 0, "%s%s%s.weight", pre, *pre ? "." : "", layer);
    visit(w, b, PARAM_NORM_BIAS, 0, 1, C, 0, 0, 0, "%s%s%s.bias", pre, *pre ? "." : "", layer);
}

static void resnet_params(walker *w, resnet_block *r, unet_resnet_adapters *ad, const char *pre) {
    norm_params(w, &r->norm1_w, &r->norm1_b, r->C_in, pre, "norm1");
    module_conv(w, &r->conv1_w, &r->conv1_b, &ad->conv[RES_CONV1], r->C_out, r->C_in, 3, pre, "conv1");
    linear_params(w, &r->temb_w, &r->temb_b, r->C_out, r->temb_dim, pre, "time_emb_proj");
    norm_params(w, &r->norm2_w, &r->norm2_b, r->C_out, pre, "norm2");
    module_conv(w, &r->conv2_w, &r->conv2_b, &ad->conv[RES_CONV2], r->C_out, r->C_out, 3, pre, "conv2");
    if (r->C_in != r->C_out)
        module_conv(w, &r->skip_w, &r->skip_b, &ad->conv[RES_CONV_SHORTCUT], r->C_out, r->C_in, 1, pre, "conv_shortcut");
}

static void tblock_params(walker *w, unet_tblock *t, const char *pre) {
    int C = t->C, D = t->D, F = t->ff_inner;
    char a[300];
    norm_params(w, &t->norm1_w, &t->norm1_b, C, pre, "norm1");
    snprintf(a, sizeof a, "%.240s.attn1", pre);
    module_linear(w, &t->attn1_q, NULL, &t->ad[TB_ATTN1_Q], C, C, 0, a, "to_q");
    module_linear(w, &t->attn1_k, NULL, &t->ad[TB_ATTN1_K], C, C, 0, a, "to_k");
    module_linear(w, &t->attn1_v, NULL, &t->ad[TB_ATTN1_V], C, C, 0, a, "to_v");
    module_linear(w, &t->attn1_out_w, &t->attn1_out_b, &t->ad[TB_ATTN1_OUT], C, C, 0, a, "to_out.0");
    norm_params(w, &t->norm2_w, &t->norm2_b, C, pre, "norm2");
    snprintf(a, sizeof a, "%.240s.attn2", pre);
    module_linear(w, &t->attn2_q, NULL, &t->ad[TB_ATTN2_Q], C, C, 0, a, "to_q");
    module_linear(w, &t->attn2_k, NULL, &t->ad[TB_ATTN2_K], C, D, 0, a, "to_k");
    module_linear(w, &t->attn2_v, NULL, &t->ad[TB_ATTN2_V], C, D, 0, a, "to_v");
    module_linear(w, &t->attn2_out_w, &t->attn2_out_b, &t->ad[TB_ATTN2_OUT], C, C, 0, a, "to_out.0");
    norm_params(w, &t->norm3_w, &t->norm3_b, C, pre, "norm3");
    module_linear(w, &t->ff1_w, &t->ff1_b, &t->ad[TB_FF1], 2 * F, C, 0, pre, "ff.net.0.proj");
    module_linear(w, &t->ff2_w, &t->ff2_b, &t->ad[TB_FF2], C, F, 0, pre, "ff.net.2");
}

static void transformer_params(walker *w, unet_transformer *tr, const char *pre) {
    int C = tr->C;
    norm_params(w, &tr->norm_w, &tr->norm_b, C, pre, "norm");
    // proj_in/proj_out: 1×1 convs (C, C, 1, 1) in SD 1.x, Linears (C, C) with use_linear_projection
    module_linear(w, &tr->proj_in_w, &tr->proj_in_b, &tr->proj_in_ad, C, C, !tr->linear_proj, pre, "proj_in");
    char b[300];
    for (int k = 0; k < tr->n_blocks; k++) {
        snprintf(b, sizeof b, "%.200s.transformer_blocks.%d", pre, k);
        tblock_params(w, &tr->blocks[k], b);
    }
    module_linear(w, &tr->proj_out_w, &tr->proj_out_b, &tr->proj_out_ad, C, C, !tr->linear_proj, pre, "proj_out");
}

static void block_params(walker *w, unet_block *b, const char *kind, int i) {
    char pre[128];
    for (int j = 0; j < b->n_res; j++) {
        snprintf(pre, sizeof pre, "%s_blocks.%d.resnets.%d", kind, i, j);
        resnet_params(w, &b->res[j], &b->res_ad[j], pre);
        if (b->has_attn) {
            snprintf(pre, sizeof pre, "%s_blocks.%d.attentions.%d", kind, i, j);
            transformer_params(w, &b->attn[j], pre);
        }
    }
    if (b->has_resample) {
        snprintf(pre, sizeof pre, "%s_blocks.%d.%s.0", kind, i, kind[0] == 'd' ? "downsamplers" : "upsamplers");
        module_conv(w, &b->resample_w, &b->resample_b, &b->resample_ad, b->C_out, b->C_out, 3, pre, "conv");
    }
}

static int walk(unet_model *m, walker w) {
    const unet_config *c = &m->cfg;
    int C0 = c->block_out_channels[0], T = c->time_embed_dim;
    linear_params(&w, &m->time_w1, &m->time_b1, T, C0, "time_embedding", "linear_1");
    linear_params(&w, &m->time_w2, &m->time_b2, T, T, "time_embedding", "linear_2");
    conv_params(&w, &m->conv_in_w, &m->conv_in_b, C0, c->in_channels, c->conv_in_kernel, "", "conv_in");
    for (int i = 0; i < c->n_levels; i++) block_params(&w, &m->down[i], "down", i);
    resnet_params(&w, &m->mid_res[0], &m->mid_res_ad[0], "mid_block.resnets.0");
    transformer_params(&w, &m->mid_attn, "mid_block.attentions.0");
    resnet_params(&w, &m->mid_res[1], &m->mid_res_ad[1], "mid_block.resnets.1");
    for (int i = 0; i < c->n_levels; i++) block_params(&w, &m->up[i], "up", i);
    norm_params(&w, &m->norm_out_w, &m->norm_out_b, C0, "", "conv_norm_out");
    conv_params(&w, &m->conv_out_w, &m->conv_out_b, c->out_channels, C0, c->conv_out_kernel, "", "conv_out");
    return w.rc;
}

int unet_walk(unet_model *m, param_visitor fn, void *ctx) { return walk(m, (walker){fn, NULL, ctx, 0}); }

int unet_walk_linears(unet_model *m, unet_linear_visitor fn, void *ctx) { return walk(m, (walker){NULL, fn, ctx, 0}); }

// ---------------------------------------------------------------- freeing, enumeration

static void transformer_free(unet_transformer *tr) { free(tr->blocks); }

static void block_free(unet_block *b) {
    if (b->attn)
        for (int j = 0; j < b->n_res; j++) transformer_free(&b->attn[j]);
    free(b->attn);
    free(b->res);
    free(b->res_ad);
}

void unet_free(unet_model *m) {
    if (!m) return;
    unet_walk(m, param_free_visitor, NULL);
    for (int i = 0; i < m->cfg.n_levels; i++) {
        block_free(&m->down[i]);
        block_free(&m->up[i]);
    }
    transformer_free(&m->mid_attn);
    free(m);
}

int unet_enumerate(const unet_config *cfg, param_visitor fn, void *ctx) {
    unet_model *m = unet_model_new(cfg);
    int rc = unet_walk(m, fn, ctx);
    unet_free(m);
    return rc;
}

// ---------------------------------------------------------------- model hash

typedef struct {
    char **names;
    int64_t *shapes;   // 4 per tensor
    int *ndims;
    int n, cap;
} hash_list;

static int hash_visitor(void *ctx, const param_desc *p) {
    hash_list *h = ctx;
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 1024;
        h->names = sl_realloc(h->names, sizeof(char *) * (size_t)h->cap);
        h->shapes = sl_realloc(h->shapes, sizeof(int64_t) * 4 * (size_t)h->cap);
        h->ndims = sl_realloc(h->ndims, sizeof(int) * (size_t)h->cap);
    }
    h->names[h->n] = sl_strdup(p->name);
    memcpy(h->shapes + 4 * h->n, p->shape, sizeof(int64_t) * 4);
    h->ndims[h->n++] = p->ndim;
    return 0;
}

void unet_model_hash(unet_model *m, char out[17]) {
    hash_list h = {0};
    unet_walk(m, hash_visitor, &h);
    const int64_t **shapes = sl_malloc(sizeof(int64_t *) * (size_t)(h.n + 1));
    for (int i = 0; i < h.n; i++) shapes[i] = h.shapes + 4 * i;
    model_hash(out, (const char *const *)h.names, shapes, h.ndims, h.n);
    for (int i = 0; i < h.n; i++) free(h.names[i]);
    free(h.names);
    free(h.shapes);
    free(h.ndims);
    free(shapes);
}
