// Image I/O: the [-1, 1] mapping and its PIL-style rounding, PNG/JPEG/BMP loading, grey and RGBA
// inputs, and clear errors for missing, empty, truncated and non-image files.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "data/image.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "tests/test.h"

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) { free(b); b = NULL; }
    fclose(f);
    return b;
}

// (H, W, C) test pattern covering all 256 values
static unsigned char *pattern(int H, int W, int C) {
    unsigned char *p = malloc((size_t)H * W * C);
    for (int i = 0; i < H * W * C; i++) p[i] = (unsigned char)((i * 7 + i / 13) & 255);
    return p;
}

TEST(image_pixel_mapping_matches_diffusers) {
    // load: v/255·2 - 1 in float32; save: round_half_even(clamp(x/2 + 0.5, 0, 1)·255)
    unsigned char px[256];
    for (int i = 0; i < 256; i++) px[i] = (unsigned char)i;
    float x[256];
    image_from_u8(x, px, 1, 1, 256);
    CHECK_NEAR(x[0], -1.0, 0);
    CHECK_NEAR(x[255], 1.0, 0);
    CHECK_NEAR(x[128], (double)(2.0f * (128.0f / 255.0f) - 1.0f), 0);
    unsigned char back[256];
    image_to_u8(back, x, 1, 1, 256);
    CHECK(memcmp(back, px, 256) == 0);   // every 8-bit value survives the round trip
    // rounding and clamping: 127.5 -> 128 and 128.5 -> 128 (half to even), out of range clamps, NaN -> 0
    float y[6] = {127.5f / 255.0f * 2 - 1, 128.5f / 255.0f * 2 - 1, 1.7f, -4.0f, NAN, 0.0f};
    unsigned char o[6];
    image_to_u8(o, y, 1, 1, 6);
    fprintf(stderr, "    127.5 -> %d, 128.5 -> %d, 1.7 -> %d, -4 -> %d, NaN -> %d, 0 -> %d\n", o[0], o[1], o[2], o[3], o[4], o[5]);
    CHECK_EQ_INT(o[0], 128);
    CHECK_EQ_INT(o[1], 128);
    CHECK_EQ_INT(o[2], 255);
    CHECK_EQ_INT(o[3], 0);
    CHECK_EQ_INT(o[4], 0);
    CHECK_EQ_INT(o[5], 128);   // 0.5·255 = 127.5 -> 128
}

TEST(image_png_save_load_roundtrip) {
    int H = 7, W = 11;
    unsigned char *p = pattern(H, W, 3);
    float *img = sl_alloc_f32(3 * H * W);
    image_from_u8(img, p, 3, H, W);
    const char *path = tmp_path("rt.png");
    REQUIRE(image_save_png(path, img, 3, H, W) == 0);
    int h, w;
    float *back = image_load(path, &h, &w);
    REQUIRE(back);
    CHECK_EQ_INT(h, H);
    CHECK_EQ_INT(w, W);
    check_close("png roundtrip (3, H, W)", back, img, 3 * H * W, 0.0);
    // channel-major layout: pixel (y=2, x=5) green is p[(2·W + 5)·3 + 1]
    CHECK_NEAR(back[1 * H * W + 2 * W + 5], 2.0f * ((float)p[(2 * W + 5) * 3 + 1] / 255.0f) - 1.0f, 0);
    free(p);
    sl_free_aligned(img), sl_free_aligned(back);
}

TEST(image_bmp_and_jpeg_load) {
    int H = 16, W = 24;
    unsigned char *p = pattern(H, W, 3);
    const char *bmp = tmp_path("a.bmp"), *jpg = tmp_path("a.jpg");
    REQUIRE(stbi_write_bmp(bmp, W, H, 3, p));
    int h, w;
    uint8_t *got = image_load_u8(bmp, &h, &w);
    REQUIRE(got);
    CHECK(h == H && w == W && memcmp(got, p, (size_t)H * W * 3) == 0);
    free(got);
    // a smooth image survives JPEG at quality 95 within a few levels
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) p[(y * W + x) * 3 + c] = (unsigned char)(40 + 5 * x + 3 * y + 20 * c);
    REQUIRE(stbi_write_jpg(jpg, W, H, 3, p, 95));
    float *img = image_load(jpg, &h, &w);
    REQUIRE(img);
    CHECK(h == H && w == W);
    double mx = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                double v = (img[(c * H + y) * W + x] + 1) / 2 * 255;
                double d = fabs(v - p[(y * W + x) * 3 + c]);
                mx = d > mx ? d : mx;
            }
    fprintf(stderr, "    jpeg q95 max error %.2f levels\n", mx);
    CHECK(mx < 8);
    free(p);
    sl_free_aligned(img);
}

