/* dst.c: the low-bit strategy of ../shared/papers/dst-low-bit-strategy.txt
 * (Sec. 3.2): power-of-two activations with a Lloyd-optimal q2.
 *   levels  q1 = 0, q_{i+1} = 2 q_i from q2 (Eq. 2); for n bits the positive
 *           magnitudes are q2 2^k, k = 0..n-2, plus 0, mirrored for x < 0;
 *   forward each x goes to the nearest level: thresholds at the midpoints
 *           x_i = (q_i + q_{i+1}) / 2 (Eq. 4-5);
 *   backward (Eq. 7, symmetric for x < 0): 0 for |x| <= x_1 (1 with
 *           dst_zero_grad = pass, the text's "keep the gradient"), 1 for
 *           x_1 < |x| <= x_{v-1}, 1 / (|x| - (x_{v-1} - 1)) beyond the last
 *           threshold x_{v-1}.
 * qat_dst_lloyd_error is the expected squared error of that quantizer for a
 * standard normal input over x >= 0 (Eq. 3, 6), in closed form; it
 * reproduces Table 1. */
#include <string.h>

#include "qmath.h"

#include "dst.h"

/* int_a^b phi(x) (q - x)^2 dx for the standard normal density phi */
static double seg(double a, double b, double q)
{
    const double r2pi = 0.39894228040143267794;
    double pa = r2pi * exp(-0.5 * a * a), Pa = 0.5 * erfc(-a / sqrt(2.0));
    double pb = 0, Pb = 1, bpb = 0;
    if (!isinf(b)) {
        pb = r2pi * exp(-0.5 * b * b);
        Pb = 0.5 * erfc(-b / sqrt(2.0));
        bpb = b * pb;
    }
    return q * q * (Pb - Pa) - 2 * q * (pa - pb) + (Pb - Pa + a * pa - bpb);
}

double qat_dst_lloyd_error(int bits, double q2)
{
    /* levels 0, q2, 2 q2, ..., q2 2^(bits-2); level i covers (t_i, t_{i+1}] */
    double e = 0, a = 0;
    for (int i = 0; i < bits; i++) {
        double q = i == 0 ? 0 : q2 * ldexp(1.0, i - 1);
        double next = q2 * ldexp(1.0, i); /* the level above (q2 when i = 0) */
        double b = i == bits - 1 ? INFINITY : 0.5 * (q + next);
        e += seg(a, b, q);
        a = b;
    }
    return e;
}

double qat_dst_lloyd_best(int bits, double *q2)
{
    /* the error is smooth in log q2 with a single basin over the range that
     * matters: scan a log grid, then refine by golden section */
    double best = INFINITY, bq = 1;
    for (int i = 0; i <= 4000; i++) {
        double q = exp(log(1e-4) + (log(8.0) - log(1e-4)) * i / 4000.0);
        double e = qat_dst_lloyd_error(bits, q);
        if (e < best) best = e, bq = q;
    }
    double lo = bq / 1.01, hi = bq * 1.01, g = 0.6180339887498949;
    for (int it = 0; it < 200; it++) {
        double m1 = hi - g * (hi - lo), m2 = lo + g * (hi - lo);
        if (qat_dst_lloyd_error(bits, m1) < qat_dst_lloyd_error(bits, m2)) hi = m2;
        else lo = m1;
    }
    *q2 = 0.5 * (lo + hi);
    return qat_dst_lloyd_error(bits, *q2);
}

/* ---- the activation quantizer ------------------------------------------- */
typedef struct {
    float q2;      /* the smallest nonzero level */
    int zero_grad; /* qat_dst_zero_grad: the backward for |x| <= x_1 */
} dst_act_opts;
_Static_assert(sizeof(dst_act_opts) <= QAT_QOPTS_BYTES, "dst_act settings");
static const char *const zero_grad_names[QAT_DST_GRAD_COUNT] = {"zero", "pass"};
static const qat_qkey dst_act_keys[] = {
    QAT_QKEY_FLOAT_OF("dst_q2", dst_act_opts, q2, 0.125, 1e-6, 100, QAT_QROLES_ALL),
    QAT_QKEY_ENUM_OF("dst_zero_grad", dst_act_opts, zero_grad, QAT_DST_GRAD_ZERO, zero_grad_names, QAT_QROLES_ALL),
};

static float q2_of(const qat_qnode *n) { return QAT_QOPTS(n, dst_act_opts)->q2; }

