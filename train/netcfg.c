/* netcfg.c: reads [net] and the layer sections of a model config. Layer
 * keys are read by each layer type's parse function (layers/). */
#include "netcfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

typedef struct {
    const char *name;
    int c, h, w, nclass;
} dataset_shape;

static const dataset_shape datasets[] = {
    {"mnist", 1, 28, 28, 10},
    {"fashion-mnist", 1, 28, 28, 10},
};

qat_status qat_netcfg_dataset(const char *name, int *c, int *h, int *w, int *nclass)
{
    for (size_t i = 0; i < sizeof datasets / sizeof datasets[0]; i++)
        if (strcmp(datasets[i].name, name) == 0) {
            *c = datasets[i].c;
            *h = datasets[i].h;
            *w = datasets[i].w;
            *nclass = datasets[i].nclass;
            return QAT_OK;
        }
    return qat_error_set(QAT_ERR_CONFIG, "unknown dataset '%s' (known: mnist, fashion-mnist)", name);
}

static const char *const optim_names[QAT_OPTIM_COUNT] = {"sgd", "adam", "adamw", "amsgrad"};
static const char *const sched_names[QAT_SCHED_COUNT] = {"constant", "step", "multistep", "exp", "cosine"};

static qat_status read_net(qat_cfg *c, qat_cfg_section *s, qat_net_cfg *n)
{
    qat_status st;
    const char *ds;
    memset(n, 0, sizeof *n);
    if ((st = qat_cfg_get_str(c, s, "dataset", "mnist", &ds))) return st;
    if (qat_netcfg_dataset(ds, &n->c, &n->h, &n->w, &n->nclass) != QAT_OK) {
        int line = s->line;
        for (int i = 0; i < s->nkv; i++)
            if (strcmp(s->kv[i].key, "dataset") == 0) line = s->kv[i].line;
        return qat_cfg_error_at(c, line, "[net] dataset '%s' is not known (known: mnist, fashion-mnist)", ds);
    }
    snprintf(n->dataset, sizeof n->dataset, "%s", ds);
    int optim = QAT_OPTIM_ADAM, sched = QAT_SCHED_CONSTANT, seed = 1;
    float lr;
    if ((st = qat_cfg_get_int(c, s, "batch", 128, 1, 65536, &n->batch)) ||
        (st = qat_cfg_get_int(c, s, "epochs", 10, 1, 100000, &n->epochs)) ||
        (st = qat_cfg_get_int(c, s, "val", 0, 0, 1 << 30, &n->val)) ||
        (st = qat_cfg_get_bool(c, s, "shuffle", 1, &n->shuffle)) ||
        (st = qat_cfg_get_int(c, s, "seed", 1, 0, 2147483647, &seed)) ||
        (st = qat_cfg_get_enum(c, s, "optimizer", optim_names, QAT_OPTIM_COUNT, QAT_OPTIM_ADAM, &optim)) ||
        (st = qat_cfg_get_float(c, s, "lr", 1e-3f, 0.0f, 100.0f, &lr)) ||
        (st = qat_cfg_get_float(c, s, "weight_decay", 0.0f, 0.0f, 10.0f, &n->weight_decay)) ||
        (st = qat_cfg_get_bool(c, s, "decay_all", 1, &n->decay_all)) ||
        (st = qat_cfg_get_enum(c, s, "schedule", sched_names, QAT_SCHED_COUNT, QAT_SCHED_CONSTANT, &sched)) ||
        (st = qat_cfg_get_enum(c, s, "init", qat_init_names, QAT_INIT_COUNT, QAT_INIT_TORCH, &n->init)) ||
        (st = qat_cfg_get_int_list(c, s, "histograms", n->hist_epochs, 32, &n->nhist)))
        return st;
    n->seed = (uint64_t)seed;
    qat_optim_cfg_default(&n->optim, (qat_optim_kind)optim);
    int nesterov = 0;
    if ((st = qat_cfg_get_float(c, s, "momentum", n->optim.momentum, 0.0f, 0.9999f, &n->optim.momentum)) ||
        (st = qat_cfg_get_float(c, s, "dampening", n->optim.dampening, 0.0f, 1.0f, &n->optim.dampening)) ||
        (st = qat_cfg_get_bool(c, s, "nesterov", 0, &nesterov)) ||
        (st = qat_cfg_get_float(c, s, "beta1", n->optim.beta1, 0.0f, 0.99999f, &n->optim.beta1)) ||
        (st = qat_cfg_get_float(c, s, "beta2", n->optim.beta2, 0.0f, 0.99999999f, &n->optim.beta2)) ||
        (st = qat_cfg_get_float(c, s, "eps", n->optim.eps, 0.0f, 1.0f, &n->optim.eps)))
        return st;
    n->optim.nesterov = nesterov;
    if (qat_optim_cfg_check(&n->optim) != QAT_OK) return qat_cfg_error_at(c, s->line, "[net] %s", qat_last_error());

    qat_sched_default(&n->sched, (qat_sched_kind)sched, lr);
    n->sched.total_epochs = n->epochs;
    if ((st = qat_cfg_get_float(c, s, "gamma", n->sched.gamma, 1e-6f, 1.0f, &n->sched.gamma)) ||
        (st = qat_cfg_get_int(c, s, "step_size", n->sched.step_size, 1, 100000, &n->sched.step_size)) ||
        (st = qat_cfg_get_int_list(c, s, "milestones", n->sched.milestones, QAT_SCHED_MAX_MILESTONES,
                                   &n->sched.nmilestones)) ||
        (st = qat_cfg_get_float(c, s, "min_lr", 0.0f, 0.0f, lr, &n->sched.min_lr)) ||
        (st = qat_cfg_get_int(c, s, "warmup_epochs", 0, 0, 100000, &n->sched.warmup_epochs)) ||
        (st = qat_cfg_get_float(c, s, "warmup_start", n->sched.warmup_start, 0.0f, 1.0f, &n->sched.warmup_start)))
        return st;
    if (qat_sched_check(&n->sched) != QAT_OK) return qat_cfg_error_at(c, s->line, "[net] %s", qat_last_error());

    float dm[3], dsd[3];
    if (qat_data_default_norm(n->dataset, dm, dsd, n->c) != QAT_OK) {
        for (int i = 0; i < 3; i++) dm[i] = 0, dsd[i] = 1;
    }
    for (int i = 0; i < 3; i++) {
        n->mean[i] = dm[i];
        n->std[i] = dsd[i];
    }
    if ((st = qat_cfg_get_float(c, s, "mean", n->mean[0], -1e3f, 1e3f, &n->mean[0])) ||
        (st = qat_cfg_get_float(c, s, "std", n->std[0], 1e-6f, 1e3f, &n->std[0])))
        return st;
    for (int i = 1; i < n->c; i++)
        if (qat_cfg_has(s, "mean")) n->mean[i] = n->mean[0];
    for (int i = 1; i < n->c; i++)
        if (qat_cfg_has(s, "std")) n->std[i] = n->std[0];
    return qat_cfg_check_unused(c, s);
}

