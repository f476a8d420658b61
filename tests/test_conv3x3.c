/* test_conv3x3.c: the direct 3x3 convolution (autograd/conv3x3.h). Every
 * supported kernel table against plain double-precision loops written from
 * the definitions, on awkward sizes: the forward overwriting and
 * accumulating, the input gradient through the flipped pack (against the
 * gradient's own definition, not the flipped formula), the weight gradient
 * over one and several image groups. Pointers are off 64-byte alignment,
 * floats around every output must stay untouched, and a second call must
 * give the same bits. Then argument checks and QAT_CONV_ISA. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv3x3.h"

#include "qat_test.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rnd(void) { return qat_test_splitmix64(&rng_state); }
static float rnd_float(void) { return (float)((double)(rnd() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

#define PAD 19 /* sentinel floats before and after every output */
static const float sentinel = -12345.5f;

/* n floats with PAD sentinels on each side, one float off alignment */
typedef struct {
    float *base, *p;
    size_t n;
} buf;

static buf buf_make(size_t n, int fill)
{
    buf b = {malloc(sizeof(float) * (n + 2 * PAD + 1)), NULL, n};
    if (!b.base) {
        fprintf(stderr, "test_conv3x3: out of memory\n");
        exit(1);
    }
    b.p = b.base + 1 + PAD;
    for (size_t i = 0; i < n + 2 * PAD + 1; i++) b.base[i] = sentinel;
    if (fill == 1)
        for (size_t i = 0; i < n; i++) b.p[i] = rnd_float();
    else if (fill == 2)
        for (size_t i = 0; i < n; i++) b.p[i] = NAN; /* must be overwritten */
    return b;
}

static int buf_guards_ok(const buf *b)
{
    for (int i = 0; i < PAD; i++)
        if (b->p[-1 - i] != sentinel || b->p[b->n + (size_t)i] != sentinel) return 0;
    return 1;
}

static float *copy_of(const buf *b)
{
    float *c = malloc(sizeof(float) * (b->n ? b->n : 1));
    memcpy(c, b->p, sizeof(float) * b->n);
    return c;
}

/* x at (c, h, w) of a C x H x W map, 0 off the map */
static double at(const float *x, int H, int W, int c, int h, int w)
{
    return h < 0 || h >= H || w < 0 || w >= W ? 0.0 : (double)x[((size_t)c * H + h) * W + w];
}

/* the forward's definition: y[f][h][w] = sum w[f][c][kh][kw] x[c][h+kh-1][w+kw-1];
 * mag gets the sum of |terms| */
static void ref_fwd(const float *w, const float *x, int C, int H, int W, int F, double *y, double *mag)
{
    for (int f = 0; f < F; f++)
        for (int h = 0; h < H; h++)
            for (int q = 0; q < W; q++) {
                double s = 0, m = 0;
                for (int c = 0; c < C; c++)
                    for (int t = 0; t < 9; t++) {
                        double v = (double)w[((size_t)f * C + c) * 9 + t] *
                                   at(x, H, W, c, h + t / 3 - 1, q + t % 3 - 1);
                        s += v, m += fabs(v);
                    }
                y[((size_t)f * H + h) * W + q] = s, mag[((size_t)f * H + h) * W + q] = m;
            }
}

/* the input gradient's definition: dx[c][h][w] = sum over (f, kh, kw) of
 * w[f][c][kh][kw] dy[f][h'][w'] for the outputs (h', w') = (h-kh+1, w-kw+1)
 * that read x[c][h][w] */
static void ref_dx(const float *w, const float *dy, int C, int H, int W, int F, double *dx, double *mag)
{
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++)
            for (int q = 0; q < W; q++) {
                double s = 0, m = 0;
                for (int f = 0; f < F; f++)
                    for (int t = 0; t < 9; t++) {
                        double v = (double)w[((size_t)f * C + c) * 9 + t] *
                                   at(dy, H, W, f, h - t / 3 + 1, q - t % 3 + 1);
                        s += v, m += fabs(v);
                    }
                dx[((size_t)c * H + h) * W + q] = s, mag[((size_t)c * H + h) * W + q] = m;
            }
}

