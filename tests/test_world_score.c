// `world score`: 100 % on the renderer's own images, low on noise; subject fidelity high on the
// subject's own photos and low on other subjects and plain world images; the sidecars it reads.
#include <stdlib.h>
#include <string.h>

#include "data/png.h"
#include "data/world/blur.h"
#include "data/world/dataset.h"
#include "data/world/score.h"
#include "data/world/score_folder.h"
#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "tests/test.h"

TEST(world_score_is_perfect_on_the_renderers_images) {
    char out[4096];
    const char *dir = tmp_path("r"), *json = tmp_path("scores.json");
    REQUIRE(run_cmd(out, sizeof out, "%s world render --n 200 --seed 11 --out %s", singlora_bin(), dir) == 0);
    REQUIRE(run_cmd(out, sizeof out, "%s world score --images %s --out %s", singlora_bin(), dir, json) == 0);
    CHECK_MSG(strstr(out, "images 200: background right 100.0 %, object colour right 100.0 %") &&
              strstr(out, "shape right 100.0 %"), "%s", out);
    score_totals t;
    REQUIRE(score_folder(dir, NULL, NULL, NULL, &t) == 0);
    CHECK(t.images == 200 && t.background_right == 200 && t.colour_right == t.plain_objects && t.shape_right == t.objects);
    CHECK(t.objects > 250);
    FILE *f = fopen(json, "r");
    REQUIRE(f);
    char *text = malloc(1 << 22);
    size_t n = fread(text, 1, (1 << 22) - 1, f);
    text[n] = 0;
    fclose(f);
    CHECK(strstr(text, "\"background_right_pct\":\t100") && strstr(text, "\"shape_right_pct\":\t100") &&
          strstr(text, "\"file\":\t\"00199.png\""));
    free(text);
}

TEST(world_score_is_robust_to_blur) {
    // three box-blur passes (about what a 4x VAE and a small UNet leave): still >= 95 %
    uint8_t rgb[64 * 64 * 3];
    int bg = 0, col = 0, sh = 0, objs = 0;
    for (int i = 0; i < 200; i++) {
        world_scene s;
        world_example(21, (uint64_t)i, 64, rgb, NULL, &s);
        blur_box3(rgb, 64, 64, 3);
        image_score sc;
        score_image(rgb, 64, 64, &s, NULL, &sc);
        bg += sc.background_right;
        for (int k = 0; k < sc.n_objects; k++) objs++, col += sc.obj[k].colour_right, sh += sc.obj[k].shape_right;
    }
    CHECK_MSG(bg == 200 && col * 100 >= objs * 95 && sh * 100 >= objs * 95, "bg %d/200, colour %d, shape %d of %d", bg, col, sh, objs);
}

TEST(world_score_is_low_on_noise) {
    const char *dir = tmp_path("noise");
    char out[4096];
    REQUIRE(run_cmd(out, sizeof out, "mkdir -p %s", dir) == 0);
    uint8_t rgb[64 * 64 * 3];
    sl_rng r;
    sl_rng_seed(&r, 5);
    for (int i = 0; i < 100; i++) {
        char cap[CAPTION_MAX];
        world_example(3, (uint64_t)i, 64, rgb, cap, NULL);   // a caption of the world ...
        for (size_t p = 0; p < sizeof rgb; p++) rgb[p] = (uint8_t)sl_rng_u32(&r);   // ... on noise
        if (i % 2) blur_box3(rgb, 64, 64, 2 + i % 3);   // and smoother noise
        REQUIRE(world_write_example(dir, i, rgb, 64, cap) == 0);
    }
    score_totals t;
    REQUIRE(score_folder(dir, NULL, NULL, NULL, &t) == 0);
    CHECK_EQ_INT(t.images, 100);
    double bg = score_pct(t.background_right, t.images), col = score_pct(t.colour_right, t.plain_objects),
           sh = score_pct(t.shape_right, t.objects);
    printf("noise: background %.1f %%, colour %.1f %%, shape %.1f %%\n", bg, col, sh);
    CHECK(bg <= 15 && col <= 15 && sh <= 15);
}

