/* layer.h: the layer contract and the model. A layer type reads its settings
 * from one config section and adds its ops and named parameters to the
 * model's graph; the model owns the graph, the layers and the parameter
 * registry (every parameter lives in the graph's contiguous block).
 *
 * Layer types are registered once, by section name, in qat_layer_types[]
 * (layer.c). Ownership: qat_model_free releases everything the model holds. */
#ifndef QAT_LAYER_H
#define QAT_LAYER_H

#include <stdint.h>

#include "cfg.h"
#include "graph.h"
#include "quantizer.h"

typedef struct qat_layer qat_layer;
typedef struct qat_model qat_model;

typedef enum {
    QAT_INIT_TORCH = 0, /* PyTorch's default: kaiming_uniform(a=sqrt 5), i.e. U(+-1/sqrt(fan_in)) */
    QAT_INIT_GLOROT,    /* Glorot/Xavier uniform: U(+-sqrt(6/(fan_in+fan_out))) */
    QAT_INIT_KAIMING,   /* He normal for ReLU: N(0, 2/fan_in) */
    QAT_INIT_COUNT
} qat_init_kind;

extern const char *const qat_init_names[QAT_INIT_COUNT];

typedef struct {
    const char *section; /* config section name: "conv2d", "linear", ... */
    const char *prefix;  /* parameter name prefix: "conv" gives conv1.weight */
    /* reads the section's keys (every getter a type accepts) */
    qat_status (*parse)(qat_layer *l, qat_cfg *c, qat_cfg_section *s);
    /* adds the layer to m->g from input `in`; sets l->out */
    qat_status (*build)(qat_layer *l, qat_model *m, qat_tensor *in);
    /* initialises the layer's parameters after compile */
    void (*init)(qat_layer *l, qat_rng *r);
} qat_layer_type;

extern const qat_layer_type *const qat_layer_types[];
extern const int qat_layer_type_count;
const qat_layer_type *qat_layer_type_find(const char *section);

struct qat_layer {
    const qat_layer_type *type;
    char name[32]; /* conv1, bn2, fc3: prefix + per-type count, or name= */
    int index;     /* position in the model, from 0 */
    int line;      /* config line of the section header */
    const char *file; /* config path for messages (owned by the cfg), or NULL */
    /* settings (each type uses the ones it needs) */
    int filters, size, stride, pad, bias, from, init;
    float eps, momentum, p, lo, hi;
    /* quantization (conv2d, linear): weights, the layer's input, DoReFa
     * gradients of its output, and its output (last layer's policy) */
    qat_qspec wspec, aspec, ospec;
    int grad_bits;
    int explicit_w, explicit_a; /* the section itself set weight= / act= */
    qat_qnode wq, aq, gq, oq;
    /* what build made */
    qat_tensor *in, *out;
    qat_tensor *w, *b, *gamma, *beta, *rmean, *rvar;
    long long macs; /* multiply-accumulates per image */
};

struct qat_model {
    qat_graph g;
    qat_layer *layers;
    int nlayers;
    int c, h, w;   /* input image shape */
    int nclass;    /* logits per image (the last layer's width) */
    int batch;     /* the largest batch the graph runs */
    qat_tensor *input, *logits, *loss;
    int32_t *labels; /* batch labels read by the loss, owned */
    /* the registry of weights a quantizer keeps itself (DST, ALQ), in layer
     * order: what the trainer steps and checkpoints save as states */
    qat_qnode **owned;
    int nowned;
    /* nclass class names (one allocation, owned), or NULL: the trainer sets
     * them from its training set, checkpoints keep them (qat infer) */
    char **class_names;
};

/* Builds the graph for `layers` (filled by a parser; the model takes them
 * over) on inputs [batch, c, h, w], compiles it and initialises parameters
 * from seed. On failure the model is freed and the message names the layer. */
qat_status qat_model_build(qat_model *m, qat_layer *layers, int nlayers, int c, int h, int w,
                           int batch, int threads, uint64_t seed);
void qat_model_free(qat_model *m);
/* The model's input and parameter tensors in creation order (for checkpoints,
 * optimizers and summaries): parameters first the trainable ones. */
