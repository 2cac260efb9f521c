#include "data/world/subject.h"

#include <stdio.h>
#include <string.h>

#include "data/world/palette.h"
#include "engine/core/error.h"

static const char *const PATTERNS[N_PATTERNS] = {"stripes", "dots", "checks"};
static const char *const ACCENTS[N_ACCENTS] = {"outline", "eye"};

static const char *const NAMED[][2] = {
    {"zebra-star", "star:magenta:stripes-white:outline-orange"},
    {"ladybug-circle", "circle:red:dots-black:outline-yellow"},
    {"chess-square", "square:blue:checks-white:eye-orange"},
    {"tiger-triangle", "triangle:orange:stripes-black:outline-cyan"},
    {"bee-ring", "ring:yellow:stripes-black:eye-magenta"},
};
#define N_NAMED ((int)(sizeof NAMED / sizeof NAMED[0]))

int subject_named_count(void) { return N_NAMED; }
const char *subject_named_name(int i) { return NAMED[i][0]; }
const char *subject_named_spec(int i) { return NAMED[i][1]; }

static int find(const char *const *names, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], s)) return i;
    return -1;
}

#define SPEC_HELP                                                                                        \
    "; a subject is SHAPE:BODY:PATTERN-COLOUR:ACCENT-COLOUR (e.g. star:magenta:stripes-white:outline-orange) " \
    "or a name from `singlora world subjects`, with shapes %s; colours %s; patterns stripes, dots, checks; "   \
    "accents outline, eye"

static int bad(const char *what, const char *spec, const char *problem, const char *word) {
    char msg[160];
    snprintf(msg, sizeof msg, problem, word);
    return sl_error(what, "subject '%s': %s" SPEC_HELP, spec, msg, shape_list(), palette_list());
}

// "NAME-COLOUR" -> index in names and the colour
static int split_feature(const char *field, const char *const *names, int n, int *kind, int *colour) {
    const char *dash = strchr(field, '-');
    if (!dash) return -1;
    char name[32];
    size_t k = (size_t)(dash - field);
    if (k >= sizeof name) return -1;
    memcpy(name, field, k);
    name[k] = 0;
    *kind = find(names, n, name);
    *colour = palette_find(dash + 1);
    return 0;
}

int subject_parse(const char *spec, world_subject *s, const char *what) {
    for (int i = 0; i < N_NAMED; i++)
        if (!strcmp(spec, NAMED[i][0])) spec = NAMED[i][1];
    char buf[128], *f[4];
    if (strlen(spec) >= sizeof buf) return bad(what, spec, "too long%s", "");
    strcpy(buf, spec);
    int nf = 0;
    for (char *p = buf, *tok; nf < 5 && (tok = strsep(&p, ":")); nf++)
        if (nf < 4) f[nf] = tok;
    if (nf != 4) return bad(what, spec, "has %s fields separated by ':', not 4", nf > 4 ? "more than 4" : "fewer");
    if ((s->shape = shape_find(f[0])) < 0) return bad(what, spec, "unknown shape '%s'", f[0]);
    if ((s->body = palette_find(f[1])) < 0) return bad(what, spec, "unknown body colour '%s'", f[1]);
    if (split_feature(f[2], PATTERNS, N_PATTERNS, &s->pattern, &s->pattern_colour) != 0)
        return bad(what, spec, "pattern '%s' is not PATTERN-COLOUR", f[2]);
    if (s->pattern < 0) return bad(what, spec, "unknown pattern in '%s'", f[2]);
    if (s->pattern_colour < 0) return bad(what, spec, "unknown pattern colour in '%s'", f[2]);
    if (split_feature(f[3], ACCENTS, N_ACCENTS, &s->accent, &s->accent_colour) != 0)
        return bad(what, spec, "accent '%s' is not ACCENT-COLOUR", f[3]);
    if (s->accent < 0) return bad(what, spec, "unknown accent in '%s'", f[3]);
    if (s->accent_colour < 0) return bad(what, spec, "unknown accent colour in '%s'", f[3]);
    if (s->pattern_colour == s->body) return bad(what, spec, "the pattern colour is the body colour %s", f[1]);
    if (s->accent_colour == s->body) return bad(what, spec, "the accent colour is the body colour %s", f[1]);
    return 0;
}

