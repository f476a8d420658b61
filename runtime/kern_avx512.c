/* kern_avx512.c: the AVX-512 table (F, BW, VL, VPOPCNTDQ, VNNI).
 * 8- and 16-bit kernels are dot-product tiles along K (3 rows of A x 8 rows
 * of B, 1 x 16 for the rows left over) whose accumulators stay in registers
 * for the whole of K and are summed across lanes once, together, at the
 * end; ternary and power-of-two weights are first decoded to int8. Binary
 * and ternary GEMM transpose a block of B instead, so that each lane is one
 * column of C. */
#include <immintrin.h>
#include <string.h>

#include "kern.h"

#define AI static inline __attribute__((always_inline))
#define TILE 16 /* accumulators of a popcount tile: 4 x 4 or 1 x 16 */

/* ---- horizontal sums of 16 accumulators at once ------------------------- */

/* lane i of the result = sum of the 16 int32 lanes of v[i] */
AI __m512i red16_epi32(const __m512i v[TILE])
{
    __m512i t[8], u[4], w[2];
    #pragma GCC unroll 16
    for (int i = 0; i < 8; i++) /* per 128-bit lane: [v2i 0+2, v2i+1 0+2, v2i 1+3, v2i+1 1+3] */
        t[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    #pragma GCC unroll 16
    for (int i = 0; i < 4; i++) /* per 128-bit lane: v4i .. v4i+3, each summed within the lane */
        u[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * i], t[2 * i + 1]),
                                _mm512_unpackhi_epi64(t[2 * i], t[2 * i + 1]));
    #pragma GCC unroll 16
    for (int i = 0; i < 2; i++) /* lanes 0,1 hold halves of v8i..; 2,3 of v8i+4.. */
        w[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                                _mm512_shuffle_i32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i32x4(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* lane i of the result = sum of the 16 int32 lanes of v[i], for 8 vectors */
AI __m256i red8_epi32(const __m512i v[8])
{
    __m512i t[4], u[2];
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        t[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    #pragma GCC unroll 2
    for (int i = 0; i < 2; i++)
        u[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * i], t[2 * i + 1]),
                                _mm512_unpackhi_epi64(t[2 * i], t[2 * i + 1]));
    __m512i w = _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_castsi512_si256(_mm512_add_epi32(_mm512_shuffle_i32x4(w, w, _MM_SHUFFLE(3, 1, 2, 0)),
                                                   _mm512_shuffle_i32x4(w, w, _MM_SHUFFLE(2, 0, 3, 1))));
}

/* lane i of the result = sum of the 8 int64 lanes of v[i], truncated to 32 bits */
AI __m512i red16_epi64(const __m512i v[TILE])
{
    __m512i t[8], u[4], w[2];
    #pragma GCC unroll 16
    for (int i = 0; i < 8; i++) /* per 128-bit lane: [v2i, v2i+1] */
        t[i] = _mm512_add_epi64(_mm512_unpacklo_epi64(v[2 * i], v[2 * i + 1]),
                                _mm512_unpackhi_epi64(v[2 * i], v[2 * i + 1]));
    #pragma GCC unroll 16
    for (int i = 0; i < 4; i++)
        u[i] = _mm512_add_epi64(_mm512_shuffle_i64x2(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                                _mm512_shuffle_i64x2(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    #pragma GCC unroll 16
    for (int i = 0; i < 2; i++) /* qword q of w[i] = total of v[8i + q] */
        w[i] = _mm512_add_epi64(_mm512_shuffle_i64x2(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                                _mm512_shuffle_i64x2(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(w[0])), _mm512_cvtepi64_epi32(w[1]), 1);
}

/* a 4 x 4 tile's result (lane 4i + j = row i, column j) to C, columns in cm */
AI void store4x4(int32_t *c, size_t ldc, __mmask8 cm, __m512i r)
{
    _mm_mask_storeu_epi32(c, cm, _mm512_castsi512_si128(r));
    _mm_mask_storeu_epi32(c + ldc, cm, _mm512_extracti32x4_epi32(r, 1));
    _mm_mask_storeu_epi32(c + 2 * ldc, cm, _mm512_extracti32x4_epi32(r, 2));
    _mm_mask_storeu_epi32(c + 3 * ldc, cm, _mm512_extracti32x4_epi32(r, 3));
}

static inline int imin(int a, int b) { return a < b ? a : b; }

/* ---- binary and ternary: XOR / AND, then VPOPCNTQ ----------------------- */

enum { POP_BIN, POP_TERN };

AI __m512i ld64(const uint64_t *p, __mmask8 km, int tail)
{
    return tail ? _mm512_maskz_loadu_epi64(km, p) : _mm512_loadu_si512(p);
}

/* 8 words (or the km ones at the tail) of K for an MR x NR tile; pl is the
 * offset of the sign plane */
AI void pop_step(int kind, int MR, int NR, const uint64_t *const *a, const uint64_t *const *b, size_t pl, int w,
                 __mmask8 km, int tail, __m512i acc[TILE])
{
    __m512i am[4], as[4] = {0};
    #pragma GCC unroll 4
    for (int i = 0; i < MR; i++) {
        am[i] = ld64(a[i] + w, km, tail);
        if (kind == POP_TERN) as[i] = ld64(a[i] + pl + w, km, tail);
    }
    #pragma GCC unroll 16
    for (int j = 0; j < NR; j++) {
        __m512i bm = ld64(b[j] + w, km, tail), bs = _mm512_setzero_si512();
        if (kind == POP_TERN) bs = ld64(b[j] + pl + w, km, tail);
        #pragma GCC unroll 4
        for (int i = 0; i < MR; i++) {
            __m512i *c = &acc[i * NR + j];
            if (kind == POP_BIN) {
                *c = _mm512_add_epi64(*c, _mm512_popcnt_epi64(_mm512_xor_si512(am[i], bm)));
            } else { /* +1 where both nonzero with equal signs, -1 where the signs differ */
                __m512i nz = _mm512_and_si512(am[i], bm);
                __m512i pos = _mm512_ternarylogic_epi64(nz, as[i], bs, 0x90); /* nz & ~(as ^ bs) */
                __m512i neg = _mm512_ternarylogic_epi64(nz, as[i], bs, 0x60); /* nz & (as ^ bs) */
                *c = _mm512_sub_epi64(_mm512_add_epi64(*c, _mm512_popcnt_epi64(pos)), _mm512_popcnt_epi64(neg));
            }
        }
    }
}

AI void pop_loop(int kind, int MR, int NR, int kwords, const uint64_t *const *a_, const uint64_t *const *b_,
                 __m512i out[TILE])
{
    /* local copies: nothing stored through out can then change them */
    const uint64_t *a[4], *b[16];
    __m512i acc[TILE];
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++) a[i] = a_[i];
    #pragma GCC unroll 16
    for (int j = 0; j < NR; j++) b[j] = b_[j];
    #pragma GCC unroll 16
    for (int i = 0; i < TILE; i++) acc[i] = _mm512_setzero_si512();
    int wfull = kwords - kwords % 8; /* the masked tail first, as in dot_loop */
    if (wfull < kwords)
        pop_step(kind, MR, NR, a, b, (size_t)kwords, wfull, (__mmask8)((1u << (kwords - wfull)) - 1), 1, acc);
    for (int w = 0; w < wfull; w += 8) pop_step(kind, MR, NR, a, b, (size_t)kwords, w, 0xff, 0, acc);
    #pragma GCC unroll 16
    for (int i = 0; i < TILE; i++) out[i] = acc[i];
}

/* The K loops are functions of their own that leave the accumulators in
 * memory: inlined into the blocking loops, or with a separate tail step,
 * gcc 12 copies every accumulator between registers on every iteration. */
typedef void pop_loop_fn(int kwords, const uint64_t *const *a, const uint64_t *const *b, __m512i acc[TILE]);
#define POP_LOOP(name, kind, MR, NR)                                                                               \
    static __attribute__((noinline)) void name(int kwords, const uint64_t *const *a, const uint64_t *const *b,     \
                                               __m512i acc[TILE])                                                  \
    {                                                                                                              \
        pop_loop(kind, MR, NR, kwords, a, b, acc);                                                                 \
    }
POP_LOOP(bin_loop_4x4, POP_BIN, 4, 4)
POP_LOOP(bin_loop_1x16, POP_BIN, 1, 16)
POP_LOOP(tern_loop_4x4, POP_TERN, 4, 4)
POP_LOOP(tern_loop_1x16, POP_TERN, 1, 16)

AI __m512i pop_tile(pop_loop_fn *loop, int kwords, const uint64_t *const *a, const uint64_t *const *b)
{
    __m512i acc[TILE];
    loop(kwords, a, b, acc);
    return red16_epi64(acc);
}

/* C from the tile's sums: bgemm's are popcounts of a ^ b */
AI __m512i pop_finish(int kind, __m512i s, int kbits)
{
    return kind == POP_BIN ? _mm512_sub_epi32(_mm512_set1_epi32(kbits), _mm512_add_epi32(s, s)) : s;
}

/* For M < 4 (batch 1), where transposing B (bt_gemm below) would not pay:
 * blocks of 16 B rows; within one, 4-row groups stay in L1 while every
 * 4-row tile of A streams past; the M % 4 rows left take a 1 x 16 tile.
 * Columns past N in a block repeat the last B row and are not stored. */
AI void pop_gemm(int kind, pop_loop_fn *loop4x4, pop_loop_fn *loop1x16, int M, int N, int kwords, int kbits,
                 const uint64_t *A, size_t lda, const uint64_t *B, size_t ldb, int32_t *C, size_t ldc)
{
    for (int n0 = 0; n0 < N; n0 += 16) {
        int nv = imin(16, N - n0);
        const uint64_t *b[16];
        for (int j = 0; j < 16; j++) b[j] = B + (size_t)imin(n0 + j, N - 1) * ldb;
        for (int g = 0; g < nv; g += 4) {
            __mmask8 cm = (__mmask8)((1u << imin(4, nv - g)) - 1);
            for (int m0 = 0; m0 + 4 <= M; m0 += 4) {
                const uint64_t *a[4] = {A + (size_t)m0 * lda, A + (size_t)(m0 + 1) * lda, A + (size_t)(m0 + 2) * lda,
                                        A + (size_t)(m0 + 3) * lda};
                __m512i r = pop_finish(kind, pop_tile(loop4x4, kwords, a, b + g), kbits);
                store4x4(C + (size_t)m0 * ldc + n0 + g, ldc, cm, r);
            }
        }
        for (int m = M & ~3; m < M; m++) {
            const uint64_t *a[1] = {A + (size_t)m * lda};
            __m512i r = pop_finish(kind, pop_tile(loop1x16, kwords, a, b), kbits);
            _mm512_mask_storeu_epi32(C + (size_t)m * ldc + n0, (__mmask16)((1u << nv) - 1), r);
        }
    }
}

/* Binary and ternary GEMM with a block of 16 B rows transposed (bt[16 w +
 * j] = word w of the block's row j; ternary: bt[32 w + j] its mask word,
 * bt[32 w + 16 + j] its sign word): one vector holds word w of 8 B rows,
 * A's word is broadcast, and each lane counts for one column of C. Nothing
 * is summed across lanes and K wastes at most the rest of its last word;
 * the cost is the transposition, which all the rows of A share, so the row
 * tiles above stay for M < 4. acc[2i + v]: row i, columns 8v .. 8v + 7. */
#define BT_WORDS 1024 /* words of the transposed chunk: 8 KB on the stack */

AI void bt_loop(int kind, int MR, int kc, const uint64_t *const *a_, size_t pl, const uint64_t *bt, __m512i io[8])
{
    const uint64_t *a[4];
    __m512i acc[8];
    #pragma GCC unroll 4
    for (int i = 0; i < MR; i++) a[i] = a_[i];
    #pragma GCC unroll 8
    for (int i = 0; i < 2 * MR; i++) acc[i] = io[i];
    int stride = kind == POP_BIN ? 16 : 32;
    for (int w = 0; w < kc; w++) {
        const uint64_t *t = bt + (size_t)stride * w;
        __m512i bm0 = _mm512_load_si512(t), bm1 = _mm512_load_si512(t + 8);
        __m512i bs0 = _mm512_setzero_si512(), bs1 = _mm512_setzero_si512();
        if (kind == POP_TERN) bs0 = _mm512_load_si512(t + 16), bs1 = _mm512_load_si512(t + 24);
        #pragma GCC unroll 4
        for (int i = 0; i < MR; i++) {
            __m512i am = _mm512_set1_epi64((long long)a[i][w]);
            if (kind == POP_BIN) {
                acc[2 * i] = _mm512_add_epi64(acc[2 * i], _mm512_popcnt_epi64(_mm512_xor_si512(am, bm0)));
                acc[2 * i + 1] = _mm512_add_epi64(acc[2 * i + 1], _mm512_popcnt_epi64(_mm512_xor_si512(am, bm1)));
            } else { /* as in pop_step */
                __m512i as = _mm512_set1_epi64((long long)a[i][pl + w]);
                __m512i nz0 = _mm512_and_si512(am, bm0), nz1 = _mm512_and_si512(am, bm1);
                __m512i p0 = _mm512_popcnt_epi64(_mm512_ternarylogic_epi64(nz0, as, bs0, 0x90));
                __m512i n0 = _mm512_popcnt_epi64(_mm512_ternarylogic_epi64(nz0, as, bs0, 0x60));
                __m512i p1 = _mm512_popcnt_epi64(_mm512_ternarylogic_epi64(nz1, as, bs1, 0x90));
                __m512i n1 = _mm512_popcnt_epi64(_mm512_ternarylogic_epi64(nz1, as, bs1, 0x60));
                acc[2 * i] = _mm512_sub_epi64(_mm512_add_epi64(acc[2 * i], p0), n0);
                acc[2 * i + 1] = _mm512_sub_epi64(_mm512_add_epi64(acc[2 * i + 1], p1), n1);
            }
        }
    }
    #pragma GCC unroll 8
    for (int i = 0; i < 2 * MR; i++) io[i] = acc[i];
}

typedef void bt_loop_fn(int kc, const uint64_t *const *a, size_t pl, const uint64_t *bt, __m512i io[8]);
#define BT_LOOP(name, kind, MR)                                                                                    \
    static __attribute__((noinline)) void name(int kc, const uint64_t *const *a, size_t pl, const uint64_t *bt,   \
                                               __m512i io[8])                                                     \
    {                                                                                                              \
        bt_loop(kind, MR, kc, a, pl, bt, io);                                                                      \
    }
BT_LOOP(bin_bt_loop4, POP_BIN, 4)
BT_LOOP(bin_bt_loop1, POP_BIN, 1)
BT_LOOP(tern_bt_loop4, POP_TERN, 4)
BT_LOOP(tern_bt_loop1, POP_TERN, 1)

/* MR rows of C from the chunk at w0: the counts so far come from C itself
 * (after the first chunk) and go back there until the last */
AI void bt_rows(int kind, int MR, bt_loop_fn *loop, int m0, int w0, int kc, int last, int kwords, int kbits,
                const uint64_t *A, size_t lda, const uint64_t *bt, int32_t *c, size_t ldc, unsigned cm)
{
    const uint64_t *a[4];
    __m512i acc[8];
    for (int i = 0; i < MR; i++) a[i] = A + (size_t)(m0 + i) * lda + w0;
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < 2; v++)
            acc[2 * i + v] = w0 ? _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32((__mmask8)(cm >> 8 * v),
                                                                                c + (size_t)i * ldc + 8 * v))
                                : _mm512_setzero_si512();
    loop(kc, a, (size_t)kwords, bt, acc);
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < 2; v++) {
            __m256i s = _mm512_cvtepi64_epi32(acc[2 * i + v]);
            if (last && kind == POP_BIN) s = _mm256_sub_epi32(_mm256_set1_epi32(kbits), _mm256_add_epi32(s, s));
            _mm256_mask_storeu_epi32(c + (size_t)i * ldc + 8 * v, (__mmask8)(cm >> 8 * v), s);
        }
}

AI void bt_gemm(int kind, bt_loop_fn *loop4, bt_loop_fn *loop1, int M, int N, int kwords, int kbits,
                const uint64_t *A, size_t lda, const uint64_t *B, size_t ldb, int32_t *C, size_t ldc)
{
    _Alignas(64) uint64_t bt[BT_WORDS];
    int planes = kind == POP_BIN ? 1 : 2, chunk = BT_WORDS / 16 / planes;
    for (int n0 = 0; n0 < N; n0 += 16) {
        unsigned cm = (1u << imin(16, N - n0)) - 1;
        for (int w0 = 0; w0 < kwords; w0 += chunk) {
            int kc = imin(chunk, kwords - w0), last = w0 + kc == kwords;
            for (int j = 0; j < 16; j++) {
                const uint64_t *b = B + (size_t)imin(n0 + j, N - 1) * ldb + w0;
                for (int p = 0; p < planes; p++)
                    for (int w = 0; w < kc; w++) bt[(size_t)16 * (planes * w + p) + j] = b[(size_t)p * kwords + w];
            }
            int m0 = 0;
            for (; m0 + 4 <= M; m0 += 4)
                bt_rows(kind, 4, loop4, m0, w0, kc, last, kwords, kbits, A, lda, bt, C + (size_t)m0 * ldc + n0, ldc,
                        cm);
            for (; m0 < M; m0++)
                bt_rows(kind, 1, loop1, m0, w0, kc, last, kwords, kbits, A, lda, bt, C + (size_t)m0 * ldc + n0, ldc,
                        cm);
        }
    }
}

static void bgemm_avx512(int M, int N, int kwords, int kbits, const uint64_t *A, size_t lda, const uint64_t *B,
                         size_t ldb, int32_t *C, size_t ldc)
{
    if (M < 4 || kwords == 0)
        pop_gemm(POP_BIN, bin_loop_4x4, bin_loop_1x16, M, N, kwords, kbits, A, lda, B, ldb, C, ldc);
    else
        bt_gemm(POP_BIN, bin_bt_loop4, bin_bt_loop1, M, N, kwords, kbits, A, lda, B, ldb, C, ldc);
}

/* C from the counts s of one vector: kbits - 2 s (a VPDPWSSD by -2 measured
 * slower than the two operations) */
AI __m512i pk_result(__m512i kb, __m512i s) { return _mm512_sub_epi32(kb, _mm512_add_epi32(s, s)); }

/* Constants of a tile's epilogue, made after its loop and opaque to the
 * compiler: made once before the loop, they held two of the 32 vector
 * registers through it, and a 6 x 4 tile (24 counts, 4 panel vectors)
 * spilled a panel vector to the stack and reloaded it 5 times a word. */
AI __m512i late_even(void)
{
    static const int32_t even[16] __attribute__((aligned(64))) = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    const int32_t *p = even;
    __asm__ volatile("" : "+r"(p));
    return _mm512_load_si512(p);
}
AI __m512i late_set1(int v)
{
    __asm__ volatile("" : "+r"(v));
    return _mm512_set1_epi32(v);
}

/* MR rows x 8 NV columns of C straight from the panels (kern.h), in one
 * function: the counts stay in registers from the first word to the store.
 * acc[NV i + v] counts columns 8v .. 8v + 7 of row i in 64-bit lanes
 * (v = 2, 3: the next panel); one VPERMT2D gathers the low halves of a
 * pair, so each row costs three vector operations per 16 columns after the
 * loop, and nothing goes through memory. NV = 1 for a last panel of 8
 * columns or fewer; NV = 4 for a pair of panels (6 rows at a time, and
 * the rows left after them). When the last word is half empty, it
 * is counted in 32-bit lanes, 16 columns to a vector, at half the cost. */
AI void pk_tile(int MR, int NV, int half, int kwords, int kbits, const uint64_t *A, size_t lda, const uint64_t *pd,
                int32_t *c, size_t ldc, uint32_t cm)
{
    const uint64_t *a[8];
    __m512i acc[24], bm[4];
    const size_t po[4] = {0, 8, (size_t)16 * kwords, (size_t)16 * kwords + 8}; /* vector v of a word */
    #pragma GCC unroll 8
    for (int i = 0; i < MR; i++) a[i] = A + (size_t)i * lda;
    int full = kwords - half;
    if (full) { /* the first word sets the counts */
        #pragma GCC unroll 4
        for (int v = 0; v < NV; v++) bm[v] = _mm512_load_si512(pd + po[v]);
        #pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512i am = _mm512_set1_epi64((long long)a[i][0]);
            #pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[NV * i + v] = _mm512_popcnt_epi64(_mm512_xor_si512(am, bm[v]));
        }
    } else {
        #pragma GCC unroll 24
        for (int i = 0; i < NV * MR; i++) acc[i] = _mm512_setzero_si512();
    }
    for (int w = 1; w < full; w++) {
        const uint64_t *t = pd + (size_t)16 * w;
        #pragma GCC unroll 4
        for (int v = 0; v < NV; v++) bm[v] = _mm512_load_si512(t + po[v]);
        #pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512i am = _mm512_set1_epi64((long long)a[i][w]);
            #pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[NV * i + v] = _mm512_add_epi64(acc[NV * i + v], _mm512_popcnt_epi64(_mm512_xor_si512(am, bm[v])));
        }
    }
    const __m512i even = late_even();
    __m512i bt[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()}; /* the half word, a 32-bit lane per column */
    if (half) {
        const uint64_t *t = pd + (size_t)16 * full;
        if (NV == 1) bt[0] = _mm512_permutexvar_epi32(even, _mm512_load_si512(t));
        #pragma GCC unroll 2
        for (int v = 0; v + 1 < NV; v += 2)
            bt[v / 2] = _mm512_permutex2var_epi32(_mm512_load_si512(t + po[v]), even, _mm512_load_si512(t + po[v + 1]));
    }
    const __m512i kb = late_set1(kbits);
    #pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        #pragma GCC unroll 2
        for (int v = 0; v < (NV + 1) / 2; v++) {
            __m512i s = NV == 1 ? _mm512_permutexvar_epi32(even, acc[i])
                                : _mm512_permutex2var_epi32(acc[NV * i + 2 * v], even, acc[NV * i + 2 * v + 1]);
            if (half) {
                __m512i am = _mm512_set1_epi32((int)(uint32_t)a[i][full]);
                s = _mm512_add_epi32(s, _mm512_popcnt_epi32(_mm512_xor_si512(am, bt[v])));
            }
            _mm512_mask_storeu_epi32(c + (size_t)i * ldc + 16 * v, (__mmask16)(cm >> 16 * v),
                                     pk_result(kb, s));
        }
    }
}

