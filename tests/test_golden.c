/* test_golden.c: one training step of LeNet-5 (configs/mnist/lenet5_fp32.cfg)
 * on a fixed batch against PyTorch 1.13: the loss, every parameter gradient
 * and the BN running statistics, with 1 and 2 threads. The fixture,
 * lenet5.bin, is written once by tests/fixtures/golden/gen_golden.py.
 * Usage: test_golden FIXTURE_DIR [CFG]   (exit 0 pass, 1 fail) */
#include "fixture.h"
#include "netcfg.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define BATCH 32

/* Tolerances. A gradient is compared as a whole: its error is
 * max_i |g_qat[i] - g_torch[i]| / max(max_i |g_torch[i]|, TINY), i.e. relative
 * to the tensor's largest magnitude, because elements near zero carry only the
 * rounding noise of long sums and have no meaningful relative error of their
 * own (the elementwise-relative maximum is printed for information only).
 * float32 PyTorch itself is within ~6e-6 of float64 in this measure. */
#define TOL_LOSS 1e-4
#define TOL_GRAD 1e-4
#define TOL_STAT 1e-5
#define TINY 1e-30

static int failures;


/* The record `name` with the given dtype (F16 and F32 both count as float)
 * and shape, or NULL after a message. */
static const record *need(const fixture *fx, const char *name, int isfloat, int ndim,
                          const int *dims)
{
    for (int k = 0; k < fx->n; k++) {
        const record *r = &fx->r[k];
        if (strcmp(r->name, name) != 0) continue;
        int ok = (isfloat ? r->f != NULL : r->i != NULL) && r->ndim == ndim;
        for (int d = 0; ok && d < ndim; d++) ok = r->dims[d] == dims[d];
        if (!ok) {
            fprintf(stderr, "FAIL fixture record '%s' has the wrong dtype or shape\n", name);
            failures++;
            return NULL;
        }
        return r;
    }
    fprintf(stderr, "FAIL fixture has no record '%s'\n", name);
    failures++;
    return NULL;
}

/* Compares got[] with want[] by the per-tensor measure above; prints a line. */
static void compare(const char *what, const float *got, const float *want, size_t n, double tol,
                    int threads)
{
    double amax = 0, dmax = 0, emax = 0, gmax = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        finite &= isfinite(got[i]) != 0;
        amax = fmax(amax, fabs(want[i]));
        gmax = fmax(gmax, fabs(got[i]));
        dmax = fmax(dmax, d);
        emax = fmax(emax, d / fmax(fabs(want[i]), TINY));
    }
    double err = dmax / fmax(amax, TINY);
    /* an all-zero tensor (on either side) would make the comparison vacuous */
    int ok = finite && err <= tol && amax > 0 && gmax > 0;
    printf("%-4s t%d %-24s n=%-6zu max|want| %.3e  err %.3e  (elementwise max %.3e)\n",
           ok ? "ok" : "FAIL", threads, what, n, amax, err, emax);
    if (!ok) failures++;
}

/* One forward + backward at `threads` threads, checked against the fixture. */
static void run(const fixture *fx, const char *cfg_path, int threads)
{
    qat_cfg cfg;
    qat_net_cfg net;
    qat_layer *layers = NULL;
    int nl = 0;
    qat_model m;
    qat_status st = qat_cfg_parse_file(&cfg, cfg_path);
    if (st == QAT_OK) {
        st = qat_netcfg_read(&cfg, &net, &layers, &nl);
        if (st == QAT_OK) st = qat_model_build(&m, layers, nl, 1, 28, 28, BATCH, threads, net.seed);
    }
    if (st != QAT_OK) {
        fprintf(stderr, "FAIL building %s: %s\n", cfg_path, qat_last_error());
        failures++;
        qat_cfg_free(&cfg);
        return;
    }

    int xs[4] = {BATCH, 1, 28, 28}, ys[1] = {BATCH};
    const record *x = need(fx, "input", 1, 4, xs), *y = need(fx, "labels", 0, 1, ys);
    int bad_labels = 0;
    for (int i = 0; y && i < BATCH; i++) bad_labels |= y->i[i] < 0 || y->i[i] >= m.nclass;
    if (bad_labels) {
        fprintf(stderr, "FAIL fixture labels outside 0..%d\n", m.nclass - 1);
        failures++;
    }
    /* every parameter and buffer of the model must come from the fixture */
    int loaded = 0;
    for (int k = 0; k < m.g.nall; k++) {
        qat_tensor *t = m.g.all[k];
        if (!(t->flags & (QAT_T_PARAM | QAT_T_BUFFER))) continue;
        const record *r = need(fx, t->name, 1, t->ndim, t->shape);
        if (r) memcpy(t->x, r->f, t->n * sizeof *t->x);
        loaded += r != NULL;
    }
    if (!x || !y || bad_labels || loaded != 17) {
        fprintf(stderr, "FAIL fixture does not fit the model (%d of 17 tensors loaded)\n", loaded);
        failures++;
        qat_model_free(&m);
        qat_cfg_free(&cfg);
        return;
    }
    memcpy(m.input->x, x->f, x->n * sizeof *x->f);
    memcpy(m.labels, y->i, BATCH * sizeof *m.labels);

    qat_graph_set_batch(&m.g, BATCH);
    qat_graph_set_training(&m.g, 1);
    qat_graph_zero_grad(&m.g);
    qat_graph_forward(&m.g);
    qat_graph_backward(&m.g, m.loss);

    const record *loss = need(fx, "loss", 1, 0, NULL);
    if (loss) {
        double got = m.loss->x[0], want = loss->f[0];
        double err = fabs(got - want) / fmax(fabs(want), TINY);
        int ok = isfinite(got) && err <= TOL_LOSS;
        printf("%-4s t%d %-24s got %.9g  want %.9g  err %.3e\n", ok ? "ok" : "FAIL", threads,
               "loss", got, want, err);
        if (!ok) failures++;
    }
    for (int k = 0; k < m.g.nall; k++) {
        qat_tensor *t = m.g.all[k];
        int param = (t->flags & QAT_T_PARAM) != 0;
        if (!param && !(t->flags & QAT_T_BUFFER)) continue;
        char name[64];
        snprintf(name, sizeof name, "%s/%s", param ? "grad" : "after", t->name);
        const record *r = need(fx, name, 1, t->ndim, t->shape);
        if (r && param && !t->g) {
            fprintf(stderr, "FAIL %s has no gradient\n", t->name);
            failures++;
        } else if (r) {
            compare(name, param ? t->g : t->x, r->f, t->n, param ? TOL_GRAD : TOL_STAT, threads);
        }
    }
    qat_model_free(&m);
    qat_cfg_free(&cfg);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s FIXTURE_DIR [CFG]\n", argv[0]);
        return 1;
    }
    char path[4096], cfg_path[4096];
    snprintf(path, sizeof path, "%s/lenet5.bin", argv[1]);
    if (argc == 3) snprintf(cfg_path, sizeof cfg_path, "%s", argv[2]);
    else snprintf(cfg_path, sizeof cfg_path, "%s/../../../configs/mnist/lenet5_fp32.cfg", argv[1]);

    fixture fx;
    if (fixture_read(&fx, path, "qatgold", "/usr/bin/python3 tests/fixtures/golden/gen_golden.py") != 0) return 1;
    run(&fx, cfg_path, 1);
    run(&fx, cfg_path, 2);
    fixture_free(&fx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
