// The trainer's data: folder scan (sorted, captions, broken files skipped, empty = error), EXIF
// orientation of a JPEG, RGBA on white, greyscale to RGB, shorter side to the resolution with
// an antialiased resize, center crop, flip; per-example streams differ by key.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb/stb_image_write.h>

#include "data/png.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/train/dataset.h"
#include "engine/train/example_rng.h"
#include "tests/test.h"

typedef struct { uint8_t *p; size_t n; } membuf;
static void to_mem(void *ctx, void *data, int size) {
    membuf *m = ctx;
    m->p = realloc(m->p, m->n + (size_t)size);
    memcpy(m->p + m->n, data, (size_t)size);
    m->n += (size_t)size;
}

// a 16x8 JPEG, left half red and right half blue, with EXIF Orientation = o spliced in after SOI
static void write_jpeg_with_orientation(const char *path, int o) {
    uint8_t px[8 * 16 * 3];
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 16; x++) {
            uint8_t *p = px + (y * 16 + x) * 3;
            p[0] = x < 8 ? 255 : 0, p[1] = 0, p[2] = x < 8 ? 0 : 255;
        }
    membuf m = {0};
    stbi_write_jpg_to_func(to_mem, &m, 16, 8, 3, px, 95);
    // APP1: "Exif\0\0" + little-endian TIFF header + IFD0 with one entry (0x0112, SHORT, 1, o)
    const uint8_t app1[] = {0xFF, 0xE1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 0x2A, 0x00, 0x08, 0, 0, 0, 0x01, 0x00,
                            0x12, 0x01, 0x03, 0x00, 0x01, 0, 0, 0, (uint8_t)o, 0, 0, 0, 0, 0, 0, 0};
    FILE *f = fopen(path, "wb");
    fwrite(m.p, 1, 2, f);
    fwrite(app1, 1, sizeof app1, f);
    fwrite(m.p + 2, 1, m.n - 2, f);
    fclose(f);
    free(m.p);
}

TEST(train_data_exif_orientation) {
    char p[600];
    snprintf(p, sizeof p, "%s", tmp_path("rot.jpg"));
    write_jpeg_with_orientation(p, 6);   // display = stored rotated 90° clockwise: the left (red) half goes on top
    int H, W;
    uint8_t *px = image_decode_rgb(p, &H, &W);
    REQUIRE(px);
    CHECK_EQ_INT(W, 8);
    CHECK_EQ_INT(H, 16);
    const uint8_t *top = px + (2 * W + 4) * 3, *bottom = px + (13 * W + 4) * 3;
    CHECK_MSG(top[0] > 200 && top[2] < 60, "top is red: %d %d %d", top[0], top[1], top[2]);
    CHECK_MSG(bottom[2] > 200 && bottom[0] < 60, "bottom is blue: %d %d %d", bottom[0], bottom[1], bottom[2]);
    free(px);
    write_jpeg_with_orientation(p, 3);   // 180°: red on the right
    px = image_decode_rgb(p, &H, &W);
    REQUIRE(px);
    CHECK(W == 16 && H == 8 && px[(4 * W + 13) * 3] > 200 && px[(4 * W + 2) * 3 + 2] > 200);
    free(px);
}

