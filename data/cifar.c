/* cifar.c: CIFAR-10 and CIFAR-100 in their official binary layout, from the
 * batches folder or straight from the official .tar.gz (tar.c over zlib).
 * Records are checked one by one, buffers grow only as records arrive, and
 * errors name the file, the record and the byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "datautil.h"
#include "tar.h"

#define CIFAR_PIXELS 3072                /* 3 planes of 32x32 */
#define CIFAR_MAX_META ((size_t)1 << 16) /* a names file is a few hundred bytes */
#define CIFAR_MAX_PARTS 8

typedef struct {
    int which;                   /* 10 or 100 */
    const char *title;           /* for messages */
    const char *folder;          /* the batches folder, also the top folder in the archive */
    const char *archive;
    const char *const *parts;    /* train files in order, then the test file */
    int ntrain;
    int official[2];             /* records of an official train / test file */
    const char *meta_fine;       /* names of the (fine) labels */
    const char *meta_coarse;     /* names of the coarse labels, or NULL */
    int label_bytes;             /* CIFAR-100: coarse byte, then fine byte */
    int nfine, ncoarse;
} cifar_fmt;

static const char *const cifar10_parts[] = {"data_batch_1.bin", "data_batch_2.bin",
                                             "data_batch_3.bin", "data_batch_4.bin",
                                             "data_batch_5.bin", "test_batch.bin"};
static const char *const cifar100_parts[] = {"train.bin", "test.bin"};

static const cifar_fmt cifar_fmts[2] = {
    {10, "CIFAR-10", "cifar-10-batches-bin", "cifar-10-binary.tar.gz", cifar10_parts, 5,
     {10000, 10000}, "batches.meta.txt", NULL, 1, 10, 0},
    {100, "CIFAR-100", "cifar-100-binary", "cifar-100-binary.tar.gz", cifar100_parts, 1,
     {50000, 10000}, "fine_label_names.txt", "coarse_label_names.txt", 2, 100, 20},
};

static const cifar_fmt *cifar_find(int which)
{
    for (int i = 0; i < 2; i++)
        if (cifar_fmts[i].which == which)
            return &cifar_fmts[i];
    return NULL;
}

static int cifar_nparts(const cifar_fmt *f) { return f->ntrain + 1; }

/* ---- where the files are ------------------------------------------------- */

/* 1 if dir holds every data file of f; else the first missing one in why. */
static int cifar_dir_has(const cifar_fmt *f, const char *dir, char *why, size_t wcap)
{
    char p[4200];
    for (int i = 0; i < cifar_nparts(f); i++) {
        int k = snprintf(p, sizeof p, "%s/%s", dir, f->parts[i]);
        if (k < 0 || (size_t)k >= sizeof p || !qat_data_is_file(p)) {
            snprintf(why, wcap, "no %s in it", f->parts[i]);
            return 0;
        }
    }
    return 1;
}

int qat_data_cifar_probe(int which, const char *path, char *out, size_t cap, char *why,
                         size_t wcap)
{
    const cifar_fmt *f = cifar_find(which);
    char p[4200];
    if (!f) {
        snprintf(why, wcap, "not a CIFAR variant");
        return 0;
    }
    if (qat_data_is_file(path)) { /* an archive: its bytes are checked when read */
        snprintf(out, cap, "%s", path);
        return 1;
    }
    if (!qat_data_is_dir(path)) {
        snprintf(why, wcap, "no such file or folder");
        return 0;
    }
    if (cifar_dir_has(f, path, why, wcap)) {
        snprintf(out, cap, "%s", path);
        return 1;
    }
    /* unpacked files first: they read faster than the archive */
    char inner_why[256];
    snprintf(p, sizeof p, "%s/%s", path, f->folder);
    if (qat_data_is_dir(p) && cifar_dir_has(f, p, inner_why, sizeof inner_why)) {
        snprintf(out, cap, "%s", p);
        return 1;
    }
    snprintf(p, sizeof p, "%s/%s", path, f->archive);
    if (qat_data_is_file(p)) {
        snprintf(out, cap, "%s", p);
        return 1;
    }
    snprintf(why, wcap, "no %s in it, nor %s or %s/", f->parts[0], f->archive, f->folder);
    return 0;
}

/* ---- records --------------------------------------------------------------- */

/* Where one source's bytes come from: a file (through zlib, so a gzipped
 * batch reads too) or the current member of an archive. */
typedef struct {
    gzFile f;
    qat_tar *tar;
    const char *path;
    uint64_t pos;
} cifar_src;

static qat_status cifar_src_read(cifar_src *s, void *buf, size_t len, size_t *got)
{
    if (s->tar)
        return qat_tar_read(s->tar, buf, len, got);
    return qat_data_gzread(s->f, s->path, &s->pos, buf, len, got);
}

