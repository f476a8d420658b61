/* ops.c: the op table. Each op has shape inference, forward and backward
 * (which adds into its sources' gradients), plus the persistent state and
 * per-step scratch it needs, declared so compile can place them up front. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "conv3x3.h"
#include "graph.h"

static qat_status shape_err(const qat_tensor *t, const char *what)
{
    char a[64], b[64] = "";
    qat_tensor_shape_str(t->src[0], a, sizeof a);
    if (t->nsrc > 1) qat_tensor_shape_str(t->src[1], b, sizeof b);
    return qat_error_set(QAT_ERR_SHAPE, "%s: %s (inputs %s %s)", qat_ops[t->op].name, what, a, b);
}

static void set4(qat_tensor *t, int a, int b, int c, int d)
{
    t->ndim = 4;
    t->shape[0] = a;
    t->shape[1] = b;
    t->shape[2] = c;
    t->shape[3] = d;
}

static void set2(qat_tensor *t, int a, int b)
{
    t->ndim = 2;
    t->shape[0] = a;
    t->shape[1] = b;
}

static void copy_shape(qat_tensor *t, const qat_tensor *s)
{
    t->ndim = s->ndim;
    memcpy(t->shape, s->shape, sizeof t->shape);
}

/* per-sample element count (dims after the batch) */
static size_t inner(const qat_tensor *t) { return t->n / (size_t)t->shape[0]; }

/* ---- shape functions ----------------------------------------------------- */
static qat_status shape_same(qat_tensor *t)
{
    copy_shape(t, t->src[0]);
    return QAT_OK;
}

static qat_status shape_binary(qat_tensor *t)
{
    const qat_tensor *a = t->src[0], *b = t->src[1];
    if (a->ndim != b->ndim || memcmp(a->shape, b->shape, sizeof(int) * (size_t)a->ndim) != 0)
        return shape_err(t, "shapes must be equal");
    copy_shape(t, a);
    t->flags |= b->flags & QAT_T_BATCH;
    return QAT_OK;
}

static qat_status shape_bias(qat_tensor *t)
{
    const qat_tensor *x = t->src[0], *b = t->src[1];
    if (x->ndim < 2 || b->n != (size_t)x->shape[1]) return shape_err(t, "bias needs one value per channel (dim 1)");
    copy_shape(t, x);
    return QAT_OK;
}

static qat_status shape_linear(qat_tensor *t)
{
    const qat_tensor *x = t->src[0], *w = t->src[1];
    if (w->ndim != 2) return shape_err(t, "weight must be [out, in]");
    if (inner(x) != (size_t)w->shape[1]) return shape_err(t, "input features must equal the weight's columns");
    if (t->nsrc == 3 && t->src[2]->n != (size_t)w->shape[0]) return shape_err(t, "bias must have one value per output");
    set2(t, x->shape[0], w->shape[0]);
    return QAT_OK;
}

static int out_size(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

static qat_status shape_conv2d(qat_tensor *t)
{
    const qat_tensor *x = t->src[0], *w = t->src[1];
    int sh = t->ip[0], sw = t->ip[1], ph = t->ip[2], pw = t->ip[3];
    if (x->ndim != 4 || w->ndim != 4) return shape_err(t, "input must be [N, C, H, W] and weight [F, C, KH, KW]");
    if (x->shape[1] != w->shape[1]) return shape_err(t, "input channels must equal the weight's dim 1");
    if (sh < 1 || sw < 1 || ph < 0 || pw < 0) return shape_err(t, "stride must be >= 1 and padding >= 0");
    if (x->shape[2] + 2 * ph < w->shape[2] || x->shape[3] + 2 * pw < w->shape[3])
        return shape_err(t, "kernel larger than the padded input");
    if (t->nsrc == 3 && t->src[2]->n != (size_t)w->shape[0]) return shape_err(t, "bias must have one value per filter");
    set4(t, x->shape[0], w->shape[0], out_size(x->shape[2], w->shape[2], sh, ph),
         out_size(x->shape[3], w->shape[3], sw, pw));
    return QAT_OK;
}

static qat_status shape_pool(qat_tensor *t)
{
    const qat_tensor *x = t->src[0];
    int k = t->ip[0], s = t->ip[1], p = t->ip[2];
    if (x->ndim != 4) return shape_err(t, "input must be [N, C, H, W]");
    if (k < 1 || s < 1 || p < 0 || 2 * p > k) return shape_err(t, "need size >= 1, stride >= 1, 0 <= pad <= size/2");
    if (x->shape[2] + 2 * p < k || x->shape[3] + 2 * p < k) return shape_err(t, "window larger than the padded input");
    set4(t, x->shape[0], x->shape[1], out_size(x->shape[2], k, s, p), out_size(x->shape[3], k, s, p));
    return QAT_OK;
}

static qat_status shape_gap(qat_tensor *t)
{
    const qat_tensor *x = t->src[0];
    if (x->ndim != 4) return shape_err(t, "input must be [N, C, H, W]");
    set2(t, x->shape[0], x->shape[1]);
    return QAT_OK;
}

static qat_status shape_batchnorm(qat_tensor *t)
{
    const qat_tensor *x = t->src[0];
    if (x->ndim != 2 && x->ndim != 4) return shape_err(t, "input must be [N, C] or [N, C, H, W]");
    for (int i = 1; i < 4; i++)
        if (t->src[i]->n != (size_t)x->shape[1]) return shape_err(t, "parameters need one value per channel");
    copy_shape(t, x);
    return QAT_OK;
}

static qat_status shape_flatten(qat_tensor *t)
{
    const qat_tensor *x = t->src[0];
    set2(t, x->shape[0], (int)inner(x));
    return QAT_OK;
}

static qat_status shape_shortcut(qat_tensor *t)
{
    const qat_tensor *a = t->src[0], *b = t->src[1];
    if (a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int) * (size_t)a->ndim) == 0) {
        copy_shape(t, a);
        t->ip[0] = 1;
        return QAT_OK;
    }
    if (a->ndim != 4 || b->ndim != 4 || b->shape[1] > a->shape[1] || b->shape[2] % a->shape[2] ||
        b->shape[3] % a->shape[3] || b->shape[2] / a->shape[2] != b->shape[3] / a->shape[3])
        return shape_err(t, "the shortcut needs <= channels and a size that is an integer multiple");
    t->ip[0] = b->shape[2] / a->shape[2];
    copy_shape(t, a);
    return QAT_OK;
}

static qat_status shape_scalar(qat_tensor *t)
{
    t->ndim = 1;
    t->shape[0] = 1;
    t->flags &= ~QAT_T_BATCH;
    return QAT_OK;
}

static qat_status shape_softmax_ce(qat_tensor *t)
{
    if (t->src[0]->ndim != 2) return shape_err(t, "logits must be [N, classes]");
    return shape_scalar(t);
}

/* ---- elementwise kernels, split across threads in blocks of 4096 ------------
 * Masks are written as multiplications by 0/1 so that gcc vectorises them. */
typedef void (*ew_fn)(const qat_tensor *t, size_t b, size_t e);

typedef struct {
    const qat_tensor *t;
    ew_fn fn;
    size_t n;
} ew_task;

#define EW_BLOCK 4096

static void ew_run(void *ctx, int b, int e, int tid)
{
    const ew_task *k = ctx;
    size_t lo = (size_t)b * EW_BLOCK, hi = (size_t)e * EW_BLOCK;
    k->fn(k->t, lo, hi < k->n ? hi : k->n);
}

void qat_graph_elementwise(qat_graph *g, const qat_tensor *t, size_t n, ew_fn fn)
{
    ew_task k = {t, fn, n};
    int blocks = (int)((n + EW_BLOCK - 1) / EW_BLOCK);
    if (blocks < 8) fn(t, 0, n);
    else qat_graph_parallel(g, blocks, ew_run, &k);
}

static void acc(float *restrict d, const float *restrict s, size_t n)
{
    for (size_t i = 0; i < n; i++) d[i] += s[i];
}

/* ---- add, mul, bias -------------------------------------------------------- */
static void add_range(const qat_tensor *t, size_t b, size_t e)
{
    const float *restrict x = t->src[0]->x, *restrict y = t->src[1]->x;
    float *restrict o = t->x;
    for (size_t i = b; i < e; i++) o[i] = x[i] + y[i];
}

static void add_fwd(qat_tensor *t, qat_graph *g) { qat_graph_elementwise(g, t, t->n, add_range); }

static void add_bwd_range(const qat_tensor *t, size_t b, size_t e)
{
    for (int k = 0; k < 2; k++)
        if (t->src[k]->g) acc(t->src[k]->g + b, t->g + b, e - b);
}

static void add_bwd(qat_tensor *t, qat_graph *g) { qat_graph_elementwise(g, t, t->n, add_bwd_range); }

static void mul_fwd(qat_tensor *t, qat_graph *g)
{
    const float *a = t->src[0]->x, *b = t->src[1]->x;
    float *y = t->x;
    for (size_t i = 0; i < t->n; i++) y[i] = a[i] * b[i];
}

static void mul_bwd(qat_tensor *t, qat_graph *g)
{
    qat_tensor *a = t->src[0], *b = t->src[1];
    if (a->g)
        for (size_t i = 0; i < t->n; i++) a->g[i] += t->g[i] * b->x[i];
    if (b->g)
        for (size_t i = 0; i < t->n; i++) b->g[i] += t->g[i] * a->x[i];
}

/* [N, C, S] view of a tensor with channels at dim 1 */
static void ncs(const qat_tensor *t, int *N, int *C, size_t *S)
{
    *N = t->shape[0];
    *C = t->shape[1];
    *S = t->n / ((size_t)*N * (size_t)*C);
}

static void bias_fwd(qat_tensor *t, qat_graph *g)
{
    int N, C;
    size_t S;
    ncs(t, &N, &C, &S);
    const float *x = t->src[0]->x, *b = t->src[1]->x;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)n * C + c) * S;
            for (size_t s = 0; s < S; s++) t->x[o + s] = x[o + s] + b[c];
        }
}

static void bias_grad(const qat_tensor *t, float *db)
{
    int N, C;
    size_t S;
    ncs(t, &N, &C, &S);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const float *d = t->g + ((size_t)n * C + c) * S;
            float s = 0;
            for (size_t i = 0; i < S; i++) s += d[i];
            db[c] += s;
        }
}

static void bias_bwd(qat_tensor *t, qat_graph *g)
{
    if (t->src[0]->g) acc(t->src[0]->g, t->g, t->n);
    if (t->src[1]->g) bias_grad(t, t->src[1]->g);
}

/* ---- linear: y[N,M] = x[N,K] w[M,K]^T + b ------------------------------------ */
static void linear_fwd(qat_tensor *t, qat_graph *g)
{
    const qat_tensor *x = t->src[0], *w = t->src[1];
    int N = t->shape[0], M = t->shape[1], K = w->shape[1];
    qat_graph_sgemm(g, 0, 1, N, M, K, 1.0f, x->x, K, w->x, K, 0.0f, t->x, M);
    if (t->nsrc == 3) {
        const float *b = t->src[2]->x;
        for (int n = 0; n < N; n++)
            for (int m = 0; m < M; m++) t->x[(size_t)n * M + m] += b[m];
    }
}

