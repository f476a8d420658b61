/* tar.c: the tar member reader (see tar.h). One pass, forwards only, because
 * a gzip stream cannot seek; the caller takes the members it wants as they
 * come. Every header is checked before anything it says is used. */
#include "tar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datautil.h"

#define TAR_BLOCK 512
#define TAR_MAX_PAX ((uint64_t)1 << 16) /* pax records we read into memory */

struct qat_tar {
    gzFile f;
    int gz;              /* 1: offsets are in the uncompressed stream */
    uint64_t pos;        /* tar stream bytes consumed */
    uint64_t file_size;  /* raw archives: the file's size, for checking member sizes early */
    uint64_t left;       /* data bytes of the current member not yet read */
    uint64_t pad;        /* zero bytes after it, up to the next block */
    int have_cur, ended;
    qat_tar_member cur;  /* for messages */
    char longname[QAT_TAR_MAX_NAME]; /* from a GNU 'L' or pax 'x' record, for the next header */
    uint8_t scratch[TAR_MAX_PAX];
    char path[];
};

static const char *tar_where(const qat_tar *t) { return t->gz ? " (uncompressed)" : ""; }

const char *qat_tar_path(const qat_tar *t) { return t->path; }

qat_status qat_tar_open(qat_tar **out, const char *path)
{
    *out = NULL;
    size_t pl = strlen(path);
    qat_tar *t = calloc(1, sizeof *t + pl + 1);
    if (!t)
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for the tar reader", path);
    memcpy(t->path, path, pl + 1);
    qat_status s = qat_data_gzopen(&t->f, path, "a readable tar or tar.gz archive");
    if (s) {
        free(t);
        return s;
    }
    /* zlib knows whether the data are gzip only after a first read */
    gzungetc(gzgetc(t->f), t->f);
    t->gz = !gzdirect(t->f);
    struct stat st;
    if (!t->gz && stat(path, &st) == 0 && S_ISREG(st.st_mode))
        t->file_size = (uint64_t)st.st_size;
    *out = t;
    return QAT_OK;
}

void qat_tar_close(qat_tar *t)
{
    if (!t)
        return;
    if (t->f)
        gzclose_r(t->f);
    free(t);
}

static qat_status tar_fill(qat_tar *t, void *buf, size_t len, size_t *got)
{
    return qat_data_gzread(t->f, t->path, &t->pos, buf, len, got);
}

/* Reads and drops n bytes; *got says how many were there. */
static qat_status tar_skip(qat_tar *t, uint64_t n, uint64_t *got)
{
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < sizeof t->scratch ? (size_t)(n - *got) : sizeof t->scratch;
        size_t g;
        qat_status s = tar_fill(t, t->scratch, want, &g);
        if (s)
            return s;
        *got += g;
        if (g < want)
            break;
    }
    return QAT_OK;
}

static qat_status tar_member_short(const qat_tar *t, const qat_tar_member *m, uint64_t have)
{
    return qat_error_set(QAT_ERR_FORMAT,
                         "%s: byte %llu%s: member '%s' (header at byte %llu) announces %llu bytes, "
                         "the archive ends after %llu of them: file cut short, expected the whole "
                         "member (download the archive again)",
                         t->path, (unsigned long long)t->pos, tar_where(t), m->name,
                         (unsigned long long)m->header_at, (unsigned long long)m->size,
                         (unsigned long long)have);
}

/* An octal field (digits, optional leading blanks, then NUL or blank to its
 * end). 1 ok, 0 not a number. */
static int tar_octal(const uint8_t *p, size_t n, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < n && p[i] == ' ')
        i++;
    size_t first = i;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
        if (v >> 60)
            return 0;
        v = v * 8 + (uint64_t)(p[i] - '0');
    }
    if (i == first && i < n && p[i] != '\0')
        return 0;
    for (; i < n; i++)
        if (p[i] != '\0' && p[i] != ' ')
            return 0;
    *out = v;
    return 1;
}

/* The size field: octal, or GNU's base-256 (first byte 0x80) for big members. */
static int tar_size(const uint8_t *p, uint64_t *out)
{
    if (!(p[0] & 0x80))
        return tar_octal(p, 12, out);
    if (p[0] != 0x80 || p[1] || p[2] || p[3] || (p[4] & 0x80))
        return 0; /* negative, or beyond 63 bits */
    uint64_t v = 0;
    for (int i = 4; i < 12; i++)
        v = v << 8 | p[i];
    *out = v;
    return 1;
}

/* Shows a field that failed to parse, printable characters only. */
static void tar_show(const uint8_t *p, size_t n, char *buf, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 5 < cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f)
            buf[k++] = (char)p[i];
        else
            k += (size_t)snprintf(buf + k, cap - k, "\\x%02x", p[i]);
    }
    buf[k] = '\0';
}

