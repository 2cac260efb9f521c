#include "data/png.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/atomic_file.h"
#include "engine/core/crc32.h"
#include "engine/core/error.h"

// exported by Debian's libstb but declared only in the implementation part of the header
unsigned char *stbi_write_png_to_mem(const unsigned char *pixels, int stride_bytes, int x, int y, int n, int *out_len);

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// A tEXt chunk: length, "tEXt", key NUL value, CRC over type + data.
static uint8_t *text_chunk(const char *key, const char *value, size_t *len) {
    size_t kl = strlen(key), vl = strlen(value), dl = kl + 1 + vl;
    uint8_t *c = sl_malloc(12 + dl);
    put_be32(c, (uint32_t)dl);
    memcpy(c + 4, "tEXt", 4);
    memcpy(c + 8, key, kl);
    c[8 + kl] = 0;
    memcpy(c + 9 + kl, value, vl);
    put_be32(c + 8 + dl, crc32_update(0, c + 4, 4 + dl));
    *len = 12 + dl;
    return c;
}

int png_write(const char *path, const uint8_t *pixels, int w, int h, int channels, const char *const *keys,
              const char *const *values, int n_text) {
    for (int i = 0; i < n_text; i++) {
        size_t kl = strlen(keys[i]);
        if (kl < 1 || kl > 79) return sl_error(path, "PNG text key '%s' must be 1-79 bytes", keys[i]);
    }
    int png_len = 0;
    unsigned char *png = stbi_write_png_to_mem(pixels, w * channels, w, h, channels, &png_len);
    if (!png || png_len < 33) { free(png); return sl_error(path, "PNG encoding failed"); }
    // signature (8) + IHDR chunk (4 + 4 + 13 + 4) = 33 bytes, then our chunks, then the rest
    int nb = 2 + n_text;
    const void **bufs = sl_malloc(sizeof(void *) * (size_t)nb);
    size_t *lens = sl_malloc(sizeof(size_t) * (size_t)nb);
    bufs[0] = png;
    lens[0] = 33;
    for (int i = 0; i < n_text; i++) bufs[1 + i] = text_chunk(keys[i], values[i], &lens[1 + i]);
    bufs[nb - 1] = png + 33;
    lens[nb - 1] = (size_t)png_len - 33;
    int rc = atomic_write(path, bufs, lens, nb);
    for (int i = 0; i < n_text; i++) free((void *)bufs[1 + i]);
    free(bufs);
    free(lens);
    free(png);
    return rc;
}

char *png_read_text(const char *path, const char *key) {
    FILE *f = fopen(path, "rb");
    if (!f) { sl_error(path, "cannot open: %s", strerror(errno)); return NULL; }
    uint8_t sig[8];
    if (fread(sig, 1, 8, f) != 8 || memcmp(sig, "\x89PNG\r\n\x1a\n", 8) != 0) {
        fclose(f);
        sl_error(path, "not a PNG file");
        return NULL;
    }
    char *result = NULL;
    size_t klen = strlen(key);
    for (;;) {
        uint8_t head[8];
        if (fread(head, 1, 8, f) != 8) break;
        uint32_t len = get_be32(head);
        if (len > (1u << 30)) break;
        if (memcmp(head + 4, "tEXt", 4) == 0) {
            char *data = sl_malloc(len + 1);
            if (fread(data, 1, len, f) != len) { free(data); break; }
            data[len] = 0;
            if (len > klen && memcmp(data, key, klen) == 0 && data[klen] == 0) {
                result = sl_strdup(data + klen + 1);
                free(data);
                break;
            }
            free(data);
            if (fseek(f, 4, SEEK_CUR) != 0) break;
        } else {
            if (memcmp(head + 4, "IEND", 4) == 0) break;
            if (fseek(f, (long)len + 4, SEEK_CUR) != 0) break;
        }
    }
    fclose(f);
    return result;
}
