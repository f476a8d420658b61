/* test_alq.c: ALQ's numerics (quantizers/alq_math.c; alq-multi-bit.txt and
 * specs/alq.md): the basis step against brute force over every B (Eq. 18),
 * the alpha solve against a Householder least-squares solve in long double
 * (Eq. 23), pruning order against Eq. 13 worked out by hand, sketching's
 * exactness and monotone residual, the grouping's gather/scatter, the
 * pruning schedules and the storage count of the spec's VGG example. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alq_math.h"

#include "qat_test.h"

static uint64_t seed = 0xa1c0ffee;

static double urand(void) { return (double)(qat_test_splitmix64(&seed) >> 11) * 0x1.0p-53; }
static double nrand(void)
{
    double u = urand(), v = urand();
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}
static int8_t srand1(void) { return qat_test_splitmix64(&seed) & 1 ? 1 : -1; }

/* Eq. 18's weighted objective of B with alpha fixed: sum_j H_j (b_j^T alpha - tau_j)^2 */
static long double objective(const int8_t *B, const float *alpha, const float *H, const float *tau, size_t n, int I)
{
    long double f = 0;
    for (size_t j = 0; j < n; j++) {
        long double l = 0;
        for (int i = 0; i < I; i++) l += (long double)B[(size_t)i * n + j] * alpha[i];
        f += (long double)H[j] * (l - tau[j]) * (l - tau[j]);
    }
    return f;
}

/* ---- basis step (Eq. 17-20) ------------------------------------------------ */

/* every B in {-1,+1}^{n x I}: the chosen one attains the minimum */
static void test_basis_brute(void)
{
    int cases = 0;
    for (size_t n = 1; n <= 6; n++)
        for (int I = 1; I <= 3; I++)
            for (int trial = 0; trial < 6; trial++) {
                float alpha[3], H[6], tau[6];
                for (int i = 0; i < I; i++) alpha[i] = (float)(0.05 + 2 * urand());
                if (trial == 1 && I >= 2) alpha[1] = alpha[0]; /* repeated levels */
                if (trial == 2) alpha[I - 1] = 0;              /* a zero coordinate */
                for (size_t j = 0; j < n; j++) {
                    H[j] = (float)(0.01 + 3 * urand());
                    tau[j] = (float)(6 * urand() - 3);
                }
                if (trial == 3 && I >= 2) /* exactly between levels -a0-a1 and a0-a1, and on a level */
                    tau[0] = -alpha[1], tau[n - 1] = alpha[0] + alpha[1];
                int8_t Bf[18], Br[18], Bt[18];
                qat_alq_basis_step(tau, n, alpha, I, Bf);
                qat_alq_basis_step_ref(tau, n, alpha, I, Br);
                CHECK(!memcmp(Bf, Br, n * (size_t)I), "n %zu I %d trial %d: fast and reference B differ", n, I, trial);
                long double best = INFINITY;
                unsigned nb = (unsigned)n * (unsigned)I;
                for (unsigned m = 0; m < 1u << nb; m++) {
                    for (unsigned b = 0; b < nb; b++) Bt[b] = (m >> b) & 1u ? 1 : -1;
                    long double f = objective(Bt, alpha, H, tau, n, I);
                    if (f < best) best = f;
                }
                long double f = objective(Bf, alpha, H, tau, n, I);
                CHECK(f <= best * (1 + 1e-12L) + 1e-30L, "n %zu I %d trial %d: objective %.12Lg, brute force %.12Lg",
                      n, I, trial, f, best);
                for (unsigned b = 0; b < nb; b++) CHECK(Bf[b] == 1 || Bf[b] == -1, "B[%u] = %d", b, Bf[b]);
                cases++;
            }
    CHECK(cases == 6 * 3 * 6, "%d cases", cases);
}

/* alpha = {1, 2}: codes 0..3 give levels -3, -1, +1, +3 (bit i set: b_i = +1);
 * ties go to the smaller code */
static void test_basis_ties(void)
{
    const float alpha[2] = {1, 2};
    const float tau[6] = {0, 2, -2, -5, 3.5f, 0.9f};
    /* codes: 0 -> tie -1 (c1) / +1 (c2): c1 = (+1, -1); 2 -> tie c2 / c3: c2 = (-1, +1);
     * -2 -> tie c0 / c1: c0 = (-1, -1); -5 -> c0; 3.5 -> c3 = (+1, +1); 0.9 -> c2 */
    const int8_t want[12] = {1, -1, -1, -1, 1, -1, /* plane 0 */ -1, 1, -1, -1, 1, 1 /* plane 1 */};
    int8_t B[12];
    qat_alq_basis_step(tau, 6, alpha, 2, B);
    for (int k = 0; k < 12; k++) CHECK(B[k] == want[k], "B[%d] = %d, want %d", k, B[k], want[k]);
    qat_alq_basis_step_ref(tau, 6, alpha, 2, B);
    for (int k = 0; k < 12; k++) CHECK(B[k] == want[k], "ref B[%d] = %d, want %d", k, B[k], want[k]);
}

