/* test_minw_dst.c: MINW-Net's AQE (aqe-minw-net.txt, Sec. III) and DST's
 * power-of-two activations, discrete-state weights and Lloyd error
 * (dst-low-bit-strategy.txt, Sec. 3) checked against the papers' equations
 * with exact numbers worked out by hand, transition statistics within 3
 * sigma, Table 1 cell by cell, and the owned weights' optimizer step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "checkpoint.h"
#include "dst.h"
#include "graph.h"
#include "layer.h"
#include "netcfg.h"
#include "optim.h"
#include "quantizer.h"
#include "trainer.h"

#include "qat_test.h"
#include "qrig.h"

static float aqe_alpha(const qat_qnode *n) { return n->buf->x[2 * n->channels]; }

static void expect_freq(const char *what, long count, long N, double p)
{
    double f = (double)count / (double)N, sd = sqrt(p * (1 - p) / (double)N);
    CHECK(fabs(f - p) <= 3 * sd, "%s: frequency %.6f, want %.6f +- %.6f (3 sigma, N = %ld)", what, f, p, 3 * sd, N);
}

/* every y is level * scale of the node's codebook */
static void expect_on_codebook(const char *what, const qat_qnode *n, const float *y, size_t count)
{
    qat_levels lv;
    n->spec.q->levels(n, &lv);
    for (size_t i = 0; i < count; i++) {
        int on = 0;
        for (int k = 0; k < lv.ntable && !on; k++) on = (float)lv.table[k] * lv.scale[0] == y[i];
        if (!on) {
            CHECK(0, "%s: y[%zu] = %.9g is not level * scale %.9g of the codebook", what, i, y[i], lv.scale[0]);
            return;
        }
    }
}

static const float G8[8] = {1, 2, 3, 4, 5, 6, 7, 8};

/* ---- AQE, 1 bit: h = sign, sign(0) = sign(-0) = +1 ------------------------- */
static void test_aqe_sign(void)
{
    const float x[8] = {-2, -1, -0.5f, -0.0f, 0, 0.5f, 1, 1.5f};
    /* Eq. 6/18/19 forward alpha h + (1 - alpha) a; Eq. 18/19 backward
     * 2 alpha g 1{|a| <= 1} (|a| = 1 passes, 1.5 and 2 do not); g = 1..8 */
    struct {
        float a0;          /* aqe_alpha */
        long step;         /* schedule step of 100, reach 0.5 (linear): alpha = a0 + (1 - a0) step / 50 */
        float alpha;       /* the value it must store */
        float y[8], dx[8];
    } cs[] = {
        /* alpha 0.25: 0.25 h + 0.75 a: -0.25 - 1.5, -0.25 - 0.75, -0.25 - 0.375, 0.25 + 0.75 * -0,
         * 0.25, 0.25 + 0.375, 0.25 + 0.75, 0.25 + 1.125; dx = 0.5 g */
        {0.25f, 0, 0.25f, {-1.75f, -1, -0.625f, 0.25f, 0.25f, 0.625f, 1, 1.375f}, {0, 1, 1.5f, 2, 2.5f, 3, 3.5f, 0}},
        /* alpha 0.5 (the STE, Theorem 1): 0.5 h + 0.5 a: -0.5 - 1, -0.5 - 0.5, -0.5 - 0.25, 0.5, 0.5,
         * 0.5 + 0.25, 0.5 + 0.5, 0.5 + 0.75; dx = g */
        {0.5f, 0, 0.5f, {-1.5f, -1, -0.75f, 0.5f, 0.5f, 0.75f, 1, 1.25f}, {0, 2, 3, 4, 5, 6, 7, 0}},
        /* step 25: alpha = 0.5 + 0.5 * 25/50 = 0.75: 0.75 h + 0.25 a: -0.75 - 0.5, -0.75 - 0.25,
         * -0.75 - 0.125, 0.75, 0.75, 0.75 + 0.125, 0.75 + 0.25, 0.75 + 0.375; dx = 1.5 g */
        {0.5f, 25, 0.75f, {-1.25f, -1, -0.875f, 0.75f, 0.75f, 0.875f, 1, 1.125f}, {0, 3, 4.5f, 6, 7.5f, 9, 10.5f, 0}},
        /* step 50 = reach: alpha = 1: y = h; dx = 2 g */
        {0.5f, 50, 1.0f, {-1, -1, -1, 1, 1, 1, 1, 1}, {0, 4, 6, 8, 10, 12, 14, 0}},
    };
    for (int role = 1; role <= 2; role++)
        for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
            rig r;
            qat_qspec s = spec("aqe", 1);
            SET_OPT(&s, "aqe_alpha", cs[c].a0);
            SET_OPT(&s, "aqe_reach", 0.5f);
            if (!rig_build(&r, &s, (qat_qrole)role, 2, 4, 1)) continue;
            char what[64];
            snprintf(what, sizeof what, "aqe sign %s alpha %g", role == 1 ? "W" : "A", cs[c].alpha);
            rig_set(&r, x);
            CHECK(aqe_alpha(&r.n) == cs[c].a0, "%s: init stores alpha %g, want %g", what, aqe_alpha(&r.n), cs[c].a0);
            r.n.spec.q->schedule(&r.n, cs[c].step, 100);
            CHECK(aqe_alpha(&r.n) == cs[c].alpha, "%s: stored alpha %.9g", what, aqe_alpha(&r.n));
            rig_run(&r, 1, G8);
            expect(what, r.y->x, cs[c].y, 8);
            expect(what, r.x->g, cs[c].dx, 8);
            /* eval (Eq. 20): the pure h whatever alpha */
            rig_run(&r, 0, NULL);
            expect(what, r.y->x, (const float[]){-1, -1, -1, 1, 1, 1, 1, 1}, 8);
            expect_on_codebook(what, &r.n, r.y->x, 8);
            qat_levels lv;
            r.n.spec.q->levels(&r.n, &lv);
            CHECK(lv.table && lv.ntable == 2 && lv.table[0] == -1 && lv.table[1] == 1 && lv.nscale == 1 &&
                      lv.scale[0] == 1.0f && !lv.zero,
                  "%s: codebook {-1, 1} x 1", what);
            /* Algorithm 1 clips latent weights to [-1, 1]; activations are not clipped */
            const float w[4] = {-3, -0.5f, 1.0001f, 2};
            memcpy(r.x->x, w, sizeof w);
            qat_qnode_post_update(&r.n);
            if (role == 1) expect("aqe W clip", r.x->x, (const float[]){-1, -0.5f, 1, 1}, 4);
            else expect("aqe A no clip", r.x->x, w, 4);
            qat_graph_free(&r.g);
        }
}

