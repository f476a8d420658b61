/* layer.c: the layer-type table, the model (graph + layers + labels) and the
 * parameter initialisers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alq.h"
#include "layers_internal.h"

const char *const qat_init_names[QAT_INIT_COUNT] = {
    [QAT_INIT_TORCH] = "torch",
    [QAT_INIT_GLOROT] = "glorot",
    [QAT_INIT_KAIMING] = "kaiming",
};

const qat_layer_type *const qat_layer_types[] = {
    &qat_layer_conv2d, &qat_layer_linear, &qat_layer_batchnorm, &qat_layer_maxpool,
    &qat_layer_avgpool, &qat_layer_gap, &qat_layer_relu, &qat_layer_hardtanh,
    &qat_layer_dropout, &qat_layer_flatten, &qat_layer_shortcut, &qat_layer_route,
};
const int qat_layer_type_count = (int)(sizeof qat_layer_types / sizeof qat_layer_types[0]);

const qat_layer_type *qat_layer_type_find(const char *section)
{
    for (int i = 0; i < qat_layer_type_count; i++)
        if (strcmp(qat_layer_types[i]->section, section) == 0) return qat_layer_types[i];
    return NULL;
}

qat_status qat_layer_need(qat_cfg *c, qat_cfg_section *s, const char *key, const char *hint)
{
    if (qat_cfg_has(s, key)) return QAT_OK;
    return qat_cfg_error_at(c, s->line, "[%s] needs '%s' (%s)", s->name, key, hint);
}

qat_status qat_layer_parse_init(qat_layer *l, qat_cfg *c, qat_cfg_section *s)
{
    return qat_cfg_get_enum(c, s, "init", qat_init_names, QAT_INIT_COUNT, l->init, &l->init);
}

qat_tensor *qat_layer_param(qat_model *m, qat_layer *l, const char *what, int ndim, const int *shape, int flags)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%s", l->name, what);
    return qat_graph_param(&m->g, name, ndim, shape, flags);
}

qat_status qat_layer_fail(const qat_layer *l)
{
    return qat_error_wrap(QAT_ERR_SHAPE, "%s:%d: layer %d '%s' [%s]", l->file ? l->file : "config", l->line, l->index,
                          l->name, l->type->section);
}

void qat_init_tensor(qat_tensor *t, qat_init_kind kind, int fan_in, int fan_out, qat_rng *r)
{
    double bound;
    switch (kind) {
    case QAT_INIT_GLOROT: bound = sqrt(6.0 / (fan_in + fan_out)); break;
    case QAT_INIT_KAIMING: {
        double sd = sqrt(2.0 / fan_in);
        for (size_t i = 0; i < t->n; i++) t->x[i] = (float)(sd * qat_rng_normal(r));
        return;
    }
    default: bound = 1.0 / sqrt((double)fan_in); break;
    }
    for (size_t i = 0; i < t->n; i++) t->x[i] = (float)((2.0 * qat_rng_uniform(r) - 1.0) * bound);
}

void qat_model_free(qat_model *m)
{
    for (int i = 0; i < m->nlayers; i++) qat_qnode_free(&m->layers[i].wq);
    free(m->owned);
    free(m->class_names);
    qat_graph_free(&m->g);
    free(m->layers);
    free(m->labels);
    memset(m, 0, sizeof *m);
}

qat_status qat_model_build(qat_model *m, qat_layer *layers, int nlayers, int c, int h, int w, int batch,
                           int threads, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->layers = layers;
    m->nlayers = nlayers;
    m->c = c;
    m->h = h;
    m->w = w;
    m->batch = batch;
    qat_status st = qat_graph_init(&m->g, batch, threads, seed);
    if (st != QAT_OK) goto fail;
    m->labels = calloc((size_t)batch, sizeof(int32_t));
    if (!m->labels) {
        st = qat_error_set(QAT_ERR_MEMORY, "model: out of memory");
        goto fail;
    }
    if (nlayers < 1) {
        st = qat_error_set(QAT_ERR_CONFIG, "model: no layers");
        goto fail;
    }
    int shape[4] = {batch, c, h, w};
    m->input = qat_graph_input(&m->g, "input", 4, shape);
    qat_tensor *x = m->input;
    for (int i = 0; i < nlayers; i++) {
        qat_layer *l = &layers[i];
        l->index = i;
        l->in = x;
        st = l->type->build(l, m, x);
        if (st == QAT_OK && !l->out) st = qat_layer_fail(l);
        if (st != QAT_OK) goto fail;
        x = l->out;
    }
    if (x->ndim != 2) {
        char buf[64];
        st = qat_error_set(QAT_ERR_SHAPE, "model: the last layer gives %s; logits must be [batch, classes] (end with [linear])",
                           qat_tensor_shape_str(x, buf, sizeof buf));
        goto fail;
    }
    m->logits = x;
    m->nclass = x->shape[1];
    /* in a quantized model, a convolution on the image sums exactly
     * (exactconv.c), as the integer export computes it (export/lower.c,
     * lower_wide): one with float weights, or with ALQ's multi-bit weights
     * (integers up to 2^15 times 2^-F) giving a float input to the next
     * compute layer */
    int quantized = 0;
    for (int i = 0; i < nlayers; i++) quantized |= layers[i].wspec.q || layers[i].aspec.q;
    for (int i = 0; i < nlayers && quantized; i++) {
        qat_tensor *o = layers[i].out;
        const qat_quantizer *wq = layers[i].wspec.q;
        int nx = i + 1;
        while (nx < nlayers && layers[nx].type != &qat_layer_conv2d && layers[nx].type != &qat_layer_linear) nx++;
        int alq_float_out = wq && !strcmp(wq->name, "alq") && nx < nlayers && !layers[nx].aspec.q;
        if (layers[i].type == &qat_layer_conv2d && (!wq || alq_float_out) && o->op == QAT_OP_CONV2D &&
            o->src[0] == m->input && !o->custom)
            qat_layer_exact_forward(o);
    }
    m->loss = qat_softmax_ce(&m->g, x, m->labels);
    st = qat_graph_compile(&m->g, &m->loss, 1);
    if (st != QAT_OK) goto fail;
    /* a layer whose output the loss does not depend on ([route] or
     * [shortcut] jumped over it) got no memory: it is a config mistake */
    for (int i = 0; i < nlayers; i++)
        if (!layers[i].out->x) {
            qat_layer *l = &layers[i];
            st = qat_error_set(QAT_ERR_CONFIG, "%s:%d: layer %d '%s' [%s]: nothing after it uses its output (a [route] "
                               "or [shortcut] jumps over it); remove it or route to it",
                               l->file ? l->file : "config", l->line, l->index, l->name, l->type->section);
            goto fail;
        }
    qat_rng r;
    qat_rng_seed(&r, seed ^ 0x5eedULL);
    for (int i = 0; i < nlayers; i++) {
        if (layers[i].type->init) layers[i].type->init(&layers[i], &r);
        qat_qnode_init(&layers[i].wq, &r);
        qat_qnode_init(&layers[i].aq, &r);
        qat_qnode_init(&layers[i].oq, &r);
    }
    for (int i = 0; i < nlayers; i++) m->nowned += layers[i].wq.state != NULL;
    if (m->nowned && !(m->owned = calloc((size_t)m->nowned, sizeof *m->owned))) {
        st = qat_error_set(QAT_ERR_MEMORY, "model: out of memory");
        goto fail;
    }
    size_t off = 0; /* the owned optimizer serves them end to end, in layer order */
    for (int i = 0, k = 0; i < nlayers; i++)
        if (layers[i].wq.state) {
            layers[i].wq.owned_off = off;
            off += layers[i].wq.out->n;
            m->owned[k++] = &layers[i].wq;
        }
    return QAT_OK;
