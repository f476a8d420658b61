/* kern_avx2.c: the AVX2 table (with POPCNT and BMI2). Dot-product tiles
 * along K of 4 rows of A x 2 rows of B (1 x 8 for the rows left over), eight
 * accumulators summed across lanes together at the end. AVX2 has no vector
 * popcount: binary and ternary GEMM use POPCNT on 64-bit words. */
#include <immintrin.h>
#include <string.h>

#include "kern.h"

#define AI static inline __attribute__((always_inline))
#define TILE 8 /* accumulators per tile: 4 x 2 or 1 x 8 */

static inline int imin(int a, int b) { return a < b ? a : b; }

/* lane i of the result = sum of the 8 int32 lanes of v[i] */
AI __m256i red8_epi32(const __m256i v[TILE])
{
    __m256i t[4], u[2];
    for (int i = 0; i < 4; i++) t[i] = _mm256_hadd_epi32(v[2 * i], v[2 * i + 1]);
    for (int i = 0; i < 2; i++) u[i] = _mm256_hadd_epi32(t[2 * i], t[2 * i + 1]); /* per lane: v4i .. v4i+3 */
    return _mm256_add_epi32(_mm256_permute2x128_si256(u[0], u[1], 0x20), _mm256_permute2x128_si256(u[0], u[1], 0x31));
}

/* a tile's result (lane i * NR + j = row i, column j) to C, nv columns */
AI void store_tile(int MR, int NR, int32_t *c, size_t ldc, int nv, __m256i r)
{
    int32_t v[TILE];
    _mm256_storeu_si256((__m256i *)v, r);
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < nv; j++) c[(size_t)i * ldc + j] = v[i * NR + j];
}

/* ---- binary and ternary: POPCNT on 64-bit words, 2 x 2 pairs at a time --
 * Measured against VPSHUFB nibble counts (XOR, two lookups, VPSADBW every
 * 31 steps, 4 x 2 tiles): level on 256 x 256 x 4096, 2.3x slower on
 * 128 x 500 x 800 where the short K leaves the tails and the reductions to
 * dominate. POPCNT runs on its own port, one word per cycle, and needs
 * neither. */

static void bgemm_avx2(int M, int N, int kwords, int kbits, const uint64_t *A, size_t lda, const uint64_t *B,
                       size_t ldb, int32_t *C, size_t ldc)
{
    for (int m0 = 0; m0 < M; m0 += 2) {
        const uint64_t *a0 = A + (size_t)m0 * lda, *a1 = A + (size_t)imin(m0 + 1, M - 1) * lda;
        for (int n0 = 0; n0 < N; n0 += 2) {
            const uint64_t *b0 = B + (size_t)n0 * ldb, *b1 = B + (size_t)imin(n0 + 1, N - 1) * ldb;
            uint64_t c00 = 0, c01 = 0, c10 = 0, c11 = 0;
            for (int w = 0; w < kwords; w++) {
                uint64_t x0 = a0[w], x1 = a1[w], y0 = b0[w], y1 = b1[w];
                c00 += (uint64_t)_mm_popcnt_u64(x0 ^ y0);
                c01 += (uint64_t)_mm_popcnt_u64(x0 ^ y1);
                c10 += (uint64_t)_mm_popcnt_u64(x1 ^ y0);
                c11 += (uint64_t)_mm_popcnt_u64(x1 ^ y1);
            }
            int32_t *c = C + (size_t)m0 * ldc + n0;
            c[0] = kbits - 2 * (int32_t)c00;
            if (n0 + 1 < N) c[1] = kbits - 2 * (int32_t)c01;
            if (m0 + 1 < M) {
                c[ldc] = kbits - 2 * (int32_t)c10;
                if (n0 + 1 < N) c[ldc + 1] = kbits - 2 * (int32_t)c11;
            }
        }
    }
}

/* the panel layout: scalar POPCNTs as above, 2 rows x 4 columns, and a
 * last odd row (batch 1) 8 columns at a time */
static void bgemm_pk_avx2(int M, int N, int kwords, int kbits, const uint64_t *A, size_t lda, const uint64_t *Pd,
                          int32_t *C, size_t ldc)
{
    for (int n0 = 0; n0 < N; n0 += 8) {
        const uint64_t *p = Pd + (size_t)(n0 / 16) * 16 * (size_t)kwords + n0 % 16;
        int m0 = 0;
        for (int h = 0; h < 8 && n0 + h < N; h += 4) /* row pairs, 4 columns at a time */
            for (m0 = 0; m0 + 2 <= M; m0 += 2) {
                const uint64_t *a0 = A + (size_t)m0 * lda, *a1 = a0 + lda;
                uint64_t c0[4] = {0}, c1[4] = {0};
                for (int w = 0; w < kwords; w++) {
                    uint64_t x0 = a0[w], x1 = a1[w];
                    const uint64_t *y = p + (size_t)16 * w + h;
                    for (int j = 0; j < 4; j++) {
                        c0[j] += (uint64_t)_mm_popcnt_u64(x0 ^ y[j]);
                        c1[j] += (uint64_t)_mm_popcnt_u64(x1 ^ y[j]);
                    }
                }
                int32_t *c = C + (size_t)m0 * ldc + n0 + h;
                for (int j = 0; j < imin(4, N - n0 - h); j++) {
                    c[j] = kbits - 2 * (int32_t)c0[j];
                    c[ldc + (size_t)j] = kbits - 2 * (int32_t)c1[j];
                }
            }
        if (M % 2) {
            const uint64_t *a = A + (size_t)(M - 1) * lda;
            uint64_t c0[8] = {0};
            for (int w = 0; w < kwords; w++) {
                uint64_t x = a[w];
                const uint64_t *y = p + (size_t)16 * w;
                for (int j = 0; j < 8; j++) c0[j] += (uint64_t)_mm_popcnt_u64(x ^ y[j]);
            }
            int32_t *c = C + (size_t)(M - 1) * ldc + n0;
            for (int j = 0; j < imin(8, N - n0); j++) c[j] = kbits - 2 * (int32_t)c0[j];
        }
    }
}

