/* alq_act.c: ALQ's multi-bit activations (../shared/papers/alq-multi-bit.txt
 * Sec. 4, Eq. 24-26; spec ../shared/specs/alq.md §9). The activation x of a
 * layer is quantized with the same +-1 basis type as ALQ's weights,
 *   x ~ x_hat = x_ref + D gamma = D' gamma'          (Eq. 24)
 * with D in {-1,+1}^(N x I), gamma in R+^I, a layer-wise float reference
 * x_ref, D' = [1, D] and gamma' = [x_ref, gamma]. The paper does not print
 * how D is chosen; as spec §12.9 reads it (LQ-Net's rule, and Eq. 19-20's
 * with the value itself as the target) every element takes the code of the
 * nearest of the 2^I levels x_ref + b^T gamma. In training, after the batch
 * is quantized, gamma' is refit to it by least squares and smoothed:
 *   gamma'_new = (D'^T D')^-1 D'^T x                 (Eq. 25)
 *   gamma' = m gamma' + (1 - m) gamma'_new, m = 0.9  (Eq. 26, alq_act_momentum)
 * (a coordinate that comes out negative is negated: D follows it at the next
 * nearest-code search). The backward is the straight-through estimator
 * inside the levels' span [min level, max level] and 0 outside, so the
 * quantizer is the layer's step activation (Sec. 4: "ReLU is replaced by a
 * step activation function").
 *
 * First values (not in the paper): on the first batch it sees, the levels
 * are spread uniformly over [0, mean + 3 std of max(x, 0)]: x_ref in the
 * middle and gamma_k = s 2^(I-1-k) / 2 (s the level spacing), a
 * superincreasing basis whose 2^I levels are evenly spaced.
 *
 * The levels x_ref + b^T gamma are not integer multiples of one scale, so
 * the quantizer gives no codebook (levels = NULL) and the exporter refuses
 * it with a message until the runtime takes multi-bit activations. */
#include <string.h>

#include "qmath.h"

#define ALQ_ACT_MAX_BITS 4
#define NCODES (1 << ALQ_ACT_MAX_BITS)

typedef struct {
    float momentum; /* m of Eq. 26 */
} alq_act_opts;
_Static_assert(sizeof(alq_act_opts) <= QAT_QOPTS_BYTES, "alq_act settings");
static const qat_qkey alq_act_keys[] = {
    QAT_QKEY_FLOAT_OF("alq_act_momentum", alq_act_opts, momentum, 0.9, 0, 1, QAT_QROLE_ACT),
};

/* buffer extras: [0] set (1 once the first batch fixed the levels), [1] x_ref, [2..2+I) gamma,
 * [2 + MAX, 4 + MAX) the span of the levels the last forward used (the backward's) */
static float *gam(const qat_qnode *n) { return qat_qextra(n) + 1; }

static void alq_act_init(qat_qnode *n) { qat_qextra(n)[0] = 0; }

/* the 2^I levels x_ref + b^T gamma (bit k of code c set: b_k = +1) */
static void make_levels(const qat_qnode *n, float *lev)
{
    const float *gp = gam(n);
    for (int c = 0; c < (1 << n->bits); c++) {
        float v = gp[0];
        for (int k = 0; k < n->bits; k++) v += (c >> k & 1) ? gp[1 + k] : -gp[1 + k];
        lev[c] = v;
    }
}

static void first_levels(qat_qnode *n, const float *x, size_t count)
{
    double s = 0, s2 = 0;
    for (size_t i = 0; i < count; i++) {
        double v = x[i] > 0 ? x[i] : 0;
        s += v;
        s2 += v * v;
    }
    double mean = s / (double)count, var = s2 / (double)count - mean * mean;
    double hi = mean + 3 * sqrt(var > 0 ? var : 0);
    if (!(hi > 0)) hi = 1;
    int I = n->bits;
    double step = hi / (double)((1 << I) - 1);
    float *gp = gam(n);
    gp[0] = (float)(hi / 2);
    for (int k = 0; k < I; k++) gp[1 + k] = (float)(step * (double)(1 << (I - 1 - k)) / 2);
    qat_qextra(n)[0] = 1;
}

/* Eq. 25 from the codes' counts and sums, in double: (D'^T D') gamma' = D'^T x;
 * 0 when D'^T D' is singular (codes unused), gamma' untouched */
