/* quantizer.c: the quantizer table, config keys, and the glue that turns a
 * quantizer into a graph op with its parameter and buffers; DoReFa's
 * gradient quantizer. The methods live one per file. */
#include "quantizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qmath.h"

extern const qat_quantizer qat_q_ste_sign, qat_q_approx_sign, qat_q_xnor, qat_q_ternary, qat_q_uniform,
    qat_q_stochastic, qat_q_dorefa, qat_q_pact, qat_q_lsq, qat_q_aqe, qat_q_dst_act, qat_q_dst, qat_q_alq, qat_q_alq_act;

const qat_quantizer *const qat_quantizers[] = {
    &qat_q_ste_sign, &qat_q_approx_sign, &qat_q_xnor, &qat_q_ternary, &qat_q_uniform,
    &qat_q_stochastic, &qat_q_dorefa, &qat_q_pact, &qat_q_lsq, &qat_q_aqe, &qat_q_dst_act, &qat_q_dst, &qat_q_alq, &qat_q_alq_act,
};
const int qat_quantizer_count = (int)(sizeof qat_quantizers / sizeof qat_quantizers[0]);

const qat_quantizer *qat_quantizer_find(const char *name)
{
    for (int i = 0; i < qat_quantizer_count; i++)
        if (strcmp(qat_quantizers[i]->name, name) == 0) return qat_quantizers[i];
    return NULL;
}

const char *const qat_rounding_names[2] = {"nearest", "stochastic"};
const char *const qat_range_names[QAT_QRANGE_COUNT] = {"minmax", "ema"};

void qat_qspec_default(qat_qspec *s)
{
    memset(s, 0, sizeof *s);
    s->clip = -1; /* the method's default */
}

int qat_qspec_bits(const qat_qspec *s)
{
    if (!s->q) return 32;
    return s->bits ? s->bits : s->q->default_bits;
}

static void key_store(void *opts, const qat_qkey *k, double v)
{
    unsigned char *p = (unsigned char *)opts + k->offset;
    if (k->type == QAT_QKEY_FLOAT) {
        float f = (float)v;
        memcpy(p, &f, sizeof f);
    } else {
        int i = (int)v;
        memcpy(p, &i, sizeof i);
    }
}

static double key_load(const void *opts, const qat_qkey *k)
{
    const unsigned char *p = (const unsigned char *)opts + k->offset;
    if (k->type == QAT_QKEY_FLOAT) {
        float f;
        memcpy(&f, p, sizeof f);
        return f;
    }
    int i;
    memcpy(&i, p, sizeof i);
    return i;
}

/* q's default settings into opts */
static void opts_default(const qat_quantizer *q, void *opts)
{
    memset(opts, 0, QAT_QOPTS_BYTES);
    QAT_ASSERT(q->opts_size <= QAT_QOPTS_BYTES);
    for (int i = 0; i < q->nkeys; i++) key_store(opts, &q->keys[i], q->keys[i].def);
}

void *qat_qspec_opts(qat_qspec *s)
{
    if (!s->q) return NULL;
    if (s->opts_q != s->q) {
        opts_default(s->q, s->opts);
        s->opts_q = s->q;
    }
    return s->opts;
}

const void *qat_qspec_opts_const(const qat_qspec *s)
{
    QAT_ASSERT(!s->q || s->opts_q == s->q);
    return s->q ? s->opts : NULL;
}

static const qat_qkey *key_find(const qat_quantizer *q, const char *key)
{
    for (int i = 0; q && i < q->nkeys; i++)
        if (strcmp(q->keys[i].key, key) == 0) return &q->keys[i];
    return NULL;
}

qat_status qat_qspec_set(qat_qspec *s, const char *key, double value)
{
    const qat_qkey *k = key_find(s->q, key);
    if (!k || !k->roles) return qat_error_set(QAT_ERR_CONFIG, "quantizer %s has no setting '%s'", s->q ? s->q->name : "float", key);
    if (!(value >= k->lo && value <= k->hi) || (k->type != QAT_QKEY_FLOAT && value != (double)(int)value))
        return qat_error_set(QAT_ERR_CONFIG, "quantizer %s: %s = %g is outside [%g, %g]%s", s->q->name, key, value, k->lo,
                             k->hi, k->type == QAT_QKEY_FLOAT ? "" : " or not an integer");
    key_store(qat_qspec_opts(s), k, value);
    return QAT_OK;
}

