/* kern.h: the runtime's integer GEMM kernels, one table per instruction
 * set, chosen at run time (qatrt_kernels_for). Every kernel computes
 *     C[m * ldc + n] = sum_k A(m, k) * B(n, k)        (m < M, n < N)
 * i.e. both operands are stored row-major along K ("A times B transposed"),
 * overwriting C. No alignment is required of any pointer or leading
 * dimension, any M, N, K >= 0 works (awkward sizes included), and no kernel
 * allocates, prints or touches floating point. The scalar table is the
 * reference the others are tested against (tests/test_kernels.c).
 *
 * Encodings
 *   binary   one bit per element, packed little-endian in 64-bit words
 *            (element k is bit k % 64 of word k / 64); bit 0 = +1, bit 1 = -1.
 *            A row holds kwords words, kbits of whose bits are elements;
 *            every other bit is 0 in both operands, so dot = kbits - 2
 *            popcount(a XOR b). The zeros need not all be at the end (the
 *            runtime starts each tap of a convolution on a whole byte).
 *   ternary  two bit planes per row, each kwords words: first the nonzero
 *            mask, then the sign plane (1 = negative; 0 where the mask is 0):
 *            value = mask ? (sign ? -1 : +1) : 0. A row is 2 * kwords words
 *            (lda/ldb count words and are >= 2 * kwords).
 *   p2 code  a 4-bit code per weight, two per byte (element k in the low
 *            nibble of byte k / 2 when k is even, the high nibble when odd):
 *            code & 7 == 0 -> 0, else (code & 8 ? -1 : +1) << ((code & 7) - 1),
 *            i.e. magnitudes 1, 2, 4, ..., 64.
 * Overflow: callers guarantee that every partial sum fits in int32.
 */
#ifndef QATRT_KERN_H
#define QATRT_KERN_H

#include <stddef.h>
#include <stdint.h>

/* Multi-bit binary weights (ALQ, docs/format.md "multi-bit"): each output
 * channel's K weights split into gc groups, group j being elements
 * [off_j, off_j + len_j) of a row: j n and n when n > 0, else the table
 * off (gc + 1 ascending offsets, 0 .. K; an exporter that dropped input
 * channels leaves groups of unequal sizes). Group (c, j) has
 * bw[c gc + j] planes of len_j sign bits (bit set = -1) with an int16
 * coefficient each, so weight e of the group is
 * W = sum_i coef_i (bit_i(e) ? -1 : +1). Channel c's planes start at plane
 * chan[c] and at bit qatrt_mb_bit0(B, c) of `bits`, one dense stream of
 * nbits bits: a plane is its group's len_j bits. The caller lays out each
 * row of A in that element order. */
typedef struct {
    int n, gc;
    const uint32_t *off;  /* n = 0: gc + 1 group offsets into a row */
    const uint8_t *bw;    /* cout x gc bitwidths */
    const uint32_t *chan; /* cout plane starts */
    const uint32_t *bit0; /* n = 0: cout bit starts */
    const int16_t *coef;  /* one per plane */
    const uint8_t *bits;  /* the planes, dense */
    size_t nbits;         /* the stream's length in bits */
} qatrt_mb;

static inline size_t qatrt_mb_off(const qatrt_mb *b, size_t j) { return b->n ? j * (size_t)b->n : b->off[j]; }
static inline size_t qatrt_mb_len(const qatrt_mb *b, size_t j)
{
    return b->n ? (size_t)b->n : (size_t)(b->off[j + 1] - b->off[j]);
}
static inline size_t qatrt_mb_bit0(const qatrt_mb *b, size_t c)
{
    return b->n ? (size_t)b->chan[c] * (size_t)b->n : (size_t)b->bit0[c];
}
/* Row c's weights, each its group's coefficients, negated where the
 * plane's bit is set, into w[0 .. K) (w NULL: not stored): element pos at
 * w[pos], or with taps > 0 (a row in (c, ky, kx) order) at w[(pos % taps)
 * cin + pos / taps], the (ky, kx, c) order; returns the sum of their
 * magnitudes */