static void linear_bwd(qat_tensor *t, qat_graph *g)
{
    qat_tensor *x = t->src[0], *w = t->src[1];
    int N = t->shape[0], M = t->shape[1], K = w->shape[1];
    if (x->g) qat_graph_sgemm(g, 0, 0, N, K, M, 1.0f, t->g, M, w->x, K, 1.0f, x->g, K);
    if (w->g) qat_graph_sgemm(g, 1, 0, M, K, N, 1.0f, t->g, M, x->x, K, 1.0f, w->g, K);
    if (t->nsrc == 3 && t->src[2]->g) bias_grad(t, t->src[2]->g);
}

/* ---- conv2d: per image, im2col + sgemm; images split across threads --------- */
typedef struct {
    int C, H, W, F, KH, KW, OH, OW, sh, sw, ph, pw;
    size_t K, P; /* rows (C*KH*KW) and columns (OH*OW) of an image's im2col matrix */
} conv_geom;

static conv_geom conv_geometry(const qat_tensor *t)
{
    const qat_tensor *x = t->src[0], *w = t->src[1];
    conv_geom c = {x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3],
                   t->shape[2], t->shape[3], t->ip[0], t->ip[1], t->ip[2], t->ip[3], 0, 0};
    c.K = (size_t)c.C * c.KH * c.KW;
    c.P = (size_t)c.OH * c.OW;
    return c;
}

/* a 1x1, stride-1, unpadded conv reads its input as the im2col matrix */
static int conv_direct(const conv_geom *c)
{
    return c->KH == 1 && c->KW == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 && c->pw == 0;
}

/* valid output columns [lo, hi) for kernel offset k: 0 <= o*s - p + k < n */
static void valid_range(int out, int n, int s, int p, int k, int *lo, int *hi)
{
    int a = p - k; /* o*s >= a */
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    int b = n - 1 + p - k; /* o*s <= b */
    *hi = b < 0 ? 0 : b / s + 1;
    if (*hi > out) *hi = out;
    if (*lo > *hi) *lo = *hi;
}

/* the image's K x P columns into cols, whose rows are ld floats apart (a
 * group of images lies side by side, each at its own column offset) */
static void im2col(const conv_geom *c, const float *restrict x, float *restrict cols, size_t ld)
{
    /* rows of a CIFAR map are 8 to 32 floats: plain loops, which gcc
     * vectorises, beat a memcpy and two memsets per row */
    for (int ch = 0; ch < c->C; ch++)
        for (int kh = 0; kh < c->KH; kh++)
            for (int kw = 0; kw < c->KW; kw++) {
                float *restrict dst = cols + ((size_t)(ch * c->KH + kh) * c->KW + kw) * ld;
                int wlo, whi;
                valid_range(c->OW, c->W, c->sw, c->pw, kw, &wlo, &whi);
                for (int oh = 0; oh < c->OH; oh++) {
                    float *restrict d = dst + (size_t)oh * c->OW;
                    int ih = oh * c->sh - c->ph + kh;
                    if (ih < 0 || ih >= c->H) {
                        for (int ow = 0; ow < c->OW; ow++) d[ow] = 0.0f;
                        continue;
                    }
                    const float *restrict s = x + ((size_t)ch * c->H + ih) * c->W - c->pw + kw;
                    for (int ow = 0; ow < wlo; ow++) d[ow] = 0.0f;
                    if (c->sw == 1)
                        for (int ow = wlo; ow < whi; ow++) d[ow] = s[ow];
                    else
                        for (int ow = wlo; ow < whi; ow++) d[ow] = s[ow * c->sw];
                    for (int ow = whi; ow < c->OW; ow++) d[ow] = 0.0f;
                }
            }
}

static void col2im_add(const conv_geom *c, const float *restrict cols, size_t ld, float *restrict dx)
{
    for (int ch = 0; ch < c->C; ch++)
        for (int kh = 0; kh < c->KH; kh++)
            for (int kw = 0; kw < c->KW; kw++) {
                const float *src = cols + ((size_t)(ch * c->KH + kh) * c->KW + kw) * ld;
                int wlo, whi;
                valid_range(c->OW, c->W, c->sw, c->pw, kw, &wlo, &whi);
                for (int oh = 0; oh < c->OH; oh++) {
                    int ih = oh * c->sh - c->ph + kh;
                    if (ih < 0 || ih >= c->H) continue;
                    const float *s = src + (size_t)oh * c->OW;
                    float *d = dx + ((size_t)ch * c->H + ih) * c->W - c->pw + kw;
                    if (c->sw == 1) /* contiguous: vectorises */
                        for (int ow = wlo; ow < whi; ow++) d[ow] += s[ow];
                    else
                        for (int ow = wlo; ow < whi; ow++) d[ow * c->sw] += s[ow];
                }
            }
}

/* The columns of a whole batch are not kept: VGG-small's would take over a
 * gigabyte. Each thread im2cols a group of images side by side into its own
 * scratch and runs one GEMM over the group, and the backward builds the
 * columns again (one pass over memory against the GEMMs' K passes). Maps
 * smaller than CONV_GROUP_COLS pixels (4x4, 2x2) are grouped up to that
 * many columns, as a GEMM that thin starves OpenBLAS; grouping 8x8 or
 * larger maps measured no faster (vgg_small_q) or 3 % slower (LeNet). */
#define CONV_GROUP_COLS 64
/* Columns are kept from the forward for the backward when a layer's fit in
 * qat_conv_keep_bytes (LeNet's: 7 and 16 MB at batch 128; building them twice cost 5 % of
 * its step); a CIFAR layer's are 14 MB to 600 MB. */
size_t qat_conv_keep_bytes = (size_t)32 << 20;

/* images per GEMM for a map of P columns, at most the images a thread gets */
static int conv_group(const conv_geom *c, int batch, int threads)
{
    int per_thread = (batch + threads - 1) / threads;
    int gsz = (int)((CONV_GROUP_COLS + c->P - 1) / c->P);
    if (gsz > per_thread) gsz = per_thread;
    return gsz < 1 ? 1 : gsz;
}

/* A stride-1 conv's input gradient is itself a convolution: of dy, padded by
 * KH-1-ph, with the kernel flipped and its two channel axes swapped. Run as
 * im2col of dy + one GEMM with an F*KH*KW-deep reduction, it beats the
 * F-deep GEMM + col2im scatter that the general case needs (when both have
 * the same multiplies). */
static int conv_transposed_dx(const conv_geom *c)
{
    /* only where dx is no larger than y ('same' padding): an unpadded conv's
     * dy, padded by KH-1, would be mostly zeros (LeNet's conv2: 2.25x the
     * multiplies) */
    return c->sh == 1 && c->sw == 1 && c->ph <= c->KH - 1 && c->pw <= c->KW - 1 && !conv_direct(c) &&
           (size_t)c->H * c->W <= c->P;
}

/* the geometry of that convolution: dy (F x OH x OW) to dx (C x H x W) */
static conv_geom conv_geometry_dx(const conv_geom *c)
{
    conv_geom t = {c->F, c->OH, c->OW, c->C, c->KH, c->KW, c->H, c->W, 1, 1, c->KH - 1 - c->ph, c->KW - 1 - c->pw, 0, 0};
    t.K = (size_t)t.C * t.KH * t.KW;
    t.P = (size_t)t.OH * t.OW;
    return t;
}

/* Per-thread scratch, in floats, for groups of gsz images: a columns area
 * (the forward's or backward's columns, or the columns of dy), a gathered
 * output or output gradient (F rows), and an input-gradient area (the
 * columns' gradient, or dx of the group). */
typedef struct {
    size_t cols, out, dx;
} conv_areas;

static conv_areas conv_thread_areas(const conv_geom *c, int gsz)
{
    size_t ld = (size_t)gsz * c->P, ldx = (size_t)gsz * c->H * c->W;
    conv_areas a = {c->K * ld, (size_t)c->F * ld, c->K * ld};
    if (conv_transposed_dx(c)) {
        conv_geom t = conv_geometry_dx(c);
        if (t.K * ldx > a.cols) a.cols = t.K * ldx;
        a.dx = (size_t)c->C * ldx;
    }
    return a;
}

static size_t conv_thread_floats(const conv_geom *c, int gsz)
{
    conv_areas a = conv_thread_areas(c, gsz);
    return a.cols + a.out + a.dx;
}

typedef struct {
    qat_tensor *t;
    conv_geom c;
    int gsz;
    float *work;   /* per thread: conv_thread_floats */
    float *dw;     /* per thread: F*K (+F for the bias), NULL with one thread */
    size_t dw_stride;
    float *wt;     /* the flipped, transposed kernel (C x F*KH*KW) for conv_transposed_dx */
} conv_task;

/* The columns of images [n, n+m) of x (geometry c), K rows of m*P; one
 * direct (1x1) image is read in place. */
static const float *conv_cols_of(const conv_geom *c, const float *x, int n, int m, float *cols)
{
    size_t img = (size_t)c->C * c->H * c->W, ld = (size_t)m * c->P;
    if (conv_direct(c) && m == 1) return x + (size_t)n * img;
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)(n + i) * img;
        float *d = cols + (size_t)i * c->P;
        if (conv_direct(c))
            for (size_t r = 0; r < c->K; r++) memcpy(d + r * ld, xi + r * c->P, sizeof(float) * c->P);
        else
            im2col(c, xi, d, ld);
    }
    return cols;
}

/* Adds a group's rows (rows x m*P, image i at column i*P) into m images of
 * rows x P each; or copies them, plus a per-row bias, when add is 0. */
static void conv_scatter(const float *g, size_t rows, size_t P, int m, float *dst, int add, const float *bias)
{
    size_t ld = (size_t)m * P;
    for (int i = 0; i < m; i++)
        for (size_t r = 0; r < rows; r++) {
            const float *s = g + r * ld + (size_t)i * P;
            float *d = dst + ((size_t)i * rows + r) * P;
            if (add) acc(d, s, P);
            else {
                float b = bias ? bias[r] : 0.0f;
                for (size_t p = 0; p < P; p++) d[p] = s[p] + b;
            }
        }
}

