// libFuzzer: the safetensors reader (header validation, then every tensor widened to f32).
#include "engine/core/tensor.h"
#include "engine/io/safetensors.h"
#include "tests/fuzz/input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    st_file *f = st_open(fuzz_write_input("in.safetensors", data, size));
    if (!f) return 0;
    for (int i = 0; i < f->n_entries; i++) {
        float *x = st_load_f32(f, f->entries[i].name, -1, NULL);
        sl_free_aligned(x);
        (void)st_find(f, f->entries[i].name);
    }
    for (int i = 0; i < f->n_meta; i++) (void)st_meta(f, f->meta_keys[i]);
    st_close(f);
    return 0;
}
