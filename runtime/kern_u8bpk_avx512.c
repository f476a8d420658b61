/* kern_u8bpk_avx512.c: uint8 x binary GEMM on the packed layout of
 * kern_u8bpk.h with AVX-512 (F, BW, VL, VNNI and VBMI): per row of A and
 * group of 16 pixels, a 64-entry table of lo-nibble sums and one of
 * hi-nibble sums; then per 64 bytes of weights (16 columns x 16 weights) one
 * VPERMB and one VPDPBUSD per table. VPERMB runs on port 5 only, and the two
 * per 64 bytes are the floor: ~2.3 cycles measured against 2 (M = 1,
 * N = 1024, K = 784: 2.6 us, the kern.h kernel that expands the bits to
 * +-1 bytes 10.4 us). */
#include <immintrin.h>

#include "kern_u8bpk.h"

#define AI static inline __attribute__((always_inline))
#define MR_MAX 3
#define KB 64 /* groups per K block: the tables of 3 rows take 3 x 64 x 128 bytes = 24 KB of stack */

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline __mmask64 mask64(int n) { return _cvtu64_mask64(n >= 64 ? ~0ull : (1ull << n) - 1); }

/* ---- tables --------------------------------------------------------------
 * Entry e of a group's table (e = a byte of the packed layout: bits 0, 1, 4,
 * 5 the pattern, bits 2, 3 the chunk t) is the sum of the nibbles of pixels
 * 16 g + 4 t + j whose pattern bit j is set. It is built as the sum of two
 * pair sums, P01[4 t + (e & 3)] + P23[4 t + (e >> 4)], where P01[4 t + q]
 * adds the nibbles of pixels 4 t and 4 t + 1 that q's bits select (P23:
 * 4 t + 2, 4 t + 3). One vector p holds P01 and P23 of the lo nibbles in its
 * lanes 0, 1 and of the hi nibbles in lanes 2, 3: two VPSHUFBs make it, two
 * VPERMBs and an add make each table from it. */
typedef struct {
    __m512i sa, sb; /* VPSHUFB picks for p: the first and second pixel of the pair */
    __m512i ia, ib; /* VPERMB picks of P01 and P23 from p for the lo table (+ 32: hi) */
} table_consts;

static void table_consts_init(table_consts *tc)
{
    static const uint8_t iota[64] __attribute__((aligned(64))) = {
        0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
        22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
        44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
    __m512i e = _mm512_load_si512(iota);
    __m512i t4 = _mm512_and_si512(e, _mm512_set1_epi8(0x0c));
    /* lanes 1 and 3 hold the pair 4 t + 2, 4 t + 3 */
    tc->sa = _mm512_or_si512(t4, _mm512_and_si512(_mm512_srli_epi16(e, 3), _mm512_set1_epi8(2)));
    tc->sb = _mm512_add_epi8(tc->sa, _mm512_set1_epi8(1));
    tc->ia = _mm512_and_si512(e, _mm512_set1_epi8(0x0f));
    tc->ib = _mm512_or_si512(_mm512_or_si512(t4, _mm512_set1_epi8(16)),
                             _mm512_and_si512(_mm512_srli_epi16(e, 4), _mm512_set1_epi8(3)));
}

/* the lo and hi tables of groups g0 .. g0 + gn - 1 of row a (K pixels; none
 * past K is read) into tab[2 gi], tab[2 gi + 1] */
static void build_tables(const uint8_t *a, int K, int g0, int gn, __m512i *tab)
{
    table_consts tc;
    table_consts_init(&tc);
    const __m512i nib = _mm512_set1_epi8(0x0f), hi = _mm512_set1_epi8(32);
    const __mmask64 q1 = _cvtu64_mask64(0xaaaaaaaaaaaaaaaaull), q2 = _cvtu64_mask64(0xccccccccccccccccull);
    for (int gi = 0; gi < gn; gi++) {
        int k0 = 16 * (g0 + gi);
        __m128i px = K - k0 >= 16 ? _mm_loadu_si128((const __m128i *)(a + k0))
                                  : _mm_maskz_loadu_epi8((__mmask16)mask64(K - k0), a + k0);
        __m512i v = _mm512_broadcast_i32x4(px);
        v = _mm512_and_si512(_mm512_mask_srli_epi16(v, (__mmask32)0xffff0000u, v, 4), nib);
        __m512i p = _mm512_add_epi8(_mm512_maskz_shuffle_epi8(q1, v, tc.sa), _mm512_maskz_shuffle_epi8(q2, v, tc.sb));
        tab[2 * gi] = _mm512_add_epi8(_mm512_permutexvar_epi8(tc.ia, p), _mm512_permutexvar_epi8(tc.ib, p));
        tab[2 * gi + 1] = _mm512_add_epi8(_mm512_permutexvar_epi8(_mm512_add_epi8(tc.ia, hi), p),
                                          _mm512_permutexvar_epi8(_mm512_add_epi8(tc.ib, hi), p));
    }
}

/* sum of a row's K pixels */
static int32_t row_sum(const uint8_t *a, int K)
{
    __m512i s = _mm512_setzero_si512();
    int k = 0;
    for (; k + 64 <= K; k += 64)
        s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_loadu_si512(a + k), _mm512_setzero_si512()));
    if (k < K)
        s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(mask64(K - k), a + k), _mm512_setzero_si512()));
    return (int32_t)_mm512_reduce_add_epi64(s);
}

/* ---- the tile ------------------------------------------------------------
 * MR rows x NB blocks of 16 columns over gn groups: acc[r NB + j] gets
 * -2 x the lo sums - 32 x the hi sums, so that it ends as C when it starts
 * as sum_k a_k. One accumulator per cell: its lo and hi VPDPBUSD make a
 * chain of 2 x 5 cycles per group, hidden when MR NB >= 5 (the 2 MR NB
 * VPERMBs take as many cycles). Separate lo and hi accumulators, or lookups
 * of 2 groups summed in bytes first, measured no faster. */
