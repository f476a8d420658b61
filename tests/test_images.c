/* test_images.c: image folders, the loader's augmentation and the [net]
 * keys of the datasets. Folders of PNG/BMP/JPEG files written here with
 * stb_image_write read back exactly (sorted classes and files, grey <-> RGB,
 * sizes refused or resized, corrupt files named); the crop and flip of every
 * image match the stream of (seed, epoch, index) pixel for pixel, padding is
 * -mean/std, whatever the batch size or the background thread; a short
 * training run with augmentation evaluates without it. Exit 0 pass, 1 fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "trainer.h"

#include "qat_test.h"

static char tmp[256];

static int has(const char *msg, const char *s) { return strstr(msg, s) != NULL; }

static const char *tpath(const char *a, const char *b)
{
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s%s%s", tmp, a, b ? "/" : "", b ? b : "");
    return buf[k];
}

/* ---- image folders ---------------------------------------------------------------------- */

/* a W x H image of comp channels, HWC, whose bytes say where they are */
static uint8_t px(int img, int y, int x, int ch) { return (uint8_t)(img * 40 + y * 9 + x * 3 + ch * 70); }

static void write_img(const char *path, int img, int w, int h, int comp, char kind)
{
    uint8_t *b = malloc((size_t)w * h * comp);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comp; c++)
                b[((size_t)y * w + x) * comp + c] = px(img, y, x, c);
    int ok = kind == 'p'   ? stbi_write_png(path, w, h, comp, b, w * comp)
             : kind == 'b' ? stbi_write_bmp(path, w, h, comp, b)
                           : stbi_write_jpg(path, w, h, comp, b, 95);
    if (!ok) {
        printf("FAIL: cannot write %s\n", path);
        exit(1);
    }
    free(b);
}

static void write_const(const char *path, int w, int h, uint8_t v)
{
    uint8_t *b = malloc((size_t)w * h * 3);
    memset(b, v, (size_t)w * h * 3);
    stbi_write_png(path, w, h, 3, b, w * 3);
    free(b);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

#define W 8
#define H 6

/* train: cat (C.PNG grey, a.bmp, b.png), dog (x.png), zebra (j.jpg);
 * test: cat (t.png), dog (none), zebra (u.bmp). In byte order C.PNG < a.bmp. */
static void make_folder(const char *root)
{
    const char *dirs[] = {"", "train", "test", "train/cat", "train/dog", "train/zebra",
                          "test/cat", "test/dog", "test/zebra", "train/cat/sub"};
    char p[1100];
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        mkdir(p, 0700);
    }
#define F(rel) (snprintf(p, sizeof p, "%s/%s", root, rel), p)
    write_img(F("train/cat/b.png"), 2, W, H, 3, 'p');
    write_img(F("train/cat/a.bmp"), 1, W, H, 3, 'b');
    write_img(F("train/cat/C.PNG"), 0, W, H, 1, 'p');
    write_img(F("train/dog/x.png"), 3, W, H, 4, 'p'); /* RGBA: alpha dropped */
    write_img(F("train/zebra/j.jpg"), 4, W, H, 3, 'j');
    write_img(F("test/cat/t.png"), 5, W, H, 3, 'p');
    write_img(F("test/zebra/u.bmp"), 6, W, H, 3, 'b');
    write_text(F("train/cat/notes.txt"), "not an image");
    write_text(F("train/cat/.hidden.png"), "skipped");
    write_img(F("train/cat/sub/deep.png"), 9, W, H, 3, 'p');
#undef F
}

static void check_rgb(const char *what, const qat_dataset *d, int i, int img, int grey)
{
    int bad = 0;
    size_t plane = (size_t)d->h * d->w;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                bad += d->images[(size_t)i * 3 * plane + c * plane + (size_t)y * W + x] !=
                       px(img, y, x, grey ? 0 : c);
    CHECK(bad == 0, "%s: image %d: %d bytes differ", what, i, bad);
}

