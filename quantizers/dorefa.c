/* dorefa.c: DoReFa-Net (Zhou et al. 2016), with quantize_k(r) =
 * round((2^k - 1) r) / (2^k - 1) (survey by Guo, Eq. 32).
 *   weights, k >= 2: w' = tanh(w) / (2 max|tanh(w)|) + 1/2,
 *                    w~ = 2 quantize_k(w') - 1; backward through tanh and
 *                    the normalisation with max|tanh(w)| held constant and
 *                    the STE through round: dw = g (1 - tanh^2 w) / max|tanh|.
 *   weights, k = 1: w~ = sign(w) * mean|w|, backward g (identity STE).
 *   activations:    y = quantize_k(clip(x, 0, 1)), backward g * 1{0 <= x <= 1}.
 * The gradient quantizer (grad_bits) is qat_quantize_grad in quantizer.c. */
#include "qmath.h"

static const int32_t pm1[2] = {-1, 1};

enum { X_MAXTANH };

static void dorefa_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *x = t->src[0]->x;
    float *y = t->x, *scale = qat_qscale(n);
    float levels = (float)((1 << n->bits) - 1);
    if (n->role == QAT_QROLE_ACT) {
        scale[0] = 1.0f / levels;
        for (size_t i = 0; i < t->n; i++) y[i] = qat_round(qat_clampf(x[i], 0.0f, 1.0f) * levels) * scale[0];
        return;
    }
    if (n->bits == 1) {
        float a = qat_mean_abs(x, t->n);
        scale[0] = a;
        for (size_t i = 0; i < t->n; i++) y[i] = a * qat_sign(x[i]);
        return;
    }
    float m = 0;
    for (size_t i = 0; i < t->n; i++) m = fmaxf(m, fabsf(tanhf(x[i])));
    float *e = qat_qextra(n);
    e[X_MAXTANH] = m;
    scale[0] = 1.0f / levels;
    float inv = m > 0 ? 0.5f / m : 0.0f;
    /* y = 2 round(w' n) / n - 1 = (2 round(w' n) - n) * (1/n): an odd level times 1/n */
    for (size_t i = 0; i < t->n; i++) {
        float wp = tanhf(x[i]) * inv + 0.5f;
        y[i] = (2.0f * qat_round(wp * levels) - levels) * scale[0];
    }
}

static void dorefa_backward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    float *dx = t->src[0]->g;
    if (!dx) return;
    const float *x = t->src[0]->x;
    if (n->role == QAT_QROLE_ACT) {
        qat_ste_mask(x, t->g, dx, t->n, 0.0f, 1.0f);
        return;
    }
    if (n->bits == 1) {
        for (size_t i = 0; i < t->n; i++) dx[i] += t->g[i];
        return;
    }
    float m = qat_qextra(n)[X_MAXTANH];
    if (m <= 0) return;
    for (size_t i = 0; i < t->n; i++) {
        float th = tanhf(x[i]);
        dx[i] += t->g[i] * (1.0f - th * th) / m;
    }
}

static void dorefa_levels(const qat_qnode *n, qat_levels *out)
{
    int levels = (1 << n->bits) - 1;
    if (n->role == QAT_QROLE_ACT)
        *out = (qat_levels){.lo = 0, .hi = levels, .step = 1, .scale = qat_qscale(n), .nscale = 1};
    else if (n->bits == 1)
        *out = (qat_levels){.table = pm1, .ntable = 2, .scale = qat_qscale(n), .nscale = 1};
    else
        *out = (qat_levels){.lo = -levels, .hi = levels, .step = 2, .scale = qat_qscale(n), .nscale = 1};
}

const qat_quantizer qat_q_dorefa = {
    .name = "dorefa", .roles = QAT_QROLE_WEIGHT | QAT_QROLE_ACT, .default_bits = 2, .min_bits = 1,
    .max_bits = 16, .forward = dorefa_forward, .backward = dorefa_backward, .levels = dorefa_levels,
};
