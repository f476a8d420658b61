/* quantizer.h: the quantizer contract. A quantizer is a graph op (through
 * autograd's custom-op hook) with its own estimator backward, optional
 * learnable parameters (PACT's clip, LSQ's step) that the optimizer trains
 * like any other, optional buffers (running ranges) saved in checkpoints, a
 * schedule hook, a post-update hook (latent-weight clipping) and a codebook
 * description for export. Methods are registered once, by name, in
 * qat_quantizers[] (quantizer.c); docs/quantizers.md gives each one's
 * equations and paper.
 *
 * Every forward output is exactly level * scale for an integer level of the
 * codebook that levels() describes (the exporter relies on it); AQE's
 * training forward mixes in the float input by design while its alpha < 1,
 * so for it the contract holds in evaluation and once alpha reaches 1. */
#ifndef QAT_QUANTIZER_H
#define QAT_QUANTIZER_H

#include "cfg.h"
#include "graph.h"

typedef enum { QAT_QROLE_WEIGHT = 1, QAT_QROLE_ACT = 2, QAT_QROLE_GRAD = 4 } qat_qrole;

typedef enum { QAT_QRANGE_MINMAX = 0, QAT_QRANGE_EMA, QAT_QRANGE_COUNT } qat_qrange;

/* Settings of one quantizer instance; [quant] gives the defaults, a layer's
 * section overrides them. Each method reads the fields it needs. */
typedef struct {
    const struct qat_quantizer *q; /* NULL: float (no quantizer) */
    int bits;                      /* 0: the method's default */
    int per_channel;               /* weights: one scale per output channel */
    int symmetric;                 /* uniform: levels -Q..Q (else 0..2^k-1 with a zero point) */
    int signed_act;                /* activations: signed levels (else unsigned, after a ReLU) */
    int range;                     /* qat_qrange: how uniform/stochastic find activation ranges */
    float momentum;                /* EMA range momentum */
    float ternary_factor;          /* TWN: threshold = factor * mean|W| (0.7) */
    float threshold;               /* ternary activations: fixed threshold (0.5) */
    float alpha;                   /* PACT: initial clip (10) */
    float alpha_decay;             /* PACT: L2 decay of the clip (2e-4) */
    float clip;                    /* latent weights clipped to [-clip, clip] after each step (0: none) */
    int stochastic;                /* uniform: stochastic rounding (Gholami Eq. 8); AQE: Eq. 7 */
    /* AQE (aqe.c): alpha from aqe_alpha at the start to 1 at fraction
     * aqe_reach of training, along aqe_shape */
    float aqe_alpha, aqe_reach;
    int aqe_shape;                 /* qat_aqe_shape */
    float aqe_delta;               /* ternary h threshold (Eq. 21) */
    float dst_q2;                  /* DST activations: the smallest nonzero level q2 */
    int dst_p;                     /* DST weights: the smallest magnitude is 2^p (p = -2: {0, +-1/4, +-1/2, +-1}) */
    float dst_th;                  /* DST weights: th of Eq. 14 (0.5) */
    int dst_init;                  /* DST weights: qat_dst_init, how the states start */
    int dst_zero_grad;             /* DST activations: qat_dst_zero_grad, backward for |x| <= x_1 */
} qat_qspec;

/* DST weights' first states: Eq. 9 rounds "x within [-1, 1]": UNIFORM draws
 * x ~ U[-1, 1] and rounds it (Eq. 9, then Eq. 10 for undefined states);
 * LAYER rounds the layer's own (Kaiming) initialisation stochastically */
typedef enum { QAT_DST_INIT_UNIFORM = 0, QAT_DST_INIT_LAYER, QAT_DST_INIT_COUNT } qat_dst_init;

/* DST activations' gradient in the zero interval |x| <= x_1: Eq. 7 as
 * printed gives 0 (ZERO); the text beside it says "we keep the gradient of
 * this part as it was" (PASS: 1, as a straight-through estimator) */
typedef enum { QAT_DST_GRAD_ZERO = 0, QAT_DST_GRAD_PASS, QAT_DST_GRAD_COUNT } qat_dst_zero_grad;

typedef enum { QAT_AQE_LINEAR = 0, QAT_AQE_EXP, QAT_AQE_STEP, QAT_AQE_SHAPE_COUNT } qat_aqe_shape;

/* A codebook for export: out = level * scale[c] for an integer level of
 * [lo - zero[c], hi - zero[c]] in steps of `step` (uniform), or of
 * table[0..ntable) (non-uniform); zero is NULL for symmetric codebooks and
 * holds the asymmetric zero points (integers) otherwise. */
typedef struct {
    int lo, hi, step;
    const int32_t *table;
    int ntable;
    int per_channel;
    const float *scale; /* one per channel, or one */
    const float *zero;  /* zero points per channel (asymmetric uniform), or NULL */
    int nscale;
} qat_levels;

typedef struct qat_qnode qat_qnode;

