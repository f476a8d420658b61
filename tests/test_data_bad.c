/* test_data_bad.c: the data module against hostile and synthetic input: IDX
 * files (raw and gzip) broken at every byte, wrong magic, lying dims, bad
 * labels; folder lookup; the split; and the loader's order, determinism and
 * normalisation. Needs no real dataset. Exit 0 pass, 1 fail. */
#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "qat_test.h"


static char tmp[256];

/* ---- file helpers ------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint8_t *make_images(uint32_t n, uint32_t h, uint32_t w, size_t *len)
{
    *len = 16 + (size_t)n * h * w;
    uint8_t *b = malloc(*len);
    put_u32(b, 0x803);
    put_u32(b + 4, n);
    put_u32(b + 8, h);
    put_u32(b + 12, w);
    for (size_t i = 16; i < *len; i++)
        b[i] = (uint8_t)(i * 37 + 11);
    return b;
}

static uint8_t *make_labels(uint32_t n, size_t *len)
{
    *len = 8 + (size_t)n;
    uint8_t *b = malloc(*len);
    put_u32(b, 0x801);
    put_u32(b + 4, n);
    for (uint32_t i = 0; i < n; i++)
        b[8 + i] = (uint8_t)((i * 3 + 1) % 10);
    return b;
}

static void write_raw(const char *path, const uint8_t *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, len, f) != len) {
        printf("FAIL: cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

static void write_gz(const char *path, const uint8_t *b, size_t len)
{
    gzFile f = gzopen(path, "wb9");
    if (!f || (len && gzwrite(f, b, (unsigned)len) != (int)len) || gzclose(f) != Z_OK) {
        printf("FAIL: cannot write %s\n", path);
        exit(1);
    }
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static const char *tpath(const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, name);
    return buf[k];
}

static int is_zero(const qat_dataset *d)
{
    return d->n == 0 && d->c == 0 && d->h == 0 && d->w == 0 && d->nclass == 0 &&
           !d->images && !d->labels && !d->name[0] && !d->path[0];
}

static int has(const char *msg, const char *s) { return strstr(msg, s) != NULL; }

/* Loads and expects failure with status want whose message holds a and b. */
static void expect_fail(int line, const char *im, const char *lb, int nclass, qat_status want,
                        const char *a, const char *b)
{
    qat_dataset d;
    memset(&d, 0x5a, sizeof d);
    qat_status s = qat_data_load_idx(&d, im, lb, nclass);
    const char *m = qat_last_error();
    if (s != want || !is_zero(&d) || (a && !has(m, a)) || (b && !has(m, b))) {
        failures++;
        printf("FAIL line %d: status %s (want %s), zeroed %d, message \"%s\" should hold \"%s\" "
               "and \"%s\"\n",
               line, qat_status_name(s), qat_status_name(want), is_zero(&d), m, a ? a : "",
               b ? b : "");
    }
    if (s == QAT_OK)
        qat_dataset_free(&d);
}
#define EXPECT_FAIL(im, lb, st, a, b) expect_fail(__LINE__, im, lb, 10, st, a, b)

/* ---- IDX reader ------------------------------------------------------------ */

enum { N = 7, H = 3, W = 4 };

static void test_good(void)
{
    size_t il, ll;
    uint8_t *im = make_images(N, H, W, &il), *lb = make_labels(N, &ll);
    write_raw(tpath("im"), im, il);
    write_raw(tpath("lb"), lb, ll);
    write_gz(tpath("im.gz"), im, il);
    write_gz(tpath("lb.gz"), lb, ll);
    const char *pairs[4][2] = {{"im", "lb"}, {"im.gz", "lb.gz"}, {"im", "lb.gz"}, {"im.gz", "lb"}};
    for (int k = 0; k < 4; k++) {
        qat_dataset d;
        qat_status s = qat_data_load_idx(&d, tpath(pairs[k][0]), tpath(pairs[k][1]), 10);
        CHECK(s == QAT_OK, "%s + %s: %s", pairs[k][0], pairs[k][1], qat_last_error());
        if (s)
            continue;
        CHECK(d.n == N && d.c == 1 && d.h == H && d.w == W && d.nclass == 10, "shape %d %d %d %d",
              d.n, d.c, d.h, d.w);
        CHECK(memcmp(d.images, im + 16, (size_t)N * H * W) == 0, "image bytes differ");
        CHECK(memcmp(d.labels, lb + 8, N) == 0, "label bytes differ");
        CHECK(strcmp(d.path, tmp) == 0 && strcmp(d.name, "idx") == 0, "path %s name %s", d.path,
              d.name);
        qat_dataset_free(&d);
        CHECK(is_zero(&d), "free does not zero");
        qat_dataset_free(&d);
    }
    free(im);
    free(lb);
}

