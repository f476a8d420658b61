/* blascore.h: which OpenBLAS kernels to run on this CPU, shared by the qat
 * executable and bench/bench_kernels (one guess, not two). */
#ifndef QAT_BLASCORE_H
#define QAT_BLASCORE_H

/* Debian's OpenBLAS 0.3.21 picks its kernels by CPU model: it falls back to
 * the SSE3 "Prescott" kernels on Intel CPUs newer than it knows (4x slower
 * GEMM), and gives an AMD Zen 4/5 with AVX-512 its AVX2 "Haswell"/"Zen"
 * kernels (1.4x slower convolutions, measured on a Zen 5). It reads
 * OPENBLAS_CORETYPE when the library loads, before main, so when the user
 * has not chosen (no OPENBLAS_CORETYPE, no QAT_NO_REEXEC), this sets it from
 * the CPU's features and restarts the program once (execv of
 * /proc/self/exe with argv), with QAT_OPENBLAS_PICKED naming the core
 * OpenBLAS had picked. Returns only when no restart is needed or the
 * restart failed (the program then carries on with OpenBLAS's choice). */
void qat_openblas_choose_core(char **argv);

#endif
