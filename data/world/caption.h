// Captions of world scenes, and scenes back from captions:
//   a red star on a green background
//   an orange ring and a blue circle on a white background
//   a photo of sks star on a blue background          (the subject, with its token)
//   a sks star and a red square on a cyan background
// Grammar (words separated by spaces; case, a trailing '.' or ',' are ignored):
//   caption := ["a photo of"] object ["and" object] "on" ARTICLE COLOUR "background"
//   object  := [ARTICLE] COLOUR SHAPE | [ARTICLE] TOKEN SHAPE        ARTICLE := a | an
#pragma once
#include <stddef.h>

#include "data/world/scene.h"

#define CAPTION_MAX 256

// The caption of s into buf (n bytes, CAPTION_MAX is always enough). token names the subject
// (ignored when the scene has none; "sks" when NULL).
void caption_write(const world_scene *s, const char *token, char *buf, size_t n);

// Parses a caption into the objects' shapes/colours and the background of s (positions are
// not set: scene_place draws them). token: the subject's token, or NULL when captions may not
// name one; a subject object gets is_subject = 1, colour -1 (the caller sets s->subject).
// -1 with sl_error(what, ...) naming the first word that does not fit and the allowed words.
int caption_parse(const char *text, const char *token, world_scene *s, const char *what);
