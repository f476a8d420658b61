/* activation.c: [relu] and [hardtanh] (min, max). */
#include "layers_internal.h"

static qat_status parse_none(qat_layer *l, qat_cfg *c, qat_cfg_section *s) { return QAT_OK; }

static qat_status build_relu(qat_layer *l, qat_model *m, qat_tensor *in)
{
    l->out = qat_relu(&m->g, in);
    return l->out ? QAT_OK : qat_layer_fail(l);
}

static qat_status parse_hardtanh(qat_layer *l, qat_cfg *c, qat_cfg_section *s)
{
    qat_status st;
    if ((st = qat_cfg_get_float(c, s, "min", -1.0f, -1e6f, 1e6f, &l->lo)) ||
        (st = qat_cfg_get_float(c, s, "max", 1.0f, -1e6f, 1e6f, &l->hi)))
        return st;
    if (!(l->lo < l->hi)) return qat_cfg_error_at(c, s->line, "[hardtanh] needs min < max, got %g and %g", l->lo, l->hi);
    return QAT_OK;
}

static qat_status build_hardtanh(qat_layer *l, qat_model *m, qat_tensor *in)
{
    l->out = qat_hardtanh(&m->g, in, l->lo, l->hi);
    return l->out ? QAT_OK : qat_layer_fail(l);
}

const qat_layer_type qat_layer_relu = {"relu", "relu", parse_none, build_relu, NULL};
const qat_layer_type qat_layer_hardtanh = {"hardtanh", "hardtanh", parse_hardtanh, build_hardtanh, NULL};