static void conv_fwd_task(void *ctx, int b, int e, int tid)
{
    conv_task *k = ctx;
    qat_tensor *t = k->t;
    const conv_geom *c = &k->c;
    conv_areas a = conv_thread_areas(c, k->gsz);
    float *cols = k->work + (size_t)tid * conv_thread_floats(c, k->gsz), *out = cols + a.cols;
    size_t FP = (size_t)c->F * c->P;
    const float *bias = t->nsrc == 3 ? t->src[2]->x : NULL;
    for (int n = b; n < e; n += k->gsz) {
        int m = e - n < k->gsz ? e - n : k->gsz;
        size_t ld = (size_t)m * c->P;
        /* kept columns: the group's block at the offset of its first image */
        float *dst = t->state_bytes ? (float *)t->state + (size_t)n * c->K * c->P : cols;
        const float *cm = conv_cols_of(c, t->src[0]->x, n, m, dst);
        float *y = t->x + (size_t)n * FP;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->F, (int)ld, (int)c->K, 1.0f, t->src[1]->x,
                    (int)c->K, cm, (int)ld, 0.0f, m == 1 ? y : out, (int)ld);
        if (m > 1) conv_scatter(out, (size_t)c->F, c->P, m, y, 0, bias);
        else if (bias)
            for (int f = 0; f < c->F; f++)
                for (size_t p = 0; p < c->P; p++) y[(size_t)f * c->P + p] += bias[f];
    }
}

static size_t conv_dw_stride(const conv_geom *c) { return (size_t)c->F * c->K + (size_t)c->F; }

/* With more than one thread, per-thread partial weight and bias gradients
 * (zeroed; conv_dw_stride floats each), summed by conv_dw_reduce in thread
 * order so the result depends only on the thread count; NULL with one. */
static float *conv_dw_partials(qat_graph *g, const qat_tensor *t, const conv_geom *c)
{
    int threads = g->threads < t->shape[0] ? g->threads : t->shape[0];
    if (threads <= 1) return NULL;
    size_t n = (size_t)g->threads * conv_dw_stride(c);
    float *dw = qat_graph_scratch(g, sizeof(float) * n);
    memset(dw, 0, sizeof(float) * n);
    return dw;
}

static void conv_dw_reduce(const qat_graph *g, qat_tensor *t, const conv_geom *c, const float *dw)
{
    size_t FK = (size_t)c->F * c->K;
    for (int i = 0; dw && i < g->threads; i++) {
        const float *p = dw + (size_t)i * conv_dw_stride(c);
        if (t->src[1]->g) acc(t->src[1]->g, p, FK);
        if (t->nsrc == 3 && t->src[2]->g) acc(t->src[2]->g, p + FK, (size_t)c->F);
    }
}

/* 3x3, stride-1, 'same' convolutions run direct (autograd/conv3x3.c): no
 * columns and no GEMM packing, so no pass over memory beyond the products
 * themselves; forward, input gradient (the forward kernel on dy with the
 * flipped, transposed kernel) and weight gradient. Routed where
 * bench/bench_conv.c measured it faster than im2col + sgemm: every 3x3
 * conv of ResNet-20 and VGG-small(-q) on 32x32 to 8x8 maps, 1.5x to 5.9x
 * (AVX-512 table against OpenBLAS's SkylakeX sgemm), 1.1x to 2.2x (AVX2
 * table against Haswell's).
 * qat_conv_direct = 0 (QAT_CONV_DIRECT=0 in the CLI) turns it off. */
int qat_conv_direct = 1;
#define CONV3X3_MIN_PIXELS 64

/* the shapes the direct kernels take (their scratch is declared for these
 * whatever qat_conv_direct says, so the switch may change after compile) */
static int conv_3x3_shape(const conv_geom *c)
{
    return c->KH == 3 && c->KW == 3 && c->sh == 1 && c->sw == 1 && c->ph == 1 && c->pw == 1 &&
           c->H * c->W >= CONV3X3_MIN_PIXELS;
}

/* the scalar table is a reference, slower than im2col + sgemm: not routed */
static int conv_3x3(const conv_geom *c)
{
    return qat_conv_direct && conv_3x3_shape(c) && qat_conv3x3_active()->isa != QAT_CONV3X3_ISA_SCALAR;
}

typedef struct {
    qat_tensor *t;
    conv_geom c;
    const float *wp;  /* packed for the forward (C -> F) */
    const float *wpt; /* packed for the input gradient (F -> C), or NULL */
    float *scratch;   /* per thread: qat_conv3x3_scratch_floats */
    size_t scratch_floats;
    float *dw;        /* per-thread weight-gradient partials (F*K + F), NULL with one thread */
    size_t dw_stride;
} conv3_task;

static size_t conv3_scratch_floats(const conv_geom *c)
{
    /* rounded up to whole cache lines so that threads do not share one */
    return (qat_conv3x3_scratch_floats(c->C, c->H, c->W, c->F) + 15) & ~(size_t)15;
}

static void conv3_fwd_task(void *ctx, int b, int e, int tid)
{
    const conv3_task *k = ctx;
    const conv_geom *c = &k->c;
    qat_tensor *t = k->t;
    size_t img = (size_t)c->C * c->H * c->W, FP = (size_t)c->F * c->P;
    float *y = t->x + (size_t)b * FP;
    qat_status st = qat_conv3x3_fwd(k->wp, c->C, c->H, c->W, c->F, e - b, t->src[0]->x + (size_t)b * img, y, 0,
                                    k->scratch + (size_t)tid * k->scratch_floats);
    QAT_ASSERT(st == QAT_OK);
    if (t->nsrc == 3)
        for (int n = 0; n < e - b; n++)
            for (int f = 0; f < c->F; f++) {
                float bf = t->src[2]->x[f], *yf = y + (size_t)n * FP + (size_t)f * c->P;
                for (size_t p = 0; p < c->P; p++) yf[p] += bf;
            }
}

static void conv3_bwd_task(void *ctx, int b, int e, int tid)
{
    const conv3_task *k = ctx;
    const conv_geom *c = &k->c;
    qat_tensor *t = k->t, *x = t->src[0], *w = t->src[1];
    size_t img = (size_t)c->C * c->H * c->W, FP = (size_t)c->F * c->P, FK = (size_t)c->F * c->K;
    float *scratch = k->scratch + (size_t)tid * k->scratch_floats;
    const float *dy = t->g + (size_t)b * FP;
    float *dw = k->dw ? k->dw + (size_t)tid * k->dw_stride : w->g;
    float *db = t->nsrc == 3 && t->src[2]->g ? (k->dw ? dw + FK : t->src[2]->g) : NULL;
    qat_status st = QAT_OK;
    if (w->g) st = qat_conv3x3_dw(c->C, c->H, c->W, c->F, e - b, x->x + (size_t)b * img, dy, dw, scratch);
    if (db)
        for (int n = 0; n < e - b; n++)
            for (int f = 0; f < c->F; f++) {
                const float *g = dy + (size_t)n * FP + (size_t)f * c->P;
                float sum = 0;
                for (size_t p = 0; p < c->P; p++) sum += g[p];
                db[f] += sum;
            }
    if (st == QAT_OK && x->g)
        st = qat_conv3x3_fwd(k->wpt, c->F, c->H, c->W, c->C, e - b, dy, x->g + (size_t)b * img, 1, scratch);
    QAT_ASSERT(st == QAT_OK);
}

static void conv3_fwd(qat_tensor *t, qat_graph *g, const conv_geom *c)
{
    conv3_task k = {.t = t, .c = *c, .scratch_floats = conv3_scratch_floats(c)};
    float *wp = qat_graph_scratch(g, sizeof(float) * qat_conv3x3_packed_floats(c->C, c->F));
    qat_conv3x3_pack(t->src[1]->x, c->C, c->F, 0, wp);
    k.wp = wp;
    k.scratch = qat_graph_scratch(g, sizeof(float) * (size_t)g->threads * k.scratch_floats);
    qat_graph_parallel(g, t->shape[0], conv3_fwd_task, &k);
}

static void conv3_bwd(qat_tensor *t, qat_graph *g, const conv_geom *c)
{
    conv3_task k = {.t = t, .c = *c, .scratch_floats = conv3_scratch_floats(c)};
    if (t->src[0]->g) {
        float *wpt = qat_graph_scratch(g, sizeof(float) * qat_conv3x3_packed_floats(c->F, c->C));
        qat_conv3x3_pack(t->src[1]->x, c->C, c->F, 1, wpt);
        k.wpt = wpt;
    }
    k.scratch = qat_graph_scratch(g, sizeof(float) * (size_t)g->threads * k.scratch_floats);
    k.dw_stride = conv_dw_stride(c);
    k.dw = conv_dw_partials(g, t, c);
    qat_graph_parallel(g, t->shape[0], conv3_bwd_task, &k);
    conv_dw_reduce(g, t, c, k.dw);
}

static size_t conv3_scratch(const conv_geom *c, int threads)
{
    return sizeof(float) * (qat_conv3x3_packed_floats(c->C, c->F) + qat_conv3x3_packed_floats(c->F, c->C) +
                            (size_t)threads * (conv3_scratch_floats(c) + c->K * (size_t)c->F + (size_t)c->F)) +
           4 * 64;
}

static void conv_fwd(qat_tensor *t, qat_graph *g)
{
    if (t->custom) { /* qat_conv2d_set_forward */
        t->custom->forward(t, g);
        return;
    }
    conv_task k = {.t = t, .c = conv_geometry(t)};
    if (conv_3x3(&k.c)) {
        conv3_fwd(t, g, &k.c);
        return;
    }
    k.gsz = conv_group(&k.c, t->shape[0], g->threads);
    k.work = qat_graph_scratch(g, sizeof(float) * (size_t)g->threads * conv_thread_floats(&k.c, k.gsz));
    qat_graph_parallel(g, t->shape[0], conv_fwd_task, &k);
}

/* dx of images [n, n+m) from their output gradient dy (F rows of ld) */
static void conv_bwd_dx(const conv_task *k, int n, int m, const float *dy, float *cols, float *dxg)
{
    const conv_geom *c = &k->c;
    qat_tensor *t = k->t;
    size_t img = (size_t)c->C * c->H * c->W, ld = (size_t)m * c->P;
    float *dx = t->src[0]->g + (size_t)n * img;
    const float *w = t->src[1]->x;
    int K = (int)c->K, F = c->F;
    if (conv_transposed_dx(c)) {
        conv_geom ct = conv_geometry_dx(c);
        size_t ldx = (size_t)m * ct.P;
        /* dy of the group is contiguous per image in t->g; its columns */
        const float *cm = conv_cols_of(&ct, t->g, n, m, cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->C, (int)ldx, (int)ct.K, 1.0f, k->wt, (int)ct.K, cm,
                    (int)ldx, m == 1 ? 1.0f : 0.0f, m == 1 ? dx : dxg, (int)ldx);
        if (m > 1) conv_scatter(dxg, (size_t)c->C, ct.P, m, dx, 1, NULL);
        return;
    }
    if (conv_direct(c) && m == 1) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, (int)ld, F, 1.0f, w, K, dy, (int)ld, 1.0f, dx, (int)ld);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, (int)ld, F, 1.0f, w, K, dy, (int)ld, 0.0f, dxg, (int)ld);
    for (int i = 0; i < m; i++) {
        const float *s = dxg + (size_t)i * c->P;
        float *d = dx + (size_t)i * img;
        if (conv_direct(c))
            for (int r = 0; r < K; r++) acc(d + (size_t)r * c->P, s + (size_t)r * ld, c->P);
        else
            col2im_add(c, s, ld, d);
    }
}

