// Other tools' names for singlora's samplers and sigma schedules, so their settings can be typed
// (or read back from their PNG metadata) as they are:
//   singlora     A1111 (and its old API names)       ComfyUI           stable-diffusion.cpp
//   ddim         DDIM                                ddim              -
//   euler        Euler, k_euler                      euler             euler
//   euler_a      Euler a, k_euler_a                  euler_ancestral   euler_a
//   dpmpp_2m     DPM++ 2M, k_dpmpp_2m                dpmpp_2m          dpm++2m
//   heun         Heun, k_heun                        heun              heun
// A1111's older combined names ("DPM++ 2M Karras", "k_dpmpp_2m_ka") also select karras sigmas.
// Sigma schedules: normal = A1111's Automatic / Uniform, ComfyUI's normal, sd.cpp's discrete / default;
// karras = Karras everywhere. Matching ignores case, spaces, '_' and '-'.
#pragma once
#include "engine/diffusion/sampler.h"

// 0 with *kind (and *karras = 1 when the name itself asks for karras sigmas, else 0), or -1
// with sl_error naming the sampler and listing the accepted names.
int sl_sampler_lookup(const char *name, sl_sampler_kind *kind, int *karras);
// 0 with *kind, or -1 with sl_error.
int sl_sigmas_lookup(const char *name, sl_sigmas_kind *kind);
// A1111's display name ("Euler a", "DPM++ 2M"), which its PNG Info maps back to the sampler.
const char *sl_sampler_a1111_name(sl_sampler_kind k);