fail:
    qat_model_free(m);
    return st;
}

int qat_model_params(const qat_model *m, qat_tensor **out, int cap, int flags)
{
    int n = 0;
    for (int i = 0; i < m->g.nall; i++)
        if (m->g.all[i]->flags & flags) {
            if (n < cap) out[n] = m->g.all[i];
            n++;
        }
    return n;
}

void qat_model_forward(qat_model *m, const float *x, const int32_t *y, int n, int training)
{
    QAT_ASSERT(n >= 1 && n <= m->batch);
    qat_graph_set_batch(&m->g, n);
    qat_graph_set_training(&m->g, training);
    if (x != m->input->x) memcpy(m->input->x, x, sizeof(float) * (size_t)n * m->c * m->h * m->w);
    if (y) memcpy(m->labels, y, sizeof(int32_t) * (size_t)n);
    else memset(m->labels, 0, sizeof(int32_t) * (size_t)n);
    qat_graph_forward(&m->g);
}

void qat_model_predict(const qat_model *m, int n, int32_t *pred)
{
    const float *z = m->logits->x;
    int K = m->nclass;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (z[(size_t)i * K + k] > z[(size_t)i * K + best]) best = k;
        pred[i] = best;
    }
}

qat_status qat_layer_parse_quant(qat_layer *l, qat_cfg *c, qat_cfg_section *s)
{
    l->explicit_w = qat_cfg_has(s, "weight");
    l->explicit_a = qat_cfg_has(s, "act");
    qat_status st = qat_qspec_parse(c, s, &l->wspec, &l->aspec);
    if (st == QAT_OK) st = qat_cfg_get_int(c, s, "grad_bits", l->grad_bits, 0, 16, &l->grad_bits);
    return st;
}

