/* aqe.c: the asymptotic-quantized estimator of MINW-Net
 * (../shared/papers/aqe-minw-net.txt, Sec. III).
 *   forward  h^ = alpha h(a) + (1 - alpha) a                (Eq. 6, 18, 19)
 *            or alpha sign(a - z) + (1 - alpha) a, z ~ U[-1, 1] with
 *            rounding = stochastic (Eq. 7; 1 bit only)
 *   backward dL/da = 2 alpha dL/dh 1{|a| <= 1}              (Eq. 18, 19)
 *   eval     h^ = h(a), the pure quantizer                   (Eq. 20)
 * h by bit width: 1 bit sign (Eq. 4), 2 bits ternary (Eq. 21) with, for
 * activations, the fixed threshold aqe_delta and, for weights, TWN's
 * delta = ternary_factor * mean|W| (the paper takes Eq. 21 from TWN [17]; a
 * fixed 0.5 would zero every weight of a default initialisation in
 * evaluation), n >= 3 bits powers of two (Eq. 22): 0 and
 * +-2^-p, p = q-1..0, q = 2^(n-1) - 1 (3 bits: {0, +-1/4, +-1/2, +-1}),
 * each input taken to the nearest level (thresholds at the midpoints).
 * alpha rises from aqe_alpha to 1 at fraction aqe_reach of training
 * (linear, exponential or in steps) through the schedule hook; it is kept
 * in the node's buffer so checkpoints carry it. Latent weights are clipped
 * to [-1, 1] after each update (Algorithm 1). */
#include "qmath.h"

enum { X_ALPHA, X_DELTA };

typedef struct {
    float alpha, reach; /* alpha from `alpha` at the start to 1 at fraction `reach` of training */
    int shape;          /* qat_aqe_shape: along which curve */
    float delta;        /* activations, 2 bits: Eq. 21's threshold */
    float factor;       /* weights, 2 bits: delta = factor * mean|W| (TWN) */
    int stochastic;     /* 1 bit: Eq. 7's stochastic sign */
} aqe_opts;
_Static_assert(sizeof(aqe_opts) <= QAT_QOPTS_BYTES, "aqe settings");
static const char *const shape_names[QAT_AQE_SHAPE_COUNT] = {"linear", "exp", "step"};
static const qat_qkey aqe_keys[] = {
    QAT_QKEY_FLOAT_OF("aqe_alpha", aqe_opts, alpha, 0.5, 0, 1, QAT_QROLES_ALL), /* 1/2: the STE (Theorem 1) */
    QAT_QKEY_FLOAT_OF("aqe_reach", aqe_opts, reach, 0.8, 0, 1, QAT_QROLES_ALL),
    QAT_QKEY_ENUM_OF("aqe_schedule", aqe_opts, shape, QAT_AQE_LINEAR, shape_names, QAT_QROLES_ALL),
    QAT_QKEY_FLOAT_OF("aqe_delta", aqe_opts, delta, 0.5, 0, 1, QAT_QROLES_ALL),
    QAT_QKEY_FLOAT_OF("ternary_factor", aqe_opts, factor, 0.7, 0, 10, QAT_QROLES_ALL),
    QAT_QKEY_ENUM_OF("rounding", aqe_opts, stochastic, 0, qat_rounding_names, QAT_QROLES_ALL),
};

static const aqe_opts *opts(const qat_qnode *n) { return QAT_QOPTS(n, aqe_opts); }

static const int32_t pm1[2] = {-1, 1}, tern[3] = {-1, 0, 1};
/* powers of two as integer levels over the finest magnitude 2^-(q-1) */
static int32_t pow2_table[2 * 15 + 1];

/* h(a) for n bits; pure and exactly level * scale; delta: Eq. 21's threshold */
static float aqe_h(const qat_qnode *n, float a, float delta)
{
    if (n->bits == 1) return qat_sign(a);
    float m = fabsf(a), s = a < 0 ? -1.0f : 1.0f;
    if (n->bits == 2) return m > delta ? s : 0.0f;
    int q = (1 << (n->bits - 1)) - 1;
    float lo = ldexpf(1.0f, -(q - 1)); /* the smallest magnitude */
    if (m <= 0.5f * lo) return 0.0f;   /* below the midpoint of 0 and lo */
    float v = lo;
    for (int p = q - 2; p >= 0; p--) {
        float next = ldexpf(1.0f, -p);
        if (m <= 0.5f * (v + next)) return s * v;
        v = next;
    }
    return s * v;
}

