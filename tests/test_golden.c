/* test_golden.c: one training step of LeNet-5 (configs/mnist/lenet5_fp32.cfg)
 * on a fixed batch against PyTorch 1.13: the loss, every parameter gradient
 * and the BN running statistics, with 1 and 2 threads. The fixture,
 * lenet5.bin, is written once by tests/fixtures/golden/gen_golden.py.
 * Usage: test_golden FIXTURE_DIR [CFG]   (exit 0 pass, 1 fail) */
#include "netcfg.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define BATCH 32
#define MAX_FILE (8u << 20)
#define MAX_RECORDS 256

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

enum { DT_F32 = 0, DT_F16 = 1, DT_I32 = 2 };

typedef struct {
    char name[64];
    int dtype, ndim, dims[4];
    size_t n;
    float *f;   /* float32 and float16 records, converted */
    int32_t *i; /* int32 records */
} record;

typedef struct {
    record *r;
    int n;
} fixture;

static int failures;

static uint32_t rd_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float half_to_float(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = ldexpf((float)m, -24); /* subnormal (or zero) */
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), e - 25);
    return sign ? -v : v;
}

static void fixture_free(fixture *fx)
{
    for (int k = 0; k < fx->n; k++) {
        free(fx->r[k].f);
        free(fx->r[k].i);
    }
    free(fx->r);
    fx->r = NULL;
    fx->n = 0;
}

/* Reads and checks the whole file; on failure prints which byte was wrong. */
static int fixture_read(fixture *fx, const char *path)
{
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open (the fixture is committed; regenerate it with "
                        "/usr/bin/python3 tests/fixtures/golden/gen_golden.py)\n", path);
        return -1;
    }
    unsigned char *buf = malloc(MAX_FILE + 1);
    size_t len = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (!buf || rerr || len > MAX_FILE || len < 20) {
        fprintf(stderr, "%s: %s\n", path,
                !buf ? "out of memory" : rerr ? "read error"
                : len > MAX_FILE ? "larger than 8 MiB" : "too short for a header");
        free(buf);
        return -1;
    }
    const char *why = NULL;
    size_t at = 0;
    if (memcmp(buf, "qatgold", 8) != 0) why = "bad magic (want \"qatgold\\0\")";
    else if (rd_u32(buf + 8) != 1) at = 8, why = "unsupported version (want 1)";
    else if ((uint32_t)crc32(0L, buf, (uInt)(len - 4)) != rd_u32(buf + len - 4))
        at = len - 4, why = "CRC-32 mismatch (file damaged)";
    uint32_t count = why ? 0 : rd_u32(buf + 12);
    if (!why && (count == 0 || count > MAX_RECORDS)) at = 12, why = "record count out of range";
    if (!why && !(fx->r = calloc(count, sizeof *fx->r))) why = "out of memory";
    size_t end = len - 4;
    at = why ? at : 16;
    for (uint32_t k = 0; !why && k < count; k++, fx->n++) {
        record *r = &fx->r[k];
        if (end - at < 4) { why = "truncated name length"; break; }
        uint32_t nl = rd_u32(buf + at);
        if (nl < 1 || nl > 63) { why = "name length not in 1..63"; break; }
        at += 4;
        if (end - at < nl + 8) { why = "truncated record header"; break; }
        memcpy(r->name, buf + at, nl);
        r->name[nl] = 0;
        if (strlen(r->name) != nl) { why = "NUL inside a name"; break; }
        at += nl;
        uint32_t dt = rd_u32(buf + at), nd = rd_u32(buf + at + 4);
        if (dt > DT_I32) { why = "unknown dtype"; break; }
        at += 4;
        if (nd > 4) { why = "ndim > 4"; break; }
        at += 4;
        if (end - at < 4 * (size_t)nd) { why = "truncated dims"; break; }
        r->dtype = (int)dt;
        r->ndim = (int)nd;
        r->n = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint32_t v = rd_u32(buf + at);
            if (v < 1 || v > (1u << 24)) { why = "dim not in 1..2^24"; break; }
            r->dims[d] = (int)v;
            r->n *= v;
            at += 4;
        }
        if (why) break;
        size_t es = dt == DT_F16 ? 2 : 4;
        if (r->n > (end - at) / es) { why = "data runs past the end"; break; }
        const unsigned char *p = buf + at;
        if (dt == DT_I32) {
            if (!(r->i = malloc(r->n * sizeof *r->i))) { why = "out of memory"; break; }
            for (size_t j = 0; j < r->n; j++) r->i[j] = (int32_t)rd_u32(p + 4 * j);
        } else {
            if (!(r->f = malloc(r->n * sizeof *r->f))) { why = "out of memory"; break; }
            for (size_t j = 0; j < r->n; j++) {
                if (dt == DT_F16) {
                    r->f[j] = half_to_float((uint16_t)(p[2 * j] | p[2 * j + 1] << 8));
                } else {
                    uint32_t u = rd_u32(p + 4 * j);
                    memcpy(&r->f[j], &u, 4);
                }
                if (!isfinite(r->f[j])) { why = "non-finite value"; break; }
            }
            if (why) break;
        }
        at += r->n * es;
    }
    if (!why && at != end) why = "trailing bytes after the last record";
    free(buf);
    if (why) {
        fprintf(stderr, "%s: byte %zu: %s\n", path, at, why);
        fixture_free(fx);
        return -1;
    }
    return 0;
}

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
    if (fixture_read(&fx, path) != 0) return 1;
    run(&fx, cfg_path, 1);
    run(&fx, cfg_path, 2);
    fixture_free(&fx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
