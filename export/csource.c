/* csource.c: the .qnn file written out atomically, and as C source: model.h
 * and model.c hold the blobs as const arrays, an op table, and a small
 * scalar interpreter that evaluates every op straight from its definition
 * (no im2col, no packing tricks): integer only, no malloc, nothing included
 * but <stdint.h> and <stddef.h>, C99. It computes the same logits as the
 * runtime (tests/test_export.c compiles it and checks). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "qatrt.h"

qat_status qat_export_write_file(const char *path, const uint8_t *bytes, size_t size)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return qat_error_set(QAT_ERR_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return qat_error_set(QAT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    int ok = fwrite(bytes, 1, size, f) == size && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) err = errno;
        remove(tmp);
        return qat_error_set(QAT_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    }
    return QAT_OK;
}

/* the interpreter of model.c (PFX is replaced by the prefix) */
static const char *const interp_src[] = {
    "typedef struct {\n",
    "    int type, in_u8, cin, h, w, cout, oh, ow, kh, kw, stride, pad, kernel, stage, nthr, K;\n",
    "    const uint8_t *wt, *flip;\n",
    "    const int32_t *thr, *req;\n",
    "    const int8_t *levels, *lut;\n",
    "} PFX_op;\n",
    "\n",
    "/* the weight of output channel c at input channel ci, kernel row ky,\n",
    " * column kx: weight k = (ky kw + kx) cin + ci of row c, element\n",
    " * c K + k of the dense blob (bits, or nibbles, for the packed kernels) */\n",
    "static uint32_t PFX_u32(const uint8_t *p)\n",
    "{\n",
    "    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;\n",
    "}\n",
    "\n",
    "/* multi-bit weights (ALQ): the group of the weight, then its planes'\n",
    " * coefficients times their signs (docs/format.md) */\n",
    "static int32_t PFX_mb_weight(const PFX_op *o, int c, int ci, int ky, int kx)\n",
    "{\n",
    "    const uint8_t *b = o->wt;\n",
    "    size_t n = PFX_u32(b), gc = PFX_u32(b + 4), np = PFX_u32(b + 16), T = (size_t)o->kh * (size_t)o->kw;\n",
    "    size_t tap = (size_t)ky * (size_t)o->kw + (size_t)kx;\n",
    "    size_t pos = PFX_u32(b + 8) ? tap * (size_t)o->cin + (size_t)ci : (size_t)ci * T + tap;\n",
    "    size_t I_at = 32 + (n ? 0 : 4 * (gc + 1)), g0 = (size_t)c * gc, j = 0, e, len, g;\n",
    "    size_t chan_at = (I_at + (size_t)o->cout * gc + 3) / 4 * 4, bit0_at = chan_at + 4 * (size_t)o->cout;\n",
    "    size_t coef_at = bit0_at + (n ? 0 : 4 * (size_t)o->cout), bits_at = coef_at + 2 * np;\n",
    "    size_t q = PFX_u32(b + chan_at + 4 * (size_t)c), bit = n ? q * n : PFX_u32(b + bit0_at + 4 * (size_t)c);\n",
    "    int32_t w = 0;\n",
    "    int i;\n",
    "    if (n) j = pos / n;\n",
    "    else while (PFX_u32(b + 36 + 4 * j) <= pos) j++; /* groups of unequal sizes: offsets at 32 */\n",
    "    e = pos - (n ? j * n : PFX_u32(b + 32 + 4 * j));\n",
    "    for (g = 0; g <= j; g++) {\n",
    "        len = n ? n : PFX_u32(b + 36 + 4 * g) - PFX_u32(b + 32 + 4 * g);\n",
    "        if (g == j) break;\n",
    "        q += b[I_at + g0 + g];\n",
    "        bit += b[I_at + g0 + g] * len;\n",
    "    }\n",
    "    for (i = 0; i < b[I_at + g0 + j]; i++, q++, bit += len) {\n",
    "        int32_t a = (int16_t)(uint16_t)(b[coef_at + 2 * q] | b[coef_at + 2 * q + 1] << 8);\n",
    "        w += (b[bits_at + (bit + e) / 8] >> ((bit + e) % 8) & 1) ? -a : a;\n",
    "    }\n",
    "    return w;\n",
    "}\n",
    "\n",
    "static int32_t PFX_weight(const PFX_op *o, int c, int ci, int ky, int kx)\n",
    "{\n",
    "    size_t i = (size_t)c * (size_t)o->K + ((size_t)ky * (size_t)o->kw + (size_t)kx) * (size_t)o->cin + (size_t)ci;\n",
    "    size_t plane = ((size_t)o->cout * (size_t)o->K + 7) / 8;\n",
    "    int code;\n",
    "    switch (o->kernel) {\n",
    "    case 9: /* multi-bit */\n",
    "        return PFX_mb_weight(o, c, ci, ky, kx);\n",
    "    case 1: case 8: /* binary, uint8 x binary: bit set = -1 */\n",
    "        return (o->wt[i / 8] >> (i % 8) & 1) ? -1 : 1;\n",
    "    case 2: case 3: /* ternary: nonzero plane, then sign plane */\n",
    "        if (!(o->wt[i / 8] >> (i % 8) & 1)) return 0;\n",
    "        return (o->wt[plane + i / 8] >> (i % 8) & 1) ? -1 : 1;\n",
    "    case 4: case 5: /* int8 */\n",
    "        return (int8_t)o->wt[i];\n",
    "    case 6: /* int16, little-endian */\n",
    "        return (int16_t)(uint16_t)(o->wt[2 * i] | o->wt[2 * i + 1] << 8);\n",
    "    default: /* power-of-two code: 0, or sign bit 8 and magnitude 1 << (code & 7) - 1 */\n",
    "        code = o->wt[i / 2] >> (4 * (i & 1)) & 15;\n",
    "        if (!(code & 7)) return 0;\n",
    "        return (code & 8) ? -(1 << ((code & 7) - 1)) : 1 << ((code & 7) - 1);\n",
    "    }\n",
    "}\n",
    "\n",
    "static int32_t PFX_input(const PFX_op *o, const void *in, int c, int y, int x)\n",
    "{\n",
    "    size_t i;\n",
    "    if (y < 0 || y >= o->h || x < 0 || x >= o->w) return 0;\n",
    "    i = ((size_t)c * (size_t)o->h + (size_t)y) * (size_t)o->w + (size_t)x;\n",
    "    return o->in_u8 ? ((const uint8_t *)in)[i] : ((const int8_t *)in)[i];\n",
    "}\n",
    "\n",
    "static void PFX_conv(const PFX_op *o, const void *in, int8_t *out, int32_t *logits)\n",
    "{\n",
    "    int c, oy, ox, ci, ky, kx, j;\n",
    "    for (c = 0; c < o->cout; c++)\n",
    "        for (oy = 0; oy < o->oh; oy++)\n",
    "            for (ox = 0; ox < o->ow; ox++) {\n",
    "                int32_t acc = 0;\n",
    "                for (ci = 0; ci < o->cin; ci++)\n",
    "                    for (ky = 0; ky < o->kh; ky++)\n",
    "                        for (kx = 0; kx < o->kw; kx++)\n",
    "                            acc += PFX_input(o, in, ci, oy * o->stride - o->pad + ky, ox * o->stride - o->pad + kx) *\n",
    "                                   PFX_weight(o, c, ci, ky, kx);\n",
    "                if (o->stage == 2) {\n",
    "                    const int32_t *q = o->req + 4 * c;\n",
    "                    int64_t v = (int64_t)acc * q[0] + (int64_t)(((uint64_t)(uint32_t)q[3] << 32) | (uint32_t)q[2]);\n",
    "                    if (q[1]) v = (v + ((int64_t)1 << (q[1] - 1))) >> q[1];\n",
    "                    logits[c] = v > 2147483647 ? 2147483647 : v < -2147483647 - 1 ? -2147483647 - 1 : (int32_t)v;\n",
    "                } else {\n",
    "                    const int32_t *t = o->thr + (size_t)c * (size_t)o->nthr;\n",
    "                    int32_t s = o->flip && (o->flip[c / 8] >> (c % 8) & 1) ? -acc : acc;\n",
    "                    int n = 0;\n",
    "                    for (j = 0; j < o->nthr; j++) n += t[j] <= s;\n",
    "                    out[((size_t)c * (size_t)o->oh + (size_t)oy) * (size_t)o->ow + (size_t)ox] = o->levels[n];\n",
    "                }\n",
    "            }\n",
    "}\n",
    "\n",
    "static void PFX_maxpool(const PFX_op *o, const int8_t *in, int8_t *out)\n",
    "{\n",
    "    int c, oy, ox, ky, kx;\n",
    "    for (c = 0; c < o->cin; c++)\n",
    "        for (oy = 0; oy < o->oh; oy++)\n",
    "            for (ox = 0; ox < o->ow; ox++) {\n",
    "                int8_t best = -128;\n",
    "                for (ky = 0; ky < o->kh; ky++)\n",
    "                    for (kx = 0; kx < o->kw; kx++) {\n",
    "                        int8_t v = in[((size_t)c * (size_t)o->h + (size_t)(oy * o->stride + ky)) * (size_t)o->w +\n",
    "                                      (size_t)(ox * o->stride + kx)];\n",
    "                        if (v > best) best = v;\n",
    "                    }\n",
    "                out[((size_t)c * (size_t)o->oh + (size_t)oy) * (size_t)o->ow + (size_t)ox] = best;\n",
    "            }\n",
    "}\n",
    "\n",
    "void PFX_run(const uint8_t *image, int32_t *logits, void *workspace)\n",
    "{\n",
    "    int8_t *buf[2];\n",
    "    const void *in = image;\n",
    "    int i, cur = 0;\n",
    "    buf[0] = (int8_t *)workspace;\n",
    "    buf[1] = buf[0] + PFX_ACT_BYTES;\n",
    "    for (i = 0; i < PFX_NOPS; i++) {\n",
    "        const PFX_op *o = &PFX_ops[i];\n",
    "        int8_t *out = buf[cur];\n",
    "        if (o->type == 3) {\n",
    "            size_t j, hw = (size_t)o->h * (size_t)o->w;\n",
    "            for (j = 0; j < (size_t)o->cin * hw; j++) out[j] = o->lut[(j / hw) * 256 + ((const uint8_t *)in)[j]];\n",
    "        } else if (o->type == 2) {\n",
    "            PFX_maxpool(o, (const int8_t *)in, out);\n",
    "        } else {\n",
    "            PFX_conv(o, in, out, logits);\n",
    "        }\n",
    "        in = out;\n",
    "        cur ^= 1;\n",
    "    }\n",
    "}\n",
    NULL};