static inline int64_t qatrt_mb_row(const qatrt_mb *b, size_t c, int64_t *w, size_t cin, size_t taps)
{
    size_t q = b->chan[c], bit = qatrt_mb_bit0(b, c);
    int64_t l1 = 0;
    for (size_t j = 0; j < (size_t)b->gc; j++) {
        int planes = b->bw[c * (size_t)b->gc + j];
        size_t len = qatrt_mb_len(b, j), o = qatrt_mb_off(b, j);
        for (size_t e = 0; e < len; e++) {
            int32_t v = 0;
            for (int i = 0; i < planes; i++) {
                size_t at = bit + (size_t)i * len + e;
                v += (b->bits[at / 8] >> (at % 8) & 1) ? -(int32_t)b->coef[q + (size_t)i] : (int32_t)b->coef[q + (size_t)i];
            }
            if (w) w[taps ? (o + e) % taps * cin + (o + e) / taps : o + e] = v;
            l1 += v < 0 ? -v : v;
        }
        q += (size_t)planes, bit += (size_t)planes * len;
    }
    return l1;
}

/* A direct convolution of one image whose outputs are signs (a THRESH
 * stage with one threshold per channel feeding a binary layer), with no
 * im2col: output (oy, ox) reads kh input rows of kw pixels each from
 * in + (oy stride) row + (ox stride) px, an input that carries its zero
 * padding (the caller copies the map into a buffer with a border of pad
 * pixels). Units: bytes for bconv_bits, int16 values for i16conv_bits.
 * Output channel n of position p is bit n % 8 of out[p ldo + n / 8], set
 * for -1. N is a multiple of 16. */
typedef struct {
    int oh, ow, kh, kw, stride;
    int h, w, pad;      /* the input's size without its padding, and the padding (bconv_bits: 0 or 1) */
    size_t px, row;     /* units per input pixel and per input row (of the padded map) */
    int N;
    const void *W;      /* the weights as qatrt_pack_bconv / qatrt_pack_i16conv lay them out */
    const int32_t *thr; /* bconv_bits: qatrt_bconv_bounds; i16conv_bits: N thresholds */
    const uint8_t *flip; /* N bits: bit n set, channel n's comparison is negated (NULL: none) */
    int shift;          /* i16conv_bits: the accumulator is shifted left by this before the comparison */
    uint8_t *out;
    size_t ldo;
    /* bconv_bits only (i16conv_bits takes 0): 1 when a 2x2 stride-2 max
     * pool follows (oh, ow even): out then holds the oh / 2 x ow / 2 pooled
     * map, ldo bytes per pixel, a bit set when all four of its window are
     * (the max of -1 levels is -1 only then) */
    int pool;
} qatrt_dconv;

/* bconv_bits: binary inputs (packed signs, px bytes per pixel, a multiple
 * of 4: C a multiple of 32) x binary weights. The weights are
 * N / 16 blocks of D = kh kw px / 4 words of 32 bits, word d of channel
 * 16 b + j at W[(b D + d) 16 + j] (word d: bytes 4d .. 4d + 3 of the row
 * in (ky, kx, byte) order). With pop the count of differing bits (a padded
 * tap's bits are 0, +1) and cls = yc 4 + xc the position's border class
 * (yc: bit 0 oy stride < pad, bit 1 oy stride - pad + kh > h; xc the same
 * for ox, w, kw), bit = (pop >= thr[cls N + n]) XOR flip bit n:
 * qatrt_bconv_bounds folds the padded taps' weight sums, the threshold and
 * the flip into those 16 N bounds. */
/* the border class of output (oy, ox) (bconv_bits above) */
static inline int qatrt_dconv_cls(const qatrt_dconv *d, int oy, int ox)
{
    int y = oy * d->stride, x = ox * d->stride;
    int yc = (y < d->pad) | (y - d->pad + d->kh > d->h) << 1, xc = (x < d->pad) | (x - d->pad + d->kw > d->w) << 1;
    return yc * 4 + xc;
}
/* byte b of output (oy, ox)'s signs: stored, or with pool ANDed into its
 * pooled pixel unless it is the window's first position (even oy and ox),
 * which must come first */
static inline void qatrt_dconv_put(const qatrt_dconv *d, int oy, int ox, size_t b, uint8_t v)
{
    if (!d->pool) {
        d->out[((size_t)oy * (size_t)d->ow + (size_t)ox) * d->ldo + b] = v;
        return;
    }
    uint8_t *o = d->out + ((size_t)(oy / 2) * (size_t)(d->ow / 2) + (size_t)(ox / 2)) * d->ldo + b;
    *o = (oy | ox) & 1 ? (uint8_t)(*o & v) : v;
}
size_t qatrt_bconv_words(int N, int taps, size_t px);
/* from the binary panels of qatrt_pack_bpanel (rows of kwords words whose
 * taps each take px bytes) */
