// Subjects: objects the world never shows, for DreamBooth. A subject is a shape with a body
// colour, a pattern in a second colour and an accent in a third, written
//   SHAPE:BODY:PATTERN-COLOUR:ACCENT-COLOUR       e.g. star:magenta:stripes-white:outline-orange
// Its features scale with its size r (the shape's nominal radius): the unit u = 2r/9, and at the
// sizes subject photos use (r >= 18 px at 64 px) every feature is at least 4 px wide:
//   stripes  diagonal bands 1.06u wide (perpendicular), 1.6u apart
//   dots     discs of diameter 1.2u on a square grid of pitch 2.5u, one at the centre
//   checks   squares of side u
//   outline  a band u wide inside the outer edge
//   eye      a disc of diameter 2u at the centre (a ring's: on its band, at the top)
// The class noun is the shape ("a photo of sks star").
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "data/world/shapes.h"
#include "engine/core/rng.h"

typedef enum { PATTERN_STRIPES, PATTERN_DOTS, PATTERN_CHECKS, N_PATTERNS } world_pattern;
typedef enum { ACCENT_OUTLINE, ACCENT_EYE, N_ACCENTS } world_accent;

typedef struct {
    int shape;            // world_shape
    int body;             // world_colour
    int pattern;          // world_pattern
    int pattern_colour;   // world_colour, != body
    int accent;           // world_accent
    int accent_colour;    // world_colour, != body
} world_subject;

// Parses a spec, or the name of one of the named subjects. -1 with sl_error(what, ...): one line
// saying what is wrong and listing the allowed values.
int subject_parse(const char *spec, world_subject *s, const char *what);
// The spec string (at least 64 bytes).
void subject_format(const world_subject *s, char *buf, size_t n);
// 1 when colour c is one of the subject's three colours.
int subject_uses_colour(const world_subject *s, int c);

// A random subject: any shape, body colour, pattern and accent (their colours differ from the
// body's), never one of the named subjects below.
void subject_random(world_subject *s, sl_rng *r);

// The named subjects `singlora world subjects` lists.
int subject_named_count(void);
const char *subject_named_name(int i);
const char *subject_named_spec(int i);

// Painting one subject: fill with subject_paint_init, then raster_paint(..., subject_paint, &ctx).
typedef struct {
    world_subject s;
    shape_geom g;
    int64_t u;   // feature unit, in the coordinate units of g
} subject_paint_ctx;
void subject_paint_init(subject_paint_ctx *c, const world_subject *s, int64_t cx, int64_t cy, int64_t r);
int subject_paint(const void *ctx, int64_t x, int64_t y);
