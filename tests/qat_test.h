/* qat_test.h: the check macro every test program uses. A failed check
 * prints where and why, counts, and lets the test go on. */
#ifndef QAT_TEST_H
#define QAT_TEST_H

#include <stdint.h>
#include <stdio.h>

static int failures __attribute__((unused)); /* unused where a program stops at its first mismatch */

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                 \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            fflush(stdout);                                                                        \
        }                                                                                          \
    } while (0)

/* one step of splitmix64 on *state: the tests' own random numbers, each
 * program from a seed of its own */
static inline uint64_t qat_test_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