/* rows tiles of MR rows, one after the other (one call per panel and tile
 * height: the calls cost about as much as the epilogue at short K) */
typedef void pk_tile_fn(int tiles, int half, int kwords, int kbits, const uint64_t *A, size_t lda,
                        const uint64_t *pd, int32_t *c, size_t ldc, uint32_t cm);
#define PK_TILE(MR, NV)                                                                                            \
    static __attribute__((noinline)) void pk_tile##MR##x##NV(int tiles, int half, int kwords, int kbits,           \
                                                             const uint64_t *A, size_t lda, const uint64_t *pd,    \
                                                             int32_t *c, size_t ldc, uint32_t cm)                  \
    {                                                                                                              \
        for (int t = 0; t < tiles; t++)                                                                            \
            pk_tile(MR, NV, half, kwords, kbits, A + (size_t)t * MR * lda, lda, pd, c + (size_t)t * MR * ldc, ldc, \
                    cm);                                                                                           \
    }
PK_TILE(8, 2)
PK_TILE(4, 2)
PK_TILE(1, 2)
PK_TILE(8, 1)
PK_TILE(4, 1)
PK_TILE(1, 1)
PK_TILE(1, 4)
PK_TILE(6, 4)

/* ---- bgemm_pk's last r <= 4 columns --------------------------------------
 * A vector of 8 columns for the 1 to 4 columns a panel has left wastes most
 * of its lanes (64 x 50 x 500: 2 of 8). Instead, K goes along the lanes:
 * the RP columns (1, 2 or 4 >= r, the rest zero) are copied once per call,
 * 8 / RP words of each to a vector (lane c 8 / RP + s: word s of column c),
 * and a row of A meets them as a broadcast load of its 8 / RP words (no
 * shuffle), three operations per vector as in pk_tile. The lanes of a
 * column are summed across 8 rows at once at the end, with 10 to 15
 * shuffles per 8 rows (a shuffle costs more than an add here: red16_epi64
 * for every 16 outputs made this tail cost as much as a whole panel). */
#define PK_NARROW_WORDS 256 /* words of K per chunk: the copy takes 8 KB for 4 columns */

/* the broadcast of words 8 g / RP .. of a row (n < 8 / RP: only n of them) */
AI __m512i nar_a(int RP, const uint64_t *a, int g, int n)
{
    const uint64_t *p = a + (size_t)g * (8 / RP);
    if (RP == 1) return n < 8 ? _mm512_maskz_loadu_epi64((__mmask8)((1u << n) - 1), p) : _mm512_loadu_si512(p);
    if (RP == 2)
        return _mm512_broadcast_i64x4(n < 4 ? _mm256_maskz_loadu_epi64((__mmask8)((1u << n) - 1), p)
                                            : _mm256_loadu_si256((const __m256i *)p));
    return _mm512_broadcast_i32x4(n < 2 ? _mm_maskz_loadu_epi64((__mmask8)((1u << n) - 1), p)
                                        : _mm_loadu_si128((const __m128i *)p));
}

/* sums of lanes 2b + 2b+1 of x and y: [x01, y01, x23, y23, ...] as qwords */
AI __m512i nar_pairs(__m512i x, __m512i y)
{
    return _mm512_add_epi64(_mm512_unpacklo_epi64(x, y), _mm512_unpackhi_epi64(x, y));
}
/* qwords q, q+2 summed across 128-bit blocks: [x0+x2, x1+x3, x4+x6, x5+x7, y...] */
AI __m512i nar_fold(__m512i x, __m512i y)
{
    const __m512i lo = _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13), hi = _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15);
    return _mm512_add_epi64(_mm512_permutex2var_epi64(x, lo, y), _mm512_permutex2var_epi64(x, hi, y));
}


/* block q (a constant) of s */
AI __m128i nar_block(__m512i s, int q)
{
    return q == 0   ? _mm512_castsi512_si128(s)
           : q == 1 ? _mm512_extracti32x4_epi32(s, 1)
           : q == 2 ? _mm512_extracti32x4_epi32(s, 2)
                    : _mm512_extracti32x4_epi32(s, 3);
}

