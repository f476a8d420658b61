/* alq_math.c: ALQ's numerics on one group of weights in multi-bit form
 * (sketching, basis step, alpha solve, alpha-domain chain rule), the global
 * pruning order and schedules, the storage count and the layer grouping.
 * The paper's equations and the choices the paper leaves open are in
 * alq_math.h; small linear systems (I <= 8) are solved by Cholesky in double. */
#include <math.h>
#include <string.h>

#include "alq_math.h"

/* ---- small dense solves -------------------------------------------------- */

/* Solves A x = b for symmetric A (k x k, row-major, lower triangle read),
 * in place: A becomes its Cholesky factor, b the solution. 0 when a pivot is
 * not above min_pivot (or not finite): A is then not (safely) positive
 * definite and b is garbage. */
static int chol_solve(double *A, int k, double *b, double min_pivot)
{
    for (int i = 0; i < k; i++) {
        for (int c = 0; c <= i; c++) {
            double s = A[i * k + c];
            for (int p = 0; p < c; p++) s -= A[i * k + p] * A[c * k + p];
            if (c == i) {
                if (!(s > min_pivot) || !isfinite(s)) return 0;
                A[i * k + i] = sqrt(s);
            } else {
                A[i * k + c] = s / A[c * k + c];
            }
        }
    }
    for (int i = 0; i < k; i++) { /* L y = b */
        double s = b[i];
        for (int p = 0; p < i; p++) s -= A[i * k + p] * b[p];
        b[i] = s / A[i * k + i];
    }
    for (int i = k - 1; i >= 0; i--) { /* L^T x = y */
        double s = b[i];
        for (int p = i + 1; p < k; p++) s -= A[p * k + i] * b[p];
        b[i] = s / A[i * k + i];
    }
    return 1;
}

static void negate_plane(int8_t *B, size_t n, int i)
{
    int8_t *p = B + (size_t)i * n;
    for (size_t j = 0; j < n; j++) p[j] = (int8_t)-p[j];
}

static void swap_planes(int8_t *B, float *alpha, size_t n, int a, int b)
{
    int8_t *p = B + (size_t)a * n, *q = B + (size_t)b * n;
    for (size_t j = 0; j < n; j++) {
        int8_t t = p[j];
        p[j] = q[j];
        q[j] = t;
    }
    float t = alpha[a];
    alpha[a] = alpha[b];
    alpha[b] = t;
}

/* ---- sketching ----------------------------------------------------------- */

/* w_j - sum_{i<k} a_i B_ij: the sketch's residual, recomputed where it is
 * needed so that sketching needs no scratch */
static double residual(const float *w, const int8_t *B, size_t n, const double *a, int k, size_t j)
{
    double r = w[j];
    for (int i = 0; i < k; i++) r -= a[i] * B[(size_t)i * n + j];
    return r;
}

