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
// The fuzz build lowers it (-DIMAGE_MAX_PIXELS=...) so that libFuzzer spends its time on parsing,
// not on decoding forged 64 MP headers under ASan.
#ifdef IMAGE_MAX_PIXELS
#define MAX_PIXELS ((unsigned long long)(IMAGE_MAX_PIXELS))
#else
#define MAX_PIXELS (1ull << 26)
#endif
// No format stb_image reads packs more pixels into a byte of file than this: 1-bit PNG through
// deflate's best ratio (1032:1) gives 8256, Softimage PIC's 16-bit run lengths ~16k; LZW, RLE and
// JPEG are far below. A header claiming more pixels than its file could hold is a forgery, refused
// before stb allocates for it (a 25-byte TGA claiming 2048 x 54355 cost 1.6 GB).
#define MAX_PIXELS_PER_FILE_BYTE 32768ull

// A DHT segment's tables (class/id byte, 16 counts, that many symbols each): a table of more
// than 256 codes overruns stb_image 2.27's fixed arrays (stbi__build_huffman writes size[k++]
// past its 257 entries: heap corruption, then a crash on a later image; fixed in stb 2.28).
// Marks each table it defines in defined[class][id] (class 0: DC, 1: AC; ids 0..3 as stb reads).
static const char *jpeg_dht_problem(const uint8_t *seg, size_t len, int defined[2][4]) {
    size_t i = 0;
    while (i < len) {
        if (i + 17 > len) return "corrupt JPEG: a Huffman table segment is cut short";
        int tc = seg[i] >> 4, th = seg[i] & 15;
        if (tc > 1 || th > 3) return "corrupt JPEG: a Huffman table has a bad class or id";
        size_t codes = 0;
        for (int k = 1; k <= 16; k++) codes += seg[i + k];
        if (codes > 256) return "corrupt JPEG: a Huffman table defines more than 256 codes";
        i += 17 + codes;
        if (i > len) return "corrupt JPEG: a Huffman table segment is cut short";
        defined[tc][th] = 1;
    }
    return NULL;
}

// A scan (SOS) may only use Huffman tables a DHT defined before it: stb_image 2.27 decodes with
// an undefined table's uninitialized memory (reads out of its arrays; 2.28 bounds the symbol id).
// Which tables a scan uses: sequential (SOF0/SOF1) both of each component's; progressive (SOF2)
// the DC tables in a first DC scan (Ss = 0, Ah = 0), the AC tables in an AC scan (Ss > 0).
static const char *jpeg_sos_problem(const uint8_t *seg, size_t len, int progressive, int defined[2][4]) {
    if (len < 1) return "corrupt JPEG: a scan header is cut short";
    size_t ns = seg[0];
    if (ns < 1 || ns > 4 || len < 1 + 2 * ns + 3) return "corrupt JPEG: bad scan header";
    int ss = seg[1 + 2 * ns], ah = seg[3 + 2 * ns] >> 4;
    int uses_dc = !progressive || (ss == 0 && ah == 0), uses_ac = !progressive || ss > 0;
    for (size_t c = 0; c < ns; c++) {
        int hd = seg[2 + 2 * c] >> 4, ha = seg[2 + 2 * c] & 15;
        if ((uses_dc && hd > 3) || (uses_ac && ha > 3)) return "corrupt JPEG: a scan names a bad Huffman table id";
        if ((uses_dc && !defined[0][hd]) || (uses_ac && !defined[1][ha]))
            return "corrupt JPEG: a scan uses a Huffman table no DHT segment defined";
    }
    return NULL;
}

// What stb_image would mis-handle, checked before it decodes: every Huffman table (also those
// between the scans of a progressive file) and, since stb decodes a truncated JPEG without
// complaint (padding the missing entropy data) where PIL refuses it ("image file is truncated"),
// an end-of-image marker after the scans. NULL when the file is fine, else the problem.
static const char *jpeg_problem(const uint8_t *p, size_t n, size_t i) {   // i: after SOI
    int scans = 0, progressive = 0, defined[2][4] = {{0}};
    while (i + 2 <= n) {
        if (p[i] != 0xFF) {
            if (!scans) return "corrupt JPEG: bad marker";
            i++;                                             // entropy-coded data
            continue;
        }
        uint8_t m = p[i + 1];
        if (m == 0xFF) { i++; continue; }                    // fill byte
        if (m == 0x00 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) {
            i += 2;                                          // stuffed FF, restart markers
            continue;
        }
        if (m == 0xD9) return scans ? NULL : "corrupt JPEG: end of image before any scan";
        if (i + 4 > n) break;
        size_t seg = ((size_t)p[i + 2] << 8) | p[i + 3];
        if (seg < 2 || i + 2 + seg > n) break;
        const char *why = NULL;
        if (m == 0xC2) progressive = 1;
        if (m == 0xC4) why = jpeg_dht_problem(p + i + 4, seg - 2, defined);
        if (m == 0xDA) {                                     // start of scan: entropy data follows
            why = jpeg_sos_problem(p + i + 4, seg - 2, progressive, defined);
            scans++;
        }
        if (why) return why;
        i += 2 + seg;
    }
    return "corrupt JPEG: the file is truncated (no end-of-image marker)";
}