/* the r counts at dwords j .. j + r - 1 of x (constants, j + r <= 4) to
 * dst, with plain stores of those values only, where a masked 512-bit
 * store per row (at RP i values before it, to line its lanes up) spans
 * 64 bytes, most often across a cache line (with the first vector setting
 * the counts: -13 % on 64 x 2 x 500, same-process A/B) */
AI void nar_put(__m128i x, int j, int r, int32_t *dst)
{
    if (r == 1) {
        if (j == 0) _mm_storeu_si32(dst, x);
        else *dst = _mm_extract_epi32(x, j & 3);
    } else if (r == 2) {
        if (j == 0) _mm_storel_epi64((__m128i *)dst, x);
        else _mm_storeh_pd((double *)dst, _mm_castsi128_pd(x)); /* j = 2 */
    } else { /* RP = 4, j = 0 */
        if (r == 4) _mm_storeu_si128((__m128i *)dst, x);
        else _mm_storel_epi64((__m128i *)dst, x), dst[2] = _mm_extract_epi32(x, 2);
    }
}

/* rows m0 .. m0 + 7 (only mr of them real; the others repeat the last) x RP
 * columns of the chunk bt of ng vectors, the last holding n words; the
 * counts of earlier chunks come from C (!first), the result goes there
 * (last) or the counts do */
AI void nar_group(int RP, int mr, int ng, int n, int first, int last, int kbits, const uint64_t *A,
                  size_t lda, const uint64_t *bt, int r, int32_t *c, size_t ldc)
{
    const uint64_t *a[8];
    __m512i acc[8];
    #pragma GCC unroll 8
    for (int i = 0; i < 8; i++) a[i] = A + (size_t)(mr == 8 ? i : imin(i, mr - 1)) * lda;
    /* the first vector sets the counts, a full one unless it is the only one */
    __m512i b = _mm512_load_si512(bt);
    #pragma GCC unroll 8
    for (int i = 0; i < 8; i++) acc[i] = _mm512_popcnt_epi64(_mm512_xor_si512(nar_a(RP, a[i], 0, ng == 1 ? n : 8), b));
    for (int g = 1; g < ng - 1; g++) {
        b = _mm512_load_si512(bt + (size_t)8 * g);
        #pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            acc[i] = _mm512_add_epi64(acc[i], _mm512_popcnt_epi64(_mm512_xor_si512(nar_a(RP, a[i], g, 8), b)));
    }
    if (ng > 1) {
        b = _mm512_load_si512(bt + (size_t)8 * (ng - 1));
        #pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            acc[i] = _mm512_add_epi64(acc[i], _mm512_popcnt_epi64(_mm512_xor_si512(nar_a(RP, a[i], ng - 1, n), b)));
    }
    /* out[v] dword 16 v / RP ... : rows in order, RP columns each (rows
     * per vector: 4 for RP = 4, else 8) */
    __m512i z[4], w[2], out[2];
    #pragma GCC unroll 4
    for (int p = 0; p < 4; p++) z[p] = nar_pairs(acc[2 * p], acc[2 * p + 1]);
    if (RP == 4) { /* z[p] = [row 2p col 0, row 2p+1 col 0, 2p col 1, ...] */
        const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 16, 20, 24, 28, 18, 22, 26, 30);
        out[0] = _mm512_permutex2var_epi32(z[0], idx, z[1]);
        out[1] = _mm512_permutex2var_epi32(z[2], idx, z[3]);
    } else {
        w[0] = nar_fold(z[0], z[1]), w[1] = nar_fold(z[2], z[3]);
        if (RP == 2) { /* w[q] = [r0c0, r1c0, r0c1, r1c1, r2c0, r3c0, r2c1, r3c1] of rows 4q .. */
            out[0] = _mm512_permutex2var_epi32(
                w[0], _mm512_setr_epi32(0, 4, 2, 6, 8, 12, 10, 14, 16, 20, 18, 22, 24, 28, 26, 30), w[1]);
        } else { /* fold(w0, w1) = [r0 .. r7] */
            __m512i v = nar_fold(w[0], w[1]);
            out[0] = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0), v);
        }
    }
    const __m512i kb = _mm512_set1_epi32(kbits);
    const int per = RP == 4 ? 4 : 8;
    for (int v = 0; v < 8 / per; v++) {
        __m512i s = out[v];
        if (first) { /* plain stores from the 128-bit blocks (see nar_put) */
            if (last) s = pk_result(kb, s);
            #pragma GCC unroll 8
            for (int i = 0; i < per; i++) {
                if (per * v + i >= mr) break;
                nar_put(nar_block(s, RP * i / 4), RP * i % 4, r, c + (size_t)(per * v + i) * ldc);
            }
            continue;
        }
        /* the counts of earlier chunks from C: row i's r lanes are RP i ..,
         * a masked access at RP i values before the row (an address only;
         * nothing outside the mask is touched, and the arithmetic is on
         * integers, the row may be C's first) */
        int32_t *row[8];
        __mmask16 km[8];
        #pragma GCC unroll 8
        for (int i = 0; i < per; i++) {
            row[i] = (int32_t *)((uintptr_t)(c + (size_t)(per * v + i) * ldc) - sizeof(int32_t) * (size_t)(RP * i));
            km[i] = (__mmask16)(((1u << r) - 1) << (RP * i));
        }
        #pragma GCC unroll 8
        for (int i = 0; i < per; i++) {
            if (per * v + i >= mr) break;
            s = _mm512_mask_add_epi32(s, km[i], s, _mm512_maskz_loadu_epi32(km[i], row[i]));
        }
        if (last) s = pk_result(kb, s);
        #pragma GCC unroll 8
        for (int i = 0; i < per; i++) {
            if (per * v + i >= mr) break;
            _mm512_mask_storeu_epi32(row[i], km[i], s);
        }
    }
}

typedef void nar_rows_fn(int mr, int ng, int n, int first, int last, int kbits, const uint64_t *A,
                         size_t lda, const uint64_t *bt, int r, int32_t *c, size_t ldc);
#define NAR_ROWS(RP)                                                                                               \
    static __attribute__((noinline)) void nar_rows##RP(int mr, int ng, int n, int first, int last,                \
                                                       int kbits, const uint64_t *A, size_t lda, const uint64_t *bt, \
                                                       int r, int32_t *c, size_t ldc)                              \
    {                                                                                                              \
        for (int m0 = 0; m0 < mr; m0 += 8)                                                                         \
            nar_group(RP, imin(8, mr - m0), ng, n, first, last, kbits, A + (size_t)m0 * lda, lda, bt, r,   \
                      c + (size_t)m0 * ldc, ldc);                                                                  \
    }
NAR_ROWS(1)
NAR_ROWS(2)
NAR_ROWS(4)

/* columns j0 .. j0 + r - 1 of panel pd (r <= 4) into C (their first) */
static void pk_narrow(int M, int r, int kwords, int kbits, const uint64_t *A, size_t lda, const uint64_t *pd, int j0,
                      int32_t *C, size_t ldc)
{
    _Alignas(64) uint64_t bt[4 * PK_NARROW_WORDS];
    int lg = r == 1 ? 3 : r == 2 ? 2 : 1, wpv = 1 << lg; /* 8 / RP words a vector */
    nar_rows_fn *f = lg == 3 ? nar_rows1 : lg == 2 ? nar_rows2 : nar_rows4;
    for (int w0 = 0; w0 < kwords; w0 += PK_NARROW_WORDS) {
        int kc = imin(PK_NARROW_WORDS, kwords - w0), ng = (kc + wpv - 1) >> lg;
        memset(bt, 0, (size_t)ng * 64);
        for (int c = 0; c < r; c++)
            for (int w = 0; w < kc; w++)
                bt[8 * (w >> lg) + (c << lg) + (w & (wpv - 1))] = pd[(size_t)16 * (size_t)(w0 + w) + (size_t)(j0 + c)];
        f(M, ng, kc - (ng - 1) * wpv, w0 == 0, w0 + kc == kwords, kbits, A + w0, lda, bt, r, C, ldc);
    }
}

/* The last word is half empty when its high halves are 0 in the nv
 * vectors of the panel(s) at pd and in every row of A: kbits cannot tell,
 * since a row may have gaps of zeros inside (the runtime's taps start on
 * whole bytes). Checked per tile before, it cost 7 % at 64 x 48 x 500: the
 * loop's trip count waited on the loads. A's rows are looked at once per
 * call (*ahi: -1 until then), and only if a panel passes: a load from
 * each row cost 3 % at 600 x 32 x 512, where no panel does. */
static int pk_half(const uint64_t *A, size_t lda, int M, int64_t *ahi, int kwords, const uint64_t *pd, int nv)
{
    const size_t po[4] = {0, 8, (size_t)16 * kwords, (size_t)16 * kwords + 8};
    __m512i bh = _mm512_setzero_si512();
    for (int v = 0; v < nv; v++) bh = _mm512_or_si512(bh, _mm512_load_si512(pd + (size_t)16 * (kwords - 1) + po[v]));
    if (_mm512_test_epi32_mask(bh, bh) & 0xaaaa) return 0;
    if (*ahi < 0) {
        uint64_t h = 0;
        for (int m = 0; m < M; m++) h |= A[(size_t)m * lda + kwords - 1] >> 32;
        *ahi = h != 0;
    }
    return !*ahi;
}

/* A lone row (batch 1) against every panel, one panel after the other:
 * the panels are read once, in address order, as one stream, two words
 * (four vectors, four independent counts) a step. It reads at the speed
 * of bench_kernels' memory bound (from L2); two panels side by side at a
 * time (pk_tile1x4, two streams, fixed costs every 32 columns) read
 * 25-30 % slower. The last word is counted whole: bits past K are 0 in A
 * and in the panels alike, so they count nothing. */
static void pk_row(int N, int kwords, int kbits, const uint64_t *a, const uint64_t *Pd, int32_t *c)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i kb = _mm512_set1_epi32(kbits);
    for (int n0 = 0; n0 < N; n0 += 16) {
        const uint64_t *pd = Pd + (size_t)n0 * (size_t)kwords;
        __m512i x0 = _mm512_setzero_si512(), x1 = x0, y0 = x0, y1 = x0;
        int w = 0;
        for (; w + 2 <= kwords; w += 2) {
            const uint64_t *t = pd + (size_t)16 * w;
            __m512i a0 = _mm512_set1_epi64((long long)a[w]), a1 = _mm512_set1_epi64((long long)a[w + 1]);
            x0 = _mm512_add_epi64(x0, _mm512_popcnt_epi64(_mm512_xor_si512(a0, _mm512_load_si512(t))));
            x1 = _mm512_add_epi64(x1, _mm512_popcnt_epi64(_mm512_xor_si512(a0, _mm512_load_si512(t + 8))));
            y0 = _mm512_add_epi64(y0, _mm512_popcnt_epi64(_mm512_xor_si512(a1, _mm512_load_si512(t + 16))));
            y1 = _mm512_add_epi64(y1, _mm512_popcnt_epi64(_mm512_xor_si512(a1, _mm512_load_si512(t + 24))));
        }
        if (w < kwords) {
            const uint64_t *t = pd + (size_t)16 * w;
            __m512i a0 = _mm512_set1_epi64((long long)a[w]);
            x0 = _mm512_add_epi64(x0, _mm512_popcnt_epi64(_mm512_xor_si512(a0, _mm512_load_si512(t))));
            x1 = _mm512_add_epi64(x1, _mm512_popcnt_epi64(_mm512_xor_si512(a0, _mm512_load_si512(t + 8))));
        }
        __m512i s = _mm512_permutex2var_epi32(_mm512_add_epi64(x0, y0), even, _mm512_add_epi64(x1, y1));
        _mm512_mask_storeu_epi32(c + n0, (__mmask16)((1u << imin(16, N - n0)) - 1), pk_result(kb, s));
    }
}

/* B already in panels (kern.h): a pair of panels at a time, all the rows
 * of A against it while it sits in L1, 6 rows to a tile (10 loads for 24
 * counts a word; 8 x 2 tiles take 10 for 16: +2 % of the bound at
 * 128 x 1024 x 1024), the rows left one at a time; then single panels
 * (an odd one, the last) 8 rows to a tile (4 rows and then single ones for
 * what is left), a last 1 - 4 columns through pk_narrow; a lone row
 * (batch 1) through pk_row */
