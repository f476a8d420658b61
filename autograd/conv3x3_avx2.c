/* conv3x3_avx2.c: the direct 3x3 convolution (conv3x3.h) with AVX2 + FMA,
 * conv3x3_avx512.c's schemes on 8 lanes and 16 registers. Forward: a vector
 * is 8 consecutive pixels of a map, rows flattened, read at 9 shifts from a
 * copy of the input with a zero row above and below; the lanes whose left or
 * right neighbour is off the map are zeroed by an AND with a per-vector
 * mask. Weight gradient: output channels along the lanes. */
#include <immintrin.h>
#include <stdint.h>

#include "conv3x3.h"
#include "conv3x3_impl.h"

#define NF 4  /* output channels per forward tile (half a packed block) */
#define NV 3  /* pixel vectors per forward tile */

#define INLINE static inline __attribute__((always_inline))

/* Per vector v of 8 pixels, three masks of 8 lanes (all bits set or
 * clear), as for AVX-512: [3v] on the map and column not 0, [3v + 1] on the
 * map, [3v + 2] on the map and column not W - 1. */
static void masks_of(int H, int W, int32_t *mk)
{
    size_t hw = (size_t)H * (size_t)W, nvec = (hw + 7) / 8;
    int col = 0;
    for (size_t v = 0; v < nvec; v++) {
        int32_t *m = mk + 24 * v;
        for (size_t i = 0; i < 8; i++) {
            int on = v * 8 + i < hw;
            m[i] = on && col != 0 ? -1 : 0;
            m[8 + i] = on ? -1 : 0;
            m[16 + i] = on && col != W - 1 ? -1 : 0;
            if (on && ++col == W) col = 0;
        }
    }
}

INLINE __m256 mask_of(const int32_t *m) { return _mm256_castsi256_ps(_mm256_load_si256((const __m256i *)m)); }

/* ---- forward: 4 output channels x nv vectors of pixels ---------------------- */
/* xp: the first input plane at the tile's first pixel; wb: the tile's first
 * weight in its packed block ([c][tap][8], the tile is half of it); y: the
 * tile's first output map at that pixel, of which nf (<= 4) exist; mk: the
 * tile's first vector's masks. */
INLINE void fwd_tile(const int nv, const float *xp, size_t pitch, int W, int C, const float *wb, const int32_t *mk,
                     float *y, size_t hw, int nf, int accumulate)
{
    __m256 a[NF][NV];
#pragma GCC unroll 4
    for (int f = 0; f < NF; f++)
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) a[f][v] = _mm256_setzero_ps();
    for (int c = 0; c < C; c++, xp += pitch, wb += 9 * QAT_CONV3X3_FBLOCK) {
        const float *r = xp - 1;
#pragma GCC unroll 3
        for (int kh = 0; kh < 3; kh++, r += W) {
#pragma GCC unroll 3
            for (int kw = 0; kw < 3; kw++) {
                __m256 xv[NV];
#pragma GCC unroll 3
                for (int v = 0; v < nv; v++) {
                    xv[v] = _mm256_loadu_ps(r + 8 * v + kw);
                    if (kw != 1) xv[v] = _mm256_and_ps(xv[v], mask_of(mk + 24 * v + 8 * kw));
                }
                const float *wt = wb + (kh * 3 + kw) * QAT_CONV3X3_FBLOCK;
#pragma GCC unroll 4
                for (int f = 0; f < NF; f++) {
                    __m256 b = _mm256_broadcast_ss(wt + f);
#pragma GCC unroll 3
                    for (int v = 0; v < nv; v++) a[f][v] = _mm256_fmadd_ps(b, xv[v], a[f][v]);
                }
            }
        }
    }
#pragma GCC unroll 3
    for (int v = 0; v < nv; v++) {
        __m256i k1 = _mm256_load_si256((const __m256i *)(mk + 24 * v + 8));
#pragma GCC unroll 4
        for (int f = 0; f < NF; f++) {
            if (f >= nf) break; /* the block's zero-padded channels */
            float *o = y + (size_t)f * hw + 8 * v;
            __m256 s = accumulate ? _mm256_add_ps(_mm256_maskload_ps(o, k1), a[f][v]) : a[f][v];
            _mm256_maskstore_ps(o, k1, s);
        }
    }
}

typedef void (*fwd_fn)(const float *, size_t, int, int, const float *, const int32_t *, float *, size_t, int, int);

#define FWD(nv)                                                                                                    \
    static void fwd_##nv(const float *xp, size_t pitch, int W, int C, const float *wb, const int32_t *mk, float *y,  \
                         size_t hw, int nf, int accumulate)                                                        \
    {                                                                                                              \
        fwd_tile(nv, xp, pitch, W, C, wb, mk, y, hw, nf, accumulate);                                              \
    }