static void conv_bwd_task(void *ctx, int b, int e, int tid)
{
    conv_task *k = ctx;
    qat_tensor *t = k->t, *x = t->src[0], *w = t->src[1];
    const conv_geom *c = &k->c;
    int F = c->F, K = (int)c->K;
    size_t P = c->P, FP = (size_t)F * P;
    float *dw = k->dw ? k->dw + (size_t)tid * k->dw_stride : (w->g ? w->g : NULL);
    float *db = NULL;
    if (t->nsrc == 3 && t->src[2]->g) db = k->dw ? dw + (size_t)F * K : t->src[2]->g;
    conv_areas a = conv_thread_areas(c, k->gsz);
    float *cols = k->work + (size_t)tid * conv_thread_floats(c, k->gsz);
    float *dyg = cols + a.cols, *dxg = dyg + a.out;
    for (int n = b; n < e; n += k->gsz) {
        int m = e - n < k->gsz ? e - n : k->gsz;
        int ld = (int)((size_t)m * P);
        const float *dy = t->g + (size_t)n * FP;
        if (m > 1 && (w->g || db || !conv_transposed_dx(c))) {
            /* the group's output gradient side by side, as its columns */
            for (int i = 0; i < m; i++)
                for (int f = 0; f < F; f++)
                    memcpy(dyg + (size_t)f * ld + (size_t)i * P, dy + (size_t)i * FP + (size_t)f * P, sizeof(float) * P);
            dy = dyg;
        }
        if (w->g) {
            /* the same groups as the forward's (same batch and threads) */
            const float *cm = t->state_bytes && !t->custom ? (const float *)t->state + (size_t)n * c->K * P
                                             : conv_cols_of(c, x->x, n, m, cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, F, K, ld, 1.0f, dy, ld, cm, ld, 1.0f, dw, K);
        }
        if (db)
            for (int f = 0; f < F; f++) {
                float s = 0;
                for (int p = 0; p < ld; p++) s += dy[(size_t)f * ld + p];
                db[f] += s;
            }
        if (x->g) conv_bwd_dx(k, n, m, dy, cols, dxg);
    }
}

static void conv_bwd(qat_tensor *t, qat_graph *g)
{
    conv_task k = {.t = t, .c = conv_geometry(t)};
    const conv_geom *c = &k.c;
    if (conv_3x3(c)) {
        conv3_bwd(t, g, c);
        return;
    }
    k.gsz = conv_group(c, t->shape[0], g->threads);
    k.work = qat_graph_scratch(g, sizeof(float) * (size_t)g->threads * conv_thread_floats(c, k.gsz));
    if (t->src[0]->g && conv_transposed_dx(c)) {
        /* wt[ch][f][kh'][kw'] = w[f][ch][KH-1-kh'][KW-1-kw'] */
        size_t KK = (size_t)c->KH * c->KW, Kt = (size_t)c->F * KK;
        k.wt = qat_graph_scratch(g, sizeof(float) * (size_t)c->C * Kt);
        const float *w = t->src[1]->x;
        for (int f = 0; f < c->F; f++)
            for (int ch = 0; ch < c->C; ch++)
                for (size_t q = 0; q < KK; q++)
                    k.wt[(size_t)ch * Kt + (size_t)f * KK + (KK - 1 - q)] = w[((size_t)f * c->C + ch) * KK + q];
    }
    k.dw_stride = conv_dw_stride(c);
    k.dw = conv_dw_partials(g, t, c);
    qat_graph_parallel(g, t->shape[0], conv_bwd_task, &k);
    conv_dw_reduce(g, t, c, k.dw);
}

static int conv_batch_dim(const qat_tensor *t, int max_batch)
{
    /* a batched output follows max_batch; an unbatched one keeps its dim 0 */
    return t->shape[0] > max_batch ? t->shape[0] : max_batch;
}

static size_t conv_state(const qat_tensor *t, int max_batch)
{
    if (t->custom) return t->custom->state_bytes ? t->custom->state_bytes(t, max_batch) : 0;
    conv_geom c = conv_geometry(t);
    size_t bytes = sizeof(float) * c.K * c.P * (size_t)conv_batch_dim(t, max_batch);
    return conv_direct(&c) || conv_3x3(&c) || bytes > qat_conv_keep_bytes ? 0 : bytes;
}

/* scratch for the largest batch; a smaller batch groups fewer images */
static size_t conv_scratch(const qat_tensor *t, int max_batch, int threads)
{
    conv_geom c = conv_geometry(t);
    int gsz = conv_group(&c, conv_batch_dim(t, max_batch), threads);
    size_t s = sizeof(float) * ((size_t)threads * (conv_thread_floats(&c, gsz) + conv_dw_stride(&c)) + c.K * (size_t)c.F) +
               256;
    size_t f = t->custom && t->custom->scratch_bytes ? t->custom->scratch_bytes(t, max_batch, threads) : 0;
    if (conv_3x3_shape(&c) && conv3_scratch(&c, threads) > s) s = conv3_scratch(&c, threads);
    return s > f ? s : f;
}

/* ---- pooling ------------------------------------------------------------------ */
typedef struct {
    int C, H, W, OH, OW, k, s, p;
} pool_geom;

static pool_geom pool_geometry(const qat_tensor *t)
{
    const qat_tensor *x = t->src[0];
    pool_geom p = {x->shape[1], x->shape[2], x->shape[3], t->shape[2], t->shape[3], t->ip[0], t->ip[1], t->ip[2]};
    return p;
}

typedef struct {
    qat_tensor *t;
    pool_geom q;
} pool_task;

static void maxpool_fwd_task(void *ctx, int pb, int pe, int tid)
{
    const pool_task *k = ctx;
    const pool_geom q = k->q;
    qat_tensor *t = k->t;
    int32_t *arg = t->state;
    for (int pl = pb; pl < pe; pl++) {
        const float *x = t->src[0]->x + (size_t)pl * q.H * q.W;
        float *y = t->x + (size_t)pl * q.OH * q.OW;
        int32_t *a = arg + (size_t)pl * q.OH * q.OW;
        if (q.k == 2 && q.s == 2 && q.p == 0) {
            /* the common case, without bounds checks; first maximum wins */
            for (int oh = 0; oh < q.OH; oh++) {
                const float *r0 = x + (size_t)(2 * oh) * q.W, *r1 = r0 + q.W;
                for (int ow = 0; ow < q.OW; ow++) {
                    int i0 = 2 * oh * q.W + 2 * ow;
                    float v = r0[2 * ow];
                    int bi = i0;
                    if (r0[2 * ow + 1] > v) v = r0[2 * ow + 1], bi = i0 + 1;
                    if (r1[2 * ow] > v) v = r1[2 * ow], bi = i0 + q.W;
                    if (r1[2 * ow + 1] > v) v = r1[2 * ow + 1], bi = i0 + q.W + 1;
                    y[oh * q.OW + ow] = v;
                    a[oh * q.OW + ow] = bi;
                }
            }
            continue;
        }
        for (int oh = 0; oh < q.OH; oh++)
            for (int ow = 0; ow < q.OW; ow++) {
                int h0 = oh * q.s - q.p, w0 = ow * q.s - q.p;
                float best = -INFINITY;
                int bi = -1;
                for (int i = 0; i < q.k; i++) {
                    int h = h0 + i;
                    if (h < 0 || h >= q.H) continue;
                    for (int j = 0; j < q.k; j++) {
                        int w = w0 + j;
                        if (w < 0 || w >= q.W) continue;
                        float v = x[h * q.W + w];
                        if (v > best || bi < 0) { /* first maximum wins, as PyTorch */
                            best = v;
                            bi = h * q.W + w;
                        }
                    }
                }
                y[oh * q.OW + ow] = best;
                a[oh * q.OW + ow] = bi;
            }
    }
}

/* ip[3] set by compile: the source batchnorm computes this pool */
static void maxpool_fwd(qat_tensor *t, qat_graph *g)
{
    if (t->ip[3]) return;
    pool_task k = {t, pool_geometry(t)};
    qat_graph_parallel(g, t->shape[0] * k.q.C, maxpool_fwd_task, &k);
}

static void maxpool_bwd_task(void *ctx, int pb, int pe, int tid)
{
    const pool_task *k = ctx;
    const pool_geom q = k->q;
    qat_tensor *t = k->t;
    const int32_t *arg = t->state;
    for (int pl = pb; pl < pe; pl++) {
        float *dx = t->src[0]->g + (size_t)pl * q.H * q.W;
        const float *dy = t->g + (size_t)pl * q.OH * q.OW;
        const int32_t *a = arg + (size_t)pl * q.OH * q.OW;
        for (int i = 0; i < q.OH * q.OW; i++) dx[a[i]] += dy[i];
    }
}

static void maxpool_bwd(qat_tensor *t, qat_graph *g)
{
    if (t->ip[3] || !t->src[0]->g) return;
    pool_task k = {t, pool_geometry(t)};
    qat_graph_parallel(g, t->shape[0] * k.q.C, maxpool_bwd_task, &k);
}

static size_t maxpool_state(const qat_tensor *t, int max_batch)
{
    return sizeof(int32_t) * t->n; /* compile runs at the largest batch */
}

static void avgpool_fwd(qat_tensor *t, qat_graph *g)
{
    pool_geom q = pool_geometry(t);
    int planes = t->shape[0] * q.C;
    float inv = 1.0f / (float)(q.k * q.k);
    for (int pl = 0; pl < planes; pl++) {
        const float *x = t->src[0]->x + (size_t)pl * q.H * q.W;
        float *y = t->x + (size_t)pl * q.OH * q.OW;
        for (int oh = 0; oh < q.OH; oh++)
            for (int ow = 0; ow < q.OW; ow++) {
                float s = 0;
                for (int i = 0; i < q.k; i++) {
                    int h = oh * q.s - q.p + i;
                    if (h < 0 || h >= q.H) continue;
                    for (int j = 0; j < q.k; j++) {
                        int w = ow * q.s - q.p + j;
                        if (w >= 0 && w < q.W) s += x[h * q.W + w];
                    }
                }
                y[oh * q.OW + ow] = s * inv;
            }
    }
}

static void avgpool_bwd(qat_tensor *t, qat_graph *g)
{
    if (!t->src[0]->g) return;
    pool_geom q = pool_geometry(t);
    int planes = t->shape[0] * q.C;
    float inv = 1.0f / (float)(q.k * q.k);
    for (int pl = 0; pl < planes; pl++) {
        float *dx = t->src[0]->g + (size_t)pl * q.H * q.W;
        const float *dy = t->g + (size_t)pl * q.OH * q.OW;
        for (int oh = 0; oh < q.OH; oh++)
            for (int ow = 0; ow < q.OW; ow++) {
                float d = dy[oh * q.OW + ow] * inv;
                for (int i = 0; i < q.k; i++) {
                    int h = oh * q.s - q.p + i;
                    if (h < 0 || h >= q.H) continue;
                    for (int j = 0; j < q.k; j++) {
                        int w = ow * q.s - q.p + j;
                        if (w >= 0 && w < q.W) dx[h * q.W + w] += d;
                    }
                }
            }
    }
}

