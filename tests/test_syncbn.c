/* test_syncbn.c: batchnorm over the global batch (sync_bn, qat_graph_sync)
 * against one process. A batch of 7 images is split across 2 and 3
 * in-process ranks (threads joined by a fake qat_comm that sums in rank
 * order, the same bits on every rank, as the ring allreduce does): each
 * rank's output and running statistics must be the full batch's, its input
 * gradient times its share the full batch's, and the share-weighted sum of
 * its gamma and beta gradients the full batch's, within 1e-5; the same
 * split without sync must miss by far more. A size-1 hook changes nothing,
 * bit for bit, and a failing collective is reported with later exchanges
 * skipped. Exit 0 on success. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "qat_test.h"

#define NTOTAL 7 /* images in the global batch */
#define MAXR 3

/* ---- a fake qat_comm: ranks are threads, sums in rank order ------------- */
typedef struct {
    int size;
    int fail; /* every collective fails (each rank returns at once: no deadlock) */
    pthread_barrier_t bar;
    float *slot[MAXR];
    size_t n[MAXR];
} world;

typedef struct {
    world *w;
    int rank;
    long calls;
    float *tmp; /* the rank's sums, before it may overwrite its buffer */
} rank_ctx;

static qat_status fake_allreduce(void *user, float *buf, size_t n)
{
    rank_ctx *r = user;
    world *w = r->w;
    r->calls++;
    if (w->fail) return qat_error_set(QAT_ERR_COMM, "fake allreduce: rank %d lost", r->rank);
    w->slot[r->rank] = buf;
    w->n[r->rank] = n;
    pthread_barrier_wait(&w->bar);
    for (int q = 0; q < w->size; q++)
        if (w->n[q] != n) {
            printf("FAIL: rank %d sums %zu values, rank %d %zu (the ranks' exchanges are out of step)\n", r->rank, n,
                   q, w->n[q]);
            exit(1);
        }
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (int q = 0; q < w->size; q++) s += w->slot[q][i];
        r->tmp[i] = s;
    }
    pthread_barrier_wait(&w->bar); /* every rank has read every buffer */
    memcpy(buf, r->tmp, n * sizeof *buf);
    return QAT_OK;
}

static qat_status fake_allgather(void *user, const void *in, size_t nbytes, void *out)
{
    return qat_error_set(QAT_ERR_ARG, "batchnorm must not use allgather");
}

/* ---- the model: x -> batchnorm (-> relu) (-> 2x2 max pool) ----------------- */
typedef struct {
    const char *name;
    int ndim, C, H, W;
    int relu, pool;
    float offset, spread; /* x = offset + spread * N(0, 1) */
    int threads;
} bn_case;

typedef struct {
    qat_graph g;
    qat_tensor *x, *gamma, *beta, *rm, *rv, *out;
} net;

static size_t per_image(const bn_case *k) { return (size_t)k->C * (k->ndim == 4 ? (size_t)k->H * k->W : 1); }

/* the global batch's inputs, parameters and output gradient, fixed */
static float X[NTOTAL * 4096], DY[NTOTAL * 4096], GAMMA[512], BETA[512];

static void make_data(const bn_case *k)
{
    qat_rng r;
    qat_rng_seed(&r, 17);
    for (size_t i = 0; i < NTOTAL * per_image(k); i++) X[i] = k->offset + k->spread * qat_rng_normal(&r);
    for (size_t i = 0; i < NTOTAL * per_image(k); i++) DY[i] = qat_rng_uniform(&r) - 0.5f;
    for (int c = 0; c < k->C; c++) {
        GAMMA[c] = 0.5f + qat_rng_uniform(&r);
        BETA[c] = 0.6f * qat_rng_uniform(&r) - 0.3f;
    }
}

