/* test_quantizers.c: every quantizer's forward and estimator backward checked
 * against its equation with exact numbers worked out by hand (finite
 * differences mean nothing on steps), the codebook contract on random
 * inputs, stochastic rounding's statistics, and the [quant] config keys. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "graph.h"
#include "quantizer.h"

#include "qat_test.h"
#include "qrig.h"

static float *extra(rig *r) { return r->n.buf->x + 2 * r->n.channels; }

static void ones(float *g, size_t n)
{
    for (size_t i = 0; i < n; i++) g[i] = 1.0f;
}

/* ---- ste_sign, approx_sign, latent clipping --------------------------------- */
static void test_sign(void)
{
    rig r;
    qat_qspec s = spec("ste_sign", 0);
    /* forward sign with sign(0) = sign(-0) = +1; backward g * 1{|x| <= 1} */
    const float x[8] = {-2, -1, -0.5f, -0.0f, 0, 0.5f, 1, 1.5f};
    const float g[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 4, 1)) {
        rig_set(&r, x);
        rig_run(&r, 1, g);
        expect("ste_sign y", r.y->x, (const float[]){-1, -1, -1, 1, 1, 1, 1, 1}, 8);
        expect("ste_sign dx", r.x->g, (const float[]){0, 2, 3, 4, 5, 6, 7, 0}, 8);
        /* backward adds into the gradient: a second pass doubles it */
        qat_graph_backward_seeded(&r.g);
        expect("ste_sign dx twice", r.x->g, (const float[]){0, 4, 6, 8, 10, 12, 14, 0}, 8);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.table && lv.ntable == 2 && lv.table[0] == -1 && lv.table[1] == 1, "ste_sign codebook");
        CHECK(lv.nscale == 1 && lv.scale[0] == 1.0f && !lv.zero, "ste_sign scale %g", lv.scale[0]);
        CHECK(r.n.spec.clip == 1.0f, "ste_sign weights: default clip 1, got %g", r.n.spec.clip);
        /* latent weights clipped to [-1, 1] after an update */
        const float w[8] = {-3, -1, -0.5f, 0, 0.25f, 1, 1.0001f, 2.5f};
        memcpy(r.x->x, w, sizeof w);
        qat_qnode_post_update(&r.n);
        expect("ste_sign clip", r.x->x, (const float[]){-1, -1, -0.5f, 0, 0.25f, 1, 1, 1}, 8);
        qat_graph_free(&r.g);
    }
    /* the same quantizer on activations: no latent clipping */
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 4, 1)) {
        rig_set(&r, x);
        CHECK(r.n.spec.clip == 0, "ste_sign act: clip %g, want 0", r.n.spec.clip);
        const float w[8] = {-3, 0, 0, 0, 0, 0, 0, 2.5f};
        memcpy(r.x->x, w, sizeof w);
        qat_qnode_post_update(&r.n);
        expect("ste_sign act no clip", r.x->x, w, 8);
        qat_graph_free(&r.g);
    }
    /* uniform weights: no clip by default, an explicit clip applies */
    s = spec("uniform", 4);
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 1, 3, 1)) {
        const float w[3] = {-3, 0.5f, 2.5f};
        rig_set(&r, w);
        qat_qnode_post_update(&r.n);
        expect("uniform no clip", r.x->x, w, 3);
        qat_graph_free(&r.g);
    }
    s.clip = 0.5f;
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 1, 3, 1)) {
        rig_set(&r, (const float[]){-3, 0.25f, 2.5f});
        qat_qnode_post_update(&r.n);
        expect("uniform clip 0.5", r.x->x, (const float[]){-0.5f, 0.25f, 0.5f}, 3);
        qat_graph_free(&r.g);
    }

    /* approx_sign: same forward; backward g * (2 - 2|x|) * 1{|x| <= 1}:
     * x = -2: 0; -1: 0; -0.5: 1; -0: 2; 0: 2; 0.5: 1; 0.75: 0.5; 1.5: 0 */
    s = spec("approx_sign", 0);
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 4, 1)) {
        rig_set(&r, (const float[]){-2, -1, -0.5f, -0.0f, 0, 0.5f, 0.75f, 1.5f});
        rig_run(&r, 1, g);
        expect("approx_sign y", r.y->x, (const float[]){-1, -1, -1, 1, 1, 1, 1, 1}, 8);
        /* times g = 1..8 */
        expect("approx_sign dx", r.x->g, (const float[]){0, 0, 3, 8, 10, 6, 3.5f, 0}, 8);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.table && lv.ntable == 2 && lv.scale[0] == 1.0f, "approx_sign codebook");
        qat_graph_free(&r.g);
    }
}

/* ---- xnor ------------------------------------------------------------------- */
static void test_xnor(void)
{
    rig r;
    qat_qspec s = spec("xnor", 0);
    const float w[8] = {0.5f, -1.5f, 0, -0.25f, /* channel 1 */ 1, -1, 2, 0.25f};
    const float g[8] = {1, 2, 3, 4, -1, 1, 0.5f, 2};
    s.per_channel = 1;
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 4, 1)) {
        rig_set(&r, w);
        rig_run(&r, 1, g);
        /* alpha_0 = (0.5 + 1.5 + 0 + 0.25) / 4 = 0.5625, signs + - + -
         * alpha_1 = (1 + 1 + 2 + 0.25) / 4 = 1.0625, signs + - + + */
        expect("xnor y", r.y->x,
               (const float[]){0.5625f, -0.5625f, 0.5625f, -0.5625f, 1.0625f, -1.0625f, 1.0625f, 1.0625f}, 8);
        /* dW_i = g_i a 1{|W_i| <= 1} + sign(W_i) k, k = sum_j g_j sign(W_j) / n
         * ch 0: k = (1 - 2 + 3 - 4) / 4 = -0.5
         *   0.5625 - 0.5 = 0.0625; (|-1.5| > 1) 0 + 0.5 = 0.5; 1.6875 - 0.5 = 1.1875; 2.25 + 0.5 = 2.75
         * ch 1: k = (-1 - 1 + 0.5 + 2) / 4 = 0.125
         *   -1.0625 + 0.125 = -0.9375; 1.0625 - 0.125 = 0.9375; (|2| > 1) 0.125; 2.125 + 0.125 = 2.25 */
        expect("xnor dW", r.x->g, (const float[]){0.0625f, 0.5f, 1.1875f, 2.75f, -0.9375f, 0.9375f, 0.125f, 2.25f},
               8);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.table && lv.ntable == 2 && lv.per_channel == 1 && lv.nscale == 2, "xnor codebook per channel");
        expect("xnor scales", lv.scale, (const float[]){0.5625f, 1.0625f}, 2);
        qat_graph_free(&r.g);
    }
    s.per_channel = 0;
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 4, 1)) {
        rig_set(&r, w);
        rig_run(&r, 1, NULL);
        /* alpha = (2.25 + 4.25) / 8 = 0.8125 */
        const float a = 0.8125f;
        expect("xnor per-tensor y", r.y->x, (const float[]){a, -a, a, -a, a, -a, a, a}, 8);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.per_channel == 0 && lv.nscale == 1 && lv.scale[0] == a, "xnor per-tensor codebook");
        qat_graph_free(&r.g);
    }
}

