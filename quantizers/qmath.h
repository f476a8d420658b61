/* qmath.h: small helpers shared by the quantizer files (not public API). */
#ifndef QAT_QMATH_H
#define QAT_QMATH_H

#include <math.h>
#include <stddef.h>

#include "quantizer.h"

/* round half to even, as torch.round (rintf in the default rounding mode) */
static inline float qat_round(float x) { return rintf(x); }

/* sign with sign(0) = +1: every output is a level of {-1, +1} */
static inline float qat_sign(float x) { return x >= 0.0f ? 1.0f : -1.0f; }

static inline float qat_clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

/* elements per channel: weights are [C, ...] with C = n->channels */
static inline size_t qat_qchan_size(const qat_qnode *n) { return n->in->n / (size_t)n->channels; }

/* the scales kept in the node's buffer (one per channel) */
static inline float *qat_qscale(const qat_qnode *n) { return n->buf->x; }
static inline float *qat_qzero(const qat_qnode *n) { return n->buf->x + n->channels; }
/* method state after the scales and zero points (4 floats) */
static inline float *qat_qextra(const qat_qnode *n) { return n->buf->x + 2 * n->channels; }

/* names of the rounding and activation-range keys (several methods read them) */
extern const char *const qat_rounding_names[2];
extern const char *const qat_range_names[QAT_QRANGE_COUNT];

static inline float qat_mean_abs(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabsf(x[i]);
    return n ? (float)(s / (double)n) : 0.0f;
}

static inline float qat_max_abs(const float *x, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* plain STE with the clipping mask: dx += dy * 1{lo <= x <= hi} */
static inline void qat_ste_mask(const float *restrict x, const float *restrict dy, float *restrict dx, size_t n,
                                float lo, float hi)
{
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (float)((x[i] >= lo) & (x[i] <= hi));
}

/* elementwise work on [b, e) of a node's tensor, split across the graph's
 * threads in blocks (results do not depend on the split) */
typedef void (*qat_qrange_fn)(const qat_tensor *t, size_t b, size_t e);
void qat_qparallel(qat_graph *g, const qat_tensor *t, qat_qrange_fn fn);

#endif
