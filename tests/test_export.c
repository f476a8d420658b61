/* test_export.c: the integer lowering and its runtime.
 *
 *   unit   small models from config text (every kernel: binary, ternary with
 *          padding, int8 x ternary, power-of-two, int8, the uint8 first
 *          layer, a quantized first input's table; BN with negative scales,
 *          HardTanh, ReLU, pools), their BN statistics settled on random
 *          images: the .qnn's predictions equal the float model's eval-mode
 *          predictions on random images under every ISA the CPU has, except
 *          where the float model's two best logits are within 1e-5; the
 *          generated C source compiled with -std=c99 -Wall -Werror
 *          -mgeneral-regs-only gives the runtime's logits exactly; a .qnn
 *          truncated at every byte, and with every byte flipped (with and
 *          without the checksum repaired), loads with a clean error or runs.
 *   data   ($QAT_DATA) every quantized MNIST config trained briefly, exported
 *          and compared with its float model on the full test split.
 * argv: [part] [source root] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alq.h"
#include "checkpoint.h"
#include "dst.h"
#include "export.h"
#include "netcfg.h"
#include "qat_test.h"
#include "qatrt.h"
#include "trainer.h"

static const char *src_root = ".";

static int build(const char *text, qat_model *m, qat_cfg *cfg, qat_net_cfg *net)
{
    qat_layer *layers;
    int n;
    memset(cfg, 0, sizeof *cfg);
    if (qat_cfg_parse_text(cfg, "test.cfg", text, strlen(text)) != QAT_OK ||
        qat_netcfg_read(cfg, net, &layers, &n) != QAT_OK ||
        qat_model_build(m, layers, n, net->c, net->h, net->w, 64, 1, 7) != QAT_OK) {
        printf("build: %s\n", qat_last_error());
        return 0;
    }
    return 1;
}

static void random_images(uint8_t *x, size_t n, uint64_t seed)
{
    qat_rng r;
    qat_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        /* mostly dark with bright strokes, like MNIST */
        uint32_t v = qat_rng_u32(&r);
        x[i] = (uint8_t)((v & 3) == 0 ? v >> 24 : 0);
    }
}

/* empties channel 2 and every fourth output channel (c % 4 == 1) of each
 * compute layer but the last (unevenly: the groups of a sub-channel-wise
 * layer after it lose different numbers of elements): an ALQ layer's
 * groups all lose their planes, another layer's latent weights go to 0
 * (so its quantized row is 0). Channel 1's batch norm then gives it a
 * nonzero level: before a padded layer it must stay (the padding is 0,
 * not that level), and parity shows whether it did. After settle(). */
static int emptied(int c) { return c % 4 == 1 || c == 2; }

static void empty_channels(qat_model *m)
{
    int last = -1;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].w && m->layers[i].wq.out) last = i;
    for (int i = 0; i < last; i++) {
        qat_layer *l = &m->layers[i];
        if (!l->w || !l->wq.out) continue;
        int cout = l->w->shape[0];
        size_t K = l->w->n / (size_t)cout;
        if (l->wq.state && l->wq.spec.q == qat_quantizer_find("alq")) {
            qat_alq_node a;
            qat_alq_node_get(&l->wq, &a);
            size_t gc = a.gp.per_chan;
            for (int c = 0; c < cout; c++)
                for (size_t g = (size_t)c * gc; emptied(c) && g < (size_t)(c + 1) * gc; g++) {
                    memset((int8_t *)a.B + g * (size_t)a.imax * a.gp.n, 0, (size_t)a.imax * a.gp.n);
                    memset((float *)a.alpha + g * (size_t)a.imax, 0, sizeof(float) * (size_t)a.imax);
                    ((uint8_t *)a.I)[g] = 0;
                }
        } else {
            for (int c = 0; c < cout; c++)
                if (emptied(c)) memset(l->w->x + (size_t)c * K, 0, sizeof(float) * K);
        }
        for (int j = i + 1; j < m->nlayers && !m->layers[j].w; j++)
            if (m->layers[j].gamma && cout > 1) {
                m->layers[j].rmean->x[1] = 0;
                m->layers[j].beta->x[1] = 3.0f;
                m->layers[j].gamma->x[1] = fabsf(m->layers[j].gamma->x[1]);
            }
    }
}

/* BN running statistics from a few training-mode forwards, and some
 * negative BN scales and shifted biases (the flip path) */
static void settle(qat_model *m, const qat_net_cfg *net, uint64_t seed)
{
    size_t isz = (size_t)m->c * m->h * m->w;
    uint8_t *img = malloc(isz * 64);
    float *x = malloc(sizeof(float) * isz * 64);
    qat_rng r;
    qat_rng_seed(&r, seed);
    for (int i = 0; i < m->nlayers; i++) { /* ALQ: pruned groups (0 planes) and fewer planes in others */
        qat_layer *l = &m->layers[i];
        if (!l->wq.state || l->wq.spec.q != qat_quantizer_find("alq")) continue;
        qat_alq_node a;
        qat_alq_node_get(&l->wq, &a);
        for (size_t g = 0; g < a.gp.G; g++) {
            int keep = g % 3 == 0 ? 0 : a.I[g] - (int)(g % 2);
            for (int p = keep < 0 ? 0 : keep; p < a.I[g]; p++) {
                memset((int8_t *)a.B + (g * (size_t)a.imax + (size_t)p) * a.gp.n, 0, a.gp.n);
                ((float *)a.alpha)[g * (size_t)a.imax + (size_t)p] = 0;
            }
            ((uint8_t *)a.I)[g] = (uint8_t)(keep < 0 ? 0 : keep);
        }
    }
    for (int it = 0; it < 40; it++) {
        random_images(img, isz * 64, seed + (uint64_t)it);
        qat_data_normalize(img, 64, m->c, isz / (size_t)m->c, net->mean, net->std, net->pixel_grid, x);
        qat_model_forward(m, x, NULL, 64, 1);
    }
    for (int i = 0; i < m->nlayers; i++) {
        qat_layer *l = &m->layers[i];
        if (l->wq.state && l->wq.spec.q == qat_quantizer_find("dst")) { /* every defined state, so the power-of-two kernel runs */
            static const int8_t st[7] = {0, 1, -1, 2, -2, 4, -4};
            for (size_t j = 0; j < l->wq.out->n; j++) qat_dst_states(&l->wq)[j] = st[qat_rng_below(&r, 7)];
        }
        if (!l->gamma) continue;
        for (int c = 0; c < l->gamma->shape[0]; c++) {
            if (qat_rng_uniform(&r) < 0.3f) l->gamma->x[c] = -l->gamma->x[c] * (0.5f + qat_rng_uniform(&r));
            l->beta->x[c] = 0.3f * (2.0f * qat_rng_uniform(&r) - 1.0f);
        }
    }
    free(img);
    free(x);
}

typedef struct {
    int n, differ, near_tie, differ_far;
} parity;

static parity compare(const float *fl, const int32_t *il, int n, int K)
{
    parity p = {.n = n};
    for (int i = 0; i < n; i++) {
        const float *z = fl + (size_t)i * K;
        const int32_t *q = il + (size_t)i * K;
        int a = 0, b = 0;
        for (int k = 1; k < K; k++) {
            if (z[k] > z[a]) a = k;
            if (q[k] > q[b]) b = k;
        }
        float second = -INFINITY;
        for (int k = 0; k < K; k++)
            if (k != a && z[k] > second) second = z[k];
        int tie = z[a] - second <= 1e-5f;
        p.near_tie += tie;
        if (a != b) {
            p.differ++;
            p.differ_far += !tie;
        }
    }
    return p;
}

/* runs the .qnn under every ISA this CPU has; returns the scalar logits */
static int run_all_isas(const qatrt_model *rm, const uint8_t *img, int n, int32_t *out, const char *what)
{
    int32_t *z = malloc(sizeof(int32_t) * (size_t)n * rm->nclass);
    int ok = 1;
    for (int isa = 0; isa < QATRT_ISA_COUNT; isa++) {
        if (!qatrt_isa_supported((qatrt_isa)isa)) {
            printf("  %s: isa %s not on this CPU: skipped\n", what, qatrt_isa_name((qatrt_isa)isa));
            continue;
        }
        setenv("QATRT_ISA", qatrt_isa_name((qatrt_isa)isa), 1);
        qat_status st = qat_qnn_run(rm, img, n, 17, 2, isa == 0 ? out : z); /* odd batch: a short last batch */
        CHECK(st == QAT_OK, "%s: run: %s", what, qat_last_error());
        if (isa && memcmp(out, z, sizeof(int32_t) * (size_t)n * rm->nclass) != 0) {
            ok = 0;
            CHECK(0, "%s: isa %s gives other logits than scalar", what, qatrt_isa_name((qatrt_isa)isa));
        }
    }
    unsetenv("QATRT_ISA");
    free(z);
    return ok;
}

