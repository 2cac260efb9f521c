// Subjects: the spec, its errors, and what a photo shows (three colours, features >= 4 px).
#include <string.h>

#include "data/world/dataset.h"
#include "data/world/palette.h"
#include "engine/core/error.h"
#include "tests/test.h"

TEST(world_subject_spec) {
    world_subject s;
    REQUIRE(subject_parse("star:magenta:stripes-white:outline-orange", &s, "t") == 0);
    CHECK(s.shape == SHAPE_STAR && s.body == COL_MAGENTA && s.pattern == PATTERN_STRIPES && s.pattern_colour == COL_WHITE &&
          s.accent == ACCENT_OUTLINE && s.accent_colour == COL_ORANGE);
    char buf[128];
    subject_format(&s, buf, sizeof buf);
    CHECK(!strcmp(buf, "star:magenta:stripes-white:outline-orange"));
    for (int i = 0; i < subject_named_count(); i++) {
        REQUIRE(subject_parse(subject_named_name(i), &s, "t") == 0);
        subject_format(&s, buf, sizeof buf);
        CHECK(!strcmp(buf, subject_named_spec(i)));
    }
    static const char *const BAD[][2] = {
        {"hexagon:red:dots-white:outline-blue", "unknown shape 'hexagon'"},
        {"star:teal:dots-white:outline-blue", "unknown body colour 'teal'"},
        {"star:red:zigzag-white:outline-blue", "unknown pattern in 'zigzag-white'"},
        {"star:red:dots-grey:outline-blue", "unknown pattern colour in 'dots-grey'"},
        {"star:red:dots:outline-blue", "is not PATTERN-COLOUR"},
        {"star:red:dots-white:halo-blue", "unknown accent in 'halo-blue'"},
        {"star:red:dots-white", "fewer fields"},
        {"star:red:dots-white:outline-blue:x", "more than 4 fields"},
        {"star:red:dots-red:outline-blue", "the pattern colour is the body colour"},
        {"star:red:dots-white:eye-red", "the accent colour is the body colour"},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        CHECK_MSG(subject_parse(BAD[i][0], &s, "option --spec") == -1, "%s parsed", BAD[i][0]);
        const char *m = sl_error_msg();
        CHECK_MSG(strstr(m, BAD[i][1]) && strstr(m, "option --spec: ") == m, "%s: %s", BAD[i][0], m);
        // the one line lists the allowed values
        CHECK(strstr(m, "circle, square, triangle, star, ring") && strstr(m, "stripes, dots, checks") &&
              strstr(m, "outline, eye") && strstr(m, palette_list()) && !strchr(m, '\n'));
    }
}

// the longest run of colour c along row y through x0..x1
static int longest_run(const uint8_t *rgb, int y, int c) {
    int best = 0, run = 0;
    for (int x = 0; x < 64; x++) {
        const uint8_t *p = rgb + (y * 64 + x) * 3;
        run = palette_nearest(p[0], p[1], p[2], NULL) == c ? run + 1 : 0;
        if (run > best) best = run;
    }
    return best;
}

