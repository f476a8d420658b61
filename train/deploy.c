/* deploy.c: `qat export` (checkpoint -> .qnn or C source) and `qat infer`
 * (a .qnn on image files or on a dataset's test split). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO_WARNINGS
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNM
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "checkpoint.h"
#include "cli.h"
#include "dataset.h"
#include "export.h"
#include "netcfg.h"
#include "qatrt.h"
#include "report.h"

enum { EX_OUT, EX_FORMAT, EX_FLOAT_LAYERS, EX_DATA, EX_CALIB, EX_PREFIX, EX_VERIFY, EX_THREADS, EX_QNN_VERSION, EX_COUNT };
static const qat_cli_opt export_opts[] = {
    [EX_OUT] = {"--out", "-o", QAT_CLI_STR, "OUT", .shown = "none, required",
                .help = "the .qnn file (--format qnn), or the folder that receives\nmodel.h and model.c (--format c)"},
    [EX_FORMAT] = {"--format", NULL, QAT_CLI_STR, "qnn|c", .sdef = "qnn", .help = "what to write"},
    [EX_FLOAT_LAYERS] = {"--float-layers", NULL, QAT_CLI_STR, "int8|int16", .shown = "none: float32 in integers where it can, else refused",
                         .help = "quantize the layers the config leaves in float, after\ntraining (the model is then "
                                 "approximate)"},
    [EX_DATA] = {"--data", NULL, QAT_CLI_STR, "DIR", .shown = "$QAT_DATA/<usual folder>, then ./data/<usual folder>",
                 .help = "the dataset (for --verify and --float-layers)"},
    [EX_CALIB] = {"--calib", NULL, QAT_CLI_INT, "N", 1, 1 << 20, .idef = 2048,
                  .help = "training images that set --float-layers' input ranges"},
    [EX_PREFIX] = {"--prefix", NULL, QAT_CLI_STR, "NAME", .sdef = "qat_model", .help = "--format c: the C names' prefix"},
    [EX_VERIFY] = {"--verify", NULL, QAT_CLI_FLAG,
                   .help = "run the float model and the .qnn on the test split (needs the data)\n"
                           "and report the predictions that differ (kept in OUT.verify.json\n"
                           "for qat report --model)"},
    [EX_THREADS] = {"--threads", NULL, QAT_CLI_INT, "N", 1, 64, .shown = "all CPUs", .help = "threads"},
    [EX_QNN_VERSION] = {"--qnn-version", NULL, QAT_CLI_INT, "V", 3, QATRT_VERSION, .idef = QATRT_VERSION,
                        .help = "--format qnn: the file version; 3 for runtimes built before\nversion 4 (docs/format.md)"},
};
_Static_assert(sizeof export_opts / sizeof export_opts[0] == EX_COUNT, "one entry per option");

enum { IN_TOP, IN_DATA, IN_DATASET, IN_BATCH, IN_THREADS, IN_JSON, IN_LOGITS, IN_COUNT };
static const qat_cli_opt infer_opts[] = {
    [IN_TOP] = {"--top", NULL, QAT_CLI_INT, "K", 1, 1000, .idef = 3, .help = "classes printed per image"},
    [IN_DATA] = {"--data", NULL, QAT_CLI_STR, "DIR", .help = "a dataset's folder: accuracy on its test split"},
    [IN_DATASET] = {"--dataset", NULL, QAT_CLI_STR, "NAME", .shown = "cifar10 for 3x32x32 models, else mnist",
                    .help = "--data: which dataset's files it holds"},
    [IN_BATCH] = {"--batch", NULL, QAT_CLI_INT, "B", 1, 65536, .idef = 128, .help = "--data: images per run"},
    [IN_THREADS] = {"--threads", NULL, QAT_CLI_INT, "T", 1, 64, .shown = "all CPUs", .help = "--data: threads"},
    [IN_JSON] = {"--json", NULL, QAT_CLI_FLAG, .help = "--data: one JSON object instead of a sentence"},
    [IN_LOGITS] = {"--logits", NULL, QAT_CLI_STR, "FILE", .help = "--data: write each test image's int32 logits, a line each"},
};
_Static_assert(sizeof infer_opts / sizeof infer_opts[0] == IN_COUNT, "one entry per option");

/* a .qnn larger than this is refused before it is read (a device such as
 * /dev/zero would otherwise be read until memory runs out) */
