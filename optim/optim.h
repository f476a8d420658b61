/* optim.h: the optimizers (SGD with momentum/Nesterov, Adam, AdamW, AMSGrad)
 * over one contiguous parameter block, and the per-epoch learning-rate
 * schedules with linear warm-up. Numerics follow PyTorch 1.13 (see below). */
#ifndef QAT_OPTIM_H
#define QAT_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "qat_util.h"

/* ------------------------------------------------------------------------ */
/* Optimizers                                                               */
/* ------------------------------------------------------------------------ */

typedef enum {
    QAT_OPTIM_SGD,
    QAT_OPTIM_ADAM,    /* weight decay as L2: g += wd * w */
    QAT_OPTIM_ADAMW,   /* decoupled weight decay: w *= 1 - lr * wd */
    QAT_OPTIM_AMSGRAD, /* Adam(amsgrad=True), L2 decay like ADAM */
    QAT_OPTIM_COUNT
} qat_optim_kind;

/* Hyper-parameters that stay fixed for a run. The learning rate and weight
 * decay are not here: they change per step (schedule) and per parameter
 * (no decay on biases, BN), so every update call passes them. */
typedef struct {
    qat_optim_kind kind;
    float momentum, dampening; /* SGD; momentum 0 means plain SGD */
    int nesterov;              /* SGD; needs momentum > 0, dampening 0 */
    float beta1, beta2, eps;   /* Adam family */
} qat_optim_cfg;

/* PyTorch's defaults for kind k: momentum 0, dampening 0, no Nesterov,
 * betas (0.9, 0.999), eps 1e-8. */
void qat_optim_cfg_default(qat_optim_cfg *c, qat_optim_kind k);
/* "sgd", "adam", "adamw", "amsgrad"; NULL for an out-of-range kind. */
const char *qat_optim_name(qat_optim_kind k);
/* Name -> kind. QAT_ERR_CONFIG (message lists the valid names) if unknown. */
qat_status qat_optim_parse(const char *name, qat_optim_kind *out);
/* QAT_ERR_CONFIG with a message naming the bad field: kind out of range,
 * momentum outside [0,1), dampening outside [0,1], Nesterov without momentum
 * or with dampening, betas outside [0,1), eps negative; non-finite values. */
qat_status qat_optim_cfg_check(const qat_optim_cfg *c);

/* Per-step scalars, derived by qat_optim_begin_step from cfg and t; callers
 * never set them. The betas are used as the decimal the user typed (0.999,
 * not the float 0.99900001) so that bias corrections match PyTorch, whose
 * hyper-parameters are Python doubles. */
typedef struct {
    double beta1, beta2;       /* cfg betas as decimals */
    double bc1, bc2;           /* 1 - beta1^t, 1 - beta2^t */
    float one_minus_beta1, one_minus_beta2, one_minus_dampening;
    float bc2_sqrt;            /* sqrt(bc2) */
} qat_optim_step_consts;

/* Optimizer state for n parameters. The state is one allocation owned by the
 * optimizer, laid out [m | v | vmax] (only the parts the kind needs), in the
 * same order as the parameter block it serves. t is not in that block: a
 * checkpoint stores it beside qat_optim_state(). The struct's cfg is read at
 * every begin_step; do not change kind after init. */
typedef struct {
    qat_optim_cfg cfg;
    size_t n;
    float *m;    /* SGD momentum buffer / Adam first moment, n floats (NULL for plain SGD without momentum) */
    float *v;    /* Adam second moment (NULL for SGD) */
    float *vmax; /* AMSGrad running max of v (NULL otherwise): ALQ's projection needs m-hat and v-hat */
    int64_t t;   /* steps taken; the first step is t == 1 */
    qat_optim_step_consts k;
} qat_optim;

/* Checks cfg (as qat_optim_cfg_check) and allocates the zeroed state for n
 * parameters (n may be 0). On failure *o is left zeroed, safe to free.
 * Errors: QAT_ERR_CONFIG (bad cfg), QAT_ERR_MEMORY. */
qat_status qat_optim_init(qat_optim *o, const qat_optim_cfg *cfg, size_t n);
/* Frees the state and zeroes *o; safe on a zeroed or already freed o. */
void qat_optim_free(qat_optim *o);
/* The contiguous state block (qat_optim_state_floats floats; NULL when 0),
 * for checkpoints. Writing it (and t) restores an optimizer exactly. */
