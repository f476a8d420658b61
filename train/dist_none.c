/* dist_none.c: qat built without MPI (meson -Dmpi=disabled, or MPI not
 * found): every run is one process. Started by mpirun on several ranks it
 * refuses, rather than train N copies into one folder. */
#include <stdlib.h>

#include "dist.h"

int qat_dist_init(qat_comm *c)
{
    (void)c;
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (n && atoi(n) > 1)
        return qat_error_set(QAT_ERR_ARG, "started by mpirun on %s ranks, but this qat was built without MPI: install "
                             "libopenmpi-dev and build with meson -Dmpi=enabled", n), -1;
    return 0;
}

void qat_dist_finalize(void) {}

void qat_dist_abort(int code) { exit(code); }
