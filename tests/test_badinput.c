/* test_badinput.c: bad configs and checkpoints end in a clear error (file
 * and line, or the first mismatching tensor, or a checksum error), never a
 * crash or a partial result. IDX files are covered by test_data_bad. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "trainer.h"

#include "qat_test.h"


static const char lenet[] = "[net]\nbatch = 4\n"
                            "[conv2d]\nfilters = 20\nsize = 5\nbias = 0\n[batchnorm]\n[relu]\n[maxpool]\n"
                            "[conv2d]\nfilters = %d\nsize = 5\nbias = 0\n[batchnorm]\n[relu]\n[maxpool]\n"
                            "[linear]\noutput = 500\nbias = 0\n[batchnorm]\n[relu]\n[linear]\noutput = 10\n%s";

/* parse + read + build; returns the status, message in qat_last_error() */
static qat_status build(const char *text, qat_model *m, qat_cfg *cfg)
{
    qat_net_cfg net;
    qat_layer *layers;
    int n;
    memset(m, 0, sizeof *m);
    qat_status st = qat_cfg_parse_text(cfg, "t.cfg", text, strlen(text));
    if (st == QAT_OK) st = qat_netcfg_read(cfg, &net, &layers, &n);
    if (st == QAT_OK) st = qat_model_build(m, layers, n, net.c, net.h, net.w, net.batch, 1, net.seed);
    return st;
}

static void expect_cfg_error(const char *text, const char *needle1, const char *needle2)
{
    qat_model m;
    qat_cfg cfg;
    qat_status st = build(text, &m, &cfg);
    const char *msg = qat_last_error();
    CHECK(st != QAT_OK && strstr(msg, needle1) && (!needle2 || strstr(msg, needle2)),
          "expected an error with '%s' and '%s', got status %d: %s", needle1, needle2 ? needle2 : "", st, msg);
    if (st == QAT_OK) printf("  (config was accepted)\n");
    else printf("ok: %s\n", msg);
    qat_model_free(&m);
    qat_cfg_free(&cfg);
}

static void test_configs(void)
{
    expect_cfg_error("[net]\nbatch = 4\n[conv]\nfilters = 2\n", "t.cfg:3:", "unknown section [conv]");
    expect_cfg_error("[net]\nbatch = 4\n[conv2d]\nfilter = 2\nsize = 3\n", "t.cfg:3:", "filters");
    expect_cfg_error("[net]\nbatch = 4\n[conv2d]\nfilters = 2\nsize = 3\nstrid = 2\n[linear]\noutput = 3\n", "t.cfg:6:",
                     "did you mean 'stride'");
    expect_cfg_error("[net]\nlr = fast\n[linear]\noutput = 3\n", "t.cfg:2:", "lr");
    expect_cfg_error("[net]\nbatch = 0\n[linear]\noutput = 3\n", "t.cfg:2:", "batch");
    expect_cfg_error("[net]\noptimizer = adagrad\n[linear]\noutput = 3\n", "t.cfg:2:", "adam");
    expect_cfg_error("[net]\ndataset = imagenet\n[linear]\noutput = 3\n", "t.cfg:2:", "imagenet");
    expect_cfg_error("[linear]\noutput = 3\n[net]\n", "t.cfg:1:", "[net]");
    expect_cfg_error("[net]\nbatch = 4\n", "t.cfg:1:", "no layers");
    expect_cfg_error("[net]\nsync_bn = 2\n[linear]\noutput = 3\n", "t.cfg:2: [net] key 'sync_bn'", "expected a boolean");
    expect_cfg_error("[net]\nsync_bn = all\n[linear]\noutput = 3\n", "t.cfg:2:", "got 'all'");
    expect_cfg_error("[net]\nsyncbn = 1\n[linear]\noutput = 3\n", "t.cfg:2:", "did you mean 'sync_bn'");
    expect_cfg_error("[net]\nbatch = 4\nbatch = 5\n[linear]\noutput = 3\n", "t.cfg:3:", "duplicate");
    expect_cfg_error("[net]\n[hardtanh]\nmin = 1\nmax = 0\n[linear]\noutput = 2\n", "t.cfg:2:", "min < max");
    /* shapes that cannot work name the layer and its line */
    expect_cfg_error("[net]\n[conv2d]\nfilters = 2\nsize = 30\n[linear]\noutput = 3\n", "t.cfg:2:", "conv1");
    expect_cfg_error("[net]\n[maxpool]\nsize = 2\n[shortcut]\nfrom = -3\n[linear]\noutput = 2\n", "t.cfg:4:", "from = -3");
    expect_cfg_error("[net]\n[conv2d]\nfilters = 2\nsize = 3\n", "logits", NULL);
    expect_cfg_error("[net]\n[maxpool]\nsize = 2\n[route]\nlayers = -3\n[linear]\noutput = 2\n", "t.cfg:4:",
                     "layers = -3 is before the input");
    expect_cfg_error("[net]\n[maxpool]\nsize = 2\n[route]\nlayers = 1\n[linear]\noutput = 2\n", "t.cfg:4:",
                     "not an earlier layer");
    expect_cfg_error("[net]\n[maxpool]\nsize = 2\n[route]\nlayers = -1, -2\n[linear]\noutput = 2\n", "t.cfg:4:",
                     "concatenation");
    expect_cfg_error("[net]\n[maxpool]\nsize = 2\n[route]\n[linear]\noutput = 2\n", "t.cfg:4:", "needs 'layers'");
    /* a layer the route jumps over feeds nothing (found by fuzz_cfg: its DST
     * weights were never placed, and initialising them wrote through NULL) */
    expect_cfg_error("[net]\n[quant]\nweight = dst\n[conv2d]\nfilters = 3\nsize = 3\npad = 1\nweight = float\n"
                     "[conv2d]\nfilters = 4\nsize = 3\npad = 1\n[route]\nlayers = -2\n[linear]\noutput = 10\n",
                     "t.cfg:9:", "nothing after it uses its output");
    /* sync_bn: off by default, on with any boolean spelling */
    static const char *const sync_cfg[] = {"[net]\n[linear]\noutput = 3\n", "[net]\nsync_bn = 1\n[linear]\noutput = 3\n",
                                           "[net]\nsync_bn = yes\n[linear]\noutput = 3\n"};
    for (int i = 0; i < 3; i++) {
        qat_cfg cfg;
        qat_net_cfg net;
        qat_layer *layers = NULL;
        int n;
        qat_status st = qat_cfg_parse_text(&cfg, "t.cfg", sync_cfg[i], strlen(sync_cfg[i]));
        if (st == QAT_OK) st = qat_netcfg_read(&cfg, &net, &layers, &n);
        CHECK(st == QAT_OK && net.sync_bn == (i > 0), "sync_bn config %d: status %d sync_bn %d: %s", i, st,
              st ? -1 : net.sync_bn, qat_last_error());
        free(layers); /* parsed only: nothing of theirs is allocated before the build */
        qat_cfg_free(&cfg);
    }
}

