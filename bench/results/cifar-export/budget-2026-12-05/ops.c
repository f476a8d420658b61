/* ops.c: what the instructions of bgemm_pk cost on this core, in the
 * units of bench_kernels' bound (one VPXORQ + VPOPCNTQ + VPADDQ "triple"
 * per 512 bits of K). Each line times a block of independent operations
 * from registers, repeated; "+ x" lines add x to a block of 8 triples, so
 * their difference to the plain block is what x costs beside the counts.
 * Build: gcc -O2 -mavx512f -mavx512vpopcntdq -mavx512vnni -mpopcnt ops.c -o ops
 * Run pinned: taskset -c 1 ./ops  (cycles assume the clock printed first) */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
#define N 10000000L
static uint64_t mem[64] __attribute__((aligned(64)));
static double ghz;
#define CLOBBER                                                                                                    \
    "rax", "rdx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", \
        "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", \
        "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "memory"
#define T(name, body)                                                                                              \
    {                                                                                                              \
        double best = 1e9;                                                                                         \
        for (int r = 0; r < 7; r++) {                                                                              \
            uint64_t s0 = 1, s1 = 2, s2 = 3, s3 = 4;                                                               \
            const uint64_t *p = mem;                                                                               \
            double t0 = now();                                                                                     \
            for (long i = 0; i < N; i++)                                                                           \
                __asm__ volatile(body : "+r"(s0), "+r"(s1), "+r"(s2), "+r"(s3) : "r"(p) : CLOBBER);                \
            double t = now() - t0;                                                                                 \
            if (t < best) best = t;                                                                                \
        }                                                                                                          \
        printf("%-40s %6.2f cycles a block\n", name, best / N * ghz * 1e9);                                        \
    }
#define P8(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7)
/* a triple into accumulator zmm2d */
#define XPA(d) "vpxorq %%zmm15, %%zmm14, %%zmm" #d "\n vpopcntq %%zmm" #d ", %%zmm" #d "\n vpaddq %%zmm" #d ", %%zmm2" #d ", %%zmm2" #d "\n"
#define XPD(d) "vpxorq %%zmm15, %%zmm14, %%zmm" #d "\n vpopcntq %%zmm" #d ", %%zmm" #d "\n vpdpwssd %%zmm" #d ", %%zmm13, %%zmm2" #d "\n"
#define POP(d) "vpopcntq %%zmm14, %%zmm" #d "\n"
#define XOR(d) "vpxorq %%zmm15, %%zmm14, %%zmm" #d "\n"
#define PERMD(d) "vpermd %%zmm14, %%zmm15, %%zmm" #d "\n"
#define UNPCK(d) "vpunpcklqdq %%zmm14, %%zmm15, %%zmm" #d "\n"
#define ADDD(d) "vpaddd %%zmm14, %%zmm15, %%zmm" #d "\n"
#define BC4(d) "vbroadcasti64x4 (%4), %%zmm" #d "\n"
#define BCQ(d) "vpbroadcastq 8(%4), %%zmm" #d "\n"
/* one 64-bit word counted in scalar registers: load, XOR from memory, POPCNT, ADD */
#define SW(acc, o) "mov " #o "(%4), %%rax\n xor " #o "+256(%4), %%rax\n popcnt %%rax, %%rdx\n add %%rdx, %" #acc "\n"

int main(void)
{
    double best = 1e9; /* the clock: a chain of dependent scalar adds, one a cycle */
    for (int r = 0; r < 7; r++) {
        long x = 0;
        double t0 = now();
        for (long i = 0; i < 100000000; i++)
            __asm__ volatile("add $1,%0\n add $1,%0\n add $1,%0\n add $1,%0\n add $1,%0\n add $1,%0\n add $1,%0\n add $1,%0\n"
                             : "+r"(x));
        double t = now() - t0;
        if (t < best) best = t;
    }
    ghz = 8e8 / best * 1e-9;
    printf("clock %.2f GHz (dependent scalar adds)\n", ghz);
    T("8 VPOPCNTQ", P8(POP))
    T("8 VPXORQ", P8(XOR))
    T("8 VPERMD", PERMD(20) PERMD(21) PERMD(22) PERMD(23) PERMD(24) PERMD(25) PERMD(26) PERMD(27))
    T("8 VPUNPCKLQDQ", UNPCK(20) UNPCK(21) UNPCK(22) UNPCK(23) UNPCK(24) UNPCK(25) UNPCK(26) UNPCK(27))
    T("8 VBROADCASTI64X4 from memory", BC4(20) BC4(21) BC4(22) BC4(23) BC4(24) BC4(25) BC4(26) BC4(27))
    T("8 triples (the bound's block)", P8(XPA))
    T("8 triples + 2 VPERMD", P8(XPA) PERMD(28) PERMD(29))
    T("8 triples + 4 VPERMD", P8(XPA) PERMD(28) PERMD(29) PERMD(30) PERMD(31))
    T("8 triples + 4 VPUNPCKLQDQ", P8(XPA) UNPCK(28) UNPCK(29) UNPCK(30) UNPCK(31))
    T("8 triples + 4 VPADDD", P8(XPA) ADDD(28) ADDD(29) ADDD(30) ADDD(31))
    T("8 triples + 4 VBROADCASTI64X4 from memory", P8(XPA) BC4(28) BC4(29) BC4(30) BC4(31))
    T("8 triples + 4 VPBROADCASTQ from memory", P8(XPA) BCQ(28) BCQ(29) BCQ(30) BCQ(31))
    T("8 triples, VPDPWSSD by -2 for VPADDQ", P8(XPD))
    T("8 triples + 1 scalar word", P8(XPA) SW(0, 0))
    T("8 triples + 2 scalar words", P8(XPA) SW(0, 0) SW(1, 8))
    T("8 triples + 4 scalar words", P8(XPA) SW(0, 0) SW(1, 8) SW(2, 16) SW(3, 24))
    return 0;
}
