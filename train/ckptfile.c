/* ckptfile.c: the checkpoint container (format in ckptfile.h). The writer
 * streams records into a temp file and keeps a running CRC so that a commit
 * only patches the count and renames; the reader validates every byte. */
#include "ckptfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const uint8_t MAGIC[8] = {'Q', 'A', 'T', 'C', 'K', 'P', 'T', '\0'};
enum { HEADER_SIZE = 16, TRAILER_SIZE = 4, MIN_RECORD = 2 + 1 + 1 + 1 + 8, MAX_NAME = 255 };

size_t qat_ckpt_dtype_size(int dtype)
{
    static const size_t sizes[QAT_CKPT_NDTYPES] = {
        [QAT_CKPT_BYTES] = 1, [QAT_CKPT_F32] = 4, [QAT_CKPT_I32] = 4, [QAT_CKPT_U64] = 8};
    return dtype >= 0 && dtype < QAT_CKPT_NDTYPES ? sizes[dtype] : 0;
}

static const char *dtype_name(int dtype)
{
    static const char *const names[QAT_CKPT_NDTYPES] = {
        [QAT_CKPT_BYTES] = "bytes", [QAT_CKPT_F32] = "f32", [QAT_CKPT_I32] = "i32",
        [QAT_CKPT_U64] = "u64"};
    return dtype >= 0 && dtype < QAT_CKPT_NDTYPES ? names[dtype] : "?";
}

/* ---- little-endian bytes ---- */

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* zlib's crc32 takes a uInt length: feed it in slices. */
static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return crc;
}

/* Host-order element i of a dtype array as an integer bit pattern. */
static uint64_t host_elem(const uint8_t *src, int dtype, size_t i)
{
    switch (dtype) {
    case QAT_CKPT_F32:
    case QAT_CKPT_I32: {
        uint32_t v;
        memcpy(&v, src + 4 * i, 4);
        return v;
    }
    case QAT_CKPT_U64: {
        uint64_t v;
        memcpy(&v, src + 8 * i, 8);
        return v;
    }
    default:
        return src[i];
    }
}

/* ---- writer ---- */

struct qat_ckpt_writer {
    FILE *f;
    char *path, *tmp, *dir;
    uint32_t count;
    uint32_t crc;  /* CRC of the bytes after the header */
    uint64_t len;  /* number of bytes after the header */
    char **names;  /* for duplicate detection */
    int nnames, capnames;
    qat_status failed; /* sticky after a write error */
    char err[768];
    uint8_t stage[1 << 16];
};

static void writer_free(qat_ckpt_writer *w)
{
    for (int i = 0; i < w->nnames; i++) free(w->names[i]);
    free(w->names);
    free(w->path);
    free(w->tmp);
    free(w->dir);
    free(w);
}

void qat_ckpt_writer_abort(qat_ckpt_writer *w)
{
    if (!w) return;
    if (w->f) fclose(w->f);
    if (w->tmp) unlink(w->tmp);
    writer_free(w);
}

/* Records a write error, poisons the writer and returns the status. */
static qat_status writer_fail(qat_ckpt_writer *w, qat_status st)
{
    w->failed = st;
    snprintf(w->err, sizeof w->err, "%s", qat_last_error());
    return st;
}