/* One workspace for two models in turn, batch sizes 1, 3, 7, ...: every
 * run must give the logits of a fresh workspace (want_a / want_b). A
 * workspace that is not prepared for the model at hand is refused
 * (QATRT_ERR_UNPREPARED): never prepared, or prepared for the other model.
 * Prepared weights that were overwritten (memory that served something
 * else, as a freed and reallocated workspace may have: the mark survives
 * while the weights do not) are right again after qatrt_prepare. */
static void check_reuse(const qatrt_model *a, const int32_t *want_a, const uint8_t *img_a, const qatrt_model *b,
                        const int32_t *want_b, const uint8_t *img_b, int n)
{
    const qatrt_kernels *k = qatrt_kernels_for(qatrt_isa_select(NULL));
    size_t wa = qatrt_workspace_size(a, n), wb = qatrt_workspace_size(b, n), wsz = wa > wb ? wa : wb;
    void *ws = aligned_alloc(QATRT_ALIGN, (wsz + QATRT_ALIGN - 1) / QATRT_ALIGN * QATRT_ALIGN);
    int32_t *z = malloc(sizeof(int32_t) * (size_t)n * (a->nclass > b->nclass ? a->nclass : b->nclass));
    int bad = 0, refused = 0;
    memset(ws, 0, wsz);
    refused += qatrt_run(a, k, ws, wsz, img_a, 1, z) == QATRT_ERR_UNPREPARED;
    for (int round = 0; round < 4; round++) {
        const qatrt_model *m = round == 1 ? b : a, *other = round == 1 ? a : b;
        const int32_t *want = round == 1 ? want_b : want_a;
        const uint8_t *img = round == 1 ? img_b : img_a;
        CHECK(qatrt_prepare(m, ws, wsz) == QATRT_OK, "prepare");
        refused += qatrt_run(other, k, ws, wsz, img, 1, z) == QATRT_ERR_UNPREPARED;
        if (round == 3) { /* the weights scribbled over, the mark kept: then prepared again */
            memset((uint8_t *)ws + QATRT_ALIGN, 0x5a, wsz - QATRT_ALIGN);
            CHECK(qatrt_prepare(m, ws, wsz) == QATRT_OK, "prepare");
        }
        for (int at = 0, bs = 1; at < n; at += bs, bs = bs * 2 + 1) { /* batch sizes 1, 3, 7, ... */
            int cnt = n - at < bs ? n - at : bs;
            size_t isz = (size_t)m->c * m->h * m->w;
            if (qatrt_run(m, k, ws, wsz, img + (size_t)at * isz, cnt, z) != QATRT_OK ||
                memcmp(z, want + (size_t)at * m->nclass, sizeof(int32_t) * (size_t)cnt * m->nclass) != 0)
                bad++;
        }
    }
    CHECK(bad == 0, "workspace reuse: %d runs differ from fresh workspaces", bad);
    CHECK(refused == 5, "workspace not prepared for the model: %d of 5 runs refused", refused);
    printf("  workspace reused across two models and batch sizes 1..%d: %s; unprepared runs refused: %d of 5\n", n,
           bad ? "FAILED" : "same logits", refused);
    free(ws);
    free(z);
}

/* the generated C source, compiled strictly, against the runtime's logits */
static void check_csource(const qat_export_result *r, const uint8_t *img, int n, const int32_t *want, const char *what)
{
    char dir[] = "/tmp/qat-csrc-XXXXXX";
    if (!mkdtemp(dir)) return;
    CHECK(qat_export_csource(r->bytes, r->size, dir, "m") == QAT_OK, "%s: csource: %s", what, qat_last_error());
    qatrt_model rm;
    qatrt_load(&rm, r->bytes, r->size, NULL);
    char path[600], cmd[2000];
    snprintf(path, sizeof path, "%s/images.bin", dir);
    FILE *f = fopen(path, "wb");
    size_t isz = (size_t)rm.c * rm.h * rm.w;
    fwrite(img, 1, isz * (size_t)n, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/driver.c", dir);
    f = fopen(path, "w");
    fprintf(f, "#include <stdio.h>\n#include \"model.h\"\nstatic long long ws[m_WORKSPACE / 8 + 1];\n"
               "int main(void) {\n  unsigned char img[m_C * m_H * m_W]; int32_t z[m_NCLASS];\n"
               "  FILE *f = fopen(\"%s/images.bin\", \"rb\");\n"
               "  while (fread(img, 1, sizeof img, f) == sizeof img) {\n"
               "    m_run(img, z, ws);\n    for (int k = 0; k < m_NCLASS; k++) printf(\"%%ld \", (long)z[k]);\n"
               "    printf(\"\\n\");\n  }\n  return 0;\n}\n",
            dir);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "cd %s && cc -std=c99 -Wall -Wextra -Werror -pedantic -mgeneral-regs-only -O1 -c model.c -o model.o && "
             "cc -O1 driver.c model.o -o run && ./run > out.txt",
             dir);
    int rc = system(cmd);
    CHECK(rc == 0, "%s: the generated C source does not compile or run (%s)", what, cmd);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/out.txt", dir);
        f = fopen(path, "r");
        int bad = 0;
        for (size_t i = 0; i < (size_t)n * rm.nclass; i++) {
            long v;
            if (fscanf(f, "%ld", &v) != 1 || v != want[i]) bad++;
        }
        fclose(f);
        CHECK(bad == 0, "%s: %d generated-C logits differ from the runtime's", what, bad);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
}

/* the runtime's reference interpreter (the exported C source's own) gives
 * the logits the kernels gave */
static void check_reference(const qatrt_model *rm, const uint8_t *img, int n, const int32_t *want, const char *what)
{
    size_t ws = qatrt_reference_workspace(rm);
    void *w = aligned_alloc(64, (ws + 63) / 64 * 64);
    int32_t *z = malloc(sizeof(int32_t) * (size_t)n * (size_t)rm->nclass);
    CHECK(qatrt_run_reference(rm, w, ws, img, n, z) == QATRT_OK, "%s: reference run", what);
    int bad = 0;
    for (size_t i = 0; i < (size_t)n * (size_t)rm->nclass; i++) bad += z[i] != want[i];
    CHECK(bad == 0, "%s: %d reference-interpreter logits differ from the kernels'", what, bad);
    free(w);
    free(z);
}

/* b (n bytes) with its checksum made right again */
static void recrc(uint8_t *b, size_t n)
{
    uint32_t crc = qatrt_crc32(0, b, n - 4);
    for (int z = 0; z < 4; z++) b[n - 4 + z] = (uint8_t)(crc >> (8 * z));
}

/* a copy of an exported file in a buffer of the runtime's alignment, to
 * break and load */
static uint8_t *file_copy(const qat_export_result *r)
{
    uint8_t *b = aligned_alloc(64, (r->size + 63) / 64 * 64);
    memcpy(b, r->bytes, r->size);
    return b;
}

/* one breakage of a file: byte `at` set to `val` (checksum repaired) is refused naming a byte and saying `want` */
typedef struct {
    size_t at;
    uint8_t val;
    const char *want;
} breakage;

/* (status: the status each must give; 0, any failure) */
static void check_breakages(const uint8_t *file, size_t sz, const breakage *bad, size_t nbad, const char *what, int version,
                            qatrt_status status)
{
    uint8_t *b = aligned_alloc(64, (sz + 63) / 64 * 64);
    qatrt_model m;
    qatrt_error err;
    for (size_t k = 0; k < nbad; k++) {
        memcpy(b, file, sz);
        b[bad[k].at] = bad[k].val;
        recrc(b, sz);
        qatrt_status st = qatrt_load(&m, b, sz, &err);
        CHECK(st != QATRT_OK && (!status || st == status) && strstr(err.msg, bad[k].want) &&
                  strstr(err.msg, "byte "),
              "%s: v%d breakage %zu (byte %zu = %u): status %d '%s', want '%s'", what, version, k, bad[k].at, bad[k].val,
              (int)st, err.msg, bad[k].want);
    }
    free(b);
}

