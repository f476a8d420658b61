/* fuzz_cifar.c: libFuzzer target for the CIFAR-10/100 readers (data/cifar.c)
 * from an archive (through data/tar.c, raw or gzip) or from a folder of batch
 * files, and for the tar member reader on its own. The input:
 *   byte 0     mode: bits 0-1 what the rest is
 *                0 an archive, written as is (tar or tar.gz bytes)
 *                1 an archive the target gzips (the fuzzer shapes the tar
 *                  inside, the reader goes through zlib)
 *                2 a batches folder: bytes [0, a) are every training file,
 *                  [a, b) the test file, [b, end) the names file if not empty
 *                  (also given to the names parser alone)
 *                3 any tar, walked with qat_tar_next/qat_tar_read alone
 *              bit 2: CIFAR-100 (mode 3: gzip the tar); bit 3: coarse labels;
 *              bits 4-7: mode 3's read size (0: members skipped unread)
 *   bytes 1-4  a, b: u16 LE each (mode 2)
 * Files go to the process's temp folder. Build and run with
 * scripts/fuzz cifar SECONDS. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "dataset.h"
#include "datautil.h"
#include "tar.h"

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* folders before their files (fuzz_util.h removes them in reverse) */
static const char *const names[] = {
    "cifar-10-binary.tar.gz",         "any.tar",
    "batches",                        "batches/data_batch_1.bin",
    "batches/data_batch_2.bin",       "batches/data_batch_3.bin",
    "batches/data_batch_4.bin",       "batches/data_batch_5.bin",
    "batches/test_batch.bin",         "batches/batches.meta.txt",
    "batches/train.bin",              "batches/test.bin",
    "batches/fine_label_names.txt",   "batches/coarse_label_names.txt",
};
enum { NNAMES = sizeof names / sizeof names[0] };

static const char *const train10[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                      "data_batch_4.bin", "data_batch_5.bin"};

static void check(const qat_dataset *ds)
{
    volatile unsigned sum = 0;
    for (size_t i = 0; i < (size_t)ds->n * ds->c * ds->h * ds->w; i++) sum += ds->images[i];
    for (int i = 0; i < ds->n; i++)
        if (ds->labels[i] >= ds->nclass) abort();
    for (int i = 0; i < ds->nclass; i++)
        if (!ds->class_names || !ds->class_names[i]) abort();
}

static void load(const char *path, int which, int coarse)
{
    qat_dataset train, test;
    if (qat_data_load_cifar(&train, &test, path, which, coarse) != QAT_OK) return;
    check(&train);
    check(&test);
    qat_dataset_free(&train);
    qat_dataset_free(&test);
}

/* The names file parser on a copy of exactly the file's bytes: the readers
 * hand it a larger buffer, which would hide a read past the end. */
static void names_alone(const uint8_t *text, size_t len, int want)
{
    char *copy = malloc(len ? len : 1);
    if (!copy) return;
    memcpy(copy, text, len);
    qat_dataset ds = {.name = "names"};
    if (qat_data_names_parse(&ds, "names.txt", copy, len, want) == QAT_OK) free(ds.class_names);
    free(copy);
}

/* Every member in turn, its data read in pieces of `chunk` bytes (0: left
 * for qat_tar_next to skip). */
static void walk(const char *path, size_t chunk)
{
    qat_tar *t;
    if (qat_tar_open(&t, path) != QAT_OK) return;
    qat_tar_member *m = malloc(sizeof *m);
    uint8_t *buf = malloc(chunk ? chunk : 1);
    int more = 1;
    for (int i = 0; m && buf && i < 256 && qat_tar_next(t, m, &more) == QAT_OK && more; i++) {
        if (strnlen(m->name, sizeof m->name) == sizeof m->name) abort();
        size_t got = chunk;
        uint64_t total = 0;
        qat_status s = QAT_OK;
        while (chunk && got == chunk && (s = qat_tar_read(t, buf, chunk, &got)) == QAT_OK) total += got;
        if (total > m->size) abort();
        if (s != QAT_OK) break; /* a member cut short ends the archive for a caller */
    }
    free(buf);
    free(m);
    qat_tar_close(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5 || size > (1u << 20)) return 0;
    const char *dir = fuzz_dir(names, NNAMES);
    char path[256];
    snprintf(path, sizeof path, "%s/batches", dir);
    mkdir(path, 0700);
    fuzz_dir_clear();
    int mode = data[0] & 3, hundred = data[0] >> 2 & 1, coarse = data[0] >> 3 & 1;
    size_t chunk = (size_t)(data[0] >> 4) * 1000;
    size_t a = (size_t)data[1] | (size_t)data[2] << 8, b = (size_t)data[3] | (size_t)data[4] << 8;
    data += 5;
    size -= 5;
    int which = hundred ? 100 : 10;
    if (mode <= 1) {
        fuzz_write(names[0], data, size, mode);
        snprintf(path, sizeof path, "%s/%s", dir, names[0]);
        load(path, which, coarse);
    } else if (mode == 2) {
        if (a > size) a = size;
        if (b < a) b = a;
        if (b > size) b = size;
        char name[64];
        for (int i = 0; i < (hundred ? 1 : 5); i++) {
            snprintf(name, sizeof name, "batches/%s", hundred ? "train.bin" : train10[i]);
            fuzz_write(name, data, a, 0);
        }
        fuzz_write(hundred ? "batches/test.bin" : "batches/test_batch.bin", data + a, b - a, 0);
        if (b < size)
            fuzz_write(hundred ? coarse ? "batches/coarse_label_names.txt" : "batches/fine_label_names.txt"
                               : "batches/batches.meta.txt",
                       data + b, size - b, 0);
        snprintf(path, sizeof path, "%s/batches", dir);
        load(path, which, coarse);
        if (b < size) names_alone(data + b, size - b, hundred ? coarse ? 20 : 100 : 10);
    } else {
        fuzz_write(names[1], data, size, hundred);
        snprintf(path, sizeof path, "%s/%s", dir, names[1]);
        walk(path, chunk);
    }
    return 0;
}
