/* batchnorm.c: [batchnorm] eps, momentum. BatchNorm1d on [N, C] and
 * BatchNorm2d on [N, C, H, W]: weight 1, bias 0, running mean 0, var 1. */
#include <math.h>
#include <stdio.h>

#include "layers_internal.h"

static qat_status parse(qat_layer *l, qat_cfg *c, qat_cfg_section *s)
{
    qat_status st;
    if ((st = qat_cfg_get_float(c, s, "eps", 1e-5f, 1e-12f, 1.0f, &l->eps)) ||
        (st = qat_cfg_get_float(c, s, "momentum", 0.1f, 0.0f, 1.0f, &l->momentum)))
        return st;
    return QAT_OK;
}

static qat_status build(qat_layer *l, qat_model *m, qat_tensor *in)
{
    int cs[1] = {in->shape[1]};
    l->gamma = qat_layer_param(m, l, "weight", 1, cs, QAT_T_PARAM | QAT_T_NO_DECAY);
    l->beta = qat_layer_param(m, l, "bias", 1, cs, QAT_T_PARAM | QAT_T_NO_DECAY);
    l->rmean = qat_layer_param(m, l, "running_mean", 1, cs, QAT_T_BUFFER);
    l->rvar = qat_layer_param(m, l, "running_var", 1, cs, QAT_T_BUFFER);
    l->out = qat_batchnorm(&m->g, in, l->gamma, l->beta, l->rmean, l->rvar, l->eps, l->momentum);
    if (!l->out) return qat_layer_fail(l);
    snprintf(l->out->name, sizeof l->out->name, "%s", l->name); /* a failed sync_bn exchange names it */
    return QAT_OK;
}

static void init(qat_layer *l, qat_rng *r)
{
    for (size_t i = 0; i < l->gamma->n; i++) {
        l->gamma->x[i] = 1;
        l->beta->x[i] = 0;
        l->rmean->x[i] = 0;
        l->rvar->x[i] = 1;
    }
}

const qat_layer_type qat_layer_batchnorm = {"batchnorm", "bn", parse, build, init};

void qat_batchnorm_affine(const qat_layer *l, float *a, float *b)
{
    for (int c = 0; c < l->gamma->shape[0]; c++) { /* as the batchnorm op computes them in eval mode */
        float invstd = (float)(1.0 / sqrt((double)l->rvar->x[c] + l->eps));
        a[c] = l->gamma->x[c] * invstd;
        b[c] = l->beta->x[c] - l->rmean->x[c] * a[c];
    }
}
