/* export.h: lowering a trained model to the integer-only .qnn graph of
 * runtime/qatrt.h, and writing it as a file or as C source.
 *
 * What the lowering does (docs/format.md has the details):
 *  - every conv2d / linear becomes one CONV op whose weights are the integer
 *    levels of its weight quantizer, in the encoding of the kernel its input
 *    and weight levels allow (binary, ternary, power-of-two codes, int8);
 *  - everything between a layer's accumulator and the next layer's input
 *    quantizer (scales, bias, batchnorm, ReLU, HardTanh, dropout, flatten)
 *    folds into per-channel integer thresholds, found by bisection on the
 *    integer accumulator with the float model's own arithmetic, so that the
 *    integer comparison decides as the float model does; a negative BN scale
 *    sets the channel's flip flag;
 *  - max pools move after the thresholds (exact: the folded function is
 *    monotone per channel, and max commutes with a non-decreasing map);
 *  - the first layer reads the uint8 image (normalisation folded into its
 *    thresholds, or a per-channel table when its input is quantized); the
 *    last layer gives int32 logits by dyadic requantization;
 *  - an emptied output channel (every weight 0: ALQ's pruning, a ternary
 *    row of zeros) is a constant level: it leaves the graph, and the next
 *    layer adds that level times its weights to its thresholds (exact when
 *    no zero padding reaches it, or when the level is 0; else it stays).
 * A layer the config leaves in float has no integer form: the export fails
 * naming it, unless float_bits asks to quantize such layers after training
 * (weights per output channel to 8 or 16 bits, float activations to 8 bits
 * from calibration images); the result is then marked approximate. */
#ifndef QAT_EXPORT_H
#define QAT_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "layer.h"

typedef struct {
    int float_bits;        /* 0: refuse float layers; 8 or 16: quantize them after training */
    const float *calib_x;  /* normalised images for float activations' ranges (float_bits only) */
    int calib_n;
    const float *mean, *std; /* the input normalisation per channel (the cfg's) */
    int pixel_grid;        /* the cfg's pixel_grid: normalised pixels on a 2^-pixel_grid grid */
    int keep_flips;        /* 1: never fold a negative BN scale into the weights (the
                            * runtime's flip bits then do it; tests use this) */
    int keep_emptied;      /* 1: keep emptied channels in the graph (tests compare) */
    int qnn_version;       /* the .qnn version to write: 0 the newest (QATRT_VERSION), or 3 for
                            * runtimes built before v4 (128-byte records, 64-byte aligned blobs) */
} qat_export_opts;

typedef struct {
    uint8_t *bytes; /* the .qnn file image (malloc'd; qat_export_free) */
    size_t size;
    int exact;      /* 1: every layer lowered from its trained codebook (parity expected) */
    size_t payload; /* theoretical payload bytes: packed weight bits + thresholds + scales + tables */
    size_t weight_bytes; /* the weights' share of the payload (qat summary's storage, for comparison) */
    size_t float_bytes; /* the same layers' weights as float32 */
    int emptied;        /* emptied channels dropped from the graph */
    char approx[1024];  /* layers quantized after training, comma-separated */
    char kernels[4096]; /* one line per op: "conv1: uint8 x int8, 6 thresholds" (a ResNet has dozens) */
} qat_export_result;

/* Lowers m (built from a checkpoint, batch >= 1). */
qat_status qat_export(qat_model *m, const qat_export_opts *o, qat_export_result *r);
void qat_export_free(qat_export_result *r);

/* Writes bytes to path atomically (temporary file, fsync, rename). */
qat_status qat_export_write_file(const char *path, const uint8_t *bytes, size_t size);

/* Writes DIR/model.h and DIR/model.c for the model in bytes (a valid .qnn):
 * weights as const arrays, a scalar integer interpreter, no malloc, no
 * float, nothing included but <stdint.h> and <stddef.h>. prefix names the
 * functions (prefix_run, prefix_WORKSPACE). */
qat_status qat_export_csource(const uint8_t *bytes, size_t size, const char *dir, const char *prefix);

/* ---- evaluation helpers (the CLI, tests and benchmarks share them) ---- */

/* The float model's eval-mode logits for n uint8 images, normalised as the
 * data loader does: ((p / 255) - mean[c]) / std[c] on the pixel grid. logits: n * nclass. */
qat_status qat_export_float_logits(qat_model *m, const uint8_t *images, int n, const float *mean, const float *std,
                                   int grid, float *logits);

/* Runs a loaded .qnn (a qatrt_model *) on n images in batches of `batch`, split over `threads`
 * threads (each with its own workspace); logits: n * nclass int32. */
qat_status qat_qnn_run(const void *model, const uint8_t *images, int n, int batch, int threads, int32_t *logits);

#endif
