/* conv3x3_avx512.c: the direct 3x3 convolution (conv3x3.h) with AVX-512.
 * Forward: pixels along the lanes, a vector is 16 consecutive pixels of a
 * map, rows flattened (a 16-wide row fills one, an 8-wide map puts two rows
 * in one), read at 9 shifts from a copy of the input with a zero row above
 * and below, and a mask per vector zeroes the lanes whose left or right
 * neighbour is off the map; 8 output channels x 3 vectors in registers.
 * Weight gradient: output channels along the lanes (dw_ch), or pixels along
 * the lanes for few input channels (dw_px). */
#include <immintrin.h>
#include <stdint.h>

#include "conv3x3.h"
#include "conv3x3_impl.h"

#define FB QAT_CONV3X3_FBLOCK
#define NV 3  /* pixel vectors per forward tile: 8 x 3 accumulators, 3 inputs */
#define NFD 3 /* output channels per weight-gradient tile: 3 x 9 accumulators */

#define INLINE static inline __attribute__((always_inline))

/* Per vector v of 16 pixels, three masks: [3v] lanes on the map whose
 * column is not 0 (they may read a left neighbour), [3v + 1] lanes on the
 * map, [3v + 2] lanes on the map whose column is not W - 1. */
static void masks_of(int H, int W, uint16_t *mk)
{
    size_t hw = (size_t)H * (size_t)W, nvec = (hw + 15) / 16;
    int col = 0;
    for (size_t v = 0; v < nvec; v++) {
        unsigned m0 = 0, m1 = 0, m2 = 0;
        for (unsigned i = 0; i < 16 && v * 16 + i < hw; i++) {
            m1 |= 1u << i;
            m0 |= (unsigned)(col != 0) << i;
            m2 |= (unsigned)(col != W - 1) << i;
            if (++col == W) col = 0;
        }
        mk[3 * v] = (uint16_t)m0, mk[3 * v + 1] = (uint16_t)m1, mk[3 * v + 2] = (uint16_t)m2;
    }
}

/* ---- forward: 8 output channels x nv vectors of pixels ---------------------- */
/* xp: the first input plane at the tile's first pixel; wb: the block's
 * packed weights ([c][tap][8]); y: the block's first output map at that
 * pixel, of which nf (<= 8) exist. */
INLINE void fwd_tile(const int nv, const float *xp, size_t pitch, int W, int C, const float *wb, const uint16_t *mk,
                     float *y, size_t hw, int nf, int accumulate)
{
    __m512 a[FB][NV];
    __mmask16 k0[NV], k2[NV];
#pragma GCC unroll 3
    for (int v = 0; v < nv; v++) {
        k0[v] = mk[3 * v];
        k2[v] = mk[3 * v + 2];
#pragma GCC unroll 8
        for (int f = 0; f < FB; f++) a[f][v] = _mm512_setzero_ps();
    }
    for (int c = 0; c < C; c++, xp += pitch, wb += 9 * FB) {
#pragma GCC unroll 3
        for (int kh = 0; kh < 3; kh++) {
            const float *r = xp + (size_t)kh * (size_t)W - 1;
#pragma GCC unroll 3
            for (int kw = 0; kw < 3; kw++) {
                __m512 xv[NV];
#pragma GCC unroll 3
                for (int v = 0; v < nv; v++)
                    xv[v] = kw == 1   ? _mm512_loadu_ps(r + 16 * v + 1)
                            : kw == 0 ? _mm512_maskz_loadu_ps(k0[v], r + 16 * v)
                                      : _mm512_maskz_loadu_ps(k2[v], r + 16 * v + 2);
                const float *wt = wb + (kh * 3 + kw) * FB;
#pragma GCC unroll 8
                for (int f = 0; f < FB; f++) {
                    __m512 b = _mm512_set1_ps(wt[f]);
#pragma GCC unroll 3
                    for (int v = 0; v < nv; v++) a[f][v] = _mm512_fmadd_ps(b, xv[v], a[f][v]);
                }
            }
        }
    }
#pragma GCC unroll 3
    for (int v = 0; v < nv; v++) {
        __mmask16 k1 = mk[3 * v + 1];
#pragma GCC unroll 8
        for (int f = 0; f < FB; f++) {
            if (f >= nf) break; /* the block's zero-padded channels */
            float *o = y + (size_t)f * hw + 16 * v;
            __m512 s = accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(k1, o), a[f][v]) : a[f][v];
            _mm512_mask_storeu_ps(o, k1, s);
        }
    }
}