static const char *const policy_names[2] = {"float", "quantized"};

static qat_status read_quant(qat_cfg *c, qat_cfg_section *s, qat_net_cfg *n)
{
    qat_status st;
    if ((st = qat_qspec_parse(c, s, &n->qw, &n->qa)) ||
        (st = qat_cfg_get_int(c, s, "grad_bits", 0, 0, 16, &n->grad_bits)) ||
        (st = qat_cfg_get_enum(c, s, "first_input", policy_names, 2, 0, &n->first_input_quantized)) ||
        (st = qat_cfg_get_enum(c, s, "last_weight", policy_names, 2, 1, &n->last_weight_quantized)) ||
        (st = qat_cfg_get_enum(c, s, "last_output", policy_names, 2, 0, &n->last_output_quantized)))
        return st;
    return qat_cfg_check_unused(c, s);
}

static int quantizable(const qat_layer *l)
{
    return strcmp(l->type->section, "conv2d") == 0 || strcmp(l->type->section, "linear") == 0;
}

/* first input float, last weights float or quantized, last output: the
 * papers differ, so [quant] chooses; a layer's own weight=/act= wins */
static void apply_policies(qat_layer *ls, int n, const qat_net_cfg *net)
{
    int first = -1, last = -1;
    for (int i = 0; i < n; i++)
        if (quantizable(&ls[i])) {
            if (first < 0) first = i;
            last = i;
        }
    if (first >= 0 && !net->first_input_quantized && !ls[first].explicit_a) ls[first].aspec.q = NULL;
    if (last >= 0 && !net->last_weight_quantized && !ls[last].explicit_w) ls[last].wspec.q = NULL;
    if (last >= 0 && net->last_output_quantized) ls[last].ospec = net->qa;
}

