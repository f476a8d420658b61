/* loader.c: turns a qat_dataset into normalised, optionally augmented float
 * batches. The order of an epoch depends only on (seed, epoch), an image's crop
 * and flip only on (seed, epoch, its index); one function fills a batch,
 * whether the caller's thread or the worker runs it, so background and
 * foreground agree bit for bit. Everything is allocated in qat_loader_init. */
#include "dataset.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct qat_loader {
    const qat_dataset *ds;
    qat_loader_cfg cfg;
    size_t per;         /* c*h*w */
    size_t plane;       /* h*w */
    int nbatches;
    uint32_t *perm;     /* order of the current epoch */
    float lut[3][256];  /* pixel -> normalised value, per channel */
    int begun;
    int epoch;          /* of the current order, for the augmentation streams */
    int cursor;         /* next batch to hand out */
    int part, parts;    /* qat_loader_set_part: this loader's share of each batch */

    /* background: the worker fills bx/by with batch job_batch */
    int background;
    float *bx;
    int32_t *by;
    int posted;         /* caller side: a job is out and not yet consumed */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_done;
    int job, done, quit, job_batch, job_count;
};

uint64_t qat_loader_epoch_seed(uint64_t seed, int epoch)
{
    /* splitmix64 finaliser over seed, then again with the epoch folded in:
     * nearby (seed, epoch) pairs give unrelated streams. */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    z ^= (uint64_t)(uint32_t)epoch * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void qat_loader_augment_draw(uint64_t seed, int epoch, uint32_t index, int crop_pad, int flip,
                             int *oy, int *ox, int *flipped)
{
    /* the epoch's stream (salted apart from the shuffle's), then the index
     * folded in by one more splitmix round: neighbouring images get
     * unrelated draws */
    uint64_t z = qat_loader_epoch_seed(seed ^ 0x6A09E667F3BCC909ull, epoch) +
                 ((uint64_t)index + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    qat_rng r;
    qat_rng_seed(&r, z ^ (z >> 31));
    /* always three draws, so one setting never shifts another's stream */
    uint32_t span = 2u * (uint32_t)(crop_pad > 0 ? crop_pad : 0) + 1u;
    *oy = (int)qat_rng_below(&r, span);
    *ox = (int)qat_rng_below(&r, span);
    int f = (int)qat_rng_below(&r, 2);
    *flipped = flip ? f : 0;
}

/* One image cropped from its zero-padded copy and maybe mirrored: padding
 * is pixel 0, i.e. lut[0] = -mean/std after normalisation, as torchvision pads
 * the image before ToTensor and Normalize. */
static void loader_augment(const qat_loader *l, uint32_t idx, const uint8_t *src, float *dst)
{
    const qat_dataset *ds = l->ds;
    int oy, ox, flipped, pad = l->cfg.crop_pad, h = ds->h, w = ds->w;
    qat_loader_augment_draw(l->cfg.seed, l->epoch, idx, pad, l->cfg.flip, &oy, &ox, &flipped);
    for (int c = 0; c < ds->c; c++) {
        const float *lut = l->lut[c];
        const uint8_t *s = src + (size_t)c * l->plane;
        float *d = dst + (size_t)c * l->plane;
        for (int yy = 0; yy < h; yy++, d += w) {
            int sy = yy + oy - pad;
            if (sy < 0 || sy >= h) {
                for (int xx = 0; xx < w; xx++)
                    d[xx] = lut[0];
                continue;
            }
            const uint8_t *row = s + (size_t)sy * (size_t)w;
            for (int xx = 0; xx < w; xx++) {
                int sx = (flipped ? w - 1 - xx : xx) + ox - pad;
                d[xx] = sx >= 0 && sx < w ? lut[row[sx]] : lut[0];
            }
        }
    }
}

/* Fills x, y with batch b of the current epoch; returns its image count. */
static int loader_fill(const qat_loader *l, int b, float *x, int32_t *y)
{
    const qat_dataset *ds = l->ds;
    size_t first = (size_t)b * (size_t)l->cfg.batch;
    size_t count = (size_t)ds->n - first;
    int augment = l->cfg.crop_pad > 0 || l->cfg.flip;
    if (count > (size_t)l->cfg.batch)
        count = (size_t)l->cfg.batch;
    if (l->parts > 1) { /* a contiguous share: the first count % parts parts get one more */
        size_t q = count / (size_t)l->parts, r = count % (size_t)l->parts, k = (size_t)l->part;
        first += k * q + (k < r ? k : r);
        count = q + (k < r);
    }
    for (size_t i = 0; i < count; i++) {
        uint32_t idx = l->perm[first + i];
        const uint8_t *src = ds->images + (size_t)idx * l->per;
        float *dst = x + i * l->per;
        if (augment) {
            loader_augment(l, idx, src, dst);
        } else {
            for (int c = 0; c < ds->c; c++) {
                const float *lut = l->lut[c];
                const uint8_t *s = src + (size_t)c * l->plane;
                float *d = dst + (size_t)c * l->plane;
                for (size_t p = 0; p < l->plane; p++)
                    d[p] = lut[s[p]];
            }
        }
        y[i] = ds->labels[idx];
    }
    return (int)count;
}

static void *loader_worker(void *arg)
{
    qat_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->job && !l->quit)
            pthread_cond_wait(&l->cv_job, &l->mu);
        if (l->quit)
            break;
        int b = l->job_batch;
        l->job = 0;
        pthread_mutex_unlock(&l->mu);
        int count = loader_fill(l, b, l->bx, l->by);
        pthread_mutex_lock(&l->mu);
        l->job_count = count;
        l->done = 1;
        pthread_cond_signal(&l->cv_done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void loader_post(qat_loader *l, int b)
{
    pthread_mutex_lock(&l->mu);
    l->job_batch = b;
    l->job = 1;
    l->done = 0;
    pthread_cond_signal(&l->cv_job);
    pthread_mutex_unlock(&l->mu);
    l->posted = 1;
}

/* Waits for the posted job; returns its image count. */
static int loader_wait(qat_loader *l)
{
    pthread_mutex_lock(&l->mu);
    while (!l->done)
        pthread_cond_wait(&l->cv_done, &l->mu);
    l->done = 0;
    int count = l->job_count;
    pthread_mutex_unlock(&l->mu);
    l->posted = 0;
    return count;
}

static qat_status loader_check(const qat_dataset *ds, const qat_loader_cfg *cfg)
{
    if (!ds || !cfg)
        return qat_error_set(QAT_ERR_ARG, "qat_loader_init: dataset or cfg is NULL");
    if (ds->n < 1 || !ds->images || !ds->labels)
        return qat_error_set(QAT_ERR_ARG, "%s: dataset is empty, expected at least one image",
                             ds->name);
    if (ds->c < 1 || ds->c > 3 || ds->h < 1 || ds->w < 1)
        return qat_error_set(QAT_ERR_ARG, "%s: image shape %dx%dx%d, expected 1..3 channels",
                             ds->name, ds->c, ds->h, ds->w);
    if (cfg->batch < 1)
        return qat_error_set(QAT_ERR_ARG, "%s: batch %d, expected > 0", ds->name, cfg->batch);
    if (cfg->crop_pad < 0 || cfg->crop_pad > QAT_LOADER_MAX_PAD || (cfg->flip != 0 && cfg->flip != 1))
        return qat_error_set(QAT_ERR_ARG, "%s: crop_pad %d, flip %d, expected 0..%d and 0 or 1",
                             ds->name, cfg->crop_pad, cfg->flip, QAT_LOADER_MAX_PAD);
    if (cfg->grid < 0 || cfg->grid > QAT_PIXEL_GRID_MAX)
        return qat_error_set(QAT_ERR_ARG, "%s: pixel grid %d, expected 0..%d", ds->name, cfg->grid, QAT_PIXEL_GRID_MAX);
    if (cfg->drop_last && cfg->batch > ds->n)
        return qat_error_set(QAT_ERR_ARG,
                             "%s: batch %d with drop_last over %d images gives no batch, "
                             "expected batch <= %d",
                             ds->name, cfg->batch, ds->n, ds->n);
    for (int c = 0; c < ds->c; c++)
        if (!isfinite(cfg->mean[c]) || !isfinite(cfg->std[c]) || !(cfg->std[c] > 0.0f))
            return qat_error_set(QAT_ERR_ARG,
                                 "%s: channel %d normalisation mean %g std %g, expected finite "
                                 "values and std > 0",
                                 ds->name, c, (double)cfg->mean[c], (double)cfg->std[c]);
    return QAT_OK;
}

qat_status qat_loader_init(qat_loader **out, const qat_dataset *ds, const qat_loader_cfg *cfg)
{
    if (!out)
        return qat_error_set(QAT_ERR_ARG, "qat_loader_init: out is NULL");
    *out = NULL;
    qat_status s = loader_check(ds, cfg);
    if (s)
        return s;
    qat_loader *l = calloc(1, sizeof *l);
    if (!l)
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for the loader", ds->name);
    l->ds = ds;
    l->cfg = *cfg;
    l->plane = (size_t)ds->h * (size_t)ds->w;
    l->per = (size_t)ds->c * l->plane;
    l->nbatches = cfg->drop_last ? ds->n / cfg->batch
                                 : (int)(((long long)ds->n + cfg->batch - 1) / cfg->batch);
    for (int c = 0; c < ds->c; c++)
        for (int p = 0; p < 256; p++)
            l->lut[c][p] = qat_data_pixel_grid((uint8_t)p, cfg->mean[c], cfg->std[c], cfg->grid);
    l->perm = malloc((size_t)ds->n * sizeof *l->perm);
    if (!l->perm) {
        free(l);
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for a %d-image permutation",
                             ds->name, ds->n);
    }
    if (cfg->background) {
        size_t nb = (size_t)cfg->batch;
        l->bx = malloc(nb * l->per * sizeof *l->bx);
        l->by = malloc(nb * sizeof *l->by);
        if (!l->bx || !l->by) {
            s = qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for a %d-image batch buffer",
                              ds->name, cfg->batch);
            goto fail;
        }
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv_job, NULL);
        pthread_cond_init(&l->cv_done, NULL);
        int e = pthread_create(&l->thread, NULL, loader_worker, l);
        if (e) {
            pthread_cond_destroy(&l->cv_done);
            pthread_cond_destroy(&l->cv_job);
            pthread_mutex_destroy(&l->mu);
            s = qat_error_set(QAT_ERR_MEMORY, "%s: cannot start the loader thread: %s", ds->name,
                              strerror(e));
            goto fail;
        }
        l->background = 1;
    }
    *out = l;
    return QAT_OK;
fail:
    free(l->bx);
    free(l->by);
    free(l->perm);
    free(l);
    return s;
}