typedef void (*fwd_fn)(const float *, size_t, int, int, const float *, const uint16_t *, float *, size_t, int, int);

#define FWD(nv)                                                                                                    \
    static void fwd_##nv(const float *xp, size_t pitch, int W, int C, const float *wb, const uint16_t *mk, float *y, \
                         size_t hw, int nf, int accumulate)                                                        \
    {                                                                                                              \
        fwd_tile(nv, xp, pitch, W, C, wb, mk, y, hw, nf, accumulate);                                              \
    }
FWD(1) FWD(2) FWD(3)
static const fwd_fn fwd_tiles[NV] = {fwd_1, fwd_2, fwd_3};

static void fwd_avx512(const float *wp, int C, int H, int W, int F, int n, const float *x, float *y, int accumulate,
                       float *scratch)
{
    size_t hw = (size_t)H * (size_t)W, pitch = conv3x3_pitch(H, W), nvec = (hw + 15) / 16;
    conv3x3_scratch s = conv3x3_scratch_split(scratch, H, W);
    uint16_t *mk = s.masks;
    masks_of(H, W, mk);
    int ntile = (int)((nvec + NV - 1) / NV);
    for (int i = 0; i < n; i++) {
        conv3x3_pad(x + (size_t)i * (size_t)C * hw, C, H, W, 1, s.planes);
        float *yi = y + (size_t)i * (size_t)F * hw;
        for (int f0 = 0; f0 < F; f0 += FB) {
            const float *wb = wp + (size_t)f0 * (size_t)C * 9;
            size_t v0 = 0;
            for (int t = 0; t < ntile; t++) {
                int nv = conv3x3_tile_len(nvec - v0, t, ntile);
                fwd_tiles[nv - 1](s.planes + 16 * v0, pitch, W, C, wb, mk + 3 * v0, yi + (size_t)f0 * hw + 16 * v0, hw,
                                  F - f0, accumulate);
                v0 += (size_t)nv;
            }
        }
    }
}

/* ---- weight gradient, pixels along the lanes ---------------------------------- */
/* nf output channels x one input channel x 9 taps in registers, summed over
 * a group of images' pixels, then across lanes once per group. */

/* v[0..15] -> one vector whose lane k is the sum of v[k]'s lanes: four
 * levels of shuffles and adds halve the vectors and the lanes each, 46
 * instructions where 16 separate reductions take about 130 */
INLINE __m512 sum16(const __m512 *v)
{
    __m512 a[8], b[4], c[2];
    for (int i = 0; i < 8; i++) /* 256-bit halves: [v[2i] folded to 8 | v[2i+1] folded to 8] */
        a[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xee));
    for (int i = 0; i < 4; i++) /* 128-bit lanes: v[4i .. 4i+3], each folded to 4 */
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xdd));
    for (int i = 0; i < 2; i++) /* lane q: v[8i + q] and v[8i + 4 + q], each folded to 2 */
        c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xee));
    /* lane 4q + j: the sum of v[4j + q]; transposed back */
    __m512 d = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xdd));
    return _mm512_permutexvar_ps(_mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0), d);
}

/* xp: input plane c of the group's first image (images ximg floats apart);
 * dy: output-gradient map f0 of that image (images dyimg apart); dw: the
 * 9 taps of (f0, c), output channels dwf floats apart. */
INLINE void dw_tile(const int nf, const float *xp, size_t ximg, const float *dy, size_t dyimg, size_t hw, int W,
                    int nimg, const uint16_t *mk, float *dw, size_t dwf)
{
    size_t nvec = (hw + 15) / 16;
    __m512 a[NFD][9];
#pragma GCC unroll 3
    for (int f = 0; f < nf; f++)
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++) a[f][t] = _mm512_setzero_ps();
    for (int i = 0; i < nimg; i++, xp += ximg, dy += dyimg)
        for (size_t v = 0; v < nvec; v++) {
            __mmask16 k[3] = {mk[3 * v], mk[3 * v + 1], mk[3 * v + 2]};
            __m512 d[NFD];
#pragma GCC unroll 3
            for (int f = 0; f < nf; f++) d[f] = _mm512_maskz_loadu_ps(k[1], dy + (size_t)f * hw + 16 * v);
            const float *r = xp + 16 * v - 1;
#pragma GCC unroll 9
            for (int t = 0; t < 9; t++) {
                __m512 xv = _mm512_maskz_loadu_ps(k[t % 3], r + (size_t)(t / 3) * (size_t)W + t % 3);
#pragma GCC unroll 3
                for (int f = 0; f < nf; f++) a[f][t] = _mm512_fmadd_ps(d[f], xv, a[f][t]);
            }
        }
    /* the nf x 9 sums, then 9 taps per output channel added with one mask */
    __m512 v[32];