/* the sorted-levels search against the exhaustive one on awkward sizes */
static void test_basis_fast_vs_ref(void)
{
    static const size_t sizes[] = {1, 7, 63, 64, 65, 1000};
    static float tau[1000];
    static int8_t Bf[8 * 1000], Br[8 * 1000];
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int I = 0; I <= QAT_ALQ_MAX_BITS; I++)
            for (int kind = 0; kind < 3; kind++) {
                size_t n = sizes[s];
                float alpha[8];
                for (int i = 0; i < I; i++)
                    alpha[i] = kind == 0 ? (float)(0.01 + urand()) : (float)(int)(1 + 3 * urand()) * 0.25f;
                if (kind == 2 && I > 1) alpha[0] = 0;
                double span = 0;
                for (int i = 0; i < I; i++) span += alpha[i];
                for (size_t j = 0; j < n; j++) {
                    double u = urand();
                    /* inside the level range, beyond it, and (kind > 0) on the quarter grid:
                     * on levels and on midpoints */
                    tau[j] = kind == 0 ? (float)((2.4 * u - 1.2) * span)
                                       : (float)(int)((2.5 * u - 1.25) * span * 8) * 0.125f;
                }
                memset(Bf, 0, sizeof Bf), memset(Br, 0, sizeof Br);
                qat_alq_basis_step(tau, n, alpha, I, Bf);
                qat_alq_basis_step_ref(tau, n, alpha, I, Br);
                CHECK(!memcmp(Bf, Br, n * (size_t)I), "n %zu I %d kind %d: fast and reference B differ", n, I, kind);
            }
}

/* ---- alpha solve (Eq. 22-23) ----------------------------------------------- */

/* min ||M x - y|| by Householder QR in long double; M is m x k row-major,
 * both overwritten */
static void householder_lsq(long double *M, long double *y, int m, int k, long double *x)
{
    for (int c = 0; c < k; c++) {
        long double nrm = 0;
        for (int r = c; r < m; r++) nrm += M[r * k + c] * M[r * k + c];
        nrm = sqrtl(nrm);
        long double a = M[c * k + c] > 0 ? -nrm : nrm; /* R[c][c] */
        long double v[128];
        for (int r = c; r < m; r++) v[r] = M[r * k + c];
        v[c] -= a;
        long double vv = 0;
        for (int r = c; r < m; r++) vv += v[r] * v[r];
        if (vv == 0) continue;
        for (int cc = c; cc < k; cc++) {
            long double d = 0;
            for (int r = c; r < m; r++) d += v[r] * M[r * k + cc];
            for (int r = c; r < m; r++) M[r * k + cc] -= 2 * d / vv * v[r];
        }
        long double d = 0;
        for (int r = c; r < m; r++) d += v[r] * y[r];
        for (int r = c; r < m; r++) y[r] -= 2 * d / vv * v[r];
    }
    for (int c = k - 1; c >= 0; c--) {
        long double s = y[c];
        for (int cc = c + 1; cc < k; cc++) s -= M[c * k + cc] * x[cc];
        x[c] = s / M[c * k + c];
    }
}

/* alpha (with its sign before the flip) against a reference; B flipped
 * exactly where the reference is negative */
static void expect_alpha(const char *what, const float *alpha, const int8_t *B, const int8_t *B0, size_t n, int I,
                         const long double *ref, double tol)
{
    long double num = 0, den = 0;
    for (int i = 0; i < I; i++) {
        int neg = ref[i] < 0;
        long double d = (long double)alpha[i] - fabsl(ref[i]);
        num += d * d, den += ref[i] * ref[i];
        CHECK(alpha[i] >= 0, "%s: alpha[%d] = %g < 0", what, i, alpha[i]);
        for (size_t j = 0; j < n; j++)
            if (B[(size_t)i * n + j] != (neg ? -B0[(size_t)i * n + j] : B0[(size_t)i * n + j])) {
                CHECK(0, "%s: plane %d weight %zu: %d, want %s of %d", what, i, j, B[(size_t)i * n + j],
                      neg ? "the negation" : "the value", B0[(size_t)i * n + j]);
                break;
            }
    }
    CHECK(num <= (long double)tol * tol * den, "%s: relative error %.3Lg", what, sqrtl(num / den));
}

