/* util.c: error messages, assertion failure, PRNG, clock (see qat_util.h). */
#define _POSIX_C_SOURCE 200809L
#include "qat_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char err_msg[1024];

qat_status qat_error_set(qat_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    return s;
}

qat_status qat_error_wrap(qat_status s, const char *fmt, ...)
{
    char prefix[512], old[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_msg, sizeof old);
    snprintf(err_msg, sizeof err_msg, "%.400s: %.600s", prefix, old);
    return s;
}

const char *qat_last_error(void) { return err_msg; }

const char *qat_status_name(qat_status s)
{
    static const char *const names[] = {
        [QAT_OK] = "ok",
        [QAT_ERR_IO] = "i/o error",
        [QAT_ERR_FORMAT] = "format error",
        [QAT_ERR_CONFIG] = "config error",
        [QAT_ERR_SHAPE] = "shape error",
        [QAT_ERR_MEMORY] = "out of memory",
        [QAT_ERR_ARG] = "bad argument",
        [QAT_ERR_CHECKSUM] = "checksum error",
        [QAT_ERR_MISMATCH] = "model mismatch",
        [QAT_ERR_NONFINITE] = "non-finite value",
        [QAT_ERR_INTERRUPTED] = "interrupted",
        [QAT_ERR_COMM] = "communication",
    };
    if ((unsigned)s < sizeof names / sizeof names[0] && names[s]) return names[s];
    return "unknown status";
}

void qat_assert_fail(const char *expr, const char *file, int line)
{
    /* A broken invariant is a bug in qat, not a user error: stop loudly. */
    fprintf(stderr, "qat: internal error: %s:%d: assertion '%s' failed\n", file, line, expr);
    abort();
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void qat_rng_seed(qat_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t qat_rng_u64(qat_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t qat_rng_u32(qat_rng *r) { return (uint32_t)(qat_rng_u64(r) >> 32); }

float qat_rng_uniform(qat_rng *r) { return (float)(qat_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

uint32_t qat_rng_below(qat_rng *r, uint32_t n)
{
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t m = (uint64_t)qat_rng_u32(r) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (lo < t) {
            m = (uint64_t)qat_rng_u32(r) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float qat_rng_normal(qat_rng *r)
{
    double u1 = ((double)(qat_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(qat_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void qat_rng_permutation(qat_rng *r, uint32_t *perm, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) perm[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = qat_rng_below(r, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

double qat_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
