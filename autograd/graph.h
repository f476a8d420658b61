/* graph.h: qat's tensor and static computation graph. A model is built once
 * into a graph of tensors, compiled once (topological order, every buffer
 * placed in contiguous blocks), then run forward and backward every step with
 * no allocation. Ops live in one table (ops.c); backward adds into sources.
 *
 * Ownership: the graph owns every tensor, buffer and thread it creates;
 * qat_graph_free releases all of it. Builders return NULL on a shape error
 * and leave the message in qat_last_error(); a NULL source makes any builder
 * return NULL too, so a model can be built and checked once at the end. */
#ifndef QAT_GRAPH_H
#define QAT_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "qat_util.h"

#define QAT_MAX_DIMS 4
#define QAT_MAX_SRC 4
#define QAT_MAX_IP 8
#define QAT_MAX_FP 4

typedef enum {
    QAT_OP_LEAF = 0, /* input, parameter or buffer: no computation */
    QAT_OP_ADD,
    QAT_OP_MUL,
    QAT_OP_BIAS,
    QAT_OP_LINEAR,
    QAT_OP_CONV2D,
    QAT_OP_MAXPOOL2D,
    QAT_OP_AVGPOOL2D,
    QAT_OP_GAP,
    QAT_OP_BATCHNORM,
    QAT_OP_RELU,
    QAT_OP_HARDTANH,
    QAT_OP_DROPOUT,
    QAT_OP_FLATTEN,
    QAT_OP_SHORTCUT,
    QAT_OP_SOFTMAX_CE,
    QAT_OP_MEAN,
    QAT_OP_CUSTOM, /* an op defined outside autograd (quantizers) */
    QAT_OP_COUNT
} qat_op_id;

enum {
    QAT_T_BATCH = 1 << 0,    /* dim 0 is the batch: follows qat_graph_set_batch */
    QAT_T_PARAM = 1 << 1,    /* trainable: lives in the parameter block */
    QAT_T_BUFFER = 1 << 2,   /* saved but not trained (BN running statistics) */
    QAT_T_INPUT = 1 << 3,    /* filled by the caller before forward */
    QAT_T_GRAD = 1 << 4,     /* has a gradient (set by compile) */
    QAT_T_NO_DECAY = 1 << 5, /* optimizers skip weight decay (a hint for the trainer) */
    QAT_T_OWN_DECAY = 1 << 6, /* a parameter with its own L2 decay, in fp[0] (PACT's clip) */
};

typedef struct qat_graph qat_graph;
typedef struct qat_tensor qat_tensor;
typedef struct qat_custom_op qat_custom_op;

struct qat_tensor {
    int ndim;
    int shape[QAT_MAX_DIMS];
    size_t n;   /* elements at the current batch */
    float *x;   /* values */
    float *g;   /* gradient, NULL when not needed */
    int op;     /* qat_op_id */
    int nsrc;
    qat_tensor *src[QAT_MAX_SRC];
    int32_t ip[QAT_MAX_IP]; /* integer settings: stride, pad, ... */
    float fp[QAT_MAX_FP];   /* float settings: eps, momentum, p, ... */
    void *state;            /* the op's persistent buffers (placed by compile) */
    size_t state_bytes;
    const qat_custom_op *custom; /* QAT_OP_CUSTOM only */
    qat_tensor *fused;           /* batchnorm: the 2x2 max pool it computes in its own pass */
    void *user;                  /* custom op's own context, or labels for softmax_ce */
    int flags;
    int id; /* creation index */
    char name[48];
};

/* An op defined outside autograd: quantizers register theirs this way, so
 * autograd never learns about them. Output shape is the first source's. */
struct qat_custom_op {
    const char *name;
    size_t (*state_bytes)(const qat_tensor *t, int max_batch);
    size_t (*scratch_bytes)(const qat_tensor *t, int max_batch, int threads); /* may be NULL */
    void (*forward)(qat_tensor *t, qat_graph *g);
    void (*backward)(qat_tensor *t, qat_graph *g); /* adds into src[i]->g when non-NULL */
};