/* loads and runs file on the scalar kernels: its logits must be want */
static void check_same_logits(const uint8_t *file, size_t sz, const uint8_t *img, int n, const int32_t *want,
                              const char *what, const char *as)
{
    qatrt_model m;
    qatrt_error err;
    qatrt_status st = qatrt_load(&m, file, sz, &err);
    CHECK(st == QATRT_OK, "%s: as %s: %s", what, as, err.msg);
    if (st != QATRT_OK) return;
    int32_t *z = malloc(sizeof(int32_t) * (size_t)n * (size_t)m.nclass);
    size_t ws = qatrt_workspace_size(&m, n);
    void *w = aligned_alloc(64, (ws + 63) / 64 * 64);
    CHECK(qatrt_prepare(&m, w, ws) == QATRT_OK && qatrt_run(&m, qatrt_kernels_for(QATRT_ISA_SCALAR), w, ws, img, n, z) == QATRT_OK,
          "%s: %s run", what, as);
    int bad = 0;
    for (size_t i = 0; i < (size_t)n * (size_t)m.nclass; i++) bad += z[i] != want[i];
    CHECK(bad == 0, "%s: the %s file gives %d other logits", what, as, bad);
    free(z);
    free(w);
}

/* .qnn v4 (compact records) against v3 (128-byte records, ops name their
 * inputs) and v2 (chains): the same model written as v3 (the exporter's
 * qnn_version) and as v2 loads and gives the same logits, and is larger;
 * fields that break the graph, reserved bits and unknown versions are
 * refused by byte in v4 and in v3 */
static void check_versions(const qat_export_result *r, qat_model *model, const qat_export_opts *o, const uint8_t *img, int n,
                           const int32_t *want, const char *what)
{
    CHECK(r->bytes[QNN_H_VERSION] == 4, "%s: not a v4 file", what);
    /* v4: op 1's record follows op 0's fixed part and blob sizes */
    size_t rec1 = QATRT_HEADER_SIZE + QATRT_OP4_SIZE;
    for (unsigned mask = r->bytes[QATRT_HEADER_SIZE + QNN_OP4_BLOBS]; mask; mask &= mask - 1) rec1 += 4;
    const breakage bad4[] = {
        {QNN_H_VERSION, 5, "reads versions"},
        {QNN_H_OP_SIZE, 128, "fixed size"},
        {QATRT_HEADER_SIZE + QNN_OP4_IN0, 1, "expected 0 (the image)"}, /* op 0 reads itself */
        {rec1 + QNN_OP4_IN0, 9, "expected 0 (the image)"},              /* a later op */
        {rec1 + QNN_OP4_IN1, 1, "second input"},
        {rec1 + QNN_OP4_BLOBS + 1, 1, "bits 7..15 must be 0"},
        {rec1 + QNN_OP4_IN0, 0, "op 1"},
    };
    check_breakages(r->bytes, r->size, bad4, sizeof bad4 / sizeof bad4[0], what, 4, 0);
    /* a blob size 1 larger: the blobs no longer fill the file */
    {
        uint8_t *b = file_copy(r);
        qatrt_model m;
        qatrt_error err;
        b[QATRT_HEADER_SIZE + QNN_OP4_SIZES]++;
        recrc(b, r->size);
        CHECK(qatrt_load(&m, b, r->size, &err) != QATRT_OK && strstr(err.msg, "byte "), "%s: v4 with a blob size off by one: %s",
              what, err.msg);
        free(b);
    }
    qat_export_opts o3 = *o;
    o3.qnn_version = 3;
    qat_export_result r3;
    qat_status st = qat_export(model, &o3, &r3);
    CHECK(st == QAT_OK, "%s: export as v3: %s", what, qat_last_error());
    if (st) return;
    size_t sz = r3.size;
    CHECK(sz > r->size, "%s: v3 takes %zu bytes, v4 %zu", what, sz, r->size);
    uint8_t *b = file_copy(&r3);
    qatrt_model m;
    qatrt_error err;
    CHECK(b[QNN_H_VERSION] == 3, "%s: not a v3 file", what);
    check_same_logits(b, sz, img, n, want, what, "v3");
    int nops = (int)b[QNN_H_NOPS];
    /* v2: the version, and the input fields zero */
    b[QNN_H_VERSION] = 2;
    for (int i = 0; i < nops; i++) memset(b + QATRT_HEADER_SIZE + (size_t)i * QATRT_OP_SIZE + QNN_OP_IN0, 0, 4);
    recrc(b, sz);
    check_same_logits(b, sz, img, n, want, what, "v2");
    /* in v2 the input field is reserved */
    b[QATRT_HEADER_SIZE + QATRT_OP_SIZE + QNN_OP_IN0] = 1;
    recrc(b, sz);
    CHECK(qatrt_load(&m, b, sz, &err) == QATRT_ERR_FORMAT && strstr(err.msg, "reserved"), "%s: v2 with an input: %s",
          what, err.msg);
    const breakage bad3[] = {
        {QNN_H_VERSION, 1, "reads versions"},
        {QNN_H_OP_SIZE, 32, "record size"},
        {QATRT_HEADER_SIZE + QNN_OP_IN0, 1, "expected 0 (the image)"}, /* op 0 reads itself */
        {QATRT_HEADER_SIZE + QATRT_OP_SIZE + QNN_OP_IN0, 9, "expected 0 (the image)"}, /* a later op */
        {QATRT_HEADER_SIZE + QATRT_OP_SIZE + QNN_OP_IN1, 1, "second input"},
        {QATRT_HEADER_SIZE + QATRT_OP_SIZE + QNN_OP_RES1, 1, "reserved"},
        /* op 1 reading the image: not uint8 (or a shape that differs) */
        {QATRT_HEADER_SIZE + QATRT_OP_SIZE + QNN_OP_IN0, 0, "op 1"},
    };
    check_breakages(r3.bytes, sz, bad3, sizeof bad3 / sizeof bad3[0], what, 3, 0);
    free(b);
    qat_export_free(&r3);
}

/* truncations and flips: a clean status, never a crash; a flip with the
 * checksum repaired that still loads must run */
static void check_hostile(const qat_export_result *r, const char *what)
{
    size_t n = r->size;
    uint8_t *b = aligned_alloc(64, (n + 63) / 64 * 64);
    qatrt_model m;
    qatrt_error err;
    int loaded = 0, refused = 0, ran = 0, named = 0;
    for (size_t cut = 0; cut < n; cut++) {
        memcpy(b, r->bytes, cut);
        qatrt_status st = qatrt_load(&m, b, cut, &err);
        CHECK(st != QATRT_OK, "%s: a file cut at byte %zu loads", what, cut);
        named += strstr(err.msg, "byte ") != NULL;
    }
    CHECK(named == (int)n, "%s: %d of %zu truncation errors name a byte", what, named, n);
    uint8_t img[4096];
    random_images(img, sizeof img, 5);
    for (int repair = 0; repair < 2; repair++)
        for (size_t i = 0; i < n; i++) {
            memcpy(b, r->bytes, n);
            b[i] ^= (uint8_t)(0x5a + i % 7) | 1;
            if (repair && i < n - 4) recrc(b, n);
            qatrt_status st = qatrt_load(&m, b, n, &err);
            if (st != QATRT_OK) {
                refused++;
                CHECK(err.msg[0] != 0, "%s: flip at %zu refused without a message", what, i);
                continue;
            }
            CHECK(repair || i >= n - 4 ? 1 : 0, "%s: a flip at byte %zu passes the checksum", what, i);
            loaded++;
            size_t isz = (size_t)m.c * m.h * m.w;
            if (isz <= sizeof img) {
                size_t ws = qatrt_workspace_size(&m, 1);
                void *w = ws ? aligned_alloc(64, (ws + 63) / 64 * 64) : NULL;
                int32_t z[256];
                if (w && m.nclass <= 256 && qatrt_prepare(&m, w, ws) == QATRT_OK &&
                    qatrt_run(&m, qatrt_kernels_for(QATRT_ISA_SCALAR), w, ws, img, 1, z) == QATRT_OK)
                    ran++;
                free(w);
            }
        }
    printf("  %s: %zu truncations refused; %d flips refused, %d loaded (checksum repaired) and %d of those ran\n", what, n,
           refused, loaded, ran);
    free(b);
}

