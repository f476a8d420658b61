/* alq.h: the state of an ALQ weight quantizer's node (quantizers/alq.c),
 * read-only, for the exporter and the tests. */
#ifndef QAT_ALQ_H
#define QAT_ALQ_H

#include "alq_math.h"
#include "quantizer.h"

typedef struct {
    qat_alq_grouping gp; /* how the layer's weights split into G groups of n */
    int imax;            /* I_max: planes per group at most */
    const uint8_t *I;    /* I_g, G of them */
    const int8_t *B;     /* planes: group g's plane i at B + (g imax + i) n, +-1 (0 for i >= I_g) */
    const float *alpha; /* coordinates: group g's at alpha + g imax (0 for i >= I_g) */
    const float *m, *v, *vmax; /* the alpha-domain AMSGrad moments, as alpha */
    const float *latent;       /* the STE phase's float weights (layer order) */
    int latent_ok;             /* latent holds them */
    int64_t t_alpha;           /* alpha-domain steps taken */
} qat_alq_node;

/* n must be an alq node (asserted) */
void qat_alq_node_get(const qat_qnode *n, qat_alq_node *out);

#endif
