/* gradcomm.h: the codecs of the gradient exchange between data-parallel
 * ranks (grad_comm = fp32 | fp16 | int8 | 1bit in [net]) and their error
 * feedback. Pure C, no transport: the trainer encodes a rank's gradient
 * block, its communication hook (train/trainer.h) gathers every rank's
 * payload, and each rank decodes and sums them in rank order.
 *
 * Error feedback (1-bit SGD, Seide et al. 2014; also the lossy int8/fp16
 * codes): the rank encodes v = g + e, where e is its residual, and keeps
 * e = v - decode(encode(v)) for the next step, so what the code drops is
 * sent later instead of lost. The residual is per rank and lives across
 * steps (not in checkpoints: a resumed run starts it at zero). */
#ifndef QAT_GRADCOMM_H
#define QAT_GRADCOMM_H

#include <stddef.h>
#include <stdint.h>

#include "qat_util.h"

typedef enum {
    QAT_GRADCOMM_FP32 = 0, /* exact: an allreduce of the float block */
    QAT_GRADCOMM_FP16,     /* IEEE half, round to nearest even (overflow saturates to +-65504) */
    QAT_GRADCOMM_INT8,     /* per block of QAT_GRADCOMM_BLOCK: float scale max|v|/127, int8 codes */
    QAT_GRADCOMM_1BIT,     /* per block: float mean |v|, one sign bit per value (0 is +) */
    QAT_GRADCOMM_COUNT
} qat_gradcomm_kind;

/* "fp32", "fp16", "int8", "1bit" (index = kind), for the cfg parser */
extern const char *const qat_gradcomm_names[QAT_GRADCOMM_COUNT];

#define QAT_GRADCOMM_BLOCK 256

/* Bytes of the payload of n values (a multiple of 4). */
size_t qat_gradcomm_bytes(qat_gradcomm_kind k, size_t n);

/* Encodes v = g + e (e NULL: v = g) into out (qat_gradcomm_bytes bytes) and,
 * with e, leaves e = v - decode(out). fp32 copies g (and leaves e alone). A
 * NaN or Inf in a block makes that block decode to NaN (so a non-finite
 * gradient reaches every rank); e is not updated for such a block. */
void qat_gradcomm_encode(qat_gradcomm_kind k, const float *g, float *e, size_t n, void *out);

/* acc[i] += decode(in)[i] for i < n. */
void qat_gradcomm_decode_add(qat_gradcomm_kind k, const void *in, size_t n, float *acc);

/* float <-> IEEE binary16 bits, round to nearest even; exposed for tests */
uint16_t qat_gradcomm_f16(float f);
float qat_gradcomm_f32(uint16_t h);

/* The exchange's buffers, allocated once (nothing per step). */
typedef struct {
    qat_gradcomm_kind kind;
    int ranks;
    size_t n;            /* floats per step */
    size_t bytes;        /* payload bytes per rank */
    float *block;        /* n: the rank's gradients packed, then the sum */
    float *resid;        /* n: error feedback, zero at start (lossy kinds only) */
    unsigned char *enc;  /* bytes: this rank's payload */
    unsigned char *all;  /* ranks * bytes: every rank's payload, rank order (enc, all, resid: lossy kinds) */
} qat_gradcomm;

/* QAT_ERR_MEMORY on failure (c zeroed). */
qat_status qat_gradcomm_init(qat_gradcomm *c, qat_gradcomm_kind k, size_t n, int ranks);
/* safe on a zeroed struct */
void qat_gradcomm_free(qat_gradcomm *c);

#endif