/* A task run by the graph's threads: [begin, end) of n items, tid in [0, threads). */
typedef void (*qat_task_fn)(void *ctx, int begin, int end, int tid);

typedef struct qat_pool qat_pool;

/* The communication hook of data-parallel training: the caller (qat's CLI,
 * train/dist_mpi.c over MPI) gives the trainer its rank among size ranks
 * and two collectives; the library never calls MPI itself. Both must give
 * every rank the same bits, in an order fixed for a given size, and return
 * a status with a message naming the rank that failed (the CLI ends the
 * job). It lives here, not in train/, because batchnorm's forward and
 * backward use it too (qat_graph_sync). */
typedef struct {
    int rank, size;
    void *user;
    /* buf[0..n) summed over the ranks, in place */
    qat_status (*allreduce_sum)(void *user, float *buf, size_t n);
    /* every rank's nbytes of in, in rank order, into out (size * nbytes) */
    qat_status (*allgather)(void *user, const void *in, size_t nbytes, void *out);
} qat_comm;

/* Batchnorm over the global batch of data-parallel training (sync_bn, as
 * PyTorch's SyncBatchNorm). While g->sync points at one with comm->size > 1
 * (a training step sets it around its forward and backward, then clears
 * it), every batchnorm in training mode takes its mean and variance over
 * every rank's images and its backward the global batch's means of dy and
 * dy * xhat, through comm->allreduce_sum (docs/distributed.md). Every rank's
 * graph must run the same batchnorms in the same order (the same model).
 * NULL, or size 1: each process's batch is the batch, bit for bit as
 * without it. */
typedef struct {
    const qat_comm *comm;
    /* this rank's weight in the global loss: its images / the global
     * batch (the scale its gradients get in the exchange), so the global
     * batch's gradient is sum over ranks of share * the rank's own */
    float share;
    /* the first collective that failed (its message in qat_last_error());
     * later batchnorms then skip theirs and compute with their own batch,
     * so the step's result is garbage: the caller must check this */
    qat_status status;
    double floats;  /* added to: values summed by allreduce_sum (each rank's count) */
    double seconds; /* added to: seconds in the collectives, waiting included */
} qat_graph_sync;

struct qat_graph {
    /* every tensor, in creation order */
    qat_tensor **all;
    int nall, capall;
    /* compute order: the nodes reachable from the outputs, sources first */
    qat_tensor **order;
    int norder;
    /* parameters, their gradients and buffers: contiguous blocks */
    float *params, *grads, *buffers;
    size_t nparams, nbuffers;
    /* activations, their gradients, op state: one arena placed by compile */
    unsigned char *arena;
    size_t arena_bytes, arena_used;
    /* activation gradients share memory: a gradient lives from the first
     * backward that adds into it to the last that reads it, and is zeroed
     * just before that first backward (zero_list[zero_first[i] ..
     * zero_first[i + 1]) before node i's); those nothing adds into (the
     * compiled outputs: loss, seeded outputs) are zeroed by zero_grad */
    qat_tensor **zero_list, **zero_step;
    int *zero_first;
    int nzero_step;
    size_t act_grad_bytes;   /* the shared gradient area */
    size_t act_grad_unshared; /* what it would take without sharing (reported) */
    unsigned char *scratch; /* per-op scratch, reused by every op */
    size_t scratch_bytes, scratch_used, scratch_high;
    int max_batch, batch;
    int training;
    int threads;
    qat_rng rng; /* dropout and stochastic ops draw from it, in graph order */
    qat_pool *pool;
    int compiled;
    int no_fusion; /* set before compile: keep BN, ReLU and pooling as separate passes */
    int no_grad_sharing; /* set before compile: every activation gradient its own memory */
    qat_graph_sync *sync; /* NULL, or batchnorm over every rank's batch (see qat_graph_sync) */
};

