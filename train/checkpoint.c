/* checkpoint.c: qat's checkpoint records (see checkpoint.h) over the
 * ckptfile container. Names: "qat.cfg", "qat.pos", "qat.rng", "optim.t",
 * "optim.kind", "optim.state", "param/<tensor>", "buffer/<tensor>". */
#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datautil.h"

qat_status qat_optimizer_init(qat_optimizer *o, const qat_model *m, const qat_optim_cfg *cfg)
{
    memset(o, 0, sizeof *o);
    size_t owned = 0, most = 0, steps = 0;
    for (int i = 0; i < m->nowned; i++) {
        const qat_qnode *q = m->owned[i];
        owned += q->out->n;
        most = q->out->n > most ? q->out->n : most;
        if (q->spec.q->step_scratch) steps += q->spec.q->step_scratch(q, m->g.threads);
    }
    most = steps > 2 * most ? (steps + 1) / 2 : most;
    qat_status st = qat_optim_init(&o->params, cfg, m->g.nparams);
    if (st == QAT_OK) st = qat_optim_init(&o->owned, cfg, owned);
    /* the owned weights' step scratch (qat_owned_step) */
    if (st == QAT_OK && most && !(o->delta = malloc(2 * most * sizeof(float))))
        st = qat_error_set(QAT_ERR_MEMORY, "optimizer: out of memory");
    if (st != QAT_OK) qat_optimizer_free(o);
    return st;
}

void qat_optimizer_free(qat_optimizer *o)
{
    qat_optim_free(&o->params);
    qat_optim_free(&o->owned);
    free(o->delta);
    memset(o, 0, sizeof *o);
}

static const char *kind_prefix(const qat_tensor *t) { return (t->flags & QAT_T_PARAM) ? "param/" : "buffer/"; }

qat_status qat_checkpoint_save(const char *path, const qat_model *m, const char *cfg_text, size_t cfg_len,
                               const qat_optimizer *o, const qat_train_pos *pos)
{
    qat_ckpt_writer *w;
    qat_status st = qat_ckpt_writer_open(&w, path);
    if (st != QAT_OK) return st;
    uint64_t p[4] = {(uint64_t)pos->epoch, (uint64_t)pos->step, (uint64_t)pos->best_epoch, 0};
    memcpy(&p[3], &pos->best_acc, sizeof pos->best_acc);
    int d1[1] = {4};
    st = qat_ckpt_writer_add(w, "qat.cfg", QAT_CKPT_BYTES, 0, NULL, cfg_text, cfg_len);
    if (st == QAT_OK) st = qat_ckpt_writer_add(w, "qat.pos", QAT_CKPT_U64, 1, d1, p, sizeof p);
    if (st == QAT_OK) st = qat_ckpt_writer_add(w, "qat.rng", QAT_CKPT_U64, 1, d1, m->g.rng.s, sizeof m->g.rng.s);
    if (st == QAT_OK && pos->run) st = qat_ckpt_writer_add(w, "qat.run", QAT_CKPT_BYTES, 0, NULL, pos->run, strlen(pos->run));
    if (st == QAT_OK && m->class_names) { /* one per line */
        size_t len = 0;
        for (int i = 0; i < m->nclass; i++) len += strlen(m->class_names[i]) + 1;
        char *text = malloc(len + 1);
        if (!text) st = qat_error_set(QAT_ERR_MEMORY, "%s: out of memory", path);
        for (int i = 0, k = 0; text && i < m->nclass; i++) k += sprintf(text + k, "%s\n", m->class_names[i]);
        if (st == QAT_OK) st = qat_ckpt_writer_add(w, "qat.classes", QAT_CKPT_BYTES, 0, NULL, text, len);
        free(text);
    }
    for (int i = 0; st == QAT_OK && i < m->g.nall; i++) {
        const qat_tensor *t = m->g.all[i];
        if (!(t->flags & (QAT_T_PARAM | QAT_T_BUFFER))) continue;
        char name[80];
        snprintf(name, sizeof name, "%s%s", kind_prefix(t), t->name);
        st = qat_ckpt_writer_add(w, name, QAT_CKPT_F32, t->ndim, t->shape, t->x, t->n * sizeof(float));
    }
    /* the states of weights a quantizer keeps (DST, ALQ): one record each,
     * shaped as the weights when there is a byte per weight */
    for (int i = 0; st == QAT_OK && i < m->nowned; i++) {
        const qat_qnode *q = m->owned[i];
        char name[80];
        snprintf(name, sizeof name, "state/%s", q->out->name);
        int bytes[1] = {(int)q->state_bytes};
        int per_weight = q->state_bytes == q->out->n;
        st = qat_ckpt_writer_add(w, name, QAT_CKPT_BYTES, per_weight ? q->out->ndim : 1,
                                 per_weight ? q->out->shape : bytes, q->state, q->state_bytes);
    }
    if (o && st == QAT_OK) {
        const qat_optim *oo[2] = {&o->params, &o->owned};
        const char *pre[2] = {"optim", "optim_owned"};
        for (int k = 0; k < 2 && st == QAT_OK; k++) {
            uint64_t t = (uint64_t)oo[k]->t;
            int32_t kind = (int32_t)oo[k]->cfg.kind;
            size_t nf = qat_optim_state_floats(oo[k]);
            int dn[1] = {(int)nf};
            char name[32];
            snprintf(name, sizeof name, "%s.t", pre[k]);
            st = qat_ckpt_writer_add(w, name, QAT_CKPT_U64, 0, NULL, &t, sizeof t);
            snprintf(name, sizeof name, "%s.kind", pre[k]);
            if (st == QAT_OK) st = qat_ckpt_writer_add(w, name, QAT_CKPT_I32, 0, NULL, &kind, sizeof kind);
            snprintf(name, sizeof name, "%s.state", pre[k]);
            if (st == QAT_OK && nf)
                st = qat_ckpt_writer_add(w, name, QAT_CKPT_F32, 1, dn, qat_optim_state((qat_optim *)oo[k]),
                                         nf * sizeof(float));
        }
    }
    if (st != QAT_OK) {
        qat_ckpt_writer_abort(w); /* the writer's messages name the file */
        return st;
    }
    return qat_ckpt_writer_commit(w);
}

