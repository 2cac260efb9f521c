// Training checkpoints: OUT/checkpoints/checkpoint-N/ holds adapter.safetensors (the adapter at
// step N, loadable by every command) and optimizer.safetensors (AdamW's m and v per adapter
// tensor; metadata: step, seed, loss EMA, and the data position — every example's randomness is
// keyed by (seed, step, index), so the step is the whole position). The folder is written as
// .checkpoint-N.tmp and renamed into place, so a crash leaves either the old set or the new one.
#pragma once
#include <stdint.h>

#include "engine/train/param_block.h"

typedef struct {
    int64_t step;
    uint64_t seed;
    double loss_ema;
} checkpoint_state;

// Writes checkpoint-N (N = st->step) under ckpt_root and then keeps the newest `keep` (0 = all).
int checkpoint_save(const char *ckpt_root, const param_block *pb, const checkpoint_state *st, int keep);
// The newest checkpoint-N folder under ckpt_root into out (len bytes); 0, 1 when there is none,
// -1 with sl_error.
int checkpoint_latest(const char *ckpt_root, char *out, size_t len);
// Loads AdamW's moments of folder dir into pb (whose parameters came from dir/adapter.safetensors)
// and the state. Every tensor must match pb's layout. 0, or -1 with sl_error.
int checkpoint_load_optimizer(const char *dir, param_block *pb, checkpoint_state *st);
