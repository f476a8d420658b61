/* optim.c: SGD (momentum, Nesterov), Adam, AdamW and AMSGrad over ranges of
 * one contiguous parameter block, reproducing PyTorch 1.13's single-tensor
 * arithmetic in float. The schedules are in schedule.c. */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One row per optimizer: its name and how many state floats it keeps per
 * parameter (SGD: 1 with momentum, 0 without; decided in state_per_param). */
static const struct {
    const char *name;
    size_t state_per_param;
} optim_table[] = {
    [QAT_OPTIM_SGD] = {"sgd", 1},
    [QAT_OPTIM_ADAM] = {"adam", 2},
    [QAT_OPTIM_ADAMW] = {"adamw", 2},
    [QAT_OPTIM_AMSGRAD] = {"amsgrad", 3},
};
_Static_assert(sizeof optim_table / sizeof optim_table[0] == QAT_OPTIM_COUNT,
               "optim_table needs one row per qat_optim_kind");

static int is_adam_family(qat_optim_kind k)
{
    return k == QAT_OPTIM_ADAM || k == QAT_OPTIM_ADAMW || k == QAT_OPTIM_AMSGRAD;
}

static size_t state_per_param(const qat_optim_cfg *c)
{
    if (c->kind == QAT_OPTIM_SGD && c->momentum == 0.0f)
        return 0;
    return optim_table[c->kind].state_per_param;
}

void qat_optim_cfg_default(qat_optim_cfg *c, qat_optim_kind k)
{
    memset(c, 0, sizeof *c);
    c->kind = k;
    c->momentum = 0.0f;
    c->dampening = 0.0f;
    c->nesterov = 0;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
}

const char *qat_optim_name(qat_optim_kind k)
{
    if ((unsigned)k >= QAT_OPTIM_COUNT)
        return NULL;
    return optim_table[k].name;
}

qat_status qat_optim_parse(const char *name, qat_optim_kind *out)
{
    if (!name)
        return qat_error_set(QAT_ERR_ARG, "optimizer name is NULL");
    for (int k = 0; k < QAT_OPTIM_COUNT; k++) {
        if (strcmp(name, optim_table[k].name) == 0) {
            *out = (qat_optim_kind)k;
            return QAT_OK;
        }
    }
    char valid[128] = "";
    for (int k = 0; k < QAT_OPTIM_COUNT; k++) {
        if (k)
            strncat(valid, ", ", sizeof valid - strlen(valid) - 1);
        strncat(valid, optim_table[k].name, sizeof valid - strlen(valid) - 1);
    }
    return qat_error_set(QAT_ERR_CONFIG, "unknown optimizer '%s' (valid: %s)", name, valid);
}

qat_status qat_optim_cfg_check(const qat_optim_cfg *c)
{
    if (!c)
        return qat_error_set(QAT_ERR_ARG, "optimizer config is NULL");
    if ((unsigned)c->kind >= QAT_OPTIM_COUNT)
        return qat_error_set(QAT_ERR_CONFIG, "optimizer kind %d out of range", (int)c->kind);
    const char *name = optim_table[c->kind].name;
    /* Written as !(in range) so that NaN fails too. */
    if (c->kind == QAT_OPTIM_SGD) {
        if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
            return qat_error_set(QAT_ERR_CONFIG, "sgd: momentum %g must be in [0, 1)", (double)c->momentum);
        if (!(c->dampening >= 0.0f && c->dampening <= 1.0f))
            return qat_error_set(QAT_ERR_CONFIG, "sgd: dampening %g must be in [0, 1]", (double)c->dampening);
        if (c->nesterov && (c->momentum == 0.0f || c->dampening != 0.0f))
            return qat_error_set(QAT_ERR_CONFIG,
                                 "sgd: nesterov needs momentum > 0 and dampening 0 (have momentum %g, dampening %g)",
                                 (double)c->momentum, (double)c->dampening);
        return QAT_OK;
    }
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f))
        return qat_error_set(QAT_ERR_CONFIG, "%s: beta1 %g must be in [0, 1)", name, (double)c->beta1);
    if (!(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return qat_error_set(QAT_ERR_CONFIG, "%s: beta2 %g must be in [0, 1)", name, (double)c->beta2);
    if (!(c->eps >= 0.0f && isfinite(c->eps)))
        return qat_error_set(QAT_ERR_CONFIG, "%s: eps %g must be finite and >= 0", name, (double)c->eps);
    return QAT_OK;
}

qat_status qat_optim_init(qat_optim *o, const qat_optim_cfg *cfg, size_t n)
{
    memset(o, 0, sizeof *o);
    qat_status s = qat_optim_cfg_check(cfg);
    if (s != QAT_OK)
        return s;
    size_t per = state_per_param(cfg);
    if (per && n > SIZE_MAX / sizeof(float) / per)
        return qat_error_set(QAT_ERR_MEMORY, "optimizer state for %zu parameters overflows size_t", n);
    float *block = NULL;
    if (per * n > 0) {
        block = calloc(per * n, sizeof(float));
        if (!block)
            return qat_error_set(QAT_ERR_MEMORY, "optimizer state: cannot allocate %zu floats", per * n);
    }
    o->cfg = *cfg;
    o->n = n;
    if (!block)
        return QAT_OK; /* nothing to point at (and NULL + 0 is undefined) */
    if (per >= 1)
        o->m = block;
    if (per >= 2)
        o->v = block + n;
    if (per >= 3)
        o->vmax = block + 2 * n;
    return QAT_OK;
}

void qat_optim_free(qat_optim *o)
{
    if (!o)
        return;
    free(o->m); /* m is the start of the one block whenever there is one */
    memset(o, 0, sizeof *o);
}

size_t qat_optim_state_floats(const qat_optim *o)
{
    return state_per_param(&o->cfg) * o->n;
}

float *qat_optim_state(qat_optim *o)
{
    return o->m;
}

/* The float a config holds (0.999f = 0.99900001287...) read back as the
 * shortest decimal that rounds to it (0.999), which is the double PyTorch
 * would use. Without this, 1 - beta2^t is off by 1e-5 relative at t = 1. */
static double as_decimal(float x)
{
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x)
            return strtod(buf, NULL);
    }
    return (double)x;
}