double qat_qspec_get(const qat_qspec *s, const char *key)
{
    const qat_qkey *k = key_find(s->q, key);
    if (!k || !k->roles) return NAN;
    qat_qspec t = *s;
    return key_load(qat_qspec_opts(&t), k);
}

/* reads the section's values of q's keys for `role` into opts (whose
 * current values are the defaults) */
static qat_status read_keys(qat_cfg *c, qat_cfg_section *s, const qat_quantizer *q, int role, void *opts)
{
    qat_status st = QAT_OK;
    for (int i = 0; st == QAT_OK && i < q->nkeys; i++) {
        const qat_qkey *k = &q->keys[i];
        if (!(k->roles & role)) continue;
        double cur = key_load(opts, k);
        int iv = (int)cur;
        float fv = (float)cur;
        switch (k->type) {
        case QAT_QKEY_FLOAT: st = qat_cfg_get_float(c, s, k->key, fv, (float)k->lo, (float)k->hi, &fv); break;
        case QAT_QKEY_INT: st = qat_cfg_get_int(c, s, k->key, iv, (int)k->lo, (int)k->hi, &iv); break;
        case QAT_QKEY_BOOL: st = qat_cfg_get_bool(c, s, k->key, iv, &iv); break;
        case QAT_QKEY_ENUM: st = qat_cfg_get_enum(c, s, k->key, k->names, k->nnames, iv, &iv); break;
        }
        if (st == QAT_OK) key_store(opts, k, k->type == QAT_QKEY_FLOAT ? (double)fv : (double)iv);
    }
    return st;
}

/* the config's [quant] section (the defaults), or NULL */
static qat_cfg_section *defaults_section(qat_cfg *c)
{
    for (int i = 0; i < c->nsec; i++)
        if (strcmp(c->sec[i].name, "quant") == 0) return &c->sec[i];
    return NULL;
}

static qat_status parse_method(qat_cfg *c, qat_cfg_section *s, const char *key, qat_qrole role, qat_qspec *out)
{
    const char *name;
    qat_status st = qat_cfg_get_str(c, s, key, NULL, &name);
    if (st != QAT_OK || !name) return st;
    if (strcmp(name, "float") == 0 || strcmp(name, "none") == 0) {
        out->q = NULL;
        return QAT_OK;
    }
    const qat_quantizer *q = qat_quantizer_find(name);
    int line = s->line;
    for (int i = 0; i < s->nkv; i++)
        if (strcmp(s->kv[i].key, key) == 0) line = s->kv[i].line;
    if (!q) {
        char known[400] = "float";
        for (int i = 0; i < qat_quantizer_count; i++)
            if (qat_quantizers[i]->roles & role) {
                strncat(known, ", ", sizeof known - strlen(known) - 1);
                strncat(known, qat_quantizers[i]->name, sizeof known - strlen(known) - 1);
            }
        return qat_cfg_error_at(c, line, "[%s] %s = %s: no such quantizer (for %s: %s)", s->name, key, name,
                                role == QAT_QROLE_WEIGHT ? "weights" : "activations", known);
    }
    if (!(q->roles & role))
        return qat_cfg_error_at(c, line, "[%s] %s = %s: this quantizer does not apply to %s", s->name, key, name,
                                role == QAT_QROLE_WEIGHT ? "weights" : "activations");
    if (q != out->q) {
        /* another method than inherited: its settings as [quant] gives them */
        out->q = q;
        opts_default(q, out->opts);
        out->opts_q = q;
        qat_cfg_section *d = defaults_section(c);
        if (d && d != s && (st = read_keys(c, d, q, role, out->opts))) return st;
    }
    return QAT_OK;
}

