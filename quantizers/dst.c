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
static float q2_of(const qat_qnode *n) { return n->spec.dst_q2; }

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
    float pass = n->spec.dst_zero_grad == QAT_DST_GRAD_PASS ? 1.0f : 0.0f;
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
static int max_state(const qat_qnode *n) { return 1 << -n->spec.dst_p; }

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

static float step_of(const qat_qnode *n) { return ldexpf(1.0f, n->spec.dst_p); }

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
    for (size_t i = 0; i < n->out->n; i++) {
        if (n->spec.dst_init == QAT_DST_INIT_UNIFORM) {
            float x = 2.0f * qat_rng_uniform(rng) - 1.0f;
            n->states[i] = (int8_t)settle((int)lrintf(x / L), maxs, rng);
            continue;
        }
        float v = qat_clampf(w[i], -1.0f, 1.0f) / L;
        n->states[i] = (int8_t)settle((int)floorf(v + qat_rng_uniform(rng)), maxs, rng);
    }
}

static void dst_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    float L = step_of(n);
    qat_qscale(n)[0] = L;
    for (size_t i = 0; i < t->n; i++) t->x[i] = (float)n->states[i] * L; /* Eq. 11 */
}

static void dst_backward(qat_qnode *n, qat_tensor *t, qat_graph *g) { /* t->g goes to update() */ }

static void dst_update(qat_qnode *n, const float *delta, qat_rng *rng)
{
    float L = step_of(n), th = n->spec.dst_th;
    int maxs = max_state(n);
    for (size_t i = 0; i < n->out->n; i++) {
        float dw = delta[i];
        if (dw == 0) continue;
        float sg = dw > 0 ? 1.0f : -1.0f;
        float k = sg * floorf(fabsf(dw) / L);             /* Eq. 12 */
        float v = dw - k * L;
        float p1 = tanhf(th * fabsf(v / L));              /* Eq. 14 */
        float gate = qat_rng_uniform(rng) < p1 ? 1.0f : 0.0f;
        int ds = (int)(sg * gate + k);                    /* Eq. 13, in states */
        int s = n->states[i] + ds;
        n->states[i] = (int8_t)settle(s, maxs, rng);      /* Eq. 15 */
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

const qat_quantizer qat_q_dst = {
    .name = "dst", .roles = QAT_QROLE_WEIGHT, .default_bits = 3, .min_bits = 2, .max_bits = 8,
    .forward = dst_forward, .backward = dst_backward, .levels = dst_levels, .owns_weights = 1,
    .init_owned = dst_init_owned, .update = dst_update,
};
