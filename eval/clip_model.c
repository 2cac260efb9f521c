// CLIPModel: config, loading of both towers, the text tower with its projection.
#include "eval/clip_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/config.h"
#include "engine/core/error.h"
#include "engine/kernels/linear.h"
#include "engine/io/model_files.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "engine/io/weights.h"
#include "eval/model_path.h"

// A sub-object of the config (vision_config / text_config) as a json_config whose errors name it.
typedef struct {
    json_config j;
    char path[4200];
} sub_config;

static int sub_config_get(sub_config *s, const json_config *top, const char *key) {
    cJSON *o = cJSON_GetObjectItemCaseSensitive(top->root, key);
    if (!cJSON_IsObject(o)) return sl_error(top->path, "no '%s' object: not a CLIPModel config", key);
    snprintf(s->path, sizeof s->path, "%s (%s)", top->path, key);
    s->j.path = s->path;
    s->j.root = o;
    return 0;
}

// CLIPTextConfig: the sizes are required; vocabulary and positions come from the tensors.
static int text_config_read(clip_text_config *c, const json_config *tc, const st_file *f) {
    memset(c, 0, sizeof *c);
    double eps;
    const char *act;
    int rc = 0;
    rc |= config_int(tc, "hidden_size", &c->hidden);
    rc |= config_int(tc, "intermediate_size", &c->intermediate);
    rc |= config_int(tc, "num_attention_heads", &c->heads);
    rc |= config_int(tc, "num_hidden_layers", &c->layers);
    rc |= config_float_or(tc, "layer_norm_eps", 1e-5, &eps);
    rc |= config_string_or(tc, "hidden_act", "quick_gelu", &act);
    rc |= config_int_or(tc, "eos_token_id", 49407, &c->eos_id);   // transformers' default
    if (rc) return -1;
    c->eps = (float)eps;
    if (!strcmp(act, "quick_gelu")) c->act = CLIP_ACT_QUICK_GELU;
    else if (!strcmp(act, "gelu")) c->act = CLIP_ACT_GELU;
    else return sl_error(tc->path, "key 'hidden_act': '%s' is not quick_gelu or gelu", act);
    const st_entry *tok = st_find(f, "text_model.embeddings.token_embedding.weight");
    const st_entry *pos = st_find(f, "text_model.embeddings.position_embedding.weight");
    if (!tok || !pos || tok->ndim != 2 || pos->ndim != 2)
        return sl_error(f->path, "the text tower's token or position embedding is missing or not 2-D");
    c->vocab = (int)tok->shape[0];
    c->max_pos = (int)pos->shape[0];
    int v;
    if (config_int_or(tc, "vocab_size", c->vocab, &v) || v != c->vocab)
        return sl_error(tc->path, "key 'vocab_size': %d, but token_embedding has %d rows", v, c->vocab);
    return clip_text_config_check(c, tc->path);
}

static int load_visitor(void *ctx, const param_desc *p) {
    *p->slot = weights_load(ctx, p->name, p->ndim, p->shape);
    return *p->slot ? 0 : -1;
}

clip_model *clip_model_load(const char *path) {
    char *wpath = NULL, *cpath = NULL;
    if (eval_model_files(path, "CLIP", &wpath, &cpath) != 0) return NULL;
    clip_model *m = NULL, *out = NULL;
    json_config *j = NULL;
    st_file *f = st_open(wpath);
    if (!f) goto done;
    if (!st_find(f, "vision_model.embeddings.class_embedding") || !st_find(f, "text_model.embeddings.token_embedding.weight")) {
        sl_error(wpath, "not a CLIPModel: no vision_model.* and text_model.* towers (this holds %s)", eval_describe_file(f));
        goto done;
    }
    if (!cpath) { sl_error(wpath, "a CLIPModel needs its config.json beside it"); goto done; }
    if (!(j = config_load(cpath))) goto done;
    const char *type;
    if (config_string_or(j, "model_type", "clip", &type)) goto done;
    if (strcmp(type, "clip")) { sl_error(cpath, "model_type '%s': not a CLIP config", type); goto done; }
    sub_config vc, tc;
    if (sub_config_get(&vc, j, "vision_config") || sub_config_get(&tc, j, "text_config")) goto done;
    vit_config vcfg;
    clip_text_config tcfg;
    if (clip_vision_config_read(&vcfg, &vc.j) || text_config_read(&tcfg, &tc.j, f)) goto done;
    m = sl_calloc(1, sizeof *m);
    if (config_int_or(j, "projection_dim", 512, &m->proj_dim)) goto done;
    m->vision = sl_calloc(1, sizeof *m->vision);
    m->vision->vit = vit_model_new(&vcfg);
    m->vision->proj_dim = m->proj_dim;
    m->text = clip_text_model_new(&tcfg);
    m->text->layout = CLIP_LAYOUT_DIFFUSERS;
    weight_loader wl = {.file = f, .prefix = ""};
    if (clip_vision_walk(m->vision, load_visitor, &wl) || clip_text_walk(m->text, load_visitor, &wl)) goto done;
    m->text_proj = weights_load(&wl, "text_projection.weight", 2, (int64_t[]){m->proj_dim, tcfg.hidden});
    if (!m->text_proj) goto done;
    static const char *const ignore[] = {"logit_scale", "text_model.embeddings.position_ids",
                                         "vision_model.embeddings.position_ids", NULL};
    if (weights_check_unused(&wl, ignore)) goto done;
    if (path_is_dir(path)) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s/vocab.json", path);
        if (path_exists(buf) && !(m->tokenizer = clip_tokenizer_load(path))) goto done;
    }
    out = m;
    m = NULL;
done:
    clip_model_free(m);
    config_free(j);
    st_close(f);
    free(wpath);
    free(cpath);
    return out;
}

void clip_model_free(clip_model *m) {
    if (!m) return;
    clip_vision_free(m->vision);
    clip_text_free(m->text);
    sl_free_aligned(m->text_proj);
    if (m->tokenizer) clip_tokenizer_free(m->tokenizer);
    free(m);
}

int clip_model_text_forward(const clip_model *m, const int32_t *ids, int N, int L, float *embeds, float *pooled,
                            float *last, float **hs) {
    int D = m->text->cfg.hidden;
    float *x = last ? last : sl_alloc_f32((int64_t)N * L * D);      // (N, L, D)
    float *pool = pooled ? pooled : sl_alloc_f32((int64_t)N * D);   // (N, D)
    int rc = clip_text_forward(m->text, ids, N, L, m->text->cfg.layers, x, hs);
    if (rc == 0) {
        clip_text_pool(m->text, ids, N, L, x, pool);
        linear_forward(embeds, pool, m->text_proj, NULL, N, D, m->proj_dim);
    }
    if (!last) sl_free_aligned(x);
    if (!pooled) sl_free_aligned(pool);
    return rc;
}

int clip_model_encode_text(const clip_model *m, const char *prompt, float *embed) {
    if (!m->tokenizer) return sl_error(NULL, "the CLIP model folder has no tokenizer (vocab.json + merges.txt)");
    int L = m->text->cfg.max_pos;
    int32_t *ids = sl_malloc(sizeof(int32_t) * (size_t)L);
    if (clip_encode(m->tokenizer, prompt, L, ids, 1) < 0) { free(ids); return -1; }
    int rc = clip_model_text_forward(m, ids, 1, L, embed, NULL, NULL, NULL);
    free(ids);
    return rc;
}
