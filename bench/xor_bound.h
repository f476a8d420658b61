/* xor_bound.h: the bound the binary kernels meet on AVX-512, shared by
 * bench_kernels and the measurement records under bench/results that time
 * kernels against it: per 512 bits of K one VPXORQ, one VPOPCNTQ and one
 * VPADDQ, here in 8 independent chains from registers (no loads, no
 * loop-carried latency); a call is XOR_BOUND_ITERS steps of the 8,
 * XOR_BOUND_MACS MACs. */
#ifndef QAT_BENCH_XOR_BOUND_H
#define QAT_BENCH_XOR_BOUND_H
#if defined(__x86_64__)
#define XOR_BOUND_ITERS 1000
#define XOR_BOUND_MACS (8.0 * 512 * XOR_BOUND_ITERS)
__attribute__((target("avx512f,avx512vpopcntdq"))) static void xor_bound_call(void)
{
    for (long i = 0; i < XOR_BOUND_ITERS; i++)
        __asm__ volatile(
#define XPA(d) "vpxorq %%zmm15, %%zmm14, %%zmm" #d "\n vpopcntq %%zmm" #d ", %%zmm" #d "\n vpaddq %%zmm" #d \
               ", %%zmm2" #d ", %%zmm2" #d "\n"
            XPA(0) XPA(1) XPA(2) XPA(3) XPA(4) XPA(5) XPA(6) XPA(7)
#undef XPA
            :
            :
            : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm14", "xmm15", "xmm20", "xmm21",
              "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27");
}
#endif
#endif
