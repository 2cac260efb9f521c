// World captions: the grammar, articles, the subject token, and one clear error for the rest.
#include <string.h>

#include "data/world/caption.h"
#include "data/world/palette.h"
#include "engine/core/error.h"
#include "tests/test.h"

TEST(world_caption_grammar) {
    world_scene s;
    REQUIRE(caption_parse("a red star and a blue circle on a green background", NULL, &s, "t") == 0);
    CHECK(s.n_objects == 2 && s.obj[0].colour == COL_RED && s.obj[0].shape == SHAPE_STAR && s.obj[1].colour == COL_BLUE &&
          s.obj[1].shape == SHAPE_CIRCLE && s.background == COL_GREEN && !s.has_subject);
    // case, articles and trailing punctuation do not matter
    REQUIRE(caption_parse("An Orange ring on a white background.", NULL, &s, "t") == 0);
    CHECK(s.n_objects == 1 && s.obj[0].colour == COL_ORANGE && s.obj[0].shape == SHAPE_RING && s.background == COL_WHITE);
    // the subject, as photo captions and demo prompts name it
    REQUIRE(caption_parse("a photo of sks star on a blue background", "sks", &s, "t") == 0);
    CHECK(s.has_subject && s.obj[0].is_subject && s.obj[0].shape == SHAPE_STAR && s.obj[0].colour == -1);
    REQUIRE(caption_parse("a sks star and a red square on a cyan background", "sks", &s, "t") == 0);
    CHECK(s.n_objects == 2 && s.obj[0].is_subject && !s.obj[1].is_subject && s.obj[1].colour == COL_RED);
    // writing: "an" before a vowel, the token in photo captions
    s = (world_scene){.n_objects = 1, .background = COL_ORANGE};
    s.obj[0] = (world_object){.shape = SHAPE_SQUARE, .colour = COL_WHITE};
    char buf[CAPTION_MAX];
    caption_write(&s, NULL, buf, sizeof buf);
    CHECK(!strcmp(buf, "a white square on an orange background"));
    s.has_subject = 1, s.obj[0].is_subject = 1, s.obj[0].colour = -1;
    caption_write(&s, "zwx", buf, sizeof buf);
    CHECK(!strcmp(buf, "a photo of zwx square on an orange background"));
}

TEST(world_caption_errors_name_the_word) {
    world_scene s;
    CHECK(caption_parse("a red zigzag on a green background", NULL, &s, "caps.txt:3") == -1);
    const char *m = sl_error_msg();
    CHECK(strstr(m, "caps.txt:3: ") == m);
    CHECK(strstr(m, "unknown word 'zigzag'") && strstr(m, "shapes: circle, square, triangle, star, ring"));
    CHECK(!strchr(m, '\n'));
    // the subject token is an unknown word when no subject is given
    CHECK(caption_parse("a photo of sks star on a blue background", NULL, &s, "x") == -1);
    CHECK(strstr(sl_error_msg(), "unknown word 'sks'"));
    CHECK(caption_parse("a red star on a green", NULL, &s, "x") == -1);
    CHECK(strstr(sl_error_msg(), "expected 'background' at the end"));
    CHECK(caption_parse("a red star on a red background", NULL, &s, "x") == -1);
    CHECK(strstr(sl_error_msg(), "its own colour"));
    CHECK(caption_parse("a red star and a blue circle and a green ring on a white background", NULL, &s, "x") == -1);
    CHECK(caption_parse("", NULL, &s, "x") == -1);
    CHECK(caption_parse("red on a green background", NULL, &s, "x") == -1);
    CHECK(strstr(sl_error_msg(), "expected a shape at 'on'"));
}