/* ---- ternary (TWN) ----------------------------------------------------------- */
static void test_ternary(void)
{
    rig r;
    qat_qspec s = spec("ternary", 0);
    /* per tensor: mean|W| = (0.7f + 2 + 0.3f + 1) / 4 = 1 exactly (0.7f + 0.3f
     * is exactly 1 in double), delta = 0.7f * 1 = 0.7f: |W| = delta is not
     * above it -> 0; alpha = (2 + 1) / 2 = 1.5 */
    const float g[4] = {1, 2, 3, 4};
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 2, 1)) {
        rig_set(&r, (const float[]){0.7f, 2, -0.3f, -1});
        rig_run(&r, 1, g);
        expect("twn y", r.y->x, (const float[]){0, 1.5f, 0, -1.5f}, 4);
        expect("twn dW (identity STE)", r.x->g, g, 4);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.table && lv.ntable == 3 && lv.table[0] == -1 && lv.table[1] == 0 && lv.table[2] == 1,
              "twn codebook");
        CHECK(lv.nscale == 1 && lv.per_channel == 0 && lv.scale[0] == 1.5f, "twn scale %g", lv.scale[0]);
        qat_graph_free(&r.g);
    }
    /* per channel: ch 0 as above with -0.7f (|W| = delta on the negative
     * side -> 0); ch 1: mean = (0.5 + 0.25 + 0.125 + 0.125) / 4 = 0.25,
     * delta = 0.7f * 0.25 ~ 0.175, kept 0.5 and 0.25 -> alpha 0.375 */
    s.per_channel = 1;
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 4, 1)) {
        rig_set(&r, (const float[]){-0.7f, -2, 0.3f, 1, -0.5f, 0.25f, -0.125f, 0.125f});
        rig_run(&r, 1, NULL);
        expect("twn per-channel y", r.y->x, (const float[]){0, -1.5f, 0, 1.5f, -0.375f, 0.375f, 0, 0}, 8);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.per_channel == 1 && lv.nscale == 2, "twn per-channel codebook");
        expect("twn scales", lv.scale, (const float[]){1.5f, 0.375f}, 2);
        qat_graph_free(&r.g);
    }
    /* an explicit factor: 0.5 * mean(2, 1, 0.5, 0.5) = 0.5 -> the 0.5s are at delta */
    s.per_channel = 0;
    SET_OPT(&s, "ternary_factor", 0.5f);
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 1, 4, 1)) {
        rig_set(&r, (const float[]){2, -1, 0.5f, -0.5f});
        rig_run(&r, 1, NULL);
        expect("twn factor 0.5 y", r.y->x, (const float[]){1.5f, -1.5f, 0, 0}, 4);
        qat_graph_free(&r.g);
    }
    /* activations: y = sign(x) 1{|x| > 0.5}, backward g 1{|x| <= 1} */
    s = spec("ternary", 0);
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 4, 1)) {
        rig_set(&r, (const float[]){-1.5f, -0.5f, -0.25f, 0, 0.5f, 0.75f, 1, 2});
        rig_run(&r, 1, (const float[]){1, 2, 3, 4, 5, 6, 7, 8});
        expect("ternary act y", r.y->x, (const float[]){-1, 0, 0, 0, 0, 1, 1, 1}, 8);
        expect("ternary act dx", r.x->g, (const float[]){0, 2, 3, 4, 5, 6, 7, 0}, 8);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.ntable == 3 && lv.scale[0] == 1.0f, "ternary act codebook scale %g", lv.scale[0]);
        qat_graph_free(&r.g);
    }
}

/* ---- uniform ------------------------------------------------------------------ */
static void test_uniform_weights(void)
{
    rig r;
    qat_qspec s = spec("uniform", 3);
    /* symmetric, k = 3: Q = 3, s_c = max|W_c| / 3
     * ch 0: s = 1.5/3 = 0.5: x/s = 3, -1.5, 0.5, 1.5, -2.5, 0 -> 3, -2, 0, 2, -2, 0 (half to even)
     * ch 1: s = 3/3 = 1:     x/s = -3, 1, 0.5, -0.5, 2.5, 1.5 -> -3, 1, 0, -0, 2, 2 */
    const float w[12] = {1.5f, -0.75f, 0.25f, 0.75f, -1.25f, 0, -3, 1, 0.5f, -0.5f, 2.5f, 1.5f};
    float g[12];
    for (int i = 0; i < 12; i++) g[i] = (float)(i + 1);
    s.per_channel = 1;
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 6, 1)) {
        rig_set(&r, w);
        rig_run(&r, 1, g);
        expect("uniform sym y", r.y->x, (const float[]){1.5f, -1, 0, 1, -1, 0, -3, 1, 0, 0, 2, 2}, 12);
        /* min-max weights are never clipped: the mask passes everything */
        expect("uniform sym dW", r.x->g, g, 12);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(!lv.table && lv.lo == -3 && lv.hi == 3 && lv.step == 1 && !lv.zero, "uniform sym codebook %d..%d",
              lv.lo, lv.hi);
        CHECK(lv.per_channel == 1 && lv.nscale == 2, "uniform sym per channel");
        expect("uniform sym scales", lv.scale, (const float[]){0.5f, 1}, 2);
        qat_graph_free(&r.g);
    }
    /* per tensor: s = 3/3 = 1 for both rows: ch 0 becomes 2, -1, 0, 1, -1, 0 */
    s.per_channel = 0;
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 6, 1)) {
        rig_set(&r, w);
        rig_run(&r, 1, NULL);
        expect("uniform per-tensor y", r.y->x, (const float[]){2, -1, 0, 1, -1, 0, -3, 1, 0, 0, 2, 2}, 12);
        qat_graph_free(&r.g);
    }
    /* asymmetric, k = 2 (levels 0..3), per channel:
     * ch 0 {-1, 2, 0.5, 1.5}: s = 3/3 = 1, z = round(1) = 1:
     *      round(x) + 1 = 0, 3, 1, 3 -> y = -1, 2, 0, 2
     * ch 1 {-0.5, 2.5, 1, 0}: s = 1, z = round(0.5) = 0 (half to even):
     *      round(x) = -0, 2, 1, 0 -> y = 0, 2, 1, 0; representable [0, 3]: -0.5 is clipped
     * ch 2 {-1.5, -0.75, -0.375, -1}: hi = max(-0.375, 0) = 0, s = 1.5/3 = 0.5,
     *      z = round(3) = 3: round(x/s) = -3, -2 (-1.5), -1 (-0.75), -2 -> +3 = 0, 1, 2, 1
     *      -> y = (q - 3) 0.5 = -1.5, -1, -0.5, -1 */
    s = spec("uniform", 2);
    s.per_channel = 1;
    SET_OPT(&s, "symmetric", 0);
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 3, 4, 1)) {
        rig_set(&r, (const float[]){-1, 2, 0.5f, 1.5f, -0.5f, 2.5f, 1, 0, -1.5f, -0.75f, -0.375f, -1});
        rig_run(&r, 1, g);
        expect("uniform asym y", r.y->x, (const float[]){-1, 2, 0, 2, 0, 2, 1, 0, -1.5f, -1, -0.5f, -1}, 12);
        /* mask [(0 - z) s, (3 - z) s]: ch 0 [-1, 2], ch 1 [0, 3], ch 2 [-1.5, 0] */
        expect("uniform asym dW", r.x->g, (const float[]){1, 2, 3, 4, 0, 6, 7, 8, 9, 10, 11, 12}, 12);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.lo == 0 && lv.hi == 3 && lv.step == 1 && lv.zero && lv.nscale == 3 && lv.per_channel == 1,
              "uniform asym codebook");
        if (lv.zero) expect("uniform asym zero points", lv.zero, (const float[]){1, 0, 3}, 3);
        expect("uniform asym scales", lv.scale, (const float[]){1, 1, 0.5f}, 3);
        qat_graph_free(&r.g);
    }
}