/* A key left unread in s that some method declares: the section does not
 * use that method (QAT_ERR_CONFIG naming it), or QAT_OK. */
static qat_status stray_method_key(qat_cfg *c, const qat_cfg_section *s, const qat_qspec *w, const qat_qspec *a)
{
    for (int i = 0; i < s->nkv; i++) {
        if (s->kv[i].used) continue;
        char owners[200] = "";
        for (int m = 0; m < qat_quantizer_count; m++)
            if (key_find(qat_quantizers[m], s->kv[i].key)) {
                strncat(owners, owners[0] ? ", " : "", sizeof owners - strlen(owners) - 1);
                strncat(owners, qat_quantizers[m]->name, sizeof owners - strlen(owners) - 1);
            }
        if (owners[0])
            return qat_cfg_error_at(c, s->kv[i].line,
                                    "[%s] %s is a setting of %s, and this section quantizes weights with %s and "
                                    "activations with %s",
                                    s->name, s->kv[i].key, owners, w->q ? w->q->name : "float",
                                    a->q ? a->q->name : "float");
    }
    return QAT_OK;
}

qat_status qat_qspec_parse(qat_cfg *c, qat_cfg_section *s, qat_qspec *w, qat_qspec *a)
{
    qat_status st;
    int bits = 0;
    if ((st = parse_method(c, s, "weight", QAT_QROLE_WEIGHT, w)) || (st = parse_method(c, s, "act", QAT_QROLE_ACT, a)) ||
        (st = qat_cfg_get_int(c, s, "bits", 0, 1, 16, &bits)))
        return st;
    if (bits) w->bits = a->bits = bits;
    if ((st = qat_cfg_get_int(c, s, "weight_bits", w->bits, 1, 16, &w->bits)) ||
        (st = qat_cfg_get_int(c, s, "act_bits", a->bits, 1, 16, &a->bits)) ||
        (st = qat_cfg_get_bool(c, s, "per_channel", w->per_channel, &w->per_channel)) ||
        (st = qat_cfg_get_float(c, s, "clip", w->clip, -1.0f, 1e6f, &w->clip)))
        return st;
    a->per_channel = 0;
    a->clip = 0;
    qat_qspec *spec[2] = {w, a};
    for (int i = 0; i < 2; i++)
        if (spec[i]->q && (st = read_keys(c, s, spec[i]->q, i ? QAT_QROLE_ACT : QAT_QROLE_WEIGHT, qat_qspec_opts(spec[i]))))
            return st;
    if (s == defaults_section(c)) {
        /* the defaults of every method (read by layers that switch to one):
         * checked here, where they are written */
        unsigned char scratch[QAT_QOPTS_BYTES];
        for (int m = 0; m < qat_quantizer_count; m++) {
            opts_default(qat_quantizers[m], scratch);
            if ((st = read_keys(c, s, qat_quantizers[m], QAT_QROLES_ALL, scratch))) return st;
        }
    } else if ((st = stray_method_key(c, s, w, a))) {
        return st;
    }
    for (int i = 0; i < 2; i++) {
        const qat_quantizer *q = spec[i]->q;
        int b = qat_qspec_bits(spec[i]);
        if (q && (b < q->min_bits || b > q->max_bits))
            return qat_cfg_error_at(c, s->line, "[%s] %s quantizer '%s' takes %d to %d bits, got %d", s->name,
                                    i ? "activation" : "weight", q->name, q->min_bits, q->max_bits, b);
    }
    return QAT_OK;
}

void qat_qparallel(qat_graph *g, const qat_tensor *t, qat_qrange_fn fn) { qat_graph_elementwise(g, t, t->n, fn); }

/* ---- the graph op ---------------------------------------------------------- */
static void op_forward(qat_tensor *t, qat_graph *g)
{
    qat_qnode *n = t->user;
    n->spec.q->forward(n, t, g);
}

static void op_backward(qat_tensor *t, qat_graph *g)
{
    qat_qnode *n = t->user;
    n->spec.q->backward(n, t, g);
}

