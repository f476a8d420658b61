/* bench_kernels.c: the runtime's integer GEMM kernels (runtime/kern.h), every
 * kernel of every supported ISA, against single-threaded OpenBLAS sgemm on
 * the same M, N, K in the same run: interleaved rounds, median per entry.
 *
 *   bench_kernels [--json FILE] [--reps N] [--min-ms T] [--shape I] [--kernel NAME]
 *
 * Rates are effective MACs (M N K / seconds per call). OpenBLAS 0.3.21 falls
 * back to its SSE3 "Prescott" kernels on CPUs newer than it knows; the bench
 * then restarts itself once with OPENBLAS_CORETYPE set, as qat does
 * (train/blascore.h; QAT_NO_REEXEC=1 or an explicit OPENBLAS_CORETYPE turns
 * that off) so sgemm is at its best.
 * "_pk" kernels read weights packed once, as the runtime prepares them per
 * model; on AVX-512 each shape also reports the rate of a registers-only
 * VPXORQ + VPOPCNTQ + VPADDQ loop, the bound of the binary kernels, and
 * each binary kernel's share of it (bgemm, bgemm_pk: "% of bound"). It
 * also reports a memory bound: the bytes of packed operands bgemm_pk must
 * read (B's panels and A's rows) over the time of the fastest plain
 * AVX-512 read of that very memory (a VPORQ reduce, repeated back to back
 * as the kernel is, so the bytes come from where the kernel finds them: L1
 * or L2), as a rate in MACs; and each binary kernel's share of
 * min(register bound, memory bound) ("% of roofline"). Batch 1 reads each
 * weight once, from L2, and is held by the memory bound.
 * The bounds are timed as the kernels are: entries of the same interleaved
 * rounds, the median of each. (They took the best of their own rounds
 * before, a statistic the kernels' medians were held to: on a shared
 * machine that alone cost the kernels 3 to 10 points of the bound.) */
#include <cblas.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blascore.h"
#include "kern.h"
#include "xor_bound.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

/* every operand of one shape, random, packed as each kernel takes it */
typedef struct {
    int M, N, K, kwords;
    float *fa, *fb, *fc;
    uint64_t *ba, *bb, *ta, *tb; /* binary, ternary (2 * kwords per row) */
    int8_t *ia, *ib;
    uint8_t *ua, *pb; /* uint8 activations, p2 codes ((K + 1) / 2 per row) */
    int16_t *sa, *sb;
    int32_t *bsum, *c;
    uint64_t *panel; /* bb as qatrt_pack_bpanel lays it out (the runtime does it once per model) */
    int8_t *i8p;     /* ib as qatrt_pack_i8panel lays it out */
    void *u8bp;      /* bb as qatrt_u8b_pack lays it out */
} operands;

/* every operand 64-byte aligned, as the runtime's workspace is: on the
 * heap's 16-byte alignment the 64 x 50 x 500 bgemm_pk moved between 65 %
 * and 84 % of the bound from run to run (where its rows and C fell) */
static void *xmalloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) / 64 * 64 + 64);
    if (!p) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    return p;
}

