/* conv2d.c: [conv2d] filters, size, stride, pad, bias, init. Weights
 * [filters, in_channels, size, size]; optional bias per filter. */
#include <stdlib.h>
#include <string.h>

#include "layers_internal.h"

static qat_status parse(qat_layer *l, qat_cfg *c, qat_cfg_section *s)
{
    qat_status st;
    if ((st = qat_layer_need(c, s, "filters", "number of output channels")) ||
        (st = qat_layer_need(c, s, "size", "kernel size")) ||
        (st = qat_cfg_get_int(c, s, "filters", 1, 1, 65536, &l->filters)) ||
        (st = qat_cfg_get_int(c, s, "size", 3, 1, 64, &l->size)) ||
        (st = qat_cfg_get_int(c, s, "stride", 1, 1, 64, &l->stride)) ||
        (st = qat_cfg_get_int(c, s, "pad", 0, 0, 64, &l->pad)) ||
        (st = qat_cfg_get_bool(c, s, "bias", 1, &l->bias)) || (st = qat_layer_parse_init(l, c, s)) ||
        (st = qat_layer_parse_quant(l, c, s)))
        return st;
    return QAT_OK;
}

static qat_status build(qat_layer *l, qat_model *m, qat_tensor *in)
{
    if (in->ndim != 4)
        return qat_error_set(QAT_ERR_SHAPE, "%s:%d: layer %d '%s': [conv2d] needs a [N, C, H, W] input",
                             l->file ? l->file : "config", l->line, l->index, l->name);
    int ws[4] = {l->filters, in->shape[1], l->size, l->size}, bs[1] = {l->filters};
    l->w = qat_layer_weight(m, l, 4, ws);
    l->b = l->bias ? qat_layer_param(m, l, "bias", 1, bs, QAT_T_PARAM | QAT_T_NO_DECAY) : NULL;
    l->out = qat_conv2d(&m->g, qat_layer_quant_input(m, l, in), qat_layer_quant_weight(m, l), l->b, l->stride, l->stride, l->pad, l->pad);
    /* +-1 times +-1: the same sums, exactly, from XOR-popcount (QAT_BINARY_FORWARD=0: float, for comparison) */
    const char *bf = getenv("QAT_BINARY_FORWARD");
    if (l->out && qat_layer_binary_forward_ok(&l->wspec, &l->aspec) && !(bf && strcmp(bf, "0") == 0))
        qat_layer_binary_forward(l->out);
    l->out = qat_layer_quant_output(m, l, l->out);
    if (!l->out) return qat_layer_fail(l);
    l->macs = (long long)l->filters * in->shape[1] * l->size * l->size * l->out->shape[2] * l->out->shape[3];
    return QAT_OK;
}

static void init(qat_layer *l, qat_rng *r)
{
    int fan_in = l->w->shape[1] * l->size * l->size, fan_out = l->filters * l->size * l->size;
    qat_init_tensor(l->w, l->init, fan_in, fan_out, r);
    if (l->b) qat_init_tensor(l->b, QAT_INIT_TORCH, fan_in, fan_out, r);
}

const qat_layer_type qat_layer_conv2d = {"conv2d", "conv", parse, build, init};
