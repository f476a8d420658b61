/* graph.c: building, compiling and running the static graph. Compile places
 * every buffer once (parameters, buffers, activations, gradients, op state,
 * scratch); forward/backward then walk the sorted order with no allocation. */
#include "graph.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#define ALIGN 64

static size_t align_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

/* ---- thread pool ----------------------------------------------------------
 * Workers wait on a generation counter; the caller runs chunk 0 itself. The
 * pool and OpenBLAS never run at once: while the pool works, OpenBLAS is told
 * to use one thread, so both never compete for the same cores. */
struct qat_pool {
    int n; /* workers besides the caller */
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t cv_go, cv_done;
    unsigned long gen;
    int pending;
    int quit;
    qat_task_fn fn;
    void *ctx;
    int items;
    int threads;
};

static void chunk(int items, int threads, int k, int *b, int *e)
{
    *b = (int)((long long)items * k / threads);
    *e = (int)((long long)items * (k + 1) / threads);
}

typedef struct {
    qat_pool *p;
    int k;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    qat_pool *p = wa->p;
    int k = wa->k;
    free(wa);
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->quit) pthread_cond_wait(&p->cv_go, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        qat_task_fn fn = p->fn;
        void *ctx = p->ctx;
        int items = p->items, threads = p->threads;
        pthread_mutex_unlock(&p->mu);
        int b, e;
        chunk(items, threads, k, &b, &e);
        if (b < e) fn(ctx, b, e, k);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->cv_done);
        pthread_mutex_unlock(&p->mu);
    }
}