static void test_magic_dims(void)
{
    size_t il, ll;
    uint8_t *im = make_images(N, H, W, &il), *lb = make_labels(N, &ll);
    write_raw(tpath("lb"), lb, ll);
    struct {
        int at;
        uint8_t v;
        const char *want;
    } mag[] = {{0, 1, "byte 0"}, {1, 8, "byte 1"}, {2, 9, "byte 2"}, {3, 1, "labels file"},
               {3, 2, "byte 3"}};
    for (size_t k = 0; k < sizeof mag / sizeof mag[0]; k++) {
        uint8_t save = im[mag[k].at];
        im[mag[k].at] = mag[k].v;
        write_raw(tpath("bad"), im, il);
        EXPECT_FAIL(tpath("bad"), tpath("lb"), QAT_ERR_FORMAT, tpath("bad"), mag[k].want);
        write_gz(tpath("bad.gz"), im, il);
        EXPECT_FAIL(tpath("bad.gz"), tpath("lb"), QAT_ERR_FORMAT, "(uncompressed)", mag[k].want);
        im[mag[k].at] = save;
    }
    /* images and labels swapped */
    write_raw(tpath("im"), im, il);
    EXPECT_FAIL(tpath("lb"), tpath("im"), QAT_ERR_FORMAT, "byte 3", "labels file");

    /* dims: zero, too large, overflowing products, lying counts */
    struct {
        uint32_t n, h, w;
        const char *want;
    } dims[] = {{0, H, W, "byte 4"},          {N, 0, W, "byte 8"},
                {N, H, 0, "byte 12"},         {N, 70000, W, "byte 8"},
                {0xffffffffu, H, W, "byte 4"}, {1u << 28, 65535, 65535, "at most"},
                {1u << 24, 28, 28, "expected"}};
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        put_u32(im + 4, dims[k].n);
        put_u32(im + 8, dims[k].h);
        put_u32(im + 12, dims[k].w);
        write_raw(tpath("bad"), im, il);
        uint8_t *l2 = make_labels(dims[k].n > 1000 ? 1000 : dims[k].n, &ll);
        put_u32(l2 + 4, dims[k].n);
        write_raw(tpath("lb2"), l2, ll);
        free(l2);
        EXPECT_FAIL(tpath("bad"), tpath("lb2"), QAT_ERR_FORMAT, tpath("bad"), dims[k].want);
    }
    free(im);
    free(lb);
}

/* Every prefix of a good file must be refused, naming the file and a byte. */
static void truncate_all(const char *which, const uint8_t *b, size_t len, int is_images,
                         const char *other)
{
    int shown = 0, bad = 0;
    for (size_t k = 0; k < len; k++) {
        write_raw(tpath(which), b, k);
        qat_dataset d;
        memset(&d, 0x5a, sizeof d);
        qat_status s = is_images ? qat_data_load_idx(&d, tpath(which), other, 10)
                                 : qat_data_load_idx(&d, other, tpath(which), 10);
        const char *m = qat_last_error();
        if (s == QAT_OK || !is_zero(&d) || !has(m, tpath(which)) || !has(m, "byte")) {
            bad++;
            if (shown++ < 5)
                printf("FAIL truncated %s at %zu of %zu: %s, \"%s\"\n", which, k, len,
                       qat_status_name(s), s ? m : "");
            if (s == QAT_OK)
                qat_dataset_free(&d);
        }
    }
    failures += bad;
    printf("truncation: %s: %zu prefixes, %d wrongly handled\n", which, len, bad);
}