void qatrt_pack_bconv(int N, int taps, size_t px, const uint64_t *Pd, int kwords, uint32_t *W);
/* the bound of class cls: thr, flip as THRESH's; tapsum[n taps + t]: channel
 * n's weight sum at tap t (ky kw + kx); K the real products per output */
void qatrt_bconv_bounds(int N, int K, int kh, int kw, int pad, const int32_t *thr, const uint8_t *flip,
                        const int32_t *tapsum, int32_t *bounds);
/* i16conv_bits: int16 inputs x int16 weights, px values per pixel: per
 * block of 16 channels, per kernel row, Q = (kw px + 1) / 2 pairs of
 * weights, pair q of channel 16 b + j at W[((b kh + ky) Q + q) 32 + 2j]
 * (and + 1): weights 2q, 2q + 1 of that kernel row, 0 past kw px (the
 * kernel may read one value past a row's kw px, times a zero weight:
 * the caller keeps a value after the map). s = acc << shift (negated
 * where the flip bit is set), bit = s < thr[n]; the caller keeps acc <<
 * shift within int32 (the int32 layer it stands for does) and
 * s != INT32_MIN. */
size_t qatrt_i16conv_values(int N, int kh, int kw, size_t px);
void qatrt_pack_i16conv(int N, int kh, int kw, size_t px, const int16_t *B, size_t ldb, int16_t *W);

typedef enum { QATRT_ISA_SCALAR = 0, QATRT_ISA_AVX2, QATRT_ISA_AVX512, QATRT_ISA_COUNT } qatrt_isa;

/* u8i8gemm takes K up to this with all of B in registers (first layers) */
#define QATRT_I8_SMALL_K 64

