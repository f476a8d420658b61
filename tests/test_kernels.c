/* test_kernels.c: the runtime's integer GEMM kernels (runtime/kern.h). The
 * scalar table is checked against a naive triple loop over unpacked int
 * values, every other supported table against the scalar one, on awkward
 * sizes, odd leading dimensions, unaligned pointers and extreme values; C
 * outside the M x N block must stay untouched. Then QATRT_ISA selection. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"

#include "qat_test.h"

enum {
    K_BGEMM, K_TGEMM, K_I8TGEMM, K_U8I8GEMM, K_I8I8GEMM, K_I16GEMM, K_P2GEMM, K_U8BGEMM, K_BGEMM_PK, K_U8BGEMM_PK,
    K_U8I8GEMM_PK, K_I8I8GEMM_PK, K_COUNT
};
static const char *const kernel_names[K_COUNT] = {"bgemm",      "tgemm",       "i8tgemm",    "u8i8gemm",
                                                  "i8i8gemm",   "i16gemm",     "p2gemm",     "u8bgemm",
                                                  "bgemm_pk",   "u8bgemm_pk",  "u8i8gemm_pk", "i8i8gemm_pk"};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) { return qat_test_splitmix64(&rng_state); }
static int rnd_in(int lo, int hi) { return lo + (int)(rnd() % (uint64_t)(hi - lo + 1)); }

/* p2 code -> weight, written differently from the kernels on purpose */
static int p2_value(unsigned code)
{
    static const int mag[8] = {0, 1, 2, 4, 8, 16, 32, 64};
    return code & 8 ? -mag[code & 7] : mag[code & 7];
}

/* One test case: unpacked values, the operands packed as the kernel takes
 * them (each buffer sized so that its last row ends exactly at the end of
 * the allocation, and shifted one element off malloc's alignment), and C. */
typedef struct {
    int kernel, M, N, K, mode;
    int kwords, kbits;       /* bgemm / tgemm / i8tgemm */
    int *ua, *ub;            /* M x K and N x K unpacked values */
    int64_t *want;           /* naive M x N */
    void *abuf, *bbuf;       /* allocations */
    const void *A, *B;       /* operands (abuf / bbuf + one element) */
    size_t lda, ldb, ldc;    /* in the kernel's units */
    int32_t *bsum;           /* i8i8gemm: NULL or sum_k B(n, k) */
    uint64_t *panel;         /* bgemm_pk / u8bgemm_pk: B packed (qatrt_pack_bpanel / qatrt_u8b_pack) */
    int32_t *cbuf, *C;       /* C = cbuf + 1; guard elements around it */
    size_t csize;
} tcase;

#define SENTINEL ((int32_t)0x5a5a5a5a)

/* ld >= row, row count rows, element size es: allocation holding rows with
 * the pitch ld whose last row stops at the end, plus one element of offset.
 * Padding is filled with garbage the kernels must not use. */
static void *alloc_rows(int rows, size_t ld, size_t row, size_t es, const void **base)
{
    size_t n = 1 + (rows ? (size_t)(rows - 1) * ld + row : 0);
    unsigned char *p = malloc(n * es);
    for (size_t i = 0; i < n * es; i++) p[i] = (unsigned char)rnd();
    *base = p + es;
    return p;
}

/* one value of A or B for this kernel and mode: mode 0 uniform, 1 extremes
 * only, 2 the same extreme everywhere (largest magnitude sums) */
static int gen_value(int kernel, int side, int mode, int r16, int k)
{
    switch (kernel) {
    case K_BGEMM:
    case K_BGEMM_PK:
        return mode == 2 ? (side ? 1 : -1) : (rnd() & 1 ? 1 : -1);
    case K_TGEMM:
        return mode == 2 ? -1 : mode == 1 ? (rnd() & 1 ? 1 : -1) : rnd_in(-1, 1);
    case K_I8TGEMM:
        if (side) return mode == 2 ? -1 : rnd_in(-1, 1);
        break;
    case K_U8I8GEMM:
    case K_U8I8GEMM_PK:
    case K_U8BGEMM:
    case K_U8BGEMM_PK:
        if (!side) return mode == 2 ? 255 : mode == 1 ? (rnd() & 1 ? 255 : 0) : rnd_in(0, 255);
        if (kernel == K_U8BGEMM || kernel == K_U8BGEMM_PK) return mode == 2 ? -1 : (rnd() & 1 ? 1 : -1);
        break;
    case K_I16GEMM: {
        /* sum |a b| < 2^31 so every partial sum fits, in any order: the
         * extremes go at k = 0, the rest are bounded by r16 */
        if (k == 0 && mode) return mode == 2 || rnd() & 1 ? -32768 : 32767;
        return mode == 1 ? (rnd() & 1 ? r16 : -r16) : rnd_in(-r16, r16);
    }
    case K_P2GEMM:
        if (side) return mode == 2 ? 15 : mode == 1 ? (rnd() & 1 ? 15 : 7) : rnd_in(0, 15); /* the code */
        break;
    }
    /* int8 */
    return mode == 2 ? -128 : mode == 1 ? (rnd() & 1 ? 127 : -128) : rnd_in(-128, 127);
}

static void pack_i8(const int *u, int K, int8_t *out)
{
    for (int k = 0; k < K; k++) out[k] = (int8_t)u[k];
}