static void gap_fwd(qat_tensor *t, qat_graph *g)
{
    const qat_tensor *x = t->src[0];
    size_t S = (size_t)x->shape[2] * x->shape[3];
    size_t planes = (size_t)t->shape[0] * t->shape[1];
    for (size_t pl = 0; pl < planes; pl++) {
        double s = 0;
        for (size_t i = 0; i < S; i++) s += x->x[pl * S + i];
        t->x[pl] = (float)(s / (double)S);
    }
}

static void gap_bwd(qat_tensor *t, qat_graph *g)
{
    qat_tensor *x = t->src[0];
    if (!x->g) return;
    size_t S = (size_t)x->shape[2] * x->shape[3];
    size_t planes = (size_t)t->shape[0] * t->shape[1];
    for (size_t pl = 0; pl < planes; pl++) {
        float d = t->g[pl] / (float)S;
        for (size_t i = 0; i < S; i++) x->g[pl * S + i] += d;
    }
}

/* ---- batchnorm: per-channel tasks; state holds the batch mean and 1/std ----- */
/* state: mean[C], invstd[C], then for sync_bn an exchange buffer of 2C + 1
 * floats and the global batch's image count (see bn_sync_fwd) */
typedef struct {
    qat_tensor *t;
    int N, C;
    size_t S;
    int training;
    /* sync_bn only */
    float *xb;   /* the exchange buffer in the state */
    double cnt;  /* values per channel in the global batch */
    float share; /* this rank's weight in the global loss (qat_graph_sync) */
} bn_task;

/* Sums in 16 float lanes (vectorised, fixed order), combined in double: as
 * accurate as a double loop for the sizes BN sees, and deterministic. */
#define LANES 16

static double lanes_total(const float *acc)
{
    double s = 0;
    for (int j = 0; j < LANES; j++) s += acc[j];
    return s;
}

static double sum_f(const float *restrict p, size_t n)
{
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += p[i + j];
    double s = lanes_total(acc);
    for (; i < n; i++) s += p[i];
    return s;
}

static double sumsq_dev(const float *restrict p, size_t n, float mu)
{
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float d = p[i + j] - mu;
            acc[j] += d * d;
        }
    double s = lanes_total(acc);
    for (; i < n; i++) s += (double)(p[i] - mu) * (p[i] - mu);
    return s;
}

/* sum(dy) and sum(dy * (x - m)) in one pass */
static void dy_sums(const float *restrict dy, const float *restrict x, size_t n, float m, double *sdy, double *sdyx)
{
    float a[LANES] = {0}, b[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            a[j] += dy[i + j];
            b[j] += dy[i + j] * (x[i + j] - m);
        }
    double s1 = lanes_total(a), s2 = lanes_total(b);
    for (; i < n; i++) {
        s1 += dy[i];
        s2 += (double)dy[i] * (x[i] - m);
    }
    *sdy += s1;
    *sdyx += s2;
}

/* the same with a fused ReLU's mask: dy' = dy * (y > 0), written back so the
 * dx pass need not mask again */
static void dy_sums_relu(float *restrict dy, const float *restrict x, const float *restrict y, size_t n, float m,
                         double *sdy, double *sdyx)
{
    float a[LANES] = {0}, b[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float d = dy[i + j] * (float)(y[i + j] > 0.0f);
            dy[i + j] = d;
            a[j] += d;
            b[j] += d * (x[i + j] - m);
        }
    double s1 = lanes_total(a), s2 = lanes_total(b);
    for (; i < n; i++) {
        float d = dy[i] * (float)(y[i] > 0.0f);
        dy[i] = d;
        s1 += d;
        s2 += (double)d * (x[i] - m);
    }
    *sdy += s1;
    *sdyx += s2;
}

/* BN (+ReLU) and a 2x2 stride-2 max pool in one pass over channel c: each
 * window's four values are normalised and pooled; the first maximum wins,
 * as in maxpool_fwd_task */
static void bn_pool_forward(qat_tensor *t, int c, float a, float b)
{
    qat_tensor *p = t->fused;
    int N = t->shape[0], C = t->shape[1], H = t->shape[2], W = t->shape[3], OH = p->shape[2], OW = p->shape[3];
    int relu = t->ip[0];
    for (int n = 0; n < N; n++) {
        const float *x = t->src[0]->x + ((size_t)n * C + c) * H * W;
        float *y = p->x + ((size_t)n * C + c) * OH * OW;
        int32_t *arg = (int32_t *)p->state + ((size_t)n * C + c) * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = x + (size_t)(2 * oh) * W, *r1 = r0 + W;
            for (int ow = 0; ow < OW; ow++) {
                int i0 = 2 * oh * W + 2 * ow;
                float v = r0[2 * ow] * a + b, u;
                int bi = i0;
                if ((u = r0[2 * ow + 1] * a + b) > v) v = u, bi = i0 + 1;
                if ((u = r1[2 * ow] * a + b) > v) v = u, bi = i0 + W;
                if ((u = r1[2 * ow + 1] * a + b) > v) v = u, bi = i0 + W + 1;
                y[oh * OW + ow] = relu && v < 0.0f ? 0.0f : v;
                arg[oh * OW + ow] = bi;
            }
        }
    }
}

/* channel c's output from its mean m and 1/std is (and a fused ReLU or pool) */
static void bn_apply(const bn_task *k, int c, float m, float is)
{
    qat_tensor *t = k->t;
    const float *x = t->src[0]->x;
    size_t S = k->S, CS = (size_t)k->C * S;
    float a = t->src[1]->x[c] * is, b = t->src[2]->x[c] - m * a;
    if (t->fused) {
        bn_pool_forward(t, c, a, b);
        return;
    }
    for (int n = 0; n < k->N; n++) {
        const float *restrict p = x + n * CS + c * S;
        float *restrict y = t->x + n * CS + c * S;
        if (t->ip[0]) /* a following ReLU fused in by compile */
            for (size_t i = 0; i < S; i++) {
                float v = p[i] * a + b;
                y[i] = v > 0.0f ? v : 0.0f;
            }
        else
            for (size_t i = 0; i < S; i++) y[i] = p[i] * a + b;
    }
}

/* the running statistics move towards the batch's mean mu and variance
 * (ss: the sum of squared deviations over cnt values), and 1/std */
static float bn_batch_stats(const qat_tensor *t, int c, float mu, double ss, double cnt)
{
    float *rmean = t->src[3]->x, *rvar = ((qat_tensor *)t->user)->x;
    float eps = t->fp[0], mom = t->fp[1];
    double var = ss / cnt;
    double unbiased = cnt > 1 ? ss / (cnt - 1) : var;
    rmean[c] = (1 - mom) * rmean[c] + mom * mu;
    rvar[c] = (1 - mom) * rvar[c] + mom * (float)unbiased;
    return (float)(1.0 / sqrt(var + eps));
}

static void bn_fwd_task(void *ctx, int cb, int ce, int tid)
{
    bn_task *k = ctx;
    qat_tensor *t = k->t;
    const float *x = t->src[0]->x;
    float *rmean = t->src[3]->x, *rvar = ((qat_tensor *)t->user)->x;
    float *mean = t->state, *invstd = mean + k->C;
    float eps = t->fp[0];
    size_t S = k->S, CS = (size_t)k->C * S;
    for (int c = cb; c < ce; c++) {
        float m, is;
        if (k->training) {
            double s = 0, ss = 0;
            for (int n = 0; n < k->N; n++) s += sum_f(x + n * CS + c * S, S);
            double cnt = (double)k->N * (double)S, mu = s / cnt;
            for (int n = 0; n < k->N; n++) ss += sumsq_dev(x + n * CS + c * S, S, (float)mu);
            m = (float)mu;
            is = bn_batch_stats(t, c, m, ss, cnt);
        } else {
            m = rmean[c];
            is = (float)(1.0 / sqrt((double)rvar[c] + eps));
        }
        mean[c] = m;
        invstd[c] = is;
        bn_apply(k, c, m, is);
    }
}

/* [N, C] input (S == 1): a channel's values are strided by C, so walk rows
 * and vectorise across a block of channels instead. */
#define BN_CBLOCK 256

/* channels [c0, c0 + nc) of the output from mean[] and invstd[] */
static void bn1d_apply(const bn_task *k, int c0, int nc)
{
    qat_tensor *t = k->t;
    const float *x = t->src[0]->x, *gamma = t->src[1]->x, *beta = t->src[2]->x;
    const float *mean = t->state, *invstd = mean + k->C;
    int C = k->C;
    float a[BN_CBLOCK], b[BN_CBLOCK];
    for (int j = 0; j < nc; j++) {
        int c = c0 + j;
        a[j] = gamma[c] * invstd[c];
        b[j] = beta[c] - mean[c] * a[j];
    }
    for (int n = 0; n < k->N; n++) {
        const float *restrict r = x + (size_t)n * C + c0;
        float *restrict y = t->x + (size_t)n * C + c0;
        if (t->ip[0])
            for (int j = 0; j < nc; j++) {
                float v = r[j] * a[j] + b[j];
                y[j] = v > 0.0f ? v : 0.0f;
            }
        else
            for (int j = 0; j < nc; j++) y[j] = r[j] * a[j] + b[j];
    }
}

/* s[j] = the sum of channel c0 + j over the rows */
static void bn1d_sums(const bn_task *k, int c0, int nc, float *s)
{
    const float *x = k->t->src[0]->x;
    for (int j = 0; j < nc; j++) s[j] = 0;
    for (int n = 0; n < k->N; n++) {
        const float *restrict r = x + (size_t)n * k->C + c0;
        for (int j = 0; j < nc; j++) s[j] += r[j];
    }
}

/* ss[j] = the sum of (x - mu[j])^2 of channel c0 + j over the rows */
static void bn1d_sumsq(const bn_task *k, int c0, int nc, const float *mu, float *ss)
{
    const float *x = k->t->src[0]->x;
    for (int j = 0; j < nc; j++) ss[j] = 0;
    for (int n = 0; n < k->N; n++) {
        const float *restrict r = x + (size_t)n * k->C + c0;
        for (int j = 0; j < nc; j++) {
            float d = r[j] - mu[j];
            ss[j] += d * d;
        }
    }
}