#pragma GCC unroll 32
    for (int i = 0; i < 32; i++) v[i] = i < 9 * nf ? a[i / 9][i % 9] : _mm512_setzero_ps();
    float sums[32];
    _mm512_storeu_ps(sums, sum16(v));
    if (nf > 1) _mm512_storeu_ps(sums + 16, sum16(v + 16));
#pragma GCC unroll 3
    for (int f = 0; f < nf; f++) {
        float *d = dw + (size_t)f * dwf;
        __m512 t = _mm512_add_ps(_mm512_maskz_loadu_ps(0x1ff, d), _mm512_maskz_loadu_ps(0x1ff, sums + 9 * f));
        _mm512_mask_storeu_ps(d, 0x1ff, t);
    }
}

typedef void (*dw_fn)(const float *, size_t, const float *, size_t, size_t, int, int, const uint16_t *, float *,
                      size_t);

#define DW(nf)                                                                                                     \
    static void dw_##nf(const float *xp, size_t ximg, const float *dy, size_t dyimg, size_t hw, int W, int nimg,   \
                        const uint16_t *mk, float *dw, size_t dwf)                                                 \
    {                                                                                                              \
        dw_tile(nf, xp, ximg, dy, dyimg, hw, W, nimg, mk, dw, dwf);                                                \
    }
DW(1) DW(2) DW(3)
static const dw_fn dw_tiles[NFD] = {dw_1, dw_2, dw_3};

static void dw_px(int C, int H, int W, int F, int n, const float *x, const float *dy, float *dw, float *scratch)
{
    size_t hw = (size_t)H * (size_t)W, pitch = conv3x3_pitch(H, W);
    conv3x3_scratch s = conv3x3_scratch_split(scratch, H, W);
    uint16_t *mk = s.masks;
    masks_of(H, W, mk);
    int group = conv3x3_dw_group(C, H, W);
    size_t ximg = (size_t)C * pitch, dyimg = (size_t)F * hw;
    for (int i0 = 0; i0 < n; i0 += group) {
        int m = n - i0 < group ? n - i0 : group;
        conv3x3_pad(x + (size_t)i0 * (size_t)C * hw, C, H, W, m, s.planes);
        const float *dyg = dy + (size_t)i0 * dyimg;
        for (int f0 = 0; f0 < F; f0 += NFD) {
            int nf = F - f0 < NFD ? F - f0 : NFD;
            for (int c = 0; c < C; c++)
                dw_tiles[nf - 1](s.planes + (size_t)c * pitch, ximg, dyg + (size_t)f0 * hw, dyimg, hw, W, m, mk,
                                 dw + ((size_t)f0 * (size_t)C + (size_t)c) * 9, (size_t)C * 9);
        }
    }
}

/* ---- weight gradient, output channels along the lanes ------------------------ */
/* An outer product over pixels: for 16 fv output channels at a time and 3 nr
 * (input channel, tap) pairs, each pixel adds dy[f..f+15][p] (dy transposed
 * to pixel-major, dyT[p][f]) times x at the pair's shift, broadcast. No
 * horizontal sums and no masks (x is copied with a zero border all round),
 * but dy must be transposed and each broadcast feeds only fv FMAs. */

