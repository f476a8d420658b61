/* evaluate.c: the float model's logits and the integer runtime's, on uint8
 * images, for parity checks, `qat infer` and the benchmarks. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "export.h"
#include "qatrt.h"

qat_status qat_export_float_logits(qat_model *m, const uint8_t *images, int n, const float *mean, const float *std,
                                   int grid, float *logits)
{
    size_t isz = (size_t)m->c * m->h * m->w, hw = (size_t)m->h * m->w;
    float *x = malloc(sizeof(float) * isz * (size_t)m->batch);
    if (!x) return qat_error_set(QAT_ERR_MEMORY, "out of memory");
    for (int b = 0; b < n; b += m->batch) {
        int k = n - b < m->batch ? n - b : m->batch;
        qat_data_normalize(images + (size_t)b * isz, (size_t)k, m->c, hw, mean, std, grid, x);
        qat_model_forward(m, x, NULL, k, 0);
        memcpy(logits + (size_t)b * m->nclass, m->logits->x, sizeof(float) * (size_t)k * m->nclass);
    }
    free(x);
    return QAT_OK;
}

typedef struct {
    const qatrt_model *m;
    const qatrt_kernels *k;
    const uint8_t *images;
    int32_t *logits;
    int begin, end, batch;
    void *ws;
    size_t wsz;
    qatrt_status st;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    size_t isz = (size_t)j->m->c * j->m->h * j->m->w;
    j->st = qatrt_prepare(j->m, j->ws, j->wsz); /* a new allocation may still carry an old workspace's mark */
    for (int b = j->begin; b < j->end && j->st == QATRT_OK; b += j->batch) {
        int k = j->end - b < j->batch ? j->end - b : j->batch;
        j->st = qatrt_run(j->m, j->k, j->ws, j->wsz, j->images + (size_t)b * isz, k,
                          j->logits + (size_t)b * j->m->nclass);
    }
    return NULL;
}

qat_status qat_qnn_run(const void *model, const uint8_t *images, int n, int batch, int threads, int32_t *logits)
{
    const qatrt_model *m = model;
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    if (batch < 1) batch = 1;
    job jobs[64];
    pthread_t tid[64];
    const qatrt_kernels *k = qatrt_kernels_for(qatrt_isa_select(NULL));
    size_t wsz = qatrt_workspace_size(m, batch);
    qat_status st = QAT_OK;
    int created[64] = {0};
    for (int t = 0; t < threads; t++) {
        jobs[t] = (job){.m = m, .k = k, .images = images, .logits = logits, .batch = batch, .wsz = wsz};
        jobs[t].begin = (int)((long long)n * t / threads);
        jobs[t].end = (int)((long long)n * (t + 1) / threads);
        jobs[t].ws = aligned_alloc(QATRT_ALIGN, (wsz + QATRT_ALIGN - 1) / QATRT_ALIGN * QATRT_ALIGN);
        if (!jobs[t].ws) st = qat_error_set(QAT_ERR_MEMORY, "infer: out of memory for a %zu-byte workspace", wsz);
    }
    for (int t = 0; t < threads && !st; t++) {
        created[t] = t + 1 < threads && pthread_create(&tid[t], NULL, run_job, &jobs[t]) == 0;
        if (!created[t]) run_job(&jobs[t]);
    }
    for (int t = 0; t < threads; t++)
        if (created[t]) pthread_join(tid[t], NULL);
    for (int t = 0; t < threads; t++) {
        if (!st && jobs[t].st != QATRT_OK)
            st = qat_error_set(QAT_ERR_ARG, "infer: the runtime failed: %s", qatrt_status_name(jobs[t].st));
        free(jobs[t].ws);
    }
    return st;
}