/* ---- AQE, 2 bits: ternary h, 0 for |a| <= delta (Eq. 21) -------------------- */
static void test_aqe_ternary(void)
{
    rig r;
    qat_qspec s = spec("aqe", 2);
    SET_OPT(&s, "aqe_alpha", 0.5f);
    SET_OPT(&s, "aqe_reach", 0.5f);
    SET_OPT(&s, "aqe_delta", 0.5f);
    const float x[8] = {-1.5f, -0.75f, -0.5f, -0.25f, -0.0f, 0.5f, 0.625f, 2};
    /* h (delta 0.5; |a| = 0.5 exactly gives 0): -1, -1, 0, 0, 0, 0, 1, 1 */
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 4, 1)) {
        rig_set(&r, x);
        /* alpha 0.5: -0.5 - 0.75, -0.5 - 0.375, -0.25, -0.125, -0, 0.25, 0.5 + 0.3125, 0.5 + 1; dx = g */
        rig_run(&r, 1, G8);
        expect("aqe tern a=0.5 y", r.y->x, (const float[]){-1.25f, -0.875f, -0.25f, -0.125f, 0, 0.25f, 0.8125f, 1.5f},
               8);
        expect("aqe tern a=0.5 dx", r.x->g, (const float[]){0, 2, 3, 4, 5, 6, 7, 0}, 8);
        /* step 25: alpha 0.75: -0.75 - 0.375, -0.75 - 0.1875, -0.125, -0.0625, -0, 0.125,
         * 0.75 + 0.15625, 0.75 + 0.5; dx = 1.5 g */
        r.n.spec.q->schedule(&r.n, 25, 100);
        CHECK(aqe_alpha(&r.n) == 0.75f, "aqe tern alpha %.9g, want 0.75", aqe_alpha(&r.n));
        rig_run(&r, 1, G8);
        expect("aqe tern a=0.75 y", r.y->x,
               (const float[]){-1.125f, -0.9375f, -0.125f, -0.0625f, 0, 0.125f, 0.90625f, 1.25f}, 8);
        expect("aqe tern a=0.75 dx", r.x->g, (const float[]){0, 3, 4.5f, 6, 7.5f, 9, 10.5f, 0}, 8);
        rig_run(&r, 0, NULL);
        expect("aqe tern eval", r.y->x, (const float[]){-1, -1, 0, 0, 0, 0, 1, 1}, 8);
        expect_on_codebook("aqe tern eval", &r.n, r.y->x, 8);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.table && lv.ntable == 3 && lv.scale[0] == 1.0f, "aqe ternary codebook {-1, 0, 1} x 1");
        qat_graph_free(&r.g);
    }
    /* delta 0.25: 0.25 -> 0 (Eq. 21: <=), 0.375 -> 1, 0.2 -> 0, 1 -> 1 */
    SET_OPT(&s, "aqe_delta", 0.25f);
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 4, 1)) {
        rig_set(&r, (const float[]){0.25f, 0.375f, -0.25f, -0.375f, 0.2f, 1, -1, 0});
        rig_run(&r, 0, NULL);
        expect("aqe tern delta 0.25", r.y->x, (const float[]){0, 1, 0, -1, 0, 1, -1, 0}, 8);
        qat_graph_free(&r.g);
    }
}

/* ---- AQE, n >= 3 bits: powers of two (Eq. 22) ------------------------------- */
static void test_aqe_pow2(void)
{
    rig r;
    qat_qspec s = spec("aqe", 3);
    SET_OPT(&s, "aqe_alpha", 0.5f);
    /* 3 bits: q = 2^2 - 1 = 3, levels 0, +-2^-2, +-2^-1, +-2^0; midpoints 1/8, 3/8, 3/4. An input
     * exactly at a midpoint goes to the smaller magnitude (|a| <= threshold, as Eq. 21/22);
     * the next float above it goes up. */
    const float u1 = nextafterf(0.125f, 1), u2 = nextafterf(0.375f, 1), u3 = nextafterf(0.75f, 1);
    const float x[16] = {0, 0.125f, u1, 0.375f, u2, 0.75f, u3, 1, 5, -0.125f, -0.375f, -u2, -0.75f, -u3, -3, 0.2f};
    const float h[16] = {0, 0, 0.25f, 0.25f, 0.5f, 0.5f, 1, 1, 1, 0, -0.25f, -0.5f, -0.5f, -1, -1, 0.25f};
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 8, 1)) {
        rig_set(&r, x);
        rig_run(&r, 0, NULL);
        expect("aqe 3b eval", r.y->x, h, 16);
        expect_on_codebook("aqe 3b eval", &r.n, r.y->x, 16);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        /* levels {0, +-1, +-2, +-4} x 1/4 */
        int want[7] = {0, 1, -1, 2, -2, 4, -4}, same = lv.table && lv.ntable == 7;
        for (int k = 0; same && k < 7; k++) same = lv.table[k] == want[k];
        CHECK(same && lv.nscale == 1 && lv.scale[0] == 0.25f, "aqe 3b codebook {0,+-1,+-2,+-4} x 0.25 (scale %g)",
              lv.scale[0]);
        qat_graph_free(&r.g);
    }
    /* training, alpha 0.5: x = 0.0625, 0.125, 0.375, 0.625, 0.75, 0.875, 2, -0.3125
     * h = 0, 0, 0.25, 0.5, 0.5, 1, 1, -0.25
     * y = 0.5 h + 0.5 x = 0.03125, 0.0625, 0.125 + 0.1875, 0.25 + 0.3125, 0.25 + 0.375,
     *     0.5 + 0.4375, 0.5 + 1, -0.125 - 0.15625
     * dx = 2 * 0.5 * g * 1{|x| <= 1}: 2 is out */
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 4, 1)) {
        rig_set(&r, (const float[]){0.0625f, 0.125f, 0.375f, 0.625f, 0.75f, 0.875f, 2, -0.3125f});
        rig_run(&r, 1, G8);
        expect("aqe 3b train y", r.y->x,
               (const float[]){0.03125f, 0.0625f, 0.3125f, 0.5625f, 0.625f, 0.9375f, 1.5f, -0.28125f}, 8);
        expect("aqe 3b train dx", r.x->g, (const float[]){1, 2, 3, 4, 5, 6, 0, 8}, 8);
        rig_run(&r, 0, NULL);
        expect("aqe 3b eval 2", r.y->x, (const float[]){0, 0, 0.25f, 0.5f, 0.5f, 1, 1, -0.25f}, 8);
        qat_graph_free(&r.g);
    }
    /* 4 bits: q = 7, levels 0 and 2^-6 .. 2^0; 2^-7 (midpoint of 0 and 2^-6) -> 0, the float above
     * -> 2^-6, 3 * 2^-7 (midpoint of 2^-6, 2^-5) -> 2^-6, 0.75 -> 0.5, 0.8 -> 1, -0.1875 (midpoint of
     * 1/8, 1/4) -> -1/8, 0.01 in (2^-7, 3 * 2^-7] -> 2^-6, 100 -> 1 */
    s.bits = 4;
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 4, 1)) {
        rig_set(&r, (const float[]){0.0078125f, nextafterf(0.0078125f, 1), 0.0234375f, 0.75f, 0.8f, -0.1875f, 0.01f,
                                    100});
        rig_run(&r, 0, NULL);
        expect("aqe 4b eval", r.y->x, (const float[]){0, 0.015625f, 0.015625f, 0.5f, 1, -0.125f, 0.015625f, 1}, 8);
        expect_on_codebook("aqe 4b eval", &r.n, r.y->x, 8);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.ntable == 15 && lv.scale[0] == 0.015625f, "aqe 4b codebook: %d levels x %g, want 15 x 2^-6",
              lv.ntable, lv.scale[0]);
        qat_graph_free(&r.g);
    }
}

