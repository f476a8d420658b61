/* refrun.c: the reference interpreter (refinterp.c, the exported C
 * source's own) on a loaded model, for tests that hold the runtime's
 * kernels against it. */
#include "qatrt.h"
#include "refinterp.h"

size_t qatrt_reference_workspace(const qatrt_model *m)
{
    size_t act = 0;
    for (int i = 0; i < m->nops; i++) {
        const qatrt_op *o = &m->ops[i];
        size_t a = (size_t)o->cout * (size_t)o->oh * (size_t)o->ow * (qatrt_op_i32(o) ? 4 : 1);
        if (a > act) act = a;
    }
    return (size_t)m->nslots * ((act + 7) & ~(size_t)7);
}

static void reference_ops(const qatrt_model *m, qatc_op *ops)
{
    for (int i = 0; i < m->nops; i++) {
        const qatrt_op *o = &m->ops[i];
        ops[i] = (qatc_op){.type = (int)o->type, .flags = o->in_u8 | o->f32flags | (o->x64_mb ? QATC_X64_MB : 0), .cin = o->cin, .h = o->h, .w = o->w,
                           .cout = o->cout, .oh = o->oh, .ow = o->ow, .kh = o->kh, .kw = o->kw, .stride = o->stride,
                           .pad = o->pad, .kernel = (int)o->kernel, .stage = (int)o->stage, .nthr = o->nthr,
                           .K = o->K, .in0 = o->in0, .in1 = o->in1, .slot = o->slot, .wt = o->weights, .flip = o->flip, .thr = o->thr, .req = o->req,
                           .levels = o->levels, .lut = o->lut, .table = o->table};
    }
}

qatrt_status qatrt_run_reference(const qatrt_model *m, void *ws, size_t ws_size, const uint8_t *images, int n,
                                 int32_t *logits)
{
    size_t need = qatrt_reference_workspace(m), isz = (size_t)m->c * (size_t)m->h * (size_t)m->w;
    if (!ws || ws_size < need || (uintptr_t)ws % 8) return QATRT_ERR_SPACE;
    if (n < 0 || (n > 0 && (!images || !logits))) return QATRT_ERR_ARG;
    qatc_op ops[QATRT_MAX_OPS];
    reference_ops(m, ops);
    for (int i = 0; i < n; i++)
        qatc_run_ops(ops, m->nops, need / (size_t)m->nslots, images + (size_t)i * isz, logits + (size_t)i * (size_t)m->nclass, ws);
    return QATRT_OK;
}