static qat_status write_raw(qat_ckpt_writer *w, const uint8_t *p, size_t n, int crc)
{
    if (n == 0) return QAT_OK;
    if (fwrite(p, 1, n, w->f) != n)
        return writer_fail(w, qat_error_set(QAT_ERR_IO, "%s: cannot write temp file %s: %s",
                                            w->path, w->tmp, strerror(errno)));
    if (crc) {
        w->crc = crc_update(w->crc, p, n);
        w->len += n;
    }
    return QAT_OK;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

qat_status qat_ckpt_writer_open(qat_ckpt_writer **wp, const char *path)
{
    QAT_ASSERT(wp != NULL && path != NULL);
    *wp = NULL;
    if (!*path) return qat_error_set(QAT_ERR_ARG, "checkpoint path is empty");
    qat_ckpt_writer *w = calloc(1, sizeof *w);
    if (!w) return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory opening checkpoint", path);
    size_t n = strlen(path);
    w->path = dup_str(path);
    w->tmp = malloc(n + sizeof ".tmp.XXXXXX");
    w->dir = malloc(n + 2);
    if (!w->path || !w->tmp || !w->dir) {
        writer_free(w);
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory opening checkpoint", path);
    }
    memcpy(w->tmp, path, n);
    memcpy(w->tmp + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    const char *slash = strrchr(path, '/');
    if (!slash) strcpy(w->dir, ".");
    else if (slash == path) strcpy(w->dir, "/");
    else {
        memcpy(w->dir, path, (size_t)(slash - path));
        w->dir[slash - path] = '\0';
    }

    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        qat_status st = qat_error_set(QAT_ERR_IO, "%s: cannot create temp file %s: %s", path,
                                      w->tmp, strerror(errno));
        free(w->tmp);
        w->tmp = NULL; /* nothing to remove */
        qat_ckpt_writer_abort(w);
        return st;
    }
    /* mkstemp makes 0600; a checkpoint is an ordinary output file */
    if (fchmod(fd, 0644) != 0 || !(w->f = fdopen(fd, "wb"))) {
        qat_status st = qat_error_set(QAT_ERR_IO, "%s: cannot open temp file %s: %s", path,
                                      w->tmp, strerror(errno));
        if (!w->f) close(fd);
        qat_ckpt_writer_abort(w);
        return st;
    }
    uint8_t hdr[HEADER_SIZE];
    memcpy(hdr, MAGIC, 8);
    put_le(hdr + 8, QAT_CKPT_VERSION, 4);
    put_le(hdr + 12, 0, 4); /* patched by commit */
    qat_status st = write_raw(w, hdr, sizeof hdr, 0);
    if (st != QAT_OK) {
        qat_ckpt_writer_abort(w);
        return st;
    }
    *wp = w;
    return QAT_OK;
}

qat_status qat_ckpt_writer_add(qat_ckpt_writer *w, const char *name, int dtype, int ndim,
                               const int *dims, const void *data, size_t nbytes)
{
    QAT_ASSERT(w != NULL && name != NULL);
    if (w->failed) return qat_error_set(w->failed, "%s", w->err);
    const char *p = w->path;
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > MAX_NAME)
        return qat_error_set(QAT_ERR_ARG, "%s: record name '%.40s' must have 1..%d bytes, not %zu",
                             p, name, MAX_NAME, nlen);
    size_t esize = qat_ckpt_dtype_size(dtype);
    if (esize == 0)
        return qat_error_set(QAT_ERR_ARG, "%s: record '%s': unknown dtype %d", p, name, dtype);
    if (ndim < 0 || ndim > QAT_CKPT_MAX_DIMS)
        return qat_error_set(QAT_ERR_ARG, "%s: record '%s': ndim %d is not in 0..%d", p, name,
                             ndim, QAT_CKPT_MAX_DIMS);
    if (ndim > 0 && !dims)
        return qat_error_set(QAT_ERR_ARG, "%s: record '%s': dims is NULL", p, name);
    if (nbytes > 0 && !data)
        return qat_error_set(QAT_ERR_ARG, "%s: record '%s': data is NULL", p, name);
    if (ndim > 0) {
        uint64_t need = esize;
        for (int i = 0; i < ndim; i++) {
            if (dims[i] < 0)
                return qat_error_set(QAT_ERR_ARG, "%s: record '%s': dims[%d] = %d is negative", p,
                                     name, i, dims[i]);
            if (dims[i] > 0 && need > UINT64_MAX / (uint64_t)dims[i])
                return qat_error_set(QAT_ERR_ARG, "%s: record '%s': dims overflow", p, name);
            need *= (uint64_t)dims[i];
        }
        if (need != nbytes)
            return qat_error_set(QAT_ERR_ARG,
                                 "%s: record '%s': %zu bytes given, dims of %s need %llu", p, name,
                                 nbytes, dtype_name(dtype), (unsigned long long)need);
    } else if (nbytes % esize != 0) {
        return qat_error_set(QAT_ERR_ARG, "%s: record '%s': %zu bytes is not a whole number of %s",
                             p, name, nbytes, dtype_name(dtype));
    }
    for (int i = 0; i < w->nnames; i++)
        if (strcmp(w->names[i], name) == 0)
            return qat_error_set(QAT_ERR_ARG, "%s: duplicate record name '%s'", p, name);
    if (w->count >= (uint32_t)INT_MAX)
        return qat_error_set(QAT_ERR_ARG, "%s: too many records", p);
    if (w->nnames == w->capnames) {
        int cap = w->capnames ? w->capnames * 2 : 16;
        char **nn = realloc(w->names, (size_t)cap * sizeof *nn);
        if (!nn) return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory", p);
        w->names = nn;
        w->capnames = cap;
    }
    char *copy = dup_str(name);
    if (!copy) return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory", p);
    w->names[w->nnames++] = copy;

    /* From here on a failure leaves a half-written record: poison. */
    uint8_t head[2 + MAX_NAME + 2 + 4 * QAT_CKPT_MAX_DIMS + 8];
    size_t h = 0;
    put_le(head, nlen, 2);
    h += 2;
    memcpy(head + h, name, nlen);
    h += nlen;
    head[h++] = (uint8_t)dtype;
    head[h++] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++, h += 4) put_le(head + h, (uint32_t)dims[i], 4);
    put_le(head + h, nbytes, 8);
    h += 8;
    qat_status st = write_raw(w, head, h, 1);
    if (st != QAT_OK) return st;

    const uint8_t *src = data;
    size_t nelem = nbytes / esize, per = sizeof w->stage / esize;
    for (size_t i = 0; i < nelem; i += per) {
        size_t k = nelem - i < per ? nelem - i : per;
        if (dtype == QAT_CKPT_BYTES) {
            st = write_raw(w, src + i, k, 1);
        } else {
            for (size_t j = 0; j < k; j++)
                put_le(w->stage + j * esize, host_elem(src, dtype, i + j), (int)esize);
            st = write_raw(w, w->stage, k * esize, 1);
        }
        if (st != QAT_OK) return st;
    }
    w->count++;
    return QAT_OK;
}