void subject_format(const world_subject *s, char *buf, size_t n) {
    snprintf(buf, n, "%s:%s:%s-%s:%s-%s", shape_name(s->shape), palette_name(s->body), PATTERNS[s->pattern],
             palette_name(s->pattern_colour), ACCENTS[s->accent], palette_name(s->accent_colour));
}

int subject_uses_colour(const world_subject *s, int c) {
    return c == s->body || c == s->pattern_colour || c == s->accent_colour;
}

void subject_paint_init(subject_paint_ctx *c, const world_subject *s, int64_t cx, int64_t cy, int64_t r) {
    c->s = *s;
    shape_place(&c->g, s->shape, cx, cy, r);
    c->u = r * 2 / 9;
}

// a mod m in [0, m)
static int64_t pmod(int64_t a, int64_t m) {
    int64_t r = a % m;
    return r < 0 ? r + m : r;
}

static int in_pattern(const subject_paint_ctx *c, int64_t dx, int64_t dy) {
    int64_t u = c->u;
    switch (c->s.pattern) {
    case PATTERN_STRIPES: {
        // bands of constant dx + dy, w wide along x: w / sqrt(2) = 1.06u perpendicular, 1.6u apart
        int64_t w = u * 3 / 2;
        return pmod(dx + dy + w / 2, w * 5 / 2) < w;
    }
    case PATTERN_DOTS: {
        int64_t p = u * 5 / 2, rd = u * 3 / 5;
        int64_t mx = pmod(dx + p / 2, p) - p / 2, my = pmod(dy + p / 2, p) - p / 2;
        return mx * mx + my * my <= rd * rd;
    }
    default: {   // checks
        int64_t ix = (dx - pmod(dx, u)) / u, iy = (dy - pmod(dy, u)) / u;
        return (int)((ix + iy) & 1);
    }
    }
}

int subject_paint(const void *ctx, int64_t x, int64_t y) {
    const subject_paint_ctx *c = ctx;
    if (!shape_inside(&c->g, x, y)) return -1;
    int64_t dx = x - c->g.cx, dy = y - c->g.cy;
    if (c->s.accent == ACCENT_OUTLINE) {
        if (shape_near_outline(&c->g, x, y, c->u)) return c->s.accent_colour;
    } else {
        int64_t ey = c->s.shape == SHAPE_RING ? -(c->g.r * 145 / 200) : 0;
        if (dx * dx + (dy - ey) * (dy - ey) <= c->u * c->u) return c->s.accent_colour;
    }
    return in_pattern(c, dx, dy) ? c->s.pattern_colour : c->s.body;
}

void subject_random(world_subject *s, sl_rng *r) {
    for (int named = 1; named;) {
        s->shape = (int)sl_rng_randint(r, N_SHAPES);
        s->body = (int)sl_rng_randint(r, N_COLOURS);
        s->pattern = (int)sl_rng_randint(r, N_PATTERNS);
        s->pattern_colour = (s->body + 1 + (int)sl_rng_randint(r, N_COLOURS - 1)) % N_COLOURS;   // != body
        s->accent = (int)sl_rng_randint(r, N_ACCENTS);
        s->accent_colour = (s->body + 1 + (int)sl_rng_randint(r, N_COLOURS - 1)) % N_COLOURS;
        named = 0;
        for (int i = 0; i < N_NAMED; i++) {
            world_subject n;
            if (subject_parse(NAMED[i][1], &n, NULL) == 0 && !memcmp(&n, s, sizeof n)) named = 1;
        }
    }
}