/* ---- building ---------------------------------------------------------- */
qat_status qat_graph_init(qat_graph *g, int max_batch, int threads, uint64_t seed);
void qat_graph_free(qat_graph *g);

/* shape includes the batch at dim 0 (its value is replaced by max_batch) */
qat_tensor *qat_graph_input(qat_graph *g, const char *name, int ndim, const int *shape);
/* trainable parameter (flags QAT_T_PARAM) or buffer (QAT_T_BUFFER) */
qat_tensor *qat_graph_param(qat_graph *g, const char *name, int ndim, const int *shape, int flags);

qat_tensor *qat_add(qat_graph *g, qat_tensor *a, qat_tensor *b);
qat_tensor *qat_mul(qat_graph *g, qat_tensor *a, qat_tensor *b);
/* x [N, C, ...] + b[C] */
qat_tensor *qat_bias(qat_graph *g, qat_tensor *x, qat_tensor *b);
/* x [N, K] (or [N, C, H, W] read as [N, C*H*W]), w [M, K], b [M] or NULL */
qat_tensor *qat_linear(qat_graph *g, qat_tensor *x, qat_tensor *w, qat_tensor *b);
/* x [N, C, H, W], w [F, C, KH, KW], b [F] or NULL */
qat_tensor *qat_conv2d(qat_graph *g, qat_tensor *x, qat_tensor *w, qat_tensor *b, int stride_h,
                       int stride_w, int pad_h, int pad_w);
/* Before compile: runs a conv2d node's forward through op->forward (an
 * exact integer forward when its input and weights are +-1: layers/binconv.c)
 * and keeps the float backward; op's state and scratch are placed with the
 * conv's, user is handed over in t->user. */
void qat_conv2d_set_forward(qat_tensor *conv, const qat_custom_op *op, void *user);
qat_tensor *qat_maxpool2d(qat_graph *g, qat_tensor *x, int size, int stride, int pad);
/* padding counts in the divisor, as PyTorch's count_include_pad=True */
qat_tensor *qat_avgpool2d(qat_graph *g, qat_tensor *x, int size, int stride, int pad);
qat_tensor *qat_gap(qat_graph *g, qat_tensor *x);
/* x [N, C] or [N, C, H, W]; running statistics updated in training as
 * PyTorch does (unbiased variance, running = (1-momentum)*running + momentum*batch) */
qat_tensor *qat_batchnorm(qat_graph *g, qat_tensor *x, qat_tensor *gamma, qat_tensor *beta,
                          qat_tensor *running_mean, qat_tensor *running_var, float eps,
                          float momentum);
qat_tensor *qat_relu(qat_graph *g, qat_tensor *x);
qat_tensor *qat_hardtanh(qat_graph *g, qat_tensor *x, float lo, float hi);
/* inverted dropout: training keeps with probability 1-p and scales by 1/(1-p) */
qat_tensor *qat_dropout(qat_graph *g, qat_tensor *x, float p);
qat_tensor *qat_flatten(qat_graph *g, qat_tensor *x);
/* residual add: out = a + b' where b may have fewer channels (zero padded)
 * and a spatial size that is an integer multiple of a's (sub-sampled):
 * ResNet's option-A shortcut. Equal shapes make it a plain add. */
qat_tensor *qat_shortcut(qat_graph *g, qat_tensor *a, qat_tensor *b);
/* mean over the batch of -log softmax(logits)[label]; labels: int32 owned by
 * the caller, one per image, valid while the graph runs */
qat_tensor *qat_softmax_ce(qat_graph *g, qat_tensor *logits, const int32_t *labels);
/* scalar mean of all elements */
qat_tensor *qat_mean(qat_graph *g, qat_tensor *x);
/* an op from outside autograd; output shape equals src[0]'s */
qat_tensor *qat_custom(qat_graph *g, const qat_custom_op *op, void *user, int nsrc,
                       qat_tensor **src);

/* an op from outside autograd with no sources: it produces a tensor of the
 * given shape from state of its own (DST's discrete weight states) and
 * receives its consumers' gradient in g */