static void ref_dw(const float *x, const float *dy, int C, int H, int W, int F, int n, double *dw, double *mag)
{
    size_t hw = (size_t)H * W;
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++)
            for (int t = 0; t < 9; t++) {
                double s = 0, m = 0;
                for (int i = 0; i < n; i++) {
                    const float *xi = x + (size_t)i * C * hw, *g = dy + ((size_t)i * F + f) * hw;
                    for (int h = 0; h < H; h++)
                        for (int q = 0; q < W; q++) {
                            double v = (double)g[(size_t)h * W + q] * at(xi, H, W, c, h + t / 3 - 1, q + t % 3 - 1);
                            s += v, m += fabs(v);
                        }
                }
                dw[((size_t)f * C + c) * 9 + t] = s, mag[((size_t)f * C + c) * 9 + t] = m;
            }
}

/* got[i] against base[i] + want[i] (base NULL: 0), within 1e-5 of the sum
 * of |terms|; reports the first mismatch */
static int compare(const char *what, const qat_conv3x3_kernels *k, int C, int H, int W, int F, int n,
                   const float *got, const float *base, const double *want, const double *mag, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        double b = base ? (double)base[i] : 0.0, e = b + want[i], tol = 1e-5 * (mag[i] + fabs(b)) + 1e-30;
        if (!(fabs((double)got[i] - e) <= tol)) {
            CHECK(0, "%s %s C=%d H=%d W=%d F=%d n=%d: [%zu] got %.9g want %.9g (tol %.3g)", k->name, what, C, H, W, F,
                  n, i, (double)got[i], e, tol);
            return 0;
        }
    }
    return 1;
}

static long shapes_run;

