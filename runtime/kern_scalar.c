/* kern_scalar.c: the reference kernel table, one plain loop nest per kernel,
 * and the bit-packing helpers. Built with -mgeneral-regs-only so it runs on
 * any x86-64 and can never touch floating point; every SIMD table is tested
 * against this one, and this one against unpacked integers. */
#include <string.h>

#include "kern.h"
#include "softfloat.h"

static int popcount64(uint64_t x) { return __builtin_popcountll(x); }

static void bgemm_scalar(int M, int N, int kwords, int kbits, const uint64_t *A, size_t lda, const uint64_t *B,
                         size_t ldb, int32_t *C, size_t ldc)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const uint64_t *a = A + (size_t)m * lda, *b = B + (size_t)n * ldb;
            int32_t diff = 0;
            for (int w = 0; w < kwords; w++) diff += popcount64(a[w] ^ b[w]);
            C[(size_t)m * ldc + n] = kbits - 2 * diff;
        }
}

/* the definition on the panel layout (kern.h) */
static void bgemm_pk_scalar(int M, int N, int kwords, int kbits, const uint64_t *A, size_t lda, const uint64_t *Pd,
                            int32_t *C, size_t ldc)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const uint64_t *a = A + (size_t)m * lda, *p = Pd + (size_t)(n / 16) * 16 * (size_t)kwords + n % 16;
            int32_t diff = 0;
            for (int w = 0; w < kwords; w++) diff += popcount64(a[w] ^ p[(size_t)16 * w]);
            C[(size_t)m * ldc + n] = kbits - 2 * diff;
        }
}

/* product of two ternaries is nonzero where both masks are set and negative
 * where, in addition, the signs differ */
static void tgemm_scalar(int M, int N, int kwords, const uint64_t *A, size_t lda, const uint64_t *B, size_t ldb,
                         int32_t *C, size_t ldc)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const uint64_t *am = A + (size_t)m * lda, *as = am + kwords;
            const uint64_t *bm = B + (size_t)n * ldb, *bs = bm + kwords;
            int32_t dot = 0;
            for (int w = 0; w < kwords; w++) {
                uint64_t nz = am[w] & bm[w];
                dot += popcount64(nz) - 2 * popcount64(nz & (as[w] ^ bs[w]));
            }
            C[(size_t)m * ldc + n] = dot;
        }
}

static void i8tgemm_scalar(int M, int N, int K, const int8_t *A, size_t lda, const uint64_t *B, size_t ldb,
                           int32_t *C, size_t ldc)
{
    size_t kwords = ((size_t)K + 63) / 64; /* words per bit plane */
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const int8_t *a = A + (size_t)m * lda;
            const uint64_t *bm = B + (size_t)n * ldb, *bs = bm + kwords;
            int32_t dot = 0;
            for (int k = 0; k < K; k++) {
                uint64_t bit = (uint64_t)1 << (k % 64);
                if (!(bm[k / 64] & bit)) continue;
                dot += bs[k / 64] & bit ? -a[k] : a[k];
            }
            C[(size_t)m * ldc + n] = dot;
        }
}

static void u8bgemm_scalar(int M, int N, int K, const uint8_t *A, size_t lda, const uint64_t *B, size_t ldb,
                           int32_t *C, size_t ldc)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const uint8_t *a = A + (size_t)m * lda;
            const uint64_t *b = B + (size_t)n * ldb;
            int32_t dot = 0;
            for (int k = 0; k < K; k++) dot += b[k / 64] >> (k % 64) & 1 ? -(int32_t)a[k] : (int32_t)a[k];
            C[(size_t)m * ldc + n] = dot;
        }
}

static void u8i8gemm_scalar(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *B, size_t ldb,
                            int32_t *C, size_t ldc)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const uint8_t *a = A + (size_t)m * lda;
            const int8_t *b = B + (size_t)n * ldb;
            int32_t dot = 0;
            for (int k = 0; k < K; k++) dot += (int32_t)a[k] * b[k];
            C[(size_t)m * ldc + n] = dot;
        }
}