/* the quantized input, weights and output of a conv2d/linear layer */
qat_tensor *qat_layer_weight(qat_model *m, qat_layer *l, int ndim, const int *shape)
{
    if (l->wspec.q && l->wspec.q->owns_weights) {
        char name[64];
        snprintf(name, sizeof name, "%s.weight", l->name);
        return qat_quantize_owned(&m->g, &l->wq, &l->wspec, ndim, shape, name);
    }
    return qat_layer_param(m, l, "weight", ndim, shape, QAT_T_PARAM);
}

qat_tensor *qat_layer_quant_input(qat_model *m, qat_layer *l, qat_tensor *in)
{
    char name[64];
    snprintf(name, sizeof name, "%s.aq", l->name);
    return qat_quantize(&m->g, &l->aq, &l->aspec, QAT_QROLE_ACT, in, name);
}

qat_tensor *qat_layer_quant_weight(qat_model *m, qat_layer *l)
{
    if (l->wspec.q && l->wspec.q->owns_weights) return l->w; /* already the owned weights' float view */
    char name[64];
    snprintf(name, sizeof name, "%s.wq", l->name);
    return qat_quantize(&m->g, &l->wq, &l->wspec, QAT_QROLE_WEIGHT, l->w, name);
}

qat_tensor *qat_layer_quant_output(qat_model *m, qat_layer *l, qat_tensor *out)
{
    char name[64];
    snprintf(name, sizeof name, "%s.gq", l->name);
    out = qat_quantize_grad(&m->g, &l->gq, l->grad_bits, out, name);
    snprintf(name, sizeof name, "%s.oq", l->name);
    return qat_quantize(&m->g, &l->oq, &l->ospec, QAT_QROLE_ACT, out, name);
}

void qat_model_post_update(qat_model *m)
{
    for (int i = 0; i < m->nlayers; i++) qat_qnode_post_update(&m->layers[i].wq);
}