static void test_shape(int C, int H, int W, int F, int n)
{
    size_t hw = (size_t)H * W, xs = (size_t)n * C * hw, ys = (size_t)n * F * hw, ws = (size_t)9 * C * F;
    buf x = buf_make(xs, 1), dy = buf_make(ys, 1), w = buf_make(ws, 1);
    buf wp = buf_make(qat_conv3x3_packed_floats(C, F), 0), wpt = buf_make(qat_conv3x3_packed_floats(F, C), 0);
    buf scratch = buf_make(qat_conv3x3_scratch_floats(C, H, W, F), 1);
    qat_conv3x3_pack(w.p, C, F, 0, wp.p);
    qat_conv3x3_pack(w.p, C, F, 1, wpt.p);
    CHECK(buf_guards_ok(&wp) && buf_guards_ok(&wpt), "pack C=%d F=%d writes outside its floats", C, F);

    double *yr = malloc(sizeof(double) * (ys ? ys : 1)), *ym = malloc(sizeof(double) * (ys ? ys : 1));
    double *dxr = malloc(sizeof(double) * (xs ? xs : 1)), *dxm = malloc(sizeof(double) * (xs ? xs : 1));
    double *dwr = malloc(sizeof(double) * ws), *dwm = malloc(sizeof(double) * ws);
    for (int i = 0; i < n; i++) {
        ref_fwd(w.p, x.p + (size_t)i * C * hw, C, H, W, F, yr + (size_t)i * F * hw, ym + (size_t)i * F * hw);
        ref_dx(w.p, dy.p + (size_t)i * F * hw, C, H, W, F, dxr + (size_t)i * C * hw, dxm + (size_t)i * C * hw);
    }
    ref_dw(x.p, dy.p, C, H, W, F, n, dwr, dwm);

    for (int isa = 0; isa < QAT_CONV3X3_ISA_COUNT; isa++) {
        const qat_conv3x3_kernels *k = qat_conv3x3_kernels_for((qat_conv3x3_isa)isa);
        if (!k) continue;
        /* forward, overwriting NaNs, twice for the bits */
        buf y = buf_make(ys, 2);
        k->fwd(wp.p, C, H, W, F, n, x.p, y.p, 0, scratch.p);
        float *y1 = copy_of(&y);
        compare("fwd", k, C, H, W, F, n, y.p, NULL, yr, ym, ys);
        k->fwd(wp.p, C, H, W, F, n, x.p, y.p, 0, scratch.p);
        CHECK(memcmp(y1, y.p, sizeof(float) * ys) == 0, "%s fwd C=%d H=%d W=%d F=%d n=%d: not the same bits twice",
              k->name, C, H, W, F, n);
        CHECK(buf_guards_ok(&y), "%s fwd C=%d H=%d W=%d F=%d n=%d: writes outside y", k->name, C, H, W, F, n);
        free(y1);
        /* forward, accumulating into random values */
        buf ya = buf_make(ys, 1);
        float *y0 = copy_of(&ya);
        k->fwd(wp.p, C, H, W, F, n, x.p, ya.p, 1, scratch.p);
        compare("fwd accumulate", k, C, H, W, F, n, ya.p, y0, yr, ym, ys);
        CHECK(buf_guards_ok(&ya), "%s fwd accumulate C=%d H=%d W=%d F=%d: writes outside y", k->name, C, H, W, F);
        /* input gradient: the flipped pack, F -> C, accumulating */
        buf dx = buf_make(xs, 1);
        float *dx0 = copy_of(&dx);
        k->fwd(wpt.p, F, H, W, C, n, dy.p, dx.p, 1, scratch.p);
        compare("dx", k, C, H, W, F, n, dx.p, dx0, dxr, dxm, xs);
        CHECK(buf_guards_ok(&dx), "%s dx C=%d H=%d W=%d F=%d: writes outside dx", k->name, C, H, W, F);
        /* weight gradient, accumulating, twice for the bits */
        buf dw = buf_make(ws, 1);
        float *dw0 = copy_of(&dw);
        k->dw(C, H, W, F, n, x.p, dy.p, dw.p, scratch.p);
        float *dw1 = copy_of(&dw);
        compare("dw", k, C, H, W, F, n, dw.p, dw0, dwr, dwm, ws);
        CHECK(buf_guards_ok(&dw), "%s dw C=%d H=%d W=%d F=%d: writes outside dw", k->name, C, H, W, F);
        memcpy(dw.p, dw0, sizeof(float) * ws);
        k->dw(C, H, W, F, n, x.p, dy.p, dw.p, scratch.p);
        CHECK(memcmp(dw1, dw.p, sizeof(float) * ws) == 0, "%s dw C=%d H=%d W=%d F=%d n=%d: not the same bits twice",
              k->name, C, H, W, F, n);
        free(y0), free(dx0), free(dw0), free(dw1);
        free(y.base), free(ya.base), free(dx.base), free(dw.base);
    }
    CHECK(buf_guards_ok(&scratch), "C=%d H=%d W=%d F=%d: a kernel writes outside its scratch", C, H, W, F);
    free(yr), free(ym), free(dxr), free(dxm), free(dwr), free(dwm);
    free(x.base), free(dy.base), free(w.base), free(wp.base), free(wpt.base), free(scratch.base);
    shapes_run++;
}

static const int sizes[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33};
static const int chans[] = {1, 3, 5, 16, 17, 32, 128};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))
#define NCHANS ((int)(sizeof chans / sizeof chans[0]))

