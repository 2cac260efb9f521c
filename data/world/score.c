#include "data/world/score.h"

#include <string.h>

#include "data/world/shape_match.h"

// object i of want judged on component k
static void judge(const world_segmentation *seg, int k, const world_object *o, const subject_reference *ref,
                  object_score *s) {
    memset(s, 0, sizeof *s);
    s->is_subject = o->is_subject;
    s->want_shape = o->shape;
    s->want_colour = o->is_subject ? -1 : o->colour;
    s->got_shape = s->got_colour = -1;
    if (k < 0) return;
    float iou[N_SHAPES];
    s->got_shape = match_shape(seg, k, iou);
    s->shape_iou = iou[o->shape];
    s->shape_right = s->got_shape == o->shape;
    if (o->is_subject) {
        if (ref) fidelity_score(ref, seg, k, &s->fidelity);
    } else {
        s->got_colour = segment_colour(seg, k);
        s->colour_right = s->got_colour == o->colour;
    }
}

static float merit(const object_score *s) {
    return (float)(s->shape_right + s->colour_right) + s->shape_iou * 0.1f + 2 * s->fidelity.fidelity;
}

void score_image(const uint8_t *rgb, int w, int h, const world_scene *want, const subject_reference *ref,
                 image_score *out) {
    memset(out, 0, sizeof *out);
    world_segmentation seg;
    segment_image(&seg, rgb, w, h);
    out->want_background = want->background;
    out->got_background = seg.background;
    out->background_right = seg.background == want->background;
    out->n_objects = want->n_objects;
    out->n_components = seg.n_comp;
    int n = want->n_objects, found = seg.n_comp < n ? seg.n_comp : n;
    if (n == 1) {
        judge(&seg, found ? 0 : -1, &want->obj[0], ref, &out->obj[0]);
    } else {
        // the two objects on the two largest components, in whichever order matches better
        object_score a[2], b[2];
        judge(&seg, found > 0 ? 0 : -1, &want->obj[0], ref, &a[0]);
        judge(&seg, found > 1 ? 1 : -1, &want->obj[1], ref, &a[1]);
        judge(&seg, found > 1 ? 1 : -1, &want->obj[0], ref, &b[0]);
        judge(&seg, found > 0 ? 0 : -1, &want->obj[1], ref, &b[1]);
        int swap = merit(&b[0]) + merit(&b[1]) > merit(&a[0]) + merit(&a[1]);
        out->obj[0] = swap ? b[0] : a[0];
        out->obj[1] = swap ? b[1] : a[1];
    }
    segment_free(&seg);
}
