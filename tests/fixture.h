/* fixture.h: the reader of the binary fixtures the generators in
 * tests/fixtures/ write (golden LeNet-5, quantizer references): magic,
 * version 1, named float32/float16/int32 records, CRC-32. It treats the file
 * as hostile and prints which byte was wrong. */
#ifndef QAT_TEST_FIXTURE_H
#define QAT_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

enum { DT_F32 = 0, DT_F16 = 1, DT_I32 = 2 };

typedef struct {
    char name[64];
    int dtype, ndim, dims[4];
    size_t n;
    float *f;   /* float32 and float16 records, converted */
    int32_t *i; /* int32 records */
} record;

typedef struct {
    record *r;
    int n;
} fixture;

/* 0 on success; on failure prints "path: byte N: why" and returns -1 */
int fixture_read(fixture *fx, const char *path, const char magic[8], const char *hint);
void fixture_free(fixture *fx);

#endif
