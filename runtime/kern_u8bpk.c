/* kern_u8bpk.c: the packed layout of kern_u8bpk.h, written (qatrt_u8b_pack)
 * and read back by the plain reference kernel every SIMD one is tested
 * against. Built like kern_scalar.c: general registers only. */
#include "kern_u8bpk.h"

/* where weight bit j of a chunk goes in its byte (bits 2, 3 hold the chunk) */
static const unsigned char bit_pos[4] = {0, 1, 4, 5};

size_t qatrt_u8b_packed_size(int N, int K)
{
    if (N <= 0 || K <= 0) return 0;
    return (((size_t)N + 15) / 16) * (((size_t)K + 15) / 16) * 64;
}

void qatrt_u8b_pack_row(int N, int K, int n, const uint64_t *row, void *dst)
{
    if (N <= 0 || K <= 0) return;
    unsigned char *out = (unsigned char *)dst + (size_t)n / 16 * (((size_t)K + 15) / 16) * 64 + 4 * ((size_t)n % 16);
    for (size_t g = 0; g < ((size_t)K + 15) / 16; g++)
        for (int t = 0; t < 4; t++) {
            unsigned byte = (unsigned)t << 2;
            for (int j = 0; j < 4 && row; j++) {
                size_t k = 16 * g + 4 * (size_t)t + (size_t)j;
                if (k < (size_t)K && (row[k / 64] >> (k % 64) & 1)) byte |= 1u << bit_pos[j];
            }
            out[g * 64 + (size_t)t] = (unsigned char)byte;
        }
}

void qatrt_u8b_pack(int N, int K, const uint64_t *B, size_t ldb, void *dst)
{
    for (int n = 0; n < (N + 15) / 16 * 16; n++) qatrt_u8b_pack_row(N, K, n, n < N ? B + (size_t)n * ldb : NULL, dst);
}

int qatrt_u8b_trivial(int M, int N, int K, int32_t *C, size_t ldc)
{
    if (M <= 0 || N <= 0) return 1;
    if (K > 0) return 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) C[(size_t)m * ldc + n] = 0;
    return 1;
}

void qatrt_u8bgemm_pk_scalar(int M, int N, int K, const uint8_t *A, size_t lda, const void *Bp, int32_t *C, size_t ldc)
{
    const unsigned char *p = Bp;
    size_t G = ((size_t)K + 15) / 16;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const uint8_t *a = A + (size_t)m * lda;
            const unsigned char *col = p + ((size_t)n / 16 * G) * 64 + 4 * ((size_t)n % 16);
            int32_t dot = 0;
            for (int k = 0; k < K; k++) {
                unsigned byte = col[(size_t)k / 16 * 64 + (size_t)k % 16 / 4];
                dot += byte >> bit_pos[k % 4] & 1 ? -(int32_t)a[k] : (int32_t)a[k];
            }
            C[(size_t)m * ldc + n] = dot;
        }
}