TEST(world_subject_photos_show_their_features) {
    uint8_t rgb[64 * 64 * 3];
    char cap[CAPTION_MAX];
    for (int n = 0; n < subject_named_count(); n++) {
        world_subject s;
        REQUIRE(subject_parse(subject_named_name(n), &s, "t") == 0);
        for (int i = 0; i < 10; i++) {
            world_scene sc;
            world_subject_example(&s, "sks", 1, (uint64_t)i, 64, rgb, cap, &sc);
            CHECK(!subject_uses_colour(&s, sc.background));
            CHECK(sc.obj[0].r * 64 / WORLD_UNITS >= 18 && sc.obj[0].r * 64 / WORLD_UNITS <= 24);
            char want[CAPTION_MAX];
            snprintf(want, sizeof want, "a photo of sks %s on a%s %s background", shape_name(s.shape),
                     strchr("aeiou", palette_name(sc.background)[0]) ? "n" : "", palette_name(sc.background));
            CHECK_MSG(!strcmp(cap, want), "'%s' vs '%s'", cap, want);
            int count[N_COLOURS] = {0};
            for (int p = 0; p < 64 * 64; p++) count[palette_nearest(rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2], NULL)]++;
            // every feature is there in some quantity
            CHECK_MSG(count[s.body] > 60 && count[s.pattern_colour] > 40 && count[s.accent_colour] > 40,
                      "%s photo %d: body %d, pattern %d, accent %d px", subject_named_name(n), i, count[s.body],
                      count[s.pattern_colour], count[s.accent_colour]);
        }
    }
    // widths on a row through the centre: the circle's outline and the square's eye
    world_subject s;
    REQUIRE(subject_parse("circle:red:dots-black:outline-yellow", &s, "t") == 0);
    world_scene sc = {.n_objects = 1, .has_subject = 1, .subject = s, .background = COL_BLUE, .texture_seed = 3};
    sc.obj[0] = (world_object){.shape = SHAPE_CIRCLE, .colour = -1, .is_subject = 1, .cx = 512, .cy = 512, .r = WORLD_R_SUBJECT_MIN};
    scene_render(&sc, 64, rgb);
    CHECK(longest_run(rgb, 32, COL_YELLOW) >= 4);
    CHECK(longest_run(rgb, 32, COL_BLACK) >= 4);   // the centre dot
    REQUIRE(subject_parse("square:blue:checks-white:eye-orange", &s, "t") == 0);
    sc.subject = s, sc.obj[0].shape = SHAPE_SQUARE, sc.background = COL_GREEN;
    scene_render(&sc, 64, rgb);
    CHECK(longest_run(rgb, 32, COL_ORANGE) >= 7);   // the eye: 2u = 8 px
    CHECK(longest_run(rgb, 25, COL_WHITE) >= 4);    // a check
}

// What the VAE trains on (pretrain --vae-subjects): random subjects are valid, cover every shape,
// pattern and accent, and are never a named subject; world_vae_example's even examples are the
// world's own scenes, its odd ones photos of such subjects, all pure functions of (seed, index).
TEST(world_vae_examples_and_random_subjects) {
    sl_rng r;
    sl_rng_seed(&r, 11);
    int shapes[N_SHAPES] = {0}, patterns[N_PATTERNS] = {0}, accents[N_ACCENTS] = {0}, named = 0, bad = 0;
    for (int k = 0; k < 3000; k++) {
        world_subject s;
        subject_random(&s, &r);
        bad += s.shape < 0 || s.shape >= N_SHAPES || s.body < 0 || s.body >= N_COLOURS || s.pattern_colour == s.body ||
               s.accent_colour == s.body || s.pattern_colour < 0 || s.pattern_colour >= N_COLOURS ||
               s.accent_colour < 0 || s.accent_colour >= N_COLOURS;
        shapes[s.shape]++, patterns[s.pattern]++, accents[s.accent]++;
        for (int i = 0; i < subject_named_count(); i++) {
            world_subject n;
            REQUIRE(subject_parse(subject_named_spec(i), &n, "named") == 0);
            named += !memcmp(&n, &s, sizeof n);
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(named, 0);
    for (int i = 0; i < N_SHAPES; i++) CHECK_MSG(shapes[i] > 400, "shape %d drawn %d times of 3000", i, shapes[i]);
    for (int i = 0; i < N_PATTERNS; i++) CHECK(patterns[i] > 700);
    for (int i = 0; i < N_ACCENTS; i++) CHECK(accents[i] > 1200);

    enum { S = 64 };
    static uint8_t a[S * S * 3], b[S * S * 3], w[S * S * 3];
    char cap[CAPTION_MAX];
    world_scene sa, sw;
    world_vae_example(5, 8, S, a, &sa);
    world_example(5, 4, S, w, cap, &sw);
    CHECK(memcmp(a, w, sizeof a) == 0 && !sa.has_subject);   // even: the world's example index / 2
    world_vae_example(5, 9, S, a, &sa);
    world_vae_example(5, 9, S, b, NULL);
    CHECK(memcmp(a, b, sizeof a) == 0);   // deterministic
    CHECK(sa.has_subject && sa.n_objects == 1 && sa.obj[0].is_subject);
    // the image shows the subject's three colours (the palette's exact values, as rendered)
    for (int c = 0; c < 3; c++) {
        int col = c == 0 ? sa.subject.body : c == 1 ? sa.subject.pattern_colour : sa.subject.accent_colour, found = 0;
        const uint8_t *want = palette_rgb(col);
        for (int i = 0; i < S * S && !found; i++) found = !memcmp(a + 3 * i, want, 3);
        CHECK_MSG(found, "colour %d of the subject is not in the image", col);
    }
    world_vae_example(5, 11, S, b, NULL);
    CHECK(memcmp(a, b, sizeof a) != 0);
}