static void bn1d_fwd_task(void *ctx, int bb, int be, int tid)
{
    bn_task *k = ctx;
    qat_tensor *t = k->t;
    float *rmean = t->src[3]->x, *rvar = ((qat_tensor *)t->user)->x;
    float *mean = t->state, *invstd = mean + k->C;
    float eps = t->fp[0];
    int C = k->C, N = k->N;
    for (int blk = bb; blk < be; blk++) {
        int c0 = blk * BN_CBLOCK, c1 = c0 + BN_CBLOCK < C ? c0 + BN_CBLOCK : C, nc = c1 - c0;
        if (k->training) {
            float s[BN_CBLOCK], ss[BN_CBLOCK], mu[BN_CBLOCK];
            bn1d_sums(k, c0, nc, s);
            for (int j = 0; j < nc; j++) mu[j] = (float)((double)s[j] / N);
            bn1d_sumsq(k, c0, nc, mu, ss);
            for (int j = 0; j < nc; j++) {
                mean[c0 + j] = mu[j];
                invstd[c0 + j] = bn_batch_stats(t, c0 + j, mu[j], (double)ss[j], (double)N);
            }
        } else {
            for (int c = c0; c < c1; c++) {
                mean[c] = rmean[c];
                invstd[c] = (float)(1.0 / sqrt((double)rvar[c] + eps));
            }
        }
        bn1d_apply(k, c0, nc);
    }
}

/* ---- sync_bn: the statistics of every rank's batch (qat_graph_sync) --------
 * Forward, two exchanges through allreduce_sum: each channel's sum (and the
 * rank's image count) gives the global mean; then each rank's sum of squared
 * deviations from that mean gives the variance. One exchange of sum and sum
 * of squares would be cheaper by a collective, but the hook sums float32
 * and var = E[x^2] - mean^2 then carries a relative error of about
 * 2^-24 (mean/std)^2: 2e-5 at a mean of 20 std, 6e-4 at 100 std, whatever
 * the batch. The second exchange keeps the one-process algorithm (the same
 * mean, then centred squares), so the result differs from one process's
 * only by the order of the additions and each rank's partial sums rounded
 * to float32, for any mean. Backward,
 * one exchange: sum(dy) and sum(dy * (x - mean)) of each rank, weighted by
 * the rank's share of the global loss, give the global batch's terms of dx;
 * dgamma and dbeta stay each rank's own (the gradient exchange sums them).
 * Every rank ends with the same bits (allreduce_sum's contract), so the
 * running statistics are the same everywhere. */
static int bn_synced(const qat_graph *g) { return g->training && g->sync && g->sync->comm->size > 1; }

/* buf[0..n) summed over the ranks; skipped after a failure (the step is
 * lost), whose message then names the layer */
static void bn_allreduce(qat_graph *g, const qat_tensor *t, float *buf, size_t n)
{
    qat_graph_sync *s = g->sync;
    if (s->status) return;
    double t0 = qat_time_now();
    s->status = s->comm->allreduce_sum(s->comm->user, buf, n);
    s->seconds += qat_time_now() - t0;
    s->floats += (double)n;
    if (s->status) qat_error_wrap(s->status, "sync_bn: '%s'", t->name[0] ? t->name : "batchnorm");
}

/* xb[c] = this rank's sum of channel c */
static void bn_sync_sum_task(void *ctx, int cb, int ce, int tid)
{
    bn_task *k = ctx;
    const float *x = k->t->src[0]->x;
    size_t S = k->S, CS = (size_t)k->C * S;
    for (int c = cb; c < ce; c++) {
        double s = 0;
        for (int n = 0; n < k->N; n++) s += sum_f(x + n * CS + c * S, S);
        k->xb[c] = (float)s;
    }
}

/* mean[c] from the global sums; xb[C + 1 + c] = this rank's sum of squared deviations from it */
static void bn_sync_sumsq_task(void *ctx, int cb, int ce, int tid)
{
    bn_task *k = ctx;
    const float *x = k->t->src[0]->x;
    float *mean = k->t->state;
    size_t S = k->S, CS = (size_t)k->C * S;
    for (int c = cb; c < ce; c++) {
        float m = (float)((double)k->xb[c] / k->cnt);
        double ss = 0;
        for (int n = 0; n < k->N; n++) ss += sumsq_dev(x + n * CS + c * S, S, m);
        mean[c] = m;
        k->xb[k->C + 1 + c] = (float)ss;
    }
}

/* the global variance, running statistics, output */
static void bn_sync_apply_task(void *ctx, int cb, int ce, int tid)
{
    bn_task *k = ctx;
    float *mean = k->t->state, *invstd = mean + k->C;
    for (int c = cb; c < ce; c++) {
        invstd[c] = bn_batch_stats(k->t, c, mean[c], (double)k->xb[k->C + 1 + c], k->cnt);
        bn_apply(k, c, mean[c], invstd[c]);
    }
}

/* the same three for [N, C], a block of channels each */
static void bn1d_sync_sum_task(void *ctx, int bb, int be, int tid)
{
    bn_task *k = ctx;
    for (int blk = bb; blk < be; blk++) {
        int c0 = blk * BN_CBLOCK, nc = c0 + BN_CBLOCK < k->C ? BN_CBLOCK : k->C - c0;
        bn1d_sums(k, c0, nc, k->xb + c0);
    }
}

static void bn1d_sync_sumsq_task(void *ctx, int bb, int be, int tid)
{
    bn_task *k = ctx;
    float *mean = k->t->state;
    for (int blk = bb; blk < be; blk++) {
        int c0 = blk * BN_CBLOCK, nc = c0 + BN_CBLOCK < k->C ? BN_CBLOCK : k->C - c0;
        for (int j = 0; j < nc; j++) mean[c0 + j] = (float)((double)k->xb[c0 + j] / k->cnt);
        bn1d_sumsq(k, c0, nc, mean + c0, k->xb + k->C + 1 + c0);
    }
}

static void bn1d_sync_apply_task(void *ctx, int bb, int be, int tid)
{
    bn_task *k = ctx;
    float *mean = k->t->state, *invstd = mean + k->C;
    for (int blk = bb; blk < be; blk++) {
        int c0 = blk * BN_CBLOCK, nc = c0 + BN_CBLOCK < k->C ? BN_CBLOCK : k->C - c0;
        for (int j = 0; j < nc; j++)
            invstd[c0 + j] = bn_batch_stats(k->t, c0 + j, mean[c0 + j], (double)k->xb[k->C + 1 + c0 + j], k->cnt);
        bn1d_apply(k, c0, nc);
    }
}

/* the exchange buffer (2C + 1 floats) and the global image count after it */
static float *bn_xbuf(const qat_tensor *t) { return (float *)t->state + 2 * (size_t)t->shape[1]; }
static float *bn_gcount(const qat_tensor *t) { return bn_xbuf(t) + 2 * (size_t)t->shape[1] + 1; }

static void bn_sync_fwd(bn_task *k, qat_graph *g)
{
    int C = k->C, n = k->S == 1 ? (C + BN_CBLOCK - 1) / BN_CBLOCK : C;
    k->xb = bn_xbuf(k->t);
    qat_graph_parallel(g, n, k->S == 1 ? bn1d_sync_sum_task : bn_sync_sum_task, k);
    k->xb[C] = (float)k->N; /* ranks' shares differ by one image; float counts are exact to 2^24 */
    bn_allreduce(g, k->t, k->xb, (size_t)C + 1);
    *bn_gcount(k->t) = k->xb[C];
    k->cnt = (double)k->xb[C] * (double)k->S;
    qat_graph_parallel(g, n, k->S == 1 ? bn1d_sync_sumsq_task : bn_sync_sumsq_task, k);
    bn_allreduce(g, k->t, k->xb + C + 1, (size_t)C);
    qat_graph_parallel(g, n, k->S == 1 ? bn1d_sync_apply_task : bn_sync_apply_task, k);
}

static void bn_fwd(qat_tensor *t, qat_graph *g)
{
    bn_task k = {.t = t, .training = g->training};
    ncs(t, &k.N, &k.C, &k.S);
    if (bn_synced(g)) bn_sync_fwd(&k, g);
    else if (k.S == 1) qat_graph_parallel(g, (k.C + BN_CBLOCK - 1) / BN_CBLOCK, bn1d_fwd_task, &k);
    else qat_graph_parallel(g, k.C, bn_fwd_task, &k);
}

/* the sums of the backward of BN (+ReLU) + 2x2 max pool for channel c: the
 * BN output's gradient is the pool's at each window's argmax and 0 elsewhere */
static void bn_pool_dy_sums(const qat_tensor *t, int c, float m, double *sdy_out, double *sdyxm_out)
{
    qat_tensor *p = t->fused, *xt = t->src[0];
    int N = t->shape[0], C = t->shape[1], H = t->shape[2], W = t->shape[3];
    size_t P = (size_t)p->shape[2] * p->shape[3], HW = (size_t)H * W;
    int relu = t->ip[0];
    double sdy = 0, sdyxm = 0;
    for (int n = 0; n < N; n++) {
        size_t plane = (size_t)n * C + c;
        const float *x = xt->x + plane * HW, *dy = p->g + plane * P, *y = p->x + plane * P;
        const int32_t *arg = (const int32_t *)p->state + plane * P;
        /* LANES independent float sums per plane (one double chain was latency-bound) */
        float a[LANES] = {0}, b[LANES] = {0};
        size_t w = 0;
        for (; w + LANES <= P; w += LANES)
            for (int j = 0; j < LANES; j++) {
                float d = relu && !(y[w + j] > 0.0f) ? 0.0f : dy[w + j];
                a[j] += d;
                b[j] += d * (x[arg[w + j]] - m);
            }
        double s1 = lanes_total(a), s2 = lanes_total(b);
        for (; w < P; w++) {
            float d = relu && !(y[w] > 0.0f) ? 0.0f : dy[w];
            s1 += d;
            s2 += (double)d * (x[arg[w]] - m);
        }
        sdy += s1;
        sdyxm += s2;
    }
    *sdy_out = sdy;
    *sdyxm_out = sdyxm;
}

/* and its dx, from the means of dy and dy * xhat (ignored out of training) */
static void bn_pool_dx(const qat_tensor *t, int c, float m, float gi, float mdy, float mdyx, int training)
{
    qat_tensor *p = t->fused, *xt = t->src[0];
    int N = t->shape[0], C = t->shape[1], H = t->shape[2], W = t->shape[3];
    size_t P = (size_t)p->shape[2] * p->shape[3], HW = (size_t)H * W;
    int relu = t->ip[0];
    for (int n = 0; n < N; n++) {
        size_t plane = (size_t)n * C + c;
        const float *restrict x = xt->x + plane * HW;
        float *restrict dx = xt->g + plane * HW;
        if (training)
            for (size_t i = 0; i < HW; i++) dx[i] -= gi * (mdy + (x[i] - m) * mdyx);
        const float *dy = p->g + plane * P, *y = p->x + plane * P;
        const int32_t *arg = (const int32_t *)p->state + plane * P;
        for (size_t w = 0; w < P; w++)
            if (!relu || y[w] > 0.0f) dx[arg[w]] += gi * dy[w];
    }
}

