// 8-bit PNG files with tEXt chunks (A1111 stores generation parameters in one named
// `parameters`). Encoding by stb_image_write; the chunks are spliced in after IHDR.
#pragma once
#include <stddef.h>
#include <stdint.h>

// Writes rgb (h, w, channels) 8-bit pixels atomically, with n_text key/value tEXt chunks
// (keys 1-79 Latin-1 bytes; values are stored as given). 0, or -1 with sl_error.
int png_write(const char *path, const uint8_t *pixels, int w, int h, int channels, const char *const *keys,
              const char *const *values, int n_text);
// The value of the first tEXt chunk named key (malloc'd), or NULL (sl_error set when the file
// is unreadable or not a PNG; no error when the chunk is just absent).
char *png_read_text(const char *path, const char *key);
