/* alq_math.h: the numerical core of ALQ, adaptive loss-aware quantization of
 * multi-bit networks (../shared/papers/alq-multi-bit.txt; the implementation
 * spec is ../shared/specs/alq.md, cited as "spec §k"). Pure functions over
 * one group of weights, plus the layer-level grouping, the global pruning
 * order and schedules, and the storage count. No allocation, no printing,
 * no threads; results depend only on the inputs.
 *
 * One group of n weights in multi-bit form (Eq. 2), w_hat = B alpha:
 *   B      int8 signs, plane-major: B[i*n + j] in {-1, +1} is plane i's
 *          sign for weight j; the caller owns I_max*n of them;
 *   alpha  float coordinates, alpha[i] >= 0 for the live planes i < I (the
 *          caller owns I_max of them);
 *   I      the group's bitwidth I_g (Sec. 3.1): the number of live planes,
 *          which are always planes 0..I-1 ("live planes first");
 *          0 <= I <= I_max <= QAT_ALQ_MAX_BITS. Entries of planes >= I are
 *          never read.
 * Only pruning (qat_alq_remove_plane) changes I after qat_alq_sketch; the
 * basis step and the alpha solve never do (spec §6.3). */
#ifndef QAT_ALQ_MATH_H
#define QAT_ALQ_MATH_H

#include <stddef.h>
#include <stdint.h>

#include "qat_util.h"

/* I_max's ceiling: a group has at most 8 planes (the paper's largest I_max,
 * Sec. 5.1), so the basis step's 2^I levels fit on the stack. */
#define QAT_ALQ_MAX_BITS 8
/* Sketching stops once ||r||^2 / ||w||^2 falls below this (spec §3). */
#define QAT_ALQ_REL_THRES 1e-6
/* lambda of Eq. 23: added to B^T H B so that it is invertible (Sec. 3.3). */
#define QAT_ALQ_LAMBDA 1e-6

/* ---- one group --------------------------------------------------------- */

/* Structured sketching (Sec. 5.1; spec §3, the code's transform_bin_basis):
 * the initial multi-bit form of a pretrained group w[0..n). Greedy: each new
 * plane is sign(r) of the current residual r (sign(0) = +1), then all
 * coordinates so far are refit by least squares, alpha = (B^T B)^-1 B^T w
 * (Cholesky in double); at most min(n, I_max) planes; it stops early when
 * ||r||^2 / ||w||^2 < QAT_ALQ_REL_THRES, or when the new plane is (near)
 * linearly dependent on the earlier ones (the plane is then discarded).
 * Afterwards a negative alpha_i is negated together with its plane, planes
 * whose coordinate is 0 as a float are dropped, and the rest are sorted by
 * alpha ascending (ties keep their order of creation). Writes B (planes
 * 0..*I-1), alpha[0..*I) and *I. A group of zeros gets *I = 0.
 * w finite; 0 <= I_max <= QAT_ALQ_MAX_BITS (asserted). */
void qat_alq_sketch(const float *w, size_t n, int I_max, int8_t *B, float *alpha, int *I);

/* The unconstrained AMSGrad target of every weight (Eq. 19):
 * tau_j = w_hat_j - g_j / H_j, with g = lr * m-hat and H = sqrt(v-hat max)
 * (spec §4). H_j > 0. tau may alias w_hat or g. */
void qat_alq_target(const float *w_hat, const float *g, const float *H, size_t n, float *tau);

/* Basis step (Eq. 17-20, spec §6.1): with alpha[0..I) fixed, every weight j
 * gets the code b in {-1,+1}^I whose level b^T alpha is nearest to tau_j,
 * written to B[i*n + j]. This minimises Eq. 18,
 * sum_j H_j (b_j^T alpha - tau_j)^2, for any H_j > 0, and H does not change
 * the choice, so it is not an argument. Levels and distances |level - tau|
 * are computed in double; levels are enumerated by code c in [0, 2^I) with
 * b_i = +1 when bit i of c is set, and of several equally near levels
 * (equal alphas, alpha = 0, tau exactly between two levels) the smallest c
 * wins, as torch.argmin over the code's bit table. I = 0 writes nothing.
 * tau finite. Cost: O(2^I + n I) (levels sorted once, a binary search per
 * weight). */
void qat_alq_basis_step(const float *tau, size_t n, const float *alpha, int I, int8_t *B);
/* The same, by exhaustive search over the 2^I levels for every weight
 * (O(n 2^I)): the reference the fast version is tested against; same B,
 * bit for bit. */
