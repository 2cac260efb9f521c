// Hardening: image headers that claim more pixels than the limit or than their file could hold
// are refused from the header (stbi_info), before stb_image allocates for them.
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "data/image.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
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
