/* dataset.c: the one table of named datasets (folder, files, shape, classes,
 * normalisation, where they are found and which reader reads them), the
 * search for their folders, the train/validation split, and freeing. Reading
 * the bytes is idx.c's, cifar.c's and folder.c's job. */
#include "dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datautil.h"

typedef struct data_entry data_entry;
struct data_entry {
    const char *name;       /* what a cfg says: dataset = NAME */
    const char *folder;     /* its usual folder under $QAT_DATA and ./data; NULL: none */
    const char *archive;    /* the official archive, read in place; NULL: none */
    const char *system_dir; /* a distribution package's copy, or NULL */
    const char *files;      /* what a path must be, for messages */
    int c, h, w, nclass;    /* 0: decided by opts or the files */
    int coarse_nclass;      /* classes of labels = coarse; 0: no choice */
    int shape_from_opts;
    float mean[3], std[3];  /* per channel, units of pixel/255 */
    /* 1 if path holds the dataset, what to read then in out; else why not */
    int (*probe)(const data_entry *e, const char *path, char *out, size_t cap, char *why,
                 size_t wcap);
    qat_status (*read)(const data_entry *e, const char *path, const qat_data_opts *o,
                       qat_dataset *train, qat_dataset *test);
};

/* ---- IDX (MNIST family) ---------------------------------------------------- */

/* The official file names, in the order train images, train labels, test
 * images, test labels. */
static const char *const idx_files[4] = {
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
};

/* Writes dir/base.gz, or dir/base if only that exists, into out; 0 if neither
 * exists or the name does not fit. The .gz wins because it is what the official
 * site and Debian ship, a stray unpacked copy may be stale. */
static int idx_pick_file(const char *dir, const char *base, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s.gz", dir, base);
    if (n > 0 && (size_t)n < cap && qat_data_is_file(out))
        return 1;
    n = snprintf(out, cap, "%s/%s", dir, base);
    return n > 0 && (size_t)n < cap && qat_data_is_file(out);
}

static int idx_probe(const data_entry *e, const char *dir, char *out, size_t cap, char *why,
                     size_t wcap)
{
    (void)e;
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(why, wcap, "%s", strerror(errno));
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, wcap, "not a folder");
        return 0;
    }
    char path[4096];
    for (int i = 0; i < 4; i++) {
        if (!idx_pick_file(dir, idx_files[i], path, sizeof path)) {
            snprintf(why, wcap, "no %s[.gz] in it", idx_files[i]);
            return 0;
        }
    }
    snprintf(out, cap, "%s", dir);
    return 1;
}

static qat_status idx_read(const data_entry *e, const char *dir, const qat_data_opts *o,
                           qat_dataset *train, qat_dataset *test)
{
    (void)o;
    char path[4][4096];
    for (int i = 0; i < 4; i++)
        if (!idx_pick_file(dir, idx_files[i], path[i], sizeof path[i]))
            return qat_error_set(QAT_ERR_IO, "%s/%s: no such file (nor with .gz), expected the %s file",
                                 dir, idx_files[i], e->name);
    qat_status s = qat_data_load_idx(train, path[0], path[1], e->nclass);
    if (s == QAT_OK)
        s = qat_data_load_idx(test, path[2], path[3], e->nclass);
    if (s == QAT_OK && (train->c != test->c || train->h != test->h || train->w != test->w))
        s = qat_error_set(QAT_ERR_SHAPE, "%s: test images are %dx%d, train images (%s) %dx%d; "
                          "expected the same size",
                          path[2], test->h, test->w, path[0], train->h, train->w);
    return s;
}

/* ---- CIFAR, image folders: their readers know their files ------------------- */

static int cifar_probe(const data_entry *e, const char *path, char *out, size_t cap, char *why,
                       size_t wcap)
{
    return qat_data_cifar_probe(e->nclass, path, out, cap, why, wcap);
}

static qat_status cifar_read(const data_entry *e, const char *path, const qat_data_opts *o,
                             qat_dataset *train, qat_dataset *test)
{
    return qat_data_load_cifar(train, test, path, e->nclass, o->coarse);
}

static int folder_probe(const data_entry *e, const char *path, char *out, size_t cap, char *why,
                        size_t wcap)
{
    (void)e;
    return qat_data_folder_probe(path, out, cap, why, wcap);
}

static qat_status folder_read(const data_entry *e, const char *path, const qat_data_opts *o,
                              qat_dataset *train, qat_dataset *test)
{
    (void)e;
    return qat_data_load_folder(train, test, path, o);
}

