/* bench_conv.c: the direct 3x3 convolution (autograd/conv3x3.h) against
 * im2col + single-threaded OpenBLAS sgemm shaped as autograd/ops.c runs it,
 * on the stride-1 3x3 layers of ResNet-20 and VGG-small at CIFAR sizes, for
 * the forward, the input gradient and the weight gradient of a batch.
 *
 *   bench_conv [--images N (32)] [--reps N (5)] [--min-ms T (200)] [--shape I] [--isa NAME]
 *
 * Baseline, per image as ops.c does for maps of 64 pixels or more:
 *   forward  y = W[F x 9C] cols(x)[9C x HW]                        (beta 0)
 *   dx       dx += Wt[C x 9F] cols(dy)[9F x HW] (the flipped kernel)   (beta 1)
 *   dw       dw += dy[F x HW] cols(x)^T[HW x 9C]                      (beta 1)
 * Times are user CPU seconds (getrusage) of interleaved rounds, the median
 * per entry; the flipped weights and packing are made once, outside the
 * timing (a step makes them once per layer). Rates count 2 F C 9 H W flops
 * per image. OpenBLAS 0.3.21 gives Zen 4/5 its AVX2 kernels; as qat train
 * does, the bench restarts itself once with OPENBLAS_CORETYPE=SkylakeX
 * (QAT_NO_REEXEC=1 or an explicit OPENBLAS_CORETYPE turns that off). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conv3x3.h"

static void choose_openblas_core(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("QAT_NO_REEXEC")) return;
    const char *name = openblas_get_corename();
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
        return;
    if (name && strcasecmp(name, "SkylakeX") == 0) return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    setenv("BENCH_CONV_RESTARTED", name ? name : "?", 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("BENCH_CONV_RESTARTED");
#else
    (void)name;
    (void)argv;
#endif
}

static double user_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec;
}

#if defined(__x86_64__)
/* GFLOP/s of a registers-only loop of independent FMAs, the bound of any
 * kernel here at the clock of the moment (the best of a few runs) */
__attribute__((target("avx512f,fma"))) static double fma_peak_zmm(void)
{
    long n = 10000000;
    double t0 = user_seconds();
    __asm__ volatile("vxorps %%xmm1, %%xmm1, %%xmm1\n\tvxorps %%xmm2, %%xmm2, %%xmm2\n"
                     "1:\n\t.irp r,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27\n\t"
                     "vfmadd231ps %%zmm1, %%zmm2, %%zmm\\r\n\t.endr\n\tdec %0\n\tjnz 1b"
                     : "+r"(n)::"xmm1", "xmm2", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                       "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",
                       "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27");
    return 10000000.0 * 24 * 32 / (user_seconds() - t0) * 1e-9;
}

__attribute__((target("avx2,fma"))) static double fma_peak_ymm(void)
{
    long n = 10000000;
    double t0 = user_seconds();
    __asm__ volatile("vxorps %%xmm1, %%xmm1, %%xmm1\n\tvxorps %%xmm2, %%xmm2, %%xmm2\n"
                     "1:\n\t.irp r,4,5,6,7,8,9,10,11,12,13,14,15\n\t"
                     "vfmadd231ps %%ymm1, %%ymm2, %%ymm\\r\n\t.endr\n\tdec %0\n\tjnz 1b"
                     : "+r"(n)::"xmm1", "xmm2", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                       "xmm12", "xmm13", "xmm14", "xmm15");
    return 10000000.0 * 12 * 16 / (user_seconds() - t0) * 1e-9;
}

static double best_of(double (*f)(void))
{
    double best = 0;
    for (int i = 0; i < 7; i++) {
        double r = f();
        if (r > best) best = r;
    }
    return best;
}
#endif

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_conv: out of memory\n");
        exit(1);
    }
    return p;
}

static unsigned long long rng = 88172645463325252ull;
static float rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((int)(rng % 2001) - 1000) / 1000.0f;
}

typedef struct {
    const char *net;
    int C, F, HW;
} shape;

static const shape shapes[] = {
    {"resnet20 conv1", 3, 16, 32},   {"resnet20 stage1", 16, 16, 32}, {"resnet20 stage2", 32, 32, 16},
    {"resnet20 stage3", 64, 64, 8},  {"vgg-small conv0", 3, 32, 32},  {"vgg-small conv1", 32, 32, 32},
    {"vgg-small conv2", 32, 64, 16}, {"vgg-small conv3", 64, 64, 16}, {"vgg-small conv4", 64, 128, 8},
    {"vgg-small conv5", 128, 128, 8},
};
#define NSHAPES ((int)(sizeof shapes / sizeof shapes[0]))

/* one layer's buffers for a batch */
typedef struct {
    int C, F, H, W, n;
    float *x, *y, *dy, *dx, *w, *wt, *dw, *cols, *wp, *wpt, *scratch;
} layer;