#define QNN_MAX_FILE ((size_t)1 << 30)

/* reads a whole regular file of at most QNN_MAX_FILE bytes into 64-byte
 * aligned memory */
static qat_status read_file(const char *path, uint8_t **out, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return qat_error_set(QAT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return qat_error_set(QAT_ERR_IO, "%s: not a regular file, expected a .qnn model", path);
    }
    if ((uint64_t)sb.st_size > QNN_MAX_FILE) {
        fclose(f);
        return qat_error_set(QAT_ERR_IO, "%s: %lld bytes, more than a .qnn model may have (%zu)", path,
                             (long long)sb.st_size, QNN_MAX_FILE);
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 1 << 16;
            uint8_t *b = aligned_alloc(64, nc);
            if (!b) {
                free(buf);
                fclose(f);
                return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory", path);
            }
            if (n) memcpy(b, buf, n);
            free(buf);
            buf = b;
            cap = nc;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
        if (n > QNN_MAX_FILE) { /* it grew while being read */
            free(buf);
            fclose(f);
            return qat_error_set(QAT_ERR_IO, "%s: more than %zu bytes, expected a .qnn model", path, QNN_MAX_FILE);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return qat_error_set(QAT_ERR_IO, "%s: read error", path);
    }
    *out = buf;
    *size = n;
    return QAT_OK;
}

static int argmax_f(const float *z, int k)
{
    int b = 0;
    for (int i = 1; i < k; i++)
        if (z[i] > z[b]) b = i;
    return b;
}

static int argmax_i(const int32_t *z, int k)
{
    int b = 0;
    for (int i = 1; i < k; i++)
        if (z[i] > z[b]) b = i;
    return b;
}

/* the float model's and the runtime's predictions on the test split */
static int verify(qat_model *m, const qat_net_cfg *net, const qat_dataset *test, const qat_export_result *r,
                  int threads, const char *ckpt, const char *out)
{
    const uint8_t *qnn = r->bytes;
    size_t size = r->size;
    int exact = r->exact;
    qatrt_model rm;
    qatrt_error err;
    if (qatrt_load(&rm, qnn, size, &err) != QATRT_OK) {
        fprintf(stderr, "%s: error: the exported model does not load: %s\n", qat_cli_prog, err.msg);
        return 1;
    }
    int n = test->n, K = m->nclass;
    float *fl = malloc(sizeof(float) * (size_t)n * K);
    int32_t *il = malloc(sizeof(int32_t) * (size_t)n * K);
    int rc = 0;
    if (!fl || !il || qat_export_float_logits(m, test->images, n, net->mean, net->std, net->pixel_grid, fl) != QAT_OK ||
        qat_qnn_run(&rm, test->images, n, 256, threads, il) != QAT_OK) {
        rc = qat_cli_fail();
    } else {
        int differ = 0, near = 0, differ_far = 0, fcorrect = 0, icorrect = 0;
        for (int i = 0; i < n; i++) {
            const float *z = fl + (size_t)i * K;
            int a = argmax_f(z, K), b = argmax_i(il + (size_t)i * K, K);
            float best = z[a], second = -INFINITY;
            for (int k = 0; k < K; k++)
                if (k != a && z[k] > second) second = z[k];
            int tie = best - second <= 1e-5f;
            near += tie;
            if (a != b) {
                differ++;
                differ_far += !tie;
            }
            fcorrect += a == test->labels[i];
            icorrect += b == test->labels[i];
        }
        printf("verify on %d test images: float model accuracy %.4f, integer model %.4f; %s %d of %d predictions differ "
               "(%d where the float model's two best logits are within 1e-5, %d near-ties in all)\n",
               n, (double)fcorrect / n, (double)icorrect / n, exact ? "parity:" : "agreement:", differ, n,
               differ - differ_far, near);
        if (exact && differ_far) rc = 1;
        /* kept beside the model for qat report --model */
        qat_verify_record vr = {.checkpoint = ckpt, .bytes = r->size, .weight_bytes = r->weight_bytes,
                                .float_bytes = r->float_bytes, .exact = exact, .n = n, .differ = differ,
                                .differ_ties = differ - differ_far, .float_acc = (double)fcorrect / n,
                                .int_acc = (double)icorrect / n};
        if (out && qat_report_write_verify(out, &vr) != QAT_OK) rc = qat_cli_fail();
    }
    free(fl);
    free(il);
    return rc;
}

static int run_export(const qat_cli_command *c, qat_cli_val *v, int npos, char **pos)
{
    (void)npos;
    const char *ckpt = pos[0], *out = v[EX_OUT].s, *data = v[EX_DATA].s, *format = v[EX_FORMAT].s;
    const char *prefix = v[EX_PREFIX].s, *fl = v[EX_FLOAT_LAYERS].s;
    int threads = v[EX_THREADS].given ? (int)v[EX_THREADS].i : qat_cli_default_threads(), calib = (int)v[EX_CALIB].i;
    int do_verify = v[EX_VERIFY].given;
    if (!out) return qat_cli_usage_error(c, "missing -o OUT");
    if (strcmp(format, "qnn") && strcmp(format, "c"))
        return qat_cli_usage_error(c, "--format is qnn or c, not '%s'", format);
    int float_bits = 0;
    if (fl && !strcmp(fl, "int8")) float_bits = 8;
    else if (fl && !strcmp(fl, "int16")) float_bits = 16;
    else if (fl) return qat_cli_usage_error(c, "--float-layers is int8 or int16, not '%s'", fl);
    for (const char *p = prefix; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9' && p != prefix) || *p == '_'))
            return qat_cli_usage_error(c, "--prefix must be a C identifier, not '%s'", prefix);

    qat_model m;
    qat_cfg cfg;
    qat_net_cfg net;
    if (qat_checkpoint_open_model(ckpt, 256, threads, &m, &cfg, &net) != QAT_OK) return qat_cli_fail();
    qat_dataset train = {0}, test = {0};
    int rc = 0;
    float *cx = NULL;
    qat_export_result r = {0};
    qat_export_opts o = {.float_bits = float_bits, .mean = net.mean, .std = net.std, .pixel_grid = net.pixel_grid,
                         .qnn_version = (int)v[EX_QNN_VERSION].i};
    if (float_bits || do_verify) {
        char dir[512];
        if (qat_data_locate(net.dataset, data, dir, sizeof dir) != QAT_OK ||
            qat_data_load_opts(&train, &test, net.dataset, dir, &net.data) != QAT_OK) {
            rc = qat_cli_fail();
            goto done;
        }
    }
    if (float_bits) {
        int n = calib < train.n ? calib : train.n;
        size_t isz = (size_t)m.c * m.h * m.w;
        cx = malloc(sizeof(float) * isz * (size_t)n);
        if (!cx) {
            fprintf(stderr, "%s: error: out of memory\n", qat_cli_prog);
            rc = 1;
            goto done;
        }
        qat_data_normalize(train.images, (size_t)n, m.c, (size_t)m.h * m.w, net.mean, net.std, net.pixel_grid, cx);
        o.calib_x = cx;
        o.calib_n = n;
    }
    if (qat_export(&m, &o, &r) != QAT_OK) {
        rc = qat_cli_fail();
        goto done;
    }
    /* SIGINT/SIGTERM/SIGHUP wait until the write is whole (temporary file,
     * fsync, rename) and act after it: a stop never leaves m.qnn.tmp.* */
    sigset_t stops, old;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGHUP);
    sigprocmask(SIG_BLOCK, &stops, &old);
    if (!strcmp(format, "qnn")) {
        qat_status wst = qat_export_write_file(out, r.bytes, r.size);
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (wst != QAT_OK) {
            rc = qat_cli_fail();
            goto done;
        }
    } else {
        if (mkdir(out, 0777) != 0 && errno != EEXIST) {
            sigprocmask(SIG_SETMASK, &old, NULL);
            fprintf(stderr, "%s: error: %s: cannot create the folder: %s\n", qat_cli_prog, out, strerror(errno));
            rc = 1;
            goto done;
        }
        qat_status wst = qat_export_csource(r.bytes, r.size, out, prefix);
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (wst != QAT_OK) {
            rc = qat_cli_fail();
            goto done;
        }
    }
    size_t fixed = QATRT_HEADER_SIZE + 4; /* header and checksum */
    printf("%s: %s (%zu bytes: payload %zu, overhead %.1f%% beyond the %zu-byte header and checksum; "
           "%.1fx smaller than the float32 weights)\n",
           ckpt, out, r.size, r.payload, 100.0 * ((double)r.size - (double)fixed - (double)r.payload) / (double)r.payload,
           fixed, (double)r.float_bytes / (double)r.size);
    printf("weights: %zu bytes (%.1f KB)", r.weight_bytes, (double)r.weight_bytes / 1000.0);
    if (r.emptied) printf("; %d emptied channel%s (every weight 0) dropped from the graph", r.emptied, r.emptied == 1 ? "" : "s");
    printf("\n");
    fputs(r.kernels, stdout);
    if (r.exact)
        printf("exact: every layer comes from its trained codebook; predictions match the float model's\n");
    else
        printf("approximate (quantized after training, or float arithmetic done in integers): %s\n", r.approx);
    if (do_verify) rc = verify(&m, &net, &test, &r, threads, ckpt, strcmp(format, "qnn") ? NULL : out);
done:
    free(cx);
    qat_export_free(&r);
    qat_dataset_free(&train);
    qat_dataset_free(&test);
    qat_model_free(&m);
    qat_cfg_free(&cfg);
    return rc;
}

/* An image file as the model's C x H x W uint8 planes (stb gives HWC); 1
 * with the message printed when it cannot be read or has another shape. */
static int read_image_chw(const char *path, int c, int h, int w, uint8_t *out)
{
    int iw, ih, ich;
    unsigned char *px = stbi_load(path, &iw, &ih, &ich, 0);
    if (!px) {
        fprintf(stderr, "%s: error: %s: cannot read the image: %s\n", qat_cli_prog, path, stbi_failure_reason());
        return 1;
    }
    if (iw != w || ih != h || ich != c) {
        fprintf(stderr, "%s: error: %s: the image is %dx%d with %d channel%s; the model takes %dx%d with %d channel%s\n",
                qat_cli_prog, path, iw, ih, ich, ich == 1 ? "" : "s", w, h, c, c == 1 ? "" : "s");
        stbi_image_free(px);
        return 1;
    }
    size_t hw = (size_t)w * h;
    for (int k = 0; k < c; k++)
        for (size_t q = 0; q < hw; q++) out[(size_t)k * hw + q] = px[q * (size_t)c + (size_t)k];
    stbi_image_free(px);
    return 0;
}

static int infer_images(const qatrt_model *rm, char **paths, int n, int top)
{
    size_t isz = (size_t)rm->c * rm->h * rm->w;
    uint8_t *img = malloc(isz);
    int32_t *z = malloc(sizeof(int32_t) * (size_t)rm->nclass);
    int rc = 0;
    if (!img || !z) {
        free(img);
        free(z);
        fprintf(stderr, "%s: error: out of memory\n", qat_cli_prog);
        return 1;
    }
    for (int i = 0; i < n && !rc; i++) {
        if ((rc = read_image_chw(paths[i], rm->c, rm->h, rm->w, img))) break;
        if (qat_qnn_run(rm, img, 1, 1, 1, z) != QAT_OK) {
            rc = qat_cli_fail();
            break;
        }
        printf("%s:", paths[i]);
        int shown[64] = {0};
        for (int t = 0; t < top && t < rm->nclass && t < 64; t++) {
            int b = -1;
            for (int k = 0; k < rm->nclass; k++)
                if ((k >= 64 || !shown[k]) && (b < 0 || z[k] > z[b])) b = k;
            if (b < 64) shown[b] = 1;
            printf(" %d (%ld)", b, (long)z[b]);
        }
        printf("\n");
    }
    free(img);
    free(z);
    return rc;
}

/* 1 when the file at path starts with a checkpoint's magic */
static int is_checkpoint(const char *path)
{
    char magic[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return got == sizeof magic && memcmp(magic, "QATCKPT", 8) == 0;
}

/* the trained model of a checkpoint on image files: top classes by name */
static int infer_checkpoint(const char *path, char **paths, int n, int top)
{
    qat_model m;
    qat_cfg cfg;
    qat_net_cfg net;
    if (qat_checkpoint_open_model(path, 1, 1, &m, &cfg, &net) != QAT_OK) return qat_cli_fail();
    size_t hw = (size_t)m.h * m.w;
    uint8_t *img = malloc((size_t)m.c * hw);
    float *x = malloc(sizeof(float) * (size_t)m.c * hw), *p = malloc(sizeof(float) * (size_t)m.nclass);
    int rc = 0;
    if (!img || !x || !p) {
        fprintf(stderr, "%s: error: out of memory\n", qat_cli_prog);
        rc = 1;
    }
    for (int i = 0; i < n && !rc; i++) {
        if ((rc = read_image_chw(paths[i], m.c, m.h, m.w, img))) break;
        qat_data_normalize(img, 1, m.c, hw, net.mean, net.std, net.pixel_grid, x);
        qat_model_forward(&m, x, NULL, 1, 0);
        /* softmax in double, from the largest logit */
        const float *z = m.logits->x;
        double zmax = z[0], sum = 0;
        for (int k = 1; k < m.nclass; k++) zmax = z[k] > zmax ? z[k] : zmax;
        for (int k = 0; k < m.nclass; k++) sum += exp((double)z[k] - zmax);
        for (int k = 0; k < m.nclass; k++) p[k] = (float)(exp((double)z[k] - zmax) / sum);
        printf("%s:", paths[i]);
        for (int t = 0; t < top && t < m.nclass; t++) {
            int b = 0; /* the t-th largest: ties to the smaller index */
            for (int k = 1; k < m.nclass; k++)
                if (p[k] > p[b] || (p[b] < 0 && p[k] >= 0)) b = k;
            if (m.class_names) printf(" %s (%.3f)", m.class_names[b], (double)p[b]);
            else printf(" %d (%.3f)", b, (double)p[b]);
            p[b] = -1; /* shown */
        }
        printf("\n");
    }
    free(img);
    free(x);
    free(p);
    qat_model_free(&m);
    qat_cfg_free(&cfg);
    return rc;
}

/* n lines of k logits, written atomically */
static int write_logits(const char *path, const int32_t *z, int n, int k)
{
    size_t cap = (size_t)n * (size_t)k * 12 + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fprintf(stderr, "%s: error: out of memory\n", qat_cli_prog);
        return 1;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++)
            len += (size_t)snprintf(buf + len, cap - len, "%ld%c", (long)z[(size_t)i * k + j], j + 1 < k ? ' ' : '\n');
    int rc = qat_export_write_file(path, (const uint8_t *)buf, len) != QAT_OK ? qat_cli_fail() : 0;
    free(buf);
    return rc;
}

static int run_infer(const qat_cli_command *c, qat_cli_val *v, int npos, char **pos)
{
    const char *model = pos[0], *data = v[IN_DATA].s;
    int threads = v[IN_THREADS].given ? (int)v[IN_THREADS].i : qat_cli_default_threads();
    int batch = (int)v[IN_BATCH].i, json = v[IN_JSON].given, top = (int)v[IN_TOP].i, nimg = npos - 1;
    char **imgs = pos + 1;
    int rc = 0;
    if (!rc && is_checkpoint(model)) {
        if (data) rc = qat_cli_usage_error(c, "a checkpoint runs on IMAGE files (its test accuracy: qat eval CKPT)");
        else if (nimg == 0) rc = qat_cli_usage_error(c, "give IMAGE files");
        else rc = infer_checkpoint(model, imgs, nimg, top);
        return rc;
    }
    if (!rc && !data && nimg == 0) rc = qat_cli_usage_error(c, "give IMAGE files or --data DIR");
    if (!rc && data && nimg) rc = qat_cli_usage_error(c, "give IMAGE files or --data DIR, not both");
    uint8_t *bytes = NULL;
    size_t size = 0;
    qatrt_model rm;
    qatrt_error err;
    if (!rc && read_file(model, &bytes, &size) != QAT_OK) rc = qat_cli_fail();
    if (!rc && qatrt_load(&rm, bytes, size, &err) != QATRT_OK) {
        fprintf(stderr, "%s: error: %s: %s\n", qat_cli_prog, model, err.msg);
        rc = 1;
    }
    if (!rc && nimg) rc = infer_images(&rm, imgs, nimg, top);
    if (!rc && data) {
        qat_dataset train = {0}, test = {0};
        int32_t *z = NULL;
        const char *dsname = v[IN_DATASET].s ? v[IN_DATASET].s : rm.c == 3 && rm.h == 32 && rm.w == 32 ? "cifar10" : "mnist";
        if (qat_data_load(&train, &test, dsname, data) != QAT_OK) {
            rc = qat_cli_fail();
        } else if (test.c != rm.c || test.h != rm.h || test.w != rm.w) {
            fprintf(stderr, "%s: error: %s holds %dx%dx%d images; the model takes %dx%dx%d\n", qat_cli_prog, data, test.c,
                    test.h, test.w, rm.c, rm.h, rm.w);
            rc = 1;
        } else if (!(z = malloc(sizeof(int32_t) * (size_t)test.n * rm.nclass))) {
            rc = 1;
        } else {
            /* a warm-up pass, then the timed one */
            int warm = test.n < 512 ? test.n : 512;
            double t0 = 0, t1 = 0;
            if (qat_qnn_run(&rm, test.images, warm, batch, threads, z) != QAT_OK ||
                (t0 = qat_time_now(), qat_qnn_run(&rm, test.images, test.n, batch, threads, z) != QAT_OK)) {
                rc = qat_cli_fail();
            } else {
                t1 = qat_time_now();
                if (v[IN_LOGITS].s) rc = write_logits(v[IN_LOGITS].s, z, test.n, rm.nclass);
                int correct = 0;
                for (int i = 0; i < test.n; i++) correct += argmax_i(z + (size_t)i * rm.nclass, rm.nclass) == test.labels[i];
                double acc = (double)correct / test.n, ips = test.n / (t1 - t0);
                const char *isa = qatrt_isa_name(qatrt_isa_select(NULL));
                if (json)
                    printf("{\"model\": \"%s\", \"n\": %d, \"accuracy\": %.6f, \"images_per_s\": %.1f, \"batch\": %d, "
                           "\"threads\": %d, \"isa\": \"%s\"}\n",
                           model, test.n, acc, ips, batch, threads, isa);
                else
                    printf("%s: %d test images: accuracy %.4f, %.0f images/s (batch %d, %d thread%s, %s kernels)\n", model,
                           test.n, acc, ips, batch, threads, threads == 1 ? "" : "s", isa);
            }
        }
        free(z);
        qat_dataset_free(&train);
        qat_dataset_free(&test);
    }
    free(bytes);
    return rc;
}

const qat_cli_command qat_cli_export = {
    "export", "CKPT",
    "Lowers the trained model in CKPT to an integer-only graph: a .qnn file or C\n"
    "source (model.h, model.c). A layer the config leaves in float (float weights,\n"
    "or float activations) runs, where it reads the image or float activations, as\n"
    "float32 arithmetic done with integers: its exact sum, rounded once, so the\n"
    "floats agree to the last bits and --verify reports agreement (the predictions\n"
    "are expected to match). Other float layers are refused unless --float-layers\n"
    "quantizes them after training.\n",
    1, 1, export_opts, EX_COUNT, run_export};

const qat_cli_command qat_cli_infer = {
    "infer", "MODEL.qnn|RUN.ckpt [IMAGE...]",
    "Runs an exported model with the integer runtime: on image files (PNG, JPEG,\n"
    "PGM/PPM; size and channels must be the model's) printing the top classes, or\n"
    "on the test split of the dataset in --data printing accuracy and images/s.\n"
    "QATRT_ISA=scalar|avx2|avx512 forces a kernel set. Given a checkpoint, runs the\n"
    "trained model itself (evaluation mode) and prints the top classes by name\n"
    "with their softmax probabilities.\n",
    1, -1, infer_opts, IN_COUNT, run_infer};
