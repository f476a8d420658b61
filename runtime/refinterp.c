/* refinterp.c: the reference interpreter of a .qnn model, every op
 * straight from its definition (no im2col, no packing): integer only, no
 * malloc, no float, C99, nothing but <stdint.h> and <stddef.h>. It is
 * compiled into the runtime (qatrt_run_reference, which the tests hold
 * against qatrt_run) and it is, text for text, the interpreter of the C
 * source `qat export --format c` writes: export/embed.c copies this file
 * into the exporter at build time, the quoted includes inlined, and the
 * exporter gives the identifiers the model's prefix in place of "qatc"
 * and defines QATC_API static. Tensors are CHW int8 levels (the image
 * uint8), or int32 (a residual stream: REQ, ADD, GAP). */
#include <stddef.h>
#include <stdint.h>

#include "qnn_format.h"
#include "refinterp.h"
#include "softfloat.h"

/* the weight of output channel c at input channel ci, kernel row ky,
 * column kx: weight k = (ky kw + kx) cin + ci of row c, element
 * c K + k of the dense blob (bits, or nibbles, for the packed kernels) */
static uint32_t qatc_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* multi-bit weights (ALQ): the group of the weight, then its planes'
 * coefficients times their signs (docs/format.md) */
static int32_t qatc_mb_weight(const qatc_op *o, int c, int ci, int ky, int kx)
{
    const uint8_t *b = o->wt;
    size_t n = qatc_u32(b + QNN_MB_N), gc = qatc_u32(b + QNN_MB_GC), np = qatc_u32(b + QNN_MB_PLANES);
    size_t T = (size_t)o->kh * (size_t)o->kw;
    size_t tap = (size_t)ky * (size_t)o->kw + (size_t)kx;
    size_t pos = qatc_u32(b + QNN_MB_ORDER) ? tap * (size_t)o->cin + (size_t)ci : (size_t)ci * T + tap;
    size_t I_at = QNN_MB_TABLES + (n ? 0 : 4 * (gc + 1)), g0 = (size_t)c * gc, j = 0, e, len, g;
    size_t chan_at = (I_at + (size_t)o->cout * gc + 3) / 4 * 4, bit0_at = chan_at + 4 * (size_t)o->cout;
    size_t coef_at = bit0_at + (n ? 0 : 4 * (size_t)o->cout), bits_at = coef_at + 2 * np;
    size_t q = qatc_u32(b + chan_at + 4 * (size_t)c), bit = n ? q * n : qatc_u32(b + bit0_at + 4 * (size_t)c);
    int32_t w = 0;
    int i;
    if (n) j = pos / n;
    else while (qatc_u32(b + QNN_MB_TABLES + 4 + 4 * j) <= pos) j++; /* groups of unequal sizes: the offset table */
    e = pos - (n ? j * n : qatc_u32(b + QNN_MB_TABLES + 4 * j));
    for (g = 0; g <= j; g++) {
        len = n ? n : qatc_u32(b + QNN_MB_TABLES + 4 + 4 * g) - qatc_u32(b + QNN_MB_TABLES + 4 * g);
        if (g == j) break;
        q += b[I_at + g0 + g];
        bit += b[I_at + g0 + g] * len;
    }
    for (i = 0; i < b[I_at + g0 + j]; i++, q++, bit += len) {
        int32_t a = (int16_t)(uint16_t)(b[coef_at + 2 * q] | b[coef_at + 2 * q + 1] << 8);
        w += (b[bits_at + (bit + e) / 8] >> ((bit + e) % 8) & 1) ? -a : a;
    }
    return w;
}

static int32_t qatc_weight(const qatc_op *o, int c, int ci, int ky, int kx)
{
    size_t i = (size_t)c * (size_t)o->K + ((size_t)ky * (size_t)o->kw + (size_t)kx) * (size_t)o->cin + (size_t)ci;
    size_t plane = ((size_t)o->cout * (size_t)o->K + 7) / 8;
    int code;
    switch (o->kernel) {
    case QATRT_K_MB:
        return qatc_mb_weight(o, c, ci, ky, kx);
    case QATRT_K_BIN: case QATRT_K_U8B: /* bit set = -1 */
        return (o->wt[i / 8] >> (i % 8) & 1) ? -1 : 1;
    case QATRT_K_TER: case QATRT_K_I8T: /* nonzero plane, then sign plane */
        if (!(o->wt[i / 8] >> (i % 8) & 1)) return 0;
        return (o->wt[plane + i / 8] >> (i % 8) & 1) ? -1 : 1;
    case QATRT_K_U8I8: case QATRT_K_I8I8: case QATRT_K_T32:
        return (int8_t)o->wt[i];
    case QATRT_K_I16: /* little-endian */
        return (int16_t)(uint16_t)(o->wt[2 * i] | o->wt[2 * i + 1] << 8);
    default: /* QATRT_K_P2, a code: 0, or sign bit 8 and magnitude 1 << (code & 7) - 1 */
        code = o->wt[i / 2] >> (4 * (i & 1)) & 15;
        if (!(code & 7)) return 0;
        return (code & 8) ? -(1 << ((code & 7) - 1)) : 1 << ((code & 7) - 1);
    }
}