void qat_optim_begin_step(qat_optim *o)
{
    qat_optim_step_consts *k = &o->k;
    o->t += 1;
    k->beta1 = as_decimal(o->cfg.beta1);
    k->beta2 = as_decimal(o->cfg.beta2);
    /* PyTorch forms these in Python doubles and rounds to float in the kernel. */
    k->bc1 = 1.0 - pow(k->beta1, (double)o->t);
    k->bc2 = 1.0 - pow(k->beta2, (double)o->t);
    k->one_minus_beta1 = (float)(1.0 - k->beta1);
    k->one_minus_beta2 = (float)(1.0 - k->beta2);
    k->one_minus_dampening = (float)(1.0 - as_decimal(o->cfg.dampening));
    k->bc2_sqrt = (float)sqrt(k->bc2);
}

/* ---- kernels ------------------------------------------------------------
 * In place on w[0..n). Each is a single loop without data-dependent
 * branches; the int flags are constants at every call site, so the inlined
 * copies lose them. Operation order copies PyTorch's (e.g. addcmul is
 * v + (c*g)*g), so results agree to an ulp or so (PyTorch fuses a + alpha*b
 * into an FMA where the CPU has one; we do not, for portable determinism). */

static inline void sgd_plain(size_t n, float *restrict w, const float *restrict g, float lr, float wd)
{
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * w[i];
        w[i] = w[i] - lr * d;
    }
}

static inline void sgd_momentum(size_t n, float *restrict w, const float *restrict g, float *restrict buf,
                                float lr, float wd, float mom, float one_minus_damp, int first, int nesterov)
{
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * w[i];
        float b = first ? d : mom * buf[i] + one_minus_damp * d;
        buf[i] = b;
        float step = nesterov ? d + mom * b : b;
        w[i] = w[i] - lr * step;
    }
}

/* Adam, AdamW and (with vmax) AMSGrad in one loop: AdamW is decay < 1 with
 * l2 = 0, Adam is decay = 1 (w*1 is exact) with l2 = wd. The loop
 * vectorizes only with -fno-math-errno (meson.build sets it): otherwise
 * sqrtf must be able to set errno, element by element. */
static inline void adam(size_t n, float *restrict w, const float *restrict g, float *restrict m,
                        float *restrict v, float *restrict vmax, int ams, float decay, float l2,
                        float b1, float omb1, float b2, float omb2, float step_size, float bc2_sqrt,
                        float eps)
{
    for (size_t i = 0; i < n; i++) {
        float wi = w[i] * decay;
        float gi = g[i] + l2 * wi;
        float mi = m[i] * b1 + omb1 * gi;
        float vi = v[i] * b2 + omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float vd = vi;
        if (ams) {
            /* torch.maximum: vd = max(vmax, v), written as a select */
            vd = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = vd;
        }
        float denom = sqrtf(vd) / bc2_sqrt + eps;
        w[i] = wi - step_size * mi / denom;
    }
}