typedef struct {
    qatrt_isa isa;
    const char *name; /* "scalar", "avx2", "avx512" */
    int i8panel;      /* 1: u8i8gemm_pk / i8i8gemm_pk beat u8i8gemm / i8i8gemm for K > QATRT_I8_SMALL_K */
    /* binary x binary: lda/ldb in 64-bit words (>= kwords) */
    void (*bgemm)(int M, int N, int kwords, int kbits, const uint64_t *A, size_t lda, const uint64_t *B, size_t ldb,
                  int32_t *C, size_t ldc);
    /* ternary x ternary (both as two bit planes; binary operands are ternary
     * with an all-ones mask up to kbits): lda/ldb in words (>= 2 * kwords) */
    void (*tgemm)(int M, int N, int kwords, const uint64_t *A, size_t lda, const uint64_t *B, size_t ldb, int32_t *C,
                  size_t ldc);
    /* int8 activations x ternary weights (two bit planes of (K + 63) / 64
     * words each, ldb in words; bits at k >= K are ignored) */
    void (*i8tgemm)(int M, int N, int K, const int8_t *A, size_t lda, const uint64_t *B, size_t ldb, int32_t *C,
                    size_t ldc);
    /* uint8 x int8 (the first layer: image bytes times int8 weights) */
    void (*u8i8gemm)(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *B, size_t ldb, int32_t *C,
                     size_t ldc);
    /* uint8 x binary (a first layer whose weights are +-1: image bytes
     * times sign bits, B rows in the binary encoding, (K + 63) / 64 words,
     * ldb in words; bits at k >= K are ignored) */
    void (*u8bgemm)(int M, int N, int K, const uint8_t *A, size_t lda, const uint64_t *B, size_t ldb, int32_t *C,
                    size_t ldc);
    /* int8 x int8; bsum[n] = sum_k B(n, k) when the caller has it (weights
     * are constant), or NULL (the kernel computes what it needs) */
    void (*i8i8gemm)(int M, int N, int K, const int8_t *A, size_t lda, const int8_t *B, size_t ldb,
                     const int32_t *bsum, int32_t *C, size_t ldc);
    /* int16 x int16 (layers post-training quantized to 16 bits) */
    void (*i16gemm)(int M, int N, int K, const int16_t *A, size_t lda, const int16_t *B, size_t ldb, int32_t *C,
                    size_t ldc);
    /* int8 activations x power-of-two codes (ldb in bytes >= (K + 1) / 2;
     * for odd K the last high nibble is ignored): shift-add, no multiplies
     * in the scalar reference */
    void (*p2gemm)(int M, int N, int K, const int8_t *A, size_t lda, const uint8_t *B, size_t ldb, int32_t *C,
                   size_t ldc);
    /* bgemm with B pre-packed once by qatrt_pack_bpanel (constant weights):
     * the same C as bgemm on B's rows. Pd: the panels, 64-byte aligned. */
    void (*bgemm_pk)(int M, int N, int kwords, int kbits, const uint64_t *A, size_t lda, const uint64_t *Pd,
                     int32_t *C, size_t ldc);
    /* u8i8gemm / i8i8gemm with B pre-packed once by qatrt_pack_i8panel
     * (constant weights); bsum as for i8i8gemm */
    void (*u8i8gemm_pk)(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *Pd, int32_t *C, size_t ldc);
    void (*i8i8gemm_pk)(int M, int N, int K, const int8_t *A, size_t lda, const int8_t *Pd, const int32_t *bsum,
                        int32_t *C, size_t ldc);
    /* u8bgemm with B pre-packed once by qatrt_u8b_pack (kern_u8bpk.h):
     * table lookups, for first layers with +-1 weights */
    void (*u8bgemm_pk)(int M, int N, int K, const uint8_t *A, size_t lda, const void *Bp, int32_t *C, size_t ldc);
    /* u8i8gemm, then thresh_bits(M, N, C, N, thr, flip, out, ldo) on its
     * result, fused (a first layer whose outputs are signs: the
     * accumulators need never be stored); the same bits as the two calls */
    void (*u8i8gemm_bits)(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *B, size_t ldb,
                          const int32_t *thr, const uint8_t *flip, uint8_t *out, size_t ldo);
    /* one threshold per channel into packed signs (what a binary layer
     * reads): for m < M, n < N, s = C[m * ldc + n], negated where bit n % 8
     * of flip[n / 8] is set (flip may be NULL; the caller guarantees
     * s != INT32_MIN); bit n % 8 of out[m * ldo + n / 8] is 1 when
     * s < thr[n] (level -1) and 0 when s >= thr[n] (level +1). The bits
     * from N up to the end of a row's last byte are 0; no other byte of out
     * is written. */
    void (*thresh_bits)(int M, int N, const int32_t *C, size_t ldc, const int32_t *thr, const uint8_t *flip,
                        uint8_t *out, size_t ldo);
    /* several thresholds per channel into int8 levels: for m < M, n < N,
     * s = C[m * ldc + n] (negated where flip bit n is set, as above) and
     * out[m * ldo + n] = levels[the count of t < T with thr[n T + t] <= s];
     * each channel's T thresholds ascend (the .qnn reader checks it) */
    void (*thresh_levels)(int M, int N, const int32_t *C, size_t ldc, const int32_t *thr, int T, const uint8_t *flip,
                          const int8_t *levels, int8_t *out, size_t ldo);
    /* int8 (a_u8: uint8) activations x multi-bit binary weights (ALQ): per
     * row of A, per channel, every group's planes as masked sums of the
     * group's n values, sum_i coef_i (S_j - 2 sum_{bit set} x) with S_j the
     * group's sum (one popcount-style pass per plane); the caller
     * guarantees the int32 range of C */
    void (*mbgemm)(int M, int N, int K, const uint8_t *A, size_t lda, int a_u8, const qatrt_mb *B, int32_t *C,
                   size_t ldc);
    /* int32 activations (a first layer's normalised pixels in fixed point)
     * x int8 weights, as u8i8gemm; the caller guarantees the int32 range
     * of every partial sum */
    void (*i32i8gemm)(int M, int N, int K, const int32_t *A, size_t lda, const int8_t *B, size_t ldb, int32_t *C,
                      size_t ldc);
    /* a residual add on stream keys (softfloat.h): out[i] = the key of
     * float32 a[i] + b[i], rounded as IEEE 754 does (then max(0, .) when
     * relu): qatc_key_add, vectorized (lanes off the fast path, subnormal
     * or out of range, by qatc_key_add itself) */
    void (*key_add)(size_t n, const int32_t *a, const int32_t *b, int32_t *out, int relu);
    /* direct convolutions of one image into packed signs (qatrt_dconv) */
    void (*bconv_bits)(const qatrt_dconv *d, const uint8_t *in);
    void (*i16conv_bits)(const qatrt_dconv *d, const int16_t *in);
    /* int64 x int64 into int64 (an X64 op: a float layer's exact sum); the
     * caller guarantees the int64 range of every partial sum */
    void (*x64gemm)(int M, int N, int K, const int64_t *A, size_t lda, const int64_t *B, size_t ldb, int64_t *C,
                    size_t ldc);
    /* i16conv_bits' input map from a CHW uint8 image of C channels of h x
     * w (a first layer's pixels through its int16 tables, tab: C x 256):
     * map[y row + x C + c] = tab[c 256 + img[(c h + y) w + x]], row values
     * per map row (>= w C); nothing else of map is written */
    void (*tab16_map)(int C, int h, int w, const uint8_t *img, const int16_t *tab, int16_t *map, size_t row);
} qatrt_kernels;

