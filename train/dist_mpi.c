/* dist_mpi.c: qat_comm over MPI (dist.h). The collectives are rings of
 * point-to-point messages, so the order of every sum is fixed by the number
 * of ranks alone (a run is bit-identical for a given N) and the cost is the
 * textbook one (docs/distributed.md); each wait has a deadline, so a rank
 * that died or a host that vanished ends the job with its rank named. */
#include <mpi.h>

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist.h"

typedef struct {
    MPI_Comm comm;
    int rank, size;
    double timeout;      /* seconds a wait may take (QAT_COMM_TIMEOUT, default 120) */
    float *tmp;          /* a chunk received in the reduce-scatter */
    size_t tmp_n;
    long calls;          /* collectives so far, for the test hook */
    long die_call;       /* QAT_TEST_DIE_STEP on rank QAT_TEST_DIE_RANK: a signal there */
    int die_signal;      /* QAT_TEST_DIE_SIGNAL=STOP: SIGSTOP (a host gone silent), else SIGKILL */
} dist;

static dist D;

static qat_status mpi_fail(int rc, const char *what, int peer)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return qat_error_set(QAT_ERR_COMM, "%s with rank %d failed: %s", what, peer, msg);
}

/* Waits for a send to the right and a receive from the left; the peer named
 * on a timeout is the one we receive from (the send completes locally). */
static qat_status wait_pair(MPI_Request rq[2], int left, const char *what)
{
    double t0 = MPI_Wtime();
    for (;;) {
        int done = 0;
        int rc = MPI_Testall(2, rq, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what, left);
        if (done) return QAT_OK;
        double waited = MPI_Wtime() - t0;
        if (waited > D.timeout)
            return qat_error_set(QAT_ERR_COMM, "nothing from rank %d in %.0f s (%s): that rank died or hangs, "
                                 "or its host is unreachable (QAT_COMM_TIMEOUT sets the limit)",
                                 left, D.timeout, what);
        if (waited < 0.02) { /* a step's exchange: poll, yielding the core (ranks may share it) */
            sched_yield();
        } else { /* a long wait (a slower rank, its evaluation, rank 0's checkpoint): sleep between polls */
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    }
}

static qat_status exchange(const void *send, int sbytes, void *recv, int rbytes, const char *what)
{
    int right = (D.rank + 1) % D.size, left = (D.rank + D.size - 1) % D.size;
    MPI_Request rq[2];
    int rc = MPI_Irecv(recv, rbytes, MPI_BYTE, left, 0, D.comm, &rq[1]);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, what, left);
    rc = MPI_Isend(send, sbytes, MPI_BYTE, right, 0, D.comm, &rq[0]);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, what, right);
    return wait_pair(rq, left, what);
}

static void test_hook(void)
{
    if (++D.calls == D.die_call) kill(getpid(), D.die_signal);
}

static size_t chunk_lo(size_t n, int c) { return n * (size_t)c / (size_t)D.size; }

/* ring reduce-scatter then ring allgather: chunk c is summed along the ring
 * starting at rank c, the same order on every run with this many ranks */
static qat_status ring_allreduce(void *user, float *buf, size_t n)
{
    (void)user;
    test_hook();
    size_t most = (n + (size_t)D.size - 1) / (size_t)D.size;
    if (most > D.tmp_n) {
        float *t = realloc(D.tmp, most * sizeof *t);
        if (!t) return qat_error_set(QAT_ERR_MEMORY, "out of memory for the allreduce");
        D.tmp = t;
        D.tmp_n = most;
    }
    int P = D.size, r = D.rank;
    for (int s = 0; s < P - 1; s++) {
        int sc = (r - s + P) % P, rc = (r - s - 1 + P) % P;
        size_t slo = chunk_lo(n, sc), rlo = chunk_lo(n, rc), rn = chunk_lo(n, rc + 1) - rlo;
        qat_status st = exchange(buf + slo, (int)((chunk_lo(n, sc + 1) - slo) * 4), D.tmp, (int)(rn * 4),
                                 "allreduce");
        if (st) return st;
        for (size_t i = 0; i < rn; i++) buf[rlo + i] += D.tmp[i];
    }
    for (int s = 0; s < P - 1; s++) {
        int sc = (r + 1 - s + P) % P, rc = (r - s + P) % P;
        size_t slo = chunk_lo(n, sc), rlo = chunk_lo(n, rc);
        qat_status st = exchange(buf + slo, (int)((chunk_lo(n, sc + 1) - slo) * 4), buf + rlo,
                                 (int)((chunk_lo(n, rc + 1) - rlo) * 4), "allreduce");
        if (st) return st;
    }
    return QAT_OK;
}

static qat_status ring_allgather(void *user, const void *in, size_t nbytes, void *out)
{
    (void)user;
    test_hook();
    unsigned char *o = out;
    int P = D.size, r = D.rank;
    memcpy(o + (size_t)r * nbytes, in, nbytes);
    for (int s = 0; s < P - 1; s++) {
        int sc = (r - s + P) % P, rc = (r - s - 1 + P) % P;
        qat_status st = exchange(o + (size_t)sc * nbytes, (int)nbytes, o + (size_t)rc * nbytes, (int)nbytes,
                                 "allgather");
        if (st) return st;
    }
    return QAT_OK;
}

int qat_dist_init(qat_comm *c)
{
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) return 0;
    int rc = MPI_Init(NULL, NULL);
    if (rc != MPI_SUCCESS) return qat_error_set(QAT_ERR_COMM, "MPI_Init failed (code %d)", rc), -1;
    MPI_Comm_dup(MPI_COMM_WORLD, &D.comm);
    MPI_Comm_set_errhandler(D.comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(D.comm, &D.rank);
    MPI_Comm_size(D.comm, &D.size);
    const char *t = getenv("QAT_COMM_TIMEOUT");
    D.timeout = t && atof(t) > 0 ? atof(t) : 120;
    const char *dr = getenv("QAT_TEST_DIE_RANK"), *ds = getenv("QAT_TEST_DIE_STEP");
    D.die_call = dr && ds && atoi(dr) == D.rank ? atol(ds) : -1;
    const char *sig = getenv("QAT_TEST_DIE_SIGNAL");
    D.die_signal = sig && !strcmp(sig, "STOP") ? SIGSTOP : SIGKILL;
    *c = (qat_comm){.rank = D.rank, .size = D.size, .user = &D, .allreduce_sum = ring_allreduce,
                    .allgather = ring_allgather};
    return 1;
}

void qat_dist_finalize(void)
{
    if (!D.comm) return;
    MPI_Barrier(D.comm);
    MPI_Comm_free(&D.comm);
    free(D.tmp);
    MPI_Finalize();
}

void qat_dist_abort(int code)
{
    if (D.comm) {
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
    exit(code);
}