/* ops.c's im2col for a 3x3 stride-1 pad-1 conv: 9C rows of H*W */
static void im2col(const float *x, int C, int H, int W, float *cols)
{
    size_t P = (size_t)H * W;
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++) {
                float *dst = cols + ((size_t)(c * 3 + kh) * 3 + kw) * P;
                int wlo = kw == 0 ? 1 : 0, whi = kw == 2 ? W - 1 : W;
                for (int oh = 0; oh < H; oh++) {
                    float *d = dst + (size_t)oh * W;
                    int ih = oh - 1 + kh;
                    if (ih < 0 || ih >= H) {
                        for (int ow = 0; ow < W; ow++) d[ow] = 0.0f;
                        continue;
                    }
                    const float *s = x + ((size_t)c * H + ih) * W - 1 + kw;
                    for (int ow = 0; ow < wlo; ow++) d[ow] = 0.0f;
                    for (int ow = wlo; ow < whi; ow++) d[ow] = s[ow];
                    for (int ow = whi; ow < W; ow++) d[ow] = 0.0f;
                }
            }
}

enum { P_FWD, P_DX, P_DW, P_COUNT };
static const char *const product_names[P_COUNT] = {"fwd", "dx", "dw"};

static void run_baseline(layer *l, int product)
{
    int C = l->C, F = l->F, P = l->H * l->W;
    for (int i = 0; i < l->n; i++) {
        const float *xi = l->x + (size_t)i * C * P, *dyi = l->dy + (size_t)i * F * P;
        if (product == P_FWD) {
            im2col(xi, C, l->H, l->W, l->cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, F, P, 9 * C, 1.0f, l->w, 9 * C, l->cols, P, 0.0f,
                        l->y + (size_t)i * F * P, P);
        } else if (product == P_DX) {
            im2col(dyi, F, l->H, l->W, l->cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, P, 9 * F, 1.0f, l->wt, 9 * F, l->cols, P, 1.0f,
                        l->dx + (size_t)i * C * P, P);
        } else {
            im2col(xi, C, l->H, l->W, l->cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, F, 9 * C, P, 1.0f, dyi, P, l->cols, P, 1.0f, l->dw,
                        9 * C);
        }
    }
}

static void run_direct(layer *l, const qat_conv3x3_kernels *k, int product)
{
    if (product == P_FWD) k->fwd(l->wp, l->C, l->H, l->W, l->F, l->n, l->x, l->y, 0, l->scratch);
    else if (product == P_DX) k->fwd(l->wpt, l->F, l->H, l->W, l->C, l->n, l->dy, l->dx, 1, l->scratch);
    else k->dw(l->C, l->H, l->W, l->F, l->n, l->x, l->dy, l->dw, l->scratch);
}

/* one timed entry: a kernel table (NULL: the baseline) on a product */
typedef struct {
    const qat_conv3x3_kernels *k;
    int product;
    long calls;
    double *rounds, sec;
} entry;

static double time_calls(layer *l, const entry *e, long calls)
{
    double t0 = user_seconds();
    for (long i = 0; i < calls; i++) {
        if (e->k) run_direct(l, e->k, e->product);
        else run_baseline(l, e->product);
    }
    return (user_seconds() - t0) / (double)calls;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    choose_openblas_core(argv);
    int images = 32, reps = 5, only = -1;
    double min_s = 0.2;
    const char *isa = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--images") == 0 && i + 1 < argc) images = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--min-ms") == 0 && i + 1 < argc) min_s = atof(argv[++i]) / 1e3;
        else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) only = atoi(argv[++i]);
        else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) isa = argv[++i];
        else {
            fprintf(stderr, "usage: bench_conv [--images N (32)] [--reps N (5)] [--min-ms T (200)] [--shape I (all)] "
                            "[--isa scalar|avx2|avx512 (every SIMD one)]\n");
            return 2;
        }
    }
    if (images < 1 || reps < 1 || min_s <= 0 || only >= NSHAPES) {
        fprintf(stderr, "bench_conv: --images and --reps must be >= 1, --min-ms > 0, --shape < %d\n", NSHAPES);
        return 2;
    }
    const qat_conv3x3_kernels *tables[QAT_CONV3X3_ISA_COUNT];
    int nt = 0;
    for (int i = 0; i < QAT_CONV3X3_ISA_COUNT; i++) {
        const qat_conv3x3_kernels *k = qat_conv3x3_kernels_for((qat_conv3x3_isa)i);
        if (!k || (isa ? strcmp(isa, k->name) != 0 : i == QAT_CONV3X3_ISA_SCALAR)) continue;
        tables[nt++] = k;
    }
    if (!nt) {
        fprintf(stderr, "bench_conv: no kernel table %s here\n", isa ? isa : "with SIMD");
        return 1;
    }
    openblas_set_num_threads(1);
    const char *env = getenv("OPENBLAS_CORETYPE"), *was = getenv("BENCH_CONV_RESTARTED");
    printf("baseline: im2col + sgemm, OpenBLAS core %s, 1 thread (OPENBLAS_CORETYPE=%s", openblas_get_corename(),
           env ? env : "unset");
    if (was) printf(", set by restarting: OpenBLAS had picked %s", was);
    printf(")\nbatch of %d images, 1 thread, %d rounds of >= %.0f ms; user CPU time, median round; GFLOP/s = 2 F C 9 "
           "H W n / s\n\n",
           images, reps, min_s * 1e3);
