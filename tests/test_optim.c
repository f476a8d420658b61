/* test_optim.c: checks optim/ against PyTorch 1.13 (fixture written by
 * tests/fixtures/optim/gen_optim.py), against a plain reference on awkward
 * sizes, and the schedules against hand-computed values.
 * Usage: test_optim FIXTURE_DIR   (exit 0 pass, 1 fail) */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat_test.h"


/* Tolerance: relative 1e-6 with an absolute floor of 1e-7, i.e. the error
 * over max(|want|, 0.1) must stay <= 1e-6; the reported figure is that. */
static double rel_err(double got, double want)
{
    return fabs(got - want) / fmax(fabs(want), 0.1);
}

static int close_enough(double got, double want)
{
    return rel_err(got, want) <= 1e-6;
}

/* Compares n values; returns the worst relative error and counts a failure
 * (once, with the first bad index) if any is out of tolerance. */
static double max_abs;

static double compare(const char *what, int step, const float *got, const float *want, size_t n)
{
    double worst = 0.0;
    int bad = -1;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, rel_err(got[i], want[i]));
        max_abs = fmax(max_abs, fabs((double)got[i] - want[i]));
        if (bad < 0 && !close_enough(got[i], want[i]))
            bad = (int)i;
    }
    CHECK(bad < 0, "%s step %d: [%d] got %.9g want %.9g (max rel err %.3g)", what, step, bad,
          bad >= 0 ? (double)got[bad] : 0.0, bad >= 0 ? (double)want[bad] : 0.0, worst);
    return worst;
}

/* ---- fixture reader -------------------------------------------------- */

#define MAXN 64
#define MAXSTEPS 8

typedef struct {
    char name[32], kind[16];
    double lr, wd, momentum, dampening, beta1, beta2, eps;
    int nesterov, n, steps;
    float w[MAXSTEPS + 1][MAXN]; /* w[0] initial, w[k] after step k */
    float g[MAXSTEPS + 1][MAXN]; /* g[k] used at step k */
    float m[MAXN], v[MAXN], vmax[MAXN];
    int has_m, has_v, has_vmax;
} fx_case;

static char line[1 << 16];

/* Reads n floats after the tag that starts line; 0 on a short or bad line. */
static int read_floats(const char *p, float *out, int n)
{
    char *end;
    for (int i = 0; i < n; i++) {
        out[i] = strtof(p, &end);
        if (end == p)
            return 0;
        p = end;
    }
    while (*p == ' ' || *p == '\n')
        p++;
    return *p == '\0';
}

static int read_case(FILE *f, fx_case *c)
{
    memset(c, 0, sizeof *c);
    if (sscanf(line, "case %31s %15s %lf %lf %lf %lf %d %lf %lf %lf %d %d", c->name, c->kind, &c->lr, &c->wd,
               &c->momentum, &c->dampening, &c->nesterov, &c->beta1, &c->beta2, &c->eps, &c->n, &c->steps) != 12 ||
        c->n < 1 || c->n > MAXN || c->steps < 1 || c->steps > MAXSTEPS)
        return 0;
    int seen_w = 0, seen_g = 0;
    while (fgets(line, sizeof line, f)) {
        char tag[16];
        int k, len;
        if (strncmp(line, "endcase", 7) == 0)
            return seen_w == c->steps + 1 && seen_g == c->steps;
        if (sscanf(line, "%15s%n", tag, &len) != 1)
            return 0;
        const char *p = line + len;
        if (sscanf(tag, "w%d", &k) == 1 && k >= 0 && k <= c->steps) {
            if (!read_floats(p, c->w[k], c->n))
                return 0;
            seen_w++;
        } else if (sscanf(tag, "g%d", &k) == 1 && k >= 1 && k <= c->steps) {
            if (!read_floats(p, c->g[k], c->n))
                return 0;
            seen_g++;
        } else if (strcmp(tag, "m") == 0) {
            c->has_m = read_floats(p, c->m, c->n);
        } else if (strcmp(tag, "v") == 0) {
            c->has_v = read_floats(p, c->v, c->n);
        } else if (strcmp(tag, "vmax") == 0) {
            c->has_vmax = read_floats(p, c->vmax, c->n);
        } else {
            return 0;
        }
    }
    return 0;
}

/* ---- the PyTorch cases ------------------------------------------------ */

