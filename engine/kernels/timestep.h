// Sinusoidal timestep embedding as diffusers' get_timestep_embedding computes it (in f32).
#pragma once

// out (N, dim): freqs_i = exp(-ln(10000)·i / (half - freq_shift)), args = t·freqs;
// [sin, cos] or [cos, sin] when flip_sin_to_cos. Odd dim pads one zero column.
void timestep_embedding(float *out, const float *t, int N, int dim, int flip_sin_to_cos, float freq_shift);