static void case_init(tcase *t, int kernel, int M, int N, int K, int mode, int variant)
{
    memset(t, 0, sizeof *t);
    t->kernel = kernel, t->M = M, t->N = N, t->K = K, t->mode = mode;
    int r16 = 1; /* int16 bound: K r16^2 <= 2^29 */
    while ((int64_t)(r16 + 1) * (r16 + 1) * K <= (int64_t)1 << 29 && r16 < 32767) r16++;
    t->ua = malloc(sizeof(int) * ((size_t)M * K + 1));
    t->ub = malloc(sizeof(int) * ((size_t)N * K + 1));
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) t->ua[(size_t)m * K + k] = gen_value(kernel, 0, mode, r16, k);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) t->ub[(size_t)n * K + k] = gen_value(kernel, 1, mode, r16, k);

    /* the naive product over unpacked values (p2: codes decoded here) */
    t->want = malloc(sizeof(int64_t) * ((size_t)M * N + 1));
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t s = 0;
            for (int k = 0; k < K; k++) {
                int a = t->ua[(size_t)m * K + k], b = t->ub[(size_t)n * K + k];
                s += (int64_t)a * (kernel == K_P2GEMM ? p2_value((unsigned)b) : b);
            }
            t->want[(size_t)m * N + n] = s;
        }

    int pad = 1 + 2 * (variant % 3); /* odd padding of every leading dimension */
    int kw = (K + 63) / 64;
    int8_t *row = malloc((size_t)K + 1);
    switch (kernel) {
    case K_BGEMM:
    case K_BGEMM_PK:
    case K_TGEMM: {
        /* bgemm and tgemm may carry extra (zero) words past the last bit */
        t->kwords = kw + (variant & 1), t->kbits = K;
        size_t rw = (size_t)t->kwords * (kernel == K_TGEMM ? 2 : 1);
        t->lda = rw + (size_t)pad, t->ldb = rw + (size_t)pad + 2;
        for (int side = 0; side < 2; side++) {
            int rows = side ? N : M;
            size_t ld = side ? t->ldb : t->lda;
            const void *base;
            void *buf = alloc_rows(rows, ld, rw, 8, &base);
            uint64_t *w = (uint64_t *)base;
            for (int r = 0; r < rows; r++) {
                uint64_t *o = w + (size_t)r * ld;
                memset(o, 0, rw * 8);
                pack_i8(side ? t->ub + (size_t)r * K : t->ua + (size_t)r * K, K, row);
                if (kernel != K_TGEMM) qatrt_pack_bits(row, K, o);
                else qatrt_pack_ternary(row, K, t->kwords, o);
            }
            if (side) t->bbuf = buf, t->B = base;
            else t->abuf = buf, t->A = base;
        }
        if (kernel == K_BGEMM_PK) { /* garbage first: every word must be written */
            size_t words = qatrt_bpanel_words(N, t->kwords);
            t->panel = aligned_alloc(64, (words * 8 + 63) / 64 * 64 + 64);
            for (size_t i = 0; i < words; i++) t->panel[i] = rnd();
            qatrt_pack_bpanel(N, t->kwords, t->B, t->ldb, t->panel);
        }
        break;
    }
    case K_I8TGEMM: {
        t->kwords = kw;
        t->lda = (size_t)K + (size_t)pad, t->ldb = 2 * (size_t)kw + (size_t)pad;
        const void *base;
        t->abuf = alloc_rows(M, t->lda, (size_t)K, 1, &t->A);
        for (int m = 0; m < M; m++) pack_i8(t->ua + (size_t)m * K, K, (int8_t *)t->A + (size_t)m * t->lda);
        t->bbuf = alloc_rows(N, t->ldb, 2 * (size_t)kw, 8, &base);
        t->B = base;
        for (int n = 0; n < N; n++) {
            uint64_t *o = (uint64_t *)base + (size_t)n * t->ldb;
            pack_i8(t->ub + (size_t)n * K, K, row);
            qatrt_pack_ternary(row, K, kw, o);
            if (K % 64) { /* bits past K are not part of the operand: garbage */
                uint64_t junk = rnd() & ~(((uint64_t)1 << (K % 64)) - 1);
                o[kw - 1] |= junk;
                o[2 * kw - 1] |= junk & rnd();
            }
        }
        break;
    }
    case K_U8BGEMM:
    case K_U8BGEMM_PK: {
        t->lda = (size_t)K + (size_t)pad, t->ldb = (size_t)kw + (size_t)pad;
        const void *base;
        t->abuf = alloc_rows(M, t->lda, (size_t)K, 1, &t->A);
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++) ((uint8_t *)t->A)[(size_t)m * t->lda + k] = (uint8_t)t->ua[(size_t)m * K + k];
        t->bbuf = alloc_rows(N, t->ldb, (size_t)kw, 8, &base);
        t->B = base;
        for (int n = 0; n < N; n++) {
            uint64_t *o = (uint64_t *)base + (size_t)n * t->ldb;
            pack_i8(t->ub + (size_t)n * K, K, row);
            qatrt_pack_bits(row, K, o);
            if (K % 64) o[kw - 1] |= rnd() & ~(((uint64_t)1 << (K % 64)) - 1); /* bits past K: garbage */
        }
        if (kernel == K_U8BGEMM_PK) {
            size_t bytes = qatrt_u8b_packed_size(N, K);
            t->panel = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
            qatrt_u8b_pack(N, K, t->B, t->ldb, t->panel);
        }
        break;
    }
    case K_I16GEMM: {
        t->lda = (size_t)K + (size_t)pad, t->ldb = (size_t)K + (size_t)pad + 2;
        t->abuf = alloc_rows(M, t->lda, (size_t)K, 2, &t->A);
        t->bbuf = alloc_rows(N, t->ldb, (size_t)K, 2, &t->B);
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++) ((int16_t *)t->A)[(size_t)m * t->lda + k] = (int16_t)t->ua[(size_t)m * K + k];
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) ((int16_t *)t->B)[(size_t)n * t->ldb + k] = (int16_t)t->ub[(size_t)n * K + k];
        break;
    }
    case K_P2GEMM: {
        size_t rb = ((size_t)K + 1) / 2;
        t->lda = (size_t)K + (size_t)pad, t->ldb = rb + (size_t)pad;
        t->abuf = alloc_rows(M, t->lda, (size_t)K, 1, &t->A);
        t->bbuf = alloc_rows(N, t->ldb, rb, 1, &t->B);
        for (int m = 0; m < M; m++) pack_i8(t->ua + (size_t)m * K, K, (int8_t *)t->A + (size_t)m * t->lda);
        for (int n = 0; n < N; n++) {
            uint8_t *o = (uint8_t *)t->B + (size_t)n * t->ldb;
            for (int k = 0; k < K; k++) {
                unsigned c = (unsigned)t->ub[(size_t)n * K + k];
                o[k / 2] = (uint8_t)(k & 1 ? (o[k / 2] & 0x0f) | c << 4 : (o[k / 2] & 0xf0) | c);
            }
            /* an odd K leaves the last high nibble unused: keep its garbage */
        }
        break;
    }
    default: { /* u8i8gemm, i8i8gemm */
        t->lda = (size_t)K + (size_t)pad, t->ldb = (size_t)K + (size_t)pad + 4;
        t->abuf = alloc_rows(M, t->lda, (size_t)K, 1, &t->A);
        t->bbuf = alloc_rows(N, t->ldb, (size_t)K, 1, &t->B);
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++)
                ((uint8_t *)t->A)[(size_t)m * t->lda + k] = (uint8_t)t->ua[(size_t)m * K + k]; /* two's complement */
        for (int n = 0; n < N; n++) pack_i8(t->ub + (size_t)n * K, K, (int8_t *)t->B + (size_t)n * t->ldb);
        if (kernel == K_U8I8GEMM_PK || kernel == K_I8I8GEMM_PK) {
            size_t bytes = qatrt_i8panel_bytes(N, K);
            t->panel = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
            qatrt_pack_i8panel(N, K, t->B, t->ldb, (int8_t *)(void *)t->panel);
        }
        if ((kernel == K_I8I8GEMM || kernel == K_I8I8GEMM_PK) && variant % 2) {
            t->bsum = malloc(sizeof(int32_t) * ((size_t)N + 1));
            for (int n = 0; n < N; n++) {
                int32_t s = 0;
                for (int k = 0; k < K; k++) s += t->ub[(size_t)n * K + k];
                t->bsum[n] = s;
            }
        }
        break;
    }
    }
    free(row);
    t->ldc = (size_t)N + (size_t)pad;
    t->csize = (size_t)M * t->ldc + 2;
    t->cbuf = malloc(sizeof(int32_t) * t->csize);
    t->C = t->cbuf + 1;
}

static void case_free(tcase *t)
{
    free(t->ua), free(t->ub), free(t->want), free(t->abuf), free(t->bbuf), free(t->bsum), free(t->cbuf);
    free(t->panel);
}

static void case_run(const tcase *t, const qatrt_kernels *kt)
{
    for (size_t i = 0; i < t->csize; i++) t->cbuf[i] = SENTINEL;
    int M = t->M, N = t->N, K = t->K;
    switch (t->kernel) {
    case K_BGEMM:
        kt->bgemm(M, N, t->kwords, t->kbits, t->A, t->lda, t->B, t->ldb, t->C, t->ldc);
        break;
    case K_TGEMM:
        kt->tgemm(M, N, t->kwords, t->A, t->lda, t->B, t->ldb, t->C, t->ldc);
        break;
    case K_I8TGEMM:
        kt->i8tgemm(M, N, K, t->A, t->lda, t->B, t->ldb, t->C, t->ldc);
        break;
    case K_U8I8GEMM:
        kt->u8i8gemm(M, N, K, t->A, t->lda, t->B, t->ldb, t->C, t->ldc);
        break;
    case K_I8I8GEMM:
        kt->i8i8gemm(M, N, K, t->A, t->lda, t->B, t->ldb, t->bsum, t->C, t->ldc);
        break;
    case K_I16GEMM:
        kt->i16gemm(M, N, K, t->A, t->lda, t->B, t->ldb, t->C, t->ldc);
        break;
    case K_P2GEMM:
        kt->p2gemm(M, N, K, t->A, t->lda, t->B, t->ldb, t->C, t->ldc);
        break;
    case K_U8BGEMM:
        kt->u8bgemm(M, N, K, t->A, t->lda, t->B, t->ldb, t->C, t->ldc);
        break;
    case K_U8I8GEMM_PK:
        kt->u8i8gemm_pk(M, N, K, t->A, t->lda, (const int8_t *)(const void *)t->panel, t->C, t->ldc);
        break;
    case K_I8I8GEMM_PK:
        kt->i8i8gemm_pk(M, N, K, t->A, t->lda, (const int8_t *)(const void *)t->panel, t->bsum, t->C, t->ldc);
        break;
    case K_U8BGEMM_PK:
        kt->u8bgemm_pk(M, N, K, t->A, t->lda, t->panel, t->C, t->ldc);
        break;
    case K_BGEMM_PK:
        kt->bgemm_pk(M, N, t->kwords, t->kbits, t->A, t->lda, t->panel, t->C, t->ldc);
        break;
    }
}

/* C against want (int64, naive) or ref (another table's C); the guard
 * elements and the padding between N and ldc must still hold the sentinel */
