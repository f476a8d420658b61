/* xnor.c: XNOR-Net / BWN weights (Rastegari et al. 2016): W ~ alpha_c *
 * sign(W) with alpha_c = mean |W_c| per output channel. The backward is the
 * exact gradient of that scaled form with the sign's STE (1{|W| <= 1}):
 *   dW_i = g_i * alpha * 1{|W_i| <= 1} + sign(W_i) / n * sum_j g_j sign(W_j)
 * (the paper keeps only the j = i term of the second part: 1/n). */
#include "qmath.h"

static const int32_t pm1[2] = {-1, 1};

static void xnor_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    size_t S = qat_qchan_size(n);
    float *scale = qat_qscale(n);
    for (int c = 0; c < n->channels; c++) {
        const float *x = t->src[0]->x + (size_t)c * S;
        float *y = t->x + (size_t)c * S;
        float a = qat_mean_abs(x, S);
        scale[c] = a;
        for (size_t i = 0; i < S; i++) y[i] = a * qat_sign(x[i]);
    }
}

static void xnor_backward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    float *dx = t->src[0]->g;
    if (!dx) return;
    size_t S = qat_qchan_size(n);
    const float *scale = qat_qscale(n);
    for (int c = 0; c < n->channels; c++) {
        const float *x = t->src[0]->x + (size_t)c * S, *dy = t->g + (size_t)c * S;
        float *d = dx + (size_t)c * S;
        double gs = 0;
        for (size_t i = 0; i < S; i++) gs += dy[i] * qat_sign(x[i]);
        float k = (float)(gs / (double)S), a = scale[c];
        for (size_t i = 0; i < S; i++) d[i] += dy[i] * a * (float)(fabsf(x[i]) <= 1.0f) + qat_sign(x[i]) * k;
    }
}

static void xnor_levels(const qat_qnode *n, qat_levels *out)
{
    *out = (qat_levels){.table = pm1, .ntable = 2, .per_channel = n->channels > 1, .scale = qat_qscale(n),
                        .nscale = n->channels};
}

const qat_quantizer qat_q_xnor = {
    .per_channel_ok = 1,
    .name = "xnor", .roles = QAT_QROLE_WEIGHT, .default_bits = 1, .min_bits = 1, .max_bits = 1,
    .default_clip = 1.0f, .binary = 1, .forward = xnor_forward, .backward = xnor_backward, .levels = xnor_levels,
};
