/* test_autograd.c: finite-difference gradient checks of every op on awkward
 * shapes (sizes 1, odd, non-square, stride 2, pad 2), plus the graph's
 * mechanics: accumulation, zeroing, partial batches, the op table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

#include "qat_test.h"

static const double TOL = 2e-2;

static qat_tensor *param(qat_graph *g, const char *name, int ndim, int a, int b, int c, int d)
{
    int s[4] = {a, b, c, d};
    return qat_graph_param(g, name, ndim, s, QAT_T_PARAM);
}

static void fill(qat_tensor *t, qat_rng *r, float lo, float hi)
{
    for (size_t i = 0; i < t->n; i++) t->x[i] = lo + (hi - lo) * qat_rng_uniform(r);
}

/* compiles g with out, fills every parameter uniformly in [lo, hi], checks */
static void (*after_compile)(qat_graph *g);

static void check(qat_graph *g, qat_tensor *out, const char *what, float lo, float hi, float eps)
{
    if (!out || qat_graph_compile(g, &out, 1) != QAT_OK) {
        CHECK(0, "%s: build failed: %s", what, qat_last_error());
        qat_graph_free(g);
        return;
    }
    qat_rng r;
    qat_rng_seed(&r, 7);
    qat_tensor *wrt[16];
    int n = 0;
    for (int i = 0; i < g->nall && n < 16; i++)
        if (g->all[i]->flags & QAT_T_PARAM) {
            fill(g->all[i], &r, lo, hi);
            wrt[n++] = g->all[i];
        }
    if (after_compile) after_compile(g);
    char rep[256];
    double err = qat_gradcheck(g, out, wrt, n, eps, 400, 1e-2, rep, sizeof rep);
    printf("%-34s worst rel err %.2e  %s\n", what, err, rep);
    CHECK(err < TOL, "%s: gradient mismatch: %s", what, rep);
    qat_graph_free(g);
}

static void test_elementwise(void)
{
    qat_graph g;
    qat_graph_init(&g, 1, 1, 1);
    qat_tensor *a = param(&g, "a", 2, 3, 5, 0, 0), *b = param(&g, "b", 2, 3, 5, 0, 0);
    check(&g, qat_add(&g, a, qat_mul(&g, a, b)), "add+mul (a used twice)", -1, 1, 1e-2f);

    qat_graph_init(&g, 1, 1, 1);
    a = param(&g, "x", 4, 2, 3, 4, 5);
    b = param(&g, "b", 1, 3, 0, 0, 0);
    check(&g, qat_bias(&g, a, b), "bias 4d", -1, 1, 1e-2f);

    qat_graph_init(&g, 1, 1, 1);
    a = param(&g, "x", 4, 3, 2, 5, 3);
    check(&g, qat_relu(&g, a), "relu", -1, 1, 1e-3f);

    qat_graph_init(&g, 1, 1, 1);
    a = param(&g, "x", 2, 7, 9, 0, 0);
    check(&g, qat_hardtanh(&g, a, -1, 1), "hardtanh", -2, 2, 1e-3f);

    qat_graph_init(&g, 1, 1, 1);
    a = param(&g, "x", 2, 5, 13, 0, 0);
    check(&g, qat_dropout(&g, a, 0.3f), "dropout p=0.3 (training)", -1, 1, 1e-2f);

    qat_graph_init(&g, 1, 1, 1);
    a = param(&g, "x", 4, 2, 3, 2, 2);
    check(&g, qat_mean(&g, qat_flatten(&g, a)), "flatten+mean", -1, 1, 1e-2f);
}

