/* qatrt.h: the integer-only inference runtime. It reads a .qnn model (the
 * format is docs/format.md) and runs it with integer arithmetic only: the
 * whole library is compiled with -mgeneral-regs-only, so a float anywhere
 * fails the build. It depends on libc alone, never allocates (the caller
 * passes the model's bytes and a workspace of qatrt_workspace_size bytes),
 * never prints and never exits: every function returns a status, and a
 * failed load fills a message that names the byte offset at fault.
 *
 * A model is a chain of ops on one image (or a batch of images, one after
 * another in memory). Activations are NHWC: a pixel's channels together.
 *   LUT      uint8 image -> int8 levels, one 256-entry table per channel
 *            (a quantized first input: normalisation and quantizer folded)
 *   CONV     convolution / fully connected layer (a linear layer is a
 *            convolution whose kernel covers its whole input) as one integer
 *            GEMM (kern.h) whose K runs over the kernel taps in (ky, kx, c)
 *            order, followed by a stage:
 *              THRESH  per output channel, the accumulator (negated when the
 *                      channel's flip bit is set: a negative BN scale the
 *                      exporter could not fold into the weights) is
 *                      compared with nthr ascending thresholds; the count of
 *                      thresholds passed indexes the op's level table
 *                      (int8 levels, ascending). BN, bias, scales, ReLU /
 *                      HardTanh and the next quantizer are all folded in.
 *              LOGITS  int32 logits = (acc * mult[c] + bias[c]) >> shift[c],
 *                      rounded to nearest (dyadic requantization in int64)
 *              F32     a stream: acc 2^e, + bias, BN, ReLU in float32
 *                      arithmetic done with integers (softfloat.h), as the
 *                      trained model computes its residual stream
 *   MAXPOOL  max over windows of levels (exact after THRESH because the
 *            folded function is monotone; docs/format.md explains why)
 *   ADD      stream + stream, the second input sub-sampled by the stride and
 *            added to the first channels (ResNet's option-A shortcut)
 *   GAP      the stream's mean over the map per channel (a double sum)
 *   QUANT    stream -> levels through per-channel thresholds on its keys
 *            (the next layer's input quantizer)
 * A stream is float32 values as int32 keys, bit for bit the trained
 * model's residual stream (qnn_format.h).
 * Ops read the image or earlier ops' outputs (a DAG, .qnn v3; v2 files are
 * chains); the last is a CONV with LOGITS. */
#ifndef QATRT_H
#define QATRT_H

#include <stddef.h>
#include <stdint.h>

#include "kern.h"
#include "qnn_format.h"

#define QATRT_MAX_OPS 256
#define QATRT_MAX_DIM 65536    /* any channel count, height, width */
#define QATRT_MAX_LEVELS 256
#define QATRT_F32_TABLE_MAX 4096 /* a F32 stage with |acc| <= this runs from a table made once */

typedef enum {
    QATRT_OK = 0,
    QATRT_ERR_FORMAT,   /* the bytes are not a valid .qnn (message: byte offset, what was expected) */
    QATRT_ERR_CHECKSUM, /* the CRC32 does not match */
    QATRT_ERR_VERSION,  /* a .qnn version this runtime does not read */
    QATRT_ERR_ARG,      /* a bad argument (size, NULL, batch) */
    QATRT_ERR_SPACE,    /* the workspace is too small or misaligned */
    QATRT_ERR_UNPREPARED /* the workspace was not prepared for this model (qatrt_prepare) */
} qatrt_status;

/* qatrt_op_type, qatrt_kernel, qatrt_stage: values stored in the file */


typedef struct {
    uint32_t off, size; /* bytes, from the start of the file */
} qatrt_blob;

typedef struct {
    qatrt_op_type type;
    int in_u8;          /* the op reads the uint8 image (else int8 levels) */
    int i32;            /* MAXPOOL: it pools a stream (int32 keys), giving a stream; else levels */
    int cin, h, w;      /* input shape (stored HWC) */
    int cout, oh, ow;   /* output shape */
    int kh, kw, stride, pad;
    qatrt_kernel kernel;
    qatrt_stage stage;
    int nthr;           /* THRESH: thresholds per channel (levels = nthr + 1) */
    int K;              /* kh * kw * cin: the products each output sums */
    int in0, in1;       /* the ops whose outputs it reads: in0 -1 for the image, in1 -1 for none */
    int slot;           /* the activation buffer its output goes to (reused once every reader ran) */
    /* blobs, resolved to pointers into the model's bytes */
    const void *weights;      /* per output channel, in the kernel's encoding */
    const int32_t *bsum;      /* I8I8: sum of each channel's weights (may be NULL) */
    const int32_t *thr;       /* THRESH: per channel t_1..t_nthr */
    const uint8_t *flip;      /* THRESH: bit c set: negate channel c's accumulator (NULL: none) */
    const int8_t *levels;     /* THRESH: nthr + 1 ascending levels */
    const int32_t *req;       /* LOGITS: per channel [mult, shift, bias_lo, bias_hi]; F32: [e, bias, a, b] */
    int f32flags;             /* F32: QATC_F32_BIAS | QATC_F32_BN | QATC_F32_RELU (softfloat.h) */
    const int8_t *lut;        /* LUT: cin x 256 */
    const int32_t *table;     /* T32 CONV: cin x 256, the image's pixel values as the kernel reads them */
    size_t wrow;              /* bytes per output channel's weights as the kernel reads them */
    size_t wbytes;            /* bytes of the weights blob in the file */
    int prep;                 /* 1: the file's dense bits are laid out in the workspace before the
                               * first run: rows of wrow bytes (ternary, power-of-two), the panels
                               * of kern.h (binary) or the lookup layout of kern_u8bpk.h (uint8 x
                               * binary) */
    size_t prep_off;          /* where, in the workspace's prepared area */
    qatrt_mb mb;              /* MB: the weights blob, parsed */
    int mb_order;             /* MB: a row's element order: 0 (c, ky, kx), 1 (ky, kx, c) */
    int x64_mb;               /* X64: the weights are a multi-bit blob (mb, mb_order; FLAGS bit 5) */
    int pan;                  /* 1: int8 weights (uint8 / int8 x int8, K > QATRT_I8_SMALL_K) also laid
                               * out as the panels of kern.h, at pan_off, for tables that prefer
                               * them (i8panel) */
    size_t pan_off;
    int64_t accmax;           /* CONV: |acc| <= accmax (K max|input| max|weight|) */
    int padfix;               /* BIN with padding: a padded tap reads +1 (bit 0), so each border
                               * output takes back its channel's weight sum over the padded taps:
                               * cout x kh kw int32 tap sums at padfix_off in the prepared area */
    size_t padfix_off;
    int t16, t16_shift;       /* T32 whose table values are int16 times 2^t16_shift: run as int16 x
                               * int16 (i16gemm) on a prepared int16 table and int16 weights at
                               * t16_off, the accumulators shifted back */
    size_t t16_off;
    int f32tab;               /* F32 with a small accmax: the stage for every acc, cout x (2 accmax
                               * + 1) keys at f32tab_off in the prepared area */
    size_t f32tab_off;
} qatrt_op;

