/* test_exactconv.c: a float-weight conv on the image (layers/exactconv.c)
 * gives each output's exact sum rounded to float32 once (then + bias):
 * held against the int64 sum of the same products rounded by
 * softfloat.h's qatc_f32_scaled (the X64 op's rounding), on pixels on the
 * loader's 2^-12 grid and weights of up to 27 fraction bits, over padding,
 * strides, a bias and 1 and 2 threads; its backward is the float conv's,
 * so under a loss whose output gradient does not depend on y the
 * gradients match the plain conv's bit for bit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers_internal.h"
#include "softfloat.h"

#include "qat_test.h"

typedef struct {
    int N, C, H, W, F, K, stride, pad, bias;
} shape;

static qat_tensor *build(qat_graph *g, const shape *s, int threads, int exact, qat_tensor **x, qat_tensor **w,
                         qat_tensor **b)
{
    qat_graph_init(g, 1, threads, 1);
    int xs[4] = {s->N, s->C, s->H, s->W}, ws[4] = {s->F, s->C, s->K, s->K}, bs[1] = {s->F};
    *x = qat_graph_param(g, "x", 4, xs, QAT_T_PARAM);
    *w = qat_graph_param(g, "w", 4, ws, QAT_T_PARAM);
    *b = s->bias ? qat_graph_param(g, "b", 1, bs, QAT_T_PARAM) : NULL;
    qat_tensor *y = qat_conv2d(g, *x, *w, *b, s->stride, s->stride, s->pad, s->pad);
    if (y && exact) qat_layer_exact_forward(y);
    qat_tensor *out = qat_mean(g, y); /* dy the same whatever y: the backward alone compared */
    if (!out || qat_graph_compile(g, &out, 1) != QAT_OK) return NULL;
    uint64_t r = 0x5eedu + (uint64_t)s->C * 7 + (uint64_t)s->F;
    /* pixels n 2^-12, |n| < 11,000 (a CIFAR channel normalised); weights k 2^-20 */
    for (size_t i = 0; i < (*x)->n; i++) (*x)->x[i] = (float)((int)(qat_test_splitmix64(&r) % 22001) - 11000) / 4096.0f;
    for (size_t i = 0; i < (*w)->n; i++) {
        int k = (int)(qat_test_splitmix64(&r) % (1u << 20)) - (1 << 19);
        (*w)->x[i] = (float)k / 1048576.0f / (float)(1 << (qat_test_splitmix64(&r) % 8));
    }
    if (*b)
        for (size_t i = 0; i < (*b)->n; i++) (*b)->x[i] = (float)(qat_test_splitmix64(&r) % 1000) / 250.0f - 2.0f;
    qat_graph_zero_grad(g);
    qat_graph_forward(g);
    qat_graph_backward(g, out);
    return y;
}

static void one(const shape *s, int threads)
{
    qat_graph a, e;
    qat_tensor *xa, *wa, *ba, *xe, *we, *be;
    qat_tensor *ya = build(&a, s, threads, 0, &xa, &wa, &ba), *ye = build(&e, s, threads, 1, &xe, &we, &be);
    CHECK(ya && ye, "build: %s", qat_last_error());
    if (ya && ye) {
        int OH = ye->shape[2], OW = ye->shape[3], bad = 0, rounded = 0;
        for (int n = 0; n < s->N; n++)
            for (int f = 0; f < s->F; f++)
                for (int oy = 0; oy < OH; oy++)
                    for (int ox = 0; ox < OW; ox++) {
                        int64_t acc = 0; /* in units of 2^-12 2^-27 (weights k 2^-20 / 2^(0..7)) */
                        for (int c = 0; c < s->C; c++)
                            for (int i = 0; i < s->K; i++)
                                for (int j = 0; j < s->K; j++) {
                                    int iy = oy * s->stride - s->pad + i, ix = ox * s->stride - s->pad + j;
                                    if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                                    float xv = xe->x[(((size_t)n * s->C + c) * s->H + iy) * s->W + ix];
                                    float wv = we->x[(((size_t)f * s->C + c) * s->K + i) * s->K + j];
                                    acc += (int64_t)(xv * 4096.0f) * (int64_t)((double)wv * 134217728.0);
                                }
                        uint32_t want = qatc_f32_scaled(acc, -39);
                        float wf;
                        memcpy(&wf, &want, 4);
                        if (be) wf = wf + be->x[f];
                        size_t at = (((size_t)n * s->F + f) * OH + oy) * OW + ox;
                        bad += memcmp(&wf, &ye->x[at], 4) != 0;
                        rounded += ya->x[at] != ye->x[at];
                    }
        CHECK(bad == 0, "%d threads, N%d C%d %dx%d F%d k%d s%d p%d b%d: %d outputs are not the exact sum rounded once",
              threads, s->N, s->C, s->H, s->W, s->F, s->K, s->stride, s->pad, s->bias, bad);
        CHECK(memcmp(xa->g, xe->g, xa->n * sizeof(float)) == 0 && memcmp(wa->g, we->g, wa->n * sizeof(float)) == 0,
              "gradients differ from the float conv's (N%d C%d F%d)", s->N, s->C, s->F);
        printf("  N%d C%d %dx%d F%d k%d s%d p%d b%d, %d threads: exact; the float32 GEMM's differ in %d of %zu\n", s->N,
               s->C, s->H, s->W, s->F, s->K, s->stride, s->pad, s->bias, threads, rounded, ye->n);
    }
    qat_graph_free(&a);
    qat_graph_free(&e);
}

int main(void)
{
    static const shape shapes[] = {
        {2, 3, 9, 9, 5, 3, 1, 1, 0},  /* a CIFAR first layer: 3x3 same */
        {3, 3, 8, 7, 4, 3, 2, 1, 1},  /* stride 2, odd map, bias */
        {2, 1, 12, 12, 6, 5, 1, 0, 1}, /* MNIST-like 5x5 unpadded */
        {1, 3, 6, 6, 3, 5, 1, 2, 0},  /* pad 2 */
    };
    for (int t = 1; t <= 2; t++)
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) one(&shapes[k], t);
    if (failures) {
        fprintf(stderr, "test_exactconv: %d check(s) failed\n", failures);
        return 1;
    }
    printf("ok (0 failures)\n");
    return 0;
}