FWD(1) FWD(2) FWD(3)
static const fwd_fn fwd_tiles[3] = {fwd_1, fwd_2, fwd_3};

static void fwd_avx2(const float *wp, int C, int H, int W, int F, int n, const float *x, float *y, int accumulate,
                     float *scratch)
{
    size_t hw = (size_t)H * (size_t)W, pitch = conv3x3_pitch(H, W), nvec = (hw + 7) / 8;
    conv3x3_scratch s = conv3x3_scratch_split(scratch, H, W);
    int32_t *mk = s.masks;
    masks_of(H, W, mk);
    int ntile = (int)((nvec + NV - 1) / NV);
    for (int i = 0; i < n; i++) {
        conv3x3_pad(x + (size_t)i * (size_t)C * hw, C, H, W, 1, s.planes);
        float *yi = y + (size_t)i * (size_t)F * hw;
        for (int f0 = 0; f0 < F; f0 += NF) { /* half blocks */
            const float *wb = wp + (size_t)(f0 / QAT_CONV3X3_FBLOCK) * (size_t)C * 9 * QAT_CONV3X3_FBLOCK +
                              f0 % QAT_CONV3X3_FBLOCK;
            size_t v0 = 0;
            for (int t = 0; t < ntile; t++) {
                int nv = conv3x3_tile_len(nvec - v0, t, ntile);
                fwd_tiles[nv - 1](s.planes + 8 * v0, pitch, W, C, wb, mk + 24 * v0, yi + (size_t)f0 * hw + 8 * v0, hw,
                                  F - f0, accumulate);
                v0 += (size_t)nv;
            }
        }
    }
}

/* ---- weight gradient, output channels along the lanes ------------------------ */
/* As conv3x3_avx512.c's dw_ch: an outer product over pixels of dy
 * transposed (dyT[p][f]) and x broadcast from planes with a zero border all
 * round; 16 output channels (two vectors) x 6 (input channel, tap) pairs
 * in registers. Its pixels-along-the-lanes scheme, with 9 accumulators at
 * most in 16 registers, measured 0.65-0.9x of this on every CIFAR layer. */

/* r[0..7] (rows) -> their transpose in place */
INLINE void transpose8(__m256 *r)
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) { /* u[4i + j], 128-bit lane q: rows 4i..4i+3 of column 4q + j */
        u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

/* src: rows x cols floats, rows ld_src apart -> dst[c][r], cols rows of
 * ld_dst floats. add 0: dst = the transpose, each row written 8 floats at a
 * time, zeros past rows (ld_dst >= rows rounded up to 8); add 1: dst += the
 * transpose, nothing past rows touched. */
static void transpose_block(const float *src, size_t ld_src, size_t rows, size_t cols, float *dst, size_t ld_dst,
                            int add)
{
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (size_t r0 = 0; r0 < rows; r0 += 8)
        for (size_t c0 = 0; c0 < cols; c0 += 8) {
            int nr = rows - r0 < 8 ? (int)(rows - r0) : 8, nc = cols - c0 < 8 ? (int)(cols - c0) : 8;
            __m256i kc = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc), lanes);
            __m256i kr = _mm256_cmpgt_epi32(_mm256_set1_epi32(add ? nr : 8), lanes);
            __m256 v[8];
            for (int i = 0; i < 8; i++)
                v[i] = i < nr ? _mm256_maskload_ps(src + (r0 + (size_t)i) * ld_src + c0, kc) : _mm256_setzero_ps();
            transpose8(v);
            for (int i = 0; i < nc; i++) {
                float *d = dst + (c0 + (size_t)i) * ld_dst + r0;
                __m256 o = add ? _mm256_add_ps(_mm256_maskload_ps(d, kr), v[i]) : v[i];
                _mm256_maskstore_ps(d, kr, o);
            }
        }
}

#define NRC 2 /* rows of 3 taps per tile, with 16 output channels: 12 accumulators */

/* xb: the group's first image's padded planes (images ximg floats apart);
 * roff: the tile's rows (input channel c, tap row kh) as offsets in a
 * padded image; dyT: the tile's 16 channels, pixel after pixel Fp floats
 * apart (images dyimg apart); dwT: the tile's first (c, tap) row of Fp
 * floats, at its first channel. */
