/* refinterp.h: the reference interpreter's op table (refinterp.c). */
#ifndef QATC_REFINTERP_H
#define QATC_REFINTERP_H

#include <stddef.h>
#include <stdint.h>

/* one op of a .qnn file, its blobs as pointers (qnn_format.h values) */
typedef struct {
    int type, flags, cin, h, w, cout, oh, ow, kh, kw, stride, pad, kernel, stage, nthr, K; /* flags: QNN_OP_FLAGS */
    int in0, in1, slot; /* the ops it reads (in0 -1: the image; in1 -1: none), the buffer its output goes to */
    const uint8_t *wt, *flip;
    const int32_t *thr, *req;
    const int8_t *levels, *lut;
    const int32_t *table; /* QATRT_K_T32: the image's pixel values per channel (256 each) */
} qatc_op;

#ifndef QATC_API
#define QATC_API
#endif

/* Runs nops ops on one image (c h w bytes, CHW) into the last op's logits.
 * workspace: nslots act_bytes bytes, act_bytes at least every op's output
 * (cout oh ow bytes, 4 each for an int32 output: a REQ stage, ADD, GAP, a
 * max pool of one), a multiple of 8; op i's output is buffer slot. */
QATC_API void qatc_run_ops(const qatc_op *ops, int nops, size_t act_bytes, const uint8_t *image,
                           int32_t *logits, void *workspace);

#endif