static void dst_act_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *x = t->src[0]->x;
    float q2 = q2_of(n);
    int top = n->bits - 2; /* largest magnitude q2 2^top */
    qat_qscale(n)[0] = q2;
    for (size_t i = 0; i < t->n; i++) {
        float m = fabsf(x[i]), s = x[i] < 0 ? -1.0f : 1.0f, v;
        if (m <= 0.5f * q2) v = 0;
        else {
            int k = 0;
            /* between q2 2^k and q2 2^(k+1) the midpoint is 1.5 q2 2^k */
            while (k < top && m > 1.5f * q2 * ldexpf(1.0f, k)) k++;
            v = q2 * ldexpf(1.0f, k);
        }
        t->x[i] = s * v;
    }
}

static void dst_act_backward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *x = t->src[0]->x;
    float *dx = t->src[0]->g;
    if (!dx) return;
    float q2 = q2_of(n);
    float x1 = 0.5f * q2;
    /* x_{v-1}: the threshold below the largest level */
    float xl = n->bits >= 3 ? 1.5f * q2 * ldexpf(1.0f, n->bits - 3) : x1;
    float pass = QAT_QOPTS(n, dst_act_opts)->zero_grad == QAT_DST_GRAD_PASS ? 1.0f : 0.0f;
    for (size_t i = 0; i < t->n; i++) {
        float m = fabsf(x[i]), d;
        if (m <= x1) d = pass; /* Eq. 7: 0; dst_zero_grad = pass: 1 */
        else if (m <= xl) d = 1;
        else d = 1.0f / (m - (xl - 1.0f));
        dx[i] += t->g[i] * d;
    }
}

static int32_t dst_table[2 * 16 + 1];

static void dst_act_levels(const qat_qnode *n, qat_levels *out)
{
    int k = 0;
    dst_table[k++] = 0;
    for (int p = 0; p <= n->bits - 2 && p < 16; p++) {
        dst_table[k++] = 1 << p;
        dst_table[k++] = -(1 << p);
    }
    *out = (qat_levels){.table = dst_table, .ntable = k, .scale = qat_qscale(n), .nscale = 1};
}

const qat_quantizer qat_q_dst_act = {
    .name = "dst_act", .roles = QAT_QROLE_ACT, .default_bits = 3, .min_bits = 2, .max_bits = 16,
    .forward = dst_act_forward, .backward = dst_act_backward, .levels = dst_act_levels,
    .opts_size = sizeof(dst_act_opts), QAT_QKEYS(dst_act_keys),
};

/* ---- discrete-state weights (Sec. 3.3) ------------------------------------
 * Weights live only as integer states s with w = s L, L = 2^p; the defined
 * states are 0 and +-2^k up to 2^-p (p = -2: {0, +-1, +-2, +-4}, weights
 * {0, +-1/4, +-1/2, +-1}). No float copy is kept: the layer sees the float
 * view s L, recomputed every forward. The optimizer's step dw becomes a
 * state transition (Eq. 12-15):
 *   k = sign(dw) floor(|dw| / L), v = dw - k L,
 *   gate ~ Bernoulli(tanh(th |v / L|)), dw' = (sign(dw) gate + k) L,
 * the state is clipped to [-2^-p, 2^-p] (weights in [-1, 1]) and an
 * undefined state (+-3 for p = -2) jumps to the power of two below or
 * above it with probability 1/2 each (Eq. 9-11, Fig. 2). */
typedef struct {
    int p;    /* the smallest magnitude is 2^p */
    float th; /* th of Eq. 14 */
    int init; /* qat_dst_init: how the states start */
} dst_opts;
_Static_assert(sizeof(dst_opts) <= QAT_QOPTS_BYTES, "dst settings");
static const char *const init_names[QAT_DST_INIT_COUNT] = {"uniform", "layer"};
static const qat_qkey dst_keys[] = {
    QAT_QKEY_INT_OF("dst_p", dst_opts, p, -2, -6, -1, QAT_QROLES_ALL),
    QAT_QKEY_FLOAT_OF("dst_th", dst_opts, th, 0.5, 0, 100, QAT_QROLES_ALL),
    QAT_QKEY_ENUM_OF("dst_init", dst_opts, init, QAT_DST_INIT_LAYER, init_names, QAT_QROLES_ALL),
};

static const dst_opts *opts(const qat_qnode *n) { return QAT_QOPTS(n, dst_opts); }

/* the node's states: one int8 per weight */
int8_t *qat_dst_states(const qat_qnode *n)
{
    QAT_ASSERT(n->spec.q == &qat_q_dst);
    return n->state;
}

static int max_state(const qat_qnode *n) { return 1 << -opts(n)->p; }

static int defined_state(int s)
{
    int a = s < 0 ? -s : s;
    return (a & (a - 1)) == 0; /* 0 or a power of two */
}

