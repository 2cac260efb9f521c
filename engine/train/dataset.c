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
#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/core/sha256.h"
#include "engine/core/tensor.h"

// ---------------------------------------------------------------- files

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { sl_error(path, "cannot open: %s", strerror(errno)); return NULL; }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = sl_malloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap > (1u << 30)) { fclose(f); free(buf); sl_error(path, "image file larger than 1 GB"); return NULL; }
            cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) { fclose(f); free(buf); sl_die(path, "out of memory"); }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); sl_error(path, "read error"); return NULL; }
    *n = len;
    return buf;
}

static char *read_caption(const char *path) {
    size_t n;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fclose(f);
    uint8_t *b = read_all(path, &n);
    if (!b) return NULL;
    char *s = sl_malloc(n + 1);
    memcpy(s, b, n);
    s[n] = 0;
    free(b);
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
        if (ends_with(de->d_name, ".json") || ends_with(de->d_name, ".tmp")) continue;   // sidecars, partial writes
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
    qsort(f->images, (size_t)f->n, sizeof *f->images, cmp_names);
    int kept = 0;
    for (int i = 0; i < f->n; i++) {
        dataset_image *im = &f->images[i];
        int h, w;
        uint8_t *px = image_load_u8(im->path, &h, &w);   // the full decode: truncated and corrupt files fail here
        size_t n = 0;
        uint8_t *bytes = px ? read_all(im->path, &n) : NULL;
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
    uint8_t *bytes = read_all(path, &n);
    if (!bytes) return NULL;
    int w, h, comp;
    if (n == 0 || n > 0x7fffffff) { free(bytes); sl_error(path, "not a readable image"); return NULL; }
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

// Bicubic (a = −0.5) with the support widened by the scale factor when shrinking (the
// antialiased resampling PIL's resize does), separable, one pass per axis.
static double cubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

// out (n_out, stride_o) from in (n_in, stride_i) along one axis, for `lines` lines of `len` floats
static void resample_axis(float *out, const float *in, int n_in, int n_out, int len, int in_step, int out_step,
                          int line_step_in, int line_step_out, int lines) {
    const double scale = (double)n_in / n_out, fscale = scale > 1 ? scale : 1, support = 2.0 * fscale;
    double *wts = sl_malloc(sizeof(double) * (size_t)(2 * (int)ceil(support) + 2));
    for (int o = 0; o < n_out; o++) {
        double center = (o + 0.5) * scale;
        int lo = (int)floor(center - support + 0.5), hi = (int)floor(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > n_in) hi = n_in;
        double sum = 0;
        for (int i = lo; i < hi; i++) sum += wts[i - lo] = cubic((i - center + 0.5) / fscale);
        for (int i = lo; i < hi; i++) wts[i - lo] = sum != 0 ? wts[i - lo] / sum : 0;
        for (int l = 0; l < lines; l++)
            for (int c = 0; c < len; c++) {
                double acc = 0;
                for (int i = lo; i < hi; i++) acc += wts[i - lo] * in[(size_t)l * line_step_in + (size_t)i * in_step + c];
                out[(size_t)l * line_step_out + (size_t)o * out_step + c] = (float)acc;
            }
    }
    free(wts);
}

static uint8_t clamp_u8(float v) {
    float r = nearbyintf(v);
    return r < 0 ? 0 : r > 255 ? 255 : (uint8_t)r;
}

// dst (dh, dw, 3) from src (sh, sw, 3), antialiased bicubic. One function so that the project's
// data/resize.c can replace it.
static void resize_rgb_u8(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh) {
    float *in = sl_malloc(sizeof(float) * (size_t)sh * sw * 3);
    float *mid = sl_malloc(sizeof(float) * (size_t)sh * dw * 3);
    float *out = sl_malloc(sizeof(float) * (size_t)dh * dw * 3);
    for (size_t i = 0; i < (size_t)sh * sw * 3; i++) in[i] = src[i];
    resample_axis(mid, in, sw, dw, 3, 3, 3, sw * 3, dw * 3, sh);        // along x, each row
    resample_axis(out, mid, sh, dh, dw * 3, dw * 3, dw * 3, 0, 0, 1);   // along y, whole rows
    for (size_t i = 0; i < (size_t)dh * dw * 3; i++) dst[i] = clamp_u8(out[i]);
    free(in);
    free(mid);
    free(out);
}

float *image_prepare(const char *path, const image_prep *p, int flip) {
    int h, w;
    uint8_t *px = image_decode_rgb(path, &h, &w);
    if (!px) return NULL;
    const int R = p->resolution;
    // torchvision Resize(R): the shorter side becomes R, the longer int(R·long/short)
    int nh, nw;
    if (h <= w) { nh = R; nw = (int)((double)R * w / h); }
    else { nw = R; nh = (int)((double)R * h / w); }
    if (nw < R) nw = R;
    if (nh < R) nh = R;
    uint8_t *rs = px;
    if (nh != h || nw != w) {
        rs = sl_malloc((size_t)nh * nw * 3);
        resize_rgb_u8(px, w, h, rs, nw, nh);
        free(px);
    }
    int top, left;
    if (p->center_crop) {
        top = (int)lround((nh - R) / 2.0);
        left = (int)lround((nw - R) / 2.0);
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