static qat_status sync_dir(const char *dir, const char *path)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return qat_error_set(QAT_ERR_IO, "%s: written, but cannot open directory %s to sync it: %s",
                             path, dir, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL) /* some filesystems cannot sync directories */
        return qat_error_set(QAT_ERR_IO, "%s: written, but syncing directory %s failed: %s", path,
                             dir, strerror(err));
    return QAT_OK;
}

qat_status qat_ckpt_writer_commit(qat_ckpt_writer *w)
{
    QAT_ASSERT(w != NULL);
    if (w->failed) {
        qat_status st = qat_error_set(w->failed, "%s", w->err);
        qat_ckpt_writer_abort(w);
        return st;
    }
    uint8_t hdr[HEADER_SIZE], tail[TRAILER_SIZE];
    memcpy(hdr, MAGIC, 8);
    put_le(hdr + 8, QAT_CKPT_VERSION, 4);
    put_le(hdr + 12, w->count, 4);
    /* CRC(header || rest) from CRC(header) and the running CRC(rest) */
    uint64_t zmax = sizeof(z_off_t) >= 8 ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX;
    if (w->len > zmax) {
        qat_status st = qat_error_set(QAT_ERR_IO, "%s: checkpoint too large for zlib's crc32_combine",
                                      w->path);
        qat_ckpt_writer_abort(w);
        return st;
    }
    uint32_t crc = crc_update((uint32_t)crc32(0, Z_NULL, 0), hdr, sizeof hdr);
    crc = (uint32_t)crc32_combine(crc, w->crc, (z_off_t)w->len);
    put_le(tail, crc, 4);

    qat_status st = write_raw(w, tail, sizeof tail, 0);
    if (st != QAT_OK) {
        qat_ckpt_writer_abort(w);
        return st;
    }
    const char *what = NULL;
    if (fseek(w->f, 12, SEEK_SET) != 0) what = "seek";
    else if (fwrite(hdr + 12, 1, 4, w->f) != 4) what = "write";
    else if (fflush(w->f) != 0) what = "flush";
    else if (fsync(fileno(w->f)) != 0) what = "fsync";
    if (what) {
        st = qat_error_set(QAT_ERR_IO, "%s: cannot %s temp file %s: %s", w->path, what, w->tmp,
                           strerror(errno));
        qat_ckpt_writer_abort(w);
        return st;
    }
    int rc = fclose(w->f);
    w->f = NULL;
    if (rc != 0) {
        st = qat_error_set(QAT_ERR_IO, "%s: cannot close temp file %s: %s", w->path, w->tmp,
                           strerror(errno));
        qat_ckpt_writer_abort(w);
        return st;
    }
    if (rename(w->tmp, w->path) != 0) {
        st = qat_error_set(QAT_ERR_IO, "%s: cannot rename %s over it: %s (old file kept)",
                           w->path, w->tmp, strerror(errno));
        qat_ckpt_writer_abort(w);
        return st;
    }
    st = sync_dir(w->dir, w->path);
    writer_free(w); /* the temp name is gone: nothing to remove */
    return st;
}

