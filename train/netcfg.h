/* netcfg.h: a model config (Darknet-style, see configs/) turned into the
 * training settings of [net] and the list of layers. Every key a section
 * accepts is read here or by its layer type; anything else is an error with
 * PATH:LINE. */
#ifndef QAT_NETCFG_H
#define QAT_NETCFG_H

#include "cfg.h"
#include "dataset.h"
#include "layer.h"
#include "optim.h"

/* nonfinite = stop (the run ends with an error naming the epoch, step and
 * tensor; the last checkpoint is the last finite state) | skip_step (that
 * step's update is dropped and counted) */
typedef enum { QAT_NONFINITE_STOP = 0, QAT_NONFINITE_SKIP, QAT_NONFINITE_COUNT } qat_nonfinite;

typedef struct {
    char dataset[32];  /* a name of data/'s table: mnist, fashion-mnist, cifar10, cifar100, folder */
    qat_data_opts data; /* labels = coarse (cifar100); channels, image size, resize (folder) */
    int c, h, w, nclass; /* input shape and classes (qat_data_info); nclass is 0 for a
                            folder, whose class folders decide */
    int batch, epochs, val, shuffle;
    uint64_t seed;
    qat_optim_cfg optim;
    float weight_decay;
    int decay_all;     /* 1: decay BN and bias too (PyTorch's default); 0: weights only */
    qat_sched sched;
    int init;          /* default initialiser for conv/linear */
    float mean[3], std[3]; /* input normalisation */
    int pixel_grid;        /* normalised pixels on a grid of 2^-pixel_grid (0: none;
                              default 12 for 3-channel images, 0 otherwise) */
    int crop_pad, flip;    /* augmentation of the training loader (never val or test) */
    int nonfinite;         /* qat_nonfinite: what a NaN or Inf in the loss or a gradient does */
    int grad_comm;         /* qat_gradcomm_kind: how data-parallel ranks exchange gradients */
    int sync_bn;           /* 1: in data-parallel training, batchnorm's batch statistics are over every
                              rank's images (qat_graph_sync); one process: no effect */
    /* [quant]: defaults for every conv2d/linear layer, and the policies for
     * the first layer's input and the last layer's weights and output */
    qat_qspec qw, qa;
    int grad_bits;
    int first_input_quantized, last_weight_quantized, last_output_quantized;
    /* epochs (1-based) after which OUT/hist/ gets weight and activation
     * histograms of every quantized layer (AQE's Fig. 1-4) */
    int hist_epochs[32];
    int nhist;
} qat_net_cfg;

/* Parses the [net] section (which must come first) and every layer section.
 * On success *layers (owned by the caller, or handed to qat_model_build) has
 * *nlayers entries. epochs_override/seed_override < 0 keep the cfg's values. */
qat_status qat_netcfg_read(qat_cfg *c, qat_net_cfg *net, qat_layer **layers, int *nlayers);
/* Another dataset for the model net describes (qat train --dataset): the
 * same image shape and classes, else QAT_ERR_ARG naming both (cfg_path is
 * the config's name in the message); sets net->dataset and the dataset's
 * own normalisation. */
qat_status qat_netcfg_set_dataset(qat_net_cfg *net, const char *dataset, const char *cfg_path);

#endif
