/* conv3x3_impl.h: what the kernel files of conv3x3.h share, not for
 * callers: the layout of the scratch memory and the zero-padded copy of
 * input maps the SIMD kernels read their shifted vectors from. */
#ifndef QAT_CONV3X3_IMPL_H
#define QAT_CONV3X3_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A padded plane is the map with a zero row above and below ((H + 2) x W,
 * rounded up to a 64-byte multiple). Output pixel p = h W + w reads tap
 * (kh, kw) at plane[p + kh W + kw - 1]: rows out of the map land on the
 * zero rows; columns out of it land on the neighbouring row's end, which
 * the kernels mask. Vectors run up to 15 floats past a map and 1 before
 * it, so the planes sit between guards of zeros. */
#define CONV3X3_GUARD 32

/* weight-gradient groups hold about this many floats of padded input, so
 * that a group's planes stay in L2 while every output channel reads them */
#define CONV3X3_DW_GROUP_FLOATS ((size_t)96 * 1024)

static inline size_t conv3x3_pitch(int H, int W) { return ((size_t)(H + 2) * (size_t)W + 15) & ~(size_t)15; }

/* floats the kernels may use for per-vector masks: room for three 8-float
 * masks per 8 pixels (AVX2); AVX-512 needs far less */
static inline size_t conv3x3_mask_floats(int H, int W) { return 3 * (((size_t)H * (size_t)W + 15) & ~(size_t)15); }

/* images per weight-gradient group (at least 1) */
static inline int conv3x3_dw_group(int C, int H, int W)
{
    size_t per = (size_t)C * conv3x3_pitch(H, W);
    size_t g = CONV3X3_DW_GROUP_FLOATS / per;
    return g < 1 ? 1 : g > 64 ? 64 : (int)g;
}

typedef struct {
    void *masks;   /* conv3x3_mask_floats, 64-byte aligned */
    float *planes; /* padded planes, 64-byte aligned, CONV3X3_GUARD zeros before */
} conv3x3_scratch;

/* the areas of the caller's scratch (any alignment); zeroes the guard
 * before the planes */
static inline conv3x3_scratch conv3x3_scratch_split(float *scratch, int H, int W)
{
    uintptr_t a = ((uintptr_t)scratch + 63) & ~(uintptr_t)63;
    conv3x3_scratch s;
    s.masks = (void *)a;
    float *g = (float *)a + conv3x3_mask_floats(H, W);
    memset(g, 0, sizeof(float) * CONV3X3_GUARD);
    s.planes = g + CONV3X3_GUARD;
    return s;
}

/* n images of C maps H x W into padded planes (pitch floats apart, image
 * after image), then the guard after them */
static inline void conv3x3_pad(const float *x, int C, int H, int W, int n, float *planes)
{
    size_t hw = (size_t)H * (size_t)W, pitch = conv3x3_pitch(H, W), planes_n = (size_t)C * (size_t)n;
    for (size_t c = 0; c < planes_n; c++) {
        float *d = planes + c * pitch;
        memset(d, 0, sizeof(float) * (size_t)W);
        memcpy(d + W, x + c * hw, sizeof(float) * hw);
        memset(d + W + hw, 0, sizeof(float) * (pitch - W - hw));
    }
    memset(planes + planes_n * pitch, 0, sizeof(float) * CONV3X3_GUARD);
}

/* balanced tiles: the size of tile t of nt over the remaining len */
static inline int conv3x3_tile_len(size_t len, int t, int nt)
{
    return (int)((len + (size_t)(nt - t) - 1) / (size_t)(nt - t));
}

/* ---- the weight gradient with output channels along the lanes ---- */
/* x copied with a zero border all round ((H + 2) x (W + 2) planes), dy
 * transposed to pixel-major rows of Fp (F rounded up to 16) floats, and the
 * gradient summed transposed (dwT[c tap][f]) before it is added to dw */
static inline size_t conv3x3_pitch2(int H, int W) { return ((size_t)(H + 2) * (size_t)(W + 2) + 15) & ~(size_t)15; }
static inline int conv3x3_fp(int F) { return (F + 15) & ~15; }

static inline int conv3x3_dwch_group(int C, int H, int W, int F)
{
    size_t per = (size_t)C * conv3x3_pitch2(H, W) + (size_t)H * (size_t)W * (size_t)conv3x3_fp(F);
    size_t g = CONV3X3_DW_GROUP_FLOATS / per;
    return g < 1 ? 1 : g > 64 ? 64 : (int)g;
}

/* floats, from a 64-byte aligned start */
static inline size_t conv3x3_dwch_floats(int C, int H, int W, int F)
{
    size_t dwT = ((size_t)9 * (size_t)C * (size_t)conv3x3_fp(F) + 15) & ~(size_t)15;
    size_t per = (size_t)C * conv3x3_pitch2(H, W) + (size_t)H * (size_t)W * (size_t)conv3x3_fp(F);
    return dwT + (size_t)conv3x3_dwch_group(C, H, W, F) * per;
}

typedef struct {
    int Fp, group;
    size_t pitch2;
    float *dwT, *xpad, *dyT; /* 64-byte aligned */
} conv3x3_dwch;

static inline conv3x3_dwch conv3x3_dwch_layout(float *scratch, int C, int H, int W, int F)
{
    conv3x3_dwch l;
    l.Fp = conv3x3_fp(F);
    l.group = conv3x3_dwch_group(C, H, W, F);
    l.pitch2 = conv3x3_pitch2(H, W);
    l.dwT = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    l.xpad = l.dwT + (((size_t)9 * (size_t)C * (size_t)l.Fp + 15) & ~(size_t)15);
    l.dyT = l.xpad + (size_t)l.group * (size_t)C * l.pitch2;
    return l;
}

/* n images of C maps H x W into planes with a zero border all round */
static inline void conv3x3_pad_all(const float *x, int C, int H, int W, int n, float *planes)
{
    size_t hw = (size_t)H * (size_t)W, W2 = (size_t)W + 2, pitch2 = conv3x3_pitch2(H, W);
    for (size_t c = 0; c < (size_t)C * (size_t)n; c++) {
        float *d = planes + c * pitch2;
        const float *s = x + c * hw;
        memset(d, 0, sizeof(float) * (W2 + 1));
        for (int h = 0; h < H; h++) {
            memcpy(d + (size_t)(h + 1) * W2 + 1, s + (size_t)h * (size_t)W, sizeof(float) * (size_t)W);
            d[(size_t)(h + 1) * W2 + 1 + (size_t)W] = 0; /* this row's right, the next row's left border */
            d[(size_t)(h + 2) * W2] = 0;
        }
        memset(d + (size_t)(H + 1) * W2, 0, sizeof(float) * (pitch2 - (size_t)(H + 1) * W2));
    }
}

#endif