static qat_status tar_check_sum(const qat_tar *t, const uint8_t *b, uint64_t h)
{
    uint64_t stored;
    unsigned usum = 0;
    int ssum = 0;
    for (int i = 0; i < TAR_BLOCK; i++) {
        uint8_t c = i >= 148 && i < 156 ? ' ' : b[i];
        usum += c;
        ssum += (signed char)c; /* some old tars summed signed chars */
    }
    const char *hint = h == 0 ? "; is it a tar or tar.gz archive at all?" : "";
    if (!tar_octal(b + 148, 8, &stored)) {
        char shown[48];
        tar_show(b + 148, 8, shown, sizeof shown);
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: byte %llu%s: tar header checksum field '%s' is not an octal "
                             "number, expected a valid tar header%s",
                             t->path, (unsigned long long)h + 148, tar_where(t), shown, hint);
    }
    if (stored != usum && (int64_t)stored != ssum)
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: byte %llu%s: tar header checksum %llo (octal), its bytes sum to "
                             "%o: the header is damaged, expected them equal%s",
                             t->path, (unsigned long long)h, tar_where(t),
                             (unsigned long long)stored, usum, hint);
    return QAT_OK;
}

/* Strips "./" in front (and "/"), and "/" at the end, in place. */
static void tar_clean_name(char *name)
{
    char *p = name;
    for (;;) {
        if (p[0] == '.' && p[1] == '/')
            p += 2;
        else if (p[0] == '/')
            p++;
        else
            break;
    }
    size_t n = strlen(p);
    memmove(name, p, n + 1);
    while (n > 0 && name[n - 1] == '/')
        name[--n] = '\0';
}

/* Reads the data of a GNU long-name or pax record (small: less than
 * TAR_MAX_PAX bytes) with its padding into t->scratch. */
static qat_status tar_read_meta(qat_tar *t, const qat_tar_member *m)
{
    if (m->size >= TAR_MAX_PAX)
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: byte %llu%s: '%c' record announces %llu bytes, expected less "
                             "than %llu (a path, not data)",
                             t->path, (unsigned long long)m->header_at, tar_where(t), m->type,
                             (unsigned long long)m->size, (unsigned long long)TAR_MAX_PAX);
    /* size < TAR_MAX_PAX, a multiple of the block: data and padding fit */
    size_t all = (size_t)(m->size + (TAR_BLOCK - m->size % TAR_BLOCK) % TAR_BLOCK), got;
    qat_status s = tar_fill(t, t->scratch, all, &got);
    if (s)
        return s;
    if (got < all)
        return tar_member_short(t, m, got < m->size ? got : m->size);
    return QAT_OK;
}

/* The "path" of a pax extended header in t->scratch[0..n), into name. */
static qat_status tar_pax_path(qat_tar *t, const qat_tar_member *m, size_t n, char *name,
                               int *found)
{
    size_t pos = 0;
    while (pos < n) {
        const char *r = (const char *)t->scratch + pos;
        size_t len = 0, i = 0;
        while (pos + i < n && i < 6 && r[i] >= '0' && r[i] <= '9') /* n < 10^6 */
            len = len * 10 + (size_t)(r[i++] - '0');
        if (i == 0 || pos + i >= n || r[i] != ' ' || len <= i + 1 || len > n - pos ||
            r[len - 1] != '\n')
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: byte %llu%s: pax record at offset %zu of the extended header "
                                 "(at byte %llu) is malformed, expected 'LENGTH key=value\\n'",
                                 t->path, (unsigned long long)(m->data_at + pos), tar_where(t), pos,
                                 (unsigned long long)m->header_at);
        const char *kv = r + i + 1;
        size_t kvlen = len - i - 2; /* without the newline */
        if (kvlen > 5 && memcmp(kv, "path=", 5) == 0) {
            if (kvlen - 5 >= QAT_TAR_MAX_NAME || memchr(kv + 5, '\0', kvlen - 5))
                return qat_error_set(QAT_ERR_FORMAT,
                                     "%s: byte %llu%s: pax path of %zu bytes, expected less than %d "
                                     "bytes without NUL",
                                     t->path, (unsigned long long)(m->data_at + pos), tar_where(t),
                                     kvlen - 5, QAT_TAR_MAX_NAME);
            memcpy(name, kv + 5, kvlen - 5);
            name[kvlen - 5] = '\0';
            *found = 1;
        }
        pos += len;
    }
    return QAT_OK;
}