static void bgemm_pk_avx512(int M, int N, int kwords, int kbits, const uint64_t *A, size_t lda, const uint64_t *Pd,
                            int32_t *C, size_t ldc)
{
    if (kwords == 0) {
        pop_gemm(POP_BIN, bin_loop_4x4, bin_loop_1x16, M, N, 0, kbits, A, lda, Pd, 0, C, ldc);
        return;
    }
    if (M == 1) {
        pk_row(N, kwords, kbits, A, Pd, C);
        return;
    }
    int64_t ahi = -1;
    int n0 = 0;
    if (M >= 6) /* pairs of whole panels, 6 rows at a time: 10 loads for 24 counts a word (8 x 2: 10 for 16) */
        for (; n0 + 32 <= N; n0 += 32) {
            const uint64_t *pd = Pd + (size_t)n0 * (size_t)kwords;
            int half = pk_half(A, lda, M, &ahi, kwords, pd, 4), m6 = M / 6 * 6;
            pk_tile6x4(M / 6, half, kwords, kbits, A, lda, pd, C + n0, ldc, 0xffffffffu);
            if (M > m6)
                pk_tile1x4(M - m6, half, kwords, kbits, A + (size_t)m6 * lda, lda, pd, C + (size_t)m6 * ldc + n0, ldc,
                           0xffffffffu);
        }
    for (; n0 < N; n0 += 16) {
        int nv = imin(16, N - n0), r = nv % 8;
        const uint64_t *pd = Pd + (size_t)n0 * (size_t)kwords;
        if (r && r <= 4 && kwords >= 2 && M >= 8) { /* the last panel's last columns (pk_narrow: 8 rows at a time) */
            pk_narrow(M, r, kwords, kbits, A, lda, pd, nv - r, C + n0 + nv - r, ldc);
            if (!(nv -= r)) break;
        }
        int one = nv <= 8, half = pk_half(A, lda, M, &ahi, kwords, pd, one ? 1 : 2);
        uint32_t cm = (1u << nv) - 1;
        pk_tile_fn *f8 = one ? pk_tile8x1 : pk_tile8x2, *f4 = one ? pk_tile4x1 : pk_tile4x2,
                   *f1 = one ? pk_tile1x1 : pk_tile1x2;
        int m8 = M / 8 * 8, m4 = m8 + (M - m8) / 4 * 4;
        if (m8) f8(M / 8, half, kwords, kbits, A, lda, pd, C + n0, ldc, cm);
        if (m4 > m8) f4(1, half, kwords, kbits, A + (size_t)m8 * lda, lda, pd, C + (size_t)m8 * ldc + n0, ldc, cm);
        if (M > m4) f1(M - m4, half, kwords, kbits, A + (size_t)m4 * lda, lda, pd, C + (size_t)m4 * ldc + n0, ldc, cm);
    }
}

static void tgemm_avx512(int M, int N, int kwords, const uint64_t *A, size_t lda, const uint64_t *B, size_t ldb,
                         int32_t *C, size_t ldc)
{
    if (M < 4 || kwords == 0)
        pop_gemm(POP_TERN, tern_loop_4x4, tern_loop_1x16, M, N, kwords, 0, A, lda, B, ldb, C, ldc);
    else
        bt_gemm(POP_TERN, tern_bt_loop4, tern_bt_loop1, M, N, kwords, 0, A, lda, B, ldb, C, ldc);
}

/* ---- 8- and 16-bit: VPDPBUSD / VPDPWSSD ---------------------------------
 * VPDPBUSD multiplies unsigned by signed bytes. Signed activations are
 * biased by 128 into u8 and 128 * sum_k B(n, k) is taken off at the end
 * ("wsum"); ternary and power-of-two weights are decoded to int8 (-64..64)
 * first (dec_gemm). All sums wrap mod 2^32, so the result is exact whenever the
 * true sum fits in int32. Lanes of A past K are zero after the bias, so they
 * add nothing whatever B holds there. */

enum { D_U8I8, D_I8I8, D_I8T, D_P2, D_I16, D_U8B };

/* the first n lanes, 0 <= n <= 64 (32) */
static inline __mmask64 mask64(int n) { return _cvtu64_mask64(_bzhi_u64(~0ull, (unsigned)n)); }
static inline __mmask32 mask32(int n) { return _cvtu32_mask32(_bzhi_u32(~0u, (unsigned)n)); }
static inline uint64_t load_u64(const void *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof x);
    return x;
}

/* K elements per step: 64 bytes or 32 int16 */
#define DSTEP(kind) ((kind) == D_I16 ? 32 : 64)

/* A's elements k .. k + step (rem of them at the tail), ready for the multiply */
AI __m512i dot_load_a(int kind, const void *a, int k, int rem, int tail)
{
    if (kind == D_I16) {
        const int16_t *p = (const int16_t *)a + k;
        return tail ? _mm512_maskz_loadu_epi16(mask32(rem), p) : _mm512_loadu_si512(p);
    }
    const uint8_t *p = (const uint8_t *)a + k;
    if (kind == D_U8I8 || kind == D_U8B) return tail ? _mm512_maskz_loadu_epi8(mask64(rem), p) : _mm512_loadu_si512(p);
    __m512i bias = _mm512_set1_epi8(-128);
    if (!tail) return _mm512_xor_si512(_mm512_loadu_si512(p), bias);
    __mmask64 km = mask64(rem);
    return _mm512_maskz_add_epi8(km, _mm512_maskz_loadu_epi8(km, p), bias);
}

/* B's elements k .. k + step as int8 (int16 for D_I16); lanes past K are
 * zero or unspecified (A is zero there) but never read past the row */
AI __m512i dot_load_b(int kind, const void *b, size_t kwords, int k, int rem, int tail)
{
    switch (kind) {
    case D_I16: {
        const int16_t *p = (const int16_t *)b + k;
        return tail ? _mm512_maskz_loadu_epi16(mask32(rem), p) : _mm512_loadu_si512(p);
    }
    case D_I8T: {
        const uint64_t *p = (const uint64_t *)b + k / 64;
        __mmask64 nz = _cvtu64_mask64(load_u64(p)), sg = _cvtu64_mask64(load_u64(p + kwords));
        if (tail) nz = _kand_mask64(nz, mask64(rem));
        return _mm512_maskz_mov_epi8(nz, _mm512_mask_blend_epi8(sg, _mm512_set1_epi8(1), _mm512_set1_epi8(-1)));
    }
    case D_U8B: { /* -1 where the bit is set, else +1; lanes past K meet A's zeros */
        __mmask64 sg = _cvtu64_mask64(load_u64((const uint64_t *)b + k / 64));
        return _mm512_mask_blend_epi8(sg, _mm512_set1_epi8(1), _mm512_set1_epi8(-1));
    }
    case D_P2: {
        /* one nibble per 16-bit lane pair: byte 2i = code 2i, byte 2i+1 = code 2i+1 */
        const uint8_t *p = (const uint8_t *)b + k / 2;
        __m256i codes = tail ? _mm256_maskz_loadu_epi8(mask32((rem + 1) / 2), p) : _mm256_loadu_si256((const void *)p);
        __m512i x = _mm512_cvtepu8_epi16(codes);
        __m512i idx = _mm512_ternarylogic_epi32(x, _mm512_slli_epi16(x, 4), _mm512_set1_epi16(0x0f0f), 0xa8);
        const __m512i lut =
            _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 4, 8, 16, 32, 64, 0, -1, -2, -4, -8, -16, -32, -64));
        return tail ? _mm512_maskz_shuffle_epi8(mask64(rem), lut, idx) : _mm512_shuffle_epi8(lut, idx);
    }
    default: {
        const int8_t *p = (const int8_t *)b + k;
        return tail ? _mm512_maskz_loadu_epi8(mask64(rem), p) : _mm512_loadu_si512(p);
    }
    }
}

AI __m512i dot_mac(int kind, __m512i acc, __m512i a, __m512i b)
{
    return kind == D_I16 ? _mm512_dpwssd_epi32(acc, a, b) : _mm512_dpbusd_epi32(acc, a, b);
}

#define DTILE 24 /* accumulators of a dot tile: 3 x 8 or 1 x 16 */

AI void dot_step(int kind, int MR, int NR, const void *const *a, const void *const *b, size_t kwords, int k, int rem,
                 int tail, __m512i acc[DTILE])
{
    __m512i av[4];
    #pragma GCC unroll 4
    for (int i = 0; i < MR; i++) av[i] = dot_load_a(kind, a[i], k, rem, tail);
    #pragma GCC unroll 16
    for (int j = 0; j < NR; j++) {
        __m512i bv = dot_load_b(kind, b[j], kwords, k, rem, tail);
        /* one load per B vector: left alone, gcc folds it into each of the
         * MR multiplies, and the loads become the bottleneck */
        __asm__("" : "+v"(bv));
        #pragma GCC unroll 4
        for (int i = 0; i < MR; i++) acc[i * NR + j] = dot_mac(kind, acc[i * NR + j], av[i], bv);
    }
}

AI void dot_loop(int kind, int MR, int NR, int K, const void *const *a_, const void *const *b_, size_t kwords,
                 __m512i out[DTILE])
{
    const void *a[4], *b[16]; /* local copies, as in pop_loop */
    __m512i acc[DTILE];
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++) a[i] = a_[i];
    #pragma GCC unroll 16
    for (int j = 0; j < NR; j++) b[j] = b_[j];
    #pragma GCC unroll 24
    for (int i = 0; i < MR * NR; i++) acc[i] = _mm512_setzero_si512();
    /* Plain loads in the loop (a byte-masked load costs an extra ALU uop),
     * the masked tail first: after the loop, gcc 12 would again copy the
     * accumulators around on every iteration. */
    int kfull = K - K % DSTEP(kind);
    if (kfull < K) dot_step(kind, MR, NR, a, b, kwords, kfull, K - kfull, 1, acc);
    for (int k = 0; k < kfull; k += DSTEP(kind)) dot_step(kind, MR, NR, a, b, kwords, k, 0, 0, acc);
    #pragma GCC unroll 24
    for (int i = 0; i < MR * NR; i++) out[i] = acc[i];
}

/* own functions for the K loops, as for pop_loop */
typedef void dot_loop_fn(int K, const void *const *a, const void *const *b, size_t kwords, __m512i out[DTILE]);
#define DOT_LOOP(name, kind, MR, NR)                                                                               \
    static __attribute__((noinline)) void name(int K, const void *const *a, const void *const *b, size_t kwords,   \
                                               __m512i out[DTILE])                                                  \
    {                                                                                                              \
        dot_loop(kind, MR, NR, K, a, b, kwords, out);                                                              \
    }
DOT_LOOP(u8i8_loop_3x8, D_U8I8, 3, 8)
DOT_LOOP(u8i8_loop_1x16, D_U8I8, 1, 16)
DOT_LOOP(i8i8_loop_3x8, D_I8I8, 3, 8)
DOT_LOOP(i8i8_loop_1x16, D_I8I8, 1, 16)
DOT_LOOP(i16_loop_3x8, D_I16, 3, 8)
DOT_LOOP(i16_loop_1x16, D_I16, 1, 16)
DOT_LOOP(u8b_loop_3x8, D_U8B, 3, 8)
DOT_LOOP(u8b_loop_1x16, D_U8B, 1, 16)

/* rows of NR (8 or 16) lanes of r (lane i NR + j = row i, column j) to C,
 * columns in cm; added to what C holds when add is set */
AI void store_rows(int NR, int rows, int32_t *c, size_t ldc, unsigned cm, int add, __m512i r)
{
    if (NR == 16) {
        if (add) r = _mm512_add_epi32(r, _mm512_maskz_loadu_epi32((__mmask16)cm, c));
        _mm512_mask_storeu_epi32(c, (__mmask16)cm, r);
        return;
    }
    for (int i = 0; i < rows; i++) {
        __m256i v = i ? _mm512_extracti64x4_epi64(r, 1) : _mm512_castsi512_si256(r);
        if (add) v = _mm256_add_epi32(v, _mm256_maskz_loadu_epi32((__mmask8)cm, c + (size_t)i * ldc));
        _mm256_mask_storeu_epi32(c + (size_t)i * ldc, (__mmask8)cm, v);
    }
}

/* An MR x NR tile of C: the K loop, sums across lanes, the bias correction
 * (corr: lane j = 128 wsum of column j of the tile), the stores. */
AI void dot_tile(int MR, int NR, dot_loop_fn *loop, int K, const void *const *a, const void *const *b, size_t kwords,
                 __m512i corr, int32_t *c, size_t ldc, unsigned cm, int add)
{
    __m512i acc[DTILE];
    loop(K, a, b, kwords, acc);
    int rows0 = imin(MR, 16 / NR); /* rows in the first 16 sums */
    store_rows(NR, rows0, c, ldc, cm, add, _mm512_sub_epi32(red16_epi32(acc), corr));
    if (MR * NR == 24) { /* the third row of a 3 x 8 tile */
        __m256i v = _mm256_sub_epi32(red8_epi32(acc + 16), _mm512_castsi512_si256(corr));
        if (add) v = _mm256_add_epi32(v, _mm256_maskz_loadu_epi32((__mmask8)cm, c + 2 * ldc));
        _mm256_mask_storeu_epi32(c + 2 * ldc, (__mmask8)cm, v);
    }
}

/* sum_k B(n, k) over k < K, for the bias correction */
AI int32_t dot_wsum(int kind, const void *b, size_t kwords, int K)
{
    __m512i acc = _mm512_setzero_si512(), ones = _mm512_set1_epi8(1);
    int k = 0;
    for (; k + 64 <= K; k += 64) acc = _mm512_dpbusd_epi32(acc, ones, dot_load_b(kind, b, kwords, k, 0, 0));
    if (k < K)
        acc = _mm512_dpbusd_epi32(acc, ones,
                                  _mm512_maskz_mov_epi8(mask64(K - k), dot_load_b(kind, b, kwords, k, K - k, 1)));
    return _mm512_reduce_add_epi32(acc);
}

