/* gradcheck.c: finite-difference check of analytic gradients. The probe
 * loss L = sum(out * r) is accumulated in double so that the difference
 * quotient measures the ops, not the rounding of the sum. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

/* every probe replays the same random draws (dropout, stochastic ops) */
static double probe(qat_graph *g, const qat_tensor *out, const float *r, const qat_rng *rng0)
{
    g->rng = *rng0;
    qat_graph_forward(g);
    double s = 0;
    for (size_t i = 0; i < out->n; i++) s += (double)out->x[i] * r[i];
    return s;
}

double qat_gradcheck(qat_graph *g, qat_tensor *out, qat_tensor **wrt, int nwrt, float eps,
                     int max_elems, double floor, char *report, size_t report_cap)
{
    float *r = malloc(out->n * sizeof(float));
    qat_rng rng;
    qat_rng_seed(&rng, 12345);
    for (size_t i = 0; i < out->n; i++) r[i] = qat_rng_uniform(&rng) * 2 - 1;

    /* analytic: seed out->g with r and run backward from out */
    qat_rng rng0 = g->rng;
    qat_graph_zero_grad(g);
    qat_graph_forward(g);
    QAT_ASSERT(out->g);
    memcpy(out->g, r, out->n * sizeof(float));
    qat_graph_backward_seeded(g);

    double worst = 0;
    if (report && report_cap) report[0] = 0;
    for (int k = 0; k < nwrt; k++) {
        qat_tensor *t = wrt[k];
        QAT_ASSERT(t->g);
        size_t n = t->n, step = n > (size_t)max_elems ? n / (size_t)max_elems : 1;
        float *ga = malloc(n * sizeof(float));
        memcpy(ga, t->g, n * sizeof(float));
        for (size_t i = 0; i < n; i += step) {
            float v = t->x[i];
            t->x[i] = v + eps;
            double lp = probe(g, out, r, &rng0);
            t->x[i] = v - eps;
            double lm = probe(g, out, r, &rng0);
            t->x[i] = v;
            double num = (lp - lm) / (2.0 * (double)eps), ana = ga[i];
            double den = fabs(num) + fabs(ana);
            double err = fabs(num - ana) / (den > floor ? den : floor);
            if (err > worst) {
                worst = err;
                if (report)
                    snprintf(report, report_cap, "%s[%zu]: analytic %.6g numeric %.6g (rel %.3g)", t->name, i,
                             ana, num, err);
            }
        }
        free(ga);
    }
    probe(g, out, r, &rng0);
    free(r);
    return worst;
}
