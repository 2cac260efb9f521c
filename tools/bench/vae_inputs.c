// bench_vae_inputs: inputs for `singlora forward vae-encode / vae-decode` at a given size.
//   build/bench_vae_inputs --size H W --image FILE --latent FILE [--factor 8] [--latent-channels 4]
// FILE for --image gets `image` (1, 3, H, W): a smooth colour pattern in [-1, 1];
// FILE for --latent gets `latent` (1, C, H/f, W/f): deterministic noise of unit scale.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "tools/args.h"

int main(int argc, char **argv) {
    int H = 512, W = 512, f = 8, L = 4;
    const char *img_path = NULL, *lat_path = NULL, *v;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 2 < argc) {
            H = (int)arg_int_range("--size", argv[++i], 1, 8192);
            W = (int)arg_int_range("--size", argv[++i], 1, 8192);
        } else if (arg_value(argc, argv, &i, "--image", &img_path)) {}
        else if (arg_value(argc, argv, &i, "--latent", &lat_path)) {}
        else if (arg_value(argc, argv, &i, "--factor", &v)) f = (int)arg_int_range("--factor", v, 1, 64);
        else if (arg_value(argc, argv, &i, "--latent-channels", &v)) L = (int)arg_int_range("--latent-channels", v, 1, 64);
        else sl_die(NULL, "bench_vae_inputs: unknown option '%s'", argv[i]);
    }
    if (H < f || W < f || H % f || W % f || f < 1 || L < 1) sl_die(NULL, "bench_vae_inputs: bad sizes");
    if (img_path) {
        float *img = sl_alloc_f32(3 * (int64_t)H * W);   // (1, 3, H, W)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    img[((int64_t)c * H + y) * W + x] = 0.9f * sinf(0.021f * x * (c + 1) + 0.013f * y) * cosf(0.017f * y - c);
        st_writer *w = st_writer_new();
        st_writer_add(w, "image", DT_F32, 4, (int64_t[]){1, 3, H, W}, img);
        if (st_writer_save(w, img_path)) sl_fail();
        st_writer_free(w);
        sl_free_aligned(img);
    }
    if (lat_path) {
        int h = H / f, wl = W / f;
        int64_t n = (int64_t)L * h * wl;
        float *lat = sl_alloc_f32(n);   // (1, L, h, w), approximately N(0, 1)
        uint64_t s = 12345;
        for (int64_t i = 0; i < n; i++) {
            double acc = 0;
            for (int k = 0; k < 12; k++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                acc += (double)(s >> 11) * 0x1p-53;
            }
            lat[i] = (float)(acc - 6.0);
        }
        st_writer *w = st_writer_new();
        st_writer_add(w, "latent", DT_F32, 4, (int64_t[]){1, L, h, wl}, lat);
        if (st_writer_save(w, lat_path)) sl_fail();
        st_writer_free(w);
        sl_free_aligned(lat);
    }
    return 0;
}