static void operands_init(operands *o, int M, int N, int K)
{
    size_t mk = (size_t)M * K, nk = (size_t)N * K;
    int kw = (K + 63) / 64;
    o->M = M, o->N = N, o->K = K, o->kwords = kw;
    o->fa = xmalloc(mk * sizeof(float)), o->fb = xmalloc(nk * sizeof(float));
    o->fc = xmalloc((size_t)M * N * sizeof(float));
    o->ia = xmalloc(mk), o->ib = xmalloc(nk), o->ua = xmalloc(mk);
    o->sa = xmalloc(mk * 2), o->sb = xmalloc(nk * 2);
    o->pb = xmalloc((size_t)N * ((size_t)K + 1) / 2 + 1);
    o->ba = xmalloc((size_t)M * kw * 8), o->bb = xmalloc((size_t)N * kw * 8);
    o->ta = xmalloc((size_t)M * kw * 16), o->tb = xmalloc((size_t)N * kw * 16);
    o->bsum = xmalloc((size_t)N * 4), o->c = xmalloc((size_t)M * N * 4);
    for (size_t i = 0; i < mk; i++) {
        o->fa[i] = (float)((int)(rnd() % 255) - 127) / 64.0f;
        o->ia[i] = (int8_t)rnd(), o->ua[i] = (uint8_t)rnd(), o->sa[i] = (int16_t)((int)(rnd() % 1001) - 500);
    }
    for (size_t i = 0; i < nk; i++) {
        o->fb[i] = (float)((int)(rnd() % 255) - 127) / 64.0f;
        o->ib[i] = (int8_t)rnd(), o->sb[i] = (int16_t)((int)(rnd() % 1001) - 500);
    }
    for (size_t i = 0; i < (size_t)N * ((size_t)K + 1) / 2; i++) o->pb[i] = (uint8_t)rnd();
    int8_t *row = xmalloc((size_t)K);
    for (int r = 0; r < M + N; r++) {
        uint64_t *bw = r < M ? o->ba + (size_t)r * kw : o->bb + (size_t)(r - M) * kw;
        uint64_t *tw = r < M ? o->ta + (size_t)r * 2 * kw : o->tb + (size_t)(r - M) * 2 * kw;
        for (int k = 0; k < K; k++) row[k] = (int8_t)(rnd() % 3) - 1;
        qatrt_pack_bits(row, K, bw);
        qatrt_pack_ternary(row, K, kw, tw);
    }
    free(row);
    size_t pw = qatrt_bpanel_words(N, kw);
    o->panel = aligned_alloc(64, (pw * 8 + 63) / 64 * 64 + 64);
    if (!o->panel) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    qatrt_pack_bpanel(N, kw, o->bb, (size_t)kw, o->panel);
    o->i8p = aligned_alloc(64, qatrt_i8panel_bytes(N, K) + 64);
    o->u8bp = aligned_alloc(64, qatrt_u8b_packed_size(N, K) + 64);
    if (!o->i8p || !o->u8bp) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    qatrt_pack_i8panel(N, K, o->ib, (size_t)K, o->i8p);
    qatrt_u8b_pack(N, K, o->bb, (size_t)kw, o->u8bp);
    for (int n = 0; n < N; n++) {
        int32_t s = 0;
        for (int k = 0; k < K; k++) s += o->ib[(size_t)n * K + k];
        o->bsum[n] = s;
    }
}

static void operands_free(operands *o)
{
    free(o->fa), free(o->fb), free(o->fc), free(o->ia), free(o->ib), free(o->ua), free(o->sa), free(o->sb);
    free(o->pb), free(o->ba), free(o->bb), free(o->ta), free(o->tb), free(o->bsum), free(o->c);
    free(o->panel), free(o->i8p), free(o->u8bp);
}

enum {
    K_BGEMM, K_BGEMM_PK, K_TGEMM, K_I8TGEMM, K_U8I8GEMM, K_U8I8GEMM_PK, K_U8BGEMM, K_U8BGEMM_PK, K_I8I8GEMM,
    K_I8I8GEMM_PK, K_I8I8_NOBSUM, K_I16GEMM, K_P2GEMM, K_COUNT
};
static const char *const kernel_names[K_COUNT] = {
    "bgemm",       "bgemm_pk",         "tgemm",   "i8tgemm", "u8i8gemm", "u8i8gemm_pk", "u8bgemm", "u8bgemm_pk", "i8i8gemm",
    "i8i8gemm_pk", "i8i8gemm(nobsum)", "i16gemm", "p2gemm"};