static const char *shape_str(int ndim, const int *dims, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++) k += (size_t)snprintf(buf + k, cap - k, "%s%d", i ? ", " : "", dims[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

qat_status qat_checkpoint_load_model(const qat_ckpt *ck, qat_model *m)
{
    /* first pass: every model tensor present with its shape */
    for (int i = 0; i < m->g.nall; i++) {
        qat_tensor *t = m->g.all[i];
        if (!(t->flags & (QAT_T_PARAM | QAT_T_BUFFER))) continue;
        char name[80], a[64], b[64];
        snprintf(name, sizeof name, "%s%s", kind_prefix(t), t->name);
        const qat_ckpt_record *r = qat_ckpt_find(ck, name);
        if (!r)
            return qat_error_set(QAT_ERR_MISMATCH, "%s: checkpoint is from another model: it has no tensor '%s' %s",
                                 ck->path, t->name, qat_tensor_shape_str(t, a, sizeof a));
        if (r->ndim != t->ndim || memcmp(r->dims, t->shape, sizeof(int) * (size_t)t->ndim) != 0)
            return qat_error_set(QAT_ERR_MISMATCH,
                                 "%s: checkpoint is from another model: tensor '%s' is %s there and %s here", ck->path,
                                 t->name, shape_str(r->ndim, r->dims, a, sizeof a), qat_tensor_shape_str(t, b, sizeof b));
    }
    for (int i = 0; i < m->nowned; i++) {
        qat_qnode *q = m->owned[i];
        char name[80], a[64], b[64];
        const qat_tensor *t = q->out;
        snprintf(name, sizeof name, "state/%s", t->name);
        const qat_ckpt_record *r = qat_ckpt_find(ck, name);
        if (!r || r->nbytes != q->state_bytes)
            return qat_error_set(QAT_ERR_MISMATCH,
                                 "%s: checkpoint is from another model: weight states '%s' %s (%zu bytes) here, %s there",
                                 ck->path, t->name, qat_tensor_shape_str(t, a, sizeof a), q->state_bytes,
                                 r ? shape_str(r->ndim, r->dims, b, sizeof b) : "missing");
        if (r->dtype != QAT_CKPT_BYTES)
            return qat_error_set(QAT_ERR_MISMATCH, "%s: checkpoint record '%s' is not bytes (dtype %d)", ck->path,
                                 name, r->dtype);
        qat_status st = q->spec.q->load_state(q, r->data, r->nbytes, ck->path);
        if (st != QAT_OK) return st;
    }
    /* no tensor the model lacks */
    for (int i = 0; i < ck->nrec; i++) {
        const char *n = ck->rec[i].name;
        const char *tn = strncmp(n, "param/", 6) == 0 ? n + 6 : strncmp(n, "buffer/", 7) == 0 ? n + 7 : NULL;
        if (tn && !qat_graph_find(&m->g, tn))
            return qat_error_set(QAT_ERR_MISMATCH, "%s: checkpoint is from another model: its tensor '%s' is not in this model",
                                 ck->path, tn);
    }
    for (int i = 0; i < m->g.nall; i++) {
        qat_tensor *t = m->g.all[i];
        if (!(t->flags & (QAT_T_PARAM | QAT_T_BUFFER))) continue;
        char name[80];
        snprintf(name, sizeof name, "%s%s", kind_prefix(t), t->name);
        qat_status st = qat_ckpt_record_copy(qat_ckpt_find(ck, name), QAT_CKPT_F32, t->x, t->n * sizeof(float));
        if (st != QAT_OK) return qat_error_wrap(st, "%s", ck->path);
    }
    qat_status st = qat_model_check_values(m);
    return st ? qat_error_wrap(st, "%s", ck->path) : QAT_OK;
}

static qat_status need(const qat_ckpt *ck, const char *name, const qat_ckpt_record **r)
{
    *r = qat_ckpt_find(ck, name);
    if (!*r) return qat_error_set(QAT_ERR_FORMAT, "%s: no '%s' record: not a training checkpoint of qat", ck->path, name);
    return QAT_OK;
}

qat_status qat_checkpoint_load_train(const qat_ckpt *ck, qat_model *m, qat_optimizer *o, qat_train_pos *pos)
{
    const qat_ckpt_record *r;
    uint64_t p[4];
    qat_status st;
    if ((st = need(ck, "qat.pos", &r)) || (st = qat_ckpt_record_copy(r, QAT_CKPT_U64, p, sizeof p))) return st;
    if ((st = need(ck, "qat.rng", &r)) || (st = qat_ckpt_record_copy(r, QAT_CKPT_U64, m->g.rng.s, sizeof m->g.rng.s)))
        return st;
    pos->epoch = (int)p[0];
    pos->step = (int64_t)p[1];
    pos->best_epoch = (int)p[2];
    memcpy(&pos->best_acc, &p[3], sizeof pos->best_acc);
    if (!o) return QAT_OK;
    qat_optim *oo[2] = {&o->params, &o->owned};
    const char *pre[2] = {"optim", "optim_owned"};
    for (int k = 0; k < 2; k++) {
        uint64_t t;
        int32_t kind;
        char name[32];
        size_t nf = qat_optim_state_floats(oo[k]);
        if (k == 1 && oo[k]->n == 0) break;
        snprintf(name, sizeof name, "%s.t", pre[k]);
        if ((st = need(ck, name, &r)) || (st = qat_ckpt_record_copy(r, QAT_CKPT_U64, &t, sizeof t))) return st;
        snprintf(name, sizeof name, "%s.kind", pre[k]);
        if ((st = need(ck, name, &r)) || (st = qat_ckpt_record_copy(r, QAT_CKPT_I32, &kind, sizeof kind))) return st;
        /* a kind from the file names no optimizer of ours: qat_optim_name would give NULL */
        if (kind < 0 || kind >= QAT_OPTIM_COUNT)
            return qat_error_set(QAT_ERR_FORMAT, "%s: byte %zu: record '%s' holds optimizer kind %d, expected 0..%d",
                                 ck->path, r->offset, name, (int)kind, QAT_OPTIM_COUNT - 1);
        if (kind != (int32_t)oo[k]->cfg.kind)
            return qat_error_set(QAT_ERR_MISMATCH, "%s: optimizer state is for '%s', the config asks for '%s'", ck->path,
                                 qat_optim_name((qat_optim_kind)kind), qat_optim_name(oo[k]->cfg.kind));
        if (nf) {
            snprintf(name, sizeof name, "%s.state", pre[k]);
            if ((st = need(ck, name, &r))) return st;
            if (r->nbytes != nf * sizeof(float))
                return qat_error_set(QAT_ERR_MISMATCH, "%s: optimizer state has %zu floats, this model needs %zu",
                                     ck->path, r->nbytes / sizeof(float), nf);
            if ((st = qat_ckpt_record_copy(r, QAT_CKPT_F32, qat_optim_state(oo[k]), nf * sizeof(float)))) return st;
        }
        oo[k]->t = (int64_t)t;
    }
    return QAT_OK;
}

qat_status qat_checkpoint_cfg(const qat_ckpt *ck, const char **text, size_t *len)
{
    const qat_ckpt_record *r;
    qat_status st = need(ck, "qat.cfg", &r);
    if (st != QAT_OK) return st;
    *text = r->data;
    *len = r->nbytes;
    return QAT_OK;
}

qat_status qat_checkpoint_run_kept(const qat_ckpt *ck, int *epochs, char *dataset, size_t n)
{
    *epochs = 0;
    dataset[0] = 0;
    const qat_ckpt_record *r = qat_ckpt_find(ck, "qat.run");
    if (!r) return QAT_OK;
    qat_cfg rc;
    memset(&rc, 0, sizeof rc);
    const char *ds;
    qat_status st = qat_cfg_parse_text(&rc, "qat.run", (const char *)r->data, r->nbytes);
    if (st == QAT_OK && rc.nsec != 1) st = qat_error_set(QAT_ERR_FORMAT, "%s: bad qat.run", ck->path);
    if (st == QAT_OK && !(st = qat_cfg_get_int(&rc, &rc.sec[0], "epochs", 0, 0, 1000000, epochs)) &&
        !(st = qat_cfg_get_str(&rc, &rc.sec[0], "dataset", "", &ds)))
        snprintf(dataset, n, "%s", ds);
    qat_cfg_free(&rc);
    return st ? qat_error_wrap(st, "%s", ck->path) : QAT_OK;
}

qat_status qat_checkpoint_open_model(const char *path, int batch, int threads, qat_model *m, qat_cfg *cfg,
                                     qat_net_cfg *net)
{
    qat_ckpt ck;
    memset(m, 0, sizeof *m);
    memset(cfg, 0, sizeof *cfg);
    qat_status st = qat_ckpt_read(&ck, path);
    if (st != QAT_OK) return st;
    const char *text;
    size_t len;
    char name[600];
    snprintf(name, sizeof name, "%s (stored config)", path);
    qat_layer *layers;
    int nlayers;
    int epochs;
    char dataset[32];
    if ((st = qat_checkpoint_cfg(&ck, &text, &len)) || (st = qat_cfg_parse_text(cfg, name, text, len)) ||
        (st = qat_netcfg_read(cfg, net, &layers, &nlayers)))
        goto done;
    /* evaluated, exported and described with the data (and normalisation) it trained on */
    if ((st = qat_checkpoint_run_kept(&ck, &epochs, dataset, sizeof dataset)) ||
        (dataset[0] && strcmp(dataset, net->dataset) != 0 && (st = qat_netcfg_set_dataset(net, dataset, name)))) {
        free(layers);
        goto done;
    }
    if (epochs > 0) net->epochs = epochs;
    if ((st = qat_model_build(m, layers, nlayers, net->c, net->h, net->w, batch, threads, net->seed))) goto done;
    st = qat_checkpoint_load_model(&ck, m);
    if (st == QAT_OK) st = qat_checkpoint_classes(&ck, m->nclass, &m->class_names);
done:
    if (st != QAT_OK) {
        qat_model_free(m);
        qat_cfg_free(cfg);
    }
    qat_ckpt_free(&ck);
    return st;
}

qat_status qat_checkpoint_classes(const qat_ckpt *ck, int nclass, char ***names)
{
    *names = NULL;
    const qat_ckpt_record *r = qat_ckpt_find(ck, "qat.classes");
    if (!r) return QAT_OK;
    char what[600];
    snprintf(what, sizeof what, "%s (record qat.classes)", ck->path);
    qat_dataset ds = {0};
    snprintf(ds.name, sizeof ds.name, "checkpoint");
    qat_status st = r->dtype == QAT_CKPT_BYTES ? qat_data_names_parse(&ds, what, r->data, r->nbytes, nclass)
                                               : qat_error_set(QAT_ERR_FORMAT, "%s: not bytes", what);
    if (st == QAT_OK) *names = ds.class_names;
    return st;
}

/* ---- --init-from -------------------------------------------------------------- */

/* 1 when t is a parameter or buffer of one of the model's quantizer nodes */
static int quantizer_tensor(const qat_model *m, const qat_tensor *t)
{
    for (int i = 0; i < m->nlayers; i++) {
        const qat_layer *l = &m->layers[i];
        const qat_qnode *q[4] = {&l->wq, &l->aq, &l->oq, &l->gq};
        for (int k = 0; k < 4; k++)
            if (q[k]->out && (t == q[k]->param || t == q[k]->buf)) return 1;
    }
    return 0;
}

/* a checkpoint tensor name that a quantizer node writes: <layer>.wq.*,
 * .aq.*, .oq.* (parameters and buffers), <layer>.weight.state (the buffer
 * of weights a quantizer keeps) */
static int quantizer_name(const char *n)
{
    size_t len = strlen(n);
    return strstr(n, ".wq.") || strstr(n, ".aq.") || strstr(n, ".oq.") ||
           (len > 13 && strcmp(n + len - 13, ".weight.state") == 0);
}

/* copies the checkpoint's param/ or buffer/ record of t's name into t */
static qat_status init_tensor(const qat_ckpt *ck, qat_tensor *t, float *dst, int *used)
{
    char name[96], a[64], b[64];
    const qat_ckpt_record *r = NULL;
    static const char *const pre[2] = {"param/", "buffer/"};
    for (int k = 0; k < 2 && !r; k++) {
        snprintf(name, sizeof name, "%s%s", pre[k], t->name);
        r = qat_ckpt_find(ck, name);
    }
    if (!r) {
        snprintf(name, sizeof name, "state/%s", t->name);
        if (qat_ckpt_find(ck, name))
            return qat_error_set(QAT_ERR_MISMATCH, "%s: '%s' is kept there as quantizer states, not float weights; "
                                 "start from a float run of this architecture", ck->path, t->name);
        return qat_error_set(QAT_ERR_MISMATCH, "%s: another architecture: it has no tensor '%s' %s", ck->path, t->name,
                             qat_tensor_shape_str(t, a, sizeof a));
    }
    if (r->ndim != t->ndim || memcmp(r->dims, t->shape, sizeof(int) * (size_t)t->ndim) != 0)
        return qat_error_set(QAT_ERR_MISMATCH, "%s: another architecture: tensor '%s' is %s there and %s here", ck->path,
                             t->name, shape_str(r->ndim, r->dims, a, sizeof a), qat_tensor_shape_str(t, b, sizeof b));
    used[r - ck->rec] = 1;
    qat_status st = qat_ckpt_record_copy(r, QAT_CKPT_F32, dst, t->n * sizeof(float));
    return st ? qat_error_wrap(st, "%s", ck->path) : QAT_OK;
}

qat_status qat_checkpoint_init_from(const qat_ckpt *ck, qat_model *m, uint64_t seed)
{
    int *used = calloc((size_t)ck->nrec + 1, sizeof *used);
    if (!used) return qat_error_set(QAT_ERR_MEMORY, "init-from: out of memory");
    qat_status st = QAT_OK;
    for (int i = 0; st == QAT_OK && i < m->g.nall; i++) {
        qat_tensor *t = m->g.all[i];
        if ((t->flags & (QAT_T_PARAM | QAT_T_BUFFER)) && !quantizer_tensor(m, t)) st = init_tensor(ck, t, t->x, used);
    }
    /* weights a quantizer keeps: their float view takes the weights, from
     * which the node's states are initialised below */
    for (int i = 0; st == QAT_OK && i < m->nowned; i++) st = init_tensor(ck, m->owned[i]->out, m->owned[i]->out->x, used);
    for (int i = 0; st == QAT_OK && i < ck->nrec; i++) {
        const char *n = ck->rec[i].name;
        const char *tn = strncmp(n, "param/", 6) == 0 ? n + 6 : strncmp(n, "buffer/", 7) == 0 ? n + 7 : NULL;
        if (tn && !used[i] && !quantizer_name(tn))
            st = qat_error_set(QAT_ERR_MISMATCH, "%s: another architecture: it has a tensor '%s' this model lacks",
                               ck->path, tn);
    }
    free(used);
    if (st != QAT_OK) return st;
    qat_rng r;
    qat_rng_seed(&r, seed ^ 0x1417ULL);
    for (int i = 0; i < m->nlayers; i++) {
        qat_qnode_init(&m->layers[i].wq, &r);
        qat_qnode_init(&m->layers[i].aq, &r);
        qat_qnode_init(&m->layers[i].oq, &r);
    }
    return qat_model_check_values(m);
}