void qat_alq_basis_step_ref(const float *tau, size_t n, const float *alpha, int I, int8_t *B);

/* Coordinates after a basis step (Eq. 22-23, spec §6.2): with B fixed,
 * alpha = (B^T H B + lambda I)^-1 B^T H tau, the H-weighted least-squares
 * fit of the target tau (the same as Eq. 23 with tau = w_hat - g / H); H is
 * the diagonal H[0..n), lambda = QAT_ALQ_LAMBDA in the paper. Solved by
 * Cholesky in double. Then every negative alpha_i is negated and plane i of
 * B negated with it (the "negative complement", so B alpha is unchanged).
 * An alpha that solves to exactly 0 stays a live plane with alpha 0
 * (contributing nothing; I is unchanged, as in the code): only pruning
 * removes planes. I = 0 does nothing.
 * Fails with QAT_ERR_ARG (alpha and B untouched) when the system is not
 * positive definite or the solution is not finite: H with negative or
 * non-finite entries, lambda <= 0 with dependent planes, tau not finite. */
qat_status qat_alq_solve_alpha(const float *tau, const float *H, int8_t *B, size_t n, int I, double lambda,
                               float *alpha);

/* Negates every negative alpha[i] (i < I) together with plane i of B
 * ("negative complement", Sec. 3.3; B alpha is unchanged). Spec §12.7: call
 * it after a coordinate step (Eq. 21) too. */
void qat_alq_make_positive(int8_t *B, float *alpha, size_t n, int I);

/* The chain rule into the alpha domain (Eq. 14): g_alpha[i] = sum_j
 * B[i*n + j] G[j] for i < I (written, not added; summed in double). G is the
 * gradient dl/dw_hat of the group, or any w-domain vector (AMSGrad's m). */
void qat_alq_grad_alpha(const float *G, const int8_t *B, size_t n, int I, float *g_alpha);

/* The alpha-domain AMSGrad state rebuilt from the w-domain one after a basis
 * change (spec §6.4, the code's approximation): m_a = B^T m,
 * v_a[i] = sum_j v[j], vmax_a[i] = sum_j vmax[j] (the diagonal of
 * B^T diag(v) B, since B_ij^2 = 1), for i < I; sums in double. */
void qat_alq_rebuild_moments(const float *m, const float *v, const float *vmax, const int8_t *B, size_t n, int I,
                             float *m_a, float *v_a, float *vmax_a);

/* w_hat = B alpha (Eq. 2): w_hat[j] = sum_{i<I} alpha[i] B[i*n + j], summed
 * in float over i ascending. I = 0 gives zeros. */
void qat_alq_reconstruct(const int8_t *B, const float *alpha, size_t n, int I, float *w_hat);

/* Removes plane i (< *I) of the group: planes i+1..*I-1 and their alphas
 * move down one, --*I, so the live planes stay first and in their order.
 * Pruning several planes of one group: remove the highest index first. */
void qat_alq_remove_plane(int8_t *B, float *alpha, size_t n, int *I, int i);

/* ---- pruning in the alpha domain (Sec. 3.2, spec §5) ------------------- */

/* The modelled loss increment of pruning one coordinate (Eq. 13):
 * f = -g_alpha * alpha + 0.5 * H_alpha * alpha^2, computed in double and
 * rounded once. It may be negative. */
float qat_alq_prune_score(float g_alpha, float H_alpha, float alpha);

/* The k smallest of scores[0..count) over every layer's live coordinates
 * together (one global budget, Sec. 3.2): writes their indices to
 * order[0..min(k, count)) in increasing (score, index) order, ties by the
 * smaller index; NaN scores rank after every number. Returns min(k, count).
 * order needs min(k, count) entries; count <= UINT32_MAX (asserted).
 * O(count log k). */
size_t qat_alq_prune_select(const float *scores, size_t count, size_t k, uint32_t *order);

/* The paper's uniform schedule (Sec. 3.2): the number of coordinates to
 * prune at iteration t (0 <= t < T) so that the total falls from I0_total to
 * I_min_total over T iterations: floor((t+1) D / T) - floor(t D / T) with
 * D = I0_total - I_min_total, i.e. floor(D/T) or ceil(D/T) each time and
 * exactly D over the T iterations (the paper's round(D/T) per iteration
 * would not add up to D). 0 when D <= 0, t >= T or T = 0.
 * D * T < 2^64 (asserted). */