void qat_loader_free(qat_loader *l)
{
    if (!l)
        return;
    if (l->background) {
        pthread_mutex_lock(&l->mu);
        l->quit = 1;
        pthread_cond_signal(&l->cv_job);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_cond_destroy(&l->cv_done);
        pthread_cond_destroy(&l->cv_job);
        pthread_mutex_destroy(&l->mu);
    }
    free(l->bx);
    free(l->by);
    free(l->perm);
    free(l);
}

int qat_loader_nbatches(const qat_loader *l) { return l ? l->nbatches : 0; }

void qat_loader_set_part(qat_loader *l, int part, int parts)
{
    QAT_ASSERT(l && parts >= 1 && part >= 0 && part < parts);
    if (l->posted) /* the worker reads part: let it finish */
        loader_wait(l);
    l->part = part;
    l->parts = parts;
}

void qat_loader_begin(qat_loader *l, int epoch)
{
    QAT_ASSERT(l && epoch >= 0);
    /* The worker reads perm: let it finish before the order changes. */
    if (l->posted)
        loader_wait(l);
    uint32_t n = (uint32_t)l->ds->n;
    if (l->cfg.shuffle) {
        qat_rng r;
        qat_rng_seed(&r, qat_loader_epoch_seed(l->cfg.seed, epoch));
        qat_rng_permutation(&r, l->perm, n);
    } else {
        for (uint32_t i = 0; i < n; i++)
            l->perm[i] = i;
    }
    l->epoch = epoch;
    l->cursor = 0;
    l->begun = 1;
    if (l->background && l->nbatches > 0)
        loader_post(l, 0);
}

int qat_loader_next(qat_loader *l, float *x, int32_t *y)
{
    QAT_ASSERT(l && l->begun && x && y);
    if (l->cursor >= l->nbatches)
        return 0;
    int count;
    if (l->background) {
        QAT_ASSERT(l->posted);
        count = loader_wait(l);
        memcpy(x, l->bx, (size_t)count * l->per * sizeof *x);
        memcpy(y, l->by, (size_t)count * sizeof *y);
        if (l->cursor + 1 < l->nbatches)
            loader_post(l, l->cursor + 1);
    } else {
        count = loader_fill(l, l->cursor, x, y);
    }
    l->cursor++;
    return count;
}

void qat_data_normalize(const uint8_t *images, size_t n, int c, size_t hw, const float *mean, const float *std, int grid,
                        float *out)
{
    for (size_t i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            size_t o = (i * (size_t)c + (size_t)ch) * hw;
            for (size_t j = 0; j < hw; j++) out[o + j] = qat_data_pixel_grid(images[o + j], mean[ch], std[ch], grid);
        }
}
