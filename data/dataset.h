/* dataset.h: the data module's contract. A qat_dataset is a block of uint8
 * images with their labels, read from hostile files (IDX for the MNIST family);
 * a qat_loader turns it into normalised float batches, reproducibly. */
#ifndef QAT_DATASET_H
#define QAT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "qat_util.h"

/* Limits a header may claim before the reader refuses it as hostile. The
 * reader also never allocates more than the file really holds (its buffer grows
 * with the data), so a lying header cannot make it reserve gigabytes. */
#define QAT_DATA_MAX_IMAGES (1 << 28)
#define QAT_DATA_MAX_SIDE 65535
#define QAT_DATA_MAX_BYTES ((uint64_t)1 << 34) /* n*c*h*w */

typedef struct qat_dataset {
    char name[32];      /* "mnist", "fashion-mnist"; "idx" from qat_data_load_idx */
    char path[512];     /* folder it was read from */
    int n, c, h, w;     /* images, channels, height, width */
    int nclass;
    uint8_t *images;    /* n*c*h*w bytes, CHW per image; owned */
    uint8_t *labels;    /* n bytes, each < nclass; owned */
} qat_dataset;

/* Every function below that fills a qat_dataset writes it without freeing what
 * was in it (free it first), and on failure leaves it all zero with nothing
 * allocated: there is never a partial result. Errors carry a message
 * (qat_last_error) of the form "PATH: byte OFFSET: what is wrong, what was
 * expected". For a gzip file, offsets of IDX fields count bytes of the
 * uncompressed data and say "(uncompressed)"; damage in the gzip stream itself
 * is placed in the file as stored and says "(compressed)". */

/* Reads an IDX pair (MNIST family): images magic 0x00000803 with big-endian
 * u32 dims n, h, w (c = 1); labels magic 0x00000801 with dim n. Each file may be
 * raw or gzip (detected from its bytes, not its name). 1 <= nclass <= 256.
 * Fails with QAT_ERR_IO (cannot open or read), QAT_ERR_FORMAT (bad magic, zero
 * or oversized dims, data ending early, trailing bytes, damaged gzip, image and
 * label counts that differ, a label >= nclass), QAT_ERR_MEMORY, QAT_ERR_ARG.
 * Bytes after the end of a gzip stream are ignored (zlib does so). ds->name is
 * "idx" and ds->path the folder of images_path. */
qat_status qat_data_load_idx(qat_dataset *ds, const char *images_path,
                             const char *labels_path, int nclass);

/* name "mnist" or "fashion-mnist"; dir is the folder holding
 * train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
 * t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (the .gz is read
 * when both exist). dir NULL: found by qat_data_locate(name, NULL). Train and
 * test must have the same image size (QAT_ERR_SHAPE). On failure both are left
 * zero. Unknown name: QAT_ERR_ARG. */
qat_status qat_data_load(qat_dataset *train, qat_dataset *test, const char *name,
                         const char *dir);

/* Resolves the folder of dataset `name` into out (cap bytes, NUL included):
 * explicit_dir if non-NULL (it must hold the four files, else QAT_ERR_IO);
 * otherwise the first of $QAT_DATA/<folder>, ./data/<folder> and, for
 * fashion-mnist, /usr/share/datasets/fashion-mnist (Debian's
 * dataset-fashion-mnist) that holds them, where <folder> is "mnist" or
 * "fashion-mnist". Not found: QAT_ERR_IO whose message lists every place tried
 * and why it was refused. cap too small: QAT_ERR_ARG. */
qat_status qat_data_locate(const char *name, const char *explicit_dir, char *out,
                           size_t cap);

/* The per-channel normalisation of the usual recipes, written into mean[0..c-1]
 * and std[0..c-1] (the same value for each channel): mnist 0.1307 / 0.3081,
 * fashion-mnist 0.2860 / 0.3530, in units of pixel/255. Unknown name or c < 1:
 * QAT_ERR_ARG. */
qat_status qat_data_default_norm(const char *name, float *mean, float *std, int c);

/* One pixel as every batch sees it: (p / 255 - mean) / std in float (the
 * loader's tables, the exporter and the evaluation helpers all use this). */
static inline float qat_data_pixel(uint8_t p, float mean, float std) { return ((float)p / 255.0f - mean) / std; }

/* n CHW images of c channels and hw pixels each, normalised into out. */
void qat_data_normalize(const uint8_t *images, size_t n, int c, size_t hw, const float *mean, const float *std,
                        float *out);

/* Moves the LAST nval images of train into val (as the papers hold out
 * validation); train->n shrinks by nval, its buffers are kept. val gets the same
 * name, path and shape; nval == 0 gives val->n == 0 with NULL buffers.
 * 0 <= nval < train->n, else QAT_ERR_ARG (train untouched, val zeroed). */
qat_status qat_data_split(qat_dataset *train, qat_dataset *val, int nval);

/* Frees the buffers and zeroes ds; safe on a zeroed struct, twice, and NULL. */
void qat_dataset_free(qat_dataset *ds);

/* ---- batch loader ------------------------------------------------------- */

typedef struct qat_loader qat_loader;

typedef struct {
    int batch;          /* images per batch, > 0 */
    int shuffle;        /* 1: new permutation every epoch; 0: file order */
    uint64_t seed;      /* epoch e's permutation is qat_rng_permutation from a
                           qat_rng seeded with qat_loader_epoch_seed(seed, e):
                           the order depends only on (seed, epoch), so resuming
                           at an epoch reproduces it exactly */
    int drop_last;      /* 1: skip the final partial batch */
    float mean[3], std[3]; /* x = ((float)pixel / 255.0f - mean[c]) / std[c],
                              computed in float; std[c] > 0 for c < ds->c */
    int background;     /* 1: a worker thread prepares batch i+1 while the
                           caller uses batch i; results are bit-identical */
} qat_loader_cfg;

/* The seed mix used for epoch `epoch` (exposed so a checkpoint or a test can
 * reproduce the order without a loader). */
uint64_t qat_loader_epoch_seed(uint64_t seed, int epoch);

/* A loader is driven from one thread (its worker is private to it).
 * Creates a loader over ds, which the caller keeps alive and unchanged until
 * qat_loader_free (the loader reads it, from its thread too). All memory is
 * allocated here. ds->c must be 1..3 and ds->n > 0. Fails with QAT_ERR_ARG (bad
 * cfg or dataset, or drop_last with batch > n: no batch at all),
 * QAT_ERR_MEMORY (allocation or thread start); *out is NULL on failure. */
qat_status qat_loader_init(qat_loader **out, const qat_dataset *ds,
                           const qat_loader_cfg *cfg);
/* Joins the worker thread and frees everything; NULL is fine. */
void qat_loader_free(qat_loader *l);
/* Batches per epoch: ceil(n / batch), or floor with drop_last. */
int qat_loader_nbatches(const qat_loader *l);
/* Starts epoch `epoch` (>= 0) from its first batch; may be called at any time,
 * also in the middle of an epoch (the rest of it is dropped). Must be called
 * before the first qat_loader_next. */
void qat_loader_begin(qat_loader *l, int epoch);
/* Copies the next batch into x (room for batch*c*h*w floats, NCHW) and y (room
 * for batch int32 labels); returns the images written (< batch only for the
 * final partial batch, whose unused rows are left as they were), 0 at the end
 * of the epoch. Never allocates, never fails. */
int qat_loader_next(qat_loader *l, float *x, int32_t *y);

#endif