INLINE void dw_ch_tile(const int nr, const float *xb, const size_t *roff, size_t ximg, const float *dyT, size_t dyimg,
                       int H, int W, int Fp, int nimg, float *dwT)
{
    __m256 a[2][3 * NRC];
#pragma GCC unroll 2
    for (int v = 0; v < 2; v++)
#pragma GCC unroll 6
        for (int j = 0; j < 3 * nr; j++) a[v][j] = _mm256_setzero_ps();
    size_t W2 = (size_t)W + 2;
    for (int i = 0; i < nimg; i++, xb += ximg, dyT += dyimg) {
        const float *rp[NRC];
#pragma GCC unroll 2
        for (int k = 0; k < nr; k++) rp[k] = xb + roff[k];
        const float *d = dyT;
        for (int h = 0; h < H; h++) {
            for (int w = 0; w < W; w++, d += Fp) {
                __m256 d0 = _mm256_load_ps(d), d1 = _mm256_load_ps(d + 8);
#pragma GCC unroll 2
                for (int k = 0; k < nr; k++) {
                    /* opaque to the compiler: it would otherwise keep this
                     * pixel's broadcasts for the next one's taps, and spill
                     * an accumulator for the registers */
                    const float *xr = rp[k] + w;
                    __asm__("" : "+r"(xr));
#pragma GCC unroll 3
                    for (int kw = 0; kw < 3; kw++) {
                        __m256 b = _mm256_broadcast_ss(xr + kw);
                        a[0][3 * k + kw] = _mm256_fmadd_ps(d0, b, a[0][3 * k + kw]);
                        a[1][3 * k + kw] = _mm256_fmadd_ps(d1, b, a[1][3 * k + kw]);
                    }
                }
            }
#pragma GCC unroll 2
            for (int k = 0; k < nr; k++) rp[k] += W2;
        }
    }
#pragma GCC unroll 2
    for (int v = 0; v < 2; v++)
#pragma GCC unroll 6
        for (int j = 0; j < 3 * nr; j++) {
            float *o = dwT + (size_t)j * (size_t)Fp + 8 * v;
            _mm256_store_ps(o, _mm256_add_ps(_mm256_load_ps(o), a[v][j]));
        }
}

typedef void (*dw_ch_fn)(const float *, const size_t *, size_t, const float *, size_t, int, int, int, int, float *);

#define DWC(nr)                                                                                                  \
    static void dw_ch_##nr(const float *xb, const size_t *roff, size_t ximg, const float *dyT, size_t dyimg, int H, \
                           int W, int Fp, int nimg, float *dwT)                                                  \
    {                                                                                                            \
        dw_ch_tile(nr, xb, roff, ximg, dyT, dyimg, H, W, Fp, nimg, dwT);                                         \
    }
DWC(1) DWC(2)
static const dw_ch_fn dw_ch_tiles[NRC] = {dw_ch_1, dw_ch_2};

static void dw_avx2(int C, int H, int W, int F, int n, const float *x, const float *dy, float *dw, float *scratch)
{
    conv3x3_dwch l = conv3x3_dwch_layout(scratch, C, H, W, F);
    size_t hw = (size_t)H * (size_t)W, W2 = (size_t)W + 2, ximg = (size_t)C * l.pitch2, dyimg = hw * (size_t)l.Fp;
    int nrow = 3 * C;
    memset(l.dwT, 0, sizeof(float) * 9 * (size_t)C * (size_t)l.Fp);
    for (int i0 = 0; i0 < n; i0 += l.group) {
        int m = n - i0 < l.group ? n - i0 : l.group;
        conv3x3_pad_all(x + (size_t)i0 * (size_t)C * hw, C, H, W, m, l.xpad);
        for (int i = 0; i < m; i++)
            transpose_block(dy + (size_t)(i0 + i) * (size_t)F * hw, hw, (size_t)F, hw, l.dyT + (size_t)i * dyimg,
                            (size_t)l.Fp, 0);
        for (int fb = 0; fb < l.Fp; fb += 16)
            for (int r0 = 0; r0 < nrow; r0 += NRC) {
                int nr = nrow - r0 < NRC ? nrow - r0 : NRC;
                size_t roff[NRC];
                for (int k = 0; k < nr; k++) roff[k] = (size_t)((r0 + k) / 3) * l.pitch2 + (size_t)((r0 + k) % 3) * W2;
                dw_ch_tiles[nr - 1](l.xpad, roff, ximg, l.dyT + fb, dyimg, H, W, l.Fp, m,
                                    l.dwT + (size_t)r0 * 3 * (size_t)l.Fp + fb);
            }
    }
    transpose_block(l.dwT, (size_t)l.Fp, (size_t)9 * (size_t)C, (size_t)F, dw, (size_t)9 * (size_t)C, 1);
}

const qat_conv3x3_kernels qat_conv3x3_kernels_avx2 = {QAT_CONV3X3_ISA_AVX2, "avx2", fwd_avx2, dw_avx2};