/* A projection shortcut: [route] hands the block input to a 1x1 stride-2
 * conv whose output [shortcut] adds to the main branch. The route is the
 * very tensor it names, and conv1's gradient comes through both paths. */
static void test_route(void)
{
    static const char text[] = "[net]\nbatch = 2\n"
                               "[conv2d]\nfilters = 3\nsize = 3\npad = 1\n"       /* 0: block input */
                               "[conv2d]\nfilters = 4\nsize = 3\nstride = 2\npad = 1\n" /* 1: main */
                               "[route]\nlayers = -2\n"                                /* 2 = layer 0 */
                               "[conv2d]\nfilters = 4\nsize = 1\nstride = 2\n"     /* 3: projection */
                               "[shortcut]\nfrom = -3\n"                               /* 4 = 3 + 1 */
                               "[global_avgpool]\n[linear]\noutput = 10\n";
    qat_model m;
    qat_cfg cfg;
    CHECK(build(text, &m, &cfg) == QAT_OK, "projection block: %s", qat_last_error());
    if (!m.layers) {
        qat_cfg_free(&cfg);
        return;
    }
    CHECK(m.layers[2].out == m.layers[0].out, "[route] layers = -2 is not layer 0's output");
    CHECK(m.layers[3].out->shape[1] == 4 && m.layers[3].out->shape[2] == 14 && m.layers[4].out->shape[2] == 14,
          "projection shapes");
    /* conv1's output (the block input) feeds both branches */
    for (size_t i = 0; i < m.input->n; i++) m.input->x[i] = (float)((i * 7919) % 13) / 6.0f - 1.0f;
    for (int i = 0; i < m.batch; i++) m.labels[i] = i % 10;
    qat_tensor *wrt[2] = {qat_graph_find(&m.g, "conv1.weight"), qat_graph_find(&m.g, "conv3.weight")};
    char report[512];
    qat_graph_set_training(&m.g, 1);
    double err = qat_gradcheck(&m.g, m.loss, wrt, 2, 1e-2f, 40, 1e-3, report, sizeof report);
    CHECK(err < 2e-2, "route/shortcut gradient: %s", report);
    printf("route: projection block gradient check, worst rel err %.2e\n", err);
    qat_model_free(&m);
    qat_cfg_free(&cfg);
}