static void test_solve_lsq(void)
{
    static const size_t sizes[] = {1, 3, 7, 16, 64, 100};
    const double lambda = QAT_ALQ_LAMBDA;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int I = 1; I <= QAT_ALQ_MAX_BITS; I++) {
            size_t n = sizes[s];
            float tau[100], H[100], alpha[8], g[100], a_old[8], w_old[100];
            int8_t B[800], B0[800], Bold[800];
            for (size_t k = 0; k < n * (size_t)I; k++) B[k] = srand1(), Bold[k] = srand1();
            if (I >= 3 && n >= 4) memcpy(B + 2 * n, B, n); /* two equal planes: only lambda keeps it invertible */
            memcpy(B0, B, n * (size_t)I);
            for (int i = 0; i < I; i++) a_old[i] = (float)(0.1 + urand());
            qat_alq_reconstruct(Bold, a_old, n, I, w_old);
            for (size_t j = 0; j < n; j++) {
                H[j] = (float)(0.05 + 2 * urand());
                g[j] = (float)(0.5 * nrand());
            }
            qat_alq_target(w_old, g, H, n, tau);
            /* reference 1: [sqrt(H) B; sqrt(lambda) I] alpha ~ [sqrt(H) tau; 0] by QR */
            int m = (int)n + I;
            long double M[108 * 8], y[108], ref[8];
            for (size_t j = 0; j < n; j++) {
                long double sh = sqrtl((long double)H[j]);
                for (int i = 0; i < I; i++) M[j * (size_t)I + (size_t)i] = sh * B[(size_t)i * n + j];
                y[j] = sh * tau[j];
            }
            for (int r = 0; r < I; r++) {
                for (int i = 0; i < I; i++) M[((int)n + r) * I + i] = r == i ? sqrtl((long double)lambda) : 0;
                y[(int)n + r] = 0;
            }
            householder_lsq(M, y, m, I, ref);
            /* reference 2: Eq. 23 as printed, normal equations in long double,
             * alpha = -(B^T H B + lambda I)^-1 B^T (g - H B_old alpha_old) */
            long double A[64] = {0}, r2[8] = {0}, ref2[8];
            for (size_t j = 0; j < n; j++) {
                long double wq = 0;
                for (int i = 0; i < I; i++) wq += (long double)Bold[(size_t)i * n + j] * a_old[i];
                for (int i = 0; i < I; i++) {
                    r2[i] += B[(size_t)i * n + j] * ((long double)g[j] - (long double)H[j] * wq);
                    for (int c = 0; c < I; c++)
                        A[i * I + c] += (long double)B[(size_t)i * n + j] * B[(size_t)c * n + j] * H[j];
                }
            }
            for (int i = 0; i < I; i++) A[i * I + i] += lambda, r2[i] = -r2[i];
            householder_lsq(A, r2, I, I, ref2); /* square: QR is a plain solve */
            qat_status st = qat_alq_solve_alpha(tau, H, B, n, I, lambda, alpha);
            CHECK(st == QAT_OK, "n %zu I %d: %s", n, I, qat_last_error());
            char what[64];
            snprintf(what, sizeof what, "n %zu I %d vs QR", n, I);
            expect_alpha(what, alpha, B, B0, n, I, ref, 1e-6);
            /* Eq. 23's g and old B reach the solver through tau rounded to float */
            snprintf(what, sizeof what, "n %zu I %d vs Eq. 23", n, I);
            expect_alpha(what, alpha, B, B0, n, I, ref2, 2e-6);
        }
    /* tau = 0: every alpha solves to 0 and stays (+0, B untouched) */
    {
        const float tau[4] = {0, 0, 0, 0}, H[4] = {1, 2, 3, 4};
        int8_t B[8] = {1, -1, 1, 1, -1, -1, 1, 1}, B0[8];
        memcpy(B0, B, 8);
        float alpha[2] = {5, 5};
        CHECK(qat_alq_solve_alpha(tau, H, B, 4, 2, QAT_ALQ_LAMBDA, alpha) == QAT_OK, "tau 0: %s", qat_last_error());
        CHECK(alpha[0] == 0 && alpha[1] == 0 && !signbit(alpha[0]) && !signbit(alpha[1]), "tau 0: alpha %g %g",
              alpha[0], alpha[1]);
        CHECK(!memcmp(B, B0, 8), "tau 0: B changed");
    }
    /* hand example: B = [1 1; 1 -1; -1 1]^T planes, H = 1, lambda = 0:
     * B^T B = [[3, -1], [-1, 3]], tau = (1, 3, -3) -> B^T tau = (7, -5),
     * alpha = (2, -1): plane 1 flips */
    {
        const float tau[3] = {1, 3, -3}, H[3] = {1, 1, 1};
        int8_t B[6] = {1, 1, -1, /* plane 1 */ 1, -1, 1};
        float alpha[2];
        CHECK(qat_alq_solve_alpha(tau, H, B, 3, 2, 0, alpha) == QAT_OK, "hand: %s", qat_last_error());
        CHECK(fabsf(alpha[0] - 2) < 1e-6f && fabsf(alpha[1] - 1) < 1e-6f, "hand: alpha %.9g %.9g, want 2 1", alpha[0],
              alpha[1]);
        CHECK(B[3] == -1 && B[4] == 1 && B[5] == -1 && B[0] == 1, "hand: plane 1 not negated");
    }
    /* H < 0: not positive definite, nothing written */
    {
        const float tau[2] = {1, 2}, H[2] = {-1, -1};
        int8_t B[2] = {1, 1};
        float alpha[1] = {7};
        qat_status st = qat_alq_solve_alpha(tau, H, B, 2, 1, QAT_ALQ_LAMBDA, alpha);
        CHECK(st == QAT_ERR_ARG && alpha[0] == 7 && B[0] == 1, "H < 0: status %d alpha %g", st, alpha[0]);
        CHECK(strstr(qat_last_error(), "positive definite") != NULL, "message: %s", qat_last_error());
    }
}

/* ---- chain rule, moments, reconstruction ------------------------------------ */

