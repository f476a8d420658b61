/* lsq.c: Learned Step Size Quantization (Esser et al. 2020):
 *   v_bar = round(clip(v / s, -Qn, Qp)), v_hat = v_bar * s,
 * weights signed (Qn = 2^(b-1), Qp = 2^(b-1) - 1), activations unsigned
 * (Qn = 0, Qp = 2^b - 1) unless act_signed. Backward:
 *   dv = g * 1{-Qn < v/s < Qp}
 *   ds = g * (-v/s + round(v/s)) inside, -Qn at or below, Qp at or above,
 *        times the gradient scale 1/sqrt(N Qp), N = weights per step
 *        (per tensor or per output channel) or features per image.
 * s starts at 2 mean|v| / sqrt(Qp): for weights at initialisation, for
 * activations from the first training batch (a flag in the buffer keeps
 * that across checkpoints). */
#include "qmath.h"

enum { X_INIT };

typedef struct {
    int signed_act; /* activations: signed levels (else unsigned, after a ReLU) */
} lsq_opts;
_Static_assert(sizeof(lsq_opts) <= QAT_QOPTS_BYTES, "lsq settings");
static const qat_qkey lsq_keys[] = {QAT_QKEY_BOOL_OF("act_signed", lsq_opts, signed_act, 0, QAT_QROLE_ACT)};

static void bounds(const qat_qnode *n, float *qn, float *qp)
{
    int b = n->bits;
    if (n->role == QAT_QROLE_ACT && !QAT_QOPTS(n, lsq_opts)->signed_act) {
        *qn = 0;
        *qp = (float)((1 << b) - 1);
    } else {
        *qn = (float)(1 << (b - 1));
        *qp = (float)((1 << (b - 1)) - 1);
    }
}

static void init_steps(qat_qnode *n, const float *v, size_t count)
{
    float qn, qp;
    bounds(n, &qn, &qp);
    size_t S = count / (size_t)n->channels;
    for (int c = 0; c < n->channels; c++) {
        float s = 2.0f * qat_mean_abs(v + (size_t)c * S, S) / sqrtf(qp);
        n->param->x[c] = s > 0 ? s : 1e-3f;
    }
}

static void lsq_init(qat_qnode *n)
{
    if (n->role == QAT_QROLE_WEIGHT) {
        init_steps(n, n->in->x, n->in->n);
        qat_qextra(n)[X_INIT] = 1;
    } else {
        for (int c = 0; c < n->channels; c++) n->param->x[c] = 1.0f;
    }
}

static void lsq_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *x = t->src[0]->x;
    float *e = qat_qextra(n);
    if (!e[X_INIT] && g->training) {
        init_steps(n, x, t->n);
        e[X_INIT] = 1;
    }
    float qn, qp;
    bounds(n, &qn, &qp);
    size_t S = t->n / (size_t)n->channels;
    float *scale = qat_qscale(n);
    for (int c = 0; c < n->channels; c++) {
        float s = n->param->x[c];
        scale[c] = s;
        const float *restrict xc = x + (size_t)c * S;
        float *restrict yc = t->x + (size_t)c * S;
        /* v / s, not v * (1/s): the product can be an ulp off and move a
         * round-half tie or a clip boundary (the paper divides) */
        for (size_t i = 0; i < S; i++) yc[i] = qat_round(qat_clampf(xc[i] / s, -qn, qp)) * s;
    }
}

static void lsq_backward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *x = t->src[0]->x;
    float *dx = t->src[0]->g;
    float qn, qp;
    bounds(n, &qn, &qp);
    size_t S = t->n / (size_t)n->channels;
    /* N: weights per step, or features per image for activations */
    size_t N = n->role == QAT_QROLE_WEIGHT ? S : t->n / (size_t)t->shape[0];
    float gscale = 1.0f / sqrtf((float)N * qp);
    for (int c = 0; c < n->channels; c++) {
        float s = n->param->x[c];
        const float *xc = x + (size_t)c * S, *dy = t->g + (size_t)c * S;
        double ds = 0;
        for (size_t i = 0; i < S; i++) {
            float v = xc[i] / s;
            float d;
            if (v <= -qn) d = -qn;
            else if (v >= qp) d = qp;
            else {
                d = qat_round(v) - v;
                if (dx) dx[(size_t)c * S + i] += dy[i];
            }
            ds += (double)dy[i] * d;
        }
        if (n->param->g) n->param->g[c] += (float)ds * gscale;
    }
}

static void lsq_levels(const qat_qnode *n, qat_levels *out)
{
    float qn, qp;
    bounds(n, &qn, &qp);
    *out = (qat_levels){.lo = (int)-qn, .hi = (int)qp, .step = 1, .per_channel = n->channels > 1,
                        .scale = qat_qscale(n), .nscale = n->channels};
}

const qat_quantizer qat_q_lsq = {
    .per_channel_ok = 1,
    .name = "lsq", .roles = QAT_QROLE_WEIGHT | QAT_QROLE_ACT, .default_bits = 2, .min_bits = 2, .max_bits = 16,
    .has_param = 1, .param_name = "step", .init = lsq_init, .forward = lsq_forward, .backward = lsq_backward, .levels = lsq_levels,
    .opts_size = sizeof(lsq_opts), QAT_QKEYS(lsq_keys),
};