/* one call of a kernel (kt NULL: sgemm) */
static void call(const operands *o, const qatrt_kernels *kt, int kernel)
{
    int M = o->M, N = o->N, K = o->K, kw = o->kwords;
    size_t k = (size_t)K, N_ = (size_t)N;
    if (!kt) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, o->fa, K, o->fb, K, 0.0f, o->fc, N);
        return;
    }
    switch (kernel) {
    case K_BGEMM:
        kt->bgemm(M, N, kw, K, o->ba, (size_t)kw, o->bb, (size_t)kw, o->c, N_);
        break;
    case K_BGEMM_PK:
        kt->bgemm_pk(M, N, kw, K, o->ba, (size_t)kw, o->panel, o->c, N_);
        break;
    case K_TGEMM:
        kt->tgemm(M, N, kw, o->ta, 2 * (size_t)kw, o->tb, 2 * (size_t)kw, o->c, N_);
        break;
    case K_I8TGEMM:
        kt->i8tgemm(M, N, K, o->ia, k, o->tb, 2 * (size_t)kw, o->c, N_);
        break;
    case K_U8I8GEMM:
        kt->u8i8gemm(M, N, K, o->ua, k, o->ib, k, o->c, N_);
        break;
    case K_U8BGEMM:
        kt->u8bgemm(M, N, K, o->ua, k, o->bb, (size_t)kw, o->c, N_);
        break;
    case K_U8I8GEMM_PK:
        kt->u8i8gemm_pk(M, N, K, o->ua, k, o->i8p, o->c, N_);
        break;
    case K_U8BGEMM_PK:
        kt->u8bgemm_pk(M, N, K, o->ua, k, o->u8bp, o->c, N_);
        break;
    case K_I8I8GEMM_PK:
        kt->i8i8gemm_pk(M, N, K, o->ia, k, o->i8p, o->bsum, o->c, N_);
        break;
    case K_I8I8GEMM:
        kt->i8i8gemm(M, N, K, o->ia, k, o->ib, k, o->bsum, o->c, N_);
        break;
    case K_I8I8_NOBSUM:
        kt->i8i8gemm(M, N, K, o->ia, k, o->ib, k, NULL, o->c, N_);
        break;
    case K_I16GEMM:
        kt->i16gemm(M, N, K, o->sa, k, o->sb, k, o->c, N_);
        break;
    case K_P2GEMM:
        kt->p2gemm(M, N, K, o->ia, k, o->pb, (k + 1) / 2, o->c, N_);
        break;
    }
}

enum { E_KERNEL, E_REG_BOUND, E_READ1, E_READ2 }; /* what an entry times */
typedef struct {
    int kind;
    const qatrt_kernels *kt; /* E_KERNEL: NULL for sgemm */
    int kernel;
    long calls;     /* per timed round, enough for min_s */
    double *rounds; /* seconds per call, one per round */
    double sec;     /* median */
} entry;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#if defined(__x86_64__)
/* The memory bound of bgemm_pk: one pass of the fastest read of the n1
 * bytes at p1 and the n2 at p2 (each a multiple of 64, 64-byte aligned): a
 * VPORQ reduce, 16 chains, 16 cache lines a step (8 chains read ~20 % less
 * from L2: fewer lines in flight), p1 as one stream or as two halves side
 * by side (two streams read ~10 % more from L2 than one, more than four);
 * each is an entry of the rounds, and the faster median of the two is the
 * bound. */
