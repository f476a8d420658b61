/* fuzz_idx.c: libFuzzer target for the IDX reader (data/idx.c), raw and
 * gzip. qat_data_load_idx takes two paths, so the input is cut into an
 * images file and a labels file in the process's temp folder:
 *   byte 0     flags: 1 gzip the images file, 2 gzip the labels file (the
 *              target compresses, so the fuzzer shapes what is inside; an
 *              input part may also be gzip bytes itself)
 *   byte 1     nclass - 1
 *   bytes 2-3  u16 LE: bytes of images (the rest, if fewer remain)
 *   then       the images file, then the labels file.
 * Build and run with scripts/fuzz idx SECONDS. */
#include <stdint.h>
#include <stdlib.h>

#include "dataset.h"

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4 || size > (1u << 20)) return 0;
    const char *dir = fuzz_dir(names, 2);
    int flags = data[0], nclass = data[1] + 1;
    size_t cut = (size_t)data[2] | (size_t)data[3] << 8;
    data += 4;
    size -= 4;
    if (cut > size) cut = size;
    fuzz_write(names[0], data, cut, flags & 1);
    fuzz_write(names[1], data + cut, size - cut, flags & 2);
    char im[256], lb[256];
    snprintf(im, sizeof im, "%s/%s", dir, names[0]);
    snprintf(lb, sizeof lb, "%s/%s", dir, names[1]);
    qat_dataset ds;
    if (qat_data_load_idx(&ds, im, lb, nclass) == QAT_OK) {
        /* what a trainer reads next: every label in range, every pixel there */
        volatile unsigned sum = 0;
        for (size_t i = 0; i < (size_t)ds.n * ds.c * ds.h * ds.w; i++) sum += ds.images[i];
        for (int i = 0; i < ds.n; i++)
            if (ds.labels[i] >= ds.nclass) abort();
        if (!ds.class_names || !ds.class_names[ds.nclass - 1]) abort();
        qat_dataset_free(&ds);
    }
    return 0;
}