/* ---- reader ---- */

/* Copies a record name for messages, replacing unprintable bytes. */
static void show_name(char out[MAX_NAME + 1], const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    out[n] = '\0';
}

/* Walks the records between offset 16 and the trailer. With rec == NULL it
 * only validates and sums the name lengths into *names_len; with rec and
 * names it fills them in (the data was validated by the first pass). */
static qat_status walk(const char *path, const uint8_t *buf, size_t size, uint32_t count,
                       qat_ckpt_record *rec, char *names, size_t *names_len)
{
    size_t pos = HEADER_SIZE, end = size - TRAILER_SIZE, ntot = 0;
    char shown[MAX_NAME + 1];
    for (uint32_t i = 0; i < count; i++) {
        if (end - pos < 2)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: record %u at offset %zu: name length runs past the end of "
                                 "the data (%zu bytes left; file truncated?)",
                                 path, i, pos, end - pos);
        size_t nlen = (size_t)get_le(buf + pos, 2);
        if (nlen == 0 || nlen > MAX_NAME)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: record %u at offset %zu: name length %zu is not in 1..%d",
                                 path, i, pos, nlen, MAX_NAME);
        pos += 2;
        if (end - pos < nlen)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: record %u at offset %zu: name of %zu bytes runs past the "
                                 "end of the data (%zu bytes left)",
                                 path, i, pos, nlen, end - pos);
        const uint8_t *name = buf + pos;
        if (memchr(name, '\0', nlen))
            return qat_error_set(QAT_ERR_FORMAT, "%s: record %u at offset %zu: name contains a NUL byte",
                                 path, i, pos);
        show_name(shown, name, nlen);
        pos += nlen;
        if (end - pos < 2)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: record %u ('%s') at offset %zu: dtype and ndim run past the "
                                 "end of the data",
                                 path, i, shown, pos);
        int dtype = buf[pos], ndim = buf[pos + 1];
        size_t esize = qat_ckpt_dtype_size(dtype);
        if (esize == 0)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: record %u ('%s') at offset %zu: unknown dtype %d (0..%d)",
                                 path, i, shown, pos, dtype, QAT_CKPT_NDTYPES - 1);
        if (ndim > QAT_CKPT_MAX_DIMS)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: record %u ('%s') at offset %zu: ndim %d is not in 0..%d",
                                 path, i, shown, pos + 1, ndim, QAT_CKPT_MAX_DIMS);
        pos += 2;
        if (end - pos < (size_t)ndim * 4 + 8)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: record %u ('%s') at offset %zu: dims and payload size run "
                                 "past the end of the data (%zu bytes left)",
                                 path, i, shown, pos, end - pos);
        int dims[QAT_CKPT_MAX_DIMS] = {0};
        uint64_t need = esize;
        int overflow = 0;
        for (int d = 0; d < ndim; d++, pos += 4) {
            uint64_t v = get_le(buf + pos, 4);
            if (v > INT_MAX)
                return qat_error_set(QAT_ERR_FORMAT,
                                     "%s: record %u ('%s') at offset %zu: dims[%d] = %llu is too large",
                                     path, i, shown, pos, d, (unsigned long long)v);
            dims[d] = (int)v;
            if (v > 0 && need > UINT64_MAX / v) overflow = 1;
            else need *= v;
        }
        uint64_t pay = get_le(buf + pos, 8);
        if (ndim > 0 && (overflow || pay != need))
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: record %u ('%s') at offset %zu: payload size %llu does not "
                                 "match its %d dims of %s (%s%llu bytes)",
                                 path, i, shown, pos, (unsigned long long)pay, ndim,
                                 dtype_name(dtype), overflow ? "more than " : "",
                                 (unsigned long long)(overflow ? UINT64_MAX : need));
        pos += 8;
        if (pay > end - pos)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: record %u ('%s') at offset %zu: payload of %llu bytes runs "
                                 "past the end of the data (%zu bytes left)",
                                 path, i, shown, pos - 8, (unsigned long long)pay, end - pos);
        if (rec) {
            qat_ckpt_record *r = &rec[i];
            memcpy(names + ntot, name, nlen);
            names[ntot + nlen] = '\0';
            r->name = names + ntot;
            r->dtype = dtype;
            r->ndim = ndim;
            memcpy(r->dims, dims, sizeof dims);
            r->data = buf + pos;
            r->nbytes = (size_t)pay;
            r->offset = pos;
        }
        ntot += nlen + 1;
        pos += (size_t)pay;
    }
    if (pos != end)
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: %zu unexpected bytes at offset %zu after the last of %u records",
                             path, end - pos, pos, count);
    *names_len = ntot;
    return QAT_OK;
}

