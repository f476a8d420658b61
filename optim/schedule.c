/* schedule.c: learning rate per (epoch, step): PyTorch's StepLR, MultiStepLR,
 * ExponentialLR and CosineAnnealingLR in closed form, stepped per epoch, with
 * an optional linear warm-up applied per step. */
#include "optim.h"

#include <math.h>
#include <string.h>

static const char *const sched_names[] = {
    [QAT_SCHED_CONSTANT] = "constant",
    [QAT_SCHED_STEP] = "step",
    [QAT_SCHED_MULTISTEP] = "multistep",
    [QAT_SCHED_EXP] = "exp",
    [QAT_SCHED_COSINE] = "cosine",
};
_Static_assert(sizeof sched_names / sizeof sched_names[0] == QAT_SCHED_COUNT,
               "sched_names needs one row per qat_sched_kind");

void qat_sched_default(qat_sched *s, qat_sched_kind k, float base_lr)
{
    memset(s, 0, sizeof *s);
    s->kind = k;
    s->base_lr = base_lr;
    s->gamma = 0.1f;
    s->step_size = 30;
    s->warmup_start = 0.1f;
}

const char *qat_sched_name(qat_sched_kind k)
{
    if ((unsigned)k >= QAT_SCHED_COUNT)
        return NULL;
    return sched_names[k];
}

qat_status qat_sched_parse(const char *name, qat_sched_kind *out)
{
    if (!name)
        return qat_error_set(QAT_ERR_ARG, "schedule name is NULL");
    for (int k = 0; k < QAT_SCHED_COUNT; k++) {
        if (strcmp(name, sched_names[k]) == 0) {
            *out = (qat_sched_kind)k;
            return QAT_OK;
        }
    }
    char valid[128] = "";
    for (int k = 0; k < QAT_SCHED_COUNT; k++) {
        if (k)
            strncat(valid, ", ", sizeof valid - strlen(valid) - 1);
        strncat(valid, sched_names[k], sizeof valid - strlen(valid) - 1);
    }
    return qat_error_set(QAT_ERR_CONFIG, "unknown schedule '%s' (valid: %s)", name, valid);
}

qat_status qat_sched_check(const qat_sched *s)
{
    if (!s)
        return qat_error_set(QAT_ERR_ARG, "schedule is NULL");
    if ((unsigned)s->kind >= QAT_SCHED_COUNT)
        return qat_error_set(QAT_ERR_CONFIG, "schedule kind %d out of range", (int)s->kind);
    const char *name = sched_names[s->kind];
    /* Comparisons are written as !(valid) so that NaN is rejected too. */
    if (!(s->base_lr > 0.0f && isfinite(s->base_lr)))
        return qat_error_set(QAT_ERR_CONFIG, "%s schedule: base_lr %g must be finite and > 0", name,
                             (double)s->base_lr);
    switch (s->kind) {
    case QAT_SCHED_STEP:
    case QAT_SCHED_MULTISTEP:
    case QAT_SCHED_EXP:
        if (!(s->gamma > 0.0f && s->gamma <= 1.0f))
            return qat_error_set(QAT_ERR_CONFIG, "%s schedule: gamma %g must be in (0, 1]", name,
                                 (double)s->gamma);
        break;
    default:
        break;
    }
    if (s->kind == QAT_SCHED_STEP && s->step_size < 1)
        return qat_error_set(QAT_ERR_CONFIG, "step schedule: step_size %d must be >= 1 epoch", s->step_size);
    if (s->kind == QAT_SCHED_MULTISTEP) {
        if (s->nmilestones < 1 || s->nmilestones > QAT_SCHED_MAX_MILESTONES)
            return qat_error_set(QAT_ERR_CONFIG, "multistep schedule: %d milestones, need 1 to %d",
                                 s->nmilestones, QAT_SCHED_MAX_MILESTONES);
        for (int i = 0; i < s->nmilestones; i++) {
            if (s->milestones[i] < 1)
                return qat_error_set(QAT_ERR_CONFIG, "multistep schedule: milestone %d is epoch %d, must be >= 1",
                                     i, s->milestones[i]);
            if (i > 0 && s->milestones[i] <= s->milestones[i - 1])
                return qat_error_set(QAT_ERR_CONFIG,
                                     "multistep schedule: milestones must be strictly ascending (%d then %d)",
                                     s->milestones[i - 1], s->milestones[i]);
        }
    }
    if (s->kind == QAT_SCHED_COSINE) {
        if (s->total_epochs < 1)
            return qat_error_set(QAT_ERR_CONFIG, "cosine schedule: total_epochs %d must be >= 1",
                                 s->total_epochs);
        if (!(s->min_lr >= 0.0f && s->min_lr <= s->base_lr))
            return qat_error_set(QAT_ERR_CONFIG, "cosine schedule: min_lr %g must be in [0, base_lr = %g]",
                                 (double)s->min_lr, (double)s->base_lr);
    }
    if (s->warmup_epochs < 0)
        return qat_error_set(QAT_ERR_CONFIG, "%s schedule: warmup_epochs %d must be >= 0", name,
                             s->warmup_epochs);
    if (s->warmup_epochs > 0 && !(s->warmup_start >= 0.0f && s->warmup_start <= 1.0f))
        return qat_error_set(QAT_ERR_CONFIG, "%s schedule: warmup_start %g must be in [0, 1]", name,
                             (double)s->warmup_start);
    return QAT_OK;
}

/* The schedule proper, per epoch, in double as PyTorch computes it. */
static double scheduled(const qat_sched *s, int epoch)
{
    double base = s->base_lr, gamma = s->gamma;
    switch (s->kind) {
    case QAT_SCHED_CONSTANT:
        return base;
    case QAT_SCHED_STEP:
        return base * pow(gamma, (double)(epoch / s->step_size));
    case QAT_SCHED_MULTISTEP: {
        int passed = 0; /* bisect_right: a milestone counts from its own epoch on */
        while (passed < s->nmilestones && s->milestones[passed] <= epoch)
            passed++;
        return base * pow(gamma, (double)passed);
    }
    case QAT_SCHED_EXP:
        return base * pow(gamma, (double)epoch);
    case QAT_SCHED_COSINE: {
        double lo = s->min_lr;
        return lo + (base - lo) * (1.0 + cos(M_PI * (double)epoch / (double)s->total_epochs)) / 2.0;
    }
    case QAT_SCHED_COUNT:
    default:
        break;
    }
    QAT_ASSERT(!"schedule kind out of range");
    return 0.0;
}

float qat_sched_lr(const qat_sched *s, int epoch, int step, int steps_per_epoch)
{
    QAT_ASSERT(epoch >= 0 && steps_per_epoch >= 1 && step >= 0 && step < steps_per_epoch);
    double lr = scheduled(s, epoch);
    if (epoch < s->warmup_epochs) {
        /* Progress counts steps already taken, so the first step of the run
         * uses exactly warmup_start * base_lr. */
        double done = (double)epoch * steps_per_epoch + step;
        double total = (double)s->warmup_epochs * steps_per_epoch;
        double ws = s->warmup_start;
        lr *= ws + (1.0 - ws) * (done / total);
    }
    return (float)lr;
}
