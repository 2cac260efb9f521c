// Shape recognition by template matching, invariant to position and scale: a component's
// mask is cut to its bounding box, scaled uniformly (by the longer side) and centred into a
// MATCH_GRID x MATCH_GRID soft mask (coverage of 4x4 samples per cell), and compared by soft
// IoU (sum min / sum max) with the same masks of each shape as the renderer draws it, at the
// world's sizes, crisp and blurred (the best of a shape's templates counts).
#pragma once

#include "data/world/segment.h"
#include "data/world/shapes.h"

#define MATCH_GRID 32

// grid (MATCH_GRID, MATCH_GRID) of component k.
void match_normalize(const world_segmentation *seg, int k, float *grid);
// Soft IoU of two grids.
float match_iou(const float *a, const float *b);
// iou[N_SHAPES] of component k against every shape's templates; returns the best shape.
int match_shape(const world_segmentation *seg, int k, float *iou);
