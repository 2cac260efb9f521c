// Image preprocessing of the fidelity models, bit-compatible with torchvision 0.14 on PIL:
// Resize(resize, BICUBIC) (short side) -> CenterCrop(crop) -> ToTensor -> Normalize(mean, std).
// DINO: resize = int(S·256/224), crop = S, ImageNet mean/std; CLIP: resize = crop = S, CLIP's.
#pragma once
#include <stdint.h>

typedef struct {
    int resize;       // short side after resizing
    int crop;         // square center crop (the model's image_size)
    float mean[3], std[3];
} preprocess_spec;

// The DINO and CLIP recipes for a model image size S.
preprocess_spec preprocess_dino(int image_size);
preprocess_spec preprocess_clip(int image_size);

// out (3, crop, crop) f32 from rgb (h, w, 3) uint8. The resized size and crop offset are
// returned when the pointers are non-NULL (resized_hw[2] = (rh, rw), offset[2] = (top, left)).
void preprocess_image(float *out, const uint8_t *rgb, int h, int w, const preprocess_spec *spec, int *resized_hw,
                      int *offset);
