/* trainer.h: the training loop: epochs over a dataset, evaluation on the
 * validation and test splits each epoch, metrics as JSON lines, checkpoints
 * (last and best) written atomically, exact resume. It never prints: the
 * caller receives progress through callbacks and decides what to show. */
#ifndef QAT_TRAINER_H
#define QAT_TRAINER_H

#include <signal.h>

#include "checkpoint.h"
#include "dataset.h"
#include "gradcomm.h"

/* qat_comm, the communication hook of data-parallel training (its rank
 * among size ranks and two collectives; the library never calls MPI
 * itself), is declared in autograd/graph.h: batchnorm uses it too when
 * sync_bn = 1. NULL hook: one process, as without it. */

typedef struct {
    int epoch, epochs;  /* 1-based epoch being run */
    int step, steps;    /* step within the epoch, 1-based */
    float loss, acc;    /* running means over the epoch so far */
    double images_per_s;
} qat_progress;

typedef struct {
    int epoch;
    float lr;
    float train_loss, train_acc;
    float val_loss, val_acc;   /* -1 without a validation split */
    float test_loss, test_acc;
    double seconds, images_per_s;
    int best; /* 1 if this epoch wrote best.ckpt */
    const char *phase;  /* the schedule's phase (schedule = phases), or NULL */
    double weight_bits; /* average bits per weight when a quantizer's bitwidth varies (ALQ), else -1 */
    double weight_kb;   /* and the weights' storage in KB (1000 bytes, as the papers count) */
} qat_epoch_metrics;

typedef struct {
    const char *cfg_path;
    const char *data_dir;   /* NULL: look the dataset up (qat_data_locate) */
    const char *dataset;    /* non-NULL overrides [net] dataset (same input shape) */
    const char *out_dir;    /* created if missing */
    int epochs;             /* > 0 overrides the cfg */
    long long seed;         /* >= 0 overrides the cfg */
    int threads;            /* >= 1 */
    int threads_given;      /* 1: threads was asked for (else a default), for --resume */
    /* checkpoint to continue from, or NULL. The settings above that shape a
     * run (epochs, seed, threads, max_steps, dataset, data_dir) are kept in
     * its checkpoints: a resume takes those it is not given, and refuses one
     * given differently unless override_run. until is kept too and holds
     * while the checkpoint is short of it (once reached, a resume runs on) */
    const char *resume;
    int override_run;
    /* a checkpoint of the same architecture (a float run, typically) whose
     * weights start this run (qat_checkpoint_init_from), or NULL; not with
     * resume */
    const char *init_from;
    int until;              /* > 0: stop after completing this epoch (the schedule still spans all epochs) */
    int max_steps;          /* > 0: at most this many steps per epoch and batches per evaluation (smoke tests) */
    const char *command;    /* the command line that started the run, kept in summary.json (qat report), or NULL */
    /* non-NULL: polled before every step and after every epoch's writes; a
     * nonzero value ends the run with QAT_ERR_INTERRUPTED, every file whole
     * (the CLI points it at a flag its SIGINT/SIGTERM handler sets) */
    const volatile sig_atomic_t *stop;
    /* data-parallel training (see qat_comm), or NULL. Every rank runs
     * qat_train with the same options; rank 0 alone writes to out_dir. */
    const qat_comm *comm;
    void (*on_progress)(void *ctx, const qat_progress *p);
    void (*on_epoch)(void *ctx, const qat_epoch_metrics *m);
    void *ctx;
} qat_train_opts;

typedef struct {
    char dataset[32];
    char data_dir[512];
    int epochs;
    float test_acc, best_val_acc;
    int best_epoch;
    double train_images_per_s, seconds;
    double peak_rss_mb;
    double weight_bits, weight_kb, float_kb; /* qat_model_weight_storage of the final model */
} qat_train_result;

qat_status qat_train(const qat_train_opts *o, qat_train_result *res);

/* Loss and accuracy of a built model over a whole dataset, in eval mode. */
qat_status qat_evaluate(qat_model *m, const qat_dataset *ds, const float *mean, const float *std, int grid, float *loss,
                        float *acc);

/* Where a step falls in the schedule's phases (what ALQ's owned weights
 * do: basis, coordinate, pruning steps); NULL in the calls below: an
 * ordinary (TRAIN) step. */
typedef struct {
    qat_phase_at at;     /* the epoch's phase (qat_sched_phase_at) */
    int step;            /* 0-based step within the epoch */
    int steps_per_epoch;
} qat_train_phase;

/* One training step on a batch already in m->input / m->labels: zero_grad,
 * forward, backward, optimizer update. Returns the loss. */
float qat_train_step(qat_model *m, qat_optimizer *o, const qat_net_cfg *net, float lr, int n);
/* The same step, checked: a NaN or Inf in the loss or a gradient returns
 * QAT_ERR_NONFINITE naming the first tensor (net->nonfinite = stop) before
 * the update, or drops the update and sets *skipped (skip_step); a
 * parameter that the update made non-finite is QAT_ERR_NONFINITE either way.
 * *loss gets the batch's mean loss. */
qat_status qat_train_step_checked(qat_model *m, qat_optimizer *o, const qat_net_cfg *net, float lr, int n, float *loss,
                                  int *skipped);
/* The same in a phase of the schedule. */
qat_status qat_train_step_phase(qat_model *m, qat_optimizer *o, const qat_net_cfg *net, float lr, int n,
                                const qat_train_phase *ph, float *loss, int *skipped);

/* A data-parallel step: this rank's n images of a global batch of
 * n_global; after the backward the gradients (scaled by n / n_global, so the
 * sum is the global batch's mean) are exchanged through comm with gc's codec
 * and every rank applies the same update. With net->sync_bn (and more than
 * one rank) batchnorm's forward and backward exchange their per-channel
 * sums through comm too (qat_graph_sync in autograd/graph.h). The forward's random draws
 * (dropout, stochastic rounding) come from a stream of this rank's own; the
 * update's (DST) from the graph's stream, the same on every rank. */
typedef struct {
    const qat_comm *comm;
    qat_gradcomm *gc;   /* from qat_train_gradcomm_init */
    int n_global;
    double bytes_sent;  /* added to: the bytes this rank sent (ring algorithms), sync_bn's included */
    double bn_bytes_sent; /* added to: of those, sync_bn's (batchnorm's statistics and backward sums) */
    double seconds;     /* added to: seconds in the collectives (waiting for the others included) */
} qat_train_dist;
/* The buffers of m's exchange (every gradient the update reads: the
 * parameter block, then weights a quantizer keeps) */
qat_status qat_train_gradcomm_init(qat_gradcomm *gc, const qat_model *m, qat_gradcomm_kind k, int ranks);
qat_status qat_train_step_dist(qat_model *m, qat_optimizer *o, const qat_net_cfg *net, float lr, int n,
                               const qat_train_phase *ph, qat_train_dist *d, float *loss, int *skipped);

/* peak resident set size of this process, in MiB */
double qat_peak_rss_mb(void);

#endif
