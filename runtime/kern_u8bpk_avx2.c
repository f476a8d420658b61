/* kern_u8bpk_avx2.c: uint8 x binary GEMM on the packed layout of
 * kern_u8bpk.h with AVX2. VPSHUFB has 16-entry tables, so each byte of the
 * layout is looked up twice, by its bits 0..3 (the pixel pair j = 0, 1 and
 * the chunk t) and by its bits 2..5 (t and the pair j = 2, 3), in the lo and
 * in the hi nibble tables: four lookups of at most 30 per byte, summed in
 * bytes over 4 groups, then widened with VPMADDUBSW / VPMADDWD (the bytes of
 * a dword are one column). */
#include <immintrin.h>
#include <string.h>

#include "kern_u8bpk.h"

#define AI static inline __attribute__((always_inline))
#define KB 128 /* groups per K block: tables of 128 x 64 bytes = 8 KB of stack */

static inline int imin(int a, int b) { return a < b ? a : b; }

/* the 16 pixels of group g (zeros past K, none read there) */
AI __m128i load_group(const uint8_t *a, int K, int g)
{
    int k0 = 16 * g;
    if (K - k0 >= 16) return _mm_loadu_si128((const __m128i *)(a + k0));
    uint8_t t[16] = {0};
    memcpy(t, a + k0, (size_t)(K - k0));
    return _mm_loadu_si128((const __m128i *)t);
}

/* ---- tables --------------------------------------------------------------
 * Per group, 64 bytes: the A table (index bits 0..3 of a layout byte:
 * p0 + 2 p1 + 4 t) of the lo nibbles, of the hi nibbles, then the B table
 * (bits 2..5: t + 4 (p2 + 2 p3)) of the lo, of the hi nibbles. An entry adds
 * the nibbles of the pair of pixels of chunk t that its two pattern bits
 * select: two VPSHUFBs (0x80 where a bit is 0) and an add, lo and hi at
 * once in the two lanes. */
static void build_tables(const uint8_t *a, int K, int g0, int gn, __m256i *tab)
{
    /* entry i of A: q = i & 3, t = i >> 2; of B: q = i >> 2, t = i & 3 */
    const __m256i sa = _mm256_broadcastsi128_si256(
        _mm_setr_epi8(-128, 0, -128, 0, -128, 4, -128, 4, -128, 8, -128, 8, -128, 12, -128, 12));
    const __m256i sb = _mm256_broadcastsi128_si256(
        _mm_setr_epi8(-128, -128, 1, 1, -128, -128, 5, 5, -128, -128, 9, 9, -128, -128, 13, 13));
    const __m256i ta = _mm256_broadcastsi128_si256(
        _mm_setr_epi8(-128, -128, -128, -128, 2, 6, 10, 14, -128, -128, -128, -128, 2, 6, 10, 14));
    const __m256i tb = _mm256_broadcastsi128_si256(
        _mm_setr_epi8(-128, -128, -128, -128, -128, -128, -128, -128, 3, 7, 11, 15, 3, 7, 11, 15));
    const __m256i nib = _mm256_set1_epi8(0x0f);
    for (int gi = 0; gi < gn; gi++) {
        __m128i px = load_group(a, K, g0 + gi);
        /* lane 0: lo nibbles, lane 1: hi nibbles */
        __m256i v =
            _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(px), _mm_srli_epi16(px, 4), 1), nib);
        tab[2 * gi] = _mm256_add_epi8(_mm256_shuffle_epi8(v, sa), _mm256_shuffle_epi8(v, sb));
        tab[2 * gi + 1] = _mm256_add_epi8(_mm256_shuffle_epi8(v, ta), _mm256_shuffle_epi8(v, tb));
    }
}

static int32_t row_sum(const uint8_t *a, int K)
{
    __m256i s = _mm256_setzero_si256();
    int k = 0;
    for (; k + 32 <= K; k += 32)
        s = _mm256_add_epi64(s, _mm256_sad_epu8(_mm256_loadu_si256((const __m256i *)(a + k)), _mm256_setzero_si256()));
    int64_t v[4];
    _mm256_storeu_si256((__m256i *)v, s);
    int64_t r = v[0] + v[1] + v[2] + v[3];
    for (; k < K; k++) r += a[k];
    return (int32_t)r;
}

/* ---- one block of 16 columns ---------------------------------------------
 * Over gn groups from x (one 64-byte unit per group): P (the sums of the
 * selected lo nibbles + 16 x hi) of columns 0..7 into p[0], 8..15 into
 * p[1]. Bytes hold at most 4 x 2 x 30 = 240 before VPMADDUBSW widens them
 * (at most 16 x 480 + 480 per word, no saturation). */