AI int32_t tdot(uint64_t am, uint64_t as, uint64_t bm, uint64_t bs)
{
    uint64_t nz = am & bm;
    return (int32_t)_mm_popcnt_u64(nz) - 2 * (int32_t)_mm_popcnt_u64(nz & (as ^ bs));
}

static void tgemm_avx2(int M, int N, int kwords, const uint64_t *A, size_t lda, const uint64_t *B, size_t ldb,
                       int32_t *C, size_t ldc)
{
    for (int m0 = 0; m0 < M; m0 += 2) {
        const uint64_t *a0 = A + (size_t)m0 * lda, *a1 = A + (size_t)imin(m0 + 1, M - 1) * lda;
        for (int n0 = 0; n0 < N; n0 += 2) {
            const uint64_t *b0 = B + (size_t)n0 * ldb, *b1 = B + (size_t)imin(n0 + 1, N - 1) * ldb;
            int32_t c00 = 0, c01 = 0, c10 = 0, c11 = 0;
            for (int w = 0; w < kwords; w++) {
                uint64_t am0 = a0[w], as0 = a0[kwords + w], am1 = a1[w], as1 = a1[kwords + w];
                uint64_t bm0 = b0[w], bs0 = b0[kwords + w], bm1 = b1[w], bs1 = b1[kwords + w];
                c00 += tdot(am0, as0, bm0, bs0);
                c01 += tdot(am0, as0, bm1, bs1);
                c10 += tdot(am1, as1, bm0, bs0);
                c11 += tdot(am1, as1, bm1, bs1);
            }
            int32_t *c = C + (size_t)m0 * ldc + n0;
            c[0] = c00;
            if (n0 + 1 < N) c[1] = c01;
            if (m0 + 1 < M) {
                c[ldc] = c10;
                if (n0 + 1 < N) c[ldc + 1] = c11;
            }
        }
    }
}

/* ---- 8- and 16-bit: VPMADDWD ---------------------------------------------
 * int8 and int16 operands are widened to int16 and multiplied with VPMADDWD
 * (never VPMADDUBSW on raw bytes: it saturates). Ternary and power-of-two
 * weights are small (|w| <= 64), so for them VPMADDUBSW is exact: signed
 * activations are biased by 128 into u8, a pair sums to at most
 * 2 * 255 * 64 < 32768, and 128 * sum_k w is taken off at the end. All sums
 * wrap mod 2^32, so results are exact whenever the true sum fits in int32. */

enum { D_U8I8, D_I8I8, D_I8T, D_P2, D_I16, D_U8B };

#define BIASED(kind) ((kind) == D_I8T || (kind) == D_P2)
#define BYTES(kind) (BIASED(kind) || (kind) == D_U8B) /* unsigned x signed bytes by VPMADDUBSW */
#define DSTEP(kind) (BYTES(kind) ? 32 : 16) /* K elements per step */
#define ESIZE(kind) ((kind) == D_I16 ? 2 : 1) /* bytes per element of A */

/* elements k .. k + step of A (rem at the tail, the rest neutral) */
AI __m256i dot_load_a(int kind, const void *a, int k, int rem, int tail)
{
    const char *p = (const char *)a + (size_t)k * ESIZE(kind);
    char t[32];
    if (tail) { /* biased lanes past K become 0 after the bias */
        memset(t, BIASED(kind) ? -128 : 0, sizeof t);
        memcpy(t, p, (size_t)rem * ESIZE(kind));
        p = t;
    }
    switch (kind) {
    case D_U8I8:
        return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
    case D_I8I8:
        return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
    case D_I16:
    case D_U8B:
        return _mm256_loadu_si256((const __m256i *)p);
    default:
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)p), _mm256_set1_epi8(-128));
    }
}

/* 0xff in byte i where bit i of x is set */
AI __m256i bytes_from_bits(uint32_t x)
{
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                            3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), spread);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* elements k .. k + step of B: int16 for the VPMADDWD kinds, int8 weights for
 * the biased ones (past K: zero, or anything where A is neutral) */
AI __m256i dot_load_b(int kind, const void *b, size_t kwords, int k, int rem, int tail)
{
    switch (kind) {
    case D_I8T: {
        const uint64_t *p = (const uint64_t *)b + k / 64;
        int sh = k % 64; /* 0 or 32 */
        uint64_t m, s;
        memcpy(&m, p, sizeof m);
        memcpy(&s, p + kwords, sizeof s);
        __m256i nz = bytes_from_bits((uint32_t)(m >> sh)), sg = bytes_from_bits((uint32_t)(s >> sh));
        return _mm256_and_si256(nz, _mm256_or_si256(sg, _mm256_set1_epi8(1)));
    }
    case D_U8B: { /* -1 where the bit is set, else +1; lanes past K meet A's zeros */
        uint64_t s;
        memcpy(&s, (const uint64_t *)b + k / 64, sizeof s);
        return _mm256_or_si256(bytes_from_bits((uint32_t)(s >> (k % 64))), _mm256_set1_epi8(1));
    }
    case D_P2: {
        const uint8_t *p = (const uint8_t *)b + k / 2;
        uint8_t t[16] = {0};
        if (tail) {
            memcpy(t, p, (size_t)(rem + 1) / 2);
            p = t;
        }
        __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
        __m256i idx = _mm256_and_si256(_mm256_or_si256(x, _mm256_slli_epi16(x, 4)), _mm256_set1_epi16(0x0f0f));
        const __m256i lut = _mm256_setr_epi8(0, 1, 2, 4, 8, 16, 32, 64, 0, -1, -2, -4, -8, -16, -32, -64, 0, 1, 2, 4,
                                             8, 16, 32, 64, 0, -1, -2, -4, -8, -16, -32, -64);
        return _mm256_shuffle_epi8(lut, idx);
    }
    default: {
        const char *p = (const char *)b + (size_t)k * ESIZE(kind);
        char t[32] = {0};
        if (tail) {
            memcpy(t, p, (size_t)rem * ESIZE(kind));
            p = t;
        }
        if (kind == D_I16) return _mm256_loadu_si256((const __m256i *)p);
        return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
    }
    }
}