/* r[0..15] (rows) -> their transpose in place */
INLINE void transpose16(__m512 *r)
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) { /* lanes 4q..4q+3 of rows 2i, 2i+1 interleaved */
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* r[4i + j], 128-bit lane q: rows 4i..4i+3 of column 4q + j */
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    for (int j = 0; j < 4; j++) {
        __m512 a = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88), b = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
        __m512 c = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88), d = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
        t[j] = _mm512_shuffle_f32x4(a, c, 0x88);
        t[8 + j] = _mm512_shuffle_f32x4(a, c, 0xdd);
        t[4 + j] = _mm512_shuffle_f32x4(b, d, 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(b, d, 0xdd);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* src: rows x cols floats, rows ld_src apart -> dst[c][r], cols rows of
 * ld_dst floats. add 0: dst = the transpose, each row written 16 floats at
 * a time, zeros past rows (ld_dst >= rows rounded up to 16); add 1: dst +=
 * the transpose, nothing past rows touched. */
static void transpose_block(const float *src, size_t ld_src, size_t rows, size_t cols, float *dst, size_t ld_dst,
                            int add)
{
    for (size_t r0 = 0; r0 < rows; r0 += 16)
        for (size_t c0 = 0; c0 < cols; c0 += 16) {
            unsigned nr = rows - r0 < 16 ? (unsigned)(rows - r0) : 16, nc = cols - c0 < 16 ? (unsigned)(cols - c0) : 16;
            __mmask16 kc = (__mmask16)((1u << nc) - 1), kr = add ? (__mmask16)((1u << nr) - 1) : 0xffff;
            __m512 v[16];
            for (unsigned i = 0; i < 16; i++)
                v[i] = i < nr ? _mm512_maskz_loadu_ps(kc, src + (r0 + i) * ld_src + c0) : _mm512_setzero_ps();
            transpose16(v);
            for (unsigned i = 0; i < nc; i++) {
                float *d = dst + (c0 + i) * ld_dst + r0;
                __m512 o = add ? _mm512_add_ps(_mm512_maskz_loadu_ps(kr, d), v[i]) : v[i];
                _mm512_mask_storeu_ps(d, kr, o);
            }
        }
}

#define FVMAX 4 /* 16-channel vectors of dy per tile */
#define NRMAX 6 /* rows of 3 taps per tile */
static const int nr_of_fv[FVMAX] = {6, 4, 3, 2}; /* 18, 24, 27 or 24 accumulators */

/* xb: the group's first image's padded planes (images ximg floats apart);
 * roff: the tile's rows (input channel c, tap row kh) as offsets of
 * (c, row kh) in a padded image; dyT: the first channel vector of the
 * tile, pixel after pixel Fp floats apart (images dyimg apart); dwT: the
 * tile's first (c, tap) row of Fp floats, at its first channel. */
INLINE void dw_ch_tile(const int fv, const int nr, const float *xb, const size_t *roff, size_t ximg, const float *dyT,
                       size_t dyimg, int H, int W, int Fp, int nimg, float *dwT)
{
    __m512 a[FVMAX][3 * NRMAX];
#pragma GCC unroll 4
    for (int v = 0; v < fv; v++)
#pragma GCC unroll 18
        for (int j = 0; j < 3 * nr; j++) a[v][j] = _mm512_setzero_ps();
    size_t W2 = (size_t)W + 2;
    for (int i = 0; i < nimg; i++, xb += ximg, dyT += dyimg) {
        const float *rp[NRMAX];
#pragma GCC unroll 6
        for (int k = 0; k < nr; k++) rp[k] = xb + roff[k];
        const float *d = dyT;
        for (int h = 0; h < H; h++) {
            for (int w = 0; w < W; w++, d += Fp) {
                __m512 dv[FVMAX];
#pragma GCC unroll 4
                for (int v = 0; v < fv; v++) dv[v] = _mm512_load_ps(d + 16 * v);
#pragma GCC unroll 6
                for (int k = 0; k < nr; k++) {
                    /* With fv > 1, opaque to the compiler: it would keep this
                     * pixel's broadcasts for the next one's taps and spill
                     * accumulators for the registers. With fv = 1 there
                     * are registers to spare, and keeping them saves loads. */
                    const float *xr = rp[k] + w;
                    if (fv > 1) __asm__("" : "+r"(xr));
#pragma GCC unroll 3
                    for (int kw = 0; kw < 3; kw++) {
                        __m512 b = _mm512_set1_ps(xr[kw]);
#pragma GCC unroll 4
                        for (int v = 0; v < fv; v++) a[v][3 * k + kw] = _mm512_fmadd_ps(dv[v], b, a[v][3 * k + kw]);
                    }
                }
            }
#pragma GCC unroll 6
            for (int k = 0; k < nr; k++) rp[k] += W2;
        }
    }
#pragma GCC unroll 4
    for (int v = 0; v < fv; v++)
#pragma GCC unroll 18
        for (int j = 0; j < 3 * nr; j++) {
            float *o = dwT + (size_t)j * (size_t)Fp + 16 * v;
            _mm512_store_ps(o, _mm512_add_ps(_mm512_load_ps(o), a[v][j]));
        }
}

typedef void (*dw_ch_fn)(const float *, const size_t *, size_t, const float *, size_t, int, int, int, int, float *);

#define DWC(fv, nr)                                                                                              \
    static void dw_ch_##fv##_##nr(const float *xb, const size_t *roff, size_t ximg, const float *dyT,             \
                                  size_t dyimg, int H, int W, int Fp, int nimg, float *dwT)                       \
    {                                                                                                            \
        dw_ch_tile(fv, nr, xb, roff, ximg, dyT, dyimg, H, W, Fp, nimg, dwT);                                     \
    }