static int case_check(const tcase *t, const char *isa, const int32_t *ref)
{
    const char *kn = kernel_names[t->kernel];
    int bad = 0;
    for (size_t i = 0; i < t->csize && !bad; i++) {
        size_t off = i - 1; /* position relative to C */
        int inside = i >= 1 && i < t->csize - 1 && off % t->ldc < (size_t)t->N;
        if (!inside) {
            CHECK(t->cbuf[i] == SENTINEL, "%s %s M=%d N=%d K=%d: C written outside the block at offset %ld", isa,
                  kn, t->M, t->N, t->K, (long)off);
            bad = t->cbuf[i] != SENTINEL;
            continue;
        }
        int m = (int)(off / t->ldc), n = (int)(off % t->ldc);
        int64_t want = ref ? ref[(size_t)m * t->ldc + n] : t->want[(size_t)m * t->N + n];
        CHECK(t->cbuf[i] == want, "%s %s M=%d N=%d K=%d mode %d lda %zu ldb %zu%s: C[%d][%d] = %d, want %lld", isa,
              kn, t->M, t->N, t->K, t->mode, t->lda, t->ldb, t->bsum ? " bsum" : "", m, n, t->cbuf[i],
              (long long)want);
        bad = t->cbuf[i] != want;
    }
    return !bad;
}

static const int sizes_mn[] = {1, 2, 3, 5, 7, 13, 17, 31, 33, 64, 65};
static const int sizes_k[] = {1, 7, 63, 64, 65, 97, 127, 128, 129, 500, 511, 513, 800, 1025};
#define NMN ((int)(sizeof sizes_mn / sizeof *sizes_mn))
#define NK ((int)(sizeof sizes_k / sizeof *sizes_k))

static void test_kernels(void)
{
    const qatrt_kernels *tab[QATRT_ISA_COUNT];
    int ncase[QATRT_ISA_COUNT] = {0}, nbad[QATRT_ISA_COUNT] = {0};
    for (int i = 0; i < QATRT_ISA_COUNT; i++) {
        tab[i] = qatrt_isa_supported((qatrt_isa)i) ? qatrt_kernels_for((qatrt_isa)i) : NULL;
        if (!tab[i]) continue;
        CHECK(tab[i]->isa == (qatrt_isa)i && strcmp(tab[i]->name, qatrt_isa_name((qatrt_isa)i)) == 0,
              "table %d names itself %s", i, tab[i]->name);
        CHECK(tab[i]->bgemm && tab[i]->tgemm && tab[i]->i8tgemm && tab[i]->u8i8gemm && tab[i]->i8i8gemm &&
                  tab[i]->i16gemm && tab[i]->p2gemm && tab[i]->u8bgemm && tab[i]->bgemm_pk && tab[i]->u8bgemm_pk && tab[i]->u8i8gemm_pk &&
                  tab[i]->i8i8gemm_pk && tab[i]->u8i8gemm_bits && tab[i]->thresh_bits &&
                  tab[i]->thresh_levels,
              "table %s has a NULL entry", tab[i]->name);
    }
    int variant = 0;
    for (int kernel = 0; kernel < K_COUNT; kernel++) {
        /* every K with every M once, N rotating; then empty operands */
        int shapes[NK * NMN + 14 + 48][3], ns = 0;
        for (int ki = 0; ki < NK; ki++)
            for (int mi = 0; mi < NMN; mi++) {
                shapes[ns][0] = sizes_mn[mi], shapes[ns][1] = sizes_mn[(mi * 7 + ki * 3) % NMN];
                shapes[ns++][2] = sizes_k[ki];
            }
        /* empty operands, and K long enough for the kernels' K chunks */
        /* and LeNet's layers at batch 1 and 2 (columns past 8 blocks of 16);
         * bgemm_pk's 8-row tiles with 5, 6, 0, 7 rows left after them, a
         * last panel of 8 columns or fewer, and a K whose last word is at
         * most half full (counted 16 columns to a vector) */
        const int extra[14][3] = {{0, 5, 7},     {3, 0, 7},     {3, 5, 0},      {65, 65, 0},  {9, 19, 8250},
                                  {1, 3, 20000}, {1, 500, 800}, {64, 50, 500},  {2, 500, 800}, {1, 10, 500},
                                  {13, 37, 2100}, {6, 17, 2048}, {16, 24, 4100}, {15, 25, 4128}};
        for (int e = 0; e < 14; e++) memcpy(shapes[ns++], extra[e], sizeof extra[e]);
        /* first layers: small K (every K % 4), up to two blocks of 16
         * channels, rows that end inside and outside a block of 8 */
        static const int small_k[8] = {2, 3, 4, 5, 25, 30, 36, 61}, small_n[6] = {1, 16, 17, 20, 32, 33},
                         small_m[6] = {4, 8, 9, 17, 576, 3};
        for (int e = 0; e < 48; e++) {
            shapes[ns][0] = small_m[e % 6], shapes[ns][1] = small_n[(e / 6 + e) % 6];
            shapes[ns++][2] = small_k[e / 6];
        }
        /* the rotating mode (uniform, extremes, constant) for every shape;
         * the shapes after the grid, which aim at particular tiles and
         * edges, also with uniform data, where every column differs */
        for (int s = 0, again = 0; s < ns; s += !again, variant++) {
            int mode = again ? 0 : variant % 3;
            again = !again && s >= NK * NMN && mode != 0;
            tcase t;
            case_init(&t, kernel, shapes[s][0], shapes[s][1], shapes[s][2], mode, variant);
            int ok = 1;
            for (int64_t i = 0; i < (int64_t)t.M * t.N; i++) /* test data must respect the kernels' contract */
                ok &= t.want[i] >= INT32_MIN && t.want[i] <= INT32_MAX;
            CHECK(ok, "%s M=%d N=%d K=%d: test data overflows int32", kernel_names[kernel], t.M, t.N, t.K);
            case_run(&t, tab[QATRT_ISA_SCALAR]);
            ncase[0]++;
            if (!case_check(&t, "scalar", NULL)) nbad[0]++;
            int32_t *ref = malloc(sizeof(int32_t) * t.csize);
            memcpy(ref, t.C - 1, sizeof(int32_t) * t.csize);
            for (int i = 1; i < QATRT_ISA_COUNT; i++) {
                if (!tab[i]) continue;
                case_run(&t, tab[i]);
                ncase[i]++;
                if (!case_check(&t, tab[i]->name, ref + 1)) nbad[i]++;
            }
            free(ref);
            case_free(&t);
        }
    }
    for (int i = 0; i < QATRT_ISA_COUNT; i++) {
        const char *name = qatrt_isa_name((qatrt_isa)i);
        if (!tab[i]) printf("kernels: %-6s skipped (this CPU or build lacks it)\n", name);
        else
            printf("kernels: %-6s %d cases against %s: %s\n", name, ncase[i], i ? "scalar" : "naive loops",
                   nbad[i] ? "FAILED" : "ok");
    }
}

/* a few known bit patterns, so the packing convention itself is pinned */
static void test_packing(void)
{
    const int8_t x[70] = {1, -1, 0, -5, [64] = -1, [69] = -1};
    uint64_t w[2] = {~0ull, ~0ull};
    qatrt_pack_bits(x, 70, w);
    CHECK(w[0] == 0xa && w[1] == 0x21, "pack_bits: %llx %llx", (unsigned long long)w[0], (unsigned long long)w[1]);
    const int8_t t[66] = {1, -1, 0, 1, [65] = -1};
    uint64_t p[6] = {~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull};
    qatrt_pack_ternary(t, 66, 3, p);
    CHECK(p[0] == 0xb && p[1] == 2 && p[2] == 0 && p[3] == 2 && p[4] == 2 && p[5] == 0,
          "pack_ternary: %llx %llx %llx / %llx %llx %llx", (unsigned long long)p[0], (unsigned long long)p[1],
          (unsigned long long)p[2], (unsigned long long)p[3], (unsigned long long)p[4], (unsigned long long)p[5]);

    /* int16 limits: the first pair of products sums to 2^30 - 2^30 + 32768 */
    const int16_t a[2] = {-32768, -32768}, b[2] = {-32768, 32767};
    for (int i = 0; i < QATRT_ISA_COUNT; i++) {
        if (!qatrt_isa_supported((qatrt_isa)i)) continue;
        int32_t c = 0;
        qatrt_kernels_for((qatrt_isa)i)->i16gemm(1, 1, 2, a, 2, b, 2, &c, 1);
        CHECK(c == 32768, "%s i16gemm at the int16 limits: %d", qatrt_isa_name((qatrt_isa)i), c);
    }
}

