/* sign.c: binarisers. ste_sign (BNN, Hubara et al. 2016): forward sign with
 * sign(0) = +1, backward g * 1{|x| <= 1}. approx_sign (Bi-Real Net, Liu et
 * al. 2018): the same forward, backward g * (2 - 2|x|) * 1{|x| <= 1}. */
#include "qmath.h"

static const int32_t pm1[2] = {-1, 1};

static void sign_range(const qat_tensor *t, size_t b, size_t e)
{
    const float *restrict x = t->src[0]->x;
    float *restrict y = t->x;
    for (size_t i = b; i < e; i++) y[i] = qat_sign(x[i]);
}

static void sign_forward(qat_qnode *n, qat_tensor *t, qat_graph *g) { qat_qparallel(g, t, sign_range); }

static void ste_range(const qat_tensor *t, size_t b, size_t e)
{
    qat_ste_mask(t->src[0]->x + b, t->g + b, t->src[0]->g + b, e - b, -1.0f, 1.0f);
}

static void ste_backward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    if (t->src[0]->g) qat_qparallel(g, t, ste_range);
}

static void approx_range(const qat_tensor *t, size_t b, size_t e)
{
    const float *restrict x = t->src[0]->x, *restrict dy = t->g;
    float *restrict dx = t->src[0]->g;
    for (size_t i = b; i < e; i++) {
        float a = fabsf(x[i]);
        dx[i] += dy[i] * (2.0f - 2.0f * a) * (float)(a <= 1.0f);
    }
}

static void approx_backward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    if (t->src[0]->g) qat_qparallel(g, t, approx_range);
}

static void sign_levels(const qat_qnode *n, qat_levels *out)
{
    *out = (qat_levels){.table = pm1, .ntable = 2, .scale = qat_qscale(n), .nscale = 1};
}

const qat_quantizer qat_q_ste_sign = {
    .name = "ste_sign", .roles = QAT_QROLE_WEIGHT | QAT_QROLE_ACT, .default_bits = 1, .min_bits = 1,
    .max_bits = 1, .default_clip = 1.0f, .binary = 1, .unit_signs = 1, .forward = sign_forward, .backward = ste_backward,
    .levels = sign_levels,
};

const qat_quantizer qat_q_approx_sign = {
    .name = "approx_sign", .roles = QAT_QROLE_ACT, .default_bits = 1, .min_bits = 1, .max_bits = 1,
    .binary = 1, .unit_signs = 1, .forward = sign_forward, .backward = approx_backward, .levels = sign_levels,
};
