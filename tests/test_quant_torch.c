/* test_quant_torch.c: LSQ, PACT and DoReFa against PyTorch 1.13. For each
 * case of quant.bin (written once by tests/fixtures/quant/gen_quant.py) it
 * runs the quantizer on the fixture's input in a training-mode graph and
 * compares the forward output, the gradient wrt the input and the gradient
 * wrt the step / clip for the fixture's upstream gradient; for LSQ also the
 * initial step 2 mean|v| / sqrt(Qp).
 * Usage: test_quant_torch FIXTURE_DIR   (exit 0 pass, 1 fail) */
#include "fixture.h"
#include "quantizer.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "qat_test.h"


/* Tolerances.
 * Forward: per element |got - want| <= TOL_Y |want|: both sides produce
 * level * scale with the same level, so only the last bits of the scale's
 * arithmetic may differ (a level off by one is a whole step).
 * Input gradient: max_i |got - want| / max_i |want| (the tensor's largest
 * magnitude; the reference computes dy * s / s and the like).
 * Step / clip gradient (sums): per component, relative to the largest
 * component; PyTorch's float32 autograd sums with cancellation (lsq_a2_u's
 * dstep is 4.9e-5 from float64; gen_quant.py prints these figures).
 * Initial LSQ step: relative, per component. */
#define TOL_Y 1e-6
#define TOL_DX 1e-5
#define TOL_DP 1e-4
#define TOL_INIT 1e-6


typedef struct {
    const char *name, *method;
    qat_qrole role;
    int bits, per_channel, signed_act;
} qcase;

static const int W_SHAPE[4] = {8, 3, 3, 3}, A_SHAPE[2] = {4, 50};

static const qcase cases[] = {
    {"lsq_w2_t", "lsq", QAT_QROLE_WEIGHT, 2, 0, 0},   {"lsq_w4_t", "lsq", QAT_QROLE_WEIGHT, 4, 0, 0},
    {"lsq_w2_c", "lsq", QAT_QROLE_WEIGHT, 2, 1, 0},   {"lsq_w4_c", "lsq", QAT_QROLE_WEIGHT, 4, 1, 0},
    {"lsq_a2_u", "lsq", QAT_QROLE_ACT, 2, 0, 0},      {"lsq_a3_s", "lsq", QAT_QROLE_ACT, 3, 0, 1},
    {"pact_a2", "pact", QAT_QROLE_ACT, 2, 0, 0},      {"pact_a4", "pact", QAT_QROLE_ACT, 4, 0, 0},
    {"dorefa_w1", "dorefa", QAT_QROLE_WEIGHT, 1, 0, 0}, {"dorefa_w2", "dorefa", QAT_QROLE_WEIGHT, 2, 0, 0},
    {"dorefa_w4", "dorefa", QAT_QROLE_WEIGHT, 4, 0, 0}, {"dorefa_a2", "dorefa", QAT_QROLE_ACT, 2, 0, 0},
};


/* The float record CASE.field with the given shape, or NULL after a failure. */
static const float *need(const fixture *fx, const char *cname, const char *field, int ndim, const int *dims)
{
    char name[80];
    snprintf(name, sizeof name, "%s.%s", cname, field);
    for (int k = 0; k < fx->n; k++) {
        const record *r = &fx->r[k];
        if (strcmp(r->name, name) != 0) continue;
        int ok = r->ndim == ndim;
        for (int d = 0; ok && d < ndim; d++) ok = r->dims[d] == dims[d];
        CHECK(ok, "fixture record '%s' has the wrong shape", name);
        return ok ? r->f : NULL;
    }
    CHECK(0, "fixture has no record '%s'", name);
    return NULL;
}

/* Prints one element of a failed comparison with its input and parameter. */
static void detail(const char *cname, const char *what, size_t i, const float *x, const float *param, int S,
                   double got, double want)
{
    printf("    %s %s[%zu]: x %.9g param %.9g: qat %.9g, torch %.9g\n", cname, what, i, (double)x[i],
           param ? (double)param[i / (size_t)S] : 0.0, got, want);
}

/* After an LSQ failure: the elements where v / s (the paper, PyTorch) and
 * v * (1/s) in float32 give a different level or a different side of a
 * clip boundary; a disagreement confined to them is that difference. */