qat_tensor *qat_custom_leaf(qat_graph *g, const qat_custom_op *op, void *user, int ndim, const int *shape);

/* ---- compiling and running ---------------------------------------------- */
/* Sorts what the outputs depend on and places every buffer. Parameters get
 * zeros; the caller initialises them after compile. */
qat_status qat_graph_compile(qat_graph *g, qat_tensor **outputs, int noutputs);
/* 1 <= n <= max_batch */
void qat_graph_set_batch(qat_graph *g, int n);
void qat_graph_set_training(qat_graph *g, int training);
void qat_graph_zero_grad(qat_graph *g);
void qat_graph_forward(qat_graph *g);
/* seeds loss->g with 1 and runs the backward of every node that needs it */
void qat_graph_backward(qat_graph *g, qat_tensor *loss);
/* the backward walk alone, for callers that seeded an output's g themselves */
void qat_graph_backward_seeded(qat_graph *g);
qat_tensor *qat_graph_find(const qat_graph *g, const char *name);

/* ---- for op implementations --------------------------------------------- */
/* scratch memory valid until the next op runs; aligned to 64 bytes */
void *qat_graph_scratch(qat_graph *g, size_t bytes);
/* runs fn over [0, n) split into contiguous chunks, one per thread; with
 * one thread it runs inline. Deterministic: chunk boundaries depend only on
 * n and the thread count. */
void qat_graph_parallel(qat_graph *g, int n, qat_task_fn fn, void *ctx);
/* elementwise work fn(t, b, e) over [0, n), split across the graph's threads
 * in fixed blocks (results do not depend on the split) */
void qat_graph_elementwise(qat_graph *g, const qat_tensor *t, size_t n,
                           void (*fn)(const qat_tensor *t, size_t b, size_t e));
/* row-major C = alpha op(A) op(B) + beta C, split across the graph's
 * threads (OpenBLAS itself always runs on one thread) */
void qat_graph_sgemm(qat_graph *g, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc);
/* A conv keeps its im2col columns from the forward for the backward when
 * they take at most this many bytes at the largest batch (default 32 MiB),
 * else builds them again; read by compile (tests set 0 to cover rebuilding). */
extern size_t qat_conv_keep_bytes;
/* 1 (default): 3x3 stride-1 'same' convolutions on maps of 64 pixels or
 * more run the direct kernels of conv3x3.h; 0: im2col + sgemm (tests and
 * benchmarks compare the two; may change between steps) */
extern int qat_conv_direct;
/* per-op scratch size in bytes, used by compile */
size_t qat_op_scratch_bytes(const qat_tensor *t, int max_batch, int threads);

typedef struct {
    const char *name;
    int nsrc_min, nsrc_max;
    qat_status (*shape)(qat_tensor *t);                  /* sets ndim/shape from sources */
    size_t (*state_bytes)(const qat_tensor *t, int max_batch);
    size_t (*scratch_bytes)(const qat_tensor *t, int max_batch, int threads);
    void (*forward)(qat_tensor *t, qat_graph *g);
    void (*backward)(qat_tensor *t, qat_graph *g);
    int alias; /* output shares its source's memory (flatten) */
} qat_op_def;

extern const qat_op_def qat_ops[QAT_OP_COUNT];

size_t qat_tensor_numel(const qat_tensor *t);
/* "[N, C, H, W]" into buf */
const char *qat_tensor_shape_str(const qat_tensor *t, char *buf, size_t cap);

/* ---- gradient check ------------------------------------------------------ */
/* Compares analytic gradients with central finite differences of
 * L = sum(out * r) (r fixed random, L accumulated in double) for every
 * element of each tensor in wrt (at most max_elems per tensor, spread).
 * Returns the worst relative error |a-n| / max(|a|+|n|, floor). */
double qat_gradcheck(qat_graph *g, qat_tensor *out, qat_tensor **wrt, int nwrt, float eps,
                     int max_elems, double floor, char *report, size_t report_cap);

#endif
