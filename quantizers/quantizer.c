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
    qat_q_stochastic, qat_q_dorefa, qat_q_pact, qat_q_lsq, qat_q_aqe, qat_q_dst_act, qat_q_dst;

const qat_quantizer *const qat_quantizers[] = {
    &qat_q_ste_sign, &qat_q_approx_sign, &qat_q_xnor, &qat_q_ternary, &qat_q_uniform,
    &qat_q_stochastic, &qat_q_dorefa, &qat_q_pact, &qat_q_lsq, &qat_q_aqe, &qat_q_dst_act, &qat_q_dst,
};
const int qat_quantizer_count = (int)(sizeof qat_quantizers / sizeof qat_quantizers[0]);

const qat_quantizer *qat_quantizer_find(const char *name)
{
    for (int i = 0; i < qat_quantizer_count; i++)
        if (strcmp(qat_quantizers[i]->name, name) == 0) return qat_quantizers[i];
    return NULL;
}

void qat_qspec_default(qat_qspec *s)
{
    memset(s, 0, sizeof *s);
    s->symmetric = 1;
    s->range = QAT_QRANGE_EMA;
    s->momentum = 0.1f;
    s->ternary_factor = 0.7f;
    s->threshold = 0.5f;
    s->alpha = 10.0f;
    s->alpha_decay = 2e-4f;
    s->clip = -1; /* the method's default */
    s->aqe_alpha = 0.5f; /* alpha = 1/2 is the STE (Theorem 1) */
    s->aqe_reach = 0.8f;
    s->aqe_shape = QAT_AQE_LINEAR;
    s->aqe_delta = 0.5f;
    s->dst_q2 = 0.125f;
    s->dst_p = -2;
    s->dst_th = 0.5f;
    s->dst_init = QAT_DST_INIT_LAYER;
    s->dst_zero_grad = QAT_DST_GRAD_ZERO;
}

int qat_qspec_bits(const qat_qspec *s)
{
    if (!s->q) return 32;
    return s->bits ? s->bits : s->q->default_bits;
}

static const char *const dst_init_names[] = {"uniform", "layer"};
static const char *const dst_grad_names[] = {"zero", "pass"};

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
    out->q = q;
    return QAT_OK;
}

static const char *const range_names[QAT_QRANGE_COUNT] = {"minmax", "ema"};
static const char *const rounding_names[2] = {"nearest", "stochastic"};
static const char *const aqe_shape_names[QAT_AQE_SHAPE_COUNT] = {"linear", "exp", "step"};

