/* exactconv.c: the forward of a convolution with float weights on the
 * image (a first layer the config keeps in float, as DST's): each output's
 * sum in double, rounded to float32 once, then + bias in float32. The
 * products of float32 weights and the loader's normalised pixels (on a
 * 2^-pixel_grid grid, 14 bits) are exact in double, and so are their sums
 * while the weights span less than about 2^15, so the output is the exact
 * sum correctly rounded: what the integer export's X64 op computes
 * (docs/format.md), so its thresholds after decide as this forward does.
 * A float32 GEMM would round along the way in an order of its own. The
 * backward stays autograd's. */
#include <string.h>

#include "layers_internal.h"

typedef struct {
    const qat_tensor *t;
    int C, H, W, F, KH, KW, OH, OW, sh, sw, ph, pw;
    double *work; /* per thread: OH * OW sums */
} exact_task;

static size_t exact_scratch(const qat_tensor *t, int max_batch, int threads)
{
    (void)max_batch;
    return sizeof(double) * (size_t)t->shape[2] * (size_t)t->shape[3] * (size_t)threads;
}

static void exact_image(const exact_task *k, int n, double *acc)
{
    const qat_tensor *t = k->t, *xt = t->src[0], *wt = t->src[1], *bt = t->nsrc > 2 ? t->src[2] : NULL;
    size_t P = (size_t)k->OH * k->OW;
    const float *x = xt->x + (size_t)n * k->C * k->H * k->W;
    float *y = t->x + (size_t)n * k->F * P;
    for (int f = 0; f < k->F; f++) {
        memset(acc, 0, sizeof(double) * P);
        for (int c = 0; c < k->C; c++)
            for (int i = 0; i < k->KH; i++)
                for (int j = 0; j < k->KW; j++) {
                    double w = wt->x[(((size_t)f * k->C + c) * k->KH + i) * k->KW + j];
                    for (int oy = 0; oy < k->OH; oy++) {
                        int iy = oy * k->sh - k->ph + i;
                        if (iy < 0 || iy >= k->H) continue;
                        const float *row = x + ((size_t)c * k->H + iy) * k->W;
                        int off = j - k->pw;
                        double *a = acc + (size_t)oy * k->OW;
                        /* the outputs whose tap lands inside the row: lo <= ox < hi */
                        int lo = 0, hi = k->OW;
                        while (lo < hi && lo * k->sw - k->pw + j < 0) lo++;
                        while (hi > lo && (hi - 1) * k->sw - k->pw + j >= k->W) hi--;
                        if (k->sw == 1)
                            for (int ox = lo; ox < hi; ox++) a[ox] += w * (double)row[ox + off];
                        else
                            for (int ox = lo; ox < hi; ox++) a[ox] += w * (double)row[ox * k->sw + off];
                    }
                }
        for (size_t p = 0; p < P; p++) {
            float v = (float)acc[p];
            y[(size_t)f * P + p] = bt ? v + bt->x[f] : v;
        }
    }
}

static void exact_task_fn(void *ctx, int begin, int end, int tid)
{
    const exact_task *k = ctx;
    for (int n = begin; n < end; n++) exact_image(k, n, k->work + (size_t)tid * k->OH * k->OW);
}

static void exact_forward(qat_tensor *t, qat_graph *g)
{
    const qat_tensor *x = t->src[0], *w = t->src[1];
    exact_task k = {t, x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3], t->shape[2],
                    t->shape[3], t->ip[0], t->ip[1], t->ip[2], t->ip[3], NULL};
    k.work = qat_graph_scratch(g, exact_scratch(t, t->shape[0], g->threads));
    qat_graph_parallel(g, t->shape[0], exact_task_fn, &k);
}

static const qat_custom_op exact_op = {
    .name = "exactconv2d",
    .scratch_bytes = exact_scratch,
    .forward = exact_forward,
};

void qat_layer_exact_forward(qat_tensor *conv) { qat_conv2d_set_forward(conv, &exact_op, NULL); }