static void test_linear(void)
{
    qat_graph g;
    qat_graph_init(&g, 1, 1, 1);
    qat_tensor *x = param(&g, "x", 2, 3, 7, 0, 0), *w = param(&g, "w", 2, 5, 7, 0, 0),
               *b = param(&g, "b", 1, 5, 0, 0, 0);
    check(&g, qat_linear(&g, x, w, b), "linear 3x7 -> 5 +bias", -1, 1, 1e-2f);

    qat_graph_init(&g, 1, 1, 1);
    x = param(&g, "x", 4, 2, 3, 2, 2);
    w = param(&g, "w", 2, 4, 12, 0, 0);
    check(&g, qat_linear(&g, x, w, NULL), "linear on 4d input", -1, 1, 1e-2f);

    qat_graph_init(&g, 1, 1, 1);
    x = param(&g, "x", 2, 1, 1, 0, 0);
    w = param(&g, "w", 2, 1, 1, 0, 0);
    check(&g, qat_linear(&g, x, w, NULL), "linear 1x1", -1, 1, 1e-2f);
}

static void conv_case(int threads, int N, int C, int H, int W, int F, int KH, int KW, int sh, int sw, int ph,
                      int pw, int bias)
{
    qat_graph g;
    qat_graph_init(&g, 1, threads, 1);
    qat_tensor *x = param(&g, "x", 4, N, C, H, W), *w = param(&g, "w", 4, F, C, KH, KW);
    qat_tensor *b = bias ? param(&g, "b", 1, F, 0, 0, 0) : NULL;
    char what[96];
    snprintf(what, sizeof what, "conv %dx%dx%dx%d k%dx%d s%d,%d p%d,%d t%d", N, C, H, W, KH, KW, sh, sw, ph, pw,
             threads);
    check(&g, qat_conv2d(&g, x, w, b, sh, sw, ph, pw), what, -1, 1, 1e-2f);
}

/* The direct 3x3 kernels and im2col + sgemm give the same forward and
 * gradients (to summation order), at 1 and 2 threads. */
static void conv_paths_agree(int threads, int N, int C, int H, int W, int F)
{
    qat_graph g;
    qat_graph_init(&g, N, threads, 1);
    qat_tensor *x = param(&g, "x", 4, N, C, H, W), *w = param(&g, "w", 4, F, C, 3, 3), *b = param(&g, "b", 1, F, 0, 0, 0);
    qat_tensor *y = qat_conv2d(&g, x, w, b, 1, 1, 1, 1), *loss = y ? qat_mean(&g, qat_mul(&g, y, y)) : NULL;
    if (!loss || qat_graph_compile(&g, &loss, 1) != QAT_OK) {
        CHECK(0, "conv paths: build failed: %s", qat_last_error());
        qat_graph_free(&g);
        return;
    }
    qat_rng r;
    qat_rng_seed(&r, 3);
    fill(x, &r, -1, 1);
    fill(w, &r, -0.5f, 0.5f);
    fill(b, &r, -0.5f, 0.5f);
    const qat_tensor *out[4] = {y, x, w, b};
    float *keep[4];
    for (int run = 0; run < 2; run++) {
        qat_conv_direct = 1 - run;
        qat_graph_zero_grad(&g);
        qat_graph_forward(&g);
        qat_graph_backward(&g, loss);
        for (int k = 0; k < 4; k++) {
            const float *v = k ? out[k]->g : out[k]->x;
            if (run == 0) {
                keep[k] = malloc(out[k]->n * sizeof(float));
                memcpy(keep[k], v, out[k]->n * sizeof(float));
                continue;
            }
            double worst = 0, scale = 1e-30;
            for (size_t i = 0; i < out[k]->n; i++) scale = fmax(scale, fabs(v[i]));
            for (size_t i = 0; i < out[k]->n; i++) worst = fmax(worst, fabs(v[i] - keep[k][i]) / scale);
            CHECK(worst < 1e-5, "conv paths %dx%dx%dx%d->%d t%d: %s differs by %.3g (relative to its max)", N, C, H, W,
                  F, threads, k == 0 ? "y" : k == 1 ? "dx" : k == 2 ? "dw" : "db", worst);
            free(keep[k]);
        }
    }
    qat_conv_direct = 1;
    qat_graph_free(&g);
}

