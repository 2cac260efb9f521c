#include "pipeline/caption_samples.h"

#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/world/dataset.h"
#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "engine/core/tensor.h"
#include "engine/io/folders.h"
#include "engine/train/generate.h"

int sample_captions(const sd_model *m, const char (*captions)[CAPTION_MAX], int n, const caption_sample_opts *o,
                    const char *dir, uint8_t *rgb) {
    if (mkdir_p(dir) != 0 || folder_check_writable(dir) != 0) return -1;
    const int S = o->size;
    float *img = sl_alloc_f32((int64_t)3 * S * S);
    uint8_t *hwc = sl_malloc((size_t)S * S * 3);   // (S, S, 3)
    progress bar;
    if (o->label) progress_start(&bar, o->label, n);
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        rc = train_generate_image(m, captions[k], S, S, o->seed + (uint64_t)k, o->steps, o->cfg, img);
        if (rc != 0) break;
        image_to_u8(hwc, img, 3, S, S);
        rc = world_write_example(dir, k, hwc, S, captions[k]);
        if (rgb) memcpy(rgb + (size_t)k * S * S * 3, hwc, (size_t)S * S * 3);
        if (o->label) progress_step(&bar, NULL);
    }
    if (o->label) progress_end(&bar);
    free(hwc);
    sl_free_aligned(img);
    return rc;
}