/* ---- the table ------------------------------------------------------------- */

#define IDX_FILES                                                                          \
    "a folder holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "        \
    "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]"

/* Normalisation: MNIST and Fashion-MNIST as their usual recipes; CIFAR-10 the
 * recipe of ALQ's vgg.py (the often copied 0.2023 std, not the exact 0.2470
 * that ../shared/bench/torch_cifar.py defaults to: give it --std to compare);
 * CIFAR-100 the usual per-channel statistics; a folder of unknown images
 * 0.5 / 0.5. */
static const data_entry data_table[] = {
    {.name = "mnist", .folder = "mnist", .files = IDX_FILES, .c = 1, .h = 28, .w = 28,
     .nclass = 10, .mean = {0.1307f, 0.1307f, 0.1307f}, .std = {0.3081f, 0.3081f, 0.3081f},
     .probe = idx_probe, .read = idx_read},
    {.name = "fashion-mnist", .folder = "fashion-mnist",
     .system_dir = "/usr/share/datasets/fashion-mnist", .files = IDX_FILES, .c = 1, .h = 28,
     .w = 28, .nclass = 10, .mean = {0.2860f, 0.2860f, 0.2860f},
     .std = {0.3530f, 0.3530f, 0.3530f}, .probe = idx_probe, .read = idx_read},
    {.name = "cifar10", .folder = "cifar-10-batches-bin", .archive = "cifar-10-binary.tar.gz",
     .files = "the folder cifar-10-batches-bin/ (data_batch_1..5.bin, test_batch.bin, "
              "batches.meta.txt), the archive cifar-10-binary.tar.gz, or a folder holding either",
     .c = 3, .h = 32, .w = 32, .nclass = 10, .mean = {0.4914f, 0.4822f, 0.4465f},
     .std = {0.2023f, 0.1994f, 0.2010f}, .probe = cifar_probe, .read = cifar_read},
    {.name = "cifar100", .folder = "cifar-100-binary", .archive = "cifar-100-binary.tar.gz",
     .files = "the folder cifar-100-binary/ (train.bin, test.bin, fine_label_names.txt, "
              "coarse_label_names.txt), the archive cifar-100-binary.tar.gz, or a folder "
              "holding either",
     .c = 3, .h = 32, .w = 32, .nclass = 100, .coarse_nclass = 20,
     .mean = {0.5071f, 0.4865f, 0.4409f}, .std = {0.2673f, 0.2564f, 0.2762f},
     .probe = cifar_probe, .read = cifar_read},
    {.name = "folder", .files = "a folder holding train/<class>/ and test/<class>/ with .png, "
                                ".jpg, .jpeg or .bmp images",
     .shape_from_opts = 1, .mean = {0.5f, 0.5f, 0.5f}, .std = {0.5f, 0.5f, 0.5f},
     .probe = folder_probe, .read = folder_read},
};
#define DATA_NTABLE (sizeof data_table / sizeof data_table[0])

static const data_entry *data_find(const char *name)
{
    for (size_t i = 0; name && i < DATA_NTABLE; i++)
        if (strcmp(data_table[i].name, name) == 0)
            return &data_table[i];
    return NULL;
}

static qat_status data_unknown(const char *fn, const char *name)
{
    char known[256] = "";
    for (size_t i = 0; i < DATA_NTABLE; i++) {
        strncat(known, i == 0 ? "" : i + 1 == DATA_NTABLE ? " or " : ", ",
                sizeof known - strlen(known) - 1);
        strncat(known, data_table[i].name, sizeof known - strlen(known) - 1);
    }
    return qat_error_set(QAT_ERR_ARG, "%s: unknown dataset '%s', expected %s", fn,
                         name ? name : "(null)", known);
}

static qat_status data_copy_out(const char *dir, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s", dir);
    if (n < 0 || (size_t)n >= cap)
        return qat_error_set(QAT_ERR_ARG, "%s: folder name needs %d bytes, the buffer has %zu",
                             dir, n + 1, cap);
    return QAT_OK;
}