static int32_t qatc_input(const qatc_op *o, const void *in, int c, int y, int x)
{
    size_t i;
    if (y < 0 || y >= o->h || x < 0 || x >= o->w) return 0;
    i = ((size_t)c * (size_t)o->h + (size_t)y) * (size_t)o->w + (size_t)x;
    if (o->table) return o->table[(size_t)c * 256 + ((const uint8_t *)in)[i]];
    return (o->flags & 1) ? ((const uint8_t *)in)[i] : ((const int8_t *)in)[i];
}

/* (acc mult + bias) >> shift, rounded to nearest, saturated to int32 */
static int32_t qatc_requant(const int32_t *q, int32_t acc)
{
    int64_t v = (int64_t)acc * q[0] + (int64_t)(((uint64_t)(uint32_t)q[3] << 32) | (uint32_t)q[2]);
    if (q[1]) v = (v + ((int64_t)1 << (q[1] - 1))) >> q[1];
    return v > 2147483647 ? 2147483647 : v < -2147483647 - 1 ? -2147483647 - 1 : (int32_t)v;
}

/* the count of channel c's thresholds s passes, as a level */
static int8_t qatc_level(const qatc_op *o, int c, int32_t s)
{
    const int32_t *t = o->thr + (size_t)c * (size_t)o->nthr;
    int j, n = 0;
    for (j = 0; j < o->nthr; j++) n += t[j] <= s;
    return o->levels[n];
}

static void qatc_conv(const qatc_op *o, const void *in, void *out, int32_t *logits)
{
    int c, oy, ox, ci, ky, kx, j;
    for (c = 0; c < o->cout; c++)
        for (oy = 0; oy < o->oh; oy++)
            for (ox = 0; ox < o->ow; ox++) {
                int32_t acc = 0;
                for (ci = 0; ci < o->cin; ci++)
                    for (ky = 0; ky < o->kh; ky++)
                        for (kx = 0; kx < o->kw; kx++)
                            acc += qatc_input(o, in, ci, oy * o->stride - o->pad + ky, ox * o->stride - o->pad + kx) *
                                   qatc_weight(o, c, ci, ky, kx);
                j = (c * o->oh + oy) * o->ow + ox;
                if (o->stage == QATRT_STAGE_LOGITS)
                    logits[c] = qatc_requant(o->req + 4 * c, acc);
                else if (o->stage == QATRT_STAGE_F32)
                    ((int32_t *)out)[j] = qatc_f32_stage(o->req + 4 * c, o->flags & ~1, acc);
                else
                    ((int8_t *)out)[j] = qatc_level(o, c, o->flip && (o->flip[c / 8] >> (c % 8) & 1) ? -acc : acc);
            }
}

/* an X64 op: int64 inputs (the image through its table, or a stream's
 * floats in fixed point 2^table[0], saturated to 2^table[1]) times int64
 * weights, the exact sum rounded to float32 once: the F32 stage's keys,
 * or the logits */
static void qatc_conv64(const qatc_op *o, const void *in, int32_t *out, int32_t *logits)
{
    int c, oy, ox, ci, ky, kx;
    for (c = 0; c < o->cout; c++)
        for (oy = 0; oy < o->oh; oy++)
            for (ox = 0; ox < o->ow; ox++) {
                int64_t acc = 0, v;
                int32_t key;
                for (ci = 0; ci < o->cin; ci++)
                    for (ky = 0; ky < o->kh; ky++)
                        for (kx = 0; kx < o->kw; kx++) {
                            int y = oy * o->stride - o->pad + ky, x = ox * o->stride - o->pad + kx;
                            size_t i = ((size_t)ci * (size_t)o->h + (size_t)y) * (size_t)o->w + (size_t)x, wi;
                            if (y < 0 || y >= o->h || x < 0 || x >= o->w) continue;
                            v = (o->flags & 1) ? o->table[(size_t)ci * 256 + ((const uint8_t *)in)[i]]
                                               : qatc_key_fixed(((const int32_t *)in)[i], o->table[0], o->table[1]);
                            wi = (size_t)c * (size_t)o->K + ((size_t)ky * (size_t)o->kw + (size_t)kx) * (size_t)o->cin + (size_t)ci;
                            acc += v * ((o->flags & QATC_X64_MB) ? qatc_mb_weight(o, c, ci, ky, kx)
                                                                 : qatc_wide_weight(o->wt, wi, o->nthr));
                        }
                key = qatc_f32_stage(o->req + 4 * c, o->flags & ~1, acc);
                if (o->stage == QATRT_STAGE_LOGITS) logits[c] = key;
                else out[((size_t)c * (size_t)o->oh + (size_t)oy) * (size_t)o->ow + (size_t)ox] = key;
            }
}