TEST(image_grey_and_rgba_become_rgb) {
    int H = 3, W = 4;
    unsigned char g[12], rgba[48];
    for (int i = 0; i < 12; i++) g[i] = (unsigned char)(i * 20);
    for (int i = 0; i < 48; i++) rgba[i] = (unsigned char)(i * 5);
    const char *gp = tmp_path("g.png"), *ap = tmp_path("a.png");
    REQUIRE(stbi_write_png(gp, W, H, 1, g, W));
    REQUIRE(stbi_write_png(ap, W, H, 4, rgba, W * 4));
    int h, w;
    uint8_t *x = image_load_u8(gp, &h, &w);
    REQUIRE(x);
    for (int i = 0; i < 12; i++) CHECK(x[3 * i] == g[i] && x[3 * i + 1] == g[i] && x[3 * i + 2] == g[i]);
    free(x);
    x = image_load_u8(ap, &h, &w);
    REQUIRE(x);
    for (int i = 0; i < 12; i++) CHECK(!memcmp(x + 3 * i, rgba + 4 * i, 3));   // alpha dropped, not blended
    free(x);
}

static void expect_error(const char *label, const char *path, const char *must_contain) {
    int h, w;
    sl_error_clear();
    float *img = image_load(path, &h, &w);
    CHECK_MSG(img == NULL, "%s: loaded", label);
    sl_free_aligned(img);
    const char *msg = sl_error_msg();
    fprintf(stderr, "    %-18s -> %s\n", label, msg);
    CHECK_MSG(strstr(msg, path) && strstr(msg, must_contain), "%s: '%s' lacks the path or '%s'", label, msg, must_contain);
}

TEST(image_load_errors) {
    const char *txt = tmp_path("notes.png"), *empty = tmp_path("empty.jpg"), *jpg = tmp_path("t.jpg");
    const char *tj = tmp_path("trunc.jpg"), *png = tmp_path("t.png"), *tp = tmp_path("trunc.png");
    write_bytes(txt, "this is a text file, not a PNG\n", 31);
    write_bytes(empty, "", 0);
    expect_error("missing file", tmp_path("nope.png"), "cannot open");
    expect_error("text named .png", txt, "not a readable image");
    expect_error("empty file", empty, "empty file");
    expect_error("folder", tmp_path(""), "not a regular file");

    int H = 64, W = 64;
    unsigned char *p = pattern(H, W, 3);
    REQUIRE(stbi_write_jpg(jpg, W, H, 3, p, 90));
    REQUIRE(stbi_write_png(png, W, H, 3, p, W * 3));
    size_t n;
    unsigned char *b = read_bytes(jpg, &n);
    REQUIRE(b);
    write_bytes(tj, b, n * 2 / 3);   // cut inside the scan data
    expect_error("truncated JPEG", tj, "truncated");
    write_bytes(tj, b, 300);         // cut inside the headers
    expect_error("truncated JPEG hdr", tj, "corrupt");
    free(b);
    b = read_bytes(png, &n);
    REQUIRE(b);
    write_bytes(tp, b, n / 2);
    expect_error("truncated PNG", tp, "corrupt");
    free(b);
    free(p);
    // saving into a missing folder fails cleanly
    float px[3] = {0, 0, 0};
    CHECK(image_save_png(tmp_path("no/such/dir/x.png"), px, 3, 1, 1) != 0);
    CHECK(strstr(sl_error_msg(), "cannot create") != NULL);
}