/* lines [from, to) of the interpreter with PFX replaced by prefix */
static void emit_text(FILE *f, const char *prefix, int from, int to)
{
    for (int i = from; i < to && interp_src[i]; i++)
        for (const char *s = interp_src[i]; *s; s++) {
            if (!strncmp(s, "PFX", 3)) {
                fputs(prefix, f);
                s += 2;
            } else {
                fputc(*s, f);
            }
        }
}

static void emit_bytes(FILE *f, const char *name, const void *data, size_t n)
{
    const uint8_t *p = data;
    fprintf(f, "static const uint8_t %s[%zu] = {", name, n ? n : 1);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%u,", i % 24 ? "" : "\n    ", p[i]);
    fprintf(f, "%s};\n", n ? "\n" : "0");
}

static void emit_i32(FILE *f, const char *name, const int32_t *v, size_t n)
{
    fprintf(f, "static const int32_t %s[%zu] = {", name, n);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%ld,", i % 10 ? " " : "\n    ", (long)v[i]);
    fprintf(f, "\n};\n");
}

static void emit_i8(FILE *f, const char *name, const int8_t *v, size_t n)
{
    fprintf(f, "static const int8_t %s[%zu] = {", name, n);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%d,", i % 24 ? "" : "\n    ", v[i]);
    fprintf(f, "\n};\n");
}