static qat_status pool_init(qat_pool **out, int threads)
{
    *out = NULL;
    if (threads <= 1) return QAT_OK;
    qat_pool *p = calloc(1, sizeof *p);
    if (!p) return qat_error_set(QAT_ERR_MEMORY, "thread pool: out of memory");
    p->n = threads - 1;
    p->tid = calloc((size_t)p->n, sizeof *p->tid);
    if (!p->tid) {
        free(p);
        return qat_error_set(QAT_ERR_MEMORY, "thread pool: out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_go, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    for (int i = 0; i < p->n; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) {
            wa->p = p;
            wa->k = i + 1;
        }
        if (!wa || pthread_create(&p->tid[i], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n = i;
            *out = p;
            return qat_error_set(QAT_ERR_MEMORY, "thread pool: cannot start thread %d", i + 1);
        }
    }
    *out = p;
    return QAT_OK;
}

static void pool_free(qat_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv_go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) pthread_join(p->tid[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_go);
    pthread_cond_destroy(&p->cv_done);
    free(p->tid);
    free(p);
}

void qat_graph_parallel(qat_graph *g, int n, qat_task_fn fn, void *ctx)
{
    qat_pool *p = g->pool;
    if (n <= 0) return;
    if (!p || n == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    int threads = p->n + 1;
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->items = n;
    p->threads = threads;
    p->pending = p->n;
    p->gen++;
    pthread_cond_broadcast(&p->cv_go);
    pthread_mutex_unlock(&p->mu);
    int b, e;
    chunk(n, threads, 0, &b, &e);
    if (b < e) fn(ctx, b, e, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* ---- GEMM over the pool ------------------------------------------------------
 * OpenBLAS runs single-threaded, always: its own pool spins in sched_yield
 * while ours works, which halves throughput on two cores. We split C's rows
 * (or columns when there are few rows) across our threads instead; each
 * element of C is computed by one thread, so results depend only on the
 * thread count. */
typedef struct {
    int ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    int by_rows;
} gemm_task;

static void gemm_run(void *ctx, int b, int e, int tid)
{
    const gemm_task *t = ctx;
    enum CBLAS_TRANSPOSE ta = t->ta ? CblasTrans : CblasNoTrans, tb = t->tb ? CblasTrans : CblasNoTrans;
    if (t->by_rows) {
        const float *A = t->ta ? t->A + b : t->A + (size_t)b * t->lda;
        cblas_sgemm(CblasRowMajor, ta, tb, e - b, t->N, t->K, t->alpha, A, t->lda, t->B, t->ldb, t->beta,
                    t->C + (size_t)b * t->ldc, t->ldc);
    } else {
        const float *B = t->tb ? t->B + (size_t)b * t->ldb : t->B + b;
        cblas_sgemm(CblasRowMajor, ta, tb, t->M, e - b, t->K, t->alpha, t->A, t->lda, B, t->ldb, t->beta,
                    t->C + b, t->ldc);
    }
}

void qat_graph_sgemm(qat_graph *g, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_task t = {ta, tb, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, M >= N};
    /* split in multiples of 16 so every thread's panel stays kernel-aligned */
    long long work = (long long)M * N * K;
    if (!g->pool || work < (1LL << 18)) {
        gemm_run(&t, 0, t.by_rows ? M : N, 0);
        return;
    }
    int n = t.by_rows ? M : N;
    qat_graph_parallel(g, n, gemm_run, &t);
}

/* ---- building ------------------------------------------------------------ */
qat_status qat_graph_init(qat_graph *g, int max_batch, int threads, uint64_t seed)
{
    memset(g, 0, sizeof *g);
    if (max_batch < 1) return qat_error_set(QAT_ERR_ARG, "graph: batch must be >= 1, got %d", max_batch);
    if (threads < 1 || threads > 256)
        return qat_error_set(QAT_ERR_ARG, "graph: threads must be in 1..256, got %d", threads);
    g->max_batch = g->batch = max_batch;
    g->threads = threads;
    g->training = 1;
    qat_rng_seed(&g->rng, seed);
    openblas_set_num_threads(1);
    return pool_init(&g->pool, threads);
}

void qat_graph_free(qat_graph *g)
{
    if (!g) return;
    pool_free(g->pool);
    for (int i = 0; i < g->nall; i++) free(g->all[i]);
    free(g->all);
    free(g->order);
    free(g->zero_list);
    free(g->zero_step);
    free(g->zero_first);
    free(g->params);
    free(g->grads);
    free(g->buffers);
    free(g->arena);
    free(g->scratch);
    memset(g, 0, sizeof *g);
}

size_t qat_tensor_numel(const qat_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

const char *qat_tensor_shape_str(const qat_tensor *t, char *buf, size_t cap)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < t->ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%d", i ? ", " : "", t->shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

static qat_tensor *new_tensor(qat_graph *g, int op, const char *name)
{
    if (g->compiled) {
        qat_error_set(QAT_ERR_ARG, "graph: cannot add '%s' after compile", name ? name : "?");
        return NULL;
    }
    if (g->nall == g->capall) {
        int cap = g->capall ? 2 * g->capall : 64;
        qat_tensor **a = realloc(g->all, (size_t)cap * sizeof *a);
        if (!a) {
            qat_error_set(QAT_ERR_MEMORY, "graph: out of memory");
            return NULL;
        }
        g->all = a;
        g->capall = cap;
    }
    qat_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        qat_error_set(QAT_ERR_MEMORY, "graph: out of memory");
        return NULL;
    }
    t->op = op;
    t->id = g->nall;
    if (name) snprintf(t->name, sizeof t->name, "%s", name);
    else snprintf(t->name, sizeof t->name, "%s_%d", qat_ops[op].name, t->id);
    g->all[g->nall++] = t;
    return t;
}

static int set_shape(qat_tensor *t, int ndim, const int *shape)
{
    if (ndim < 1 || ndim > QAT_MAX_DIMS) {
        qat_error_set(QAT_ERR_SHAPE, "%s: %d dimensions; 1 to %d are supported", t->name, ndim,
                      QAT_MAX_DIMS);
        return 0;
    }
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1) {
            qat_error_set(QAT_ERR_SHAPE, "%s: dimension %d is %d; sizes must be >= 1", t->name, i,
                          shape[i]);
            return 0;
        }
        t->shape[i] = shape[i];
    }
    t->n = qat_tensor_numel(t);
    return 1;
}

qat_tensor *qat_graph_input(qat_graph *g, const char *name, int ndim, const int *shape)
{
    qat_tensor *t = new_tensor(g, QAT_OP_LEAF, name);
    if (!t || !set_shape(t, ndim, shape)) return NULL;
    t->shape[0] = g->max_batch;
    t->n = qat_tensor_numel(t);
    t->flags = QAT_T_BATCH | QAT_T_INPUT;
    return t;
}

qat_tensor *qat_graph_param(qat_graph *g, const char *name, int ndim, const int *shape, int flags)
{
    QAT_ASSERT(flags & (QAT_T_PARAM | QAT_T_BUFFER));
    qat_tensor *t = new_tensor(g, QAT_OP_LEAF, name);
    if (!t || !set_shape(t, ndim, shape)) return NULL;
    t->flags = flags;
    return t;
}

/* Creates an op node: checks sources, copies settings, infers the shape. */
static qat_tensor *make_op(qat_graph *g, int op, int nsrc, qat_tensor **src, const int32_t *ip,
                           int nip, const float *fp, int nfp)
{
    const qat_op_def *d = &qat_ops[op];
    for (int i = 0; i < nsrc; i++)
        if (!src[i]) return NULL; /* an earlier builder failed; its message stands */
    QAT_ASSERT(nsrc >= d->nsrc_min && nsrc <= d->nsrc_max);
    qat_tensor *t = new_tensor(g, op, NULL);
    if (!t) return NULL;
    t->nsrc = nsrc;
    for (int i = 0; i < nsrc; i++) t->src[i] = src[i];
    for (int i = 0; i < nip; i++) t->ip[i] = ip[i];
    for (int i = 0; i < nfp; i++) t->fp[i] = fp[i];
    t->flags = src[0]->flags & QAT_T_BATCH;
    if (d->shape(t) != QAT_OK) return NULL;
    t->n = qat_tensor_numel(t);
    return t;
}

qat_tensor *qat_add(qat_graph *g, qat_tensor *a, qat_tensor *b)
{
    qat_tensor *s[2] = {a, b};
    return make_op(g, QAT_OP_ADD, 2, s, NULL, 0, NULL, 0);
}

qat_tensor *qat_mul(qat_graph *g, qat_tensor *a, qat_tensor *b)
{
    qat_tensor *s[2] = {a, b};
    return make_op(g, QAT_OP_MUL, 2, s, NULL, 0, NULL, 0);
}

qat_tensor *qat_bias(qat_graph *g, qat_tensor *x, qat_tensor *b)
{
    qat_tensor *s[2] = {x, b};
    return make_op(g, QAT_OP_BIAS, 2, s, NULL, 0, NULL, 0);
}

qat_tensor *qat_linear(qat_graph *g, qat_tensor *x, qat_tensor *w, qat_tensor *b)
{
    qat_tensor *s[3] = {x, w, b};
    return make_op(g, QAT_OP_LINEAR, b ? 3 : 2, s, NULL, 0, NULL, 0);
}

qat_tensor *qat_conv2d(qat_graph *g, qat_tensor *x, qat_tensor *w, qat_tensor *b, int stride_h,
                       int stride_w, int pad_h, int pad_w)
{
    qat_tensor *s[3] = {x, w, b};
    int32_t ip[4] = {stride_h, stride_w, pad_h, pad_w};
    return make_op(g, QAT_OP_CONV2D, b ? 3 : 2, s, ip, 4, NULL, 0);
}

void qat_conv2d_set_forward(qat_tensor *conv, const qat_custom_op *op, void *user)
{
    QAT_ASSERT(conv && conv->op == QAT_OP_CONV2D && op && op->forward);
    conv->custom = op;
    conv->user = user;
}

qat_tensor *qat_maxpool2d(qat_graph *g, qat_tensor *x, int size, int stride, int pad)
{
    int32_t ip[3] = {size, stride, pad};
    return make_op(g, QAT_OP_MAXPOOL2D, 1, &x, ip, 3, NULL, 0);
}

qat_tensor *qat_avgpool2d(qat_graph *g, qat_tensor *x, int size, int stride, int pad)
{
    int32_t ip[3] = {size, stride, pad};
    return make_op(g, QAT_OP_AVGPOOL2D, 1, &x, ip, 3, NULL, 0);
}

qat_tensor *qat_gap(qat_graph *g, qat_tensor *x) { return make_op(g, QAT_OP_GAP, 1, &x, NULL, 0, NULL, 0); }

qat_tensor *qat_batchnorm(qat_graph *g, qat_tensor *x, qat_tensor *gamma, qat_tensor *beta,
                          qat_tensor *running_mean, qat_tensor *running_var, float eps,
                          float momentum)
{
    qat_tensor *s[4] = {x, gamma, beta, running_mean};
    float fp[2] = {eps, momentum};
    qat_tensor *t = make_op(g, QAT_OP_BATCHNORM, 4, s, NULL, 0, fp, 2);
    if (!t) return NULL;
    if (!running_var) return NULL;
    /* the fifth tensor does not fit src[]: it rides in user */
    if (running_var->n != running_mean->n) {
        qat_error_set(QAT_ERR_SHAPE, "%s: running_var has %zu elements, running_mean %zu",
                      t->name, running_var->n, running_mean->n);
        return NULL;
    }
    t->user = running_var;
    return t;
}

qat_tensor *qat_relu(qat_graph *g, qat_tensor *x) { return make_op(g, QAT_OP_RELU, 1, &x, NULL, 0, NULL, 0); }

qat_tensor *qat_hardtanh(qat_graph *g, qat_tensor *x, float lo, float hi)
{
    float fp[2] = {lo, hi};
    return make_op(g, QAT_OP_HARDTANH, 1, &x, NULL, 0, fp, 2);
}

qat_tensor *qat_dropout(qat_graph *g, qat_tensor *x, float p)
{
    float fp[1] = {p};
    return make_op(g, QAT_OP_DROPOUT, 1, &x, NULL, 0, fp, 1);
}

qat_tensor *qat_flatten(qat_graph *g, qat_tensor *x) { return make_op(g, QAT_OP_FLATTEN, 1, &x, NULL, 0, NULL, 0); }

qat_tensor *qat_shortcut(qat_graph *g, qat_tensor *a, qat_tensor *b)
{
    qat_tensor *s[2] = {a, b};
    return make_op(g, QAT_OP_SHORTCUT, 2, s, NULL, 0, NULL, 0);
}

qat_tensor *qat_softmax_ce(qat_graph *g, qat_tensor *logits, const int32_t *labels)
{
    qat_tensor *t = make_op(g, QAT_OP_SOFTMAX_CE, 1, &logits, NULL, 0, NULL, 0);
    if (t) t->user = (void *)labels;
    return t;
}

qat_tensor *qat_mean(qat_graph *g, qat_tensor *x) { return make_op(g, QAT_OP_MEAN, 1, &x, NULL, 0, NULL, 0); }

qat_tensor *qat_custom(qat_graph *g, const qat_custom_op *op, void *user, int nsrc, qat_tensor **src)
{
    for (int i = 0; i < nsrc; i++)
        if (!src[i]) return NULL;
    qat_tensor *t = make_op(g, QAT_OP_CUSTOM, nsrc, src, NULL, 0, NULL, 0);
    if (!t) return NULL;
    t->custom = op;
    t->user = user;
    snprintf(t->name, sizeof t->name, "%s_%d", op->name, t->id);
    return t;
}

qat_tensor *qat_custom_leaf(qat_graph *g, const qat_custom_op *op, void *user, int ndim, const int *shape)
{
    qat_tensor *t = new_tensor(g, QAT_OP_CUSTOM, op->name);
    if (!t || !set_shape(t, ndim, shape)) return NULL;
    t->custom = op;
    t->user = user;
    t->flags = QAT_T_GRAD; /* its consumers compute its gradient */
    return t;
}

qat_tensor *qat_graph_find(const qat_graph *g, const char *name)
{
    for (int i = 0; i < g->nall; i++)
        if (strcmp(g->all[i]->name, name) == 0) return g->all[i];
    return NULL;
}

/* ---- compile ------------------------------------------------------------- */
static qat_status visit(qat_graph *g, qat_tensor *t, unsigned char *mark)
{
    if (mark[t->id] == 2) return QAT_OK;
    QAT_ASSERT(mark[t->id] != 1); /* builders only point backwards: no cycles */
    mark[t->id] = 1;
    for (int i = 0; i < t->nsrc; i++) visit(g, t->src[i], mark);
    if (t->op == QAT_OP_BATCHNORM) visit(g, (qat_tensor *)t->user, mark);
    mark[t->id] = 2;
    g->order[g->norder++] = t;
    return QAT_OK;
}

static size_t op_state_bytes(const qat_tensor *t, int max_batch)
{
    if (t->op == QAT_OP_CUSTOM) return t->custom->state_bytes ? t->custom->state_bytes(t, max_batch) : 0;
    const qat_op_def *d = &qat_ops[t->op];
    return d->state_bytes ? d->state_bytes(t, max_batch) : 0;
}

size_t qat_op_scratch_bytes(const qat_tensor *t, int max_batch, int threads)
{
    if (t->op == QAT_OP_CUSTOM)
        return t->custom->scratch_bytes ? t->custom->scratch_bytes(t, max_batch, threads) : 0;
    const qat_op_def *d = &qat_ops[t->op];
    return d->scratch_bytes ? d->scratch_bytes(t, max_batch, threads) : 0;
}

/* nodes that share their source's memory: flatten, and a fused ReLU */
static int is_alias(const qat_tensor *t) { return qat_ops[t->op].alias || (t->op == QAT_OP_RELU && t->ip[0]); }

/* the tensor whose memory an alias node shares */
static qat_tensor *alias_root(qat_tensor *t)
{
    while (is_alias(t)) t = t->src[0];
    return t;
}

static int has_grad_buffer(const qat_tensor *t)
{
    return !(t->flags & (QAT_T_PARAM | QAT_T_BUFFER)) && !is_alias(t) && (t->flags & QAT_T_GRAD) && !t->fused;
}

typedef struct {
    qat_tensor *t;
    size_t bytes, off;
    int start, end; /* backward steps (0 = the last node's backward), inclusive */
} grad_slot;

static int slot_by_size(const void *a, const void *b)
{
    const grad_slot *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->t->id - y->t->id; /* deterministic */
}

static int slot_by_off(const void *a, const void *b)
{
    const grad_slot *const *x = a, *const *y = b;
    return (*x)->off < (*y)->off ? -1 : (*x)->off > (*y)->off;
}

/* Places the activation gradients: each lives from the first backward that
 * adds into it (a consumer of it or of an alias of it) to the last that reads
 * it (its own, or the batchnorm that computes it fused), and two whose lives
 * overlap never share bytes. Greedy by size, lowest offset that fits (as
 * TFLite's arena planner). A chain of layers then needs about two of them at a
 * time instead of all. Gradients read after the backward (leaves: DST's weight
 * views, inputs) live to the end. Fills t->g offsets in slot->off, the zero
 * lists, and returns the area's size. */
static qat_status plan_grads(qat_graph *g, qat_tensor **outputs, int noutputs, grad_slot **out_slots, int *out_n,
                             size_t *area)
{
    int n = 0, T = g->norder;
    int *slot_of = malloc(sizeof(int) * (size_t)g->nall);
    grad_slot *sl = calloc((size_t)T + 1, sizeof *sl);
    if (!slot_of || !sl) {
        free(slot_of);
        free(sl);
        return qat_error_set(QAT_ERR_MEMORY, "graph: out of memory");
    }
    for (int i = 0; i < g->nall; i++) slot_of[i] = -1;
    for (int i = 0; i < T; i++) {
        qat_tensor *t = g->order[i];
        if (!has_grad_buffer(t)) continue;
        int leaf = t->op == QAT_OP_LEAF || (t->op == QAT_OP_CUSTOM && t->nsrc == 0);
        sl[n] = (grad_slot){t, align_up(t->n * sizeof(float)), 0, T, leaf ? T : T - 1 - i};
        slot_of[t->id] = n++;
    }
    for (int i = 0; i < T; i++) {
        qat_tensor *c = g->order[i];
        if (c->op == QAT_OP_LEAF || !(c->flags & QAT_T_GRAD)) continue;
        int tau = T - 1 - i;
        for (int j = 0; j < c->nsrc; j++) {
            int k = slot_of[alias_root(c->src[j])->id];
            if (k >= 0 && tau < sl[k].start) sl[k].start = tau;
        }
        if (c->fused) {
            int k = slot_of[alias_root(c->fused)->id];
            if (k >= 0 && tau > sl[k].end) sl[k].end = tau;
        }
    }
    for (int i = 0; i < noutputs; i++) {
        int k = slot_of[alias_root(outputs[i])->id];
        if (k >= 0) sl[k].start = -1; /* seeded by the caller: zeroed by zero_grad, alive from the start */
    }
    for (int k = 0; k < n; k++) {
        if (sl[k].start > sl[k].end) sl[k].start = sl[k].end; /* no writer: zeroed before its own backward */
    }
    free(slot_of);
    for (int k = 0; k < n && g->no_grad_sharing; k++) {
        sl[k].start = -1;
        sl[k].end = T;
    }

    qsort(sl, (size_t)n, sizeof *sl, slot_by_size);
    grad_slot **placed = malloc(sizeof *placed * (size_t)(n ? n : 1));
    if (!placed) {
        free(sl);
        return qat_error_set(QAT_ERR_MEMORY, "graph: out of memory");
    }
    size_t top = 0;
    for (int k = 0; k < n; k++) {
        int m = 0;
        for (int j = 0; j < k; j++)
            if (sl[j].start <= sl[k].end && sl[k].start <= sl[j].end) placed[m++] = &sl[j];
        qsort(placed, (size_t)m, sizeof *placed, slot_by_off);
        size_t off = 0;
        for (int j = 0; j < m; j++) {
            if (placed[j]->off >= off + sl[k].bytes) break;
            if (placed[j]->off + placed[j]->bytes > off) off = placed[j]->off + placed[j]->bytes;
        }
        sl[k].off = off;
        if (off + sl[k].bytes > top) top = off + sl[k].bytes;
    }
    free(placed);
    *out_slots = sl;
    *out_n = n;
    *area = top;
    return QAT_OK;
}

/* the zero lists from the planned slots (after t->g is set) */
static qat_status build_zero_lists(qat_graph *g, const grad_slot *sl, int n)
{
    int T = g->norder;
    g->zero_first = calloc((size_t)T + 1, sizeof *g->zero_first);
    g->zero_list = malloc(sizeof *g->zero_list * (size_t)(n ? n : 1));
    g->zero_step = malloc(sizeof *g->zero_step * (size_t)(n ? n : 1));
    if (!g->zero_first || !g->zero_list || !g->zero_step) return qat_error_set(QAT_ERR_MEMORY, "graph: out of memory");
    /* node i's backward runs at step T - 1 - i */
    for (int k = 0; k < n; k++)
        if (sl[k].start >= 0) g->zero_first[T - 1 - sl[k].start + 1]++;
        else g->zero_step[g->nzero_step++] = sl[k].t;
    for (int i = 0; i < T; i++) g->zero_first[i + 1] += g->zero_first[i];
    int *fill = calloc((size_t)T + 1, sizeof *fill);
    if (!fill) return qat_error_set(QAT_ERR_MEMORY, "graph: out of memory");
    for (int k = 0; k < n; k++)
        if (sl[k].start >= 0) {
            int i = T - 1 - sl[k].start;
            g->zero_list[g->zero_first[i] + fill[i]++] = sl[k].t;
        }
    free(fill);
    return QAT_OK;
}

qat_status qat_graph_compile(qat_graph *g, qat_tensor **outputs, int noutputs)
{
    if (g->compiled) return qat_error_set(QAT_ERR_ARG, "graph: compiled twice");
    for (int i = 0; i < noutputs; i++)
        if (!outputs[i]) return QAT_ERR_SHAPE; /* a builder failed; its message stands */
    unsigned char *mark = calloc((size_t)g->nall, 1);
    g->order = calloc((size_t)g->nall, sizeof *g->order);
    if (!mark || !g->order) {
        free(mark);
        return qat_error_set(QAT_ERR_MEMORY, "graph: out of memory");
    }
    for (int i = 0; i < noutputs; i++) visit(g, outputs[i], mark);
    free(mark);

    /* fusion: a ReLU whose source is a batchnorm feeding nothing else is
     * applied inside the BN pass (one pass over memory instead of two, forward
     * and backward); the ReLU node then shares the BN's memory */
    int *uses = calloc((size_t)g->nall, sizeof *uses);
    if (!uses) return qat_error_set(QAT_ERR_MEMORY, "graph: out of memory");
    for (int i = 0; i < g->norder; i++)
        for (int j = 0; j < g->order[i]->nsrc; j++) uses[g->order[i]->src[j]->id]++;
    for (int i = 0; i < noutputs; i++) uses[outputs[i]->id]++;
    for (int i = 0; i < g->norder && !g->no_fusion; i++) {
        qat_tensor *t = g->order[i];
        if (t->op == QAT_OP_RELU && t->src[0]->op == QAT_OP_BATCHNORM && uses[t->src[0]->id] == 1) {
            t->src[0]->ip[0] = 1;
            t->ip[0] = 1;
        }
    }
    /* and a 2x2 stride-2 max pool after such a BN (or its fused ReLU): the BN
     * pass pools each plane while it is in cache and its backward reads the
     * pool's gradient directly, so the BN output and its gradient are never
     * written */
    for (int i = 0; i < g->norder && !g->no_fusion; i++) {
        qat_tensor *t = g->order[i], *s0 = t->nsrc ? t->src[0] : NULL;
        if (t->op != QAT_OP_MAXPOOL2D || t->ip[0] != 2 || t->ip[1] != 2 || t->ip[2] != 0 || uses[s0->id] != 1)
            continue;
        qat_tensor *bn = s0->op == QAT_OP_RELU && s0->ip[0] ? s0->src[0] : s0;
        if (bn->op != QAT_OP_BATCHNORM || bn->ndim != 4) continue;
        bn->fused = t;
        t->ip[3] = 1;
    }
    free(uses);

    /* which nodes need a gradient: parameters, and anything fed by one */
    for (int i = 0; i < g->norder; i++) {
        qat_tensor *t = g->order[i];
        if (t->flags & QAT_T_PARAM) t->flags |= QAT_T_GRAD;
        for (int j = 0; j < t->nsrc; j++)
            if (t->src[j]->flags & QAT_T_GRAD) t->flags |= QAT_T_GRAD;
    }

    /* parameters and buffers: contiguous blocks, in creation order */
    size_t np = 0, nb = 0;
    for (int i = 0; i < g->nall; i++) {
        qat_tensor *t = g->all[i];
        if (t->flags & QAT_T_PARAM) np += t->n;
        else if (t->flags & QAT_T_BUFFER) nb += t->n;
    }
    g->params = calloc(np ? np : 1, sizeof(float));
    g->grads = calloc(np ? np : 1, sizeof(float));
    g->buffers = calloc(nb ? nb : 1, sizeof(float));
    if (!g->params || !g->grads || !g->buffers) return qat_error_set(QAT_ERR_MEMORY, "graph: out of memory for %zu parameters", np);
    g->nparams = np;
    g->nbuffers = nb;
    np = nb = 0;
    for (int i = 0; i < g->nall; i++) {
        qat_tensor *t = g->all[i];
        if (t->flags & QAT_T_PARAM) {
            t->x = g->params + np;
            t->g = g->grads + np;
            np += t->n;
        } else if (t->flags & QAT_T_BUFFER) {
            t->x = g->buffers + nb;
            nb += t->n;
        }
    }

    /* the arena: activation gradients first (shared, plan_grads), then
     * activations, then op state */
    grad_slot *slots = NULL;
    int nslots = 0;
    size_t grad_bytes = 0;
    qat_status pst = plan_grads(g, outputs, noutputs, &slots, &nslots, &grad_bytes);
    if (pst) return pst;
    size_t act_bytes = 0, state_bytes = 0, scratch = 0;
    g->act_grad_unshared = 0;
    for (int i = 0; i < nslots; i++) g->act_grad_unshared += slots[i].bytes;
    for (int i = 0; i < g->norder; i++) {
        qat_tensor *t = g->order[i];
        if (t->flags & (QAT_T_PARAM | QAT_T_BUFFER)) continue;
        if (!is_alias(t)) act_bytes += align_up(t->n * sizeof(float));
        state_bytes += align_up(op_state_bytes(t, g->max_batch));
        size_t s = qat_op_scratch_bytes(t, g->max_batch, g->threads);
        if (s > scratch) scratch = s;
    }
    g->arena_bytes = grad_bytes + act_bytes + state_bytes;
    g->arena = aligned_alloc(ALIGN, g->arena_bytes ? g->arena_bytes : ALIGN);
    g->scratch_bytes = scratch;
    g->scratch = aligned_alloc(ALIGN, align_up(scratch ? scratch : ALIGN));
    if (!g->arena || !g->scratch) {
        free(slots);
        return qat_error_set(QAT_ERR_MEMORY, "graph: out of memory for a %zu-byte arena", g->arena_bytes);
    }
    memset(g->arena, 0, g->arena_bytes);
    memset(g->scratch, 0, align_up(scratch ? scratch : ALIGN));
    g->act_grad_bytes = grad_bytes;
    for (int i = 0; i < nslots; i++) slots[i].t->g = (float *)(g->arena + slots[i].off);
    pst = build_zero_lists(g, slots, nslots);
    free(slots);
    if (pst) return pst;
    size_t aoff = grad_bytes, soff = grad_bytes + act_bytes;
    for (int i = 0; i < g->norder; i++) {
        qat_tensor *t = g->order[i];
        if (t->flags & (QAT_T_PARAM | QAT_T_BUFFER)) continue;
        if (is_alias(t)) {
            t->x = t->src[0]->x;
            t->g = t->src[0]->g;
        } else {
            t->x = (float *)(g->arena + aoff);
            aoff += align_up(t->n * sizeof(float));
        }
        t->state_bytes = op_state_bytes(t, g->max_batch);
        if (t->state_bytes) {
            t->state = g->arena + soff;
            soff += align_up(t->state_bytes);
        }
    }
    g->arena_used = soff;
    g->compiled = 1;
    return QAT_OK;
}

void qat_graph_set_batch(qat_graph *g, int n)
{
    QAT_ASSERT(n >= 1 && n <= g->max_batch);
    g->batch = n;
    for (int i = 0; i < g->nall; i++) {
        qat_tensor *t = g->all[i];
        if (t->flags & QAT_T_BATCH) {
            t->shape[0] = n;
            t->n = qat_tensor_numel(t);
        }
    }
}

void qat_graph_set_training(qat_graph *g, int training) { g->training = training; }

void qat_graph_zero_grad(qat_graph *g)
{
    /* the other activation gradients are zeroed in the backward, when their
     * shared memory becomes theirs */
    for (int i = 0; i < g->nzero_step; i++) memset(g->zero_step[i]->g, 0, g->zero_step[i]->n * sizeof(float));
    memset(g->grads, 0, g->nparams * sizeof(float));
}

void *qat_graph_scratch(qat_graph *g, size_t bytes)
{
    QAT_ASSERT(g->scratch_used + bytes <= g->scratch_bytes);
    void *p = g->scratch + g->scratch_used;
    g->scratch_used += align_up(bytes);
    if (g->scratch_used > g->scratch_high) g->scratch_high = g->scratch_used;
    return p;
}

void qat_graph_forward(qat_graph *g)
{
    QAT_ASSERT(g->compiled);
    for (int i = 0; i < g->norder; i++) {
        qat_tensor *t = g->order[i];
        if (t->op == QAT_OP_LEAF) continue;
        g->scratch_used = 0;
        if (t->op == QAT_OP_CUSTOM) t->custom->forward(t, g);
        else if (qat_ops[t->op].forward) qat_ops[t->op].forward(t, g);
    }
}

void qat_graph_backward(qat_graph *g, qat_tensor *loss)
{
    QAT_ASSERT(g->compiled && loss->g && loss->n == 1);
    loss->g[0] = 1.0f;
    qat_graph_backward_seeded(g);
}

void qat_graph_backward_seeded(qat_graph *g)
{
    for (int i = g->norder - 1; i >= 0; i--) {
        qat_tensor *t = g->order[i];
        for (int k = g->zero_first[i]; k < g->zero_first[i + 1]; k++)
            memset(g->zero_list[k]->g, 0, g->zero_list[k]->n * sizeof(float));
        if (t->op == QAT_OP_LEAF || !(t->flags & QAT_T_GRAD)) continue;
        g->scratch_used = 0;
        if (t->op == QAT_OP_CUSTOM) t->custom->backward(t, g);
        else if (qat_ops[t->op].backward) qat_ops[t->op].backward(t, g);
    }
}
