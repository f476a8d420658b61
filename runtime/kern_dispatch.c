/* kern_dispatch.c: which kernel table this CPU can run, and the QATRT_ISA
 * override. Built with -mgeneral-regs-only: it must be safe to call on any
 * x86-64 before anything else has been checked. */
#include <stdlib.h>
#include <string.h>

#include "kern.h"

extern const qatrt_kernels qatrt_kernels_scalar;
#ifdef QATRT_HAVE_X86_SIMD
#include <cpuid.h>
extern const qatrt_kernels qatrt_kernels_avx2;
extern const qatrt_kernels qatrt_kernels_avx512;
#endif

static const char *const isa_names[QATRT_ISA_COUNT] = {
    [QATRT_ISA_SCALAR] = "scalar",
    [QATRT_ISA_AVX2] = "avx2",
    [QATRT_ISA_AVX512] = "avx512",
};

#ifdef QATRT_HAVE_X86_SIMD
/* The CPU having an instruction is not enough: the OS must also save the
 * registers it uses (XCR0). libgcc checks this too; checking here keeps it
 * independent of the compiler's runtime. */
static uint64_t os_saved_state(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return 0;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}
#endif

/* bit i set when isa i can run; found once (CPUID traps to the hypervisor
 * in a VM, so it is not cheap), -1 until then. A race only repeats the
 * detection. */
static int isa_mask = -1;

static int detect(void)
{
    int mask = 1 << QATRT_ISA_SCALAR;
#ifdef QATRT_HAVE_X86_SIMD
    __builtin_cpu_init();
    uint64_t xcr0 = os_saved_state();
    int avx2 = (xcr0 & 0x6) == 0x6 /* SSE, AVX state */ && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi2");
    int avx512 = avx2 && (xcr0 & 0xe6) == 0xe6 /* + opmask, upper ZMM0-15, ZMM16-31 */ &&
                 __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vpopcntdq") &&
                 __builtin_cpu_supports("avx512cd") &&
                 __builtin_cpu_supports("avx512vnni");
    mask |= avx2 << QATRT_ISA_AVX2 | avx512 << QATRT_ISA_AVX512;
#endif
    return mask;
}

int qatrt_isa_supported(qatrt_isa isa)
{
    int mask = __atomic_load_n(&isa_mask, __ATOMIC_RELAXED);
    if (mask < 0) {
        mask = detect();
        __atomic_store_n(&isa_mask, mask, __ATOMIC_RELAXED);
    }
    return (unsigned)isa < QATRT_ISA_COUNT && (mask >> isa & 1);
}

static qatrt_isa best_isa(void)
{
    for (int i = QATRT_ISA_COUNT - 1; i > 0; i--)
        if (qatrt_isa_supported((qatrt_isa)i)) return (qatrt_isa)i;
    return QATRT_ISA_SCALAR;
}

qatrt_isa qatrt_isa_select(int *forced)
{
    const char *want = getenv("QATRT_ISA");
    int f = 0;
    qatrt_isa isa = best_isa();
    if (want && *want) {
        int i = qatrt_isa_parse(want);
        f = -1;
        if (i >= 0 && qatrt_isa_supported((qatrt_isa)i)) {
            isa = (qatrt_isa)i;
            f = 1;
        }
    }
    if (forced) *forced = f;
    return isa;
}

const qatrt_kernels *qatrt_kernels_for(qatrt_isa isa)
{
    if (!qatrt_isa_supported(isa)) return &qatrt_kernels_scalar;
    switch (isa) {
#ifdef QATRT_HAVE_X86_SIMD
    case QATRT_ISA_AVX2:
        return &qatrt_kernels_avx2;
    case QATRT_ISA_AVX512:
        return &qatrt_kernels_avx512;
#endif
    default:
        return &qatrt_kernels_scalar;
    }
}

const char *qatrt_isa_name(qatrt_isa isa)
{
    return (unsigned)isa < QATRT_ISA_COUNT ? isa_names[isa] : "unknown";
}

int qatrt_isa_parse(const char *s)
{
    for (int i = 0; s && i < QATRT_ISA_COUNT; i++)
        if (strcmp(s, isa_names[i]) == 0) return i;
    return -1;
}
