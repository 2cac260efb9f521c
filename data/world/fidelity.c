#include "data/world/fidelity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/world/dataset.h"
#include "data/world/shape_match.h"

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

void fidelity_reference(subject_reference *ref, const world_subject *s) {
    memset(ref, 0, sizeof *ref);
    ref->subject = *s;
    enum { S = FIDELITY_REFERENCE_SIZE };
    uint8_t *rgb = malloc(S * S * 3);
    int used = 0;
    double radius = 0;
    int n_radius = 0;
    for (int i = 0; i < FIDELITY_REFERENCE_PHOTOS; i++) {
        world_subject_example(s, NULL, 0x5EEDu, (uint64_t)i, S, rgb, NULL, NULL);
        world_segmentation seg;
        segment_image(&seg, rgb, S, S);
        if (seg.n_comp > 0) {
            subject_features f;
            fidelity_features(&seg, 0, s, &f);
            for (int q = 0; q < N_COLOURS; q++) ref->ref.hist[q] += f.hist[q];
            for (int d = 0; d < 4; d++) ref->ref.trans[d] += f.trans[d];
            if (f.accent_radius >= 0) radius += f.accent_radius, n_radius++;
            used++;
        }
        segment_free(&seg);
    }
    free(rgb);
    if (used) {
        for (int q = 0; q < N_COLOURS; q++) ref->ref.hist[q] /= (float)used;
        for (int d = 0; d < 4; d++) ref->ref.trans[d] /= (float)used;
    }
    ref->ref.accent_radius = n_radius ? (float)(radius / n_radius) : -1.f;
}

float fidelity_score(const subject_reference *ref, const world_segmentation *seg, int k, fidelity_parts *parts) {
    subject_features f;
    fidelity_features(seg, k, &ref->subject, &f);
    fidelity_parts p = {0};
    for (int q = 0; q < N_COLOURS; q++) p.colour += f.hist[q] < ref->ref.hist[q] ? f.hist[q] : ref->ref.hist[q];
    double diff = 0, sum = 0;
    for (int d = 0; d < 4; d++) diff += fabs(f.trans[d] - ref->ref.trans[d]), sum += f.trans[d] + ref->ref.trans[d];
    p.pattern = sum > 0 ? (float)(1 - diff / sum) : 0.f;
    if (f.accent_radius >= 0 && ref->ref.accent_radius >= 0) {
        double a = f.accent_radius, b = ref->ref.accent_radius;
        p.accent = a + b > 0 ? (float)(1 - fabs(a - b) / (a + b)) : 1.f;
    }
    float iou[N_SHAPES];
    int best = match_shape(seg, k, iou);
    p.shape = iou[best] > 0 ? iou[ref->subject.shape] / iou[best] : 0.f;
    p.fidelity = p.colour * (p.pattern + p.accent) / 2 * p.shape;
    if (parts) *parts = p;
    return p.fidelity;
}
