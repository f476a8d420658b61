/* idx.c: the IDX reader (MNIST family), raw or gzip through zlib. Files are
 * hostile: magic, dims, every byte count and every zlib error is checked and
 * reported with the offset where it went wrong, and the buffer only grows as
 * real data arrives, so a lying header cannot make us reserve gigabytes. */
#include "dataset.h"
#include "datautil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* First buffer size: MNIST's 47 MB train images fit in one allocation, a
 * header that claims 16 GiB costs at most this much before the data runs out. */
#define IDX_FIRST_CAP ((size_t)64 << 20)

typedef struct {
    const char *path;
    const char *kind; /* "images" or "labels", for messages */
    gzFile f;
    int ndim;
    uint32_t dims[3];
    uint64_t pos;    /* uncompressed bytes consumed so far */
    uint64_t nbytes; /* data bytes announced by the header */
    int gz;          /* 1: gzip (offsets are in the uncompressed data) */
} idx_file;

static const char *idx_where_gz(int gz) { return gz ? " (uncompressed)" : ""; }
static const char *idx_where(const idx_file *r) { return idx_where_gz(r->gz); }

/* Reads up to len bytes; *got < len only at the end of the file. */
static qat_status idx_fill(idx_file *r, uint8_t *p, size_t len, size_t *got)
{
    return qat_data_gzread(r->f, r->path, &r->pos, p, len, got);
}

static const char *const idx_magic_why[4] = {
    "every IDX file starts with two zero bytes",
    "every IDX file starts with two zero bytes",
    "0x08: unsigned byte data",
    "the number of dimensions",
};

static qat_status idx_short_header(const idx_file *r, size_t got, size_t hlen)
{
    return qat_error_set(QAT_ERR_FORMAT,
                         "%s: byte %zu%s: file ends inside the %zu-byte IDX %s header, "
                         "expected %zu more bytes",
                         r->path, got, idx_where(r), hlen, r->kind, hlen - got);
}

/* Opens path and reads and checks its header: magic 0x0000 08 ndim, then ndim
 * big-endian u32 dims. */
static qat_status idx_open(idx_file *r, const char *path, const char *kind, int ndim)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->kind = kind;
    r->ndim = ndim;
    char what[48];
    snprintf(what, sizeof what, "a readable IDX %s file", kind);
    qat_status s = qat_data_gzopen(&r->f, path, what);
    if (s)
        return s;

    /* The magic first: a wrong file is better named by its magic than by
     * where its too-short header ends. */
    uint8_t h[16];
    size_t hlen = 4 + 4 * (size_t)ndim, got;
    s = idx_fill(r, h, 4, &got);
    r->gz = !gzdirect(r->f);
    if (s)
        return s;
    if (got < 4)
        return idx_short_header(r, got, hlen);
    const uint8_t want[4] = {0, 0, 0x08, (uint8_t)ndim};
    for (int i = 0; i < 4; i++) {
        if (h[i] == want[i])
            continue;
        const char *hint = "";
        if (i == 3 && ndim == 3 && h[3] == 1)
            hint = "; this looks like a labels file given as images";
        else if (i == 3 && ndim == 1 && h[3] == 3)
            hint = "; this looks like an images file given as labels";
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: byte %d%s: magic byte 0x%02x, expected 0x%02x (%s; an IDX %s "
                             "file has magic 0x%08x)%s",
                             path, i, idx_where(r), h[i], want[i], idx_magic_why[i], kind,
                             0x800u | (unsigned)ndim, hint);
    }
    if ((s = idx_fill(r, h + 4, hlen - 4, &got)))
        return s;
    if (got < hlen - 4)
        return idx_short_header(r, 4 + got, hlen);

    static const char *const dim_name[3] = {"count", "height", "width"};
    const uint32_t dim_max[3] = {QAT_DATA_MAX_IMAGES, QAT_DATA_MAX_SIDE, QAT_DATA_MAX_SIDE};
    uint64_t total = 1;
    for (int k = 0; k < ndim; k++) {
        const uint8_t *b = h + 4 + 4 * k;
        uint32_t d = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (d == 0 || d > dim_max[k])
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: byte %d%s: %s %s %u, expected 1..%u", path, 4 + 4 * k,
                                 idx_where(r), kind, dim_name[k], d, dim_max[k]);
        r->dims[k] = d;
        total *= d; /* at most 2^28 * 2^16 * 2^16: no overflow in 64 bits */
    }
    if (total > QAT_DATA_MAX_BYTES)
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: byte 4%s: header announces %llu bytes of %s, expected at most %llu",
                             path, idx_where(r), (unsigned long long)total, kind,
                             (unsigned long long)QAT_DATA_MAX_BYTES);
    r->nbytes = total;
    return QAT_OK;
}

static void idx_describe(const idx_file *r, char *buf, size_t cap)
{
    if (r->ndim == 3)
        snprintf(buf, cap, "%u images of %ux%u", r->dims[0], r->dims[1], r->dims[2]);
    else
        snprintf(buf, cap, "%u labels", r->dims[0]);
}

/* Reads the data after the header into a new buffer (*out, owned by the
 * caller), then makes sure nothing follows it and the gzip stream ends well. */