/* ---- AQE schedule: alpha from aqe_alpha to 1 at aqe_reach * total ----------- */
static void test_aqe_schedule(void)
{
    rig r;
    qat_qspec s = spec("aqe", 1);
    SET_OPT(&s, "aqe_reach", 0.5f); /* of 100 steps: 1 from step 50 on */
    struct {
        int shape;
        float a0;
        long step;
        double want;
    } cs[] = {
        /* linear: a0 + (1 - a0) * step / 50 */
        {QAT_AQE_LINEAR, 0.25f, 0, 0.25},
        {QAT_AQE_LINEAR, 0.25f, 10, 0.4},   /* 0.25 + 0.75 * 0.2 */
        {QAT_AQE_LINEAR, 0.25f, 25, 0.625}, /* 0.25 + 0.75 * 0.5 */
        {QAT_AQE_LINEAR, 0.25f, 40, 0.85},  /* 0.25 + 0.75 * 0.8 */
        {QAT_AQE_LINEAR, 0.25f, 49, 0.985}, /* 0.25 + 0.75 * 0.98 */
        {QAT_AQE_LINEAR, 0.25f, 50, 1},
        {QAT_AQE_LINEAR, 0.25f, 99, 1},
        {QAT_AQE_LINEAR, 0.25f, 500, 1}, /* past the end: stays 1 */
        /* exp: 1 - (1 - a0) 1e-3^(step/50), then 1 */
        {QAT_AQE_EXP, 0.5f, 0, 0.5},
        {QAT_AQE_EXP, 0.5f, 10, 0.874405678}, /* 1 - 0.5 * 10^-0.6 = 1 - 0.5 * 0.251188643 */
        {QAT_AQE_EXP, 0.5f, 25, 0.984188612}, /* 1 - 0.5 * 10^-1.5 = 1 - 0.5 * 0.0316227766 */
        {QAT_AQE_EXP, 0.5f, 50, 1},
        {QAT_AQE_EXP, 0.5f, 80, 1},
        /* step: a0 + (1 - a0) floor(4 step / 50) / 4 */
        {QAT_AQE_STEP, 0.5f, 0, 0.5},
        {QAT_AQE_STEP, 0.5f, 12, 0.5},    /* f = 0.24 */
        {QAT_AQE_STEP, 0.5f, 13, 0.625},  /* f = 0.26: one step */
        {QAT_AQE_STEP, 0.5f, 25, 0.75},   /* f = 0.5 exactly: two steps */
        {QAT_AQE_STEP, 0.5f, 37, 0.75},   /* f = 0.74 */
        {QAT_AQE_STEP, 0.5f, 38, 0.875},  /* f = 0.76 */
        {QAT_AQE_STEP, 0.5f, 49, 0.875},
        {QAT_AQE_STEP, 0.5f, 50, 1},
        {QAT_AQE_STEP, 0.5f, 100, 1},
    };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        SET_OPT(&s, "aqe_schedule", cs[c].shape);
        SET_OPT(&s, "aqe_alpha", cs[c].a0);
        if (!rig_build(&r, &s, QAT_QROLE_WEIGHT, 1, 2, 1)) continue;
        rig_set(&r, (const float[]){0.5f, -0.5f});
        r.n.spec.q->schedule(&r.n, cs[c].step, 100);
        float a = aqe_alpha(&r.n);
        CHECK(fabs(a - cs[c].want) <= 1e-6, "aqe schedule shape %d a0 %g step %ld: alpha %.9g, want %.9g",
              cs[c].shape, cs[c].a0, cs[c].step, a, cs[c].want);
        /* the forward uses the stored alpha: alpha * 1 + (1 - alpha) * 0.5 */
        rig_run(&r, 1, NULL);
        CHECK(r.y->x[0] == a + (1.0f - a) * 0.5f, "aqe schedule: forward %.9g does not use alpha %.9g", r.y->x[0], a);
        qat_graph_free(&r.g);
    }
    /* aqe_reach 0: alpha is 1 from the first step */
    SET_OPT(&s, "aqe_schedule", QAT_AQE_LINEAR);
    SET_OPT(&s, "aqe_alpha", 0.5f);
    SET_OPT(&s, "aqe_reach", 0);
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 1, 2, 1)) {
        rig_set(&r, (const float[]){0.5f, -0.5f});
        r.n.spec.q->schedule(&r.n, 0, 100);
        CHECK(aqe_alpha(&r.n) == 1.0f, "aqe reach 0: alpha %g, want 1", aqe_alpha(&r.n));
        qat_graph_free(&r.g);
    }
}

/* ---- AQE stochastic (Eq. 7): alpha sign(a - z) + (1 - alpha) a, z ~ U[-1, 1] -- */
static void test_aqe_stochastic(void)
{
    rig r;
    qat_qspec s = spec("aqe", 1);
    SET_OPT(&s, "rounding", 1);
    SET_OPT(&s, "aqe_alpha", 0.5f);
    enum { ROWS = 7, COLS = 40000 };
    /* P(+1) = P(z < a) = (a + 1) / 2 clamped to [0, 1] */
    const float a[ROWS] = {-1.5f, -1, -0.5f, 0, 0.25f, 1, 1.5f};
    const double p[ROWS] = {0, 0, 0.25, 0.5, 0.625, 1, 1};
    if (!rig_build(&r, &s, QAT_QROLE_ACT, ROWS, COLS, 11)) return;
    float *x = malloc(sizeof(float) * ROWS * COLS), *g = malloc(sizeof(float) * ROWS * COLS);
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++) x[i * COLS + j] = a[i], g[i * COLS + j] = 1;
    rig_set(&r, x);
    rig_run(&r, 1, g);
    for (int i = 0; i < ROWS; i++) {
        /* the two outputs: 0.5 * (+-1) + 0.5 * a, exact */
        float up = 0.5f + 0.5f * a[i], down = -0.5f + 0.5f * a[i];
        long plus = 0, other = 0;
        for (int j = 0; j < COLS; j++) {
            float y = r.y->x[i * COLS + j];
            if (y == up) plus++;
            else if (y != down) other++;
        }
        char what[64];
        snprintf(what, sizeof what, "aqe stochastic a = %g: P(+1)", a[i]);
        CHECK(other == 0, "aqe stochastic a = %g: %ld outputs are neither %g nor %g", a[i], other, up, down);
        expect_freq(what, plus, COLS, p[i]);
        /* backward 2 alpha g 1{|a| <= 1} = 1 inside, 0 for |a| = 1.5 */
        float want = fabsf(a[i]) <= 1 ? 1.0f : 0.0f;
        long bad = 0;
        for (int j = 0; j < COLS; j++) bad += r.x->g[i * COLS + j] != want;
        CHECK(bad == 0, "aqe stochastic a = %g: %ld gradients differ from %g", a[i], bad, want);
    }
    /* eval is the deterministic sign (Eq. 20) */
    rig_run(&r, 0, NULL);
    long bad = 0;
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++) bad += r.y->x[i * COLS + j] != (a[i] >= 0 ? 1.0f : -1.0f);
    CHECK(bad == 0, "aqe stochastic eval: %ld outputs are not sign(a)", bad);
    free(x);
    free(g);
    qat_graph_free(&r.g);
}