static void run_case(const fx_case *c)
{
    qat_optim_kind kind;
    qat_status s = qat_optim_parse(c->kind, &kind);
    CHECK(s == QAT_OK, "%s: %s", c->name, qat_last_error());
    if (s != QAT_OK)
        return;
    qat_optim_cfg cfg;
    qat_optim_cfg_default(&cfg, kind);
    cfg.momentum = (float)c->momentum;
    cfg.dampening = (float)c->dampening;
    cfg.nesterov = c->nesterov;
    cfg.beta1 = (float)c->beta1;
    cfg.beta2 = (float)c->beta2;
    cfg.eps = (float)c->eps;
    size_t n = (size_t)c->n;
    /* a: qat_optim_update; b: qat_optim_delta applied by hand. */
    qat_optim a, b;
    CHECK(qat_optim_init(&a, &cfg, n) == QAT_OK, "%s: %s", c->name, qat_last_error());
    CHECK(qat_optim_init(&b, &cfg, n) == QAT_OK, "%s: %s", c->name, qat_last_error());
    float w[MAXN], wb[MAXN], delta[MAXN];
    memcpy(w, c->w[0], n * sizeof *w);
    memcpy(wb, c->w[0], n * sizeof *wb);
    double worst = 0.0;
    max_abs = 0.0;
    for (int k = 1; k <= c->steps; k++) {
        qat_optim_begin_step(&a);
        qat_optim_begin_step(&b);
        qat_optim_update(&a, 0, n, w, c->g[k], (float)c->lr, (float)c->wd);
        worst = fmax(worst, compare(c->name, k, w, c->w[k], n));
        qat_optim_delta(&b, 0, n, wb, c->g[k], (float)c->lr, (float)c->wd, delta);
        for (size_t i = 0; i < n; i++) {
            float want = w[i] - wb[i];
            CHECK(memcmp(&delta[i], &want, sizeof want) == 0, "%s step %d: delta[%zu] %.9g != w_new - w %.9g",
                  c->name, k, i, (double)delta[i], (double)want);
            wb[i] += delta[i];
        }
        /* w_new - w is exact here (steps are small next to the weights or
         * the weight is 0), so adding it back lands on w_new exactly. */
        CHECK(memcmp(w, wb, n * sizeof *w) == 0, "%s step %d: w + delta != updated w", c->name, k);
        size_t nst = qat_optim_state_floats(&a);
        CHECK(nst == qat_optim_state_floats(&b) &&
                  (nst == 0 || memcmp(qat_optim_state(&a), qat_optim_state(&b), nst * sizeof(float)) == 0),
              "%s step %d: delta and update leave different state", c->name, k);
    }
    double worst_abs = max_abs;
    if (c->has_m)
        compare(c->name, -1, a.m, c->m, n);
    if (c->has_v)
        compare(c->name, -2, a.v, c->v, n);
    if (c->has_vmax)
        compare(c->name, -3, a.vmax, c->vmax, n);
    CHECK(!c->has_m == !a.m && !c->has_v == !a.v && !c->has_vmax == !a.vmax, "%s: state layout differs from torch's",
          c->name);
    if (kind != QAT_OPTIM_SGD && c->has_m && c->has_v) {
        /* m-hat, v-hat against PyTorch's state with its own corrections. */
        float mhat[MAXN], vhat[MAXN], wm[MAXN], wv[MAXN];
        double bc1 = 1.0 - pow(c->beta1, c->steps), bc2 = 1.0 - pow(c->beta2, c->steps);
        for (size_t i = 0; i < n; i++) {
            wm[i] = (float)(c->m[i] / bc1);
            wv[i] = (float)((c->has_vmax ? c->vmax[i] : c->v[i]) / bc2);
        }
        qat_optim_moments(&a, 0, n, mhat, vhat);
        compare("moments m-hat", c->steps, mhat, wm, n);
        compare("moments v-hat", c->steps, vhat, wv, n);
    }
    printf("  %-13s %d steps, weights: max err %.3g (limit 1e-6), max abs err %.3g\n", c->name, c->steps,
           worst, worst_abs);
    qat_optim_free(&a);
    qat_optim_free(&b);
}

static void run_sched(const char *kind_name, const qat_sched *proto, int nepochs, const char *lrline)
{
    qat_sched s = *proto;
    CHECK(qat_sched_parse(kind_name, &s.kind) == QAT_OK, "%s", qat_last_error());
    CHECK(qat_sched_check(&s) == QAT_OK, "%s: %s", kind_name, qat_last_error());
    const char *p = lrline + 2;
    double worst = 0.0;
    for (int e = 0; e < nepochs; e++) {
        char *end;
        double want = strtod(p, &end);
        CHECK(end != p, "%s: short lr line", kind_name);
        p = end;
        float got = qat_sched_lr(&s, e, 0, 1);
        worst = fmax(worst, rel_err(got, want));
        CHECK(close_enough(got, want), "%s epoch %d: lr %.9g, torch %.9g", kind_name, e, (double)got, want);
    }
    printf("  sched %-9s %d epochs, max err %.3g\n", kind_name, nepochs, worst);
}