size_t qat_alq_prune_count_linear(size_t I0_total, size_t I_min_total, size_t T, size_t t);

/* The authors' code's schedule (spec §5 [code]): about a fraction pr / T of
 * the current coordinates per iteration, floor(current * pr / T) (the code's
 * int(); its random rounding of the per-layer proposal counts is not
 * reproduced). Geometric: after T iterations about e^-pr of them remain.
 * 0 when T = 0. pr >= 0. */
size_t qat_alq_prune_count_geometric(size_t current, double pr, size_t T);

/* ---- storage (Sec. 5.4.1, spec §10) ------------------------------------ */

/* Bits of one layer of G groups of n weights with sum_I live planes in all:
 * sum_I * n (bases) + sum_I * 32 (float32 coordinates) + G * lut bits (each
 * group's I_g in ceil(log2(I_max + 1)) bits). */
uint64_t qat_alq_storage_bits(size_t n, size_t G, size_t sum_I, int I_max);
/* ceil(log2(I_max + 1)): bits of one entry of the bitwidth table. */
int qat_alq_lut_bits(int I_max);

/* ---- grouping (Sec. 5.1, spec §2) -------------------------------------- */

typedef enum {
    QAT_ALQ_CHANNEL = 0, /* w[c, :, :, :]: n = C_in KH KW, G = C_out */
    QAT_ALQ_KERNEL,      /* w[c, d, :, :]: n = KH KW, G = C_out C_in */
    QAT_ALQ_PIXEL,       /* w[c, :, h, w]: n = C_in, G = C_out KH KW (strided) */
    QAT_ALQ_SUBCHANNEL,  /* w[c, s*C_in/S : (s+1)*C_in/S, :, :]: n = (C_in/S) KH KW, G = C_out S */
    QAT_ALQ_STRUCT_COUNT
} qat_alq_struct;

/* "channel", "kernel", "pixel", "subchannel"; NULL out of range. */
const char *qat_alq_struct_name(qat_alq_struct s);

/* How one layer's weights [C_out, C_in, KH, KW] (row-major, as qat's conv
 * stores them; a linear layer's [C_out, C_in] is KH = KW = 1) split into G
 * groups of n. Group g is numbered in the code's order: channel c; kernel
 * c*C_in + d; pixel c*KH*KW + h*KW + w; sub-channel c*S + s. Element j of
 * group g sits at w[qat_alq_group_offset(gp, g, j)]. */
typedef struct {
    qat_alq_struct structure;
    int c_out, c_in, kh, kw;
    int subchannels; /* S (QAT_ALQ_SUBCHANNEL), else 1 */
    size_t n, G;     /* group size and count, n * G = C_out C_in KH KW */
    /* offset(g, j) = (g / per_chan) * chan + (g % per_chan) * step + j * stride */
    size_t per_chan, chan, step, stride;
} qat_alq_grouping;

/* Sets up gp for a weight of ndim (2 or 4) dims `shape`. `subchannels` is
 * read only for QAT_ALQ_SUBCHANNEL (1 there is channel-wise). Errors:
 * QAT_ERR_SHAPE (ndim not 2 or 4, a dimension < 1, a weight count that
 * overflows size_t),
 * QAT_ERR_CONFIG (structure out of range; subchannels < 1 or not dividing
 * C_in: the code's integer division would silently drop weights), each with
 * a message; gp is zeroed on failure. */
qat_status qat_alq_grouping_init(qat_alq_grouping *gp, qat_alq_struct s, int ndim, const int *shape, int subchannels);
/* Offset in the layer's weight of element j < n of group g < G. */
size_t qat_alq_group_offset(const qat_alq_grouping *gp, size_t g, size_t j);
/* Group g of the layer's weight w into out[0..n), and back. */
void qat_alq_gather_group(const qat_alq_grouping *gp, size_t g, const float *w, float *out);
void qat_alq_scatter_group(const qat_alq_grouping *gp, size_t g, const float *in, float *w);
/* Every group: groups[g*n + j] = w[offset(g, j)], and the inverse. A
 * permutation of the n*G values; w and groups must not overlap. */
void qat_alq_gather(const qat_alq_grouping *gp, const float *w, float *groups);
void qat_alq_scatter(const qat_alq_grouping *gp, const float *groups, float *w);

#endif