static void test_folder(void)
{
    char root[1024]; /* tpath's buffers rotate */
    snprintf(root, sizeof root, "%s", tpath("pets", NULL));
    make_folder(root);
    qat_dataset tr, te;
    qat_data_opts o = {.c = 3, .h = H, .w = W};
    qat_status s = qat_data_load_folder(&tr, &te, root, &o);
    CHECK(s == QAT_OK, "load: %s", qat_last_error());
    if (s != QAT_OK)
        return;
    CHECK(tr.n == 5 && te.n == 2 && tr.c == 3 && tr.h == H && tr.w == W && tr.nclass == 3 &&
              te.nclass == 3 && !strcmp(tr.name, "folder") && !strcmp(tr.path, root),
          "shape %d %d %dx%dx%d %d", tr.n, te.n, tr.c, tr.h, tr.w, tr.nclass);
    const char *names[3] = {"cat", "dog", "zebra"};
    for (int k = 0; k < 3; k++)
        CHECK(!strcmp(tr.class_names[k], names[k]) && !strcmp(te.class_names[k], names[k]),
              "class %d '%s'", k, tr.class_names[k]);
    static const uint8_t want_tr[5] = {0, 0, 0, 1, 2}, want_te[2] = {0, 2};
    CHECK(tr.n == 5 && !memcmp(tr.labels, want_tr, 5) && !memcmp(te.labels, want_te, 2),
          "labels");
    if (tr.n == 5) {
        check_rgb("C.PNG grey repeated", &tr, 0, 0, 1);
        check_rgb("a.bmp", &tr, 1, 1, 0);
        check_rgb("b.png", &tr, 2, 2, 0);
        check_rgb("x.png rgba", &tr, 3, 3, 0);
        /* a JPEG is lossy: close, not equal */
        int far = 0;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < H * W; p++) {
                int d = tr.images[4 * 3 * H * W + c * H * W + p] - px(4, p / W, p % W, c);
                far += d > 24 || d < -24;
            }
        CHECK(far < 8, "j.jpg: %d pixels far from what was written", far);
        check_rgb("test t.png", &te, 0, 5, 0);
        check_rgb("test u.bmp", &te, 1, 6, 0);
    }
    qat_dataset_free(&tr);
    qat_dataset_free(&te);

    /* one channel: stb's luma of RGB, grey as it is */
    o.c = 1;
    s = qat_data_load_folder(&tr, &te, root, &o);
    CHECK(s == QAT_OK && tr.c == 1, "grey: %s", qat_last_error());
    if (s == QAT_OK) {
        int bad = 0;
        for (int p = 0; p < H * W; p++) {
            int y = p / W, x = p % W;
            int luma = (px(2, y, x, 0) * 77 + px(2, y, x, 1) * 150 + px(2, y, x, 2) * 29) >> 8;
            bad += tr.images[0 * H * W + p] != px(0, y, x, 0);
            bad += tr.images[2 * H * W + p] != luma;
        }
        CHECK(bad == 0, "grey conversion: %d bytes differ", bad);
        qat_dataset_free(&tr);
        qat_dataset_free(&te);
    }

    /* the size of the first training image, through the table */
    qat_data_opts z = {0};
    s = qat_data_load_opts(&tr, &te, "folder", root, &z);
    CHECK(s == QAT_OK && tr.h == H && tr.w == W && tr.c == 3, "size from the first image: %s",
          qat_last_error());
    if (s == QAT_OK) {
        qat_dataset_free(&tr);
        qat_dataset_free(&te);
    }

    /* another size: refused, or resized */
    write_const(tpath("pets", "train/dog/y.png"), 2 * W, 2 * H, 200);
    o.c = 3;
    s = qat_data_load_folder(&tr, &te, root, &o);
    CHECK(s == QAT_ERR_SHAPE && has(qat_last_error(), "train/dog/y.png") &&
              has(qat_last_error(), "16x12") && has(qat_last_error(), "resize"),
          "wrong size: %s", qat_last_error());
    o.resize = 1;
    s = qat_data_load_folder(&tr, &te, root, &o);
    CHECK(s == QAT_OK && tr.n == 6, "resized: %s", qat_last_error());
    if (s == QAT_OK) {
        int off = 0;
        for (int p = 0; p < 3 * H * W; p++)
            off += tr.images[4 * 3 * H * W + p] < 199 || tr.images[4 * 3 * H * W + p] > 201;
        CHECK(off == 0 && tr.labels[4] == 1, "a constant image resized: %d pixels changed", off);
        qat_dataset_free(&tr);
        qat_dataset_free(&te);
    }
    unlink(tpath("pets", "train/dog/y.png"));

    /* a corrupt file: its path and stb's reason */
    write_text(tpath("pets", "test/dog/broken.png"), "\x89PNG\r\n\x1a\nthis is not the rest of a PNG");
    s = qat_data_load_folder(&tr, &te, root, &o);
    CHECK(s == QAT_ERR_FORMAT && has(qat_last_error(), "test/dog/broken.png: cannot decode"),
          "corrupt: %s", qat_last_error());
    unlink(tpath("pets", "test/dog/broken.png"));
    write_text(tpath("pets", "test/dog/empty.bmp"), "");
    s = qat_data_load_folder(&tr, &te, root, &o);
    CHECK(s == QAT_ERR_FORMAT && has(qat_last_error(), "test/dog/empty.bmp"), "empty: %s",
          qat_last_error());
    unlink(tpath("pets", "test/dog/empty.bmp"));

    /* classes: test must have train's, a train class needs an image */
    rename(tpath("pets", "test/zebra"), tpath("pets", "test/zzz"));
    s = qat_data_load_folder(&tr, &te, root, &o);
    CHECK(s == QAT_ERR_FORMAT && has(qat_last_error(), "no class folder 'zebra'"), "missing: %s",
          qat_last_error());
    mkdir(tpath("pets", "test/zebra"), 0700);
    s = qat_data_load_folder(&tr, &te, root, &o);
    CHECK(s == QAT_ERR_FORMAT && has(qat_last_error(), "'zzz' is not in train/"), "extra: %s",
          qat_last_error());
    rmdir(tpath("pets", "test/zebra"));
    rename(tpath("pets", "test/zzz"), tpath("pets", "test/zebra"));
    mkdir(tpath("pets", "train/empty"), 0700);
    mkdir(tpath("pets", "test/empty"), 0700);
    s = qat_data_load_folder(&tr, &te, root, &o);
    CHECK(s == QAT_ERR_FORMAT && has(qat_last_error(), "train/empty: no .png"), "empty class: %s",
          qat_last_error());
    rmdir(tpath("pets", "train/empty"));
    rmdir(tpath("pets", "test/empty"));
    s = qat_data_load_folder(&tr, &te, tpath("nowhere", NULL), &o);
    CHECK(s == QAT_ERR_IO && has(qat_last_error(), "nowhere/train"), "no folder: %s",
          qat_last_error());
    qat_data_opts bad = {.c = 2};
    s = qat_data_load_folder(&tr, &te, root, &bad);
    CHECK(s == QAT_ERR_ARG, "2 channels: %s", qat_last_error());

    char out[600];
    CHECK(qat_data_locate("folder", root, out, sizeof out) == QAT_OK && !strcmp(out, root),
          "locate: %s", qat_last_error());
    CHECK(qat_data_locate("folder", tpath("pets", "train"), out, sizeof out) == QAT_ERR_IO &&
              has(qat_last_error(), "no train/ folder"),
          "locate wrong: %s", qat_last_error());
}

