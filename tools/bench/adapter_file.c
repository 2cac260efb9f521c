// bench_adapter_file: a freshly initialized adapter for the UNet a config describes (kaiming
// init, the default cross-attention targets unless --targets), for benchmarking adapters at
// full size before a model file exists. Uses the UNet's Linear-module enumeration.
//   build/bench_adapter_file --config DIR --out FILE [--method singlora|lora] [--rank R] [--alpha A]
//                            [--targets LIST] [--step S] [--ramp-steps T]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/adapter_set.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "tools/args.h"
#include "unet/unet.h"

typedef struct {
    adapter_set *s;
    sl_rng *rng;
} ctx_t;

static int add(void *vp, const unet_linear *l) {
    ctx_t *c = vp;
    if (!adapter_target_matches(c->s->targets, l->path)) return 0;
    adapter *a = adapter_set_add(c->s, l->path, l->d_in, l->d_out);
    adapter_init(a, c->rng, 0.0f, NULL);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *out = NULL, *method = "singlora", *targets = "cross-attn", *v;
    int rank = 4;
    float alpha = 4.0f;
    long step = 1000, ramp = 100;
    for (int i = 1; i < argc; i++) {
        if (arg_value(argc, argv, &i, "--config", &dir)) {}
        else if (arg_value(argc, argv, &i, "--out", &out)) {}
        else if (arg_value(argc, argv, &i, "--method", &method)) {}
        else if (arg_value(argc, argv, &i, "--targets", &targets)) {}
        else if (arg_value(argc, argv, &i, "--rank", &v)) rank = (int)arg_long("--rank", v);
        else if (arg_value(argc, argv, &i, "--alpha", &v)) alpha = (float)arg_double("--alpha", v);
        else if (arg_value(argc, argv, &i, "--step", &v)) step = arg_long("--step", v);
        else if (arg_value(argc, argv, &i, "--ramp-steps", &v)) ramp = arg_long("--ramp-steps", v);
        else arg_unknown("bench_adapter_file", argv[i]);
    }
    if (!dir || !out) sl_die(NULL, "usage: bench_adapter_file --config DIR --out FILE [--method M] [--rank R] ...");
    int mi = adapter_method_from_name(method);
    if (mi != ADAPTER_SINGLORA && mi != ADAPTER_LORA) sl_die(NULL, "--method: singlora or lora");
    unet_config cfg;
    if (unet_config_load_dir(&cfg, dir) != 0) sl_fail();
    unet_model *m = unet_model_new(&cfg);
    adapter_set s = {.method = (adapter_method)mi, .rank = rank, .alpha = alpha, .ramp_steps = ramp, .step = step};
    snprintf(s.init, sizeof s.init, "kaiming");
    adapter_targets_expand(targets, s.targets, sizeof s.targets);
    unet_model_hash(m, s.base_model);
    sl_rng rng;
    sl_rng_seed(&rng, 0);
    ctx_t c = {&s, &rng};
    unet_walk_linears(m, add, &c);
    if (adapter_set_save(&s, out) != 0) sl_fail();
    printf("adapter %s: %d modules, %lld parameters\n", out, s.n_slots, (long long)adapter_set_param_count(&s));
    for (int i = 0; i < s.n_slots; i++) {
        free(s.slots[i].module);
        adapter_free(&s.slots[i].a);
    }
    free(s.slots);
    unet_free(m);
    return 0;
}
