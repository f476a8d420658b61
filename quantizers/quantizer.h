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

#include <stddef.h>

#include "cfg.h"
#include "graph.h"
#include "optim.h"

typedef enum { QAT_QROLE_WEIGHT = 1, QAT_QROLE_ACT = 2, QAT_QROLE_GRAD = 4 } qat_qrole;

typedef enum { QAT_QRANGE_MINMAX = 0, QAT_QRANGE_EMA, QAT_QRANGE_COUNT } qat_qrange;

/* One setting of a method: a config key that the method reads into its own
 * settings block (qat_qspec.opts) at `offset`, as a float or an int (BOOL
 * and ENUM are ints; an ENUM is the index of its name). `roles` are the
 * roles whose sections read the key (0: a fixed setting, no key, that only
 * gives the block its value); several methods may declare the same key
 * (each into its own block). */
typedef enum { QAT_QKEY_FLOAT, QAT_QKEY_INT, QAT_QKEY_BOOL, QAT_QKEY_ENUM } qat_qkey_type;

typedef struct {
    const char *key;
    qat_qkey_type type;
    int roles;                /* qat_qrole bits */
    size_t offset;            /* in the method's settings struct */
    double def, lo, hi;       /* default and range (ENUM: index, range from names) */
    const char *const *names; /* ENUM: the names, nnames of them */
    int nnames;
} qat_qkey;

/* Bytes a method's settings struct may take (asserted where each is defined). */
#define QAT_QOPTS_BYTES 40

/* Key table entries for a method's settings struct T. */
#define QAT_QKEY_FLOAT_OF(k, T, f, d, lo, hi, r) {k, QAT_QKEY_FLOAT, r, offsetof(T, f), d, lo, hi, NULL, 0}
#define QAT_QKEY_INT_OF(k, T, f, d, lo, hi, r) {k, QAT_QKEY_INT, r, offsetof(T, f), d, lo, hi, NULL, 0}
#define QAT_QKEY_BOOL_OF(k, T, f, d, r) {k, QAT_QKEY_BOOL, r, offsetof(T, f), d, 0, 1, NULL, 0}
#define QAT_QKEY_ENUM_OF(k, T, f, d, names, r) \
    {k, QAT_QKEY_ENUM, r, offsetof(T, f), d, 0, (double)(sizeof names / sizeof names[0]) - 1, names, \
     (int)(sizeof names / sizeof names[0])}
#define QAT_QKEYS(table) .keys = table, .nkeys = (int)(sizeof table / sizeof table[0])
#define QAT_QROLES_ALL (QAT_QROLE_WEIGHT | QAT_QROLE_ACT)

/* Settings of one quantizer instance: the method, its bits, the settings
 * every weight quantizer has (per-channel scales, the latent clip), and the
 * method's own settings block, read through its key table (q->keys). [quant]
 * gives the defaults, a layer's section overrides them. The block belongs to
 * opts_q; qat_qspec_opts() re-initialises it to q's defaults when q was
 * changed since, so `s.q = qat_quantizer_find(..)` is a valid way to pick a
 * method. */