// stb_image 2.27 copies each IDAT chunk to the end of a buffer it allocates on the first one; an
// empty IDAT before any image data makes it offset a null pointer (undefined behaviour, found by
// fuzz_image). PNG allows empty IDAT chunks but no encoder writes one first: such a file is
// refused rather than handed to stb. NULL when the chunks before the first data are fine.
static const char *png_problem(const uint8_t *p, size_t n) {
    size_t i = 8;   // after the signature
    while (i + 8 <= n) {
        size_t len = ((size_t)p[i] << 24) | ((size_t)p[i + 1] << 16) | ((size_t)p[i + 2] << 8) | p[i + 3];
        if (!memcmp(p + i + 4, "IDAT", 4))
            return len == 0 ? "corrupt PNG: an empty IDAT chunk before the image data (not supported)" : NULL;
        if (!memcmp(p + i + 4, "IEND", 4) || len > n - i - 8) return NULL;   // stb reports these itself
        i += 12 + len;
    }
    return NULL;
}

// stb_image 2.27 reads a binary PNM header's width, height and maximum value into an int with
// no overflow check (signed overflow, undefined behaviour: found by fuzz_image). The header is
// walked the way stb walks it (whitespace and # comments between the numbers) and a number over
// INT_MAX is refused first. NULL when the header's numbers fit.
static const char *pnm_problem(const uint8_t *p, size_t n) {
    size_t i = 2;   // after "P5" / "P6"
    for (int field = 0; field < 3; field++) {   // width, height, maximum value
        for (;;) {   // whitespace, then a comment to the end of its line, again
            while (i < n && (p[i] == ' ' || (p[i] >= '\t' && p[i] <= '\r'))) i++;
            if (i >= n || p[i] != '#') break;
            while (i < n && p[i] != '\n' && p[i] != '\r') i++;
        }
        unsigned long long value = 0;
        for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            value = value * 10 + (unsigned)(p[i] - '0');
            if (value > 0x7fffffffull) return "corrupt PNM: a header number (width, height or maximum value) is too large";
        }
        // 16-bit samples: stb_image 2.27 reads them in the machine's byte order instead of PNM's
        // big-endian one (silently wrong pixels: bytes 80 00 come out as 0, not 128), and for a
        // one-channel PGM converts them to RGB with its 8-bit converter into a buffer half the
        // size its 16 → 8-bit step then reads (heap overflow, found by fuzz_image)
        if (field == 2 && value > 255)
            return "16-bit PGM/PPM (maximum value above 255) is not supported: save it with 8-bit samples";
    }
    return NULL;
}

int image_check_bytes(const char *path, const uint8_t *buf, size_t n) {
    if (n == 0) return sl_error(path, "empty file, not an image");
    if (n > 0x7fffffff) return sl_error(path, "image file too large");
    // (JPEG first: stbi_info already builds the Huffman tables that precede the frame header)
    // stb_image takes any run of FF fill bytes before D8 as the start-of-image marker
    size_t soi = 0;
    while (soi < n && buf[soi] == 0xFF) soi++;
    const char *jpeg_why = soi >= 1 && soi < n && buf[soi] == 0xD8 ? jpeg_problem(buf, n, soi + 1) : NULL;
    if (jpeg_why) return sl_error(path, "%s", jpeg_why);
    static const uint8_t PNG_SIGNATURE[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    const char *png_why = n >= 8 && !memcmp(buf, PNG_SIGNATURE, 8) ? png_problem(buf, n) : NULL;
    if (png_why) return sl_error(path, "%s", png_why);
    const char *pnm_why = n >= 2 && buf[0] == 'P' && (buf[1] == '5' || buf[1] == '6') ? pnm_problem(buf, n) : NULL;
    if (pnm_why) return sl_error(path, "%s", pnm_why);
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(buf, (int)n, &w, &h, &comp)) {
        const char *why = stbi_failure_reason();
        return sl_error(path, "not a readable image (%s; PNG, JPEG, BMP, GIF, TGA, PSD, PNM and HDR are supported)",
                        why ? why : "unknown format");
    }
    unsigned long long pixels = (unsigned long long)(w > 0 ? w : 0) * (unsigned long long)(h > 0 ? h : 0);
    if (w <= 0 || h <= 0 || pixels > MAX_PIXELS)
        return sl_error(path, "image size %dx%d is out of range (at most %llu pixels)", w, h, MAX_PIXELS);
    if (pixels > (unsigned long long)n * MAX_PIXELS_PER_FILE_BYTE)
        return sl_error(path, "the header claims %dx%d pixels, more than a %zu-byte file can hold (truncated or forged)",
                        w, h, n);
    return 0;
}

uint8_t *image_load_u8(const char *path, int *H, int *W) {
    size_t n = 0;
    uint8_t *buf = (uint8_t *)read_file(path, &n, MAX_FILE_BYTES, "image file");
    if (!buf) return NULL;
    if (image_check_bytes(path, buf, n) != 0) {
        free(buf);
        return NULL;
    }
    int w = 0, h = 0, comp = 0;
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