void qat_alq_sketch(const float *w, size_t n, int I_max, int8_t *B, float *alpha, int *I)
{
    QAT_ASSERT(I_max >= 0 && I_max <= QAT_ALQ_MAX_BITS);
    *I = 0;
    double ww = 0;
    for (size_t j = 0; j < n; j++) ww += (double)w[j] * w[j];
    if (ww == 0) return;
    int cap = (size_t)I_max < n ? I_max : (int)n;
    double a[QAT_ALQ_MAX_BITS] = {0}, rr = ww;
    int k = 0;
    while (k < cap && rr / ww >= QAT_ALQ_REL_THRES) {
        int8_t *p = B + (size_t)k * n;
        for (size_t j = 0; j < n; j++) p[j] = residual(w, B, n, a, k, j) >= 0 ? 1 : -1;
        /* least squares over the k + 1 planes: the Gram matrix is integer */
        int m = k + 1;
        double A[QAT_ALQ_MAX_BITS * QAT_ALQ_MAX_BITS], x[QAT_ALQ_MAX_BITS];
        for (int i = 0; i < m; i++) {
            const int8_t *bi = B + (size_t)i * n;
            double s = 0;
            for (size_t j = 0; j < n; j++) s += (double)bi[j] * w[j];
            x[i] = s;
            for (int c = 0; c <= i; c++) {
                const int8_t *bc = B + (size_t)c * n;
                long long g = 0;
                for (size_t j = 0; j < n; j++) g += bi[j] * bc[j];
                A[i * m + c] = A[c * m + i] = (double)g;
            }
        }
        /* The new pivot is the squared distance of sign(r) from the span of
         * the earlier planes, >= (||r||_1 / ||r||_2)^2 >= 1 while r is
         * orthogonal to that span: below 1/2 the plane adds nothing (it
         * repeats a combination of the others) and is discarded. */
        if (!chol_solve(A, m, x, 0.5)) break;
        memcpy(a, x, sizeof(double) * (size_t)m);
        k = m;
        rr = 0;
        for (size_t j = 0; j < n; j++) {
            double r = residual(w, B, n, a, k, j);
            rr += r * r;
        }
    }
    /* positive coordinates, zeros dropped (as floats), ascending */
    for (int i = 0; i < k; i++) alpha[i] = (float)a[i];
    qat_alq_make_positive(B, alpha, n, k);
    int live = 0;
    for (int i = 0; i < k; i++) {
        if (alpha[i] == 0) continue;
        if (live != i) memcpy(B + (size_t)live * n, B + (size_t)i * n, n), alpha[live] = alpha[i];
        live++;
    }
    for (int i = 1; i < live; i++) /* insertion sort: stable, I <= 8 */
        for (int m = i; m > 0 && alpha[m - 1] > alpha[m]; m--) swap_planes(B, alpha, n, m - 1, m);
    *I = live;
}

/* ---- basis step ---------------------------------------------------------- */

void qat_alq_target(const float *w_hat, const float *g, const float *H, size_t n, float *tau)
{
    for (size_t j = 0; j < n; j++) tau[j] = w_hat[j] - g[j] / H[j];
}

static void write_code(int8_t *B, size_t n, int I, size_t j, unsigned code)
{
    for (int i = 0; i < I; i++) B[(size_t)i * n + j] = (code >> i) & 1u ? 1 : -1;
}

void qat_alq_basis_step_ref(const float *tau, size_t n, const float *alpha, int I, int8_t *B)
{
    QAT_ASSERT(I >= 0 && I <= QAT_ALQ_MAX_BITS);
    if (I == 0) return;
    unsigned L = 1u << I;
    double lv[1u << QAT_ALQ_MAX_BITS];
    for (unsigned c = 0; c < L; c++) {
        double s = 0;
        for (int i = 0; i < I; i++) s += (c >> i) & 1u ? (double)alpha[i] : -(double)alpha[i];
        lv[c] = s;
    }
    for (size_t j = 0; j < n; j++) {
        double t = tau[j], bd = fabs(lv[0] - t);
        unsigned best = 0;
        for (unsigned c = 1; c < L; c++) {
            double d = fabs(lv[c] - t);
            if (d < bd) bd = d, best = c;
        }
        write_code(B, n, I, j, best);
    }
}

