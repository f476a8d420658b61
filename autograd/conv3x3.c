/* conv3x3.c: the direct 3x3 'same' convolution's weight packing, scratch
 * size, plain scalar kernels (the reference the SIMD tables are tested
 * against) and the choice of table, once, by CPUID and QAT_CONV_ISA. */
#include <stdlib.h>
#include <string.h>

#include "conv3x3.h"
#include "conv3x3_impl.h"

size_t qat_conv3x3_packed_floats(int in_ch, int out_ch)
{
    size_t blocks = ((size_t)out_ch + QAT_CONV3X3_FBLOCK - 1) / QAT_CONV3X3_FBLOCK;
    return 9 * (size_t)in_ch * blocks * QAT_CONV3X3_FBLOCK;
}

/* index of weight (output channel o, input channel i, tap t) in a packed
 * kernel with I input channels */
static size_t packed_index(int o, int i, int t, int I)
{
    size_t b = (size_t)(o / QAT_CONV3X3_FBLOCK);
    return ((b * (size_t)I + (size_t)i) * 9 + (size_t)t) * QAT_CONV3X3_FBLOCK + (size_t)(o % QAT_CONV3X3_FBLOCK);
}

void qat_conv3x3_pack(const float *w, int C, int F, int flip, float *wp)
{
    memset(wp, 0, sizeof(float) * (flip ? qat_conv3x3_packed_floats(F, C) : qat_conv3x3_packed_floats(C, F)));
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++)
            for (int t = 0; t < 9; t++) {
                float v = w[((size_t)f * (size_t)C + (size_t)c) * 9 + (size_t)t];
                if (flip) wp[packed_index(c, f, 8 - t, F)] = v;
                else wp[packed_index(f, c, t, C)] = v;
            }
}

size_t qat_conv3x3_scratch_floats(int C, int H, int W, int F)
{
    size_t pitch = conv3x3_pitch(H, W), io = (size_t)(C > F ? C : F) * pitch;
    size_t dw = (size_t)conv3x3_dw_group(C, H, W) * (size_t)C * pitch;
    size_t px = conv3x3_mask_floats(H, W) + 2 * CONV3X3_GUARD + (io > dw ? io : dw);
    size_t ch = conv3x3_dwch_floats(C, H, W, F);
    return 16 + (px > ch ? px : ch);
}

/* ---- scalar reference ------------------------------------------------------ */
/* Each output map is summed in a scratch plane, input channel after input
 * channel and tap after tap (the SIMD kernels' order), then stored or added. */
static void fwd_scalar(const float *wp, int C, int H, int W, int F, int n, const float *x, float *y, int accumulate,
                       float *scratch)
{
    size_t hw = (size_t)H * (size_t)W;
    float *s = conv3x3_scratch_split(scratch, H, W).planes;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * (size_t)C * hw;
        for (int f = 0; f < F; f++) {
            memset(s, 0, sizeof(float) * hw);
            for (int c = 0; c < C; c++)
                for (int t = 0; t < 9; t++) {
                    int dh = t / 3 - 1, dw = t % 3 - 1;
                    float wv = wp[packed_index(f, c, t, C)];
                    const float *xc = xi + (size_t)c * hw;
                    for (int h = dh < 0 ? 1 : 0; h < (dh > 0 ? H - 1 : H); h++)
                        for (int w = dw < 0 ? 1 : 0; w < (dw > 0 ? W - 1 : W); w++)
                            s[(size_t)h * W + w] += wv * xc[(size_t)(h + dh) * W + (w + dw)];
                }
            float *yf = y + ((size_t)i * (size_t)F + (size_t)f) * hw;
            for (size_t p = 0; p < hw; p++) yf[p] = accumulate ? yf[p] + s[p] : s[p];
        }
    }
}

static void dw_scalar(int C, int H, int W, int F, int n, const float *x, const float *dy, float *dw, float *scratch)
{
    size_t hw = (size_t)H * (size_t)W;
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++)
            for (int t = 0; t < 9; t++) {
                int dh = t / 3 - 1, dx = t % 3 - 1;
                float s = 0;
                for (int i = 0; i < n; i++) {
                    const float *xc = x + ((size_t)i * (size_t)C + (size_t)c) * hw;
                    const float *g = dy + ((size_t)i * (size_t)F + (size_t)f) * hw;
                    for (int h = dh < 0 ? 1 : 0; h < (dh > 0 ? H - 1 : H); h++)
                        for (int w = dx < 0 ? 1 : 0; w < (dx > 0 ? W - 1 : W); w++)
                            s += g[(size_t)h * W + w] * xc[(size_t)(h + dh) * W + (w + dx)];
                }
                dw[((size_t)f * (size_t)C + (size_t)c) * 9 + (size_t)t] += s;
            }
}

