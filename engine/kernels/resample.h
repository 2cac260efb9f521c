// Nearest-neighbour 2× upsampling, NCHW.
#pragma once

// out (N, C, 2H, 2W) from x (N, C, H, W).
void upsample_nearest2x_forward(float *out, const float *x, int N, int C, int H, int W);
// dx (N, C, H, W) += sum of the 4 gradients each input pixel fed.
void upsample_nearest2x_backward(float *dx, const float *dout, int N, int C, int H, int W);