AI void tile(int MR, int NB, int gn, const uint8_t *idx, size_t bstride, const __m512i *tab, __m512i *acc_io)
{
    const __m512i m2 = _mm512_set1_epi8(-2), m32 = _mm512_set1_epi8(-32);
    __m512i acc[MR_MAX * 8];
    const uint8_t *p[8];
    #pragma GCC unroll 8
    for (int j = 0; j < NB; j++) p[j] = idx + (size_t)j * bstride;
    #pragma GCC unroll 24
    for (int i = 0; i < MR * NB; i++) acc[i] = acc_io[i];
    for (int g = 0; g < gn; g++) {
        __m512i x[8];
        #pragma GCC unroll 8
        for (int j = 0; j < NB; j++) {
            x[j] = _mm512_loadu_si512(p[j] + (size_t)g * 64);
            /* one load per vector: left alone, gcc folds it into both
             * VPERMBs, and the extra loads cost ~10% */
            __asm__("" : "+v"(x[j]));
        }
        #pragma GCC unroll 3
        for (int r = 0; r < MR; r++) {
            __m512i tl = tab[(r * KB + g) * 2], th = tab[(r * KB + g) * 2 + 1];
            #pragma GCC unroll 8
            for (int j = 0; j < NB; j++) {
                acc[r * NB + j] = _mm512_dpbusd_epi32(acc[r * NB + j], _mm512_permutexvar_epi8(x[j], tl), m2);
                acc[r * NB + j] = _mm512_dpbusd_epi32(acc[r * NB + j], _mm512_permutexvar_epi8(x[j], th), m32);
            }
        }
    }
    #pragma GCC unroll 24
    for (int i = 0; i < MR * NB; i++) acc_io[i] = acc[i];
}

typedef void tile_fn(int gn, const uint8_t *idx, size_t bstride, const __m512i *tab, __m512i *acc);
#define TILE(MR, NB)                                                                                                   \
    static __attribute__((noinline)) void tile_##MR##x##NB(int gn, const uint8_t *idx, size_t bstride,                 \
                                                           const __m512i *tab, __m512i *acc)                           \
    {                                                                                                                  \
        tile(MR, NB, gn, idx, bstride, tab, acc);                                                                      \
    }
TILE(1, 1)
TILE(1, 2)
TILE(1, 3)
TILE(1, 4)
TILE(1, 5)
TILE(1, 6)
TILE(1, 7)
TILE(1, 8)
TILE(2, 1)
TILE(2, 2)
TILE(2, 3)
TILE(2, 4)
TILE(3, 1)
TILE(3, 2)
TILE(3, 3)

/* tiles[MR - 1][NB - 1]; NB up to nb_max[MR - 1] */
static tile_fn *const tiles[MR_MAX][8] = {
    {tile_1x1, tile_1x2, tile_1x3, tile_1x4, tile_1x5, tile_1x6, tile_1x7, tile_1x8},
    {tile_2x1, tile_2x2, tile_2x3, tile_2x4},
    {tile_3x1, tile_3x2, tile_3x3},
};
static const int nb_max[MR_MAX] = {8, 4, 3};

void qatrt_u8bgemm_pk_avx512(int M, int N, int K, const uint8_t *A, size_t lda, const void *Bp, int32_t *C, size_t ldc)
{
    if (qatrt_u8b_trivial(M, N, K, C, ldc)) return;
    __m512i tab[MR_MAX * KB * 2];
    int G = (K + 15) / 16, nb = (N + 15) / 16;
    size_t bstride = (size_t)G * 64;
    for (int m0 = 0; m0 < M;) {
        /* 4 rows go as 2 + 2, more as 3 at a time. Rows share the weight
         * loads but not the lookups: 2 rows take as long as 2 x 1. */
        int MR = M - m0 == 4 ? 2 : imin(MR_MAX, M - m0);
        int32_t rsum[MR_MAX];
        for (int r = 0; r < MR; r++) rsum[r] = row_sum(A + (size_t)(m0 + r) * lda, K);
        for (int g0 = 0; g0 < G; g0 += KB) {
            int gn = imin(KB, G - g0);
            for (int r = 0; r < MR; r++) build_tables(A + (size_t)(m0 + r) * lda, K, g0, gn, tab + r * KB * 2);
            for (int b0 = 0; b0 < nb;) {
                int NB = imin(nb_max[MR - 1], nb - b0);
                __m512i acc[MR_MAX * 8];
                for (int r = 0; r < MR; r++)
                    for (int j = 0; j < NB; j++) {
                        int32_t *c = C + (size_t)(m0 + r) * ldc + 16 * (b0 + j);
                        __mmask16 cm = (__mmask16)mask64(imin(16, N - 16 * (b0 + j)));
                        acc[r * NB + j] = g0 ? _mm512_maskz_loadu_epi32(cm, c) : _mm512_set1_epi32(rsum[r]);
                    }
                tiles[MR - 1][NB - 1](gn, (const uint8_t *)Bp + (size_t)b0 * bstride + (size_t)g0 * 64, bstride, tab,
                                      acc);
                for (int r = 0; r < MR; r++)
                    for (int j = 0; j < NB; j++) {
                        int32_t *c = C + (size_t)(m0 + r) * ldc + 16 * (b0 + j);
                        __mmask16 cm = (__mmask16)mask64(imin(16, N - 16 * (b0 + j)));
                        _mm512_mask_storeu_epi32(c, cm, acc[r * NB + j]);
                    }
                b0 += NB;
            }
        }
        m0 += MR;
    }
}