static void test_alpha_domain(void)
{
    /* n = 4, I = 2: planes (1, -1, 1, 1) and (-1, -1, 1, -1) */
    const int8_t B[8] = {1, -1, 1, 1, -1, -1, 1, -1};
    const float G[4] = {0.5f, 2, -1, 0.25f};
    float ga[2];
    qat_alq_grad_alpha(G, B, 4, 2, ga);
    /* 0.5 - 2 - 1 + 0.25 = -2.25; -0.5 - 2 - 1 - 0.25 = -3.75 */
    CHECK(ga[0] == -2.25f && ga[1] == -3.75f, "Eq. 14: %g %g, want -2.25 -3.75", ga[0], ga[1]);
    const float m[4] = {1, 2, 3, 4}, v[4] = {0.5f, 0.25f, 1, 2}, vx[4] = {1, 1, 1, 4};
    float ma[2], va[2], vxa[2];
    qat_alq_rebuild_moments(m, v, vx, B, 4, 2, ma, va, vxa);
    /* m_a = B^T m = (1 - 2 + 3 + 4, -1 - 2 + 3 - 4) = (6, -4); v_a = 3.75, vmax_a = 7 */
    CHECK(ma[0] == 6 && ma[1] == -4, "m_a %g %g, want 6 -4", ma[0], ma[1]);
    CHECK(va[0] == 3.75f && va[1] == 3.75f && vxa[0] == 7 && vxa[1] == 7, "v_a %g %g vmax_a %g %g", va[0], va[1],
          vxa[0], vxa[1]);
    const float alpha[2] = {0.5f, 2};
    float w[4];
    qat_alq_reconstruct(B, alpha, 4, 2, w);
    /* 0.5 - 2, -0.5 - 2, 0.5 + 2, 0.5 - 2 */
    const float want[4] = {-1.5f, -2.5f, 2.5f, -1.5f};
    for (int j = 0; j < 4; j++) CHECK(w[j] == want[j], "Eq. 2: w[%d] = %g, want %g", j, w[j], want[j]);
    qat_alq_reconstruct(B, alpha, 4, 0, w);
    CHECK(w[0] == 0 && w[3] == 0, "I = 0 reconstructs zeros");
    const float wh[2] = {1, -1}, gg[2] = {0.5f, 0.25f}, HH[2] = {2, 0.5f};
    float tau[2];
    qat_alq_target(wh, gg, HH, 2, tau);
    CHECK(tau[0] == 0.75f && tau[1] == -1.5f, "Eq. 19 target %g %g, want 0.75 -1.5", tau[0], tau[1]);
    /* negative complement */
    int8_t Bn[8];
    memcpy(Bn, B, 8);
    float an[2] = {-0.5f, 2};
    qat_alq_make_positive(Bn, an, 4, 2);
    float wn[4];
    qat_alq_reconstruct(Bn, an, 4, 2, wn);
    CHECK(an[0] == 0.5f && Bn[0] == -1 && Bn[1] == 1 && Bn[4] == -1, "negative complement");
    const float wn_want[4] = {-2.5f, -1.5f, 1.5f, -2.5f}; /* B alpha with alpha_0 = -0.5 */
    for (int j = 0; j < 4; j++) CHECK(wn[j] == wn_want[j], "complement keeps B alpha: w[%d] = %g", j, wn[j]);
}

/* ---- pruning (Eq. 13) -------------------------------------------------------- */

static void test_prune_hand(void)
{
    /* two layers, one group each: A with I = 3, B with I = 3 */
    int8_t BA[3 * 2] = {1, 1, /* plane 1 */ 1, -1, /* plane 2 */ -1, 1};
    float aA[3] = {0.5f, 1, 2}, gA[3] = {0.125f, -0.25f, 0.5f}, HA[3] = {2, 1, 0.5f};
    int8_t BB[3 * 2] = {1, -1, /* plane 1 */ -1, -1, /* plane 2 */ 1, 1};
    float aB[3] = {0.25f, 3, 1}, gB[3] = {0, 2, 0.3125f}, HB[3] = {4, 0.25f, 1};
    /* f = -g alpha + H alpha^2 / 2:
     * A: -0.0625 + 0.25 = 0.1875; 0.25 + 0.5 = 0.75; -1 + 1 = 0
     * B: 0 + 0.125 = 0.125; -6 + 1.125 = -4.875; -0.3125 + 0.5 = 0.1875 */
    const float want[6] = {0.1875f, 0.75f, 0, 0.125f, -4.875f, 0.1875f};
    float scores[6];
    for (int i = 0; i < 3; i++) scores[i] = qat_alq_prune_score(gA[i], HA[i], aA[i]);
    for (int i = 0; i < 3; i++) scores[3 + i] = qat_alq_prune_score(gB[i], HB[i], aB[i]);
    for (int i = 0; i < 6; i++) CHECK(scores[i] == want[i], "Eq. 13: f[%d] = %g, want %g", i, scores[i], want[i]);
    /* ascending over both layers, the tie 0.1875 by index: 4, 2, 3, 0, 5, 1 */
    const uint32_t order_want[6] = {4, 2, 3, 0, 5, 1};
    uint32_t order[6];
    for (size_t k = 0; k <= 7; k++) {
        size_t got = qat_alq_prune_select(scores, 6, k, order);
        CHECK(got == (k < 6 ? k : 6), "k %zu: %zu selected", k, got);
        for (size_t i = 0; i < got; i++) CHECK(order[i] == order_want[i], "k %zu: order[%zu] = %u, want %u", k, i,
                                               order[i], order_want[i]);
    }
    /* prune the 4 smallest: A loses planes 0 and 2, B planes 0 and 1 (highest first) */
    qat_alq_prune_select(scores, 6, 4, order);
    int IA = 3, IB = 3, drop[6] = {0};
    for (int i = 0; i < 4; i++) drop[order[i]] = 1;
    for (int i = 2; i >= 0; i--) {
        if (drop[i]) qat_alq_remove_plane(BA, aA, 2, &IA, i);
        if (drop[3 + i]) qat_alq_remove_plane(BB, aB, 2, &IB, i);
    }
    CHECK(IA == 1 && aA[0] == 1 && BA[0] == 1 && BA[1] == -1, "A after pruning: I %d alpha %g B %d %d", IA, aA[0],
          BA[0], BA[1]);
    CHECK(IB == 1 && aB[0] == 1 && BB[0] == 1 && BB[1] == 1, "B after pruning: I %d alpha %g B %d %d", IB, aB[0],
          BB[0], BB[1]);
}