static void test_uniform_acts(void)
{
    rig r;
    qat_qspec s = spec("uniform", 2);
    const float g[6] = {1, 2, 3, 4, 5, 6};
    /* unsigned, k = 2: levels 0..3, s = max / 3 = 1; mask [0, 3] */
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 3, 1)) {
        rig_set(&r, (const float[]){-1, 0, 0.5f, 1.5f, 2.5f, 3});
        rig_run(&r, 1, g);
        expect("uniform unsigned y", r.y->x, (const float[]){0, 0, 0, 2, 2, 3}, 6);
        expect("uniform unsigned dx", r.x->g, (const float[]){0, 2, 3, 4, 5, 6}, 6);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.lo == 0 && lv.hi == 3 && !lv.zero && lv.nscale == 1 && lv.scale[0] == 1, "uniform unsigned codebook");
        qat_graph_free(&r.g);
    }
    /* signed symmetric, k = 3: m = 1.5, s = 0.5:
     * x/s = -3, 0.5, 1.5, -2.5, 2, 0 -> -3, 0, 2, -2, 2, 0 */
    s = spec("uniform", 3);
    SET_OPT(&s, "act_signed", 1);
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 3, 1)) {
        rig_set(&r, (const float[]){-1.5f, 0.25f, 0.75f, -1.25f, 1, 0});
        rig_run(&r, 1, g);
        expect("uniform signed sym y", r.y->x, (const float[]){-1.5f, 0, 1, -1, 1, 0}, 6);
        expect("uniform signed sym dx", r.x->g, g, 6);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.lo == -3 && lv.hi == 3 && !lv.zero && lv.scale[0] == 0.5f, "uniform signed sym codebook");
        qat_graph_free(&r.g);
    }
    /* signed asymmetric, k = 2: lo -1, hi 2, s = 1, z = 1:
     * round(x) + 1 = 0, 3, 1 (0.5 -> 0), 1 (-0.5 -> -0), 2, 3 (1.5 -> 2) */
    s = spec("uniform", 2);
    SET_OPT(&s, "act_signed", 1);
    SET_OPT(&s, "symmetric", 0);
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 3, 1)) {
        rig_set(&r, (const float[]){-1, 2, 0.5f, -0.5f, 1.4f, 1.5f});
        rig_run(&r, 1, g);
        expect("uniform signed asym y", r.y->x, (const float[]){-1, 2, 0, 0, 1, 2}, 6);
        expect("uniform signed asym dx", r.x->g, g, 6);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.lo == 0 && lv.hi == 3 && lv.zero && lv.zero[0] == 1 && lv.scale[0] == 1,
              "uniform signed asym codebook");
        qat_graph_free(&r.g);
    }

    /* EMA range (momentum 0.25, exact in binary), unsigned k = 2 */
    s = spec("uniform", 2);
    SET_OPT(&s, "momentum", 0.25f);
    const float x1[6] = {0, 0.5f, 1, 1.5f, 3, -1}, x2[6] = {0, 1, 2.5f, 4.5f, 15, -5}, x3[6] = {3, 5, 6, 7, 1, -1};
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 3, 1)) {
        rig_set(&r, x1);
        /* first training batch initialises the range: [-1, 3], s = 1 */
        rig_run(&r, 1, NULL);
        expect("ema batch 1 y", r.y->x, (const float[]){0, 0, 1, 2, 3, 0}, 6);
        expect("ema after batch 1", extra(&r), (const float[]){-1, 3, 1}, 3);
        /* second: lo = 0.75 (-1) + 0.25 (-5) = -2, hi = 0.75 3 + 0.25 15 = 6,
         * s = 6/3 = 2: x/s = 0, 0.5, 1.25, 2.25, 7.5, -2.5 -> 0, 0, 1, 2, 3 (clip), 0 (clip) */
        memcpy(r.x->x, x2, sizeof x2);
        rig_run(&r, 1, g);
        expect("ema after batch 2", extra(&r), (const float[]){-2, 6, 1}, 3);
        expect("ema batch 2 y", r.y->x, (const float[]){0, 0, 2, 4, 6, 0}, 6);
        /* mask [0, 6]: 15 and -5 get nothing */
        expect("ema batch 2 dx", r.x->g, (const float[]){1, 2, 3, 4, 0, 0}, 6);
        /* eval uses the running range and leaves it alone: s = 2:
         * x/s = 1.5, 2.5, 3, 3.5, 0.5, -0.5 -> 2, 2, 3, 3 (clip), 0, 0 */
        memcpy(r.x->x, x3, sizeof x3);
        rig_run(&r, 0, NULL);
        expect("ema eval y", r.y->x, (const float[]){4, 4, 6, 6, 0, 0}, 6);
        expect("ema after eval", extra(&r), (const float[]){-2, 6, 1}, 3);
        qat_graph_free(&r.g);
    }
    /* minmax range: training quantizes with the batch's range (s = 15/3 = 5)
     * but still tracks the EMA, which eval uses (s = 2) */
    SET_OPT(&s, "act_range", QAT_QRANGE_MINMAX);
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 3, 1)) {
        rig_set(&r, x1);
        rig_run(&r, 1, NULL);
        memcpy(r.x->x, x2, sizeof x2);
        rig_run(&r, 1, NULL);
        CHECK(r.n.buf->x[0] == 5, "minmax training scale %g, want 5", r.n.buf->x[0]);
        /* 4.5/5 = 0.9 -> 1 -> 5; 15 -> 3 -> 15; -5 -> 0 */
        CHECK(r.y->x[3] == 5 && r.y->x[4] == 15 && r.y->x[5] == 0, "minmax batch 2 y %g %g %g", r.y->x[3],
              r.y->x[4], r.y->x[5]);
        expect("minmax after batch 2", extra(&r), (const float[]){-2, 6, 1}, 3);
        memcpy(r.x->x, x3, sizeof x3);
        rig_run(&r, 0, NULL);
        expect("minmax eval y", r.y->x, (const float[]){4, 4, 6, 6, 0, 0}, 6);
        qat_graph_free(&r.g);
    }
    /* eval before any training batch: the batch's own range (s = 7/3 is not
     * exact, so check the levels: x3 / (7/3) = 1.29, 2.14, 2.57, 3, 0.43, - -> 1, 2, 3, 3, 0, 0) */
    SET_OPT(&s, "act_range", QAT_QRANGE_EMA);
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 3, 1)) {
        rig_set(&r, x3);
        rig_run(&r, 0, NULL);
        float sc = 7.0f / 3.0f;
        expect("uniform eval uninitialised y", r.y->x, (const float[]){1 * sc, 2 * sc, 3 * sc, 3 * sc, 0, 0}, 6);
        CHECK(extra(&r)[2] == 0, "eval must not initialise the running range");
        qat_graph_free(&r.g);
    }
}

/* ---- stochastic rounding --------------------------------------------------------- */
#define NDRAW 100000

