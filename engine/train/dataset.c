#include "engine/train/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb/stb_image.h>

#include "data/image.h"
#include "data/resize.h"
#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/core/sha256.h"
#include "engine/io/atomic_file.h"
#include "engine/io/file_read.h"
#include "engine/core/tensor.h"

// ---------------------------------------------------------------- files

static char *read_caption(const char *path) {
    size_t n;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fclose(f);
    char *s = read_file(path, &n, 1u << 20, "caption file");
    if (!s) return NULL;
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    size_t a = 0, e = strlen(s);
    while (a < e && s[a] == ' ') a++;
    while (e > a && s[e - 1] == ' ') e--;
    memmove(s, s + a, e - a);
    s[e - a] = 0;
    if (!*s) { free(s); return NULL; }
    return s;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return b && a >= b && strcmp(s + a - b, suf) == 0;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(((const dataset_image *)a)->name, ((const dataset_image *)b)->name);
}

int image_folder_scan(image_folder *f, const char *dir, const char *caption_ext, int require_one) {
    memset(f, 0, sizeof *f);
    DIR *d = opendir(dir);
    if (!d) return sl_error(dir, "cannot open the image folder: %s", strerror(errno));
    f->dir = sl_strdup(dir);
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (caption_ext && *caption_ext && ends_with(de->d_name, caption_ext)) continue;
        if (ends_with(de->d_name, ".json") || ends_with(de->d_name, ".tmp") || is_atomic_temporary(de->d_name))
            continue;   // sidecars, partial writes
        size_t pl = strlen(dir) + strlen(de->d_name) + 2;
        char *path = sl_malloc(pl);
        snprintf(path, pl, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) { free(path); continue; }
        if (f->n == cap) {
            cap = cap ? 2 * cap : 16;
            dataset_image *ni = realloc(f->images, sizeof *ni * (size_t)cap);
            if (!ni) sl_die(dir, "out of memory");
            f->images = ni;
        }
        dataset_image *im = &f->images[f->n++];
        memset(im, 0, sizeof *im);
        im->path = path;
        im->name = sl_strdup(de->d_name);
    }
    closedir(d);
    if (f->n > 1) qsort(f->images, (size_t)f->n, sizeof *f->images, cmp_names);   // (an empty folder: images is NULL)
    int kept = 0;
    for (int i = 0; i < f->n; i++) {
        dataset_image *im = &f->images[i];
        int h, w;
        uint8_t *px = image_load_u8(im->path, &h, &w);   // the full decode: truncated and corrupt files fail here
        size_t n = 0;
        uint8_t *bytes = px ? (uint8_t *)read_file(im->path, &n, 1u << 30, "image file") : NULL;
        if (!px || !bytes) {
            sl_warn("%s (skipped)", sl_error_msg());
            free(px);
            free(im->path);
            free(im->name);
            continue;
        }
        free(px);
        sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, bytes, n);
        sha256_final(&c, im->sha);
        free(bytes);
        if (caption_ext && *caption_ext) {
            const char *dot = strrchr(im->name, '.');
            size_t stem = dot ? (size_t)(dot - im->name) : strlen(im->name);
            size_t pl = strlen(dir) + stem + strlen(caption_ext) + 2;
            char *cp = sl_malloc(pl);
            snprintf(cp, pl, "%s/%.*s%s", dir, (int)stem, im->name, caption_ext);
            im->caption = read_caption(cp);
            free(cp);
        }
        f->images[kept++] = *im;
    }
    f->n = kept;
    sl_error_clear();
    if (require_one && f->n == 0) {
        image_folder_free(f);
        return sl_error(dir, "no readable image in the folder (PNG, JPEG, BMP, GIF, TGA, PSD, PNM, HDR)");
    }
    return 0;
}

void image_folder_free(image_folder *f) {
    for (int i = 0; i < f->n; i++) {
        free(f->images[i].path);
        free(f->images[i].name);
        free(f->images[i].caption);
    }
    free(f->images);
    free(f->dir);
    memset(f, 0, sizeof *f);
}

// ---------------------------------------------------------------- EXIF orientation

static unsigned rd16(const uint8_t *p, int le) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; }
static uint32_t rd32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