/* ---- augmentation -------------------------------------------------------------------------- */

enum { AN = 7, AC = 3, AH = 5, AW = 6 };

static uint8_t apix(int i, int c, int y, int x) { return (uint8_t)(1 + i * 37 + c * 50 + y * 11 + x * 3); }

static void make_aug_set(qat_dataset *d, uint8_t *images, uint8_t *labels)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "aug");
    d->n = AN;
    d->c = AC;
    d->h = AH;
    d->w = AW;
    d->nclass = AN;
    for (int i = 0; i < AN; i++) {
        labels[i] = (uint8_t)i; /* the label names the image */
        for (int c = 0; c < AC; c++)
            for (int y = 0; y < AH; y++)
                for (int x = 0; x < AW; x++)
                    images[((i * AC + c) * AH + y) * AW + x] = apix(i, c, y, x);
    }
    d->images = images;
    d->labels = labels;
}

/* What image i must become in epoch e, straight from the documented rule. */
static void reference(const qat_loader_cfg *cfg, int e, int i, float *out)
{
    int oy, ox, fl;
    qat_loader_augment_draw(cfg->seed, e, (uint32_t)i, cfg->crop_pad, cfg->flip, &oy, &ox, &fl);
    for (int c = 0; c < AC; c++)
        for (int y = 0; y < AH; y++)
            for (int x = 0; x < AW; x++) {
                int sy = y + oy - cfg->crop_pad, sx = (fl ? AW - 1 - x : x) + ox - cfg->crop_pad;
                uint8_t p = sy >= 0 && sy < AH && sx >= 0 && sx < AW ? apix(i, c, sy, sx) : 0;
                out[(c * AH + y) * AW + x] = qat_data_pixel(p, cfg->mean[c], cfg->std[c]);
            }
}