static void check_mean(const char *what, const float *y, size_t n, double want, double lo, double hi, double p)
{
    double sum = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        sum += y[i];
        if (y[i] != (float)lo && y[i] != (float)hi) bad++;
    }
    double mean = sum / (double)n, sigma = (hi - lo) * sqrt(p * (1 - p) / (double)n);
    printf("%-34s mean %.6f want %.6f (3 sigma %.6f)\n", what, mean, want, 3 * sigma);
    CHECK(bad == 0, "%s: %zu outputs not on the two neighbouring levels %g, %g", what, bad, lo, hi);
    CHECK(fabs(mean - want) <= 3 * sigma, "%s: mean %.6f, want %.6f +- %.6f", what, mean, want, 3 * sigma);
}

static void test_stochastic(void)
{
    rig r, r2;
    qat_qspec s = spec("stochastic", 4);
    s.per_channel = 1;
    /* k = 4 symmetric weights: Q = 7. Element 0 of each row fixes the scale:
     * ch 0: s = 7/7 = 1,   v = 2.25:  2 or 3, P(3) = 0.25
     * ch 1: s = 1,         v = -2.25: -3 or -2, P(-2) = 0.75
     * ch 2: s = 3.5/7 = 0.5, v = 0.3f/0.5 = 0.6: 0 or 1 (y 0 or 0.5), P(1) = 0.6 */
    const int C = 3, K = NDRAW + 1;
    float *w = malloc(sizeof(float) * (size_t)C * K);
    const float v[3] = {2.25f, -2.25f, 0.3f}, top[3] = {7, -7, 3.5f};
    for (int c = 0; c < C; c++) {
        w[(size_t)c * K] = top[c];
        for (int i = 1; i < K; i++) w[(size_t)c * K + i] = v[c];
    }
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, C, K, 42) && rig_build(&r2, &s, QAT_QROLE_WEIGHT, C, K, 42)) {
        rig_set(&r, w);
        rig_set(&r2, w);
        rig_run(&r, 1, NULL);
        rig_run(&r2, 1, NULL);
        const float *y = r.y->x;
        CHECK(y[0] == 7 && y[K] == -7 && y[2 * (size_t)K] == 3.5f, "levels themselves are not perturbed");
        check_mean("stochastic v = 2.25", y + 1, NDRAW, 2.25, 2, 3, 0.25);
        check_mean("stochastic v = -2.25", y + K + 1, NDRAW, -2.25, -3, -2, 0.75);
        double p = (double)(0.3f * 2.0f); /* x * (1/s), as the quantizer computes it */
        check_mean("stochastic v = 0.3 (s 0.5)", y + 2 * (size_t)K + 1, NDRAW, 0.5 * p, 0, 0.5, p);
        CHECK(memcmp(r.y->x, r2.y->x, r.y->n * sizeof(float)) == 0, "same seed: outputs differ");
        /* backward: the STE with the clipping mask, [-7, 7] / [-3.5, 3.5]: all inside */
        float *g = malloc(sizeof(float) * r.y->n);
        ones(g, r.y->n);
        rig_run(&r, 1, g);
        size_t nz = 0;
        for (size_t i = 0; i < r.x->n; i++) nz += r.x->g[i] != 1.0f;
        CHECK(nz == 0, "stochastic dW: %zu entries not 1", nz);
        free(g);
        /* eval rounds to nearest: 2.25 -> 2, -2.25 -> -2, 0.6 -> 1 (0.5) */
        rig_run(&r, 0, NULL);
        size_t bad = 0;
        for (int c = 0; c < C; c++)
            for (int i = 1; i < K; i++) bad += r.y->x[(size_t)c * K + i] != (const float[]){2, -2, 0.5f}[c];
        CHECK(bad == 0, "stochastic eval: %zu outputs not rounded to nearest", bad);
        qat_graph_free(&r2.g);
        qat_graph_free(&r.g);
    }
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, C, K, 43) && rig_build(&r2, &s, QAT_QROLE_WEIGHT, C, K, 42)) {
        rig_set(&r, w);
        rig_set(&r2, w);
        rig_run(&r, 1, NULL);
        rig_run(&r2, 1, NULL);
        CHECK(memcmp(r.y->x, r2.y->x, r.y->n * sizeof(float)) != 0, "seeds 43 and 42 give identical outputs");
        qat_graph_free(&r2.g);
        qat_graph_free(&r.g);
    }
    free(w);
    /* eval, half cases: k = 4, s = 1: 2.5 -> 2, -2.5 -> -2, 1.5 -> 2, 0.5 -> 0 */
    s.per_channel = 0;
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 1, 5, 1)) {
        rig_set(&r, (const float[]){7, 2.5f, -2.5f, 1.5f, 0.5f});
        rig_run(&r, 0, NULL);
        expect("stochastic eval halves", r.y->x, (const float[]){7, 2, -2, 2, 0}, 5);
        qat_graph_free(&r.g);
    }
    /* stochastic activations (unsigned k = 2, s = 3/3 = 1): v = 1.3f: 1 or 2, P(2) = 0.3 */
    s = spec("stochastic", 2);
    float *a = malloc(sizeof(float) * (NDRAW + 1));
    a[0] = 3;
    for (int i = 1; i <= NDRAW; i++) a[i] = 1.3f;
    if (rig_build(&r, &s, QAT_QROLE_ACT, 1, NDRAW + 1, 7)) {
        rig_set(&r, a);
        rig_run(&r, 1, NULL);
        check_mean("stochastic act v = 1.3", r.y->x + 1, NDRAW, (double)1.3f, 1, 2, (double)1.3f - 1);
        qat_graph_free(&r.g);
    }
    /* 1 bit: +1 with probability clip((x + 1) / 2, 0, 1): x = 0.5 -> 0.75 */
    s = spec("stochastic", 1);
    for (int i = 0; i <= NDRAW; i++) a[i] = 0.5f;
    if (rig_build(&r, &s, QAT_QROLE_ACT, 1, NDRAW + 1, 9)) {
        rig_set(&r, a);
        rig_run(&r, 1, NULL);
        /* mean of +-1 outputs = 2 P(+1) - 1 = 0.5 */
        check_mean("stochastic 1-bit x = 0.5", r.y->x, NDRAW + 1, 0.5, -1, 1, 0.75);
        rig_run(&r, 0, NULL);
        size_t bad = 0;
        for (int i = 0; i <= NDRAW; i++) bad += r.y->x[i] != 1.0f;
        CHECK(bad == 0, "stochastic 1-bit eval: %zu of sign(0.5) not +1", bad);
        qat_graph_free(&r.g);
    }
    free(a);
    /* 1 bit, certain cases: x <= -1 -> P = 0; x >= 1 -> P = 1; eval sign(x), sign(0) = +1;
     * backward g 1{|x| <= 1} */
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 3, 5)) {
        const float x[6] = {-1, 1, 2, -3, 0, -0.25f};
        rig_set(&r, x);
        for (int rep = 0; rep < 50; rep++) {
            rig_run(&r, 1, (const float[]){1, 2, 3, 4, 5, 6});
            CHECK(r.y->x[0] == -1 && r.y->x[1] == 1 && r.y->x[2] == 1 && r.y->x[3] == -1,
                  "1-bit: certain outputs %g %g %g %g", r.y->x[0], r.y->x[1], r.y->x[2], r.y->x[3]);
            CHECK(fabsf(r.y->x[4]) == 1 && fabsf(r.y->x[5]) == 1, "1-bit outputs are +-1");
        }
        expect("stochastic 1-bit dx", r.x->g, (const float[]){1, 2, 0, 0, 5, 6}, 6);
        rig_run(&r, 0, NULL);
        expect("stochastic 1-bit eval", r.y->x, (const float[]){-1, 1, 1, -1, 1, -1}, 6);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.table && lv.ntable == 2 && lv.scale[0] == 1, "stochastic 1-bit codebook");
        qat_graph_free(&r.g);
    }
}