void qat_qnode_apply(qat_qnode *n, qat_graph *g, const float *x, float *y, size_t count)
{
    QAT_ASSERT(n->spec.q && n->role == QAT_QROLE_ACT && n->out);
    qat_tensor in = *n->in, out = *n->out;
    in.ndim = out.ndim = 1;
    in.shape[0] = out.shape[0] = (int)count;
    in.n = out.n = count;
    in.x = (float *)x;
    in.g = out.g = NULL;
    out.x = y;
    out.src[0] = &in;
    n->spec.q->forward(n, &out, g);
}

qat_tensor *qat_quantize(qat_graph *g, qat_qnode *n, const qat_qspec *spec, qat_qrole role, qat_tensor *x,
                         const char *name)
{
    if (!spec->q || !x) return x;
    memset(n, 0, sizeof *n);
    n->spec = *spec;
    qat_qspec_opts(&n->spec);
    n->role = role;
    n->bits = qat_qspec_bits(spec);
    n->in = x;
    if (n->spec.clip < 0) n->spec.clip = role == QAT_QROLE_WEIGHT ? spec->q->default_clip : 0;
    n->channels = role == QAT_QROLE_WEIGHT && spec->per_channel && spec->q->per_channel_ok ? x->shape[0] : 1;
    n->op.name = spec->q->name;
    n->op.forward = op_forward;
    n->op.backward = op_backward;
    char pname[64];
    qat_tensor *src[2] = {x, NULL};
    int nsrc = 1;
    if (spec->q->has_param) {
        int shape[1] = {n->channels};
        snprintf(pname, sizeof pname, "%s.%s", name, spec->q->param_name);
        n->param = qat_graph_param(g, pname, 1, shape, QAT_T_PARAM | QAT_T_NO_DECAY);
        if (!n->param) return NULL;
        if (spec->q->param_decay) { /* PACT's clip has an L2 decay of its own */
            n->param->flags |= QAT_T_OWN_DECAY;
            n->param->fp[0] = spec->q->param_decay(n);
        }
        src[nsrc++] = n->param;
    }
    /* buffers: [0, C) scales, [C, 2C) zero points, then method state */
    int shape[1] = {2 * n->channels + (spec->q->buf_extra ? spec->q->buf_extra : 4)};
    snprintf(pname, sizeof pname, "%s.state", name);
    n->buf = qat_graph_param(g, pname, 1, shape, QAT_T_BUFFER);
    if (!n->buf) return NULL;
    n->out = qat_custom(g, &n->op, n, nsrc, src);
    if (n->out) snprintf(n->out->name, sizeof n->out->name, "%s", name);
    return n->out;
}

qat_tensor *qat_quantize_owned(qat_graph *g, qat_qnode *n, const qat_qspec *spec, int ndim, const int *shape,
                               const char *name)
{
    QAT_ASSERT(spec->q && spec->q->owns_weights && spec->q->state_size && spec->q->init_owned &&
               spec->q->load_state && (spec->q->update || spec->q->step || spec->q->step_all));
    memset(n, 0, sizeof *n);
    n->spec = *spec;
    qat_qspec_opts(&n->spec);
    n->role = QAT_QROLE_WEIGHT;
    n->bits = qat_qspec_bits(spec);
    n->channels = 1;
    n->op.name = spec->q->name;
    n->op.forward = op_forward;
    n->op.backward = op_backward;
    char pname[64];
    int bshape[1] = {2 * n->channels + 4};
    snprintf(pname, sizeof pname, "%s.state", name);
    n->buf = qat_graph_param(g, pname, 1, bshape, QAT_T_BUFFER);
    n->out = n->buf ? qat_custom_leaf(g, &n->op, n, ndim, shape) : NULL;
    if (!n->out) return NULL;
    snprintf(n->out->name, sizeof n->out->name, "%s", name);
    n->in = n->out; /* the float view is the weight tensor the layer sees */
    if (spec->q->check && spec->q->check(n) != QAT_OK) return NULL;
    n->state_bytes = spec->q->state_size(n);
    n->state = calloc(n->state_bytes ? n->state_bytes : 1, 1);
    if (!n->state) {
        qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for %zu bytes of weight state", name, n->state_bytes);
        return NULL;
    }
    return n->out;
}