AI __m256i dot_mac(int kind, __m256i acc, __m256i a, __m256i b)
{
    if (BYTES(kind)) /* |pair sums| <= 2 * 255 * 128: no saturation */
        return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
}

AI void dot_step(int kind, int MR, int NR, const void *const *a, const void *const *b, size_t kwords, int k, int rem,
                 int tail, __m256i acc[TILE])
{
    __m256i av[4];
    #pragma GCC unroll 4
    for (int i = 0; i < MR; i++) av[i] = dot_load_a(kind, a[i], k, rem, tail);
    #pragma GCC unroll 8
    for (int j = 0; j < NR; j++) {
        __m256i bv = dot_load_b(kind, b[j], kwords, k, rem, tail);
        #pragma GCC unroll 4
        for (int i = 0; i < MR; i++) acc[i * NR + j] = dot_mac(kind, acc[i * NR + j], av[i], bv);
    }
}

/* The K loop of a tile, in a function of its own that leaves the
 * accumulators in memory, its tail first: inlined into the blocking loops,
 * or with the tail after the loop, gcc 12 copies every accumulator between
 * registers on each iteration. */
AI void dot_loop(int kind, int MR, int NR, int K, const void *const *a_, const void *const *b_, size_t kwords,
                 __m256i out[TILE])
{
    const void *a[4], *b[8]; /* local copies: stores through out cannot change them */
    __m256i acc[TILE];
    #pragma GCC unroll 4
    for (int i = 0; i < MR; i++) a[i] = a_[i];
    #pragma GCC unroll 8
    for (int j = 0; j < NR; j++) b[j] = b_[j];
    #pragma GCC unroll 8
    for (int i = 0; i < TILE; i++) acc[i] = _mm256_setzero_si256();
    int kfull = K - K % DSTEP(kind);
    if (kfull < K) dot_step(kind, MR, NR, a, b, kwords, kfull, K - kfull, 1, acc);
    for (int k = 0; k < kfull; k += DSTEP(kind)) dot_step(kind, MR, NR, a, b, kwords, k, 0, 0, acc);
    #pragma GCC unroll 8
    for (int i = 0; i < TILE; i++) out[i] = acc[i];
}

typedef void dot_loop_fn(int K, const void *const *a, const void *const *b, size_t kwords, __m256i out[TILE]);
#define DOT_LOOP(name, kind, MR, NR)                                                                               \
    static __attribute__((noinline)) void name(int K, const void *const *a, const void *const *b, size_t kwords,   \
                                               __m256i out[TILE])                                                  \
    {                                                                                                              \
        dot_loop(kind, MR, NR, K, a, b, kwords, out);                                                              \
    }
DOT_LOOP(u8i8_loop_4x2, D_U8I8, 4, 2)
DOT_LOOP(u8i8_loop_1x8, D_U8I8, 1, 8)
DOT_LOOP(i8i8_loop_4x2, D_I8I8, 4, 2)
DOT_LOOP(i8i8_loop_1x8, D_I8I8, 1, 8)
DOT_LOOP(i16_loop_4x2, D_I16, 4, 2)
DOT_LOOP(i16_loop_1x8, D_I16, 1, 8)
DOT_LOOP(i8t_loop_4x2, D_I8T, 4, 2)
DOT_LOOP(i8t_loop_1x8, D_I8T, 1, 8)
DOT_LOOP(p2_loop_4x2, D_P2, 4, 2)
DOT_LOOP(p2_loop_1x8, D_P2, 1, 8)
DOT_LOOP(u8b_loop_4x2, D_U8B, 4, 2)
DOT_LOOP(u8b_loop_1x8, D_U8B, 1, 8)

AI __m256i dot_tile(dot_loop_fn *loop, int K, const void *const *a, const void *const *b, size_t kwords)
{
    __m256i acc[TILE];
    loop(K, a, b, kwords, acc);
    return red8_epi32(acc);
}

/* sum_k w(n, k) over k < K for the bias correction, wrapping mod 2^32 */
AI uint32_t dot_wsum(int kind, const void *b, size_t kwords, int K)
{
    __m256i acc = _mm256_setzero_si256();
    int k = 0;
    for (; k + 32 <= K; k += 32)
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1),
                                                                           dot_load_b(kind, b, kwords, k, 0, 0)),
                                                      _mm256_set1_epi16(1)));
    int32_t v[8];
    _mm256_storeu_si256((__m256i *)v, acc);
    uint32_t s = 0;
    for (int i = 0; i < 8; i++) s += (uint32_t)v[i];
    if (k < K) {
        int8_t w[32];
        _mm256_storeu_si256((__m256i *)w, dot_load_b(kind, b, kwords, k, K - k, 1));
        for (int i = 0; i < K - k; i++) s += (uint32_t)w[i];
    }
    return s;
}

/* Blocks of 8 B rows; within one, pairs of B rows stay in L1 while every
 * 4-row tile of A streams past; the M % 4 rows left take a 1 x 8 tile.
 * Columns past N in a block repeat the last B row and are not stored.
 * ea, eb: element sizes of A and B in bytes (B's pitch for D_I8T is in
 * words). */