/* ---- DoReFa -------------------------------------------------------------------------- */
static void test_dorefa(void)
{
    rig r;
    qat_qspec s = spec("dorefa", 2);
    const float third = 1.0f / 3.0f;
    /* activations, k = 2: y = round(3 clip(x, 0, 1)) / 3:
     * 3 clip(x) = 0, 0, 0.75, 1.5, 2.4, 3, 3 -> 0, 0, 1, 2, 2, 3, 3; mask [0, 1] */
    if (rig_build(&r, &s, QAT_QROLE_ACT, 1, 7, 1)) {
        rig_set(&r, (const float[]){-0.5f, 0, 0.25f, 0.5f, 0.8f, 1, 1.5f});
        rig_run(&r, 1, (const float[]){1, 2, 3, 4, 5, 6, 7});
        expect("dorefa act y", r.y->x, (const float[]){0, 0, third, 2 * third, 2 * third, 3 * third, 3 * third}, 7);
        expect("dorefa act dx", r.x->g, (const float[]){0, 2, 3, 4, 5, 6, 0}, 7);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.lo == 0 && lv.hi == 3 && lv.step == 1 && lv.scale[0] == third, "dorefa act codebook");
        qat_graph_free(&r.g);
    }
    /* activations, k = 1: round(clip(x)): 0.5 -> 0 (half to even), 0.75 -> 1 */
    s.bits = 1;
    if (rig_build(&r, &s, QAT_QROLE_ACT, 1, 6, 1)) {
        rig_set(&r, (const float[]){0.5f, 0.25f, 0.75f, 1, -1, 2});
        rig_run(&r, 1, NULL);
        expect("dorefa act k=1 y", r.y->x, (const float[]){0, 0, 1, 1, 0, 1}, 6);
        qat_graph_free(&r.g);
    }
    /* weights, k = 2: w' = tanh(w) / (2 m) + 1/2, m = max|tanh w| = tanh 1 = 0.761594;
     * y = (2 round(3 w') - 3) / 3. 3 w' for w =
     *   1: 3 -> 3;  -1: 0 -> -3;  0: 1.5 -> 2 -> 1 (half to even);  0.3: 2.0738 -> 2 -> 1;
     *   -0.3: 0.9262 -> 1 -> -1;  0.1: 1.6963 -> 2 -> 1;  -0.1: 1.3037 -> 1 -> -1;  0.6: 2.5577 -> 3 -> 3 */
    s.bits = 2;
    const float w[8] = {1, -1, 0, 0.3f, -0.3f, 0.1f, -0.1f, 0.6f};
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 4, 1)) {
        rig_set(&r, w);
        rig_run(&r, 1, (const float[]){1, -1, 2, 1, 1, 1, 1, 0.5f});
        expect("dorefa w y", r.y->x,
               (const float[]){3 * third, -3 * third, third, third, -third, third, -third, 3 * third}, 8);
        /* dw = g (1 - tanh^2 w) / m */
        expect_near("dorefa w dw", r.x->g,
                    (const double[]){0.5514411295435665, -0.5514411295435665, 2 * 1.3130352854993315,
                                     1.2016071219430187, 1.2016071219430187, 1.2999919748661322,
                                     1.2999919748661322, 0.5 * 0.9343267106536896},
                    8, 2e-6);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.lo == -3 && lv.hi == 3 && lv.step == 2 && lv.scale[0] == third, "dorefa w codebook {-3,-1,1,3}/3");
        qat_graph_free(&r.g);
    }
    /* weights, k = 1: sign(w) mean|w| = +-0.5625, backward identity */
    s.bits = 1;
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 1, 4, 1)) {
        rig_set(&r, (const float[]){0.5f, -1.5f, 0, -0.25f});
        rig_run(&r, 1, (const float[]){1, 2, 3, 4});
        expect("dorefa w k=1 y", r.y->x, (const float[]){0.5625f, -0.5625f, 0.5625f, -0.5625f}, 4);
        expect("dorefa w k=1 dw", r.x->g, (const float[]){1, 2, 3, 4}, 4);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.table && lv.ntable == 2 && lv.scale[0] == 0.5625f, "dorefa w k=1 codebook");
        qat_graph_free(&r.g);
    }
}

/* DoReFa's gradient quantizer: dx = 2m (round(L (dy/2m + 1/2 + noise)) / L - 1/2),
 * noise ~ U(-1/2, 1/2) / L, L = 2^k - 1, m = max|dy| per sample */
static void test_dorefa_grad(void)
{
    const int S = NDRAW + 1;
    const int bits_list[4] = {1, 2, 3, 8};
    /* row 0: m = 1, dy = 0.3; row 1: m = 2, dy = -0.5; row 2: all zero */
    const float m[3] = {1, 2, 0}, v[3] = {0.3f, -0.5f, 0};
    for (int b = 0; b < 4; b++) {
        int bits = bits_list[b];
        float L = (float)((1 << bits) - 1);
        qat_graph g;
        qat_graph_init(&g, 1, 1, 11 + (uint64_t)bits);
        int shape[2] = {3, S};
        qat_tensor *x = qat_graph_param(&g, "x", 2, shape, QAT_T_PARAM);
        qat_qnode n;
        qat_tensor *y = qat_quantize_grad(&g, &n, bits, x, "gq");
        if (!y || qat_graph_compile(&g, &y, 1) != QAT_OK) {
            CHECK(0, "grad quantizer build: %s", qat_last_error());
            qat_graph_free(&g);
            continue;
        }
        for (size_t i = 0; i < x->n; i++) x->x[i] = (float)((i * 37) % 101) * 0.01f - 0.5f;
        qat_graph_zero_grad(&g);
        for (int r = 0; r < 3; r++) {
            y->g[(size_t)r * S] = m[r];
            for (int i = 1; i < S; i++) y->g[(size_t)r * S + i] = v[r];
        }
        qat_graph_forward(&g);
        CHECK(memcmp(y->x, x->x, x->n * sizeof(float)) == 0, "grad quantizer forward is not the identity");
        qat_graph_backward_seeded(&g);
        for (int r = 0; r < 2; r++) {
            const float *d = x->g + (size_t)r * S;
            /* every output on the grid 2m (k/L - 1/2), k = 0..L */
            size_t off = 0;
            for (int i = 0; i < S; i++) {
                int k0 = (int)lrint(((double)d[i] / (2.0 * m[r]) + 0.5) * L), on = 0;
                for (int k = k0 - 1; k <= k0 + 1 && !on; k++)
                    on = k >= 0 && k <= (int)L && d[i] == 2 * m[r] * ((float)k / L - 0.5f);
                off += !on;
            }
            CHECK(off == 0, "grad quantizer %d bits row %d: %zu outputs off the grid", bits, r, off);
            /* unbiased: the neighbours of dy are 2m (j/L - 1/2), 2m ((j+1)/L - 1/2),
             * j = floor(t), t = L (dy/2m + 1/2), P(upper) = t - j */
            double t = L * ((double)v[r] / (2.0 * m[r]) + 0.5), j = floor(t);
            double lo = 2.0 * m[r] * (j / L - 0.5), hi = 2.0 * m[r] * ((j + 1) / L - 0.5);
            double sum = 0;
            for (int i = 1; i < S; i++) sum += d[i];
            double mean = sum / NDRAW, sigma = (hi - lo) * sqrt((t - j) * (1 - (t - j)) / NDRAW);
            printf("grad quantizer %d bits dy %5.2f    mean %.6f (3 sigma %.6f)\n", bits, v[r], mean, 3 * sigma);
            CHECK(fabs(mean - v[r]) <= 3 * sigma, "grad quantizer %d bits: mean %.6f, want %.6f +- %.6f", bits, mean,
                  v[r], 3 * sigma);
        }
        size_t nz = 0;
        for (int i = 0; i < S; i++) nz += x->g[2 * (size_t)S + i] != 0;
        CHECK(nz == 0, "grad quantizer: an all-zero sample got %zu non-zero gradients", nz);
        qat_graph_free(&g);
    }
}