static void test_truncation(void)
{
    size_t il, ll, gl, hl;
    uint8_t *im = make_images(N, H, W, &il), *lb = make_labels(N, &ll);
    write_raw(tpath("im"), im, il);
    write_raw(tpath("lb"), lb, ll);
    write_gz(tpath("im.gz"), im, il);
    write_gz(tpath("lb.gz"), lb, ll);
    uint8_t *gim = read_all(tpath("im.gz"), &gl), *glb = read_all(tpath("lb.gz"), &hl);

    truncate_all("cut_im", im, il, 1, tpath("lb"));
    truncate_all("cut_lb", lb, ll, 0, tpath("im"));
    truncate_all("cut_im.gz", gim, gl, 1, tpath("lb"));
    truncate_all("cut_lb.gz", glb, hl, 0, tpath("im"));

    /* a precise message for a raw cut inside the data */
    write_raw(tpath("cut"), im, 20);
    EXPECT_FAIL(tpath("cut"), tpath("lb"), QAT_ERR_FORMAT, "byte 20",
                "expected 80 more bytes");
    write_raw(tpath("cut"), im, 10);
    EXPECT_FAIL(tpath("cut"), tpath("lb"), QAT_ERR_FORMAT, "byte 10", "expected 6 more bytes");

    /* trailing bytes, raw and inside a gzip stream */
    uint8_t *longer = malloc(il + 3);
    memcpy(longer, im, il);
    memset(longer + il, 0, 3);
    write_raw(tpath("long"), longer, il + 3);
    EXPECT_FAIL(tpath("long"), tpath("lb"), QAT_ERR_FORMAT, "byte 100", "end of the file");
    write_gz(tpath("long.gz"), longer, il + 1);
    EXPECT_FAIL(tpath("long.gz"), tpath("lb"), QAT_ERR_FORMAT, "byte 100 (uncompressed)",
                "end of the file");
    free(longer);
    longer = malloc(ll + 1);
    memcpy(longer, lb, ll);
    longer[ll] = 1;
    write_raw(tpath("longl"), longer, ll + 1);
    EXPECT_FAIL(tpath("im"), tpath("longl"), QAT_ERR_FORMAT, "byte 15", "end of the file");
    free(longer);

    /* every byte of the deflate data and trailer damaged */
    int bad = 0;
    for (size_t k = 10; k < gl; k++) {
        gim[k] ^= 0xff;
        write_raw(tpath("dmg.gz"), gim, gl);
        gim[k] ^= 0xff;
        qat_dataset d;
        qat_status s = qat_data_load_idx(&d, tpath("dmg.gz"), tpath("lb"), 10);
        if (s == QAT_OK || !has(qat_last_error(), "byte") || !is_zero(&d)) {
            if (bad++ < 5)
                printf("FAIL damaged gzip byte %zu: %s %s\n", k, qat_status_name(s),
                       qat_last_error());
            if (!s)
                qat_dataset_free(&d);
        }
    }
    failures += bad;
    free(gim);
    free(glb);
    free(im);
    free(lb);
}