static void test_checkpoints(void)
{
    char dir[] = "/tmp/qat-badinput-XXXXXX", path[256], text[2048];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/a.ckpt", dir);

    qat_model a, b;
    qat_cfg ca, cb;
    snprintf(text, sizeof text, lenet, 50, "");
    CHECK(build(text, &a, &ca) == QAT_OK, "build a: %s", qat_last_error());
    qat_train_pos pos = {1, 10, 1, 0.5f, NULL};
    CHECK(qat_checkpoint_save(path, &a, ca.text, ca.text_len, NULL, &pos) == QAT_OK, "save: %s", qat_last_error());

    /* the same model loads and gets the same weights */
    CHECK(build(text, &b, &cb) == QAT_OK, "build b");
    qat_ckpt ck;
    CHECK(qat_ckpt_read(&ck, path) == QAT_OK, "read: %s", qat_last_error());
    for (size_t i = 0; i < b.g.nparams; i++) b.g.params[i] = 0;
    CHECK(qat_checkpoint_load_model(&ck, &b) == QAT_OK, "load: %s", qat_last_error());
    CHECK(memcmp(a.g.params, b.g.params, a.g.nparams * sizeof(float)) == 0, "weights differ after load");
    qat_model_free(&b);
    qat_cfg_free(&cb);

    /* another model: conv2 has 40 filters -> conv2.weight is the first mismatch */
    snprintf(text, sizeof text, lenet, 40, "");
    CHECK(build(text, &b, &cb) == QAT_OK, "build c");
    qat_status st = qat_checkpoint_load_model(&ck, &b);
    CHECK(st == QAT_ERR_MISMATCH && strstr(qat_last_error(), "'conv2.weight'") &&
              strstr(qat_last_error(), "[50, 20, 5, 5]") && strstr(qat_last_error(), "[40, 20, 5, 5]"),
          "mismatch message: %s", qat_last_error());
    printf("ok: %s\n", qat_last_error());
    qat_model_free(&b);
    qat_cfg_free(&cb);

    /* non-finite and impossible values: load and export refuse them by name */
    snprintf(text, sizeof text, lenet, 50, "");
    static const struct {
        const char *tensor;
        size_t at;
        float v;
        const char *says;
    } bad[] = {{"bn3.bias", 7, NAN, "tensor 'bn3.bias' element 7 is NaN"},
               {"conv2.weight", 0, INFINITY, "tensor 'conv2.weight' element 0 is +Inf"},
               {"bn1.running_mean", 19, -INFINITY, "tensor 'bn1.running_mean' element 19 is -Inf"},
               {"bn2.running_var", 3, -0.5f, "tensor 'bn2.running_var' element 3 is -0.5, expected a variance"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char bpath[300];
        snprintf(bpath, sizeof bpath, "%s/bad%zu.ckpt", dir, i);
        qat_tensor *t = qat_graph_find(&a.g, bad[i].tensor);
        CHECK(t && bad[i].at < t->n, "no %s", bad[i].tensor);
        if (!t) continue;
        float keep = t->x[bad[i].at];
        t->x[bad[i].at] = bad[i].v;
        qat_export_opts eo = {0};
        qat_export_result er;
        st = qat_export(&a, &eo, &er);
        CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), bad[i].says), "export of %s: %d %s", bad[i].tensor, st,
              qat_last_error());
        CHECK(er.bytes == NULL, "export left a result");
        printf("ok: %s\n", qat_last_error());
        CHECK(qat_checkpoint_save(bpath, &a, ca.text, ca.text_len, NULL, &pos) == QAT_OK, "save bad");
        t->x[bad[i].at] = keep;
        qat_ckpt bk;
        CHECK(qat_ckpt_read(&bk, bpath) == QAT_OK, "read bad: %s", qat_last_error());
        CHECK(build(text, &b, &cb) == QAT_OK, "build e");
        st = qat_checkpoint_load_model(&bk, &b);
        CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), bad[i].says) && strstr(qat_last_error(), bpath),
              "load of %s: %d %s", bad[i].tensor, st, qat_last_error());
        printf("ok: %s\n", qat_last_error());
        qat_ckpt_free(&bk);
        qat_model_free(&b);
        qat_cfg_free(&cb);
        unlink(bpath);
    }

    /* extreme but finite values: export may refuse them, but converts no
     * out-of-range float to an integer (CI's sanitizer build checks
     * float-cast-overflow) */
    static const struct {
        const char *tensor;
        float v;
    } wild[] = {{"bn1.weight", 1e30f}, {"bn1.weight", 1e-30f}, {"bn2.running_var", 1e-38f}, {"bn3.bias", -3e38f},
                {"conv2.weight", 3e38f}, {"fc2.weight", 1e-38f}, {"bn3.running_mean", 1e35f}, {"bn1.bias", 1e-45f}};
    qat_model qm;
    qat_cfg qc;
    snprintf(text, sizeof text, "[net]\nbatch = 4\n[quant]\nweight = ste_sign\nact = ste_sign\n%s",
             strstr(lenet, "[conv2d]"));
    {
        char tmpl[2048];
        snprintf(tmpl, sizeof tmpl, "%s", text);
        snprintf(text, sizeof text, tmpl, 50, "");
    }
    CHECK(build(text, &qm, &qc) == QAT_OK, "binary LeNet: %s", qat_last_error());
    for (size_t i = 0; i < sizeof wild / sizeof wild[0] && qm.layers; i++) {
        qat_tensor *t = qat_graph_find(&qm.g, wild[i].tensor);
        CHECK(t != NULL, "no %s", wild[i].tensor);
        if (!t) continue;
        float keep[4];
        size_t nk = t->n < 4 ? t->n : 4;
        memcpy(keep, t->x, nk * sizeof(float));
        for (size_t k = 0; k < nk; k++) t->x[k] = wild[i].v;
        qat_export_opts eo = {0};
        qat_export_result er;
        st = qat_export(&qm, &eo, &er);
        printf("ok: %s = %g: export %s%s\n", wild[i].tensor, (double)wild[i].v, st ? "refused: " : "succeeded",
               st ? qat_last_error() : "");
        qat_export_free(&er);
        memcpy(t->x, keep, nk * sizeof(float));
    }
    qat_model_free(&qm);
    qat_cfg_free(&qc);
    snprintf(text, sizeof text, lenet, 50, "");

    /* a model with one more layer: its tensor is missing from the checkpoint */
    snprintf(text, sizeof text, lenet, 50, "[batchnorm]\n");
    CHECK(build(text, &b, &cb) == QAT_OK, "build d");
    st = qat_checkpoint_load_model(&ck, &b);
    CHECK(st == QAT_ERR_MISMATCH && strstr(qat_last_error(), "'bn4.weight'"), "missing tensor message: %s",
          qat_last_error());
    printf("ok: %s\n", qat_last_error());
    qat_model_free(&b);
    qat_cfg_free(&cb);
    qat_ckpt_free(&ck);

    /* corruption: one flipped byte in the weights -> checksum error, and
     * opening the model from it leaves nothing behind */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL, "open");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size / 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, size / 2, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    qat_net_cfg net;
    st = qat_checkpoint_open_model(path, 8, 1, &b, &cb, &net);
    CHECK(st == QAT_ERR_CHECKSUM && strstr(qat_last_error(), path), "corrupt checkpoint: %d %s", st, qat_last_error());
    CHECK(b.g.params == NULL && b.layers == NULL && cb.text == NULL, "partial result after a failed open");
    printf("ok: %s\n", qat_last_error());

    /* truncated */
    CHECK(truncate(path, size - 7) == 0, "truncate");
    st = qat_checkpoint_open_model(path, 8, 1, &b, &cb, &net);
    CHECK(st != QAT_OK && strstr(qat_last_error(), path), "truncated checkpoint accepted: %s", qat_last_error());
    printf("ok: %s\n", qat_last_error());

    /* not a checkpoint at all */
    st = qat_checkpoint_open_model("/etc/hostname", 8, 1, &b, &cb, &net);
    CHECK(st != QAT_OK && strstr(qat_last_error(), "/etc/hostname"), "non-checkpoint: %s", qat_last_error());

    qat_model_free(&a);
    qat_cfg_free(&ca);
    unlink(path);
    rmdir(dir);
}