/* ---- PACT ----------------------------------------------------------------------------- */
static void test_pact(void)
{
    rig r;
    qat_qspec s = spec("pact", 2);
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 4, 1)) {
        rig_set(&r, (const float[]){-1, 0, 0.5f, 1.5f, 2.5f, 3, 4, 1});
        CHECK(r.n.param && r.n.param->x[0] == 10, "pact alpha starts at 10");
        /* alpha = 3, k = 2: s = 3/3 = 1; clip(x, 0, 3) = 0, 0, 0.5, 1.5, 2.5, 3, 3, 1
         * -> 0, 0, 0, 2, 2, 3, 3, 1 */
        r.n.param->x[0] = 3;
        rig_run(&r, 1, (const float[]){1, 2, 3, 4, 5, 6, 7, 8});
        expect("pact y", r.y->x, (const float[]){0, 0, 0, 2, 2, 3, 3, 1}, 8);
        /* dx = g 1{0 <= x < alpha}: x = alpha (3) and 4 pass nothing; dalpha = g(3) + g(4) = 6 + 7 */
        expect("pact dx", r.x->g, (const float[]){0, 2, 3, 4, 5, 0, 0, 8}, 8);
        expect("pact dalpha", r.n.param->g, (const float[]){13}, 1);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.lo == 0 && lv.hi == 3 && lv.step == 1 && lv.nscale == 1 && lv.scale[0] == 1, "pact codebook");
        qat_graph_free(&r.g);
    }
    /* alpha = 2, k = 3: x 7/2 = 3.5 -> 4 (half to even), 1.75 -> 2, 7, 0.7 -> 1; s = 2/7 */
    s = spec("pact", 3);
    SET_OPT(&s, "pact_alpha", 2);
    if (rig_build(&r, &s, QAT_QROLE_ACT, 1, 4, 1)) {
        rig_set(&r, (const float[]){1, 0.5f, 2, 0.2f});
        CHECK(r.n.param->x[0] == 2, "pact alpha starts at pact_alpha");
        rig_run(&r, 1, NULL);
        float sc = 2.0f / 7.0f;
        expect("pact k=3 y", r.y->x, (const float[]){4 * sc, 2 * sc, 7 * sc, 1 * sc}, 4);
        qat_graph_free(&r.g);
    }
}

/* ---- LSQ -------------------------------------------------------------------------------- */
static void test_lsq(void)
{
    rig r;
    qat_qspec s = spec("lsq", 2);
    const float g8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    /* weights, b = 2: Qn = 2, Qp = 1, per channel */
    s.per_channel = 1;
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 4, 1)) {
        rig_set(&r, (const float[]){-1.5f, -1, 0.25f, 0.5f, -0.25f, 0.125f, 0.375f, 1});
        /* init s_c = 2 mean|W_c| / sqrt(1): 2 (3.25/4) = 1.625, 2 (1.75/4) = 0.875 */
        expect("lsq w init steps", r.n.param->x, (const float[]){1.625f, 0.875f}, 2);
        r.n.param->x[0] = 0.5f;
        r.n.param->x[1] = 0.25f;
        rig_run(&r, 1, g8);
        /* ch 0 v/s = -3, -2, 0.5, 1 -> clip [-2, 1], round -> -2, -2, 0, 1 -> y -1, -1, 0, 0.5
         * ch 1 v/s = -1, 0.5, 1.5, 4 -> -1, 0, 1, 1 -> y -0.25, 0, 0.25, 0.25 */
        expect("lsq w y", r.y->x, (const float[]){-1, -1, 0, 0.5f, -0.25f, 0, 0.25f, 0.25f}, 8);
        /* dv = g 1{-2 < v/s < 1}: v/s = -2 (= -Qn) and 1 (= Qp) pass nothing */
        expect("lsq w dv", r.x->g, (const float[]){0, 0, 3, 0, 5, 6, 0, 0}, 8);
        /* ds: d = -2, -2, 0 - 0.5, 1 | -1 + 1, 0 - 0.5, 1, 1; gscale 1/sqrt(4 * 1) = 0.5
         * ch 0: (-2 - 4 - 1.5 + 4) 0.5 = -1.75; ch 1: (0 - 3 + 7 + 8) 0.5 = 6 */
        expect("lsq w ds", r.n.param->g, (const float[]){-1.75f, 6}, 2);
        qat_graph_backward_seeded(&r.g);
        expect("lsq w ds twice", r.n.param->g, (const float[]){-3.5f, 12}, 2);
        expect("lsq w dv twice", r.x->g, (const float[]){0, 0, 6, 0, 10, 12, 0, 0}, 8);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.lo == -2 && lv.hi == 1 && lv.step == 1 && lv.per_channel == 1 && lv.nscale == 2 && !lv.zero,
              "lsq w codebook");
        expect("lsq w scales", lv.scale, (const float[]){0.5f, 0.25f}, 2);
        qat_graph_free(&r.g);
    }
    /* weights, b = 3 per tensor: Qn = 4, Qp = 3 */
    s = spec("lsq", 3);
    const float w10[10] = {-3, -2, -0.75f, -0.25f, 0, 0.25f, 0.75f, 1.25f, 1.5f, 2};
    float g10[10];
    for (int i = 0; i < 10; i++) g10[i] = (float)(i + 1);
    if (rig_build(&r, &s, QAT_QROLE_WEIGHT, 2, 5, 1)) {
        rig_set(&r, w10);
        /* s0 = 2 mean|W| / sqrt(3) = 2 (11.75/10) / sqrt 3 = 1.356773 */
        CHECK(r.n.param->x[0] == 2.0f * (float)(11.75 / 10) / sqrtf(3.0f), "lsq w init %.9g, want 1.356773",
              r.n.param->x[0]);
        r.n.param->x[0] = 0.5f;
        rig_run(&r, 1, g10);
        /* v/s = -6, -4, -1.5, -0.5, 0, 0.5, 1.5, 2.5, 3, 4 -> clip [-4, 3], round:
         * -4, -4, -2, -0, 0, 0, 2, 2, 3, 3 */
        expect("lsq w3 y", r.y->x, (const float[]){-2, -2, -1, 0, 0, 0, 1, 1, 1.5f, 1.5f}, 10);
        expect("lsq w3 dv", r.x->g, (const float[]){0, 0, 3, 4, 5, 6, 7, 8, 0, 0}, 10);
        /* d = -4, -4, -0.5, 0.5, 0, -0.5, 0.5, -0.5, 3, 3; sum g d =
         * -4 - 8 - 1.5 + 2 + 0 - 3 + 3.5 - 4 + 27 + 30 = 42; ds = 42 / sqrt(10 * 3) = 7.668116 */
        CHECK(r.n.param->g[0] == 42.0f * (1.0f / sqrtf(30.0f)), "lsq w3 ds %.9g, want 7.6681158",
              r.n.param->g[0]);
        qat_graph_free(&r.g);
    }
    /* activations, unsigned b = 2: Qn = 0, Qp = 3; N = 3 features per image */
    s = spec("lsq", 2);
    const float xa[6] = {0.75f, 2, 3, 0, -1, 1.25f};
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 3, 1)) {
        rig_set(&r, xa);
        CHECK(r.n.param->x[0] == 1 && extra(&r)[0] == 0, "lsq act: step 1 and uninitialised before training");
        /* eval before the first training batch: s = 1, no initialisation:
         * round(clip(x, 0, 3)) = 1 (0.75), 2, 3, 0, 0, 1 (1.25) */
        rig_run(&r, 0, NULL);
        expect("lsq act eval uninit y", r.y->x, (const float[]){1, 2, 3, 0, 0, 1}, 6);
        CHECK(r.n.param->x[0] == 1 && extra(&r)[0] == 0, "lsq act: eval must not initialise the step");
        /* first training batch: s = 2 mean|x| / sqrt 3 = 2 (8/6) / sqrt 3 = 1.5396 */
        rig_run(&r, 1, NULL);
        float s0 = 2.0f * (float)(8.0 / 6) / sqrtf(3.0f);
        CHECK(r.n.param->x[0] == s0 && extra(&r)[0] == 1, "lsq act init %.9g, want 1.5396", r.n.param->x[0]);
        /* x/s = 0.487, 1.299, 1.949, 0, -, 0.812 -> 0, 1, 2, 0, 0, 1 */
        expect("lsq act init y", r.y->x, (const float[]){0, s0, 2 * s0, 0, 0, s0}, 6);
        /* a chosen step stays (no re-initialisation): s = 0.5, x/s = 1.5, 4, 6, 0, -2, 2.5
         * -> clip [0, 3], round: 2, 3, 3, 0, 0, 2 */
        r.n.param->x[0] = 0.5f;
        rig_run(&r, 1, (const float[]){1, 2, 3, 4, 5, 6});
        expect("lsq act y", r.y->x, (const float[]){1, 1.5f, 1.5f, 0, 0, 1}, 6);
        /* dv = g 1{0 < v/s < 3}: v = 0 sits at -Qn = 0 and passes nothing */
        expect("lsq act dv", r.x->g, (const float[]){1, 0, 0, 0, 0, 6}, 6);
        /* d = 0.5, 3, 3, 0, 0, -0.5: 0.5 + 6 + 9 - 3 = 12.5; gscale 1/sqrt(3 * 3) */
        CHECK(r.n.param->g[0] == 12.5f * (1.0f / sqrtf(9.0f)), "lsq act ds %.9g, want 4.1666667", r.n.param->g[0]);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.lo == 0 && lv.hi == 3 && lv.nscale == 1 && lv.scale[0] == 0.5f, "lsq act codebook");
        qat_graph_free(&r.g);
    }
    /* signed activations, b = 2: Qn = 2, Qp = 1; s = 1:
     * x = -3, -0.5, 0.5, 1, -2, -1.5 -> -2, -0, 0, 1, -2, -2 */
    SET_OPT(&s, "act_signed", 1);
    if (rig_build(&r, &s, QAT_QROLE_ACT, 2, 3, 1)) {
        rig_set(&r, (const float[]){-3, -0.5f, 0.5f, 1, -2, -1.5f});
        rig_run(&r, 1, NULL);
        r.n.param->x[0] = 1;
        rig_run(&r, 1, (const float[]){1, 2, 3, 4, 5, 6});
        expect("lsq signed act y", r.y->x, (const float[]){-2, 0, 0, 1, -2, -2}, 6);
        expect("lsq signed act dv", r.x->g, (const float[]){0, 2, 3, 0, 0, 6}, 6);
        qat_levels lv;
        r.n.spec.q->levels(&r.n, &lv);
        CHECK(lv.lo == -2 && lv.hi == 1, "lsq signed act codebook %d..%d", lv.lo, lv.hi);
        qat_graph_free(&r.g);
    }
}