static void test_counts_labels_missing(void)
{
    size_t il, ll;
    uint8_t *im = make_images(N, H, W, &il), *lb = make_labels(N - 1, &ll);
    write_raw(tpath("im"), im, il);
    write_raw(tpath("lb6"), lb, ll);
    qat_dataset d;
    qat_status s = qat_data_load_idx(&d, tpath("im"), tpath("lb6"), 10);
    const char *m = qat_last_error();
    CHECK(s == QAT_ERR_FORMAT && has(m, tpath("im")) && has(m, tpath("lb6")) &&
              has(m, "7 images") && has(m, "6 labels") && is_zero(&d),
          "count mismatch: %s", m);
    free(lb);

    lb = make_labels(N, &ll);
    lb[8 + 4] = 10;
    write_raw(tpath("lbbad"), lb, ll);
    write_gz(tpath("lbbad.gz"), lb, ll);
    EXPECT_FAIL(tpath("im"), tpath("lbbad"), QAT_ERR_FORMAT, tpath("lbbad"), "byte 12:");
    EXPECT_FAIL(tpath("im"), tpath("lbbad.gz"), QAT_ERR_FORMAT, "byte 12 (uncompressed)",
                "label 10, expected 0..9");
    lb[8 + 4] = 9;
    write_raw(tpath("lb"), lb, ll);
    expect_fail(__LINE__, tpath("im"), tpath("lb"), 9, QAT_ERR_FORMAT, "byte 12", "expected 0..8");

    EXPECT_FAIL(tpath("nothere"), tpath("lb"), QAT_ERR_IO, tpath("nothere"), "cannot open");
    EXPECT_FAIL(tpath("im"), tpath("nothere"), QAT_ERR_IO, tpath("nothere"), "cannot open");
    EXPECT_FAIL(tmp, tpath("lb"), QAT_ERR_IO, tmp, "cannot read");
    expect_fail(__LINE__, tpath("im"), tpath("lb"), 0, QAT_ERR_ARG, "nclass", NULL);
    expect_fail(__LINE__, tpath("im"), tpath("lb"), 257, QAT_ERR_ARG, "nclass", NULL);
    free(im);
    free(lb);
}

/* ---- named datasets, folders, split -------------------------------------- */

static void make_set(const char *dir, int gz, int ntrain, int ntest)
{
    char p[600];
    size_t il = 0, ll = 0;
    const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                            "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (int k = 0; k < 4; k++) {
        int n = k < 2 ? ntrain : ntest;
        uint8_t *b = k % 2 ? make_labels((uint32_t)n, &ll) : make_images((uint32_t)n, 28, 28, &il);
        size_t len = k % 2 ? ll : il;
        snprintf(p, sizeof p, "%s/%s%s", dir, names[k], gz ? ".gz" : "");
        if (gz)
            write_gz(p, b, len);
        else
            write_raw(p, b, len / 2); /* broken: proves the .gz is preferred */
        free(b);
    }
}