static int refit(int I, const double *cnt, const double *sum, double *out)
{
    int m = I + 1;
    double A[(ALQ_ACT_MAX_BITS + 1) * (ALQ_ACT_MAX_BITS + 2)];
    memset(A, 0, sizeof A);
    for (int c = 0; c < (1 << I); c++) {
        if (cnt[c] == 0) continue;
        double d[ALQ_ACT_MAX_BITS + 1];
        d[0] = 1;
        for (int k = 0; k < I; k++) d[1 + k] = (c >> k & 1) ? 1 : -1;
        for (int r = 0; r < m; r++) {
            for (int q = 0; q < m; q++) A[r * (m + 1) + q] += cnt[c] * d[r] * d[q];
            A[r * (m + 1) + m] += sum[c] * d[r];
        }
    }
    for (int p = 0; p < m; p++) { /* Gaussian elimination with partial pivoting */
        int best = p;
        for (int r = p + 1; r < m; r++)
            if (fabs(A[r * (m + 1) + p]) > fabs(A[best * (m + 1) + p])) best = r;
        if (!(fabs(A[best * (m + 1) + p]) > 1e-9 * (A[0] > 1 ? A[0] : 1))) return 0;
        for (int q = 0; q <= m; q++) {
            double t = A[p * (m + 1) + q];
            A[p * (m + 1) + q] = A[best * (m + 1) + q];
            A[best * (m + 1) + q] = t;
        }
        for (int r = p + 1; r < m; r++) {
            double f = A[r * (m + 1) + p] / A[p * (m + 1) + p];
            for (int q = p; q <= m; q++) A[r * (m + 1) + q] -= f * A[p * (m + 1) + q];
        }
    }
    for (int p = m - 1; p >= 0; p--) {
        double v = A[p * (m + 1) + m];
        for (int q = p + 1; q < m; q++) v -= A[p * (m + 1) + q] * out[q];
        out[p] = v / A[p * (m + 1) + p];
        if (!isfinite(out[p])) return 0;
    }
    return 1;
}

static void alq_act_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *x = t->src[0]->x;
    int I = n->bits, nc = 1 << I;
    if (qat_qextra(n)[0] == 0) first_levels(n, x, t->n);
    qat_qscale(n)[0] = 1;
    float lev[NCODES];
    int code[NCODES];
    make_levels(n, lev);
    for (int c = 0; c < nc; c++) code[c] = c;
    for (int a = 1; a < nc; a++) /* codes by level, ties by code */
        for (int b = a; b > 0 && (lev[code[b]] < lev[code[b - 1]] ||
                                  (lev[code[b]] == lev[code[b - 1]] && code[b] < code[b - 1])); b--) {
            int s = code[b];
            code[b] = code[b - 1];
            code[b - 1] = s;
        }
    qat_qextra(n)[2 + ALQ_ACT_MAX_BITS] = lev[code[0]];
    qat_qextra(n)[3 + ALQ_ACT_MAX_BITS] = lev[code[nc - 1]];
    double cnt[NCODES] = {0}, sum[NCODES] = {0};
    int training = g->training;
    for (size_t i = 0; i < t->n; i++) {
        int k = 0; /* the nearest level: the first whose midpoint with the next is above x */
        while (k < nc - 1 && x[i] > 0.5f * (lev[code[k]] + lev[code[k + 1]])) k++;
        t->x[i] = lev[code[k]];
        if (training) {
            cnt[code[k]] += 1;
            sum[code[k]] += x[i];
        }
    }
    double fit[ALQ_ACT_MAX_BITS + 1];
    if (!training || !refit(I, cnt, sum, fit)) return;
    float m = QAT_QOPTS(n, alq_act_opts)->momentum, *gp = gam(n);
    for (int k = 0; k <= I; k++) gp[k] = m * gp[k] + (1 - m) * (float)fit[k];
    for (int k = 1; k <= I; k++) gp[k] = fabsf(gp[k]); /* gamma >= 0: D takes the sign */
}

static void alq_act_backward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    const float *x = t->src[0]->x;
    float *dx = t->src[0]->g;
    if (!dx) return;
    /* the span of the levels the forward quantized with (it has moved gamma since, Eq. 26) */
    float lo = qat_qextra(n)[2 + ALQ_ACT_MAX_BITS], hi = qat_qextra(n)[3 + ALQ_ACT_MAX_BITS];
    for (size_t i = 0; i < t->n; i++) dx[i] += t->g[i] * (float)((x[i] >= lo) & (x[i] <= hi));
}

const qat_quantizer qat_q_alq_act = {
    .name = "alq_act", .roles = QAT_QROLE_ACT, .default_bits = 2, .min_bits = 1, .max_bits = ALQ_ACT_MAX_BITS,
    .buf_extra = 4 + ALQ_ACT_MAX_BITS, .init = alq_act_init, .forward = alq_act_forward, .backward = alq_act_backward,
    .opts_size = sizeof(alq_act_opts), QAT_QKEYS(alq_act_keys),
};
