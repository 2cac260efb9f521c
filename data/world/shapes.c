#include "data/world/shapes.h"

#include <string.h>

static const char *const NAMES[N_SHAPES] = {"circle", "square", "triangle", "star", "ring"};

const char *shape_name(int kind) { return kind >= 0 && kind < N_SHAPES ? NAMES[kind] : NULL; }

int shape_find(const char *name) {
    for (int i = 0; i < N_SHAPES; i++)
        if (!strcmp(NAMES[i], name)) return i;
    return -1;
}

const char *shape_list(void) { return "circle, square, triangle, star, ring"; }

// Unit polygons in 1/4096 of r, y pointing down, first vertex at the top (precomputed from
// cos/sin so that no floating point is evaluated here).
static const int SQUARE[4][2] = {{-3604, -3604}, {3604, -3604}, {3604, 3604}, {-3604, 3604}};
static const int TRIANGLE[3][2] = {{0, -4915}, {4257, 2458}, {-4257, 2458}};
static const int STAR[10][2] = {{0, -4915},   {1324, -1823}, {4675, -1519}, {2143, 696},   {2889, 3976},
                                {0, 2253},    {-2889, 3976}, {-2143, 696},  {-4675, -1519}, {-1324, -1823}};

// round(a * b / 4096) for the vertex scaling, symmetric about 0
static int64_t scale4096(int64_t a, int64_t b) {
    int64_t p = a * b;
    return p >= 0 ? (p + 2048) / 4096 : -((-p + 2048) / 4096);
}

void shape_place(shape_geom *g, int kind, int64_t cx, int64_t cy, int64_t r) {
    memset(g, 0, sizeof *g);
    g->kind = kind;
    g->cx = cx, g->cy = cy, g->r = r;
    const int(*v)[2] = NULL;
    if (kind == SHAPE_SQUARE) v = SQUARE, g->n = 4;
    else if (kind == SHAPE_TRIANGLE) v = TRIANGLE, g->n = 3;
    else if (kind == SHAPE_STAR) v = STAR, g->n = 10;
    for (int i = 0; i < g->n; i++) {
        g->vx[i] = cx + scale4096(v[i][0], r);
        g->vy[i] = cy + scale4096(v[i][1], r);
    }
}

// crossing-number test with the half-open rule, exact in integers
static int polygon_inside(const shape_geom *g, int64_t x, int64_t y) {
    int in = 0;
    for (int i = 0, j = g->n - 1; i < g->n; j = i++) {
        int64_t xi = g->vx[i], yi = g->vy[i], xj = g->vx[j], yj = g->vy[j];
        if ((yi > y) != (yj > y)) {
            // x < xi + (y - yi) (xj - xi) / (yj - yi), multiplied through by (yj - yi)
            int64_t lhs = (x - xi) * (yj - yi), rhs = (y - yi) * (xj - xi);
            if (yj > yi ? lhs < rhs : lhs > rhs) in = !in;
        }
    }
    return in;
}

int shape_inside(const shape_geom *g, int64_t x, int64_t y) {
    int64_t dx = x - g->cx, dy = y - g->cy, d2 = dx * dx + dy * dy;
    switch (g->kind) {
    case SHAPE_CIRCLE: return d2 <= g->r * g->r;
    case SHAPE_RING: {
        int64_t ri = g->r * 45 / 100;
        return d2 <= g->r * g->r && d2 >= ri * ri;
    }
    default: return polygon_inside(g, x, y);
    }
}

// distance from (x, y) to segment i is below d
static int segment_near(const shape_geom *g, int i, int64_t x, int64_t y, int64_t d) {
    int j = (i + 1) % g->n;
    int64_t ax = g->vx[i], ay = g->vy[i], ex = g->vx[j] - ax, ey = g->vy[j] - ay;
    int64_t px = x - ax, py = y - ay;
    int64_t t = px * ex + py * ey, L2 = ex * ex + ey * ey;
    if (t <= 0) return px * px + py * py < d * d;
    if (t >= L2) {
        int64_t qx = x - g->vx[j], qy = y - g->vy[j];
        return qx * qx + qy * qy < d * d;
    }
    int64_t c = px * ey - py * ex;   // |c| / sqrt(L2) is the distance to the line
    if (c < 0) c = -c;
    // c^2 < d^2 L2: below 2^63 for coordinates under 2^15 (the rasterizer's are under 2^14)
    return c * c < d * d * L2;
}

int shape_near_outline(const shape_geom *g, int64_t x, int64_t y, int64_t d) {
    int64_t dx = x - g->cx, dy = y - g->cy, d2 = dx * dx + dy * dy;
    if (g->kind == SHAPE_CIRCLE || g->kind == SHAPE_RING) {
        int64_t ri = g->r - d;
        return ri <= 0 || d2 > ri * ri;
    }
    for (int i = 0; i < g->n; i++)
        if (segment_near(g, i, x, y, d)) return 1;
    return 0;
}