/* ---- DST activations (Eq. 2-7) --------------------------------------------- */
static void test_dst_act(void)
{
    rig r;
    qat_qspec s = spec("dst_act", 3);
    SET_OPT(&s, "dst_q2", 0.25f);
    /* 3 bits, q2 = 1/4: levels 0, 1/4, 1/2 (top q2 2^(3-2)); x1 = 1/8, x2 = x_{v-1} = 3/8 (Eq. 5).
     * Interval ends belong to the lower level (Eq. 4: 0 <= x <= x1, x1 < x <= x2).
     * Backward (Eq. 7): 0 on [0, 1/8], 1 on (1/8, 3/8], beyond 1 / (|x| - (3/8 - 1)) = 1 / (|x| + 5/8):
     * 0.5: 1/1.125 = 8/9; 100: 1/100.625; 1.375: 1/2; 3.375: 1/4; just above 3/8: 1/(1 + 2^-25) */
    const float u1 = nextafterf(0.125f, 1), u2 = nextafterf(0.375f, 1);
    const float x[16] = {0, 0.125f, u1, 0.25f, 0.375f, u2, 0.5f, 100, -0.0f, -0.125f, -u1, -0.375f, -u2, -1.375f,
                         -3.375f, 1.375f};
    const float y[16] = {0, 0, 0.25f, 0.25f, 0.25f, 0.5f, 0.5f, 0.5f, 0, 0, -0.25f, -0.25f, -0.5f, -0.5f, -0.5f, 0.5f};
    const double d[16] = {0, 0, 1, 1, 1, 1 / (1 + ldexp(1, -25)), 8.0 / 9.0, 1 / 100.625, 0, 0, 1, 1,
                          1 / (1 + ldexp(1, -25)), 0.5, 0.25, 0.5};
    float g[16];
    for (int i = 0; i < 16; i++) g[i] = 1;
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 8, 1)) {
        rig_set(&r, x);
        rig_run(&r, 1, g);
        expect("dst_act 3b q2 1/4 y", r.y->x, y, 16);
        expect_near("dst_act 3b q2 1/4 dx", r.x->g, d, 16, 1e-6);
        /* the dyadic ones exactly */
        CHECK(r.x->g[13] == 0.5f && r.x->g[14] == 0.25f && r.x->g[15] == 0.5f, "dst_act dx beyond: %g %g %g",
              r.x->g[13], r.x->g[14], r.x->g[15]);
        rig_run(&r, 0, NULL);
        expect("dst_act eval y", r.y->x, y, 16);
        expect_on_codebook("dst_act 3b", &r.n, r.y->x, 16);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.ntable == 5 && lv.scale[0] == 0.25f, "dst_act 3b codebook: %d levels x %g, want 5 x 0.25", lv.ntable,
              lv.scale[0]);
        qat_graph_free(&r.g);
    }
    /* dst_zero_grad = pass: the same, but 1 on the zero interval |x| <= 1/8
     * (x = 0, 1/8, -0, -1/8); the forward is unchanged */
    SET_OPT(&s, "dst_zero_grad", QAT_DST_GRAD_PASS);
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 8, 1)) {
        double dp[16];
        for (int i = 0; i < 16; i++) dp[i] = fabsf(x[i]) <= 0.125f ? 1 : d[i];
        rig_set(&r, x);
        rig_run(&r, 1, g);
        expect("dst_act pass y", r.y->x, y, 16);
        expect_near("dst_act pass dx", r.x->g, dp, 16, 1e-6);
        CHECK(r.x->g[0] == 1 && r.x->g[1] == 1 && r.x->g[9] == 1 && r.x->g[2] == 1, "dst_act pass dx: %g %g %g %g",
              r.x->g[0], r.x->g[1], r.x->g[9], r.x->g[2]);
        qat_graph_free(&r.g);
    }
    /* 4 bits, q2 = 1: levels 0, 1, 2, 4; thresholds 1/2, 3/2, 3 = x_{v-1}; beyond 1 / (|x| - 2).
     * 0.5 -> 0 (dx 0); 1.5 -> 1 (1); 3 -> 2 (1); above 3 -> 4 (~1); 4 -> 4 (1/2); -6 -> -4 (1/4);
     * -2.5 -> -2 (1); 1000 -> 4 (1/998); g = 1..8 */
    s = spec("dst_act", 4);
    SET_OPT(&s, "dst_q2", 1);
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 4, 1)) {
        rig_set(&r, (const float[]){0.5f, 1.5f, 3, nextafterf(3, 4), 4, -6, -2.5f, 1000});
        rig_run(&r, 1, G8);
        expect("dst_act 4b y", r.y->x, (const float[]){0, 1, 2, 4, 4, -4, -2, 4}, 8);
        expect_near("dst_act 4b dx", r.x->g,
                    (const double[]){0, 2, 3, 4 / (1 + ldexp(1, -22)), 5 * 0.5, 6 * 0.25, 7, 8.0 / 998}, 8, 1e-6);
        qat_graph_free(&r.g);
    }
    /* 2 bits, q2 = 1/2: levels 0, 1/2; x1 = x_{v-1} = 1/4: no unit interval.
     * 0.25 -> 0 (0); 0.75 -> 0.5, dx 1 / (0.75 + 0.75) = 2/3; 1.25 -> 0.5, dx 1/2; -2.25 -> -0.5, dx 1 / (2.25 + 0.75) = 1/3 */
    s = spec("dst_act", 2);
    SET_OPT(&s, "dst_q2", 0.5f);
    if (rig_build(&r, &s, QAT_QROLE_ACT, 1, 4, 1)) {
        rig_set(&r, (const float[]){0.25f, 0.75f, 1.25f, -2.25f});
        rig_run(&r, 1, (const float[]){1, 1, 1, 1});
        expect("dst_act 2b y", r.y->x, (const float[]){0, 0.5f, 0.5f, -0.5f}, 4);
        expect_near("dst_act 2b dx", r.x->g, (const double[]){0, 2.0 / 3, 0.5, 1.0 / 3}, 4, 1e-6);
        qat_graph_free(&r.g);
    }
}

/* ---- DST weights: integer states, Eq. 9-15 ---------------------------------- */
typedef struct {
    qat_graph g;
    qat_qnode n;
    qat_tensor *w, *y;
    float *delta;
    int ok;
} dst_rig;

static int dst_build(dst_rig *r, int p, int rows, int cols)
{
    memset(r, 0, sizeof *r);
    qat_graph_init(&r->g, 1, 1, 7);
    qat_qspec s;
    qat_qspec_default(&s);
    s.q = qat_quantizer_find("dst");
    SET_OPT(&s, "dst_p", p);
    SET_OPT(&s, "dst_th", 0.5f);
    int shape[2] = {rows, cols};
    r->w = qat_quantize_owned(&r->g, &r->n, &s, 2, shape, "w");
    r->y = r->w ? qat_mean(&r->g, r->w) : NULL;
    r->ok = r->y && qat_graph_compile(&r->g, &r->y, 1) == QAT_OK;
    CHECK(r->ok, "dst build failed: %s", qat_last_error());
    r->delta = malloc(sizeof(float) * (size_t)rows * cols);
    if (!r->ok) {
        qat_qnode_free(&r->n);
        qat_graph_free(&r->g);
        free(r->delta);
    }
    return r->ok;
}

static void dst_free(dst_rig *r)
{
    qat_qnode_free(&r->n);
    qat_graph_free(&r->g);
    free(r->delta);
}

/* all states s0, one update with the same delta; hist[s + 8] counts the results */
static void dst_step(dst_rig *r, int s0, float delta, qat_rng *rng, long hist[17])
{
    size_t N = r->w->n;
    for (size_t i = 0; i < N; i++) qat_dst_states(&r->n)[i] = (int8_t)s0, r->delta[i] = delta;
    r->n.spec.q->update(&r->n, r->delta, rng);
    memset(hist, 0, 17 * sizeof(long));
    for (size_t i = 0; i < N; i++) {
        int s = qat_dst_states(&r->n)[i];
        if (s >= -8 && s <= 8) hist[s + 8]++;
    }
}

/* one transition case: from s0 by delta, P(ending at to[k]) = p[k], nothing else */
static void dst_case(dst_rig *r, qat_rng *rng, int s0, float delta, int nto, const int *to, const double *p)
{
    long hist[17], seen = 0, N = (long)r->w->n;
    dst_step(r, s0, delta, rng, hist);
    char what[96];
    for (int k = 0; k < nto; k++) {
        snprintf(what, sizeof what, "dst p %d: state %d + delta %g -> %d", (int)qat_qspec_get(&r->n.spec, "dst_p"), s0, delta, to[k]);
        expect_freq(what, hist[to[k] + 8], N, p[k]);
        seen += hist[to[k] + 8];
    }
    CHECK(seen == N, "dst p %d: state %d + delta %g: %ld of %ld states end elsewhere", (int)qat_qspec_get(&r->n.spec, "dst_p"), s0, delta,
          N - seen, N);
}