/* ---- the contract: every output is level * scale of the codebook --------------------- */
static int on_codebook(const qat_levels *lv, int c, float y)
{
    float s = lv->scale[lv->nscale > 1 ? c : 0];
    if (lv->table) {
        for (int k = 0; k < lv->ntable; k++)
            if ((float)lv->table[k] * s == y) return 1;
        return 0;
    }
    float z = lv->zero ? lv->zero[lv->nscale > 1 ? c : 0] : 0;
    if (z != rintf(z) || lv->step < 1) return 0;
    long lo = lv->lo - (long)z, hi = lv->hi - (long)z;
    if (s == 0) return y == 0;
    long l0 = lrintf(y / s);
    for (long l = l0 - 1; l <= l0 + 1; l++)
        if (l >= lo && l <= hi && (l - lo) % lv->step == 0 && (float)l * s == y) return 1;
    return 0;
}

static void contract_case(const qat_quantizer *q, qat_qrole role, int bits, int per_channel, int symmetric,
                          int signed_act, qat_rng *rng)
{
    qat_qspec s;
    qat_qspec_default(&s);
    s.q = q;
    s.bits = bits;
    s.per_channel = per_channel;
    (void)qat_qspec_set(&s, "symmetric", symmetric);   /* the methods that have these settings */
    (void)qat_qspec_set(&s, "act_signed", signed_act);
    rig r;
    const int rows = 4, cols = 9;
    if (!rig_build(&r, &s, role, rows, cols, 3)) return;
    float x[36], g[36];
    for (int i = 0; i < 36; i++) x[i] = 1.5f * qat_rng_normal(rng);
    rig_set(&r, x);
    if (r.n.param && strcmp(q->name, "pact") == 0) r.n.param->x[0] = 1.7f;
    /* an annealed method (AQE) mixes in the float input until its schedule
     * ends; the contract holds from there on (and always in eval) */
    if (q->schedule) q->schedule(&r.n, 100, 100);
    char what[96];
    snprintf(what, sizeof what, "%s %s %d bits pc %d sym %d signed %d", q->name,
             role == QAT_QROLE_WEIGHT ? "W" : "A", bits, per_channel, symmetric, signed_act);
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < 36; i++) {
            g[i] = qat_rng_normal(rng);
            if (pass) x[i] = 1.5f * qat_rng_normal(rng);
        }
        if (pass) memcpy(r.x->x, x, sizeof x);
        rig_run(&r, pass < 2, g);
        qat_levels lv;
        q->levels(&r.n, &lv);
        /* methods without per-channel scales keep one for every channel */
        CHECK((lv.nscale == 1 && !lv.per_channel) || (lv.nscale == r.n.channels && lv.per_channel),
              "%s: codebook has %d scales (per_channel %d) for %d channels", what, lv.nscale, lv.per_channel,
              r.n.channels);
        size_t S = r.y->n / (size_t)lv.nscale;
        for (size_t i = 0; i < r.y->n; i++) {
            int c = (int)(i / S);
            if (!on_codebook(&lv, c, r.y->x[i])) {
                CHECK(0, "%s pass %d: y[%zu] = %.9g (x %.9g) is not level * scale %.9g of the codebook", what, pass, i,
                      r.y->x[i], r.x->x[i], lv.scale[lv.nscale > 1 ? c : 0]);
                break;
            }
        }
        for (size_t i = 0; i < r.x->n; i++)
            if (!isfinite(r.x->g[i])) {
                CHECK(0, "%s: non-finite gradient", what);
                break;
            }
    }
    qat_graph_free(&r.g);
}