static const qat_conv3x3_kernels kernels_scalar = {QAT_CONV3X3_ISA_SCALAR, "scalar", fwd_scalar, dw_scalar};

/* ---- dispatch --------------------------------------------------------------- */
#ifdef QAT_CONV3X3_X86
#include <cpuid.h>
extern const qat_conv3x3_kernels qat_conv3x3_kernels_avx2;
extern const qat_conv3x3_kernels qat_conv3x3_kernels_avx512;

/* The CPU having an instruction is not enough: the OS must also save the
 * registers it uses (XCR0), as runtime/kern_dispatch.c checks. */
static unsigned long long os_saved_state(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (unsigned long long)hi << 32 | lo;
}
#endif

static const char *const isa_names[QAT_CONV3X3_ISA_COUNT] = {
    [QAT_CONV3X3_ISA_SCALAR] = "scalar",
    [QAT_CONV3X3_ISA_AVX2] = "avx2",
    [QAT_CONV3X3_ISA_AVX512] = "avx512",
};

static int detect(void)
{
    int mask = 1 << QAT_CONV3X3_ISA_SCALAR;
#ifdef QAT_CONV3X3_X86
    __builtin_cpu_init();
    unsigned long long xcr0 = os_saved_state();
    int avx2 = (xcr0 & 0x6) == 0x6 /* SSE, AVX state */ && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
    int avx512 = avx2 && (xcr0 & 0xe6) == 0xe6 /* + opmask, upper ZMM0-15, ZMM16-31 */ &&
                 __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl");
    mask |= avx2 << QAT_CONV3X3_ISA_AVX2 | avx512 << QAT_CONV3X3_ISA_AVX512;
#endif
    return mask;
}

/* detected on every call (the tests and the bench ask a few times; the
 * entry points ask once, in qat_conv3x3_active) */
int qat_conv3x3_isa_supported(qat_conv3x3_isa isa)
{
    return (unsigned)isa < QAT_CONV3X3_ISA_COUNT && (detect() >> isa & 1);
}

const qat_conv3x3_kernels *qat_conv3x3_kernels_for(qat_conv3x3_isa isa)
{
    if (!qat_conv3x3_isa_supported(isa)) return NULL;
    switch (isa) {
#ifdef QAT_CONV3X3_X86
    case QAT_CONV3X3_ISA_AVX2:
        return &qat_conv3x3_kernels_avx2;
    case QAT_CONV3X3_ISA_AVX512:
        return &qat_conv3x3_kernels_avx512;
#endif
    default:
        return &kernels_scalar;
    }
}

/* the chosen table: the library's only mutable state, set once (a race
 * stores the same pointer twice) */
static const qat_conv3x3_kernels *active;

const qat_conv3x3_kernels *qat_conv3x3_active(void)
{
    const qat_conv3x3_kernels *k = __atomic_load_n(&active, __ATOMIC_ACQUIRE);
    if (k) return k;
    int mask = detect(), best = QAT_CONV3X3_ISA_SCALAR;
    for (int i = QAT_CONV3X3_ISA_COUNT - 1; i > 0; i--)
        if (mask >> i & 1) {
            best = i;
            break;
        }
    const char *want = getenv("QAT_CONV_ISA");
    for (int i = 0; want && i < QAT_CONV3X3_ISA_COUNT; i++)
        if (strcmp(want, isa_names[i]) == 0 && (mask >> i & 1)) best = i;
    k = qat_conv3x3_kernels_for((qat_conv3x3_isa)best);
    __atomic_store_n(&active, k, __ATOMIC_RELEASE);
    return k;
}

/* ---- checked entry points ---------------------------------------------------- */
static qat_status check_dims(const char *fn, int C, int H, int W, int F, int n)
{
    if (C < 1 || H < 1 || W < 1 || F < 1 || n < 0)
        return qat_error_set(QAT_ERR_ARG, "%s: C=%d H=%d W=%d F=%d n=%d (dimensions must be >= 1, n >= 0)", fn, C, H,
                             W, F, n);
    return QAT_OK;
}

qat_status qat_conv3x3_fwd(const float *wp, int C, int H, int W, int F, int n, const float *x, float *y,
                           int accumulate, float *scratch)
{
    qat_status s = check_dims("qat_conv3x3_fwd", C, H, W, F, n);
    if (s == QAT_OK && n > 0) qat_conv3x3_active()->fwd(wp, C, H, W, F, n, x, y, accumulate, scratch);
    return s;
}

qat_status qat_conv3x3_dw(int C, int H, int W, int F, int n, const float *x, const float *dy, float *dw,
                          float *scratch)
{
    qat_status s = check_dims("qat_conv3x3_dw", C, H, W, F, n);
    if (s == QAT_OK && n > 0) qat_conv3x3_active()->dw(C, H, W, F, n, x, dy, dw, scratch);
    return s;
}