void qat_model_schedule(qat_model *m, long step, long total)
{
    for (int i = 0; i < m->nlayers; i++) {
        qat_qnode *q[3] = {&m->layers[i].wq, &m->layers[i].aq, &m->layers[i].oq};
        for (int k = 0; k < 3; k++)
            if (q[k]->out && q[k]->spec.q->schedule) q[k]->spec.q->schedule(q[k], step, total);
    }
}

static int binary_layer(const qat_layer *l) { return l->wq.out && l->wq.spec.q->binary; }

static int has_weights(const qat_layer *l)
{
    return l->w && (strcmp(l->type->section, "conv2d") == 0 || strcmp(l->type->section, "linear") == 0);
}

double qat_layer_weight_bits(const qat_layer *l)
{
    if (!has_weights(l)) return -1;
    return l->wq.out ? qat_qnode_avg_bits(&l->wq) : 32;
}

int qat_model_weight_storage(const qat_model *m, double *avg_bits, double *bytes, double *float_bytes)
{
    double bits = 0, store = 0, nw = 0;
    int varies = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const qat_layer *l = &m->layers[i];
        if (!has_weights(l)) continue;
        double n = (double)l->w->n;
        nw += n;
        bits += n * qat_layer_weight_bits(l);
        store += l->wq.out ? (double)qat_qnode_storage_bits(&l->wq) : 32 * n;
        varies |= l->wq.out && l->wq.spec.q && l->wq.spec.q->avg_bits;
    }
    *avg_bits = nw > 0 ? bits / nw : 0;
    *bytes = store / 8;
    *float_bytes = 4 * nw;
    return varies;
}

static int alq_layer(const qat_layer *l) { return l->wq.state && l->wq.spec.q == qat_quantizer_find("alq"); }

int qat_model_weight_storage_emptied(const qat_model *m, double *bytes, int *channels)
{
    double store = 0;
    int any = 0, prev_c = 0;
    uint8_t *keep = NULL; /* the previous compute layer's kept output channels, NULL: all */
    *bytes = 0, *channels = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const qat_layer *l = &m->layers[i];
        if (!strcmp(l->type->section, "shortcut") || !strcmp(l->type->section, "route")) {
            free(keep);
            return 0;
        }
        if (!has_weights(l)) continue;
        int cout = l->w->shape[0];
        size_t K = l->w->n / (size_t)cout;
        /* elements of a row per input channel of the previous layer: kh kw, or h w after a flatten */
        size_t per_in = prev_c > 0 && K % (size_t)prev_c == 0 ? K / (size_t)prev_c : 0;
        uint8_t *out = malloc((size_t)cout);
        if (!out) {
            free(keep);
            return 0;
        }
        memset(out, 1, (size_t)cout);
        if (alq_layer(l)) {
            any = 1;
            qat_alq_node a;
            qat_alq_node_get(&l->wq, &a);
            size_t gc = a.gp.per_chan;
            for (int c = 0; c < cout; c++) {
                int bits = 0;
                for (size_t j = 0; j < gc; j++) bits += a.I[(size_t)c * gc + j];
                out[c] = bits > 0;
                *channels += !out[c];
            }
            for (size_t g = 0; g < a.gp.G; g++) {
                if (!out[g / gc]) continue;
                size_t kept = 0;
                for (size_t j = 0; j < a.gp.n; j++) {
                    size_t e = qat_alq_group_offset(&a.gp, g, j) % K;
                    kept += !keep || !per_in || keep[e / per_in];
                }
                if (kept)
                    store += (double)a.I[g] * (double)kept + 32.0 * a.I[g] + (double)qat_alq_lut_bits(a.imax);
            }
        } else {
            size_t kept = K;
            for (int c = 0; keep && per_in && c < prev_c; c++) kept -= keep[c] ? 0 : per_in;
            double wb = l->wq.out ? qat_layer_weight_bits(l) : 32;
            store += wb * (double)kept * (double)cout;
        }
        free(keep);
        keep = out;
        prev_c = cout;
    }
    free(keep);
    *bytes = store / 8;
    return any;
}

