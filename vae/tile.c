// Tiled encode/decode, so large images never need the full-resolution activations at once.
//
// Only the full-resolution levels are tiled: the latent-resolution mid block (whose attention
// sees every token) runs once on the whole latent. Each tile is computed on a window widened by
// a context margin that is thrown away afterwards, so the zero padding of its convolutions does
// not reach the part it keeps; the kept parts overlap and are blended with a raised-cosine ramp,
// so there is no seam. What remains different from the untiled model is GroupNorm: each tile
// normalises with its own window's statistics (as diffusers' tiled VAE does), not the whole
// image's. (Sharing statistics across tiles from an earlier pass was tried: mixing one pass's
// statistics with another pass's activations amplifies the mismatch and diverges.)
#include <math.h>
#include <string.h>

#include "engine/core/tensor.h"
#include "vae/forward.h"

#define MAX_TILES 256

vae_tiling vae_tiling_default(void) { return (vae_tiling){64, 16, 4}; }

// One tile along one axis, in latent pixels: it keeps [s, e), blended with its neighbours over
// [s, prev_end) and [next, e) (-1: no neighbour), and is computed on the window [a, b).
typedef struct { int a, b, s, e, prev_end, next; } axis_tile;

// Splits an axis of `len` into the fewest tiles of at most `tile` that overlap by at least
// `overlap`, all of one size, spread evenly. Returns the count.
static int split_axis(axis_tile *t, int len, int tile, int overlap, int context) {
    int n = 1, size = len;
    if (len > tile) {
        n = (len - overlap + (tile - overlap) - 1) / (tile - overlap);   // ceil((len - overlap) / stride)
        if (n < 2) n = 2;
        if (n > MAX_TILES) n = MAX_TILES;
        size = (len + (n - 1) * overlap + n - 1) / n;                      // shrink to share the length evenly
        if (size > len) size = len;
    }
    for (int i = 0; i < n; i++) t[i].s = n > 1 ? (int)((int64_t)i * (len - size) / (n - 1)) : 0;
    for (int i = 0; i < n; i++) {
        t[i].e = t[i].s + size;
        t[i].prev_end = i > 0 ? t[i - 1].s + size : -1;
        t[i].next = i + 1 < n ? t[i + 1].s : -1;
        t[i].a = t[i].s - context > 0 ? t[i].s - context : 0;
        t[i].b = t[i].e + context < len ? t[i].e + context : len;
    }
    return n;
}

// Blend weights over a tile's window, (b - a)·scale values at `scale` pixels per latent pixel:
// 0 outside [s, e), a raised-cosine ramp across each overlap (two tiles' weights sum to 1
// there, the pixels nearest a tile's edge weigh least), 1 elsewhere.
static void axis_weights(float *w, const axis_tile *t, int scale) {
    int s = t->s * scale, e = t->e * scale, pe = t->prev_end * scale, nx = t->next * scale;
    for (int x = t->a * scale; x < t->b * scale; x++) {
        float v = x >= s && x < e ? 1.0f : 0.0f;
        if (v > 0 && t->prev_end > t->s && x < pe) {
            float u = ((float)(x - s) + 0.5f) / (float)(pe - s);
            v = fminf(v, 0.5f - 0.5f * cosf((float)M_PI * u));
        }
        if (v > 0 && t->next >= 0 && t->next < t->e && x >= nx) {
            float u = ((float)(e - x) - 0.5f) / (float)(e - nx);
            v = fminf(v, 0.5f - 0.5f * cosf((float)M_PI * u));
        }
        w[x - t->a * scale] = v;
    }
}

// Crop (N, C, th, tw) at (y0, x0) out of src (N, C, H, W).
static void crop(float *dst, const float *src, int N, int C, int H, int W, int y0, int x0, int th, int tw) {
#pragma omp parallel for schedule(static)
    for (int nc = 0; nc < N * C; nc++)
        for (int y = 0; y < th; y++)
            memcpy(dst + ((int64_t)nc * th + y) * tw, src + ((int64_t)nc * H + y0 + y) * W + x0, sizeof(float) * tw);
}

// dst (N, C, H, W) at (y0, x0) += wy[y]·wx[x]·tile (N, C, th, tw); wsum (H, W) += wy·wx.
static void blend_add(float *dst, float *wsum, const float *tile, const float *wy, const float *wx, int N, int C, int H,
                      int W, int y0, int x0, int th, int tw) {
#pragma omp parallel for schedule(static)
    for (int nc = 0; nc < N * C; nc++)
        for (int y = 0; y < th; y++) {
            if (wy[y] == 0.0f) continue;
            float *d = dst + ((int64_t)nc * H + y0 + y) * W + x0;
            const float *t = tile + ((int64_t)nc * th + y) * tw;
            for (int x = 0; x < tw; x++) d[x] += wy[y] * wx[x] * t[x];
        }
    for (int y = 0; y < th; y++)
        for (int x = 0; x < tw; x++) wsum[(int64_t)(y0 + y) * W + x0 + x] += wy[y] * wx[x];
}