/* thresh_bits: against a plain definition on every ISA; awkward channel
 * counts, row pitches, flips, thresholds and accumulators at the int32
 * extremes, and guard bytes around every output row that must stay */
static void test_thresh(void)
{
    static const int Ns[] = {1, 7, 8, 9, 15, 16, 17, 20, 31, 33, 50, 64, 65, 500};
    int ncase = 0, nbad = 0;
    for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
        for (int M = 1; M <= 9; M += 4)
            for (int withflip = 0; withflip < 2; withflip++) {
                int N = Ns[ni];
                size_t ldc = (size_t)N + (size_t)rnd_in(0, 3), cb = ((size_t)N + 7) / 8, ldo = cb + (size_t)rnd_in(0, 2);
                int32_t *C = malloc(sizeof *C * ((size_t)M * ldc + 1)), *thr = malloc(sizeof *thr * (size_t)N);
                uint8_t *flip = calloc(cb, 1), *want = malloc((size_t)M * ldo + 2), *got = malloc((size_t)M * ldo + 2);
                for (size_t i = 0; i < (size_t)M * ldc + 1; i++) {
                    int r = rnd_in(0, 9);
                    C[i] = r == 0 ? INT32_MAX : r == 1 ? -INT32_MAX : r < 5 ? rnd_in(-3, 3) : (int32_t)(rnd() >> 33) - (1 << 30);
                }
                for (int n = 0; n < N; n++) {
                    int r = rnd_in(0, 9);
                    thr[n] = r == 0 ? INT32_MAX : r == 1 ? INT32_MIN : r < 6 ? rnd_in(-3, 3) : (int32_t)(rnd() >> 33) - (1 << 30);
                    if (withflip && rnd_in(0, 1)) flip[n / 8] |= (uint8_t)(1u << (n % 8));
                }
                /* the definition; guard bytes hold 0xa5 */
                memset(want, 0xa5, (size_t)M * ldo + 2);
                for (int m = 0; m < M; m++) {
                    memset(want + 1 + (size_t)m * ldo, 0, cb);
                    for (int n = 0; n < N; n++) {
                        int64_t v = C[(size_t)m * ldc + (size_t)n];
                        if (flip[n / 8] >> (n % 8) & 1) v = -v;
                        if (v < thr[n]) want[1 + (size_t)m * ldo + (size_t)n / 8] |= (uint8_t)(1u << (n % 8));
                    }
                }
                for (int i = 0; i < QATRT_ISA_COUNT; i++) {
                    if (!qatrt_isa_supported((qatrt_isa)i)) continue;
                    memset(got, 0xa5, (size_t)M * ldo + 2);
                    for (int m = 0; m < M; m++) memset(got + 1 + (size_t)m * ldo, 0xff, cb); /* every bit written */
                    qatrt_kernels_for((qatrt_isa)i)->thresh_bits(M, N, C, ldc, thr, withflip ? flip : NULL, got + 1, ldo);
                    ncase++;
                    if (memcmp(got, want, (size_t)M * ldo + 2) != 0) {
                        nbad++;
                        CHECK(0, "thresh_bits %s M %d N %d ldc %zu ldo %zu flip %d differs from the definition",
                              qatrt_isa_name((qatrt_isa)i), M, N, ldc, ldo, withflip);
                    }
                }
                free(C), free(thr), free(flip), free(want), free(got);
            }
    printf("kernels: thresh_bits %d cases (every ISA) against the definition: %s\n", ncase, nbad ? "FAILED" : "ok");
}

static void test_select(void)
{
    CHECK(qatrt_isa_parse("scalar") == QATRT_ISA_SCALAR && qatrt_isa_parse("avx2") == QATRT_ISA_AVX2 &&
              qatrt_isa_parse("avx512") == QATRT_ISA_AVX512,
          "parse of the three names");
    CHECK(qatrt_isa_parse("AVX512") == -1 && qatrt_isa_parse("avx") == -1 && qatrt_isa_parse("") == -1 &&
              qatrt_isa_parse(NULL) == -1,
          "parse rejects other strings");
    CHECK(strcmp(qatrt_isa_name(QATRT_ISA_COUNT), "unknown") == 0, "name of an out-of-range isa");
    CHECK(qatrt_kernels_for(QATRT_ISA_COUNT) == qatrt_kernels_for(QATRT_ISA_SCALAR), "out-of-range isa -> scalar");
    CHECK(qatrt_isa_supported(QATRT_ISA_SCALAR), "scalar always supported");

    qatrt_isa best = QATRT_ISA_SCALAR;
    for (int i = 0; i < QATRT_ISA_COUNT; i++)
        if (qatrt_isa_supported((qatrt_isa)i)) best = (qatrt_isa)i;
    int forced = 99;
    unsetenv("QATRT_ISA");
    CHECK(qatrt_isa_select(&forced) == best && forced == 0, "unset: best, forced %d", forced);
    CHECK(qatrt_isa_select(NULL) == best, "forced may be NULL");
    setenv("QATRT_ISA", "", 1);
    CHECK(qatrt_isa_select(&forced) == best && forced == 0, "empty counts as unset, forced %d", forced);
    for (int i = 0; i < QATRT_ISA_COUNT; i++) {
        const char *name = qatrt_isa_name((qatrt_isa)i);
        setenv("QATRT_ISA", name, 1);
        qatrt_isa got = qatrt_isa_select(&forced);
        if (qatrt_isa_supported((qatrt_isa)i)) {
            CHECK(got == (qatrt_isa)i && forced == 1, "QATRT_ISA=%s: got %s, forced %d", name, qatrt_isa_name(got),
                  forced);
        } else {
            CHECK(got == best && forced == -1, "QATRT_ISA=%s (unsupported): got %s, forced %d", name,
                  qatrt_isa_name(got), forced);
            CHECK(qatrt_kernels_for((qatrt_isa)i) == qatrt_kernels_for(QATRT_ISA_SCALAR),
                  "unsupported %s -> scalar table", name);
            printf("kernels: QATRT_ISA=%s is unsupported here and fell back to %s\n", name, qatrt_isa_name(got));
        }
    }
    setenv("QATRT_ISA", "avx1024", 1);
    CHECK(qatrt_isa_select(&forced) == best && forced == -1, "unknown request falls back, forced %d", forced);
    unsetenv("QATRT_ISA");
    printf("kernels: QATRT_ISA selection ok (best here: %s)\n", qatrt_isa_name(best));
}

/* u8i8gemm_bits: every ISA against naive sums and the threshold
 * definition; guard bytes around every output row must stay */