static void i8i8gemm_scalar(int M, int N, int K, const int8_t *A, size_t lda, const int8_t *B, size_t ldb,
                            const int32_t *bsum, int32_t *C, size_t ldc)
{
    (void)bsum; /* only the offset-based SIMD kernels need it */
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const int8_t *a = A + (size_t)m * lda, *b = B + (size_t)n * ldb;
            int32_t dot = 0;
            for (int k = 0; k < K; k++) dot += (int32_t)a[k] * b[k];
            C[(size_t)m * ldc + n] = dot;
        }
}

/* the definitions on the int8 panel layout (kern.h) */
static int32_t i8panel_at(const int8_t *Pd, int K, int n, int k)
{
    return Pd[((size_t)(n / 16) * (((size_t)K + 3) / 4) + (size_t)k / 4) * 64 + 4 * (size_t)(n % 16) + (size_t)k % 4];
}

/* A's bytes as uint8 or (sgn) int8 */
static void i8pk_scalar(int sgn, int M, int N, int K, const void *A, size_t lda, const int8_t *Pd, int32_t *C,
                        size_t ldc)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const uint8_t *a = (const uint8_t *)A + (size_t)m * lda;
            int32_t dot = 0;
            for (int k = 0; k < K; k++) dot += (sgn ? (int32_t)(int8_t)a[k] : (int32_t)a[k]) * i8panel_at(Pd, K, n, k);
            C[(size_t)m * ldc + n] = dot;
        }
}

static void u8i8gemm_pk_scalar(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *Pd, int32_t *C,
                               size_t ldc)
{
    i8pk_scalar(0, M, N, K, A, lda, Pd, C, ldc);
}

static void i8i8gemm_pk_scalar(int M, int N, int K, const int8_t *A, size_t lda, const int8_t *Pd,
                               const int32_t *bsum, int32_t *C, size_t ldc)
{
    (void)bsum;
    i8pk_scalar(1, M, N, K, A, lda, Pd, C, ldc);
}

static void i16gemm_scalar(int M, int N, int K, const int16_t *A, size_t lda, const int16_t *B, size_t ldb,
                           int32_t *C, size_t ldc)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const int16_t *a = A + (size_t)m * lda, *b = B + (size_t)n * ldb;
            int32_t dot = 0;
            for (int k = 0; k < K; k++) dot += (int32_t)a[k] * b[k];
            C[(size_t)m * ldc + n] = dot;
        }
}

/* Shift-add only. The sum is kept in uint32_t, where shifting a negative
 * activation left and wrapping are defined; the caller guarantees the true
 * sum fits in int32, so the final conversion gives it back exactly. */
static void p2gemm_scalar(int M, int N, int K, const int8_t *A, size_t lda, const uint8_t *B, size_t ldb,
                          int32_t *C, size_t ldc)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const int8_t *a = A + (size_t)m * lda;
            const uint8_t *b = B + (size_t)n * ldb;
            uint32_t dot = 0;
            for (int k = 0; k < K; k++) {
                unsigned code = k & 1 ? b[k / 2] >> 4 : b[k / 2] & 15u;
                if (!(code & 7)) continue;
                uint32_t term = (uint32_t)(int32_t)a[k] << ((code & 7) - 1);
                dot = code & 8 ? dot - term : dot + term;
            }
            C[(size_t)m * ldc + n] = (int32_t)dot;
        }
}

static void thresh_bits_scalar(int M, int N, const int32_t *C, size_t ldc, const int32_t *thr, const uint8_t *flip,
                               uint8_t *out, size_t ldo)
{
    for (int m = 0; m < M; m++) {
        const int32_t *c = C + (size_t)m * ldc;
        uint8_t *o = out + (size_t)m * ldo;
        for (int n0 = 0; n0 < N; n0 += 8) {
            unsigned byte = 0, f = flip ? flip[n0 / 8] : 0;
            for (int b = 0; b < 8 && n0 + b < N; b++) {
                int32_t s = f >> b & 1 ? -c[n0 + b] : c[n0 + b];
                byte |= (unsigned)(s < thr[n0 + b]) << b;
            }
            o[n0 / 8] = (uint8_t)byte;
        }
    }
}