/* One block of up to 16 columns (nv of them) against all of A: groups of
 * NR B rows stay in L1 while every MR-row tile of A streams past, the
 * M % MR rows left take a 1 x 16 tile. corr: lane j = 128 wsum of column j
 * (zero for unbiased kinds). ea: element size of A in bytes. */
AI void dot_block(int MR, int NR, dot_loop_fn *loop_main, dot_loop_fn *loop_row, int M, int nv, int K,
                  const void *A, size_t lda, size_t ea, const void *const *b, size_t kwords, __m512i corr, int32_t *C,
                  size_t ldc, int add)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int g = 0; g < nv; g += NR) {
        unsigned cm = (1u << imin(NR, nv - g)) - 1;
        /* lane i NR + j = column g + j */
        __m512i cg = _mm512_permutexvar_epi32(
            _mm512_add_epi32(_mm512_set1_epi32(g), _mm512_and_si512(lane, _mm512_set1_epi32(NR - 1))), corr);
        for (int m0 = 0; m0 + MR <= M; m0 += MR) {
            const void *a[4];
            for (int i = 0; i < MR; i++) a[i] = (const char *)A + (size_t)(m0 + i) * lda * ea;
            dot_tile(MR, NR, loop_main, K, a, b + g, kwords, cg, C + (size_t)m0 * ldc + g, ldc, cm, add);
        }
    }
    for (int m = M - M % MR; m < M; m++) {
        const void *a[1] = {(const char *)A + (size_t)m * lda * ea};
        dot_tile(1, 16, loop_row, K, a, b, kwords, corr, C + (size_t)m * ldc, ldc, (1u << nv) - 1, add);
    }
}

/* Blocks of 16 B rows, 3 x 8 tiles: they load A from L2 half as often as
 * 4 x 4 ones (where L2 bandwidth bound the kernel). Columns past N in a
 * block repeat the last B row and are not stored. ea, eb: element sizes of
 * A and B in bytes. */
#define DOT_KB 1024 /* bytes of a B row per K chunk */
#define DOT_LD (DOT_KB + 64)

AI void dot_gemm(int kind, dot_loop_fn *loop_main, dot_loop_fn *loop_row, int M, int N, int K, const void *A,
                 size_t lda, size_t ea, const void *B, size_t ldb, size_t eb, const int32_t *bsum, int32_t *C,
                 size_t ldc)
{
    _Alignas(64) uint8_t bpack[16][DOT_LD]; /* 17 KB */
    for (int n0 = 0; n0 < N; n0 += 16) {
        int nv = imin(16, N - n0);
        const void *b[16];
        for (int j = 0; j < 16; j++) b[j] = (const char *)B + (size_t)imin(n0 + j, N - 1) * ldb * eb;
        __m512i corr = _mm512_setzero_si512();
        if (kind == D_I8I8) {
            int32_t ws[16] = {0};
            for (int j = 0; j < nv; j++) ws[j] = bsum ? bsum[n0 + j] : dot_wsum(kind, b[j], 0, K);
            corr = _mm512_slli_epi32(_mm512_loadu_si512(ws), 7);
        }
        /* K in chunks of DOT_KB bytes of B; with enough rows of A to share
         * it, a chunk of the 16 B rows is first copied DOT_LD bytes apart:
         * rows a power of two apart (K = 4096) fall in one L1 set and
         * evict each other on every step. Later chunks add into C; the
         * weight sums go with the first. */
        int kb = kind == D_I16 ? DOT_KB / 2 : DOT_KB, pack = M >= 16 && kind != D_U8B;
        for (int k0 = 0; k0 == 0 || k0 < K; k0 += kb) {
            int kc = imin(kb, K - k0);
            size_t boff = kind == D_U8B ? (size_t)k0 / 8 : (size_t)k0 * eb;
            const void *bk[16];
            for (int j = 0; j < 16; j++) bk[j] = (const char *)b[j] + boff;
            if (pack) {
                for (int j = 0; j < 16; j++) {
                    memcpy(bpack[j], bk[j], (size_t)kc * eb);
                    bk[j] = bpack[j];
                }
            }
            dot_block(3, 8, loop_main, loop_row, M, nv, kc, (const char *)A + (size_t)k0 * ea, lda, ea, bk, 0,
                      k0 ? _mm512_setzero_si512() : corr, C + n0, ldc, k0 > 0);
        }
    }
}

/* Ternary and power-of-two weights: a block of 16 B rows is decoded to
 * int8, DEC_K weights of K at a time, into a buffer that every row of A
 * then shares through the int8 x int8 tiles; the decoding also gives the
 * chunk's weight sums. Chunks after the first add into C. Binary weights
 * on uint8 inputs (D_U8B) go the same way through the uint8 x int8 tiles,
 * which need no sums. */
#define DEC_K 1024 /* 16 KB on the stack */

AI void dec_gemm(int kind, int M, int N, int K, const void *A, size_t lda, const void *B, size_t ldb, size_t eb,
                 int32_t *C, size_t ldc)
{
    size_t kwords = ((size_t)K + 63) / 64;
    _Alignas(64) int8_t wbuf[16 * DEC_K];
    const void *w[16];
    for (int j = 0; j < 16; j++) w[j] = wbuf + j * DEC_K;
    for (int n0 = 0; n0 < N; n0 += 16) {
        int nv = imin(16, N - n0);
        for (int k0 = 0; k0 == 0 || k0 < K; k0 += DEC_K) { /* K = 0 still writes C */
            int kc = imin(DEC_K, K - k0);
            int32_t ws[16];
            for (int j = 0; j < 16; j++) {
                const char *b = (const char *)B + (size_t)imin(n0 + j, N - 1) * ldb * eb;
                __m512i sum = _mm512_setzero_si512(), ones = _mm512_set1_epi8(1);
                int k = 0;
                for (; k + 64 <= kc; k += 64) {
                    __m512i v = dot_load_b(kind, b, kwords, k0 + k, 0, 0);
                    sum = _mm512_dpbusd_epi32(sum, ones, v);
                    _mm512_store_si512(wbuf + j * DEC_K + k, v);
                }
                if (k < kc) { /* zero past K */
                    __m512i v = _mm512_maskz_mov_epi8(mask64(kc - k), dot_load_b(kind, b, kwords, k0 + k, kc - k, 1));
                    sum = _mm512_dpbusd_epi32(sum, ones, v);
                    _mm512_store_si512(wbuf + j * DEC_K + k, v);
                }
                ws[j] = _mm512_reduce_add_epi32(sum);
            }
            const char *a = (const char *)A + k0;
            if (kind == D_U8B)
                dot_block(3, 8, u8i8_loop_3x8, u8i8_loop_1x16, M, nv, kc, a, lda, 1, w, 0, _mm512_setzero_si512(),
                          C + n0, ldc, k0 > 0);
            else
                dot_block(3, 8, i8i8_loop_3x8, i8i8_loop_1x16, M, nv, kc, a, lda, 1, w, 0,
                          _mm512_slli_epi32(_mm512_loadu_si512(ws), 7), C + n0, ldc, k0 > 0);
        }
    }
}

static void i8tgemm_avx512(int M, int N, int K, const int8_t *A, size_t lda, const uint64_t *B, size_t ldb,
                           int32_t *C, size_t ldc)
{
    dec_gemm(D_I8T, M, N, K, A, lda, B, ldb, 8, C, ldc);
}

/* ---- small K (a first layer: a few taps of a few channels) ---------------
 * Along-K dot tiles would spend more on their final lane sums than on the
 * products. Instead each lane is one output channel: B is repacked, 16
 * channels at a time, as [K / 4][16 channels][4 weights], and every 4
 * bytes of a row of A are broadcast into one VPDPBUSD against it. R rows
 * of A run side by side against NB (1 or 2) blocks of 16 channels, so one
 * broadcast serves both blocks (LeNet's conv1: K = 25, N = 20). */
#define SMALL_K QATRT_I8_SMALL_K
#define SMALL_R 8

/* VPDPBUSD in asm: with the intrinsic, gcc 12 copies each accumulator to
 * another register and back around every one of these (twice the uops) */
AI __m512i dpbusd_asm(__m512i acc, __m512i a, __m512i b)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

/* bytes 4g .. 4g + 3 of a row of A as a dword: a whole word where more of
 * A follows (bytes past K meet zero weights), else exactly the n < 4 left */
AI uint32_t small_word(const uint8_t *t, int n, int whole)
{
    uint32_t v = 0;
    if (whole) memcpy(&v, t, 4);
    else
        for (int i = n - 1; i >= 0; i--) v = v << 8 | t[i];
    return v;
}

/* where the rows' results go: C (a row of int32 per row of A) or, fused
 * with thresh_bits, packed signs */
typedef struct {
    int32_t *c;
    size_t ldc;
    uint8_t *out; /* bits: out, ldo; thr0/1 the two blocks' thresholds, */
    size_t ldo;   /* fm0/1 their flips, nbytes the bytes of a row */
    __m512i thr0, thr1;
    __mmask16 fm0, fm1;
    unsigned nbytes;
} small_dst;

/* rows m .. m + R of the result (R <= SMALL_R), channels of NB blocks
 * (cm0 / cm1 the valid ones); last: these rows end A */
AI void u8i8_small_rows(int R, int NB, int bits, int G, int K, const uint8_t *a, size_t lda, int last,
                        const __m512i *bv, __mmask16 cm0, __mmask16 cm1, const small_dst *d)
{
    __m512i acc[2 * SMALL_R];
    int gfull = K / 4;
    for (int i = 0; i < NB * R; i++) acc[i] = _mm512_setzero_si512();
    /* The last K % 4 bytes first (gcc 12 copies every accumulator between
     * registers on each iteration of a loop that a tail step follows). */
    if (gfull < G)
        for (int r = 0; r < R; r++) {
            __m512i x = _mm512_set1_epi32(
                (int)small_word(a + (size_t)r * lda + 4 * gfull, K - 4 * gfull, r < R - 1 || !last));
            for (int b = 0; b < NB; b++) acc[b * R + r] = dpbusd_asm(acc[b * R + r], x, bv[2 * gfull + b]);
        }
    for (int g = 0; g < gfull; g++) {
        __m512i b0 = bv[2 * g], b1 = bv[2 * g + 1];
        for (int r = 0; r < R; r++) {
            uint32_t v;
            memcpy(&v, a + (size_t)r * lda + 4 * g, 4);
            __m512i x = _mm512_set1_epi32((int)v);
            acc[r] = dpbusd_asm(acc[r], x, b0);
            if (NB == 2) acc[R + r] = dpbusd_asm(acc[R + r], x, b1);
        }
    }
    if (!bits) {
        for (int r = 0; r < R; r++) {
            _mm512_mask_storeu_epi32(d->c + (size_t)r * d->ldc, cm0, acc[r]);
            if (NB == 2) _mm512_mask_storeu_epi32(d->c + (size_t)r * d->ldc + 16, cm1, acc[R + r]);
        }
        return;
    }
    /* as thresh_bits: bit set where the (flipped) sum is below the threshold */
    const __m512i zero = _mm512_setzero_si512();
    __mmask16 bm = _cvtu32_mask16((1u << d->nbytes) - 1);
    for (int r = 0; r < R; r++) {
        __m512i s0 = _mm512_mask_sub_epi32(acc[r], d->fm0, zero, acc[r]);
        uint32_t v = _cvtmask16_u32(_mm512_mask_cmplt_epi32_mask(cm0, s0, d->thr0));
        if (NB == 2) {
            __m512i s1 = _mm512_mask_sub_epi32(acc[R + r], d->fm1, zero, acc[R + r]);
            v |= _cvtmask16_u32(_mm512_mask_cmplt_epi32_mask(cm1, s1, d->thr1)) << 16;
        }
        _mm_mask_storeu_epi8(d->out + (size_t)r * d->ldo, bm, _mm_cvtsi32_si128((int)v));
    }
}

/* rows m0 .. M, all of a pass's channels, R = SMALL_R rows at a time */
AI void u8i8_small_pass(int NB, int bits, int M, int G, int K, const uint8_t *A, size_t lda, const __m512i *bv,
                        __mmask16 cm0, __mmask16 cm1, small_dst d)
{
    int m = 0;
    for (; m + SMALL_R <= M; m += SMALL_R) {
        u8i8_small_rows(SMALL_R, NB, bits, G, K, A + (size_t)m * lda, lda, m + SMALL_R == M, bv, cm0, cm1, &d);
        if (bits) d.out += SMALL_R * d.ldo;
        else d.c += SMALL_R * d.ldc;
    }
    if (m < M) u8i8_small_rows(M - m, NB, bits, G, K, A + (size_t)m * lda, lda, 1, bv, cm0, cm1, &d);
}

/* Up to 32 channels (two blocks) per pass over A; out != NULL: signs as
 * thresh_bits gives them (thr, flip), else C */