static void lsq_suspects(const char *cname, const float *x, const float *par, int C, int S, float qn, float qp)
{
    int shown = 0, total = 0;
    for (int c = 0; c < C; c++) {
        float s = par[c], inv = 1.0f / s;
        for (int j = 0; j < S; j++) {
            float vd = x[(size_t)c * S + j] / s, vm = x[(size_t)c * S + j] * inv;
            if (rintf(fminf(fmaxf(vd, -qn), qp)) == rintf(fminf(fmaxf(vm, -qn), qp)) &&
                (vd <= -qn) == (vm <= -qn) && (vd >= qp) == (vm >= qp))
                continue;
            total++;
            if (shown++ < 12)
                printf("    %s [%d]: x %.9g s %.9g: x / s = %.9g, x * (1/s) = %.9g\n", cname, c * S + j,
                       (double)x[(size_t)c * S + j], (double)s, (double)vd, (double)vm);
        }
    }
    printf("    %s: %d element%s where x / s and x * (1/s) round or clip differently\n", cname, total,
           total == 1 ? "" : "s");
}

/* Forward: per element relative; returns max |got - want|. */
static double cmp_y(const char *cname, const float *got, const float *want, size_t n, const float *x,
                    const float *param, int S)
{
    double dmax = 0;
    size_t bad = 0, first = n;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        dmax = fmax(dmax, d);
        if (!(d <= TOL_Y * fabs(want[i]))) {
            if (first == n) first = i;
            bad++;
        }
    }
    CHECK(bad == 0, "%s forward: %zu of %zu elements differ beyond %.0e relative (max abs %.3g)", cname, bad, n,
          TOL_Y, dmax);
    for (size_t i = first, shown = 0; i < n && shown < 8; i++)
        if (!(fabs((double)got[i] - want[i]) <= TOL_Y * fabs(want[i])))
            detail(cname, "y", i, x, param, S, got[i], want[i]), shown++;
    return dmax;
}

/* Gradient wrt the input: max abs error over the tensor's max magnitude. */
static double cmp_dx(const char *cname, const float *got, const float *want, size_t n, const float *x,
                     const float *param, int S)
{
    double dmax = 0, amax = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= dmax)) dmax = d;
        amax = fmax(amax, fabs(want[i]));
    }
    double err = dmax / fmax(amax, 1e-30);
    CHECK(err <= TOL_DX, "%s dx: max rel err %.3g > %.0e", cname, err, TOL_DX);
    for (size_t i = 0, shown = 0; !(err <= TOL_DX) && i < n && shown < 8; i++)
        if (fabs((double)got[i] - want[i]) > TOL_DX * amax) detail(cname, "dx", i, x, param, S, got[i], want[i]), shown++;
    return err;
}

/* Vectors of C parameters (sums): relative to the largest component. */
static double cmp_vec(const char *cname, const char *what, const float *got, const float *want, int C,
                      double tol, int per_component)
{
    double amax = 0, err = 0;
    for (int c = 0; c < C; c++) amax = fmax(amax, fabs(want[c]));
    for (int c = 0; c < C; c++) {
        double ref = per_component ? fabs(want[c]) : amax;
        double e = fabs((double)got[c] - want[c]) / fmax(ref, 1e-30);
        if (!(e <= err)) err = e;
    }
    CHECK(err <= tol, "%s %s: max rel err %.3g > %.0e", cname, what, err, tol);
    for (int c = 0; !(err <= tol) && c < C; c++)
        if (!(fabs((double)got[c] - want[c]) <= tol * (per_component ? fabs(want[c]) : amax)))
            printf("    %s %s[%d]: qat %.9g, torch %.9g\n", cname, what, c, got[c], want[c]);
    return err;
}