static qat_status idx_read_body(idx_file *r, uint8_t **out)
{
    *out = NULL;
    char what[96];
    idx_describe(r, what, sizeof what);
    uint64_t hdr = r->pos;
    size_t cap = r->nbytes < IDX_FIRST_CAP ? (size_t)r->nbytes : IDX_FIRST_CAP;
    size_t have = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for %zu bytes of %s", r->path,
                             cap, r->kind);
    qat_status s = QAT_OK;
    while (have < r->nbytes) {
        if (have == cap) {
            size_t ncap = cap * 2 < r->nbytes ? cap * 2 : (size_t)r->nbytes;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                s = qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for %zu bytes of %s",
                                  r->path, ncap, r->kind);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got;
        if ((s = idx_fill(r, buf + have, cap - have, &got)))
            goto fail;
        have += got;
        if (have < cap) {
            s = qat_error_set(QAT_ERR_FORMAT,
                              "%s: byte %llu%s: file ends after %zu of its %llu data bytes, "
                              "expected %llu more bytes (the header announces %s)",
                              r->path, (unsigned long long)r->pos, idx_where(r), have,
                              (unsigned long long)r->nbytes,
                              (unsigned long long)(r->nbytes - have), what);
            goto fail;
        }
    }
    uint8_t extra;
    size_t got;
    if ((s = idx_fill(r, &extra, 1, &got)))
        goto fail;
    if (got) {
        s = qat_error_set(QAT_ERR_FORMAT,
                          "%s: byte %llu%s: data continues after the %s the header announces, "
                          "expected the end of the file",
                          r->path, (unsigned long long)(hdr + r->nbytes), idx_where(r), what);
        goto fail;
    }
    *out = buf;
    return QAT_OK;
fail:
    free(buf);
    return s;
}

/* Closes r; a gzip stream cut short is also reported here (zlib's last word). */
static qat_status idx_close(idx_file *r, qat_status s)
{
    if (!r->f)
        return s;
    int z = gzclose_r(r->f);
    r->f = NULL;
    if (s == QAT_OK && z != Z_OK)
        s = qat_error_set(z == Z_ERRNO ? QAT_ERR_IO : QAT_ERR_FORMAT,
                          "%s: byte %llu (uncompressed): gzip stream does not end properly "
                          "(zlib error %d), expected a complete gzip file",
                          r->path, (unsigned long long)r->pos, z);
    return s;
}

qat_status qat_data_load_idx(qat_dataset *ds, const char *images_path, const char *labels_path,
                             int nclass)
{
    if (!ds)
        return qat_error_set(QAT_ERR_ARG, "qat_data_load_idx: ds is NULL");
    memset(ds, 0, sizeof *ds);
    if (!images_path || !labels_path)
        return qat_error_set(QAT_ERR_ARG, "qat_data_load_idx: a file path is NULL");
    if (nclass < 1 || nclass > 256)
        return qat_error_set(QAT_ERR_ARG,
                             "qat_data_load_idx: nclass %d, expected 1..256 (labels are bytes)",
                             nclass);

    qat_dataset d = {0};
    const char *slash = strrchr(images_path, '/');
    int plen = !slash ? snprintf(d.path, sizeof d.path, ".")
               : slash == images_path
                   ? snprintf(d.path, sizeof d.path, "/")
                   : snprintf(d.path, sizeof d.path, "%.*s", (int)(slash - images_path),
                              images_path);
    if (plen < 0 || (size_t)plen >= sizeof d.path)
        return qat_error_set(QAT_ERR_ARG, "%s: folder name longer than %zu bytes", images_path,
                             sizeof d.path - 1);
    snprintf(d.name, sizeof d.name, "idx");

    idx_file im = {0}, lb = {0};
    qat_status s = idx_open(&im, images_path, "images", 3);
    if (s == QAT_OK)
        s = idx_open(&lb, labels_path, "labels", 1);
    if (s == QAT_OK && im.dims[0] != lb.dims[0])
        s = qat_error_set(QAT_ERR_FORMAT,
                          "%s: byte 4: %u images, but %s: byte 4: %u labels; expected the same "
                          "count in both files (are they from the same set?)",
                          images_path, im.dims[0], labels_path, lb.dims[0]);
    if (s == QAT_OK)
        s = idx_read_body(&im, &d.images);
    s = idx_close(&im, s);
    if (s == QAT_OK)
        s = idx_read_body(&lb, &d.labels);
    s = idx_close(&lb, s);
    if (s == QAT_OK) {
        for (uint32_t i = 0; i < lb.dims[0]; i++) {
            if (d.labels[i] < nclass)
                continue;
            s = qat_error_set(QAT_ERR_FORMAT, "%s: byte %u%s: label %u, expected 0..%d",
                              labels_path, 8 + i, idx_where_gz(lb.gz), d.labels[i], nclass - 1);
            break;
        }
    }
    if (s == QAT_OK)
        s = qat_data_names_numbered(&d, nclass);
    if (s != QAT_OK) {
        free(d.images);
        free(d.labels);
        free(d.class_names);
        return s;
    }
    d.n = (int)im.dims[0];
    d.c = 1;
    d.h = (int)im.dims[1];
    d.w = (int)im.dims[2];
    d.nclass = nclass;
    *ds = d;
    return QAT_OK;
}
