/* bench_comm.c: the time of qat's ring allreduce (train/dist_mpi.c, what a
 * data-parallel step calls) and ring allgather on message sizes from 4 KB
 * to 64 MB, for the cost model of docs/distributed.md. Run under mpirun:
 *   mpirun -np 2 build/bench/bench_comm [--json]
 * Rank 0 prints the median of 20 calls per size (after 3 warm-ups), then
 * the codecs' encode and decode-add time per value (one core). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "gradcomm.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int json = argc > 1 && !strcmp(argv[1], "--json");
    qat_comm c;
    if (qat_dist_init(&c) != 1) {
        fprintf(stderr, "bench_comm: run it under mpirun (%s)\n", qat_last_error());
        return 1;
    }
    enum { REPS = 20, WARM = 3 };
    size_t most = (size_t)16 << 20; /* floats: 64 MB */
    float *buf = calloc(most, sizeof *buf);
    unsigned char *all = malloc(most * 4 * (size_t)c.size / 8 + 64);
    if (!buf || !all) qat_dist_abort(1);
    if (c.rank == 0 && json) printf("[");
    int first = 1;
    for (size_t n = 1024; n <= most; n *= 4) {
        double t[2][REPS];
        for (int op = 0; op < 2; op++)
            for (int r = 0; r < REPS + WARM; r++) {
                double t0 = qat_time_now();
                /* the allgather moves an eighth: what int8/1-bit payloads are near */
                qat_status st = op == 0 ? c.allreduce_sum(c.user, buf, n) : c.allgather(c.user, buf, n * 4 / 8, all);
                if (st) {
                    fprintf(stderr, "bench_comm: %s\n", qat_last_error());
                    qat_dist_abort(1);
                }
                if (r >= WARM) t[op][r - WARM] = qat_time_now() - t0;
            }
        qsort(t[0], REPS, sizeof t[0][0], cmp_double);
        qsort(t[1], REPS, sizeof t[1][0], cmp_double);
        if (c.rank != 0) continue;
        if (json)
            printf("%s\n {\"ranks\": %d, \"bytes\": %zu, \"allreduce_s\": %.6g, \"allgather_bytes\": %zu, "
                   "\"allgather_s\": %.6g}", first ? "" : ",", c.size, n * 4, t[0][REPS / 2], n * 4 / 8, t[1][REPS / 2]);
        else
            printf("%d ranks: allreduce %9zu bytes %9.3f ms (%7.1f MB/s of the block); allgather %8zu bytes a rank "
                   "%8.3f ms\n", c.size, n * 4, t[0][REPS / 2] * 1e3, (double)n * 4 / t[0][REPS / 2] / 1e6, n * 4 / 8,
                   t[1][REPS / 2] * 1e3);
        first = 0;
    }
    if (c.rank == 0 && json) printf("\n]\n");
    if (c.rank == 0) { /* the codecs: what each rank adds to a step besides the transfer */
        size_t n = (size_t)1 << 22;
        float *e = calloc(n, sizeof *e);
        for (size_t i = 0; i < n; i++) buf[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        for (int k = QAT_GRADCOMM_FP16; k < QAT_GRADCOMM_COUNT && e; k++) {
            double te = 1e9, td = 1e9;
            for (int r = 0; r < 5; r++) {
                double t0 = qat_time_now();
                qat_gradcomm_encode((qat_gradcomm_kind)k, buf, e, n, all);
                double t1 = qat_time_now();
                qat_gradcomm_decode_add((qat_gradcomm_kind)k, all, n, e);
                double t2 = qat_time_now();
                te = t1 - t0 < te ? t1 - t0 : te;
                td = t2 - t1 < td ? t2 - t1 : td;
            }
            printf("%s%s: encode %.2f ns a value, decode-add %.2f ns a value\n", json ? "# " : "",
                   qat_gradcomm_names[k], te / (double)n * 1e9, td / (double)n * 1e9);
        }
        free(e);
    }
    free(buf);
    free(all);
    qat_dist_finalize();
    return 0;
}