static void u8i8_small(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *B, size_t ldb, int32_t *C,
                       size_t ldc, const int32_t *thr, const uint8_t *flip, uint8_t *out, size_t ldo)
{
    int G = (K + 3) / 4;
    for (int n0 = 0; n0 < N; n0 += 32) {
        int nv = imin(32, N - n0), NB = nv > 16 ? 2 : 1;
        /* bp[g][b]: weights 4g .. 4g + 3 of the block's 16 channels, zero past K and N */
        _Alignas(64) int8_t bp[SMALL_K / 4][2][64];
        memset(bp, 0, sizeof bp);
        for (int j = 0; j < nv; j++) {
            const int8_t *b = B + (size_t)(n0 + j) * ldb;
            for (int k = 0; k < K; k++) bp[k / 4][j / 16][4 * (j % 16) + k % 4] = b[k];
        }
        const __m512i *bv = (const __m512i *)(const void *)bp;
        unsigned n1 = (unsigned)(nv > 16 ? nv - 16 : 0);
        __mmask16 cm0 = _cvtu32_mask16(_bzhi_u32(0xffffu, (unsigned)imin(nv, 16)));
        __mmask16 cm1 = _cvtu32_mask16(_bzhi_u32(0xffffu, n1));
        small_dst d = {.c = C ? C + n0 : NULL, .ldc = ldc};
        if (out) {
            unsigned f = 0;
            if (flip)
                for (int i = 0; i < (nv + 7) / 8; i++) f |= (unsigned)flip[n0 / 8 + i] << 8 * i;
            f &= (unsigned)(((uint64_t)1 << nv) - 1);
            d = (small_dst){.out = out + n0 / 8, .ldo = ldo, .thr0 = _mm512_maskz_loadu_epi32(cm0, thr + n0),
                            .thr1 = _mm512_maskz_loadu_epi32(cm1, thr + n0 + 16), .fm0 = _cvtu32_mask16(f & 0xffff),
                            .fm1 = _cvtu32_mask16(f >> 16), .nbytes = (unsigned)(nv + 7) / 8};
            if (NB == 2) u8i8_small_pass(2, 1, M, G, K, A, lda, bv, cm0, cm1, d);
            else u8i8_small_pass(1, 1, M, G, K, A, lda, bv, cm0, cm1, d);
        } else if (NB == 2) {
            u8i8_small_pass(2, 0, M, G, K, A, lda, bv, cm0, cm1, d);
        } else {
            u8i8_small_pass(1, 0, M, G, K, A, lda, bv, cm0, cm1, d);
        }
    }
}

/* K and lda the small path takes */
static int small_ok(int M, int K, size_t lda) { return K > 0 && K <= SMALL_K && M >= 4 && lda >= 4; }

extern const qatrt_kernels qatrt_kernels_avx512;

static void u8i8gemm_bits_avx512(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *B, size_t ldb,
                                 const int32_t *thr, const uint8_t *flip, uint8_t *out, size_t ldo)
{
    if (small_ok(M, K, lda)) u8i8_small(M, N, K, A, lda, B, ldb, NULL, 0, thr, flip, out, ldo);
    else qatrt_u8i8gemm_bits_via(&qatrt_kernels_avx512, M, N, K, A, lda, B, ldb, thr, flip, out, ldo);
}

static void u8i8gemm_avx512(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *B, size_t ldb,
                            int32_t *C, size_t ldc)
{
    if (small_ok(M, K, lda)) {
        u8i8_small(M, N, K, A, lda, B, ldb, C, ldc, NULL, NULL, NULL, 0);
        return;
    }
    dot_gemm(D_U8I8, u8i8_loop_3x8, u8i8_loop_1x16, M, N, K, A, lda, 1, B, ldb, 1, NULL, C, ldc);
}

static void u8bgemm_avx512(int M, int N, int K, const uint8_t *A, size_t lda, const uint64_t *B, size_t ldb,
                           int32_t *C, size_t ldc)
{
    /* a few rows: each expands its sign bits as it goes (8x less weight
     * traffic than int8 rows); many: a block's bits once to int8 */
    if (M < 8) dot_gemm(D_U8B, u8b_loop_3x8, u8b_loop_1x16, M, N, K, A, lda, 1, B, ldb, 8, NULL, C, ldc);
    else dec_gemm(D_U8B, M, N, K, A, lda, B, ldb, 8, C, ldc);
}

/* ---- int8 panels (kern.h): a lane per column -----------------------------
 * B is packed once, 16 columns x 4 weights per 64-byte unit; every 4 bytes
 * of a row of A are broadcast into one VPDPBUSD per unit. R rows x NB
 * blocks of 16 columns per tile (4 x 4; a lone row 1 x 8, so that 8
 * accumulators hide VPDPBUSD's latency): no sums across lanes, one stream
 * of B. Signed A is biased by 128 into u8 and 128 bsum taken off. */
#define PK_NB 8