static void test_conv(void)
{
    conv_paths_agree(1, 3, 16, 32, 32, 16);
    conv_paths_agree(2, 5, 32, 16, 16, 64);
    conv_paths_agree(2, 4, 3, 8, 8, 32);
    conv_paths_agree(1, 2, 7, 9, 11, 5);
    conv_case(1, 2, 3, 7, 6, 4, 3, 2, 2, 2, 2, 2, 1);
    conv_case(1, 1, 1, 5, 5, 2, 1, 1, 1, 1, 0, 0, 0); /* 1x1: direct path */
    conv_case(2, 3, 2, 6, 5, 3, 3, 3, 1, 2, 0, 1, 1); /* threads */
    conv_case(2, 3, 4, 4, 4, 5, 1, 1, 1, 1, 0, 0, 1);
    conv_case(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0);
    conv_case(1, 2, 2, 3, 3, 1, 3, 3, 1, 1, 2, 2, 0);
    conv_case(1, 3, 2, 16, 17, 2, 3, 3, 1, 1, 1, 1, 1); /* a map of >= 256 columns: an image per GEMM */
    conv_case(2, 5, 3, 6, 6, 4, 1, 1, 2, 2, 0, 0, 0);   /* 1x1 stride 2 (projection shortcut), grouped */
    conv_case(2, 7, 2, 5, 5, 3, 3, 3, 2, 2, 1, 1, 1);   /* groups of 4 and a remainder of 3 */
    conv_case(2, 5, 3, 5, 4, 4, 3, 2, 1, 1, 1, 0, 1);   /* stride 1: dx as a conv of dy, grouped */
    conv_case(1, 3, 2, 6, 6, 3, 3, 3, 1, 1, 0, 0, 0);   /* ... unpadded (dy padded by 2) */
    conv_case(2, 3, 3, 8, 8, 5, 3, 3, 1, 1, 1, 1, 1);   /* 3x3 'same' on 64 pixels: the direct kernels */
    conv_case(1, 2, 17, 9, 7, 3, 3, 3, 1, 1, 1, 1, 0);  /* ... and on 63: im2col + sgemm */
    /* the columns built again in the backward instead of kept */
    size_t keep = qat_conv_keep_bytes;
    qat_conv_keep_bytes = 0;
    conv_case(2, 7, 2, 5, 5, 3, 3, 3, 2, 2, 1, 1, 1);
    conv_case(2, 5, 3, 5, 4, 4, 3, 2, 1, 1, 1, 0, 1);
    conv_case(1, 3, 2, 16, 17, 2, 3, 3, 1, 1, 1, 1, 1);
    conv_case(2, 3, 4, 4, 4, 5, 1, 1, 1, 1, 0, 0, 1);
    qat_conv_keep_bytes = keep;
}

/* max pooling has no derivative at ties: distinct values, spaced > 2 eps */
static void distinct(qat_graph *g)
{
    qat_tensor *x = qat_graph_find(g, "x");
    uint32_t perm[512];
    qat_rng r;
    qat_rng_seed(&r, 3);
    QAT_ASSERT(x->n <= 512);
    qat_rng_permutation(&r, perm, (uint32_t)x->n);
    for (size_t i = 0; i < x->n; i++) x->x[i] = -1.0f + 2.0f * (float)perm[i] / (float)x->n;
}

static void test_pool(void)
{
    qat_graph g;
    after_compile = distinct;
    qat_graph_init(&g, 1, 1, 1);
    qat_tensor *x = param(&g, "x", 4, 2, 3, 7, 7);
    check(&g, qat_maxpool2d(&g, x, 3, 2, 1), "maxpool k3 s2 p1 on 7x7", -1, 1, 1e-3f);
    qat_graph_init(&g, 1, 1, 1);
    x = param(&g, "x", 4, 1, 2, 7, 5);
    check(&g, qat_maxpool2d(&g, x, 2, 2, 0), "maxpool k2 s2 on 7x5", -1, 1, 1e-3f);
    after_compile = NULL;
    qat_graph_init(&g, 1, 1, 1);
    x = param(&g, "x", 4, 2, 3, 7, 7);
    check(&g, qat_avgpool2d(&g, x, 3, 2, 1), "avgpool k3 s2 p1", -1, 1, 1e-2f);
    qat_graph_init(&g, 1, 1, 1);
    x = param(&g, "x", 4, 3, 2, 5, 3);
    check(&g, qat_gap(&g, x), "global avgpool 5x3", -1, 1, 1e-2f);
}

