/* dist.h: the qat executable's side of data-parallel training: MPI behind
 * the library's qat_comm hook (train/trainer.h). dist_mpi.c implements it
 * when meson finds MPI, dist_none.c otherwise; libqat never sees MPI. */
#ifndef QAT_DIST_H
#define QAT_DIST_H

#include "trainer.h"

/* Under mpirun (its environment says so): starts MPI, fills c and returns 1.
 * Alone, or built without MPI: returns 0 and leaves c alone, so qat runs as
 * it always did. -1: MPI would not start (message in qat_last_error()). */
int qat_dist_init(qat_comm *c);
/* the end of a run that went well on every rank */
void qat_dist_finalize(void);
/* ends every rank of the job with code (after this rank's message is out) */
void qat_dist_abort(int code);

#endif
