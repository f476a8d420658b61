/* interp.c: runs a loaded .qnn model on a batch of uint8 images. Each CONV
 * lays its input out as rows of the kernel's operand encoding (im2col: one
 * row per output position of every image), runs one GEMM for the whole
 * batch and applies its stage; activations between ops are int8 levels in
 * CHW order, one image after another. Integer arithmetic only. */
#include <string.h>

#include "qatrt.h"

#define ALIGN_UP(x) (((x) + (size_t)QATRT_ALIGN - 1) & ~((size_t)QATRT_ALIGN - 1))

static size_t kwords(const qatrt_op *op) { return ((size_t)op->K + 63) / 64; }

/* bytes of one im2col row (one output position) in the kernel's encoding */
static size_t a_row(const qatrt_op *op)
{
    switch (op->kernel) {
    case QATRT_K_BIN: return kwords(op) * 8;
    case QATRT_K_TER: return 2 * kwords(op) * 8;
    case QATRT_K_I16: return 2 * (size_t)op->K;
    default: return (size_t)op->K;
    }
}

/* a linear layer over its whole input: the input itself is the only row */
static int whole_input(const qatrt_op *op)
{
    return op->kh == op->h && op->kw == op->w && op->pad == 0;
}

typedef struct {
    size_t act, col, acc, gather; /* bytes per image (col, acc) and per row (gather) */
} sizes;

static sizes need(const qatrt_model *m)
{
    sizes s = {0, 0, 0, 0};
    for (int i = 0; i < m->nops; i++) {
        const qatrt_op *op = &m->ops[i];
        size_t in = (size_t)op->cin * op->h * op->w, out = (size_t)op->cout * op->oh * op->ow;
        if (in > s.act) s.act = in;
        if (out > s.act) s.act = out;
        if (op->type != QATRT_OP_CONV) continue;
        size_t P = (size_t)op->oh * op->ow;
        if (P * a_row(op) > s.col) s.col = P * a_row(op);
        if (P * op->cout * 4 > s.acc) s.acc = P * op->cout * 4;
        if ((size_t)op->K > s.gather) s.gather = (size_t)op->K;
    }
    return s;
}

size_t qatrt_workspace_size(const qatrt_model *m, int batch)
{
    if (!m || m->nops < 1 || batch < 1 || batch > (1 << 20)) return 0;
    sizes s = need(m);
    size_t n = (size_t)batch;
    return 2 * ALIGN_UP(n * s.act) + ALIGN_UP(n * s.col) + ALIGN_UP(n * s.acc) + ALIGN_UP(s.gather) + QATRT_ALIGN;
}

/* the K input values under output position (oy, ox): channel-major, then
 * kernel row, then kernel column (the weights' order); 0 outside (padding) */
static void gather(const qatrt_op *op, const uint8_t *in, int oy, int ox, uint8_t *row)
{
    int k = 0;
    if (op->pad == 0) { /* every tap inside: one copy per kernel row */
        for (int c = 0; c < op->cin; c++)
            for (int ky = 0; ky < op->kh; ky++, k += op->kw)
                memcpy(row + k, in + ((size_t)c * op->h + (size_t)(oy * op->stride + ky)) * op->w + (size_t)ox * op->stride,
                       (size_t)op->kw);
        return;
    }
    for (int c = 0; c < op->cin; c++) {
        const uint8_t *plane = in + (size_t)c * op->h * op->w;
        for (int ky = 0; ky < op->kh; ky++) {
            int iy = oy * op->stride - op->pad + ky;
            if (iy < 0 || iy >= op->h) {
                memset(row + k, 0, (size_t)op->kw);
                k += op->kw;
                continue;
            }
            const uint8_t *r = plane + (size_t)iy * op->w;
            for (int kx = 0; kx < op->kw; kx++) {
                int ix = ox * op->stride - op->pad + kx;
                row[k++] = ix >= 0 && ix < op->w ? r[ix] : 0;
            }
        }
    }
}