/* Runs epochs 0..2 and stores each image's output by (epoch, image). */
static int run(const qat_dataset *d, const qat_loader_cfg *cfg, float out[3][AN][AC * AH * AW])
{
    qat_loader *l;
    if (qat_loader_init(&l, d, cfg) != QAT_OK) {
        CHECK(0, "loader: %s", qat_last_error());
        return 0;
    }
    float x[AN * AC * AH * AW];
    int32_t y[AN];
    int per = AC * AH * AW, seen = 0;
    for (int e = 0; e < 3; e++) {
        qat_loader_begin(l, e);
        int k;
        while ((k = qat_loader_next(l, x, y)) > 0)
            for (int i = 0; i < k; i++, seen++)
                memcpy(out[e][y[i]], x + i * per, sizeof(float) * (size_t)per);
    }
    qat_loader_free(l);
    return seen == 3 * AN;
}

static void test_augment(void)
{
    uint8_t images[AN * AC * AH * AW], labels[AN];
    qat_dataset d;
    make_aug_set(&d, images, labels);
    qat_loader_cfg cfg = {.batch = 3, .shuffle = 1, .seed = 12345, .crop_pad = 2, .flip = 1,
                          .mean = {0.4914f, 0.4822f, 0.4465f}, .std = {0.2023f, 0.1994f, 0.2010f}};
    static float a[3][AN][AC * AH * AW], b[3][AN][AC * AH * AW], want[AC * AH * AW];
    CHECK(run(&d, &cfg, a), "foreground epochs");

    /* every pixel as the rule says; a padded pixel is exactly -mean/std */
    int bad = 0, padded = 0, flips = 0, shifted = 0;
    for (int e = 0; e < 3; e++)
        for (int i = 0; i < AN; i++) {
            reference(&cfg, e, i, want);
            bad += memcmp(want, a[e][i], sizeof want) != 0;
            int oy, ox, fl;
            qat_loader_augment_draw(cfg.seed, e, (uint32_t)i, 2, 1, &oy, &ox, &fl);
            flips += fl;
            shifted += oy != 2 || ox != 2;
            if (oy < 2) /* the top rows come from the padding */
                for (int c = 0; c < AC; c++) {
                    float pad = a[e][i][(c * AH + 0) * AW + 3];
                    padded++;
                    CHECK(pad == -cfg.mean[c] / cfg.std[c], "padded %g, expected %g", (double)pad,
                          (double)(-cfg.mean[c] / cfg.std[c]));
                }
        }
    CHECK(bad == 0, "%d images differ from the reference crop and flip", bad);
    CHECK(padded > 0 && flips > 0 && flips < 3 * AN && shifted > 0,
          "the draws vary: %d padded, %d flips, %d shifted", padded, flips, shifted);

    /* the stream's values: in range, every offset reached, flips about half */
    int hist[5] = {0}, nflip = 0;
    for (uint32_t i = 0; i < 4000; i++) {
        int oy, ox, fl;
        qat_loader_augment_draw(7, 3, i, 2, 1, &oy, &ox, &fl);
        CHECK(oy >= 0 && oy <= 4 && ox >= 0 && ox <= 4 && (fl == 0 || fl == 1), "draw %d %d %d", oy,
              ox, fl);
        hist[oy]++;
        nflip += fl;
    }
    for (int k = 0; k < 5; k++)
        CHECK(hist[k] > 650 && hist[k] < 950, "offset %d drawn %d times of 4000", k, hist[k]);
    CHECK(nflip > 1850 && nflip < 2150, "%d flips of 4000", nflip);
    int oy, ox, fl, oy2, ox2, fl2;
    qat_loader_augment_draw(7, 3, 5, 2, 0, &oy, &ox, &fl);
    qat_loader_augment_draw(7, 3, 5, 2, 1, &oy2, &ox2, &fl2);
    CHECK(fl == 0 && oy == oy2 && ox == ox2, "flip = 0 leaves the crop's draws alone");
    qat_loader_augment_draw(7, 3, 5, 0, 1, &oy, &ox, &fl);
    CHECK(oy == 0 && ox == 0, "crop_pad 0: no shift");

    /* the same images whatever the batch size, shuffle or background thread */
    qat_loader_cfg c2 = cfg;
    c2.batch = 1;
    c2.background = 1;
    CHECK(run(&d, &c2, b) && !memcmp(a, b, sizeof a), "batch 1 in the background differs");
    c2.batch = AN;
    c2.background = 0;
    c2.shuffle = 0;
    CHECK(run(&d, &c2, b) && !memcmp(a, b, sizeof a), "one batch in file order differs");
    c2.seed = 12346;
    CHECK(run(&d, &c2, b) && memcmp(a, b, sizeof a) != 0, "another seed gives the same crops");

    /* without augmentation: the plain normalised image */
    c2 = cfg;
    c2.crop_pad = 0;
    c2.flip = 0;
    CHECK(run(&d, &c2, b), "plain");
    bad = 0;
    for (int e = 0; e < 3; e++)
        for (int i = 0; i < AN; i++)
            for (int c = 0; c < AC; c++)
                for (int p = 0; p < AH * AW; p++)
                    bad += b[e][i][c * AH * AW + p] !=
                           qat_data_pixel(apix(i, c, p / AW, p % AW), cfg.mean[c], cfg.std[c]);
    CHECK(bad == 0, "no augmentation: %d values differ", bad);

    qat_loader *l;
    c2.crop_pad = QAT_LOADER_MAX_PAD + 1;
    CHECK(qat_loader_init(&l, &d, &c2) == QAT_ERR_ARG && !l, "crop_pad too large");
    c2.crop_pad = 0;
    c2.flip = 2;
    CHECK(qat_loader_init(&l, &d, &c2) == QAT_ERR_ARG && !l, "flip 2");
}

