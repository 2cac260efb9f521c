// Linear layer, PyTorch convention: W (d_out, d_in) row-major, y = x·Wᵀ + b.
#pragma once

// y (M, d_out) = x (M, d_in) · Wᵀ + b (b may be NULL). GEMM through OpenBLAS.
void linear_forward(float *y, const float *x, const float *w, const float *b, int M, int d_in, int d_out);
// Accumulates (+=) into dx (M, d_in), dw (d_out, d_in), db (d_out); each may be NULL
// (a frozen layer passes dw = db = NULL and pays no dW GEMM).
void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M,
                     int d_in, int d_out);