AI void i8pk_tile(int sgn, int R, int NB, int nb, int G, int K, const uint8_t *a, size_t lda, int last,
                  const int8_t *p, size_t bstride, const __m512i *corr, __mmask16 cml, int32_t *c, size_t ldc)
{
    __m512i acc[4 * PK_NB / 2];
    const __m512i bias = _mm512_set1_epi8(-128);
    int gfull = K / 4;
    for (int i = 0; i < R * NB; i++) acc[i] = _mm512_setzero_si512();
    if (gfull < G) /* the last K % 4 bytes first, as in u8i8_small_rows */
        for (int r = 0; r < R; r++) {
            int whole = (r < R - 1 || !last) && lda >= 4; /* a next row holds what a word reads past K */
            __m512i x = _mm512_set1_epi32((int)small_word(a + (size_t)r * lda + 4 * gfull, K - 4 * gfull, whole));
            if (sgn) x = _mm512_xor_si512(x, bias);
            for (int j = 0; j < NB; j++)
                if (j < nb)
                    acc[r * NB + j] = dpbusd_asm(acc[r * NB + j], x,
                                                 _mm512_load_si512(p + (size_t)j * bstride + (size_t)gfull * 64));
        }
    for (int g = 0; g < gfull; g++) {
        __m512i bv[PK_NB];
        for (int j = 0; j < NB; j++) /* blocks past nb: block 0 again, unused */
            bv[j] = _mm512_load_si512(p + (size_t)(j < nb ? j : 0) * bstride + (size_t)g * 64);
        for (int r = 0; r < R; r++) {
            uint32_t v;
            memcpy(&v, a + (size_t)r * lda + 4 * g, 4);
            __m512i x = _mm512_set1_epi32((int)v);
            if (sgn) x = _mm512_xor_si512(x, bias);
            for (int j = 0; j < NB; j++)
                if (j < nb) acc[r * NB + j] = dpbusd_asm(acc[r * NB + j], x, bv[j]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NB; j++)
            if (j < nb) {
                __m512i v = acc[r * NB + j];
                if (sgn) v = _mm512_sub_epi32(v, corr[j]);
                _mm512_mask_storeu_epi32(c + (size_t)r * ldc + 16 * (size_t)j, j == nb - 1 ? cml : 0xffff, v);
            }
}

AI void i8pk_gemm(int sgn, int M, int N, int K, const void *A_, size_t lda, const int8_t *Pd, const int32_t *bsum,
                  int32_t *C, size_t ldc)
{
    const uint8_t *A = A_;
    int G = (K + 3) / 4, nbk = (N + 15) / 16;
    size_t bstride = (size_t)G * 64;
    if (K == 0) {
        for (int m = 0; m < M; m++) memset(C + (size_t)m * ldc, 0, sizeof(int32_t) * (size_t)N);
        return;
    }
    int NB = M >= 4 ? 4 : PK_NB;
    for (int b0 = 0; b0 < nbk; b0 += NB) {
        int nb = imin(NB, nbk - b0);
        int nlast = imin(16, N - 16 * (b0 + nb - 1)); /* columns of the tile's last block (BZHI reads 8 bits) */
        __mmask16 cml = _cvtu32_mask16(_bzhi_u32(0xffffu, (unsigned)nlast));
        __m512i corr[PK_NB];
        if (sgn)
            for (int j = 0; j < nb; j++) {
                int32_t ws[16] = {0};
                for (int i = 0; i < 16 && 16 * (b0 + j) + i < N; i++) {
                    int n = 16 * (b0 + j) + i;
                    if (bsum) ws[i] = bsum[n];
                    else
                        for (int g = 0; g < G; g++)
                            for (int t = 0; t < 4; t++) ws[i] += Pd[((size_t)(n / 16) * G + (size_t)g) * 64 + 4 * (size_t)i + (size_t)t];
                }
                corr[j] = _mm512_slli_epi32(_mm512_loadu_si512(ws), 7);
            }
        const int8_t *p = Pd + (size_t)b0 * bstride;
        int32_t *c = C + 16 * (size_t)b0;
        int m = 0;
        if (NB == 4) {
            for (; m + 4 <= M; m += 4)
                i8pk_tile(sgn, 4, 4, nb, G, K, A + (size_t)m * lda, lda, m + 4 == M, p, bstride, corr, cml,
                          c + (size_t)m * ldc, ldc);
            for (; m < M; m++)
                i8pk_tile(sgn, 1, 4, nb, G, K, A + (size_t)m * lda, lda, m + 1 == M, p, bstride, corr, cml,
                          c + (size_t)m * ldc, ldc);
        } else {
            for (; m < M; m++)
                i8pk_tile(sgn, 1, PK_NB, nb, G, K, A + (size_t)m * lda, lda, m + 1 == M, p, bstride, corr, cml,
                          c + (size_t)m * ldc, ldc);
        }
    }
}

static void u8i8gemm_pk_avx512(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *Pd, int32_t *C,
                               size_t ldc)
{
    i8pk_gemm(0, M, N, K, A, lda, Pd, NULL, C, ldc);
}

static void i8i8gemm_pk_avx512(int M, int N, int K, const int8_t *A, size_t lda, const int8_t *Pd,
                               const int32_t *bsum, int32_t *C, size_t ldc)
{
    i8pk_gemm(1, M, N, K, A, lda, Pd, bsum, C, ldc);
}

/* VPERMB needs AVX512-VBMI, which the rest of this table does not (Skylake-X
 * and Cascade Lake lack it): the AVX2 kernel there */
static void u8bgemm_pk_avx512(int M, int N, int K, const uint8_t *A, size_t lda, const void *Bp, int32_t *C,
                              size_t ldc)
{
    if (__builtin_cpu_supports("avx512vbmi")) qatrt_u8bgemm_pk_avx512(M, N, K, A, lda, Bp, C, ldc);
    else qatrt_u8bgemm_pk_avx2(M, N, K, A, lda, Bp, C, ldc);
}

static void i8i8gemm_avx512(int M, int N, int K, const int8_t *A, size_t lda, const int8_t *B, size_t ldb,
                            const int32_t *bsum, int32_t *C, size_t ldc)
{
    dot_gemm(D_I8I8, i8i8_loop_3x8, i8i8_loop_1x16, M, N, K, A, lda, 1, B, ldb, 1, bsum, C, ldc);
}

static void i16gemm_avx512(int M, int N, int K, const int16_t *A, size_t lda, const int16_t *B, size_t ldb,
                           int32_t *C, size_t ldc)
{
    dot_gemm(D_I16, i16_loop_3x8, i16_loop_1x16, M, N, K, A, lda, 2, B, ldb, 2, NULL, C, ldc);
}

static void p2gemm_avx512(int M, int N, int K, const int8_t *A, size_t lda, const uint8_t *B, size_t ldb,
                          int32_t *C, size_t ldc)
{
    dec_gemm(D_P2, M, N, K, A, lda, B, ldb, 1, C, ldc);
}

/* stream keys -> float32 bits, 16 lanes: k < 0 ? sign | -k : k */
AI __m512i unkey16(__m512i k)
{
    __mmask16 neg = _mm512_cmplt_epi32_mask(k, _mm512_setzero_si512());
    return _mm512_mask_or_epi32(k, neg, _mm512_sub_epi32(_mm512_setzero_si512(), k), _mm512_set1_epi32((int)0x80000000u));
}

/* qatc_f32_add's fast path on 16 lanes (six guard bits, the sticky bit
 * jammed in, VPLZCNTD to renormalise after a cancellation); lanes with a
 * subnormal or an infinity, or whose sum leaves the normal range, are
 * redone by qatc_key_add. b = +0 (key 0) gives a. */
static void key_add_avx512(size_t n, const int32_t *ka, const int32_t *kb, int32_t *out, int relu)
{
    const __m512i sgn = _mm512_set1_epi32((int)0x80000000u), absm = _mm512_set1_epi32(0x7fffffff);
    const __m512i mant = _mm512_set1_epi32(0x7fffff), hid = _mm512_set1_epi32(0x800000), one = _mm512_set1_epi32(1);
    const __m512i zero = _mm512_setzero_si512(), e255 = _mm512_set1_epi32(255);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 lm = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512i a = unkey16(_mm512_maskz_loadu_epi32(lm, ka + i)), b = unkey16(_mm512_maskz_loadu_epi32(lm, kb + i));
        __mmask16 sw = _mm512_cmplt_epu32_mask(_mm512_and_si512(a, absm), _mm512_and_si512(b, absm));
        __m512i A = _mm512_mask_blend_epi32(sw, a, b), B = _mm512_mask_blend_epi32(sw, b, a);
        __m512i aa = _mm512_and_si512(A, absm), bb = _mm512_and_si512(B, absm);
        __m512i ea = _mm512_srli_epi32(aa, 23), eb = _mm512_srli_epi32(bb, 23);
        __mmask16 bz = _mm512_cmpeq_epi32_mask(bb, zero);
        __mmask16 special = (_mm512_cmpeq_epi32_mask(eb, zero) & (__mmask16)~bz) | _mm512_cmpeq_epi32_mask(ea, e255);
        __m512i ma = _mm512_slli_epi32(_mm512_or_si512(_mm512_and_si512(aa, mant), hid), 6);
        __m512i mb = _mm512_slli_epi32(_mm512_or_si512(_mm512_and_si512(bb, mant), hid), 6);
        __m512i d = _mm512_sub_epi32(ea, eb);
        __m512i low = _mm512_sub_epi32(_mm512_sllv_epi32(one, d), one); /* d >= 32: all ones */
        __mmask16 st = _mm512_test_epi32_mask(mb, low);
        mb = _mm512_mask_or_epi32(_mm512_srlv_epi32(mb, d), st, _mm512_srlv_epi32(mb, d), one);
        __mmask16 diff = _mm512_test_epi32_mask(_mm512_xor_si512(A, B), sgn);
        __m512i msum = _mm512_add_epi32(ma, mb), mdif = _mm512_sub_epi32(ma, mb);
        __mmask16 carry = _mm512_test_epi32_mask(msum, _mm512_set1_epi32(1 << 30)) & (__mmask16)~diff;
        msum = _mm512_mask_or_epi32(msum, carry, _mm512_srli_epi32(msum, 1), _mm512_and_si512(msum, one));
        __m512i e = _mm512_mask_add_epi32(ea, carry, ea, one);
        __mmask16 zr = diff & _mm512_cmpeq_epi32_mask(mdif, zero);
        __m512i s = _mm512_sub_epi32(_mm512_lzcnt_epi32(mdif), _mm512_set1_epi32(2));
        special |= diff & (__mmask16)~zr & _mm512_cmpge_epi32_mask(s, ea);
        __m512i m = _mm512_mask_blend_epi32(diff, msum, _mm512_sllv_epi32(mdif, s));
        e = _mm512_mask_sub_epi32(e, diff, e, s);
        __m512i rem = _mm512_and_si512(m, _mm512_set1_epi32(63));
        m = _mm512_srli_epi32(m, 6);
        __mmask16 up = _mm512_cmpgt_epi32_mask(rem, _mm512_set1_epi32(32)) |
                       (_mm512_cmpeq_epi32_mask(rem, _mm512_set1_epi32(32)) & _mm512_test_epi32_mask(m, one));
        m = _mm512_mask_add_epi32(m, up, m, one);
        __mmask16 ovf = _mm512_test_epi32_mask(m, _mm512_set1_epi32(1 << 24));
        m = _mm512_mask_srli_epi32(m, ovf, m, 1);
        e = _mm512_mask_add_epi32(e, ovf, e, one);
        special |= _mm512_cmpge_epi32_mask(e, e255) & (__mmask16)~zr & (__mmask16)~bz;
        __m512i r = _mm512_or_si512(_mm512_or_si512(_mm512_and_si512(A, sgn), _mm512_slli_epi32(e, 23)),
                                    _mm512_and_si512(m, mant));
        r = _mm512_mask_mov_epi32(r, zr, zero);
        r = _mm512_mask_mov_epi32(r, bz, A);
        __mmask16 rn = _mm512_cmplt_epi32_mask(r, zero);
        __m512i key = _mm512_mask_sub_epi32(r, rn, zero, _mm512_and_si512(r, absm));
        if (relu) key = _mm512_max_epi32(key, zero);
        _mm512_mask_storeu_epi32(out + i, lm, key);
        for (unsigned sp = (unsigned)(special & lm); sp; sp &= sp - 1) {
            size_t j = i + (size_t)__builtin_ctz(sp);
            qatrt_key_add_scalar(1, ka + j, kb + j, out + j, relu);
        }
    }
}

/* the flip bits of channels n0 .. n0 + r (r <= 16) as a mask */
AI __mmask16 flip16(const uint8_t *flip, int n0, int r)
{
    unsigned f = 0;
    if (flip) f = flip[n0 / 8] | (r > 8 ? (unsigned)flip[n0 / 8 + 1] << 8 : 0u);
    return _cvtu32_mask16(f);
}

/* 16 accumulators (the lm ones), negated where fm is set */
AI __m512i load_flipped(const int32_t *c, __mmask16 lm, __mmask16 fm)
{
    __m512i v = _mm512_maskz_loadu_epi32(lm, c);
    return _mm512_mask_sub_epi32(v, fm, _mm512_setzero_si512(), v);
}

/* sixteen channels per step: the flip bits are a mask register, the
 * comparison's mask is the output bits */
static void thresh_bits_avx512(int M, int N, const int32_t *C, size_t ldc, const int32_t *thr, const uint8_t *flip,
                               uint8_t *out, size_t ldo)
{
    for (int n0 = 0; n0 < N; n0 += 16) {
        int r = N - n0 < 16 ? N - n0 : 16;
        __mmask16 lm = _cvtu32_mask16(_bzhi_u32(0xffffu, (unsigned)r)), fm = flip16(flip, n0, r);
        __m512i t = _mm512_maskz_loadu_epi32(lm, thr + n0);
        for (int m = 0; m < M; m++) {
            __m512i v = load_flipped(C + (size_t)m * ldc + n0, lm, fm);
            unsigned bits = _cvtmask16_u32(_mm512_mask_cmplt_epi32_mask(lm, v, t));
            uint8_t *o = out + (size_t)m * ldo + (size_t)(n0 / 8);
            o[0] = (uint8_t)bits;
            if (r > 8) o[1] = (uint8_t)(bits >> 8);
        }
    }
}

/* Up to 15 thresholds (16 levels, 4-bit activations): 16 channels per
 * vector, their thresholds transposed into registers once; the count of
 * those <= s by compares, the level by a permute of the 16 levels. More
 * thresholds: the reference's bisection. */
static void thresh_levels_avx512(int M, int N, const int32_t *C, size_t ldc, const int32_t *thr, int T,
                                 const uint8_t *flip, const int8_t *levels, int8_t *out, size_t ldo)
{
    if (T > 15) {
        qatrt_thresh_levels_ref(M, N, C, ldc, thr, T, flip, levels, out, ldo);
        return;
    }
    int32_t lv[16] = {0};
    for (int i = 0; i <= T; i++) lv[i] = levels[i];
    const __m512i ltab = _mm512_loadu_si512(lv), one = _mm512_set1_epi32(1);
    for (int n0 = 0; n0 < N; n0 += 16) {
        int r = imin(16, N - n0);
        __mmask16 lm = _cvtu32_mask16(_bzhi_u32(0xffffu, (unsigned)r));
        __m512i tv[15];
        for (int t = 0; t < 15; t++) {
            int32_t col[16] = {0};
            for (int i = 0; i < r && t < T; i++) col[i] = thr[(size_t)(n0 + i) * (size_t)T + (size_t)t];
            tv[t] = _mm512_loadu_si512(col);
        }
        __mmask16 fm = flip16(flip, n0, r);
        for (int m = 0; m < M; m++) {
            __m512i v = load_flipped(C + (size_t)m * ldc + n0, lm, fm), cnt = _mm512_setzero_si512();
            for (int t = 0; t < 15; t++)
                if (t < T) cnt = _mm512_mask_add_epi32(cnt, _mm512_cmple_epi32_mask(tv[t], v), cnt, one);
            _mm_mask_storeu_epi8(out + (size_t)m * ldo + n0, lm, _mm512_cvtepi32_epi8(_mm512_permutexvar_epi32(cnt, ltab)));
        }
    }
}

/* ---- direct convolutions into packed signs (kern.h qatrt_dconv) ----------
 * A lane per output channel, 16 to a vector, NB vectors; R output
 * positions of one output row share each weight vector, and each 32-bit
 * word (bconv) or int16 pair (i16conv) of a position's input is broadcast
 * from the padded map itself. The R NB accumulators stay in registers for
 * the whole kernel window. */
#define DC_MAXACC 16

AI void bconv_loop(int R, int NB, int kh, int T, const uint8_t *const *a_, size_t row, const uint32_t *w,
                   size_t bstr, __m512i *out)
{
    const uint8_t *a[8];
    __m512i acc[DC_MAXACC];
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++) a[r] = a_[r];
    #pragma GCC unroll 16
    for (int i = 0; i < R * NB; i++) acc[i] = _mm512_setzero_si512();
    for (int ky = 0; ky < kh; ky++) {
        const uint32_t *wk = w + (size_t)ky * (size_t)T * 16;
        size_t ao = (size_t)ky * row;
        for (int t = 0; t < T; t++) {
            __m512i wv[4];
            #pragma GCC unroll 4
            for (int j = 0; j < NB; j++) wv[j] = _mm512_load_si512(wk + (size_t)j * bstr + (size_t)t * 16);
            #pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                uint32_t v;
                memcpy(&v, a[r] + ao + 4 * (size_t)t, 4);
                __m512i av = _mm512_set1_epi32((int)v);
                #pragma GCC unroll 4
                for (int j = 0; j < NB; j++)
                    acc[r * NB + j] = _mm512_add_epi32(acc[r * NB + j], _mm512_popcnt_epi32(_mm512_xor_si512(av, wv[j])));
            }
        }
    }
    #pragma GCC unroll 16
    for (int i = 0; i < R * NB; i++) out[i] = acc[i];
}

/* *acc += the pairwise int16 products of a and b (VPDPWSSD). Written as
 * asm: with the intrinsic GCC 12 copied every accumulator of a tile to
 * another register and back around each VPDPWSSD and spilled two of
 * them (18% of the int16 direct convolution's time). */
AI void dpwssd_acc(__m512i *acc, __m512i a, __m512i b)
{
    __asm__("vpdpwssd %2, %1, %0" : "+v"(*acc) : "v"(a), "v"(b));
}

AI void i16conv_loop(int R, int NB, int kh, int Q, const int16_t *const *a_, size_t row, const int16_t *w,
                     size_t bstr, __m512i *out)
{
    const int16_t *a[8];
    __m512i acc[DC_MAXACC];
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++) a[r] = a_[r];
    #pragma GCC unroll 16
    for (int i = 0; i < R * NB; i++) acc[i] = _mm512_setzero_si512();
    for (int ky = 0; ky < kh; ky++) {
        const int16_t *wk = w + (size_t)ky * (size_t)Q * 32;
        size_t ao = (size_t)ky * row;
        for (int q = 0; q < Q; q++) {
            __m512i wv[4];
            #pragma GCC unroll 4
            for (int j = 0; j < NB; j++) wv[j] = _mm512_load_si512(wk + (size_t)j * bstr + (size_t)q * 32);
            #pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                uint32_t v;
                memcpy(&v, a[r] + ao + 2 * (size_t)q, 4);
                __m512i av = _mm512_set1_epi32((int)v);
                #pragma GCC unroll 4
                for (int j = 0; j < NB; j++) dpwssd_acc(&acc[r * NB + j], av, wv[j]);
            }
        }
    }
    #pragma GCC unroll 16
    for (int i = 0; i < R * NB; i++) out[i] = acc[i];
}

/* what the tiles of one output row need besides the weights: the input
 * of its position 0 (position x astep units on), its output bytes (the
 * group's first block; a pooled map's pooled row), and, bconv, its class
 * bounds (the border classes xc0 and xc1 at x = 0 and ow - 1, else 0,
 * N apart); per block the flip mask and, i16conv, the thresholds */
typedef struct {
    const uint8_t *arow;
    size_t astep;
    uint8_t *orow;
    size_t ldo;
    const int32_t *by;
    size_t N;
    int ow, xc0, xc1;
    __m512i tv[4];
    __mmask16 fm[4];
    uint64_t flipw; /* fm[0 .. NB - 1] joined, as a position's bits */
    int anyflip;
    /* a pooled map (qatrt_dconv pool): R > 1 tiles start on an even x
     * and AND their positions in pairs; the window's second row (and_row)
     * and a 1-position tile's odd x AND into what is there rather than
     * store */
    int pool, and_row;
} dc_io;

/* i16conv's comparison with the shift folded into 16 thresholds (the
 * caller keeps acc << shift in int32, and off INT32_MIN where negated):
 * acc << s < t is acc < ceil(t / 2^s); -(acc << s) < t is acc > floor(-t
 * / 2^s) =: f, i.e. -acc < -f, f capped at INT32_MAX (acc > f never
 * holds then, nor does -acc < -INT32_MAX for acc != INT32_MIN) */
AI __m512i i16_bounds(const int32_t *thr, int shift, __mmask16 fm)
{
    int32_t b[16];
    for (int n = 0; n < 16; n++) {
        int64_t t = thr[n];
        if (fm >> n & 1) {
            int64_t f = (-t) >> shift;
            b[n] = (int32_t)-(f > INT32_MAX ? INT32_MAX : f);
        } else {
            b[n] = (int32_t)-((-t) >> shift);
        }
    }
    return _mm512_loadu_si512(b);
}

/* the tile of positions x0 .. x0 + R - 1: the K loop, then the signs
 * straight from the registers */