/* images [first, first + n) of the global batch */
static void build(net *m, const bn_case *k, int first, int n)
{
    qat_graph *g = &m->g;
    CHECK(qat_graph_init(g, n, k->threads, 1) == QAT_OK, "init: %s", qat_last_error());
    int xs[4] = {n, k->C, k->H, k->W}, cs[1] = {k->C};
    m->x = qat_graph_param(g, "x", k->ndim, xs, QAT_T_PARAM);
    m->gamma = qat_graph_param(g, "gamma", 1, cs, QAT_T_PARAM);
    m->beta = qat_graph_param(g, "beta", 1, cs, QAT_T_PARAM);
    m->rm = qat_graph_param(g, "rm", 1, cs, QAT_T_BUFFER);
    m->rv = qat_graph_param(g, "rv", 1, cs, QAT_T_BUFFER);
    qat_tensor *y = qat_batchnorm(g, m->x, m->gamma, m->beta, m->rm, m->rv, 1e-5f, 0.1f);
    if (k->relu) y = qat_relu(g, y);
    if (k->pool) y = qat_maxpool2d(g, y, 2, 2, 0);
    m->out = y;
    CHECK(qat_graph_compile(g, &m->out, 1) == QAT_OK, "compile: %s", qat_last_error());
    memcpy(m->x->x, X + (size_t)first * per_image(k), (size_t)n * per_image(k) * sizeof(float));
    memcpy(m->gamma->x, GAMMA, (size_t)k->C * sizeof(float));
    memcpy(m->beta->x, BETA, (size_t)k->C * sizeof(float));
    for (int c = 0; c < k->C; c++) {
        m->rm->x[c] = 0.1f;
        m->rv->x[c] = 0.9f;
    }
}

/* one training step: forward, the output's gradient (the global loss's
 * gradient divided by scale: a rank's own units), backward */
static void step(net *m, int first, float scale)
{
    qat_graph *g = &m->g;
    qat_graph_set_training(g, 1);
    qat_graph_zero_grad(g);
    qat_graph_forward(g);
    size_t per = m->out->n / (size_t)m->out->shape[0];
    for (size_t i = 0; i < m->out->n; i++) m->out->g[i] = DY[(size_t)first * per + i] / scale;
    qat_graph_backward_seeded(g);
}

typedef struct {
    net m;
    rank_ctx rc;
    qat_comm comm;
    qat_graph_sync sync;
    int first, n;
    char msg[256]; /* the rank's qat_last_error() (a thread's own) after a failure */
} rank_run;

static void *rank_main(void *p)
{
    rank_run *r = p;
    r->m.g.sync = &r->sync;
    step(&r->m, r->first, r->sync.share);
    r->m.g.sync = NULL;
    if (r->sync.status) snprintf(r->msg, sizeof r->msg, "%s", qat_last_error());
    return NULL;
}

/* worst |a - b| over max |b| (1 at least) */
static double rel_diff(const float *a, const float *b, size_t n, float scale)
{
    double d = 0, mx = 1;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] * scale - b[i]));
        mx = fmax(mx, fabs(b[i]));
    }
    return d / mx;
}

typedef struct {
    double y, rstat, dx, dparam;
} diffs;

/* the global batch on `ranks` ranks (the first NTOTAL % ranks one image
 * more), synced or each on its own, against the full batch in one graph */
