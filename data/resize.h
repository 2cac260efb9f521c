// Image resizing and cropping as torchvision does it on PIL images: PIL's antialiased bicubic
// (Keys a = -0.5, the support widened by the downscale factor, horizontal pass first, 22-bit
// fixed-point coefficients with the intermediate rounded and clipped to uint8 between the passes,
// as Pillow's Resample.c does for 8-bit images), torchvision's short-side resize size (the long
// side truncated) and its center-crop offset (round half to even).
#pragma once
#include <stdint.h>

// dst (dh, dw, channels) <- src (sh, sw, channels), interleaved uint8 rows. Bit-exact with
// PIL Image.resize((dw, dh), Image.BICUBIC) (no reducing_gap). dst must not alias src.
void image_resize_bicubic_u8(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh, int channels);

// torchvision Resize(size) with an int size: the short side becomes `size`, the long side
// int(size·long/short) (truncated). Output (rh, rw).
void resize_short_side_hw(int h, int w, int size, int *rh, int *rw);

// torchvision CenterCrop offset along one side: round((len - crop) / 2), half to even.
int center_crop_offset(int len, int crop);
