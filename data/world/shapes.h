// The toy world's shapes as exact integer geometry: a shape placed at a centre with a size r
// answers "is this point inside" and "is it within d of the outline" with int64 arithmetic only,
// so that rasterization decides every pixel the same way on every machine.
//
// Coordinates are in any integer unit (the rasterizer uses 1/8 pixel). Each shape's size r is
// its nominal radius: circle and ring (outer edge) radius r, square half-side 0.88 r, triangle
// and star circumradius 1.2 r (star inner radius 0.55 r), ring inner radius 0.45 r. Every shape
// lies within SHAPE_EXTENT_NUM/SHAPE_EXTENT_DEN · r of its centre in x and in y.
#pragma once
#include <stdint.h>

typedef enum { SHAPE_CIRCLE, SHAPE_SQUARE, SHAPE_TRIANGLE, SHAPE_STAR, SHAPE_RING, N_SHAPES } world_shape;

#define SHAPE_EXTENT_NUM 5
#define SHAPE_EXTENT_DEN 4
#define SHAPE_MAX_VERTS 10

typedef struct {
    int kind;                        // world_shape
    int64_t cx, cy, r;               // centre and size
    int n;                           // polygon vertices (square, triangle, star); 0 for round shapes
    int64_t vx[SHAPE_MAX_VERTS], vy[SHAPE_MAX_VERTS];   // absolute vertex coordinates
} shape_geom;

// "circle", ... ; NULL out of range.
const char *shape_name(int kind);
// The shape named `name`, or -1.
int shape_find(const char *name);
// "circle, square, triangle, star, ring".
const char *shape_list(void);

void shape_place(shape_geom *g, int kind, int64_t cx, int64_t cy, int64_t r);
// 1 when (x, y) is inside the shape.
int shape_inside(const shape_geom *g, int64_t x, int64_t y);
// 1 when (x, y), a point inside the shape, lies closer than d to its outer outline (a ring's
// outer circle only: its hole keeps a clean edge).
int shape_near_outline(const shape_geom *g, int64_t x, int64_t y, int64_t d);