/* one row of K gathered bytes -> the kernel's encoding at dst */
static void encode(const qatrt_op *op, const uint8_t *g, void *dst)
{
    int K = op->K;
    switch (op->kernel) {
    case QATRT_K_BIN: qatrt_pack_bits((const int8_t *)g, K, dst); break;
    case QATRT_K_TER: qatrt_pack_ternary((const int8_t *)g, K, (int)kwords(op), dst); break;
    case QATRT_K_I16: {
        int16_t *d = dst;
        if (op->in_u8)
            for (int k = 0; k < K; k++) d[k] = (int16_t)g[k];
        else
            for (int k = 0; k < K; k++) d[k] = (int16_t)(int8_t)g[k];
        break;
    }
    default: memcpy(dst, g, (size_t)K); break;
    }
}

static void gemm(const qatrt_op *op, const qatrt_kernels *k, int M, const void *A, size_t arow, int32_t *C)
{
    int N = op->cout, K = op->K, kw = (int)kwords(op);
    size_t ldc = (size_t)N;
    switch (op->kernel) {
    case QATRT_K_BIN: k->bgemm(M, N, kw, K, A, arow / 8, op->weights, op->wrow / 8, C, ldc); break;
    case QATRT_K_TER: k->tgemm(M, N, kw, A, arow / 8, op->weights, op->wrow / 8, C, ldc); break;
    case QATRT_K_I8T: k->i8tgemm(M, N, K, A, arow, op->weights, op->wrow / 8, C, ldc); break;
    case QATRT_K_U8I8: k->u8i8gemm(M, N, K, A, arow, op->weights, op->wrow, C, ldc); break;
    case QATRT_K_I8I8: k->i8i8gemm(M, N, K, A, arow, op->weights, op->wrow, op->bsum, C, ldc); break;
    case QATRT_K_I16: k->i16gemm(M, N, K, A, arow / 2, op->weights, op->wrow / 2, C, ldc); break;
    case QATRT_K_P2: k->p2gemm(M, N, K, A, arow, op->weights, op->wrow, C, ldc); break;
    default: break; /* the reader admits no other kernel */
    }
}

/* the level of accumulator s (already negated for a flipped channel) in
 * channel row t = t_1..t_nthr: the count of thresholds <= s, by bisection */
static int8_t level_of(int32_t s, const int32_t *t, int nthr, const int8_t *levels)
{
    if (nthr == 1) return levels[s >= t[0]];
    int lo = 0, hi = nthr;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (t[mid] <= s) lo = mid + 1;
        else hi = mid;
    }
    return levels[lo];
}

static void stage_thresh(const qatrt_op *op, int n, const int32_t *C, int8_t *out)
{
    size_t P = (size_t)op->oh * op->ow;
    int N = op->cout, T = op->nthr;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < N; c++) {
            const int32_t *t = op->thr + (size_t)c * (size_t)T;
            int8_t *o = out + ((size_t)i * N + c) * P;
            const int32_t *a = C + (size_t)i * P * N + c;
            /* |a| <= INT32_MAX (the reader bounds K |A| |B|), so -a is defined */
            if (op->flip && (op->flip[c / 8] >> (c % 8) & 1))
                for (size_t p = 0; p < P; p++) o[p] = level_of(-a[p * N], t, T, op->levels);
            else
                for (size_t p = 0; p < P; p++) o[p] = level_of(a[p * N], t, T, op->levels);
        }
}

static void stage_logits(const qatrt_op *op, int n, const int32_t *C, int32_t *logits)
{
    int N = op->cout;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < N; c++) {
            const int32_t *q = op->req + 4 * c;
            int64_t bias = (int64_t)((uint64_t)(uint32_t)q[2] | (uint64_t)(uint32_t)q[3] << 32);
            int64_t v = (int64_t)C[(size_t)i * N + c] * q[0] + bias;
            if (q[1]) v = (v + ((int64_t)1 << (q[1] - 1))) >> q[1];
            logits[(size_t)i * N + c] = v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
        }
}

