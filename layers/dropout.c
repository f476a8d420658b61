/* dropout.c: [dropout] p (inverted dropout; identity in eval). */
#include "layers_internal.h"

static qat_status parse(qat_layer *l, qat_cfg *c, qat_cfg_section *s)
{
    return qat_cfg_get_float(c, s, "p", 0.5f, 0.0f, 0.99f, &l->p);
}

static qat_status build(qat_layer *l, qat_model *m, qat_tensor *in)
{
    l->out = qat_dropout(&m->g, in, l->p);
    return l->out ? QAT_OK : qat_layer_fail(l);
}

const qat_layer_type qat_layer_dropout = {"dropout", "dropout", parse, build, NULL};
