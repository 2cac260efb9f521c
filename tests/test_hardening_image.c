// Hardening: image headers that claim more pixels than the limit or than their file could hold
// are refused from the header (stbi_info), before stb_image allocates for them.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "data/image.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/io/atomic_file.h"
#include "engine/io/file_read.h"
#include "engine/train/dataset.h"
#include <stb/stb_image_write.h>
#include "tests/test.h"

// An uncompressed 24-bit TGA header for w x h followed by `extra` data bytes.
static const char *write_tga(const char *name, int w, int h, size_t extra) {
    size_t n = 18 + extra;
    unsigned char *b = calloc(1, n);
    b[2] = 2;   // uncompressed true-colour
    b[12] = (unsigned char)(w & 255), b[13] = (unsigned char)(w >> 8);
    b[14] = (unsigned char)(h & 255), b[15] = (unsigned char)(h >> 8);
    b[16] = 24;
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    if (f) { fwrite(b, 1, n, f); fclose(f); }
    free(b);
    return path;
}

static long max_rss_kb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

TEST(hardening_image_header_bombs) {
    long before = max_rss_kb();
    int H = 0, W = 0;
    // 25 bytes claiming 2048 x 54355 (111 MP): over the stated 64 MP limit
    const char *bomb = write_tga("bomb.tga", 2048, 54355, 7);
    CHECK(!image_load(bomb, &H, &W));
    CHECK_MSG(strstr(sl_error_msg(), "bomb.tga") && strstr(sl_error_msg(), "out of range"), "%s", sl_error_msg());
    // 25 bytes claiming 4096 x 4096 (16 MP, within the limit): more than the file can hold
    const char *forged = write_tga("forged.tga", 4096, 4096, 7);
    CHECK(!image_load(forged, &H, &W));
    CHECK_MSG(strstr(sl_error_msg(), "forged.tga") && strstr(sl_error_msg(), "more than a 25-byte file"), "%s",
              sl_error_msg());
    // neither cost memory worth speaking of
    CHECK_MSG(max_rss_kb() - before < 100 * 1024, "rss grew by %ld KB", max_rss_kb() - before);
    // a genuine small TGA still loads
    const char *ok = write_tga("ok.tga", 4, 3, 4 * 3 * 3);
    float *img = image_load(ok, &H, &W);
    CHECK_MSG(img, "%s", sl_error_msg());
    CHECK_EQ_INT(H, 3);
    CHECK_EQ_INT(W, 4);
    sl_free_aligned(img);
}

// A JPEG whose Huffman table defines more than 256 codes: Debian's stb_image 2.27 writes past its
// tables (already in stbi_info; the heap corruption crashed a later decode under the fuzzer);
// both decode paths refuse the file before stb sees it.
TEST(hardening_image_jpeg_oversized_huffman_table) {
    uint8_t f[400];
    size_t n = 0;
    f[n++] = 0xFF, f[n++] = 0xD8;                                   // SOI
    f[n++] = 0xFF, f[n++] = 0xC4, f[n++] = 0x01, f[n++] = 0x3F;     // DHT, length 2 + 17 + 300
    f[n++] = 0x00;                                                  // DC table 0
    for (int k = 0; k < 14; k++) f[n++] = 0;
    f[n++] = 150, f[n++] = 150;                                     // 300 codes of 15 and 16 bits
    for (int k = 0; k < 300; k++) f[n++] = (uint8_t)k;
    const uint8_t sof[] = {0xFF, 0xC0, 0x00, 0x0B, 8, 0, 8, 0, 8, 1, 1, 0x11, 0};   // 8x8 grey
    memcpy(f + n, sof, sizeof sof), n += sizeof sof;
    f[n++] = 0xFF, f[n++] = 0xD9;                                   // EOI
    const char *path = tmp_path("huffman.jpg");
    FILE *o = fopen(path, "wb");
    REQUIRE(o && fwrite(f, 1, n, o) == n && fclose(o) == 0);
    int h, w;
    uint8_t *a = image_load_u8(path, &h, &w);
    CHECK_MSG(!a && strstr(sl_error_msg(), "more than 256 codes") && strstr(sl_error_msg(), path), "%s", sl_error_msg());
    uint8_t *b = image_decode_rgb(path, &h, &w);
    CHECK_MSG(!b && strstr(sl_error_msg(), "more than 256 codes"), "%s", sl_error_msg());
    free(a);
    free(b);
    // stb takes fill bytes before the start-of-image marker: the same file behind three FFs
    const char *filled = tmp_path("filled.jpg");
    o = fopen(filled, "wb");
    REQUIRE(o && fwrite("\xff\xff\xff", 1, 3, o) == 3 && fwrite(f, 1, n, o) == n && fclose(o) == 0);
    a = image_load_u8(filled, &h, &w);
    CHECK_MSG(!a && strstr(sl_error_msg(), "more than 256 codes"), "%s", sl_error_msg());
    free(a);
}