void qat_alq_basis_step(const float *tau, size_t n, const float *alpha, int I, int8_t *B)
{
    QAT_ASSERT(I >= 0 && I <= QAT_ALQ_MAX_BITS);
    if (I == 0) return;
    /* The sorted levels, built plane by plane: the levels of planes 0..k
     * are those of 0..k-1 shifted by -alpha_k (codes < 2^k) and by +alpha_k
     * (codes >= 2^k), two sorted runs merged. Each level is the same double
     * sum, in the same order, as in the reference. */
    enum { LMAX = 1u << QAT_ALQ_MAX_BITS };
    double va[LMAX], vb[LMAX];
    uint16_t ca[LMAX], cb[LMAX];
    double *val = va, *nval = vb;
    uint16_t *code = ca, *ncode = cb;
    val[0] = -(double)alpha[0], code[0] = 0;
    val[1] = (double)alpha[0], code[1] = 1;
    size_t L = 2;
    for (int k = 1; k < I; k++) {
        double ak = alpha[k];
        size_t p = 0, q = 0, o = 0;
        while (p < L || q < L) {
            double lo = p < L ? val[p] - ak : 0, hi = q < L ? val[q] + ak : 0;
            if (q == L || (p < L && lo <= hi)) nval[o] = lo, ncode[o++] = code[p++];
            else nval[o] = hi, ncode[o++] = (uint16_t)(code[q++] | 1u << k);
        }
        double *tv = val;
        val = nval, nval = tv;
        uint16_t *tc = code;
        code = ncode, ncode = tc;
        L *= 2;
    }
    for (size_t j = 0; j < n; j++) {
        double t = tau[j];
        size_t lo = 0, hi = L; /* hi: the first level > t */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (val[mid] <= t) lo = mid + 1;
            else hi = mid;
        }
        /* |level - t| is monotone on either side of hi, so the nearest
         * levels are a contiguous run around it: take the smallest code of
         * the run, as the reference's first minimum */
        double dl = hi > 0 ? fabs(val[hi - 1] - t) : INFINITY, dh = hi < L ? fabs(val[hi] - t) : INFINITY;
        double d = dl < dh ? dl : dh;
        unsigned best = LMAX;
        for (size_t q = hi; q > 0 && fabs(val[q - 1] - t) == d; q--) best = code[q - 1] < best ? code[q - 1] : best;
        for (size_t q = hi; q < L && fabs(val[q] - t) == d; q++) best = code[q] < best ? code[q] : best;
        write_code(B, n, I, j, best);
    }
}

/* ---- alpha --------------------------------------------------------------- */

qat_status qat_alq_solve_alpha(const float *tau, const float *H, int8_t *B, size_t n, int I, double lambda,
                               float *alpha)
{
    QAT_ASSERT(I >= 0 && I <= QAT_ALQ_MAX_BITS);
    if (I == 0) return QAT_OK;
    double A[QAT_ALQ_MAX_BITS * QAT_ALQ_MAX_BITS] = {0}, x[QAT_ALQ_MAX_BITS] = {0};
    for (size_t j = 0; j < n; j++) {
        double h = H[j], ht = h * tau[j];
        for (int i = 0; i < I; i++) {
            double bi = B[(size_t)i * n + j];
            x[i] += bi * ht;
            for (int c = 0; c <= i; c++) A[i * I + c] += bi * B[(size_t)c * n + j] * h;
        }
    }
    for (int i = 0; i < I; i++) A[i * I + i] += lambda;
    if (!chol_solve(A, I, x, 0))
        return qat_error_set(QAT_ERR_ARG, "alq: B^T H B + lambda I is not positive definite (H negative or not "
                                          "finite, or dependent planes without lambda)");
    float out[QAT_ALQ_MAX_BITS];
    for (int i = 0; i < I; i++) {
        out[i] = (float)x[i];
        if (!isfinite(out[i])) return qat_error_set(QAT_ERR_ARG, "alq: alpha[%d] solves to %g", i, x[i]);
    }
    memcpy(alpha, out, sizeof(float) * (size_t)I);
    qat_alq_make_positive(B, alpha, n, I);
    return QAT_OK;
}

void qat_alq_make_positive(int8_t *B, float *alpha, size_t n, int I)
{
    for (int i = 0; i < I; i++) {
        if (alpha[i] < 0) {
            alpha[i] = -alpha[i];
            negate_plane(B, n, i);
        } else if (alpha[i] == 0) {
            alpha[i] = 0.0f; /* -0 as +0 */
        }
    }
}

void qat_alq_grad_alpha(const float *G, const int8_t *B, size_t n, int I, float *g_alpha)
{
    for (int i = 0; i < I; i++) {
        const int8_t *b = B + (size_t)i * n;
        double s = 0;
        for (size_t j = 0; j < n; j++) s += (double)b[j] * G[j];
        g_alpha[i] = (float)s;
    }
}

void qat_alq_rebuild_moments(const float *m, const float *v, const float *vmax, const int8_t *B, size_t n, int I,
                             float *m_a, float *v_a, float *vmax_a)
{
    if (I == 0) return;
    double sv = 0, sx = 0;
    for (size_t j = 0; j < n; j++) sv += v[j], sx += vmax[j];
    qat_alq_grad_alpha(m, B, n, I, m_a);
    for (int i = 0; i < I; i++) v_a[i] = (float)sv, vmax_a[i] = (float)sx;
}