__attribute__((target("avx512f"))) static double read_pass(const void *p1, size_t n1, const void *p2, size_t n2,
                                                           int streams)
{
    __m512i acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_si512();
    const __m512i *v = p1;
    size_t nv = n1 / 64, h = nv / 16 * 8, i = 0; /* two streams: [0, h) and [h, 2 h) side by side */
    if (streams == 2) {
        for (; i < h; i += 8)
            for (int j = 0; j < 8; j++) {
                acc[j] = _mm512_or_si512(acc[j], _mm512_load_si512(v + i + j));
                acc[8 + j] = _mm512_or_si512(acc[8 + j], _mm512_load_si512(v + h + i + j));
            }
        i = 2 * h;
    } else {
        for (; i + 16 <= nv; i += 16)
            for (int j = 0; j < 16; j++) acc[j] = _mm512_or_si512(acc[j], _mm512_load_si512(v + i + j));
    }
    for (; i < nv; i++) acc[0] = _mm512_or_si512(acc[0], _mm512_load_si512(v + i));
    v = p2, nv = n2 / 64, i = 0;
    for (; i + 16 <= nv; i += 16)
        for (int j = 0; j < 16; j++) acc[j] = _mm512_or_si512(acc[j], _mm512_load_si512(v + i + j));
    for (; i < nv; i++) acc[0] = _mm512_or_si512(acc[0], _mm512_load_si512(v + i));
    for (int j = 1; j < 16; j++) acc[0] = _mm512_or_si512(acc[0], acc[j]);
    return (double)_mm512_reduce_or_epi64(acc[0]);
}
#endif

/* what bgemm_pk must read: B's panels and A's rows of kwords words */
static size_t panel_bytes(const operands *o) { return qatrt_bpanel_words(o->N, o->kwords) * 8; }
static size_t a_bytes(const operands *o) { return (size_t)o->M * (size_t)o->kwords * 8; }

static volatile double sink;
static double time_calls(const operands *o, const entry *e, long calls)
{
    double t0 = now();
    for (long i = 0; i < calls; i++) {
#if defined(__x86_64__)
        if (e->kind == E_REG_BOUND) xor_bound_call();
        else if (e->kind != E_KERNEL)
            sink += read_pass(o->panel, panel_bytes(o), o->ba, a_bytes(o) / 64 * 64, e->kind == E_READ1 ? 1 : 2);
        else
#endif
            call(o, e->kt, e->kernel);
    }
    return (now() - t0) / (double)calls;
}

typedef struct {
    int M, N, K;
    const char *what;
} shape;

static const shape shapes[] = {
    {256, 256, 4096, "square-ish"},
    {64, 50, 500, "LeNet conv2 im2col"},
    {128, 500, 800, "LeNet fc1, batch 128"},
    {128, 1024, 1024, "MLP hidden, batch 128"},
    {1, 500, 800, "LeNet fc1, batch 1"},
    {1, 1024, 784, "MLP fc1, batch 1"},
    {1, 1024, 1024, "MLP hidden, batch 1"},
};
#define NSHAPES ((int)(sizeof shapes / sizeof *shapes))