static void test_fixture(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/optim.txt", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s (pass the fixture directory as argv[1])", path);
    if (!f)
        return;
    int records = 0, ok = 1;
    CHECK(fgets(line, sizeof line, f) && strcmp(line, "qat-optim-fixture 1\n") == 0, "%s: bad magic/version", path);
    static fx_case c;
    while (ok && fgets(line, sizeof line, f)) {
        if (strncmp(line, "torch ", 6) == 0)
            continue;
        if (strncmp(line, "case ", 5) == 0) {
            ok = read_case(f, &c);
            CHECK(ok, "%s: malformed case near '%.40s'", path, line);
            if (ok)
                run_case(&c);
            records++;
        } else if (strncmp(line, "sched ", 6) == 0) {
            char kind[16];
            double base, gamma, min_lr;
            int step_size, total, nmil, len, nepochs;
            qat_sched s;
            memset(&s, 0, sizeof s);
            ok = sscanf(line, "sched %15s %lf %lf %d %d %lf %d%n", kind, &base, &gamma, &step_size, &total,
                        &min_lr, &nmil, &len) == 7 &&
                 nmil >= 0 && nmil <= QAT_SCHED_MAX_MILESTONES;
            const char *p = line + (ok ? len : 0);
            for (int i = 0; ok && i < nmil; i++) {
                int l2;
                ok = sscanf(p, "%d%n", &s.milestones[i], &l2) == 1;
                p += l2;
            }
            ok = ok && sscanf(p, "%d", &nepochs) == 1 && nepochs >= 1;
            static char lrline[1 << 14];
            ok = ok && fgets(lrline, sizeof lrline, f) && strncmp(lrline, "lr ", 3) == 0;
            CHECK(ok, "%s: malformed sched record", path);
            if (ok) {
                s.base_lr = (float)base;
                s.gamma = (float)gamma;
                s.step_size = step_size;
                s.total_epochs = total;
                s.min_lr = (float)min_lr;
                s.nmilestones = nmil;
                run_sched(kind, &s, nepochs, lrline);
            }
            records++;
        } else if (strncmp(line, "end ", 4) == 0) {
            int want = -1;
            CHECK(sscanf(line, "end %d", &want) == 1 && want == records, "%s: %d records, trailer says %d", path,
                  records, want);
            records = -1; /* trailer seen */
            break;
        } else {
            CHECK(0, "%s: unexpected line '%.40s'", path, line);
            break;
        }
    }
    CHECK(records == -1, "%s: truncated (no end trailer)", path);
    fclose(f);
}

/* ---- plain reference, element by element -------------------------------
 * PyTorch's formulas with its hyper-parameters as doubles (0.9, not 0.9f):
 * the library must reproduce this bit for bit, on any range split. */

typedef struct {
    qat_optim_kind kind;
    double momentum, dampening, beta1, beta2, eps;
    int nesterov;
} ref_cfg;

static void ref_step(const ref_cfg *c, long t, size_t n, float *w, const float *g, float *m, float *v, float *vmax,
                     float lr, float wd)
{
    for (size_t i = 0; i < n; i++) {
        if (c->kind == QAT_OPTIM_SGD) {
            float d = g[i] + wd * w[i];
            if (c->momentum != 0.0) {
                if (t == 1)
                    m[i] = d;
                else
                    m[i] = m[i] * (float)c->momentum + (float)(1.0 - c->dampening) * d;
                d = c->nesterov ? d + (float)c->momentum * m[i] : m[i];
            }
            w[i] = w[i] + -lr * d;
            continue;
        }
        float gi = g[i];
        if (c->kind == QAT_OPTIM_ADAMW)
            w[i] = w[i] * (float)(1.0 - (double)lr * (double)wd);
        else
            gi = gi + wd * w[i];
        m[i] = m[i] * (float)c->beta1 + (float)(1.0 - c->beta1) * gi;
        v[i] = v[i] * (float)c->beta2 + (float)(1.0 - c->beta2) * gi * gi;
        float vv = v[i];
        if (c->kind == QAT_OPTIM_AMSGRAD) {
            vmax[i] = fmaxf(vmax[i], v[i]);
            vv = vmax[i];
        }
        double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
        float denom = sqrtf(vv) / (float)sqrt(bc2) + (float)c->eps;
        w[i] = w[i] + (-(float)((double)lr / bc1)) * m[i] / denom;
    }
}