size_t qat_optim_state_floats(const qat_optim *o);
float *qat_optim_state(qat_optim *o);

/* t += 1 and derive this step's scalars: once per training step, before
 * any update of that step. */
void qat_optim_begin_step(qat_optim *o);

/* Updates w[off..off+len) using g[off..off+len) (w and g point at the start
 * of the whole parameter block, as does the state), learning rate lr,
 * weight decay wd (0 for parameters excluded from decay). Touches nothing
 * outside the range. Must follow a begin_step. Semantics are PyTorch 1.13's
 * single-tensor torch.optim.SGD / Adam / AdamW / Adam(amsgrad=True), in
 * float, with scalars formed in double and rounded to float as PyTorch does:
 *   SGD:   d = g + wd*w; buf = t==1 ? d : momentum*buf + (1-dampening)*d;
 *          d = nesterov ? d + momentum*buf : buf; w -= lr*d
 *          (the momentum buffer starts at the first step of the run, t == 1;
 *          a range first updated later starts from a zero buffer instead)
 *   Adam:  g += wd*w (AdamW instead: w *= 1 - lr*wd first);
 *          m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; (AMSGrad: vmax = max(vmax, v))
 *          w -= lr/(1-b1^t) * m / (sqrt(v or vmax)/sqrt(1-b2^t) + eps)
 * lr and wd are plain numbers (lr in parameter units per gradient unit). */
void qat_optim_update(qat_optim *o, size_t off, size_t len, float *w, const float *g, float lr, float wd);
/* Same state update, but writes the step delta (w_new - w, w_new exactly as
 * qat_optim_update would compute it) into delta[0..len) and leaves w alone:
 * for quantizers that own their weights (DST, ALQ). delta is indexed from 0,
 * not from off, and must not overlap w, g or the state. */
void qat_optim_delta(qat_optim *o, size_t off, size_t len, const float *w, const float *g, float lr, float wd,
                     float *delta);
/* As qat_optim_delta, but w and g point at the range itself (element off of
 * the state), for weights that live outside the parameter block: a
 * quantizer that keeps discrete states (DST) materialises them as w. */
void qat_optim_delta_at(qat_optim *o, size_t off, size_t len, const float *w, const float *g, float lr, float wd,
                        float *delta);
/* Bias-corrected moments of the range as of the last update:
 * mhat = m / (1-b1^t), vhat = v / (1-b2^t) (AMSGrad: vmax / (1-b2^t)),
 * into mhat[0..len) and vhat[0..len). Adam family only, after begin_step. */
void qat_optim_moments(const qat_optim *o, size_t off, size_t len, float *mhat, float *vhat);

/* ------------------------------------------------------------------------ */
/* Learning-rate schedules                                                  */
/* ------------------------------------------------------------------------ */

typedef enum {
    QAT_SCHED_CONSTANT,
    QAT_SCHED_STEP,      /* StepLR:        base * gamma^(epoch / step_size) */
    QAT_SCHED_MULTISTEP, /* MultiStepLR:   base * gamma^(milestones passed) */
    QAT_SCHED_EXP,       /* ExponentialLR: base * gamma^epoch */
    QAT_SCHED_COSINE,    /* CosineAnnealingLR closed form, T_max = total_epochs */
    QAT_SCHED_PHASES,    /* rounds of phases, each epoch multiplying the lr by its phase's gamma (ALQ) */
    QAT_SCHED_COUNT
} qat_sched_kind;

#define QAT_SCHED_MAX_MILESTONES 16
#define QAT_SCHED_MAX_PHASES 8

/* What the weights a quantizer keeps do in an epoch (ALQ, spec section 7):
 * TRAIN is an ordinary epoch (for ALQ: basis steps); BASIS steps the binary
 * bases with the closed-form coordinates (Eq. 17-23), COORD the coordinates
 * alone (Eq. 21), PRUNE removes coordinates (Eq. 11-15), STE trains latent
 * float weights with the loss-aware projection (spec section 8). Quantizers
 * without phases train the same in every one. */
typedef enum { QAT_PHASE_TRAIN = 0, QAT_PHASE_BASIS, QAT_PHASE_COORD, QAT_PHASE_PRUNE, QAT_PHASE_STE, QAT_PHASE_COUNT } qat_phase_kind;

/* One phase of a PHASES schedule: `epochs` epochs of `kind`, the lr
 * multiplied by gamma before each of them. */