TEST(train_data_alpha_grey_resize_crop_flip) {
    char pa[600], pg[600];
    snprintf(pa, sizeof pa, "%s", tmp_path("rgba.png"));
    snprintf(pg, sizeof pg, "%s", tmp_path("grey.png"));
    uint8_t rgba[2 * 2 * 4] = {255, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0, 128, 10, 20, 30, 255};
    REQUIRE(png_write(pa, rgba, 2, 2, 4, NULL, NULL, 0) == 0);
    int H, W;
    uint8_t *px = image_decode_rgb(pa, &H, &W);
    REQUIRE(px);
    CHECK(px[0] == 255 && px[1] == 255 && px[2] == 255);   // transparent red over white = white
    CHECK(px[3] == 0 && px[4] == 0 && px[5] == 0);         // opaque black
    CHECK(px[6] == 127 && px[7] == 127 && px[8] == 127);   // half-transparent black: (255·127 + 127) / 255
    free(px);
    // grey 128x64, a horizontal ramp: shorter side 64 -> 32 (the long side 64), center crop 32x32
    uint8_t grey[64 * 128];
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 128; x++) grey[y * 128 + x] = (uint8_t)(x * 2);
    REQUIRE(png_write(pg, grey, 128, 64, 1, NULL, NULL, 0) == 0);
    image_prep prep = {32, 1, 0};
    float *img = image_prepare(pg, &prep, 0), *fl = image_prepare(pg, &prep, 1);
    REQUIRE(img && fl);
    // output x of the 64-wide resized ramp is source x ≈ 2x + 0.5: crop left 16 -> value ≈ 2·(2·(x+16) + 0.5)
    for (int x = 2; x < 30; x += 9) {
        float want = 2.0f * (2.0f * (2 * (x + 16) + 0.5f)) / 255.0f - 1.0f;
        CHECK_NEAR(img[5 * 32 + x], want, 2.5f / 255.0f * 2);
        CHECK(img[5 * 32 + x] == img[32 * 32 + 5 * 32 + x] && img[5 * 32 + x] == img[2 * 32 * 32 + 5 * 32 + x]);   // R = G = B
        CHECK(fl[5 * 32 + x] == img[5 * 32 + 31 - x]);   // the mirror image
    }
    sl_free_aligned(img);
    sl_free_aligned(fl);
    // not a multiple of the size: shorter side still exactly R
    prep.resolution = 24;
    img = image_prepare(pg, &prep, 0);
    REQUIRE(img);
    sl_free_aligned(img);
}

TEST(train_data_folder_scan) {
    char dir[600], p[700];
    snprintf(dir, sizeof dir, "%s", tmp_path("photos"));
    mkdir(dir, 0777);
    uint8_t px[8 * 8 * 3] = {0};
    const char *names[] = {"b.png", "a.png", "c.png"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        REQUIRE(png_write(p, px, 8, 8, 3, NULL, NULL, 0) == 0);
    }
    snprintf(p, sizeof p, "%s/a.txt", dir);
    FILE *f = fopen(p, "w");
    fputs("  a photo of sks toy\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/broken.jpg", dir);
    f = fopen(p, "w");
    fputs("\xFF\xD8\xFF\xE0 nope", f);
    fclose(f);
    image_folder fo;
    REQUIRE(image_folder_scan(&fo, dir, ".txt", 1) == 0);
    CHECK_EQ_INT(fo.n, 3);
    CHECK(!strcmp(fo.images[0].name, "a.png") && !strcmp(fo.images[1].name, "b.png") && !strcmp(fo.images[2].name, "c.png"));
    CHECK(fo.images[0].caption && !strcmp(fo.images[0].caption, "a photo of sks toy"));
    CHECK(fo.images[1].caption == NULL);
    CHECK(memcmp(fo.images[0].sha, fo.images[1].sha, 32) == 0);   // same bytes, same hash
    image_folder_free(&fo);
    snprintf(dir, sizeof dir, "%s", tmp_path("empty"));
    mkdir(dir, 0777);
    CHECK(image_folder_scan(&fo, dir, ".txt", 1) != 0 && strstr(sl_error_msg(), "empty"));
}

TEST(train_example_streams_are_keyed) {
    sl_rng a, b, c;
    example_stream(&a, 7, 3, 1);
    example_stream(&b, 7, 3, 1);
    example_stream(&c, 7, 3, 2);
    uint32_t xa = sl_rng_u32(&a), xb = sl_rng_u32(&b), xc = sl_rng_u32(&c);
    CHECK(xa == xb && xa != xc);
    CHECK(example_stream_key(7, 3, 1) != example_stream_key(7, 4, 1) && example_stream_key(7, 3, 1) != example_stream_key(8, 3, 1));
}
