// The seed corpora of the libFuzzer targets (tests/fuzz/): one or more valid inputs per target,
// each checked to parse here, so the fuzzers start from inputs that reach deep into each parser.
// With SINGLORA_FUZZ_SEEDS=DIR (make fuzz) they are written to DIR/<target>/, else to a temp folder.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_write.h>

#include "clip/text_encoder.h"
#include "clip/tokenizer.h"
#include "data/image.h"
#include "engine/adapters/lora_files.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/io/atomic_file.h"
#include "engine/io/config.h"
#include "engine/io/file_read.h"
#include "engine/io/folders.h"
#include "engine/io/safetensors.h"
#include "engine/train/dataset.h"
#include "pipeline/adapters.h"
#include "tests/test.h"
#include "unet/config.h"
#include "vae/vae.h"

static char g_seeds[600];

static const char *seed_path(const char *target, const char *name) {
    static char path[900];
    snprintf(path, sizeof path, "%s/%s", g_seeds, target);
    if (mkdir_p(path) != 0) return NULL;
    snprintf(path, sizeof path, "%s/%s/%s", g_seeds, target, name);
    return path;
}

static int write_bytes(const char *path, const void *a, size_t na, const void *b, size_t nb) {
    const void *bufs[2] = {a, b};
    const size_t lens[2] = {na, nb};
    return atomic_write(path, bufs, lens, nb ? 2 : 1);
}

// A target whose first byte selects the reader: seed = [selector][file]
static int write_selected(const char *target, const char *name, uint8_t selector, const char *file) {
    size_t n;
    char *body = read_file(file, &n, 1u << 24, "seed source");
    if (!body) return -1;
    int rc = write_bytes(seed_path(target, name), &selector, 1, body, n);
    free(body);
    return rc;
}

static void seeds_dir(void) {
    const char *env = getenv("SINGLORA_FUZZ_SEEDS");
    snprintf(g_seeds, sizeof g_seeds, "%s", env && *env ? env : tmp_path("seeds"));
}

