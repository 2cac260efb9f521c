// PIL-compatible resize and the DINO / CLIP preprocessing: parity with torchvision 0.14 on
// Pillow 9.4 (../shared/fixtures/eval/io/preprocess_io.safetensors: three real photos and a
// non-square crop of one), plus small exact cases of the resampler.
#include <stdlib.h>
#include <string.h>

#include "data/resize.h"
#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "eval/preprocess.h"
#include "tests/test.h"

// the fixture's input k: image.k, or for k = 3 the crop image3_crop_box = (index, top, left, h, w)
static uint8_t *fixture_image(st_file *f, int k, int *h, int *w) {
    char name[32];
    int idx = k, top = 0, left = 0, ch = -1, cw = -1;
    if (k == 3) {
        const st_entry *b = st_find(f, "image3_crop_box");
        if (!b) return NULL;
        idx = (int)raw_i64(b->data, 0), top = (int)raw_i64(b->data, 1), left = (int)raw_i64(b->data, 2);
        ch = (int)raw_i64(b->data, 3), cw = (int)raw_i64(b->data, 4);
    }
    snprintf(name, sizeof name, "image.%d", idx);
    const st_entry *e = st_find(f, name);
    if (!e || e->ndim != 3 || e->shape[2] != 3) return NULL;
    int H = (int)e->shape[0], W = (int)e->shape[1];
    if (ch < 0) { ch = H; cw = W; }
    uint8_t *out = malloc((size_t)ch * cw * 3);   // (ch, cw, 3)
    const uint8_t *src = e->data;
    for (int y = 0; y < ch; y++) memcpy(out + (size_t)y * cw * 3, src + ((size_t)(y + top) * W + left) * 3, (size_t)cw * 3);
    *h = ch;
    *w = cw;
    return out;
}

static void check_recipe(const char *which, preprocess_spec spec) {
    st_file *f = st_open(shared_path("fixtures/eval/io/preprocess_io.safetensors"));
    REQUIRE(f);
    char name[64];
    snprintf(name, sizeof name, "%s.pixel_values", which);
    const st_entry *pv = st_find(f, name);
    REQUIRE(pv && pv->ndim == 4 && pv->shape[1] == 3);
    int N = (int)pv->shape[0], S = (int)pv->shape[2];
    REQUIRE(S == spec.crop);
    snprintf(name, sizeof name, "%s.resized_hw", which);
    const void *rhw = st_find(f, name)->data;
    snprintf(name, sizeof name, "%s.crop_offset", which);
    const void *off = st_find(f, name)->data;
    float *want = st_load_f32(f, pv->name, -1, NULL);
    float *got = sl_alloc_f32(3 * S * S);
    for (int k = 0; k < N; k++) {
        int h, w, hw[2], o[2];
        uint8_t *img = fixture_image(f, k, &h, &w);
        REQUIRE(img);
        preprocess_image(got, img, h, w, &spec, hw, o);
        CHECK_EQ_INT(hw[0], raw_i64(rhw, 2 * k));
        CHECK_EQ_INT(hw[1], raw_i64(rhw, 2 * k + 1));
        CHECK_EQ_INT(o[0], raw_i64(off, 2 * k));
        CHECK_EQ_INT(o[1], raw_i64(off, 2 * k + 1));
        // count differing uint8 levels: the reference is exactly round((pv·std + mean)·255)
        const float *ref = want + (size_t)k * 3 * S * S;
        int n_diff = 0, max_lv = 0;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < S * S; i++) {
                float a = got[c * S * S + i], b = ref[c * S * S + i];
                int la = (int)rint((a * spec.std[c] + spec.mean[c]) * 255.0f);
                int lb = (int)rint((b * spec.std[c] + spec.mean[c]) * 255.0f);
                if (la != lb) n_diff++;
                if (abs(la - lb) > max_lv) max_lv = abs(la - lb);
            }
        char label[96];
        snprintf(label, sizeof label, "%s input %d (%dx%d -> %dx%d, offset %d,%d): %d levels differ (max %d)", which, k,
                 h, w, hw[0], hw[1], o[0], o[1], n_diff, max_lv);
        check_close(label, got, ref, (size_t)3 * S * S, 0.0);   // bit-exact
        free(img);
    }
    sl_free_aligned(got);
    sl_free_aligned(want);
    st_close(f);
}

TEST(eval_preprocess_dino_matches_torchvision) { check_recipe("dino", preprocess_dino(224)); }
TEST(eval_preprocess_clip_matches_torchvision) { check_recipe("clip", preprocess_clip(224)); }

TEST(eval_resize_sizes_and_offsets) {
    int rh, rw;
    resize_short_side_hw(400, 549, 256, &rh, &rw);   // 256·549/400 = 351.36 -> 351
    CHECK_EQ_INT(rh, 256);
    CHECK_EQ_INT(rw, 351);
    resize_short_side_hw(96, 128, 73, &rh, &rw);     // 73·128/96 = 97.33 -> 97
    CHECK_EQ_INT(rh, 73);
    CHECK_EQ_INT(rw, 97);
    resize_short_side_hw(300, 200, 224, &rh, &rw);   // portrait: 224·300/200 = 336
    CHECK_EQ_INT(rh, 336);
    CHECK_EQ_INT(rw, 224);
    CHECK_EQ_INT(center_crop_offset(351, 224), 64);  // 63.5 -> 64 (half to even)
    CHECK_EQ_INT(center_crop_offset(353, 224), 64);  // 64.5 -> 64
    CHECK_EQ_INT(center_crop_offset(355, 224), 66);  // 65.5 -> 66
    CHECK_EQ_INT(center_crop_offset(224, 224), 0);
}

TEST(eval_resize_constant_and_identity) {
    // a constant image stays constant (the weights sum to one after rounding); same size is a copy
    enum { SW = 37, SH = 23, DW = 11, DH = 17 };
    uint8_t src[SH * SW * 3], dst[DH * DW * 3], same[SH * SW * 3];
    memset(src, 200, sizeof src);
    image_resize_bicubic_u8(dst, DW, DH, src, SW, SH, 3);
    int ok = 1;
    for (size_t i = 0; i < sizeof dst; i++) ok &= dst[i] == 200;
    CHECK(ok);
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(i * 31 + i / 7);
    image_resize_bicubic_u8(same, SW, SH, src, SW, SH, 3);
    CHECK(memcmp(same, src, sizeof src) == 0);
    // a hard edge overshoots (Catmull-Rom rings) and is clipped to [0, 255], never wrapped
    uint8_t edge[1 * 8], up[1 * 16];
    for (int i = 0; i < 8; i++) edge[i] = i < 4 ? 0 : 255;
    image_resize_bicubic_u8(up, 16, 1, edge, 8, 1, 1);
    CHECK_EQ_INT(up[0], 0);
    CHECK_EQ_INT(up[15], 255);
    int mono = 1;
    for (int i = 1; i < 16; i++) mono &= up[i] >= up[i - 1] || up[i] == 0 || up[i - 1] == 255;
    CHECK(mono);
}