static const ref_cfg ref_cfgs[] = {
    {QAT_OPTIM_SGD, 0.0, 0.0, 0, 0, 0, 0},
    {QAT_OPTIM_SGD, 0.9, 0.1, 0, 0, 0, 0},
    {QAT_OPTIM_SGD, 0.9, 0.0, 0, 0, 0, 1},
    {QAT_OPTIM_ADAM, 0, 0, 0.9, 0.999, 1e-8, 0},
    {QAT_OPTIM_ADAMW, 0, 0, 0.8, 0.99, 1e-6, 0},
    {QAT_OPTIM_AMSGRAD, 0, 0, 0.9, 0.999, 1e-8, 0},
};

static void fill(qat_rng *r, float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = qat_rng_normal(r) * scale;
}

/* Awkward sizes, several steps, the update done in uneven chunks (and the
 * delta path on one of them): must equal the reference exactly. */
static void test_reference(void)
{
    static const size_t sizes[] = {1, 7, 63, 64, 65, 1000};
    qat_rng r;
    qat_rng_seed(&r, 7);
    for (size_t ci = 0; ci < sizeof ref_cfgs / sizeof ref_cfgs[0]; ci++) {
        const ref_cfg *rc = &ref_cfgs[ci];
        qat_optim_cfg cfg;
        qat_optim_cfg_default(&cfg, rc->kind);
        cfg.momentum = (float)rc->momentum;
        cfg.dampening = (float)rc->dampening;
        cfg.nesterov = rc->nesterov;
        if (rc->kind != QAT_OPTIM_SGD) {
            cfg.beta1 = (float)rc->beta1;
            cfg.beta2 = (float)rc->beta2;
            cfg.eps = (float)rc->eps;
        }
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t n = sizes[si];
            float *buf = calloc(8 * n, sizeof(float));
            float *w = buf, *g = buf + n, *rw = buf + 2 * n, *rm = buf + 3 * n, *rv = buf + 4 * n,
                  *rvm = buf + 5 * n, *delta = buf + 6 * n;
            fill(&r, w, n, 1.0f);
            memcpy(rw, w, n * sizeof *w);
            qat_optim o;
            CHECK(qat_optim_init(&o, &cfg, n) == QAT_OK, "%s", qat_last_error());
            for (long t = 1; t <= 4; t++) {
                fill(&r, g, n, t == 2 ? 0.01f : 1.0f);
                float lr = 0.05f, wd = 1e-2f;
                ref_step(rc, t, n, rw, g, rm, rv, rvm, lr, wd);
                qat_optim_begin_step(&o);
                /* chunks of 1, then 5, then the rest; the middle via delta */
                size_t a = n < 1 ? n : 1, b = n < 6 ? n : 6;
                qat_optim_update(&o, 0, a, w, g, lr, wd);
                qat_optim_delta(&o, a, b - a, w, g, lr, wd, delta);
                for (size_t i = a; i < b; i++)
                    w[i] += delta[i - a];
                qat_optim_update(&o, b, n - b, w, g, lr, wd);
                int same = 1;
                for (size_t i = 0; i < n; i++)
                    same &= w[i] == rw[i] || (i >= a && i < b && fabsf(w[i] - rw[i]) <= 1e-7f * fabsf(rw[i]));
                CHECK(same, "reference %s n=%zu t=%ld: weights differ", qat_optim_name(rc->kind), n, t);
                if (o.m)
                    CHECK(memcmp(o.m, rm, n * sizeof *rm) == 0, "reference %s n=%zu: m differs",
                          qat_optim_name(rc->kind), n);
                if (o.v)
                    CHECK(memcmp(o.v, rv, n * sizeof *rv) == 0, "reference %s n=%zu: v differs",
                          qat_optim_name(rc->kind), n);
                if (o.vmax)
                    CHECK(memcmp(o.vmax, rvm, n * sizeof *rvm) == 0, "reference %s n=%zu: vmax differs",
                          qat_optim_name(rc->kind), n);
                memcpy(w, rw, n * sizeof *w); /* keep the chunked run on the reference's path */
            }
            qat_optim_free(&o);
            free(buf);
        }
    }
}

/* An update of [off, off+len) changes only that range of w and of the
 * state, and there gives what a whole-block update gives. */