size_t qat_model_binary_weights(const qat_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->nlayers; i++)
        if (binary_layer(&m->layers[i])) n += m->layers[i].w->n;
    return n;
}

void qat_model_sign_snapshot(const qat_model *m, uint8_t *snap)
{
    for (int i = 0; i < m->nlayers; i++) {
        const qat_layer *l = &m->layers[i];
        if (!binary_layer(l)) continue;
        for (size_t k = 0; k < l->w->n; k++) *snap++ = l->w->x[k] >= 0;
    }
}

int qat_model_flip_ratios(const qat_model *m, const uint8_t *snap, const qat_layer **layer, float *ratio, int cap)
{
    int n = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const qat_layer *l = &m->layers[i];
        if (!binary_layer(l)) continue;
        size_t flips = 0;
        for (size_t k = 0; k < l->w->n; k++) flips += (uint8_t)(l->w->x[k] >= 0) != *snap++;
        if (n < cap) {
            layer[n] = l;
            ratio[n] = (float)flips / (float)l->w->n;
        }
        n++;
    }
    return n;
}

qat_status qat_model_check_values(const qat_model *m)
{
    for (int i = 0; i < m->g.nall; i++) {
        const qat_tensor *t = m->g.all[i];
        if (!(t->flags & (QAT_T_PARAM | QAT_T_BUFFER))) continue;
        for (size_t k = 0; k < t->n; k++)
            if (!isfinite(t->x[k]))
                return qat_error_set(QAT_ERR_FORMAT, "tensor '%s' element %zu is %s, expected a finite value", t->name, k,
                                     isnan(t->x[k]) ? "NaN" : t->x[k] > 0 ? "+Inf" : "-Inf");
    }
    for (int i = 0; i < m->nlayers; i++) {
        const qat_tensor *v = m->layers[i].rvar;
        for (size_t k = 0; v && k < v->n; k++)
            if (v->x[k] < 0.0f)
                return qat_error_set(QAT_ERR_FORMAT, "tensor '%s' element %zu is %g, expected a variance (>= 0)", v->name, k,
                                     (double)v->x[k]);
    }
    return QAT_OK;
}

int qat_model_owned(const qat_model *m, qat_qnode **out, int cap)
{
    for (int i = 0; i < m->nowned && i < cap; i++) out[i] = m->owned[i];
    return m->nowned;
}

/* the codebook of a node as real values, sorted ascending; returns count */
static int codebook(const qat_qnode *n, float *v, int cap)
{
    qat_levels lv;
    n->spec.q->levels(n, &lv);
    float s = lv.scale ? lv.scale[0] : 1.0f, z = lv.zero ? lv.zero[0] : 0.0f;
    int k = 0;
    if (lv.table)
        for (int i = 0; i < lv.ntable && k < cap; i++) v[k++] = (float)lv.table[i] * s;
    else
        for (int l = lv.lo; l <= lv.hi && k < cap; l += lv.step ? lv.step : 1) v[k++] = ((float)l - z) * s;
    for (int i = 1; i < k; i++) /* insertion sort: tables are short */
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            float t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return k;
}

float qat_qnode_near_level(const qat_qnode *n, const float *x, size_t count, float eps)
{
    float v[512];
    int k = codebook(n, v, 512);
    if (k == 0 || count == 0) return 0;
    size_t near = 0;
    for (size_t i = 0; i < count; i++) {
        /* binary search for the nearest level */
        int lo = 0, hi = k - 1;
        while (hi - lo > 1) {
            int mid = (lo + hi) / 2;
            if (v[mid] <= x[i]) lo = mid;
            else hi = mid;
        }
        float d = fminf(fabsf(x[i] - v[lo]), fabsf(x[i] - v[hi]));
        near += d <= eps;
    }
    return (float)near / (float)count;
}
