/* kern_u8bpk.h: uint8 x binary GEMM on weights packed once, at model load,
 * for table lookups (a first layer with +-1 weights at batch 1):
 *     C[m * ldc + n] = sum_{k < K} A[m * lda + k] * s(n, k)    (m < M, n < N)
 * s(n, k) = +1 where bit k of weight row n is 0, -1 where it is 1: the same
 * result as u8bgemm in kern.h. lda counts bytes, ldc int32 elements; no
 * pointer or leading dimension needs alignment except the packed weights
 * (64 bytes). Any M, N >= 0 and 0 <= K <= 2^23 (every sum fits in int32;
 * partial sums wrap mod 2^32 on the way). Nothing allocates, prints or
 * touches floating point, and only C[m * ldc + n] for m < M, n < N is
 * written.
 *
 * Packed layout (one for every ISA: the pack runs before the ISA is known)
 *   Columns go in blocks of 16 (nb = ceil(N / 16)), K in groups of 16
 *   (G = ceil(K / 16)), each group in 4 chunks t of 4 weights. Block b is G
 *   consecutive 64-byte units, unit (b, g) at byte (b * G + g) * 64. Byte
 *   4 i + t of a unit belongs to column n = 16 b + i and chunk t, i.e. to
 *   k = 16 g + 4 t + j (j < 4):
 *       bits 0, 1: the weight bits j = 0, 1     bits 2, 3: t
 *       bits 4, 5: the weight bits j = 2, 3     bits 6, 7: 0
 *   Weight bits are 0 at k >= K and n >= N (padding adds nothing).
 *   Why: a dword is one column's 16 weights, so VPDPBUSD can add its 4 bytes
 *   into that column; a byte is a 6-bit index into a 64-entry table (4
 *   sub-tables of 16, one per chunk t), so one VPERMB looks up 64 of them;
 *   and bits 0..3 and 2..5 are two 4-bit indices, each with t in it, for the
 *   16-entry tables of VPSHUFB (AVX2). 2 bytes per 8 weights, twice the
 *   binary encoding.
 *
 * The kernels, per call and row of A: a pixel is 16 hi + lo (nibbles); per
 * group, one table holds for every pattern the sum of the lo nibbles it
 * selects (at most 60, a byte), one the sum of the hi nibbles. With P_lo,
 * P_hi the sums of the entries the weights look up,
 * C = sum_k a_k - 2 (P_lo + 16 P_hi). */
#ifndef QATRT_KERN_U8BPK_H
#define QATRT_KERN_U8BPK_H

#include <stddef.h>
#include <stdint.h>

/* bytes of the packed form of N rows of K weights: a multiple of 64, 0 when
 * N or K is 0 */
size_t qatrt_u8b_packed_size(int N, int K);

/* B: N rows of (K + 63) / 64 words in the binary encoding of kern.h, ldb
 * words apart (bits at k >= K are ignored). dst: 64-byte aligned,
 * qatrt_u8b_packed_size(N, K) bytes, all of them written, the same way
 * whatever dst held. */
void qatrt_u8b_pack(int N, int K, const uint64_t *B, size_t ldb, void *dst);

/* the bytes of one column n < 16 ceil(N / 16) of that (row: its K
 * weights as above, NULL for a padding column n >= N), for a caller that
 * has the rows one at a time; qatrt_u8b_pack is this for every column */
void qatrt_u8b_pack_row(int N, int K, int n, const uint64_t *row, void *dst);

/* C = A x packed B as above; Bp from qatrt_u8b_pack with the same N and K.
 * _scalar is the plain reference; _avx2 needs what the avx2 table of kern.h
 * needs; _avx512 what the avx512 table needs plus AVX512-VBMI (VPERMB). */
/* for the SIMD kernels: 1 when there is nothing to look up (M, N or K not
 * positive), after writing C's zeros for K <= 0 */
int qatrt_u8b_trivial(int M, int N, int K, int32_t *C, size_t ldc);
void qatrt_u8bgemm_pk_scalar(int M, int N, int K, const uint8_t *A, size_t lda, const void *Bp, int32_t *C, size_t ldc);
void qatrt_u8bgemm_pk_avx2(int M, int N, int K, const uint8_t *A, size_t lda, const void *Bp, int32_t *C, size_t ldc);
void qatrt_u8bgemm_pk_avx512(int M, int N, int K, const uint8_t *A, size_t lda, const void *Bp, int32_t *C, size_t ldc);

#endif