AI void half_step(__m256i x, __m256i al, __m256i ah, __m256i bl, __m256i bh, __m256i *lo, __m256i *hi)
{
    __m256i xb = _mm256_and_si256(_mm256_srli_epi16(x, 2), _mm256_set1_epi8(0x0f));
    *lo = _mm256_add_epi8(_mm256_add_epi8(*lo, _mm256_shuffle_epi8(al, x)), _mm256_shuffle_epi8(bl, xb));
    *hi = _mm256_add_epi8(_mm256_add_epi8(*hi, _mm256_shuffle_epi8(ah, x)), _mm256_shuffle_epi8(bh, xb));
}

AI __m256i widen(__m256i lo, __m256i hi)
{
    __m256i w =
        _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_set1_epi8(1)), _mm256_maddubs_epi16(hi, _mm256_set1_epi8(16)));
    return _mm256_madd_epi16(w, _mm256_set1_epi16(1));
}

AI void group_step(const uint8_t *x, const __m256i *tab, int g, __m256i *l0, __m256i *h0, __m256i *l1, __m256i *h1)
{
    const __m128i *t = (const __m128i *)(tab + 2 * g);
    __m256i al = _mm256_broadcastsi128_si256(_mm_load_si128(t)),
            ah = _mm256_broadcastsi128_si256(_mm_load_si128(t + 1)),
            bl = _mm256_broadcastsi128_si256(_mm_load_si128(t + 2)),
            bh = _mm256_broadcastsi128_si256(_mm_load_si128(t + 3));
    half_step(_mm256_loadu_si256((const __m256i *)(x + (size_t)g * 64)), al, ah, bl, bh, l0, h0);
    half_step(_mm256_loadu_si256((const __m256i *)(x + (size_t)g * 64 + 32)), al, ah, bl, bh, l1, h1);
}

static __attribute__((noinline)) void block16(int gn, const uint8_t *x, const __m256i *tab, __m256i p[2])
{
    __m256i p0 = _mm256_setzero_si256(), p1 = _mm256_setzero_si256();
    for (int g0 = 0; g0 < gn; g0 += 4) {
        __m256i l0 = _mm256_setzero_si256(), h0 = l0, l1 = l0, h1 = l0;
        int ge = imin(g0 + 4, gn);
        if (ge - g0 == 4) {
            #pragma GCC unroll 4
            for (int g = g0; g < g0 + 4; g++) {
                group_step(x, tab, g, &l0, &h0, &l1, &h1);
                /* one group at a time: unrolled freely, gcc 12 hoists every
                 * lookup of the 4 groups and spills them */
                __asm__("" : "+x"(l0), "+x"(h0), "+x"(l1), "+x"(h1));
            }
        } else
            for (int g = g0; g < ge; g++) group_step(x, tab, g, &l0, &h0, &l1, &h1);
        p0 = _mm256_add_epi32(p0, widen(l0, h0));
        p1 = _mm256_add_epi32(p1, widen(l1, h1));
    }
    p[0] = p0;
    p[1] = p1;
}

void qatrt_u8bgemm_pk_avx2(int M, int N, int K, const uint8_t *A, size_t lda, const void *Bp, int32_t *C, size_t ldc)
{
    if (qatrt_u8b_trivial(M, N, K, C, ldc)) return;
    __m256i tab[KB * 2];
    int G = (K + 15) / 16, nb = (N + 15) / 16;
    size_t bstride = (size_t)G * 64;
    for (int m = 0; m < M; m++) {
        const uint8_t *a = A + (size_t)m * lda;
        int32_t *c = C + (size_t)m * ldc;
        const __m256i s = _mm256_set1_epi32(row_sum(a, K));
        for (int g0 = 0; g0 < G; g0 += KB) {
            int gn = imin(KB, G - g0);
            build_tables(a, K, g0, gn, tab);
            for (int b = 0; b < nb; b++) {
                __m256i p[2];
                block16(gn, (const uint8_t *)Bp + (size_t)b * bstride + (size_t)g0 * 64, tab, p);
                for (int h = 0; h < 2; h++) {
                    int n0 = 16 * b + 8 * h, nv = imin(8, N - n0);
                    if (nv <= 0) break;
                    /* C = sum_k a_k - 2 P, wrapping (P alone may pass 2^31) */
                    __m256i r = _mm256_sub_epi32(s, _mm256_slli_epi32(p[h], 1));
                    int32_t v[8] = {0};
                    if (g0) {
                        memcpy(v, c + n0, (size_t)nv * sizeof v[0]);
                        r = _mm256_add_epi32(_mm256_sub_epi32(r, s), _mm256_loadu_si256((const __m256i *)v));
                    }
                    _mm256_storeu_si256((__m256i *)v, r);
                    memcpy(c + n0, v, (size_t)nv * sizeof v[0]);
                }
            }
        }
    }
}