static void test_subrange(void)
{
    enum { N = 50, OFF = 13, LEN = 21 };
    qat_rng r;
    qat_rng_seed(&r, 11);
    for (int k = 0; k < QAT_OPTIM_COUNT; k++) {
        qat_optim_cfg cfg;
        qat_optim_cfg_default(&cfg, (qat_optim_kind)k);
        if (k == QAT_OPTIM_SGD)
            cfg.momentum = 0.9f;
        qat_optim part, whole;
        CHECK(qat_optim_init(&part, &cfg, N) == QAT_OK, "%s", qat_last_error());
        CHECK(qat_optim_init(&whole, &cfg, N) == QAT_OK, "%s", qat_last_error());
        size_t nst = qat_optim_state_floats(&part);
        float w0[N], g[N], wp[N], ww[N];
        fill(&r, w0, N, 1.0f);
        memcpy(wp, w0, sizeof wp);
        memcpy(ww, w0, sizeof ww);
        for (int t = 0; t < 3; t++) {
            fill(&r, g, N, 1.0f);
            qat_optim_begin_step(&part);
            qat_optim_begin_step(&whole);
            qat_optim_update(&part, OFF, LEN, wp, g, 0.1f, 0.01f);
            qat_optim_update(&whole, 0, N, ww, g, 0.1f, 0.01f);
        }
        int ok = 1;
        for (int i = 0; i < N; i++) {
            int inside = i >= OFF && i < OFF + LEN;
            ok &= inside ? wp[i] == ww[i] : wp[i] == w0[i];
        }
        CHECK(ok, "%s: sub-range update wrong inside or touched outside", qat_optim_name((qat_optim_kind)k));
        const float *sp = qat_optim_state(&part), *sw = qat_optim_state(&whole);
        ok = 1;
        for (size_t j = 0; j < nst; j++) {
            size_t i = j % N;
            int inside = i >= OFF && i < OFF + LEN;
            ok &= inside ? sp[j] == sw[j] : sp[j] == 0.0f;
        }
        CHECK(ok, "%s: sub-range update wrong state", qat_optim_name((qat_optim_kind)k));
        qat_optim_free(&part);
        qat_optim_free(&whole);
    }
}

/* Layout, checkpoint round trip through the state block, and moments. */
static void test_state(void)
{
    enum { N = 9 };
    static const size_t per[] = {[QAT_OPTIM_SGD] = 0, [QAT_OPTIM_ADAM] = 2, [QAT_OPTIM_ADAMW] = 2,
                                 [QAT_OPTIM_AMSGRAD] = 3};
    qat_rng r;
    qat_rng_seed(&r, 3);
    for (int k = 0; k < QAT_OPTIM_COUNT; k++) {
        qat_optim_cfg cfg;
        qat_optim_cfg_default(&cfg, (qat_optim_kind)k);
        qat_optim a, b;
        CHECK(qat_optim_init(&a, &cfg, N) == QAT_OK, "%s", qat_last_error());
        CHECK(qat_optim_state_floats(&a) == per[k] * N, "%s: %zu state floats", qat_optim_name((qat_optim_kind)k),
              qat_optim_state_floats(&a));
        CHECK((per[k] == 0) == (qat_optim_state(&a) == NULL), "%s: state pointer", qat_optim_name((qat_optim_kind)k));
        float w[N], g[N], w2[N];
        fill(&r, w, N, 1.0f);
        for (int t = 0; t < 3; t++) {
            fill(&r, g, N, t == 1 ? 3.0f : 0.01f);
            qat_optim_begin_step(&a);
            qat_optim_update(&a, 0, N, w, g, 0.01f, 0.0f);
        }
        /* restore into a fresh optimizer from the block and t alone */
        CHECK(qat_optim_init(&b, &cfg, N) == QAT_OK, "%s", qat_last_error());
        if (per[k])
            memcpy(qat_optim_state(&b), qat_optim_state(&a), qat_optim_state_floats(&a) * sizeof(float));
        b.t = a.t;
        memcpy(w2, w, sizeof w);
        fill(&r, g, N, 0.01f); /* small after the large step: v falls below vmax */
        qat_optim_begin_step(&a);
        qat_optim_begin_step(&b);
        qat_optim_update(&a, 0, N, w, g, 0.01f, 0.0f);
        qat_optim_update(&b, 0, N, w2, g, 0.01f, 0.0f);
        CHECK(memcmp(w, w2, sizeof w) == 0, "%s: restored optimizer diverges", qat_optim_name((qat_optim_kind)k));
        if (k == QAT_OPTIM_AMSGRAD) {
            /* vhat comes from vmax (>= v), by the same float corrections */
            float mhat[N], vhat[N];
            qat_optim_moments(&a, 2, 5, mhat, vhat);
            float bc1 = (float)(1.0 - pow(0.9, 4.0)), bc2 = (float)(1.0 - pow(0.999, 4.0));
            int ok = 1, vmax_used = 0;
            for (int i = 0; i < 5; i++) {
                ok &= mhat[i] == a.m[2 + i] / bc1 && vhat[i] == a.vmax[2 + i] / bc2;
                vmax_used |= a.vmax[2 + i] > a.v[2 + i];
            }
            CHECK(ok, "amsgrad moments differ from m/bc1, vmax/bc2");
            CHECK(vmax_used, "amsgrad test data never made vmax exceed v");
        }
        qat_optim_free(&a);
        qat_optim_free(&b);
        qat_optim_free(&b); /* twice is safe */
    }
}