static void test_gemm_bits(void)
{
    static const int Ms[] = {1, 3, 4, 8, 9, 17, 576}, Ns[] = {1, 7, 8, 16, 17, 20, 32, 33, 50},
                     Ks[] = {1, 3, 4, 5, 25, 64, 65, 100};
    int ncase = 0, nbad = 0;
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
        for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
            for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
                int M = Ms[mi], N = Ns[ni], K = Ks[ki], withflip = (int)(rnd() & 1);
                size_t lda = (size_t)K + (size_t)rnd_in(0, 3), ldb = (size_t)K + (size_t)rnd_in(0, 2);
                size_t cb = ((size_t)N + 7) / 8, ldo = cb + (size_t)rnd_in(0, 2);
                uint8_t *A = malloc((size_t)M * lda), *flip = calloc(cb, 1);
                int8_t *B = malloc((size_t)N * ldb);
                int32_t *thr = malloc(sizeof *thr * (size_t)N);
                uint8_t *want = malloc((size_t)M * ldo + 2), *got = malloc((size_t)M * ldo + 2);
                for (size_t i = 0; i < (size_t)M * lda; i++) A[i] = (uint8_t)rnd();
                for (size_t i = 0; i < (size_t)N * ldb; i++) B[i] = (int8_t)rnd();
                for (int n = 0; n < N; n++) {
                    int r = rnd_in(0, 9);
                    thr[n] = r == 0 ? INT32_MAX : r == 1 ? INT32_MIN : r < 4 ? rnd_in(-3, 3) : rnd_in(-200 * K, 200 * K);
                    if (withflip && rnd_in(0, 1)) flip[n / 8] |= (uint8_t)(1u << (n % 8));
                }
                memset(want, 0xa5, (size_t)M * ldo + 2);
                for (int m = 0; m < M; m++) {
                    memset(want + 1 + (size_t)m * ldo, 0, cb);
                    for (int n = 0; n < N; n++) {
                        int64_t v = 0;
                        for (int k = 0; k < K; k++) v += (int64_t)A[(size_t)m * lda + k] * B[(size_t)n * ldb + k];
                        if (flip[n / 8] >> (n % 8) & 1) v = -v;
                        if (v < thr[n]) want[1 + (size_t)m * ldo + (size_t)n / 8] |= (uint8_t)(1u << (n % 8));
                    }
                }
                for (int i = 0; i < QATRT_ISA_COUNT; i++) {
                    if (!qatrt_isa_supported((qatrt_isa)i)) continue;
                    memset(got, 0xa5, (size_t)M * ldo + 2);
                    qatrt_kernels_for((qatrt_isa)i)
                        ->u8i8gemm_bits(M, N, K, A, lda, B, ldb, thr, withflip ? flip : NULL, got + 1, ldo);
                    ncase++;
                    int bad = memcmp(want, got, (size_t)M * ldo + 2) != 0;
                    CHECK(!bad, "%s u8i8gemm_bits M=%d N=%d K=%d lda %zu ldo %zu%s: bits differ",
                          qatrt_isa_name((qatrt_isa)i), M, N, K, lda, ldo, withflip ? " flip" : "");
                    nbad += bad;
                }
                free(A), free(B), free(flip), free(thr), free(want), free(got);
            }
    printf("kernels: u8i8gemm_bits %d cases (every ISA) against the definition: %s\n", ncase, nbad ? "FAILED" : "ok");
}

/* thresh_levels: every ISA against counting thresholds (each channel's
 * ascending, ties and extremes included); guard bytes around the rows */
static void test_thresh_levels(void)
{
    static const int Ns[] = {1, 7, 16, 17, 20, 33, 50}, Ts[] = {1, 2, 3, 7, 15, 16, 255};
    int ncase = 0, nbad = 0;
    for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
        for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++)
            for (int M = 1; M <= 9; M += 4) {
                int N = Ns[ni], T = Ts[ti], withflip = (int)(rnd() & 1);
                size_t ldc = (size_t)N + (size_t)rnd_in(0, 3), ldo = (size_t)N + (size_t)rnd_in(0, 2);
                int32_t *C = malloc(sizeof *C * (size_t)M * ldc), *thr = malloc(sizeof *thr * (size_t)N * (size_t)T);
                int8_t *lv = malloc((size_t)T + 1), *want = malloc((size_t)M * ldo + 2), *got = malloc((size_t)M * ldo + 2);
                uint8_t *flip = calloc(((size_t)N + 7) / 8, 1);
                for (int t = 0; t <= T; t++) lv[t] = (int8_t)(t - T / 2);
                for (int n = 0; n < N; n++) {
                    int32_t v = rnd_in(0, 9) == 0 ? INT32_MIN : rnd_in(-1000, 0);
                    for (int t = 0; t < T; t++) { /* ascending, with ties */
                        thr[(size_t)n * T + t] = v;
                        if (v < INT32_MAX - 100) v += rnd_in(0, 3) == 0 ? 0 : rnd_in(1, 40);
                    }
                    if (withflip && rnd_in(0, 1)) flip[n / 8] |= (uint8_t)(1u << (n % 8));
                }
                for (size_t i = 0; i < (size_t)M * ldc; i++) {
                    int r = rnd_in(0, 9);
                    C[i] = r == 0 ? INT32_MAX : r == 1 ? -INT32_MAX : rnd_in(-1200, 1200);
                }
                memset(want, 0x5a, (size_t)M * ldo + 2);
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++) {
                        int64_t v = C[(size_t)m * ldc + (size_t)n];
                        if (flip[n / 8] >> (n % 8) & 1) v = -v;
                        int cnt = 0;
                        for (int t = 0; t < T; t++) cnt += thr[(size_t)n * T + t] <= v;
                        want[1 + (size_t)m * ldo + (size_t)n] = (int8_t)lv[cnt];
                    }
                for (int i = 0; i < QATRT_ISA_COUNT; i++) {
                    if (!qatrt_isa_supported((qatrt_isa)i)) continue;
                    memset(got, 0x5a, (size_t)M * ldo + 2);
                    qatrt_kernels_for((qatrt_isa)i)
                        ->thresh_levels(M, N, C, ldc, thr, T, withflip ? flip : NULL, lv, got + 1, ldo);
                    ncase++;
                    int bad = memcmp(want, got, (size_t)M * ldo + 2) != 0;
                    CHECK(!bad, "%s thresh_levels M=%d N=%d T=%d%s: levels differ", qatrt_isa_name((qatrt_isa)i), M, N,
                          T, withflip ? " flip" : "");
                    nbad += bad;
                }
                free(C), free(thr), free(lv), free(want), free(got), free(flip);
            }
    printf("kernels: thresh_levels %d cases (every ISA) against the definition: %s\n", ncase, nbad ? "FAILED" : "ok");
}

/* Binary rows as the runtime lays out a convolution: each of taps taps
 * starts on a whole byte, so a row of kbits = taps x cin elements has zero
 * gaps inside and may reach past bit kbits. The kernels must count only
 * what is there (gaps are 0 in A and B); a kernel that took kbits for the
 * end of the data would get these wrong (cin = 60: a last word of 64 real
 * bits while kbits leaves it "half empty"). */
static void test_gaps(void)
{
    static const int shapes[][4] = {/* M, N, taps, cin */
                                    {1, 50, 25, 20},  {2, 33, 9, 60},  {8, 16, 9, 60}, {13, 24, 9, 60},
                                    {64, 50, 25, 20}, {1, 17, 9, 30}, {5, 9, 1, 96},  {9, 40, 4, 100}};
    int n = 0, bad = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int M = shapes[s][0], N = shapes[s][1], taps = shapes[s][2], cin = shapes[s][3];
        int stride = (cin + 7) / 8 * 8, kwords = (taps * stride + 63) / 64, kbits = taps * cin;
        uint64_t *A = calloc((size_t)M * kwords, 8), *B = calloc((size_t)N * kwords, 8);
        int8_t *ua = malloc((size_t)M * kbits), *ub = malloc((size_t)N * kbits);
        for (int side = 0; side < 2; side++)
            for (int r = 0; r < (side ? N : M); r++)
                for (int t = 0; t < taps; t++)
                    for (int c = 0; c < cin; c++) {
                        int neg = (int)(rnd() & 1), bit = t * stride + c;
                        (side ? ub : ua)[(size_t)r * kbits + t * cin + c] = (int8_t)(neg ? -1 : 1);
                        if (neg) (side ? B : A)[(size_t)r * kwords + bit / 64] |= 1ull << bit % 64;
                    }
        uint64_t *panel = aligned_alloc(64, qatrt_bpanel_words(N, kwords) * 8 + 64);
        qatrt_pack_bpanel(N, kwords, B, (size_t)kwords, panel);
        int32_t *C = malloc(sizeof(int32_t) * (size_t)M * N);
        for (int i = 0; i < QATRT_ISA_COUNT; i++) {
            if (!qatrt_isa_supported((qatrt_isa)i)) continue;
            const qatrt_kernels *kt = qatrt_kernels_for((qatrt_isa)i);
            for (int pk = 0; pk < 2; pk++) {
                memset(C, 0x5a, sizeof(int32_t) * (size_t)M * N);
                if (pk) kt->bgemm_pk(M, N, kwords, kbits, A, (size_t)kwords, panel, C, (size_t)N);
                else kt->bgemm(M, N, kwords, kbits, A, (size_t)kwords, B, (size_t)kwords, C, (size_t)N);
                n++;
                int first = 1;
                for (int m = 0; m < M; m++)
                    for (int j = 0; j < N; j++) {
                        int32_t want = 0;
                        for (int k = 0; k < kbits; k++) want += ua[(size_t)m * kbits + k] * ub[(size_t)j * kbits + k];
                        int32_t got = C[(size_t)m * N + j];
                        if (got != want && first) {
                            CHECK(got == want, "%s %s M=%d N=%d taps=%d cin=%d: C[%d][%d] = %d, want %d", kt->name,
                                  pk ? "bgemm_pk" : "bgemm", M, N, taps, cin, m, j, got, want);
                            first = 0, bad++;
                        }
                    }
            }
        }
        free(A), free(B), free(ua), free(ub), free(panel), free(C);
    }
    printf("kernels: binary rows with zero gaps (taps on whole bytes), %d runs on every ISA: %s\n", n,
           bad ? "FAILED" : "ok");
}

