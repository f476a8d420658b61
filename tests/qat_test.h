/* qat_test.h: the check macro every test program uses. A failed check
 * prints where and why, counts, and lets the test go on. */
#ifndef QAT_TEST_H
#define QAT_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* Debian's Fashion-MNIST (package dataset-fashion-mnist): MNIST's IDX
 * layout, so the data tests fall back to it on a machine without $QAT_DATA */
#define QAT_TEST_FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* The MNIST-family set a data test trains on: $QAT_DATA/mnist, else
 * Debian's Fashion-MNIST. Sets dir and *dataset ("mnist" or
 * "fashion-mnist": what a run's [net] dataset becomes; checks of MNIST's
 * own numbers, such as an accuracy, look at it). Returns 0 when neither is
 * there, with the reason in dir. */
static inline int qat_test_idx_data(char *dir, size_t n, const char **dataset)
{
    const char *q = getenv("QAT_DATA");
    struct stat sb;
    if (q && q[0]) {
        snprintf(dir, n, "%s/mnist", q);
        if (stat(dir, &sb) == 0) {
            *dataset = "mnist";
            return 1;
        }
    }
    if (stat(QAT_TEST_FASHION_DIR, &sb) == 0) {
        snprintf(dir, n, "%s", QAT_TEST_FASHION_DIR);
        *dataset = "fashion-mnist";
        return 1;
    }
    snprintf(dir, n, "%s and %s not found (point QAT_DATA at the folder that holds mnist/, or apt-get install "
             "dataset-fashion-mnist)", q && q[0] ? "$QAT_DATA/mnist" : "QAT_DATA not set;", QAT_TEST_FASHION_DIR);
    return 0;
}

#endif
