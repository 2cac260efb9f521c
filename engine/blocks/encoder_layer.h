// The pre-LN Transformer encoder layer of CLIP's text and image towers and of DINO's ViT:
//   x += o(attention(q(LN1(x)), k(LN1(x)), v(LN1(x))));   x += fc2(act(fc1(LN2(x))))
// on a (N, L, D) residual stream with H heads of D/H and an MLP of width I.
#pragma once
#include <stdint.h>

typedef struct {
    float *ln1_w, *ln1_b;                       // (D)
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;   // (D, D), (D) (biases may be NULL)
    float *o_w, *o_b;                           // (D, D), (D)
    float *ln2_w, *ln2_b;                       // (D)
    float *fc1_w, *fc1_b;                       // (I, D), (I)
    float *fc2_w, *fc2_b;                       // (D, I), (D)
} encoder_layer;

typedef enum { ENCODER_ACT_GELU, ENCODER_ACT_QUICK_GELU } encoder_act;

typedef struct {
    int N, L, D, H, I;
    float eps;          // LayerNorm epsilon
    encoder_act act;
    int causal;         // CLIP's text tower masks future tokens
} encoder_shape;

// One layer's buffers at a shape, written by the forward. After a forward they hold that
// layer's activations, so a scratch kept per layer is the tape of encoder_layer_backward:
// x_in, x_mid (N·L, D): the residual stream entering the layer and after the attention half;
// ln1, ln2, q, k, v, a, tmp (N·L, D); pre, mlp (N·L, I): fc1's output before / after the
// activation; mean1, rstd1, mean2, rstd2 (N·L): the two LayerNorms' statistics.
typedef struct {
    float *x_in, *x_mid, *ln1, *ln2, *q, *k, *v, *a, *tmp, *pre, *mlp;
    float *mean1, *rstd1, *mean2, *rstd2;
} encoder_scratch;
void encoder_scratch_alloc(encoder_scratch *s, const encoder_shape *sh);
void encoder_scratch_free(encoder_scratch *s);

// x (N, L, D) in place.
void encoder_layer_forward(float *x, const encoder_layer *y, const encoder_shape *sh, encoder_scratch *s);
// dx (N, L, D): the gradient at the layer's output on entry, at its input on return. The
// parameter gradients accumulate (+=) into g's buffers (any may be NULL: not trained);
// s is the scratch of this layer's forward.
void encoder_layer_backward(float *dx, encoder_layer *g, const encoder_layer *y, const encoder_shape *sh,
                            const encoder_scratch *s);
