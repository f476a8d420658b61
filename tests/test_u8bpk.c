/* test_u8bpk.c: uint8 x binary GEMM on packed weights (runtime/kern_u8bpk.h).
 * The pack and every kernel this CPU runs (scalar, AVX2, AVX-512) against a
 * naive loop on the unpacked binary rows, on awkward sizes, leading
 * dimensions past the row, garbage bits past K, extreme pixels and weights;
 * C outside the M x N block must keep its sentinels. Stops at the first
 * mismatch. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "kern_u8bpk.h"

#include "qat_test.h"

typedef void pk_fn(int M, int N, int K, const uint8_t *A, size_t lda, const void *Bp, int32_t *C, size_t ldc);

typedef struct {
    const char *name;
    pk_fn *fn;
    long cases;
} kernel;

static kernel kernels[3];
static int nkernels;

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void) { return qat_test_splitmix64(&rng_state); }

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        printf("FAIL: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* pixel modes */
enum { PX_RANDOM, PX_FF, PX_ZERO, PX_EXTREMES, PX_COUNT };
/* weight modes */
enum { W_RANDOM, W_ONES, W_ZEROS, W_COUNT };

#define SENTINEL ((int32_t)0x5a5a5a5a)

static long total_cases;

/* One case: A is M rows of K pixels lda apart (the last row ends exactly at
 * the end of its allocation, the first byte is off malloc's alignment), B N
 * rows of kwords words ldb apart with random bits past K. */
static void run_case(int M, int N, int K, size_t lda, size_t ldb, int pmode, int wmode)
{
    size_t kwords = ((size_t)K + 63) / 64;
    size_t asize = M ? (size_t)(M - 1) * lda + (size_t)K : 0;
    uint8_t *abuf = xmalloc(asize + 1), *A = abuf + 1;
    for (size_t i = 0; i < asize; i++) {
        size_t k = i % lda;
        uint8_t v = (uint8_t)rnd();
        if (k < (size_t)K) {
            if (pmode == PX_FF)
                v = 0xff;
            else if (pmode == PX_ZERO)
                v = 0;
            else if (pmode == PX_EXTREMES)
                v = rnd() & 1 ? 0xff : 0;
        }
        A[i] = v;
    }
    size_t bsize = N ? (size_t)(N - 1) * ldb + kwords : 0;
    uint64_t *B = xmalloc(bsize * sizeof *B);
    for (size_t i = 0; i < bsize; i++) {
        uint64_t w = rnd();
        size_t word = i % ldb;
        if (word < kwords) { /* the bits at k < K follow the mode, the rest stay random */
            uint64_t valid = word + 1 < kwords || K % 64 == 0 ? ~0ull : (1ull << (K % 64)) - 1;
            uint64_t want = wmode == W_ONES ? ~0ull : wmode == W_ZEROS ? 0 : w;
            w = (want & valid) | (w & ~valid);
        }
        B[i] = w;
    }

    /* the pack writes every byte, the same way whatever was there */
    size_t psize = qatrt_u8b_packed_size(N, K);
    if (psize % 64) {
        printf("FAIL: packed size %zu of N=%d K=%d is not a multiple of 64\n", psize, N, K);
        exit(1);
    }
    uint8_t *P = aligned_alloc(64, psize ? psize : 64), *P2 = aligned_alloc(64, psize ? psize : 64);
    if (!P || !P2) {
        printf("FAIL: out of memory\n");
        exit(1);
    }
    memset(P, 0xa5, psize);
    memset(P2, 0x3c, psize);
    qatrt_u8b_pack(N, K, B, ldb, P);
    qatrt_u8b_pack(N, K, B, ldb, P2);
    if (memcmp(P, P2, psize) != 0) {
        printf("FAIL: pack N=%d K=%d: output depends on what dst held\n", N, K);
        exit(1);
    }

    /* naive result on the unpacked rows */
    int64_t *want = xmalloc((size_t)M * (size_t)N * sizeof *want);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t dot = 0;
            for (int k = 0; k < K; k++) {
                int a = A[(size_t)m * lda + (size_t)k];
                dot += B[(size_t)n * ldb + (size_t)k / 64] >> (k % 64) & 1 ? -a : a;
            }
            want[(size_t)m * N + n] = dot;
        }

    size_t ldc = (size_t)N + (size_t)(rnd() % 3);
    size_t csize = M ? (size_t)(M - 1) * ldc + (size_t)N : 0;
    int32_t *cbuf = xmalloc((csize + 2) * sizeof *cbuf), *C = cbuf + 1;
    for (int i = 0; i < nkernels; i++) {
        for (size_t j = 0; j < csize + 2; j++) cbuf[j] = SENTINEL;
        kernels[i].fn(M, N, K, A, lda, P, C, ldc);
        for (size_t j = 0; j < csize + 2; j++) {
            long idx = (long)j - 1;
            int inside = idx >= 0 && (size_t)idx < csize && (size_t)idx % ldc < (size_t)N;
            if (!inside) {
                if (cbuf[j] != SENTINEL) {
                    printf("FAIL: %s M=%d N=%d K=%d lda=%zu ldb=%zu ldc=%zu pixels=%d weights=%d: C[%ld] outside "
                           "the block was written (%d)\n",
                           kernels[i].name, M, N, K, lda, ldb, ldc, pmode, wmode, idx, cbuf[j]);
                    exit(1);
                }
                continue;
            }
            int m = (int)((size_t)idx / ldc), n = (int)((size_t)idx % ldc);
            int64_t w = want[(size_t)m * N + n];
            if (C[idx] != w) {
                printf("FAIL: %s M=%d N=%d K=%d lda=%zu ldb=%zu ldc=%zu pixels=%d weights=%d: C[%d][%d] = %d, "
                       "want %lld\n",
                       kernels[i].name, M, N, K, lda, ldb, ldc, pmode, wmode, m, n, C[idx], (long long)w);
                exit(1);
            }
        }
        kernels[i].cases++;
    }
    total_cases++;
    free(cbuf);
    free(want);
    free(P);
    free(P2);
    free(B);
    free(abuf);
}

