/* test_data.c: the data module on the real MNIST (through $QAT_DATA, the
 * folder that holds mnist/) and, if installed, Debian's Fashion-MNIST (either
 * one is enough): known sizes and first labels, the split, and a full
 * background epoch.
 * Exit 0 pass, 1 fail, 77 skip (no dataset). */
#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qat_test.h"


/* Shape, labels and pixel sums of one split of a 10-class 28x28 set. */
static void check_split(const char *what, const qat_dataset *d, int n, int first_label,
                        const long *want_hist)
{
    CHECK(d->n == n && d->c == 1 && d->h == 28 && d->w == 28 && d->nclass == 10,
          "%s: %d images %dx%dx%d, %d classes", what, d->n, d->c, d->h, d->w, d->nclass);
    if (d->n != n)
        return;
    CHECK(first_label < 0 || d->labels[0] == first_label, "%s: first label %d, expected %d", what,
          d->labels[0], first_label);
    long hist[10] = {0}, total = 0;
    for (int i = 0; i < d->n; i++)
        hist[d->labels[i]]++;
    int empty = 0;
    for (int k = 0; k < 10; k++) {
        total += hist[k];
        empty += hist[k] == 0;
    }
    CHECK(total == n && !empty, "%s: label histogram sums to %ld with %d empty classes", what,
          total, empty);
    CHECK(!want_hist || !memcmp(hist, want_hist, sizeof hist),
          "%s: class counts differ from the published ones", what);
    /* every image has ink, and the whole set is mostly background */
    size_t per = 28 * 28;
    int blank = 0;
    unsigned long long all = 0;
    for (int i = 0; i < d->n; i++) {
        unsigned long s = 0;
        for (size_t p = 0; p < per; p++)
            s += d->images[(size_t)i * per + p];
        blank += s == 0;
        all += s;
    }
    double mean = (double)all / ((double)n * (double)per * 255.0);
    CHECK(blank == 0 && mean > 0.05 && mean < 0.5, "%s: %d blank images, mean pixel %.4f", what,
          blank, mean);
    printf("%s: %d images, mean pixel %.4f, class counts", what, d->n, mean);
    for (int k = 0; k < 10; k++)
        printf(" %ld", hist[k]);
    printf("\n");
}

/* One full epoch of the background loader over the training set. */
static void check_epoch(const char *name, const qat_dataset *train)
{
    qat_loader_cfg cfg = {.batch = 128, .shuffle = 1, .seed = 7, .background = 1};
    CHECK(qat_data_default_norm(name, cfg.mean, cfg.std, 1) == QAT_OK, "%s", qat_last_error());
    qat_loader *l;
    if (qat_loader_init(&l, train, &cfg) != QAT_OK) {
        CHECK(0, "loader: %s", qat_last_error());
        return;
    }
    float *x = malloc(sizeof(float) * 128 * 784);
    int32_t y[128];
    long seen = 0, batches = 0, hist[10] = {0};
    double sum = 0, sum2 = 0;
    double t0 = qat_time_now();
    qat_loader_begin(l, 3);
    int k;
    while ((k = qat_loader_next(l, x, y)) > 0) {
        batches++;
        seen += k;
        for (int i = 0; i < k; i++)
            hist[y[i]]++;
        for (long i = 0; i < (long)k * 784; i++) {
            sum += x[i];
            sum2 += (double)x[i] * x[i];
        }
    }
    double t = qat_time_now() - t0;
    long want[10] = {0};
    for (int i = 0; i < train->n; i++)
        want[train->labels[i]]++;
    CHECK(seen == train->n && batches == qat_loader_nbatches(l) && !memcmp(hist, want, sizeof hist),
          "%s epoch: %ld images in %ld batches, labels differ %d", name, seen, batches,
          memcmp(hist, want, sizeof hist) != 0);
    /* with the recipe's own statistics the data come out near 0 mean, unit std */
    double m = sum / ((double)seen * 784), sd = sum2 / ((double)seen * 784) - m * m;
    CHECK(m > -0.05 && m < 0.05 && sd > 0.9 && sd < 1.1, "%s: normalised mean %.4f var %.4f",
          name, m, sd);
    printf("%s: background epoch of %ld batches in %.3f s, normalised mean %.4f var %.4f\n", name,
           batches, t, m, sd);
    free(x);
    qat_loader_free(l);
}

/* The published class counts. */
static const long mnist_train[10] = {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949};
static const long mnist_test[10] = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
static const long fashion_train[10] = {6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000};
static const long fashion_test[10] = {1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000};

static void check_set(const char *name, const char *dir, int train_first, int test_first,
                      const long *train_hist, const long *test_hist)
{
    qat_dataset train, test, val;
    double t0 = qat_time_now();
    qat_status s = qat_data_load(&train, &test, name, dir);
    if (s) {
        CHECK(0, "%s: %s", name, qat_last_error());
        return;
    }
    printf("%s: loaded from %s in %.2f s\n", name, train.path, qat_time_now() - t0);
    char what[64];
    snprintf(what, sizeof what, "%s train", name);
    check_split(what, &train, 60000, train_first, train_hist);
    snprintf(what, sizeof what, "%s test", name);
    check_split(what, &test, 10000, test_first, test_hist);

    uint8_t last_label = train.labels[59999];
    s = qat_data_split(&train, &val, 10000);
    CHECK(s == QAT_OK && train.n == 50000 && val.n == 10000 && val.labels[9999] == last_label,
          "%s split: %s, %d + %d", name, s ? qat_last_error() : "ok", train.n, val.n);
    check_epoch(name, &train);
    qat_dataset_free(&val);
    qat_dataset_free(&train);
    qat_dataset_free(&test);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *root = getenv("QAT_DATA");
    char dir[4096];
    int ran = 0;
    /* MNIST when $QAT_DATA has it; Debian's Fashion-MNIST in any case when
     * installed, so a machine without $QAT_DATA still runs this test */
    if (!root || !root[0])
        printf("skip part: QAT_DATA is not set (point it at the folder that holds mnist/)\n");
    else if (qat_data_locate("mnist", NULL, dir, sizeof dir) != QAT_OK)
        printf("skip part: %s\n", qat_last_error());
    else {
        check_set("mnist", dir, 5, 7, mnist_train, mnist_test);
        ran++;
    }

    struct stat st;
    if (stat(QAT_TEST_FASHION_DIR, &st) == 0) {
        check_set("fashion-mnist", QAT_TEST_FASHION_DIR, 9, 9, fashion_train, fashion_test); /* ankle boots */
        ran++;
    } else
        printf("skip part: %s is absent (Debian package dataset-fashion-mnist)\n", QAT_TEST_FASHION_DIR);
    if (!ran) {
        printf("skip: neither MNIST nor Fashion-MNIST\n");
        return 77;
    }

    if (failures) {
        printf("test_data: %d failures\n", failures);
        return 1;
    }
    printf("test_data: all passed\n");
    return 0;
}
