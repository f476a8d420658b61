/* ckptfile.h: the checkpoint container: a file of named, typed records,
 * written atomically (temp file, fsync, rename, directory fsync) and read
 * back as hostile input. What goes into the records is train/'s business.
 *
 * File format, version 1 (this comment is the spec). Little-endian
 * throughout; every field is written byte by byte.
 *
 *   offset  size  field
 *   0       8     magic "QATCKPT\0"
 *   8       4     u32 version = 1
 *   12      4     u32 record count
 *   16      ...   records, back to back, no padding:
 *                   u16  name length L, 1..255
 *                   L    name bytes (no NUL; names are unique in a file)
 *                   u8   dtype: 0 bytes, 1 f32, 2 i32, 3 u64
 *                   u8   ndim, 0..4
 *                   u32  dims[ndim]   (each <= INT_MAX)
 *                   u64  payload size P in bytes; when ndim > 0,
 *                        P == product(dims) * size(dtype)
 *                        (sizes: bytes 1, f32 4, i32 4, u64 8); when ndim
 *                        is 0, P is free (a blob or a scalar)
 *                   P    payload, elements little-endian (f32 as its
 *                        IEEE-754 bit pattern)
 *   end-4   4     u32 CRC-32 (zlib crc32) of every preceding byte
 *
 * The reader rejects: a wrong magic (naming the first differing byte), a
 * version other than 1, a CRC mismatch (QAT_ERR_CHECKSUM, stored and
 * computed values), and, independently of the CRC, any length running past
 * the data, a bad name length, dtype or ndim, a payload size that disagrees
 * with the dims, duplicate names and trailing bytes (QAT_ERR_FORMAT, naming
 * the byte offset and record index/name). Files that cannot be opened,
 * read, written or renamed are QAT_ERR_IO; bad writer arguments
 * QAT_ERR_ARG; allocation failure QAT_ERR_MEMORY.
 */
#ifndef QAT_CKPTFILE_H
#define QAT_CKPTFILE_H

#include <stddef.h>
#include <stdint.h>

#include "qat_util.h"

#define QAT_CKPT_VERSION 1
#define QAT_CKPT_MAX_DIMS 4

enum {
    QAT_CKPT_BYTES = 0,
    QAT_CKPT_F32 = 1,
    QAT_CKPT_I32 = 2,
    QAT_CKPT_U64 = 3,
    QAT_CKPT_NDTYPES
};

/* Size in bytes of one element of dtype, 0 for an unknown dtype. */
size_t qat_ckpt_dtype_size(int dtype);

/* ---- writing ---- */

typedef struct qat_ckpt_writer qat_ckpt_writer;

/* Creates "path.tmp.XXXXXX" (mkstemp, mode 0644) in path's directory and
 * writes the header. Nothing at `path` changes until commit. On failure *w
 * is NULL. */
qat_status qat_ckpt_writer_open(qat_ckpt_writer **w, const char *path);
/* Appends a record. data holds nbytes of host-order elements of dtype (the
 * writer converts them to little-endian); data may be NULL when nbytes is 0.
 * dims[0..ndim) are >= 0 and, when ndim > 0, nbytes must equal
 * product(dims) * size(dtype); when ndim is 0 nbytes must be a multiple of
 * size(dtype). Argument errors (QAT_ERR_ARG: bad name, duplicate name, dtype,
 * ndim, size) leave the writer usable; a write error (QAT_ERR_IO) poisons it,
 * so that commit fails too and the old file stays. */
qat_status qat_ckpt_writer_add(qat_ckpt_writer *w, const char *name, int dtype, int ndim,
                               const int *dims, const void *data, size_t nbytes);
/* Patches the record count, appends the CRC, fflush + fsync, closes, renames
 * the temp file over path and fsyncs the directory. Frees w in every case.
 * On failure before the rename, the temp file is removed and the old file at
 * path is untouched. If only the final directory fsync fails, the new file is
 * in place and QAT_ERR_IO says so. */
qat_status qat_ckpt_writer_commit(qat_ckpt_writer *w);
/* Removes the temp file and frees w (NULL is fine). */
void qat_ckpt_writer_abort(qat_ckpt_writer *w);

/* ---- reading ---- */

typedef struct {
    const char *name; /* NUL-terminated, owned by the qat_ckpt */
    int dtype, ndim;
    int dims[QAT_CKPT_MAX_DIMS]; /* dims[i] for i >= ndim are 0 */
    const void *data; /* points into qat_ckpt.buf: raw little-endian bytes,
                         NOT aligned; use qat_ckpt_record_copy for values */
    size_t nbytes;
    size_t offset; /* byte offset of the payload in the file */
} qat_ckpt_record;

typedef struct {
    char *path;
    uint8_t *buf; /* the whole file */
    size_t size;
    uint32_t version;
    qat_ckpt_record *rec; /* in file order */
    int nrec;
} qat_ckpt;

/* Reads and validates the whole file into memory. On failure *ck is zeroed:
 * never a partial result. The caller frees with qat_ckpt_free. */
qat_status qat_ckpt_read(qat_ckpt *ck, const char *path);
/* The record called name, or NULL. */
const qat_ckpt_record *qat_ckpt_find(const qat_ckpt *ck, const char *name);
/* Copies a record's payload to dst in host order (aligned, ready to use).
 * Fails with QAT_ERR_MISMATCH, naming the record, when its dtype differs
 * from `dtype` or its size from `nbytes`. */
qat_status qat_ckpt_record_copy(const qat_ckpt_record *r, int dtype, void *dst, size_t nbytes);
/* Frees everything and zeroes *ck (a zeroed qat_ckpt is fine). */
void qat_ckpt_free(qat_ckpt *ck);

#endif