/* ---- [net] keys ------------------------------------------------------------------------------ */

static qat_status read_cfg(const char *net_keys, qat_net_cfg *net)
{
    char text[1024];
    snprintf(text, sizeof text, "[net]\n%s\n[flatten]\n[linear]\noutput = 10\n", net_keys);
    qat_cfg cfg;
    qat_layer *layers = NULL;
    int n;
    qat_status st = qat_cfg_parse_text(&cfg, "t.cfg", text, strlen(text));
    if (st == QAT_OK)
        st = qat_netcfg_read(&cfg, net, &layers, &n);
    free(layers);
    qat_cfg_free(&cfg);
    return st;
}

static void expect_cfg_error(const char *keys, const char *a, const char *b)
{
    qat_net_cfg net;
    qat_status st = read_cfg(keys, &net);
    const char *m = qat_last_error();
    CHECK(st == QAT_ERR_CONFIG && has(m, a) && (!b || has(m, b)), "'%s': %s, message: %s", keys,
          qat_status_name(st), m);
}

static void test_netcfg(void)
{
    qat_net_cfg n;
    CHECK(read_cfg("dataset = cifar10\ncrop_pad = 4\nflip = 1", &n) == QAT_OK && n.c == 3 &&
              n.h == 32 && n.w == 32 && n.nclass == 10 && n.crop_pad == 4 && n.flip == 1 &&
              n.mean[0] == 0.4914f && n.mean[2] == 0.4465f && n.std[1] == 0.1994f &&
              !n.data.coarse,
          "cifar10: %s", qat_last_error());
    CHECK(read_cfg("dataset = cifar10\nmean = 0.5, 0.4,0.3\nstd = 0.25", &n) == QAT_OK &&
              n.mean[0] == 0.5f && n.mean[1] == 0.4f && n.mean[2] == 0.3f && n.std[0] == 0.25f &&
              n.std[2] == 0.25f && n.crop_pad == 0 && n.flip == 0,
          "mean list: %s", qat_last_error());
    CHECK(read_cfg("dataset = cifar100\nlabels = coarse", &n) == QAT_OK && n.nclass == 20 &&
              n.data.coarse == 1 && n.mean[0] == 0.5071f,
          "cifar100 coarse: %s", qat_last_error());
    CHECK(read_cfg("dataset = cifar100\nlabels = fine", &n) == QAT_OK && n.nclass == 100,
          "cifar100 fine: %s", qat_last_error());
    CHECK(read_cfg("dataset = mnist\nmean = 0.2\nstd = 0.3", &n) == QAT_OK && n.c == 1 &&
              n.mean[0] == 0.2f && n.std[0] == 0.3f,
          "mnist: %s", qat_last_error());
    CHECK(read_cfg("dataset = folder\nimage_size = 24\nchannels = 1\nresize = 1", &n) == QAT_OK &&
              n.c == 1 && n.h == 24 && n.w == 24 && n.nclass == 0 && n.data.resize == 1 &&
              n.data.c == 1 && n.mean[0] == 0.5f && n.std[0] == 0.5f,
          "folder: %s", qat_last_error());
    CHECK(read_cfg("dataset = folder\nwidth = 10\nheight = 12", &n) == QAT_OK && n.c == 3 &&
              n.h == 12 && n.w == 10 && n.data.resize == 0,
          "folder w/h: %s", qat_last_error());
    CHECK(read_cfg("dataset = folder", &n) == QAT_OK && n.h == 32 && n.w == 32 && n.c == 3,
          "folder defaults: %s", qat_last_error());
    expect_cfg_error("dataset = cifar10\nlabels = coarse", "t.cfg:3:", "only cifar100");
    expect_cfg_error("dataset = cifar100\nlabels = medium", "t.cfg:3:", "fine, coarse");
    expect_cfg_error("dataset = mnist\nimage_size = 32", "t.cfg:3:", "folder only");
    expect_cfg_error("dataset = cifar10\nresize = 1", "t.cfg:3:", "folder only");
    expect_cfg_error("dataset = folder\nchannels = 2", "t.cfg:3:", "1 (grey) or 3");
    expect_cfg_error("dataset = cifar10\nmean = 0.5, 0.5", "t.cfg:3:", "expected 1");
    expect_cfg_error("dataset = mnist\nstd = 0.3, 0.3, 0.3", "t.cfg:3:", "expected 1");
    expect_cfg_error("dataset = cifar10\nmean = 0.5,,0.5", "t.cfg:3:", "item 2");
    expect_cfg_error("dataset = cifar10\nstd = 0.5, x, 0.5", "t.cfg:3:", "item 2: expected a number");
    expect_cfg_error("dataset = cifar10\nstd = 0.5, 0, 0.5", "t.cfg:3:", "out of range");
    expect_cfg_error("dataset = cifar10\ncrop_pad = 65", "t.cfg:3:", "crop_pad");
    expect_cfg_error("dataset = cifar10\nflip = maybe", "t.cfg:3:", "flip");
    expect_cfg_error("dataset = cifar-10", "t.cfg:2:", "cifar10");
}