qat_status qat_tar_next(qat_tar *t, qat_tar_member *m, int *more)
{
    *more = 0;
    if (t->ended)
        return QAT_OK;
    qat_status s;
    uint64_t got;
    if (t->have_cur) {
        t->have_cur = 0;
        uint64_t had = t->cur.size - t->left;
        if ((s = tar_skip(t, t->left, &got)))
            return s;
        if (got < t->left)
            return tar_member_short(t, &t->cur, had + got);
        t->left = 0;
        /* a last member without its padding: the data are whole, let it be */
        if ((s = tar_skip(t, t->pad, &got)))
            return s;
        if (got < t->pad) {
            t->ended = 1;
            return QAT_OK;
        }
    }

    char *longname = t->longname;
    int have_long = 0;
    for (;;) {
        uint8_t b[TAR_BLOCK];
        uint64_t h = t->pos;
        size_t g;
        if ((s = tar_fill(t, b, TAR_BLOCK, &g)))
            return s;
        if (g == 0 && !have_long) {
            t->ended = 1; /* no end-of-archive blocks: GNU tar accepts it too */
            return QAT_OK;
        }
        if (g < TAR_BLOCK)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: byte %llu%s: archive ends %zu bytes into a tar header, "
                                 "expected a complete 512-byte header (file cut short)",
                                 t->path, (unsigned long long)h, tar_where(t), g);
        int zero = 1;
        for (int i = 0; i < TAR_BLOCK && zero; i++)
            zero = b[i] == 0;
        if (zero) {
            if (have_long)
                return qat_error_set(QAT_ERR_FORMAT,
                                     "%s: byte %llu%s: end of archive right after a long-name "
                                     "record, expected the header it names",
                                     t->path, (unsigned long long)h, tar_where(t));
            t->ended = 1;
            return QAT_OK;
        }
        if ((s = tar_check_sum(t, b, h)))
            return s;

        memset(m, 0, sizeof *m);
        m->type = b[156] == '\0' || b[156] == '7' ? '0' : (char)b[156];
        m->header_at = h;
        m->data_at = t->pos;
        if (have_long) {
            memcpy(m->name, longname, sizeof m->name);
        } else {
            char field[101], prefix[156];
            memcpy(field, b, 100);
            field[100] = '\0';
            /* POSIX ustar splits long paths into prefix/name; GNU's header
             * ("ustar  ") uses that area for other things */
            if (memcmp(b + 257, "ustar\0", 6) == 0 && b[345]) {
                memcpy(prefix, b + 345, 155);
                prefix[155] = '\0';
                snprintf(m->name, sizeof m->name, "%s/%s", prefix, field);
            } else {
                snprintf(m->name, sizeof m->name, "%s", field);
            }
        }
        tar_clean_name(m->name);
        if (!tar_size(b + 124, &m->size)) {
            char shown[64];
            tar_show(b + 124, 12, shown, sizeof shown);
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: byte %llu%s: member '%s' size field '%s' is not a number, "
                                 "expected up to 11 octal digits",
                                 t->path, (unsigned long long)h + 124, tar_where(t), m->name, shown);
        }
        /* links and folders carry no data whatever their size field says */
        if (m->type == '1' || m->type == '2' || m->type == '3' || m->type == '4' ||
            m->type == '5' || m->type == '6')
            m->size = 0;
        if (t->file_size && m->size > t->file_size - t->pos)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: byte %llu: member '%s' announces %llu bytes, only %llu remain "
                                 "in the archive: file cut short or header damaged, expected at "
                                 "most %llu",
                                 t->path, (unsigned long long)h + 124, m->name,
                                 (unsigned long long)m->size,
                                 (unsigned long long)(t->file_size - t->pos),
                                 (unsigned long long)(t->file_size - t->pos));

        if (m->type == 'L' || m->type == 'x') {
            if ((s = tar_read_meta(t, m)))
                return s;
            if (m->type == 'L') {
                size_t n = strnlen((const char *)t->scratch, (size_t)m->size);
                if (n >= QAT_TAR_MAX_NAME)
                    return qat_error_set(QAT_ERR_FORMAT,
                                         "%s: byte %llu%s: long name of %zu bytes, expected less "
                                         "than %d",
                                         t->path, (unsigned long long)h, tar_where(t), n,
                                         QAT_TAR_MAX_NAME);
                memcpy(longname, t->scratch, n);
                longname[n] = '\0';
                have_long = 1;
            } else if ((s = tar_pax_path(t, m, (size_t)m->size, longname, &have_long))) {
                return s;
            }
            continue;
        }
        if (m->type == 'g' || m->type == 'K') { /* global pax settings, long link names */
            if ((s = tar_read_meta(t, m)))
                return s;
            continue;
        }
        t->left = m->size;
        t->pad = (TAR_BLOCK - m->size % TAR_BLOCK) % TAR_BLOCK;
        t->cur = *m;
        t->have_cur = 1;
        *more = 1;
        return QAT_OK;
    }
}

qat_status qat_tar_read(qat_tar *t, void *buf, size_t len, size_t *got)
{
    *got = 0;
    if (!t->have_cur)
        return QAT_OK;
    size_t want = len < t->left ? len : (size_t)t->left;
    qat_status s = tar_fill(t, buf, want, got);
    if (s)
        return s;
    t->left -= *got;
    if (*got < want)
        return tar_member_short(t, &t->cur, t->cur.size - t->left);
    return QAT_OK;
}