void qat_alq_reconstruct(const int8_t *B, const float *alpha, size_t n, int I, float *w_hat)
{
    for (size_t j = 0; j < n; j++) w_hat[j] = 0;
    for (int i = 0; i < I; i++) {
        const int8_t *b = B + (size_t)i * n;
        float a = alpha[i];
        for (size_t j = 0; j < n; j++) w_hat[j] += a * (float)b[j];
    }
}

void qat_alq_remove_plane(int8_t *B, float *alpha, size_t n, int *I, int i)
{
    QAT_ASSERT(i >= 0 && i < *I);
    int last = *I - 1;
    if (i < last) {
        memmove(B + (size_t)i * n, B + (size_t)(i + 1) * n, (size_t)(last - i) * n);
        memmove(alpha + i, alpha + i + 1, sizeof(float) * (size_t)(last - i));
    }
    *I = last;
}

/* ---- pruning ------------------------------------------------------------- */

float qat_alq_prune_score(float g_alpha, float H_alpha, float alpha)
{
    double a = alpha;
    return (float)(-(double)g_alpha * a + 0.5 * (double)H_alpha * a * a);
}

/* (score, index) order, NaN after every number */
static int before(const float *s, uint32_t a, uint32_t b)
{
    float x = s[a], y = s[b];
    int xn = isnan(x), yn = isnan(y);
    if (xn != yn) return yn;
    if (!xn && x != y) return x < y;
    return a < b;
}

/* max-heap on `before` over h[0..len) */
static void sift_down(const float *s, uint32_t *h, size_t len, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, top = i;
        if (l < len && before(s, h[top], h[l])) top = l;
        if (r < len && before(s, h[top], h[r])) top = r;
        if (top == i) return;
        uint32_t t = h[i];
        h[i] = h[top];
        h[top] = t;
        i = top;
    }
}

size_t qat_alq_prune_select(const float *scores, size_t count, size_t k, uint32_t *order)
{
    QAT_ASSERT(count <= UINT32_MAX);
    if (k > count) k = count;
    if (k == 0) return 0;
    /* keep the k smallest seen so far in a max-heap, then sort it */
    for (size_t i = 0; i < k; i++) order[i] = (uint32_t)i;
    for (size_t i = k / 2; i-- > 0;) sift_down(scores, order, k, i);
    for (size_t i = k; i < count; i++) {
        if (before(scores, (uint32_t)i, order[0])) {
            order[0] = (uint32_t)i;
            sift_down(scores, order, k, 0);
        }
    }
    for (size_t end = k - 1; end > 0; end--) {
        uint32_t t = order[0];
        order[0] = order[end];
        order[end] = t;
        sift_down(scores, order, end, 0);
    }
    return k;
}

size_t qat_alq_prune_count_linear(size_t I0_total, size_t I_min_total, size_t T, size_t t)
{
    if (I0_total <= I_min_total || t >= T) return 0;
    uint64_t D = I0_total - I_min_total;
    QAT_ASSERT(D <= UINT64_MAX / T);
    return (size_t)((uint64_t)(t + 1) * D / T - (uint64_t)t * D / T);
}

size_t qat_alq_prune_count_geometric(size_t current, double pr, size_t T)
{
    if (T == 0 || !(pr > 0)) return 0;
    double x = floor((double)current * pr / (double)T);
    return x >= (double)current ? current : (size_t)x;
}

/* ---- storage ------------------------------------------------------------- */

int qat_alq_lut_bits(int I_max)
{
    int b = 0;
    while ((1 << b) < I_max + 1) b++;
    return b;
}

uint64_t qat_alq_storage_bits(size_t n, size_t G, size_t sum_I, int I_max)
{
    return (uint64_t)sum_I * n + (uint64_t)sum_I * 32 + (uint64_t)G * (uint64_t)qat_alq_lut_bits(I_max);
}

/* ---- grouping ------------------------------------------------------------ */

static const char *const struct_names[QAT_ALQ_STRUCT_COUNT] = {
    [QAT_ALQ_CHANNEL] = "channel",
    [QAT_ALQ_KERNEL] = "kernel",
    [QAT_ALQ_PIXEL] = "pixel",
    [QAT_ALQ_SUBCHANNEL] = "subchannel",
};