static void test_contract(void)
{
    qat_rng rng;
    qat_rng_seed(&rng, 2024);
    int cases = 0;
    for (int k = 0; k < qat_quantizer_count; k++) {
        const qat_quantizer *q = qat_quantizers[k];
        if (q->owns_weights) continue; /* no float input: built by qat_quantize_owned, not qat_quantize */
        if (!q->levels) continue;      /* no integer codebook (alq_act's x_ref + D gamma): test_alq_node */
        int bl[3] = {q->min_bits, q->default_bits, q->max_bits};
        for (int b = 0; b < 3; b++) {
            if ((b == 1 && bl[1] == bl[0]) || (b == 2 && (bl[2] == bl[1] || bl[2] == bl[0]))) continue;
            for (int sym = 0; sym < 2; sym++) {
                if (q->roles & QAT_QROLE_WEIGHT)
                    for (int pc = 0; pc < 2; pc++, cases++) contract_case(q, QAT_QROLE_WEIGHT, bl[b], pc, sym, 0, &rng);
                if (q->roles & QAT_QROLE_ACT)
                    for (int sg = 0; sg < 2; sg++, cases++) contract_case(q, QAT_QROLE_ACT, bl[b], 0, sym, sg, &rng);
            }
        }
    }
    printf("codebook contract: %d configurations\n", cases);
}

/* ---- [quant] keys ------------------------------------------------------------------------ */
static qat_status parse(const char *text, qat_qspec *w, qat_qspec *a)
{
    qat_cfg c;
    qat_qspec_default(w);
    qat_qspec_default(a);
    qat_status st = qat_cfg_parse_text(&c, "q.cfg", text, strlen(text));
    CHECK(st == QAT_OK && c.nsec == 1, "cfg parse: %s", qat_last_error());
    if (st != QAT_OK) return st;
    st = qat_qspec_parse(&c, &c.sec[0], w, a);
    qat_cfg_free(&c);
    return st;
}

static void expect_error(const char *text, const char *want1, const char *want2)
{
    qat_qspec w, a;
    qat_status st = parse(text, &w, &a);
    const char *msg = st ? qat_last_error() : "";
    CHECK(st == QAT_ERR_CONFIG, "'%s': status %d, want a config error", text, (int)st);
    CHECK(strstr(msg, want1), "'%s': message '%s' lacks '%s'", text, msg, want1);
    if (want2) CHECK(strstr(msg, want2), "'%s': message '%s' lacks '%s'", text, msg, want2);
}

/* an unknown name lists exactly the methods of that role */
static void known_names(const char *text, qat_qrole role)
{
    qat_qspec w, a;
    if (parse(text, &w, &a) != QAT_ERR_CONFIG) return; /* expect_error reports it */
    const char *msg = qat_last_error();
    for (int i = 0; i < qat_quantizer_count; i++) {
        char t1[64], t2[64];
        snprintf(t1, sizeof t1, ", %s,", qat_quantizers[i]->name);
        snprintf(t2, sizeof t2, ", %s)", qat_quantizers[i]->name);
        int listed = strstr(msg, t1) || strstr(msg, t2), want = (qat_quantizers[i]->roles & role) != 0;
        CHECK(listed == want, "'%s' %s listed in '%s'", qat_quantizers[i]->name, want ? "not" : "wrongly", msg);
    }
}

static void test_parse(void)
{
    qat_qspec w, a;
    qat_status st = parse("[quant]\nweight = lsq\nact = pact\nbits = 3\nact_bits = 4\nper_channel = 1\n", &w, &a);
    CHECK(st == QAT_OK, "parse: %s", qat_last_error());
    CHECK(w.q == qat_quantizer_find("lsq") && a.q == qat_quantizer_find("pact"), "methods");
    CHECK(w.bits == 3 && a.bits == 4, "bits %d / act_bits %d, want 3 / 4", w.bits, a.bits);
    CHECK(w.per_channel == 1 && a.per_channel == 0, "per_channel applies to weights only");

    st = parse("[quant]\nweight = uniform\nact = uniform\nweight_bits = 6\nsymmetric = 0\nact_signed = 1\n"
               "act_range = minmax\nmomentum = 0.25\nrounding = stochastic\npact_alpha = 6\n",
               &w, &a);
    CHECK(st == QAT_OK, "parse: %s", qat_last_error());
    CHECK(w.bits == 6 && a.bits == 0 && qat_qspec_bits(&a) == 8, "weight_bits only: %d %d", w.bits, a.bits);
    CHECK(qat_qspec_get(&w, "symmetric") == 0 && qat_qspec_get(&a, "symmetric") == 0 &&
              qat_qspec_get(&a, "act_signed") == 1,
          "symmetric / act_signed");
    CHECK(qat_qspec_get(&a, "act_range") == QAT_QRANGE_MINMAX && qat_qspec_get(&a, "momentum") == 0.25f &&
              qat_qspec_get(&w, "momentum") == 0.25f,
          "act_range / momentum");
    CHECK(qat_qspec_get(&a, "rounding") == 1 && qat_qspec_get(&w, "rounding") == 1, "rounding");

    st = parse("[quant]\nweight = float\nact = none\n", &w, &a);
    CHECK(st == QAT_OK && !w.q && !a.q && qat_qspec_bits(&w) == 32, "float / none");
    st = parse("[quant]\nweight = xnor\n", &w, &a);
    CHECK(st == QAT_OK && qat_qspec_bits(&w) == 1, "xnor default bits");

    expect_error("[quant]\nbits = 2\nweight = lsqq\n", "q.cfg:3:", "lsqq");
    expect_error("[quant]\nbits = 2\nweight = lsqq\n", "no such quantizer", "for weights: float, ste_sign, xnor");
    expect_error("[quant]\nact = foo\n", "q.cfg:2:", "for activations: float, ste_sign, approx_sign, ternary");
    known_names("[quant]\nbits = 2\nweight = lsqq\n", QAT_QROLE_WEIGHT);
    known_names("[quant]\nact = foo\n", QAT_QROLE_ACT);
    expect_error("[quant]\nweight = lsq\nact = xnor\n", "q.cfg:3:", "does not apply to activations");
    expect_error("[quant]\nweight = pact\n", "q.cfg:2:", "does not apply to weights");
    expect_error("[quant]\nweight = xnor\nbits = 2\n", "xnor", "takes 1 to 1 bits, got 2");
    expect_error("[quant]\nact = lsq\nact_bits = 1\n", "lsq", "takes 2 to 16 bits, got 1");
    expect_error("[quant]\nweight = ternary\nweight_bits = 3\n", "ternary", "got 3");
    expect_error("[quant]\nweight = uniform\nweight_bits = 17\n", "q.cfg:3:", "weight_bits");
    expect_error("[quant]\nact = uniform\nact_range = median\n", "q.cfg:3:", "minmax");
}

int main(void)
{
    test_sign();
    test_xnor();
    test_ternary();
    test_uniform_weights();
    test_uniform_acts();
    test_stochastic();
    test_dorefa();
    test_dorefa_grad();
    test_pact();
    test_lsq();
    test_contract();
    test_parse();
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all quantizer tests passed\n");
    return 0;
}