AI void dot_gemm(int kind, dot_loop_fn *loop4x2, dot_loop_fn *loop1x8, int M, int N, int K, const void *A, size_t lda,
                 size_t ea, const void *B, size_t ldb, size_t eb, int32_t *C, size_t ldc)
{
    size_t kwords = ((size_t)K + 63) / 64;
    for (int n0 = 0; n0 < N; n0 += 8) {
        int nv = imin(8, N - n0);
        const void *b[8];
        for (int j = 0; j < 8; j++) b[j] = (const char *)B + (size_t)imin(n0 + j, N - 1) * ldb * eb;
        uint32_t ws[8] = {0}; /* 128 * wsum, mod 2^32 */
        if (BIASED(kind))
            for (int j = 0; j < nv; j++) ws[j] = dot_wsum(kind, b[j], kwords, K) << 7;
        const __m256i corr = _mm256_loadu_si256((const __m256i *)ws);
        for (int g = 0; g < nv; g += 2) {
            /* lane 2i + j = column g + j */
            __m256i cg = _mm256_permutevar8x32_epi32(
                corr, _mm256_add_epi32(_mm256_set1_epi32(g), _mm256_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1)));
            for (int m0 = 0; m0 + 4 <= M; m0 += 4) {
                const void *a[4];
                for (int i = 0; i < 4; i++) a[i] = (const char *)A + (size_t)(m0 + i) * lda * ea;
                __m256i r = _mm256_sub_epi32(dot_tile(loop4x2, K, a, b + g, kwords), cg);
                store_tile(4, 2, C + (size_t)m0 * ldc + n0 + g, ldc, imin(2, nv - g), r);
            }
        }
        for (int m = M & ~3; m < M; m++) {
            const void *a[1] = {(const char *)A + (size_t)m * lda * ea};
            __m256i r = _mm256_sub_epi32(dot_tile(loop1x8, K, a, b, kwords), corr);
            store_tile(1, 8, C + (size_t)m * ldc + n0, ldc, nv, r);
        }
    }
}

static void i8tgemm_avx2(int M, int N, int K, const int8_t *A, size_t lda, const uint64_t *B, size_t ldb, int32_t *C,
                         size_t ldc)
{
    dot_gemm(D_I8T, i8t_loop_4x2, i8t_loop_1x8, M, N, K, A, lda, 1, B, ldb, 8, C, ldc);
}

static void u8i8gemm_avx2(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *B, size_t ldb, int32_t *C,
                          size_t ldc)
{
    dot_gemm(D_U8I8, u8i8_loop_4x2, u8i8_loop_1x8, M, N, K, A, lda, 1, B, ldb, 1, C, ldc);
}

/* widened to int16, so the bias (and bsum) is not needed */
static void u8bgemm_avx2(int M, int N, int K, const uint8_t *A, size_t lda, const uint64_t *B, size_t ldb, int32_t *C,
                         size_t ldc)
{
    dot_gemm(D_U8B, u8b_loop_4x2, u8b_loop_1x8, M, N, K, A, lda, 1, B, ldb, 8, C, ldc);
}

static void i8i8gemm_avx2(int M, int N, int K, const int8_t *A, size_t lda, const int8_t *B, size_t ldb,
                          const int32_t *bsum, int32_t *C, size_t ldc)
{
    (void)bsum;
    dot_gemm(D_I8I8, i8i8_loop_4x2, i8i8_loop_1x8, M, N, K, A, lda, 1, B, ldb, 1, C, ldc);
}

static void i16gemm_avx2(int M, int N, int K, const int16_t *A, size_t lda, const int16_t *B, size_t ldb, int32_t *C,
                         size_t ldc)
{
    dot_gemm(D_I16, i16_loop_4x2, i16_loop_1x8, M, N, K, A, lda, 2, B, ldb, 2, C, ldc);
}

static void p2gemm_avx2(int M, int N, int K, const int8_t *A, size_t lda, const uint8_t *B, size_t ldb, int32_t *C,
                        size_t ldc)
{
    dot_gemm(D_P2, p2_loop_4x2, p2_loop_1x8, M, N, K, A, lda, 1, B, ldb, 1, C, ldc);
}

/* eight channels per step: the flip byte spread to lanes, the comparison's
 * sign bits gathered by movemask */
static void thresh_bits_avx2(int M, int N, const int32_t *C, size_t ldc, const int32_t *thr, const uint8_t *flip,
                             uint8_t *out, size_t ldo)
{
    const __m256i lanebit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128), zero = _mm256_setzero_si256();
    for (int n0 = 0; n0 < N; n0 += 8) {
        int r = N - n0 < 8 ? N - n0 : 8;
        __m256i lm = _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256i t = _mm256_maskload_epi32(thr + n0, lm);
        __m256i fm = zero;
        if (flip) fm = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(flip[n0 / 8]), lanebit), lanebit);
        for (int m = 0; m < M; m++) {
            __m256i v = _mm256_maskload_epi32(C + (size_t)m * ldc + n0, lm);
            v = _mm256_blendv_epi8(v, _mm256_sub_epi32(zero, v), fm);
            __m256i lt = _mm256_and_si256(_mm256_cmpgt_epi32(t, v), lm);
            out[(size_t)m * ldo + (size_t)(n0 / 8)] = (uint8_t)_mm256_movemask_ps(_mm256_castsi256_ps(lt));
        }
    }
}

/* ---- direct convolutions into packed signs (kern.h qatrt_dconv) ----------
 * 8 output channels per vector, R positions of a row sharing each weight
 * vector (the last R of a row again when R does not divide it). No
 * VPOPCNTD here: bytes counted by a nibble table, summed in bytes for up
 * to 31 words, then into the 32-bit lanes. */
#define DC2_R 4

AI __m256i popcnt_epi8(__m256i v)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2,
                                         2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(v, low)),
                           _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
}

AI __m256i bytes_to_lanes(__m256i c8)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(c8, _mm256_set1_epi8(1)), _mm256_set1_epi16(1));
}