static size_t pad(size_t base, int extra) { return base + (extra ? 1 + rnd() % 70 : 0); }

int main(void)
{
    kernels[nkernels++] = (kernel){"scalar", qatrt_u8bgemm_pk_scalar, 0};
#if defined(__x86_64__)
    if (qatrt_isa_supported(QATRT_ISA_AVX2))
        kernels[nkernels++] = (kernel){"avx2", qatrt_u8bgemm_pk_avx2, 0};
    else
        printf("SKIP avx2: not supported on this CPU\n");
    __builtin_cpu_init();
    if (qatrt_isa_supported(QATRT_ISA_AVX512) && __builtin_cpu_supports("avx512vbmi"))
        kernels[nkernels++] = (kernel){"avx512", qatrt_u8bgemm_pk_avx512, 0};
    else
        printf("SKIP avx512: not supported on this CPU (needs AVX512-VBMI too)\n");
#else
    printf("SKIP avx2, avx512: not an x86-64 build\n");
#endif

    static const int Ns[] = {0, 1, 2, 15, 16, 17, 63, 64, 65, 100, 1024};
    static const int Ks[] = {0, 1, 3, 4, 5, 7, 8, 15, 16, 31, 32, 63, 64, 65, 127, 128, 129, 500, 784, 1000, 4100};
    int nN = (int)(sizeof Ns / sizeof Ns[0]), nK = (int)(sizeof Ks / sizeof Ks[0]);
    /* the grid: every M, N, K; leading dimensions and modes vary */
    for (int M = 0; M <= 5; M++)
        for (int i = 0; i < nN; i++)
            for (int j = 0; j < nK; j++) {
                int N = Ns[i], K = Ks[j];
                size_t kwords = ((size_t)K + 63) / 64;
                size_t lda = pad(K ? (size_t)K : 1, (i + j + M) % 2), ldb = pad(kwords ? kwords : 1, (i + j) % 3 == 0);
                run_case(M, N, K, lda, ldb, (int)(rnd() % PX_COUNT), (int)(rnd() % W_COUNT));
            }
    /* the extremes on every shape of a smaller grid */
    for (int p = 0; p < PX_COUNT; p++)
        for (int w = 0; w < W_COUNT; w++)
            for (int i = 0; i < nN; i += 2)
                for (int j = 0; j < nK; j += 2) {
                    int K = Ks[j];
                    run_case(1 + (i + j) % 4, Ns[i], K, pad(K ? (size_t)K : 1, 1),
                             pad(K ? ((size_t)K + 63) / 64 : 1, 1), p, w);
                }
    /* random shapes */
    for (int r = 0; r < 300; r++) {
        int M = (int)(rnd() % 7), N = (int)(rnd() % 300), K = (int)(rnd() % 3000);
        if (r % 10 == 0) K = (int)(rnd() % 40);
        run_case(M, N, K, pad(K ? (size_t)K : 1, (int)(rnd() & 1)),
                 pad(K ? ((size_t)K + 63) / 64 : 1, (int)(rnd() & 1)), (int)(rnd() % PX_COUNT), (int)(rnd() % W_COUNT));
    }
    /* the largest K the header allows, where 2 P passes 2^31: every sum
     * still fits in int32 */
    for (int w = W_ONES; w <= W_ZEROS; w++) run_case(1, 2, 1 << 23, 1 << 23, 1 << 17, PX_FF, w);

    printf("u8bpk: %ld cases, each packed twice and checked against the naive loop:", total_cases);
    for (int i = 0; i < nkernels; i++) printf(" %s %ld", kernels[i].name, kernels[i].cases);
    printf(": all exact, C outside M x N untouched\n");
    return 0;
}
