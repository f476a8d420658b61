/* blascore.c: OPENBLAS_CORETYPE from the CPU's features (blascore.h). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cblas.h>

#include "blascore.h"

/* 0: kernels narrower than AVX2 (or a core this list does not know), 1:
 * AVX2, 2: AVX-512 */
static int core_rank(const char *name)
{
    static const char *const cores[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"};
    for (int i = 0; i < 5; i++)
        if (name && strcasecmp(name, cores[i]) == 0) return i < 2 ? 1 : 2;
    return 0;
}

void qat_openblas_choose_core(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("QAT_NO_REEXEC")) return;
    const char *core = NULL;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        core = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        core = "Haswell";
#endif
    const char *picked = openblas_get_corename();
    if (!core || core_rank(picked) >= core_rank(core)) return; /* kernels as wide as the CPU's */
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv("QAT_OPENBLAS_PICKED", picked ? picked : "?", 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on with the slower kernels */
    unsetenv("QAT_OPENBLAS_PICKED");
}