static void bn_pool_backward(qat_tensor *t, int c, float m, float is, int training, double cnt)
{
    double sdy, sdyxm;
    bn_pool_dy_sums(t, c, m, &sdy, &sdyxm);
    double sdyx = sdyxm * is;
    float *dgamma = t->src[1]->g, *dbeta = t->src[2]->g;
    if (dgamma) dgamma[c] += (float)sdyx;
    if (dbeta) dbeta[c] += (float)sdy;
    if (!t->src[0]->g) return;
    float gi = t->src[1]->x[c] * is;
    float mdy = training ? (float)(sdy / cnt) : 0.0f, mdyx = training ? (float)(sdyx / cnt) * is : 0.0f;
    bn_pool_dx(t, c, m, gi, mdy, mdyx, training);
}

/* sum(dy) and sum(dy * (x - m)) of channel c (a fused ReLU's mask written into dy) */
static void bn_dy_sums(const bn_task *k, int c, float m, double *sdy, double *sdyxm)
{
    qat_tensor *t = k->t;
    const float *x = t->src[0]->x;
    size_t S = k->S, CS = (size_t)k->C * S;
    *sdy = *sdyxm = 0;
    for (int n = 0; n < k->N; n++) {
        if (t->ip[0]) dy_sums_relu(t->g + n * CS + c * S, x + n * CS + c * S, t->x + n * CS + c * S, S, m, sdy, sdyxm);
        else dy_sums(t->g + n * CS + c * S, x + n * CS + c * S, S, m, sdy, sdyxm);
    }
}

/* dx of channel c in training: gamma/std * (dy - mean(dy) - xhat * mean(dy * xhat)) */
static void bn_dx(const bn_task *k, int c, float m, float gi, float mdy, float mdyx)
{
    qat_tensor *t = k->t, *xt = t->src[0];
    size_t S = k->S, CS = (size_t)k->C * S;
    for (int n = 0; n < k->N; n++) {
        const float *restrict p = xt->x + n * CS + c * S, *restrict dy = t->g + n * CS + c * S;
        float *restrict dx = xt->g + n * CS + c * S;
        for (size_t i = 0; i < S; i++) dx[i] += gi * (dy[i] - mdy - (p[i] - m) * mdyx);
    }
}

static void bn_bwd_task(void *ctx, int cb, int ce, int tid)
{
    bn_task *k = ctx;
    qat_tensor *t = k->t, *xt = t->src[0];
    const float *gamma = t->src[1]->x;
    float *dgamma = t->src[1]->g, *dbeta = t->src[2]->g;
    const float *mean = t->state, *invstd = mean + k->C;
    size_t S = k->S, CS = (size_t)k->C * S;
    double cnt = (double)k->N * (double)S;
    for (int c = cb; c < ce; c++) {
        float m = mean[c], is = invstd[c];
        if (t->fused) {
            bn_pool_backward(t, c, m, is, k->training, cnt);
            continue;
        }
        double sdy, sdyxm;
        bn_dy_sums(k, c, m, &sdy, &sdyxm);
        double sdyx = sdyxm * is; /* sum(dy * xhat) */
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        if (!xt->g) continue;
        float gi = gamma[c] * is;
        if (k->training) {
            float mdy = (float)(sdy / cnt), mdyx = (float)(sdyx / cnt) * is;
            bn_dx(k, c, m, gi, mdy, mdyx);
        } else {
            for (int n = 0; n < k->N; n++) {
                const float *restrict dy = t->g + n * CS + c * S;
                float *restrict dx = xt->g + n * CS + c * S;
                for (size_t i = 0; i < S; i++) dx[i] += gi * dy[i];
            }
        }
    }
}

/* sdy[j] and sdyx[j] (sum(dy * (x - mean))) of channel c0 + j, a fused ReLU's mask written into dy */
static void bn1d_dy_sums(const bn_task *k, int c0, int nc, float *sdy, float *sdyx)
{
    qat_tensor *t = k->t;
    const float *x = t->src[0]->x;
    const float *restrict m = (const float *)t->state + c0;
    int C = k->C;
    float lo = t->ip[0] ? 0.0f : -INFINITY;
    for (int j = 0; j < nc; j++) sdy[j] = sdyx[j] = 0;
    for (int n = 0; n < k->N; n++) {
        float *restrict dy = t->g + (size_t)n * C + c0;
        const float *restrict r = x + (size_t)n * C + c0, *restrict y = t->x + (size_t)n * C + c0;
        for (int j = 0; j < nc; j++) {
            float d = dy[j] * (float)(y[j] > lo); /* a fused ReLU's mask */
            dy[j] = d;
            sdy[j] += d;
            sdyx[j] += d * (r[j] - m[j]);
        }
    }
}

static void bn1d_dx(const bn_task *k, int c0, int nc, const float *gi, const float *mdy, const float *mdyx)
{
    qat_tensor *t = k->t, *xt = t->src[0];
    const float *restrict m = (const float *)t->state + c0;
    int C = k->C;
    for (int n = 0; n < k->N; n++) {
        const float *restrict dy = t->g + (size_t)n * C + c0, *restrict r = xt->x + (size_t)n * C + c0;
        float *restrict dx = xt->g + (size_t)n * C + c0;
        for (int j = 0; j < nc; j++) dx[j] += gi[j] * (dy[j] - mdy[j] - (r[j] - m[j]) * mdyx[j]);
    }
}

static void bn1d_bwd_task(void *ctx, int bb, int be, int tid)
{
    bn_task *k = ctx;
    qat_tensor *t = k->t, *xt = t->src[0];
    const float *gamma = t->src[1]->x;
    float *dgamma = t->src[1]->g, *dbeta = t->src[2]->g;
    const float *invstd = (const float *)t->state + k->C;
    int C = k->C, N = k->N;
    for (int blk = bb; blk < be; blk++) {
        int c0 = blk * BN_CBLOCK, c1 = c0 + BN_CBLOCK < C ? c0 + BN_CBLOCK : C, nc = c1 - c0;
        float sdy[BN_CBLOCK], sdyx[BN_CBLOCK];
        bn1d_dy_sums(k, c0, nc, sdy, sdyx);
        float gi[BN_CBLOCK], mdy[BN_CBLOCK], mdyx[BN_CBLOCK];
        for (int j = 0; j < nc; j++) {
            int c = c0 + j;
            float is = invstd[c], xs = sdyx[j] * is; /* sum(dy * xhat) */
            if (dgamma) dgamma[c] += xs;
            if (dbeta) dbeta[c] += sdy[j];
            gi[j] = gamma[c] * is;
            mdy[j] = k->training ? sdy[j] / (float)N : 0.0f;
            mdyx[j] = k->training ? xs / (float)N * is : 0.0f;
        }
        if (!xt->g) continue;
        bn1d_dx(k, c0, nc, gi, mdy, mdyx);
    }
}

/* sync_bn's backward: each rank's sums (its own dgamma, dbeta) into
 * xb[c] = share * sum(dy), xb[C + c] = share * sum(dy * (x - mean)) */
static void bn_sync_dy_task(void *ctx, int cb, int ce, int tid)
{
    bn_task *k = ctx;
    qat_tensor *t = k->t;
    float *dgamma = t->src[1]->g, *dbeta = t->src[2]->g;
    const float *mean = t->state, *invstd = mean + k->C;
    for (int c = cb; c < ce; c++) {
        double sdy, sdyxm;
        if (t->fused) bn_pool_dy_sums(t, c, mean[c], &sdy, &sdyxm);
        else bn_dy_sums(k, c, mean[c], &sdy, &sdyxm);
        if (dgamma) dgamma[c] += (float)(sdyxm * invstd[c]);
        if (dbeta) dbeta[c] += (float)sdy;
        k->xb[c] = (float)(k->share * sdy);
        k->xb[k->C + c] = (float)(k->share * sdyxm);
    }
}

/* dx from the global sums, in this rank's units (divided by its share) */
static void bn_sync_dx_task(void *ctx, int cb, int ce, int tid)
{
    bn_task *k = ctx;
    qat_tensor *t = k->t;
    const float *mean = t->state, *invstd = mean + k->C;
    double w = (double)k->share * k->cnt;
    for (int c = cb; c < ce; c++) {
        float m = mean[c], is = invstd[c], gi = t->src[1]->x[c] * is;
        float mdy = (float)(k->xb[c] / w), mdyx = (float)((double)k->xb[k->C + c] * is / w) * is;
        if (t->fused) bn_pool_dx(t, c, m, gi, mdy, mdyx, 1);
        else bn_dx(k, c, m, gi, mdy, mdyx);
    }
}

static void bn1d_sync_dy_task(void *ctx, int bb, int be, int tid)
{
    bn_task *k = ctx;
    qat_tensor *t = k->t;
    float *dgamma = t->src[1]->g, *dbeta = t->src[2]->g;
    const float *invstd = (const float *)t->state + k->C;
    for (int blk = bb; blk < be; blk++) {
        int c0 = blk * BN_CBLOCK, nc = c0 + BN_CBLOCK < k->C ? BN_CBLOCK : k->C - c0;
        float sdy[BN_CBLOCK], sdyx[BN_CBLOCK];
        bn1d_dy_sums(k, c0, nc, sdy, sdyx);
        for (int j = 0; j < nc; j++) {
            int c = c0 + j;
            if (dgamma) dgamma[c] += sdyx[j] * invstd[c];
            if (dbeta) dbeta[c] += sdy[j];
            k->xb[c] = k->share * sdy[j];
            k->xb[k->C + c] = k->share * sdyx[j];
        }
    }
}

static void bn1d_sync_dx_task(void *ctx, int bb, int be, int tid)
{
    bn_task *k = ctx;
    qat_tensor *t = k->t;
    const float *gamma = t->src[1]->x, *invstd = (const float *)t->state + k->C;
    double w = (double)k->share * k->cnt;
    for (int blk = bb; blk < be; blk++) {
        int c0 = blk * BN_CBLOCK, nc = c0 + BN_CBLOCK < k->C ? BN_CBLOCK : k->C - c0;
        float gi[BN_CBLOCK], mdy[BN_CBLOCK], mdyx[BN_CBLOCK];
        for (int j = 0; j < nc; j++) {
            int c = c0 + j;
            float is = invstd[c];
            gi[j] = gamma[c] * is;
            mdy[j] = (float)(k->xb[c] / w);
            mdyx[j] = (float)((double)k->xb[k->C + c] * is / w) * is;
        }
        bn1d_dx(k, c0, nc, gi, mdy, mdyx);
    }
}

static void bn_sync_bwd(bn_task *k, qat_graph *g)
{
    int C = k->C, n = k->S == 1 ? (C + BN_CBLOCK - 1) / BN_CBLOCK : C;
    k->xb = bn_xbuf(k->t);
    k->share = g->sync->share;
    k->cnt = (double)*bn_gcount(k->t) * (double)k->S;
    qat_graph_parallel(g, n, k->S == 1 ? bn1d_sync_dy_task : bn_sync_dy_task, k);
    /* without an input gradient there is no dx to make global (the same on every rank: the same graph) */
    if (!k->t->src[0]->g) return;
    bn_allreduce(g, k->t, k->xb, 2 * (size_t)C);
    qat_graph_parallel(g, n, k->S == 1 ? bn1d_sync_dx_task : bn_sync_dx_task, k);
}