double qat_qnode_avg_bits(const qat_qnode *n)
{
    if (!n->out || !n->spec.q) return 32;
    return n->spec.q->avg_bits ? n->spec.q->avg_bits(n) : n->bits;
}

uint64_t qat_qnode_storage_bits(const qat_qnode *n)
{
    if (!n->out) return 0;
    if (n->spec.q && n->spec.q->storage_bits) return n->spec.q->storage_bits(n);
    return (uint64_t)n->in->n * (uint64_t)(n->spec.q ? n->bits : 32);
}

void qat_qnode_free(qat_qnode *n)
{
    free(n->state);
    n->state = NULL;
    n->state_bytes = 0;
}

void qat_qnode_init(qat_qnode *n, qat_rng *rng)
{
    if (!n->out || n->role == QAT_QROLE_GRAD) return;
    for (size_t i = 0; i < n->buf->n; i++) n->buf->x[i] = 0;
    for (int c = 0; c < n->channels; c++) n->buf->x[c] = 1; /* scales */
    if (n->state) n->spec.q->init_owned(n, n->out->x, rng); /* the layer initialised the float view */
    if (n->spec.q->init) n->spec.q->init(n);
}

void qat_qnode_post_update(qat_qnode *n)
{
    if (!n->out || n->role != QAT_QROLE_WEIGHT || n->spec.clip <= 0 || n->state) return;
    float c = n->spec.clip;
    float *w = n->in->x;
    for (size_t i = 0; i < n->in->n; i++) w[i] = w[i] < -c ? -c : w[i] > c ? c : w[i];
}

/* ---- DoReFa gradient quantizer ------------------------------------------------
 * dr~ = 2 m [quantize_k(dr / 2m + 1/2 + N(k)) - 1/2], m = max |dr| over the
 * sample, N(k) = sigma / (2^k - 1), sigma ~ U(-1/2, 1/2) (Zhou et al. 2016;
 * survey by Guo, Eq. 31-32, where the printed Eq. 31 misplaces the 1/2). */
static void gq_forward(qat_tensor *t, qat_graph *g) { memcpy(t->x, t->src[0]->x, t->n * sizeof(float)); }

static void gq_backward(qat_tensor *t, qat_graph *g)
{
    qat_qnode *n = t->user;
    float *dx = t->src[0]->g;
    if (!dx) return;
    int N = t->shape[0];
    size_t S = t->n / (size_t)N;
    float levels = (float)((1 << n->bits) - 1);
    for (int i = 0; i < N; i++) {
        const float *dy = t->g + (size_t)i * S;
        float *d = dx + (size_t)i * S;
        float m = 0;
        for (size_t j = 0; j < S; j++) m = fabsf(dy[j]) > m ? fabsf(dy[j]) : m;
        if (m == 0) continue;
        float inv = 1.0f / (2 * m);
        for (size_t j = 0; j < S; j++) {
            float noise = (qat_rng_uniform(&g->rng) - 0.5f) / levels;
            float r = dy[j] * inv + 0.5f + noise;
            r = r < 0 ? 0 : r > 1 ? 1 : r;
            d[j] += 2 * m * (qat_round(r * levels) / levels - 0.5f);
        }
    }
}

qat_tensor *qat_quantize_grad(qat_graph *g, qat_qnode *n, int bits, qat_tensor *x, const char *name)
{
    if (bits <= 0 || !x) return x;
    memset(n, 0, sizeof *n);
    n->bits = bits;
    n->role = QAT_QROLE_GRAD;
    n->in = x;
    n->op.name = "dorefa_grad";
    n->op.forward = gq_forward;
    n->op.backward = gq_backward;
    n->out = qat_custom(g, &n->op, n, 1, &x);
    if (n->out) snprintf(n->out->name, sizeof n->out->name, "%s", name);
    return n->out;
}