DWC(1, 1) DWC(1, 2) DWC(1, 3) DWC(1, 4) DWC(1, 5) DWC(1, 6)
DWC(2, 1) DWC(2, 2) DWC(2, 3) DWC(2, 4)
DWC(3, 1) DWC(3, 2) DWC(3, 3)
DWC(4, 1) DWC(4, 2)
static const dw_ch_fn dw_ch_tiles[FVMAX][NRMAX] = {
    {dw_ch_1_1, dw_ch_1_2, dw_ch_1_3, dw_ch_1_4, dw_ch_1_5, dw_ch_1_6},
    {dw_ch_2_1, dw_ch_2_2, dw_ch_2_3, dw_ch_2_4, NULL, NULL},
    {dw_ch_3_1, dw_ch_3_2, dw_ch_3_3, NULL, NULL, NULL},
    {dw_ch_4_1, dw_ch_4_2, NULL, NULL, NULL, NULL},
};

static void dw_ch(int C, int H, int W, int F, int n, const float *x, const float *dy, float *dw, float *scratch)
{
    conv3x3_dwch l = conv3x3_dwch_layout(scratch, C, H, W, F);
    size_t hw = (size_t)H * (size_t)W, W2 = (size_t)W + 2, ximg = (size_t)C * l.pitch2, dyimg = hw * (size_t)l.Fp;
    int nfv = l.Fp / 16, nrow = 3 * C, nft = (nfv + FVMAX - 1) / FVMAX;
    memset(l.dwT, 0, sizeof(float) * 9 * (size_t)C * (size_t)l.Fp);
    for (int i0 = 0; i0 < n; i0 += l.group) {
        int m = n - i0 < l.group ? n - i0 : l.group;
        conv3x3_pad_all(x + (size_t)i0 * (size_t)C * hw, C, H, W, m, l.xpad);
        for (int i = 0; i < m; i++)
            transpose_block(dy + (size_t)(i0 + i) * (size_t)F * hw, hw, (size_t)F, hw, l.dyT + (size_t)i * dyimg,
                            (size_t)l.Fp, 0);
        for (int ft = 0, fb = 0; ft < nft; ft++) {
            int fv = conv3x3_tile_len((size_t)(nfv - fb), ft, nft), NR = nr_of_fv[fv - 1];
            for (int r0 = 0; r0 < nrow; r0 += NR) {
                int nr = nrow - r0 < NR ? nrow - r0 : NR;
                size_t roff[NRMAX];
                for (int k = 0; k < nr; k++) roff[k] = (size_t)((r0 + k) / 3) * l.pitch2 + (size_t)((r0 + k) % 3) * W2;
                dw_ch_tiles[fv - 1][nr - 1](l.xpad, roff, ximg, l.dyT + 16 * fb, dyimg, H, W, l.Fp, m,
                                            l.dwT + (size_t)r0 * 3 * (size_t)l.Fp + 16 * fb);
            }
            fb += fv;
        }
    }
    /* dw[f][c tap] += dwT[c tap][f] */
    transpose_block(l.dwT, (size_t)l.Fp, (size_t)9 * (size_t)C, (size_t)F, dw, (size_t)9 * (size_t)C, 1);
}

/* Output channels along the lanes need no horizontal sums and beat pixels
 * along the lanes on every CIFAR layer but the first (C = 3: 0.85-0.9x,
 * where transposing dy costs as much as a quarter of the FMAs). */
static void dw_avx512(int C, int H, int W, int F, int n, const float *x, const float *dy, float *dw, float *scratch)
{
    if (C >= 8) dw_ch(C, H, W, F, n, x, dy, dw, scratch);
    else dw_px(C, H, W, F, n, x, dy, dw, scratch);
}

const qat_conv3x3_kernels qat_conv3x3_kernels_avx512 = {QAT_CONV3X3_ISA_AVX512, "avx512", fwd_avx512, dw_avx512};