/* bgemm_pk at every column count a last panel can have (N = 1 .. 40: every
 * remainder mod 16 and mod 8, so the AVX-512 kernel's K-along-lanes path
 * for a last 1 - 4 columns (pk_narrow) meets 1, 2, 3 and 4 columns after 0
 * and after 8 vector columns), with row counts around its 8-row groups and
 * K on and off a multiple of 512 bits (its 1, 2 or 4 columns take 8, 4 or
 * 2 words a vector: a last vector part full), past 256 words (its copy of
 * B goes a chunk at a time, the counts through C) and with a last word at
 * most half full; every ISA against the scalar table, which the grid in
 * test_kernels checks against naive loops. */
static void test_pk_tails(void)
{
    static const int tail_m[] = {8, 9, 13, 16, 17, 24, 1, 3};
    static const int tail_k[] = {128, 192, 500, 512, 513, 800, 1000, 1600};
    static const int big_k[] = {16448, 20000}, big_n[] = {1, 2, 3, 4, 9, 10, 11, 12, 17, 20};
    int ncase = 0, nbad = 0, variant = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int ki = 0; ki < (pass ? 2 : 8); ki++)
            for (int ni = 0; ni < (pass ? 10 : 40); ni++) {
                int K = pass ? big_k[ki] : tail_k[ki], N = pass ? big_n[ni] : ni + 1;
                int M = tail_m[(ni + 3 * ki + pass) % (pass ? 2 : 8)];
                tcase t;
                case_init(&t, K_BGEMM_PK, M, N, K, variant % 3, variant);
                variant++;
                case_run(&t, qatrt_kernels_for(QATRT_ISA_SCALAR));
                int32_t *ref = malloc(sizeof(int32_t) * t.csize);
                memcpy(ref, t.C - 1, sizeof(int32_t) * t.csize);
                for (int i = 1; i < QATRT_ISA_COUNT; i++) {
                    if (!qatrt_isa_supported((qatrt_isa)i)) continue;
                    case_run(&t, qatrt_kernels_for((qatrt_isa)i));
                    ncase++;
                    if (!case_check(&t, qatrt_isa_name((qatrt_isa)i), ref + 1)) nbad++;
                }
                free(ref);
                case_free(&t);
            }
    printf("kernels: bgemm_pk last-panel columns 1 .. 40, %d cases on every SIMD ISA against scalar: %s\n", ncase,
           nbad ? "FAILED" : "ok");
}

/* multi-bit binary weights (ALQ): every table's mbgemm against the naive
 * sum over the expanded integer weights W = sum_i coef_i (+-1), on int8
 * and uint8 rows (the extremes included), group sizes below, at and past
 * the AVX2 width, groups without planes, coefficients summing to 32767;
 * groups of one size (n) and of unequal sizes (an offset table, as the
 * exporter leaves them after dropping input channels) */
static void test_mbgemm(void)
{
    static const int ns[] = {1, 5, 25, 31, 32, 33, 64, 100, 400};
    int cases = 0;
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++)
        for (int var = 0; var < 2; var++)
            for (int u8 = 0; u8 < 2; u8++)
                for (int mode = 0; mode < 3; mode++, cases++) {
                    int n = ns[t], gc = rnd_in(1, 6), N = rnd_in(1, 9), M = rnd_in(1, 5), imax = rnd_in(1, 8), K = 0;
                    uint32_t off[7];
                    for (int j = 0; j < gc; j++) {
                        off[j] = (uint32_t)K;
                        K += var ? rnd_in(1, 2 * n) : n;
                    }
                    off[gc] = (uint32_t)K;
                    size_t lda = (size_t)K + (size_t)rnd_in(0, 3);
                    uint8_t *bw = malloc((size_t)N * gc), *A = malloc(lda * (size_t)M);
                    uint32_t *chan = malloc(sizeof(uint32_t) * (size_t)N), *bit0 = malloc(sizeof(uint32_t) * (size_t)N);
                    size_t planes = 0, nbits = 0;
                    for (int c = 0; c < N; c++) {
                        chan[c] = (uint32_t)planes;
                        bit0[c] = (uint32_t)nbits;
                        for (int j = 0; j < gc; j++) {
                            planes += bw[c * gc + j] = (uint8_t)rnd_in(0, imax);
                            nbits += (size_t)bw[c * gc + j] * (off[j + 1] - off[j]);
                        }
                    }
                    int16_t *coef = malloc(sizeof(int16_t) * (planes + 1));
                    uint8_t *bits = calloc((nbits + 7) / 8 + 1, 1);
                    size_t q = 0;
                    for (int g = 0; g < N * gc; g++) { /* the largest |W| a group allows: 32767 */
                        int left = 32767;
                        for (int i = 0; i < bw[g]; i++, q++) {
                            int a = mode == 2 ? left / (bw[g] - i) : rnd_in(0, left / (bw[g] - i));
                            left -= a;
                            coef[q] = (int16_t)(rnd() & 1 && mode != 2 ? -a : a);
                        }
                    }
                    for (size_t b = 0; b < nbits; b++)
                        if (mode == 1 ? 1 : rnd() & 1) bits[b / 8] |= (uint8_t)(1u << (b % 8));
                    for (size_t i = 0; i < lda * (size_t)M; i++)
                        A[i] = mode == 1 ? (u8 ? 255 : 0x80) : (uint8_t)rnd();
                    qatrt_mb B = {.n = var ? 0 : n, .gc = gc, .off = var ? off : NULL, .bw = bw, .chan = chan,
                                  .bit0 = var ? bit0 : NULL, .coef = coef, .bits = bits, .nbits = nbits};
                    int64_t *ref = malloc(sizeof(int64_t) * (size_t)M * N);
                    for (int m = 0; m < M; m++)
                        for (int c = 0; c < N; c++) {
                            int64_t s = 0;
                            size_t p = chan[c], pb = bit0[c];
                            for (int j = 0; j < gc; j++) {
                                size_t len = off[j + 1] - off[j];
                                for (size_t e = 0; e < len; e++) {
                                    int64_t W = 0;
                                    for (int i = 0; i < bw[c * gc + j]; i++) {
                                        size_t b = pb + (size_t)i * len + e;
                                        W += (bits[b / 8] >> (b % 8) & 1) ? -coef[p + (size_t)i] : coef[p + (size_t)i];
                                    }
                                    uint8_t x = A[(size_t)m * lda + off[j] + e];
                                    s += W * (u8 ? (int64_t)x : (int64_t)(int8_t)x);
                                }
                                p += bw[c * gc + j];
                                pb += bw[c * gc + j] * len;
                            }
                            ref[(size_t)m * N + c] = s;
                        }
                    int32_t *C = malloc(sizeof(int32_t) * (size_t)M * N);
                    for (int i = 0; i < QATRT_ISA_COUNT; i++) {
                        if (!qatrt_isa_supported((qatrt_isa)i)) continue;
                        memset(C, 0x55, sizeof(int32_t) * (size_t)M * N);
                        qatrt_kernels_for((qatrt_isa)i)->mbgemm(M, N, K, A, lda, u8, &B, C, (size_t)N);
                        int bad = 0;
                        for (int z = 0; z < M * N; z++)
                            bad += ref[z] >= INT32_MIN && ref[z] <= INT32_MAX && C[z] != (int32_t)ref[z];
                        CHECK(bad == 0, "mbgemm %s: n %d%s gc %d N %d M %d %s mode %d: %d of %d differ",
                              qatrt_isa_name((qatrt_isa)i), n, var ? " (unequal groups)" : "", gc, N, M,
                              u8 ? "uint8" : "int8", mode, bad, M * N);
                    }
                    free(bw), free(A), free(chan), free(bit0), free(coef), free(bits), free(ref), free(C);
                }
    printf("mbgemm: %d cases, every table against the expanded weights\n", cases);
}

/* int32 x int8 (a first layer's fixed-point pixels): every table against
 * the int64 sum, K across the AVX2 width and its tails, values as large as
 * the int32 range of the sum allows, extremes included */
