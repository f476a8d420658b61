/* qrig.h: a quantizer on one float tensor, for the quantizer tests (static
 * helpers shared by test_quantizers.c and test_minw_dst.c). */
#ifndef QAT_TEST_QRIG_H
#define QAT_TEST_QRIG_H

#include <math.h>
#include <string.h>

#include "qat_test.h"
#include "quantizer.h"

/* one quantizer on one [rows, cols] tensor x (a parameter, so it has a
 * gradient); the rig must not move once built (the op points at n) */
typedef struct {
    qat_graph g;
    qat_qnode n;
    qat_tensor *x, *y;
    int ok;
} rig;

static qat_qspec spec(const char *name, int bits)
{
    qat_qspec s;
    qat_qspec_default(&s);
    s.q = qat_quantizer_find(name);
    s.bits = bits;
    return s;
}

/* one of the method's settings, by its config key */
#define SET_OPT(s, key, v) CHECK(qat_qspec_set(s, key, v) == QAT_OK, "%s", qat_last_error())

static int rig_build(rig *r, const qat_qspec *s, qat_qrole role, int rows, int cols, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    qat_graph_init(&r->g, 1, 1, seed);
    int shape[2] = {rows, cols};
    r->x = qat_graph_param(&r->g, "x", 2, shape, QAT_T_PARAM);
    r->y = qat_quantize(&r->g, &r->n, s, role, r->x, "q");
    r->ok = r->y && r->y != r->x && qat_graph_compile(&r->g, &r->y, 1) == QAT_OK;
    CHECK(r->ok, "%s: build failed: %s", s->q ? s->q->name : "?", qat_last_error());
    return r->ok;
}

/* sets x, then the node's initial values (LSQ weight steps read x) */
static void rig_set(rig *r, const float *x)
{
    memcpy(r->x->x, x, r->x->n * sizeof(float));
    qat_qnode_init(&r->n, &r->g.rng);
}

/* zero grads, forward; with dy, seeds y->g and runs the backward */
static void rig_run(rig *r, int training, const float *dy)
{
    qat_graph_set_training(&r->g, training);
    qat_graph_zero_grad(&r->g);
    qat_graph_forward(&r->g);
    if (dy) {
        memcpy(r->y->g, dy, r->y->n * sizeof(float));
        qat_graph_backward_seeded(&r->g);
    }
}

static void expect(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECK(got[i] == want[i], "%s[%zu]: got %.9g, want %.9g", what, i, got[i], want[i]);
}

static void expect_near(const char *what, const float *got, const double *want, size_t n, double rel)
{
    for (size_t i = 0; i < n; i++)
        CHECK(fabs(got[i] - want[i]) <= rel * fabs(want[i]) + 1e-12, "%s[%zu]: got %.9g, want %.9g", what, i,
              got[i], want[i]);
}

#endif
