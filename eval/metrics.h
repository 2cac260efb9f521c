// The DreamBooth fidelity metrics (raw cosines: not ×100, not clamped):
// DINO = mean over all (generated, real) pairs of cos(DINO features); CLIP-I likewise with CLIP
// image embeddings; CLIP-T = mean over generated images i of cos(text embedding of i's prompt,
// image embedding of i). cos(a, b) = a·b / (‖a‖‖b‖), accumulated in double.
#pragma once

double cosine_similarity(const float *a, const float *b, int d);
// out (A, B): out[i, j] = cos(a[i], b[j]) for a (A, d), b (B, d).
void cosine_matrix(double *out, const float *a, int A, const float *b, int B, int d);
// The mean of m (A, B); row_means (may be NULL) (A) the mean of each row.
double matrix_mean(const double *m, int A, int B, double *row_means);
// per (n, may be NULL): cos(text[i], image[i]) for text, image (n, d); returns their mean.
double clip_t_score(const float *text, const float *image, int n, int d, double *per);
// Population standard deviation of x (n).
double std_dev(const double *x, int n);
