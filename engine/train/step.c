#include "engine/train/step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/dist/dist.h"

// The coefficient of each example's mean squared error in the micro-batch loss:
// instance examples 1/n_inst (min-SNR: w_b/n_inst), class examples λ/n_class, the counts
// being the global micro-batch's when it is split over ranks.
static void example_weights(double *c, const sl_schedule *sch, const train_opts *o, const train_micro *mb) {
    int n_inst = 0, n_cls = 0;
    for (int b = 0; b < mb->B; b++) {
        if (mb->prior[b]) n_cls++;
        else n_inst++;
    }
    if (mb->n_inst_total > 0) n_inst = mb->n_inst_total;
    if (mb->n_class_total > 0) n_cls = mb->n_class_total;
    for (int b = 0; b < mb->B; b++) {
        if (mb->prior[b]) {
            c[b] = o->prior_loss_weight / n_cls;
            continue;
        }
        double w = 1.0;
        if (o->snr_gamma > 0) {
            // diffusers compute_snr in f32: (√ᾱ/√(1−ᾱ))², here ᾱ/(1−ᾱ) as the reference forms it
            float a = sch->alphas_cumprod[mb->timesteps[b]];
            float snr = a / (1.0f - a);
            float mn = snr < (float)o->snr_gamma ? snr : (float)o->snr_gamma;
            w = o->prediction == SL_PRED_V ? (double)(mn / (snr + 1.0f)) : (double)(mn / snr);
        }
        c[b] = w / n_inst;
    }
}

int unet_regression_step(unet_model *m, unet_model *grads, const float *x, const float *t, const float *context,
                         const float *target, const double *coef, int N, int h, int w, int L, int checkpointing,
                         double grad_scale, float *dx, float *dcontext, float *loss) {
    const int64_t per = (int64_t)m->cfg.out_channels * h * w;
    float *pred = sl_alloc_f32(N * per), *dpred = sl_alloc_f32(N * per);
    unet_tape *tape = unet_forward_train(pred, x, t, context, N, h, w, L, m, checkpointing);
    if (!tape) {
        sl_free_aligned(pred);
        sl_free_aligned(dpred);
        return -1;
    }
    double total = 0.0;
    for (int b = 0; b < N; b++) {
        const double cb = coef ? coef[b] : 1.0 / N;   // the plain mean: every example 1/N of it
        const float *pb = pred + b * per, *tb = target + b * per;
        float *db = dpred + b * per;
        const double g = grad_scale * cb * 2.0 / (double)per;
        double e = 0.0;
        for (int64_t i = 0; i < per; i++) {
            double d = (double)pb[i] - tb[i];
            e += d * d;
            db[i] = (float)(g * d);
        }
        total += cb * e / (double)per;
    }
    *loss = (float)total;
    int rc = grad_scale != 0.0 || dx || dcontext ? unet_backward(dx, dcontext, grads, dpred, tape) : 0;
    unet_tape_free(tape);
    sl_free_aligned(pred);
    sl_free_aligned(dpred);
    return rc;
}

int train_micro_loss(unet_model *m, unet_model *grads, const sl_schedule *sch, const train_opts *o,
                     const train_micro *mb, double grad_scale, float *loss) {
    const unet_config *c = &m->cfg;
    const int B = mb->B, Ci = c->in_channels;
    if (c->out_channels != Ci)
        return sl_error(NULL, "the UNet predicts %d channels from %d: the training target needs them equal", c->out_channels, Ci);
    for (int b = 0; b < B; b++)
        if (mb->prior[b] != 0 && mb->prior[b] != 1) return sl_error(NULL, "prior flag %lld is not 0 or 1", (long long)mb->prior[b]);
    const int64_t per = (int64_t)Ci * mb->h * mb->w, n = (int64_t)B * per;
    sl_schedule s = *sch;          // the target follows the trained prediction type
    s.prediction = o->prediction;
    float *noisy = sl_alloc_f32(n), *target = sl_alloc_f32(n);
    float *t = sl_alloc_f32(B);
    double *coef = sl_calloc((size_t)B, sizeof *coef);
    int rc = -1;
    if (sl_schedule_add_noise(&s, noisy, mb->latents, mb->noise, mb->timesteps, B, per) != 0 ||
        sl_schedule_target(&s, target, mb->latents, mb->noise, mb->timesteps, B, per) != 0)
        goto done;
    for (int b = 0; b < B; b++) t[b] = (float)mb->timesteps[b];
    example_weights(coef, sch, o, mb);
    rc = unet_regression_step(m, grads, noisy, t, mb->context, target, coef, B, mb->h, mb->w, mb->L,
                              o->grad_checkpointing, grad_scale, NULL, NULL, loss);
done:
    sl_free_aligned(noisy);
    sl_free_aligned(target);
    sl_free_aligned(t);
    free(coef);
    return rc;
}

int train_check_finite(int64_t step, const char *what, double x) {
    if (isfinite(x)) return 0;
    return sl_error(NULL, "step %lld: the %s is %g; stopping before the update (lower the learning rate?)", (long long)step,
                    what, x);
}

int train_step(unet_model *m, param_block *pb, const sl_schedule *sch, const train_opts *o, const train_micro *mbs,
               int n_micro, float *losses, train_step_info *info) {
    adapter_set *set = pb->set;
    if (m->adapters != set) return sl_error(NULL, "train_step: the parameter block's adapter set is not attached to the UNet");
    if (n_micro < 1) return sl_error(NULL, "train_step: no micro-batches");
    const int64_t K = set->step + 1;
    set->step = K;   // u = u(K) for every forward and backward of this step
    info->u = set->method == ADAPTER_SINGLORA ? adapter_set_ramp(set) : 1.0f;
    unet_model *grads = unet_grads_new(m, "none");
    if (!grads) { set->step = K - 1; return -1; }
    param_block_zero_grads(pb);
    for (int j = 0; j < n_micro; j++)
        if (train_micro_loss(m, grads, sch, o, &mbs[j], 1.0 / n_micro, &losses[j]) != 0) {
            unet_free(grads);
            set->step = K - 1;
            return -1;
        }
    unet_free(grads);
    // the data-parallel sum: one call over the whole gradient block, then the losses
    double *lsum = sl_calloc((size_t)n_micro, sizeof *lsum);
    for (int j = 0; j < n_micro; j++) lsum[j] = losses[j];
    int rrc = dist_allreduce_sum_f32(pb->grads, pb->n);
    if (rrc == 0) rrc = dist_allreduce_sum_f64(lsum, n_micro);
    for (int j = 0; j < n_micro; j++) losses[j] = (float)lsum[j];
    free(lsum);
    if (rrc != 0) { set->step = K - 1; return -1; }
    info->grad_norm = param_block_grad_norm(pb);
    int bad = 0;
    for (int j = 0; j < n_micro && !bad; j++) bad = train_check_finite(K, "loss", losses[j]);
    if (bad || train_check_finite(K, "gradient norm", info->grad_norm)) { set->step = K - 1; return -1; }
    param_block_clip_grads(pb, info->grad_norm, o->max_grad_norm);
    info->lr = lr_schedule_at(&o->lr, K);
    adamw_step(pb->params, pb->grads, pb->m, pb->v, pb->n, K, info->lr, &o->adam);
    return 0;
}
