// A DreamBooth image folder: every file stb_image reads, sorted by name (unreadable ones are
// named in a warning and skipped), each with its sidecar caption (NAME + caption extension,
// e.g. photo.jpg -> photo.txt) when one exists; and the preparation of one image for the VAE:
// EXIF orientation (JPEG), RGBA composited on white, greyscale to RGB, the shorter side resized
// to the resolution with an antialiased filter, a center or fixed random crop, a horizontal flip.
#pragma once
#include <stdint.h>

typedef struct {
    char *path;         // DIR/NAME
    char *name;         // NAME
    char *caption;      // the sidecar caption (trimmed), or NULL
    uint8_t sha[32];    // SHA-256 of the file's bytes (the cache key's part)
} dataset_image;

typedef struct {
    char *dir;
    dataset_image *images;   // (n) sorted by name
    int n;
} image_folder;

// Scans dir. caption_ext (e.g. ".txt"; NULL or "" = no captions) files are never images.
// A folder that does not exist is an error; with require_one, so is one without a readable
// image (naming the folder). 0, or -1 with sl_error.
int image_folder_scan(image_folder *f, const char *dir, const char *caption_ext, int require_one);
void image_folder_free(image_folder *f);

typedef struct {
    int resolution;      // output R x R
    int center_crop;     // 1: centered; 0: a crop offset drawn once per image from crop_seed
    uint64_t crop_seed;
} image_prep;

// (3, R, R) float in [-1, 1] of the image at `path`, flipped left-right when flip. From
// sl_alloc_f32; NULL with sl_error naming the file.
float *image_prepare(const char *path, const image_prep *p, int flip);
// The decoded pixels as the dataset sees them: (H, W, 3) 8-bit RGB, EXIF-oriented, alpha
// composited on white (free with free()). NULL with sl_error.
uint8_t *image_decode_rgb(const char *path, int *H, int *W);