AI uint32_t ld32u(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* the first x0 and count n of the next tile of a row of ow positions */
AI int dc2_tile(int ow, int ox0, int *x0)
{
    *x0 = ox0;
    if (ow < DC2_R) return 1;
    if (ox0 + DC2_R > ow) *x0 = ow - DC2_R;
    return DC2_R;
}

AI unsigned lanes_bits(__m256i m) { return (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(m)); }

static void bconv_bits_avx2(const qatrt_dconv *d0, const uint8_t *in)
{
    /* a copy the stores of bits cannot alias (they could alias *d0) */
    const qatrt_dconv dv = *d0, *d = &dv;
    int T = (int)((size_t)d->kw * d->px / 4);
    size_t D = (size_t)d->kh * (size_t)T;
    for (int g = 0; g < d->N / 8; g++) {
        const uint32_t *w = (const uint32_t *)d->W + (size_t)(g / 2) * D * 16 + 8 * (size_t)(g % 2);
        unsigned f = d->flip ? d->flip[g] : 0;
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox0 = 0, x0, n; ox0 < d->ow; ox0 = x0 + n) {
                n = dc2_tile(d->ow, ox0, &x0);
                const uint8_t *a[DC2_R];
                __m256i c8[DC2_R], c32[DC2_R];
                for (int r = 0; r < DC2_R; r++) {
                    a[r] = in + (size_t)(oy * d->stride) * d->row + (size_t)((x0 + (r < n ? r : 0)) * d->stride) * d->px;
                    c8[r] = c32[r] = _mm256_setzero_si256();
                }
                int cnt = 0;
                for (int ky = 0; ky < d->kh; ky++)
                    for (int t = 0; t < T; t++) {
                        __m256i wv = _mm256_loadu_si256((const __m256i *)(const void *)(w + ((size_t)ky * T + (size_t)t) * 16));
                        for (int r = 0; r < DC2_R; r++) {
                            __m256i av = _mm256_set1_epi32((int)ld32u(a[r] + (size_t)ky * d->row + 4 * (size_t)t));
                            c8[r] = _mm256_add_epi8(c8[r], popcnt_epi8(_mm256_xor_si256(av, wv)));
                        }
                        if (++cnt == 31) {
                            for (int r = 0; r < DC2_R; r++) {
                                c32[r] = _mm256_add_epi32(c32[r], bytes_to_lanes(c8[r]));
                                c8[r] = _mm256_setzero_si256();
                            }
                            cnt = 0;
                        }
                    }
                for (int r = 0; r < n; r++) {
                    __m256i pop = _mm256_add_epi32(c32[r], bytes_to_lanes(c8[r]));
                    const int32_t *b = d->thr + (size_t)qatrt_dconv_cls(d, oy, x0 + r) * (size_t)d->N + 8 * (size_t)g;
                    __m256i bm1 = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(const void *)b), _mm256_set1_epi32(1));
                    qatrt_dconv_put(d, oy, x0 + r, (size_t)g, (uint8_t)(lanes_bits(_mm256_cmpgt_epi32(pop, bm1)) ^ f));
                }
            }
    }
}

static void i16conv_bits_avx2(const qatrt_dconv *d, const int16_t *in)
{
    size_t Q = ((size_t)d->kw * d->px + 1) / 2;
    const __m256i lanebit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128), zero = _mm256_setzero_si256();
    const __m128i sh = _mm_cvtsi32_si128(d->shift);
    for (int g = 0; g < d->N / 8; g++) {
        const int16_t *w = (const int16_t *)d->W + (size_t)(g / 2) * (size_t)d->kh * Q * 32 + 16 * (size_t)(g % 2);
        __m256i fm = zero;
        if (d->flip) fm = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(d->flip[g]), lanebit), lanebit);
        __m256i t = _mm256_loadu_si256((const __m256i *)(const void *)(d->thr + 8 * (size_t)g));
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox0 = 0, x0, n; ox0 < d->ow; ox0 = x0 + n) {
                n = dc2_tile(d->ow, ox0, &x0);
                const int16_t *a[DC2_R];
                __m256i acc[DC2_R];
                for (int r = 0; r < DC2_R; r++) {
                    a[r] = in + (size_t)(oy * d->stride) * d->row + (size_t)((x0 + (r < n ? r : 0)) * d->stride) * d->px;
                    acc[r] = zero;
                }
                for (int ky = 0; ky < d->kh; ky++)
                    for (size_t q = 0; q < Q; q++) {
                        __m256i wv = _mm256_loadu_si256((const __m256i *)(const void *)(w + ((size_t)ky * Q + q) * 32));
                        for (int r = 0; r < DC2_R; r++) {
                            __m256i av = _mm256_set1_epi32((int)ld32u(a[r] + (size_t)ky * d->row + 2 * q));
                            acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(av, wv));
                        }
                    }
                for (int r = 0; r < n; r++) {
                    __m256i v = _mm256_sll_epi32(acc[r], sh);
                    v = _mm256_blendv_epi8(v, _mm256_sub_epi32(zero, v), fm);
                    d->out[((size_t)oy * d->ow + (size_t)(x0 + r)) * d->ldo + (size_t)g] =
                        (uint8_t)lanes_bits(_mm256_cmpgt_epi32(t, v));
                }
            }
    }
}

/* int64 x int64: four lanes of a dot product along K, each 64-bit
 * product (mod 2^64, as the scalar one wraps) from three 32 x 32 -> 64
 * multiplies, lo lo + ((hi lo + lo hi) << 32) */
static inline __m256i mul64_avx2(__m256i a, __m256i b)
{
    __m256i lo = _mm256_mul_epu32(a, b);
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b),
                                     _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
    return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

