// Every `singlora train` option by name, in one table shared by the command line, recipe files
// (`--config recipe.json`: keys are flag names) and `singlora demo`. Names are diffusers'
// train_dreambooth_lora.py flags; "--a_b", "a-b" and "a_b" are the same name, and
// --pretrained-model-name-or-path is --model. Every number is range-checked once, here.
#pragma once
#include <stddef.h>

#include "engine/train/trainer.h"

// "--a_b=V" / "a_b" -> "a-b" (into buf; stops at '='). Returns buf.
const char *train_option_normalize(const char *s, char *buf, size_t len);
// 1 for a known flag taking no value (--center-crop), 0 for a known option with a value, -1 unknown.
int train_option_kind(const char *name);
// Sets option `name` (any spelling) from text. what names the source in errors (e.g. "--rank" or
// "recipe.json: rank"). The string is kept by pointer, not copied. 0, or -1 with sl_error (unknown
// name, a value that does not parse or is out of range, with the allowed range).
int train_option_set(train_config *c, const char *name, const char *value, const char *what);
// Applies a recipe: a JSON object whose keys are option names and whose values are strings,
// numbers or booleans (null: leave the default). *keep holds the strings: free it with
// train_recipe_free after the run. "config" is not allowed inside a recipe. 0, or -1 with
// sl_error naming the file and the key.
int train_recipe_load(train_config *c, const char *path, void **keep);
void train_recipe_free(void *keep);
