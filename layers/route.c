/* route.c: [route] layers = -k makes the output of the layer k places back
 * (or of layer k, counted from 0, for k >= 0) the input of the next layer:
 * a branch off the main path, as darknet's [route]. With [shortcut] it
 * writes ResNet's projection shortcut (1x1 conv + BN on the skip path). */
#include "layers_internal.h"

static qat_status parse(qat_layer *l, qat_cfg *c, qat_cfg_section *s)
{
    qat_status st;
    int v[2], n = 0;
    if ((st = qat_layer_need(c, s, "layers", "the layer whose output to take: -4 is four layers back, 0 the first")) ||
        (st = qat_cfg_get_int_list(c, s, "layers", v, 2, &n)))
        return st;
    if (n != 1)
        return qat_cfg_error_at(c, s->line, "[route] layers: %d layers given, expected one (concatenation is not "
                                "supported)", n);
    l->from = v[0];
    return QAT_OK;
}

static qat_status build(qat_layer *l, qat_model *m, qat_tensor *in)
{
    (void)in;
    int j = l->from < 0 ? l->index + l->from : l->from;
    if (j < -1 || j >= l->index)
        return qat_error_set(QAT_ERR_CONFIG, "%s:%d: layer %d '%s': layers = %d is %s; expected an earlier layer "
                             "(-1 .. -%d, or 0 .. %d)",
                             l->file ? l->file : "config", l->line, l->index, l->name, l->from,
                             j < -1 ? "before the input" : "not an earlier layer", l->index + 1, l->index - 1);
    l->out = j == -1 ? m->input : m->layers[j].out;
    return QAT_OK;
}

const qat_layer_type qat_layer_route = {"route", "route", parse, build, NULL};
