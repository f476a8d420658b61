/* dataset.c: the named datasets (one table), where their folders are looked
 * for, their usual normalisation, the train/validation split, and freeing.
 * Reading the bytes is idx.c's job. */
#include "dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *name;       /* what a cfg says: dataset = NAME */
    const char *folder;     /* its usual folder under $QAT_DATA and ./data */
    const char *system_dir; /* a distribution package's copy, or NULL */
    int nclass;
    float mean, std;        /* per channel, units of pixel/255 */
} data_entry;

static const data_entry data_table[] = {
    {"mnist", "mnist", NULL, 10, 0.1307f, 0.3081f},
    {"fashion-mnist", "fashion-mnist", "/usr/share/datasets/fashion-mnist", 10, 0.2860f, 0.3530f},
};
#define DATA_NTABLE (sizeof data_table / sizeof data_table[0])

/* The official file names, in the order train images, train labels, test
 * images, test labels. */
static const char *const data_files[4] = {
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
};

#define DATA_FILES_HELP                                                                        \
    "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz] " \
    "and t10k-labels-idx1-ubyte[.gz]"

static const data_entry *data_find(const char *name)
{
    for (size_t i = 0; name && i < DATA_NTABLE; i++)
        if (strcmp(data_table[i].name, name) == 0)
            return &data_table[i];
    return NULL;
}

static qat_status data_unknown(const char *fn, const char *name)
{
    return qat_error_set(QAT_ERR_ARG, "%s: unknown dataset '%s', expected mnist or fashion-mnist",
                         fn, name ? name : "(null)");
}

static int data_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Writes dir/base.gz, or dir/base if only that exists, into out; 0 if neither
 * exists or the name does not fit. The .gz wins because it is what the official
 * site and Debian ship, a stray unpacked copy may be stale. */
static int data_pick_file(const char *dir, const char *base, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s.gz", dir, base);
    if (n > 0 && (size_t)n < cap && data_is_file(out))
        return 1;
    n = snprintf(out, cap, "%s/%s", dir, base);
    return n > 0 && (size_t)n < cap && data_is_file(out);
}

/* 1 if dir holds all four files; otherwise why not, in why. */
static int data_dir_ok(const char *dir, char *why, size_t cap)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(why, cap, "%s", strerror(errno));
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, cap, "not a folder");
        return 0;
    }
    char path[4096];
    for (int i = 0; i < 4; i++) {
        if (!data_pick_file(dir, data_files[i], path, sizeof path)) {
            snprintf(why, cap, "no %s[.gz] in it", data_files[i]);
            return 0;
        }
    }
    return 1;
}

static qat_status data_copy_out(const char *dir, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s", dir);
    if (n < 0 || (size_t)n >= cap)
        return qat_error_set(QAT_ERR_ARG, "%s: folder name needs %d bytes, the buffer has %zu",
                             dir, n + 1, cap);
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
    char why[256];
    if (explicit_dir) {
        if (!data_dir_ok(explicit_dir, why, sizeof why))
            return qat_error_set(QAT_ERR_IO, "%s: %s, expected a %s folder holding " DATA_FILES_HELP,
                                 explicit_dir, why, name);
        return data_copy_out(explicit_dir, out, cap);
    }

    /* Candidates in order; the message lists each with the reason it failed. */
    char cand[3][4096];
    int ncand = 0, from_env = 0;
    char tried[900];
    size_t used = 0;
    const char *env = getenv("QAT_DATA");
    if (env && env[0]) {
        snprintf(cand[ncand++], sizeof cand[0], "%s/%s", env, e->folder);
        from_env = 1;
    } else {
        used += (size_t)snprintf(tried, sizeof tried, "$QAT_DATA/%s (QAT_DATA is not set)",
                                 e->folder);
    }
    snprintf(cand[ncand++], sizeof cand[0], "./data/%s", e->folder);
    if (e->system_dir)
        snprintf(cand[ncand++], sizeof cand[0], "%s", e->system_dir);
    for (int i = 0; i < ncand; i++) {
        if (data_dir_ok(cand[i], why, sizeof why))
            return data_copy_out(cand[i], out, cap);
        if (used < sizeof tried)
            used += (size_t)snprintf(tried + used, sizeof tried - used, "%s%s%s%s%s (%s)",
                                     used ? "; " : "", i == 0 && from_env ? "$QAT_DATA/" : "",
                                     i == 0 && from_env ? e->folder : "",
                                     i == 0 && from_env ? " = " : "", cand[i], why);
    }
    return qat_error_set(QAT_ERR_IO,
                         "%s: dataset not found; tried %s; expected a folder holding " DATA_FILES_HELP
                         " (set QAT_DATA to the folder that contains %s/, pass --data DIR, or run "
                         "scripts/get-data)",
                         name, tried, e->folder);
}

qat_status qat_data_load(qat_dataset *train, qat_dataset *test, const char *name, const char *dir)
{
    if (!train || !test || train == test)
        return qat_error_set(QAT_ERR_ARG, "qat_data_load: train and test must be two datasets");
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    const data_entry *e = data_find(name);
    if (!e)
        return data_unknown("qat_data_load", name);

    char found[4096];
    qat_status s = qat_data_locate(name, dir, found, sizeof found);
    if (s)
        return s;
    char path[4][4096];
    for (int i = 0; i < 4; i++)
        if (!data_pick_file(found, data_files[i], path[i], sizeof path[i]))
            return qat_error_set(QAT_ERR_IO, "%s/%s: no such file (nor with .gz), expected the %s file",
                                 found, data_files[i], name);

    s = qat_data_load_idx(train, path[0], path[1], e->nclass);
    if (s == QAT_OK)
        s = qat_data_load_idx(test, path[2], path[3], e->nclass);
    if (s == QAT_OK && (train->c != test->c || train->h != test->h || train->w != test->w))
        s = qat_error_set(QAT_ERR_SHAPE, "%s: test images are %dx%d, train images (%s) %dx%d; "
                          "expected the same size",
                          path[2], test->h, test->w, path[0], train->h, train->w);
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

qat_status qat_data_default_norm(const char *name, float *mean, float *std, int c)
{
    const data_entry *e = data_find(name);
    if (!e)
        return data_unknown("qat_data_default_norm", name);
    if (!mean || !std || c < 1)
        return qat_error_set(QAT_ERR_ARG, "qat_data_default_norm: c %d, expected >= 1 and two arrays", c);
    for (int i = 0; i < c; i++) {
        mean[i] = e->mean;
        std[i] = e->std;
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
    size_t per = (size_t)train->c * (size_t)train->h * (size_t)train->w;
    size_t keep = (size_t)(train->n - nval);
    if (nval > 0) {
        v.images = malloc((size_t)nval * per);
        v.labels = malloc((size_t)nval);
        if (!v.images || !v.labels) {
            free(v.images);
            free(v.labels);
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
    memset(ds, 0, sizeof *ds);
}