static void bn_bwd(qat_tensor *t, qat_graph *g)
{
    bn_task k = {.t = t, .training = g->training};
    ncs(t, &k.N, &k.C, &k.S);
    if (bn_synced(g)) bn_sync_bwd(&k, g);
    else if (k.S == 1) qat_graph_parallel(g, (k.C + BN_CBLOCK - 1) / BN_CBLOCK, bn1d_bwd_task, &k);
    else qat_graph_parallel(g, k.C, bn_bwd_task, &k);
}

/* mean, 1/std; sync_bn's exchange buffer (2C + 1) and global image count */
static size_t bn_state(const qat_tensor *t, int max_batch) { return (4 * (size_t)t->shape[1] + 2) * sizeof(float); }

/* ---- activations, dropout ----------------------------------------------------- */
static void relu_range(const qat_tensor *t, size_t b, size_t e)
{
    const float *restrict x = t->src[0]->x;
    float *restrict y = t->x;
    for (size_t i = b; i < e; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* ip[0] set by compile: the source BN applies this ReLU, the node is an alias */
static void relu_fwd(qat_tensor *t, qat_graph *g)
{
    if (!t->ip[0]) qat_graph_elementwise(g, t, t->n, relu_range);
}

static void relu_bwd_range(const qat_tensor *t, size_t b, size_t e)
{
    const float *restrict x = t->src[0]->x, *restrict dy = t->g;
    float *restrict dx = t->src[0]->g;
    for (size_t i = b; i < e; i++) dx[i] += dy[i] * (float)(x[i] > 0.0f);
}

static void relu_bwd(qat_tensor *t, qat_graph *g)
{
    if (!t->ip[0] && t->src[0]->g) qat_graph_elementwise(g, t, t->n, relu_bwd_range);
}

static void hardtanh_range(const qat_tensor *t, size_t b, size_t e)
{
    const float *restrict x = t->src[0]->x;
    float *restrict y = t->x;
    float lo = t->fp[0], hi = t->fp[1];
    for (size_t i = b; i < e; i++) {
        float v = x[i];
        v = v < lo ? lo : v;
        y[i] = v > hi ? hi : v;
    }
}

static void hardtanh_fwd(qat_tensor *t, qat_graph *g) { qat_graph_elementwise(g, t, t->n, hardtanh_range); }

static void hardtanh_bwd_range(const qat_tensor *t, size_t b, size_t e)
{
    const float *restrict x = t->src[0]->x, *restrict dy = t->g;
    float *restrict dx = t->src[0]->g;
    float lo = t->fp[0], hi = t->fp[1];
    /* strict inequalities, as PyTorch: no gradient at the clip points */
    for (size_t i = b; i < e; i++) dx[i] += dy[i] * (float)((x[i] > lo) & (x[i] < hi));
}

static void hardtanh_bwd(qat_tensor *t, qat_graph *g)
{
    if (t->src[0]->g) qat_graph_elementwise(g, t, t->n, hardtanh_bwd_range);
}

static void dropout_fwd(qat_tensor *t, qat_graph *g)
{
    const float *x = t->src[0]->x;
    float *mask = t->state, p = t->fp[0];
    if (!g->training || p <= 0) {
        memcpy(t->x, x, t->n * sizeof(float));
        for (size_t i = 0; i < t->n; i++) mask[i] = 1;
        return;
    }
    float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < t->n; i++) {
        mask[i] = qat_rng_uniform(&g->rng) >= p ? scale : 0.0f;
        t->x[i] = x[i] * mask[i];
    }
}

static void dropout_bwd(qat_tensor *t, qat_graph *g)
{
    const float *mask = t->state;
    float *dx = t->src[0]->g;
    if (!dx) return;
    for (size_t i = 0; i < t->n; i++) dx[i] += t->g[i] * mask[i];
}

static size_t dropout_state(const qat_tensor *t, int max_batch)
{
    return sizeof(float) * t->n;
}

/* ---- shortcut ------------------------------------------------------------------ */
static void shortcut_fwd(qat_tensor *t, qat_graph *g)
{
    const qat_tensor *a = t->src[0], *b = t->src[1];
    memcpy(t->x, a->x, t->n * sizeof(float));
    if (t->ip[0] == 1 && a->n == b->n) {
        acc(t->x, b->x, t->n);
        return;
    }
    int N = t->shape[0], C = t->shape[1], H = t->shape[2], W = t->shape[3];
    int Cb = b->shape[1], Hb = b->shape[2], Wb = b->shape[3], s = t->ip[0];
    for (int n = 0; n < N; n++)
        for (int c = 0; c < Cb; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    t->x[(((size_t)n * C + c) * H + h) * W + w] +=
                        b->x[(((size_t)n * Cb + c) * Hb + h * s) * Wb + w * s];
}

static void shortcut_bwd(qat_tensor *t, qat_graph *g)
{
    qat_tensor *a = t->src[0], *b = t->src[1];
    if (a->g) acc(a->g, t->g, t->n);
    if (!b->g) return;
    if (t->ip[0] == 1 && a->n == b->n) {
        acc(b->g, t->g, t->n);
        return;
    }
    int N = t->shape[0], C = t->shape[1], H = t->shape[2], W = t->shape[3];
    int Cb = b->shape[1], Hb = b->shape[2], Wb = b->shape[3], s = t->ip[0];
    for (int n = 0; n < N; n++)
        for (int c = 0; c < Cb; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    b->g[(((size_t)n * Cb + c) * Hb + h * s) * Wb + w * s] +=
                        t->g[(((size_t)n * C + c) * H + h) * W + w];
}

/* ---- losses and reductions -------------------------------------------------------- */
static void softmax_ce_fwd(qat_tensor *t, qat_graph *g)
{
    const qat_tensor *z = t->src[0];
    const int32_t *y = t->user;
    int N = z->shape[0], K = z->shape[1];
    float *prob = t->state;
    double loss = 0;
    for (int n = 0; n < N; n++) {
        const float *r = z->x + (size_t)n * K;
        float *p = prob + (size_t)n * K;
        float mx = r[0];
        for (int k = 1; k < K; k++) mx = r[k] > mx ? r[k] : mx;
        double s = 0;
        for (int k = 0; k < K; k++) {
            p[k] = expf(r[k] - mx);
            s += p[k];
        }
        float inv = (float)(1.0 / s);
        for (int k = 0; k < K; k++) p[k] *= inv;
        QAT_ASSERT(y[n] >= 0 && y[n] < K);
        loss += log(s) + mx - r[y[n]];
    }
    t->x[0] = (float)(loss / N);
}

static void softmax_ce_bwd(qat_tensor *t, qat_graph *g)
{
    qat_tensor *z = t->src[0];
    if (!z->g) return;
    const int32_t *y = t->user;
    int N = z->shape[0], K = z->shape[1];
    const float *prob = t->state;
    float s = t->g[0] / (float)N;
    for (int n = 0; n < N; n++) {
        float *d = z->g + (size_t)n * K;
        const float *p = prob + (size_t)n * K;
        for (int k = 0; k < K; k++) d[k] += s * (p[k] - (k == y[n] ? 1.0f : 0.0f));
    }
}

static size_t softmax_ce_state(const qat_tensor *t, int max_batch)
{
    return sizeof(float) * t->src[0]->n;
}

static void mean_fwd(qat_tensor *t, qat_graph *g)
{
    const qat_tensor *x = t->src[0];
    double s = 0;
    for (size_t i = 0; i < x->n; i++) s += x->x[i];
    t->x[0] = (float)(s / (double)x->n);
}

static void mean_bwd(qat_tensor *t, qat_graph *g)
{
    qat_tensor *x = t->src[0];
    if (!x->g) return;
    float d = t->g[0] / (float)x->n;
    for (size_t i = 0; i < x->n; i++) x->g[i] += d;
}

static qat_status shape_custom(qat_tensor *t) { return shape_same(t); }

const qat_op_def qat_ops[] = {
    [QAT_OP_LEAF] = {.name = "leaf"},
    [QAT_OP_ADD] = {"add", 2, 2, shape_binary, NULL, NULL, add_fwd, add_bwd, 0},
    [QAT_OP_MUL] = {"mul", 2, 2, shape_binary, NULL, NULL, mul_fwd, mul_bwd, 0},
    [QAT_OP_BIAS] = {"bias", 2, 2, shape_bias, NULL, NULL, bias_fwd, bias_bwd, 0},
    [QAT_OP_LINEAR] = {"linear", 2, 3, shape_linear, NULL, NULL, linear_fwd, linear_bwd, 0},
    [QAT_OP_CONV2D] = {"conv2d", 2, 3, shape_conv2d, conv_state, conv_scratch, conv_fwd, conv_bwd, 0},
    [QAT_OP_MAXPOOL2D] = {"maxpool2d", 1, 1, shape_pool, maxpool_state, NULL, maxpool_fwd, maxpool_bwd, 0},
    [QAT_OP_AVGPOOL2D] = {"avgpool2d", 1, 1, shape_pool, NULL, NULL, avgpool_fwd, avgpool_bwd, 0},
    [QAT_OP_GAP] = {"global_avgpool", 1, 1, shape_gap, NULL, NULL, gap_fwd, gap_bwd, 0},
    [QAT_OP_BATCHNORM] = {"batchnorm", 4, 4, shape_batchnorm, bn_state, NULL, bn_fwd, bn_bwd, 0},
    [QAT_OP_RELU] = {"relu", 1, 1, shape_same, NULL, NULL, relu_fwd, relu_bwd, 0},
    [QAT_OP_HARDTANH] = {"hardtanh", 1, 1, shape_same, NULL, NULL, hardtanh_fwd, hardtanh_bwd, 0},
    [QAT_OP_DROPOUT] = {"dropout", 1, 1, shape_same, dropout_state, NULL, dropout_fwd, dropout_bwd, 0},
    [QAT_OP_FLATTEN] = {"flatten", 1, 1, shape_flatten, NULL, NULL, NULL, NULL, 1},
    [QAT_OP_SHORTCUT] = {"shortcut", 2, 2, shape_shortcut, NULL, NULL, shortcut_fwd, shortcut_bwd, 0},
    [QAT_OP_SOFTMAX_CE] = {"softmax_ce", 1, 1, shape_softmax_ce, softmax_ce_state, NULL, softmax_ce_fwd, softmax_ce_bwd, 0},
    [QAT_OP_MEAN] = {"mean", 1, 1, shape_scalar, NULL, NULL, mean_fwd, mean_bwd, 0},
    [QAT_OP_CUSTOM] = {"custom", 1, QAT_MAX_SRC, shape_custom, NULL, NULL, NULL, NULL, 0},
};

/* every op id has an entry: a missing one would leave a NULL name */
_Static_assert(sizeof qat_ops / sizeof qat_ops[0] == QAT_OP_COUNT, "op table and qat_op_id disagree");