/* One split being filled: records in the order their files arrive, each
 * file's run remembered so that the runs can be put in file order. */
typedef struct {
    uint8_t *images, *labels;
    size_t n, cap;
    size_t start[CIFAR_MAX_PARTS], count[CIFAR_MAX_PARTS];
    int seen[CIFAR_MAX_PARTS];
} cifar_split;

static qat_status cifar_grow(cifar_split *sp, const char *where)
{
    if (sp->n < sp->cap)
        return QAT_OK;
    if (sp->n >= QAT_DATA_MAX_IMAGES)
        return qat_error_set(QAT_ERR_FORMAT, "%s: more than %d records in one split, expected a "
                             "CIFAR set", where, QAT_DATA_MAX_IMAGES);
    size_t ncap = sp->cap ? sp->cap * 2 : 1024;
    uint8_t *im = realloc(sp->images, ncap * CIFAR_PIXELS);
    if (!im)
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for %zu images", where, ncap);
    sp->images = im;
    uint8_t *lb = realloc(sp->labels, ncap);
    if (!lb)
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for %zu labels", where, ncap);
    sp->labels = lb;
    sp->cap = ncap;
    return QAT_OK;
}

/* Reads every record of one file (part `part` of f) from src into sp. */
static qat_status cifar_take(const cifar_fmt *f, int part, int coarse, cifar_src *src,
                             const char *where, cifar_split *sp)
{
    const int rec = f->label_bytes + CIFAR_PIXELS;
    const int official = f->official[part >= f->ntrain];
    sp->start[part] = sp->n;
    sp->seen[part] = 1;
    uint64_t k = 0;
    qat_status s;
    for (;; k++) {
        if ((s = cifar_grow(sp, where)))
            return s;
        uint8_t lab[2];
        size_t got, got2 = 0;
        if ((s = cifar_src_read(src, lab, (size_t)f->label_bytes, &got)))
            return s;
        if (got == 0)
            break;
        if (got == (size_t)f->label_bytes &&
            (s = cifar_src_read(src, sp->images + sp->n * CIFAR_PIXELS, CIFAR_PIXELS, &got2)))
            return s;
        uint64_t at = k * (uint64_t)rec;
        if (got + got2 < (size_t)rec)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: byte %llu: file ends inside record %llu (bytes %llu..%llu): "
                                 "file truncated, expected whole records of %d bytes (the "
                                 "official file holds %d records, %llu bytes)",
                                 where, (unsigned long long)(at + got + got2),
                                 (unsigned long long)k, (unsigned long long)at,
                                 (unsigned long long)(at + (uint64_t)rec - 1), rec, official,
                                 (unsigned long long)official * (unsigned long long)rec);
        int label;
        if (f->label_bytes == 1) {
            if (lab[0] >= f->nfine)
                return qat_error_set(QAT_ERR_FORMAT, "%s: byte %llu: record %llu has label %u, "
                                     "expected 0..%d",
                                     where, (unsigned long long)at, (unsigned long long)k, lab[0],
                                     f->nfine - 1);
            label = lab[0];
        } else {
            if (lab[0] >= f->ncoarse)
                return qat_error_set(QAT_ERR_FORMAT, "%s: byte %llu: record %llu has coarse label "
                                     "%u, expected 0..%d",
                                     where, (unsigned long long)at, (unsigned long long)k, lab[0],
                                     f->ncoarse - 1);
            if (lab[1] >= f->nfine)
                return qat_error_set(QAT_ERR_FORMAT, "%s: byte %llu: record %llu has fine label "
                                     "%u, expected 0..%d",
                                     where, (unsigned long long)at + 1, (unsigned long long)k,
                                     lab[1], f->nfine - 1);
            label = coarse ? lab[0] : lab[1];
        }
        sp->labels[sp->n++] = (uint8_t)label;
    }
    if (k == 0)
        return qat_error_set(QAT_ERR_FORMAT, "%s: byte 0: file is empty, expected records of %d "
                             "bytes (the official file holds %d)", where, rec, official);
    sp->count[part] = (size_t)k;
    return QAT_OK;
}

/* The runs arrived in archive order; file order is the dataset's order (the
 * last training images are the validation split). One in-place permutation,
 * each record moved once, needs no second copy of the images. */