static void test_dst_storage(void)
{
    dst_rig r;
    if (!dst_build(&r, -2, 2, 8)) return;
    /* integer storage, no float copy in the parameter block */
    _Static_assert(_Generic(qat_dst_states(&r.n), int8_t *: 1, default: 0), "states are int8");
    CHECK(qat_dst_states(&r.n) != NULL, "dst: no states");
    CHECK(r.g.nparams == 0, "dst: the graph holds %zu parameter floats, want 0", r.g.nparams);
    CHECK(!(r.w->flags & QAT_T_PARAM), "dst: the weight view is a parameter");
    for (int i = 0; i < r.g.nall; i++)
        CHECK(!(r.g.all[i]->flags & QAT_T_PARAM), "dst: tensor %s is a parameter", r.g.all[i]->name);
    /* init from float values (Eq. 9, rounded stochastically): multiples of L = 1/4 map exactly
     * (floor(k + u) = k), |w| > 1 clips to +-4, 0.75 -> 3 is undefined -> 2 or 4 */
    const float w0[16] = {0, 0.25f, 0.5f, 1, -0.25f, -0.5f, -1, 2, -3, 0.75f, -0.75f, 0, 0, 0.25f, 1, -1};
    const int s0[16] = {0, 1, 2, 4, -1, -2, -4, 4, -4, 99, -99, 0, 0, 1, 4, -4};
    memcpy(r.w->x, w0, sizeof w0);
    qat_rng rng;
    qat_rng_seed(&rng, 3);
    qat_qnode_init(&r.n, &rng);
    for (int i = 0; i < 16; i++) {
        int s = qat_dst_states(&r.n)[i];
        if (s0[i] == 99) CHECK(s == 2 || s == 4, "dst init 0.75: state %d, want 2 or 4", s);
        else if (s0[i] == -99) CHECK(s == -2 || s == -4, "dst init -0.75: state %d, want -2 or -4", s);
        else CHECK(s == s0[i], "dst init w %g: state %d, want %d", w0[i], s, s0[i]);
    }
    /* forward: w = state * L exactly (Eq. 11) */
    int8_t st[16] = {0, 1, -1, 2, -2, 4, -4, 0, 1, 1, 2, 4, -4, -2, -1, 0};
    const float wv[16] = {0, 0.25f, -0.25f, 0.5f, -0.5f, 1, -1, 0, 0.25f, 0.25f, 0.5f, 1, -1, -0.5f, -0.25f, 0};
    memcpy(qat_dst_states(&r.n), st, sizeof st);
    qat_graph_set_training(&r.g, 1);
    qat_graph_forward(&r.g);
    expect("dst forward", r.w->x, wv, 16);
    /* the consumer sees the view: sum = (0 + .25 - .25 + .5 - .5 + 1 - 1 + 0)
     * + (.25 + .25 + .5 + 1 - 1 - .5 - .25 + 0) = 0 + 0.25; mean 0.25 / 16 = 1/64 */
    CHECK(r.y->x[0] == 0.015625f, "dst consumer sees %g, want 1/64", r.y->x[0]);
    qat_levels lv;
    r.n.spec.q->levels(&r.n, &lv);
    CHECK(lv.ntable == 7 && lv.scale[0] == 0.25f, "dst codebook: %d levels x %g, want 7 x 1/4", lv.ntable,
          lv.scale[0]);
    expect_on_codebook("dst forward", &r.n, r.w->x, 16);
    dst_free(&r);

    /* p = -3: L = 1/8, states 0, +-1, +-2, +-4, +-8 */
    if (!dst_build(&r, -3, 1, 8)) return;
    int8_t s3[8] = {0, 1, 2, 4, 8, -8, -4, -1};
    memcpy(qat_dst_states(&r.n), s3, sizeof s3);
    qat_graph_forward(&r.g);
    expect("dst p -3 forward", r.w->x, (const float[]){0, 0.125f, 0.25f, 0.5f, 1, -1, -0.5f, -0.125f}, 8);
    r.n.spec.q->levels(&r.n, &lv);
    CHECK(lv.ntable == 9 && lv.scale[0] == 0.125f, "dst p -3 codebook: %d levels x %g, want 9 x 1/8", lv.ntable,
          lv.scale[0]);
    dst_free(&r);

    /* initial stochastic rounding is unbiased: w = 0.1 = 0.4 L -> state 1 w.p. 0.4, else 0 */
    if (!dst_build(&r, -2, 400, 500)) return;
    for (size_t i = 0; i < r.w->n; i++) r.w->x[i] = 0.1f;
    qat_qnode_init(&r.n, &rng);
    long ones = 0, other = 0;
    for (size_t i = 0; i < r.w->n; i++) ones += qat_dst_states(&r.n)[i] == 1, other += qat_dst_states(&r.n)[i] != 0 && qat_dst_states(&r.n)[i] != 1;
    CHECK(other == 0, "dst init 0.1: %ld states outside {0, 1}", other);
    expect_freq("dst init 0.1: P(state 1)", ones, (long)r.w->n, 0.4);
    dst_free(&r);
}

static void test_dst_transitions(void)
{
    dst_rig r;
    if (!dst_build(&r, -2, 400, 500)) return; /* 200000 states */
    qat_rng rng;
    qat_rng_seed(&rng, 99);
    /* delta 0.1, L = 1/4: k = sign * floor(0.4) = 0, v = 0.1, p1 = tanh(0.5 * |0.1 / 0.25|) = tanh(0.2) (Eq. 12-14) */
    const double p01 = tanh(0.2), p03 = tanh(0.1);
    dst_case(&r, &rng, 0, 0.1f, 2, (const int[]){1, 0}, (const double[]){p01, 1 - p01});
    dst_case(&r, &rng, 1, 0.1f, 2, (const int[]){2, 1}, (const double[]){p01, 1 - p01});
    dst_case(&r, &rng, 0, -0.1f, 2, (const int[]){-1, 0}, (const double[]){p01, 1 - p01});
    dst_case(&r, &rng, -1, -0.1f, 2, (const int[]){-2, -1}, (const double[]){p01, 1 - p01});
    /* against the current: from 2 by -0.1 -> 1 (p1) or stays 2 */
    dst_case(&r, &rng, 2, -0.1f, 2, (const int[]){1, 2}, (const double[]){p01, 1 - p01});
    /* delta 0.3: k = floor(1.2) = 1, v = 0.3 - 0.25 = 0.05, p1 = tanh(0.5 * 0.2) = tanh(0.1):
     * +1 state w.p. 1 - p1, +2 w.p. p1 */
    dst_case(&r, &rng, 0, 0.3f, 2, (const int[]){1, 2}, (const double[]){1 - p03, p03});
    dst_case(&r, &rng, 0, -0.3f, 2, (const int[]){-1, -2}, (const double[]){1 - p03, p03});
    /* from 1 by 0.3: 2 w.p. 1 - p1, 3 (undefined, Eq. 10) w.p. p1 -> 2 or 4 half each:
     * P(4) = p1 / 2, P(2) = 1 - p1 / 2 */
    dst_case(&r, &rng, 1, 0.3f, 2, (const int[]){2, 4}, (const double[]){1 - p03 / 2, p03 / 2});
    dst_case(&r, &rng, -1, -0.3f, 2, (const int[]){-2, -4}, (const double[]){1 - p03 / 2, p03 / 2});
    /* from 2 by 0.1: 3 w.p. p1 -> P(4) = p1 / 2 */
    dst_case(&r, &rng, 2, 0.1f, 2, (const int[]){2, 4}, (const double[]){1 - p01 / 2, p01 / 2});
    /* the undefined state itself (Eq. 10): 2 + 0.25 (k = 1, v = 0, p1 = tanh(0) = 0) lands on 3 every
     * time and ends on 2 or 4 with probability 1/2 each, never on 3 */
    dst_case(&r, &rng, 2, 0.25f, 2, (const int[]){2, 4}, (const double[]){0.5, 0.5});
    dst_case(&r, &rng, -2, -0.25f, 2, (const int[]){-2, -4}, (const double[]){0.5, 0.5});
    dst_case(&r, &rng, 4, -0.25f, 2, (const int[]){2, 4}, (const double[]){0.5, 0.5});
    dst_case(&r, &rng, 1, 0.5f, 2, (const int[]){2, 4}, (const double[]){0.5, 0.5});
    /* exact multiples of L move deterministically: 0 + 0.5 -> 2, 1 + 0.75 -> 4, -4 + 0.75 -> -1,
     * 2 - 0.5 -> 0, 4 - 1.25 -> -1 */
    dst_case(&r, &rng, 0, 0.5f, 1, (const int[]){2}, (const double[]){1});
    dst_case(&r, &rng, 1, 0.75f, 1, (const int[]){4}, (const double[]){1});
    dst_case(&r, &rng, -4, 0.75f, 1, (const int[]){-1}, (const double[]){1});
    dst_case(&r, &rng, 2, -0.5f, 1, (const int[]){0}, (const double[]){1});
    dst_case(&r, &rng, 4, -1.25f, 1, (const int[]){-1}, (const double[]){1});
    /* clipping at +-4 (weights in [-1, 1]) */
    dst_case(&r, &rng, 4, 0.25f, 1, (const int[]){4}, (const double[]){1});
    dst_case(&r, &rng, 4, 1.0f, 1, (const int[]){4}, (const double[]){1});
    dst_case(&r, &rng, 0, 100.0f, 1, (const int[]){4}, (const double[]){1});
    dst_case(&r, &rng, -4, -0.25f, 1, (const int[]){-4}, (const double[]){1});
    dst_case(&r, &rng, 1, -100.0f, 1, (const int[]){-4}, (const double[]){1});
    /* from 4 by 0.1: 5 (p1) clips back to 4 */
    dst_case(&r, &rng, 4, 0.1f, 1, (const int[]){4}, (const double[]){1});
    /* delta 0 (and -0) leaves every state alone */
    for (int s0 = -4; s0 <= 4; s0++) {
        if (s0 == 3 || s0 == -3) continue;
        dst_case(&r, &rng, s0, 0.0f, 1, (const int[]){s0}, (const double[]){1});
        dst_case(&r, &rng, s0, -0.0f, 1, (const int[]){s0}, (const double[]){1});
    }
    /* every state defined after mixed deltas */
    for (size_t i = 0; i < r.w->n; i++) {
        qat_dst_states(&r.n)[i] = (int8_t)((int)(i % 9) - 4);
        if (qat_dst_states(&r.n)[i] == 3 || qat_dst_states(&r.n)[i] == -3) qat_dst_states(&r.n)[i] = 0;
        r.delta[i] = 0.6f * (qat_rng_uniform(&rng) - 0.5f);
    }
    r.n.spec.q->update(&r.n, r.delta, &rng);
    long bad = 0;
    for (size_t i = 0; i < r.w->n; i++) {
        int s = qat_dst_states(&r.n)[i];
        bad += !(s == 0 || s == 1 || s == -1 || s == 2 || s == -2 || s == 4 || s == -4);
    }
    CHECK(bad == 0, "dst p -2: %ld states outside {0, +-1, +-2, +-4}", bad);
    /* same seed: identical; different seed: different */
    int8_t *a = malloc(r.w->n), *b = malloc(r.w->n);
    for (int run = 0; run < 3; run++) {
        qat_rng_seed(&rng, run == 2 ? 1235 : 1234);
        for (size_t i = 0; i < r.w->n; i++) qat_dst_states(&r.n)[i] = 0, r.delta[i] = 0.1f;
        r.n.spec.q->update(&r.n, r.delta, &rng);
        memcpy(run == 0 ? a : b, qat_dst_states(&r.n), r.w->n);
        if (run == 1) CHECK(memcmp(a, b, r.w->n) == 0, "dst: the same seed gives different transitions");
        if (run == 2) CHECK(memcmp(a, b, r.w->n) != 0, "dst: different seeds give the same transitions");
    }
    free(a);
    free(b);
    dst_free(&r);

    /* p = -3: L = 1/8, states up to 8; undefined 3 -> 2 | 4, 5, 6, 7 -> 4 | 8 half each */
    if (!dst_build(&r, -3, 400, 500)) return;
    dst_case(&r, &rng, 2, 0.125f, 2, (const int[]){2, 4}, (const double[]){0.5, 0.5});
    dst_case(&r, &rng, 4, 0.125f, 2, (const int[]){4, 8}, (const double[]){0.5, 0.5});
    dst_case(&r, &rng, 4, 0.25f, 2, (const int[]){4, 8}, (const double[]){0.5, 0.5});
    dst_case(&r, &rng, 4, 0.375f, 2, (const int[]){4, 8}, (const double[]){0.5, 0.5});
    dst_case(&r, &rng, -4, -0.25f, 2, (const int[]){-4, -8}, (const double[]){0.5, 0.5});
    dst_case(&r, &rng, 8, -0.125f, 2, (const int[]){4, 8}, (const double[]){0.5, 0.5});
    dst_case(&r, &rng, 8, 0.125f, 1, (const int[]){8}, (const double[]){1});
    dst_case(&r, &rng, 0, 0.5f, 1, (const int[]){4}, (const double[]){1});
    dst_case(&r, &rng, 0, -5.0f, 1, (const int[]){-8}, (const double[]){1});
    /* delta 0.05 with L = 1/8: k = floor(0.4) = 0, p1 = tanh(0.5 * 0.4) = tanh(0.2) again;
     * from 4: 5 w.p. p1 -> 8 w.p. p1 / 2 */
    dst_case(&r, &rng, 4, 0.05f, 2, (const int[]){4, 8}, (const double[]){1 - p01 / 2, p01 / 2});
    dst_free(&r);
}