/* eval mode reads the running statistics: give them sane values */
static int fused_expected;

static void bn_stats(qat_graph *g)
{
    qat_tensor *rm = qat_graph_find(g, "rm"), *rv = qat_graph_find(g, "rv");
    for (int i = 0; i < g->norder; i++)
        if (g->order[i]->op == QAT_OP_BATCHNORM)
            CHECK(g->order[i]->ip[0] == fused_expected, "relu fusion %d, expected %d", g->order[i]->ip[0],
                  fused_expected);
    qat_tensor *gm = qat_graph_find(g, "gamma"), *bt = qat_graph_find(g, "beta");
    for (size_t c = 0; c < rm->n; c++) {
        /* roughly half the outputs positive, so a fused ReLU passes some */
        float k = (float)(c % 7);
        gm->x[c] = 0.5f + 0.3f * k;
        bt->x[c] = 0.1f - 0.05f * k;
        rm->x[c] = 0.1f * k;
        rv->x[c] = 0.5f + 0.25f * k;
    }
}

static void test_batchnorm(int training, int four_d, int fuse_relu)
{
    qat_graph g;
    qat_graph_init(&g, 1, 2, 1);
    /* four_d: 0 [5, 3]; 1 [3, 4, 3, 2]; 2 [4, 300] (several channel blocks, one partial) */
    qat_tensor *x = four_d == 1 ? param(&g, "x", 4, 3, 4, 3, 2)
                                : four_d == 2 ? param(&g, "x", 2, 4, 300, 0, 0) : param(&g, "x", 2, 5, 3, 0, 0);
    int C = x->shape[1];
    qat_tensor *gm = param(&g, "gamma", 1, C, 0, 0, 0), *bt = param(&g, "beta", 1, C, 0, 0, 0);
    int s[1] = {C};
    qat_tensor *rm = qat_graph_param(&g, "rm", 1, s, QAT_T_BUFFER), *rv = qat_graph_param(&g, "rv", 1, s, QAT_T_BUFFER);
    qat_tensor *y = qat_batchnorm(&g, x, gm, bt, rm, rv, 1e-5f, 0.1f);
    /* a nonlinear probe (BN's output sums to a constant per channel); with
     * fuse_relu, a ReLU that compile folds into the BN pass */
    qat_tensor *r = fuse_relu ? qat_relu(&g, y) : y;
    qat_tensor *out = qat_mul(&g, r, r);
    qat_graph_set_training(&g, training);
    char what[64];
    snprintf(what, sizeof what, "batchnorm %s %s%s", four_d == 1 ? "4d" : four_d ? "2d wide" : "2d",
             training ? "train" : "eval",
             fuse_relu ? " +relu (fused)" : "");
    after_compile = bn_stats;
    fused_expected = fuse_relu;
    check(&g, out, what, -1, 1, fuse_relu ? 1e-3f : 1e-2f); /* small steps stay off the ReLU's kink */
    after_compile = NULL;
}

/* BN (+ReLU) + 2x2 max pool: compile folds the pool into the BN pass. The
 * fused graph must give the same outputs and gradients as the unfused one
 * (training BN's curvature makes finite differences too noisy to tell). */
static qat_graph bnp[2];
static qat_tensor *bnp_out[2];