int main(int argc, char **argv)
{
    qat_openblas_choose_core(argv);
    const char *json = NULL;
    int reps = 5;
    double min_s = 0.05;
    int only = -1;
    const char *kname = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) json = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--min-ms") == 0 && i + 1 < argc) min_s = atof(argv[++i]) / 1e3;
        else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) only = atoi(argv[++i]);
        else if (strcmp(argv[i], "--kernel") == 0 && i + 1 < argc) kname = argv[++i];
        else {
            fprintf(stderr, "usage: bench_kernels [--json FILE] [--reps N (5)] [--min-ms T (50)] [--shape I (all)] "
                            "[--kernel NAME (all)]\n");
            return 2;
        }
    }
    if (reps < 1 || min_s <= 0 || only >= NSHAPES) {
        fprintf(stderr, "bench_kernels: --reps must be >= 1, --min-ms > 0, --shape < %d\n", NSHAPES);
        return 2;
    }
    openblas_set_num_threads(1);
    const char *env = getenv("OPENBLAS_CORETYPE"), *was = getenv("QAT_OPENBLAS_PICKED");
    printf("sgemm: OpenBLAS core %s, 1 thread (OPENBLAS_CORETYPE=%s", openblas_get_corename(), env ? env : "unset");
    if (was) printf(", set by restarting: OpenBLAS had picked %s", was);
    printf(")\n");
    printf("kernels: %d rounds, each entry >= %.0f ms per round; rates in GMAC/s (M N K / time), ratio to sgemm\n",
           reps, min_s * 1e3);

    FILE *jf = NULL;
    if (json && !(jf = fopen(json, "w"))) {
        fprintf(stderr, "bench_kernels: cannot write %s\n", json);
        return 1;
    }
    if (jf)
        fprintf(jf,
                "{\"openblas_core\": \"%s\", \"openblas_coretype_env\": \"%s\", \"openblas_core_before_restart\": "
                "\"%s\", \"reps\": %d, \"min_ms\": %g,\n \"shapes\": [",
                openblas_get_corename(), env ? env : "", was ? was : "", reps, min_s * 1e3);

    int nisa = 0;
    const qatrt_kernels *isas[QATRT_ISA_COUNT];
    for (int i = 0; i < QATRT_ISA_COUNT; i++) {
        if (qatrt_isa_supported((qatrt_isa)i)) isas[nisa++] = qatrt_kernels_for((qatrt_isa)i);
        else printf("kernels: %s skipped (not supported here)\n", qatrt_isa_name((qatrt_isa)i));
    }

    for (int s = 0, first = 1; s < NSHAPES; s++) {
        if (only >= 0 && s != only) continue;
        const shape *sh = &shapes[s];
        operands o;
        operands_init(&o, sh->M, sh->N, sh->K);
        int ne = 1 + nisa * K_COUNT, nb = 0;
        entry *e = xmalloc(sizeof(entry) * (size_t)(ne + 3));
        e[0] = (entry){.kt = NULL};
        for (int i = 0; i < nisa; i++)
            for (int k = 0; k < K_COUNT; k++) e[1 + i * K_COUNT + k] = (entry){.kt = isas[i], .kernel = k};
        if (kname) { /* sgemm and the one kernel */
            int k = 0;
            while (k < K_COUNT && strcmp(kernel_names[k], kname)) k++;
            if (k == K_COUNT) {
                fprintf(stderr, "bench_kernels: no kernel '%s'\n", kname);
                return 2;
            }
            for (int i = 0; i < nisa; i++) e[1 + i] = e[1 + i * K_COUNT + k];
            ne = 1 + nisa;
        }
#if defined(__x86_64__)
        if (qatrt_isa_supported(QATRT_ISA_AVX512)) /* the bounds, after the kernels: e[ne], e[ne + 1], e[ne + 2] */
            for (int b = 0; b < 3; b++) e[ne + nb++] = (entry){.kind = E_REG_BOUND + b};
#endif
        for (int i = 0; i < ne + nb; i++) { /* warm up, then size the rounds */
            e[i].rounds = xmalloc(sizeof(double) * (size_t)reps);
            double t = time_calls(&o, &e[i], 1);
            t = time_calls(&o, &e[i], 1 + (long)(0.01 / t));
            e[i].calls = 1 + (long)(min_s / t);
        }
        for (int r = 0; r < reps; r++)
            for (int i = 0; i < ne + nb; i++) e[i].rounds[r] = time_calls(&o, &e[i], e[i].calls);
        for (int i = 0; i < ne + nb; i++) {
            qsort(e[i].rounds, (size_t)reps, sizeof(double), cmp_double);
            e[i].sec = reps % 2 ? e[i].rounds[reps / 2] : 0.5 * (e[i].rounds[reps / 2 - 1] + e[i].rounds[reps / 2]);
        }

        double macs = (double)sh->M * sh->N * sh->K, sg = macs / e[0].sec;
        printf("\nM=%d N=%d K=%d (%s): sgemm %.3f ms, %.1f GMAC/s\n", sh->M, sh->N, sh->K, sh->what, e[0].sec * 1e3,
               sg * 1e-9);
        double pb = 0, mb = 0, roof = 0, rsec = 0;
        size_t pbytes = panel_bytes(&o), abytes = a_bytes(&o);
        if (nb) {
            pb = XOR_BOUND_MACS / e[ne].sec;
            rsec = e[ne + 1].sec < e[ne + 2].sec ? e[ne + 1].sec : e[ne + 2].sec;
            mb = macs / rsec, roof = pb < mb ? pb : mb;
            printf("  XOR+VPOPCNTQ+VPADDQ bound (registers only, measured now): %.1f GMAC/s = %.2fx this sgemm\n",
                   pb * 1e-9, pb / sg);
            printf("  memory bound (an AVX-512 read of the %zu bytes of panels and A, measured now): %.3f us = %.1f "
                   "GMAC/s (%.1f GB/s); roofline %.1f GMAC/s\n",
                   pbytes + abytes, rsec * 1e6, mb * 1e-9, (double)(pbytes + abytes) / rsec * 1e-9, roof * 1e-9);
        }
        printf("  %-17s", "kernel");
        for (int i = 0; i < nisa; i++) printf("  %21s", isas[i]->name);
        printf("\n");
        int per = kname ? 1 : K_COUNT;
        for (int k = 0; k < per; k++) {
            int kk = kname ? e[1].kernel : k;
            printf("  %-17s", kernel_names[kk]);
            for (int i = 0; i < nisa; i++) {
                double rate = macs / e[1 + i * per + k].sec;
                printf("  %8.1f GMAC/s %5.2fx", rate * 1e-9, rate / sg);
            }
            if (pb > 0 && (kk == K_BGEMM || kk == K_BGEMM_PK))
                printf("  (%s: %.0f%% of bound, %.0f%% of roofline)", isas[nisa - 1]->name,
                       100 * macs / e[nisa * per - per + 1 + k].sec / pb, 100 * macs / e[nisa * per - per + 1 + k].sec / roof);
            printf("\n");
        }
        fflush(stdout);

        if (jf) {
            fprintf(jf, "%s\n  {\"M\": %d, \"N\": %d, \"K\": %d, \"what\": \"%s\",\n", first ? "" : ",", sh->M, sh->N,
                    sh->K, sh->what);
            fprintf(jf, "   \"sgemm\": {\"seconds\": %.6e, \"macs_per_s\": %.6e},\n", e[0].sec, sg);
            fprintf(jf, "   \"xor_popcnt_add_bound_macs_per_s\": %.6e,\n", pb);
            fprintf(jf,
                    "   \"packed_bytes\": %zu, \"read_bound_seconds\": %.6e, \"memory_bound_macs_per_s\": %.6e, "
                    "\"roofline_macs_per_s\": %.6e,\n   \"kernels\": [",
                    pbytes + abytes, rsec, mb, roof);
            for (int i = 0; i < nisa; i++)
                for (int k = 0; k < per; k++) {
                    double sec = e[1 + i * per + k].sec;
                    int kk = kname ? e[1].kernel : k;
                    fprintf(jf,
                            "%s\n    {\"kernel\": \"%s\", \"isa\": \"%s\", \"seconds\": %.6e, \"macs_per_s\": %.6e, "
                            "\"ratio_vs_sgemm\": %.4f",
                            i || k ? "," : "", kernel_names[kk], isas[i]->name, sec, macs / sec, macs / sec / sg);
                    if (pb > 0 && (kk == K_BGEMM || kk == K_BGEMM_PK)) /* shares of the AVX-512 bounds */
                        fprintf(jf, ", \"pct_of_bound\": %.2f, \"pct_of_roofline\": %.2f", 100 * macs / sec / pb,
                                100 * macs / sec / roof);
                    fprintf(jf, "}");
                }
            fprintf(jf, "]}");
            first = 0;
        }
        for (int i = 0; i < ne + nb; i++) free(e[i].rounds);
        free(e);
        operands_free(&o);
    }
    if (jf) {
        fprintf(jf, "\n]}\n");
        if (fclose(jf)) {
            fprintf(stderr, "bench_kernels: error writing %s\n", json);
            return 1;
        }
    }
    return 0;
}