static const float *cmp_scores;
static int cmp_ref(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    float x = cmp_scores[a], y = cmp_scores[b];
    if (isnan(x) != isnan(y)) return isnan(x) ? 1 : -1;
    if (!isnan(x) && x != y) return x < y ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* the heap selection against a full qsort on (score, index), NaN last */
static void test_prune_select(void)
{
    static const size_t sizes[] = {1, 7, 63, 64, 65, 1000};
    static float s[1000];
    static uint32_t all[1000], order[1000];
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        size_t count = sizes[z];
        for (size_t i = 0; i < count; i++) {
            double u = urand();
            s[i] = u < 0.1 ? NAN : u < 0.4 ? (float)(int)(8 * urand()) - 4.0f : (float)nrand();
            all[i] = (uint32_t)i;
        }
        cmp_scores = s;
        qsort(all, count, sizeof all[0], cmp_ref);
        const size_t ks[] = {0, 1, 2, count / 3, count - 1, count, count + 5};
        for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++) {
            size_t got = qat_alq_prune_select(s, count, ks[q], order);
            size_t want = ks[q] < count ? ks[q] : count;
            CHECK(got == want, "count %zu k %zu: %zu", count, ks[q], got);
            CHECK(!memcmp(order, all, got * sizeof order[0]), "count %zu k %zu: order differs from qsort", count, ks[q]);
        }
    }
}