#if defined(__x86_64__)
    if (qat_conv3x3_isa_supported(QAT_CONV3X3_ISA_AVX2)) {
        printf("FMA peak now (registers only, best of 7): %.1f GFLOP/s ymm", best_of(fma_peak_ymm));
        if (qat_conv3x3_isa_supported(QAT_CONV3X3_ISA_AVX512)) printf(", %.1f GFLOP/s zmm", best_of(fma_peak_zmm));
        printf("\n\n");
    }
#endif
    printf("%-16s %4s %4s %3s %-4s %9s", "layer", "C", "F", "HW", "op", "sgemm");
    for (int t = 0; t < nt; t++) printf(" %9s %6s", tables[t]->name, "ratio");
    printf("\n");

    for (int s = 0; s < NSHAPES; s++) {
        if (only >= 0 && s != only) continue;
        const shape *sh = &shapes[s];
        layer l = {.C = sh->C, .F = sh->F, .H = sh->HW, .W = sh->HW, .n = images};
        size_t P = (size_t)l.H * l.W, xs = (size_t)images * l.C * P, ys = (size_t)images * l.F * P;
        size_t ws = (size_t)9 * l.C * l.F, colrows = (size_t)9 * (l.C > l.F ? l.C : l.F);
        l.x = xmalloc(xs * 4), l.dx = xmalloc(xs * 4), l.y = xmalloc(ys * 4), l.dy = xmalloc(ys * 4);
        l.w = xmalloc(ws * 4), l.wt = xmalloc(ws * 4), l.dw = xmalloc(ws * 4), l.cols = xmalloc(colrows * P * 4);
        l.wp = xmalloc(qat_conv3x3_packed_floats(l.C, l.F) * 4);
        l.wpt = xmalloc(qat_conv3x3_packed_floats(l.F, l.C) * 4);
        l.scratch = xmalloc(qat_conv3x3_scratch_floats(l.C, l.H, l.W, l.F) * 4);
        for (size_t i = 0; i < xs; i++) l.x[i] = rnd(), l.dx[i] = 0;
        for (size_t i = 0; i < ys; i++) l.dy[i] = rnd();
        for (size_t i = 0; i < ws; i++) l.w[i] = rnd(), l.dw[i] = 0;
        for (int f = 0; f < l.F; f++) /* wt[c][f][8 - q] = w[f][c][q], as ops.c builds it */
            for (int c = 0; c < l.C; c++)
                for (int q = 0; q < 9; q++)
                    l.wt[((size_t)c * l.F + f) * 9 + 8 - q] = l.w[((size_t)f * l.C + c) * 9 + q];
        qat_conv3x3_pack(l.w, l.C, l.F, 0, l.wp);
        qat_conv3x3_pack(l.w, l.C, l.F, 1, l.wpt);

        int ne = P_COUNT * (1 + nt);
        entry e[P_COUNT * (1 + QAT_CONV3X3_ISA_COUNT)];
        for (int p = 0; p < P_COUNT; p++)
            for (int t = 0; t <= nt; t++) e[p * (1 + nt) + t] = (entry){.k = t ? tables[t - 1] : NULL, .product = p};
        for (int i = 0; i < ne; i++) {
            e[i].rounds = xmalloc(sizeof(double) * (size_t)reps);
            if (e[i].product == P_DX && l.C == 3) continue; /* an image has no gradient */
            double t = time_calls(&l, &e[i], 1); /* warm up, then size the rounds */
            t = time_calls(&l, &e[i], 1 + (long)(0.02 / (t > 1e-6 ? t : 1e-6)));
            e[i].calls = 1 + (long)(min_s / (t > 1e-6 ? t : 1e-6));
        }
        for (int r = 0; r < reps; r++)
            for (int i = 0; i < ne; i++)
                if (e[i].calls) e[i].rounds[r] = time_calls(&l, &e[i], e[i].calls);
        for (int i = 0; i < ne; i++) {
            qsort(e[i].rounds, (size_t)reps, sizeof(double), cmp_double);
            e[i].sec = reps % 2 ? e[i].rounds[reps / 2] : 0.5 * (e[i].rounds[reps / 2 - 1] + e[i].rounds[reps / 2]);
        }
        double flops = 2.0 * 9 * l.C * l.F * (double)P * images;
        for (int p = 0; p < P_COUNT; p++) {
            const entry *b = &e[p * (1 + nt)];
            if (!b->calls) continue;
            printf("%-16s %4d %4d %3d %-4s %9.1f", sh->net, l.C, l.F, l.H, product_names[p], flops / b->sec * 1e-9);
            for (int t = 1; t <= nt; t++)
                printf(" %9.1f %5.2fx", flops / b[t].sec * 1e-9, b->sec / b[t].sec);
            printf("\n");
        }
        fflush(stdout);
        for (int i = 0; i < ne; i++) free(e[i].rounds);
        free(l.x), free(l.dx), free(l.y), free(l.dy), free(l.w), free(l.wt), free(l.dw), free(l.cols);
        free(l.wp), free(l.wpt), free(l.scratch);
    }
    return 0;
}