/* Orders record pointers by name, then by position in the array. */
static int cmp_rec(const void *a, const void *b)
{
    const qat_ckpt_record *ra = *(const qat_ckpt_record *const *)a;
    const qat_ckpt_record *rb = *(const qat_ckpt_record *const *)b;
    int c = strcmp(ra->name, rb->name);
    return c ? c : (ra > rb) - (ra < rb);
}

/* Duplicate names, in O(n log n). */
static qat_status check_duplicates(const char *path, const qat_ckpt_record *rec, int n)
{
    if (n < 2) return QAT_OK;
    const qat_ckpt_record **by = malloc((size_t)n * sizeof *by);
    if (!by) return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory", path);
    for (int i = 0; i < n; i++) by[i] = &rec[i];
    qsort(by, (size_t)n, sizeof *by, cmp_rec);
    qat_status st = QAT_OK;
    for (int i = 1; i < n && st == QAT_OK; i++)
        if (strcmp(by[i - 1]->name, by[i]->name) == 0) {
            char shown[MAX_NAME + 1];
            show_name(shown, (const uint8_t *)by[i]->name, strlen(by[i]->name));
            st = qat_error_set(QAT_ERR_FORMAT,
                               "%s: record %d ('%s', payload at offset %zu) has the same name as "
                               "record %d",
                               path, (int)(by[i] - rec), shown, by[i]->offset,
                               (int)(by[i - 1] - rec));
        }
    free(by);
    return st;
}

static qat_status validate(const char *path, const uint8_t *buf, size_t size, qat_ckpt *ck)
{
    size_t m = size < 8 ? size : 8;
    for (size_t i = 0; i < m; i++)
        if (buf[i] != MAGIC[i])
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: not a qat checkpoint: byte %zu is 0x%02x, expected 0x%02x "
                                 "(magic \"QATCKPT\\0\")",
                                 path, i, buf[i], MAGIC[i]);
    if (size < HEADER_SIZE + TRAILER_SIZE)
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: file is %zu bytes, too short for a checkpoint (at least %d; "
                             "truncated?)",
                             path, size, HEADER_SIZE + TRAILER_SIZE);
    uint32_t version = (uint32_t)get_le(buf + 8, 4);
    if (version != QAT_CKPT_VERSION) {
        if (version > QAT_CKPT_VERSION)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: checkpoint version %u is newer than this qat reads (%d); "
                                 "use the qat that wrote it or a newer one",
                                 path, version, QAT_CKPT_VERSION);
        return qat_error_set(QAT_ERR_FORMAT, "%s: checkpoint version %u at offset 8 is invalid (expected %d)",
                             path, version, QAT_CKPT_VERSION);
    }
    uint32_t stored = (uint32_t)get_le(buf + size - TRAILER_SIZE, 4);
    uint32_t computed = crc_update((uint32_t)crc32(0, Z_NULL, 0), buf, size - TRAILER_SIZE);
    if (stored != computed)
        return qat_error_set(QAT_ERR_CHECKSUM,
                             "%s: checksum mismatch: stored 0x%08x, computed 0x%08x over %zu bytes "
                             "(file corrupt or truncated)",
                             path, stored, computed, size - TRAILER_SIZE);
    uint32_t count = (uint32_t)get_le(buf + 12, 4);
    if (count > (size - HEADER_SIZE - TRAILER_SIZE) / MIN_RECORD)
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: record count %u at offset 12 cannot fit in %zu bytes of records",
                             path, count, size - HEADER_SIZE - TRAILER_SIZE);
    size_t names_len = 0;
    qat_status st = walk(path, buf, size, count, NULL, NULL, &names_len);
    if (st != QAT_OK) return st;
    /* one block: the records, then their NUL-terminated names */
    size_t rbytes = (size_t)count * sizeof(qat_ckpt_record);
    uint8_t *block = malloc(rbytes + names_len + 1);
    if (!block) return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory", path);
    qat_ckpt_record *rec = (qat_ckpt_record *)block;
    memset(rec, 0, rbytes);
    st = walk(path, buf, size, count, rec, (char *)block + rbytes, &names_len);
    if (st == QAT_OK) st = check_duplicates(path, rec, (int)count);
    if (st != QAT_OK) {
        free(block);
        return st;
    }
    ck->version = version;
    ck->rec = rec;
    ck->nrec = (int)count;
    return QAT_OK;
}