/* 1 when op i gives a stream (int32 keys): a F32 stage, ADD, GAP, or a max
 * pool of one. qatrt_op_i32 (qatrt.h) says the same from the reader's
 * i32 flag; this file is also the generated C source, which has no
 * qatrt.h, so it follows the chain of pools instead. */
static int qatc_gives_i32(const qatc_op *ops, int i)
{
    while (ops[i].type == QATRT_OP_MAXPOOL) i = ops[i].in0;
    return ops[i].type == QATRT_OP_ADD || ops[i].type == QATRT_OP_GAP ||
           (ops[i].type == QATRT_OP_CONV && ops[i].stage == QATRT_STAGE_F32);
}

/* max over windows of int8 levels, or of a stream's int32 keys (i32: they
 * order as their floats) */
static void qatc_maxpool(const qatc_op *o, int i32, const void *in, void *out)
{
    int c, oy, ox, ky, kx;
    size_t at;
    for (c = 0; c < o->cin; c++)
        for (oy = 0; oy < o->oh; oy++)
            for (ox = 0; ox < o->ow; ox++) {
                int32_t best = i32 ? INT32_MIN : -128;
                for (ky = 0; ky < o->kh; ky++)
                    for (kx = 0; kx < o->kw; kx++) {
                        int32_t v;
                        at = ((size_t)c * (size_t)o->h + (size_t)(oy * o->stride + ky)) * (size_t)o->w +
                                    (size_t)(ox * o->stride + kx);
                        v = i32 ? ((const int32_t *)in)[at] : ((const int8_t *)in)[at];
                        if (v > best) best = v;
                    }
                at = ((size_t)c * (size_t)o->oh + (size_t)oy) * (size_t)o->ow + (size_t)ox;
                if (i32) ((int32_t *)out)[at] = best;
                else ((int8_t *)out)[at] = (int8_t)best;
            }
}

/* out = a + b sub-sampled by the stride into the first channels (ADD) */
static void qatc_add(const qatc_op *o, const qatc_op *o1, const int32_t *a, const int32_t *b, int32_t *out)
{
    int c, y, x;
    for (c = 0; c < o->cin; c++)
        for (y = 0; y < o->h; y++)
            for (x = 0; x < o->w; x++) {
                int i = (c * o->h + y) * o->w + x;
                out[i] = c < o1->cout ? qatc_key_add(a[i], b[(c * o1->oh + y * o->stride) * o1->ow + x * o->stride]) : a[i];
                if ((o->flags & QATC_F32_RELU) && out[i] < 0) out[i] = 0;
            }
}

/* per channel the mean over the map (GAP, 2^k values) */
static void qatc_gap(const qatc_op *o, const int32_t *in, int32_t *out)
{
    int c, k = 0;
    while ((1L << k) < (long)o->h * o->w) k++;
    for (c = 0; c < o->cin; c++) out[c] = qatc_key_mean(in + (long)c * o->h * o->w, (long)o->h * o->w, 1, k);
}

QATC_API void qatc_run_ops(const qatc_op *ops, int nops, size_t act_bytes, const uint8_t *image,
                           int32_t *logits, void *workspace)
{
    int8_t *buf = (int8_t *)workspace;
    int i;
    for (i = 0; i < nops; i++) {
        const qatc_op *o = &ops[i];
        const void *in = o->in0 < 0 ? (const void *)image : (const void *)(buf + (size_t)ops[o->in0].slot * act_bytes);
        int8_t *out = buf + (size_t)o->slot * act_bytes;
        size_t j, n = (size_t)o->cout * (size_t)o->oh * (size_t)o->ow;
        if (o->type == QATRT_OP_LUT) {
            size_t hw = (size_t)o->h * (size_t)o->w;
            for (j = 0; j < (size_t)o->cin * hw; j++) out[j] = o->lut[(j / hw) * 256 + ((const uint8_t *)in)[j]];
        } else if (o->type == QATRT_OP_MAXPOOL) {
            qatc_maxpool(o, qatc_gives_i32(ops, o->in0), in, out);
        } else if (o->type == QATRT_OP_ADD) {
            qatc_add(o, &ops[o->in1], (const int32_t *)in, (const int32_t *)(const void *)(buf + (size_t)ops[o->in1].slot * act_bytes),
                     (int32_t *)(void *)out);
        } else if (o->type == QATRT_OP_GAP) {
            qatc_gap(o, (const int32_t *)in, (int32_t *)(void *)out);
        } else if (o->type == QATRT_OP_QUANT) {
            for (j = 0; j < n; j++) out[j] = qatc_level(o, (int)(j / ((size_t)o->h * (size_t)o->w)), ((const int32_t *)in)[j]);
        } else if (o->kernel == QATRT_K_X64) {
            qatc_conv64(o, in, (int32_t *)(void *)out, logits);
        } else {
            qatc_conv(o, in, out, logits);
        }
    }
}