/* a channel whose thresholds do not ascend (two swapped, checksum
 * repaired) is refused by name: the kernels count thresholds <= s */
static int check_ascending(const qat_export_result *r, const char *what)
{
    size_t n = r->size;
    uint8_t *b = file_copy(r);
    qatrt_model m;
    qatrt_error err;
    int tried = 0;
    if (qatrt_load(&m, b, n, &err) == QATRT_OK)
        for (int i = 0; i < m.nops && !tried; i++) {
            const qatrt_op *op = &m.ops[i];
            if (op->type != QATRT_OP_CONV || op->stage != QATRT_STAGE_THRESH || op->nthr < 2) continue;
            for (int c = 0; c < op->cout && !tried; c++) {
                const int32_t *t = op->thr + (size_t)c * (size_t)op->nthr;
                if (t[0] == t[1]) continue;
                size_t at = (size_t)((const uint8_t *)t - b);
                uint8_t tmp[4];
                memcpy(tmp, b + at, 4), memcpy(b + at, b + at + 4, 4), memcpy(b + at + 4, tmp, 4);
                recrc(b, n);
                CHECK(qatrt_load(&m, b, n, &err) == QATRT_ERR_FORMAT && strstr(err.msg, "must ascend"),
                      "%s: descending thresholds of channel %d: '%s'", what, c, err.msg);
                tried = 1;
            }
        }
    free(b);
    return tried;
}

/* a multi-bit weights blob broken one way at a time: each refused with a
 * message naming what is wrong; returns the number of breakages tried */
static int check_mb_hostile(const qat_export_result *r, const char *what)
{
    size_t n = r->size;
    uint8_t *b = file_copy(r);
    qatrt_model m;
    qatrt_error err;
    size_t at = 0, var = 0; /* var: a blob with unequal groups (an offset table) */
    int cout = 0, gc = 0, vcout = 0, vgc = 0;
    if (qatrt_load(&m, b, n, &err) == QATRT_OK)
        for (int i = 0; i < m.nops; i++)
            if (m.ops[i].type == QATRT_OP_CONV && m.ops[i].kernel == QATRT_K_MB && m.ops[i].cout > 1) {
                if (!at && m.ops[i].mb.n) {
                    at = (size_t)((const uint8_t *)m.ops[i].weights - b);
                    cout = m.ops[i].cout, gc = m.ops[i].mb.gc;
                }
                if (!var && !m.ops[i].mb.n && m.ops[i].mb.gc > 1) {
                    var = (size_t)((const uint8_t *)m.ops[i].weights - b);
                    vcout = m.ops[i].cout, vgc = m.ops[i].mb.gc;
                }
            }
    CHECK(at, "%s: no multi-bit op", what);
    if (!at) {
        free(b);
        return 0;
    }
    size_t chan_at = at + (32 + (size_t)cout * (size_t)gc + 3) / 4 * 4;
    size_t vI_at = var + 32 + 4 * ((size_t)vgc + 1), vchan_at = var + (vI_at - var + (size_t)vcout * (size_t)vgc + 3) / 4 * 4;
    struct {
        size_t off;
        uint8_t val;
        const char *want;
    } bad[] = {
        {at + 0, 0, "group"},                        /* n = 0: an offset table that is not there */
        /* with unequal groups: group 1 starting at 0, the offsets ending at 0, channel 1's bit start */
        {var ? var + 36 : at + 20, var ? 0 : 1, var ? "must increase" : "reserved byte"},
        {var ? var + 32 + 4 * (size_t)vgc : at + 20, var ? 0 : 1, var ? "offsets run" : "reserved byte"},
        {var ? vchan_at + 4 * (size_t)vcout + 4 : at + 20, var ? 0xff : 1, var ? "start at bit" : "reserved byte"},
        {at + 8, 2, "element order"},                /* order 2 */
        {at + 12, 9, "planes per group"},            /* imax 9 */
        {at + 20, 1, "reserved byte"},
        {at + 16, 0, "the header says"},             /* planes in the header */
        {at + 32, 9, "planes; at most"},             /* a group's bitwidth > imax */
        {chan_at + 4, 0xff, "start at"},             /* channel 1's start */
    };
    int tried = 0;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++, tried++) {
        memcpy(b, r->bytes, n);
        b[bad[k].off] = bad[k].val;
        recrc(b, n);
        qatrt_status st = qatrt_load(&m, b, n, &err);
        CHECK(st == QATRT_ERR_FORMAT && strstr(err.msg, bad[k].want) && strstr(err.msg, "byte "),
              "%s: multi-bit breakage %zu (byte %zu = %u): status %d '%s', want '%s'", what, k, bad[k].off, bad[k].val,
              (int)st, err.msg, bad[k].want);
    }
    free(b);
    return tried;
}

/* an ALQ layer on float inputs (X64) stores its planes and coefficients
 * (FLAGS bit 5, NTHR 0), not its integers at the bits of the largest:
 * every X64 op here is one, the file is smaller than the dense form by
 * that, and the reader refuses the bit on another op, NTHR != 0 with it,
 * and NTHR 0 without it, by byte (v4 records) */
static void check_x64_mb(const qat_export_result *r, const char *what)
{
    size_t n = r->size;
    uint8_t *b = file_copy(r);
    qatrt_model m;
    qatrt_error err;
    CHECK(b[QNN_H_VERSION] == 4, "%s: not a v4 file", what);
    if (qatrt_load(&m, b, n, &err) != QATRT_OK || b[QNN_H_VERSION] != 4) {
        CHECK(0, "%s: load: %s", what, err.msg);
        free(b);
        return;
    }
    int nx = 0, nmb = 0, mb_op = -1, other = -1;
    size_t mbytes = 0, dense = 0;
    for (int i = 0; i < m.nops; i++) {
        const qatrt_op *op = &m.ops[i];
        if (op->type != QATRT_OP_CONV || op->kernel != QATRT_K_X64) {
            if (other < 0) other = i;
            continue;
        }
        nx++;
        if (!op->x64_mb) continue;
        nmb++, mb_op = mb_op < 0 ? i : mb_op;
        int64_t wmax = 0; /* the dense form's bits: the largest weight's */
        int64_t *w = malloc(sizeof(int64_t) * (size_t)op->K);
        for (size_t c = 0; w && c < (size_t)op->cout; c++) {
            qatrt_mb_row(&op->mb, c, w, 0, 0);
            for (int k = 0; k < op->K; k++) wmax = llabs((long long)w[k]) > wmax ? llabs((long long)w[k]) : wmax;
        }
        CHECK(w != NULL, "%s: out of memory", what);
        free(w);
        int bits = 1;
        while (bits < 64 && wmax > ((int64_t)1 << (bits - 1)) - 1) bits++;
        mbytes += op->wbytes;
        dense += ((size_t)op->cout * (size_t)op->K * (size_t)bits + 7) / 8;
    }
    CHECK(nx >= 4 && nmb == nx, "%s: %d of %d X64 ops store multi-bit weights", what, nmb, nx);
    CHECK(mbytes < dense, "%s: the multi-bit weights take %zu bytes, the dense form %zu", what, mbytes, dense);
    printf("  %s: %d X64 ops with multi-bit weights: %zu bytes (dense b-bit: %zu)\n", what, nmb, mbytes, dense);
    /* the v4 records: op i's at QATRT_HEADER_SIZE + the sizes before it */
    size_t rec[QATRT_MAX_OPS], at = QATRT_HEADER_SIZE;
    for (int i = 0; i < m.nops; i++) {
        rec[i] = at;
        at += QATRT_OP4_SIZE + 4 * (size_t)__builtin_popcount(b[at + QNN_OP4_BLOBS] | b[at + QNN_OP4_BLOBS + 1] << 8);
    }
    const breakage bad[] = {
        {mb_op >= 0 ? rec[mb_op] + QNN_OP4_NTHR : 0, 1, "weight bits (0:"},
        {mb_op >= 0 ? rec[mb_op] + QNN_OP4_FLAGS : 0, (uint8_t)(mb_op >= 0 ? b[rec[mb_op] + QNN_OP4_FLAGS] & ~QATC_X64_MB : 0),
         "weight bits"},
        {other >= 0 ? rec[other] + QNN_OP4_FLAGS : 0, (uint8_t)(other >= 0 ? b[rec[other] + QNN_OP4_FLAGS] | QATC_X64_MB : 0),
         "belongs to an X64"},
    };
    CHECK(mb_op >= 0 && other >= 0, "%s: no X64 op with multi-bit weights, or no other op", what);
    if (mb_op >= 0 && other >= 0) check_breakages(r->bytes, n, bad, sizeof bad / sizeof bad[0], what, 4, QATRT_ERR_FORMAT);
    free(b);
}

