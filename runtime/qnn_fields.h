/* qnn_fields.h: an op record's fields in both record layouts (qnn_format.h:
 * v2/v3 a u32 each, v4 one or two bytes), in the v3 record's order: the one
 * table by which the reader (runtime/qnn.c) decodes records and the writer
 * (export/lower.c) narrows its v3 records to v4. Not part of the exported C
 * source (its interpreter reads no records). */
#ifndef QNN_FIELDS_H
#define QNN_FIELDS_H

#include "qnn_format.h"

enum { F_TYPE, F_FLAGS, F_CIN, F_H, F_W, F_COUT, F_OH, F_OW, F_KH, F_KW, F_STRIDE, F_PAD, F_KERNEL, F_STAGE, F_NTHR, F_IN0, F_IN1, F_COUNT };

static const struct {
    unsigned char v3, v4, bytes; /* offsets in the two records; the v4 field's width */
    const char *name;
} qnn_fields[F_COUNT] = {
    [F_TYPE] = {QNN_OP_TYPE, QNN_OP4_TYPE, 1, "type"},
    [F_FLAGS] = {QNN_OP_FLAGS, QNN_OP4_FLAGS, 1, "flags"},
    [F_CIN] = {QNN_OP_CIN, QNN_OP4_CIN, 2, "input channels"},
    [F_H] = {QNN_OP_H, QNN_OP4_H, 2, "input height"},
    [F_W] = {QNN_OP_W, QNN_OP4_W, 2, "input width"},
    [F_COUT] = {QNN_OP_COUT, QNN_OP4_COUT, 2, "output channels"},
    [F_OH] = {QNN_OP_OH, QNN_OP4_OH, 2, "output height"},
    [F_OW] = {QNN_OP_OW, QNN_OP4_OW, 2, "output width"},
    [F_KH] = {QNN_OP_KH, QNN_OP4_KH, 2, "kernel height"},
    [F_KW] = {QNN_OP_KW, QNN_OP4_KW, 2, "kernel width"},
    [F_STRIDE] = {QNN_OP_STRIDE, QNN_OP4_STRIDE, 2, "stride"},
    [F_PAD] = {QNN_OP_PAD, QNN_OP4_PAD, 2, "pad"},
    [F_KERNEL] = {QNN_OP_KERNEL, QNN_OP4_KERNEL, 1, "kernel"},
    [F_STAGE] = {QNN_OP_STAGE, QNN_OP4_STAGE, 1, "stage"},
    [F_NTHR] = {QNN_OP_NTHR, QNN_OP4_NTHR, 2, "threshold count"},
    [F_IN0] = {QNN_OP_IN0, QNN_OP4_IN0, 2, "input"},
    [F_IN1] = {QNN_OP_IN1, QNN_OP4_IN1, 2, "second input"},
};

#endif