static void test_load_locate(void)
{
    char dir[512], out[600];
    snprintf(dir, sizeof dir, "%s/mnist", tmp);
    CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);
    make_set(dir, 1, 9, 5);
    make_set(dir, 0, 9, 5);

    qat_dataset tr, te;
    qat_status s = qat_data_load(&tr, &te, "mnist", dir);
    CHECK(s == QAT_OK, "load: %s", qat_last_error());
    if (s == QAT_OK) {
        CHECK(tr.n == 9 && te.n == 5 && tr.h == 28 && te.w == 28 && tr.nclass == 10,
              "shapes %d %d", tr.n, te.n);
        CHECK(!strcmp(tr.name, "mnist") && !strcmp(te.path, dir), "name %s path %s", tr.name,
              te.path);
    }
    qat_dataset_free(&tr);
    qat_dataset_free(&te);
    s = qat_data_load(&tr, &te, "cifar-10", dir);
    CHECK(s == QAT_ERR_ARG && is_zero(&tr) && is_zero(&te), "unknown name: %s", qat_last_error());

    /* test set broken: both outputs stay empty */
    char p[600];
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", dir);
    size_t ll;
    uint8_t *lb = make_labels(4, &ll);
    write_gz(p, lb, ll);
    free(lb);
    s = qat_data_load(&tr, &te, "mnist", dir);
    CHECK(s == QAT_ERR_FORMAT && is_zero(&tr) && is_zero(&te) && has(qat_last_error(), p),
          "count mismatch in test set: %s", qat_last_error());
    make_set(dir, 1, 9, 5);

    /* locate */
    CHECK(chdir(tmp) == 0, "chdir");
    setenv("QAT_DATA", tmp, 1);
    s = qat_data_locate("mnist", NULL, out, sizeof out);
    CHECK(s == QAT_OK && !strcmp(out, dir), "locate via QAT_DATA: %s -> %s", qat_last_error(), out);
    s = qat_data_load(&tr, &te, "mnist", NULL);
    CHECK(s == QAT_OK && tr.n == 9, "load with dir NULL: %s", qat_last_error());
    qat_dataset_free(&tr);
    qat_dataset_free(&te);
    s = qat_data_locate("mnist", NULL, out, 4);
    CHECK(s == QAT_ERR_ARG, "small buffer: %s", qat_last_error());
    s = qat_data_locate("mnist", tpath("nowhere"), out, sizeof out);
    CHECK(s == QAT_ERR_IO && has(qat_last_error(), tpath("nowhere")), "explicit: %s",
          qat_last_error());
    s = qat_data_locate("mnist", tmp, out, sizeof out);
    CHECK(s == QAT_ERR_IO && has(qat_last_error(), "train-images-idx3-ubyte"),
          "explicit dir without files: %s", qat_last_error());
    s = qat_data_locate("mnist", dir, out, sizeof out);
    CHECK(s == QAT_OK && !strcmp(out, dir), "explicit good: %s", qat_last_error());

    setenv("QAT_DATA", tpath("empty"), 1);
    s = qat_data_locate("mnist", NULL, out, sizeof out);
    const char *m = qat_last_error();
    CHECK(s == QAT_ERR_IO && has(m, "$QAT_DATA/mnist") && has(m, tpath("empty/mnist")) &&
              has(m, "./data/mnist"),
          "not found: %s", m);
    unsetenv("QAT_DATA");
    s = qat_data_locate("fashion-mnist", NULL, out, sizeof out);
    m = qat_last_error();
    CHECK(s == QAT_OK || (s == QAT_ERR_IO && has(m, "QAT_DATA is not set") &&
                          has(m, "./data/fashion-mnist") &&
                          has(m, "/usr/share/datasets/fashion-mnist")),
          "fashion not found: %s", m);
    /* ./data/<folder> */
    CHECK(mkdir("data", 0700) == 0 && rename(dir, "data/mnist") == 0, "move to ./data");
    s = qat_data_locate("mnist", NULL, out, sizeof out);
    CHECK(s == QAT_OK && !strcmp(out, "./data/mnist"), "./data: %s", qat_last_error());
    CHECK(qat_data_locate("cifar", NULL, out, sizeof out) == QAT_ERR_ARG, "unknown name");

    float mean[3], sd[3];
    CHECK(qat_data_default_norm("mnist", mean, sd, 1) == QAT_OK && mean[0] == 0.1307f &&
              sd[0] == 0.3081f,
          "mnist norm");
    CHECK(qat_data_default_norm("fashion-mnist", mean, sd, 3) == QAT_OK && mean[2] == 0.2860f &&
              sd[2] == 0.3530f,
          "fashion norm");
    CHECK(qat_data_default_norm("svhn", mean, sd, 1) == QAT_ERR_ARG, "unknown norm");
    CHECK(qat_data_default_norm("mnist", mean, sd, 0) == QAT_ERR_ARG, "c 0");
}

static void test_split(void)
{
    size_t il, ll;
    uint8_t *im = make_images(N, H, W, &il), *lb = make_labels(N, &ll);
    write_raw(tpath("im"), im, il);
    write_raw(tpath("lb"), lb, ll);
    qat_dataset tr, va;
    CHECK(qat_data_load_idx(&tr, tpath("im"), tpath("lb"), 10) == QAT_OK, "%s", qat_last_error());
    CHECK(qat_data_split(&tr, &va, -1) == QAT_ERR_ARG && is_zero(&va) && tr.n == N, "nval -1");
    CHECK(qat_data_split(&tr, &va, N) == QAT_ERR_ARG && is_zero(&va) && tr.n == N, "nval n");
    CHECK(qat_data_split(&tr, &tr, 1) == QAT_ERR_ARG && tr.n == N, "same struct");
    CHECK(qat_data_split(&tr, &va, 0) == QAT_OK && va.n == 0 && !va.images && tr.n == N &&
              va.h == H,
          "nval 0");
    qat_dataset_free(&va);
    CHECK(qat_data_split(&tr, &va, 3) == QAT_OK && tr.n == N - 3 && va.n == 3, "nval 3: %s",
          qat_last_error());
    if (va.n == 3) {
        CHECK(!memcmp(va.images, im + 16 + (size_t)(N - 3) * H * W, 3 * H * W) &&
                  !memcmp(va.labels, lb + 8 + N - 3, 3) && !memcmp(tr.images, im + 16, (N - 3) * H * W),
              "split content");
        CHECK(va.c == 1 && va.w == W && va.nclass == 10, "val shape");
    }
    qat_dataset_free(&va);
    qat_dataset_free(&tr);
    qat_dataset_free(&tr);
    qat_dataset z = {0};
    qat_dataset_free(&z);
    qat_dataset_free(NULL);
    free(im);
    free(lb);
}

