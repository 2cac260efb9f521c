// A world scene: one or two objects (plain shapes, or the subject) on a background colour, with
// geometry in WORLD_UNITS of the image side so that one scene renders at any size. Rendering is
// a pure function of the scene and the size, in integers only: the same bytes on every machine.
#pragma once
#include <stdint.h>

#include "data/world/subject.h"
#include "engine/core/rng.h"

#define WORLD_MAX_OBJECTS 2
#define WORLD_UNITS 1024        // scene coordinates: 1/1024 of the image side
#define WORLD_MIN_SIZE 16
#define WORLD_MAX_SIZE 1024

// object sizes r (shape radius, shapes.h) in WORLD_UNITS: 9-16 px alone at 64 px, 7-12 px in
// pairs, subjects 18-24 px (their features are then >= 4 px wide)
#define WORLD_R_ONE_MIN 144
#define WORLD_R_ONE_MAX 256
#define WORLD_R_TWO_MIN 112
#define WORLD_R_TWO_MAX 192
#define WORLD_R_SUBJECT_MIN 288
#define WORLD_R_SUBJECT_MAX 384

typedef struct {
    int shape;        // world_shape
    int colour;       // world_colour of a plain object; -1 for the subject
    int is_subject;   // drawn as the scene's subject (its colours, pattern and accent)
    int cx, cy, r;    // centre and size in WORLD_UNITS
} world_object;

typedef struct {
    int n_objects;                          // 1 or 2
    world_object obj[WORLD_MAX_OBJECTS];
    int background;                         // world_colour, none of the objects' colours
    int has_subject;
    world_subject subject;                  // when has_subject
    uint32_t texture_seed;                  // the background texture and grain
} world_scene;

// A random world scene: 1 or 2 plain objects, any shapes and colours, a background of another colour.
void scene_random(world_scene *s, sl_rng *r);
// A random "photo" of the subject: it alone, 18-24 px at 64 px, on a background none of its colours.
void scene_random_subject(world_scene *s, const world_subject *sub, sl_rng *r);
// Draws sizes, positions (objects never overlap) and the texture seed for a scene whose objects'
// shapes/colours and background are already set (a parsed caption).
void scene_place(world_scene *s, sl_rng *r);
// rgb (size, size, 3), WORLD_MIN_SIZE <= size <= WORLD_MAX_SIZE.
void scene_render(const world_scene *s, int size, uint8_t *rgb);