void qatrt_thresh_levels_ref(int M, int N, const int32_t *C, size_t ldc, const int32_t *thr, int T, const uint8_t *flip,
                             const int8_t *levels, int8_t *out, size_t ldo)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int32_t s = C[(size_t)m * ldc + n];
            if (flip && (flip[n / 8] >> (n % 8) & 1)) s = -s;
            const int32_t *t = thr + (size_t)n * (size_t)T;
            int lo = 0, hi = T; /* the count of t <= s, by bisection */
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (t[mid] <= s) lo = mid + 1;
                else hi = mid;
            }
            out[(size_t)m * ldo + n] = levels[lo];
        }
}

#define VIA_C 2048 /* accumulators on the stack: 8 KB */

void qatrt_u8i8gemm_bits_via(const qatrt_kernels *kt, int M, int N, int K, const uint8_t *A, size_t lda,
                             const int8_t *B, size_t ldb, const int32_t *thr, const uint8_t *flip, uint8_t *out,
                             size_t ldo)
{
    int32_t C[VIA_C];
    for (int n0 = 0; n0 < N; n0 += VIA_C) { /* chunks of whole bytes of out */
        int nc = N - n0 < VIA_C ? N - n0 : VIA_C, rows = VIA_C / nc;
        for (int m0 = 0; m0 < M; m0 += rows) {
            int mc = M - m0 < rows ? M - m0 : rows;
            kt->u8i8gemm(mc, nc, K, A + (size_t)m0 * lda, lda, B + (size_t)n0 * ldb, ldb, C, (size_t)nc);
            kt->thresh_bits(mc, nc, C, (size_t)nc, thr + n0, flip ? flip + n0 / 8 : NULL,
                            out + (size_t)m0 * ldo + (size_t)n0 / 8, ldo);
        }
    }
}

static void u8i8gemm_bits_scalar(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *B, size_t ldb,
                                 const int32_t *thr, const uint8_t *flip, uint8_t *out, size_t ldo);

/* the reference: int32 products summed in int64, as the caller's range
 * guarantee makes them fit int32 */
static void i32i8gemm_scalar(int M, int N, int K, const int32_t *A, size_t lda, const int8_t *B, size_t ldb, int32_t *C,
                             size_t ldc)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const int32_t *a = A + (size_t)m * lda;
            const int8_t *b = B + (size_t)n * ldb;
            int64_t dot = 0;
            for (int k = 0; k < K; k++) dot += (int64_t)a[k] * b[k];
            C[(size_t)m * ldc + n] = (int32_t)dot;
        }
}

static uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* the definition (kern.h), one output bit at a time */
static void bconv_bits_scalar(const qatrt_dconv *d0, const uint8_t *in)
{
    /* a copy the stores of bits cannot alias (they could alias *d0) */
    const qatrt_dconv dv = *d0, *d = &dv;
    const uint32_t *W = d->W;
    size_t T = (size_t)d->kw * d->px / 4, D = (size_t)d->kh * T;
    for (int oy = 0; oy < d->oh; oy++)
        for (int ox = 0; ox < d->ow; ox++) {
            const uint8_t *a = in + (size_t)(oy * d->stride) * d->row + (size_t)(ox * d->stride) * d->px;
            const int32_t *bound = d->thr + (size_t)qatrt_dconv_cls(d, oy, ox) * (size_t)d->N;
            for (int n0 = 0; n0 < d->N; n0 += 8) {
                unsigned byte = 0, f = d->flip ? d->flip[n0 / 8] : 0;
                for (int b = 0; b < 8; b++) {
                    int n = n0 + b;
                    const uint32_t *w = W + (size_t)(n / 16) * D * 16 + (size_t)(n % 16);
                    int32_t pop = 0;
                    for (int ky = 0; ky < d->kh; ky++)
                        for (size_t t = 0; t < T; t++)
                            pop += __builtin_popcount(ld32(a + (size_t)ky * d->row + 4 * t) ^ w[((size_t)ky * T + t) * 16]);
                    byte |= ((unsigned)(pop >= bound[n]) ^ (f >> b & 1)) << b;
                }
                qatrt_dconv_put(d, oy, ox, (size_t)n0 / 8, (uint8_t)byte);
            }
        }
}

