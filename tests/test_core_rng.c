// RNG: mt19937 reference values, torch.randn parity, state save/restore.
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "tests/test.h"

TEST(rng_mt19937_reference) {
    // std::mt19937 with the default seed 5489: the 10000th output is 4123659995 (C++ standard)
    sl_rng r;
    sl_rng_seed(&r, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = sl_rng_u32(&r);
    CHECK_EQ_INT(v, 4123659995u);
    // only the low 32 bits of the seed count (torch's init_with_uint32)
    sl_rng a, b;
    sl_rng_seed(&a, 42);
    sl_rng_seed(&b, 42 + (1ull << 32));
    CHECK_EQ_INT(sl_rng_u32(&a), sl_rng_u32(&b));
}

TEST(rng_torch_randn_parity) {
    st_file *f = st_open(shared_path("fixtures/io/torch_randn.safetensors"));
    REQUIRE(f);
    const char *cases = st_meta(f, "cases");
    REQUIRE(cases);
    cJSON *root = cJSON_Parse(cases);
    REQUIRE(cJSON_IsArray(root));
    int ncases = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, root) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        uint64_t seed = (uint64_t)cJSON_GetObjectItem(c, "seed")->valuedouble;
        cJSON *shape = cJSON_GetObjectItem(c, "shape");
        size_t n = 1;
        cJSON *d;
        cJSON_ArrayForEach(d, shape) n *= (size_t)d->valuedouble;
        float *want = st_load_f32(f, name, -1, NULL);
        REQUIRE(want);
        float *got = malloc(n * sizeof(float));
        sl_rng r;
        sl_rng_seed(&r, seed);
        sl_rng_randn(&r, got, n);
        size_t nbad = 0;
        for (size_t i = 0; i < n; i++) nbad += memcmp(&got[i], &want[i], 4) != 0;
        char label[96];
        snprintf(label, sizeof label, "%s seed %llu n %zu (%zu not bit-equal)", name, (unsigned long long)seed, n, nbad);
        check_close(label, got, want, n, 1e-6);
        CHECK_MSG(nbad == 0, "%s: %zu of %zu values differ in their bits", name, nbad, n);
        free(got);
        sl_free_aligned(want);
        ncases++;
    }
    CHECK(ncases >= 5);
    cJSON_Delete(root);
    st_close(f);
}

TEST(rng_small_randn_uses_cached_pair) {
    // n < 16: pairs from the double Box-Muller; the 2nd value of a pair is the cached sine, so
    // randn(3) then randn(1) equals randn(4)
    sl_rng a, b;
    sl_rng_seed(&a, 7);
    sl_rng_seed(&b, 7);
    float x[4], y[4];
    sl_rng_randn(&a, x, 4);
    sl_rng_randn(&b, y, 3);
    sl_rng_randn(&b, y + 3, 1);
    for (int i = 0; i < 4; i++) CHECK(x[i] == y[i]);
    // and it is a different stream from the vectorised path
    float z[16];
    sl_rng_seed(&a, 7);
    sl_rng_randn(&a, z, 16);
    CHECK(z[0] != x[0]);
}

TEST(rng_normal_statistics) {
    sl_rng r;
    sl_rng_seed(&r, 123);
    size_t n = 1 << 18;
    float *x = malloc(n * sizeof(float));
    sl_rng_normal(&r, x, n, 0.5f, 2.0f);
    double m = 0, v = 0;
    for (size_t i = 0; i < n; i++) m += x[i];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    v /= (double)n;
    printf("  normal(0.5, 2): mean %.4f var %.4f\n", m, v);
    CHECK_NEAR(m, 0.5, 0.02);
    CHECK_NEAR(v, 4.0, 0.05);
    sl_rng_rand(&r, x, n);
    double mu = 0, lo = 1, hi = 0;
    for (size_t i = 0; i < n; i++) { mu += x[i]; lo = fmin(lo, x[i]); hi = fmax(hi, x[i]); }
    mu /= (double)n;
    CHECK_NEAR(mu, 0.5, 0.005);
    CHECK(lo >= 0.0 && hi < 1.0);
    free(x);
}

