/* uniform.c: k-bit uniform quantization (survey by Gholami, Sec. III-A/B,
 * Eq. 2-3): q = clamp(round(x / s) + z, qmin, qmax), y = (q - z) * s.
 *   weights: symmetric (levels -Q..Q, Q = 2^(k-1) - 1, s = max|W| / Q) or
 *            asymmetric (levels 0..2^k-1, s = (max - min) / (2^k - 1),
 *            z = round(-min / s)), per tensor or per output channel, min-max;
 *   activations: unsigned (0..2^k-1, after a ReLU), signed symmetric or
 *            asymmetric; range from the batch (minmax) or an exponential
 *            moving average (ema) that evaluation always uses.
 * Backward: STE with the clipping mask, g * 1{lo <= x <= hi}.
 * `stochastic` is the same quantizer with unbiased stochastic rounding
 * (survey by Gholami, Eq. 8): floor(v + u), u ~ U[0, 1), so P(ceil v) =
 * v - floor v; with 1 bit it is the binary form (Eq. 9 with the hard
 * sigmoid): +1 with probability clip((x + 1) / 2, 0, 1). Rounding is
 * stochastic in training only; evaluation and export round to nearest. */
#include "qmath.h"

static const int32_t pm1[2] = {-1, 1};

/* settings of uniform and stochastic */
typedef struct {
    int symmetric;  /* levels -Q..Q (else 0..2^k-1 with a zero point) */
    int signed_act; /* activations: signed levels (else unsigned, after a ReLU) */
    int range;      /* qat_qrange: how activation ranges are found */
    int stochastic; /* stochastic rounding in training (Gholami Eq. 8) */
    float momentum; /* EMA range momentum */
} uniform_opts;
_Static_assert(sizeof(uniform_opts) <= QAT_QOPTS_BYTES, "uniform settings");

#define UNIFORM_KEYS                                                                              \
    QAT_QKEY_BOOL_OF("symmetric", uniform_opts, symmetric, 1, QAT_QROLES_ALL),                    \
    QAT_QKEY_BOOL_OF("act_signed", uniform_opts, signed_act, 0, QAT_QROLE_ACT),                   \
    QAT_QKEY_ENUM_OF("act_range", uniform_opts, range, QAT_QRANGE_EMA, qat_range_names, QAT_QROLES_ALL), \
    QAT_QKEY_FLOAT_OF("momentum", uniform_opts, momentum, 0.1, 0, 1, QAT_QROLES_ALL)
static const qat_qkey uniform_keys[] = {
    UNIFORM_KEYS,
    QAT_QKEY_ENUM_OF("rounding", uniform_opts, stochastic, 0, qat_rounding_names, QAT_QROLES_ALL),
};
/* stochastic: rounding is always stochastic */
static const qat_qkey stochastic_keys[] = {
    UNIFORM_KEYS,
    {"", QAT_QKEY_INT, 0, offsetof(uniform_opts, stochastic), 1, 1, 1, NULL, 0},
};

static const uniform_opts *opts(const qat_qnode *n) { return QAT_QOPTS(n, uniform_opts); }

typedef struct {
    float lo, hi;    /* representable range (the clipping mask) */
    float s, z;      /* scale, zero point */
    float qmin, qmax;
} urange;

static urange make_range(const qat_qnode *n, float lo, float hi)
{
    urange r;
    int k = n->bits;
    int unsigned_act = n->role == QAT_QROLE_ACT && !opts(n)->signed_act;
    if (unsigned_act) {
        r.qmin = 0;
        r.qmax = (float)((1 << k) - 1);
        r.lo = 0;
        r.hi = hi > 0 ? hi : 0;
        r.s = r.hi > 0 ? r.hi / r.qmax : 1.0f;
        r.z = 0;
    } else if (opts(n)->symmetric) {
        float m = fmaxf(fabsf(lo), fabsf(hi));
        r.qmax = (float)((1 << (k - 1)) - 1);
        r.qmin = -r.qmax;
        r.lo = -m;
        r.hi = m;
        r.s = m > 0 ? m / r.qmax : 1.0f;
        r.z = 0;
    } else {
        lo = fminf(lo, 0.0f); /* zero must be exactly representable */
        hi = fmaxf(hi, 0.0f);
        r.qmin = 0;
        r.qmax = (float)((1 << k) - 1);
        r.lo = lo;
        r.hi = hi;
        r.s = hi > lo ? (hi - lo) / r.qmax : 1.0f;
        r.z = qat_round(-lo / r.s);
    }
    return r;
}

static void quantize_range(const urange *r, const float *restrict x, float *restrict y, size_t n, qat_rng *rng)
{
    float inv = 1.0f / r->s;
    if (rng) {
        for (size_t i = 0; i < n; i++) {
            float v = floorf(x[i] * inv + qat_rng_uniform(rng)) + r->z;
            y[i] = (qat_clampf(v, r->qmin, r->qmax) - r->z) * r->s;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float v = qat_round(x[i] * inv) + r->z;
            y[i] = (qat_clampf(v, r->qmin, r->qmax) - r->z) * r->s;
        }
    }
}