static void i16conv_bits_scalar(const qatrt_dconv *d, const int16_t *in)
{
    const int16_t *W = d->W;
    size_t run = (size_t)d->kw * d->px, Q = (run + 1) / 2;
    for (int oy = 0; oy < d->oh; oy++)
        for (int ox = 0; ox < d->ow; ox++) {
            const int16_t *a = in + (size_t)(oy * d->stride) * d->row + (size_t)(ox * d->stride) * d->px;
            uint8_t *o = d->out + ((size_t)oy * d->ow + (size_t)ox) * d->ldo;
            for (int n0 = 0; n0 < d->N; n0 += 8) {
                unsigned byte = 0, f = d->flip ? d->flip[n0 / 8] : 0;
                for (int b = 0; b < 8; b++) {
                    int n = n0 + b;
                    int32_t acc = 0;
                    for (int ky = 0; ky < d->kh; ky++) {
                        const int16_t *w = W + ((size_t)(n / 16) * (size_t)d->kh + (size_t)ky) * Q * 32 + 2 * (size_t)(n % 16);
                        for (size_t k = 0; k < run; k++) acc += (int32_t)a[(size_t)ky * d->row + k] * w[k / 2 * 32 + k % 2];
                    }
                    int32_t s = (int32_t)((uint32_t)acc << d->shift);
                    if (f >> b & 1) s = -s;
                    byte |= (unsigned)(s < d->thr[n]) << b;
                }
                o[n0 / 8] = (uint8_t)byte;
            }
        }
}

size_t qatrt_bconv_words(int N, int taps, size_t px)
{
    return N <= 0 || taps <= 0 ? 0 : ((size_t)N + 15) / 16 * 16 * ((size_t)taps * px / 4);
}

void qatrt_pack_bconv(int N, int taps, size_t px, const uint64_t *Pd, int kwords, uint32_t *W)
{
    size_t D = (size_t)taps * px / 4, nb = ((size_t)N + 15) / 16;
    for (size_t b = 0; b < nb; b++)
        for (size_t dw = 0; dw < D; dw++)
            for (size_t j = 0; j < 16; j++)
                W[(b * D + dw) * 16 + j] = (uint32_t)(Pd[(b * (size_t)kwords + dw / 2) * 16 + j] >> (32 * (dw % 2)));
}

/* floor(x / 2) for any sign */
static int64_t floor_half(int64_t x) { return x >= 0 ? x / 2 : -((1 - x) / 2); }

void qatrt_bconv_bounds(int N, int K, int kh, int kw, int pad, const int32_t *thr, const uint8_t *flip,
                        const int32_t *tapsum, int32_t *bounds)
{
    for (int cls = 0; cls < 16; cls++)
        for (int n = 0; n < N; n++) {
            int yc = cls >> 2, xc = cls & 3;
            int64_t corr = 0; /* the weights of the padded taps, which the count took as +1 inputs */
            for (int ky = 0; ky < kh && pad; ky++)
                for (int kx = 0; kx < kw; kx++)
                    if ((yc & 1 && ky == 0) || (yc & 2 && ky == kh - 1) || (xc & 1 && kx == 0) || (xc & 2 && kx == kw - 1))
                        corr += tapsum[(size_t)n * (size_t)(kh * kw) + (size_t)(ky * kw + kx)];
            /* acc = K - 2 pop - corr; s = acc < thr, or -acc < thr when flipped */
            int64_t P = flip && (flip[n / 8] >> (n % 8) & 1) ? -floor_half(-((int64_t)K - corr + thr[n]))
                                                              : floor_half((int64_t)K - corr - thr[n]) + 1;
            bounds[(size_t)cls * (size_t)N + (size_t)n] = (int32_t)(P < 0 ? 0 : P > K + 1 ? K + 1 : P);
        }
}

size_t qatrt_i16conv_values(int N, int kh, int kw, size_t px)
{
    return N <= 0 ? 0 : ((size_t)N + 15) / 16 * (size_t)kh * (((size_t)kw * px + 1) / 2) * 32;
}