int qat_model_params(const qat_model *m, qat_tensor **out, int cap, int flags);
/* Runs `n` images (n <= batch) in eval or training mode; logits land in
 * m->logits->x. x: n*c*h*w floats; y may be NULL in eval. */
void qat_model_forward(qat_model *m, const float *x, const int32_t *y, int n, int training);
/* argmax of each logits row into pred[n] */
void qat_model_predict(const qat_model *m, int n, int32_t *pred);

/* After each optimizer step: quantizers' post-update hooks (latent clip). */
void qat_model_post_update(qat_model *m);
/* Quantizers' schedule hooks, once per step (AQE's alpha). */
void qat_model_schedule(qat_model *m, long step, long total);
/* Binary weights (two-level weight quantizers): their count, a snapshot of
 * their signs (one byte each), and per layer the fraction of signs that
 * changed since a snapshot; returns the number of binary layers (at most cap
 * written to layer/ratio). */
/* The same count once emptied channels are removed, as ALQ's Table 3
 * counts them in parentheses and as qat export drops them: an output
 * channel whose ALQ groups all have 0 bits is a constant, so its group
 * entries go, and the next compute layer loses the weights that read it
 * (its groups fewer bits per plane; a group left empty goes with its
 * coordinates and entry; qat export keeps the rare one that meets a zero
 * padding with a nonzero level). *channels gets the channels removed. Returns 0
 * when that does not apply (no ALQ layer, or a graph with shortcuts or
 * routes, where the next layer is not the only reader). */
int qat_model_weight_storage_emptied(const qat_model *m, double *bytes, int *channels);

size_t qat_model_binary_weights(const qat_model *m);
void qat_model_sign_snapshot(const qat_model *m, uint8_t *snap);
/* Weight storage as the papers count it: the weights of every conv2d and
 * linear layer (no biases, BN or quantizer parameters), each quantized
 * layer at its quantizer's count (ALQ: bases, coordinates and the group
 * bitwidth table, Sec. 5.4.1), float ones at 32 bits. Sets the average
 * bits per weight (weighted by each layer's weights) and the storage and
 * float32 size in bytes. Returns whether any layer's bitwidth varies
 * during training (a quantizer with its own count: ALQ). */
int qat_model_weight_storage(const qat_model *m, double *avg_bits, double *bytes, double *float_bytes);
/* A layer's average bits per weight (its quantizer's count), 32 for float,
 * -1 for a layer without weights. */
/* A batchnorm layer in eval mode as y = x a[c] + b[c], a and b as the
 * batchnorm op computes them from the running statistics (the exporter
 * folds them into thresholds). */
void qat_batchnorm_affine(const qat_layer *l, float *a, float *b);

double qat_layer_weight_bits(const qat_layer *l);

int qat_model_flip_ratios(const qat_model *m, const uint8_t *snap, const qat_layer **layer, float *ratio, int cap);
/* Every parameter and buffer finite, every BN running variance >= 0;
 * otherwise QAT_ERR_FORMAT naming the tensor, the element and its value
 * (what a checkpoint load and the exporter refuse). */
qat_status qat_model_check_values(const qat_model *m);
/* The registry m->owned: quantizer nodes that keep their layer's weights
 * (DST, ALQ), in layer order; returns how many (at most cap written). */
int qat_model_owned(const qat_model *m, qat_qnode **out, int cap);
/* Fraction of x[0..count) within eps of a level of the node's codebook (in
 * real units, the first channel's scale): how far latent weights have moved
 * onto the levels (AQE's asymptotic behaviour). */
float qat_qnode_near_level(const qat_qnode *n, const float *x, size_t count, float eps);
/* Parses the quantizer keys of a layer section over the defaults already in
 * l->wspec / l->aspec (and grad_bits). */
qat_status qat_layer_parse_quant(qat_layer *l, qat_cfg *c, qat_cfg_section *s);

/* fan-in style initialisers, exported for tests */
void qat_init_tensor(qat_tensor *t, qat_init_kind kind, int fan_in, int fan_out, qat_rng *r);

#endif
