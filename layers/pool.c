/* pool.c: [maxpool] and [avgpool] (size, stride = size, pad) and
 * [global_avgpool] (gives [N, C]). */
#include "layers_internal.h"

static qat_status parse(qat_layer *l, qat_cfg *c, qat_cfg_section *s)
{
    qat_status st;
    if ((st = qat_cfg_get_int(c, s, "size", 2, 1, 64, &l->size)) ||
        (st = qat_cfg_get_int(c, s, "stride", l->size, 1, 64, &l->stride)) ||
        (st = qat_cfg_get_int(c, s, "pad", 0, 0, 32, &l->pad)))
        return st;
    if (2 * l->pad > l->size) return qat_cfg_error_at(c, s->line, "[%s] pad %d is more than half of size %d", s->name, l->pad, l->size);
    return QAT_OK;
}

static qat_status build_max(qat_layer *l, qat_model *m, qat_tensor *in)
{
    l->out = qat_maxpool2d(&m->g, in, l->size, l->stride, l->pad);
    return l->out ? QAT_OK : qat_layer_fail(l);
}

static qat_status build_avg(qat_layer *l, qat_model *m, qat_tensor *in)
{
    l->out = qat_avgpool2d(&m->g, in, l->size, l->stride, l->pad);
    return l->out ? QAT_OK : qat_layer_fail(l);
}

static qat_status parse_none(qat_layer *l, qat_cfg *c, qat_cfg_section *s) { return QAT_OK; }

static qat_status build_gap(qat_layer *l, qat_model *m, qat_tensor *in)
{
    l->out = qat_gap(&m->g, in);
    return l->out ? QAT_OK : qat_layer_fail(l);
}

const qat_layer_type qat_layer_maxpool = {"maxpool", "maxpool", parse, build_max, NULL};
const qat_layer_type qat_layer_avgpool = {"avgpool", "avgpool", parse, build_avg, NULL};
const qat_layer_type qat_layer_gap = {"global_avgpool", "gap", parse_none, build_gap, NULL};