void qatrt_pack_i16conv(int N, int kh, int kw, size_t px, const int16_t *B, size_t ldb, int16_t *W)
{
    size_t run = (size_t)kw * px, Q = (run + 1) / 2, nb = ((size_t)N + 15) / 16;
    for (size_t b = 0; b < nb; b++)
        for (size_t ky = 0; ky < (size_t)kh; ky++)
            for (size_t q = 0; q < Q; q++)
                for (size_t j = 0; j < 16; j++)
                    for (size_t e = 0; e < 2; e++) {
                        size_t n = 16 * b + j, k = 2 * q + e;
                        W[((b * (size_t)kh + ky) * Q + q) * 32 + 2 * j + e] =
                            n < (size_t)N && k < run ? B[n * ldb + ky * run + k] : 0;
                    }
}

/* defined here, picked up by kern_dispatch.c */
extern const qatrt_kernels qatrt_kernels_scalar;
/* the reference: every weight's sign read bit by bit, summed in int64 */
static void mbgemm_scalar(int M, int N, int K, const uint8_t *A, size_t lda, int a_u8, const qatrt_mb *B, int32_t *C,
                          size_t ldc)
{
    (void)K; /* = the groups' lengths summed */
    for (int m = 0; m < M; m++) {
        const uint8_t *a = A + (size_t)m * lda;
        for (int c = 0; c < N; c++) {
            int64_t acc = 0;
            size_t q = B->chan[c], b = qatrt_mb_bit0(B, (size_t)c);
            for (int j = 0; j < B->gc; j++) {
                const uint8_t *x = a + qatrt_mb_off(B, (size_t)j);
                size_t n = qatrt_mb_len(B, (size_t)j);
                for (int i = 0; i < B->bw[(size_t)c * (size_t)B->gc + (size_t)j]; i++, q++) {
                    int64_t s = 0;
                    for (size_t e = 0; e < n; e++, b++) {
                        int32_t v = a_u8 ? (int32_t)x[e] : (int32_t)(int8_t)x[e];
                        s += (B->bits[b / 8] >> (b % 8) & 1) ? -v : v;
                    }
                    acc += (int64_t)B->coef[q] * s;
                }
            }
            C[(size_t)m * ldc + c] = (int32_t)acc;
        }
    }
}

static void x64gemm_scalar(int M, int N, int K, const int64_t *A, size_t lda, const int64_t *B, size_t ldb, int64_t *C,
                           size_t ldc)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const int64_t *a = A + (size_t)m * lda, *b = B + (size_t)n * ldb;
            int64_t s = 0;
            for (int k = 0; k < K; k++) s += a[k] * b[k];
            C[(size_t)m * ldc + n] = s;
        }
}

const qatrt_kernels qatrt_kernels_scalar = {
    .isa = QATRT_ISA_SCALAR,
    .name = "scalar",
    .bgemm = bgemm_scalar,
    .bgemm_pk = bgemm_pk_scalar,
    .tgemm = tgemm_scalar,
    .i8tgemm = i8tgemm_scalar,
    .u8i8gemm = u8i8gemm_scalar,
    .u8bgemm = u8bgemm_scalar,
    .u8bgemm_pk = qatrt_u8bgemm_pk_scalar,
    .u8i8gemm_pk = u8i8gemm_pk_scalar,
    .i8i8gemm_pk = i8i8gemm_pk_scalar,
    .i8i8gemm = i8i8gemm_scalar,
    .i16gemm = i16gemm_scalar,
    .p2gemm = p2gemm_scalar,
    .u8i8gemm_bits = u8i8gemm_bits_scalar,
    .thresh_bits = thresh_bits_scalar,
    .thresh_levels = qatrt_thresh_levels_ref,
    .mbgemm = mbgemm_scalar,
    .i32i8gemm = i32i8gemm_scalar,
    .key_add = qatrt_key_add_scalar,
    .bconv_bits = bconv_bits_scalar,
    .i16conv_bits = i16conv_bits_scalar,
    .x64gemm = x64gemm_scalar,
    .tab16_map = qatrt_tab16_map_ref,
};