void qatrt_x64gemm_avx2(int M, int N, int K, const int64_t *A, size_t lda, const int64_t *B, size_t ldb, int64_t *C,
                        size_t ldc)
{
    int K4 = K & ~3;
    for (int m = 0; m < M; m++) {
        const int64_t *a = A + (size_t)m * lda;
        for (int n = 0; n < N; n++) {
            const int64_t *b = B + (size_t)n * ldb;
            __m256i acc = _mm256_setzero_si256();
            for (int k = 0; k < K4; k += 4)
                acc = _mm256_add_epi64(acc, mul64_avx2(_mm256_loadu_si256((const __m256i *)(const void *)(a + k)),
                                                       _mm256_loadu_si256((const __m256i *)(const void *)(b + k))));
            uint64_t l[4];
            _mm256_storeu_si256((__m256i *)(void *)l, acc);
            uint64_t s = l[0] + l[1] + l[2] + l[3];
            for (int k = K4; k < K; k++) s += (uint64_t)a[k] * (uint64_t)b[k];
            C[(size_t)m * ldc + n] = (int64_t)s;
        }
    }
}

extern const qatrt_kernels qatrt_kernels_avx2;

/* int8 panels (kern.h), no VPDPBUSD: per group of 4 weights, 4 columns
 * widened to int16 against A's 4 bytes (widened, broadcast) by VPMADDWD,
 * two partial sums per column until the end */
AI void i8pk_avx2(int sgn, int M, int N, int K, const void *A, size_t lda, const int8_t *Pd, int32_t *C, size_t ldc)
{
    size_t G = ((size_t)K + 3) / 4;
    for (int m = 0; m < M; m++) {
        const uint8_t *a = (const uint8_t *)A + (size_t)m * lda;
        for (int n0 = 0; n0 < N; n0 += 16) {
            const int8_t *p = Pd + (size_t)(n0 / 16) * G * 64;
            __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                              _mm256_setzero_si256()};
            for (size_t g = 0; g < G; g++) {
                uint32_t v = 0;
                if (4 * g + 4 <= (size_t)K) memcpy(&v, a + 4 * g, 4);
                else /* the last K % 4 bytes; the weights past K are zero */
                    for (size_t k = (size_t)K; k-- > 4 * g;) v = v << 8 | a[k];
                __m128i x = _mm_set1_epi32((int)v);
                __m256i av = sgn ? _mm256_cvtepi8_epi16(x) : _mm256_cvtepu8_epi16(x);
                for (int q = 0; q < 4; q++) {
                    __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(p + g * 64 + 16 * (size_t)q)));
                    acc[q] = _mm256_add_epi32(acc[q], _mm256_madd_epi16(w, av));
                }
            }
            /* acc[q]: columns 4q .. 4q + 3, two sums each */
            __m256i lo = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[0], acc[1]), 0xd8);
            __m256i hi = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[2], acc[3]), 0xd8);
            int32_t tmp[16];
            _mm256_storeu_si256((__m256i *)(void *)tmp, lo);
            _mm256_storeu_si256((__m256i *)(void *)(tmp + 8), hi);
            memcpy(C + (size_t)m * ldc + n0, tmp, sizeof(int32_t) * (size_t)imin(16, N - n0));
        }
    }
}

static void u8i8gemm_pk_avx2(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *Pd, int32_t *C,
                             size_t ldc)
{
    i8pk_avx2(0, M, N, K, A, lda, Pd, C, ldc);
}

static void i8i8gemm_pk_avx2(int M, int N, int K, const int8_t *A, size_t lda, const int8_t *Pd, const int32_t *bsum,
                             int32_t *C, size_t ldc)
{
    (void)bsum;
    i8pk_avx2(1, M, N, K, A, lda, Pd, C, ldc);
}

static void u8i8gemm_bits_avx2(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *B, size_t ldb,
                               const int32_t *thr, const uint8_t *flip, uint8_t *out, size_t ldo)
{
    qatrt_u8i8gemm_bits_via(&qatrt_kernels_avx2, M, N, K, A, lda, B, ldb, thr, flip, out, ldo);
}

/* ---- multi-bit binary weights (ALQ) ----------------------------------------
 * Per row: each group's sum S_j of its n values once (shared by every
 * channel and plane); per plane the sum of the values whose sign bit is
 * set, 32 at a time: the 32 bits widened to a byte mask (shuffle, AND,
 * compare), ANDed with the values biased to unsigned (x + 128 for int8),
 * summed by SAD; then plane = S_j - 2 (that - 128 popcount). */
static inline uint32_t mb_bits32(const uint8_t *bits, size_t b, size_t nbytes)
{
    uint64_t w = 0; /* bytes of the stream from b / 8, never past its end */
    size_t at = b / 8, k = nbytes - at < 8 ? nbytes - at : 8;
    memcpy(&w, bits + at, k);
    return (uint32_t)(w >> (b % 8));
}

AI __m256i mb_mask(uint32_t v)
{
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                         3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), sel);
    return _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
}

AI int64_t hsum64(__m256i v)
{
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

/* the sum of n values (uint8, or int8 biased by 128 and unbiased after) */
static inline int64_t mb_sum(const uint8_t *x, size_t n, __m256i bias)
{
    __m256i t = _mm256_setzero_si256();
    size_t e = 0;
    for (; e + 32 <= n; e += 32)
        t = _mm256_add_epi64(t, _mm256_sad_epu8(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(x + e)), bias),
                                                _mm256_setzero_si256()));
    int64_t s = hsum64(t);
    int u8 = _mm256_testz_si256(bias, bias);
    s -= u8 ? 0 : 128 * (int64_t)e;
    for (; e < n; e++) s += u8 ? (int64_t)x[e] : (int64_t)(int8_t)x[e];
    return s;
}

#define MB_CACHE 1024 /* group sums kept per row; more groups are summed again per channel */