/* ---- loader ---------------------------------------------------------------- */

enum { LN = 103, LC = 3, LH = 5, LW = 4, LPER = LC * LH * LW };

static uint8_t pix(int idx, int c, int p)
{
    if (c == 0 && p == 0)
        return (uint8_t)(idx & 255);
    if (c == 0 && p == 1)
        return (uint8_t)(idx >> 8);
    return (uint8_t)(idx * 7 + p * 13 + c * 31);
}

static qat_loader_cfg base_cfg(void)
{
    qat_loader_cfg cfg = {.batch = 10, .shuffle = 1, .seed = 42, .drop_last = 0,
                          .mean = {0.1f, 0.5f, -0.25f}, .std = {0.3f, 1.7f, 0.05f}};
    return cfg;
}

static float ref(const qat_loader_cfg *cfg, int c, int p)
{
    return ((float)p / 255.0f - cfg->mean[c]) / cfg->std[c];
}

/* Runs one epoch, checking every value exactly; writes the order into order
 * and returns the number of images seen (-1 on a broken batch). */
static int run_epoch(qat_loader *l, const qat_loader_cfg *cfg, int epoch, int *order)
{
    static float x[500 * LPER];
    static int32_t y[500];
    int seen = 0, nb = 0;
    qat_loader_begin(l, epoch);
    for (;;) {
        for (int i = 0; i < cfg->batch * LPER; i++)
            x[i] = -999.0f;
        int k = qat_loader_next(l, x, y);
        if (k == 0)
            break;
        nb++;
        if (k < 0 || k > cfg->batch || seen + k > LN)
            return -1;
        for (int i = 0; i < k; i++) {
            const float *row = x + (size_t)i * LPER;
            int idx = -1;
            for (int lo = 0; lo < 256; lo++)
                for (int hi = 0; hi < 2; hi++)
                    if (row[0] == ref(cfg, 0, lo) && row[1] == ref(cfg, 0, hi))
                        idx = lo + 256 * hi;
            if (idx < 0 || idx >= LN)
                return -1;
            for (int c = 0; c < LC; c++)
                for (int p = 0; p < LH * LW; p++)
                    if (row[c * LH * LW + p] != ref(cfg, c, pix(idx, c, p)))
                        return -1;
            if (y[i] != idx % 10)
                return -1;
            order[seen++] = idx;
        }
        for (int i = k * LPER; i < cfg->batch * LPER; i++)
            if (x[i] != -999.0f)
                return -1; /* rows past the count must be left alone */
    }
    if (nb != qat_loader_nbatches(l) || qat_loader_next(l, x, y) != 0)
        return -1;
    return seen;
}

