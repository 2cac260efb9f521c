// Multi-head scaled dot-product attention, tiled over queries: no (Lq × Lk) buffer per head
// larger than one tile of queries exists. Token layout (B, L, H·Dh), heads interleaved in the
// channel dim as PyTorch's reshape gives.
#pragma once

// out (B, Lq, H·Dh) = softmax(q·kᵀ·scale [+ causal mask]) · v, per batch and head.
// q (B, Lq, H·Dh), k and v (B, Lk, H·Dh). causal: query i sees keys j <= i (CLIP text).
void attention_forward(float *out, const float *q, const float *k, const float *v, int B, int Lq, int Lk, int H,
                       int Dh, float scale, int causal);
// Accumulates (+=) into dq, dk, dv (each may be NULL); recomputes the softmax per query tile.
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, int B, int Lq, int Lk, int H, int Dh, float scale, int causal);
