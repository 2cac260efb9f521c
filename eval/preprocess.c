// torchvision's Resize -> CenterCrop -> ToTensor -> Normalize on uint8 RGB.
#include "eval/preprocess.h"

#include <stdlib.h>

#include "data/resize.h"
#include "engine/core/error.h"

preprocess_spec preprocess_dino(int image_size) {
    preprocess_spec s = {image_size * 256 / 224, image_size, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
    return s;
}

preprocess_spec preprocess_clip(int image_size) {
    preprocess_spec s = {image_size, image_size, {0.48145466f, 0.4578275f, 0.40821073f},
                         {0.26862954f, 0.26130258f, 0.27577711f}};
    return s;
}

void preprocess_image(float *out, const uint8_t *rgb, int h, int w, const preprocess_spec *spec, int *resized_hw,
                      int *offset) {
    int rh, rw, S = spec->crop;
    resize_short_side_hw(h, w, spec->resize, &rh, &rw);
    uint8_t *rs = sl_malloc((size_t)rh * rw * 3);   // (rh, rw, 3)
    image_resize_bicubic_u8(rs, rw, rh, rgb, w, h, 3);
    int top = center_crop_offset(rh, S), left = center_crop_offset(rw, S);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                int sy = y + top, sx = x + left;
                // torchvision pads with zeros where the crop exceeds the image
                uint8_t v = (sy >= 0 && sy < rh && sx >= 0 && sx < rw) ? rs[((size_t)sy * rw + sx) * 3 + c] : 0;
                float t = (float)v / 255.0f;   // ToTensor (f32 division), then Normalize in f32
                out[((size_t)c * S + y) * S + x] = (t - spec->mean[c]) / spec->std[c];
            }
    free(rs);
    if (resized_hw) { resized_hw[0] = rh; resized_hw[1] = rw; }
    if (offset) { offset[0] = top; offset[1] = left; }
}