static void test_errors(void)
{
    qat_optim_kind k = QAT_OPTIM_COUNT;
    CHECK(qat_optim_parse("adamx", &k) == QAT_ERR_CONFIG, "unknown optimizer accepted");
    CHECK(strstr(qat_last_error(), "'adamx'") && strstr(qat_last_error(), "sgd, adam, adamw, amsgrad"),
          "message: %s", qat_last_error());
    CHECK(qat_optim_parse("SGD", &k) == QAT_ERR_CONFIG, "names are exact");
    CHECK(qat_optim_parse(NULL, &k) == QAT_ERR_ARG, "NULL name");
    for (int i = 0; i < QAT_OPTIM_COUNT; i++)
        CHECK(qat_optim_parse(qat_optim_name((qat_optim_kind)i), &k) == QAT_OK && k == (qat_optim_kind)i,
              "optim name %d does not round-trip", i);
    CHECK(qat_optim_name(QAT_OPTIM_COUNT) == NULL, "name of COUNT");

    qat_sched_kind sk;
    CHECK(qat_sched_parse("cosin", &sk) == QAT_ERR_CONFIG, "unknown schedule accepted");
    CHECK(strstr(qat_last_error(), "constant, step, multistep, exp, cosine"), "message: %s", qat_last_error());
    for (int i = 0; i < QAT_SCHED_COUNT; i++)
        CHECK(qat_sched_parse(qat_sched_name((qat_sched_kind)i), &sk) == QAT_OK && sk == (qat_sched_kind)i,
              "sched name %d does not round-trip", i);

    qat_optim o;
    qat_optim_cfg c;
    qat_optim_cfg_default(&c, QAT_OPTIM_SGD);
    c.momentum = 0.9f;
    c.dampening = 0.1f;
    c.nesterov = 1;
    CHECK(qat_optim_init(&o, &c, 4) == QAT_ERR_CONFIG && o.m == NULL, "nesterov with dampening accepted");
    CHECK(strstr(qat_last_error(), "nesterov"), "message: %s", qat_last_error());
    qat_optim_free(&o);
    qat_optim_cfg_default(&c, QAT_OPTIM_ADAM);
    c.beta2 = 1.0f;
    CHECK(qat_optim_cfg_check(&c) == QAT_ERR_CONFIG && strstr(qat_last_error(), "beta2"), "beta2 = 1 accepted");
    qat_optim_cfg_default(&c, QAT_OPTIM_AMSGRAD);
    c.eps = NAN;
    CHECK(qat_optim_cfg_check(&c) == QAT_ERR_CONFIG, "eps NaN accepted");
    c.eps = 1e-8f;
    c.kind = QAT_OPTIM_COUNT;
    CHECK(qat_optim_cfg_check(&c) == QAT_ERR_CONFIG, "kind COUNT accepted");
    qat_optim_cfg_default(&c, QAT_OPTIM_ADAM);
    CHECK(qat_optim_init(&o, &c, 0) == QAT_OK && qat_optim_state_floats(&o) == 0, "n = 0 refused");
    qat_optim_begin_step(&o);
    qat_optim_update(&o, 0, 0, NULL, NULL, 0.1f, 0.0f); /* empty block: a no-op */
    qat_optim_free(&o);

    qat_sched s;
    qat_sched_default(&s, QAT_SCHED_MULTISTEP, 0.1f);
    CHECK(qat_sched_check(&s) == QAT_ERR_CONFIG && strstr(qat_last_error(), "milestones"), "no milestones: %s",
          qat_last_error());
    s.nmilestones = 2;
    s.milestones[0] = 5;
    s.milestones[1] = 5;
    CHECK(qat_sched_check(&s) == QAT_ERR_CONFIG && strstr(qat_last_error(), "ascending"), "%s", qat_last_error());
    s.milestones[1] = 8;
    CHECK(qat_sched_check(&s) == QAT_OK, "%s", qat_last_error());
    s.gamma = 0.0f;
    CHECK(qat_sched_check(&s) == QAT_ERR_CONFIG && strstr(qat_last_error(), "gamma"), "gamma 0 accepted");
    qat_sched_default(&s, QAT_SCHED_STEP, 0.1f);
    s.step_size = 0;
    CHECK(qat_sched_check(&s) == QAT_ERR_CONFIG && strstr(qat_last_error(), "step_size"), "step_size 0 accepted");
    qat_sched_default(&s, QAT_SCHED_COSINE, 0.1f);
    CHECK(qat_sched_check(&s) == QAT_ERR_CONFIG && strstr(qat_last_error(), "total_epochs"), "T_max 0 accepted");
    s.total_epochs = 10;
    s.min_lr = 0.2f;
    CHECK(qat_sched_check(&s) == QAT_ERR_CONFIG && strstr(qat_last_error(), "min_lr"), "min_lr > base accepted");
    s.min_lr = 0.0f;
    s.warmup_epochs = 2;
    s.warmup_start = 1.5f;
    CHECK(qat_sched_check(&s) == QAT_ERR_CONFIG && strstr(qat_last_error(), "warmup_start"), "warmup_start 1.5");
    qat_sched_default(&s, QAT_SCHED_CONSTANT, NAN);
    CHECK(qat_sched_check(&s) == QAT_ERR_CONFIG && strstr(qat_last_error(), "base_lr"), "NaN base_lr accepted");
    s.kind = QAT_SCHED_COUNT;
    s.base_lr = 0.1f;
    CHECK(qat_sched_check(&s) == QAT_ERR_CONFIG, "kind COUNT accepted");
}