void qatrt_tab16_map_ref(int C, int h, int w, const uint8_t *img, const int16_t *tab, int16_t *map, size_t row)
{
    for (int y = 0; y < h; y++)
        for (int c = 0; c < C; c++) {
            const uint8_t *src = img + ((size_t)c * (size_t)h + (size_t)y) * (size_t)w;
            const int16_t *t = tab + (size_t)c * 256;
            int16_t *dst = map + (size_t)y * row + (size_t)c;
            for (int x = 0; x < w; x++) dst[(size_t)x * (size_t)C] = t[src[x]];
        }
}

void qatrt_key_add_scalar(size_t n, const int32_t *a, const int32_t *b, int32_t *out, int relu)
{
    for (size_t i = 0; i < n; i++) {
        int32_t v = qatc_key_add(a[i], b[i]);
        out[i] = relu && v < 0 ? 0 : v;
    }
}

static void u8i8gemm_bits_scalar(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *B, size_t ldb,
                                 const int32_t *thr, const uint8_t *flip, uint8_t *out, size_t ldo)
{
    qatrt_u8i8gemm_bits_via(&qatrt_kernels_scalar, M, N, K, A, lda, B, ldb, thr, flip, out, ldo);
}

/* eight signs at a time: the top bit of each byte, gathered by one
 * multiply (no SIMD, no float); the interpreter packs every binary input
 * row through here */
void qatrt_pack_bits(const int8_t *x, int n, uint64_t *out)
{
    for (int w = 0; w < (n + 63) / 64; w++) {
        uint64_t word = 0;
        int base = w * 64, cnt = n - base < 64 ? n - base : 64, b = 0;
        for (; b + 8 <= cnt; b += 8) {
            uint64_t v;
            memcpy(&v, x + base + b, 8);
            v = (v >> 7) & 0x0101010101010101ull;
            word |= ((v * 0x0102040810204080ull) >> 56) << b;
        }
        for (; b < cnt; b++) word |= (uint64_t)(x[base + b] < 0) << b;
        out[w] = word;
    }
}

size_t qatrt_i8panel_bytes(int N, int K)
{
    return N <= 0 || K <= 0 ? 0 : ((size_t)N + 15) / 16 * (((size_t)K + 3) / 4) * 64;
}

void qatrt_pack_i8panel(int N, int K, const int8_t *B, size_t ldb, int8_t *Pd)
{
    size_t G = ((size_t)K + 3) / 4, nb = ((size_t)N + 15) / 16;
    for (size_t b = 0; b < nb; b++)
        for (size_t g = 0; g < G; g++)
            for (size_t i = 0; i < 16; i++)
                for (size_t j = 0; j < 4; j++) {
                    size_t n = 16 * b + i, k = 4 * g + j;
                    Pd[(b * G + g) * 64 + 4 * i + j] = n < (size_t)N && k < (size_t)K ? B[n * ldb + k] : 0;
                }
}

size_t qatrt_bpanel_words(int N, int kwords)
{
    return N <= 0 || kwords <= 0 ? 0 : ((size_t)N + 15) / 16 * 16 * (size_t)kwords;
}

void qatrt_pack_bpanel(int N, int kwords, const uint64_t *B, size_t ldb, uint64_t *Pd)
{
    size_t np = ((size_t)N + 15) / 16;
    for (size_t p = 0; p < np; p++)
        for (size_t w = 0; w < (size_t)kwords; w++)
            for (size_t j = 0; j < 16; j++) {
                size_t n = 16 * p + j;
                Pd[(p * (size_t)kwords + w) * 16 + j] = n < (size_t)N ? B[n * ldb + w] : 0;
            }
}

void qatrt_pack_ternary(const int8_t *x, int n, int kwords, uint64_t *out)
{
    for (int w = 0; w < 2 * kwords; w++) out[w] = 0;
    for (int k = 0; k < n; k++) {
        uint64_t bit = (uint64_t)1 << (k % 64);
        if (x[k]) out[k / 64] |= bit;
        if (x[k] < 0) out[kwords + k / 64] |= bit;
    }
}