static void test_prune_schedules(void)
{
    /* linear: exactly I0 - I_min over T steps, floor or ceil of D / T each */
    const size_t cases[][3] = {{1000, 660, 7}, {22147, 13422, 391}, {50, 10, 100}, {10, 10, 5}, {5, 9, 3},
                               {268448, 0, 1}, {3, 0, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t I0 = cases[c][0], Im = cases[c][1], T = cases[c][2], D = I0 > Im ? I0 - Im : 0, sum = 0;
        for (size_t t = 0; t < T; t++) {
            size_t m = qat_alq_prune_count_linear(I0, Im, T, t);
            CHECK(m == D / T || m == (D + T - 1) / T, "I0 %zu I_min %zu T %zu t %zu: M_p %zu not uniform", I0, Im, T, t,
                  m);
            sum += m;
            CHECK(I0 - sum == I0 - D * (t + 1) / T, "I0 %zu T %zu: after %zu steps %zu remain", I0, T, t + 1, I0 - sum);
        }
        CHECK(sum == D, "I0 %zu I_min %zu T %zu: pruned %zu in total, want %zu", I0, Im, T, sum, D);
        CHECK(qat_alq_prune_count_linear(I0, Im, T, T) == 0, "t = T prunes nothing");
    }
    CHECK(qat_alq_prune_count_linear(10, 0, 0, 0) == 0, "T = 0");
    /* geometric: floor(current pr / T) */
    CHECK(qat_alq_prune_count_geometric(1000, 0.4, 100) == 4, "1000 * 0.4 / 100");
    CHECK(qat_alq_prune_count_geometric(22147, 0.4, 391) == 22, "22147 * 0.4 / 391 = 22.66");
    CHECK(qat_alq_prune_count_geometric(99, 0.4, 40) == 0, "99 * 0.4 / 40 = 0.99");
    CHECK(qat_alq_prune_count_geometric(10, 0.4, 0) == 0, "T = 0");
    size_t cur = 1000000;
    for (int t = 0; t < 1000; t++) cur -= qat_alq_prune_count_geometric(cur, 0.4, 1000);
    /* e^-0.4 = 0.6703 of them remain, a little more with floor */
    CHECK(cur >= 670320 && cur <= 671000, "geometric: %zu of 1e6 remain after one epoch, want ~670320", cur);
}

/* ---- sketching (Sec. 5.1, spec §3) -------------------------------------------- */

static double rel_residual(const float *w, const int8_t *B, const float *alpha, size_t n, int I)
{
    float wh[512];
    qat_alq_reconstruct(B, alpha, n, I, wh);
    double rr = 0, ww = 0;
    for (size_t j = 0; j < n; j++) rr += ((double)w[j] - wh[j]) * ((double)w[j] - wh[j]), ww += (double)w[j] * w[j];
    return sqrt(rr / ww);
}

static void check_form(const char *what, const int8_t *B, const float *alpha, size_t n, int I)
{
    for (int i = 0; i < I; i++) {
        CHECK(alpha[i] > 0, "%s: alpha[%d] = %g", what, i, alpha[i]);
        CHECK(i == 0 || alpha[i - 1] <= alpha[i], "%s: alpha not ascending at %d", what, i);
        for (size_t j = 0; j < n; j++)
            if (B[(size_t)i * n + j] != 1 && B[(size_t)i * n + j] != -1) {
                CHECK(0, "%s: B[%d][%zu] = %d", what, i, j, B[(size_t)i * n + j]);
                break;
            }
    }
}

static void test_sketch_hand(void)
{
    int8_t B[8 * 8];
    float alpha[8];
    int I = -1;
    /* (3, -1, 1, -3): plane (+,-,+,-) alpha 2, residual (1, 1, -1, -1) -> plane
     * (+,+,-,-) alpha 1, orthogonal, residual 0; sorted: alpha (1, 2) */
    const float w[4] = {3, -1, 1, -3};
    qat_alq_sketch(w, 4, 8, B, alpha, &I);
    const int8_t want[8] = {1, 1, -1, -1, 1, -1, 1, -1};
    CHECK(I == 2 && alpha[0] == 1 && alpha[1] == 2, "hand: I %d alpha %g %g, want 2: 1 2", I, alpha[0], alpha[1]);
    CHECK(I == 2 && !memcmp(B, want, 8), "hand: B");
    /* zeros: I = 0; a constant: one plane */
    const float z[5] = {0, 0, 0, 0, 0}, c[7] = {-0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f};
    qat_alq_sketch(z, 5, 8, B, alpha, &I);
    CHECK(I == 0, "zeros: I %d", I);
    qat_alq_sketch(c, 7, 8, B, alpha, &I);
    CHECK(I == 1 && alpha[0] == 0.5f && B[0] == -1 && B[6] == -1, "constant: I %d alpha %g", I, alpha[0]);
    qat_alq_sketch(w, 4, 0, B, alpha, &I);
    CHECK(I == 0, "I_max 0: I %d", I);
    /* a coordinate that is 0 as a float is dropped: w = (d, 0, 0, 0), d the
     * least denormal, on one plane (+,+,+,+) has alpha = d/4, 0 in float */
    const float tiny[4] = {0x1p-149f, 0, 0, 0};
    qat_alq_sketch(tiny, 4, 1, B, alpha, &I);
    CHECK(I == 0, "alpha underflowing to 0: I %d, want 0", I);
    /* sign(0) = +1 and the early stop: w = (0, 1) -> plane (+1, +1) alpha 0.5,
     * residual (-0.5, 0.5) -> plane (-1, +1) alpha 0.5, exact */
    const float w2[2] = {0, 1};
    qat_alq_sketch(w2, 2, 8, B, alpha, &I);
    CHECK(I == 2 && alpha[0] == 0.5f && alpha[1] == 0.5f, "(0, 1): I %d", I);
    CHECK(I == 2 && B[0] == 1 && B[1] == 1 && B[2] == -1 && B[3] == 1, "(0, 1): B %d %d %d %d", B[0], B[1], B[2], B[3]);
}

/* w = B* alpha* with three independent sign planes: I_max >= 3 recovers
 * them and w exactly (to float rounding) */
static void test_sketch_exact(void)
{
    static const size_t sizes[] = {16, 64, 256};
    const float astar[3] = {0.05f, 0.4f, 3.0f};
    for (size_t s = 0; s < 3; s++)
        for (int trial = 0; trial < 10; trial++)
            for (int I_max = 3; I_max <= 8; I_max += 5) {
                size_t n = sizes[s];
                int8_t Bs[3 * 256], B[8 * 256];
                float w[256], alpha[8];
                for (size_t k = 0; k < 3 * n; k++) Bs[k] = srand1();
                qat_alq_reconstruct(Bs, astar, n, 3, w);
                int I = -1;
                qat_alq_sketch(w, n, I_max, B, alpha, &I);
                char what[64];
                snprintf(what, sizeof what, "exact n %zu trial %d I_max %d", n, trial, I_max);
                check_form(what, B, alpha, n, I);
                CHECK(I == 3, "%s: I = %d", what, I);
                if (I != 3) continue;
                double r = rel_residual(w, B, alpha, n, I);
                CHECK(r < 1e-6, "%s: relative residual %.3g", what, r);
                for (int i = 0; i < 3; i++)
                    CHECK(fabsf(alpha[i] - astar[i]) <= 1e-6f * astar[i] + 1e-7f, "%s: alpha[%d] = %.9g, want %g", what,
                          i, alpha[i], astar[i]);
                CHECK(!memcmp(B, Bs, 3 * n), "%s: planes differ from B*", what);
            }
    /* n <= I_max: the planes span R^n, the sketch runs to its threshold */
    for (size_t n = 1; n <= 8; n++)
        for (int trial = 0; trial < 20; trial++) {
            float w[8], alpha[8];
            int8_t B[64];
            for (size_t j = 0; j < n; j++) w[j] = (float)nrand();
            int I = -1;
            qat_alq_sketch(w, n, 8, B, alpha, &I);
            char what[64];
            snprintf(what, sizeof what, "n %zu <= I_max trial %d", n, trial);
            check_form(what, B, alpha, n, I);
            double r = rel_residual(w, B, alpha, n, I);
            CHECK(I <= (int)n && r * r < QAT_ALQ_REL_THRES, "%s: I %d, ||r||^2/||w||^2 = %.3g", what, I, r * r);
        }
}

/* a general vector: the residual falls with every plane sketching adds */
static void test_sketch_monotone(void)
{
    static const size_t sizes[] = {27, 128, 512};
    for (size_t s = 0; s < 3; s++)
        for (int trial = 0; trial < 4; trial++) {
            size_t n = sizes[s];
            float w[512], alpha[8];
            int8_t B[8 * 512];
            for (size_t j = 0; j < n; j++) w[j] = (float)(trial == 3 ? nrand() * nrand() : nrand());
            double prev = 1.0;
            int prevI = 0;
            for (int I_max = 1; I_max <= 8; I_max++) {
                int I = -1;
                qat_alq_sketch(w, n, I_max, B, alpha, &I);
                char what[64];
                snprintf(what, sizeof what, "monotone n %zu trial %d I_max %d", n, trial, I_max);
                check_form(what, B, alpha, n, I);
                double r = rel_residual(w, B, alpha, n, I);
                CHECK(I == I_max, "%s: I = %d (a Gaussian vector is far from every threshold)", what, I);
                CHECK(I > prevI && r < prev * (1 - 1e-6), "%s: residual %.9g after %.9g", what, r, prev);
                prev = r, prevI = I;
            }
        }
}

/* ---- grouping (spec §2) -------------------------------------------------------- */

static void test_grouping(void)
{
    static const struct {
        int ndim, shape[4];
    } shapes[] = {{4, {2, 3, 2, 2}}, {4, {3, 4, 3, 5}}, {4, {5, 6, 1, 1}}, {4, {1, 1, 1, 1}}, {2, {4, 6}},
                  {2, {3, 12}},      {4, {4, 12, 3, 3}}};
    static float w[4 * 12 * 9], grp[4 * 12 * 9], back[4 * 12 * 9];
    static int seen[4 * 12 * 9];
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int s = 0; s < QAT_ALQ_STRUCT_COUNT; s++)
            for (int S = 1; S <= 12; S++) {
                const int *sh = shapes[k].shape;
                if (s != QAT_ALQ_SUBCHANNEL && S > 1) break;
                if (s == QAT_ALQ_SUBCHANNEL && sh[1] % S) continue;
                qat_alq_grouping gp;
                qat_status st = qat_alq_grouping_init(&gp, (qat_alq_struct)s, shapes[k].ndim, sh, S);
                CHECK(st == QAT_OK, "%s S %d: %s", qat_alq_struct_name((qat_alq_struct)s), S, qat_last_error());
                if (st != QAT_OK) continue;
                size_t N = (size_t)sh[0] * (size_t)sh[1] * (shapes[k].ndim == 4 ? (size_t)sh[2] * (size_t)sh[3] : 1);
                CHECK(gp.n * gp.G == N, "%s: n %zu G %zu for %zu weights", qat_alq_struct_name(gp.structure), gp.n, gp.G,
                      N);
                for (size_t i = 0; i < N; i++) w[i] = (float)i, back[i] = -1, seen[i] = 0;
                qat_alq_gather(&gp, w, grp);
                int perm = 1;
                for (size_t i = 0; i < N; i++) {
                    size_t o = (size_t)grp[i];
                    perm &= o < N && !seen[o];
                    if (o < N) seen[o] = 1;
                }
                CHECK(perm, "%s S %d shape %zu: gather is not a permutation", qat_alq_struct_name(gp.structure), S, k);
                qat_alq_scatter(&gp, grp, back);
                CHECK(!memcmp(w, back, N * sizeof w[0]), "%s S %d shape %zu: scatter(gather(w)) != w",
                      qat_alq_struct_name(gp.structure), S, k);
                /* one group at a time, through the offsets */
                float one[108];
                size_t g = gp.G - 1;
                qat_alq_gather_group(&gp, g, w, one);
                for (size_t j = 0; j < gp.n; j++)
                    CHECK(one[j] == (float)qat_alq_group_offset(&gp, g, j) && one[j] == grp[g * gp.n + j],
                          "%s: group %zu element %zu", qat_alq_struct_name(gp.structure), g, j);
                for (size_t j = 0; j < gp.n; j++) one[j] = -2;
                qat_alq_scatter_group(&gp, g, one, back);
                for (size_t j = 0; j < gp.n; j++)
                    CHECK(back[qat_alq_group_offset(&gp, g, j)] == -2, "scatter_group element %zu", j);
            }
    /* the code's numbering, by hand on [2, 3, 2, 2] and [4, 6] */
    const int c4[4] = {2, 3, 2, 2}, l2[2] = {4, 6};
    qat_alq_grouping gp;
    qat_alq_grouping_init(&gp, QAT_ALQ_PIXEL, 4, c4, 1);
    /* pixel group 5 = (c 1, h 0, w 1); element 2 = input channel 2: 1*12 + 2*4 + 1 */
    CHECK(gp.n == 3 && gp.G == 8 && qat_alq_group_offset(&gp, 5, 2) == 21, "pixel: n %zu G %zu offset %zu", gp.n,
          gp.G, qat_alq_group_offset(&gp, 5, 2));
    qat_alq_grouping_init(&gp, QAT_ALQ_KERNEL, 4, c4, 1);
    CHECK(gp.n == 4 && gp.G == 6 && qat_alq_group_offset(&gp, 4, 3) == 19, "kernel: (c 1, d 1) element 3 at 19");
    qat_alq_grouping_init(&gp, QAT_ALQ_CHANNEL, 4, c4, 1);
    CHECK(gp.n == 12 && gp.G == 2 && qat_alq_group_offset(&gp, 1, 5) == 17, "channel: (c 1) element 5 at 17");
    qat_alq_grouping_init(&gp, QAT_ALQ_SUBCHANNEL, 2, l2, 3);
    CHECK(gp.n == 2 && gp.G == 12 && qat_alq_group_offset(&gp, 7, 1) == 15, "subchannel: (c 2, s 1) element 1 at 15");
    /* errors */
    qat_status st = qat_alq_grouping_init(&gp, QAT_ALQ_SUBCHANNEL, 2, l2, 4);
    CHECK(st == QAT_ERR_CONFIG && strstr(qat_last_error(), "divisible") && gp.n == 0, "6 / 4 sub-channels: %d %s", st,
          qat_last_error());
    st = qat_alq_grouping_init(&gp, QAT_ALQ_SUBCHANNEL, 2, l2, 0);
    CHECK(st == QAT_ERR_CONFIG, "0 sub-channels: %d", st);
    const int bad[4] = {2, 0, 3, 3};
    st = qat_alq_grouping_init(&gp, QAT_ALQ_CHANNEL, 4, bad, 1);
    CHECK(st == QAT_ERR_SHAPE, "C_in 0: %d", st);
    st = qat_alq_grouping_init(&gp, QAT_ALQ_CHANNEL, 3, c4, 1);
    CHECK(st == QAT_ERR_SHAPE, "3 dims: %d", st);
    st = qat_alq_grouping_init(&gp, QAT_ALQ_STRUCT_COUNT, 4, c4, 1);
    CHECK(st == QAT_ERR_CONFIG, "structure out of range: %d", st);
}