// The byte offset of the first segment with marker m in a JPEG (after SOI), or 0.
static size_t jpeg_segment(const uint8_t *f, size_t n, uint8_t m) {
    for (size_t i = 2; i + 4 <= n && f[i] == 0xFF;) {
        if (f[i + 1] == m) return i;
        if (f[i + 1] == 0xDA) return 0;
        i += 2 + (((size_t)f[i + 2] << 8) | f[i + 3]);
    }
    return 0;
}

// A scan naming a Huffman table no DHT defined (found by fuzz_image): stb_image 2.27 decodes with
// the table's uninitialized memory (its assert fires when built from the header; Debian's library
// reads out of its arrays). Refused before stb sees it; the untouched file still decodes.
TEST(hardening_image_jpeg_undefined_huffman_table) {
    enum { W = 16, H = 8 };
    uint8_t px[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) px[i] = (uint8_t)(i * 37);
    const char *good = tmp_path("scan-good.jpg"), *bad = tmp_path("scan-bad.jpg");
    REQUIRE(stbi_write_jpg(good, W, H, 3, px, 90));
    size_t n = 0;
    uint8_t *f = (uint8_t *)read_file(good, &n, 1 << 20, "test JPEG");
    REQUIRE(f);
    size_t sos = jpeg_segment(f, n, 0xDA);
    REQUIRE(sos && f[sos + 4] == 3);
    int h, w;
    uint8_t *a = image_load_u8(good, &h, &w);
    CHECK_MSG(a && h == H && w == W, "%s", sl_error_msg());
    free(a);
    f[sos + 6] = 0x22;   // component 1 uses DC table 2 and AC table 2: never defined
    const void *bufs[1] = {f};
    REQUIRE(atomic_write(bad, bufs, &n, 1) == 0);
    a = image_load_u8(bad, &h, &w);
    CHECK_MSG(!a && strstr(sl_error_msg(), "Huffman table no DHT segment defined") && strstr(sl_error_msg(), bad), "%s",
              sl_error_msg());
    uint8_t *b = image_decode_rgb(bad, &h, &w);
    CHECK_MSG(!b && strstr(sl_error_msg(), "no DHT segment defined"), "%s", sl_error_msg());
    free(a);
    free(b);
    free(f);
}

// The first IDAT of a PNG is empty (PNG allows it, no encoder writes it): stb_image 2.27 would
// offset its null data buffer (undefined behaviour, found by fuzz_image). Both decode paths
// refuse it with one error naming the file; the same image without the empty chunk decodes, and
// an empty IDAT after the first data chunk stays accepted.
TEST(hardening_image_png_empty_first_idat) {
    enum { W = 12, H = 9 };
    uint8_t px[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) px[i] = (uint8_t)(i * 29);
    const char *good = tmp_path("idat-good.png"), *bad = tmp_path("idat-bad.png"), *late = tmp_path("idat-late.png");
    REQUIRE(stbi_write_png(good, W, H, 3, px, W * 3));
    size_t n = 0;
    uint8_t *f = (uint8_t *)read_file(good, &n, 1 << 20, "test PNG");
    REQUIRE(f && n > 33 + 8 && !memcmp(f + 33 + 4, "IDAT", 4));   // signature 8 + IHDR chunk 25
    size_t idat_len = ((size_t)f[33] << 24) | ((size_t)f[34] << 16) | ((size_t)f[35] << 8) | f[36];
    static const uint8_t EMPTY_IDAT[12] = {0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xAF, 0x06, 0x1E};   // crc32("IDAT")
    const void *parts[3] = {f, EMPTY_IDAT, f + 33};
    size_t lens[3] = {33, 12, n - 33};
    REQUIRE(atomic_write(bad, parts, lens, 3) == 0);
    size_t after = 33 + 12 + idat_len;   // behind the first IDAT
    const void *parts2[3] = {f, EMPTY_IDAT, f + after};
    size_t lens2[3] = {after, 12, n - after};
    REQUIRE(atomic_write(late, parts2, lens2, 3) == 0);
    int h, w;
    uint8_t *a = image_load_u8(good, &h, &w);
    CHECK_MSG(a && h == H && w == W, "%s", sl_error_msg());
    free(a);
    a = image_load_u8(late, &h, &w);
    CHECK_MSG(a && h == H && w == W, "an empty IDAT after the data: %s", sl_error_msg());
    free(a);
    a = image_load_u8(bad, &h, &w);
    CHECK_MSG(!a && strstr(sl_error_msg(), "empty IDAT") && strstr(sl_error_msg(), bad), "%s", sl_error_msg());
    uint8_t *b = image_decode_rgb(bad, &h, &w);
    CHECK_MSG(!b && strstr(sl_error_msg(), "empty IDAT"), "%s", sl_error_msg());
    free(a);
    free(b);
    free(f);
}