/* ---- Table 1: Lloyd error of the power-of-two quantizer --------------------- */
static void test_lloyd(void)
{
    static const double q2s[5] = {0.0625, 0.125, 0.25, 0.5, 1};
    /* the paper's Table 1, x 1e4, rows n = 3..8 */
    static const long table1[6][5] = {
        {4078, 3298, 2106, 825, 458}, {3298, 2103, 795, 239, 443}, {2102, 791, 209, 223, 443},
        {790, 205, 193, 223, 443},    {204, 189, 193, 223, 443},   {189, 189, 193, 223, 443},
    };
    int cells = 0;
    for (int n = 3; n <= 8; n++)
        for (int j = 0; j < 5; j++) {
            double e = qat_dst_lloyd_error(n, q2s[j]);
            long got = lrint(e * 1e4);
            CHECK(got == table1[n - 3][j], "Table 1 n = %d q2 = %g: error %.6f, printed 0.%04ld", n, q2s[j], e,
                  table1[n - 3][j]);
            cells += got == table1[n - 3][j];
        }
    printf("Table 1: %d of 30 cells reproduced\n", cells);
    double q2 = 0, e = qat_dst_lloyd_best(7, &q2);
    CHECK(lrint(e * 1e4) == 189, "lloyd best n = 7: error %.6f (q2 %.6f), want 0.0189", e, q2);
    /* the best is no worse than any printed cell of that row */
    CHECK(e <= qat_dst_lloyd_error(7, 0.125) + 1e-12 && q2 > 0, "lloyd best n = 7: %.6f at %g", e, q2);
    printf("lloyd best n = 7: q2 = %.5f, error = %.5f\n", q2, e);
}

