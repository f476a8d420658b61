/* netcfg.c: reads [net] and the layer sections of a model config. Layer
 * keys are read by each layer type's parse function (layers/); what a
 * dataset is (shape, classes, normalisation) comes from data/'s table. */
#include "netcfg.h"

#include "gradcomm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int key_line(const qat_cfg_section *s, const char *key)
{
    for (int i = 0; i < s->nkv; i++)
        if (strcmp(s->kv[i].key, key) == 0) return s->kv[i].line;
    return s->line;
}

static const char *const label_names[2] = {"fine", "coarse"};
/* keys that describe the images of a folder; other sets fix their own */
static const char *const shape_keys[5] = {"image_size", "width", "height", "channels", "resize"};

/* dataset, labels and the folder's image keys: what data/ needs to read the
 * set, and the shape the model is built for */
static qat_status read_dataset(qat_cfg *c, qat_cfg_section *s, qat_net_cfg *n)
{
    qat_status st;
    const char *ds;
    qat_dataset_info info;
    if ((st = qat_cfg_get_str(c, s, "dataset", "mnist", &ds))) return st;
    if (qat_data_info(ds, NULL, &info) != QAT_OK) { /* known names fit n->dataset */
        const char *why = qat_last_error(), *u = strstr(why, "unknown dataset");
        return qat_cfg_error_at(c, key_line(s, "dataset"), "[net] dataset '%s' is not known (%s)", ds,
                                u ? u : why);
    }
    snprintf(n->dataset, sizeof n->dataset, "%s", ds);
    int labels = 0;
    if ((st = qat_cfg_get_enum(c, s, "labels", label_names, 2, 0, &labels))) return st;
    if (labels && !info.coarse_nclass)
        return qat_cfg_error_at(c, key_line(s, "labels"),
                                "[net] labels = coarse: %s has one set of labels (only cifar100 has coarse ones)", ds);
    n->data.coarse = labels;
    if (info.shape_from_opts) {
        int size, ch;
        if ((st = qat_cfg_get_int(c, s, "image_size", 32, 1, 4096, &size)) ||
            (st = qat_cfg_get_int(c, s, "width", size, 1, 4096, &n->data.w)) ||
            (st = qat_cfg_get_int(c, s, "height", size, 1, 4096, &n->data.h)) ||
            (st = qat_cfg_get_int(c, s, "channels", 3, 1, 3, &ch)) ||
            (st = qat_cfg_get_bool(c, s, "resize", 0, &n->data.resize)))
            return st;
        if (ch == 2) return qat_cfg_error_at(c, key_line(s, "channels"), "[net] channels = 2: expected 1 (grey) or 3 (RGB)");
        n->data.c = ch;
    } else {
        for (int i = 0; i < 5; i++)
            if (qat_cfg_has(s, shape_keys[i]))
                return qat_cfg_error_at(c, key_line(s, shape_keys[i]),
                                        "[net] %s applies to dataset = folder only (%s images are %dx%dx%d)",
                                        shape_keys[i], ds, info.c, info.h, info.w);
    }
    if (qat_data_info(ds, &n->data, &info) != QAT_OK)
        return qat_cfg_error_at(c, s->line, "[net] %s", qat_last_error());
    n->c = info.c;
    n->h = info.h;
    n->w = info.w;
    n->nclass = info.nclass;
    return QAT_OK;
}

/* mean = r, g, b (or one value for every channel), the same for std */
static qat_status read_norm(qat_cfg *c, qat_cfg_section *s, qat_net_cfg *n)
{
    qat_status st;
    if ((st = qat_data_default_norm(n->dataset, n->mean, n->std, n->c))) return st;
    for (int i = n->c; i < 3; i++) {
        n->mean[i] = n->mean[0];
        n->std[i] = n->std[0];
    }
    static const char *const keys[2] = {"mean", "std"};
    const float lo[2] = {-1e3f, 1e-6f};
    float *dst[2] = {n->mean, n->std};
    for (int k = 0; k < 2; k++) {
        float v[3];
        int got;
        if ((st = qat_cfg_get_float_list(c, s, keys[k], lo[k], 1e3f, v, 3, &got))) return st;
        if (got == 0) continue;
        if (got != 1 && got != n->c)
            return qat_cfg_error_at(c, key_line(s, keys[k]),
                                    "[net] %s has %d values, expected 1 (every channel) or %d (one per channel)",
                                    keys[k], got, n->c);
        for (int i = 0; i < 3; i++) dst[k][i] = v[got == 1 || i >= got ? 0 : i];
    }
    return QAT_OK;
}