/* ---- storage (spec §10) --------------------------------------------------------- */

/* VGG-small with the code's grouping (spec §2): conv1 channel-wise, conv2-6
 * pixel-wise, fc1-3 sub-channel-wise with 16, 2, 2 sub-channels */
static double vgg_mbytes(double bits_per_weight, int I_max, size_t *N, size_t *G)
{
    static const struct {
        int ndim, shape[4];
        qat_alq_struct s;
        int S;
    } L[] = {
        {4, {128, 3, 3, 3}, QAT_ALQ_CHANNEL, 1},    {4, {128, 128, 3, 3}, QAT_ALQ_PIXEL, 1},
        {4, {256, 128, 3, 3}, QAT_ALQ_PIXEL, 1},    {4, {256, 256, 3, 3}, QAT_ALQ_PIXEL, 1},
        {4, {512, 256, 3, 3}, QAT_ALQ_PIXEL, 1},    {4, {512, 512, 3, 3}, QAT_ALQ_PIXEL, 1},
        {2, {1024, 8192}, QAT_ALQ_SUBCHANNEL, 16}, {2, {1024, 1024}, QAT_ALQ_SUBCHANNEL, 2},
        {2, {10, 1024}, QAT_ALQ_SUBCHANNEL, 2},
    };
    uint64_t bits = 0;
    *N = 0, *G = 0;
    for (size_t l = 0; l < sizeof L / sizeof L[0]; l++) {
        qat_alq_grouping gp;
        qat_status st = qat_alq_grouping_init(&gp, L[l].s, L[l].ndim, L[l].shape, L[l].S);
        CHECK(st == QAT_OK, "VGG layer %zu: %s", l, qat_last_error());
        size_t sum_I = (size_t)llround(bits_per_weight * (double)gp.G);
        bits += qat_alq_storage_bits(gp.n, gp.G, sum_I, I_max);
        *N += gp.n * gp.G, *G += gp.G;
    }
    return (double)bits / 8e6;
}

