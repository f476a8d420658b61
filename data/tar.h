/* tar.h: a reader of tar archives, one member after the other, raw or gzip
 * (through zlib), so that the official CIFAR archives are read in place. It
 * knows ustar, GNU (long names, base-256 sizes) and pax (path records) headers.
 * Archives are hostile: every header checksum is verified, sizes must be
 * octal (or GNU base-256) numbers, a member must really hold the bytes its
 * header announces, and nothing is allocated from a header's word. */
#ifndef QAT_TAR_H
#define QAT_TAR_H

#include <stdint.h>

#include "qat_util.h"

#define QAT_TAR_MAX_NAME 4096

typedef struct qat_tar qat_tar;

typedef struct {
    char name[QAT_TAR_MAX_NAME]; /* path in the archive; "./" in front and "/" at the end dropped */
    char type;                   /* '0' regular file ('\0' too is given as '0'), '5' folder,
                                    '1' hard link, '2' symbolic link, ... */
    uint64_t size;               /* data bytes the header announces */
    uint64_t header_at;          /* where its (last) header starts in the tar stream */
    uint64_t data_at;            /* where its data starts in the tar stream */
} qat_tar_member;

/* Opens path (a .tar, or a .tar.gz read through zlib). Offsets in messages
 * count bytes of the tar stream, i.e. of the uncompressed data for a gzip
 * file, and say "(uncompressed)" then. Fails with QAT_ERR_IO or
 * QAT_ERR_MEMORY; *out is NULL on failure. */
qat_status qat_tar_open(qat_tar **out, const char *path);

/* Moves to the next member, skipping what is left of the current one and its
 * padding. *more is 1 and *m filled with a member, or *more is 0 at the end
 * (a zero block, or the end of the data right at a header boundary). Pax and
 * GNU long-name records are consumed here and apply to the member they
 * precede. Fails with QAT_ERR_FORMAT "PATH: byte H: ..." (H a header's
 * offset: bad checksum, a size field that is not a number, a stream that ends
 * inside a header or a member) or the errors of qat_data_gzread. */
qat_status qat_tar_next(qat_tar *t, qat_tar_member *m, int *more);

/* Reads up to len bytes of the current member's data; *got < len only at its
 * end. Data that ends before the size the header announces is QAT_ERR_FORMAT
 * naming the member, its header offset and how many bytes were there. */
qat_status qat_tar_read(qat_tar *t, void *buf, size_t len, size_t *got);

/* The archive's path as given to qat_tar_open (for messages). */
const char *qat_tar_path(const qat_tar *t);

/* Closes and frees; NULL is fine. */
void qat_tar_close(qat_tar *t);

#endif
