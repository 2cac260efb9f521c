#include "data/world/scene.h"

#include <string.h>

#include "data/world/palette.h"
#include "data/world/raster.h"
#include "data/world/texture.h"

// uniform in [lo, hi] (lo when hi < lo)
static int rand_range(sl_rng *r, int lo, int hi) { return hi <= lo ? lo : lo + (int)sl_rng_randint(r, (uint64_t)(hi - lo + 1)); }

// half the side of the box an object of size r needs, and the gap between two objects
static int extent(int r) { return r * SHAPE_EXTENT_NUM / SHAPE_EXTENT_DEN; }
#define EDGE_MARGIN 16   // 1 px at 64 px
#define OBJECT_GAP 48    // 3 px at 64 px

static void place_one(world_object *o, sl_rng *r, int rmin, int rmax) {
    o->r = rand_range(r, rmin, rmax);
    int m = extent(o->r) + EDGE_MARGIN;
    o->cx = rand_range(r, m, WORLD_UNITS - m);
    o->cy = rand_range(r, m, WORLD_UNITS - m);
}

void scene_place(world_scene *s, sl_rng *r) {
    int subject = s->has_subject;
    if (s->n_objects == 1) {
        place_one(&s->obj[0], r, subject ? WORLD_R_SUBJECT_MIN : WORLD_R_ONE_MIN, subject ? WORLD_R_SUBJECT_MAX : WORLD_R_ONE_MAX);
    } else {
        int rmax = WORLD_R_TWO_MAX;
        for (int tries = 0;; tries++) {
            if (tries > 0 && tries % 64 == 0 && rmax > WORLD_R_TWO_MIN) rmax -= 8;
            place_one(&s->obj[0], r, WORLD_R_TWO_MIN, rmax);
            place_one(&s->obj[1], r, WORLD_R_TWO_MIN, rmax);
            int64_t dx = s->obj[0].cx - s->obj[1].cx, dy = s->obj[0].cy - s->obj[1].cy;
            int64_t need = extent(s->obj[0].r) + extent(s->obj[1].r) + OBJECT_GAP;
            // apart in x or in y by the two boxes: the boxes never touch
            if (dx * dx >= need * need || dy * dy >= need * need) break;
        }
    }
    s->texture_seed = sl_rng_u32(r);
}

void scene_random(world_scene *s, sl_rng *r) {
    memset(s, 0, sizeof *s);
    s->n_objects = 1 + (int)sl_rng_randint(r, 2);
    s->background = (int)sl_rng_randint(r, N_COLOURS);
    for (int i = 0; i < s->n_objects; i++) {
        s->obj[i].shape = (int)sl_rng_randint(r, N_SHAPES);
        int c = (int)sl_rng_randint(r, N_COLOURS - 1);
        s->obj[i].colour = c >= s->background ? c + 1 : c;
    }
    scene_place(s, r);
}

void scene_random_subject(world_scene *s, const world_subject *sub, sl_rng *r) {
    memset(s, 0, sizeof *s);
    s->n_objects = 1;
    s->has_subject = 1;
    s->subject = *sub;
    s->obj[0].shape = sub->shape;
    s->obj[0].colour = -1;
    s->obj[0].is_subject = 1;
    int allowed[N_COLOURS], n = 0;
    for (int c = 0; c < N_COLOURS; c++)
        if (!subject_uses_colour(sub, c)) allowed[n++] = c;
    s->background = allowed[sl_rng_randint(r, (uint64_t)n)];
    scene_place(s, r);
}

typedef struct {
    shape_geom g;
    int colour;
} plain_ctx;

static int plain_paint(const void *ctx, int64_t x, int64_t y) {
    const plain_ctx *c = ctx;
    return shape_inside(&c->g, x, y) ? c->colour : -1;
}

// WORLD_UNITS -> raster units at this size, rounded
static int64_t to_raster(int v, int size) { return ((int64_t)v * size * RASTER_UNIT + WORLD_UNITS / 2) / WORLD_UNITS; }

void scene_render(const world_scene *s, int size, uint8_t *rgb) {
    sl_rng r;
    sl_rng_seed(&r, s->texture_seed);
    texture_background(rgb, size, size, s->background, &r);
    for (int i = 0; i < s->n_objects; i++) {
        const world_object *o = &s->obj[i];
        int64_t cx = to_raster(o->cx, size), cy = to_raster(o->cy, size), rr = to_raster(o->r, size);
        int64_t e = rr * SHAPE_EXTENT_NUM / SHAPE_EXTENT_DEN + RASTER_UNIT;
        int x0 = (int)((cx - e) / RASTER_UNIT), x1 = (int)((cx + e) / RASTER_UNIT) + 1;
        int y0 = (int)((cy - e) / RASTER_UNIT), y1 = (int)((cy + e) / RASTER_UNIT) + 1;
        if (o->is_subject) {
            subject_paint_ctx c;
            subject_paint_init(&c, &s->subject, cx, cy, rr);
            raster_paint(rgb, size, size, x0, y0, x1, y1, subject_paint, &c);
        } else {
            plain_ctx c = {.colour = o->colour};
            shape_place(&c.g, o->shape, cx, cy, rr);
            raster_paint(rgb, size, size, x0, y0, x1, y1, plain_paint, &c);
        }
    }
    texture_grain(rgb, size, size, &r);
}