qat_status qat_netcfg_read(qat_cfg *c, qat_net_cfg *net, qat_layer **layers, int *nlayers)
{
    *layers = NULL;
    *nlayers = 0;
    if (c->nsec == 0 || strcmp(c->sec[0].name, "net") != 0)
        return qat_cfg_error_at(c, c->nsec ? c->sec[0].line : 1, "the first section must be [net]");
    qat_status st = read_net(c, &c->sec[0], net);
    if (st != QAT_OK) return st;
    qat_qspec_default(&net->qw);
    qat_qspec_default(&net->qa);
    net->last_weight_quantized = 1;
    int first_layer = 1;
    if (c->nsec > 1 && strcmp(c->sec[1].name, "quant") == 0) {
        if ((st = read_quant(c, &c->sec[1], net))) return st;
        first_layer = 2;
    }
    int n = c->nsec - first_layer;
    if (n == 0) return qat_cfg_error_at(c, c->sec[0].line, "no layers after [net]");
    qat_layer *ls = calloc((size_t)n, sizeof *ls);
    if (!ls) return qat_error_set(QAT_ERR_MEMORY, "config: out of memory");
    int counts[64] = {0};
    for (int i = 0; i < n; i++) {
        qat_cfg_section *s = &c->sec[i + first_layer];
        qat_layer *l = &ls[i];
        if (strcmp(s->name, "quant") == 0) {
            st = qat_cfg_error_at(c, s->line, "[quant] must come right after [net], before the layers");
            goto fail;
        }
        l->type = qat_layer_type_find(s->name);
        if (!l->type) {
            char known[512] = "";
            for (int k = 0; k < qat_layer_type_count; k++) {
                strncat(known, k ? ", " : "", sizeof known - strlen(known) - 1);
                strncat(known, qat_layer_types[k]->section, sizeof known - strlen(known) - 1);
            }
            st = qat_cfg_error_at(c, s->line, "unknown section [%s] (layer sections: %s)", s->name, known);
            goto fail;
        }
        int ti = (int)(l->type - qat_layer_types[0]);
        for (int k = 0; k < qat_layer_type_count; k++)
            if (qat_layer_types[k] == l->type) ti = k;
        l->index = i;
        l->line = s->line;
        l->file = c->path;
        l->init = net->init;
        l->wspec = net->qw;
        l->aspec = net->qa;
        l->grad_bits = net->grad_bits;
        const char *name;
        if ((st = qat_cfg_get_str(c, s, "name", NULL, &name))) goto fail;
        if (name) {
            if (strlen(name) >= sizeof l->name || strchr(name, '.')) {
                st = qat_cfg_error_at(c, s->line, "[%s] name '%s' must be shorter than %zu characters, without '.'",
                                      s->name, name, sizeof l->name);
                goto fail;
            }
            snprintf(l->name, sizeof l->name, "%s", name);
        } else {
            snprintf(l->name, sizeof l->name, "%s%d", l->type->prefix, ++counts[ti]);
        }
        for (int k = 0; k < i; k++)
            if (strcmp(ls[k].name, l->name) == 0) {
                st = qat_cfg_error_at(c, s->line, "layer name '%s' is already used by line %d", l->name, ls[k].line);
                goto fail;
            }
        if ((st = l->type->parse(l, c, s)) || (st = qat_cfg_check_unused(c, s))) goto fail;
    }
    apply_policies(ls, n, net);
    *layers = ls;
    *nlayers = n;
    return QAT_OK;
fail:
    free(ls);
    return st;
}