static void minmax(const float *x, size_t n, float *lo, float *hi)
{
    float a = x[0], b = x[0];
    for (size_t i = 1; i < n; i++) {
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
    }
    *lo = a;
    *hi = b;
}

/* extra state of an activation quantizer: running lo, hi, initialised, and
 * the lo/hi of the last forward (the backward's clipping mask) */
enum { X_RLO, X_RHI, X_INIT, X_PAD };

static void binary_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *x = t->src[0]->x;
    for (size_t i = 0; i < t->n; i++) {
        if (g->training) {
            float p = qat_clampf((x[i] + 1.0f) * 0.5f, 0.0f, 1.0f);
            t->x[i] = qat_rng_uniform(&g->rng) < p ? 1.0f : -1.0f;
        } else {
            t->x[i] = qat_sign(x[i]);
        }
    }
}

static void uniform_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *x = t->src[0]->x;
    qat_rng *rng = opts(n)->stochastic && g->training ? &g->rng : NULL;
    if (n->bits == 1) {
        binary_forward(n, t, g);
        return;
    }
    float *scale = qat_qscale(n), *zero = qat_qzero(n);
    if (n->role == QAT_QROLE_WEIGHT) {
        size_t S = qat_qchan_size(n);
        for (int c = 0; c < n->channels; c++) {
            float lo, hi;
            minmax(x + (size_t)c * S, S, &lo, &hi);
            urange r = make_range(n, lo, hi);
            scale[c] = r.s;
            zero[c] = r.z;
            quantize_range(&r, x + (size_t)c * S, t->x + (size_t)c * S, S, rng);
        }
        return;
    }
    float *e = qat_qextra(n), lo, hi;
    minmax(x, t->n, &lo, &hi);
    if (g->training) {
        float m = opts(n)->momentum;
        if (e[X_INIT] == 0) {
            e[X_RLO] = lo;
            e[X_RHI] = hi;
            e[X_INIT] = 1;
        } else {
            e[X_RLO] = (1 - m) * e[X_RLO] + m * lo;
            e[X_RHI] = (1 - m) * e[X_RHI] + m * hi;
        }
        if (opts(n)->range == QAT_QRANGE_EMA) {
            lo = e[X_RLO];
            hi = e[X_RHI];
        }
    } else if (e[X_INIT] != 0) {
        lo = e[X_RLO];
        hi = e[X_RHI];
    }
    urange r = make_range(n, lo, hi);
    scale[0] = r.s;
    zero[0] = r.z;
    quantize_range(&r, x, t->x, t->n, rng);
}

static void uniform_backward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    float *dx = t->src[0]->g;
    if (!dx) return;
    const float *x = t->src[0]->x;
    if (n->bits == 1) {
        qat_ste_mask(x, t->g, dx, t->n, -1.0f, 1.0f);
        return;
    }
    const float *scale = qat_qscale(n), *zero = qat_qzero(n);
    size_t S = qat_qchan_size(n);
    for (int c = 0; c < n->channels; c++) {
        /* the representable range from the forward's scale and zero point */
        urange r = make_range(n, 0, 0);
        float lo = (r.qmin - zero[c]) * scale[c], hi = (r.qmax - zero[c]) * scale[c];
        qat_ste_mask(x + (size_t)c * S, t->g + (size_t)c * S, dx + (size_t)c * S, S, lo, hi);
    }
}

static void uniform_levels(const qat_qnode *n, qat_levels *out)
{
    if (n->bits == 1) {
        *out = (qat_levels){.table = pm1, .ntable = 2, .scale = qat_qscale(n), .nscale = 1};
        return;
    }
    urange r = make_range(n, 0, 0);
    int asym = n->role == QAT_QROLE_WEIGHT ? !opts(n)->symmetric : (opts(n)->signed_act && !opts(n)->symmetric);
    *out = (qat_levels){.lo = (int)r.qmin, .hi = (int)r.qmax, .step = 1, .per_channel = n->channels > 1,
                        .scale = qat_qscale(n), .zero = asym ? qat_qzero(n) : NULL, .nscale = n->channels};
}

const qat_quantizer qat_q_uniform = {
    .per_channel_ok = 1,
    .name = "uniform", .roles = QAT_QROLE_WEIGHT | QAT_QROLE_ACT, .default_bits = 8, .min_bits = 2,
    .max_bits = 16, .forward = uniform_forward, .backward = uniform_backward, .levels = uniform_levels,
    .opts_size = sizeof(uniform_opts), QAT_QKEYS(uniform_keys),
};

/* the uniform quantizer with stochastic rounding (its settings hold
 * stochastic = 1 and have no rounding key) */
const qat_quantizer qat_q_stochastic = {
    .per_channel_ok = 1,
    .name = "stochastic", .roles = QAT_QROLE_WEIGHT | QAT_QROLE_ACT, .default_bits = 4, .min_bits = 1,
    .max_bits = 16, .binary = 0, .forward = uniform_forward, .backward = uniform_backward,
    .levels = uniform_levels, .opts_size = sizeof(uniform_opts), QAT_QKEYS(stochastic_keys),
};