static qat_status close_file(FILE *f, const char *tmp, const char *path)
{
    int ok = !ferror(f) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return qat_error_set(QAT_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return QAT_OK;
}

qat_status qat_export_csource(const uint8_t *bytes, size_t size, const char *dir, const char *prefix)
{
    qatrt_model m;
    qatrt_error err;
    if (qatrt_load(&m, bytes, size, &err) != QATRT_OK) return qat_error_set(QAT_ERR_FORMAT, "export: %s", err.msg);
    size_t act = 0;
    for (int i = 0; i < m.nops; i++) {
        const qatrt_op *o = &m.ops[i];
        size_t a = (size_t)o->cout * o->oh * o->ow;
        if (a > act) act = a;
    }
    act = (act + 7) & ~(size_t)7;
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/model.h", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return qat_error_set(QAT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f, "/* model.h: generated by qat export --format c. Integer-only inference of a\n"
               " * %d-op model on %dx%dx%d uint8 images giving %d int32 logits. */\n"
               "#ifndef %s_MODEL_H\n#define %s_MODEL_H\n\n#include <stddef.h>\n#include <stdint.h>\n\n",
            m.nops, m.c, m.h, m.w, m.nclass, prefix, prefix);
    fprintf(f, "#define %s_C %d\n#define %s_H %d\n#define %s_W %d\n#define %s_NCLASS %d\n", prefix, m.c, prefix, m.h,
            prefix, m.w, prefix, m.nclass);
    fprintf(f, "/* bytes of workspace %s_run needs */\n#define %s_WORKSPACE %zu\n\n", prefix, prefix, 2 * act);
    fprintf(f, "/* image: %s_C * %s_H * %s_W bytes (CHW); logits: %s_NCLASS values */\n"
               "void %s_run(const uint8_t *image, int32_t *logits, void *workspace);\n\n#endif\n",
            prefix, prefix, prefix, prefix, prefix);
    qat_status st = close_file(f, tmp, path);
    if (st) return st;

    snprintf(path, sizeof path, "%s/model.c", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) return qat_error_set(QAT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f, "/* model.c: generated by qat export --format c (.qnn CRC-32 %08x). */\n#include \"model.h\"\n\n", m.crc);
    fprintf(f, "#define %s_ACT_BYTES %zu\n#define %s_NOPS %d\n\n", prefix, act, prefix, m.nops);
    char name[64];
    for (int i = 0; i < m.nops; i++) {
        const qatrt_op *o = &m.ops[i];
        if (o->type == QATRT_OP_CONV) {
            snprintf(name, sizeof name, "%s_w%d", prefix, i);
            emit_bytes(f, name, o->weights, o->wbytes);
            if (o->stage == QATRT_STAGE_THRESH) {
                snprintf(name, sizeof name, "%s_t%d", prefix, i);
                emit_i32(f, name, o->thr, (size_t)o->cout * (size_t)o->nthr);
                if (o->flip) {
                    snprintf(name, sizeof name, "%s_f%d", prefix, i);
                    emit_bytes(f, name, o->flip, ((size_t)o->cout + 7) / 8);
                }
                snprintf(name, sizeof name, "%s_l%d", prefix, i);
                emit_i8(f, name, o->levels, (size_t)o->nthr + 1);
            } else {
                snprintf(name, sizeof name, "%s_q%d", prefix, i);
                emit_i32(f, name, o->req, (size_t)o->cout * 4);
            }
        } else if (o->type == QATRT_OP_LUT) {
            snprintf(name, sizeof name, "%s_u%d", prefix, i);
            emit_i8(f, name, o->lut, (size_t)o->cin * 256);
        }
    }
    fputs("\n", f);
    /* the op table after the interpreter's type */
    int body = 0, end = 0;
    while (strcmp(interp_src[body], "\n") != 0) body++; /* the type ends at the first blank line */
    body++;
    while (interp_src[end]) end++;
    emit_text(f, prefix, 0, body);
    fprintf(f, "static const %s_op %s_ops[%d] = {\n", prefix, prefix, m.nops);
    for (int i = 0; i < m.nops; i++) {
        const qatrt_op *o = &m.ops[i];
        fprintf(f, "    {%d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, ", (int)o->type, o->in_u8, o->cin,
                o->h, o->w, o->cout, o->oh, o->ow, o->kh, o->kw, o->stride, o->pad, (int)o->kernel, (int)o->stage,
                o->nthr, o->K);
        if (o->type == QATRT_OP_CONV) {
            fprintf(f, "%s_w%d, ", prefix, i);
            if (o->flip) fprintf(f, "%s_f%d, ", prefix, i);
            else fprintf(f, "NULL, ");
            if (o->stage == QATRT_STAGE_THRESH) fprintf(f, "%s_t%d, NULL, %s_l%d, NULL},\n", prefix, i, prefix, i);
            else fprintf(f, "NULL, %s_q%d, NULL, NULL},\n", prefix, i);
        } else if (o->type == QATRT_OP_LUT) {
            fprintf(f, "NULL, NULL, NULL, NULL, NULL, %s_u%d},\n", prefix, i);
        } else {
            fprintf(f, "NULL, NULL, NULL, NULL, NULL, NULL},\n");
        }
    }
    fputs("};\n\n", f);
    emit_text(f, prefix, body, end);
    return close_file(f, tmp, path);
}