static float alpha_of(const qat_qnode *n) { return qat_qextra(n)[X_ALPHA]; }

static void aqe_init(qat_qnode *n) { qat_qextra(n)[X_ALPHA] = opts(n)->alpha; }

static void aqe_schedule(qat_qnode *n, long step, long total)
{
    float a0 = opts(n)->alpha, reach = opts(n)->reach * (float)total;
    float f = reach > 0 ? (float)step / reach : 1.0f;
    if (f > 1) f = 1;
    float a;
    switch (opts(n)->shape) {
    case QAT_AQE_EXP: /* the gap to 1 shrinks geometrically, to 1e-3 of itself at f = 1 */
        a = f >= 1 ? 1.0f : 1.0f - (1.0f - a0) * powf(1e-3f, f);
        break;
    case QAT_AQE_STEP: /* four equal steps */
        a = a0 + (1.0f - a0) * floorf(f * 4.0f) / 4.0f;
        break;
    default: a = a0 + (1.0f - a0) * f; break;
    }
    qat_qextra(n)[X_ALPHA] = a;
}

static void aqe_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *x = t->src[0]->x;
    float *y = t->x;
    qat_qscale(n)[0] = n->bits >= 3 ? ldexpf(1.0f, -((1 << (n->bits - 1)) - 2)) : 1.0f;
    float delta = opts(n)->delta;
    if (n->bits == 2 && n->role == QAT_QROLE_WEIGHT) delta = opts(n)->factor * qat_mean_abs(x, t->n);
    qat_qextra(n)[X_DELTA] = delta;
    if (!g->training) {
        for (size_t i = 0; i < t->n; i++) y[i] = aqe_h(n, x[i], delta);
        return;
    }
    float a = alpha_of(n);
    if (opts(n)->stochastic && n->bits == 1) {
        for (size_t i = 0; i < t->n; i++) {
            float z = 2.0f * qat_rng_uniform(&g->rng) - 1.0f;
            y[i] = a * qat_sign(x[i] - z) + (1.0f - a) * x[i];
        }
        return;
    }
    for (size_t i = 0; i < t->n; i++) y[i] = a * aqe_h(n, x[i], delta) + (1.0f - a) * x[i];
}

static void aqe_backward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *restrict x = t->src[0]->x, *restrict dy = t->g;
    float *restrict dx = t->src[0]->g;
    if (!dx) return;
    float k = 2.0f * alpha_of(n);
    for (size_t i = 0; i < t->n; i++) dx[i] += k * dy[i] * (float)(fabsf(x[i]) <= 1.0f);
}

static void aqe_levels(const qat_qnode *n, qat_levels *out)
{
    if (n->bits == 1) {
        *out = (qat_levels){.table = pm1, .ntable = 2, .scale = qat_qscale(n), .nscale = 1};
    } else if (n->bits == 2) {
        *out = (qat_levels){.table = tern, .ntable = 3, .scale = qat_qscale(n), .nscale = 1};
    } else {
        int q = (1 << (n->bits - 1)) - 1, k = 0;
        pow2_table[k++] = 0;
        for (int p = 0; p < q; p++) {
            pow2_table[k++] = 1 << p;
            pow2_table[k++] = -(1 << p);
        }
        *out = (qat_levels){.table = pow2_table, .ntable = k, .scale = qat_qscale(n), .nscale = 1};
    }
}

const qat_quantizer qat_q_aqe = {
    .name = "aqe", .roles = QAT_QROLE_WEIGHT | QAT_QROLE_ACT, .default_bits = 1, .min_bits = 1, .max_bits = 5,
    .default_clip = 1.0f, .binary = 0, .init = aqe_init, .forward = aqe_forward, .backward = aqe_backward,
    .levels = aqe_levels, .schedule = aqe_schedule, .opts_size = sizeof(aqe_opts), QAT_QKEYS(aqe_keys),
};