int main(void)
{
    /* QAT_CONV_ISA picks the table the checked entry points use (first use) */
    setenv("QAT_CONV_ISA", "scalar", 1);
    CHECK(strcmp(qat_conv3x3_active()->name, "scalar") == 0, "QAT_CONV_ISA=scalar gave %s",
          qat_conv3x3_active()->name);
    for (int i = 0; i < QAT_CONV3X3_ISA_COUNT; i++) {
        const qat_conv3x3_kernels *k = qat_conv3x3_kernels_for((qat_conv3x3_isa)i);
        CHECK(!k == !qat_conv3x3_isa_supported((qat_conv3x3_isa)i), "isa %d: table and support disagree", i);
        CHECK(!k || (int)k->isa == i, "isa %d: table of isa %d", i, k ? (int)k->isa : -1);
        printf("conv3x3: %s %s\n", k ? k->name : "isa", k ? "tested" : "not supported here, skipped");
    }
    CHECK(qat_conv3x3_kernels_for(QAT_CONV3X3_ISA_SCALAR) != NULL, "no scalar table");

    /* the checked entry points: bad dimensions, n = 0, and one real call */
    float one = 1, out = 7, scratch[4096];
    CHECK(qat_conv3x3_fwd(&one, 0, 1, 1, 1, 1, &one, &out, 0, scratch) == QAT_ERR_ARG, "C = 0 accepted");
    CHECK(qat_conv3x3_dw(1, 1, -1, 1, 1, &one, &one, &out, scratch) == QAT_ERR_ARG, "W = -1 accepted");
    CHECK(qat_conv3x3_fwd(&one, 1, 1, 1, 1, -1, &one, &out, 0, scratch) == QAT_ERR_ARG, "n = -1 accepted");
    CHECK(qat_conv3x3_fwd(&one, 1, 1, 1, 1, 0, &one, &out, 0, scratch) == QAT_OK && out == 7, "n = 0 wrote");
    CHECK(qat_conv3x3_scratch_floats(1, 1, 1, 1) <= 4096, "scratch of a 1x1 map: %zu floats",
          qat_conv3x3_scratch_floats(1, 1, 1, 1));
    float w9[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, wp9[9 * QAT_CONV3X3_FBLOCK], x3[3] = {1, 10, 100}, y3[3];
    CHECK(qat_conv3x3_packed_floats(1, 1) == 9 * QAT_CONV3X3_FBLOCK, "packed floats of 1 -> 1: %zu",
          qat_conv3x3_packed_floats(1, 1));
    qat_conv3x3_pack(w9, 1, 1, 0, wp9);
    CHECK(qat_conv3x3_fwd(wp9, 1, 1, 3, 1, 1, x3, y3, 0, scratch) == QAT_OK, "1x3 map refused");
    /* the middle row of taps (4 5 6) over 1 10 100 */
    CHECK(y3[0] == 5 + 60 && y3[1] == 4 + 50 + 600 && y3[2] == 40 + 500, "1x3 map: %g %g %g", (double)y3[0],
          (double)y3[1], (double)y3[2]);

    /* every map size pair with few channels */
    for (int a = 0; a < NSIZES; a++)
        for (int b = 0; b < NSIZES; b++) {
            int C = chans[rnd() % 5], F = chans[rnd() % 5];
            test_shape(C, sizes[a], sizes[b], F, 1 + (int)(rnd() % 3));
        }
    /* every channel pair, on a map small enough for the references */
    for (int a = 0; a < NCHANS; a++)
        for (int b = 0; b < NCHANS; b++) {
            int C = chans[a], F = chans[b], H = sizes[rnd() % NSIZES], W = sizes[rnd() % NSIZES];
            while ((size_t)C * F * H * W > 600000) {
                if (H >= W) H = sizes[rnd() % 6];
                else W = sizes[rnd() % 6];
            }
            test_shape(C, H, W, F, 1 + (int)(rnd() % 2));
        }
    /* CIFAR layers; weight-gradient groups of 1 image (C 128 at 32 x 32)
     * and of many (small maps: 70 images are two or three groups) */
    test_shape(16, 32, 32, 16, 2);
    test_shape(32, 16, 16, 32, 2);
    test_shape(64, 8, 8, 64, 3);
    test_shape(3, 32, 32, 32, 2);
    test_shape(128, 8, 8, 128, 2);
    test_shape(128, 32, 32, 3, 3);
    test_shape(1, 8, 8, 5, 70);
    test_shape(16, 8, 8, 16, 70);
    test_shape(3, 9, 7, 17, 70);

    printf("conv3x3: %ld shapes\n", shapes_run);
    if (failures) {
        fprintf(stderr, "test_conv3x3: %d check(s) failed\n", failures);
        return 1;
    }
    return 0;
}
