/* flatten.c: [flatten] [N, C, H, W] -> [N, C*H*W], sharing memory. */
#include "layers_internal.h"

static qat_status parse(qat_layer *l, qat_cfg *c, qat_cfg_section *s) { return QAT_OK; }

static qat_status build(qat_layer *l, qat_model *m, qat_tensor *in)
{
    l->out = qat_flatten(&m->g, in);
    return l->out ? QAT_OK : qat_layer_fail(l);
}

const qat_layer_type qat_layer_flatten = {"flatten", "flatten", parse, build, NULL};