typedef struct {
    const char *name, *text;
    int float_bits; /* export with --float-layers */
    int empty;      /* empty_channels(): exported with and without keep_emptied */
    const char *refused; /* the layer an export without --float-layers refuses by name (NULL: none) */
    int float_math;      /* float layers as X64 ops (float32 arithmetic in integers): the predictions agree */
} unit_case;

#define NET "[net]\ndataset = mnist\nbatch = 64\nepochs = 1\nseed = 3\n"
#define NETC "[net]\ndataset = cifar10\nbatch = 64\nepochs = 1\nseed = 3\n"

static const unit_case cases[] = {
    {"bnn", NET "[quant]\nweight = ste_sign\nact = ste_sign\nfirst_input = float\nlast_weight = quantized\n"
            "[conv2d]\nfilters = 8\nsize = 5\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[conv2d]\nfilters = 12\nsize = 5\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 40\nbias = 0\n[batchnorm]\n[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    {"bnn_pad_xnor", NET "[quant]\nweight = xnor\nper_channel = 1\nact = ste_sign\nfirst_input = float\n"
            "[conv2d]\nfilters = 6\nsize = 3\nstride = 2\nbias = 0\n[batchnorm]\n"
            "[conv2d]\nfilters = 10\nsize = 3\npad = 1\nbias = 1\n[batchnorm]\n[hardtanh]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    {"tnn", NET "[quant]\nweight = ternary\nact = ternary\nact_threshold = 0.5\n"
            "[conv2d]\nfilters = 8\nsize = 5\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[conv2d]\nfilters = 12\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    {"ternary_w_uniform_a", NET "[quant]\nweight = ternary\nact = uniform\nact_bits = 4\n"
            "[conv2d]\nfilters = 8\nsize = 5\nbias = 0\n[batchnorm]\n[relu]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    {"dst_p2", NET "[quant]\nweight = dst\ndst_p = -2\nact = dst_act\nact_bits = 3\ndst_q2 = 1\n"
            "[conv2d]\nfilters = 8\nsize = 5\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[conv2d]\nfilters = 12\nsize = 5\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    {"aqe_w3a3", NET "[quant]\nweight = aqe\nact = aqe\nbits = 3\nfirst_input = float\nlast_weight = quantized\n"
            "[conv2d]\nfilters = 8\nsize = 5\nbias = 0\n[batchnorm]\n[hardtanh]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 30\nbias = 0\n[batchnorm]\n[hardtanh]\n[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    {"dorefa_w2a2", NET "[quant]\nweight = dorefa\nact = dorefa\nbits = 2\n"
            "[conv2d]\nfilters = 8\nsize = 5\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 30\nbias = 0\n[batchnorm]\n[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    {"pact_lsq_quantized_input", NET "[quant]\nweight = lsq\nact = pact\nbits = 4\nfirst_input = quantized\n"
            "[conv2d]\nfilters = 8\nsize = 5\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    {"mlp_float_last_int16", NET "[quant]\nweight = ste_sign\nact = ste_sign\nfirst_input = float\nlast_weight = float\n"
            "[flatten]\n[linear]\noutput = 64\nbias = 0\n[batchnorm]\n[linear]\noutput = 10\n", 16, 0, "fc2", 0},
    /* a quantized first input whose LUT writes packed signs, channel counts
     * that leave padding bits in each pixel's bytes, a stride, flip bits
     * (odd index) */
    {"bnn_lut_packed", NET
            "[quant]\nweight = ste_sign\nact = ste_sign\nfirst_input = quantized\nlast_weight = quantized\n"
            "[conv2d]\nfilters = 12\nsize = 3\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[conv2d]\nfilters = 20\nsize = 3\nstride = 2\nbias = 0\n[batchnorm]\n"
            "[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    /* ALQ's multi-bit weights on the image (channel-wise groups), on
     * 4-bit activations with padding (kernel-wise), pixel-wise groups
     * (each tap's channels) and a sub-channel-wise linear layer, with
     * pruned groups (settle) */
    {"alq_multibit", NET "[quant]\nweight = alq\nweight_bits = 3\nact = pact\nact_bits = 4\n"
            "[conv2d]\nfilters = 8\nsize = 5\nbias = 0\n[batchnorm]\n[relu]\n[maxpool]\nsize = 2\n"
            "[conv2d]\nfilters = 12\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[relu]\n"
            "[conv2d]\nfilters = 16\nsize = 3\nalq_struct = pixel\nbias = 0\n[batchnorm]\n[relu]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 10\nalq_struct = subchannel\nalq_subchannels = 4\n[batchnorm]\n", 0, 0, NULL, 0},
    /* the same with emptied channels (every group 0 bits): before a padded
     * layer (dropped only where their level is 0), before a pixel-wise
     * layer (its groups shrink alike) and before the sub-channel-wise
     * linear layer (its groups shrink unequally: the offset table) */
    {"alq_emptied", NET "[quant]\nweight = alq\nweight_bits = 3\nact = pact\nact_bits = 4\n"
            "[conv2d]\nfilters = 8\nsize = 5\nbias = 0\n[batchnorm]\n[relu]\n[maxpool]\nsize = 2\n"
            "[conv2d]\nfilters = 12\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[relu]\n"
            "[conv2d]\nfilters = 16\nsize = 3\nalq_struct = pixel\nbias = 0\n[batchnorm]\n[relu]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 10\nalq_struct = subchannel\nalq_subchannels = 4\n[batchnorm]\n", 0, 1, NULL, 0},
    /* ternary rows of zeros, into a convolution and a linear layer */
    {"ternary_emptied", NET "[quant]\nweight = ternary\nact = uniform\nact_bits = 4\n"
            "[conv2d]\nfilters = 8\nsize = 5\nbias = 0\n[batchnorm]\n[relu]\n[maxpool]\nsize = 2\n"
            "[conv2d]\nfilters = 12\nsize = 3\nbias = 1\n[relu]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 10\n[batchnorm]\n", 0, 1, NULL, 0},
    /* RGB images with per-channel normalisation (CIFAR-10's): first layers
     * that read the pixels through a table of their normalised values
     * (T32), with zero padding (the normalised 0, not pixel 0), a stride,
     * +-1, AQE and DoReFa weights; a padded binary layer after one */
    {"rgb_pad_bnn", NETC "[quant]\nweight = ste_sign\nact = ste_sign\nfirst_input = float\nlast_weight = quantized\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[conv2d]\nfilters = 12\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    /* the direct convolutions into signs (kern.h qatrt_dconv): the int16
     * table first layer and binary layers of whole 32-bit words per pixel,
     * padded (every border class), strided, 1 x 1, with 1, 2 and 4 blocks
     * of 16 channels per tile */
    {"rgb_bnn_direct", NETC "[quant]\nweight = ste_sign\nact = ste_sign\nfirst_input = float\nlast_weight = quantized\n"
            "[conv2d]\nfilters = 32\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n"
            "[conv2d]\nfilters = 32\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[conv2d]\nfilters = 64\nsize = 3\nstride = 2\npad = 1\nbias = 0\n[batchnorm]\n"
            "[conv2d]\nfilters = 48\nsize = 1\nbias = 0\n[batchnorm]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    {"rgb_pad_stride_aqe", NETC "[quant]\nweight = aqe\nact = aqe\nbits = 3\nfirst_input = float\nlast_weight = quantized\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nstride = 2\nbias = 0\n[batchnorm]\n[hardtanh]\n"
            "[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    {"rgb_dorefa", NETC "[quant]\nweight = dorefa\nact = dorefa\nbits = 2\n"
            "[conv2d]\nfilters = 8\nsize = 5\nbias = 1\n[relu]\n[maxpool]\nsize = 2\n"
            "[linear]\noutput = 10\n[batchnorm]\n", 0, 0, NULL, 0},
    /* residual graphs, their streams (the float tensors shortcuts add to)
     * in float32 by integer arithmetic: ResNet-20's BNN form with option-A
     * shortcuts (a stride-2 block doubling the channels), a global pool and
     * the sign at every conv input but the image's */
    {"rgb_resnet_bnn", NETC "[quant]\nweight = ste_sign\nact = ste_sign\nfirst_input = float\nlast_weight = quantized\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[shortcut]\nfrom = -5\n"
            "[conv2d]\nfilters = 16\nsize = 3\nstride = 2\npad = 1\nbias = 0\n[batchnorm]\n"
            "[conv2d]\nfilters = 16\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[shortcut]\nfrom = -5\n"
            "[global_avgpool]\n[linear]\noutput = 10\nbias = 0\n[batchnorm]\n", 0, 0, NULL, 0},
    /* DST's ResNet-18 form: power-of-two weights and 3-bit activations, a
     * projection shortcut ([route] back to the block input, 1x1 conv + BN)
     * and a ReLU in a stream's chain; a biased linear layer gives logits */
    {"rgb_resnet_dst_proj", NETC "[quant]\nweight = dst\ndst_p = -2\nact = dst_act\nact_bits = 3\ndst_q2 = 1\n"
            "first_input = float\nlast_weight = quantized\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[relu]\n"
            "[conv2d]\nfilters = 16\nsize = 3\nstride = 2\npad = 1\nbias = 0\n[batchnorm]\n"
            "[conv2d]\nfilters = 16\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n"
            "[route]\nlayers = -5\n[conv2d]\nfilters = 16\nsize = 1\nstride = 2\nbias = 0\n[batchnorm]\n[shortcut]\nfrom = -4\n"
            "[global_avgpool]\n[linear]\noutput = 10\nbias = 1\n", 0, 0, NULL, 0},
    /* TWN's ResNet-20 form: ternary weights (scale not a power of two) and
     * float activations: with --float-layers int8 the inputs are
     * calibrated int8 levels and the streams float32(acc) times the scale,
     * so agreement, not parity */
    {"rgb_resnet_twn_float", NETC "[quant]\nweight = ternary\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[relu]\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[relu]\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[shortcut]\nfrom = -6\n[relu]\n"
            "[global_avgpool]\n[linear]\noutput = 10\nbias = 1\n", 8, 0, NULL, 0},
    /* the same without --float-layers: the layers on float inputs as X64
     * ops (int64 operands, the exact sum rounded once, the batchnorm and
     * ReLU in float32 by integers), a stride-2 block with an option-A
     * shortcut, the last layer's logits as float32 keys */
    {"rgb_resnet_twn_x64", NETC "[quant]\nweight = ternary\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[relu]\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[relu]\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[shortcut]\nfrom = -6\n[relu]\n"
            "[conv2d]\nfilters = 16\nsize = 3\nstride = 2\npad = 1\nbias = 0\n[batchnorm]\n[relu]\n"
            "[conv2d]\nfilters = 16\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[shortcut]\nfrom = -6\n[relu]\n"
            "[global_avgpool]\n[linear]\noutput = 10\nbias = 1\n", 0, 0, NULL, 1},
    /* DST's first layer kept in float (weights float on the image): an
     * X64 op on the pixel table, its stream into the 3-bit quantizer */
    {"rgb_resnet_dst_float_first", NETC "[quant]\nweight = dst\ndst_p = -2\nact = dst_act\nact_bits = 3\ndst_q2 = 1\n"
            "first_input = float\nlast_weight = quantized\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\nweight = float\n[batchnorm]\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[shortcut]\nfrom = -5\n"
            "[global_avgpool]\n[linear]\noutput = 10\nbias = 1\n", 0, 0, NULL, 1},
    /* ALQ's VGG form (vgg_small_q_alq): multi-bit weights everywhere, the
     * activations float ReLU: the padded first layer an X64 op on the
     * pixel table (its float sum exact in training too), the rest X64 ops
     * on streams, with max pools on the streams' keys after their stages
     * (2x2 and a 3x3 stride-2 window), pixel-wise groups and a
     * sub-channel-wise linear layer, with pruned groups (settle); small,
     * as its weights take 16 bits each and check_hostile tries (and runs)
     * every truncation and byte flip */
    {"rgb_vgg_alq_float_act", NETC "[quant]\nweight = alq\nweight_bits = 3\n"
            "[conv2d]\nfilters = 4\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[relu]\n"
            "[conv2d]\nfilters = 4\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[relu]\n[maxpool]\nsize = 2\n"
            "[conv2d]\nfilters = 8\nsize = 3\nstride = 2\npad = 1\nalq_struct = pixel\nbias = 0\n[batchnorm]\n[relu]\n"
            "[maxpool]\nsize = 3\nstride = 2\n"
            "[linear]\noutput = 8\nalq_struct = subchannel\nalq_subchannels = 4\nbias = 0\n[batchnorm]\n[relu]\n"
            "[linear]\noutput = 10\nbias = 1\n", 0, 0, NULL, 1},
    /* a ReLU after the add (the ADD's flag) */
    {"rgb_resnet_dst_relu", NETC "[quant]\nweight = dst\ndst_p = -2\nact = dst_act\nact_bits = 3\ndst_q2 = 1\n"
            "first_input = float\nlast_weight = quantized\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[relu]\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n"
            "[conv2d]\nfilters = 8\nsize = 3\npad = 1\nbias = 0\n[batchnorm]\n[shortcut]\nfrom = -5\n[relu]\n"
            "[global_avgpool]\n[linear]\noutput = 10\nbias = 1\n", 0, 0, NULL, 0},
};

/* qat_model_weight_storage_emptied on a model small enough to count by
 * hand: conv1's four channels (one group of 25 each), channel 1 emptied;
 * fc1 reads the 4 x 6 x 6 pooled output in two sub-channels of 72
 * (channels 0-1, then 2-3), so its first group keeps channel 0's 36 */
static void test_storage_emptied(void)
{
    const char *text = NET "[quant]\nweight = alq\nweight_bits = 2\nact = pact\nact_bits = 4\n"
                           "[conv2d]\nfilters = 4\nsize = 5\nbias = 0\n[relu]\n[maxpool]\nsize = 4\n"
                           "[linear]\noutput = 10\nalq_struct = subchannel\nalq_subchannels = 2\n";
    qat_model m;
    qat_cfg cfg;
    qat_net_cfg net;
    if (!build(text, &m, &cfg, &net)) {
        CHECK(0, "storage_emptied: does not build");
        qat_cfg_free(&cfg);
        return;
    }
    qat_alq_node c1, f1;
    qat_alq_node_get(&m.layers[0].wq, &c1);
    qat_alq_node_get(&m.layers[3].wq, &f1);
    CHECK(c1.gp.G == 4 && c1.gp.n == 25 && f1.gp.G == 20 && f1.gp.n == 72, "storage_emptied: groups %zu x %zu, %zu x %zu",
          c1.gp.G, c1.gp.n, f1.gp.G, f1.gp.n);
    ((uint8_t *)c1.I)[1] = 0; /* channel 1 emptied (its planes are not read at 0 bits) */
    double lut = qat_alq_lut_bits(c1.imax), want = 0, plain = 0, bytes = 0, wb, wbytes, fb;
    for (int c = 0; c < 4; c++)
        if (c != 1) want += c1.I[c] * 25.0 + 32.0 * c1.I[c] + lut;
    plain = want + lut; /* the plain count keeps channel 1's table entry */
    for (int r = 0; r < 10; r++) {
        int a = f1.I[2 * r], b = f1.I[2 * r + 1];
        want += a * 36.0 + 32.0 * a + lut + b * 72.0 + 32.0 * b + lut;
        plain += a * 72.0 + 32.0 * a + lut + b * 72.0 + 32.0 * b + lut;
    }
    int ch = 0;
    CHECK(qat_model_weight_storage_emptied(&m, &bytes, &ch) == 1 && ch == 1 && bytes == want / 8,
          "storage_emptied: %d channels, %.3f bytes; by hand 1, %.3f", ch, bytes, want / 8);
    qat_model_weight_storage(&m, &wb, &wbytes, &fb);
    CHECK(wbytes == plain / 8, "storage_emptied: the plain count %.3f bytes; by hand %.3f", wbytes, plain / 8);
    printf("  storage with emptied channels removed: %.1f of %.1f bytes, as counted by hand\n", bytes, wbytes);
    qat_model_free(&m);
    qat_cfg_free(&cfg);
}

/* the emptied channels of uc: exported with keep_emptied too, both in
 * parity; dropping them removes channels (the count the export reports),
 * shrinks the file, and for ALQ leaves a multi-bit op with unequal groups */
static void check_emptied(const unit_case *uc, qat_model *m, const qat_export_opts *o, const qat_export_result *r,
                          const uint8_t *img, int n, const float *fl)
{
    qat_export_opts keep = *o;
    keep.keep_emptied = 1;
    qat_export_result rk;
    if (qat_export(m, &keep, &rk) != QAT_OK) {
        CHECK(0, "%s: export keeping emptied channels: %s", uc->name, qat_last_error());
        return;
    }
    qatrt_model a, b;
    int ca = 0, cb = 0, unequal = 0;
    CHECK(qatrt_load(&a, r->bytes, r->size, NULL) == QATRT_OK && qatrt_load(&b, rk.bytes, rk.size, NULL) == QATRT_OK,
          "%s: load", uc->name);
    for (int i = 0; i < a.nops; i++) {
        ca += a.ops[i].type == QATRT_OP_CONV ? a.ops[i].cout : 0;
        unequal += a.ops[i].type == QATRT_OP_CONV && a.ops[i].kernel == QATRT_K_MB && a.ops[i].mb.n == 0;
    }
    for (int i = 0; i < b.nops; i++) cb += b.ops[i].type == QATRT_OP_CONV ? b.ops[i].cout : 0;
    int32_t *il = malloc(sizeof(int32_t) * (size_t)n * m->nclass);
    run_all_isas(&b, img, n, il, uc->name);
    parity p = compare(fl, il, n, m->nclass);
    printf("  %s: %d emptied channels dropped (%zu bytes; %zu kept), %d with them kept: parity %d/%d\n", uc->name,
           r->emptied, r->size, rk.size, rk.emptied, p.differ, n);
    CHECK(rk.emptied == 0 && r->emptied > 0 && ca == cb - r->emptied && r->size < rk.size,
          "%s: emptied %d (kept: %d), channels %d vs %d, %zu vs %zu bytes", uc->name, r->emptied, rk.emptied, ca, cb,
          r->size, rk.size);
    CHECK(p.differ_far == 0, "%s: keeping emptied channels: %d predictions differ", uc->name, p.differ_far);
    if (!strncmp(uc->name, "alq", 3)) CHECK(unequal > 0, "%s: no multi-bit op with unequal groups", uc->name);
    free(il);
    qat_export_free(&rk);
}

/* The unit part runs as two tests, which meson runs side by side: under
 * ASan the whole took ~410 s on one core, most of it in a few cases'
 * hostile checks. Shard 1 is these cases, shard 0 the rest (with cases 0
 * and 1, which the workspace-reuse check needs); each takes ~200 s under
 * ASan. shard -1: every case. */
static const char *const shard1[] = {
    "rgb_pad_bnn",    "rgb_bnn_direct",       "rgb_pad_stride_aqe",         "rgb_dorefa",
    "rgb_resnet_bnn", "rgb_resnet_twn_float", "rgb_resnet_dst_float_first", "rgb_resnet_dst_relu",
};
static int case_shard(const char *name)
{
    for (size_t i = 0; i < sizeof shard1 / sizeof shard1[0]; i++)
        if (!strcmp(shard1[i], name)) return 1;
    return 0;
}

static void test_unit(int shard)
{
    uint8_t *keep_bytes[2] = {NULL, NULL};
    size_t keep_size[2] = {0, 0};
    int32_t *keep_logits[2] = {NULL, NULL};
    uint8_t *keep_img[2] = {NULL, NULL};
    int ascend_checked = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const unit_case *uc = &cases[ci];
        if (shard >= 0 && case_shard(uc->name) != shard) continue;
        qat_model m;
        qat_cfg cfg;
        qat_net_cfg net;
        if (!build(uc->text, &m, &cfg, &net)) {
            CHECK(0, "%s: does not build", uc->name);
            qat_cfg_free(&cfg);
            continue;
        }
        settle(&m, &net, 11 + ci);
        if (uc->empty) empty_channels(&m);
        int n = 500;
        size_t isz = (size_t)m.c * m.h * m.w;
        uint8_t *img = malloc(isz * (size_t)n);
        random_images(img, isz * (size_t)n, 100 + ci);
        float *cx = malloc(sizeof(float) * isz * 256);
        qat_data_normalize(img, 256, m.c, isz / (size_t)m.c, net.mean, net.std, net.pixel_grid, cx);
        /* odd cases keep negative BN scales as the runtime's flip bits */
        qat_export_opts o = {.float_bits = uc->float_bits, .mean = net.mean, .std = net.std, .pixel_grid = net.pixel_grid, .calib_x = cx, .calib_n = 256,
                             .keep_flips = (int)(ci & 1)};
        qat_export_result r;
        /* without --float-layers a float layer is refused, naming it */
        if (uc->refused) {
            qat_export_opts strict = o;
            strict.float_bits = 0;
            CHECK(qat_export(&m, &strict, &r) != QAT_OK && strstr(qat_last_error(), uc->refused) &&
                      strstr(qat_last_error(), "--float-layers"),
                  "%s: a float layer is not refused by name: %s", uc->name, qat_last_error());
        }
        qat_status st = qat_export(&m, &o, &r);
        CHECK(st == QAT_OK, "%s: export: %s", uc->name, qat_last_error());
        if (st == QAT_OK) {
            qatrt_model rm;
            qatrt_error err;
            CHECK(qatrt_load(&rm, r.bytes, r.size, &err) == QATRT_OK, "%s: load: %s", uc->name, err.msg);
            float *fl = malloc(sizeof(float) * (size_t)n * m.nclass);
            int32_t *il = malloc(sizeof(int32_t) * (size_t)n * m.nclass);
            CHECK(qat_export_float_logits(&m, img, n, net.mean, net.std, net.pixel_grid, fl) == QAT_OK, "float logits");
            run_all_isas(&rm, img, n, il, uc->name);
            parity p = compare(fl, il, n, m.nclass);
            printf("  %s: %s %d/%d predictions differ (%d near-ties of 1e-5), %zu bytes; %s", uc->name,
                   r.exact ? "parity" : "agreement", p.differ, n, p.near_tie, r.size, r.kernels);
            CHECK(r.exact == !(uc->float_bits || uc->float_math), "%s: exact flag %d", uc->name, r.exact);
            CHECK(!uc->float_math || strstr(r.kernels, "int64"), "%s: no X64 op: %s", uc->name, r.kernels);
            if (r.exact || uc->float_math)
                CHECK(p.differ_far == 0, "%s: %d predictions differ from the float model's", uc->name, p.differ_far);
            else CHECK(p.differ <= n / 50, "%s: agreement too low (%d of %d differ)", uc->name, p.differ, n);
            check_reference(&rm, img, n, il, uc->name);
            check_csource(&r, img, 40, il, uc->name);
            if (uc->empty) check_emptied(uc, &m, &o, &r, img, n, fl);
            if (getenv("QAT_QNN_OUT")) { /* seeds for scripts/fuzz-qnn */
                char path[600];
                snprintf(path, sizeof path, "%s/%s.qnn", getenv("QAT_QNN_OUT"), uc->name);
                CHECK(qat_export_write_file(path, r.bytes, r.size) == QAT_OK, "%s", qat_last_error());
            }
            if (ci < 2 || uc->float_math) check_hostile(&r, uc->name); /* (the X64 reader too) */
            if (ci < 2) check_versions(&r, &m, &o, img, n, il, uc->name);
            if (!strcmp(uc->name, "rgb_vgg_alq_float_act")) check_x64_mb(&r, uc->name);
            if (!strncmp(uc->name, "alq", 3))
                printf("  %s: %d broken multi-bit blobs refused\n", uc->name, check_mb_hostile(&r, uc->name));
            ascend_checked += check_ascending(&r, uc->name);
            if (ci < 2) { /* kept for the workspace-reuse check: both 28x28x1 */
                keep_bytes[ci] = malloc(r.size);
                memcpy(keep_bytes[ci], r.bytes, r.size);
                keep_size[ci] = r.size;
                keep_logits[ci] = malloc(sizeof(int32_t) * (size_t)n * m.nclass);
                memcpy(keep_logits[ci], il, sizeof(int32_t) * (size_t)n * m.nclass);
                keep_img[ci] = malloc(isz * (size_t)n);
                memcpy(keep_img[ci], img, isz * (size_t)n);
            }
            free(fl);
            free(il);
            qat_export_free(&r);
        }
        free(img);
        free(cx);
        qat_model_free(&m);
        qat_cfg_free(&cfg);
    }
    CHECK(ascend_checked > 0, "no model had a channel with two distinct thresholds to swap");
    printf("  descending thresholds refused by name in %d models\n", ascend_checked);
    if (shard == 1) return; /* the workspace-reuse check's two models are shard 0's */
    qatrt_model ma, mb;
    if (keep_bytes[0] && keep_bytes[1] && qatrt_load(&ma, keep_bytes[0], keep_size[0], NULL) == QATRT_OK &&
        qatrt_load(&mb, keep_bytes[1], keep_size[1], NULL) == QATRT_OK)
        check_reuse(&ma, keep_logits[0], keep_img[0], &mb, keep_logits[1], keep_img[1], 500);
    else
        CHECK(0, "the two models for the workspace-reuse check did not export");
    for (int i = 0; i < 2; i++) free(keep_bytes[i]), free(keep_logits[i]), free(keep_img[i]);
}

/* ---- the MNIST configs ---------------------------------------------------- */

/* Each is trained for a few steps of a 1-epoch schedule: enough for a model
 * that decides (parity on a model that answers "7" to every image would
 * prove little, so the integer accuracy must reach MIN_ACCURACY).
 * lenet5_aqe_w3a3 needs most of its epoch: evaluation uses the pure 3-bit
 * quantizer h (Eq. 20) while training still mixes in the identity (Eq. 18,
 * alpha < 1), and with small weights h is mostly 0; after 120 steps that
 * model answers one class to every image, after 400 (alpha = 1 at 344) it
 * decides. */
typedef struct {
    const char *name;
    int steps;
} mnist_case;

static const mnist_case mnist_configs[] = {
    {"lenet5_bnn", 120},         {"mlp_bnn", 120},          {"lenet5_xnor", 120},
    {"lenet5_twn", 120},         {"lenet5_tnn", 120},       {"lenet5_dorefa_w2a2", 120},
    {"lenet5_pact_w4a4", 120},   {"lenet5_lsq_w2a2", 120},  {"lenet5_sr_w4a4", 120},
    {"lenet5_aqe_bnn", 120},     {"lenet5_aqe_tnn", 120},   {"lenet5_aqe_w3a3", 400},
    {"lenet5_dst_w3a3", 120},    {"lenet5_alq_pact4", 120},
};
#define MIN_ACCURACY 0.5

/* mnist: the folder of the MNIST-family set `dataset` names ("mnist", or
 * "fashion-mnist" on a machine without $QAT_DATA: parity holds the same
 * way, and MIN_ACCURACY is well within both) */
static void test_data(const char *mnist, const char *dataset)
{
    char tmp[] = "/tmp/qat-export-XXXXXX";
    if (!mkdtemp(tmp)) return;
    qat_dataset train = {0}, test = {0};
    if (qat_data_load(&train, &test, dataset, mnist) != QAT_OK) {
        CHECK(0, "load %s: %s", dataset, qat_last_error());
        return;
    }
    for (size_t i = 0; i < sizeof mnist_configs / sizeof mnist_configs[0]; i++) {
        const char *name = mnist_configs[i].name;
        char cfgp[700], out[700], ck[800];
        snprintf(cfgp, sizeof cfgp, "%s/configs/mnist/%s.cfg", src_root, name);
        snprintf(out, sizeof out, "%s/%s", tmp, name);
        qat_train_opts to = {.cfg_path = cfgp, .data_dir = mnist, .dataset = dataset, .out_dir = out, .epochs = 1,
                             .seed = -1, .threads = 2, .max_steps = mnist_configs[i].steps};
        qat_train_result tr;
        if (qat_train(&to, &tr) != QAT_OK) {
            CHECK(0, "%s: train: %s", name, qat_last_error());
            continue;
        }
        snprintf(ck, sizeof ck, "%s/last.ckpt", out);
        qat_model m;
        qat_cfg cfg;
        qat_net_cfg net;
        if (qat_checkpoint_open_model(ck, 256, 2, &m, &cfg, &net) != QAT_OK) {
            CHECK(0, "%s: open: %s", name, qat_last_error());
            continue;
        }
        qat_export_opts o = {.mean = net.mean, .std = net.std, .pixel_grid = net.pixel_grid};
        qat_export_result r;
        qat_status st = qat_export(&m, &o, &r);
        float *cx = NULL;
        if (st != QAT_OK && strstr(qat_last_error(), "--float-layers")) {
            /* a config with float layers: quantized after training */
            size_t isz = (size_t)m.c * m.h * m.w;
            int nc = 1024;
            cx = malloc(sizeof(float) * isz * nc);
            qat_data_normalize(train.images, (size_t)nc, m.c, isz / (size_t)m.c, net.mean, net.std, net.pixel_grid, cx);
            o.float_bits = 16;
            o.calib_x = cx;
            o.calib_n = nc;
            st = qat_export(&m, &o, &r);
        }
        CHECK(st == QAT_OK, "%s: export: %s", name, qat_last_error());
        if (st == QAT_OK) {
            qatrt_model rm;
            qatrt_error err;
            if (qatrt_load(&rm, r.bytes, r.size, &err) != QATRT_OK) {
                CHECK(0, "%s: the export does not load: %s", name, err.msg);
                qat_export_free(&r);
                free(cx);
                qat_model_free(&m);
                qat_cfg_free(&cfg);
                continue;
            }
            int n = test.n, K = m.nclass;
            float *fl = malloc(sizeof(float) * (size_t)n * K);
            int32_t *il = malloc(sizeof(int32_t) * (size_t)n * K);
            qat_export_float_logits(&m, test.images, n, net.mean, net.std, net.pixel_grid, fl);
            CHECK(qat_qnn_run(&rm, test.images, n, 128, 2, il) == QAT_OK, "%s: run", name);
            parity p = compare(fl, il, n, K);
            int correct = 0;
            for (int j = 0; j < n; j++) {
                int b = 0;
                for (int k = 1; k < K; k++)
                    if (il[(size_t)j * K + k] > il[(size_t)j * K + b]) b = k;
                correct += b == test.labels[j];
            }
            double acc = (double)correct / n;
            printf("%-20s %s: %d of %d predictions differ (%d where the float logits tie within 1e-5; %d near-ties); "
                   "integer accuracy %.4f; %zu bytes%s%s\n",
                   name, r.exact ? "parity" : "agreement", p.differ, n, p.differ - p.differ_far, p.near_tie,
                   acc, r.size, r.exact ? "" : "; approximate: ", r.exact ? "" : r.approx);
            CHECK(acc >= MIN_ACCURACY, "%s: integer accuracy %.4f after %d steps: too little to test parity on", name,
                  acc, mnist_configs[i].steps);
            if (r.exact) CHECK(p.differ_far == 0, "%s: %d predictions differ", name, p.differ_far);
            else CHECK(p.differ <= n / 100, "%s: agreement below 99%% (%d differ)", name, p.differ);
            free(fl);
            free(il);
            qat_export_free(&r);
        }
        free(cx);
        qat_model_free(&m);
        qat_cfg_free(&cfg);
    }
    qat_dataset_free(&train);
    qat_dataset_free(&test);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmp);
}

int main(int argc, char **argv)
{
    const char *part = argc > 1 ? argv[1] : "unit";
    if (argc > 2) src_root = argv[2];
    if (!strncmp(part, "unit", 4)) { /* unit: every case; unit0, unit1: a shard (test_unit) */
        int shard = part[4] ? atoi(part + 4) : -1;
        if (shard > 1 || (part[4] && (part[4] < '0' || part[4] > '9'))) {
            fprintf(stderr, "test_export: unknown part %s (unit, unit0, unit1, data)\n", part);
            return 2;
        }
        if (shard <= 0) test_storage_emptied();
        test_unit(shard);
    } else {
        char mnist[600];
        const char *dataset = NULL;
        if (!qat_test_idx_data(mnist, sizeof mnist, &dataset)) {
            printf("skip: %s\n", mnist);
            return 77;
        }
        if (strcmp(dataset, "mnist")) printf("note: no $QAT_DATA/mnist: the configs train on %s (%s)\n", dataset, mnist);
        test_data(mnist, dataset);
    }
    printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
