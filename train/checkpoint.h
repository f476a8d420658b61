/* checkpoint.h: what a qat checkpoint holds, on top of the container in
 * ckptfile.h: the config text (so eval and export rebuild the model from the
 * checkpoint alone), parameters and buffers by name, optimizer state, the
 * graph's RNG state and the training position. Written atomically. */
#ifndef QAT_CHECKPOINT_H
#define QAT_CHECKPOINT_H

#include "ckptfile.h"
#include "layer.h"
#include "netcfg.h"
#include "optim.h"

/* A model's optimizer: one over the parameter block, one over the weights
 * quantizers keep themselves (DST), laid end to end in layer order; the
 * latter only computes steps and hands them to the quantizer's update. */
typedef struct {
    qat_optim params, owned;
    float *delta; /* scratch: the largest owned tensor's step */
} qat_optimizer;

qat_status qat_optimizer_init(qat_optimizer *o, const qat_model *m, const qat_optim_cfg *cfg);
void qat_optimizer_free(qat_optimizer *o);

typedef struct {
    int epoch;        /* epochs completed */
    int64_t step;     /* optimizer steps taken */
    int best_epoch;   /* epoch (1-based) of the best validation accuracy, 0 if none */
    float best_acc;   /* that accuracy */
    const char *run;  /* save only: the run's command-line settings as "[run]" cfg text
                         (record qat.run, read back by the trainer's --resume), or NULL */
} qat_train_pos;

/* o may be NULL (no optimizer state saved). */
qat_status qat_checkpoint_save(const char *path, const qat_model *m, const char *cfg_text, size_t cfg_len,
                               const qat_optimizer *o, const qat_train_pos *pos);
/* Copies parameters and buffers into a built model. Every tensor of the
 * model must be in the checkpoint with the same shape and no other: the
 * first mismatching tensor is named (QAT_ERR_MISMATCH). */
qat_status qat_checkpoint_load_model(const qat_ckpt *ck, qat_model *m);
/* Starts a model from another run's weights (qat train --init-from): every
 * layer parameter and buffer of m (weights, biases, batchnorm), including
 * the float weights a quantizer keeps itself (DST, ALQ), is copied from the
 * checkpoint's tensor of the same name and shape: the checkpoint of a float
 * run, or of any config of the same architecture. The quantizers' own
 * parameters, buffers and weight states are then initialised afresh from
 * those weights (rng seeded with seed), as a new run initialises them.
 * QAT_ERR_MISMATCH names the first tensor the checkpoint lacks or holds in
 * another shape, and the first layer tensor of the checkpoint the model
 * lacks (another architecture); quantizer tensors of the checkpoint are
 * skipped. Optimizer state and position are not read. */
qat_status qat_checkpoint_init_from(const qat_ckpt *ck, qat_model *m, uint64_t seed);
/* The class names the training set had (record qat.classes, written from
 * m->class_names), nclass of them, into *names (one allocation:
 * free(*names)); *names = NULL when the checkpoint has none (written before
 * names were kept). A record with another count or a bad name is
 * QAT_ERR_FORMAT naming the line. qat_checkpoint_open_model sets
 * m->class_names this way. */
qat_status qat_checkpoint_classes(const qat_ckpt *ck, int nclass, char ***names);
/* Optimizer state (must match kind and size), RNG and position, for --resume. */
qat_status qat_checkpoint_load_train(const qat_ckpt *ck, qat_model *m, qat_optimizer *o, qat_train_pos *pos);
/* The config text stored in the checkpoint (points into ck). */
qat_status qat_checkpoint_cfg(const qat_ckpt *ck, const char **text, size_t *len);

/* What a run given --epochs or --dataset kept of them (record qat.run): the
 * epochs it runs and its dataset; *epochs = 0 and dataset "" for a
 * checkpoint without the record. A bad record is QAT_ERR_FORMAT. */
qat_status qat_checkpoint_run_kept(const qat_ckpt *ck, int *epochs, char *dataset, size_t n);

/* Reads a checkpoint and rebuilds its model from the stored config (with
 * the dataset its run trained on: a --dataset kept in qat.run), with
 * its weights, for `batch` images at a time. cfg and net receive the
 * parsed config (the caller frees cfg with qat_cfg_free). */
qat_status qat_checkpoint_open_model(const char *path, int batch, int threads, qat_model *m, qat_cfg *cfg,
                                     qat_net_cfg *net);

#endif