qat_status qat_data_info(const char *name, const qat_data_opts *opts, qat_dataset_info *info)
{
    const data_entry *e = data_find(name);
    if (!e)
        return data_unknown("qat_data_info", name);
    if (!info)
        return qat_error_set(QAT_ERR_ARG, "qat_data_info: info is NULL");
    qat_data_opts o = {0};
    if (opts)
        o = *opts;
    memset(info, 0, sizeof *info);
    info->name = e->name;
    info->folder = e->folder;
    info->archive = e->archive;
    info->files = e->files;
    info->c = e->c;
    info->h = e->h;
    info->w = e->w;
    info->nclass = e->nclass;
    info->coarse_nclass = e->coarse_nclass;
    info->shape_from_opts = e->shape_from_opts;
    memcpy(info->mean, e->mean, sizeof info->mean);
    memcpy(info->std, e->std, sizeof info->std);
    if (o.coarse) {
        if (!e->coarse_nclass)
            return qat_error_set(QAT_ERR_ARG, "%s: coarse labels asked for, but only cifar100 has "
                                 "them, expected fine labels", e->name);
        info->nclass = e->coarse_nclass;
    }
    if (!e->shape_from_opts) {
        if (o.c || o.h || o.w || o.resize)
            return qat_error_set(QAT_ERR_ARG, "%s: channels, size and resize are asked for, but "
                                 "%s images are always %dx%dx%d; they apply to the folder dataset",
                                 e->name, e->name, e->c, e->h, e->w);
        return QAT_OK;
    }
    if (o.c != 0 && o.c != 1 && o.c != 3)
        return qat_error_set(QAT_ERR_ARG, "%s: %d channels, expected 1 or 3", e->name, o.c);
    if (o.h < 0 || o.w < 0 || o.h > QAT_DATA_MAX_SIDE || o.w > QAT_DATA_MAX_SIDE ||
        (o.h == 0) != (o.w == 0) || (uint64_t)o.h * (uint64_t)o.w > QAT_DATA_MAX_PIXELS)
        return qat_error_set(QAT_ERR_ARG, "%s: image size %dx%d, expected both 0 (the first "
                             "image's) or both in 1..%d, at most %llu pixels",
                             e->name, o.h, o.w, QAT_DATA_MAX_SIDE,
                             (unsigned long long)QAT_DATA_MAX_PIXELS);
    info->c = o.c ? o.c : 3;
    info->h = o.h;
    info->w = o.w;
    return QAT_OK;
}

qat_status qat_data_locate(const char *name, const char *explicit_dir, char *out, size_t cap)
{
    const data_entry *e = data_find(name);
    if (!e)
        return data_unknown("qat_data_locate", name);
    if (!out || cap == 0)
        return qat_error_set(QAT_ERR_ARG, "qat_data_locate: no output buffer");
    out[0] = '\0';
    char why[256], found[4096];
    if (explicit_dir) {
        if (!e->probe(e, explicit_dir, found, sizeof found, why, sizeof why))
            return qat_error_set(QAT_ERR_IO, "%s: %s, expected for %s %s", explicit_dir, why, name,
                                 e->files);
        return data_copy_out(found, out, cap);
    }
    if (!e->folder)
        return qat_error_set(QAT_ERR_IO, "%s: this dataset has no usual place, expected --data "
                             "DIR naming %s", name, e->files);

    /* Candidates in order; the message lists each with the reason it failed. */
    const char *env = getenv("QAT_DATA");
    const char *bases[2] = {env && env[0] ? env : NULL, "./data"};
    const char *leaves[2] = {e->folder, e->archive};
    char tried[1200];
    size_t used = 0;
    tried[0] = '\0';
    if (!bases[0])
        used += (size_t)snprintf(tried, sizeof tried, "$QAT_DATA/%s (QAT_DATA is not set)",
                                 e->folder);
    for (int b = 0; b < 3; b++) {
        for (int k = 0; k < 2; k++) {
            char cand[4096];
            if (b < 2 && (!bases[b] || !leaves[k]))
                continue;
            if (b == 2 && (k > 0 || !e->system_dir))
                continue;
            if (b < 2)
                snprintf(cand, sizeof cand, "%s/%s", bases[b], leaves[k]);
            else
                snprintf(cand, sizeof cand, "%s", e->system_dir);
            if (e->probe(e, cand, found, sizeof found, why, sizeof why))
                return data_copy_out(found, out, cap);
            if (used < sizeof tried)
                used += (size_t)snprintf(tried + used, sizeof tried - used, "%s%s%s%s%s (%s)",
                                         used ? "; " : "", b == 0 ? "$QAT_DATA/" : "",
                                         b == 0 ? leaves[k] : "", b == 0 ? " = " : "", cand, why);
        }
    }
    return qat_error_set(QAT_ERR_IO,
                         "%s: dataset not found; tried %s; expected %s (set QAT_DATA to the folder "
                         "that contains %s/, pass --data DIR, or run scripts/get-data)",
                         name, tried, e->files, e->folder);
}

