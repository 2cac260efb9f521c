// SHA-256 against the FIPS 180-4 example vectors and sha256sum.
#include <string.h>

#include "engine/core/sha256.h"
#include "tests/test.h"

static void hex_of(const char *msg, size_t n, char hex[65]) {
    sha256_ctx c;
    uint8_t d[32];
    sha256_init(&c);
    sha256_update(&c, msg, n);
    sha256_final(&c, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

TEST(sha256_vectors) {
    char h[65];
    hex_of("abc", 3, h);
    CHECK(!strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    hex_of("", 0, h);
    CHECK(!strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m, strlen(m), h);
    CHECK(!strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    // a file of 1 MB + 3 bytes against sha256sum
    const char *p = tmp_path("f.bin");
    FILE *f = fopen(p, "wb");
    for (int i = 0; i < (1 << 20) + 3; i++) fputc(i * 7 % 251, f);
    fclose(f);
    REQUIRE(sha256_file_hex(p, h) == 0);
    char out[256];
    run_cmd(out, sizeof out, "sha256sum %s", p);
    CHECK(strncmp(out, h, 64) == 0);
}

#include <stdlib.h>

#include "pipeline/model_hash.h"

TEST(model_hash_cache) {
    // the digest is cached by path, size and mtime: a stale entry is not used after a change
    char env[600];
    snprintf(env, sizeof env, "%s", tmp_path("cache"));
    setenv("XDG_CACHE_HOME", env, 1);
    const char *p = tmp_path("m.safetensors");
    FILE *f = fopen(p, "wb");
    fputs("first", f);
    fclose(f);
    char h1[65], h2[65], h3[65], out[512];
    REQUIRE(model_sha256(p, h1) == 0);
    CHECK(!strcmp(h1, "a7937b64b8caa58f03721bb6bacf5c78cb235febe0e70b1b84cd99541461a08e"));   // sha256("first")
    run_cmd(out, sizeof out, "cat %s/singlora/hashes.tsv", env);
    CHECK(strncmp(out, h1, 64) == 0 && strstr(out, "m.safetensors"));
    REQUIRE(model_sha256(p, h2) == 0);
    CHECK(!strcmp(h1, h2));
    f = fopen(p, "wb");
    fputs("second!", f);   // another size: the cached line no longer matches
    fclose(f);
    REQUIRE(model_sha256(p, h3) == 0);
    CHECK(strcmp(h3, h1) != 0);
}