static void test_i32i8gemm(void)
{
    int cases = 0;
    for (int K = 1; K <= 80; K += (K < 20 ? 1 : 7))
        for (int mode = 0; mode < 2; mode++, cases++) {
            int M = rnd_in(1, 6), N = rnd_in(1, 9);
            size_t lda = (size_t)K + (size_t)rnd_in(0, 3), ldb = (size_t)K + (size_t)rnd_in(0, 5);
            int32_t amax = (int32_t)(2147483000 / (128 * K)); /* the products' sum fits int32 */
            int32_t *A = malloc(sizeof(int32_t) * lda * (size_t)M), *C = malloc(sizeof(int32_t) * (size_t)M * N);
            int8_t *B = malloc(ldb * (size_t)N);
            for (size_t i = 0; i < lda * (size_t)M; i++)
                A[i] = mode ? (i % 2 ? amax : -amax) : (int32_t)(rnd() % (2 * (uint64_t)amax + 1)) - amax;
            for (size_t i = 0; i < ldb * (size_t)N; i++) B[i] = mode ? (int8_t)(i % 2 ? -128 : 127) : (int8_t)rnd();
            for (int i = 0; i < QATRT_ISA_COUNT; i++) {
                if (!qatrt_isa_supported((qatrt_isa)i)) continue;
                qatrt_kernels_for((qatrt_isa)i)->i32i8gemm(M, N, K, A, lda, B, ldb, C, (size_t)N);
                int bad = 0;
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++) {
                        int64_t ref = 0;
                        for (int k = 0; k < K; k++) ref += (int64_t)A[(size_t)m * lda + k] * B[(size_t)n * ldb + k];
                        bad += C[(size_t)m * N + n] != ref;
                    }
                CHECK(bad == 0, "i32i8gemm %s: K %d M %d N %d mode %d: %d differ", qatrt_isa_name((qatrt_isa)i), K, M, N,
                      mode, bad);
            }
            free(A), free(B), free(C);
        }
    printf("i32i8gemm: %d cases, every table against the int64 sum\n", cases);
}

/* int64 x int64 (an X64 op, a float layer's exact sum): every table
 * against the scalar definition, K across the AVX2 width and its tails,
 * operands of every width up to what keeps each sum within 2^62 (a
 * stream's 50-bit fixed point times ternary weights, a 14-bit pixel table
 * times 44-bit float weights), signs mixed, extremes included */
static void test_x64gemm(void)
{
    int cases = 0;
    for (int K = 1; K <= 600; K += (K < 20 ? 1 : K < 100 ? 13 : 97))
        for (int mode = 0; mode < 3; mode++, cases++) {
            int M = rnd_in(1, 5), N = rnd_in(1, 7), kb = 0;
            while ((1 << kb) < K) kb++;
            int abits = mode == 0 ? 62 - 2 - kb : mode == 1 ? 14 : 31, wbits = 62 - abits - kb;
            size_t lda = (size_t)K + (size_t)rnd_in(0, 3), ldb = (size_t)K + (size_t)rnd_in(0, 5);
            int64_t *A = malloc(sizeof(int64_t) * lda * (size_t)M), *B = malloc(sizeof(int64_t) * ldb * (size_t)N);
            int64_t *C = malloc(sizeof(int64_t) * (size_t)M * N);
            int64_t alim = ((int64_t)1 << abits) - 1, wlim = ((int64_t)1 << (wbits - 1)) - 1;
            for (size_t i = 0; i < lda * (size_t)M; i++)
                A[i] = i % 7 == 0 ? (i % 2 ? alim : -alim) : (int64_t)(rnd() % (2 * (uint64_t)alim + 1)) - alim;
            for (size_t i = 0; i < ldb * (size_t)N; i++)
                B[i] = i % 5 == 0 ? (i % 2 ? wlim : -wlim) : (int64_t)(rnd() % (2 * (uint64_t)wlim + 1)) - wlim;
            for (int i = 0; i < QATRT_ISA_COUNT; i++) {
                if (!qatrt_isa_supported((qatrt_isa)i)) continue;
                qatrt_kernels_for((qatrt_isa)i)->x64gemm(M, N, K, A, lda, B, ldb, C, (size_t)N);
                int bad = 0;
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++) {
                        int64_t ref = 0;
                        for (int k = 0; k < K; k++) ref += A[(size_t)m * lda + k] * B[(size_t)n * ldb + k];
                        bad += C[(size_t)m * N + n] != ref;
                    }
                CHECK(bad == 0, "x64gemm %s: K %d M %d N %d mode %d: %d differ", qatrt_isa_name((qatrt_isa)i), K, M, N,
                      mode, bad);
            }
            free(A), free(B), free(C);
        }
    printf("x64gemm: %d cases, every table against the int64 sum\n", cases);
}

/* bconv_bits and i16conv_bits (direct convolutions into signs, kern.h
 * qatrt_dconv): every ISA against the definition on unpacked values (the
 * padded taps reading 0), over kernel sizes, strides, padding, channel
 * counts whose pixels leave bits unused, flips and thresholds at and past
 * the accumulator's range; guard bytes around every output must stay. */