qat_status qat_ckpt_read(qat_ckpt *ck, const char *path)
{
    QAT_ASSERT(ck != NULL && path != NULL);
    memset(ck, 0, sizeof *ck);
    FILE *f = fopen(path, "rb");
    if (!f) return qat_error_set(QAT_ERR_IO, "%s: cannot open checkpoint: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return qat_error_set(QAT_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX - 1) {
        fclose(f);
        return qat_error_set(QAT_ERR_IO, "%s: file too large for memory", path);
    }
    size_t size = (size_t)sb.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    char *p = dup_str(path);
    if (!buf || !p) {
        fclose(f);
        free(buf);
        free(p);
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for a %zu-byte checkpoint", path, size);
    }
    size_t got = fread(buf, 1, size, f);
    int extra = got == size ? fgetc(f) : EOF;
    int bad = ferror(f);
    fclose(f);
    if (bad || got != size || extra != EOF) {
        free(buf);
        free(p);
        return qat_error_set(QAT_ERR_IO, "%s: cannot read checkpoint (%s)", path,
                             bad ? "read error" : "file changed while reading");
    }
    qat_status st = validate(path, buf, size, ck);
    if (st != QAT_OK) {
        free(buf);
        free(p);
        memset(ck, 0, sizeof *ck);
        return st;
    }
    ck->path = p;
    ck->buf = buf;
    ck->size = size;
    return QAT_OK;
}

const qat_ckpt_record *qat_ckpt_find(const qat_ckpt *ck, const char *name)
{
    QAT_ASSERT(ck != NULL && name != NULL);
    for (int i = 0; i < ck->nrec; i++)
        if (strcmp(ck->rec[i].name, name) == 0) return &ck->rec[i];
    return NULL;
}

qat_status qat_ckpt_record_copy(const qat_ckpt_record *r, int dtype, void *dst, size_t nbytes)
{
    QAT_ASSERT(r != NULL && (dst != NULL || nbytes == 0));
    if (r->dtype != dtype || r->nbytes != nbytes)
        return qat_error_set(QAT_ERR_MISMATCH,
                             "checkpoint record '%s' is %zu bytes of %s; expected %zu bytes of %s",
                             r->name, r->nbytes, dtype_name(r->dtype), nbytes, dtype_name(dtype));
    size_t esize = qat_ckpt_dtype_size(dtype);
    if (esize == 0 || nbytes % esize != 0)
        return qat_error_set(QAT_ERR_MISMATCH, "checkpoint record '%s': %zu bytes is not a whole "
                             "number of %s", r->name, nbytes, dtype_name(dtype));
    const uint8_t *src = r->data;
    uint8_t *out = dst;
    size_t n = nbytes / esize;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = get_le(src + i * esize, (int)esize);
        if (esize == 8) memcpy(out + 8 * i, &v, 8);
        else if (esize == 4) {
            uint32_t u = (uint32_t)v;
            memcpy(out + 4 * i, &u, 4);
        } else out[i] = (uint8_t)v;
    }
    return QAT_OK;
}

void qat_ckpt_free(qat_ckpt *ck)
{
    if (!ck) return;
    free(ck->rec); /* the names live in the same block */
    free(ck->buf);
    free(ck->path);
    memset(ck, 0, sizeof *ck);
}