/* ---- a short training run: augmentation in training, none in evaluation --------------------- */

/* Loss and accuracy of m over ds fed by hand: normalised, never augmented. */
static float plain_eval(qat_model *m, const qat_dataset *ds, const float *mean, const float *std,
                        float *acc)
{
    size_t plane = (size_t)ds->h * ds->w, per = (size_t)ds->c * plane;
    double sl = 0;
    int correct = 0;
    for (int at = 0; at < ds->n; at += m->batch) {
        int n = ds->n - at < m->batch ? ds->n - at : m->batch;
        qat_data_normalize(ds->images + (size_t)at * per, (size_t)n, ds->c, plane, mean, std, 0,
                           m->input->x);
        for (int i = 0; i < n; i++)
            m->labels[i] = ds->labels[at + i];
        qat_graph_set_batch(&m->g, n);
        qat_graph_set_training(&m->g, 0);
        qat_graph_forward(&m->g);
        sl += (double)m->loss->x[0] * n;
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int k = 1; k < m->nclass; k++)
                if (m->logits->x[i * m->nclass + k] > m->logits->x[i * m->nclass + best]) best = k;
            correct += best == m->labels[i];
        }
    }
    *acc = (float)correct / (float)ds->n;
    return (float)(sl / ds->n);
}

static void test_train_folder(void)
{
    char root[1024], cfgp[1024], out[1024];
    snprintf(root, sizeof root, "%s", tpath("shapes", NULL));
    const char *dirs[] = {"", "train", "test", "train/a", "train/b", "test/a", "test/b"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        mkdir(tpath("shapes", dirs[i]), 0700);
    char rel[64];
    for (int i = 0; i < 12; i++) {
        snprintf(rel, sizeof rel, "%s/%c/%02d.png", i < 8 ? "train" : "test", 'a' + i % 2, i);
        write_img(tpath("shapes", rel), i * 5 + (i % 2) * 100, 8, 8, 3, 'p');
    }
    snprintf(cfgp, sizeof cfgp, "%s", tpath("shapes.cfg", NULL));
    snprintf(out, sizeof out, "%s", tpath("run", NULL));
    write_text(cfgp, "[net]\ndataset = folder\nimage_size = 8\nbatch = 3\nepochs = 1\nlr = 0.01\n"
                     "crop_pad = 2\nflip = 1\nmean = 0.5, 0.4, 0.3\nstd = 0.2\n"
                     "[conv2d]\nfilters = 4\nsize = 3\npad = 1\n[batchnorm]\n[relu]\n"
                     "[global_avgpool]\n[linear]\noutput = 2\n");
    qat_train_opts o = {.cfg_path = cfgp, .data_dir = root, .out_dir = out,
                        .seed = -1, .threads = 1};
    qat_train_result r;
    qat_status st = qat_train(&o, &r);
    CHECK(st == QAT_OK && !strcmp(r.dataset, "folder"), "train: %s", qat_last_error());
    if (st != QAT_OK)
        return;
    /* the trainer's test loss and accuracy are those of the last checkpoint
     * on the plain normalised test images: its evaluation was not augmented */
    qat_model m;
    qat_cfg cfg;
    qat_net_cfg net;
    st = qat_checkpoint_open_model(tpath("run", "last.ckpt"), 3, 1, &m, &cfg, &net);
    CHECK(st == QAT_OK && net.crop_pad == 2 && net.flip == 1 && net.mean[1] == 0.4f,
          "reopen: %s", qat_last_error());
    if (st != QAT_OK)
        return;
    /* the folder's class names travel in the checkpoint (qat infer prints them) */
    CHECK(m.class_names && !strcmp(m.class_names[0], "a") && !strcmp(m.class_names[1], "b"),
          "class names in the checkpoint: %s, %s", m.class_names ? m.class_names[0] : "(none)",
          m.class_names ? m.class_names[1] : "(none)");
    qat_dataset tr, te;
    st = qat_data_load_opts(&tr, &te, "folder", root, &net.data);
    float loss, acc, test_loss = -1;
    CHECK(st == QAT_OK && qat_evaluate(&m, &te, net.mean, net.std, net.pixel_grid, &loss, &acc) == QAT_OK &&
              acc == r.test_acc,
          "evaluation %g, the trainer said %g: %s", (double)acc, (double)r.test_acc,
          qat_last_error());
    if (st == QAT_OK) {
        float macc, mloss = plain_eval(&m, &te, net.mean, net.std, &macc);
        FILE *f = fopen(tpath("run", "metrics.jsonl"), "r");
        char line[4096] = "";
        if (f && fgets(line, sizeof line, f)) {
            const char *t = strstr(line, "\"test_loss\": ");
            if (t) test_loss = strtof(t + 13, NULL);
        }
        if (f) fclose(f);
        CHECK(macc == r.test_acc && mloss - test_loss < 2e-6f && test_loss - mloss < 2e-6f,
              "plain images: loss %.6f acc %g; the trainer: loss %.6f acc %g", (double)mloss,
              (double)macc, (double)test_loss, (double)r.test_acc);
    }
    /* a set whose classes do not match the model is refused */
    qat_dataset one = te;
    one.nclass = 3;
    CHECK(qat_evaluate(&m, &one, net.mean, net.std, net.pixel_grid, &loss, &acc) == QAT_ERR_SHAPE,
          "3 classes for 2 logits");
    qat_dataset_free(&tr);
    qat_dataset_free(&te);
    qat_model_free(&m);
    qat_cfg_free(&cfg);

    /* 3 logits for 2 classes: refused before training */
    write_text(cfgp, "[net]\ndataset = folder\nimage_size = 8\nbatch = 3\nepochs = 1\n"
                     "[flatten]\n[linear]\noutput = 3\n");
    st = qat_train(&o, &r);
    CHECK(st == QAT_ERR_SHAPE && has(qat_last_error(), "output = 2"), "class count: %s",
          qat_last_error());
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(tmp, sizeof tmp, "/tmp/qat_images_XXXXXX");
    if (!mkdtemp(tmp)) {
        printf("FAIL: mkdtemp\n");
        return 1;
    }
    test_folder();
    test_augment();
    test_netcfg();
    test_train_folder();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        printf("note: could not remove %s\n", tmp);
    if (failures) {
        printf("test_images: %d failures\n", failures);
        return 1;
    }
    printf("test_images: all passed\n");
    return 0;
}
