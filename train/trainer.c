/* trainer.c: the epoch loop (see trainer.h). The data order depends only on
 * (seed, epoch), and the checkpoint carries the optimizer, BN statistics and
 * RNG state, so 2 epochs straight and 1 + resume 1 give identical weights. */
#include "trainer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datautil.h"

double qat_peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static qat_status mkdir_p(const char *dir)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return qat_error_set(QAT_ERR_ARG, "%s: path too long", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return qat_error_set(QAT_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return qat_error_set(QAT_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    return QAT_OK;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

/* The update is elementwise: the parameter block is cut into fixed blocks
 * spread over the graph's threads, each block clipped to the tensors it
 * covers (their weight decay differs). */
#define UPDATE_BLOCK 16384

typedef struct {
    qat_graph *g;
    qat_optim *o;
    const qat_net_cfg *net;
    float lr;
} update_task;

/* weights a quantizer keeps itself: each node steps them with the
 * optimizer that serves all of them in view (DST turns the optimizer's step
 * into a state transition, Eq. 12-15) */
static void update_owned(qat_model *m, qat_optimizer *o, const qat_net_cfg *net, float lr, const qat_train_phase *ph)
{
    if (m->nowned == 0) return;
    qat_optim_begin_step(&o->owned);
    qat_owned_step s = {.optim = &o->owned, .lr = lr, .wd = net->weight_decay, .scratch = o->delta, .g = &m->g};
    if (ph) {
        s.phase = ph->at.kind;
        s.phase_epoch = ph->at.epoch;
        s.phase_kind_left = ph->at.kind_left;
        s.steps_per_epoch = ph->steps_per_epoch;
        s.phase_steps = (long)ph->at.epochs * ph->steps_per_epoch;
        s.phase_step = (long)ph->at.epoch * ph->steps_per_epoch + ph->step;
    } else {
        s.steps_per_epoch = 1;
        s.phase_steps = 1;
    }
    for (int i = 0; i < m->nowned; i++) {
        qat_qnode *q = m->owned[i];
        const qat_tensor *t = q->out;
        const qat_quantizer *qq = q->spec.q;
        if (qq->step_all) { /* once per method, over every node (it picks its own) */
            int seen = 0;
            for (int k = 0; k < i && !seen; k++) seen = m->owned[k]->spec.q == qq;
            if (!seen) qq->step_all(m->owned, m->nowned, &s, &m->g.rng);
        } else if (qq->step) {
            qq->step(q, &s, &m->g.rng);
        } else {
            qat_optim_delta_at(s.optim, q->owned_off, t->n, t->x, t->g, lr, s.wd, s.scratch);
            qq->update(q, s.scratch, &m->g.rng);
        }
    }
}

static void update_run(void *ctx, int b, int e, int tid)
{
    const update_task *k = ctx;
    qat_graph *g = k->g;
    size_t lo = (size_t)b * UPDATE_BLOCK, hi = (size_t)e * UPDATE_BLOCK;
    for (int i = 0; i < g->nall; i++) {
        qat_tensor *t = g->all[i];
        if (!(t->flags & QAT_T_PARAM)) continue;
        size_t off = (size_t)(t->x - g->params), end = off + t->n;
        size_t s = off > lo ? off : lo, f = end < hi ? end : hi;
        if (s >= f) continue;
        float wd = (k->net->decay_all || !(t->flags & QAT_T_NO_DECAY)) ? k->net->weight_decay : 0.0f;
        if (t->flags & QAT_T_OWN_DECAY) wd = t->fp[0];
        qat_optim_update(k->o, s, f - s, g->params, g->grads, k->lr, wd);
    }
}

/* The first non-finite value among x[0..n), or n. */
static size_t first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

static const char *nonfinite_name(float v) { return isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf"; }

/* After the backward: the loss, then every gradient (the parameter block in
 * model order, then weights a quantizer keeps); the message names the first
 * tensor and element. With values = 1, the parameters and buffers instead
 * (after the update). */
static qat_status check_finite(qat_model *m, int values)
{
    qat_graph *g = &m->g;
    if (!values) {
        float loss = m->loss->x[0];
        if (!isfinite(loss)) return qat_error_set(QAT_ERR_NONFINITE, "the loss is %s", nonfinite_name(loss));
    }
    for (int i = 0; i < g->nall; i++) {
        const qat_tensor *t = g->all[i];
        const float *v = NULL;
        if (values && (t->flags & (QAT_T_PARAM | QAT_T_BUFFER))) v = t->x;
        else if (!values && (t->flags & QAT_T_PARAM)) v = t->g;
        if (!v) continue;
        size_t k = first_nonfinite(v, t->n);
        if (k < t->n && values)
            return qat_error_set(QAT_ERR_NONFINITE, "'%s' element %zu became %s in the update", t->name, k,
                                 nonfinite_name(v[k]));
        if (k < t->n)
            return qat_error_set(QAT_ERR_NONFINITE, "the gradient of '%s' is %s at element %zu", t->name,
                                 nonfinite_name(v[k]), k);
    }
    for (int i = 0; !values && i < m->nowned; i++) {
        const qat_tensor *t = m->owned[i]->out;
        size_t k = first_nonfinite(t->g, t->n);
        if (k < t->n)
            return qat_error_set(QAT_ERR_NONFINITE, "the gradient of '%s' is %s at element %zu", t->name,
                                 nonfinite_name(t->g[k]), k);
    }
    return QAT_OK;
}

static void train_forward_backward(qat_model *m, int n)
{
    qat_graph *g = &m->g;
    qat_graph_set_batch(g, n);
    qat_graph_set_training(g, 1);
    qat_graph_zero_grad(g);
    qat_graph_forward(g);
    qat_graph_backward(g, m->loss);
}

static void train_update(qat_model *m, qat_optimizer *o, const qat_net_cfg *net, float lr, const qat_train_phase *ph)
{
    qat_graph *g = &m->g;
    qat_optim_begin_step(&o->params);
    update_task k = {g, &o->params, net, lr};
    qat_graph_parallel(g, (int)((g->nparams + UPDATE_BLOCK - 1) / UPDATE_BLOCK), update_run, &k);
    update_owned(m, o, net, lr, ph);
    qat_model_post_update(m);
}

/* ---- data-parallel exchange ---------------------------------------------- */

/* every gradient the update reads: the parameter block, then the weights a
 * quantizer keeps (their gradients live with their nodes) */
static size_t exchange_size(const qat_model *m)
{
    size_t n = m->g.nparams;
    for (int i = 0; i < m->nowned; i++) n += m->owned[i]->out->n;
    return n;
}

qat_status qat_train_gradcomm_init(qat_gradcomm *gc, const qat_model *m, qat_gradcomm_kind k, int ranks)
{
    return qat_gradcomm_init(gc, k, exchange_size(m), ranks);
}

/* gc->block <-> the gradients (to = 1 packs, scaled; 0 unpacks) */
static void exchange_copy(qat_model *m, float *block, int to, float scale)
{
    qat_graph *g = &m->g;
    size_t k = 0;
    for (int i = -1; i < m->nowned; i++) {
        float *gr = i < 0 ? g->grads : m->owned[i]->out->g;
        size_t n = i < 0 ? g->nparams : m->owned[i]->out->n;
        if (to && scale != 1.0f)
            for (size_t j = 0; j < n; j++) block[k + j] = gr[j] * scale;
        else if (to) memcpy(block + k, gr, n * sizeof *gr);
        else memcpy(gr, block + k, n * sizeof *gr);
        k += n;
    }
}

/* The sum over the ranks of each rank's gradients scaled by n / n_global,
 * in place. fp32: one allreduce of the block. The lossy codes: each rank
 * encodes (with its error feedback), the payloads are gathered, and every
 * rank decodes and sums them in rank order. A rank whose gradient is not
 * finite sends NaN (its residual untouched), so every rank sees it. */
static qat_status exchange_grads(qat_model *m, qat_train_dist *d, int n)
{
    qat_gradcomm *gc = d->gc;
    const qat_comm *c = d->comm;
    int bad = check_finite(m, 0) != QAT_OK;
    exchange_copy(m, gc->block, 1, (float)n / (float)d->n_global);
    if (bad)
        for (size_t i = 0; i < gc->n; i++) gc->block[i] = NAN;
    qat_status st;
    double t0 = qat_time_now();
    if (gc->kind == QAT_GRADCOMM_FP32) {
        st = c->size > 1 ? c->allreduce_sum(c->user, gc->block, gc->n) : QAT_OK;
        /* a ring allreduce sends 2 (N - 1) / N of the block */
        d->bytes_sent += 2.0 * (c->size - 1) / c->size * (double)gc->n * 4;
    } else {
        qat_gradcomm_encode(gc->kind, gc->block, bad ? NULL : gc->resid, gc->n, gc->enc);
        st = c->allgather(c->user, gc->enc, gc->bytes, gc->all);
        memset(gc->block, 0, gc->n * sizeof *gc->block);
        for (int r = 0; st == QAT_OK && r < c->size; r++)
            qat_gradcomm_decode_add(gc->kind, gc->all + (size_t)r * gc->bytes, gc->n, gc->block);
        d->bytes_sent += (double)(c->size - 1) * (double)gc->bytes; /* a ring allgather */
    }
    d->seconds += qat_time_now() - t0;
    if (st) return st;
    exchange_copy(m, gc->block, 0, 1.0f);
    return QAT_OK;
}

static qat_status train_step(qat_model *m, qat_optimizer *o, const qat_net_cfg *net, float lr, int n,
                             const qat_train_phase *ph, qat_train_dist *d, float *loss, int *skipped)
{
    *skipped = 0;
    if (d && d->comm->size > 1) {
        /* the forward draws from a stream of this rank's own; the graph's
         * stream, which the update draws from, moves on the same on every rank */
        qat_graph *g = &m->g;
        qat_rng common = g->rng;
        qat_rng_seed(&g->rng, qat_rng_u64(&common) ^ (0x9e3779b97f4a7c15ull * (uint64_t)(d->comm->rank + 1)));
        /* sync_bn: batchnorm sees the global batch, for this forward and
         * backward only (an evaluation never exchanges) */
        qat_graph_sync sync = {.comm = d->comm, .share = (float)n / (float)d->n_global};
        if (net->sync_bn) g->sync = &sync;
        train_forward_backward(m, n);
        g->sync = NULL;
        g->rng = common;
        if (net->sync_bn) {
            /* a ring allreduce sends 2 (N - 1) / N of what it sums */
            double bytes = 2.0 * (d->comm->size - 1) / d->comm->size * sync.floats * 4;
            d->bytes_sent += bytes;
            d->bn_bytes_sent += bytes;
            d->seconds += sync.seconds;
            if (sync.status) return sync.status;
        }
    } else {
        train_forward_backward(m, n);
    }
    *loss = m->loss->x[0];
    qat_status st = d ? exchange_grads(m, d, n) : QAT_OK;
    if (st) return st;
    st = check_finite(m, 0);
    if (st) {
        if (net->nonfinite != QAT_NONFINITE_SKIP) return st;
        *skipped = 1; /* the update is dropped: the model stays as it was */
        return QAT_OK;
    }
    train_update(m, o, net, lr, ph);
    return check_finite(m, 1);
}

qat_status qat_train_step_checked(qat_model *m, qat_optimizer *o, const qat_net_cfg *net, float lr, int n, float *loss,
                                  int *skipped)
{
    return train_step(m, o, net, lr, n, NULL, NULL, loss, skipped);
}

qat_status qat_train_step_phase(qat_model *m, qat_optimizer *o, const qat_net_cfg *net, float lr, int n,
                                const qat_train_phase *ph, float *loss, int *skipped)
{
    return train_step(m, o, net, lr, n, ph, NULL, loss, skipped);
}

qat_status qat_train_step_dist(qat_model *m, qat_optimizer *o, const qat_net_cfg *net, float lr, int n,
                               const qat_train_phase *ph, qat_train_dist *d, float *loss, int *skipped)
{
    return train_step(m, o, net, lr, n, ph, d, loss, skipped);
}

float qat_train_step(qat_model *m, qat_optimizer *o, const qat_net_cfg *net, float lr, int n)
{
    train_forward_backward(m, n);
    train_update(m, o, net, lr, NULL);
    return m->loss->x[0];
}

static int count_correct(const qat_model *m, int n)
{
    int correct = 0;
    const float *z = m->logits->x;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int c = 1; c < m->nclass; c++)
            if (z[(size_t)i * m->nclass + c] > z[(size_t)i * m->nclass + best]) best = c;
        correct += best == m->labels[i];
    }
    return correct;
}

/* v[0..k) summed over the ranks in rank order (gather: room for size * k) */
static qat_status comm_sum(const qat_comm *c, double *v, int k, double *gather)
{
    if (!c || c->size == 1) return QAT_OK;
    qat_status st = c->allgather(c->user, v, (size_t)k * sizeof *v, gather);
    for (int j = 0; st == QAT_OK && j < k; j++) {
        v[j] = 0;
        for (int r = 0; r < c->size; r++) v[j] += gather[r * k + j];
    }
    return st;
}

/* Before an evaluation or a checkpoint: BN's running statistics become
 * their mean over the ranks (each rank kept its own batches' in training;
 * with sync_bn they are the same bits everywhere already, and left so);
 * every other buffer (a quantizer's state) becomes rank 0's, exactly (the
 * others add zeros), so the checkpoint does not depend on the ranks. */
static qat_status sync_buffers(qat_model *m, const qat_comm *c, int sync_bn)
{
    if (!c || c->size == 1) return QAT_OK;
    qat_graph *g = &m->g;
    for (int i = 0; i < g->nall; i++) {
        qat_tensor *t = g->all[i];
        if (!(t->flags & QAT_T_BUFFER)) continue;
        int stat = 0;
        for (int k = 0; k < m->nlayers && !stat; k++) stat = m->layers[k].rmean == t || m->layers[k].rvar == t;
        if (stat && sync_bn) continue;
        if (!stat && c->rank != 0) memset(t->x, 0, t->n * sizeof *t->x);
        qat_status st = c->allreduce_sum(c->user, t->x, t->n);
        if (st) return st;
        for (size_t j = 0; stat && j < t->n; j++) t->x[j] /= (float)c->size;
    }
    return QAT_OK;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Every rank must hold the same model after an epoch (the same summed
 * gradients, the same update, the same random stream for DST's
 * transitions): a hash of the parameters, buffers and the states of
 * quantizers that own their weights, compared with rank 0's. */
static qat_status check_same(qat_model *m, const qat_comm *c, double *gather, int epoch)
{
    if (!c || c->size == 1) return QAT_OK;
    uint64_t h = fnv1a(0xcbf29ce484222325ull, m->g.params, m->g.nparams * sizeof *m->g.params);
    h = fnv1a(h, m->g.buffers, m->g.nbuffers * sizeof *m->g.buffers);
    for (int i = 0; i < m->nowned; i++) h = fnv1a(h, m->owned[i]->state, m->owned[i]->state_bytes);
    qat_status st = c->allgather(c->user, &h, sizeof h, gather);
    const uint64_t *all = (const uint64_t *)gather;
    for (int r = 1; st == QAT_OK && r < c->size; r++)
        if (all[r] != all[0])
            return qat_error_set(QAT_ERR_COMM, "after epoch %d rank %d's model differs from rank 0's: an update that is "
                                 "not the same on every rank (a bug in qat)", epoch, r);
    return st;
}

/* loss and accuracy over a loader's epoch 0 (at most max_batches, if > 0), in
 * eval mode; with c, each rank evaluates its share of every batch and the
 * sums are exchanged */
static qat_status eval_loader(qat_model *m, qat_loader *l, int max_batches, const qat_comm *c, double *gather,
                              float *loss, float *acc)
{
    double sl = 0;
    long correct = 0, total = 0;
    qat_loader_begin(l, 0);
    int n, b = 0;
    while ((max_batches <= 0 || b++ < max_batches) && (n = qat_loader_next(l, m->input->x, m->labels)) > 0) {
        qat_graph_set_batch(&m->g, n);
        qat_graph_set_training(&m->g, 0);
        qat_graph_forward(&m->g);
        sl += (double)m->loss->x[0] * n;
        correct += count_correct(m, n);
        total += n;
    }
    double v[3] = {sl, (double)correct, (double)total};
    qat_status st = comm_sum(c, v, 3, gather);
    *loss = v[2] > 0 ? (float)(v[0] / v[2]) : 0;
    *acc = v[2] > 0 ? (float)v[1] / (float)v[2] : 0;
    return st;
}

static qat_status eval_loader_init(qat_loader **l, const qat_dataset *ds, int batch, const float *mean,
                                   const float *std, int grid)
{
    qat_loader_cfg lc = {.batch = batch, .shuffle = 0, .seed = 0, .drop_last = 0, .background = 1, .grid = grid};
    for (int i = 0; i < 3; i++) {
        lc.mean[i] = mean[i];
        lc.std[i] = std[i];
    }
    return qat_loader_init(l, ds, &lc);
}

qat_status qat_evaluate(qat_model *m, const qat_dataset *ds, const float *mean, const float *std, int grid, float *loss,
                        float *acc)
{
    if (ds->c != m->c || ds->h != m->h || ds->w != m->w || ds->nclass != m->nclass)
        return qat_error_set(QAT_ERR_SHAPE, "%s: %dx%dx%d images in %d classes, the model takes %dx%dx%d and gives %d "
                             "logits; expected the same",
                             ds->path, ds->c, ds->h, ds->w, ds->nclass, m->c, m->h, m->w, m->nclass);
    qat_loader *l;
    qat_status st = eval_loader_init(&l, ds, m->batch, mean, std, grid);
    if (st != QAT_OK) return st;
    st = eval_loader(m, l, 0, NULL, NULL, loss, acc);
    qat_loader_free(l);
    return st;
}

typedef struct {
    qat_cfg cfg;
    qat_net_cfg net;
    qat_model model;
    qat_optimizer optim;
    qat_dataset train, val, test;
    qat_loader *ltrain, *lval, *ltest;
    FILE *metrics;
    uint8_t *signs; /* binary weights' signs at the start of the epoch */
    int lock_fd;    /* OUT/.qat.lock, flock()ed while the run writes OUT; -1 before */
    qat_ckpt resume_ck; /* --resume's checkpoint, read once (have_ck) */
    int have_ck;
    qat_cfg run_cfg;    /* its kept settings (qat.run), which o's strings may point into */
    qat_gradcomm gc;    /* the gradient exchange of a data-parallel run */
    double *gather;     /* size * 4 doubles: the epoch's sums of every rank */
} session;

static void session_free(session *s)
{
    qat_loader_free(s->ltrain);
    qat_loader_free(s->lval);
    qat_loader_free(s->ltest);
    qat_optimizer_free(&s->optim);
    qat_model_free(&s->model);
    qat_dataset_free(&s->train);
    qat_dataset_free(&s->val);
    qat_dataset_free(&s->test);
    qat_cfg_free(&s->cfg);
    if (s->metrics) fclose(s->metrics);
    free(s->signs);
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the lock */
    if (s->have_ck) qat_ckpt_free(&s->resume_ck);
    qat_cfg_free(&s->run_cfg);
    qat_gradcomm_free(&s->gc);
    free(s->gather);
}

/* One writer per output folder: an advisory lock on OUT/.qat.lock, held
 * until the run ends (the kernel drops it if the process dies), with the
 * holder's pid in the file for the message a second run gets. */
static qat_status out_lock(const char *dir, int *fd_out)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/.qat.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return qat_error_set(QAT_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        return qat_error_set(QAT_ERR_IO, "%s: another qat train (pid %s) is writing to this folder; wait for it to "
                             "end or give another --out",
                             dir, pid[0] ? pid : "unknown");
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        close(fd);
        return qat_error_set(QAT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    *fd_out = fd;
    return QAT_OK;
}

/* Temporaries a killed run left (checkpoint and summary writes are
 * temporary file + rename): removed once this run holds the lock. */
static void out_clean_stale(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (!strstr(n, ".ckpt.tmp.") && strcmp(n, "summary.json.tmp") != 0 && strcmp(n, "metrics.jsonl.tmp") != 0)
            continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, n);
        unlink(path);
    }
    closedir(d);
}

/* The "epoch" of a metrics line, or -1. */
static int metrics_epoch(const char *line)
{
    const char *p = strstr(line, "\"epoch\": ");
    return p ? atoi(p + 9) : -1;
}

/* On resume from a checkpoint of `epoch` epochs: metrics.jsonl keeps the
 * lines of epochs up to it and drops any later one (written by a run killed
 * before its checkpoint), rewritten atomically. A line is written before
 * the checkpoint of its epoch, so none of those is missing. */
static qat_status metrics_reconcile(const char *path, int epoch)
{
    FILE *in = fopen(path, "r");
    if (!in) return QAT_OK; /* none yet: the run starts it */
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        return qat_error_set(QAT_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    int dropped = 0;
    while (getline(&line, &cap, in) > 0) {
        int e = metrics_epoch(line);
        if (e < 1 || e > epoch || line[strlen(line) - 1] != '\n') {
            dropped++;
            continue;
        }
        fputs(line, out);
    }
    free(line);
    fclose(in);
    int bad = fflush(out) != 0 || fsync(fileno(out)) != 0 || ferror(out);
    if (fclose(out) != 0 || bad || (dropped && rename(tmp, path) != 0)) {
        unlink(tmp);
        return qat_error_set(QAT_ERR_IO, "%s: cannot rewrite: %s", path, strerror(errno));
    }
    if (!dropped) unlink(tmp);
    return QAT_OK;
}

static qat_status stop_asked(const qat_train_opts *o, int epoch, int step, int done_epochs)
{
    if (!o->stop || !*o->stop) return QAT_OK;
    if (done_epochs == 0)
        return qat_error_set(QAT_ERR_INTERRUPTED, "%s: interrupted in epoch %d, step %d, before the first checkpoint",
                             o->cfg_path, epoch, step);
    return qat_error_set(QAT_ERR_INTERRUPTED, "%s: interrupted in epoch %d%s%.0d; every file is whole: last.ckpt holds "
                         "%d epoch%s, --resume continues from it",
                         o->cfg_path, epoch, step ? ", step " : "", step, done_epochs, done_epochs == 1 ? "" : "s");
}

/* The weights a quantizer with a schedule (AQE) trains with: its forward
 * in training mode, into its output (the next forward overwrites it). */
static const float *effective_weights(qat_model *m, qat_qnode *n)
{
    if (!n->spec.q->schedule) return NULL;
    int tr = m->g.training;
    m->g.training = 1;
    n->spec.q->forward(n, n->out, &m->g);
    m->g.training = tr;
    return n->out->x;
}

/* A histogram of x as CSV: bin_lo,bin_hi,count over [-range, range] in 200
 * bins, values outside counted in the end bins. */
static qat_status write_hist(const char *path, const float *x, size_t n, float range)
{
    enum { BINS = 200 };
    size_t count[BINS] = {0};
    for (size_t i = 0; i < n; i++) {
        /* clamped as a float: a huge weight must not overflow the int */
        float v = floorf((x[i] + range) / (2 * range) * BINS);
        int b = !(v >= 0.0f) ? 0 : v >= (float)BINS ? BINS - 1 : (int)v;
        count[b]++;
    }
    FILE *f = fopen(path, "w");
    if (!f) return qat_error_set(QAT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "bin_lo,bin_hi,count\n");
    for (int b = 0; b < BINS; b++)
        fprintf(f, "%.6f,%.6f,%zu\n", -range + 2 * range * b / BINS, -range + 2 * range * (b + 1) / BINS, count[b]);
    return fclose(f) == 0 ? QAT_OK : qat_error_set(QAT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
}

/* weights (latent, before quantization) and the activations entering each
 * quantized layer (the last batch evaluated), one CSV per layer per epoch */
static qat_status write_histograms(qat_model *m, const char *out_dir, int epoch)
{
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/hist", out_dir);
    qat_status st = mkdir_p(dir);
    for (int i = 0; st == QAT_OK && i < m->nlayers; i++) {
        const qat_layer *l = &m->layers[i];
        if (l->wq.out) {
            snprintf(path, sizeof path, "%s/%s.weight.e%03d.csv", dir, l->name, epoch);
            st = write_hist(path, l->w->x, l->w->n, 1.5f);
            const float *w = effective_weights(m, (qat_qnode *)&l->wq);
            if (st == QAT_OK && w) {
                snprintf(path, sizeof path, "%s/%s.weight_train.e%03d.csv", dir, l->name, epoch);
                st = write_hist(path, w, l->w->n, 1.5f);
            }
        }
        if (st == QAT_OK && l->aq.out) {
            snprintf(path, sizeof path, "%s/%s.act.e%03d.csv", dir, l->name, epoch);
            st = write_hist(path, l->aq.in->x, l->aq.in->n, 3.0f);
        }
    }
    return st;
}

/* per quantized layer: fraction of quantized weights exactly 0 (DST's
 * Table 5, from the last evaluation forward) and of the weights training
 * uses within 0.05 of a level (AQE's asymptotic behaviour: its alpha h(w) +
 * (1 - alpha) w; the latent weights for the others) */
static void write_layer_stats(FILE *f, qat_model *m)
{
    int any = 0;
    for (int i = 0; i < m->nlayers; i++) {
        qat_layer *l = &m->layers[i];
        if (!l->wq.out) continue;
        size_t zeros = 0;
        for (size_t k = 0; k < l->wq.out->n; k++) zeros += l->wq.out->x[k] == 0.0f;
        double sparsity = (double)zeros / (double)l->wq.out->n;
        const float *w = effective_weights(m, &l->wq);
        double near = l->wq.state ? 1.0 : qat_qnode_near_level(&l->wq, w ? w : l->w->x, l->w->n, 0.05f);
        fprintf(f, "%s\"%s\": {\"sparsity\": %.6f, \"near_level\": %.6f}", any++ ? ", " : ", \"layers\": {",
                l->name, sparsity, near);
    }
    if (any) fprintf(f, "}");
}

/* v in fmt, or null when it is not finite: every JSON qat writes is valid
 * (printf gives "nan" and "inf", which JSON has not) */
static const char *json_num(char buf[40], double v, const char *fmt)
{
    if (!isfinite(v)) return "null";
    snprintf(buf, 40, fmt, v);
    return buf;
}

static qat_status write_summary(const char *path, const qat_train_opts *o, const qat_train_result *r, int threads,
                                const qat_model *m, int ranks, int sync_bn)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return qat_error_set(QAT_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    fprintf(f, "{\n  \"config\": ");
    json_str(f, o->cfg_path);
    fprintf(f, ",\n  \"dataset\": ");
    json_str(f, r->dataset);
    fprintf(f, ",\n  \"data_dir\": ");
    json_str(f, r->data_dir);
    if (o->command) {
        fprintf(f, ",\n  \"command\": ");
        json_str(f, o->command);
    }
    char a[40], b[40];
    fprintf(f,
            ",\n  \"epochs\": %d,\n  \"threads\": %d,\n  \"test_acc\": %s,\n  \"best_val_acc\": %s,\n"
            "  \"best_epoch\": %d,\n  \"train_images_per_s\": %.1f,\n  \"seconds\": %.2f,\n  \"peak_rss_mb\": %.1f,\n"
            "  \"avg_weight_bits\": %.4f,\n  \"weight_kb\": %.3f,\n  \"float_weight_kb\": %.3f,\n  \"compression\": %.2f",
            r->epochs, threads, json_num(a, r->test_acc, "%.6f"), json_num(b, r->best_val_acc, "%.6f"), r->best_epoch,
            r->train_images_per_s, r->seconds, r->peak_rss_mb, r->weight_bits, r->weight_kb, r->float_kb,
            r->weight_kb > 0 ? r->float_kb / r->weight_kb : 0.0);
    double eb;
    int ec;
    if (m && qat_model_weight_storage_emptied(m, &eb, &ec))
        fprintf(f, ",\n  \"emptied_channels\": %d,\n  \"weight_kb_emptied_removed\": %.3f", ec, eb / 1000);
    if (o->comm) fprintf(f, ",\n  \"ranks\": %d,\n  \"sync_bn\": %d", ranks, sync_bn);
    fprintf(f, ",\n  \"weight_bits\": {");
    for (int i = 0, k = 0; m && i < m->nlayers; i++) {
        double wb = qat_layer_weight_bits(&m->layers[i]);
        if (wb >= 0) fprintf(f, "%s\"%s\": %.4f", k++ ? ", " : "", m->layers[i].name, wb);
    }
    fprintf(f, "}\n}\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp); /* no debris */
        return qat_error_set(QAT_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return QAT_OK;
}

/* The settings of the run being resumed (record qat.run, "[run]" cfg
 * text): each one not given takes the kept value, one given differently is
 * refused unless o->override_run. The strings point into rc. */
static qat_status resume_settings(const qat_ckpt *ck, qat_train_opts *o, qat_cfg *rc)
{
    const qat_ckpt_record *r = qat_ckpt_find(ck, "qat.run");
    if (!r) return QAT_OK; /* a checkpoint from before the record: nothing kept */
    qat_status st = qat_cfg_parse_text(rc, "qat.run", (const char *)r->data, r->nbytes);
    if (st || rc->nsec != 1) return st ? qat_error_wrap(st, "%s", ck->path) : qat_error_set(QAT_ERR_FORMAT, "%s: bad qat.run", ck->path);
    qat_cfg_section *sec = &rc->sec[0];
    int epochs, threads, max_steps, seed, until;
    const char *dataset, *data;
    if ((st = qat_cfg_get_int(rc, sec, "epochs", 0, 0, 1000000, &epochs)) ||
        (st = qat_cfg_get_int(rc, sec, "until", 0, 0, 1000000, &until)) ||
        (st = qat_cfg_get_int(rc, sec, "seed", 0, 0, 2147483647, &seed)) ||
        (st = qat_cfg_get_int(rc, sec, "threads", 1, 1, 256, &threads)) ||
        (st = qat_cfg_get_int(rc, sec, "max_steps", 0, 0, 2147483647, &max_steps)) ||
        (st = qat_cfg_get_str(rc, sec, "dataset", "", &dataset)) || (st = qat_cfg_get_str(rc, sec, "data", "", &data)))
        return qat_error_wrap(st, "%s", ck->path);
    char given[600] = "";
    if (o->epochs > 0 && o->epochs != epochs) snprintf(given, sizeof given, "--epochs %d (the run has %d)", o->epochs, epochs);
    else if (o->seed >= 0 && o->seed != seed) snprintf(given, sizeof given, "--seed %lld (the run has %d)", o->seed, seed);
    else if (o->threads_given && o->threads != threads)
        snprintf(given, sizeof given, "--threads %d (the run has %d: results depend on it)", o->threads, threads);
    else if (o->max_steps > 0 && o->max_steps != max_steps)
        snprintf(given, sizeof given, "--max-steps %d (the run has %d)", o->max_steps, max_steps);
    else if (o->dataset && strcmp(o->dataset, dataset) != 0)
        snprintf(given, sizeof given, "--dataset %.100s (the run has %.100s)", o->dataset, dataset);
    if (given[0] && !o->override_run)
        return qat_error_set(QAT_ERR_ARG, "%s: %s; resume with the run's own settings, or pass --override to change it",
                             ck->path, given);
    /* a kept --until holds while the checkpoint is short of it (a run killed
     * before its stop point stops there again); once reached, a resume goes
     * on to the end of the schedule. A different --until changes where the
     * run stops, not what it computes: taken without --override. */
    const qat_ckpt_record *pr = qat_ckpt_find(ck, "qat.pos");
    uint64_t done = 0;
    if (pr && pr->nbytes >= 8) memcpy(&done, pr->data, 8);
    if (o->until <= 0 && until > 0 && done < (uint64_t)until) o->until = until;
    if (o->epochs <= 0) o->epochs = epochs;
    if (o->seed < 0) o->seed = seed;
    if (!o->threads_given) o->threads = threads;
    if (o->max_steps <= 0) o->max_steps = max_steps;
    if (!o->dataset && dataset[0]) o->dataset = dataset;
    if (!o->data_dir && data[0]) o->data_dir = data; /* a new --data is allowed: the files may have moved */
    return QAT_OK;
}

/* one process: a lossy grad_comm still encodes and decodes (its effect on
 * training is the same as on N ranks' exchange) */
static qat_status single_allreduce(void *user, float *buf, size_t n) { return QAT_OK; }
static qat_status single_allgather(void *user, const void *in, size_t nbytes, void *out)
{
    memcpy(out, in, nbytes);
    return QAT_OK;
}
static const qat_comm single_comm = {0, 1, NULL, single_allreduce, single_allgather};

qat_status qat_train(const qat_train_opts *opts, qat_train_result *res)
{
    session s;
    memset(&s, 0, sizeof s);
    s.lock_fd = -1;
    memset(res, 0, sizeof *res);
    double t0 = qat_time_now();
    qat_layer *layers = NULL; /* the parser's, until qat_model_build takes them over */
    int nlayers;
    qat_status st;
    qat_train_opts oo = *opts; /* with the resumed run's kept settings */
    const qat_train_opts *o = &oo;
    if (opts->resume && opts->init_from) {
        st = qat_error_set(QAT_ERR_ARG, "--init-from starts a run and --resume continues one: give one of them");
        goto done;
    }
    if (opts->resume) {
        if ((st = qat_ckpt_read(&s.resume_ck, opts->resume))) goto done;
        s.have_ck = 1;
        if ((st = resume_settings(&s.resume_ck, &oo, &s.run_cfg))) goto done;
    }
    if ((st = qat_cfg_parse_file(&s.cfg, o->cfg_path)) || (st = qat_netcfg_read(&s.cfg, &s.net, &layers, &nlayers)))
        goto done;
    qat_net_cfg *net = &s.net;
    if (o->epochs > 0 && net->sched.kind == QAT_SCHED_PHASES && o->epochs > qat_sched_phase_epochs(&net->sched)) {
        st = qat_error_set(QAT_ERR_ARG, "--epochs %d: %s's phases take %d epochs; a run can stop earlier, not go beyond",
                           o->epochs, o->cfg_path, qat_sched_phase_epochs(&net->sched));
        goto done;
    }
    if (o->epochs > 0) net->epochs = net->sched.total_epochs = o->epochs;
    if (o->seed >= 0) net->seed = (uint64_t)o->seed;
    if (o->dataset && (st = qat_netcfg_set_dataset(net, o->dataset, o->cfg_path))) goto done;
    /* data-parallel: each rank holds at most its ceil share of a batch */
    const qat_comm *comm = o->comm ? o->comm : net->grad_comm != QAT_GRADCOMM_FP32 ? &single_comm : NULL;
    int nranks = comm ? comm->size : 1, writer = !comm || comm->rank == 0;
    if (net->batch < nranks) {
        st = qat_error_set(QAT_ERR_ARG, "%s: batch = %d is split across %d ranks: give every rank an image (batch >= "
                           "ranks)", o->cfg_path, net->batch, nranks);
        goto done;
    }
    st = qat_model_build(&s.model, layers, nlayers, net->c, net->h, net->w, (net->batch + nranks - 1) / nranks,
                         o->threads, net->seed);
    layers = NULL; /* the model's now, freed with it even when the build failed */
    if (st) goto done;
    for (int i = 0; i < s.model.nowned; i++)
        if (s.model.owned[i]->spec.q->needs_amsgrad && net->optim.kind != QAT_OPTIM_AMSGRAD) {
            st = qat_error_set(QAT_ERR_CONFIG, "%s: '%s' is quantized by %s, whose step projects AMSGrad's update "
                               "(its moments): set optimizer = amsgrad in [net]", o->cfg_path,
                               s.model.owned[i]->out->name, s.model.owned[i]->spec.q->name);
            goto done;
        }
    if ((st = qat_optimizer_init(&s.optim, &s.model, &net->optim))) goto done;
    if (comm && ((st = qat_train_gradcomm_init(&s.gc, &s.model, (qat_gradcomm_kind)net->grad_comm, nranks)) ||
                 !(s.gather = malloc((size_t)nranks * 4 * sizeof *s.gather)))) {
        if (!st) st = qat_error_set(QAT_ERR_MEMORY, "trainer: out of memory");
        goto done;
    }

    char dir[512];
    if ((st = qat_data_locate(net->dataset, o->data_dir, dir, sizeof dir)) ||
        (st = qat_data_load_opts(&s.train, &s.test, net->dataset, dir, &net->data)))
        goto done;
    snprintf(res->dataset, sizeof res->dataset, "%s", net->dataset);
    snprintf(res->data_dir, sizeof res->data_dir, "%s", dir);
    if (s.train.c != net->c || s.train.h != net->h || s.train.w != net->w) {
        st = qat_error_set(QAT_ERR_SHAPE, "%s: images are %dx%dx%d, the model expects %dx%dx%d", dir, s.train.c,
                           s.train.h, s.train.w, net->c, net->h, net->w);
        goto done;
    }
    /* a label past the last logit would be read out of bounds by the loss */
    net->nclass = s.train.nclass;
    if (s.model.nclass != s.train.nclass) {
        st = qat_error_set(QAT_ERR_SHAPE, "%s: %s has %d classes, the model's last layer gives %d logits; expected "
                           "the same (set the last layer's output = %d)",
                           o->cfg_path, dir, s.train.nclass, s.model.nclass, s.train.nclass);
        goto done;
    }
    if (net->val >= s.train.n) {
        st = qat_cfg_error_at(&s.cfg, s.cfg.sec[0].line, "[net] val = %d leaves no training images (the set has %d)",
                              net->val, s.train.n);
        goto done;
    }
    if (net->val > 0 && (st = qat_data_split(&s.train, &s.val, net->val))) goto done;

    qat_train_pos pos = {0, 0, 0, -1.0f, NULL};
    if (o->resume) {
        st = qat_checkpoint_load_model(&s.resume_ck, &s.model);
        if (st == QAT_OK) st = qat_checkpoint_load_train(&s.resume_ck, &s.model, &s.optim, &pos);
        qat_ckpt_free(&s.resume_ck);
        s.have_ck = 0;
        if (st != QAT_OK) goto done;
    } else if (o->init_from) {
        qat_ckpt ck;
        if ((st = qat_ckpt_read(&ck, o->init_from))) goto done;
        st = qat_checkpoint_init_from(&ck, &s.model, net->seed);
        qat_ckpt_free(&ck);
        if (st != QAT_OK) goto done;
    }
    /* what the checkpoints keep for a resume (resume_settings) */
    char run_text[1400];
    snprintf(run_text, sizeof run_text,
             "[run]\nepochs = %d\nuntil = %d\nseed = %llu\nthreads = %d\nmax_steps = %d\ndataset = %s\ndata = %s\n",
             net->epochs, o->until > 0 ? o->until : 0, (unsigned long long)net->seed, o->threads,
             o->max_steps > 0 ? o->max_steps : 0, net->dataset, dir);
    pos.run = run_text;
    /* the class names travel in every checkpoint (qat infer prints them) */
    if (s.train.class_names) {
        qat_dataset names = {0};
        snprintf(names.name, sizeof names.name, "%s", s.train.name);
        if ((st = qat_data_names_set(&names, (const char *const *)s.train.class_names, s.train.nclass))) goto done;
        s.model.class_names = names.class_names;
    }

    /* augmentation in the training loader only; eval_loader_init leaves it off */
    qat_loader_cfg lc = {.batch = net->batch, .shuffle = net->shuffle, .seed = net->seed, .drop_last = 0,
                         .background = 1, .crop_pad = net->crop_pad, .flip = net->flip, .grid = net->pixel_grid};
    for (int i = 0; i < 3; i++) {
        lc.mean[i] = net->mean[i];
        lc.std[i] = net->std[i];
    }
    if ((st = qat_loader_init(&s.ltrain, &s.train, &lc)) ||
        (st = eval_loader_init(&s.ltest, &s.test, net->batch, net->mean, net->std, net->pixel_grid)) ||
        (s.val.n > 0 && (st = eval_loader_init(&s.lval, &s.val, net->batch, net->mean, net->std, net->pixel_grid))))
        goto done;
    if (comm) { /* every rank walks the same order and takes its share of each batch */
        qat_loader_set_part(s.ltrain, comm->rank, nranks);
        qat_loader_set_part(s.ltest, comm->rank, nranks);
        if (s.lval) qat_loader_set_part(s.lval, comm->rank, nranks);
    }

    char path[1024], last[1024], best[1024];
    snprintf(path, sizeof path, "%s/metrics.jsonl", o->out_dir);
    snprintf(last, sizeof last, "%s/last.ckpt", o->out_dir);
    snprintf(best, sizeof best, "%s/best.ckpt", o->out_dir);
    /* rank 0 alone writes the run's folder; the others write nothing */
    if (writer && ((st = mkdir_p(o->out_dir)) || (st = out_lock(o->out_dir, &s.lock_fd)))) goto done;
    if (writer) out_clean_stale(o->out_dir);
    if (writer && o->resume && (st = metrics_reconcile(path, pos.epoch))) goto done;
    s.metrics = writer ? fopen(path, o->resume ? "a" : "w") : fopen("/dev/null", "w");
    if (!s.metrics) {
        st = qat_error_set(QAT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        goto done;
    }

    size_t nbin = qat_model_binary_weights(&s.model);
    if (nbin && !(s.signs = malloc(nbin))) {
        st = qat_error_set(QAT_ERR_MEMORY, "trainer: out of memory");
        goto done;
    }
    int steps = qat_loader_nbatches(s.ltrain);
    /* a last batch with fewer images than ranks is dropped (every rank needs one) */
    if (nranks > 1 && s.train.n % net->batch > 0 && s.train.n % net->batch < nranks) steps--;
    if (o->max_steps > 0 && o->max_steps < steps) steps = o->max_steps;
    double train_seconds = 0;
    long train_images = 0;
    float test_loss = 0, test_acc = 0;
    int last_epoch = o->until > 0 && o->until < net->epochs ? o->until : net->epochs;
    for (int epoch = pos.epoch; epoch < last_epoch; epoch++) {
        double te = qat_time_now();
        qat_loader_begin(s.ltrain, epoch);
        if (s.signs) qat_model_sign_snapshot(&s.model, s.signs);
        double sl = 0;
        long correct = 0, seen = 0, skipped = 0;
        float lr = 0;
        qat_train_dist dist = {.comm = comm, .gc = &s.gc};
        long step0 = pos.step;
        for (int step = 0; step < steps; step++) {
            if ((st = stop_asked(o, epoch + 1, step + 1, pos.epoch))) goto done;
            int n = qat_loader_next(s.ltrain, s.model.input->x, s.model.labels);
            if (n == 0) break;
            lr = qat_sched_lr(&net->sched, epoch, step, steps);
            qat_model_schedule(&s.model, (long)pos.step, (long)net->epochs * steps);
            float loss;
            int skip;
            qat_train_phase ph = {.step = step, .steps_per_epoch = steps};
            qat_sched_phase_at(&net->sched, epoch, &ph.at);
            long left = (long)s.train.n - (long)step * net->batch;
            dist.n_global = left < net->batch ? (int)left : net->batch;
            if ((st = qat_train_step_dist(&s.model, &s.optim, net, lr, n, &ph, comm ? &dist : NULL, &loss, &skip))) {
                if (st == QAT_ERR_COMM) goto done;
                st = qat_error_wrap(st, "%s: epoch %d, step %d of %d: training diverged; %s", o->cfg_path, epoch + 1,
                                    step + 1, steps,
                                    pos.epoch > 0 ? "last.ckpt holds the last finite state (the end of the epoch before)"
                                                  : "no checkpoint was written");
                goto done;
            }
            pos.step++;
            if (skip) {
                skipped++;
                continue;
            }
            sl += (double)loss * n;
            correct += count_correct(&s.model, n);
            seen += n;
            if (o->on_progress) {
                qat_progress p = {epoch + 1, net->epochs, step + 1, steps, (float)(sl / (double)seen),
                                  (float)correct / (float)seen, (double)seen / (qat_time_now() - te)};
                o->on_progress(o->ctx, &p);
            }
        }
        if (comm) { /* the epoch's sums over the ranks */
            double v[4] = {sl, (double)correct, (double)seen, (double)skipped};
            if ((st = comm_sum(comm, v, 4, s.gather))) goto done;
            sl = v[0];
            correct = (long)v[1];
            seen = (long)v[2];
            skipped = (long)v[3];
        }
        if (seen == 0 && skipped > 0) {
            st = qat_error_set(QAT_ERR_NONFINITE,
                               "%s: epoch %d: every one of its %ld steps gave a NaN or Inf and was skipped "
                               "(nonfinite = skip_step); last.ckpt holds the last state that trained",
                               o->cfg_path, epoch + 1, skipped);
            goto done;
        }
        double tsec = qat_time_now() - te;
        train_seconds += tsec;
        train_images += seen;
        qat_epoch_metrics em = {.epoch = epoch + 1, .lr = lr, .train_loss = (float)(sl / (double)(seen ? seen : 1)),
                                .train_acc = (float)correct / (float)(seen ? seen : 1), .val_loss = -1, .val_acc = -1,
                                .images_per_s = (double)seen / tsec};
        if ((st = sync_buffers(&s.model, comm, net->sync_bn)) || (st = check_same(&s.model, comm, s.gather, epoch + 1)) ||
            (s.lval && (st = eval_loader(&s.model, s.lval, o->max_steps, comm, s.gather, &em.val_loss, &em.val_acc))) ||
            (st = eval_loader(&s.model, s.ltest, o->max_steps, comm, s.gather, &test_loss, &test_acc)))
            goto done;
        em.test_loss = test_loss;
        em.test_acc = test_acc;
        /* best by validation accuracy; without a validation split, by test */
        float score = s.lval ? em.val_acc : em.test_acc;
        pos.epoch = epoch + 1;
        if (score > pos.best_acc) {
            pos.best_acc = score;
            pos.best_epoch = epoch + 1;
            em.best = 1;
        }
        em.seconds = qat_time_now() - te;
        char jv[8][40];
        fprintf(s.metrics,
                "{\"epoch\": %d, \"lr\": %s, \"train_loss\": %s, \"train_acc\": %s, \"val_loss\": %s, "
                "\"val_acc\": %s, \"test_loss\": %s, \"test_acc\": %s, \"images_per_s\": %.1f, "
                "\"seconds\": %.3f, \"best\": %s",
                em.epoch, json_num(jv[0], em.lr, "%.6g"), json_num(jv[1], em.train_loss, "%.6f"),
                json_num(jv[2], em.train_acc, "%.6f"), json_num(jv[3], em.val_loss, "%.6f"),
                json_num(jv[4], em.val_acc, "%.6f"), json_num(jv[5], em.test_loss, "%.6f"),
                json_num(jv[6], em.test_acc, "%.6f"), em.images_per_s, em.seconds, em.best ? "true" : "false");
        if (net->nonfinite == QAT_NONFINITE_SKIP) fprintf(s.metrics, ", \"skipped_steps\": %ld", skipped);
        if (comm) { /* rank 0's share of the exchange: payload and bytes sent per step, seconds in it */
            long ns = pos.step > step0 ? pos.step - step0 : 1;
            fprintf(s.metrics, ", \"ranks\": %d, \"grad_comm\": \"%s\", \"grad_bytes_per_step\": %zu, "
                    "\"sync_bn\": %d, \"bn_sent_bytes_per_step\": %.0f, "
                    "\"sent_bytes_per_step\": %.0f, \"steps\": %ld, \"comm_seconds\": %.3f",
                    nranks, qat_gradcomm_names[net->grad_comm], s.gc.bytes, net->sync_bn, dist.bn_bytes_sent / ns,
                    dist.bytes_sent / ns, ns, dist.seconds);
        }
        if (net->sched.kind == QAT_SCHED_PHASES) {
            qat_phase_at at;
            qat_sched_phase_at(&net->sched, epoch, &at);
            em.phase = qat_phase_name(at.kind);
            fprintf(s.metrics, ", \"phase\": \"%s\"", em.phase);
        }
        em.weight_bits = -1;
        double wb, wbytes, fbytes;
        if (qat_model_weight_storage(&s.model, &wb, &wbytes, &fbytes)) {
            /* bitwidths that training changes (ALQ's pruning): per layer, per epoch (the paper's Fig. 2) */
            em.weight_bits = wb;
            em.weight_kb = wbytes / 1000;
            fprintf(s.metrics, ", \"avg_weight_bits\": %.4f, \"weight_kb\": %.3f, \"weight_bits\": {", wb, wbytes / 1000);
            for (int i = 0, k = 0; i < s.model.nlayers; i++) {
                double b = qat_layer_weight_bits(&s.model.layers[i]);
                if (b >= 0) fprintf(s.metrics, "%s\"%s\": %.4f", k++ ? ", " : "", s.model.layers[i].name, b);
            }
            fprintf(s.metrics, "}");
        }
        if (s.signs) {
            /* fraction of binary weights whose sign changed during the epoch */
            const qat_layer *fl[64];
            float fr[64];
            int nf = qat_model_flip_ratios(&s.model, s.signs, fl, fr, 64);
            fprintf(s.metrics, ", \"flip_ratio\": {");
            for (int i = 0; i < nf && i < 64; i++)
                fprintf(s.metrics, "%s\"%s\": %.6f", i ? ", " : "", fl[i]->name, fr[i]);
            fprintf(s.metrics, "}");
        }
        write_layer_stats(s.metrics, &s.model);
        fprintf(s.metrics, "}\n");
        /* the epoch's line is on disk before its checkpoints: a resume from
         * last.ckpt finds it (and drops any line of a later epoch) */
        if (fflush(s.metrics) != 0 || ferror(s.metrics) || (writer && fsync(fileno(s.metrics)) != 0)) {
            st = qat_error_set(QAT_ERR_IO, "%s: cannot write: %s", path, strerror(errno ? errno : EIO));
            goto done;
        }
        for (int h = 0; writer && h < net->nhist; h++)
            if (net->hist_epochs[h] == epoch + 1 && (st = write_histograms(&s.model, o->out_dir, epoch + 1))) goto done;
        /* best before last: a kill between them leaves last.ckpt one epoch
         * behind, and the resumed run writes the same best.ckpt again */
        if (writer && em.best && (st = qat_checkpoint_save(best, &s.model, s.cfg.text, s.cfg.text_len, &s.optim, &pos)))
            goto done;
        if (writer && (st = qat_checkpoint_save(last, &s.model, s.cfg.text, s.cfg.text_len, &s.optim, &pos))) goto done;
        if (o->on_epoch) o->on_epoch(o->ctx, &em);
        if (epoch + 1 < last_epoch && (st = stop_asked(o, epoch + 1, 0, pos.epoch))) goto done;
    }
    if (pos.epoch >= net->epochs && train_images == 0) /* nothing left to run: report the checkpoint's model */
        if ((st = eval_loader(&s.model, s.ltest, o->max_steps, comm, s.gather, &test_loss, &test_acc))) goto done;
    res->epochs = net->epochs;
    res->test_acc = test_acc;
    res->best_val_acc = pos.best_acc;
    res->best_epoch = pos.best_epoch;
    res->train_images_per_s = train_seconds > 0 ? (double)train_images / train_seconds : 0;
    res->seconds = qat_time_now() - t0;
    res->peak_rss_mb = qat_peak_rss_mb();
    double wbytes, fbytes;
    qat_model_weight_storage(&s.model, &res->weight_bits, &wbytes, &fbytes);
    res->weight_kb = wbytes / 1000;
    res->float_kb = fbytes / 1000;
    snprintf(path, sizeof path, "%s/summary.json", o->out_dir);
    if (writer) st = write_summary(path, o, res, o->threads, &s.model, o->comm ? nranks : 1, net->sync_bn);
done:
    free(layers); /* a failure between reading the layers and building them */
    session_free(&s);
    return st;
}