static void test_storage(void)
{
    CHECK(qat_alq_lut_bits(0) == 0 && qat_alq_lut_bits(1) == 1 && qat_alq_lut_bits(3) == 2 && qat_alq_lut_bits(6) == 3 &&
              qat_alq_lut_bits(7) == 3 && qat_alq_lut_bits(8) == 4,
          "ceil(log2(I_max + 1))");
    /* 200 planes of 27 + 200 float32 + 128 groups x 3 bits */
    CHECK(qat_alq_storage_bits(27, 128, 200, 6) == 5400 + 6400 + 384, "conv1: %llu",
          (unsigned long long)qat_alq_storage_bits(27, 128, 200, 6));
    CHECK(qat_alq_storage_bits(512, 16384, 0, 8) == 16384 * 4, "all pruned: the table remains");
    size_t N, G;
    double mb = vgg_mbytes(0.66, 6, &N, &G);
    CHECK(N == 14022016 && G == 33556, "VGG-small: %zu weights in %zu groups, want 14022016 in 33556", N, G);
    /* spec §10: 9.25 Mbit bases + 0.71 Mbit alpha + 0.10 Mbit table = 1.26 MB */
    CHECK(mb > 1.25 && mb < 1.27, "VGG-small 0.66-bit: %.4f MB, want ~1.26", mb);
    mb = vgg_mbytes(0.40, 6, &N, &G);
    CHECK(mb > 0.76 && mb < 0.78, "VGG-small 0.40-bit: %.4f MB, want ~0.77", mb);
}

int main(void)
{
    test_basis_brute();
    test_basis_ties();
    test_basis_fast_vs_ref();
    test_solve_lsq();
    test_alpha_domain();
    test_prune_hand();
    test_prune_select();
    test_prune_schedules();
    test_sketch_hand();
    test_sketch_exact();
    test_sketch_monotone();
    test_grouping();
    test_storage();
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all alq tests passed\n");
    return 0;
}