static diffs run_split(const bn_case *k, int ranks, int synced, int fail, long *calls_out)
{
    net full;
    build(&full, k, 0, NTOTAL);
    step(&full, 0, 1.0f);

    world w = {.size = ranks, .fail = fail};
    pthread_barrier_init(&w.bar, NULL, (unsigned)ranks);
    rank_run rr[MAXR];
    int first = 0;
    for (int r = 0; r < ranks; r++) {
        rank_run *q = &rr[r];
        memset(q, 0, sizeof *q);
        q->n = NTOTAL / ranks + (r < NTOTAL % ranks);
        q->first = first;
        first += q->n;
        build(&q->m, k, q->first, q->n);
        q->rc = (rank_ctx){.w = &w, .rank = r, .tmp = malloc(4 * 1024 * sizeof(float))};
        q->comm = (qat_comm){.rank = r, .size = ranks, .user = &q->rc, .allreduce_sum = fake_allreduce,
                             .allgather = fake_allgather};
        q->sync = (qat_graph_sync){.comm = &q->comm, .share = (float)q->n / (float)NTOTAL};
    }
    pthread_t th[MAXR];
    if (synced) {
        for (int r = 0; r < ranks; r++) pthread_create(&th[r], NULL, rank_main, &rr[r]);
        for (int r = 0; r < ranks; r++) pthread_join(th[r], NULL);
    } else {
        for (int r = 0; r < ranks; r++) step(&rr[r].m, rr[r].first, rr[r].sync.share);
    }

    diffs d = {0};
    float dg[512] = {0}, db[512] = {0};
    size_t outper = full.out->n / NTOTAL, xper = per_image(k);
    for (int r = 0; r < ranks; r++) {
        rank_run *q = &rr[r];
        float s = q->sync.share;
        d.y = fmax(d.y, rel_diff(q->m.out->x, full.out->x + (size_t)q->first * outper, q->m.out->n, 1.0f));
        d.dx = fmax(d.dx, rel_diff(q->m.x->g, full.x->g + (size_t)q->first * xper, q->m.x->n, s));
        d.rstat = fmax(d.rstat, rel_diff(q->m.rm->x, full.rm->x, (size_t)k->C, 1.0f));
        d.rstat = fmax(d.rstat, rel_diff(q->m.rv->x, full.rv->x, (size_t)k->C, 1.0f));
        for (int c = 0; c < k->C; c++) {
            dg[c] += s * q->m.gamma->g[c];
            db[c] += s * q->m.beta->g[c];
        }
        if (synced && !fail) {
            /* the same bits on every rank: the running statistics never drift apart */
            CHECK(memcmp(q->m.rm->x, rr[0].m.rm->x, (size_t)k->C * 4) == 0 &&
                      memcmp(q->m.rv->x, rr[0].m.rv->x, (size_t)k->C * 4) == 0,
                  "%s: rank %d's running statistics differ from rank 0's", k->name, r);
            CHECK(q->sync.status == QAT_OK, "%s: rank %d: %s", k->name, r, qat_last_error());
            /* forward: C + 1 then C values; backward: 2 C */
            CHECK(q->sync.floats == 4.0 * k->C + 1, "%s: rank %d summed %.0f values, expected %d", k->name, r,
                  q->sync.floats, 4 * k->C + 1);
        }
        if (fail) {
            CHECK(q->sync.status == QAT_ERR_COMM, "%s: rank %d: status %d after a failed collective", k->name, r,
                  q->sync.status);
            CHECK(strstr(q->msg, "fake allreduce: rank") != NULL, "%s: rank %d's message: '%s'", k->name, r, q->msg);
        }
        if (calls_out) calls_out[r] = q->rc.calls;
    }
    d.dparam = fmax(rel_diff(dg, full.gamma->g, (size_t)k->C, 1.0f), rel_diff(db, full.beta->g, (size_t)k->C, 1.0f));
    for (int r = 0; r < ranks; r++) {
        qat_graph_free(&rr[r].m.g);
        free(rr[r].rc.tmp);
    }
    qat_graph_free(&full.g);
    pthread_barrier_destroy(&w.bar);
    return d;
}

static double worst(diffs d) { return fmax(fmax(d.y, d.rstat), fmax(d.dx, d.dparam)); }