static void run_conv(const qatrt_op *op, const qatrt_kernels *k, int n, const uint8_t *in, uint8_t *col,
                     uint8_t *gbuf, int32_t *acc)
{
    size_t P = (size_t)op->oh * op->ow, arow = a_row(op), isz = (size_t)op->cin * op->h * op->w;
    const void *A = col;
    if (whole_input(op) && op->kernel != QATRT_K_BIN && op->kernel != QATRT_K_TER && op->kernel != QATRT_K_I16)
        A = in; /* one row per image, already laid out (CHW = the weights' order) */
    else
        for (int i = 0; i < n; i++)
            for (int oy = 0; oy < op->oh; oy++)
                for (int ox = 0; ox < op->ow; ox++) {
                    uint8_t *dst = col + (((size_t)i * P) + (size_t)oy * op->ow + ox) * arow;
                    if (whole_input(op)) {
                        encode(op, in + (size_t)i * isz, dst);
                        continue;
                    }
                    gather(op, in + (size_t)i * isz, oy, ox, gbuf);
                    encode(op, gbuf, dst);
                }
    gemm(op, k, (int)((size_t)n * P), A, A == (const void *)in ? isz : arow, acc);
}

static void run_maxpool(const qatrt_op *op, int n, const int8_t *in, int8_t *out)
{
    for (int i = 0; i < n; i++)
        for (int c = 0; c < op->cin; c++) {
            const int8_t *x = in + ((size_t)i * op->cin + c) * op->h * op->w;
            int8_t *y = out + ((size_t)i * op->cout + c) * op->oh * op->ow;
            for (int oy = 0; oy < op->oh; oy++)
                for (int ox = 0; ox < op->ow; ox++) {
                    int8_t best = INT8_MIN;
                    for (int ky = 0; ky < op->kh; ky++) {
                        const int8_t *r = x + (size_t)(oy * op->stride + ky) * op->w + (size_t)ox * op->stride;
                        for (int kx = 0; kx < op->kw; kx++)
                            if (r[kx] > best) best = r[kx];
                    }
                    y[oy * op->ow + ox] = best;
                }
        }
}

static void run_lut(const qatrt_op *op, int n, const uint8_t *in, int8_t *out)
{
    size_t hw = (size_t)op->h * op->w;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < op->cin; c++) {
            const int8_t *t = op->lut + (size_t)c * 256;
            const uint8_t *x = in + ((size_t)i * op->cin + c) * hw;
            int8_t *y = out + ((size_t)i * op->cin + c) * hw;
            for (size_t j = 0; j < hw; j++) y[j] = t[x[j]];
        }
}

qatrt_status qatrt_run(const qatrt_model *m, const qatrt_kernels *k, void *ws, size_t ws_size, const uint8_t *images,
                       int n, int32_t *logits)
{
    if (!m || !k || !images || !logits || m->nops < 1) return QATRT_ERR_ARG;
    size_t need_bytes = qatrt_workspace_size(m, n);
    if (need_bytes == 0) return QATRT_ERR_ARG;
    if (!ws || ws_size < need_bytes || (uintptr_t)ws % QATRT_ALIGN) return QATRT_ERR_SPACE;
    sizes s = need(m);
    uint8_t *base = ws;
    size_t nn = (size_t)n;
    uint8_t *act[2] = {base, base + ALIGN_UP(nn * s.act)};
    uint8_t *col = act[1] + ALIGN_UP(nn * s.act);
    int32_t *acc = (int32_t *)(col + ALIGN_UP(nn * s.col));
    uint8_t *gbuf = (uint8_t *)acc + ALIGN_UP(nn * s.acc);
    const uint8_t *in = images;
    int cur = 0;
    for (int i = 0; i < m->nops; i++) {
        const qatrt_op *op = &m->ops[i];
        int8_t *out = (int8_t *)act[cur];
        switch (op->type) {
        case QATRT_OP_LUT: run_lut(op, n, in, out); break;
        case QATRT_OP_MAXPOOL: run_maxpool(op, n, (const int8_t *)in, out); break;
        case QATRT_OP_CONV:
            run_conv(op, k, n, in, col, gbuf, acc);
            if (op->stage == QATRT_STAGE_LOGITS) stage_logits(op, n, acc, logits);
            else stage_thresh(op, n, acc, out);
            break;
        }
        in = (const uint8_t *)out;
        cur ^= 1;
    }
    return QATRT_OK;
}
