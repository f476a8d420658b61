/* conv3x3.h: direct 3x3, stride 1, zero-pad 1 ('same') convolution of fp32
 * NCHW maps, for the three products of a training step (forward, input
 * gradient, weight gradient), without im2col. One kernel table per
 * instruction set (scalar reference, AVX2, AVX-512), chosen once by CPUID.
 *
 * Shapes: an image x is C x H x W, an output y is F x H x W, the weight w is
 * F x C x 3 x 3 (as the graph stores a conv2d weight), all row-major floats,
 * any C, F, H, W >= 1. Images of a batch follow each other (stride C*H*W or
 * F*H*W floats). No pointer needs any alignment.
 *
 * Ownership: the caller owns every buffer, including the scratch memory the
 * kernels need (qat_conv3x3_scratch_floats); nothing here allocates, prints
 * or keeps state beyond the kernel table chosen on first use.
 *
 * Numerics: for given inputs and table the result is the same bits on every
 * call (no threads inside; the caller splits images across threads and sums
 * weight-gradient partials in a fixed order). Tables differ from each other
 * and from a plain loop in summation order only (tests/test_conv3x3.c). */
#ifndef QAT_CONV3X3_H
#define QAT_CONV3X3_H

#include <stddef.h>

#include "qat_util.h"

typedef enum {
    QAT_CONV3X3_ISA_SCALAR = 0,
    QAT_CONV3X3_ISA_AVX2,   /* AVX2 + FMA */
    QAT_CONV3X3_ISA_AVX512, /* AVX-512 F/BW/VL + FMA */
    QAT_CONV3X3_ISA_COUNT
} qat_conv3x3_isa;

/* Packed weights: the forward kernel reads the weights of each block of
 * QAT_CONV3X3_FBLOCK output channels as [in channel][tap][channel of the
 * block] (tap = 3 kh + kw), so that a block's weights for one input channel
 * are 9 * QAT_CONV3X3_FBLOCK contiguous floats; the last block is padded
 * with zeros. The layout is the same for every table. */
#define QAT_CONV3X3_FBLOCK 8

/* Floats of a packed kernel from in_ch to out_ch channels:
 * 9 in_ch (out_ch rounded up to QAT_CONV3X3_FBLOCK). */
size_t qat_conv3x3_packed_floats(int in_ch, int out_ch);

/* Packs w (F x C x 3 x 3) into wp. flip 0: for the forward C -> F
 * (qat_conv3x3_packed_floats(C, F) floats). flip 1: for the input gradient,
 * the convolution F -> C of dy with the kernel flipped and its channel axes
 * swapped, wt[c][f][kh][kw] = w[f][c][2-kh][2-kw] (packed_floats(F, C)). */
void qat_conv3x3_pack(const float *w, int C, int F, int flip, float *wp);

/* Scratch, in floats, that every kernel of the layer needs: the forward
 * C -> F, the input gradient F -> C and the weight gradient (zero-padded
 * copies of input maps, column masks, dy transposed, a transposed dw). One
 * thread's worth, whatever n; threads running kernels at the same time
 * need one each. Includes the slack for aligning the pointer, so scratch
 * may have any alignment. Its contents need not survive between calls. */
size_t qat_conv3x3_scratch_floats(int C, int H, int W, int F);

/* The forward on n images: y = conv(x) (accumulate 0) or y += conv(x)
 * (accumulate 1), with wp packed for C -> F (flip 0). With wp packed by
 * flip 1 and the roles swapped, (F, H, W, C, n, dy, dx, 1, ...) adds the
 * input gradient into dx. QAT_ERR_ARG for a dimension < 1 or n < 0. */
qat_status qat_conv3x3_fwd(const float *wp, int C, int H, int W, int F, int n, const float *x, float *y,
                           int accumulate, float *scratch);

/* The weight gradient of n images: dw[f][c][kh][kw] += sum over the images
 * and pixels of dy[f][h][w] x[c][h+kh-1][w+kw-1]. The sums run over groups
 * of images sized by the shape (so that a group's inputs stay in L2) and
 * are added into dw once per call or per group: the bits depend on the
 * shape, n and the table, nothing else. QAT_ERR_ARG for a dimension < 1 or
 * n < 0. */
qat_status qat_conv3x3_dw(int C, int H, int W, int F, int n, const float *x, const float *dy, float *dw,
                          float *scratch);

/* One table of kernels. Arguments as above, already checked (n >= 0, every
 * dimension >= 1); the public functions above call the chosen table's. */
typedef struct {
    qat_conv3x3_isa isa;
    const char *name; /* "scalar", "avx2", "avx512" */
    void (*fwd)(const float *wp, int C, int H, int W, int F, int n, const float *x, float *y, int accumulate,
                float *scratch);
    void (*dw)(int C, int H, int W, int F, int n, const float *x, const float *dy, float *dw, float *scratch);
} qat_conv3x3_kernels;

/* 1 when this CPU (and build) can run isa's table: CPUID and the registers
 * the OS saves (XCR0), asked on every call */
int qat_conv3x3_isa_supported(qat_conv3x3_isa isa);
/* the table of isa, or NULL when it is not supported */
const qat_conv3x3_kernels *qat_conv3x3_kernels_for(qat_conv3x3_isa isa);
/* The table the public functions use, chosen on first call: the best
 * supported, or the one QAT_CONV_ISA=scalar|avx2|avx512 names. An unknown or
 * unsupported name falls back to the best table. */
const qat_conv3x3_kernels *qat_conv3x3_active(void);

#endif