static void normalize(float *dst, const float *wsum, int NC, int64_t HW) {
#pragma omp parallel for schedule(static)
    for (int nc = 0; nc < NC; nc++)
        for (int64_t i = 0; i < HW; i++) dst[(int64_t)nc * HW + i] /= wsum[i];
}

// 1 when the tiling applies to an (h, w) latent; clamps the overlap and context.
static int use_tiles(vae_tiling *t, int h, int w) {
    if (t->tile <= 0 || (h <= t->tile && w <= t->tile)) return 0;
    if (t->overlap < 0) t->overlap = 0;
    if (t->overlap > t->tile / 2) t->overlap = t->tile / 2;   // every pixel in at most two tiles per axis
    if (t->context < 0) t->context = 0;
    return 1;
}

void vae_decode_tiled(const vae_model *m, float *image, const float *latent, int N, int h, int w, vae_tiling t) {
    if (!use_tiles(&t, h, w)) { vae_decode(m, image, latent, N, h, w); return; }
    const vae_config *c = &m->cfg;
    int f = vae_factor(c), C = c->block_out[c->n_levels - 1], Co = c->out_channels;
    int H = h * f, W = w * f;
    float *feat = vae_decoder_head(m, latent, N, h, w);   // (N, C, h, w), the whole latent
    axis_tile ty[MAX_TILES], tx[MAX_TILES];
    int ny = split_axis(ty, h, t.tile, t.overlap, t.context), nx = split_axis(tx, w, t.tile, t.overlap, t.context);
    float *wsum = sl_alloc_f32((int64_t)H * W);
    memset(image, 0, sizeof(float) * (size_t)N * Co * H * W);
    memset(wsum, 0, sizeof(float) * (size_t)H * W);
    for (int iy = 0; iy < ny; iy++)
        for (int ix = 0; ix < nx; ix++) {
            const axis_tile *y = &ty[iy], *x = &tx[ix];
            int wh = y->b - y->a, ww = x->b - x->a;                        // the window, latent pixels
            float *ft = sl_alloc_f32((int64_t)N * C * wh * ww);          // (N, C, wh, ww), consumed
            crop(ft, feat, N, C, h, w, y->a, x->a, wh, ww);
            float *out = sl_alloc_f32((int64_t)N * Co * wh * f * ww * f);   // (N, Co, wh·f, ww·f)
            vae_decoder_levels(m, out, ft, N, wh, ww);
            float *wy = sl_alloc_f32((int64_t)wh * f), *wx = sl_alloc_f32((int64_t)ww * f);
            axis_weights(wy, y, f);
            axis_weights(wx, x, f);
            blend_add(image, wsum, out, wy, wx, N, Co, H, W, y->a * f, x->a * f, wh * f, ww * f);
            sl_free_aligned(out), sl_free_aligned(wy), sl_free_aligned(wx);
        }
    normalize(image, wsum, N * Co, (int64_t)H * W);
    sl_free_aligned(wsum), sl_free_aligned(feat);
}

void vae_encode_tiled(const vae_model *m, float *moments, const float *image, int N, int H, int W, vae_tiling t) {
    const vae_config *c = &m->cfg;
    int f = vae_factor(c);
    int h = H / f, w = W / f;
    // tiles cut the image at multiples of f so that their latents line up
    if (H % f || W % f || !use_tiles(&t, h, w)) { vae_encode(m, moments, image, N, H, W); return; }
    int C = c->block_out[c->n_levels - 1], Ci = c->in_channels;
    axis_tile ty[MAX_TILES], tx[MAX_TILES];
    int ny = split_axis(ty, h, t.tile, t.overlap, t.context), nx = split_axis(tx, w, t.tile, t.overlap, t.context);
    float *feat = sl_alloc_f32((int64_t)N * C * h * w);   // (N, C, h, w): blended level outputs
    float *wsum = sl_alloc_f32((int64_t)h * w);
    memset(feat, 0, sizeof(float) * (size_t)N * C * h * w);
    memset(wsum, 0, sizeof(float) * (size_t)h * w);
    for (int iy = 0; iy < ny; iy++)
        for (int ix = 0; ix < nx; ix++) {
            const axis_tile *y = &ty[iy], *x = &tx[ix];
            int wh = y->b - y->a, ww = x->b - x->a;
            float *img = sl_alloc_f32((int64_t)N * Ci * wh * f * ww * f);   // (N, Ci, wh·f, ww·f)
            crop(img, image, N, Ci, H, W, y->a * f, x->a * f, wh * f, ww * f);
            int hh, wo;
            float *ft = vae_encoder_levels(m, img, N, wh * f, ww * f, &hh, &wo);   // (N, C, wh, ww)
            sl_free_aligned(img);
            float *wy = sl_alloc_f32(wh), *wx = sl_alloc_f32(ww);
            axis_weights(wy, y, 1);
            axis_weights(wx, x, 1);
            blend_add(feat, wsum, ft, wy, wx, N, C, h, w, y->a, x->a, wh, ww);
            sl_free_aligned(wy), sl_free_aligned(wx), sl_free_aligned(ft);
        }
    normalize(feat, wsum, N * C, (int64_t)h * w);
    sl_free_aligned(wsum);
    vae_encoder_head(m, moments, feat, N, h, w);   // consumes feat
}