typedef struct {
    qat_phase_kind kind;
    int epochs;  /* >= 1 */
    float gamma; /* in (0, 1] */
} qat_sched_phase;

/* Epochs are 0-based. Fields a kind does not use are ignored. */
typedef struct {
    qat_sched_kind kind;
    float base_lr;        /* > 0 */
    float gamma;          /* step / multistep / exp factor, in (0, 1] */
    int step_size;        /* step: epochs between decays, >= 1 */
    int milestones[QAT_SCHED_MAX_MILESTONES];
    int nmilestones;      /* multistep: 1..16 strictly ascending epochs >= 1 */
    int total_epochs;     /* cosine: T_max >= 1; past it the lr rises again, as PyTorch's closed form does */
    float min_lr;         /* cosine eta_min, in [0, base_lr] */
    int warmup_epochs;    /* >= 0: linear warm-up over the first warmup_epochs epochs, per step */
    float warmup_start;   /* in [0, 1]: warm-up starts at warmup_start * base_lr */
    /* phases: `rounds` rounds of phase[0..nphases), then post[0..npost) once.
     * The lr starts again from base_lr at the start of every round and of
     * the post phases, and each epoch multiplies it by its phase's gamma
     * first (the ALQ code's order: a round of basis 20 x0.8 starts at
     * 0.8 base_lr). total_epochs = rounds * sum(phase) + sum(post). */
    qat_sched_phase phase[QAT_SCHED_MAX_PHASES], post[QAT_SCHED_MAX_PHASES];
    int nphases, rounds, npost;
} qat_sched;

/* Where an epoch falls in a schedule's phases. */
typedef struct {
    qat_phase_kind kind;
    int epoch;      /* 0-based within this run of the phase */
    int epochs;     /* the run's length */
    int kind_left;  /* epochs of this kind from this one (included) to the end of the schedule */
} qat_phase_at;

/* Zeroes *s and sets kind, base_lr and the defaults: gamma 0.1, step_size 30,
 * no milestones (multistep needs them set), total_epochs 0 (cosine needs it
 * set), min_lr 0, no warm-up (warmup_start 0.1 once warmup_epochs is set). */
void qat_sched_default(qat_sched *s, qat_sched_kind k, float base_lr);
/* "constant", "step", "multistep", "exp", "cosine"; NULL if out of range. */
const char *qat_sched_name(qat_sched_kind k);
/* Name -> kind. QAT_ERR_CONFIG (message lists the valid names) if unknown. */
qat_status qat_sched_parse(const char *name, qat_sched_kind *out);
/* Bad values -> QAT_ERR_CONFIG with a message naming the field, its value
 * and the allowed range. */
qat_status qat_sched_check(const qat_sched *s);
/* lr for (0-based) epoch, at step `step` (0..steps_per_epoch-1) within it.
 * The schedule itself moves once per epoch and matches PyTorch's StepLR,
 * MultiStepLR, ExponentialLR and CosineAnnealingLR (closed form) stepped
 * once per epoch, computed in double. During warm-up (epoch <
 * warmup_epochs) it is multiplied by a factor rising linearly per step from
 * warmup_start to 1 at the end of the warm-up, so the lr runs from
 * warmup_start*base_lr to the scheduled lr without a jump; the schedule's
 * epochs are not shifted by the warm-up. s must have passed qat_sched_check;
 * epoch >= 0, steps_per_epoch >= 1 (invariants, asserted). */
float qat_sched_lr(const qat_sched *s, int epoch, int step, int steps_per_epoch);

/* "train", "basis", "coord", "prune", "ste"; NULL if out of range. */
const char *qat_phase_name(qat_phase_kind k);
/* Parses a phase list "basis 20 0.8, coord 10 0.8, prune 1" (a phase name,
 * its epochs, optionally its gamma, default 1) into out[0..*n). Errors
 * (QAT_ERR_CONFIG) name the item and what was expected. */
qat_status qat_sched_phases_parse(const char *text, qat_sched_phase *out, int cap, int *n);
/* The phase of (0-based) epoch; every schedule that is not PHASES is one
 * TRAIN run of total_epochs (0 there: unbounded). */
void qat_sched_phase_at(const qat_sched *s, int epoch, qat_phase_at *out);
/* rounds * sum(phase epochs) + sum(post epochs) */
int qat_sched_phase_epochs(const qat_sched *s);

#endif
