/* qat_util.h: the base every module may include: status codes and the
 * thread-local error message, the always-on invariant check, the seeded PRNG.
 * Nothing here allocates, exits or prints (QAT_ASSERT aside: it reports a
 * programming error, never a user error, and aborts). */
#ifndef QAT_UTIL_H
#define QAT_UTIL_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    QAT_OK = 0,
    QAT_ERR_IO,       /* a file could not be opened, read or written */
    QAT_ERR_FORMAT,   /* a file's bytes are not what its format says */
    QAT_ERR_CONFIG,   /* a config is wrong: unknown key, bad value */
    QAT_ERR_SHAPE,    /* shapes do not fit together */
    QAT_ERR_MEMORY,   /* an allocation failed */
    QAT_ERR_ARG,      /* a caller passed a bad argument */
    QAT_ERR_CHECKSUM, /* stored and computed checksums differ */
    QAT_ERR_MISMATCH, /* a file belongs to another model */
    QAT_ERR_NONFINITE, /* training produced a NaN or an infinity */
    QAT_ERR_INTERRUPTED, /* the caller asked a run to stop (a signal) */
    QAT_ERR_COMM      /* a data-parallel rank failed or stopped answering */
} qat_status;

/* Records "message" for qat_last_error() and returns s, so that callers can
 * write `return qat_error_set(QAT_ERR_IO, "%s: cannot open", path);`.
 * The message is thread-local and overwritten by the next error. */
qat_status qat_error_set(qat_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prepends "prefix: " to the current message (context added on the way up). */
qat_status qat_error_wrap(qat_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *qat_last_error(void);
const char *qat_status_name(qat_status s);

/* Invariants (bugs, not user errors): always on, even with NDEBUG. */
void qat_assert_fail(const char *expr, const char *file, int line);
#define QAT_ASSERT(c) ((c) ? (void)0 : qat_assert_fail(#c, __FILE__, __LINE__))

/* The project's PRNG: xoshiro256** seeded through splitmix64. The state is
 * plain data, so a checkpoint can store and restore it. */
typedef struct {
    uint64_t s[4];
} qat_rng;

void qat_rng_seed(qat_rng *r, uint64_t seed);
uint64_t qat_rng_u64(qat_rng *r);
uint32_t qat_rng_u32(qat_rng *r);
/* uniform in [0, 1) with 24 random bits (exactly representable in float) */
float qat_rng_uniform(qat_rng *r);
/* uniform integer in [0, n), unbiased; n > 0 */
uint32_t qat_rng_below(qat_rng *r, uint32_t n);
/* standard normal (Box-Muller in double, one value per call) */
float qat_rng_normal(qat_rng *r);
/* Fisher-Yates permutation of 0..n-1 into perm */
void qat_rng_permutation(qat_rng *r, uint32_t *perm, uint32_t n);

/* Monotonic wall clock in seconds. */
double qat_time_now(void);

#endif
