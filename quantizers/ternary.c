/* ternary.c: TWN (Li et al. 2016). Weights: delta = 0.7 * mean|W| (the
 * factor is ternary_factor), alpha = mean of |W_i| over |W_i| > delta,
 * W~ = alpha * t with t in {-1, 0, +1}; per tensor or per output channel;
 * STE backward (identity). Activations: a fixed threshold (act_threshold):
 * y = sign(x) * 1{|x| > threshold}, backward g * 1{|x| <= 1}. */
#include "qmath.h"

static const int32_t tern[3] = {-1, 0, 1};

typedef struct {
    float factor;    /* weights: delta = factor * mean|W| */
    float threshold; /* activations: the fixed threshold */
} ternary_opts;
_Static_assert(sizeof(ternary_opts) <= QAT_QOPTS_BYTES, "ternary settings");
static const qat_qkey ternary_keys[] = {
    QAT_QKEY_FLOAT_OF("ternary_factor", ternary_opts, factor, 0.7, 0, 10, QAT_QROLES_ALL),
    QAT_QKEY_FLOAT_OF("act_threshold", ternary_opts, threshold, 0.5, 0, 100, QAT_QROLES_ALL),
};

static void ternary_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *x = t->src[0]->x;
    float *y = t->x;
    if (n->role == QAT_QROLE_ACT) {
        float th = QAT_QOPTS(n, ternary_opts)->threshold;
        for (size_t i = 0; i < t->n; i++) y[i] = x[i] > th ? 1.0f : x[i] < -th ? -1.0f : 0.0f;
        return;
    }
    size_t S = qat_qchan_size(n);
    float *scale = qat_qscale(n);
    for (int c = 0; c < n->channels; c++) {
        const float *xc = x + (size_t)c * S;
        float *yc = y + (size_t)c * S;
        float delta = QAT_QOPTS(n, ternary_opts)->factor * qat_mean_abs(xc, S);
        double s = 0;
        size_t k = 0;
        for (size_t i = 0; i < S; i++)
            if (fabsf(xc[i]) > delta) {
                s += fabsf(xc[i]);
                k++;
            }
        float a = k ? (float)(s / (double)k) : 0.0f;
        scale[c] = a;
        for (size_t i = 0; i < S; i++) yc[i] = xc[i] > delta ? a : xc[i] < -delta ? -a : 0.0f * a;
    }
}

static void ternary_backward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    float *dx = t->src[0]->g;
    if (!dx) return;
    if (n->role == QAT_QROLE_ACT) {
        qat_ste_mask(t->src[0]->x, t->g, dx, t->n, -1.0f, 1.0f);
        return;
    }
    for (size_t i = 0; i < t->n; i++) dx[i] += t->g[i];
}

static void ternary_levels(const qat_qnode *n, qat_levels *out)
{
    *out = (qat_levels){.table = tern, .ntable = 3, .per_channel = n->channels > 1, .scale = qat_qscale(n),
                        .nscale = n->channels};
}

const qat_quantizer qat_q_ternary = {
    .per_channel_ok = 1,
    .name = "ternary", .roles = QAT_QROLE_WEIGHT | QAT_QROLE_ACT, .default_bits = 2, .min_bits = 2,
    .max_bits = 2, .forward = ternary_forward, .backward = ternary_backward, .levels = ternary_levels,
    .opts_size = sizeof(ternary_opts), QAT_QKEYS(ternary_keys),
};