/* the op's output is a stream (a F32 stage, ADD, GAP, a max pool of one), else int8 levels or packed signs */
static inline int qatrt_op_i32(const qatrt_op *op)
{
    return op->type == QATRT_OP_ADD || op->type == QATRT_OP_GAP || (op->type == QATRT_OP_MAXPOOL && op->i32) ||
           (op->type == QATRT_OP_CONV && op->stage == QATRT_STAGE_F32);
}

typedef struct {
    int c, h, w;        /* input image */
    int nclass;
    int nops;
    int nslots;         /* activation buffers the ops' outputs share */
    qatrt_op ops[QATRT_MAX_OPS];
    const void *data;   /* the file's bytes */
    size_t size;        /* bytes of the file */
    uint32_t crc;
    size_t prep_size;   /* bytes of the prepared weights (a multiple of QATRT_ALIGN) */
} qatrt_model;

typedef struct {
    char msg[256];
} qatrt_error;

/* Parses and checks size bytes at data (8-byte aligned; the model keeps
 * pointers into them, so they must outlive it). Every size, offset, shape and
 * count is checked before use; on failure err (may be NULL) says which byte
 * and what was expected. */
qatrt_status qatrt_load(qatrt_model *m, const void *data, size_t size, qatrt_error *err);

/* Bytes of workspace qatrt_run needs for batches of up to `batch` images
 * (0 when the size would overflow). The file keeps bit-packed weights dense
 * (no padding); qatrt_prepare lays them out in the workspace as the kernels
 * read them (rows, panels or lookup units), and every run on that
 * workspace (any batch up to its size) reads them there. */
size_t qatrt_workspace_size(const qatrt_model *m, int batch);

/* Lays out m's weights at the start of ws (at least
 * qatrt_workspace_size(m, 1) bytes, 64-byte aligned) and marks ws as
 * prepared for m. Call it on every workspace before its first run, and
 * again whenever the memory has held anything else since (another model,
 * other data, a free and a new allocation): qatrt_run only checks the mark,
 * and memory that once held a prepared workspace may still carry one. */
qatrt_status qatrt_prepare(const qatrt_model *m, void *ws, size_t ws_size);

/* Runs n images (n * c * h * w bytes, CHW each, as a framework holds them;
 * the runtime turns them into HWC itself) into n * nclass int32
 * logits. ws: at least qatrt_workspace_size(m, n) bytes, 64-byte aligned,
 * prepared for m by qatrt_prepare (else QATRT_ERR_UNPREPARED).
 * k: the kernel table (qatrt_kernels_for(qatrt_isa_select(NULL))). */
qatrt_status qatrt_run(const qatrt_model *m, const qatrt_kernels *k, void *ws, size_t ws_size, const uint8_t *images,
                       int n, int32_t *logits);

/* The reference interpreter (refinterp.c, the one `qat export --format c`
 * writes out): every op from its definition, one image at a time, on ws
 * of qatrt_reference_workspace(m) bytes (8-byte aligned); the tests hold
 * qatrt_run against it. */
size_t qatrt_reference_workspace(const qatrt_model *m);
qatrt_status qatrt_run_reference(const qatrt_model *m, void *ws, size_t ws_size, const uint8_t *images, int n,
                                 int32_t *logits);

/* CRC-32 (IEEE 802.3, the zlib one) of n bytes, continuing from crc (0 to start) */
uint32_t qatrt_crc32(uint32_t crc, const void *data, size_t n);

/* bytes of one output channel's weights (taps = kh * kw kernel positions
 * of cin channels each) as kernel k reads them; for the binary kernel each
 * tap's cin bits are padded to whole bytes and the row to whole words */
size_t qatrt_weight_row(qatrt_kernel k, int taps, int cin);
/* bytes of the weights blob in the file: cout rows of K weights, dense (bit
 * streams for binary, ternary and power-of-two; docs/format.md) */
size_t qatrt_weight_bytes(qatrt_kernel k, int cout, int K);

const char *qatrt_status_name(qatrt_status s);
const char *qatrt_kernel_name(qatrt_kernel k);

#endif