void qatrt_mbgemm_avx2(int M, int N, int K, const uint8_t *A, size_t lda, int a_u8, const qatrt_mb *B, int32_t *C,
                       size_t ldc)
{
    (void)K; /* = the groups' lengths summed */
    size_t gc = (size_t)B->gc, nbytes = (B->nbits + 7) / 8;
    const __m256i bias = _mm256_set1_epi8(a_u8 ? 0 : (char)0x80), zero = _mm256_setzero_si256();
    int64_t sums[MB_CACHE];
    size_t cached = gc < MB_CACHE ? gc : MB_CACHE;
    for (int m = 0; m < M; m++) {
        const uint8_t *a = A + (size_t)m * lda;
        for (size_t j = 0; j < cached; j++) sums[j] = mb_sum(a + qatrt_mb_off(B, j), qatrt_mb_len(B, j), bias);
        for (int c = 0; c < N; c++) {
            int64_t acc = 0;
            size_t q = B->chan[c], bit = qatrt_mb_bit0(B, (size_t)c);
            for (size_t j = 0; j < gc; j++) {
                int I = B->bw[(size_t)c * gc + j];
                if (!I) continue;
                size_t n = qatrt_mb_len(B, j);
                const uint8_t *x = a + qatrt_mb_off(B, j);
                int64_t S = j < cached ? sums[j] : mb_sum(x, n, bias);
                for (int i = 0; i < I; i++, q++, bit += n) {
                    __m256i t = zero;
                    int64_t ones = 0;
                    for (size_t e = 0; e < n; e += 32) {
                        size_t len = n - e < 32 ? n - e : 32;
                        uint32_t v = mb_bits32(B->bits, bit + e, nbytes);
                        if (len < 32) v &= (1u << len) - 1;
                        ones += __builtin_popcount(v);
                        __m256i xv;
                        if (len == 32) {
                            xv = _mm256_loadu_si256((const __m256i *)(const void *)(x + e));
                        } else {
                            uint8_t tmp[32] = {0}; /* never read past the row */
                            memcpy(tmp, x + e, len);
                            xv = _mm256_loadu_si256((const __m256i *)(const void *)tmp);
                        }
                        xv = _mm256_and_si256(_mm256_xor_si256(xv, bias), mb_mask(v));
                        t = _mm256_add_epi64(t, _mm256_sad_epu8(xv, zero));
                    }
                    int64_t set = hsum64(t) - (a_u8 ? 0 : 128 * ones); /* the values whose bit is set */
                    acc += (int64_t)B->coef[q] * (S - 2 * set);
                }
            }
            C[(size_t)m * ldc + c] = (int32_t)acc;
        }
    }
}

/* ---- int32 x int8 (a first layer's fixed-point pixels) ---------------------
 * Eight products per VPMULLD, the weights widened from int8 (K is a first
 * layer's kh kw C: small). */
void qatrt_i32i8gemm_avx2(int M, int N, int K, const int32_t *A, size_t lda, const int8_t *B, size_t ldb, int32_t *C,
                          size_t ldc)
{
    int K8 = K & ~7;
    for (int m = 0; m < M; m++) {
        const int32_t *a = A + (size_t)m * lda;
        for (int n = 0; n < N; n++) {
            const int8_t *b = B + (size_t)n * ldb;
            __m256i acc = _mm256_setzero_si256();
            for (int k = 0; k < K8; k += 8) {
                __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(a + k));
                __m256i w = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(b + k)));
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(x, w));
            }
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
            /* int32 lanes wrap like the int64 sum truncated: the total fits */
            uint32_t dot = (uint32_t)_mm_cvtsi128_si32(s);
            for (int k = K8; k < K; k++) dot += (uint32_t)((int64_t)a[k] * b[k]);
            C[(size_t)m * ldc + n] = (int32_t)dot;
        }
    }
}

/* defined here, picked up by kern_dispatch.c */
/* stream keys -> float32 bits, 8 lanes: k < 0 ? sign | -k : k */
static inline __m256i unkey8(__m256i k)
{
    __m256i neg = _mm256_cmpgt_epi32(_mm256_setzero_si256(), k);
    __m256i nk = _mm256_or_si256(_mm256_sub_epi32(_mm256_setzero_si256(), k), _mm256_set1_epi32((int)0x80000000u));
    return _mm256_blendv_epi8(k, nk, neg);
}

/* qatc_f32_add's fast path on 8 lanes, as key_add_avx512 but without a
 * vector count of leading zeros: a difference that lost more than one bit
 * (close magnitudes, opposite signs) goes to qatc_key_add with the lanes
 * off the fast path */
