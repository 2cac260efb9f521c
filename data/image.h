// Image files <-> float tensors. Loading goes through stb_image (PNG, JPEG, BMP, and the other
// formats it reads); saving writes 8-bit PNG through stb_image_write. Pixels map to [-1, 1] as
// diffusers' VaeImageProcessor does: x = v/255·2 - 1, and back v = round(clamp(x/2 + 0.5, 0, 1)·255)
// with round-half-to-even (numpy's round).
#pragma once
#include <stddef.h>
#include <stdint.h>

// (3, H, W) float in [-1, 1], RGB (grey is replicated, alpha dropped as PIL's convert("RGB")).
// Returns a buffer from sl_alloc_f32 (free with sl_free_aligned), or NULL with sl_error naming
// the file and the problem (missing, unreadable, corrupt, not an image).
float *image_load(const char *path, int *H, int *W);
// What every decode checks first on a file's bytes: a format stb_image reads, the pixel limit
// (64 MP) and a header that the file's size can back, JPEG Huffman tables stb 2.27 would overrun
// and a JPEG end-of-image marker. 0, or -1 with sl_error naming path.
int image_check_bytes(const char *path, const uint8_t *buf, size_t n);
// 8-bit RGB (H, W, 3) from a file, as stb_image decodes it; free with free(). NULL with sl_error.
uint8_t *image_load_u8(const char *path, int *H, int *W);

// (C, H, W) [-1, 1] float -> interleaved 8-bit (H, W, C).
void image_to_u8(uint8_t *out, const float *img, int C, int H, int W);
// 8-bit (H, W, C) -> (C, H, W) float in [-1, 1].
void image_from_u8(float *out, const uint8_t *px, int C, int H, int W);

// Writes (C, H, W) float in [-1, 1] (C = 1, 3 or 4) as an 8-bit PNG. 0, or -1 with sl_error.
int image_save_png(const char *path, const float *img, int C, int H, int W);
// The same with tEXt chunks (e.g. A1111's "parameters").
int image_save_png_text(const char *path, const float *img, int C, int H, int W, const char *const *keys,
                        const char *const *values, int n_text);
