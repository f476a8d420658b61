/* dataset.h: the data module's contract. A qat_dataset is a block of uint8
 * images with their labels and class names, read from hostile files (IDX for
 * the MNIST family, CIFAR-10/100 binary batches or their .tar.gz, folders of
 * PNG/JPEG/BMP images); a qat_loader turns it into normalised float batches,
 * augmented or not, reproducibly. One table in dataset.c knows every named
 * dataset: its folder, files, shape, classes, normalisation and reader. */
#ifndef QAT_DATASET_H
#define QAT_DATASET_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "qat_util.h"

/* Limits a header may claim before the reader refuses it as hostile. The
 * reader also never allocates more than the file really holds (its buffer grows
 * with the data), so a lying header cannot make it reserve gigabytes. */
#define QAT_DATA_MAX_IMAGES (1 << 28)
#define QAT_DATA_MAX_SIDE 65535
#define QAT_DATA_MAX_BYTES ((uint64_t)1 << 34) /* n*c*h*w */
#define QAT_DATA_MAX_PIXELS ((uint64_t)1 << 26) /* w*h of one image file */

typedef struct qat_dataset {
    char name[32];      /* a name of the table ("mnist", "cifar10", "folder"); "idx" from
                           qat_data_load_idx */
    char path[512];     /* folder (or archive) it was read from */
    int n, c, h, w;     /* images, channels, height, width */
    int nclass;
    uint8_t *images;    /* n*c*h*w bytes, CHW per image; owned */
    uint8_t *labels;    /* n bytes, each < nclass; owned */
    char **class_names; /* nclass NUL-terminated names (CIFAR's meta files, a folder's class
                           folders, else "0", "1", ...); one allocation, owned; every
                           reader sets it, a dataset built by hand may leave it NULL */
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

/* Reads CIFAR-10 (which = 10) or CIFAR-100 (which = 100) in the official
 * binary layout. path is the folder cifar-10-batches-bin/ (data_batch_1..5.bin,
 * test_batch.bin, batches.meta.txt) or cifar-100-binary/ (train.bin, test.bin,
 * fine_label_names.txt, coarse_label_names.txt), or the official archive
 * (cifar-10-binary.tar.gz, cifar-100-binary.tar.gz, or the same as a plain
 * .tar), read in place through zlib. A record is the label byte (CIFAR-100: the
 * coarse, then the fine label byte) and 3072 bytes: the R, G, B planes of 32x32,
 * which is CHW. coarse (CIFAR-100 only) picks the 20 coarse labels instead of
 * the 100 fine ones. Train is the training files in their official order. Class
 * names come from the meta file, or are "0", "1", ... without it. Errors name
 * the file (inside an archive: "ARCHIVE(MEMBER)", offsets counting from the
 * member's first byte), the record and the byte: a file that ends inside a
 * record, a label out of range, a tar header with a bad checksum, a member
 * missing from the archive. QAT_ERR_IO, QAT_ERR_FORMAT, QAT_ERR_MEMORY,
 * QAT_ERR_ARG (which not 10 or 100, coarse with CIFAR-10). */
qat_status qat_data_load_cifar(qat_dataset *train, qat_dataset *test, const char *path,
                               int which, int coarse);

/* How a cfg asks for a dataset to be read; all zero means the defaults. */
typedef struct {
    int coarse;   /* cifar100: 1 = the 20 coarse labels, 0 = the 100 fine labels */
    int c;        /* folder: 1 (grey: RGB turned to stb's luma) or 3 (grey repeated);
                     0 = 3 */
    int h, w;     /* folder: the image size of the set; 0 = the size of the first
                     training image */
    int resize;   /* folder: 1 = images of another size are resized to h x w
                     (stb_image_resize's default filter); 0 = they are refused */
} qat_data_opts;

/* Reads an image folder: dir/train/<class>/<file> and dir/test/<class>/<file>,
 * files ending in .png, .jpg, .jpeg or .bmp (any case; other files are
 * skipped). The classes are the subfolders of train/ in byte order (their names
 * are the class names, at most 256), test/ must have the same ones; every train
 * class needs an image. Files are read in byte order of their names, so the
 * order never depends on the file system. opts (NULL: defaults) fixes the
 * channels, the size and whether other sizes are resized. A file stb_image
 * cannot decode is QAT_ERR_FORMAT naming the file and stb's reason; a size
 * other than the set's without resize is QAT_ERR_SHAPE naming the file. */
qat_status qat_data_load_folder(qat_dataset *train, qat_dataset *test, const char *dir,
                                const qat_data_opts *opts);

/* What the dataset table knows of one dataset, for a cfg and for messages. */
typedef struct {
    const char *name;     /* "mnist", "fashion-mnist", "cifar10", "cifar100", "folder" */
    const char *folder;   /* its usual folder under $QAT_DATA and ./data; NULL: --data only */
    const char *archive;  /* the official archive, read in place; NULL if not readable so */
    const char *files;    /* what its folder holds, in words */
    int c, h, w;          /* image shape with opts applied; 0 where the files decide */
    int nclass;           /* classes with opts applied; 0 when the files decide */
    int coarse_nclass;    /* classes of labels = coarse (cifar100: 20); 0: no such choice */
    int shape_from_opts;  /* 1: opts choose c, h, w and resize (folder) */
    float mean[3], std[3]; /* default normalisation per channel, units of pixel/255 */
} qat_dataset_info;

/* Fills *info for dataset `name` with opts (NULL: defaults) applied. Unknown
 * name: QAT_ERR_ARG listing the known ones; opts that do not apply
 * (coarse labels of a set without them) or are out of range: QAT_ERR_ARG. */
qat_status qat_data_info(const char *name, const qat_data_opts *opts, qat_dataset_info *info);

/* Reads dataset `name` with its table reader: dir is what qat_data_locate
 * gives (or any path it accepts; NULL: qat_data_locate(name, NULL)). opts NULL:
 * defaults. mnist and fashion-mnist: the folder holding
 * train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
 * t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (the .gz is read
 * when both exist); cifar10, cifar100: see qat_data_load_cifar; folder: see
 * qat_data_load_folder. Train and test must have the same image size
 * (QAT_ERR_SHAPE). On failure both are left zero. Unknown name: QAT_ERR_ARG. */
qat_status qat_data_load_opts(qat_dataset *train, qat_dataset *test, const char *name,
                              const char *dir, const qat_data_opts *opts);
/* qat_data_load_opts with the defaults. */
qat_status qat_data_load(qat_dataset *train, qat_dataset *test, const char *name,
                         const char *dir);

/* Resolves where dataset `name` is into out (cap bytes, NUL included).
 * explicit_dir (--data) if non-NULL: mnist and fashion-mnist want the folder
 * of the four files; cifar10/cifar100 take the batches folder, the official
 * archive itself, or a folder holding the archive or the batches folder (out
 * then names what was found in it); folder wants a folder with train/ and
 * test/. Otherwise the first of $QAT_DATA/<folder>, $QAT_DATA/<archive>,
 * ./data/<folder>, ./data/<archive> and, for fashion-mnist,
 * /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist) that
 * holds the files. The folder dataset has no usual place: it needs
 * explicit_dir. Not found: QAT_ERR_IO whose message lists every place tried
 * and why it was refused. cap too small: QAT_ERR_ARG. */
qat_status qat_data_locate(const char *name, const char *explicit_dir, char *out,
                           size_t cap);

/* The per-channel normalisation of the usual recipes, written into mean[0..c-1]
 * and std[0..c-1], in units of pixel/255: mnist 0.1307 / 0.3081,
 * fashion-mnist 0.2860 / 0.3530 (every channel), cifar10 (0.4914, 0.4822,
 * 0.4465) / (0.2023, 0.1994, 0.2010), cifar100 (0.5071, 0.4865, 0.4409) /
 * (0.2673, 0.2564, 0.2762), folder 0.5 / 0.5 (maps [0, 1] to [-1, 1]). For c
 * above the table's channels, the first channel's values are repeated.
 * Unknown name or c not in 1..3: QAT_ERR_ARG. */
qat_status qat_data_default_norm(const char *name, float *mean, float *std, int c);

/* One pixel as every batch sees it: (p / 255 - mean) / std in float (the
 * loader's tables, the exporter and the evaluation helpers all use this). */
static inline float qat_data_pixel(uint8_t p, float mean, float std) { return ((float)p / 255.0f - mean) / std; }
/* The normalised pixel on a grid of 2^-grid (grid 0: as computed). A first
 * layer whose inputs are on the grid and whose weights are small integers
 * times a power of two sums exactly in float32, in any order, so the
 * exported model's integer accumulator (runtime kernel T32) is the same
 * number and it decides exactly as the trained model ([net] pixel_grid). */
#define QAT_PIXEL_GRID_MAX 20
static inline float qat_data_pixel_grid(uint8_t p, float mean, float std, int grid)
{
    float x = qat_data_pixel(p, mean, std);
    return grid > 0 ? ldexpf(rintf(ldexpf(x, grid)), -grid) : x;
}

/* n CHW images of c channels and hw pixels each, normalised into out. */
void qat_data_normalize(const uint8_t *images, size_t n, int c, size_t hw, const float *mean, const float *std, int grid,
                        float *out);

/* Moves the LAST nval images of train into val (as the papers hold out
 * validation); train->n shrinks by nval, its buffers are kept. val gets the same
 * name, path, shape and (a copy of the) class names; nval == 0 gives val->n == 0
 * with NULL image and label buffers.
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
    int grid;           /* 0..QAT_PIXEL_GRID_MAX: x on a grid of 2^-grid (qat_data_pixel_grid); 0: none */
    int crop_pad;       /* 0..QAT_LOADER_MAX_PAD: random crop of the image padded with
                           crop_pad pixels of value 0 on each side (torchvision's
                           RandomCrop(size, padding=crop_pad) on the image before
                           ToTensor/Normalize, so a padded pixel comes out as
                           (0 - mean[c]) / std[c], not 0); 0: no crop */
    int flip;           /* 1: mirror left-right with probability 1/2, after the crop
                           (RandomHorizontalFlip) */
    int background;     /* 1: a worker thread prepares batch i+1 while the
                           caller uses batch i; results are bit-identical */
} qat_loader_cfg;

