// A 3x3 box blur in integers (edge pixels average their in-image neighbours), repeated
// `passes` times: the scorer's stand-in for the softness of a small diffusion model's images,
// used to build templates and references that match blurry output as well as crisp renders.
#pragma once
#include <stdint.h>

// Blurs rgb (h, w, 3) in place.
void blur_box3(uint8_t *rgb, int w, int h, int passes);