AI void dc_tile(int bin, int R, int NB, int kh, int T, size_t row, const void *w, size_t bstr, const dc_io *io, int x0)
{
    __m512i acc[DC_MAXACC];
    const uint8_t *a[8];
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++) a[r] = io->arow + (size_t)(x0 + r) * io->astep;
    if (bin) bconv_loop(R, NB, kh, T, a, row, w, bstr, acc);
    else i16conv_loop(R, NB, kh, T, (const int16_t *const *)(const void *)a, row, w, bstr, acc);
    /* a position's NB 16-bit masks joined into one word, one store */
    uint64_t bits[8];
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        __mmask16 m[4];
        const int32_t *b = io->by;
        if (bin) {
            int x = x0 + r, xc = x == 0 ? io->xc0 : x == io->ow - 1 ? io->xc1 : 0;
            b += (size_t)xc * io->N;
        }
        #pragma GCC unroll 4
        for (int j = 0; j < NB; j++) {
            if (bin) {
                m[j] = _mm512_cmpge_epi32_mask(acc[r * NB + j], _mm512_loadu_si512(b + 16 * j));
            } else {
                __m512i v = acc[r * NB + j];
                if (io->anyflip) v = _mm512_mask_sub_epi32(v, io->fm[j], _mm512_setzero_si512(), v);
                m[j] = _mm512_cmplt_epi32_mask(v, io->tv[j]);
            }
        }
        if (NB == 4)
            bits[r] = _cvtmask64_u64(_mm512_kunpackd(_mm512_kunpackw(m[3], m[2]), _mm512_kunpackw(m[1], m[0])));
        else if (NB == 2) bits[r] = _cvtmask32_u32(_mm512_kunpackw(m[1], m[0]));
        else bits[r] = _cvtmask16_u32(m[0]);
        if (bin) bits[r] ^= io->flipw; /* the flips, in one general register op */
    }
    if (!io->pool) {
        uint8_t *o0 = io->orow + (size_t)x0 * io->ldo;
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++) memcpy(o0 + (size_t)r * io->ldo, &bits[r], 2 * (size_t)NB);
        return;
    }
    uint8_t *o0 = io->orow + (size_t)(x0 / 2) * io->ldo;
    int and_out = io->and_row | (R == 1 ? x0 & 1 : 0);
    #pragma GCC unroll 8
    for (int r = 0; r < R; r += 2) {
        uint64_t v = R > 1 ? bits[r] & bits[r + 1] : bits[r], o = 0;
        uint8_t *dst = o0 + (size_t)(r / 2) * io->ldo;
        if (and_out) {
            memcpy(&o, dst, 2 * (size_t)NB);
            v &= o;
        }
        memcpy(dst, &v, 2 * (size_t)NB);
    }
}

/* one output row (ow >= R), tile after tile in one call: the last R
 * again, overlapping, when R does not divide ow */
typedef void dc_row_fn(int kh, int T, size_t row, const void *w, size_t bstr, const dc_io *io);
#define DC_ROW(name, bin, R, NB)                                                                                    \
    static __attribute__((noinline)) void name(int kh, int T, size_t row, const void *w, size_t bstr,             \
                                               const dc_io *io)                                                   \
    {                                                                                                              \
        for (int ox0 = 0; ox0 < io->ow;) {                                                                         \
            int x0 = ox0 + R > io->ow ? io->ow - R : ox0;                                                          \
            dc_tile(bin, R, NB, kh, T, row, w, bstr, io, x0);                                                      \
            ox0 = x0 + R;                                                                                          \
        }                                                                                                          \
    }
DC_ROW(bconv_row_8x1, 1, 8, 1)
DC_ROW(bconv_row_8x2, 1, 8, 2)
DC_ROW(bconv_row_4x4, 1, 4, 4)
DC_ROW(bconv_row_1x1, 1, 1, 1)
DC_ROW(bconv_row_1x2, 1, 1, 2)
DC_ROW(bconv_row_1x4, 1, 1, 4)
DC_ROW(i16conv_row_8x1, 0, 8, 1)
DC_ROW(i16conv_row_8x2, 0, 8, 2)
DC_ROW(i16conv_row_4x4, 0, 4, 4)
DC_ROW(i16conv_row_1x1, 0, 1, 1)
DC_ROW(i16conv_row_1x2, 0, 1, 2)
DC_ROW(i16conv_row_1x4, 0, 1, 4)

/* every position of the map: groups of NB blocks, a row at a time, R
 * positions a tile (one when the row is shorter than R). Only a row's
 * first and last positions can be in the padding's border classes
 * (pad <= 1). A pooled map (ow even) takes the same tiles: R is even, so
 * an R tile starts on an even x (the overlapping last one too) and ANDs
 * its pairs, and a window's first position is always stored before the
 * others AND into it. The shape is copied to locals: the stores of bits
 * could alias *d. */
AI void dc_run(int bin, const qatrt_dconv *d, const void *in, size_t unit, int T, size_t bstr, dc_row_fn *row8x1,
               dc_row_fn *row8x2, dc_row_fn *row4x4, dc_row_fn *row1x1, dc_row_fn *row1x2, dc_row_fn *row1x4)
{
    const int N = d->N, oh = d->oh, ow = d->ow, kh = d->kh, stride = d->stride;
    const size_t row = d->row, px = d->px, ldo = d->ldo;
    const int32_t *thr = d->thr;
    uint8_t *out = d->out;
    int nblk = N / 16, NB = nblk % 4 == 0 ? 4 : nblk % 2 == 0 ? 2 : 1, R = NB == 4 ? 4 : 8;
    dc_row_fn *rowf = ow < R ? (NB == 4 ? row1x4 : NB == 2 ? row1x2 : row1x1)
                             : (NB == 4 ? row4x4 : NB == 2 ? row8x2 : row8x1);
    size_t wunit = bin ? 4 : 2;
    dc_io io;
    io.anyflip = 0;
    io.astep = (size_t)stride * px * unit;
    io.ldo = ldo;
    io.N = (size_t)N;
    io.ow = ow;
    io.pool = d->pool;
    io.xc0 = qatrt_dconv_cls(d, 0, 0) & 3;
    io.xc1 = qatrt_dconv_cls(d, 0, ow - 1) & 3;
    for (int g = 0; g < nblk; g += NB) {
        const uint8_t *w = (const uint8_t *)d->W + (size_t)g * bstr * wunit;
        for (int j = 0; j < NB; j++) {
            io.fm[j] = flip16(d->flip, 16 * (g + j), 16);
            if (!bin) io.tv[j] = i16_bounds(thr + 16 * (size_t)(g + j), d->shift, io.fm[j]);
            io.anyflip |= _cvtmask16_u32(io.fm[j]) != 0;
        }
        io.flipw = 0;
        for (int j = 0; j < NB; j++) io.flipw |= (uint64_t)_cvtmask16_u32(io.fm[j]) << 16 * j;
        for (int oy = 0; oy < oh; oy++) {
            io.arow = (const uint8_t *)in + (size_t)(oy * stride) * row * unit;
            io.by = thr + (size_t)(qatrt_dconv_cls(d, oy, 0) & ~3) * (size_t)N + 16 * (size_t)g;
            io.orow = out + (size_t)(io.pool ? oy / 2 * (ow / 2) : oy * ow) * ldo + 2 * (size_t)g;
            io.and_row = io.pool & oy;
            rowf(kh, T, row, w, bstr, &io);
        }
    }
}

static void bconv_bits_avx512(const qatrt_dconv *d, const uint8_t *in)
{
    int T = (int)((size_t)d->kw * d->px / 4);
    dc_run(1, d, in, 1, T, (size_t)d->kh * (size_t)T * 16, bconv_row_8x1, bconv_row_8x2, bconv_row_4x4, bconv_row_1x1,
           bconv_row_1x2, bconv_row_1x4);
}

static void i16conv_bits_avx512(const qatrt_dconv *d, const int16_t *in)
{
    int Q = (int)(((size_t)d->kw * d->px + 1) / 2);
    dc_run(0, d, in, 2, Q, (size_t)d->kh * (size_t)Q * 32, i16conv_row_8x1, i16conv_row_8x2, i16conv_row_4x4,
           i16conv_row_1x1, i16conv_row_1x2, i16conv_row_1x4);
}

/* ---- a first layer's int16 input map (kern.h tab16_map) -----------------
 * 32 pixels of a row at a time: each channel's bytes widened to 16-bit
 * indices and looked up in its 256-entry table as four 64-entry VPERMI2W
 * lookups, chosen by index bits 6 and 7; then the C planes interleaved
 * into C vectors of (x, c) order, each a masked VPERMW per plane (the
 * indices and masks worked out once per call). More than 4 channels: the
 * reference. */
#define TAB_MAXC 4

AI __m512i tab256_epi16(const int16_t *t, __m512i v)
{
    __m512i l0 = _mm512_permutex2var_epi16(_mm512_loadu_si512(t), v, _mm512_loadu_si512(t + 32));
    __m512i l1 = _mm512_permutex2var_epi16(_mm512_loadu_si512(t + 64), v, _mm512_loadu_si512(t + 96));
    __m512i l2 = _mm512_permutex2var_epi16(_mm512_loadu_si512(t + 128), v, _mm512_loadu_si512(t + 160));
    __m512i l3 = _mm512_permutex2var_epi16(_mm512_loadu_si512(t + 192), v, _mm512_loadu_si512(t + 224));
    __mmask32 b6 = _mm512_test_epi16_mask(v, _mm512_set1_epi16(64)), b7 = _mm512_test_epi16_mask(v, _mm512_set1_epi16(128));
    return _mm512_mask_blend_epi16(b7, _mm512_mask_blend_epi16(b6, l0, l1), _mm512_mask_blend_epi16(b6, l2, l3));
}

static void tab16_map_avx512(int C, int h, int w, const uint8_t *img, const int16_t *tab, int16_t *map, size_t row)
{
    if (C < 1 || C > TAB_MAXC) {
        qatrt_tab16_map_ref(C, h, w, img, tab, map, row);
        return;
    }
    /* output vector o, word k: pixel g / C of plane g % C, g = 32 o + k
     * (g / C as g ceil(2^16 / C) >> 16, exact for g < 2^11) */
    static const uint16_t iota[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                      16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    __m512i idx[TAB_MAXC];
    __mmask32 sel[TAB_MAXC][TAB_MAXC];
    for (int o = 0; o < C; o++) {
        __m512i g = _mm512_add_epi16(_mm512_loadu_si512(iota), _mm512_set1_epi16((short)(32 * o)));
        __m512i q = C == 1 ? g : _mm512_mulhi_epu16(g, _mm512_set1_epi16((short)((65536 + C - 1) / C)));
        __m512i r = _mm512_sub_epi16(g, _mm512_mullo_epi16(q, _mm512_set1_epi16((short)C)));
        idx[o] = q;
        for (int c = 0; c < C; c++) sel[o][c] = _mm512_cmpeq_epi16_mask(r, _mm512_set1_epi16((short)c));
    }
    /* the image is new to the caches (a first layer's input): ask for
     * all of it up front rather than miss plane after plane, row after row */
    size_t bytes = (size_t)C * (size_t)h * (size_t)w;
    if (bytes <= 16384)
        for (size_t b = 0; b < bytes; b += 64) _mm_prefetch((const char *)(img + b), _MM_HINT_T0);
    for (int y = 0; y < h; y++)
        for (int x0 = 0; x0 < w; x0 += 32) {
            int n = imin(32, w - x0);
            __m512i pl[TAB_MAXC];
            for (int c = 0; c < C; c++) {
                const uint8_t *src = img + ((size_t)c * (size_t)h + (size_t)y) * (size_t)w + (size_t)x0;
                __m512i v = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(mask32(n), src));
                pl[c] = tab256_epi16(tab + (size_t)c * 256, v);
            }
            int16_t *dst = map + (size_t)y * row + (size_t)x0 * (size_t)C;
            for (int o = 0; o < C && 32 * o < n * C; o++) {
                __m512i out = _mm512_setzero_si512();
                for (int c = 0; c < C; c++) out = _mm512_mask_permutexvar_epi16(out, sel[o][c], idx[o], pl[c]);
                _mm512_mask_storeu_epi16(dst + 32 * o, mask32(n * C - 32 * o), out);
            }
        }
}

/* defined here, picked up by kern_dispatch.c */
const qatrt_kernels qatrt_kernels_avx512 = {
    .isa = QATRT_ISA_AVX512,
    .name = "avx512",
    .i8panel = 1,
    .bgemm = bgemm_avx512,
    .bgemm_pk = bgemm_pk_avx512,
    .tgemm = tgemm_avx512,
    .i8tgemm = i8tgemm_avx512,
    .u8i8gemm = u8i8gemm_avx512,
    .u8bgemm = u8bgemm_avx512,
    .u8bgemm_pk = u8bgemm_pk_avx512,
    .u8i8gemm_pk = u8i8gemm_pk_avx512,
    .i8i8gemm_pk = i8i8gemm_pk_avx512,
    .i8i8gemm = i8i8gemm_avx512,
    .i16gemm = i16gemm_avx512,
    .p2gemm = p2gemm_avx512,
    .u8i8gemm_bits = u8i8gemm_bits_avx512,
    .thresh_bits = thresh_bits_avx512,
    .thresh_levels = thresh_levels_avx512,
    .mbgemm = qatrt_mbgemm_avx2,
    .i32i8gemm = qatrt_i32i8gemm_avx2,
    .key_add = key_add_avx512,
    .bconv_bits = bconv_bits_avx512,
    .i16conv_bits = i16conv_bits_avx512,
    .x64gemm = qatrt_x64gemm_avx2,
    .tab16_map = tab16_map_avx512,
};