#define QAT_LOADER_MAX_PAD 64

/* The seed mix used for epoch `epoch` (exposed so a checkpoint or a test can
 * reproduce the order without a loader). */
uint64_t qat_loader_epoch_seed(uint64_t seed, int epoch);

/* The augmentation of image `index` (its position in the dataset, not in the
 * batch) in epoch `epoch`: a qat_rng seeded from (seed, epoch, index) draws
 * the crop's top-left corner in the padded image, *oy then *ox, each by
 * qat_rng_below(2 * crop_pad + 1) (both crop_pad when crop_pad is 0: no
 * shift), then the flip by qat_rng_below(2) (0 when flip is 0). Output pixel
 * (y, x) is input pixel (y + oy - crop_pad, x' + ox - crop_pad) with x' = x, or
 * w - 1 - x when flipped; outside the image it is a pixel of value 0. It
 * depends on nothing else, so neither the batch size, the shuffle, the threads
 * nor the background worker change what an image becomes. */
void qat_loader_augment_draw(uint64_t seed, int epoch, uint32_t index, int crop_pad, int flip,
                             int *oy, int *ox, int *flipped);

/* A loader is driven from one thread (its worker is private to it). Evaluation
 * loaders leave crop_pad and flip 0.
 * Creates a loader over ds, which the caller keeps alive and unchanged until
 * qat_loader_free (the loader reads it, from its thread too). All memory is
 * allocated here. ds->c must be 1..3 and ds->n > 0. Fails with QAT_ERR_ARG (bad
 * cfg or dataset, or drop_last with batch > n: no batch at all),
 * QAT_ERR_MEMORY (allocation or thread start); *out is NULL on failure. crop_pad
 * outside 0..QAT_LOADER_MAX_PAD or flip not 0/1: QAT_ERR_ARG. */
qat_status qat_loader_init(qat_loader **out, const qat_dataset *ds,
                           const qat_loader_cfg *cfg);
/* Joins the worker thread and frees everything; NULL is fine. */
void qat_loader_free(qat_loader *l);
/* Batches per epoch: ceil(n / batch), or floor with drop_last. */
int qat_loader_nbatches(const qat_loader *l);
/* Data-parallel loading: from the next qat_loader_begin on, batch b hands
 * out only share `part` of `parts` of its images (positions first..first +
 * count of the epoch's order): a contiguous slice, the first count % parts
 * shares one image longer (ceil), the rest floor. A share can be empty
 * (then qat_loader_next returns 0). Batches per epoch stay the same. Call
 * it before qat_loader_begin (a batch already prepared is dropped). */
void qat_loader_set_part(qat_loader *l, int part, int parts);
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