static void key_add_avx2(size_t n, const int32_t *ka, const int32_t *kb, int32_t *out, int relu)
{
    const __m256i sgn = _mm256_set1_epi32((int)0x80000000u), absm = _mm256_set1_epi32(0x7fffffff);
    const __m256i mant = _mm256_set1_epi32(0x7fffff), hid = _mm256_set1_epi32(0x800000), one = _mm256_set1_epi32(1);
    const __m256i zero = _mm256_setzero_si256(), e254 = _mm256_set1_epi32(254);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i a = unkey8(_mm256_loadu_si256((const __m256i *)(const void *)(ka + i)));
        __m256i b = unkey8(_mm256_loadu_si256((const __m256i *)(const void *)(kb + i)));
        __m256i sw = _mm256_cmpgt_epi32(_mm256_and_si256(b, absm), _mm256_and_si256(a, absm));
        __m256i A = _mm256_blendv_epi8(a, b, sw), B = _mm256_blendv_epi8(b, a, sw);
        __m256i aa = _mm256_and_si256(A, absm), bb = _mm256_and_si256(B, absm);
        __m256i ea = _mm256_srli_epi32(aa, 23), eb = _mm256_srli_epi32(bb, 23);
        __m256i bz = _mm256_cmpeq_epi32(bb, zero);
        __m256i special = _mm256_or_si256(_mm256_andnot_si256(bz, _mm256_cmpeq_epi32(eb, zero)),
                                          _mm256_cmpgt_epi32(ea, e254));
        __m256i ma = _mm256_slli_epi32(_mm256_or_si256(_mm256_and_si256(aa, mant), hid), 6);
        __m256i mb = _mm256_slli_epi32(_mm256_or_si256(_mm256_and_si256(bb, mant), hid), 6);
        __m256i d = _mm256_sub_epi32(ea, eb);
        __m256i low = _mm256_sub_epi32(_mm256_sllv_epi32(one, d), one);
        __m256i st = _mm256_andnot_si256(_mm256_cmpeq_epi32(_mm256_and_si256(mb, low), zero), one);
        mb = _mm256_or_si256(_mm256_srlv_epi32(mb, d), st);
        __m256i diff = _mm256_srai_epi32(_mm256_xor_si256(A, B), 31);
        __m256i msum = _mm256_add_epi32(ma, mb), mdif = _mm256_sub_epi32(ma, mb);
        __m256i carry = _mm256_andnot_si256(diff, _mm256_srai_epi32(_mm256_slli_epi32(msum, 1), 31));
        msum = _mm256_blendv_epi8(msum, _mm256_or_si256(_mm256_srli_epi32(msum, 1), _mm256_and_si256(msum, one)), carry);
        __m256i e = _mm256_sub_epi32(ea, carry); /* carry lanes are -1 */
        __m256i zr = _mm256_and_si256(diff, _mm256_cmpeq_epi32(mdif, zero));
        __m256i s1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(1 << 29), mdif); /* top below bit 29: shift once */
        __m256i lost = _mm256_cmpgt_epi32(_mm256_set1_epi32(1 << 28), mdif); /* below bit 28: more than one */
        special = _mm256_or_si256(special, _mm256_andnot_si256(zr, _mm256_and_si256(diff, lost)));
        special = _mm256_or_si256(special, _mm256_and_si256(_mm256_and_si256(diff, s1), _mm256_cmpeq_epi32(ea, one)));
        __m256i mdn = _mm256_blendv_epi8(mdif, _mm256_slli_epi32(mdif, 1), s1);
        __m256i m = _mm256_blendv_epi8(msum, mdn, diff);
        e = _mm256_add_epi32(e, _mm256_and_si256(diff, s1)); /* s1 lanes are -1 */
        __m256i rem = _mm256_and_si256(m, _mm256_set1_epi32(63));
        m = _mm256_srli_epi32(m, 6);
        __m256i up = _mm256_or_si256(_mm256_cmpgt_epi32(rem, _mm256_set1_epi32(32)),
                                     _mm256_and_si256(_mm256_cmpeq_epi32(rem, _mm256_set1_epi32(32)),
                                                      _mm256_cmpeq_epi32(_mm256_and_si256(m, one), one)));
        m = _mm256_sub_epi32(m, up);
        __m256i ovf = _mm256_srai_epi32(_mm256_slli_epi32(m, 7), 31); /* bit 24 */
        m = _mm256_blendv_epi8(m, _mm256_srli_epi32(m, 1), ovf);
        e = _mm256_sub_epi32(e, ovf);
        special = _mm256_or_si256(special, _mm256_andnot_si256(_mm256_or_si256(zr, bz), _mm256_cmpgt_epi32(e, e254)));
        __m256i r = _mm256_or_si256(_mm256_or_si256(_mm256_and_si256(A, sgn), _mm256_slli_epi32(e, 23)),
                                    _mm256_and_si256(m, mant));
        r = _mm256_andnot_si256(zr, r);
        r = _mm256_blendv_epi8(r, A, bz);
        __m256i rn = _mm256_cmpgt_epi32(zero, r);
        __m256i key = _mm256_blendv_epi8(r, _mm256_sub_epi32(zero, _mm256_and_si256(r, absm)), rn);
        if (relu) key = _mm256_max_epi32(key, zero);
        _mm256_storeu_si256((__m256i *)(void *)(out + i), key);
        for (unsigned sp = (unsigned)_mm256_movemask_epi8(special) & 0x11111111u; sp; sp &= sp - 1) {
            size_t j = i + (size_t)(__builtin_ctz(sp) / 4); /* a bit per lane */
            qatrt_key_add_scalar(1, ka + j, kb + j, out + j, relu);
        }
    }
    qatrt_key_add_scalar(n - i, ka + i, kb + i, out + i, relu);
}

const qatrt_kernels qatrt_kernels_avx2 = {
    .isa = QATRT_ISA_AVX2,
    .name = "avx2",
    .bgemm = bgemm_avx2,
    .bgemm_pk = bgemm_pk_avx2,
    .tgemm = tgemm_avx2,
    .i8tgemm = i8tgemm_avx2,
    .u8i8gemm = u8i8gemm_avx2,
    .u8bgemm = u8bgemm_avx2,
    .u8bgemm_pk = qatrt_u8bgemm_pk_avx2,
    .u8i8gemm_pk = u8i8gemm_pk_avx2,
    .i8i8gemm_pk = i8i8gemm_pk_avx2,
    .i8i8gemm = i8i8gemm_avx2,
    .i16gemm = i16gemm_avx2,
    .p2gemm = p2gemm_avx2,
    .u8i8gemm_bits = u8i8gemm_bits_avx2,
    .thresh_bits = thresh_bits_avx2,
    .thresh_levels = qatrt_thresh_levels_ref,
    .mbgemm = qatrt_mbgemm_avx2,
    .i32i8gemm = qatrt_i32i8gemm_avx2,
    .key_add = key_add_avx2,
    .bconv_bits = bconv_bits_avx2,
    .i16conv_bits = i16conv_bits_avx2,
    .x64gemm = qatrt_x64gemm_avx2,
    .tab16_map = qatrt_tab16_map_ref,
};