qat_status qat_qspec_parse(qat_cfg *c, qat_cfg_section *s, qat_qspec *w, qat_qspec *a)
{
    qat_status st;
    int bits = 0, stoch = a->stochastic;
    if ((st = parse_method(c, s, "weight", QAT_QROLE_WEIGHT, w)) || (st = parse_method(c, s, "act", QAT_QROLE_ACT, a)) ||
        (st = qat_cfg_get_int(c, s, "bits", 0, 1, 16, &bits)))
        return st;
    if (bits) w->bits = a->bits = bits;
    if ((st = qat_cfg_get_int(c, s, "weight_bits", w->bits, 1, 16, &w->bits)) ||
        (st = qat_cfg_get_int(c, s, "act_bits", a->bits, 1, 16, &a->bits)) ||
        (st = qat_cfg_get_bool(c, s, "per_channel", w->per_channel, &w->per_channel)) ||
        (st = qat_cfg_get_bool(c, s, "symmetric", w->symmetric, &w->symmetric)) ||
        (st = qat_cfg_get_bool(c, s, "act_signed", a->signed_act, &a->signed_act)) ||
        (st = qat_cfg_get_enum(c, s, "act_range", range_names, QAT_QRANGE_COUNT, a->range, &a->range)) ||
        (st = qat_cfg_get_float(c, s, "momentum", a->momentum, 0.0f, 1.0f, &a->momentum)) ||
        (st = qat_cfg_get_float(c, s, "ternary_factor", w->ternary_factor, 0.0f, 10.0f, &w->ternary_factor)) ||
        (st = qat_cfg_get_float(c, s, "act_threshold", a->threshold, 0.0f, 100.0f, &a->threshold)) ||
        (st = qat_cfg_get_float(c, s, "pact_alpha", a->alpha, 1e-3f, 1e4f, &a->alpha)) ||
        (st = qat_cfg_get_float(c, s, "pact_decay", a->alpha_decay, 0.0f, 10.0f, &a->alpha_decay)) ||
        (st = qat_cfg_get_float(c, s, "clip", w->clip, -1.0f, 1e6f, &w->clip)) ||
        (st = qat_cfg_get_enum(c, s, "rounding", rounding_names, 2, stoch, &stoch)) ||
        (st = qat_cfg_get_float(c, s, "aqe_alpha", w->aqe_alpha, 0.0f, 1.0f, &w->aqe_alpha)) ||
        (st = qat_cfg_get_float(c, s, "aqe_reach", w->aqe_reach, 0.0f, 1.0f, &w->aqe_reach)) ||
        (st = qat_cfg_get_enum(c, s, "aqe_schedule", aqe_shape_names, QAT_AQE_SHAPE_COUNT, w->aqe_shape,
                               &w->aqe_shape)) ||
        (st = qat_cfg_get_float(c, s, "aqe_delta", w->aqe_delta, 0.0f, 1.0f, &w->aqe_delta)) ||
        (st = qat_cfg_get_float(c, s, "dst_q2", a->dst_q2, 1e-6f, 100.0f, &a->dst_q2)) ||
        (st = qat_cfg_get_int(c, s, "dst_p", w->dst_p, -6, -1, &w->dst_p)) ||
        (st = qat_cfg_get_float(c, s, "dst_th", w->dst_th, 0.0f, 100.0f, &w->dst_th)) ||
        (st = qat_cfg_get_enum(c, s, "dst_init", dst_init_names, QAT_DST_INIT_COUNT, w->dst_init, &w->dst_init)) ||
        (st = qat_cfg_get_enum(c, s, "dst_zero_grad", dst_grad_names, QAT_DST_GRAD_COUNT, a->dst_zero_grad,
                               &a->dst_zero_grad)))
        return st;
    w->dst_q2 = a->dst_q2;
    a->dst_p = w->dst_p;
    a->dst_th = w->dst_th;
    a->aqe_alpha = w->aqe_alpha;
    a->aqe_reach = w->aqe_reach;
    a->aqe_shape = w->aqe_shape;
    a->aqe_delta = w->aqe_delta;
    a->stochastic = w->stochastic = stoch;
    /* both roles share the method-independent settings */
    a->per_channel = 0;
    a->symmetric = w->symmetric;
    a->ternary_factor = w->ternary_factor;
    a->clip = 0;
    w->range = a->range;
    w->momentum = a->momentum;
    w->threshold = a->threshold;
    w->alpha = a->alpha;
    w->alpha_decay = a->alpha_decay;
    w->signed_act = 1;
    const qat_qspec *chk[2] = {w, a};
    for (int i = 0; i < 2; i++) {
        const qat_quantizer *q = chk[i]->q;
        int b = qat_qspec_bits(chk[i]);
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
            n->param->fp[0] = spec->alpha_decay;
        }
        src[nsrc++] = n->param;
    }
    /* buffers: [0, C) scales, [C, 2C) zero points, then method state */
    int shape[1] = {2 * n->channels + 4};
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
    QAT_ASSERT(spec->q && spec->q->owns_weights);
    memset(n, 0, sizeof *n);
    n->spec = *spec;
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
    n->states = calloc(n->out->n, 1);
    if (!n->states) {
        qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for %zu weight states", name, n->out->n);
        return NULL;
    }
    return n->out;
}

void qat_qnode_free(qat_qnode *n)
{
    free(n->states);
    n->states = NULL;
}

void qat_qnode_init(qat_qnode *n, qat_rng *rng)
{
    if (!n->out || n->role == QAT_QROLE_GRAD) return;
    for (size_t i = 0; i < n->buf->n; i++) n->buf->x[i] = 0;
    for (int c = 0; c < n->channels; c++) n->buf->x[c] = 1; /* scales */
    if (n->states) n->spec.q->init_owned(n, n->out->x, rng); /* the layer initialised the float view */
    if (n->spec.q->init) n->spec.q->init(n);
}

void qat_qnode_post_update(qat_qnode *n)
{
    if (!n->out || n->role != QAT_QROLE_WEIGHT || n->spec.clip <= 0 || n->states) return;
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