/* ---- owned weights and the optimizer ---------------------------------------- */
static void test_dst_optimizer(void)
{
    static const char text[] = "[net]\nbatch = 2\nseed = 5\n"
                               "[quant]\nweight = dst\ndst_p = -2\n"
                               "[flatten]\n[linear]\noutput = 10\nbias = 1\n";
    qat_cfg cfg;
    qat_net_cfg net;
    qat_layer *layers = NULL;
    int nl = 0;
    qat_model m;
    memset(&m, 0, sizeof m);
    qat_status st = qat_cfg_parse_text(&cfg, "t.cfg", text, strlen(text));
    if (st == QAT_OK) st = qat_netcfg_read(&cfg, &net, &layers, &nl);
    if (st == QAT_OK) st = qat_model_build(&m, layers, nl, net.c, net.h, net.w, net.batch, 1, net.seed);
    CHECK(st == QAT_OK, "dst model: %s", qat_last_error());
    if (st != QAT_OK) {
        qat_cfg_free(&cfg);
        return;
    }
    qat_qnode *q[4];
    int nq = qat_model_owned(&m, q, 4);
    CHECK(nq == 1, "dst model: %d owned nodes, want 1", nq);
    qat_optimizer o;
    qat_optim_cfg oc;
    qat_optim_cfg_default(&oc, QAT_OPTIM_ADAM);
    st = nq == 1 ? qat_optimizer_init(&o, &m, &oc) : QAT_ERR_CONFIG;
    if (st == QAT_OK) {
        qat_tensor *w = q[0]->out;
        size_t n = w->n;
        /* 784 x 10 owned weights with their own Adam state; the parameter block has only the bias */
        CHECK(n == 7840 && o.owned.n == n, "dst optimizer: owned state for %zu of %zu weights", o.owned.n, n);
        CHECK(m.g.nparams == 10 && o.params.n == 10, "dst optimizer: parameter block %zu, state %zu, want 10",
              m.g.nparams, o.params.n);
        CHECK(o.owned.m && o.owned.v && o.delta, "dst optimizer: no Adam moments or delta scratch");
        qat_optim ref;
        CHECK(qat_optim_init(&ref, &oc, n) == QAT_OK, "ref optim");
        float *x = malloc(sizeof(float) * 2 * 784), *copy = malloc(sizeof(float) * n);
        qat_rng rng;
        qat_rng_seed(&rng, 8);
        for (int i = 0; i < 2 * 784; i++) x[i] = qat_rng_normal(&rng);
        const int32_t y[2] = {3, 7};
        for (int step = 0; step < 3; step++) {
            float wd = step == 2 ? 5e-4f : 0; /* the last step with L2 decay */
            qat_graph_zero_grad(&m.g);
            qat_model_forward(&m, x, y, 2, 1);
            qat_graph_backward(&m.g, m.loss);
            long nz = 0;
            for (size_t i = 0; i < n; i++) nz += w->g[i] != 0;
            CHECK(nz > 0, "dst optimizer: the owned view got no gradient");
            qat_optim_begin_step(&o.owned);
            qat_optim_begin_step(&ref);
            qat_optim_delta_at(&o.owned, 0, n, w->x, w->g, 0.01f, wd, o.delta);
            memcpy(copy, w->x, n * sizeof(float));
            qat_optim_update(&ref, 0, n, copy, w->g, 0.01f, wd);
            long diff = 0, moved = 0;
            for (size_t i = 0; i < n; i++) {
                float d = copy[i] - w->x[i];
                diff += memcmp(&d, &o.delta[i], sizeof d) != 0;
                moved += o.delta[i] != 0;
            }
            CHECK(diff == 0, "dst optimizer step %d: %ld deltas differ from the float copy's update", step, diff);
            CHECK(moved > 0, "dst optimizer step %d: no delta", step);
            CHECK(memcmp(qat_optim_state(&o.owned), qat_optim_state(&ref),
                         qat_optim_state_floats(&ref) * sizeof(float)) == 0 &&
                      qat_optim_state_floats(&ref) == qat_optim_state_floats(&o.owned),
                  "dst optimizer step %d: Adam state differs from the float copy's", step);
            /* the quantizer turns it into transitions; the view follows the states */
            q[0]->spec.q->update(q[0], o.delta, &m.g.rng);
            qat_model_forward(&m, x, y, 2, 1);
            long off = 0;
            for (size_t i = 0; i < n; i++) off += w->x[i] != (float)qat_dst_states(q[0])[i] * 0.25f;
            CHECK(off == 0, "dst optimizer step %d: %ld view values are not state * L", step, off);
        }
        free(x);
        free(copy);
        qat_optim_free(&ref);
        qat_optimizer_free(&o);
    } else {
        CHECK(0, "dst optimizer init: %s", qat_last_error());
    }
    qat_model_free(&m);
    qat_cfg_free(&cfg);
}

/* ---- settings tables and the owned-weight registry ------------------------- */
static qat_status build_text(const char *text, qat_cfg *cfg, qat_net_cfg *net, qat_model *m)
{
    qat_layer *layers = NULL;
    int nl = 0;
    memset(m, 0, sizeof *m);
    qat_status st = qat_cfg_parse_text(cfg, "t.cfg", text, strlen(text));
    if (st != QAT_OK) return st;
    st = qat_netcfg_read(cfg, net, &layers, &nl);
    if (st == QAT_OK) st = qat_model_build(m, layers, nl, net->c, net->h, net->w, net->batch, 1, net->seed);
    if (st != QAT_OK) qat_cfg_free(cfg);
    return st;
}

static void expect_cfg_error(const char *text, const char *want)
{
    qat_cfg cfg;
    qat_net_cfg net;
    qat_model m;
    qat_status st = build_text(text, &cfg, &net, &m);
    CHECK(st == QAT_ERR_CONFIG && strstr(qat_last_error(), want), "want a config error with '%s', got %d: %s", want,
          (int)st, st ? qat_last_error() : "ok");
    if (st == QAT_OK) {
        qat_model_free(&m);
        qat_cfg_free(&cfg);
    }
}

static void test_settings(void)
{
    /* a layer that switches method starts from that method's [quant] settings */
    static const char text[] = "[net]\nbatch = 2\n"
                               "[quant]\nweight = ste_sign\nact = ste_sign\naqe_alpha = 0.3\ndst_p = -3\n"
                               "[flatten]\n[linear]\noutput = 8\nweight = aqe\naqe_reach = 0.6\n"
                               "[linear]\noutput = 8\nweight = dst\n[linear]\noutput = 10\n";
    qat_cfg cfg;
    qat_net_cfg net;
    qat_model m;
    qat_status st = build_text(text, &cfg, &net, &m);
    CHECK(st == QAT_OK, "settings model: %s", qat_last_error());
    if (st == QAT_OK) {
        const qat_qspec *a = &m.layers[1].wspec, *d = &m.layers[2].wspec;
        CHECK(a->q == qat_quantizer_find("aqe") && qat_qspec_get(a, "aqe_alpha") == 0.3f &&
                  qat_qspec_get(a, "aqe_reach") == 0.6f && qat_qspec_get(a, "aqe_delta") == 0.5f,
              "aqe layer: alpha %g reach %g delta %g, want 0.3 (from [quant]), 0.6 (its own), 0.5 (default)",
              qat_qspec_get(a, "aqe_alpha"), qat_qspec_get(a, "aqe_reach"), qat_qspec_get(a, "aqe_delta"));
        CHECK(d->q == qat_quantizer_find("dst") && qat_qspec_get(d, "dst_p") == -3 &&
                  qat_qspec_get(d, "dst_th") == 0.5f,
              "dst layer: p %g th %g, want -3 (from [quant]) and 0.5", qat_qspec_get(d, "dst_p"),
              qat_qspec_get(d, "dst_th"));
        CHECK(isnan(qat_qspec_get(d, "aqe_alpha")), "dst has no aqe_alpha");
        qat_model_free(&m);
        qat_cfg_free(&cfg);
    }
    /* a key of a method the section does not use names the method */
    expect_cfg_error("[net]\n[flatten]\n[linear]\noutput = 10\nweight = ste_sign\naqe_alpha = 0.4\n",
                     "t.cfg:6: [linear] aqe_alpha is a setting of aqe, and this section quantizes weights with "
                     "ste_sign");
    expect_cfg_error("[net]\n[flatten]\n[linear]\noutput = 10\nrounding = stochastic\n", "rounding is a setting of uniform, aqe");
    /* [quant] checks every method's values, used or not */
    expect_cfg_error("[net]\n[quant]\nweight = ste_sign\ndst_p = 5\n[flatten]\n[linear]\noutput = 10\n", "dst_p");
    expect_cfg_error("[net]\n[quant]\ndst_pp = 5\n[flatten]\n[linear]\noutput = 10\n", "unknown key 'dst_pp'");
    qat_qspec s;
    qat_qspec_default(&s);
    s.q = qat_quantizer_find("pact");
    CHECK(qat_qspec_get(&s, "pact_alpha") == 10 && qat_qspec_set(&s, "pact_alpha", 3) == QAT_OK &&
              qat_qspec_get(&s, "pact_alpha") == 3,
          "pact_alpha default 10, set to 3");
    CHECK(qat_qspec_set(&s, "dst_p", -2) == QAT_ERR_CONFIG && strstr(qat_last_error(), "no setting 'dst_p'"),
          "set: a key of another method");
    CHECK(qat_qspec_set(&s, "pact_alpha", 0) == QAT_ERR_CONFIG && strstr(qat_last_error(), "outside"),
          "set: out of range");
    s.q = qat_quantizer_find("dst");
    CHECK(qat_qspec_get(&s, "dst_p") == -2, "a new method starts from its defaults");
}

/* More owned-weight layers than any fixed table held: every one is in the
 * registry, stepped, saved and loaded. */
