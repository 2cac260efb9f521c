#include "engine/core/bf16_weights.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"

typedef struct {
    uintptr_t base;   // the placeholder's address (what the model's slot holds)
    int64_t n;        // elements
    uint16_t *h;      // (n) the bf16 copy
} held_weight;

// Sorted by base, so a lookup is a binary search (~10 probes for a UNet's ~700 GEMM weights).
static held_weight *held;
static int64_t n_held, cap_held, held_bytes;

// The entry whose range [base, base + 4n) holds p, or the insertion index (negative - 1).
static int64_t locate(uintptr_t p) {
    int64_t lo = 0, hi = n_held;   // first entry with base > p
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (held[mid].base <= p) lo = mid + 1;
        else hi = mid;
    }
    if (lo > 0 && p < held[lo - 1].base + (uintptr_t)held[lo - 1].n * sizeof(float)) return lo - 1;
    return -lo - 1;
}

void bf16_weights_hold(float **slot, int64_t n) {
    if (!slot || !*slot || n <= 0 || bf16_weights_find(*slot)) return;
    uint16_t *h = sl_alloc_aligned((size_t)n * sizeof(uint16_t));
    f32_to_bf16_n(h, *slot, (size_t)n);
    // An address range of the f32 size, reserved only: no page of it is ever backed or readable.
    void *ph = mmap(NULL, (size_t)n * sizeof(float), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ph == MAP_FAILED) sl_die(NULL, "out of address space holding a %lld-element weight in bf16", (long long)n);
    int64_t at = -locate((uintptr_t)ph) - 1;
    if (n_held == cap_held) {
        cap_held = cap_held ? 2 * cap_held : 256;
        held = realloc(held, (size_t)cap_held * sizeof *held);
        if (!held) sl_die(NULL, "out of memory for the held-weight table");
    }
    memmove(held + at + 1, held + at, (size_t)(n_held - at) * sizeof *held);
    held[at] = (held_weight){(uintptr_t)ph, n, h};
    n_held++;
    held_bytes += n * (int64_t)sizeof(uint16_t);
    sl_free_aligned(*slot);
    *slot = ph;
}

const uint16_t *bf16_weights_find(const float *p) {
    if (n_held == 0 || !p) return NULL;
    int64_t i = locate((uintptr_t)p);
    if (i < 0) return NULL;
    return held[i].h + ((uintptr_t)p - held[i].base) / sizeof(float);
}

void bf16_weights_unhold(float **slot) {
    if (!slot || !*slot) return;
    int64_t i = locate((uintptr_t)*slot);
    if (i < 0 || held[i].base != (uintptr_t)*slot) return;
    float *f = sl_alloc_f32(held[i].n);
    bf16_to_f32_n(f, held[i].h, (size_t)held[i].n);
    bf16_weights_release(*slot);
    *slot = f;
}

int bf16_weights_release(void *p) {
    if (n_held == 0 || !p) return 0;
    int64_t i = locate((uintptr_t)p);
    if (i < 0 || held[i].base != (uintptr_t)p) return 0;
    munmap(p, (size_t)held[i].n * sizeof(float));
    sl_free_aligned(held[i].h);
    held_bytes -= held[i].n * (int64_t)sizeof(uint16_t);
    memmove(held + i, held + i + 1, (size_t)(n_held - i - 1) * sizeof *held);
    n_held--;
    if (n_held == 0) {
        free(held);
        held = NULL, cap_held = 0;
    }
    return 1;
}

static int hold_loads;
void bf16_weights_set_hold_loads(int on) { hold_loads = on != 0; }
int bf16_weights_hold_loads(void) { return hold_loads; }

int64_t bf16_weights_count(void) { return n_held; }
int64_t bf16_weights_bytes(void) { return held_bytes; }
