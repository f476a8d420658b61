/* report.h: pictures of a run (qat report): one self-contained HTML page
 * (inline SVG, no script, no network, no external file) made only of what
 * runs wrote to disk: metrics.jsonl, hist/ CSVs, summary.json and
 * last.ckpt (the model: its config, bits per layer, quantizer levels), so a
 * report can be made of any run, finished or not. Also qat summary's
 * per-layer numbers and qat export --verify's record, which the page
 * shows. */
#ifndef QAT_REPORT_H
#define QAT_REPORT_H

#include <stddef.h>

#include "layer.h"
#include "qat_util.h"

typedef struct {
    const char *const *runs; /* run folders (qat train --out), nruns >= 1 */
    int nruns;
    const char *out;     /* the HTML file, written atomically (temporary file, fsync, rename) */
    const char *model;   /* a .qnn to describe (size, compression, parity from its .verify.json), or NULL */
    const char *command; /* the command of a run in progress (qat train --report), shown when its
                          * summary.json (written at the end) does not hold one; may be NULL */
} qat_report_opts;

/* Writes the page. A run folder without metrics.jsonl, a malformed line or
 * histogram is QAT_ERR_IO / QAT_ERR_FORMAT naming the file, the line and
 * the byte. A last line without its newline (a run writing it) is left out.
 * A checkpoint that does not load only leaves its parts out of the page
 * (the message says why, in the page). */
qat_status qat_report_write(const qat_report_opts *o);

/* One row of qat summary: what a layer stores and computes. */
typedef struct {
    char out[64];      /* output shape without the batch: "[20, 24, 24]" */
    char wq[32], aq[32]; /* "ste_sign/1", "alq/0.34", "float/32", or "-" */
    size_t params;     /* trainable parameters (weights, bias, BN scale and shift) */
    long long macs;    /* per image */
    double bits;       /* parameter storage: weights at their bitwidth, the rest float32 */
    const char *op;    /* the inference operation by MINW-Net's Table I, "" for layers without weights */
} qat_layer_row;

void qat_report_layer_row(const qat_layer *l, qat_layer_row *r);

/* What qat export --verify found, kept beside the model as MODEL.verify.json
 * (written atomically) so that a report can show it. */
typedef struct {
    const char *checkpoint;
    size_t bytes;        /* the .qnn file */
    size_t weight_bytes; /* its weights */
    size_t float_bytes;  /* the same weights as float32 */
    int exact;           /* 1: parity expected (every layer from its trained codebook) */
    int n, differ, differ_ties; /* test images, predictions that differ, of those near-ties */
    double float_acc, int_acc;
} qat_verify_record;

qat_status qat_report_write_verify(const char *model_path, const qat_verify_record *v);

#endif