static void build_bn_pool(qat_graph *g, int relu, int fuse, int training)
{
    qat_graph_init(g, 1, 2, 1);
    g->no_fusion = !fuse;
    qat_tensor *x = param(g, "x", 4, 3, 2, 7, 5); /* odd: the last row and column are in no window */
    qat_tensor *gm = param(g, "gamma", 1, 2, 0, 0, 0), *bt = param(g, "beta", 1, 2, 0, 0, 0);
    int s[1] = {2};
    qat_tensor *rm = qat_graph_param(g, "rm", 1, s, QAT_T_BUFFER), *rv = qat_graph_param(g, "rv", 1, s, QAT_T_BUFFER);
    qat_tensor *y = qat_batchnorm(g, x, gm, bt, rm, rv, 1e-5f, 0.1f);
    if (relu) y = qat_relu(g, y);
    qat_tensor *p = qat_maxpool2d(g, y, 2, 2, 0);
    qat_graph_set_training(g, training);
    CHECK(qat_graph_compile(g, &p, 1) == QAT_OK, "compile: %s", qat_last_error());
    int found = 0;
    for (int i = 0; i < g->norder; i++)
        if (g->order[i]->op == QAT_OP_BATCHNORM) found = g->order[i]->fused != NULL;
    CHECK(found == fuse, "pool fusion %d, expected %d", found, fuse);
    fused_expected = relu && fuse;
    bn_stats(g);
    distinct(g);
    qat_rng r;
    qat_rng_seed(&r, 9);
    fill(gm, &r, 0.5f, 1.5f);
    fill(bt, &r, -0.3f, 0.3f);
    bnp_out[fuse] = p;
}

static void test_bn_pool(int training, int relu)
{
    for (int f = 0; f < 2; f++) build_bn_pool(&bnp[f], relu, f, training);
    for (int f = 0; f < 2; f++) {
        qat_graph *g = &bnp[f];
        qat_graph_zero_grad(g);
        qat_graph_forward(g);
        qat_rng r;
        qat_rng_seed(&r, 4);
        for (size_t i = 0; i < bnp_out[f]->n; i++) bnp_out[f]->g[i] = qat_rng_uniform(&r) - 0.5f;
        qat_graph_backward_seeded(g);
    }
    const char *names[4] = {"x", "gamma", "beta", NULL};
    double worst = 0;
    for (size_t i = 0; i < bnp_out[0]->n; i++)
        worst = fmax(worst, fabs(bnp_out[0]->x[i] - bnp_out[1]->x[i]));
    for (int k = 0; names[k]; k++) {
        qat_tensor *a = qat_graph_find(&bnp[0], names[k]), *b = qat_graph_find(&bnp[1], names[k]);
        double mx = 0, d = 0;
        for (size_t i = 0; i < a->n; i++) {
            mx = fmax(mx, fabs(a->g[i]));
            d = fmax(d, fabs(a->g[i] - b->g[i]));
        }
        CHECK(mx > 0, "%s gradient all zero", names[k]);
        worst = fmax(worst, d / fmax(mx, 1e-30));
    }
    printf("batchnorm%s + maxpool 2x2 %s: fused vs unfused worst %.2e\n", relu ? " + relu" : "",
           training ? "train" : "eval", worst);
    CHECK(worst < 1e-5, "fused and unfused BN + pool differ by %.3g", worst);
    for (int f = 0; f < 2; f++) qat_graph_free(&bnp[f]);
}

static void test_shortcut(void)
{
    qat_graph g;
    qat_graph_init(&g, 1, 1, 1);
    qat_tensor *a = param(&g, "a", 4, 2, 4, 3, 3), *b = param(&g, "b", 4, 2, 2, 6, 6);
    check(&g, qat_shortcut(&g, a, b), "shortcut option A (s2, pad ch)", -1, 1, 1e-2f);
    qat_graph_init(&g, 1, 1, 1);
    a = param(&g, "a", 4, 2, 3, 3, 3);
    b = param(&g, "b", 4, 2, 3, 3, 3);
    check(&g, qat_shortcut(&g, a, b), "shortcut identity", -1, 1, 1e-2f);
}

