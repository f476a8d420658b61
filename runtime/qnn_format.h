/* qnn_format.h: the .qnn layout as byte offsets, the one description the
 * reader (runtime/qnn.c), the writer (export/lower.c) and the C-source
 * generator share; docs/format.md explains each field. Little-endian
 * throughout. */
#ifndef QNN_FORMAT_H
#define QNN_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* the file: header, op records, blobs (each aligned), CRC-32 */
#define QATRT_MAGIC "qat.qnn"  /* 8 bytes with its NUL */
#define QATRT_VERSION 4     /* v4: compact op records, blobs one after another (docs/format.md);
                             * v3 (ops name their inputs, a DAG) and v2 (chains) files still load */
#define QATRT_VERSION_MIN 2
#define QATRT_HEADER_SIZE 64
#define QATRT_OP_SIZE 128      /* v2, v3: an op record */
#define QATRT_ALIGN 64         /* v2, v3: every blob starts at a multiple of this (and the workspace's areas) */
#define QATRT_OP4_SIZE 32      /* v4: an op record's fixed part; a u32 size per blob it has follows */
#define QATRT_ALIGN4 4         /* v4: every blob starts at a multiple of this */

/* an op's type */
typedef enum {
    QATRT_OP_CONV = 1,
    QATRT_OP_MAXPOOL = 2,
    QATRT_OP_LUT = 3,
    QATRT_OP_ADD = 4,   /* stream + stream (a residual add; IN1 sub-sampled by STRIDE, into the first channels) */
    QATRT_OP_GAP = 5,   /* stream -> stream per channel: the mean over the map (2^k values) */
    QATRT_OP_QUANT = 6  /* stream -> levels through per-channel thresholds on its keys (THR, NTHR, LEVELS) */
} qatrt_op_type;
#define QATRT_OP_LAST QATRT_OP_QUANT

/* which GEMM a CONV runs; it fixes how weights are stored and how the
 * input is laid out for the kernel (kern.h encodings) */
typedef enum {
    QATRT_K_BIN = 1, /* +-1 inputs x binary weights: packed bits, XOR-popcount (zero padding: a padded tap
                      * reads +1, border outputs take the padded taps' weight sums back);
                      * each tap's channels padded to whole bytes (docs/format.md) */
    QATRT_K_TER,     /* {-1, 0, 1} inputs x ternary or binary weights: two bit planes */
    QATRT_K_I8T,     /* int8 inputs x ternary weights (bit planes) */
    QATRT_K_U8I8,    /* uint8 image x int8 weights */
    QATRT_K_I8I8,    /* int8 inputs x int8 weights */
    QATRT_K_I16,     /* uint8 / int8 inputs widened x int16 weights */
    QATRT_K_P2,      /* int8 inputs x power-of-two codes (shift-add) */
    QATRT_K_U8B,     /* uint8 image x binary weights (a bit each; a first layer with large K) */
    QATRT_K_MB,      /* int8 inputs (or the uint8 image) x multi-bit binary weights (ALQ): groups of
                      * sign planes with int16 coefficients (kern.h qatrt_mb, docs/format.md) */
    QATRT_K_T32,     /* the uint8 image through a per-channel int32 table (the normalised pixel in fixed
                      * point, so zero padding is exact) x int8 weights: a first layer with padding or
                      * per-channel normalisation */
    QATRT_K_X64,     /* a layer the model computes in float (float weights, or a float input): int64
                      * operands and accumulators, the sum exact, rounded to float32 once in its stage
                      * (F32, or LOGITS as stream keys). Input: the uint8 image through a per-channel
                      * int32 table (LUT: cin x 256, as T32), or a stream, its floats in fixed point
                      * (LUT: int32 [F, L]: x 2^F rounded to nearest even, saturated to +-(2^L - 1));
                      * weights of NTHR = b bits each (1..64, two's complement), bit-packed dense:
                      * qatc_wide_weight (docs/format.md); or, FLAGS bit 5 (QATC_X64_MB) and NTHR
                      * 0, a multi-bit weights blob as K_MB's (ALQ's planes and coefficients) */
    QATRT_K_COUNT
} qatrt_kernel;

/* what a CONV does with its accumulators */
typedef enum {
    QATRT_STAGE_THRESH = 1, /* levels through per-channel thresholds */
    QATRT_STAGE_LOGITS = 2, /* the model's int32 logits by dyadic requantization (the last op); an X64
                             * op's logits are the F32 stage's keys (REQ and FLAGS as F32's) */
    QATRT_STAGE_F32 = 3     /* a stream: per channel x = acc 2^e, then + bias, * a + b, max(x, 0) as
                             * FLAGS bits 1..3 say, in float32 arithmetic done with integers
                             * (runtime/softfloat.h); REQ holds [e, bias, a, b] per channel */
} qatrt_stage;
/* A stream tensor is float32 values as int32 keys (softfloat.h qatc_key:
 * a key orders as its float), exactly the trained model's residual
 * stream: ADD and GAP compute as its shortcut and global pool do. */

/* the file header (QATRT_HEADER_SIZE bytes) */
enum {
    QNN_H_MAGIC = 0,       /* 8 bytes: QATRT_MAGIC with its NUL */
    QNN_H_VERSION = 8,     /* u32 */
    QNN_H_HEADER_SIZE = 12, /* u32: QATRT_HEADER_SIZE */
    QNN_H_OP_SIZE = 16,    /* u32: QATRT_OP_SIZE */
    QNN_H_NOPS = 20,       /* u32: op records after the header */
    QNN_H_C = 24,          /* u32: the image's channels, height, width */
    QNN_H_H = 28,
    QNN_H_W = 32,
    QNN_H_NCLASS = 36,     /* u32: logits */
    QNN_H_FILE_SIZE = 40,  /* u64: the whole file, checksum included */
    QNN_H_RESERVED = 48    /* zero up to QATRT_HEADER_SIZE */
};