qat_status qat_data_load_opts(qat_dataset *train, qat_dataset *test, const char *name,
                              const char *dir, const qat_data_opts *opts)
{
    if (!train || !test || train == test)
        return qat_error_set(QAT_ERR_ARG, "qat_data_load: train and test must be two datasets");
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    const data_entry *e = data_find(name);
    if (!e)
        return data_unknown("qat_data_load", name);
    qat_data_opts o = {0};
    if (opts)
        o = *opts;
    qat_dataset_info info;
    qat_status s = qat_data_info(name, &o, &info);
    if (s)
        return s;

    char found[4096];
    if ((s = qat_data_locate(name, dir, found, sizeof found)))
        return s;
    s = e->read(e, found, &o, train, test);
    if (s == QAT_OK && (train->c != test->c || train->h != test->h || train->w != test->w ||
                        train->nclass != test->nclass))
        s = qat_error_set(QAT_ERR_SHAPE, "%s: test images are %dx%dx%d in %d classes, train "
                          "images %dx%dx%d in %d; expected the same",
                          found, test->c, test->h, test->w, test->nclass, train->c, train->h,
                          train->w, train->nclass);
    if (s == QAT_OK && (data_copy_out(found, train->path, sizeof train->path) ||
                        data_copy_out(found, test->path, sizeof test->path)))
        s = QAT_ERR_ARG;
    if (s) {
        qat_dataset_free(train);
        qat_dataset_free(test);
        return s;
    }
    snprintf(train->name, sizeof train->name, "%s", e->name);
    snprintf(test->name, sizeof test->name, "%s", e->name);
    return QAT_OK;
}

qat_status qat_data_load(qat_dataset *train, qat_dataset *test, const char *name, const char *dir)
{
    return qat_data_load_opts(train, test, name, dir, NULL);
}

qat_status qat_data_default_norm(const char *name, float *mean, float *std, int c)
{
    const data_entry *e = data_find(name);
    if (!e)
        return data_unknown("qat_data_default_norm", name);
    if (!mean || !std || c < 1 || c > 3)
        return qat_error_set(QAT_ERR_ARG, "qat_data_default_norm: c %d, expected 1..3 and two arrays",
                             c);
    for (int i = 0; i < c; i++) {
        mean[i] = e->mean[i];
        std[i] = e->std[i];
    }
    return QAT_OK;
}

qat_status qat_data_split(qat_dataset *train, qat_dataset *val, int nval)
{
    if (!train || !val || train == val)
        return qat_error_set(QAT_ERR_ARG, "qat_data_split: train and val must be two datasets");
    memset(val, 0, sizeof *val);
    if (nval < 0 || nval >= train->n)
        return qat_error_set(QAT_ERR_ARG,
                             "%s: cannot hold out %d of %d images, expected 0 <= nval < %d",
                             train->name, nval, train->n, train->n);
    if (!train->images || !train->labels)
        return qat_error_set(QAT_ERR_ARG, "%s: dataset has no buffers", train->name);

    qat_dataset v = *train;
    v.n = nval;
    v.images = NULL;
    v.labels = NULL;
    v.class_names = NULL;
    if (train->class_names &&
        qat_data_names_set(&v, (const char *const *)train->class_names, train->nclass))
        return QAT_ERR_MEMORY;
    size_t per = (size_t)train->c * (size_t)train->h * (size_t)train->w;
    size_t keep = (size_t)(train->n - nval);
    if (nval > 0) {
        v.images = malloc((size_t)nval * per);
        v.labels = malloc((size_t)nval);
        if (!v.images || !v.labels) {
            qat_dataset_free(&v);
            return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for %d validation images",
                                 train->name, nval);
        }
        memcpy(v.images, train->images + keep * per, (size_t)nval * per);
        memcpy(v.labels, train->labels + keep, (size_t)nval);
    }
    train->n = (int)keep;
    *val = v;
    return QAT_OK;
}

void qat_dataset_free(qat_dataset *ds)
{
    if (!ds)
        return;
    free(ds->images);
    free(ds->labels);
    free(ds->class_names);
    memset(ds, 0, sizeof *ds);
}
