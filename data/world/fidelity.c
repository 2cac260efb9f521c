#include "data/world/fidelity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/world/blur.h"
#include "data/world/dataset.h"
#include "data/world/shape_match.h"
#include "engine/core/error.h"

void fidelity_features(const world_segmentation *seg, int k, const world_subject *s, subject_features *f) {
    memset(f, 0, sizeof *f);
    const seg_component *c = &seg->comp[k];
    int w = seg->w;
    // interior pixels (the whole component when it has no interior)
    int use_interior = 0;
    for (int y = c->y0; y <= c->y1 && !use_interior; y++)
        for (int x = c->x0; x <= c->x1; x++)
            if (segment_interior(seg, k, y * w + x)) { use_interior = 1; break; }
    double count[N_COLOURS] = {0}, known = 0, sx = 0, sy = 0, n = 0;
    for (int y = c->y0; y <= c->y1; y++)
        for (int x = c->x0; x <= c->x1; x++) {
            int i = y * w + x;
            if (seg->label[i] != k) continue;
            sx += x, sy += y, n++;
            if (use_interior && !segment_interior(seg, k, i)) continue;
            if (seg->cls[i] >= 0) count[seg->cls[i]]++, known++;
        }
    if (known > 0)
        for (int q = 0; q < N_COLOURS; q++) f->hist[q] = (float)(count[q] / known);
    double mx = sx / n, my = sy / n, scale = sqrt((double)c->area);
    // transitions of the pattern colour's mask between neighbours both in the component
    static const int DIRS[4][2] = {{1, 0}, {0, 1}, {1, 1}, {1, -1}};
    for (int d = 0; d < 4; d++) {
        double pairs = 0, changes = 0;
        for (int y = c->y0; y <= c->y1; y++)
            for (int x = c->x0; x <= c->x1; x++) {
                int x2 = x + DIRS[d][0], y2 = y + DIRS[d][1];
                if (x2 < 0 || y2 < 0 || x2 >= w || y2 >= seg->h) continue;
                int i = y * w + x, j = y2 * w + x2;
                if (seg->label[i] != k || seg->label[j] != k) continue;
                pairs++;
                changes += (seg->cls[i] == s->pattern_colour) != (seg->cls[j] == s->pattern_colour);
            }
        f->trans[d] = pairs > 0 ? (float)(changes / pairs * scale) : 0.f;
    }
    double rs = 0, rn = 0;
    for (int y = c->y0; y <= c->y1; y++)
        for (int x = c->x0; x <= c->x1; x++) {
            int i = y * w + x;
            if (seg->label[i] != k || seg->cls[i] != s->accent_colour) continue;
            rs += sqrt((x - mx) * (x - mx) + (y - my) * (y - my)), rn++;
        }
    f->accent_radius = rn > 0 ? (float)(rs / rn / scale) : -1.f;
}

static void reference_level(subject_features *out, const world_subject *s, int passes) {
    enum { S = FIDELITY_REFERENCE_SIZE };
    memset(out, 0, sizeof *out);
    uint8_t *rgb = sl_malloc(S * S * 3);
    int used = 0, n_radius = 0;
    double radius = 0;
    for (int i = 0; i < FIDELITY_REFERENCE_PHOTOS; i++) {
        world_subject_example(s, NULL, 0x5EEDu, (uint64_t)i, S, rgb, NULL, NULL);
        blur_box3(rgb, S, S, passes);
        world_segmentation seg;
        segment_image(&seg, rgb, S, S);
        if (seg.n_comp > 0) {
            subject_features f;
            fidelity_features(&seg, 0, s, &f);
            for (int q = 0; q < N_COLOURS; q++) out->hist[q] += f.hist[q];
            for (int d = 0; d < 4; d++) out->trans[d] += f.trans[d];
            if (f.accent_radius >= 0) radius += f.accent_radius, n_radius++;
            used++;
        }
        segment_free(&seg);
    }
    free(rgb);
    if (used) {
        for (int q = 0; q < N_COLOURS; q++) out->hist[q] /= (float)used;
        for (int d = 0; d < 4; d++) out->trans[d] /= (float)used;
    }
    out->accent_radius = n_radius ? (float)(radius / n_radius) : -1.f;
}

void fidelity_reference(subject_reference *ref, const world_subject *s) {
    memset(ref, 0, sizeof *ref);
    ref->subject = *s;
    for (int b = 0; b < FIDELITY_BLUR_LEVELS; b++) reference_level(&ref->ref[b], s, b);
}

static fidelity_parts compare(const subject_features *f, const subject_features *r) {
    fidelity_parts p = {0};
    for (int q = 0; q < N_COLOURS; q++) p.colour += f->hist[q] < r->hist[q] ? f->hist[q] : r->hist[q];
    double diff = 0, sum = 0;
    for (int d = 0; d < 4; d++) diff += fabs(f->trans[d] - r->trans[d]), sum += f->trans[d] + r->trans[d];
    p.pattern = sum > 0 ? (float)(1 - diff / sum) : 0.f;
    if (f->accent_radius >= 0 && r->accent_radius >= 0) {
        double a = f->accent_radius, b = r->accent_radius;
        p.accent = a + b > 0 ? (float)(1 - fabs(a - b) / (a + b)) : 1.f;
    }
    return p;
}

float fidelity_score(const subject_reference *ref, const world_segmentation *seg, int k, fidelity_parts *parts) {
    subject_features f;
    fidelity_features(seg, k, &ref->subject, &f);
    float iou[N_SHAPES];
    int best_shape = match_shape(seg, k, iou);
    float shape = iou[best_shape] > 0 ? iou[ref->subject.shape] / iou[best_shape] : 0.f;
    fidelity_parts best = {0};
    for (int b = 0; b < FIDELITY_BLUR_LEVELS; b++) {
        fidelity_parts p = compare(&f, &ref->ref[b]);
        p.shape = shape;
        p.fidelity = p.colour * (p.pattern + p.accent) / 2 * p.shape;
        if (b == 0 || p.fidelity > best.fidelity) best = p;
    }
    if (parts) *parts = best;
    return best.fidelity;
}