TEST(fuzz_seed_corpora) {
    seeds_dir();
    // safetensors: every dtype family, metadata, a 0-d and a zero-length tensor; each loads
    {
        float f[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
        uint16_t h[4] = {0x3c00, 0xbc00, 0x4000, 0};
        int64_t i64[2] = {-1, 5};
        int64_t s23[2] = {2, 3}, s4[1] = {4}, s2[1] = {2}, s0[1] = {0};
        st_writer *w = st_writer_new();
        st_writer_add(w, "weight", DT_F32, 2, s23, f);
        st_writer_add(w, "half", DT_F16, 1, s4, h);
        st_writer_add(w, "brain", DT_BF16, 1, s4, h);
        st_writer_add(w, "ids", DT_I64, 1, s2, i64);
        st_writer_add(w, "scalar", DT_F32, 0, NULL, f);
        st_writer_add(w, "empty", DT_F32, 1, s0, f);
        st_writer_meta(w, "format", "pt");
        const char *p = seed_path("fuzz_safetensors", "mixed.safetensors");
        REQUIRE(st_writer_save(w, p) == 0);
        st_writer_free(w);
        st_file *sf = st_open(p);
        REQUIRE(sf);
        CHECK_EQ_INT(sf->n_entries, 6);
        for (int i = 0; i < sf->n_entries; i++) {
            if (!strcmp(sf->entries[i].name, "ids")) continue;   // integers do not widen to f32
            float *x = st_load_f32(sf, sf->entries[i].name, -1, NULL);
            CHECK_MSG(x || !strcmp(sf->entries[i].name, "empty"), "%s: %s", sf->entries[i].name, sl_error_msg());
            sl_free_aligned(x);
        }
        st_close(sf);
    }
    // configs: the tiny model's four and the toyworld recipe, behind their selector byte
    {
        const char *files[5] = {"configs/tiny/unet/config.json", "configs/tiny/text_encoder/config.json",
                                "configs/tiny/vae/config.json", "configs/tiny/scheduler/scheduler_config.json",
                                "configs/train/toyworld.json"};
        const char *names[5] = {"unet.json", "text_encoder.json", "vae.json", "scheduler.json", "recipe.json"};
        for (int k = 0; k < 5; k++) CHECK_MSG(write_selected("fuzz_config", names[k], (uint8_t)k, files[k]) == 0, "%s", files[k]);
        unet_config u;
        CHECK(unet_config_load_dir(&u, "configs/tiny/unet") == 0);
        clip_text_config c;
        CHECK(clip_text_config_load(&c, files[1]) == 0);
        vae_config v;
        CHECK(vae_config_from_json(&v, files[2]) == 0 && vae_config_check(&v, files[2]) == 0);
    }
    // tokenizer: plain, weighted, BREAK, LoRA tags, curly quotes and tabs, HTML entities, non-ASCII
    {
        const char *prompts[] = {
            "a photo of sks dog",
            "(a red star:1.2) and [a blue circle] BREAK on a green background <lora:style:0.5>",
            "\xe2\x80\x9c" "curly" "\xe2\x80\x9d" "\tquotes\t&amp; caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac 123,456",
        };
        clip_tokenizer *tok = clip_tokenizer_load_default();
        REQUIRE(tok);
        for (int k = 0; k < 3; k++) {
            char name[32];
            snprintf(name, sizeof name, "prompt-%d.txt", k);
            CHECK(write_bytes(seed_path("fuzz_tokenizer", name), prompts[k], strlen(prompts[k]), NULL, 0) == 0);
            int32_t ids[77];
            CHECK_MSG(clip_encode(tok, prompts[k], 77, ids, 0) > 2, "prompt %d encodes to no tokens", k);
        }
        clip_tokenizer_free(tok);
    }
    // adapters: a singlora adapter of the tiny UNet (selector 0) and its kohya / diffusers LoRA
    // exports (selector 1); each binds to / folds into the model
    {
        unet_config cfg;
        REQUIRE(unet_config_load_dir(&cfg, "configs/tiny/unet") == 0);
        unet_model *skeleton = unet_model_new(&cfg);
        REQUIRE(skeleton);
        unet_model *m = unet_grads_new(skeleton, "all");   // every weight allocated (zero), as fuzz_adapter
        unet_free(skeleton);
        REQUIRE(m);
        adapter_new_opts o = {.method = ADAPTER_SINGLORA, .rank = 2, .alpha = 2, .ramp_steps = 10,
                              .init = "normal:0.02", .targets = "attn", .seed = 3};
        adapter_set *s = adapter_set_create(m, &o);
        REQUIRE(s);
        const char *a = tmp_path("adapter.safetensors"), *k = tmp_path("kohya.safetensors"),
                   *d = tmp_path("diffusers.safetensors");
        REQUIRE(unet_attach_adapters(m, s, 1, a) == 0);   // binds the layer shapes the export needs
        REQUIRE(adapter_set_save(s, a) == 0 && lora_export(s, LORA_FORMAT_KOHYA, k) == 0 &&
                lora_export(s, LORA_FORMAT_DIFFUSERS, d) == 0);
        unet_attach_adapters(m, NULL, 1, a);
        adapter_set_free(s);
        CHECK(write_selected("fuzz_adapter", "singlora.bin", 0, a) == 0);
        CHECK(write_selected("fuzz_adapter", "kohya.bin", 1, k) == 0);
        CHECK(write_selected("fuzz_adapter", "diffusers.bin", 1, d) == 0);
        adapter_set *back = adapter_set_load(a);
        CHECK_MSG(back && unet_attach_adapters(m, back, 1, a) == 0, "%s", sl_error_msg());
        unet_attach_adapters(m, NULL, 1, a);
        adapter_set_free(back);
        CHECK_MSG(unet_apply_lora_spec(m, k) == 0, "%s", sl_error_msg());
        CHECK_MSG(unet_apply_lora_spec(m, d) == 0, "%s", sl_error_msg());
        unet_free(m);
    }
    // images: an RGBA PNG, RGB JPEG, grey BMP, TGA, each decoding at its size; and a data folder of
    // two records (PNG + caption, JPEG without one) in fuzz_dataset's record format
    {
        enum { W = 13, H = 9 };
        uint8_t px[H * W * 4];
        for (int i = 0; i < H * W * 4; i++) px[i] = (uint8_t)(i * 37 + (i >> 2));
        const char *png = seed_path("fuzz_image", "rgba.png");
        CHECK(stbi_write_png(png, W, H, 4, px, W * 4) != 0);
        CHECK(stbi_write_jpg(seed_path("fuzz_image", "rgb.jpg"), W, H, 3, px, 90) != 0);
        CHECK(stbi_write_bmp(seed_path("fuzz_image", "grey.bmp"), W, H, 1, px) != 0);
        CHECK(stbi_write_tga(seed_path("fuzz_image", "rgb.tga"), W, H, 3, px) != 0);
        const char *names[4] = {"rgba.png", "rgb.jpg", "grey.bmp", "rgb.tga"};
        for (int k = 0; k < 4; k++) {
            int h = 0, w = 0;
            uint8_t *rgb = image_decode_rgb(seed_path("fuzz_image", names[k]), &h, &w);
            CHECK_MSG(rgb && h == H && w == W, "%s: %s", names[k], rgb ? "wrong size" : sl_error_msg());
            free(rgb);
        }
        size_t n_png = 0, n_jpg = 0;
        char *a = read_file(png, &n_png, 1u << 24, "seed"), *b = read_file(seed_path("fuzz_image", "rgb.jpg"), &n_jpg, 1u << 24, "seed");
        REQUIRE(a && b && n_png < 65536 && n_jpg < 65536);
        const char caption[] = "a photo of sks star\n";
        FILE *f = fopen(seed_path("fuzz_dataset", "folder.bin"), "wb");
        REQUIRE(f);
        // names 0 = a.png, 1 = a.txt, 2 = b.jpg (tests/fuzz/fuzz_dataset.c)
        fputc(0, f), fputc((int)(n_png & 255), f), fputc((int)(n_png >> 8), f), fwrite(a, 1, n_png, f);
        fputc(1, f), fputc((int)sizeof caption - 1, f), fputc(0, f), fwrite(caption, 1, sizeof caption - 1, f);
        fputc(2, f), fputc((int)(n_jpg & 255), f), fputc((int)(n_jpg >> 8), f), fwrite(b, 1, n_jpg, f);
        CHECK(fclose(f) == 0);
        // the folder those records make scans as two images, the PNG with its caption
        const char *dir = tmp_path("folder");
        char p[700];
        REQUIRE(mkdir_p(dir) == 0);
        snprintf(p, sizeof p, "%s/a.png", dir);
        CHECK(write_bytes(p, a, n_png, NULL, 0) == 0);
        snprintf(p, sizeof p, "%s/a.txt", dir);
        CHECK(write_bytes(p, caption, sizeof caption - 1, NULL, 0) == 0);
        snprintf(p, sizeof p, "%s/b.jpg", dir);
        CHECK(write_bytes(p, b, n_jpg, NULL, 0) == 0);
        image_folder folder;
        REQUIRE(image_folder_scan(&folder, dir, ".txt", 1) == 0);
        CHECK_EQ_INT(folder.n, 2);
        CHECK(folder.images[0].caption && !strcmp(folder.images[0].caption, "a photo of sks star"));
        CHECK(!folder.images[1].caption);
        image_folder_free(&folder);
        free(a);
        free(b);
    }
}