/* qat_train failing after the config is read and before the model is built
 * (an unknown --dataset) frees the layers it read (LeakSanitizer, in CI's
 * sanitizer run, fails this test otherwise) */
static void test_train_errors(void)
{
    char dir[] = "/tmp/qat-badtrain-XXXXXX", cfg[256];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(cfg, sizeof cfg, "%s/t.cfg", dir);
    FILE *f = fopen(cfg, "w");
    CHECK(f != NULL, "write %s", cfg);
    if (!f) return;
    fputs("[net]\nbatch = 4\n[conv2d]\nfilters = 2\nsize = 3\n[linear]\noutput = 10\n", f);
    fclose(f);
    qat_train_opts o = {.cfg_path = cfg, .dataset = "imagenet", .out_dir = dir, .seed = -1, .threads = 1};
    qat_train_result r;
    qat_status st = qat_train(&o, &r);
    CHECK(st == QAT_ERR_ARG && strstr(qat_last_error(), "unknown dataset 'imagenet'"), "unknown --dataset: %d %s", st,
          qat_last_error());
    printf("ok: %s\n", qat_last_error());
    unlink(cfg);
    rmdir(dir);
}

int main(void)
{
    test_configs();
    test_route();
    test_train_errors();
    test_checkpoints();
    printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