const char *qat_alq_struct_name(qat_alq_struct s)
{
    return (unsigned)s < QAT_ALQ_STRUCT_COUNT ? struct_names[s] : NULL;
}

qat_status qat_alq_grouping_init(qat_alq_grouping *gp, qat_alq_struct s, int ndim, const int *shape, int subchannels)
{
    memset(gp, 0, sizeof *gp);
    if ((unsigned)s >= QAT_ALQ_STRUCT_COUNT) return qat_error_set(QAT_ERR_CONFIG, "alq: unknown group structure %d", s);
    if (ndim != 2 && ndim != 4)
        return qat_error_set(QAT_ERR_SHAPE, "alq: weights of %d dims; grouping needs [C_out, C_in] or "
                                            "[C_out, C_in, KH, KW]", ndim);
    int d[4] = {shape[0], shape[1], ndim == 4 ? shape[2] : 1, ndim == 4 ? shape[3] : 1};
    size_t total = 1;
    for (int i = 0; i < 4; i++) {
        if (d[i] < 1) return qat_error_set(QAT_ERR_SHAPE, "alq: weight dimension %d is %d", i, d[i]);
        if (__builtin_mul_overflow(total, (size_t)d[i], &total))
            return qat_error_set(QAT_ERR_SHAPE, "alq: %d x %d x %d x %d weights overflow", d[0], d[1], d[2], d[3]);
    }
    size_t co = (size_t)d[0], ci = (size_t)d[1], kk = (size_t)d[2] * (size_t)d[3];
    qat_alq_grouping g = {.structure = s, .c_out = d[0], .c_in = d[1], .kh = d[2], .kw = d[3], .subchannels = 1,
                          .chan = ci * kk, .stride = 1};
    switch (s) {
    case QAT_ALQ_CHANNEL:
        g.n = ci * kk, g.G = co, g.per_chan = 1, g.step = g.n;
        break;
    case QAT_ALQ_KERNEL:
        g.n = kk, g.G = co * ci, g.per_chan = ci, g.step = kk;
        break;
    case QAT_ALQ_PIXEL: /* element j = input channel, kk apart */
        g.n = ci, g.G = co * kk, g.per_chan = kk, g.step = 1, g.stride = kk;
        break;
    case QAT_ALQ_SUBCHANNEL:
        if (subchannels < 1 || d[1] % subchannels != 0)
            return qat_error_set(QAT_ERR_CONFIG,
                                 "alq: sub-channel-wise groups need C_in = %d divisible by the sub-channel count %d",
                                 d[1], subchannels);
        g.subchannels = subchannels;
        g.n = ci / (size_t)subchannels * kk, g.G = co * (size_t)subchannels, g.per_chan = (size_t)subchannels,
        g.step = g.n;
        break;
    default:
        break;
    }
    *gp = g;
    return QAT_OK;
}

size_t qat_alq_group_offset(const qat_alq_grouping *gp, size_t g, size_t j)
{
    return g / gp->per_chan * gp->chan + g % gp->per_chan * gp->step + j * gp->stride;
}

void qat_alq_gather_group(const qat_alq_grouping *gp, size_t g, const float *w, float *out)
{
    const float *src = w + qat_alq_group_offset(gp, g, 0);
    for (size_t j = 0; j < gp->n; j++) out[j] = src[j * gp->stride];
}

void qat_alq_scatter_group(const qat_alq_grouping *gp, size_t g, const float *in, float *w)
{
    float *dst = w + qat_alq_group_offset(gp, g, 0);
    for (size_t j = 0; j < gp->n; j++) dst[j * gp->stride] = in[j];
}

void qat_alq_gather(const qat_alq_grouping *gp, const float *w, float *groups)
{
    for (size_t g = 0; g < gp->G; g++) qat_alq_gather_group(gp, g, w, groups + g * gp->n);
}

void qat_alq_scatter(const qat_alq_grouping *gp, const float *groups, float *w)
{
    for (size_t g = 0; g < gp->G; g++) qat_alq_scatter_group(gp, g, groups + g * gp->n, w);
}
