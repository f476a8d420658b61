/* dst.h: DST's Lloyd error (dst-low-bit-strategy.txt, Eq. 3-6, Table 1). */
#ifndef QAT_DST_H
#define QAT_DST_H

#include <stdint.h>

#include "quantizer.h"

extern const qat_quantizer qat_q_dst;
/* A DST weight node's states, one int8 per weight: w = s 2^p (Sec. 3.3). */
int8_t *qat_dst_states(const qat_qnode *n);

/* Expected squared error over x >= 0 of the power-of-two quantizer with
 * levels {0} and {q2 2^k, k = 0..bits-2}, thresholds at the midpoints, for a
 * standard normal x. bits >= 2, q2 > 0. */
double qat_dst_lloyd_error(int bits, double q2);
/* The q2 with the least error (written to *q2) and that error. */
double qat_dst_lloyd_best(int bits, double *q2);

#endif
