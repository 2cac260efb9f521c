// Frozen GEMM weights held in bf16: half the memory of f32, for `--precision bf16` runs whose
// base weights never change (sampling, adapter training). Under that precision every GEMM rounds
// its operands to bf16 anyway (round to nearest even), so a held weight gives bit-identical
// results and saves the per-call conversion too.
//
// A held weight keeps its place in the model: its slot then points to a placeholder, an address
// range of the f32 size that is reserved but never readable (PROT_NONE, no memory behind it). The
// GEMM entry points (engine/kernels/gemm.c) look each operand's address up here and read the bf16
// copy instead; any other f32 read of a held weight faults at once rather than computing with
// garbage. Pointers into a held weight (a row offset) find it too. sl_free_aligned releases
// placeholders (both the range and the bf16 copy), so the models' free walks need no change.
//
// Held weights are added and removed while nothing computes (at load and free); lookups from any
// number of threads are safe between those times.
#pragma once
#include <stdint.h>

// Converts the n floats at *slot to bf16, frees them (sl_free_aligned) and points *slot at the
// placeholder. A NULL slot, n <= 0 or an already held weight is left as it is. Dies on OOM.
void bf16_weights_hold(float **slot, int64_t n);

// p inside a held weight: its bf16 element at the same index (p's offset / 4), else NULL.
const uint16_t *bf16_weights_find(const float *p);

// Undoes a hold: *slot gets f32 again (the bf16 values widened, so rounded to bf16 once), for a
// layer that turns out to need its f32 weight (an adapter attached to it reads W0). A slot that
// is not held is left as it is.
void bf16_weights_unhold(float **slot);

// p a held weight's placeholder: releases it and its bf16 copy, 1; else 0 (p untouched).
int bf16_weights_release(void *p);

// The switch the model loaders read (unet_load, vae_load, clip_text_load; sd_model_load sets it
// per component from sd_load_opts.hold_bf16): while on, each GEMM weight is held as soon as it is
// loaded, so the f32 model never exists whole (peak memory is the bf16 model). Off by default.
void bf16_weights_set_hold_loads(int on);
int bf16_weights_hold_loads(void);

// How many weights and bf16 bytes are held now.
int64_t bf16_weights_count(void);
int64_t bf16_weights_bytes(void);