/* key_add one element at a time (the scalar table's, and every table's
 * fallback) */
void qatrt_key_add_scalar(size_t n, const int32_t *a, const int32_t *b, int32_t *out, int relu);

/* the AVX2 int32 x int8 kernel, shared by the AVX2 and AVX-512 tables */
void qatrt_i32i8gemm_avx2(int M, int N, int K, const int32_t *A, size_t lda, const int8_t *B, size_t ldb, int32_t *C,
                          size_t ldc);
/* the AVX2 int64 kernel, shared by the AVX2 and AVX-512 tables */
void qatrt_x64gemm_avx2(int M, int N, int K, const int64_t *A, size_t lda, const int64_t *B, size_t ldb, int64_t *C,
                        size_t ldc);
/* the AVX2 multi-bit kernel, shared by the AVX2 and AVX-512 tables */
void qatrt_mbgemm_avx2(int M, int N, int K, const uint8_t *A, size_t lda, int a_u8, const qatrt_mb *B, int32_t *C,
                       size_t ldc);

/* 1 when this CPU (and this build) can run the table for isa */
int qatrt_isa_supported(qatrt_isa isa);
/* the best supported isa, or the one QATRT_ISA=scalar|avx2|avx512 asks for
 * (an unsupported or unknown request falls back to the best, and *forced is
 * set to -1 so a caller can report it; 1 when a valid request was honoured,
 * 0 when QATRT_ISA is unset). forced may be NULL. */
qatrt_isa qatrt_isa_select(int *forced);
/* the kernel table of isa (the scalar one when isa is unsupported) */
const qatrt_kernels *qatrt_kernels_for(qatrt_isa isa);
const char *qatrt_isa_name(qatrt_isa isa);
/* "scalar", "avx2", "avx512" -> isa; -1 for anything else */
int qatrt_isa_parse(const char *s);

/* packing helpers used by the interpreter and the exporter (scalar, exact):
 * n int8 values (+1 / -1; any value < 0 counts as -1) -> ceil(n / 64) words */
void qatrt_pack_bits(const int8_t *x, int n, uint64_t *out);
/* the reference tab16_map (a lookup per value), for every table */
void qatrt_tab16_map_ref(int C, int h, int w, const uint8_t *img, const int16_t *tab, int16_t *map, size_t row);
/* the reference thresh_levels (a bisection per value), for every table */
void qatrt_thresh_levels_ref(int M, int N, const int32_t *C, size_t ldc, const int32_t *thr, int T, const uint8_t *flip,
                             const int8_t *levels, int8_t *out, size_t ldo);
/* int8 B as panels of 16 rows (columns of C), K in groups of 4: unit (b, g)
 * is 64 bytes at Pd + (b ceil(K / 4) + g) 64, byte 4 i + j of it weight
 * 4 g + j of row 16 b + i (0 past K and N), so that one vector holds 4
 * weights of 16 columns, a lane per column, against 4 broadcast bytes of
 * A. qatrt_i8panel_bytes: its size (a multiple of 64). */
size_t qatrt_i8panel_bytes(int N, int K);
void qatrt_pack_i8panel(int N, int K, const int8_t *B, size_t ldb, int8_t *Pd);
/* u8i8gemm_bits as the two calls of table kt, through a stack buffer of
 * accumulators (what a table without a fused kernel uses) */
void qatrt_u8i8gemm_bits_via(const qatrt_kernels *kt, int M, int N, int K, const uint8_t *A, size_t lda,
                             const int8_t *B, size_t ldb, const int32_t *thr, const uint8_t *flip, uint8_t *out,
                             size_t ldo);
/* Binary B as panels of 16 rows (columns of C), each word-interleaved so
 * that one vector load holds word w of 8 or 16 columns, a lane per column:
 * panel p = rows 16p .. 16p + 15 at Pd + 16 p kwords, word w of its row j at
 * [16 w + j]; rows past N are zero. qatrt_bpanel_words: the words of it. */
size_t qatrt_bpanel_words(int N, int kwords);
void qatrt_pack_bpanel(int N, int kwords, const uint64_t *B, size_t ldb, uint64_t *Pd);
/* n int8 values in {-1, 0, +1} -> two planes of kwords words each (mask,
 * then sign), at out and out + kwords */
void qatrt_pack_ternary(const int8_t *x, int n, int kwords, uint64_t *out);

#include "kern_u8bpk.h"

#endif