static void test_loader(void)
{
    qat_dataset ds = {.name = "synthetic", .n = LN, .c = LC, .h = LH, .w = LW, .nclass = 10};
    ds.images = malloc((size_t)LN * LPER);
    ds.labels = malloc(LN);
    for (int i = 0; i < LN; i++) {
        for (int c = 0; c < LC; c++)
            for (int p = 0; p < LH * LW; p++)
                ds.images[(size_t)i * LPER + c * LH * LW + p] = pix(i, c, p);
        ds.labels[i] = (uint8_t)(i % 10);
    }
    int o1[LN], o2[LN];

    for (int bg = 0; bg < 2; bg++) {
        qat_loader_cfg cfg = base_cfg();
        cfg.background = bg;
        qat_loader *l;
        CHECK(qat_loader_init(&l, &ds, &cfg) == QAT_OK, "init: %s", qat_last_error());
        CHECK(qat_loader_nbatches(l) == 11, "nbatches %d", qat_loader_nbatches(l));
        for (int e = 0; e < 3; e++) {
            int n = run_epoch(l, &cfg, e, o1);
            int once[LN] = {0}, ok = n == LN;
            for (int i = 0; ok && i < n; i++)
                ok = once[o1[i]]++ == 0;
            CHECK(ok, "bg %d epoch %d: %d images, not each once", bg, e, n);
        }
        /* same (seed, epoch) -> same order, whatever came before */
        run_epoch(l, &cfg, 1, o1);
        qat_loader *l2;
        CHECK(qat_loader_init(&l2, &ds, &cfg) == QAT_OK, "init 2");
        CHECK(run_epoch(l2, &cfg, 1, o2) == LN && !memcmp(o1, o2, sizeof o1),
              "bg %d: resume at epoch 1 differs", bg);
        run_epoch(l2, &cfg, 2, o2);
        CHECK(memcmp(o1, o2, sizeof o1) != 0, "bg %d: epochs 1 and 2 have the same order", bg);
        qat_loader_free(l2);
        cfg.seed = 43;
        CHECK(qat_loader_init(&l2, &ds, &cfg) == QAT_OK, "init 3");
        run_epoch(l2, &cfg, 1, o2);
        CHECK(memcmp(o1, o2, sizeof o1) != 0, "bg %d: seeds 42 and 43 give the same order", bg);
        qat_loader_free(l2);
        qat_loader_free(l);

        /* drop_last, no shuffle */
        cfg = base_cfg();
        cfg.background = bg;
        cfg.drop_last = 1;
        cfg.shuffle = 0;
        CHECK(qat_loader_init(&l, &ds, &cfg) == QAT_OK, "init drop");
        CHECK(qat_loader_nbatches(l) == 10, "drop_last nbatches %d", qat_loader_nbatches(l));
        int n = run_epoch(l, &cfg, 5, o1), ok = n == 100;
        for (int i = 0; ok && i < n; i++)
            ok = o1[i] == i;
        CHECK(ok, "bg %d drop_last/no shuffle: %d images, order not 0..99", bg, n);
        qat_loader_free(l);
        /* a batch larger than the set */
        cfg.drop_last = 0;
        cfg.batch = 500;
        CHECK(qat_loader_init(&l, &ds, &cfg) == QAT_OK, "init big batch");
        CHECK(run_epoch(l, &cfg, 0, o1) == LN && qat_loader_nbatches(l) == 1, "big batch");
        qat_loader_free(l);
    }

    /* background == foreground, bit for bit, also when an epoch is abandoned */
    for (int drop = 0; drop < 2; drop++) {
        qat_loader_cfg cfg = base_cfg();
        cfg.batch = 7;
        cfg.drop_last = drop;
        qat_loader *fg, *bgl;
        cfg.background = 0;
        CHECK(qat_loader_init(&fg, &ds, &cfg) == QAT_OK, "init fg");
        cfg.background = 1;
        CHECK(qat_loader_init(&bgl, &ds, &cfg) == QAT_OK, "init bg");
        static float x1[7 * LPER], x2[7 * LPER];
        int32_t y1[7], y2[7];
        int same = 1;
        for (int e = 0; e < 4; e++) {
            qat_loader_begin(fg, e);
            qat_loader_begin(bgl, e);
            for (int b = 0;; b++) {
                if (e == 2 && b == 3)
                    break; /* abandon epoch 2 midway */
                memset(x1, 0, sizeof x1);
                memset(x2, 0, sizeof x2);
                memset(y1, 0, sizeof y1);
                memset(y2, 0, sizeof y2);
                int k1 = qat_loader_next(fg, x1, y1), k2 = qat_loader_next(bgl, x2, y2);
                if (k1 != k2 || memcmp(x1, x2, sizeof x1) || memcmp(y1, y2, sizeof y1))
                    same = 0;
                if (k1 == 0 || k2 == 0)
                    break;
            }
        }
        CHECK(same, "drop %d: background and foreground batches differ", drop);
        qat_loader_free(fg);
        qat_loader_free(bgl);
    }

    /* order matches qat_loader_epoch_seed + qat_rng_permutation, as documented */
    {
        qat_loader_cfg cfg = base_cfg();
        qat_loader *l;
        CHECK(qat_loader_init(&l, &ds, &cfg) == QAT_OK, "init doc");
        run_epoch(l, &cfg, 7, o1);
        qat_rng r;
        uint32_t perm[LN];
        qat_rng_seed(&r, qat_loader_epoch_seed(cfg.seed, 7));
        qat_rng_permutation(&r, perm, LN);
        int ok = 1;
        for (int i = 0; i < LN; i++)
            ok &= o1[i] == (int)perm[i];
        CHECK(ok, "order is not the documented permutation");
        qat_loader_free(l);
        /* free right after begin, with a job in flight */
        cfg.background = 1;
        CHECK(qat_loader_init(&l, &ds, &cfg) == QAT_OK, "init bg");
        qat_loader_begin(l, 0);
        qat_loader_free(l);
        CHECK(qat_loader_init(&l, &ds, &cfg) == QAT_OK, "init bg");
        qat_loader_free(l); /* never begun */
    }

    /* bad configurations */
    qat_loader *l = (qat_loader *)&ds;
    qat_loader_cfg cfg = base_cfg();
    cfg.batch = 0;
    CHECK(qat_loader_init(&l, &ds, &cfg) == QAT_ERR_ARG && !l, "batch 0");
    cfg = base_cfg();
    cfg.std[2] = 0.0f;
    CHECK(qat_loader_init(&l, &ds, &cfg) == QAT_ERR_ARG && has(qat_last_error(), "channel 2"),
          "std 0: %s", qat_last_error());
    cfg = base_cfg();
    cfg.drop_last = 1;
    cfg.batch = LN + 1;
    CHECK(qat_loader_init(&l, &ds, &cfg) == QAT_ERR_ARG, "drop_last, batch > n");
    qat_dataset empty = {0};
    CHECK(qat_loader_init(&l, &empty, &cfg) == QAT_ERR_ARG, "empty dataset");
    qat_loader_free(NULL);
    free(ds.images);
    free(ds.labels);
}