static void expect_lr(const qat_sched *s, int epoch, int step, int spe, double want)
{
    float got = qat_sched_lr(s, epoch, step, spe);
    CHECK(close_enough(got, want), "%s epoch %d step %d/%d: lr %.9g, want %.9g", qat_sched_name(s->kind), epoch,
          step, spe, (double)got, want);
}

/* Values worked out by hand from each definition. */
static void test_sched_hand(void)
{
    qat_sched s;
    qat_sched_default(&s, QAT_SCHED_CONSTANT, 0.05f);
    expect_lr(&s, 0, 0, 1, 0.05);
    expect_lr(&s, 99, 3, 4, 0.05);

    qat_sched_default(&s, QAT_SCHED_STEP, 0.1f);
    s.step_size = 30;
    expect_lr(&s, 29, 0, 1, 0.1);
    expect_lr(&s, 30, 0, 1, 0.01);
    expect_lr(&s, 65, 0, 1, 0.001);

    qat_sched_default(&s, QAT_SCHED_MULTISTEP, 1.0f);
    s.gamma = 0.5f;
    s.nmilestones = 3;
    s.milestones[0] = 10;
    s.milestones[1] = 20;
    s.milestones[2] = 25;
    expect_lr(&s, 9, 0, 1, 1.0);
    expect_lr(&s, 10, 0, 1, 0.5);
    expect_lr(&s, 24, 0, 1, 0.25);
    expect_lr(&s, 25, 0, 1, 0.125);
    expect_lr(&s, 1000, 0, 1, 0.125);

    qat_sched_default(&s, QAT_SCHED_EXP, 2.0f);
    s.gamma = 0.5f;
    expect_lr(&s, 0, 0, 1, 2.0);
    expect_lr(&s, 3, 0, 1, 0.25);

    qat_sched_default(&s, QAT_SCHED_COSINE, 1.0f);
    s.total_epochs = 4;
    s.min_lr = 0.2f;
    expect_lr(&s, 0, 0, 1, 1.0);
    expect_lr(&s, 2, 0, 1, 0.6);                               /* midpoint */
    expect_lr(&s, 1, 0, 1, 0.2 + 0.8 * (1 + sqrt(0.5)) / 2);  /* cos(pi/4) */
    expect_lr(&s, 4, 0, 1, 0.2);
    expect_lr(&s, 6, 0, 1, 0.6); /* closed form rises again past T_max */

    /* warm-up: 2 epochs of 4 steps from 0.1*lr, on top of the schedule */
    qat_sched_default(&s, QAT_SCHED_STEP, 1.0f);
    s.step_size = 1;
    s.gamma = 0.5f;
    s.warmup_epochs = 2;
    s.warmup_start = 0.1f;
    expect_lr(&s, 0, 0, 4, 0.1);                      /* first step of the run */
    expect_lr(&s, 0, 2, 4, 1.0 * (0.1 + 0.9 * 2 / 8)); /* 2 of 8 warm-up steps done */
    expect_lr(&s, 1, 0, 4, 0.5 * (0.1 + 0.9 * 4 / 8)); /* epoch 1 scheduled lr is 0.5 */
    expect_lr(&s, 1, 3, 4, 0.5 * (0.1 + 0.9 * 7 / 8));
    expect_lr(&s, 2, 0, 4, 0.25); /* warm-up over: the schedule alone */
    expect_lr(&s, 2, 3, 4, 0.25);
}

static void expect_phase(const qat_sched *s, int epoch, qat_phase_kind kind, int at, int of, int left)
{
    qat_phase_at p;
    qat_sched_phase_at(s, epoch, &p);
    CHECK(p.kind == kind && p.epoch == at && p.epochs == of && p.kind_left == left,
          "phases epoch %d: %s %d of %d (%d of its kind left), want %s %d of %d (%d)", epoch, qat_phase_name(p.kind),
          p.epoch, p.epochs, p.kind_left, qat_phase_name(kind), at, of, left);
}