static const char *const nonfinite_names[QAT_NONFINITE_COUNT] = {"stop", "skip_step"};
static const char *const optim_names[QAT_OPTIM_COUNT] = {"sgd", "adam", "adamw", "amsgrad"};
static const char *const sched_names[QAT_SCHED_COUNT] = {"constant", "step", "multistep", "exp", "cosine", "phases"};

/* schedule = phases: `phases` (a round), `rounds`, `post_phases`; the run's
 * epochs follow from them ("epochs", if given, must agree) */
static qat_status read_phases(qat_cfg *c, qat_cfg_section *s, qat_net_cfg *n)
{
    qat_status st;
    qat_sched *q = &n->sched;
    const char *text = NULL;
    if ((st = qat_cfg_get_str(c, s, "phases", "", &text))) return st;
    if (*text && qat_sched_phases_parse(text, q->phase, QAT_SCHED_MAX_PHASES, &q->nphases))
        return qat_cfg_error_at(c, s->line, "[net] phases: %s", qat_last_error());
    if ((st = qat_cfg_get_int(c, s, "rounds", q->nphases ? 1 : 0, 0, 1000, &q->rounds)) ||
        (st = qat_cfg_get_str(c, s, "post_phases", "", &text)))
        return st;
    if (*text && qat_sched_phases_parse(text, q->post, QAT_SCHED_MAX_PHASES, &q->npost))
        return qat_cfg_error_at(c, s->line, "[net] post_phases: %s", qat_last_error());
    if (q->nphases + q->npost == 0)
        return qat_cfg_error_at(c, s->line, "[net] schedule = phases needs 'phases' (with 'rounds') or 'post_phases', "
                                "as in phases = basis 20 0.8, coord 10 0.8, prune 1");
    int total = qat_sched_phase_epochs(q);
    if (qat_cfg_has(s, "epochs") && n->epochs != total)
        return qat_cfg_error_at(c, s->line, "[net] epochs = %d, but the phases take %d (%d rounds and the post phases); "
                                "drop 'epochs' or make them agree", n->epochs, total, q->rounds);
    n->epochs = q->total_epochs = total;
    return QAT_OK;
}

static qat_status read_net(qat_cfg *c, qat_cfg_section *s, qat_net_cfg *n)
{
    qat_status st;
    memset(n, 0, sizeof *n);
    if ((st = read_dataset(c, s, n))) return st;
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
        (st = qat_cfg_get_float(c, s, "warmup_start", n->sched.warmup_start, 0.0f, 1.0f, &n->sched.warmup_start)) ||
        (sched == QAT_SCHED_PHASES && (st = read_phases(c, s, n))))
        return st;
    if (qat_sched_check(&n->sched) != QAT_OK) return qat_cfg_error_at(c, s->line, "[net] %s", qat_last_error());

    if ((st = read_norm(c, s, n)) ||
        (st = qat_cfg_get_enum(c, s, "nonfinite", nonfinite_names, QAT_NONFINITE_COUNT, QAT_NONFINITE_STOP,
                               &n->nonfinite)) ||
        (st = qat_cfg_get_int(c, s, "crop_pad", 0, 0, QAT_LOADER_MAX_PAD, &n->crop_pad)) ||
        (st = qat_cfg_get_int(c, s, "pixel_grid", n->c == 3 ? 12 : 0, 0, QAT_PIXEL_GRID_MAX, &n->pixel_grid)) ||
        (st = qat_cfg_get_bool(c, s, "flip", 0, &n->flip)) ||
        (st = qat_cfg_get_enum(c, s, "grad_comm", qat_gradcomm_names, QAT_GRADCOMM_COUNT, QAT_GRADCOMM_FP32,
                               &n->grad_comm)) ||
        (st = qat_cfg_get_bool(c, s, "sync_bn", 0, &n->sync_bn)))
        return st;
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

qat_status qat_netcfg_set_dataset(qat_net_cfg *net, const char *dataset, const char *cfg_path)
{
    qat_dataset_info info;
    qat_status st = qat_data_info(dataset, &net->data, &info);
    if (st) return st;
    if (info.c != net->c || info.h != net->h || info.w != net->w ||
        (info.nclass && net->nclass && info.nclass != net->nclass))
        return qat_error_set(QAT_ERR_ARG, "dataset '%s' has %dx%dx%d images in %d classes; %s is built for %dx%dx%d in %d",
                             dataset, info.c, info.h, info.w, info.nclass, cfg_path, net->c, net->h, net->w, net->nclass);
    snprintf(net->dataset, sizeof net->dataset, "%s", dataset);
    qat_data_default_norm(net->dataset, net->mean, net->std, net->c);
    return QAT_OK;
}