// A binary PNM whose header number does not fit an int: stb_image 2.27 accumulates it with signed
// overflow (undefined behaviour, found by fuzz_image: "P5" then 15 digits). Refused with one error
// naming the file, through comments and whitespace as stb skips them; the largest number that fits
// (INT_MAX as the width) reaches stb's own size checks, and a small PGM/PPM still decodes.
TEST(hardening_image_pnm_header_overflow) {
    static const char *const BAD[] = {
        "P551555555555555\n\0\0\xbf",               // the fuzz input's shape: width 51555555555555
        "P6 4 # a comment\n 3000000000 255\n",      // height over INT_MAX after a comment
        "P5\n4 4\n99999999999\n",                   // maximum value
    };
    for (size_t k = 0; k < sizeof BAD / sizeof BAD[0]; k++) {
        const char *path = tmp_path("pnm-overflow.pgm");
        size_t n = strlen(BAD[k]) + (k == 0 ? 4 : 0);
        const void *parts[1] = {BAD[k]};
        REQUIRE(atomic_write(path, parts, &n, 1) == 0);
        int h, w;
        uint8_t *a = image_load_u8(path, &h, &w);
        CHECK_MSG(!a && strstr(sl_error_msg(), "header number") && strstr(sl_error_msg(), path), "case %zu: %s", k, sl_error_msg());
        free(a);
    }
    const char *edge = tmp_path("pnm-edge.pgm");
    static const char EDGE[] = "P5 2147483647 1 255\n";
    size_t ne = sizeof EDGE - 1;
    const void *pe[1] = {EDGE};
    REQUIRE(atomic_write(edge, pe, &ne, 1) == 0);
    int h, w;
    uint8_t *a = image_load_u8(edge, &h, &w);
    CHECK_MSG(!a && strstr(sl_error_msg(), "out of range") && !strstr(sl_error_msg(), "header number"), "%s", sl_error_msg());
    const char *good = tmp_path("pnm-good.ppm");
    static const char GOOD[] = "P6\n# two by one\n2 1\n255\n\x10\x20\x30\x40\x50\x60";
    size_t ng = sizeof GOOD - 1;
    const void *pg[1] = {GOOD};
    REQUIRE(atomic_write(good, pg, &ng, 1) == 0);
    a = image_load_u8(good, &h, &w);
    CHECK_MSG(a && h == 1 && w == 2 && a[0] == 0x10 && a[5] == 0x60, "%s", a ? "wrong pixels" : sl_error_msg());
    free(a);
}

// A 16-bit PGM/PPM (maximum value > 255) is refused before stb decodes it: stb_image 2.27 reads
// the samples little-endian (PNM is big-endian: silently wrong pixels), and for a one-channel PGM
// converts them to RGB with the 8-bit converter and then reads twice that buffer (heap overflow,
// fuzz_image after 264,149 inputs; the input is tests/fuzz/known/pgm-16bit-gray.pgm). 8-bit PGM
// and PPM still load.
TEST(hardening_image_pnm_16bit_refused) {
    static const char FOUND[] = "P55#/5#/\n55\n552)\n55/\n5\xe7" "A";   // width 5, comment, height 55, maximum 552
    static const char GRAY16[] = "P5 2 1 65535\n\x12\x34\x56\x78";
    static const char RGB16[] = "P6 1 1 256\n\x00\xff\x00\x80\x00\x00";
    const char *const bad[] = {FOUND, GRAY16, RGB16};
    const size_t bad_n[] = {sizeof FOUND - 1, sizeof GRAY16 - 1, sizeof RGB16 - 1};
    int h, w;
    for (int k = 0; k < 3; k++) {
        const char *path = tmp_path("sixteen.pnm");
        const void *parts[1] = {bad[k]};
        REQUIRE(atomic_write(path, parts, &bad_n[k], 1) == 0);
        uint8_t *a = image_load_u8(path, &h, &w);
        CHECK_MSG(!a && strstr(sl_error_msg(), "16-bit PGM/PPM") && strstr(sl_error_msg(), path), "case %d: %s", k,
                  sl_error_msg());
        free(a);
    }
    static const char GRAY8[] = "P5 2 1 255\n\x11\xee";
    const char *p8 = tmp_path("gray8.pgm");
    size_t n8 = sizeof GRAY8 - 1;
    const void *a8[1] = {GRAY8};
    REQUIRE(atomic_write(p8, a8, &n8, 1) == 0);
    uint8_t *a = image_load_u8(p8, &h, &w);
    CHECK_MSG(a && h == 1 && w == 2 && a[0] == 0x11 && a[1] == 0x11 && a[2] == 0x11 && a[3] == 0xee, "%s",
              a ? "wrong pixels" : sl_error_msg());
    free(a);
}