static void test_case(const bn_case *k)
{
    make_data(k);
    for (int ranks = 2; ranks <= 3; ranks++) {
        diffs s = run_split(k, ranks, 1, 0, NULL), u = run_split(k, ranks, 0, 0, NULL);
        printf("%-28s %d ranks  synced: y %.1e  running %.1e  dx %.1e  dgamma/dbeta %.1e   "
               "unsynced: y %.1e  dx %.1e\n",
               k->name, ranks, s.y, s.rstat, s.dx, s.dparam, u.y, u.dx);
        CHECK(worst(s) < 1e-5, "%s, %d ranks: synced BN differs from the full batch's by %.3g", k->name, ranks,
              worst(s));
        /* the test can fail: per-rank statistics are far from the full batch's */
        CHECK(u.y > 1e-2 && u.dx > 1e-2, "%s, %d ranks: unsynced BN is as close as synced (y %.3g, dx %.3g)",
              k->name, ranks, u.y, u.dx);
    }
}

/* size 1: the hook is there, nothing changes, bit for bit */
static void test_size1(const bn_case *k)
{
    make_data(k);
    net a, b;
    build(&a, k, 0, NTOTAL);
    build(&b, k, 0, NTOTAL);
    world w = {.size = 1};
    pthread_barrier_init(&w.bar, NULL, 1);
    rank_ctx rc = {.w = &w, .rank = 0, .tmp = malloc(4096 * sizeof(float))};
    qat_comm comm = {.rank = 0, .size = 1, .user = &rc, .allreduce_sum = fake_allreduce, .allgather = fake_allgather};
    qat_graph_sync sync = {.comm = &comm, .share = 1.0f};
    step(&a, 0, 1.0f);
    b.g.sync = &sync;
    step(&b, 0, 1.0f);
    CHECK(memcmp(a.out->x, b.out->x, a.out->n * 4) == 0 && memcmp(a.x->g, b.x->g, a.x->n * 4) == 0 &&
              memcmp(a.g.grads, b.g.grads, a.g.nparams * 4) == 0 &&
              memcmp(a.g.buffers, b.g.buffers, a.g.nbuffers * 4) == 0 && rc.calls == 0,
          "%s: a size-1 hook changed the result (or was called %ld times)", k->name, rc.calls);
    printf("%-28s size 1: identical to no hook, %ld collectives\n", k->name, rc.calls);
    free(rc.tmp);
    pthread_barrier_destroy(&w.bar);
    qat_graph_free(&a.g);
    qat_graph_free(&b.g);
}

/* a failed collective: the status is kept, later batchnorms skip theirs */
static void test_failure(const bn_case *k)
{
    make_data(k);
    long calls[MAXR] = {0};
    run_split(k, 2, 1, 1, calls);
    CHECK(calls[0] == 1 && calls[1] == 1, "%s: %ld and %ld collectives after the first failed, expected 1", k->name,
          calls[0], calls[1]);
    printf("%-28s a failed collective: reported, %ld call per rank\n", k->name, calls[0]);
}

int main(void)
{
    static const bn_case cases[] = {
        {"4d [7,3,5,7]", 4, 3, 5, 7, 0, 0, 0.3f, 1.5f, 1},
        /* |mean| >> std, as a binary conv's integer outputs: E[x^2] - mean^2 in
         * float32 would lose the variance */
        {"4d offset 40 +- 2", 4, 3, 9, 11, 0, 0, 40.0f, 2.0f, 1},
        {"4d + relu (fused)", 4, 4, 6, 6, 1, 0, 0.2f, 1.0f, 2},
        {"4d + maxpool (fused)", 4, 5, 8, 6, 0, 1, -0.5f, 2.0f, 1},
        {"4d + relu + maxpool (fused)", 4, 3, 7, 5, 1, 1, 0.1f, 1.0f, 2},
        {"2d [7,300]", 2, 300, 1, 1, 0, 0, 1.0f, 3.0f, 2},
        {"2d [7,10] + relu (fused)", 2, 10, 1, 1, 1, 0, 0.0f, 1.0f, 1},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) test_case(&cases[i]);
    test_size1(&cases[0]);
    test_size1(&cases[5]);
    test_failure(&cases[4]);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