typedef struct qat_quantizer {
    const char *name;
    int roles;           /* qat_qrole bits it supports */
    int default_bits;
    int min_bits, max_bits;
    float default_clip;  /* latent-weight clip for weights (1 for sign methods) */
    int has_param;       /* 1: a learnable scale/clip: one value, or one per channel */
    const char *param_name; /* its tensor name suffix ("alpha", "step") */
    int param_decay;     /* 1: the parameter has its own L2 decay (spec.alpha_decay) */
    int binary;          /* two levels: training logs its weight flip ratio */
    int unit_signs;      /* every forward output is exactly -1 or +1 (training and evaluation):
                            a conv between two such runs on XOR-popcount (layers/binconv.c) */
    int per_channel_ok;  /* weights may have one scale per output channel */
    /* sets param/buffer initial values (after compile); may be NULL */
    void (*init)(qat_qnode *n);
    void (*forward)(qat_qnode *n, qat_tensor *t, qat_graph *g);
    /* adds into t->src[0]->g and, with a parameter, t->src[1]->g */
    void (*backward)(qat_qnode *n, qat_tensor *t, qat_graph *g);
    /* fills the codebook from the current parameters/buffers */
    void (*levels)(const qat_qnode *n, qat_levels *out);
    /* optional annealing hook: step of total steps (AQE's alpha) */
    void (*schedule)(qat_qnode *n, long step, long total);
    /* weights the quantizer keeps itself (no float copy): the layer gets
     * qat_quantize_owned's output instead of a float parameter, and the
     * optimizer hands each step's delta to update() instead of writing
     * weights (DST) */
    int owns_weights;
    void (*init_owned)(qat_qnode *n, const float *w, qat_rng *rng); /* from float initial weights */
    void (*update)(qat_qnode *n, const float *delta, qat_rng *rng);
} qat_quantizer;

/* One quantizer in a graph (owned by its layer). */
struct qat_qnode {
    qat_qspec spec;
    qat_qrole role;
    int bits;            /* resolved */
    qat_tensor *in, *out;
    qat_tensor *param;   /* learnable (PACT alpha, LSQ step) or NULL */
    qat_tensor *buf;     /* per-instance buffers: scales, running ranges, init flag (checkpointed) */
    int channels;        /* scales: 1, or the per-channel count */
    qat_custom_op op;    /* the graph op (name = quantizer name) */
    int8_t *states;      /* owned weights: integer states (DST), n = out->n */
};

extern const qat_quantizer *const qat_quantizers[];
extern const int qat_quantizer_count;
const qat_quantizer *qat_quantizer_find(const char *name);

/* Defaults of every field (bits 0: the method's own). */
void qat_qspec_default(qat_qspec *s);
/* Reads the quantizer keys of a section into w (weights) and a (activations),
 * which hold the defaults on entry: weight, act, bits, weight_bits, act_bits,
 * per_channel, symmetric, act_signed, act_range, momentum, ternary_factor,
 * act_threshold, pact_alpha, pact_decay, clip, rounding. */
qat_status qat_qspec_parse(qat_cfg *c, qat_cfg_section *s, qat_qspec *w, qat_qspec *a);
/* bits of a spec (its own or the method's default), 32 for float */
int qat_qspec_bits(const qat_qspec *s);

/* Adds a quantizer on x to the graph. name is its tensor prefix
 * ("conv1.wq"); its parameter and buffers are named name.alpha etc. Returns
 * the quantized tensor, or x itself when spec->q is NULL. */
qat_tensor *qat_quantize(qat_graph *g, qat_qnode *n, const qat_qspec *spec, qat_qrole role, qat_tensor *x,
                         const char *name);
/* After compile and the layer's own init: initial values of parameters,
 * buffers and owned states (from the float values the layer initialised). */
void qat_qnode_init(qat_qnode *n, qat_rng *rng);
/* After each optimizer step: clip latent weights (weights only). */
void qat_qnode_post_update(qat_qnode *n);

/* A weight tensor of the given shape that the quantizer keeps itself as
 * integer states (spec->q->owns_weights). Returns its float view (level *
 * scale, recomputed every forward; its g receives the weight gradient). */
qat_tensor *qat_quantize_owned(qat_graph *g, qat_qnode *n, const qat_qspec *spec, int ndim, const int *shape,
                               const char *name);
/* The node's forward on count values x -> y outside the graph (the
 * exporter probes a quantizer this way): activations only, the graph's
 * current mode (evaluation for export) decides rounding. */
void qat_qnode_apply(qat_qnode *n, qat_graph *g, const float *x, float *y, size_t count);
/* Releases what a node allocated (owned states). */
void qat_qnode_free(qat_qnode *n);

/* DoReFa's gradient quantizer (Zhou et al. 2016; survey by Guo, Eq. 31-32):
 * identity forward; in backward the gradient is quantized to `bits` with
 * uniform noise, scaled by the per-sample max |gradient|. */
qat_tensor *qat_quantize_grad(qat_graph *g, qat_qnode *n, int bits, qat_tensor *x, const char *name);

#endif
