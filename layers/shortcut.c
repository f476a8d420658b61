/* shortcut.c: [shortcut] from = -k adds the output of the layer k places
 * back (darknet's relative index) to the previous layer's output; fewer
 * channels are zero-padded and a larger map is sub-sampled (ResNet option A). */
#include "layers_internal.h"

static qat_status parse(qat_layer *l, qat_cfg *c, qat_cfg_section *s)
{
    qat_status st;
    if ((st = qat_layer_need(c, s, "from", "a negative index: -3 is the output of the layer three back")) ||
        (st = qat_cfg_get_int(c, s, "from", -1, -100000, -1, &l->from)))
        return st;
    return QAT_OK;
}

static qat_status build(qat_layer *l, qat_model *m, qat_tensor *in)
{
    int j = l->index + l->from;
    if (j < -1)
        return qat_error_set(QAT_ERR_CONFIG, "%s:%d: layer %d '%s': from = %d reaches before the input",
                             l->file ? l->file : "config", l->line, l->index, l->name, l->from);
    qat_tensor *other = j == -1 ? m->input : m->layers[j].out;
    l->out = qat_shortcut(&m->g, in, other);
    return l->out ? QAT_OK : qat_layer_fail(l);
}

const qat_layer_type qat_layer_shortcut = {"shortcut", "shortcut", parse, build, NULL};
