// singlora randn --seed S --shape 1,4,64,64 --out FILE: torch.randn with a seeded CPU generator.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "tools/args.h"

static const char *HELP =
    "usage: singlora randn --seed S --shape D0,D1,... --out FILE\n\n"
    "Writes one F32 tensor named `randn` to FILE (.safetensors) holding\n"
    "torch.randn(shape, generator=torch.Generator().manual_seed(S)) as PyTorch computes it on the\n"
    "CPU, bit for bit: the same numbers as the initial latents of a diffusers pipeline given a\n"
    "CPU generator with that seed.\n";

// "1,4,64,64" -> shape; each dimension >= 1, at most TENSOR_MAX_DIMS of them.
static int parse_shape(const char *s, int64_t *shape) {
    int nd = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long long d = strtoll(p, &end, 10);
        if (errno || end == p || d < 1 || d > (1ll << 40))
            sl_die(NULL, "option --shape: '%s' is not a list of positive integers like 1,4,64,64", s);
        if (nd == TENSOR_MAX_DIMS) sl_die(NULL, "option --shape: more than %d dimensions in '%s'", TENSOR_MAX_DIMS, s);
        shape[nd++] = d;
        if (*end == 0) break;
        if (*end != ',') sl_die(NULL, "option --shape: '%s' is not a list of positive integers like 1,4,64,64", s);
        p = end + 1;
    }
    return nd;
}

int cmd_randn(int argc, char **argv) {
    const char *seed_s = NULL, *shape_s = NULL, *out = NULL, *v;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_value(argc, argv, &i, "--seed", &v)) seed_s = v;
        else if (arg_value(argc, argv, &i, "--shape", &v)) shape_s = v;
        else if (arg_value(argc, argv, &i, "--out", &v)) out = v;
        else arg_unknown("randn", argv[i]);
    }
    if (!seed_s || !shape_s || !out) sl_die(NULL, "randn: --seed, --shape and --out are required (see singlora randn --help)");
    uint64_t seed = arg_seed("--seed", seed_s);
    int64_t shape[TENSOR_MAX_DIMS];
    int nd = parse_shape(shape_s, shape);
    int64_t n = shape_numel(nd, shape);
    if (n > (1ll << 32)) sl_die(NULL, "option --shape: %s is %lld values, more than 2^32", shape_s, (long long)n);
    float *x = sl_alloc_f32(n);
    sl_rng r;
    sl_rng_seed(&r, seed);
    sl_rng_randn(&r, x, (size_t)n);
    st_writer *w = st_writer_new();
    st_writer_add(w, "randn", DT_F32, nd, shape, x);
    char meta[64];
    snprintf(meta, sizeof meta, "%llu", (unsigned long long)seed);
    st_writer_meta(w, "seed", meta);
    st_writer_meta(w, "desc", "torch.randn(shape, generator=torch.Generator().manual_seed(seed)), CPU");
    int rc = st_writer_save(w, out);
    st_writer_free(w);
    sl_free_aligned(x);
    if (rc != 0) sl_fail();
    return 0;
}