TEST(world_subject_fidelity_separates_subjects) {
    int n = subject_named_count();
    uint8_t rgb[64 * 64 * 3];
    for (int a = 0; a < n; a++) {
        world_subject sa;
        REQUIRE(subject_parse(subject_named_name(a), &sa, "t") == 0);
        subject_reference ref;
        fidelity_reference(&ref, &sa);
        for (int b = 0; b < n; b++) {
            world_subject sb;
            REQUIRE(subject_parse(subject_named_name(b), &sb, "t") == 0);
            double sum = 0;
            for (int i = 0; i < 10; i++) {
                world_scene s;
                world_subject_example(&sb, NULL, 8, (uint64_t)i, 64, rgb, NULL, &s);
                s.obj[0].shape = sa.shape;   // scored as "a photo of sks <a's shape>"
                image_score sc;
                score_image(rgb, 64, 64, &s, &ref, &sc);
                sum += sc.obj[0].fidelity.fidelity;
            }
            double mean = sum / 10;
            if (a == b) CHECK_MSG(mean >= 0.9, "%s on its own photos: %.3f", subject_named_name(a), mean);
            else CHECK_MSG(mean <= 0.35, "%s on photos of %s: %.3f", subject_named_name(a), subject_named_name(b), mean);
        }
        // plain world objects, scored as if they were the subject
        double sum = 0, mx = 0;
        int cnt = 0;
        for (int i = 0; i < 100; i++) {
            world_scene s;
            world_example(4, (uint64_t)i, 64, rgb, NULL, &s);
            s.n_objects = 1, s.has_subject = 1, s.subject = sa, s.obj[0].is_subject = 1;
            image_score sc;
            score_image(rgb, 64, 64, &s, &ref, &sc);
            sum += sc.obj[0].fidelity.fidelity, cnt++;
            if (sc.obj[0].fidelity.fidelity > mx) mx = sc.obj[0].fidelity.fidelity;
        }
        CHECK_MSG(sum / cnt <= 0.1 && mx <= 0.4, "%s on plain world images: mean %.3f max %.3f", subject_named_name(a), sum / cnt, mx);
        // the subject's own photos, blurred, stay recognisable
        double blurred = 0;
        for (int i = 0; i < 10; i++) {
            world_scene s;
            world_subject_example(&sa, NULL, 9, (uint64_t)i, 64, rgb, NULL, &s);
            blur_box3(rgb, 64, 64, 2);
            image_score sc;
            score_image(rgb, 64, 64, &s, &ref, &sc);
            blurred += sc.obj[0].fidelity.fidelity;
        }
        CHECK_MSG(blurred / 10 >= 0.8, "%s on its own blurred photos: %.3f", subject_named_name(a), blurred / 10);
    }
}

TEST(world_score_reads_sample_sidecars) {
    // `singlora sample` writes NNNNN-SEED.png with a `parameters` text and NNNNN-SEED.json
    const char *dir = tmp_path("sampled");
    char out[4096], path[600];
    REQUIRE(run_cmd(out, sizeof out, "mkdir -p %s", dir) == 0);
    world_subject s;
    REQUIRE(subject_parse("zebra-star", &s, "t") == 0);
    uint8_t rgb[64 * 64 * 3];
    char cap[CAPTION_MAX];
    world_subject_example(&s, "sks", 1, 0, 64, rgb, cap, NULL);
    snprintf(path, sizeof path, "%s/00000-7.png", dir);
    REQUIRE(png_write(path, rgb, 64, 64, 3, NULL, NULL, 0) == 0);
    snprintf(path, sizeof path, "%s/00000-7.json", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fprintf(f, "{\"prompt\": \"%s\", \"seed\": 7}\n", cap);
    fclose(f);
    world_example(1, 1, 64, rgb, cap, NULL);
    char params[400];
    snprintf(params, sizeof params, "%s\nSteps: 20, Sampler: Euler a, Seed: 8", cap);
    const char *keys[] = {"parameters"}, *vals[] = {params};
    snprintf(path, sizeof path, "%s/00001-8.png", dir);
    REQUIRE(png_write(path, rgb, 64, 64, 3, keys, vals, 1) == 0);
    snprintf(path, sizeof path, "%s/grid.png", dir);   // skipped
    REQUIRE(png_write(path, rgb, 64, 64, 3, NULL, NULL, 0) == 0);
    score_totals t;
    REQUIRE(score_folder(dir, &s, "sks", NULL, &t) == 0);
    CHECK(t.images == 2 && t.background_right == 2 && t.subject_objects == 1 && t.fidelity_sum >= 0.9);
    // without the subject the token is an unknown word, one line naming the image
    CHECK(score_folder(dir, NULL, NULL, NULL, &t) == -1);
    CHECK(strstr(sl_error_msg(), "00000-7.png: caption 'a photo of sks star on a") && strstr(sl_error_msg(), "unknown word 'sks'"));
    // an image with no caption at all
    snprintf(path, sizeof path, "%s/00002-9.png", dir);
    REQUIRE(png_write(path, rgb, 64, 64, 3, NULL, NULL, 0) == 0);
    CHECK(score_folder(dir, &s, "sks", NULL, &t) == -1);
    CHECK(strstr(sl_error_msg(), "00002-9.png: no caption"));
}
