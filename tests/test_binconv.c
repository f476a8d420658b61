/* test_binconv.c: a conv whose input and weights are +-1 computes its forward
 * on the runtime's XOR-popcount kernels (layers/binconv.c). Its output must
 * be bit-identical to the float conv's, on awkward shapes (channels that do
 * not fill a byte or a word, padding of 0, 1 and 2, stride 2, 1x1, 5x5, a
 * bias), with 1 and 2 threads and on every instruction set this CPU has; its
 * backward is the float one, so gradients must match bit for bit too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "layers_internal.h"

#include "qat_test.h"

typedef struct {
    int N, C, H, W, F, K, stride, pad, bias;
} shape;

static qat_tensor *build(qat_graph *g, const shape *s, int threads, int binary, qat_tensor **x, qat_tensor **w)
{
    qat_graph_init(g, 1, threads, 1);
    int xs[4] = {s->N, s->C, s->H, s->W}, ws[4] = {s->F, s->C, s->K, s->K}, bs[1] = {s->F};
    *x = qat_graph_param(g, "x", 4, xs, QAT_T_PARAM);
    *w = qat_graph_param(g, "w", 4, ws, QAT_T_PARAM);
    qat_tensor *b = s->bias ? qat_graph_param(g, "b", 1, bs, QAT_T_PARAM) : NULL;
    qat_tensor *y = qat_conv2d(g, *x, *w, b, s->stride, s->stride, s->pad, s->pad);
    if (y && binary) qat_layer_binary_forward(y);
    qat_tensor *out = qat_mean(g, qat_mul(g, y, y)); /* a loss whose gradient depends on y */
    if (!out || qat_graph_compile(g, &out, 1) != QAT_OK) return NULL;
    uint64_t r = 0x1234u + (uint64_t)s->C * 131 + (uint64_t)s->F;
    for (size_t i = 0; i < (*x)->n; i++) (*x)->x[i] = qat_test_splitmix64(&r) >> 63 ? -1.0f : 1.0f;
    for (size_t i = 0; i < (*w)->n; i++) (*w)->x[i] = qat_test_splitmix64(&r) >> 63 ? -1.0f : 1.0f;
    if (b)
        for (size_t i = 0; i < b->n; i++) b->x[i] = (float)(qat_test_splitmix64(&r) % 1000) / 250.0f - 2.0f;
    qat_graph_zero_grad(g);
    qat_graph_forward(g);
    qat_graph_backward(g, out);
    return y;
}

static void one(const shape *s, int threads, const char *isa)
{
    qat_graph a, b;
    qat_tensor *xa, *wa, *xb, *wb;
    qat_tensor *ya = build(&a, s, threads, 0, &xa, &wa), *yb = build(&b, s, threads, 1, &xb, &wb);
    CHECK(ya && yb, "build: %s", qat_last_error());
    if (ya && yb) {
        size_t bad = ya->n;
        for (size_t i = 0; i < ya->n && bad == ya->n; i++)
            if (memcmp(&ya->x[i], &yb->x[i], sizeof(float)) != 0) bad = i;
        CHECK(bad == ya->n, "%s, %d threads, N%d C%d %dx%d F%d k%d s%d p%d b%d: output %zu is %g, float conv %g", isa,
              threads, s->N, s->C, s->H, s->W, s->F, s->K, s->stride, s->pad, s->bias, bad,
              bad < ya->n ? (double)yb->x[bad] : 0.0, bad < ya->n ? (double)ya->x[bad] : 0.0);
        CHECK(memcmp(xa->g, xb->g, xa->n * sizeof(float)) == 0 && memcmp(wa->g, wb->g, wa->n * sizeof(float)) == 0,
              "%s: gradients differ (N%d C%d F%d k%d s%d p%d)", isa, s->N, s->C, s->F, s->K, s->stride, s->pad);
    }
    qat_graph_free(&a);
    qat_graph_free(&b);
}

int main(void)
{
    static const shape shapes[] = {
        {2, 32, 8, 8, 16, 3, 1, 1, 0},   /* CIFAR-like: 3x3 same */
        {3, 13, 7, 6, 5, 3, 1, 1, 1},    /* channels not a whole byte, odd map, bias */
        {2, 64, 6, 6, 33, 3, 2, 1, 0},   /* stride 2, a word of channels per tap, F past a panel */
        {1, 130, 5, 5, 17, 3, 1, 2, 1},  /* over two words per tap, pad 2 */
        {2, 8, 9, 9, 4, 5, 1, 0, 0},     /* unpadded 5x5 */
        {2, 16, 8, 8, 8, 1, 2, 0, 0},    /* 1x1 stride 2: a projection shortcut */
        {1, 1, 4, 4, 3, 3, 1, 1, 0},     /* one channel */
        {4, 20, 12, 12, 50, 5, 1, 2, 1}, /* LeNet-like widths, padded */
    };
    const char *isas[] = {"scalar", "avx2", "avx512"};
    int ran = 0;
    for (int i = 0; i < 3; i++) {
        int isa = qatrt_isa_parse(isas[i]);
        if (isa < 0 || !qatrt_isa_supported((qatrt_isa)isa)) continue;
        setenv("QATRT_ISA", isas[i], 1);
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
            for (int t = 1; t <= 2; t++) one(&shapes[k], t, isas[i]);
        printf("%s: %zu shapes x 1 and 2 threads, outputs and gradients bit-identical to the float conv\n", isas[i],
               sizeof shapes / sizeof shapes[0]);
        ran++;
    }
    CHECK(ran > 0, "no instruction set ran");
    printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
