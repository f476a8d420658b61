/* test_noalloc.c: a training step allocates nothing. malloc and friends are
 * wrapped at link time (-Wl,--wrap) for everything in libqat; after the
 * first step we count calls over further steps (loader on its background
 * thread included; data-parallel steps with sync_bn through an in-process
 * hook too) and check that the arena and scratch high-water marks do not
 * move. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer.h"

static volatile int counting;
static volatile long calls;

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);

void *__wrap_malloc(size_t n)
{
    if (counting) __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t a, size_t b)
{
    if (counting) __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    return __real_calloc(a, b);
}
void *__wrap_realloc(void *p, size_t n)
{
    if (counting) __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n)
{
    if (counting) __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    return __real_aligned_alloc(a, n);
}

static qat_status mirror_allreduce(void *user, float *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) buf[i] *= 2;
    return QAT_OK;
}

static qat_status mirror_allgather(void *user, const void *in, size_t nbytes, void *out)
{
    memcpy(out, in, nbytes);
    memcpy((char *)out + nbytes, in, nbytes);
    return QAT_OK;
}

/* every kind of op and quantizer state: DST's owned weights, LSQ and PACT
 * parameters, AQE's schedule, stochastic rounding, DoReFa gradients, binary
 * convs on XOR-popcount (padded, stride 2, 1x1) in a projection block */
static const char cfg_text[] =
    "[net]\nbatch = 32\noptimizer = adam\nlr = 0.001\n"
    "[conv2d]\nfilters = 8\nsize = 5\nbias = 0\nweight = dst\n[batchnorm]\n[relu]\n[maxpool]\n"
    "[conv2d]\nfilters = 16\nsize = 3\npad = 1\nweight = lsq\nact = pact\nbits = 4\n[batchnorm]\n[hardtanh]\n"
    "[conv2d]\nfilters = 16\nsize = 3\nstride = 2\npad = 1\nweight = ste_sign\nact = ste_sign\n[batchnorm]\n"
    "[route]\nlayers = -3\n[conv2d]\nfilters = 16\nsize = 1\nstride = 2\nweight = ste_sign\nact = ste_sign\n"
    "[shortcut]\nfrom = -3\n"
    "[avgpool]\n"
    "[dropout]\np = 0.2\n[linear]\noutput = 64\nweight = aqe\nact = aqe\nbits = 2\n[batchnorm]\n[relu]\n"
    "[linear]\noutput = 10\nweight = stochastic\nact = uniform\nbits = 4\ngrad_bits = 4\n";

int main(void)
{
    int fail = 0;
    qat_cfg cfg;
    qat_net_cfg net;
    qat_layer *layers;
    int nl;
    qat_model m;
    if (qat_cfg_parse_text(&cfg, "noalloc.cfg", cfg_text, strlen(cfg_text)) || qat_netcfg_read(&cfg, &net, &layers, &nl) ||
        qat_model_build(&m, layers, nl, 1, 28, 28, net.batch, 2, 1)) {
        printf("FAIL setup: %s\n", qat_last_error());
        return 1;
    }
    qat_optimizer o;
    qat_optimizer_init(&o, &m, &net.optim);

    /* a small synthetic dataset behind the real loader, with its thread */
    qat_dataset ds = {.name = "synthetic", .n = 100, .c = 1, .h = 28, .w = 28, .nclass = 10};
    ds.images = malloc(100 * 784);
    ds.labels = malloc(100);
    qat_rng r;
    qat_rng_seed(&r, 5);
    for (int i = 0; i < 100 * 784; i++) ds.images[i] = (uint8_t)qat_rng_below(&r, 256);
    for (int i = 0; i < 100; i++) ds.labels[i] = (uint8_t)qat_rng_below(&r, 10);
    qat_loader_cfg lc = {.batch = 32, .shuffle = 1, .seed = 3, .background = 1, .mean = {0.1f}, .std = {0.3f},
                         .crop_pad = 2, .flip = 1};
    qat_loader *l;
    if (qat_loader_init(&l, &ds, &lc)) {
        printf("FAIL loader: %s\n", qat_last_error());
        return 1;
    }
    qat_loader_begin(l, 0);
    int n = qat_loader_next(l, m.input->x, m.labels);
    qat_train_step(&m, &o, &net, 1e-3f, n); /* the first step may settle things */
    size_t arena = m.g.arena_used, high = m.g.scratch_high;

    /* the wrap works: something in libqat that allocates is seen */
    counting = 1;
    qat_cfg probe;
    qat_cfg_parse_text(&probe, "probe.cfg", "[net]\n", 6);
    qat_cfg_free(&probe);
    counting = 0;
    if (calls == 0) printf("FAIL: malloc wrapping sees nothing\n"), fail = 1;
    calls = 0;

    counting = 1;
    for (int epoch = 0; epoch < 3; epoch++) {
        qat_loader_begin(l, epoch + 1);
        while ((n = qat_loader_next(l, m.input->x, m.labels)) > 0) /* 32, 32, 32, then a partial 4 */
        {
            qat_model_schedule(&m, epoch, 3);
            float loss;
            int skipped;
            if (qat_train_step_checked(&m, &o, &net, 1e-3f, n, &loss, &skipped) != QAT_OK)
                printf("FAIL step: %s\n", qat_last_error()), fail = 1;
        }
    }
    /* data-parallel steps with sync_bn (batchnorm's exchanges in the
     * forward and backward) through a mirror hook: the other rank holds
     * the same batch, so a sum over the ranks is twice this one's */
    counting = 0;
    qat_gradcomm gc;
    if (qat_train_gradcomm_init(&gc, &m, QAT_GRADCOMM_FP32, 2) != QAT_OK) {
        printf("FAIL gradcomm: %s\n", qat_last_error());
        return 1;
    }
    qat_comm mirror = {.rank = 0, .size = 2, .allreduce_sum = mirror_allreduce, .allgather = mirror_allgather};
    qat_train_dist d = {.comm = &mirror, .gc = &gc};
    net.sync_bn = 1;
    counting = 1;
    qat_loader_begin(l, 4);
    while ((n = qat_loader_next(l, m.input->x, m.labels)) > 0) {
        float loss;
        int skipped;
        d.n_global = 2 * n;
        if (qat_train_step_dist(&m, &o, &net, 1e-3f, n, NULL, &d, &loss, &skipped) != QAT_OK)
            printf("FAIL sync_bn step: %s\n", qat_last_error()), fail = 1;
    }
    counting = 0;
    if (d.bn_bytes_sent <= 0) printf("FAIL: the sync_bn steps exchanged nothing\n"), fail = 1;
    printf("allocations during 16 steps (4 with sync_bn): %ld; arena %zu -> %zu bytes; scratch high-water %zu -> %zu "
           "bytes\n", calls, arena, m.g.arena_used, high, m.g.scratch_high);
    if (calls != 0) printf("FAIL: the training step allocated %ld times\n", calls), fail = 1;
    if (m.g.arena_used != arena || m.g.scratch_high != high) printf("FAIL: arena or scratch high-water moved\n"), fail = 1;
    if (high == 0) printf("FAIL: scratch never used (the test would not see growth)\n"), fail = 1;

    qat_gradcomm_free(&gc);
    qat_loader_free(l);
    qat_dataset_free(&ds);
    qat_optimizer_free(&o);
    qat_model_free(&m);
    qat_cfg_free(&cfg);
    printf("%s\n", fail ? "FAILED" : "ok");
    return fail;
}