/* Eq. 10: an undefined state goes to a neighbouring defined state */
static int settle(int s, int maxs, qat_rng *rng)
{
    if (s > maxs) s = maxs;
    if (s < -maxs) s = -maxs;
    if (defined_state(s)) return s;
    int a = s < 0 ? -s : s, lo = 1;
    while (lo * 2 < a) lo *= 2;
    int v = qat_rng_uniform(rng) < 0.5f ? lo : 2 * lo;
    return s < 0 ? -v : v;
}

static float step_of(const qat_qnode *n) { return ldexpf(1.0f, opts(n)->p); }

/* The first states. Eq. 9 rounds "x within [-1, 1]" to a state and Eq. 10
 * settles +-3: dst_init = uniform draws x ~ U[-1, 1] for that. dst_init =
 * layer (the default) starts from the layer's own initialisation instead;
 * rounding it (|w| << L/2) would give an all-zero layer whose gradients are
 * all zero too, so it is rounded stochastically (unbiased: E[s L] = w),
 * which keeps a fraction |w| / L of the states nonzero. */
static void dst_init_owned(qat_qnode *n, const float *w, qat_rng *rng)
{
    float L = step_of(n);
    int maxs = max_state(n);
    int8_t *states = qat_dst_states(n);
    for (size_t i = 0; i < n->out->n; i++) {
        if (opts(n)->init == QAT_DST_INIT_UNIFORM) {
            float x = 2.0f * qat_rng_uniform(rng) - 1.0f;
            states[i] = (int8_t)settle((int)lrintf(x / L), maxs, rng);
            continue;
        }
        float v = qat_clampf(w[i], -1.0f, 1.0f) / L;
        states[i] = (int8_t)settle((int)floorf(v + qat_rng_uniform(rng)), maxs, rng);
    }
}

static void dst_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    float L = step_of(n);
    qat_qscale(n)[0] = L;
    const int8_t *states = qat_dst_states(n);
    for (size_t i = 0; i < t->n; i++) t->x[i] = (float)states[i] * L; /* Eq. 11 */
}

static void dst_backward(qat_qnode *n, qat_tensor *t, qat_graph *g) { /* t->g goes to update() */ }

static void dst_update(qat_qnode *n, const float *delta, qat_rng *rng)
{
    float L = step_of(n), th = opts(n)->th;
    int maxs = max_state(n);
    int8_t *states = qat_dst_states(n);
    for (size_t i = 0; i < n->out->n; i++) {
        float dw = delta[i];
        if (dw == 0) continue;
        float sg = dw > 0 ? 1.0f : -1.0f;
        float k = sg * floorf(fabsf(dw) / L);             /* Eq. 12 */
        float v = dw - k * L;
        float p1 = tanhf(th * fabsf(v / L));              /* Eq. 14 */
        float gate = qat_rng_uniform(rng) < p1 ? 1.0f : 0.0f;
        int ds = (int)(sg * gate + k);                    /* Eq. 13, in states */
        int s = states[i] + ds;
        states[i] = (int8_t)settle(s, maxs, rng);         /* Eq. 15 */
    }
}

static int32_t dstw_table[2 * 7 + 1];

static void dst_levels(const qat_qnode *n, qat_levels *out)
{
    int k = 0;
    dstw_table[k++] = 0;
    for (int s = 1; s <= max_state(n); s *= 2) {
        dstw_table[k++] = s;
        dstw_table[k++] = -s;
    }
    *out = (qat_levels){.table = dstw_table, .ntable = k, .scale = qat_qscale(n), .nscale = 1};
}

static size_t dst_state_size(const qat_qnode *n) { return n->out->n; }

/* a checkpoint's states: each within +-2^-p */
static qat_status dst_load_state(qat_qnode *n, const void *state, size_t bytes, const char *from)
{
    QAT_ASSERT(bytes == n->out->n);
    const int8_t *s = state;
    int maxs = max_state(n);
    for (size_t k = 0; k < bytes; k++)
        if (s[k] > maxs || s[k] < -maxs)
            return qat_error_set(QAT_ERR_FORMAT, "%s: weight state %d of '%s' at element %zu is out of range +-%d", from,
                                 s[k], n->out->name, k, maxs);
    memcpy(n->state, state, bytes);
    return QAT_OK;
}

const qat_quantizer qat_q_dst = {
    .name = "dst", .roles = QAT_QROLE_WEIGHT, .default_bits = 3, .min_bits = 2, .max_bits = 8,
    .forward = dst_forward, .backward = dst_backward, .levels = dst_levels, .owns_weights = 1,
    .state_size = dst_state_size, .init_owned = dst_init_owned, .load_state = dst_load_state, .update = dst_update,
    .opts_size = sizeof(dst_opts), QAT_QKEYS(dst_keys),
};
