/* linear.c: [linear] output, bias, init. Weights [output, inputs]; a 4-d
 * input is read as [N, C*H*W] (flatten is implied). */
#include "layers_internal.h"

static qat_status parse(qat_layer *l, qat_cfg *c, qat_cfg_section *s)
{
    qat_status st;
    if ((st = qat_layer_need(c, s, "output", "number of output features")) ||
        (st = qat_cfg_get_int(c, s, "output", 1, 1, 1 << 24, &l->filters)) ||
        (st = qat_cfg_get_bool(c, s, "bias", 1, &l->bias)) || (st = qat_layer_parse_init(l, c, s)) ||
        (st = qat_layer_parse_quant(l, c, s)))
        return st;
    return QAT_OK;
}

static qat_status build(qat_layer *l, qat_model *m, qat_tensor *in)
{
    int k = (int)(in->n / (size_t)in->shape[0]);
    int ws[2] = {l->filters, k}, bs[1] = {l->filters};
    l->w = qat_layer_weight(m, l, 2, ws);
    l->b = l->bias ? qat_layer_param(m, l, "bias", 1, bs, QAT_T_PARAM | QAT_T_NO_DECAY) : NULL;
    l->out = qat_linear(&m->g, qat_layer_quant_input(m, l, in), qat_layer_quant_weight(m, l), l->b);
    l->out = qat_layer_quant_output(m, l, l->out);
    if (!l->out) return qat_layer_fail(l);
    l->macs = (long long)l->filters * k;
    return QAT_OK;
}

static void init(qat_layer *l, qat_rng *r)
{
    int fan_in = l->w->shape[1];
    qat_init_tensor(l->w, l->init, fan_in, l->filters, r);
    if (l->b) qat_init_tensor(l->b, QAT_INIT_TORCH, fan_in, l->filters, r);
}

const qat_layer_type qat_layer_linear = {"linear", "fc", parse, build, init};