/* an op record (QATRT_OP_SIZE bytes) */
enum {
    QNN_OP_TYPE = 0,   /* u32 qatrt_op_type */
    QNN_OP_FLAGS = 4,  /* u32: bit 0, the op reads the uint8 image; bits 1..4, a F32 stage's bias, BN, ReLU, float scale; an ADD's bit 3, a ReLU after it; an X64 op's bit 5 (QATC_X64_MB), its weights a multi-bit blob */
    QNN_OP_CIN = 8,    /* u32 x 6: input channels, height, width; output channels, height, width */
    QNN_OP_H = 12,
    QNN_OP_W = 16,
    QNN_OP_COUT = 20,
    QNN_OP_OH = 24,
    QNN_OP_OW = 28,
    QNN_OP_KH = 32,    /* u32 x 4: kernel height, width, stride, zero padding */
    QNN_OP_KW = 36,
    QNN_OP_STRIDE = 40,
    QNN_OP_PAD = 44,
    QNN_OP_KERNEL = 48, /* u32 qatrt_kernel (CONV) */
    QNN_OP_STAGE = 52,  /* u32 qatrt_stage (CONV) */
    QNN_OP_NTHR = 56,   /* u32: thresholds per channel (THRESH) */
    QNN_OP_IN0 = 60,    /* u32 (v3): the input, 0 the image, k op k - 1's output (k - 1 < this op); v2: zero */
    /* blobs: u32 offset from the start of the file, u32 size */
    QNN_OP_WEIGHTS = 64,
    QNN_OP_BSUM = 72,
    QNN_OP_THR = 80,
    QNN_OP_LEVELS = 88,
    QNN_OP_REQ = 96,
    QNN_OP_LUT = 104,
    QNN_OP_FLIP = 112,
    QNN_OP_BLOBS_END = 120,
    QNN_OP_IN1 = 120,   /* u32 (v3): a second input as IN0 (ADD only; 0: none); v2: zero */
    QNN_OP_RES1 = 124   /* zero up to QATRT_OP_SIZE */
};

/* a v4 op record: the same fields, narrower, and no blob offsets (each op's
 * blobs follow the previous op's, in the order WEIGHTS, BSUM, THR, LEVELS,
 * REQ, LUT, FLIP of the v3 record, each at the next multiple of
 * QATRT_ALIGN4, zeros between) */
enum {
    QNN_OP4_TYPE = 0,    /* u8 */
    QNN_OP4_FLAGS = 1,   /* u8 */
    QNN_OP4_KERNEL = 2,  /* u8 */
    QNN_OP4_STAGE = 3,   /* u8 */
    QNN_OP4_CIN = 4,     /* u16 x 6: input channels, height, width; output channels, height, width */
    QNN_OP4_H = 6,
    QNN_OP4_W = 8,
    QNN_OP4_COUT = 10,
    QNN_OP4_OH = 12,
    QNN_OP4_OW = 14,
    QNN_OP4_KH = 16,     /* u16 x 4: kernel height, width, stride, zero padding */
    QNN_OP4_KW = 18,
    QNN_OP4_STRIDE = 20,
    QNN_OP4_PAD = 22,
    QNN_OP4_NTHR = 24,   /* u16 */
    QNN_OP4_IN0 = 26,    /* u16: as QNN_OP_IN0 */
    QNN_OP4_IN1 = 28,    /* u16: as QNN_OP_IN1 */
    QNN_OP4_BLOBS = 30,  /* u16: bit j, the op has blob j (0 WEIGHTS .. 6 FLIP); bits 7..15 zero */
    QNN_OP4_SIZES = 32   /* u32 per blob it has, in that order (never 0) */
};
#define QNN_NBLOBS 7

/* FLAGS bit 5 of an X64 op: its weights blob is a multi-bit one (QNN_MB_*
 * below, as QATRT_K_MB's), its NTHR 0 */
#define QATC_X64_MB 32

/* an X64 op's weight i (row-major, cout rows of K in (ky, kx, c) order):
 * bits [i b, i b + b) of the blob, little-endian bit order, sign-extended */
static inline int64_t qatc_wide_weight(const uint8_t *p, size_t i, int b)
{
    size_t at = i * (size_t)b;
    uint64_t v = 0;
    int k;
    for (k = b - 1; k >= 0; k--) v = v << 1 | (uint64_t)(p[(at + (size_t)k) / 8] >> ((at + (size_t)k) % 8) & 1);
    if (b < 64 && (v >> (b - 1) & 1)) v |= ~(uint64_t)0 << b;
    return (int64_t)v;
}
#define QNN_OP4_MAX_FIELD 65535 /* a v4 field's largest value */

/* the multi-bit weights blob's header (kernel QATRT_K_MB) */
enum {
    QNN_MB_N = 0,       /* u32: elements per group, 0: unequal groups (the offset table) */
    QNN_MB_GC = 4,      /* u32: groups per channel */
    QNN_MB_ORDER = 8,   /* u32: a row's element order, 0 (c, ky, kx) or 1 (ky, kx, c) */
    QNN_MB_IMAX = 12,   /* u32: planes per group at most */
    QNN_MB_PLANES = 16, /* u32: planes in all */
    QNN_MB_RESERVED = 20,
    QNN_MB_TABLES = 32  /* the offset table (n = 0), then the bitwidths */
};

#endif