static void test_softmax_ce(void)
{
    static const int32_t labels[4] = {0, 6, 3, 6};
    qat_graph g;
    qat_graph_init(&g, 1, 1, 1);
    qat_tensor *z = param(&g, "z", 2, 4, 7, 0, 0);
    check(&g, qat_softmax_ce(&g, z, labels), "softmax_ce 4x7", -3, 3, 1e-2f);

    /* exact value on a hand case: logits (0, ln 3) label 1 -> -log(3/4) */
    static const int32_t one[1] = {1};
    qat_graph_init(&g, 1, 1, 1);
    z = param(&g, "z", 2, 1, 2, 0, 0);
    qat_tensor *l = qat_softmax_ce(&g, z, one);
    qat_graph_compile(&g, &l, 1);
    z->x[0] = 0;
    z->x[1] = logf(3);
    qat_graph_forward(&g);
    CHECK(fabs(l->x[0] + log(0.75)) < 1e-6, "softmax_ce value %.9f", l->x[0]);
    /* huge logits stay finite */
    z->x[0] = 1e4f;
    z->x[1] = -1e4f;
    qat_graph_forward(&g);
    CHECK(isfinite(l->x[0]) && fabs(l->x[0] - 2e4) < 1, "softmax_ce stable: %g", l->x[0]);
    qat_graph_free(&g);
}

static void test_mechanics(void)
{
    /* op table: every entry named, sources declared */
    for (int i = 0; i < QAT_OP_COUNT; i++) CHECK(qat_ops[i].name != NULL, "op %d has no name", i);

    /* shape errors name the op and both shapes */
    qat_graph g;
    qat_graph_init(&g, 4, 1, 1);
    int xs[4] = {4, 3, 8, 8}, ws[4] = {5, 2, 3, 3};
    qat_tensor *x = qat_graph_input(&g, "x", 4, xs);
    qat_tensor *w = qat_graph_param(&g, "w", 4, ws, QAT_T_PARAM);
    qat_tensor *y = qat_conv2d(&g, x, w, NULL, 1, 1, 0, 0);
    CHECK(!y && strstr(qat_last_error(), "conv2d") && strstr(qat_last_error(), "[4, 3, 8, 8]"),
          "conv shape error message: %s", qat_last_error());
    CHECK(qat_relu(&g, y) == NULL, "NULL propagates");
    qat_graph_free(&g);

    /* partial batch and gradient zeroing */
    qat_graph_init(&g, 8, 1, 1);
    int s[2] = {8, 3}, wsz[2] = {2, 3};
    x = qat_graph_input(&g, "x", 2, s);
    w = qat_graph_param(&g, "w", 2, wsz, QAT_T_PARAM);
    qat_tensor *out = qat_mean(&g, qat_linear(&g, x, w, NULL));
    CHECK(qat_graph_compile(&g, &out, 1) == QAT_OK, "compile: %s", qat_last_error());
    for (int i = 0; i < 24; i++) x->x[i] = (float)i;
    for (int i = 0; i < 6; i++) w->x[i] = 1;
    qat_graph_set_batch(&g, 2);
    qat_graph_zero_grad(&g);
    qat_graph_forward(&g);
    /* rows 0,1: sums 3, 12 per output; mean over 2x2 outputs = 7.5 */
    CHECK(fabsf(out->x[0] - 7.5f) < 1e-6f, "partial batch mean %g", out->x[0]);
    qat_graph_backward(&g, out);
    /* dW[m][k] = sum over 2 rows x[n][k] / 4 */
    CHECK(fabsf(w->g[0] - 0.75f) < 1e-6f && fabsf(w->g[5] - 1.75f) < 1e-6f, "dW %g %g", w->g[0], w->g[5]);
    qat_graph_zero_grad(&g);
    CHECK(w->g[0] == 0, "zero_grad");
    qat_graph_free(&g);
}

