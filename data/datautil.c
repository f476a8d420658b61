/* datautil.c: the pieces every reader of data/ uses (see datautil.h): reading
 * through zlib with errors placed in the file, and the class-name block. */
#include "datautil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GZ_CHUNK ((size_t)1 << 30) /* gzread takes an unsigned int length */

/* A zlib error after a short read, turned into our message; QAT_OK if there
 * was none (the read simply reached the end of the file). */
static qat_status gz_error(gzFile f, const char *path, uint64_t pos, int saved_errno)
{
    int errnum = Z_OK;
    const char *m = gzerror(f, &errnum);
    if (errnum == Z_OK || errnum == Z_STREAM_END)
        return QAT_OK;
    if (errnum == Z_ERRNO)
        return qat_error_set(QAT_ERR_IO, "%s: byte %llu: cannot read: %s, expected a readable file",
                             path, (unsigned long long)pos, strerror(saved_errno));
    if (errnum == Z_MEM_ERROR)
        return qat_error_set(QAT_ERR_MEMORY, "%s: byte %llu: zlib is out of memory", path,
                             (unsigned long long)pos);
    /* zlib's message starts with the path; we already say it. */
    size_t pl = strlen(path);
    if (m && strncmp(m, path, pl) == 0 && m[pl] == ':' && m[pl + 1] == ' ')
        m += pl + 2;
    /* Where the inflater stopped in the compressed file is what locates the
     * damage; zlib may have decoded ahead of what it handed us. */
    z_off_t at = gzoffset(f);
    return qat_error_set(QAT_ERR_FORMAT,
                         "%s: byte %lld (compressed): gzip data is damaged or cut short (zlib: %s) "
                         "after %llu bytes of data, expected a complete gzip stream (download "
                         "the file again)",
                         path, (long long)at, m ? m : "unknown error", (unsigned long long)pos);
}

qat_status qat_data_gzread(gzFile f, const char *path, uint64_t *pos, void *buf, size_t len,
                           size_t *got)
{
    uint8_t *p = buf;
    *got = 0;
    while (*got < len) {
        size_t want = len - *got < GZ_CHUNK ? len - *got : GZ_CHUNK;
        errno = 0;
        int n = gzread(f, p + *got, (unsigned)want);
        int saved = errno;
        if (n > 0) {
            *got += (size_t)n;
            *pos += (uint64_t)n;
            continue;
        }
        return gz_error(f, path, *pos, saved);
    }
    return QAT_OK;
}

qat_status qat_data_gzopen(gzFile *f, const char *path, const char *what)
{
    errno = 0;
    *f = gzopen(path, "rb");
    if (!*f)
        return qat_error_set(errno == ENOMEM ? QAT_ERR_MEMORY : QAT_ERR_IO,
                             "%s: cannot open: %s, expected %s", path,
                             errno ? strerror(errno) : "zlib could not start", what);
    gzbuffer(*f, 1u << 17);
    return QAT_OK;
}

qat_status qat_data_names_set(qat_dataset *ds, const char *const *names, int n)
{
    if (n < 1)
        return qat_error_set(QAT_ERR_ARG, "%s: %d class names, expected at least one", ds->name, n);
    size_t bytes = (size_t)n * sizeof(char *);
    for (int i = 0; i < n; i++)
        bytes += strlen(names[i]) + 1;
    char **block = malloc(bytes);
    if (!block)
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for %d class names", ds->name, n);
    char *text = (char *)(block + n);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]) + 1;
        memcpy(text, names[i], len);
        block[i] = text;
        text += len;
    }
    free(ds->class_names);
    ds->class_names = block;
    return QAT_OK;
}

qat_status qat_data_names_numbered(qat_dataset *ds, int n)
{
    if (n < 1 || n > 256)
        return qat_error_set(QAT_ERR_ARG, "%s: %d classes, expected 1..256", ds->name, n);
    char digits[256][12];
    const char *names[256];
    for (int i = 0; i < n; i++) {
        snprintf(digits[i], sizeof digits[i], "%d", i);
        names[i] = digits[i];
    }
    return qat_data_names_set(ds, names, n);
}

qat_status qat_data_names_parse(qat_dataset *ds, const char *what, const char *text, size_t len,
                                int want)
{
    if (want < 1 || want > 256)
        return qat_error_set(QAT_ERR_ARG, "%s: %d classes, expected 1..256", what, want);
    char buf[256][256];
    const char *names[256];
    int n = 0, line = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *p = text + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - p) : len - pos;
        pos += l + 1;
        line++;
        while (l > 0 && (p[l - 1] == '\r' || p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if (l == 0)
            continue;
        if (memchr(p, '\0', l))
            return qat_error_set(QAT_ERR_FORMAT, "%s: line %d: NUL byte in a class name, expected "
                                 "text, one class name per line", what, line);
        if (l > 255)
            return qat_error_set(QAT_ERR_FORMAT, "%s: line %d: class name of %zu bytes, expected "
                                 "at most 255", what, line, l);
        /* the text has no NUL: the precision alone would quote the lines
         * after this one and read past the end of the text */
        if (n == want)
            return qat_error_set(QAT_ERR_FORMAT, "%s: line %d: name '%.*s' after the %d class "
                                 "names, expected exactly %d, one per line", what, line,
                                 (int)(l < 40 ? l : 40), p, want, want);
        memcpy(buf[n], p, l);
        buf[n][l] = '\0';
        names[n] = buf[n];
        n++;
    }
    if (n < want)
        return qat_error_set(QAT_ERR_FORMAT, "%s: line %d: file ends after %d class names, "
                             "expected %d, one per line", what, line, n, want);
    return qat_data_names_set(ds, names, n);
}

int qat_data_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int qat_data_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