static qat_status cifar_order(cifar_split *sp, int first, int nparts)
{
    size_t canon[CIFAR_MAX_PARTS], at = 0;
    int sorted = 1;
    for (int p = first; p < first + nparts; p++) {
        canon[p] = at;
        sorted &= sp->start[p] == at;
        at += sp->count[p];
    }
    if (sorted)
        return QAT_OK;
    uint8_t *done = calloc((sp->n + 7) / 8, 1);
    if (!done)
        return qat_error_set(QAT_ERR_MEMORY, "out of memory ordering %zu CIFAR records", sp->n);
    uint8_t carry[CIFAR_PIXELS], held[CIFAR_PIXELS];
    for (size_t i = 0; i < sp->n; i++) {
        if (done[i / 8] >> (i % 8) & 1)
            continue;
        memcpy(carry, sp->images + i * CIFAR_PIXELS, CIFAR_PIXELS);
        uint8_t carry_label = sp->labels[i];
        size_t j = i, d;
        do {
            int p = first;
            while (!(j >= sp->start[p] && j < sp->start[p] + sp->count[p]))
                p++;
            d = canon[p] + (j - sp->start[p]);
            uint8_t *slot = sp->images + d * CIFAR_PIXELS;
            memcpy(held, slot, CIFAR_PIXELS);
            memcpy(slot, carry, CIFAR_PIXELS);
            memcpy(carry, held, CIFAR_PIXELS);
            uint8_t l = sp->labels[d];
            sp->labels[d] = carry_label;
            carry_label = l;
            done[d / 8] |= (uint8_t)(1u << (d % 8));
            j = d;
        } while (d != i);
    }
    free(done);
    return QAT_OK;
}

/* ---- the two sources ---------------------------------------------------------- */

typedef struct {
    const cifar_fmt *f;
    int coarse;
    cifar_split split[2]; /* train, test */
    char *meta;           /* the names file, if found */
    size_t meta_len;
    char meta_where[4400];
} cifar_read;

static cifar_split *cifar_split_of(cifar_read *r, int part)
{
    return &r->split[part >= r->f->ntrain];
}

static const char *cifar_meta_name(const cifar_read *r)
{
    return r->coarse ? r->f->meta_coarse : r->f->meta_fine;
}

/* Reads a names file of at most CIFAR_MAX_META bytes. */
static qat_status cifar_take_meta(cifar_read *r, cifar_src *src, const char *where)
{
    r->meta = malloc(CIFAR_MAX_META + 1);
    if (!r->meta)
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory", where);
    qat_status s = cifar_src_read(src, r->meta, CIFAR_MAX_META + 1, &r->meta_len);
    if (s)
        return s;
    if (r->meta_len > CIFAR_MAX_META)
        return qat_error_set(QAT_ERR_FORMAT, "%s: byte %zu: names file continues past %zu bytes, "
                             "expected a short text of one class name per line",
                             where, CIFAR_MAX_META, CIFAR_MAX_META);
    snprintf(r->meta_where, sizeof r->meta_where, "%s", where);
    return QAT_OK;
}

static qat_status cifar_from_dir(cifar_read *r, const char *dir)
{
    char path[4400], what[64];
    qat_status s = QAT_OK;
    snprintf(what, sizeof what, "a %s file", r->f->title);
    for (int p = 0; p < cifar_nparts(r->f) && s == QAT_OK; p++) {
        snprintf(path, sizeof path, "%s/%s", dir, r->f->parts[p]);
        cifar_src src = {.path = path};
        if ((s = qat_data_gzopen(&src.f, path, what)))
            break;
        s = cifar_take(r->f, p, r->coarse, &src, path, cifar_split_of(r, p));
        gzclose_r(src.f);
    }
    snprintf(path, sizeof path, "%s/%s", dir, cifar_meta_name(r));
    if (s == QAT_OK && qat_data_is_file(path)) {
        cifar_src src = {.path = path};
        if ((s = qat_data_gzopen(&src.f, path, "a text of class names")) == QAT_OK) {
            s = cifar_take_meta(r, &src, path);
            gzclose_r(src.f);
        }
    }
    return s;
}