// The EXIF Orientation (1..8) of a JPEG, 1 when absent or unreadable.
static int jpeg_orientation(const uint8_t *p, size_t n) {
    if (n < 4 || p[0] != 0xFF || p[1] != 0xD8) return 1;
    size_t i = 2;
    while (i + 4 <= n && p[i] == 0xFF) {
        uint8_t m = p[i + 1];
        if (m == 0xDA || m == 0xD9) break;
        size_t seg = (size_t)p[i + 2] << 8 | p[i + 3];
        if (seg < 2 || i + 2 + seg > n) break;
        const uint8_t *s = p + i + 4;
        size_t len = seg - 2;
        if (m == 0xE1 && len >= 14 && memcmp(s, "Exif\0\0", 6) == 0) {
            const uint8_t *t = s + 6;
            size_t tl = len - 6;
            int le = t[0] == 'I' && t[1] == 'I';
            if (!le && !(t[0] == 'M' && t[1] == 'M')) return 1;
            uint32_t ifd = rd32(t + 4, le);
            if (ifd + 2 > tl) return 1;
            unsigned cnt = rd16(t + ifd, le);
            for (unsigned k = 0; k < cnt; k++) {
                size_t e = ifd + 2 + 12 * (size_t)k;
                if (e + 12 > tl) return 1;
                if (rd16(t + e, le) == 0x0112) {
                    unsigned v = rd16(t + e + 8, le);
                    return v >= 1 && v <= 8 ? (int)v : 1;
                }
            }
            return 1;
        }
        i += 2 + seg;
    }
    return 1;
}

// px (H, W, 4) re-oriented for display (the transposes PIL's exif_transpose applies).
static uint8_t *apply_orientation(uint8_t *px, int *H, int *W, int o) {
    if (o == 1) return px;
    const int h = *H, w = *W, swap = o >= 5;
    const int oh = swap ? w : h, ow = swap ? h : w;
    uint8_t *out = sl_malloc((size_t)oh * ow * 4);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            switch (o) {
            case 2: sx = w - 1 - x; sy = y; break;
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;
            case 4: sx = x; sy = h - 1 - y; break;
            case 5: sx = y; sy = x; break;
            case 6: sx = y; sy = h - 1 - x; break;
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;
            default: sx = w - 1 - y; sy = x; break;   // 8
            }
            memcpy(out + ((size_t)y * ow + x) * 4, px + ((size_t)sy * w + sx) * 4, 4);
        }
    stbi_image_free(px);
    *H = oh, *W = ow;
    return out;
}

uint8_t *image_decode_rgb(const char *path, int *H, int *W) {
    size_t n = 0;
    uint8_t *bytes = (uint8_t *)read_file(path, &n, 1u << 30, "image file");
    if (!bytes) return NULL;
    int w, h, comp;
    if (image_check_bytes(path, bytes, n) != 0) { free(bytes); return NULL; }
    uint8_t *px = stbi_load_from_memory(bytes, (int)n, &w, &h, &comp, 4);   // grey and RGB expand to RGBA
    if (!px) {
        free(bytes);
        sl_error(path, "corrupt image (stb_image: %s)", stbi_failure_reason() ? stbi_failure_reason() : "decoding failed");
        return NULL;
    }
    int o = jpeg_orientation(bytes, n);
    free(bytes);
    px = apply_orientation(px, &h, &w, o);
    uint8_t *rgb = sl_malloc((size_t)h * w * 3);
    for (size_t i = 0; i < (size_t)h * w; i++) {
        // alpha over white, as PIL's alpha_composite on a white background then convert("RGB")
        unsigned a = px[4 * i + 3];
        for (int c = 0; c < 3; c++) {
            unsigned v = px[4 * i + c];
            rgb[3 * i + c] = (uint8_t)((v * a + 255u * (255u - a) + 127u) / 255u);
        }
    }
    free(px);
    *H = h, *W = w;
    return rgb;
}

// ---------------------------------------------------------------- resize, crop, flip

float *image_prepare(const char *path, const image_prep *p, int flip) {
    int h, w;
    uint8_t *px = image_decode_rgb(path, &h, &w);
    if (!px) return NULL;
    const int R = p->resolution;
    // torchvision Resize(R) on a PIL image (antialiased bicubic): the shorter side becomes R
    int nh, nw;
    resize_short_side_hw(h, w, R, &nh, &nw);
    uint8_t *rs = px;
    if (nh != h || nw != w) {
        rs = sl_malloc((size_t)nh * nw * 3);
        image_resize_bicubic_u8(rs, nw, nh, px, w, h, 3);
        free(px);
    }
    int top, left;
    if (p->center_crop) {
        top = center_crop_offset(nh, R);
        left = center_crop_offset(nw, R);
    } else {   // RandomCrop, drawn once per image so its latents can be cached
        sl_rng r;
        sl_rng_seed(&r, p->crop_seed);
        top = (int)sl_rng_randint(&r, (uint64_t)(nh - R + 1));
        left = (int)sl_rng_randint(&r, (uint64_t)(nw - R + 1));
    }
    float *img = sl_alloc_f32((int64_t)3 * R * R);   // (3, R, R)
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < R; y++)
            for (int x = 0; x < R; x++) {
                int sx = left + (flip ? R - 1 - x : x);
                float v = (float)rs[((size_t)(top + y) * nw + sx) * 3 + c] / 255.0f;
                img[((size_t)c * R + y) * R + x] = 2.0f * v - 1.0f;
            }
    free(rs);
    return img;
}
