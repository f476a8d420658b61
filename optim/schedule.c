/* schedule.c: learning rate per (epoch, step): PyTorch's StepLR, MultiStepLR,
 * ExponentialLR and CosineAnnealingLR in closed form, stepped per epoch, with
 * an optional linear warm-up applied per step. */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const sched_names[] = {
    [QAT_SCHED_CONSTANT] = "constant",
    [QAT_SCHED_STEP] = "step",
    [QAT_SCHED_MULTISTEP] = "multistep",
    [QAT_SCHED_EXP] = "exp",
    [QAT_SCHED_COSINE] = "cosine",
    [QAT_SCHED_PHASES] = "phases",
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
    if (s->kind == QAT_SCHED_PHASES) {
        if (s->nphases < 0 || s->nphases > QAT_SCHED_MAX_PHASES || s->npost < 0 || s->npost > QAT_SCHED_MAX_PHASES ||
            (s->nphases > 0) != (s->rounds > 0) || s->nphases + s->npost == 0)
            return qat_error_set(QAT_ERR_CONFIG, "phases schedule: %d phases x %d rounds and %d post phases; needs "
                                 "1 to %d phases and rounds >= 1, or post phases alone",
                                 s->nphases, s->rounds, s->npost, QAT_SCHED_MAX_PHASES);
        for (int k = 0; k < s->nphases + s->npost; k++) {
            const qat_sched_phase *p = k < s->nphases ? &s->phase[k] : &s->post[k - s->nphases];
            if ((unsigned)p->kind >= QAT_PHASE_COUNT || p->epochs < 1 || !(p->gamma > 0.0f && p->gamma <= 1.0f))
                return qat_error_set(QAT_ERR_CONFIG, "phases schedule: %s phase %d (%s %d x%g) needs a known kind, "
                                     ">= 1 epoch and gamma in (0, 1]", k < s->nphases ? "round" : "post",
                                     (k < s->nphases ? k : k - s->nphases) + 1,
                                     qat_phase_name(p->kind) ? qat_phase_name(p->kind) : "?", p->epochs, (double)p->gamma);
        }
        if (s->total_epochs < 1 || s->total_epochs > qat_sched_phase_epochs(s))
            return qat_error_set(QAT_ERR_CONFIG, "phases schedule: %d epochs, but its phases take %d",
                                 s->total_epochs, qat_sched_phase_epochs(s));
    }
    if (s->warmup_epochs < 0)
        return qat_error_set(QAT_ERR_CONFIG, "%s schedule: warmup_epochs %d must be >= 0", name,
                             s->warmup_epochs);
    if (s->warmup_epochs > 0 && !(s->warmup_start >= 0.0f && s->warmup_start <= 1.0f))
        return qat_error_set(QAT_ERR_CONFIG, "%s schedule: warmup_start %g must be in [0, 1]", name,
                             (double)s->warmup_start);
    return QAT_OK;
}

static const char *const phase_names[QAT_PHASE_COUNT] = {"train", "basis", "coord", "prune", "ste"};

const char *qat_phase_name(qat_phase_kind k) { return (unsigned)k < QAT_PHASE_COUNT ? phase_names[k] : NULL; }

qat_status qat_sched_phases_parse(const char *text, qat_sched_phase *out, int cap, int *n)
{
    *n = 0;
    const char *p = text;
    for (int item = 1;; item++) {
        char name[16];
        int epochs, used = 0;
        double gamma = 1;
        while (*p == ' ' || *p == '\t') p++;
        if (sscanf(p, "%15[a-z] %d%n", name, &epochs, &used) != 2)
            return qat_error_set(QAT_ERR_CONFIG, "phase %d ('%.24s'): expected a phase name (train, basis, coord, prune, "
                                 "ste), its epochs and optionally its lr factor, as in 'basis 20 0.8'", item, p);
        p += used;
        int more = 0;
        if (sscanf(p, " %lf%n", &gamma, &more) == 1) p += more;
        int k = 0;
        while (k < QAT_PHASE_COUNT && strcmp(phase_names[k], name) != 0) k++;
        if (k == QAT_PHASE_COUNT)
            return qat_error_set(QAT_ERR_CONFIG, "phase %d: unknown phase '%s' (valid: train, basis, coord, prune, ste)",
                                 item, name);
        if (epochs < 1 || !(gamma > 0 && gamma <= 1))
            return qat_error_set(QAT_ERR_CONFIG, "phase %d (%s): %d epochs and lr factor %g; need >= 1 epoch and a factor "
                                 "in (0, 1]", item, name, epochs, gamma);
        if (*n == cap) return qat_error_set(QAT_ERR_CONFIG, "more than %d phases", cap);
        out[(*n)++] = (qat_sched_phase){(qat_phase_kind)k, epochs, (float)gamma};
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\0') return QAT_OK;
        if (*p != ',')
            return qat_error_set(QAT_ERR_CONFIG, "phase %d (%s): expected ',' or the end after it, found '%.16s'", item,
                                 name, p);
        p++;
    }
}

static int phases_sum(const qat_sched_phase *p, int n)
{
    int t = 0;
    for (int i = 0; i < n; i++) t += p[i].epochs;
    return t;
}

int qat_sched_phase_epochs(const qat_sched *s)
{
    return s->rounds * phases_sum(s->phase, s->nphases) + phases_sum(s->post, s->npost);
}

/* The cycle (a round, or the post phases) holding epoch: its phases and the
 * epoch's index within it. */
static const qat_sched_phase *cycle_of(const qat_sched *s, int epoch, int *n, int *pos)
{
    int all = qat_sched_phase_epochs(s);
    QAT_ASSERT(all >= 1);
    if (epoch >= all) epoch = all - 1; /* past the end: the last epoch's phase */
    int per = phases_sum(s->phase, s->nphases);
    if (per > 0 && epoch < s->rounds * per) {
        *n = s->nphases;
        *pos = epoch % per;
        return s->phase;
    }
    *n = s->npost;
    *pos = epoch - s->rounds * per;
    return s->post;
}

void qat_sched_phase_at(const qat_sched *s, int epoch, qat_phase_at *out)
{
    if (s->kind != QAT_SCHED_PHASES) {
        *out = (qat_phase_at){QAT_PHASE_TRAIN, epoch, s->total_epochs, s->total_epochs - epoch};
        return;
    }
    int n, pos;
    const qat_sched_phase *c = cycle_of(s, epoch, &n, &pos);
    int i = 0;
    while (i < n - 1 && pos >= c[i].epochs) pos -= c[i++].epochs;
    *out = (qat_phase_at){c[i].kind, pos, c[i].epochs, 0};
    for (int e = epoch; e < s->total_epochs; e++) {
        int m, q;
        const qat_sched_phase *d = cycle_of(s, e, &m, &q);
        int j = 0;
        while (j < m - 1 && q >= d[j].epochs) q -= d[j++].epochs;
        out->kind_left += d[j].kind == out->kind;
    }
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
    case QAT_SCHED_PHASES: { /* base times the gamma of every epoch of the cycle so far, this one included */
        int n, pos;
        const qat_sched_phase *c = cycle_of(s, epoch, &n, &pos);
        double lr = base;
        for (int i = 0, e = 0; i < n && e <= pos; i++)
            for (int k = 0; k < c[i].epochs && e <= pos; k++, e++) lr *= c[i].gamma;
        return lr;
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