/* Activation gradients share memory when their lives do not overlap: a
 * graph needs a fraction of the bytes, and every gradient is bit for bit
 * what it is with no sharing (conv, a tensor read twice by a ReLU and a
 * residual add, BN + ReLU + 2x2 pool fused, a flatten alias, two threads). */
static qat_tensor *sharing_graph(qat_graph *g, int share)
{
    qat_graph_init(g, 2, 2, 1);
    g->no_grad_sharing = !share;
    qat_tensor *x = param(g, "x", 4, 2, 3, 8, 8);
    qat_tensor *w1 = param(g, "w1", 4, 4, 3, 3, 3), *w2 = param(g, "w2", 4, 4, 4, 3, 3);
    qat_tensor *ga = param(g, "ga", 1, 4, 0, 0, 0), *be = param(g, "be", 1, 4, 0, 0, 0);
    int s4[1] = {4};
    qat_tensor *rm = qat_graph_param(g, "rm", 1, s4, QAT_T_BUFFER), *rv = qat_graph_param(g, "rv", 1, s4, QAT_T_BUFFER);
    qat_tensor *c1 = qat_conv2d(g, x, w1, NULL, 1, 1, 1, 1);
    qat_tensor *c2 = qat_conv2d(g, qat_relu(g, c1), w2, NULL, 1, 1, 1, 1);
    qat_tensor *bn = qat_relu(g, qat_batchnorm(g, qat_shortcut(g, c2, c1), ga, be, rm, rv, 1e-5f, 0.1f));
    qat_tensor *h = qat_linear(g, qat_flatten(g, qat_maxpool2d(g, bn, 2, 2, 0)), param(g, "w3", 2, 3, 64, 0, 0), NULL);
    qat_tensor *out = qat_mean(g, qat_linear(g, qat_relu(g, h), param(g, "w4", 2, 5, 3, 0, 0), NULL));
    if (!out || qat_graph_compile(g, &out, 1) != QAT_OK) return NULL;
    qat_rng r;
    qat_rng_seed(&r, 7);
    for (int i = 0; i < g->nall; i++)
        if (g->all[i]->flags & QAT_T_PARAM) fill(g->all[i], &r, -1, 1);
    qat_graph_zero_grad(g);
    qat_graph_forward(g);
    qat_graph_backward(g, out);
    return out;
}

static void test_grad_sharing(void)
{
    qat_graph a, b;
    qat_tensor *oa = sharing_graph(&a, 1), *ob = sharing_graph(&b, 0);
    CHECK(oa && ob, "grad sharing graph: %s", qat_last_error());
    if (oa && ob) {
        CHECK(a.act_grad_bytes < a.act_grad_unshared, "no gradient shares memory: %zu of %zu bytes", a.act_grad_bytes,
              a.act_grad_unshared);
        CHECK(b.act_grad_bytes == b.act_grad_unshared, "no_grad_sharing shared");
        CHECK(a.nparams == b.nparams && memcmp(a.grads, b.grads, a.nparams * sizeof(float)) == 0,
              "gradients differ with shared memory");
        float s = 0;
        for (size_t i = 0; i < a.nparams; i++) s += fabsf(a.grads[i]);
        CHECK(s > 0, "all gradients zero: the comparison proves nothing");
        printf("grad sharing: %zu of %zu bytes, %zu parameter gradients bit-identical\n", a.act_grad_bytes,
               a.act_grad_unshared, a.nparams);
    }
    qat_graph_free(&a);
    qat_graph_free(&b);
}

int main(void)
{
    test_mechanics();
    test_elementwise();
    test_grad_sharing();
    test_linear();
    test_conv();
    test_pool();
    for (int t = 0; t < 2; t++)
        for (int d = 0; d < 3; d++)
            for (int f = 0; f < 2; f++) test_batchnorm(t, d, f);
    for (int t = 0; t < 2; t++)
        for (int r = 0; r < 2; r++) test_bn_pool(t, r);
    test_shortcut();
    test_softmax_ce();
    printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
