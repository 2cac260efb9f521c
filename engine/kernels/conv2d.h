// 2-D convolution, NCHW, square kernel, PyTorch weight layout (C_out, C_in, k, k).
#pragma once
#include <stdint.h>

typedef struct {
    int N, C_in, H, W;     // input
    int C_out, k, stride, pad;
} conv2d_shape;

int conv2d_out_h(conv2d_shape s);   // (H + 2·pad - k) / stride + 1
int conv2d_out_w(conv2d_shape s);

// out (N, C_out, H_out, W_out) = conv(inp (N, C_in, H, W), w) + b (b may be NULL).
void conv2d_forward(float *out, const float *inp, const float *w, const float *b, conv2d_shape s);
// Accumulates (+=) into dinp, dw, db; each may be NULL.
void conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                     conv2d_shape s);

// conv2d_forward/backward keep an im2col buffer per thread (at most 16 MB by default) across
// calls; this frees the calling thread's buffer.
void conv2d_release_workspace(void);
// Caps the im2col buffer at `floats` (default 4M = 16 MB); bigger images run in bands of output
// rows (at least one row per band). Not thread-safe: set it before running convolutions.
void conv2d_set_workspace_limit(int64_t floats);