/* Dispatches once on kind for the range [off, off+len) with w already
 * offset (w[0] is parameter off) and g, state offset here. */
static void step_range(qat_optim *o, size_t off, size_t len, float *restrict w, const float *restrict g,
                       float lr, float wd)
{
    const qat_optim_cfg *c = &o->cfg;
    const qat_optim_step_consts *k = &o->k;
    QAT_ASSERT(o->t >= 1); /* begin_step first */
    QAT_ASSERT(off <= o->n && len <= o->n - off);
    if (len == 0)
        return; /* the state pointers may be NULL */
    switch (c->kind) {
    case QAT_OPTIM_SGD:
        if (!o->m) {
            sgd_plain(len, w, g, lr, wd);
        } else {
            float *buf = o->m + off;
            float mom = c->momentum, omd = k->one_minus_dampening;
            int first = o->t == 1;
            if (first && c->nesterov)
                sgd_momentum(len, w, g, buf, lr, wd, mom, omd, 1, 1);
            else if (first)
                sgd_momentum(len, w, g, buf, lr, wd, mom, omd, 1, 0);
            else if (c->nesterov)
                sgd_momentum(len, w, g, buf, lr, wd, mom, omd, 0, 1);
            else
                sgd_momentum(len, w, g, buf, lr, wd, mom, omd, 0, 0);
        }
        break;
    case QAT_OPTIM_ADAM:
    case QAT_OPTIM_ADAMW:
    case QAT_OPTIM_AMSGRAD: {
        int decoupled = c->kind == QAT_OPTIM_ADAMW;
        float decay = decoupled ? (float)(1.0 - (double)lr * (double)wd) : 1.0f;
        float l2 = decoupled ? 0.0f : wd;
        float step_size = (float)((double)lr / k->bc1);
        if (c->kind == QAT_OPTIM_AMSGRAD)
            adam(len, w, g, o->m + off, o->v + off, o->vmax + off, 1, decay, l2, c->beta1, k->one_minus_beta1,
                 c->beta2, k->one_minus_beta2, step_size, k->bc2_sqrt, c->eps);
        else
            adam(len, w, g, o->m + off, o->v + off, NULL, 0, decay, l2, c->beta1, k->one_minus_beta1,
                 c->beta2, k->one_minus_beta2, step_size, k->bc2_sqrt, c->eps);
        break;
    }
    case QAT_OPTIM_COUNT:
    default:
        QAT_ASSERT(!"optimizer kind out of range");
    }
}

void qat_optim_update(qat_optim *o, size_t off, size_t len, float *w, const float *g, float lr, float wd)
{
    if (len == 0)
        return; /* w may be NULL for an empty block */
    step_range(o, off, len, w + off, g + off, lr, wd);
}

void qat_optim_delta(qat_optim *o, size_t off, size_t len, const float *w, const float *g, float lr, float wd,
                     float *delta)
{
    QAT_ASSERT(off <= o->n && len <= o->n - off);
    if (len == 0)
        return;
    /* Run the very same in-place kernel on a copy, then subtract: w_new is
     * bit-identical to what qat_optim_update would store. */
    qat_optim_delta_at(o, off, len, w + off, g + off, lr, wd, delta);
}

void qat_optim_delta_at(qat_optim *o, size_t off, size_t len, const float *w, const float *g, float lr, float wd,
                        float *delta)
{
    QAT_ASSERT(off <= o->n && len <= o->n - off);
    if (len == 0)
        return;
    /* Run the very same in-place kernel on a copy, then subtract: w_new is
     * bit-identical to what qat_optim_update would store. */
    memcpy(delta, w, len * sizeof *delta);
    step_range(o, off, len, delta, g, lr, wd);
    for (size_t i = 0; i < len; i++)
        delta[i] = delta[i] - w[i];
}

void qat_optim_moments(const qat_optim *o, size_t off, size_t len, float *mhat, float *vhat)
{
    QAT_ASSERT(is_adam_family(o->cfg.kind));
    QAT_ASSERT(o->t >= 1);
    QAT_ASSERT(off <= o->n && len <= o->n - off);
    if (len == 0)
        return;
    const float *restrict m = o->m + off;
    const float *restrict v = (o->vmax ? o->vmax : o->v) + off;
    float bc1 = (float)o->k.bc1, bc2 = (float)o->k.bc2;
    for (size_t i = 0; i < len; i++)
        mhat[i] = m[i] / bc1;
    for (size_t i = 0; i < len; i++)
        vhat[i] = v[i] / bc2;
}