typedef struct {
    const struct qat_quantizer *q; /* NULL: float (no quantizer) */
    int bits;                      /* 0: the method's default */
    int per_channel;               /* weights: one scale per output channel */
    float clip;                    /* latent weights clipped to [-clip, clip] after each step (0: none, -1: the method's) */
    const struct qat_quantizer *opts_q; /* the method opts holds settings for */
    _Alignas(8) unsigned char opts[QAT_QOPTS_BYTES];
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

/* What a step of owned weights sees: the optimizer over every owned weight
 * of the model (node n's range starts at n->owned_off; its t is already
 * this step's), the step's learning rate and weight decay, the epoch's
 * phase (qat_sched_phase_at: ALQ's basis / coordinate / pruning epochs)
 * with this step's index among the phase run's steps, the graph (its
 * threads), and scratch of at least 2 x the largest owned tensor's floats
 * and the sum of every owned node's step_scratch. */
typedef struct qat_owned_step {
    qat_optim *optim;
    float lr, wd;
    float *scratch;
    qat_graph *g;
    qat_phase_kind phase;
    long phase_step, phase_steps; /* 0-based step within the phase run, and the run's steps */
    int phase_epoch;              /* 0-based epoch within the run */
    int steps_per_epoch;
    int phase_kind_left;          /* epochs of this phase kind from this one to the end of the schedule */
} qat_owned_step;

typedef struct qat_quantizer {
    const char *name;
    int roles;           /* qat_qrole bits it supports */
    int default_bits;
    int min_bits, max_bits;
    float default_clip;  /* latent-weight clip for weights (1 for sign methods) */
    int has_param;       /* 1: a learnable scale/clip: one value, or one per channel */
    const char *param_name; /* its tensor name suffix ("alpha", "step") */
    float (*param_decay)(const qat_qnode *n); /* the parameter's own L2 decay (PACT's clip), or NULL */
    int binary;          /* two levels: training logs its weight flip ratio */
    int unit_signs;      /* every forward output is exactly -1 or +1 (training and evaluation):
                            a conv between two such runs on XOR-popcount (layers/binconv.c) */
    int per_channel_ok;  /* weights may have one scale per output channel */
    int buf_extra;       /* floats of method state after the scales and zero points (0: 4) */
    /* sets param/buffer initial values (after compile); may be NULL */
    void (*init)(qat_qnode *n);
    void (*forward)(qat_qnode *n, qat_tensor *t, qat_graph *g);
    /* adds into t->src[0]->g and, with a parameter, t->src[1]->g */
    void (*backward)(qat_qnode *n, qat_tensor *t, qat_graph *g);
    /* fills the codebook from the current parameters/buffers */
    void (*levels)(const qat_qnode *n, qat_levels *out);
    /* optional annealing hook: step of total steps (AQE's alpha) */
    void (*schedule)(qat_qnode *n, long step, long total);
    /* its own settings: a struct of opts_size bytes (<= QAT_QOPTS_BYTES)
     * read from the config through keys[0..nkeys) */
    size_t opts_size;
    const qat_qkey *keys;
    int nkeys;
    /* Weights the quantizer keeps itself (no float copy): the layer gets
     * qat_quantize_owned's output, a float view the forward recomputes from
     * the node's state, instead of a float parameter. The model lists such
     * nodes in one registry (qat_model.owned); the trainer steps each with
     * the optimizer that serves all of them, and checkpoints save the state
     * as one record. */
    int owns_weights;
    /* bytes of the state of a node with n->out->n weights (a flat block,
     * saved as it is) */
    size_t (*state_size)(const qat_qnode *n);
    void (*init_owned)(qat_qnode *n, const float *w, qat_rng *rng); /* from float initial weights */
    /* a checkpoint's state for n: checks every element (QAT_ERR_FORMAT
     * naming `from`, the tensor and the element), then takes it */
    qat_status (*load_state)(qat_qnode *n, const void *state, size_t bytes, const char *from);
    /* The step: either update(), handed the optimizer's step as a delta on
     * the float view (DST, Eq. 12-15), or step(), which sees the optimizer
     * itself (its moments m-hat, v-hat and AMSGrad's running max, for ALQ's
     * projection). */
    void (*update)(qat_qnode *n, const float *delta, qat_rng *rng);
    void (*step)(qat_qnode *n, const struct qat_owned_step *s, qat_rng *rng);
    /* or step_all(): one call per step over every owned node of the model
     * (it steps those of its method and skips the rest), for steps that
     * couple layers (ALQ's global pruning budget, Sec. 3.2) */
    void (*step_all)(qat_qnode *const *nodes, int count, const struct qat_owned_step *s, qat_rng *rng);
    /* floats of step scratch a node needs with `threads` threads (added
     * over the model's owned nodes); may be NULL */
    size_t (*step_scratch)(const qat_qnode *n, int threads);
    /* the step reads the optimizer's AMSGrad moments (ALQ's projection):
     * the run's optimizer must be amsgrad */
    int needs_amsgrad;
    /* checks the node's settings against its weight's shape once it is
     * built (ALQ's grouping); QAT_ERR_CONFIG with a message; may be NULL */
    qat_status (*check)(const qat_qnode *n);
    /* Storage of an owned weight as its paper counts it (ALQ, Sec. 5.4.1:
     * bases, coordinates and the bitwidth table), in bits, and its average
     * bits per weight; NULL: bits per weight times the count. */
    uint64_t (*storage_bits)(const qat_qnode *n);
    double (*avg_bits)(const qat_qnode *n);
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
    void *state;         /* owned weights: the method's state (q->state_size bytes), or NULL */
    size_t state_bytes;
    size_t owned_off;    /* owned weights: where the node's range starts in the owned optimizer */
};

/* Average bits per weight and storage bits of a weight quantizer's node
 * (the method's own count for owned weights, else bits x weights). */
double qat_qnode_avg_bits(const qat_qnode *n);
uint64_t qat_qnode_storage_bits(const qat_qnode *n);

/* A node's settings as its method's struct T (qat_quantize set them up). */
#define QAT_QOPTS(n, T) ((const T *)(const void *)(n)->spec.opts)

extern const qat_quantizer *const qat_quantizers[];
extern const int qat_quantizer_count;
const qat_quantizer *qat_quantizer_find(const char *name);

/* Float (no method), bits 0 (the method's own), no per-channel scales,
 * the method's clip. */
void qat_qspec_default(qat_qspec *s);
/* The method's settings block, set to its defaults first when it holds
 * another method's (or none). NULL for float. */
void *qat_qspec_opts(qat_qspec *s);
const void *qat_qspec_opts_const(const qat_qspec *s);
/* Sets one of the method's settings by its config key (ENUM: the index):
 * QAT_ERR_CONFIG when the method has no such key or the value is out of
 * its range. For programs and tests; configs go through qat_qspec_parse. */
qat_status qat_qspec_set(qat_qspec *s, const char *key, double value);
/* One of the method's settings by its key (ENUM: the index); NaN when the
 * method has no such key. */
double qat_qspec_get(const qat_qspec *s, const char *key);
/* Reads the quantizer keys of a section into w (weights) and a
 * (activations), which hold the inherited settings on entry: weight, act,
 * bits, weight_bits, act_bits, per_channel, clip, and the keys of the
 * methods in use (their key tables; docs/quantizers.md lists them). A
 * section that picks another method than it inherited starts from that
 * method's settings in c's [quant] section (the defaults), or from the
 * method's own defaults. In [quant] itself every method's keys are read and
 * checked; elsewhere a key of a method the section does not use is an error
 * that names the method. */
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