static qat_status cifar_from_archive(cifar_read *r, const char *archive)
{
    qat_tar *t;
    qat_status s = qat_tar_open(&t, archive);
    if (s)
        return s;
    const cifar_fmt *f = r->f;
    const char *meta = cifar_meta_name(r);
    uint64_t first_header[CIFAR_MAX_PARTS + 1];
    int found = 0, want = cifar_nparts(f) + 1;
    qat_tar_member *m = malloc(sizeof *m);
    if (!m) {
        qat_tar_close(t);
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory", archive);
    }
    char where[QAT_TAR_MAX_NAME + 600];
    int more = 1;
    while (s == QAT_OK && found < want && (s = qat_tar_next(t, m, &more)) == QAT_OK && more) {
        size_t fl = strlen(f->folder);
        if (strncmp(m->name, f->folder, fl) != 0 || m->name[fl] != '/')
            continue;
        const char *leaf = m->name + fl + 1;
        int part = -1;
        for (int p = 0; p < cifar_nparts(f); p++)
            if (strcmp(leaf, f->parts[p]) == 0)
                part = p;
        if (part < 0 && strcmp(leaf, meta) == 0)
            part = cifar_nparts(f);
        if (part < 0)
            continue;
        snprintf(where, sizeof where, "%s(%s)", archive, m->name);
        int seen = part < cifar_nparts(f) ? cifar_split_of(r, part)->seen[part] : r->meta != NULL;
        if (seen) {
            s = qat_error_set(QAT_ERR_FORMAT, "%s: byte %llu: member '%s' appears again (first "
                              "header at byte %llu), expected it once",
                              archive, (unsigned long long)m->header_at, m->name,
                              (unsigned long long)first_header[part]);
            break;
        }
        if (m->type != '0') {
            s = qat_error_set(QAT_ERR_FORMAT, "%s: byte %llu: member '%s' has tar type '%c', "
                              "expected a regular file ('0')",
                              archive, (unsigned long long)m->header_at, m->name, m->type);
            break;
        }
        first_header[part] = m->header_at;
        found++;
        cifar_src src = {.tar = t, .path = archive};
        if (part < cifar_nparts(f))
            s = cifar_take(f, part, r->coarse, &src, where, cifar_split_of(r, part));
        else
            s = cifar_take_meta(r, &src, where);
    }
    for (int p = 0; s == QAT_OK && p < cifar_nparts(f); p++)
        if (!cifar_split_of(r, p)->seen[p])
            s = qat_error_set(QAT_ERR_FORMAT, "%s: no member %s/%s, expected the official %s "
                              "archive (%s) holding it",
                              archive, f->folder, f->parts[p], f->title, f->archive);
    free(m);
    qat_tar_close(t);
    return s;
}

static void cifar_read_free(cifar_read *r)
{
    for (int i = 0; i < 2; i++) {
        free(r->split[i].images);
        free(r->split[i].labels);
    }
    free(r->meta);
}

/* Hands split sp over to ds (buffers trimmed to what they hold). */
static void cifar_give(cifar_split *sp, qat_dataset *ds, int nclass)
{
    uint8_t *im = realloc(sp->images, sp->n * CIFAR_PIXELS);
    uint8_t *lb = realloc(sp->labels, sp->n);
    ds->images = im ? im : sp->images;
    ds->labels = lb ? lb : sp->labels;
    sp->images = sp->labels = NULL;
    ds->n = (int)sp->n;
    ds->c = 3;
    ds->h = ds->w = 32;
    ds->nclass = nclass;
}

qat_status qat_data_load_cifar(qat_dataset *train, qat_dataset *test, const char *path,
                               int which, int coarse)
{
    if (!train || !test || train == test)
        return qat_error_set(QAT_ERR_ARG, "qat_data_load_cifar: train and test must be two "
                             "datasets");
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    const cifar_fmt *f = cifar_find(which);
    if (!f || !path)
        return qat_error_set(QAT_ERR_ARG, "qat_data_load_cifar: CIFAR-%d, expected 10 or 100 "
                             "and a path", which);
    if (coarse && !f->meta_coarse)
        return qat_error_set(QAT_ERR_ARG, "%s: coarse labels asked for, expected them only of "
                             "CIFAR-100", path);
    cifar_read r = {.f = f, .coarse = coarse != 0};
    qat_status s = qat_data_is_dir(path) ? cifar_from_dir(&r, path) : cifar_from_archive(&r, path);
    if (s == QAT_OK)
        s = cifar_order(&r.split[0], 0, f->ntrain);
    if (s == QAT_OK)
        s = cifar_order(&r.split[1], f->ntrain, 1);
    int nclass = coarse ? f->ncoarse : f->nfine;
    qat_dataset d[2];
    memset(d, 0, sizeof d);
    for (int i = 0; i < 2; i++) {
        snprintf(d[i].name, sizeof d[i].name, "cifar%d", which);
        snprintf(d[i].path, sizeof d[i].path, "%s", path);
    }
    if (s == QAT_OK)
        s = r.meta ? qat_data_names_parse(&d[0], r.meta_where, r.meta, r.meta_len, nclass)
                   : qat_data_names_numbered(&d[0], nclass);
    if (s == QAT_OK)
        s = qat_data_names_set(&d[1], (const char *const *)d[0].class_names, nclass);
    if (s != QAT_OK) {
        cifar_read_free(&r);
        qat_dataset_free(&d[0]);
        qat_dataset_free(&d[1]);
        return s;
    }
    cifar_give(&r.split[0], &d[0], nclass);
    cifar_give(&r.split[1], &d[1], nclass);
    cifar_read_free(&r);
    *train = d[0];
    *test = d[1];
    return QAT_OK;
}