static void run_case(const fixture *fx, const qcase *k)
{
    int isw = k->role == QAT_QROLE_WEIGHT;
    int ndim = isw ? 4 : 2;
    const int *shape = isw ? W_SHAPE : A_SHAPE;
    int C = k->per_channel ? shape[0] : 1;
    int haspar = strcmp(k->method, "dorefa") != 0, islsq = strcmp(k->method, "lsq") == 0;
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    int S = (int)(n / (size_t)C);
    int pshape[1] = {C}, mshape[1] = {4};

    const float *meta = need(fx, k->name, "meta", 1, mshape);
    const float *x = need(fx, k->name, "x", ndim, shape), *dy = need(fx, k->name, "dy", ndim, shape);
    const float *y = need(fx, k->name, "y", ndim, shape), *dx = need(fx, k->name, "dx", ndim, shape);
    const float *par = haspar ? need(fx, k->name, "param", 1, pshape) : NULL;
    const float *dpar = haspar ? need(fx, k->name, "dparam", 1, pshape) : NULL;
    const float *init = islsq ? need(fx, k->name, "init", 1, pshape) : NULL;
    if (!meta || !x || !dy || !y || !dx || (haspar && (!par || !dpar)) || (islsq && !init)) return;
    int mok = meta[0] == (float)k->bits && meta[1] == (float)k->per_channel && meta[2] == (float)k->signed_act &&
              meta[3] == (float)k->role;
    CHECK(mok, "%s: fixture meta (bits %g, per_channel %g, signed %g, role %g) is not this test's case", k->name,
          meta[0], meta[1], meta[2], meta[3]);
    if (!mok) return;

    int failed_before = failures;
    qat_graph g;
    if (qat_graph_init(&g, 1, 1, 42) != QAT_OK) {
        CHECK(0, "%s: qat_graph_init failed", k->name);
        return;
    }
    qat_tensor *xt = qat_graph_param(&g, "x", ndim, shape, QAT_T_PARAM);
    qat_qspec s;
    qat_qspec_default(&s);
    s.q = qat_quantizer_find(k->method);
    s.bits = k->bits;
    s.per_channel = k->per_channel;
    (void)qat_qspec_set(&s, "act_signed", k->signed_act); /* the methods that have these settings */
    (void)qat_qspec_set(&s, "pact_alpha", 1.7f);
    qat_qnode qn;
    qat_tensor *yt = s.q && xt ? qat_quantize(&g, &qn, &s, k->role, xt, "q") : NULL;
    int ok = yt && yt != xt && qat_graph_compile(&g, &yt, 1) == QAT_OK && yt->n == n && xt->g &&
             (!haspar || (qn.param && qn.param->g && qn.param->n == (size_t)C));
    CHECK(ok, "%s: building the graph failed", k->name);
    if (!ok) {
        qat_graph_free(&g);
        return;
    }
    memcpy(xt->x, x, n * sizeof *x);
    qat_qnode_init(&qn, &g.rng); /* LSQ weights: the initial step from x */
    qat_graph_set_training(&g, 1);
    double einit = 0;
    if (islsq) {
        if (!isw) qat_graph_forward(&g); /* LSQ activations: from the first training batch */
        einit = cmp_vec(k->name, "initial step", qn.param->x, init, C, TOL_INIT, 1);
    }
    if (haspar) memcpy(qn.param->x, par, (size_t)C * sizeof *par);
    if (!islsq) CHECK(!haspar || par[0] == 1.7f, "%s: fixture alpha %.9g is not 1.7f", k->name, par[0]);
    qat_graph_zero_grad(&g);
    qat_graph_forward(&g);
    memcpy(yt->g, dy, n * sizeof *dy);
    qat_graph_backward_seeded(&g);

    double ey = cmp_y(k->name, yt->x, y, n, x, par, S);
    double edx = cmp_dx(k->name, xt->g, dx, n, x, par, S);
    double edp = haspar ? cmp_vec(k->name, islsq ? "dstep" : "dalpha", qn.param->g, dpar, C, TOL_DP, 0) : 0;
    if (islsq && failures > failed_before) {
        int signed_levels = isw || k->signed_act;
        float lo = signed_levels ? (float)(1 << (k->bits - 1)) : 0.0f;
        float qp = signed_levels ? (float)((1 << (k->bits - 1)) - 1) : (float)((1 << k->bits) - 1);
        lsq_suspects(k->name, x, par, C, S, lo, qp);
    }
    printf("%-10s y max abs %.3g  dx rel %.3g", k->name, ey, edx);
    if (haspar) printf("  d%s rel %.3g", islsq ? "step" : "alpha", edp);
    if (islsq) printf("  init rel %.3g", einit);
    printf("\n");
    qat_qnode_free(&qn);
    qat_graph_free(&g);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/quant.bin", argv[1]);
    fixture fx;
    if (fixture_read(&fx, path, "qatquant", "/usr/bin/python3 tests/fixtures/quant/gen_quant.py") != 0) {
        printf("FAIL: cannot use the fixture %s\n", path);
        return 1;
    }
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) run_case(&fx, &cases[k]);
    fixture_free(&fx);
    printf("%s (%d failure%s)\n", failures ? "FAIL" : "PASS", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
