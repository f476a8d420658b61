/* datautil.h: what the readers of data/ share and nobody outside needs:
 * gzip-or-raw reading whose errors say where the stream broke, the class-name
 * block of a qat_dataset, and plain file-system questions. */
#ifndef QAT_DATAUTIL_H
#define QAT_DATAUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "dataset.h"

/* Reads up to len bytes from f (gzip, or raw: zlib reads both); *got < len
 * only at the end of the data, and *pos advances by *got. A zlib failure is
 * QAT_ERR_FORMAT "PATH: byte N (compressed): gzip data is damaged or cut
 * short ...", a read error QAT_ERR_IO "PATH: byte N: cannot read ...". */
qat_status qat_data_gzread(gzFile f, const char *path, uint64_t *pos, void *buf, size_t len,
                           size_t *got);

/* Opens path for qat_data_gzread with a large buffer; *f is NULL on failure
 * (QAT_ERR_IO or QAT_ERR_MEMORY, "PATH: cannot open: REASON, expected WHAT"). */
qat_status qat_data_gzopen(gzFile *f, const char *path, const char *what);

/* Sets ds->class_names to a copy of names[0..n) in one allocation (the
 * pointer array, then the strings), freeing what was there. */
qat_status qat_data_names_set(qat_dataset *ds, const char *const *names, int n);
/* The names "0", "1", ... "n-1": classes whose files name none. */
qat_status qat_data_names_numbered(qat_dataset *ds, int n);
/* Parses a text of one class name per line (CIFAR's batches.meta.txt,
 * fine_label_names.txt): CR and trailing blanks are dropped, blank lines are
 * skipped; exactly `want` names of at most 255 bytes each, else
 * QAT_ERR_FORMAT "PATH: line L: ..." (what names the file in messages). */
qat_status qat_data_names_parse(qat_dataset *ds, const char *what, const char *text,
                                size_t len, int want);

/* Where the readers' own files are (for qat_data_locate): 1 if path holds
 * the dataset, with what to read written into out (path itself, or the
 * archive or batches folder found in it); 0 with the reason in why if not.
 * which: 10 or 100. */
int qat_data_cifar_probe(int which, const char *path, char *out, size_t cap, char *why,
                         size_t wcap);
int qat_data_folder_probe(const char *path, char *out, size_t cap, char *why, size_t wcap);

int qat_data_is_file(const char *path);
int qat_data_is_dir(const char *path);

#endif
