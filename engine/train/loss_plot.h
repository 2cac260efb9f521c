// loss.png: the training loss per optimizer step (points) and its EMA (a line), on axes with
// ticks and numeric tick labels, drawn into an 8-bit RGB image and written with data/png.h.
#pragma once
#include <stdint.h>

// steps, loss, ema (n each). 0, or -1 with sl_error.
int loss_plot_write(const char *path, const int64_t *steps, const float *loss, const float *ema, int n);
