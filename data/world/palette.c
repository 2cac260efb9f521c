#include "data/world/palette.h"

#include <string.h>

static const char *const NAMES[N_COLOURS] = {
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "magenta", "white", "black", "brown", "cyan",
};

// RGB[N_COLOURS][3]
static const uint8_t RGB[N_COLOURS][3] = {
    {220, 40, 40},   {245, 130, 20}, {245, 225, 50}, {50, 170, 70},  {40, 80, 220},   {120, 60, 170},
    {250, 160, 200}, {220, 50, 200}, {245, 245, 245}, {25, 25, 25},  {130, 80, 40},   {50, 210, 220},
};

const char *palette_name(int colour) { return colour >= 0 && colour < N_COLOURS ? NAMES[colour] : NULL; }

int palette_find(const char *name) {
    for (int i = 0; i < N_COLOURS; i++)
        if (!strcmp(NAMES[i], name)) return i;
    return -1;
}

const uint8_t *palette_rgb(int colour) { return RGB[colour]; }

int palette_nearest(int r, int g, int b, int *dist2) {
    int best = 0, bd = -1;
    for (int i = 0; i < N_COLOURS; i++) {
        int dr = r - RGB[i][0], dg = g - RGB[i][1], db = b - RGB[i][2];
        int d = dr * dr + dg * dg + db * db;
        if (bd < 0 || d < bd) { bd = d; best = i; }
    }
    if (dist2) *dist2 = bd;
    return best;
}

int palette_classify(int r, int g, int b) {
    int d;
    int c = palette_nearest(r, g, b, &d);
    return d > PALETTE_UNKNOWN_DIST2 ? COL_UNKNOWN : c;
}

const char *palette_list(void) {
    return "red, orange, yellow, green, blue, purple, pink, magenta, white, black, brown, cyan";
}
