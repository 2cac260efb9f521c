// PNG writing with tEXt chunks: the file decodes to the same pixels and the chunk reads back.
#include <stb/stb_image.h>
#include <stdlib.h>
#include <string.h>

#include "data/png.h"
#include "engine/core/crc32.h"
#include "engine/core/error.h"
#include "tests/test.h"

TEST(png_text_round_trip) {
    enum { W = 5, H = 3 };
    uint8_t px[H * W * 3];
    for (int i = 0; i < H * W * 3; i++) px[i] = (uint8_t)(i * 17);
    const char *path = tmp_path("a.png");
    const char *keys[] = {"parameters", "other"};
    const char *vals[] = {"a photo of sks dog\nSteps: 30, Sampler: Euler a, CFG scale: 7.5, Seed: 42", "x"};
    REQUIRE(png_write(path, px, W, H, 3, keys, vals, 2) == 0);
    int w, h, c;
    unsigned char *back = stbi_load(path, &w, &h, &c, 3);
    REQUIRE(back);
    CHECK(w == W && h == H);
    CHECK(memcmp(back, px, sizeof px) == 0);
    stbi_image_free(back);
    char *t = png_read_text(path, "parameters");
    REQUIRE(t);
    CHECK(strcmp(t, vals[0]) == 0);
    free(t);
    t = png_read_text(path, "other");
    CHECK(t && strcmp(t, "x") == 0);
    free(t);
    CHECK(png_read_text(path, "param") == NULL);
    // the CRC of each chunk is what a PNG reader expects: crc32("IEND") is the well-known AE426082
    CHECK(crc32_update(0, (const uint8_t *)"IEND", 4) == 0xAE426082u);
    CHECK(png_read_text(tmp_path("none.png"), "parameters") == NULL);
    CHECK(strstr(sl_error_msg(), "cannot open") != NULL);
}
