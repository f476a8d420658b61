/* pact.c: PACT (Choi et al. 2018): y = clip(x, 0, alpha) with a learnable
 * alpha, then k bits: y~ = round(y (2^k - 1) / alpha) alpha / (2^k - 1).
 * Backward (STE through round): dy/dx = 1{0 <= x < alpha},
 * dy/dalpha = 1{x >= alpha}. alpha starts at pact_alpha (10) and has its
 * own L2 decay pact_decay (the trainer applies it). */
#include "qmath.h"

typedef struct {
    float alpha; /* the clip's first value */
    float decay; /* the clip's own L2 decay */
} pact_opts;
_Static_assert(sizeof(pact_opts) <= QAT_QOPTS_BYTES, "pact settings");
static const qat_qkey pact_keys[] = {
    QAT_QKEY_FLOAT_OF("pact_alpha", pact_opts, alpha, 10, 1e-3, 1e4, QAT_QROLES_ALL),
    QAT_QKEY_FLOAT_OF("pact_decay", pact_opts, decay, 2e-4, 0, 10, QAT_QROLES_ALL),
};

static void pact_init(qat_qnode *n) { n->param->x[0] = QAT_QOPTS(n, pact_opts)->alpha; }

static float pact_decay(const qat_qnode *n) { return QAT_QOPTS(n, pact_opts)->decay; }

static void pact_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *restrict x = t->src[0]->x;
    float *restrict y = t->x;
    float a = n->param->x[0], levels = (float)((1 << n->bits) - 1);
    float s = a / levels, inv = levels / a;
    qat_qscale(n)[0] = s;
    for (size_t i = 0; i < t->n; i++) y[i] = qat_round(qat_clampf(x[i], 0.0f, a) * inv) * s;
}

static void pact_backward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *restrict x = t->src[0]->x, *restrict dy = t->g;
    float *restrict dx = t->src[0]->g;
    float a = n->param->x[0];
    double da = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (dx) dx[i] += dy[i] * (float)((x[i] >= 0.0f) & (x[i] < a));
        if (x[i] >= a) da += dy[i];
    }
    if (n->param->g) n->param->g[0] += (float)da;
}

static void pact_levels(const qat_qnode *n, qat_levels *out)
{
    *out = (qat_levels){.lo = 0, .hi = (1 << n->bits) - 1, .step = 1, .scale = qat_qscale(n), .nscale = 1};
}

const qat_quantizer qat_q_pact = {
    .name = "pact", .roles = QAT_QROLE_ACT, .default_bits = 4, .min_bits = 1, .max_bits = 16, .has_param = 1, .param_name = "alpha", .param_decay = pact_decay,
    .opts_size = sizeof(pact_opts), QAT_QKEYS(pact_keys),
    .init = pact_init, .forward = pact_forward, .backward = pact_backward, .levels = pact_levels,
};
