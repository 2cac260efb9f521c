// Image load/save through stb_image / stb_image_write (Debian's libstb provides the code).
#include "data/image.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb/stb_image.h>

#include "data/png.h"
#include "engine/core/error.h"
#include "engine/io/file_read.h"
#include "engine/core/tensor.h"

#define MAX_FILE_BYTES (1ull << 30)
// The largest image read: 8192 x 8192 = 64 MP (192 MB as 8-bit RGB, 768 MB as f32), 16 times
// SD's 2048 x 2048 limit of practice. Checked on the header (stbi_info) before decoding.
#define MAX_PIXELS (1ull << 26)
// No format stb_image reads packs more pixels into a byte of file than this: 1-bit PNG through
// deflate's best ratio (1032:1) gives 8256, Softimage PIC's 16-bit run lengths ~16k; LZW, RLE and
// JPEG are far below. A header claiming more pixels than its file could hold is a forgery, refused
// before stb allocates for it (a 25-byte TGA claiming 2048 x 54355 cost 1.6 GB).
#define MAX_PIXELS_PER_FILE_BYTE 32768ull

// stb_image decodes a truncated JPEG without complaint (it pads the missing entropy data), but
// PIL refuses it ("image file is truncated"). Walk the marker segments to the first scan and
// require an end-of-image marker after it.
static int jpeg_is_complete(const uint8_t *p, size_t n) {
    size_t i = 2;   // after SOI
    while (i + 4 <= n) {
        if (p[i] != 0xFF) return 0;
        uint8_t m = p[i + 1];
        if (m == 0xFF) { i++; continue; }                    // fill byte
        if (m == 0xD9) return 0;                             // EOI before any scan
        if ((m >= 0xD0 && m <= 0xD7) || m == 0x01) { i += 2; continue; }
        size_t seg = ((size_t)p[i + 2] << 8) | p[i + 3];
        if (seg < 2 || i + 2 + seg > n) return 0;
        i += 2 + seg;
        if (m == 0xDA) break;                                // start of scan: entropy data follows
    }
    // entropy-coded data cannot hold FF D9 (FF is stuffed as FF 00): the first one is the EOI
    // (progressive files have more scans in between, each also before the EOI)
    for (; i + 1 < n; i++)
        if (p[i] == 0xFF && p[i + 1] == 0xD9) return 1;
    return 0;
}

uint8_t *image_load_u8(const char *path, int *H, int *W) {
    size_t n = 0;
    uint8_t *buf = (uint8_t *)read_file(path, &n, MAX_FILE_BYTES, "image file");
    if (!buf) return NULL;
    if (n == 0) { free(buf); sl_error(path, "empty file, not an image"); return NULL; }
    if (n > 0x7fffffff) { free(buf); sl_error(path, "image file too large"); return NULL; }
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(buf, (int)n, &w, &h, &comp)) {
        const char *why = stbi_failure_reason();
        sl_error(path, "not a readable image (%s; PNG, JPEG, BMP, GIF, TGA, PSD, PNM and HDR are supported)",
                 why ? why : "unknown format");
        free(buf);
        return NULL;
    }
    unsigned long long pixels = (unsigned long long)(w > 0 ? w : 0) * (unsigned long long)(h > 0 ? h : 0);
    if (w <= 0 || h <= 0 || pixels > MAX_PIXELS) {
        free(buf);
        sl_error(path, "image size %dx%d is out of range (at most %llu pixels)", w, h, MAX_PIXELS);
        return NULL;
    }
    if (pixels > (unsigned long long)n * MAX_PIXELS_PER_FILE_BYTE) {
        free(buf);
        sl_error(path, "the header claims %dx%d pixels, more than a %zu-byte file can hold (truncated or forged)", w, h,
                 n);
        return NULL;
    }
    if (n >= 2 && buf[0] == 0xFF && buf[1] == 0xD8 && !jpeg_is_complete(buf, n)) {
        free(buf);
        sl_error(path, "corrupt JPEG: the file is truncated (no end-of-image marker)");
        return NULL;
    }
    uint8_t *px = stbi_load_from_memory(buf, (int)n, &w, &h, &comp, 3);
    free(buf);
    if (!px) {
        const char *why = stbi_failure_reason();
        sl_error(path, "corrupt image (stb_image: %s; truncated or damaged file?)", why ? why : "decoding failed");
        return NULL;
    }
    *H = h, *W = w;
    return px;
}

void image_from_u8(float *out, const uint8_t *px, int C, int H, int W) {
    int64_t HW = (int64_t)H * W;
    for (int c = 0; c < C; c++)
        for (int64_t i = 0; i < HW; i++) {
            // as numpy does in float32: (v / 255) then 2·x - 1
            float x = (float)px[i * C + c] / 255.0f;
            out[c * HW + i] = 2.0f * x - 1.0f;
        }
}

float *image_load(const char *path, int *H, int *W) {
    int h, w;
    uint8_t *px = image_load_u8(path, &h, &w);
    if (!px) return NULL;
    float *img = sl_alloc_f32(3 * (int64_t)h * w);   // (3, H, W)
    image_from_u8(img, px, 3, h, w);
    stbi_image_free(px);
    *H = h, *W = w;
    return img;
}

void image_to_u8(uint8_t *out, const float *img, int C, int H, int W) {
    int64_t HW = (int64_t)H * W;
    for (int c = 0; c < C; c++)
        for (int64_t i = 0; i < HW; i++) {
            float x = img[c * HW + i] / 2.0f + 0.5f;
            x = x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;          // NaN stays NaN here
            float v = nearbyintf(x * 255.0f);                     // round half to even
            out[i * C + c] = v >= 0.0f && v <= 255.0f ? (uint8_t)v : 0;
        }
}

int image_save_png_text(const char *path, const float *img, int C, int H, int W, const char *const *keys,
                       const char *const *values, int n_text) {
    if (C != 1 && C != 3 && C != 4) return sl_error(path, "cannot save a %d-channel image as PNG", C);
    if (H <= 0 || W <= 0) return sl_error(path, "cannot save an empty %dx%d image", W, H);
    uint8_t *px = sl_malloc((size_t)H * (size_t)W * (size_t)C);
    image_to_u8(px, img, C, H, W);
    int rc = png_write(path, px, W, H, C, keys, values, n_text);   // atomic: temp file + rename
    free(px);
    return rc;
}

int image_save_png(const char *path, const float *img, int C, int H, int W) {
    return image_save_png_text(path, img, C, H, W, NULL, NULL, 0);
}