TEST(rng_state_roundtrip) {
    sl_rng r;
    sl_rng_seed(&r, 99);
    float x[37];
    sl_rng_randn(&r, x, 37);
    (void)sl_rng_normal_f64(&r);   // leaves a cached value
    uint8_t st[SL_RNG_STATE_BYTES];
    sl_rng_get_state(&r, st);
    float a[50], b[50];
    double da = sl_rng_normal_f64(&r);
    sl_rng_randn(&r, a, 50);
    sl_rng q;
    sl_rng_seed(&q, 1);
    CHECK_EQ_INT(sl_rng_set_state(&q, st, sizeof st, "state"), 0);
    double db = sl_rng_normal_f64(&q);
    sl_rng_randn(&q, b, 50);
    CHECK(da == db);
    CHECK(memcmp(a, b, sizeof a) == 0);
    // corrupt bytes are refused with a message
    st[0] ^= 1;
    CHECK_EQ_INT(sl_rng_set_state(&q, st, sizeof st, "ckpt.safetensors"), -1);
    CHECK(strstr(sl_error_msg(), "ckpt.safetensors") != NULL);
    CHECK_EQ_INT(sl_rng_set_state(&q, st, 10, "x"), -1);
}

TEST(rng_randint_range) {
    sl_rng r;
    sl_rng_seed(&r, 5);
    int seen[10] = {0};
    for (int i = 0; i < 2000; i++) {
        uint64_t v = sl_rng_randint(&r, 10);
        CHECK(v < 10);
        if (v < 10) seen[v]++;
    }
    for (int i = 0; i < 10; i++) CHECK(seen[i] > 100);
}

TEST(rng_randn_tail_redrawn) {
    // n % 16 != 0 (n >= 16): the whole blocks come from the first n uniforms, then the last 16
    // values are replaced by a block made of 16 fresh uniforms
    sl_rng a, b;
    float x[20], head[16], tail[16];
    sl_rng_seed(&a, 11);
    sl_rng_randn(&a, x, 20);
    sl_rng_seed(&b, 11);
    sl_rng_randn(&b, head, 16);            // uses uniforms 0..15
    sl_rng_seed(&b, 11);
    for (int i = 0; i < 20; i++) (void)sl_rng_u32(&b);
    sl_rng_randn(&b, tail, 16);            // uniforms 20..35
    for (int i = 0; i < 4; i++) CHECK(x[i] == head[i]);
    for (int i = 0; i < 16; i++) CHECK(x[4 + i] == tail[i]);
    CHECK(memcmp(&a, &b, sizeof a) == 0);  // and the generator advanced by 36 words
}

TEST(rng_cmd_randn) {
    char out[4096];
    const char *path = tmp_path("r.safetensors");
    CHECK_EQ_INT(run_cmd(out, sizeof out, "%s randn --seed 42 --shape 2,4,8,12 --out %s", singlora_bin(), path), 0);
    st_file *got = st_open(path);
    st_file *ref = st_open(shared_path("fixtures/io/torch_randn.safetensors"));
    REQUIRE(got && ref);
    float *g = st_load_f32(got, "randn", 4, (int64_t[]){2, 4, 8, 12});
    float *w = st_load_f32(ref, "randn.1", 4, (int64_t[]){2, 4, 8, 12});
    REQUIRE(g && w);
    CHECK(memcmp(g, w, 768 * sizeof(float)) == 0);
    sl_free_aligned(g);
    sl_free_aligned(w);
    st_close(got);
    st_close(ref);
    // bad input: one clear line, exit 1
    CHECK_EQ_INT(run_cmd(out, sizeof out, "%s randn --seed 1 --shape 4,0 --out %s", singlora_bin(), path), 1);
    CHECK(strstr(out, "--shape") != NULL);
    CHECK_EQ_INT(run_cmd(out, sizeof out, "%s randn --seed x1 --shape 4 --out %s", singlora_bin(), path), 1);
    CHECK(strstr(out, "--seed") != NULL);
}