static void test_dconv(void)
{
    static const int Cs[] = {32, 30, 64, 96}, Ns[] = {16, 32, 48, 64, 128}, HWs[] = {1, 2, 3, 5, 8, 11, 4, 6, 12, 16};
    int ncase = 0, npool = 0, nbad = 0;
    for (int it = 0; it < 400; it++) {
        int bin = it % 2, C = bin ? Cs[rnd_in(0, 3)] : rnd_in(1, 4), N = Ns[rnd_in(0, 4)];
        int h = HWs[rnd_in(0, 9)], w = HWs[rnd_in(0, 9)], kh = rnd_in(1, 3), kw = rnd_in(1, 3);
        int pad = rnd_in(0, 1), stride = rnd_in(1, 2), shift = bin ? 0 : rnd_in(0, 3);
        if (h + 2 * pad < kh || w + 2 * pad < kw) continue;
        int oh = (h + 2 * pad - kh) / stride + 1, ow = (w + 2 * pad - kw) / stride + 1, K = kh * kw * C;
        int ph = h + 2 * pad, pw = w + 2 * pad;
        /* a 2x2 max pool fused into a binary layer (even maps only) */
        int pool = bin && oh % 2 == 0 && ow % 2 == 0 && rnd_in(0, 1);
        size_t cb = ((size_t)C + 7) / 8, px = bin ? cb : (size_t)C, ocb = (size_t)N / 8, ldo = ocb + (size_t)rnd_in(0, 2);
        int *x = malloc(sizeof(int) * (size_t)h * w * C), *wt = malloc(sizeof(int) * (size_t)N * K);
        int32_t *thr = malloc(sizeof(int32_t) * (size_t)N), *tapsum = calloc((size_t)N * kh * kw, sizeof(int32_t));
        uint8_t *flip = calloc(ocb, 1);
        for (int i = 0; i < h * w * C; i++) x[i] = bin ? (rnd_in(0, 1) ? 1 : -1) : rnd_in(-2000, 2000);
        for (int i = 0; i < N * K; i++) wt[i] = bin ? (rnd_in(0, 1) ? 1 : -1) : rnd_in(-127, 127);
        for (int n = 0; n < N; n++) {
            int r = rnd_in(0, 9);
            int32_t big = bin ? K : (int32_t)K * 2000 * 127 << shift;
            thr[n] = r == 0 ? INT32_MAX : r == 1 ? INT32_MIN : r == 2 ? big + rnd_in(-1, 2) : r == 3 ? -big + rnd_in(-2, 1)
                     : bin ? rnd_in(-K / 3, K / 3) : rnd_in(-(1 << 18), 1 << 18);
            if (rnd_in(0, 2) == 0) flip[n / 8] |= (uint8_t)(1u << (n % 8));
            for (int t = 0; t < kh * kw; t++)
                for (int c = 0; c < C; c++) tapsum[(size_t)n * kh * kw + t] += wt[(size_t)n * K + t * C + c];
        }
        /* the definition */
        size_t osz = (size_t)oh * ow * ldo + 2;
        uint8_t *want = malloc(osz), *got = malloc(osz);
        memset(want, 0xa5, osz);
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                uint8_t *o = want + 1 + ((size_t)oy * ow + (size_t)ox) * ldo;
                memset(o, 0, ocb);
                for (int n = 0; n < N; n++) {
                    int64_t acc = 0;
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            for (int c = 0; c < C; c++)
                                acc += (int64_t)x[((size_t)iy * w + (size_t)ix) * C + c] * wt[(size_t)n * K + (ky * kw + kx) * C + c];
                        }
                    int64_t v = bin ? acc : (int64_t)(int32_t)((uint32_t)(int32_t)acc << shift);
                    if (flip[n / 8] >> (n % 8) & 1) v = -v;
                    if (v < thr[n]) o[n / 8] |= (uint8_t)(1u << (n % 8));
                }
            }
        if (pool) { /* AND over each window into the first oh / 2 x ow / 2 pixels (in place: a pixel's window is at or after it) */
            for (int py = 0; py < oh / 2; py++)
                for (int qx = 0; qx < ow / 2; qx++)
                    for (size_t b = 0; b < ocb; b++) {
                        uint8_t v = 0xff;
                        for (int dy = 0; dy < 2; dy++)
                            for (int dx = 0; dx < 2; dx++)
                                v &= want[1 + ((size_t)(2 * py + dy) * ow + (size_t)(2 * qx + dx)) * ldo + b];
                        want[1 + ((size_t)py * (ow / 2) + (size_t)qx) * ldo + b] = v;
                    }
            osz = (size_t)(oh / 2) * (ow / 2) * ldo + 2;
            want[osz - 1] = 0xa5;
        }
        /* the kernels' operands: the padded map (zero border, zero slack) and the weights */
        size_t mapb = (size_t)ph * pw * px * (bin ? 1 : 2) + 64;
        uint8_t *map = calloc(mapb, 1);
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++)
                for (int c = 0; c < C; c++) {
                    size_t pix = (size_t)(y + pad) * pw + (size_t)(xx + pad);
                    int v = x[((size_t)y * w + (size_t)xx) * C + c];
                    if (bin) map[pix * cb + (size_t)c / 8] |= (uint8_t)((v < 0) << (c % 8));
                    else ((int16_t *)(void *)map)[pix * (size_t)C + (size_t)c] = (int16_t)v;
                }
        void *W = NULL;
        int32_t *bounds = NULL;
        if (bin) {
            int taps = kh * kw, kwords = (int)((taps * cb + 7) / 8);
            uint64_t *rows = calloc((size_t)N * kwords, 8), *pan = aligned_alloc(64, qatrt_bpanel_words(N, kwords) * 8);
            for (int n = 0; n < N; n++)
                for (int t = 0; t < taps; t++)
                    for (int c = 0; c < C; c++) {
                        size_t b = ((size_t)t * cb) * 8 + (size_t)c;
                        if (wt[(size_t)n * K + t * C + c] < 0) rows[(size_t)n * kwords + b / 64] |= (uint64_t)1 << (b % 64);
                    }
            qatrt_pack_bpanel(N, kwords, rows, (size_t)kwords, pan);
            W = aligned_alloc(64, (qatrt_bconv_words(N, taps, cb) * 4 + 63) / 64 * 64);
            qatrt_pack_bconv(N, taps, cb, pan, kwords, W);
            bounds = malloc(sizeof(int32_t) * 16 * (size_t)N);
            qatrt_bconv_bounds(N, K, kh, kw, pad, thr, flip, tapsum, bounds);
            free(rows), free(pan);
        } else {
            int16_t *B = malloc(sizeof(int16_t) * (size_t)N * K);
            for (int i = 0; i < N * K; i++) B[i] = (int16_t)wt[i];
            W = aligned_alloc(64, (qatrt_i16conv_values(N, kh, kw, px) * 2 + 63) / 64 * 64);
            qatrt_pack_i16conv(N, kh, kw, px, B, (size_t)K, W);
            free(B);
        }
        for (int i = 0; i < QATRT_ISA_COUNT; i++) {
            if (!qatrt_isa_supported((qatrt_isa)i)) continue;
            memset(got, 0xa5, osz);
            qatrt_dconv d = {.oh = oh, .ow = ow, .kh = kh, .kw = kw, .stride = stride, .h = h, .w = w, .pad = pad,
                             .px = px, .row = (size_t)pw * px, .N = N, .W = W, .thr = bin ? bounds : thr,
                             .flip = flip, .shift = shift, .out = got + 1, .ldo = ldo, .pool = pool};
            const qatrt_kernels *kt = qatrt_kernels_for((qatrt_isa)i);
            if (bin) kt->bconv_bits(&d, map);
            else kt->i16conv_bits(&d, (const int16_t *)(const void *)map);
            ncase++;
            npool += pool;
            /* bytes between outputs (ldo > N / 8) are not the kernel's: copy them from want */
            for (int p = 0; p < (pool ? oh * ow / 4 : oh * ow); p++)
                memcpy(got + 1 + (size_t)p * ldo + ocb, want + 1 + (size_t)p * ldo + ocb, ldo - ocb);
            if (memcmp(got, want, osz) != 0) {
                nbad++;
                CHECK(0, "%s %s C %d N %d %dx%d k %dx%d stride %d pad %d shift %d pool %d differs from the definition",
                      bin ? "bconv_bits" : "i16conv_bits", qatrt_isa_name((qatrt_isa)i), C, N, h, w, kh, kw, stride,
                      pad, shift, pool);
            }
        }
        free(x), free(wt), free(thr), free(tapsum), free(flip), free(want), free(got), free(map), free(W), free(bounds);
    }
    printf("kernels: bconv_bits / i16conv_bits %d cases (%d pooled, every ISA) against the definition: %s\n", ncase,
           npool, nbad ? "FAILED" : "ok");
}

/* tab16_map (an int16 first layer's input map): every ISA against the
 * definition over channel counts on and off the vector path, widths
 * around the 32-pixel step and rows with room to their sides, whose
 * values (and everything outside the map) must stay */
static void test_tab16_map(void)
{
    static const int Ws[] = {1, 7, 31, 32, 33, 64, 65, 100};
    int ncase = 0, nbad = 0;
    for (int it = 0; it < 120; it++) {
        int C = rnd_in(1, 6), h = rnd_in(1, 5), w = Ws[rnd_in(0, 7)], lead = rnd_in(0, 3) * C;
        size_t row = (size_t)w * C + (size_t)lead + (size_t)rnd_in(0, 5), n = (size_t)h * row + 64;
        uint8_t *img = malloc((size_t)C * h * w);
        int16_t *tab = malloc(sizeof(int16_t) * 256 * (size_t)C), *want = malloc(n * 2), *got = malloc(n * 2);
        for (int i = 0; i < C * h * w; i++) img[i] = (uint8_t)(it % 3 == 0 ? 255 - i % 4 : rnd_in(0, 255));
        for (int i = 0; i < 256 * C; i++) tab[i] = (int16_t)rnd_in(-32768, 32767);
        for (size_t i = 0; i < n; i++) want[i] = (int16_t)(0x5a5a + i);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < C; c++)
                    want[(size_t)lead + (size_t)y * row + (size_t)x * C + c] = tab[c * 256 + img[((size_t)c * h + y) * w + x]];
        for (int i = 0; i < QATRT_ISA_COUNT; i++) {
            if (!qatrt_isa_supported((qatrt_isa)i)) continue;
            for (size_t j = 0; j < n; j++) got[j] = (int16_t)(0x5a5a + j);
            qatrt_kernels_for((qatrt_isa)i)->tab16_map(C, h, w, img, tab, got + lead, row);
            ncase++;
            if (memcmp(got, want, n * 2) != 0) {
                nbad++;
                CHECK(0, "tab16_map %s: C %d %dx%d row %zu differs from the definition", qatrt_isa_name((qatrt_isa)i), C,
                      h, w, row);
            }
        }
        free(img), free(tab), free(want), free(got);
    }
    printf("kernels: tab16_map %d cases (every ISA) against the definition: %s\n", ncase, nbad ? "FAILED" : "ok");
}

int main(void)
{
    test_i32i8gemm();
    test_x64gemm();
    test_mbgemm();
    test_packing();
    test_select();
    test_kernels();
    test_gaps();
    test_pk_tails();
    test_thresh();
    test_gemm_bits();
    test_thresh_levels();
    test_dconv();
    test_tab16_map();
    if (failures) {
        fprintf(stderr, "test_kernels: %d check(s) failed\n", failures);
        return 1;
    }
    return 0;
}