/* ALQ's round schedule (spec section 7): the lr starts again each round
 * and is multiplied by the phase's factor before every epoch */
static void test_sched_phases(void)
{
    qat_sched s;
    qat_sched_default(&s, QAT_SCHED_PHASES, 1.0f);
    CHECK(qat_sched_phases_parse("basis 2 0.5, coord 1 0.25,prune 1", s.phase, QAT_SCHED_MAX_PHASES, &s.nphases) ==
              QAT_OK && s.nphases == 3,
          "parse: %s", qat_last_error());
    CHECK(s.phase[0].kind == QAT_PHASE_BASIS && s.phase[0].epochs == 2 && s.phase[0].gamma == 0.5f &&
              s.phase[2].kind == QAT_PHASE_PRUNE && s.phase[2].gamma == 1.0f,
          "parsed phases");
    s.rounds = 2;
    CHECK(qat_sched_phases_parse("ste 2 0.5, coord 1", s.post, QAT_SCHED_MAX_PHASES, &s.npost) == QAT_OK, "post");
    s.total_epochs = qat_sched_phase_epochs(&s);
    CHECK(s.total_epochs == 2 * 4 + 3, "total %d epochs, want 11", s.total_epochs);
    CHECK(qat_sched_check(&s) == QAT_OK, "check: %s", qat_last_error());
    double round[4] = {0.5, 0.25, 0.0625, 0.0625};
    for (int r = 0; r < 2; r++)
        for (int e = 0; e < 4; e++) expect_lr(&s, 4 * r + e, 0, 1, round[e]);
    expect_lr(&s, 8, 0, 1, 0.5);
    expect_lr(&s, 9, 3, 4, 0.25);
    expect_lr(&s, 10, 0, 1, 0.25); /* coord 1 with factor 1 continues the post phases' lr */
    expect_phase(&s, 0, QAT_PHASE_BASIS, 0, 2, 4);
    expect_phase(&s, 1, QAT_PHASE_BASIS, 1, 2, 3);
    expect_phase(&s, 2, QAT_PHASE_COORD, 0, 1, 3);
    expect_phase(&s, 3, QAT_PHASE_PRUNE, 0, 1, 2);
    expect_phase(&s, 7, QAT_PHASE_PRUNE, 0, 1, 1);
    expect_phase(&s, 9, QAT_PHASE_STE, 1, 2, 1);
    expect_phase(&s, 10, QAT_PHASE_COORD, 0, 1, 1);
    s.total_epochs = 12;
    CHECK(qat_sched_check(&s) == QAT_ERR_CONFIG && strstr(qat_last_error(), "take 11"), "12 epochs of 11 accepted");
    /* other schedules are one TRAIN run */
    qat_sched c;
    qat_sched_default(&c, QAT_SCHED_COSINE, 1.0f);
    c.total_epochs = 5;
    expect_phase(&c, 2, QAT_PHASE_TRAIN, 2, 5, 3);
    /* bad lists name the item */
    qat_sched_phase ph[QAT_SCHED_MAX_PHASES];
    int n;
    const char *bad[][2] = {{"basis", "phase 1"},       {"basis 2 0.5 coord 1", "expected ','"},
                            {"basis 0", "need >= 1 epoch"}, {"basis 2 1.5", "factor in (0, 1]"},
                            {"train 1, warp 2", "unknown phase 'warp'"}, {"basis 1,", "phase 2"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qat_status st = qat_sched_phases_parse(bad[i][0], ph, QAT_SCHED_MAX_PHASES, &n);
        CHECK(st == QAT_ERR_CONFIG && strstr(qat_last_error(), bad[i][1]), "'%s': %d '%s', want '%s'", bad[i][0],
              (int)st, st ? qat_last_error() : "", bad[i][1]);
    }
    CHECK(qat_sched_phases_parse("basis 1, basis 1, basis 1, basis 1, basis 1, basis 1, basis 1, basis 1, basis 1", ph,
                                 QAT_SCHED_MAX_PHASES, &n) == QAT_ERR_CONFIG &&
              strstr(qat_last_error(), "more than 8"),
          "9 phases accepted");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR (tests/fixtures/optim)\n", argv[0]);
        return 1;
    }
    printf("fixture (PyTorch 1.13):\n");
    test_fixture(argv[1]);
    test_reference();
    test_subrange();
    test_state();
    test_errors();
    test_sched_hand();
    test_sched_phases();
    if (failures) {
        printf("test_optim: %d FAILED\n", failures);
        return 1;
    }
    printf("test_optim: all passed\n");
    return 0;
}