static void test_loader_speed(void)
{
    enum { SN = 1024, SB = 128, SP = 28 * 28 };
    qat_dataset ds = {.name = "speed", .n = SN, .c = 1, .h = 28, .w = 28, .nclass = 10};
    ds.images = malloc((size_t)SN * SP);
    ds.labels = calloc(SN, 1);
    for (size_t i = 0; i < (size_t)SN * SP; i++)
        ds.images[i] = (uint8_t)(i * 131);
    float *x = malloc(sizeof(float) * SB * SP);
    int32_t y[SB];
    for (int bg = 0; bg < 2; bg++) {
        qat_loader_cfg cfg = {.batch = SB, .shuffle = 1, .seed = 1, .mean = {0.1307f},
                              .std = {0.3081f}, .background = bg};
        qat_loader *l;
        if (qat_loader_init(&l, &ds, &cfg)) {
            CHECK(0, "speed init: %s", qat_last_error());
            break;
        }
        int nb = 0;
        double t0 = qat_time_now();
        for (int e = 0; e < 10; e++) {
            qat_loader_begin(l, e);
            while (qat_loader_next(l, x, y))
                nb++;
        }
        double t = qat_time_now() - t0;
        printf("loader speed (background %d): %.1f us per %dx784 batch (%d batches)\n", bg,
               1e6 * t / nb, SB, nb);
        qat_loader_free(l);
    }
    free(x);
    free(ds.images);
    free(ds.labels);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(tmp, sizeof tmp, "%s/qat_data_bad_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) {
        printf("FAIL: mkdtemp %s\n", tmp);
        return 1;
    }
    test_good();
    test_magic_dims();
    test_truncation();
    test_counts_labels_missing();
    test_split();
    test_loader();
    test_loader_speed();
    test_load_locate(); /* last: it changes the working folder */

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        printf("note: could not remove %s\n", tmp);
    if (failures) {
        printf("test_data_bad: %d failures\n", failures);
        return 1;
    }
    printf("test_data_bad: all passed\n");
    return 0;
}