static void test_owned_registry(void)
{
    enum { LAYERS = 70 };
    char *text = malloc(64 * LAYERS + 256);
    size_t k = (size_t)sprintf(text, "[net]\nbatch = 2\nseed = 3\noptimizer = sgd\nlr = 1\n[quant]\nweight = dst\n"
                                     "dst_init = uniform\n[flatten]\n");
    for (int i = 0; i < LAYERS; i++) k += (size_t)sprintf(text + k, "[linear]\noutput = %d\n", i == LAYERS - 1 ? 10 : 4);
    qat_cfg cfg;
    qat_net_cfg net;
    qat_model m, m2;
    qat_status st = build_text(text, &cfg, &net, &m);
    CHECK(st == QAT_OK, "registry model: %s", qat_last_error());
    if (st != QAT_OK) {
        free(text);
        return;
    }
    CHECK(m.nowned == LAYERS, "registry: %d owned nodes, want %d", m.nowned, LAYERS);
    size_t total = 0;
    for (int i = 0; i < m.nowned; i++) total += m.owned[i]->out->n;
    qat_optimizer o;
    st = qat_optimizer_init(&o, &m, &net.optim);
    CHECK(st == QAT_OK && o.owned.n == total, "registry: optimizer over %zu of %zu owned weights",
          st == QAT_OK ? o.owned.n : 0, total);
    if (st == QAT_OK) {
        /* the last layer's states move under a step with lr 1 */
        qat_qnode *last = m.owned[LAYERS - 1];
        int8_t *before = malloc(last->state_bytes);
        memcpy(before, last->state, last->state_bytes);
        qat_rng r;
        qat_rng_seed(&r, 9);
        for (size_t i = 0; i < m.input->n; i++) m.input->x[i] = qat_rng_normal(&r);
        m.labels[0] = 1;
        m.labels[1] = 6;
        qat_train_step(&m, &o, &net, 1.0f, 2);
        CHECK(memcmp(before, last->state, last->state_bytes) != 0, "registry: layer %d's states did not move", LAYERS);
        free(before);
        char path[64];
        snprintf(path, sizeof path, "/tmp/qat-registry-%d.ckpt", (int)getpid());
        qat_train_pos pos = {0};
        st = qat_checkpoint_save(path, &m, cfg.text, cfg.text_len, &o, &pos);
        CHECK(st == QAT_OK, "registry save: %s", qat_last_error());
        qat_cfg cfg2;
        qat_net_cfg net2;
        if (st == QAT_OK && build_text(text, &cfg2, &net2, &m2) == QAT_OK) {
            qat_ckpt ck;
            st = qat_ckpt_read(&ck, path);
            if (st == QAT_OK) {
                st = qat_checkpoint_load_model(&ck, &m2);
                qat_ckpt_free(&ck);
            }
            CHECK(st == QAT_OK, "registry load: %s", qat_last_error());
            long differ = 0;
            for (int i = 0; st == QAT_OK && i < LAYERS; i++)
                differ += memcmp(m.owned[i]->state, m2.owned[i]->state, m.owned[i]->state_bytes) != 0;
            CHECK(differ == 0, "registry: %ld of %d layers' states differ after a load", differ, LAYERS);
            qat_model_free(&m2);
            qat_cfg_free(&cfg2);
        }
        unlink(path);
        qat_optimizer_free(&o);
    }
    qat_model_free(&m);
    qat_cfg_free(&cfg);
    free(text);
}

/* --init-from: a quantized model of the same architecture starts from a float
 * run's weights; its quantizers initialise from them */
static void test_init_from(void)
{
    static const char fp[] = "[net]\nbatch = 2\nseed = 4\n[conv2d]\nfilters = 4\nsize = 3\n[batchnorm]\n[relu]\n"
                             "[flatten]\n[linear]\noutput = 10\n";
    static const char dst[] = "[net]\nbatch = 2\nseed = 8\n[quant]\nweight = dst\nlast_weight = quantized\n"
                              "[conv2d]\nfilters = 4\nsize = 3\n[batchnorm]\n[relu]\n[flatten]\n[linear]\noutput = 10\n";
    static const char bnn[] = "[net]\nbatch = 2\nseed = 8\n[quant]\nweight = ste_sign\nact = ste_sign\n"
                              "[conv2d]\nfilters = 4\nsize = 3\n[batchnorm]\n[relu]\n[flatten]\n[linear]\noutput = 10\n";
    static const char other[] = "[net]\nbatch = 2\n[conv2d]\nfilters = 5\nsize = 3\n[batchnorm]\n[relu]\n"
                                "[flatten]\n[linear]\noutput = 10\n";
    qat_cfg c1, c2;
    qat_net_cfg n1, n2;
    qat_model a, b;
    if (build_text(fp, &c1, &n1, &a) != QAT_OK) {
        CHECK(0, "init-from: float model: %s", qat_last_error());
        return;
    }
    /* a float run's weights: make the BN statistics and weights distinctive */
    a.layers[1].rmean->x[2] = 0.25f;
    for (size_t i = 0; i < a.layers[0].w->n; i++) a.layers[0].w->x[i] = 0.01f * (float)((int)(i % 11) - 5);
    char path[64];
    snprintf(path, sizeof path, "/tmp/qat-initfrom-%d.ckpt", (int)getpid());
    qat_train_pos pos = {0};
    qat_status st = qat_checkpoint_save(path, &a, c1.text, c1.text_len, NULL, &pos);
    CHECK(st == QAT_OK, "init-from: save: %s", qat_last_error());
    qat_ckpt ck;
    if (st == QAT_OK && (st = qat_ckpt_read(&ck, path)) == QAT_OK) {
        /* DST: the float view takes the weights, the states come from them */
        if (build_text(dst, &c2, &n2, &b) == QAT_OK) {
            st = qat_checkpoint_init_from(&ck, &b, n2.seed);
            CHECK(st == QAT_OK, "init-from dst: %s", qat_last_error());
            CHECK(b.nowned == 2 && b.layers[1].rmean->x[2] == 0.25f, "init-from dst: BN statistics not copied");
            const qat_tensor *w = b.owned[0]->out;
            const int8_t *s = qat_dst_states(b.owned[0]);
            long far = 0, nz = 0;
            for (size_t i = 0; i < w->n; i++) {
                float x = a.layers[0].w->x[i], v = (float)s[i] * 0.25f;
                far += fabsf(v - x) >= 0.25f; /* stochastic rounding: the neighbouring levels of x */
                nz += s[i] != 0;
            }
            CHECK(far == 0 && nz > 0, "init-from dst: %ld states are not a neighbour of the float weight (%ld nonzero)",
                  far, nz);
            qat_model_free(&b);
            qat_cfg_free(&c2);
        }
        /* BNN: the latent weights are the float run's */
        if (build_text(bnn, &c2, &n2, &b) == QAT_OK) {
            st = qat_checkpoint_init_from(&ck, &b, n2.seed);
            CHECK(st == QAT_OK && memcmp(b.layers[0].w->x, a.layers[0].w->x, a.layers[0].w->n * sizeof(float)) == 0 &&
                      memcmp(b.layers[4].w->x, a.layers[4].w->x, a.layers[4].w->n * sizeof(float)) == 0,
                  "init-from bnn: weights differ (%s)", st ? qat_last_error() : "");
            qat_model_free(&b);
            qat_cfg_free(&c2);
        }
        /* another architecture */
        if (build_text(other, &c2, &n2, &b) == QAT_OK) {
            st = qat_checkpoint_init_from(&ck, &b, 1);
            CHECK(st == QAT_ERR_MISMATCH && strstr(qat_last_error(), "tensor 'conv1.weight' is [4, 1, 3, 3] there and "
                                                                   "[5, 1, 3, 3] here"),
                  "init-from other: %d %s", (int)st, st ? qat_last_error() : "");
            qat_model_free(&b);
            qat_cfg_free(&c2);
        }
        qat_ckpt_free(&ck);
    }
    unlink(path);
    qat_model_free(&a);
    qat_cfg_free(&c1);
}

int main(void)
{
    test_aqe_sign();
    test_aqe_ternary();
    test_aqe_pow2();
    test_aqe_schedule();
    test_aqe_stochastic();
    test_dst_act();
    test_dst_storage();
    test_dst_transitions();
    test_lloyd();
    test_dst_optimizer();
    test_settings();
    test_owned_registry();
    test_init_from();
    if (failures) printf("%d check(s) failed\n", failures);
    else printf("all checks passed\n");
    return failures ? 1 : 0;
}
