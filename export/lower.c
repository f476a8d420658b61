/* lower.c: a trained model -> the integer .qnn graph (export.h says what is
 * folded where; docs/format.md is the file layout). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "export.h"
#include "qatrt.h"
#include "qnn_fields.h"
#include "softfloat.h"
#include "alq.h"
#include "quantizer.h"

/* ---- the .qnn writer ------------------------------------------------------ */

typedef struct {
    uint8_t ops[QATRT_MAX_OPS][QATRT_OP_SIZE];
    int nops;
    uint8_t *data; /* blobs, offsets relative to the data area until finish() */
    size_t len, cap;
} qnnw;

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static qat_status w_reserve(qnnw *w, size_t more)
{
    if (w->len + more <= w->cap) return QAT_OK;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + more) cap *= 2;
    uint8_t *d = realloc(w->data, cap);
    if (!d) return qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
    w->data = d;
    w->cap = cap;
    return QAT_OK;
}

/* appends a blob and records (offset, size) at byte `field` of op `op` */
static qat_status w_blob(qnnw *w, int op, int field, const void *src, size_t size)
{
    size_t at = (w->len + QATRT_ALIGN - 1) & ~(size_t)(QATRT_ALIGN - 1);
    qat_status st = w_reserve(w, at - w->len + size);
    if (st) return st;
    memset(w->data + w->len, 0, at - w->len);
    memcpy(w->data + at, src, size);
    w->len = at + size;
    if (at + size > UINT32_MAX / 2) return qat_error_set(QAT_ERR_SHAPE, "export: the model exceeds 2 GiB");
    put32(w->ops[op] + field, (uint32_t)at + 1); /* +1: nonzero until rebased */
    put32(w->ops[op] + field + 4, (uint32_t)size);
    return QAT_OK;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void w_header(uint8_t *f, const qat_model *m, int version, int nops, size_t total)
{
    memcpy(f + QNN_H_MAGIC, QATRT_MAGIC, 8);
    put32(f + QNN_H_VERSION, (uint32_t)version);
    put32(f + QNN_H_HEADER_SIZE, QATRT_HEADER_SIZE);
    put32(f + QNN_H_OP_SIZE, version >= 4 ? QATRT_OP4_SIZE : QATRT_OP_SIZE);
    put32(f + QNN_H_NOPS, (uint32_t)nops);
    put32(f + QNN_H_C, (uint32_t)m->c);
    put32(f + QNN_H_H, (uint32_t)m->h);
    put32(f + QNN_H_W, (uint32_t)m->w);
    put32(f + QNN_H_NCLASS, (uint32_t)m->nclass);
    put32(f + QNN_H_FILE_SIZE, (uint32_t)total);
    put32(f + QNN_H_FILE_SIZE + 4, (uint32_t)((uint64_t)total >> 32));
}

/* v4: the records narrowed (each field checked to fit), each op's blobs
 * after the previous op's at the next multiple of QATRT_ALIGN4 */
static qat_status w_finish4(qnnw *w, const qat_model *m, uint8_t **out, size_t *size)
{
    size_t table = QATRT_HEADER_SIZE, data = 0;
    for (int i = 0; i < w->nops; i++) {
        table += QATRT_OP4_SIZE;
        for (int j = 0; j < QNN_NBLOBS; j++) {
            uint32_t sz = get32(w->ops[i] + QNN_OP_WEIGHTS + 8 * j + 4);
            if (!sz) continue;
            table += 4;
            data = (data + QATRT_ALIGN4 - 1) / QATRT_ALIGN4 * QATRT_ALIGN4 + sz;
        }
    }
    size_t total = table + (data + QATRT_ALIGN4 - 1) / QATRT_ALIGN4 * QATRT_ALIGN4 + 4;
    uint8_t *f = calloc(1, total);
    if (!f) return qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
    w_header(f, m, 4, w->nops, total);
    size_t at = QATRT_HEADER_SIZE, cur = table;
    for (int i = 0; i < w->nops; i++) {
        const uint8_t *o = w->ops[i];
        uint8_t *r = f + at;
        for (int k = 0; k < F_COUNT; k++) { /* the fields narrowed (qnn_fields.h) */
            uint32_t v = get32(o + qnn_fields[k].v3), most = qnn_fields[k].bytes == 1 ? 255u : (uint32_t)QNN_OP4_MAX_FIELD;
            if (v > most) {
                free(f);
                return qat_error_set(QAT_ERR_SHAPE, "export: op %d's %s is %u; a .qnn v4 record holds at most %u "
                                     "(write version 3)", i, qnn_fields[k].name, v, most);
            }
            for (int b = 0; b < qnn_fields[k].bytes; b++) r[qnn_fields[k].v4 + b] = (uint8_t)(v >> (8 * b));
        }
        uint32_t mask = 0;
        size_t s = QNN_OP4_SIZES;
        for (int j = 0; j < QNN_NBLOBS; j++) {
            uint32_t off = get32(o + QNN_OP_WEIGHTS + 8 * j), sz = get32(o + QNN_OP_WEIGHTS + 8 * j + 4);
            if (!sz) continue;
            mask |= 1u << j;
            put32(r + s, sz);
            s += 4;
            cur = (cur + QATRT_ALIGN4 - 1) / QATRT_ALIGN4 * QATRT_ALIGN4;
            memcpy(f + cur, w->data + off - 1, sz);
            cur += sz;
        }
        r[QNN_OP4_BLOBS] = (uint8_t)mask;
        at += s;
    }
    put32(f + total - 4, qatrt_crc32(0, f, total - 4));
    *out = f;
    *size = total;
    return QAT_OK;
}

static qat_status w_finish(qnnw *w, const qat_model *m, int version, uint8_t **out, size_t *size)
{
    if (version >= 4) return w_finish4(w, m, out, size);
    size_t base = QATRT_HEADER_SIZE + (size_t)w->nops * QATRT_OP_SIZE;
    base = (base + QATRT_ALIGN - 1) & ~(size_t)(QATRT_ALIGN - 1);
    size_t total = base + w->len + 4;
    uint8_t *f = calloc(1, total);
    if (!f) return qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
    w_header(f, m, 3, w->nops, total);
    for (int i = 0; i < w->nops; i++) {
        uint8_t *r = f + QATRT_HEADER_SIZE + (size_t)i * QATRT_OP_SIZE;
        memcpy(r, w->ops[i], QATRT_OP_SIZE);
        for (int fld = QNN_OP_WEIGHTS; fld < QNN_OP_BLOBS_END; fld += 8) {
            uint32_t off = get32(r + fld);
            if (off) put32(r + fld, off - 1 + (uint32_t)base);
        }
    }
    if (w->len) memcpy(f + base, w->data, w->len);
    put32(f + total - 4, qatrt_crc32(0, f, total - 4));
    *out = f;
    *size = total;
    return QAT_OK;
}

/* ---- what sits between an accumulator and the next quantizer -------------- */

typedef enum { POST_BN, POST_RELU, POST_HARDTANH } post_kind;

typedef struct {
    post_kind kind;
    float *a, *b; /* BN: y = x a + b per channel, as the batchnorm op computes them */
    float lo, hi;
} post_op;

#define MAX_POST 8

typedef struct {
    /* the accumulator's real value: u8 image input
     *   x = sw[c] (acc / (255 std) - mean / std * wsum[c]),
     * else x = acc * sa * sw[c]; then + bias[c] in float */
    int u8;
    int keys; /* acc is a stream key: x is its float32 (and sw, sa, bias do not apply) */
    double sa, inv255std, meanstd;
    const double *sw, *wsum;
    const float *bias;
    const int64_t *off; /* per channel: added to acc (the inputs an earlier layer dropped as constants), or NULL */
    post_op post[MAX_POST];
    int npost;
    /* the quantizer that consumes the result: a node of the model, or (after
     * training) a uniform one: level = clamp(round(y / vs), vlo, vhi) */
    qat_qnode *q;
    qat_graph *g;
    double qs; /* the node's scale: level = y / qs */
    double vs;
    int vlo, vhi;
} chain;

static float chain_value(const chain *ch, int c, int64_t acc)
{
    float x;
    if (ch->keys) {
        uint32_t b = qatc_unkey((int32_t)acc);
        memcpy(&x, &b, sizeof x);
    } else {
        if (ch->off) acc += ch->off[c];
        double xr = ch->u8 ? ch->sw[c] * ((double)acc * ch->inv255std - ch->meanstd * ch->wsum[c])
                           : (double)acc * ch->sa * ch->sw[c];
        x = (float)xr;
        if (ch->bias) x = x + ch->bias[c];
    }
    for (int i = 0; i < ch->npost; i++) {
        const post_op *p = &ch->post[i];
        switch (p->kind) {
        case POST_BN: x = x * p->a[c] + p->b[c]; break;
        case POST_RELU: x = x > 0.0f ? x : 0.0f; break;
        case POST_HARDTANH: x = x < p->lo ? p->lo : x > p->hi ? p->hi : x; break;
        }
    }
    return x;
}

/* x rounded to the nearest integer, clamped to +-2^30 (NaN gives 0): a
 * scale that collapsed to ~0 makes x huge, and converting an out-of-range
 * double to an integer is undefined behaviour; the callers' range checks
 * then refuse the layer with a message */
static int32_t round_level(double x)
{
    if (!(x == x)) return 0;
    if (x > 1073741824.0) return 1073741824;
    if (x < -1073741824.0) return -1073741824;
    return (int32_t)lrint(x);
}

static int chain_level(const chain *ch, int c, int64_t acc)
{
    float y = chain_value(ch, c, acc), q;
    if (!ch->q) {
        double l = nearbyint((double)y / ch->vs);
        return l < ch->vlo ? ch->vlo : l > ch->vhi ? ch->vhi : (int)l;
    }
    qat_qnode_apply(ch->q, ch->g, &y, &q, 1);
    return round_level((double)q / ch->qs);
}

/* direction of channel c: +1 when the chain does not decrease in acc */
static int chain_dir(const chain *ch, int c)
{
    int d = ch->u8 ? (ch->sw[c] >= 0 ? 1 : -1) : (ch->sa * ch->sw[c] >= 0 ? 1 : -1);
    for (int i = 0; i < ch->npost; i++)
        if (ch->post[i].kind == POST_BN && ch->post[i].a[c] < 0) d = -d;
    return d;
}

/* ---- helpers ------------------------------------------------------------- */

static int is(const qat_layer *l, const char *section) { return strcmp(l->type->section, section) == 0; }

static qat_status layer_error(const qat_layer *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static qat_status layer_error(const qat_layer *l, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qat_error_set(QAT_ERR_SHAPE, "export: %s:%d: layer %d '%s' [%s]: %s", l->file ? l->file : "config", l->line,
                         l->index, l->name, l->type->section, msg);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* the sorted distinct integer levels of a codebook (at most cap) */
static int level_set(const qat_levels *lv, int32_t *out, int cap)
{
    int n = 0;
    if (lv->table) {
        for (int i = 0; i < lv->ntable && n < cap; i++) out[n++] = lv->table[i];
    } else {
        int z = lv->zero ? (int)lrintf(lv->zero[0]) : 0, step = lv->step > 0 ? lv->step : 1;
        for (int v = lv->lo; v <= lv->hi && n < cap; v += step) out[n++] = v - z;
    }
    qsort(out, (size_t)n, sizeof *out, cmp_i32);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (k == 0 || out[i] != out[k - 1]) out[k++] = out[i];
    return k;
}

/* ---- one compute layer ----------------------------------------------------- */

typedef struct {
    int c, h, w;       /* the runtime tensor's shape */
    int u8;            /* it is the image */
    int nlev;          /* else: its levels (ascending) and real scale */
    int32_t lev[QATRT_MAX_LEVELS];
    double sa;
    int stream;        /* or a stream read as it is (a float input: an X64 op's, lower_wide), op sop's output */
    int sop;
} rt_tensor;

typedef struct {
    qat_model *m;
    const qat_export_opts *o;
    qat_export_result *r;
    qnnw w;
    float *calib_lo, *calib_hi; /* per layer: range of its input on the calibration images */
    /* the channels the layer before dropped from its output (emptied:
     * every weight 0, so a constant level), for the next layer to fold:
     * its output's channel count, which it kept, the dropped ones' levels */
    int drop_c0;
    uint8_t *drop_keep; /* NULL: none dropped */
    int32_t *drop_lev;
    /* residual graphs: a layer's output that a later [shortcut] or [route]
     * reads, or that a shortcut or global pool makes, is a stream: its
     * float32 values as int32 keys, computed as the float model does
     * (softfloat.h), made by a F32 stage, ADD or GAP */
    uint8_t *needed;  /* per layer: a later shortcut or route reads its output */
    int *stream;      /* per layer: the op giving its output as a stream, or -1 */
} lowering;

static void note(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(char *buf, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(buf);
    if (n + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

static int all_in(const int32_t *v, size_t n, int lo, int hi, int no_zero)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] < lo || v[i] > hi || (no_zero && v[i] == 0)) return 0;
    return 1;
}

static int pow2_code(int32_t v)
{
    if (v == 0) return 0;
    int a = v < 0 ? -v : v, e = 0;
    while ((1 << e) < a) e++;
    if ((1 << e) != a || e > 6) return -1;
    return (v < 0 ? 8 : 0) | (e + 1);
}

/* the layer's integer weight levels wl[cout * K] and per-channel scales */
static qat_status weight_levels(lowering *L, qat_layer *l, int cout, int K, int64_t amax, int32_t *wl, double *sw,
                                int *approx)
{
    const float *wf = l->wq.out ? l->wq.out->x : l->w->x;
    *approx = 0;
    if (!l->wq.spec.q) {
        if (!L->o->float_bits)
            return layer_error(l, "its weights are float (weight = float in its config section, or a first/last-layer policy in [quant]): "
                                  "there is no integer form; export with --float-layers int8|int16 to quantize them after training "
                                  "(the agreement with the trained model is then reported instead of parity)");
        int64_t qmax = L->o->float_bits == 16 ? 32767 : 127;
        while (qmax > 1 && (int64_t)K * amax * qmax > INT32_MAX) qmax /= 2;
        for (int c = 0; c < cout; c++) {
            double mx = 0;
            for (int k = 0; k < K; k++) mx = fmax(mx, fabs((double)wf[(size_t)c * K + k]));
            sw[c] = mx > 0 ? mx / (double)qmax : 1.0;
            for (int k = 0; k < K; k++) wl[(size_t)c * K + k] = (int32_t)lrint(wf[(size_t)c * K + k] / sw[c]);
        }
        *approx = 1;
        return QAT_OK;
    }
    if (!l->wq.spec.q->levels) /* ALQ: a multi-bit layer has no single integer codebook */
        return layer_error(l, "its %s weights have no integer codebook the runtime takes yet (a multi-bit layer "
                              "lowers to one popcount GEMM per plane, not yet in the exporter)", l->wq.spec.q->name);
    qat_levels lv;
    l->wq.spec.q->levels(&l->wq, &lv);
    for (int c = 0; c < cout; c++) {
        double s = lv.nscale > 1 ? lv.scale[c] : lv.scale[0];
        sw[c] = s;
        for (int k = 0; k < K; k++) {
            float v = wf[(size_t)c * K + k];
            double q = s != 0 ? (double)v / s : 0;
            long lvl = round_level(q);
            if (fabs(q - (double)lvl) > 1e-3 || labs(lvl) > 32767)
                return layer_error(l, "weight %d of channel %d is %g, not an integer level times the scale %g (the %s quantizer breaks the codebook contract)",
                                   k, c, (double)v, s, l->wq.spec.q->name);
            wl[(size_t)c * K + k] = (int32_t)lvl;
        }
    }
    return QAT_OK;
}

/* per channel t_1..t_nthr: t_j = the least s in [-B, B] with
 * level(dir * s) >= lev[j] (B + 1 when none); flip bit c set when dir < 0.
 * Returns the number of flipped channels. */
static int thresholds(const qat_layer *l, const chain *ch, int cout, int64_t B, const int32_t *lev, int nlev,
                      int32_t *thr, uint8_t *flip, qat_status *st)
{
    int T = nlev - 1, nflip = 0;
    *st = QAT_OK;
    for (int c = 0; c < cout; c++) {
        int dir = chain_dir(ch, c);
        int32_t *t = thr + (size_t)c * (size_t)T - 1; /* t[1..T] */
        if (dir < 0) {
            flip[c / 8] |= (uint8_t)(1u << (c % 8));
            nflip++;
        }
        for (int j = 1; j <= T; j++) {
            int64_t lo = -B, hi = B + 1; /* find the least s with level >= lev[j] in [lo, hi] */
            while (lo < hi) {
                int64_t mid = lo + (hi - lo) / 2;
                if (chain_level(ch, c, dir * mid) >= lev[j]) hi = mid;
                else lo = mid + 1;
            }
            t[j] = (int32_t)lo;
        }
        /* the folded function must be a monotone step: check it on a sample */
        for (int i = 0; i <= 64; i++) {
            int64_t s = -B + (2 * B) * i / 64;
            int cnt = 0;
            while (cnt < T && t[1 + cnt] <= s) cnt++;
            int want = chain_level(ch, c, dir * s);
            if (lev[cnt] != want) {
                *st = layer_error(l, "channel %d: what follows the layer is not monotone in its accumulator (at %lld: level %d, thresholds say %d)",
                                  c, (long long)(dir * s), want, lev[cnt]);
                return nflip;
            }
        }
    }
    return nflip;
}

/* a layer's weights in the framework's order (c, ky, kx) per output channel
 * -> the runtime's (ky, kx, c), in place (tmp: K values) */
static void to_hwc(int32_t *wl, int cout, int cin, int kh, int kw, int32_t *tmp)
{
    size_t K = (size_t)cin * kh * kw;
    for (int o = 0; o < cout; o++) {
        int32_t *row = wl + (size_t)o * K;
        for (int c = 0; c < cin; c++)
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++) tmp[((size_t)y * kw + x) * cin + c] = row[((size_t)c * kh + y) * kw + x];
        memcpy(row, tmp, K * sizeof *row);
    }
}

/* the weights blob: cout rows of K values in the runtime's (ky, kx, c)
 * order, dense; binary, ternary and power-of-two as bit streams in which
 * weight k of channel c is bit (nibble) c * K + k (docs/format.md) */
static qat_status encode_weights(lowering *L, int op, qatrt_kernel k, const int32_t *wl, int cout, int K)
{
    size_t n = (size_t)cout * K, size = qatrt_weight_bytes(k, cout, K), plane = (n + 7) / 8;
    uint8_t *buf = calloc(size ? size : 1, 1);
    int32_t *bsum = calloc((size_t)cout, sizeof *bsum);
    qat_status st = QAT_OK;
    if (!buf || !bsum) st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
    for (size_t i = 0; i < n && !st; i++) {
        int32_t v = wl[i];
        switch (k) {
        case QATRT_K_BIN: case QATRT_K_U8B: buf[i / 8] |= (uint8_t)((v < 0) << (i % 8)); break;
        case QATRT_K_TER: case QATRT_K_I8T:
            buf[i / 8] |= (uint8_t)((v != 0) << (i % 8));
            buf[plane + i / 8] |= (uint8_t)((v < 0) << (i % 8));
            break;
        case QATRT_K_I16:
            buf[2 * i] = (uint8_t)(v & 0xff);
            buf[2 * i + 1] = (uint8_t)((uint32_t)v >> 8 & 0xff);
            break;
        case QATRT_K_P2: buf[i / 2] |= (uint8_t)(pow2_code(v) << (4 * (i & 1))); break;
        default:
            buf[i] = (uint8_t)(int8_t)v;
            bsum[i / (size_t)K] += v;
            break;
        }
    }
    if (!st) st = w_blob(&L->w, op, QNN_OP_WEIGHTS, buf, size);
    if (!st && k == QATRT_K_I8I8) st = w_blob(&L->w, op, QNN_OP_BSUM, bsum, (size_t)cout * 4);
    free(buf);
    free(bsum);
    return st;
}

/* An ALQ layer's planes and fixed-point coordinates as the multi-bit
 * weights blob (docs/format.md): groups in training order (channel c's gc
 * groups), each group's elements in the order the runtime lays a row out
 * (0: (c, ky, kx), the layer's own; 1: (ky, kx, c) for pixel-wise groups,
 * which are then contiguous). The coefficients are the forward's,
 * round(alpha 2^F) with 2^-F the layer's scale, negated for a channel whose
 * weights the caller negated (sw < 0). Only the output channels orows[]
 * (cout of them) are written, and of each group only the elements of the
 * input channels in_keep[] flags (NULL: all cin0): a group left empty
 * goes with its planes, and groups left of unequal sizes get the offset
 * table (n = 0). The weights it encodes are checked against wl (cout rows
 * of K = cin kh kw, the kept input channels, in the runtime's (ky, kx, c)
 * order). */
static qat_status encode_mb(lowering *L, int op, const qat_layer *l, int cout, const int *orows, int cin0,
                            const uint8_t *in_keep, int cin, int kh, int kw, const int32_t *wl, const double *sw,
                            size_t *bytes)
{
    qat_alq_node a;
    qat_alq_node_get(&l->wq, &a);
    size_t n0 = a.gp.n, gc0 = a.gp.per_chan, K0 = (size_t)cin0 * kh * kw, K = (size_t)cin * kh * kw, T = (size_t)kh * kw;
    if (n0 * gc0 != K0 || a.gp.G % gc0)
        return layer_error(l, "its ALQ groups (%zu of %zu per channel) do not cover its %zu weights per channel", gc0, n0, K0);
    int order = a.gp.structure == QAT_ALQ_PIXEL;
    int F = -ilogbf(l->wq.buf->x[0]);
    /* the kept input channels' ranks, each group's kept length */
    int *rank = malloc(sizeof(int) * (size_t)cin0);
    uint32_t *len = calloc(gc0 + 1, sizeof(uint32_t)), *off = calloc(gc0 + 1, sizeof(uint32_t));
    int32_t *row = malloc(sizeof(int32_t) * (K ? K : 1));
    uint8_t *b = NULL;
    qat_status st = QAT_OK;
    if (!rank || !len || !off || !row) {
        st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
        goto done;
    }
    for (int c = 0, r = 0; c < cin0; c++) rank[c] = !in_keep || in_keep[c] ? r++ : -1;
    size_t gc = 0, n = 0;
    int uniform = 1;
    for (size_t j = 0; j < gc0; j++) {
        for (size_t e = 0; e < n0; e++) {
            size_t pos = j * n0 + e;
            len[j] += rank[order ? e : pos / T] >= 0;
        }
        if (!len[j]) continue;
        off[gc + 1] = off[gc] + len[j];
        if (n && len[j] != n) uniform = 0;
        n = len[j];
        gc++;
    }
    if (off[gc] != K) {
        st = layer_error(l, "its kept groups cover %u of the %zu weights per channel", off[gc], K);
        goto done;
    }
    size_t planes = 0, nbits = 0;
    for (int r = 0; r < cout; r++)
        for (size_t j = 0; j < gc0; j++) {
            size_t g = (size_t)orows[r] * gc0 + j;
            planes += len[j] ? a.I[g] : 0;
            nbits += (size_t)a.I[g] * len[j];
        }
    if (!uniform) n = 0;
    size_t I_at = QNN_MB_TABLES + (n ? 0 : 4 * (gc + 1)), chan_at = (I_at + (size_t)cout * gc + 3) / 4 * 4;
    size_t bit0_at = chan_at + 4 * (size_t)cout, coef_at = bit0_at + (n ? 0 : 4 * (size_t)cout);
    size_t bits_at = coef_at + 2 * planes, size = bits_at + (nbits + 7) / 8;
    if (!(b = calloc(size, 1))) {
        st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
        goto done;
    }
    put32(b + QNN_MB_N, (uint32_t)n), put32(b + QNN_MB_GC, (uint32_t)gc), put32(b + QNN_MB_ORDER, (uint32_t)order);
    put32(b + QNN_MB_IMAX, (uint32_t)a.imax), put32(b + QNN_MB_PLANES, (uint32_t)planes);
    for (size_t j = 0; !n && j <= gc; j++) put32(b + QNN_MB_TABLES + 4 * j, off[j]);
    size_t q = 0, bit = 0;
    for (int r = 0; r < cout && !st; r++) {
        int c = orows[r];
        put32(b + chan_at + 4 * (size_t)r, (uint32_t)q);
        if (!n) put32(b + bit0_at + 4 * (size_t)r, (uint32_t)bit);
        memset(row, 0, sizeof(int32_t) * K);
        int neg = sw[r] < 0;
        for (size_t j = 0, jj = 0; j < gc0; j++) {
            if (!len[j]) continue;
            size_t g = (size_t)c * gc0 + j;
            b[I_at + (size_t)r * gc + jj++] = a.I[g];
            for (int i = 0; i < a.I[g]; i++, q++) {
                int32_t co = (int32_t)lrintf(ldexpf(a.alpha[g * (size_t)a.imax + (size_t)i], F));
                if (neg) co = -co;
                b[coef_at + 2 * q] = (uint8_t)(co & 0xff);
                b[coef_at + 2 * q + 1] = (uint8_t)((uint32_t)co >> 8 & 0xff);
                const int8_t *pl = a.B + (g * (size_t)a.imax + (size_t)i) * n0;
                for (size_t e = 0; e < n0; e++) {
                    /* element e of the group: its input channel and tap, kept or not */
                    size_t pos = j * n0 + e, ci = order ? e : pos / T, tap = order ? j : pos % T;
                    if (rank[ci] < 0) continue;
                    if (pl[e] < 0) b[bits_at + bit / 8] |= (uint8_t)(1u << (bit % 8));
                    bit++;
                    row[tap * (size_t)cin + (size_t)rank[ci]] += pl[e] < 0 ? -co : co;
                }
            }
        }
        for (size_t k = 0; k < K && !st; k++)
            if (row[k] != wl[(size_t)r * K + k])
                st = layer_error(l, "its multi-bit encoding gives weight %d at channel %d, element %zu; the codebook says %d",
                                 row[k], c, k, wl[(size_t)r * K + k]);
    }
    if (!st) st = w_blob(&L->w, op, QNN_OP_WEIGHTS, b, size);
    *bytes = size;
done:
    free(b), free(row), free(rank), free(len), free(off);
    return st;
}

static int bits_of(qatrt_kernel k)
{
    switch (k) {
    case QATRT_K_BIN: case QATRT_K_U8B: return 1;
    case QATRT_K_TER: case QATRT_K_I8T: return 2;
    case QATRT_K_P2: return 4;
    case QATRT_K_I16: return 16;
    default: return 8;
    }
}

static void set_op(uint8_t *r, int type, int flags, int cin, int h, int w, int cout, int oh, int ow)
{
    put32(r + QNN_OP_TYPE, (uint32_t)type);
    put32(r + QNN_OP_FLAGS, (uint32_t)flags);
    put32(r + QNN_OP_CIN, (uint32_t)cin);
    put32(r + QNN_OP_H, (uint32_t)h);
    put32(r + QNN_OP_W, (uint32_t)w);
    put32(r + QNN_OP_COUT, (uint32_t)cout);
    put32(r + QNN_OP_OH, (uint32_t)oh);
    put32(r + QNN_OP_OW, (uint32_t)ow);
}

static qat_status new_op(lowering *L, const qat_layer *l, int *op)
{
    if (L->w.nops >= QATRT_MAX_OPS) return layer_error(l, "more than %d integer ops", QATRT_MAX_OPS);
    *op = L->w.nops++;
    memset(L->w.ops[*op], 0, QATRT_OP_SIZE);
    put32(L->w.ops[*op] + QNN_OP_IN0, (uint32_t)*op); /* a chain: the op before (op k - 1 is k), the image for op 0 */
    return QAT_OK;
}

/* the quantizer on the next compute layer's input as the chain's target,
 * and that layer's input levels */
static qat_status set_target(lowering *L, qat_layer *next, chain *ch, rt_tensor *out, int *approx)
{
    if (next->aq.spec.q && !next->aq.spec.q->levels)
        return layer_error(next, "its input quantizer %s has no integer codebook the runtime takes yet (multi-bit "
                                 "activations x_ref + D gamma, not yet in the exporter)", next->aq.spec.q->name);
    if (next->aq.spec.q) {
        qat_levels lv;
        next->aq.spec.q->levels(&next->aq, &lv);
        ch->q = &next->aq;
        ch->g = &L->m->g;
        ch->qs = lv.scale[0];
        out->nlev = level_set(&lv, out->lev, QATRT_MAX_LEVELS);
        out->sa = lv.scale[0];
        if (out->nlev < 2 || out->lev[0] < -128 || out->lev[out->nlev - 1] > 127)
            return layer_error(next, "its input quantizer '%s' has levels %d..%d; the runtime keeps activations as int8 levels",
                               next->aq.spec.q->name, out->lev[0], out->lev[out->nlev - 1]);
        return QAT_OK;
    }
    if (!L->o->float_bits || !L->calib_lo)
        return layer_error(next, "its input is float (act = float, or a policy in [quant]): there is no integer form; export with "
                                 "--float-layers int8|int16 and calibration data to quantize it after training");
    float lo = L->calib_lo[next->index], hi = L->calib_hi[next->index];
    double mx = fmax(fabs((double)lo), fabs((double)hi));
    ch->q = NULL;
    ch->vs = mx > 0 ? mx / 127.0 : 1.0;
    ch->vlo = lo >= 0 ? 0 : -127;
    ch->vhi = 127;
    out->nlev = 0;
    for (int v = ch->vlo; v <= ch->vhi; v++) out->lev[out->nlev++] = v;
    out->sa = ch->vs;
    *approx = 1;
    return QAT_OK;
}

/* ---- what folds into a compute layer's op: one rule per layer type ------- */

/* the layers between a compute layer and the next one, as the chain sees them */
typedef struct {
    post_op post[MAX_POST];
    int npost;
    int pools[MAX_POST], npool; /* max pools, moved after the thresholds */
    int last;                   /* no compute layer follows: the op gives logits */
} tail;

static qat_status fold_batchnorm(qat_layer *p, tail *t)
{
    int C = p->gamma->shape[0];
    post_op *o = &t->post[t->npost++];
    o->kind = POST_BN;
    o->a = malloc(sizeof(float) * (size_t)C);
    o->b = malloc(sizeof(float) * (size_t)C);
    if (!o->a || !o->b) return qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
    qat_batchnorm_affine(p, o->a, o->b);
    for (int c = 0; c < C && t->npool; c++)
        if (o->a[c] < 0)
            return layer_error(p, "a batchnorm with a negative scale follows a max pool (channel %d); pool after the "
                                  "batchnorm to export", c);
    return QAT_OK;
}

static qat_status fold_relu(qat_layer *p, tail *t)
{
    (void)p;
    t->post[t->npost++].kind = POST_RELU;
    return QAT_OK;
}

static qat_status fold_hardtanh(qat_layer *p, tail *t)
{
    post_op *o = &t->post[t->npost++];
    o->kind = POST_HARDTANH;
    o->lo = p->lo;
    o->hi = p->hi;
    return QAT_OK;
}

static qat_status fold_maxpool(qat_layer *p, tail *t)
{
    if (t->last) return layer_error(p, "a max pool after the last compute layer has no integer logits form");
    t->pools[t->npool++] = p->index;
    return QAT_OK;
}

/* dropout (identity in eval), flatten (the runtime's tensors are the same bytes) */
static qat_status fold_through(qat_layer *p, tail *t)
{
    (void)p, (void)t;
    return QAT_OK;
}

static qat_status lower_compute(lowering *L, int li, int next_li, rt_tensor *in);

/* the type of op i written so far */
static int rd_type(const lowering *L, int i)
{
    const uint8_t *p = L->w.ops[i] + QNN_OP_TYPE;
    return (int)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24);
}

/* a layer's output shape as the runtime's [c, h, w] */
static void chw(const qat_layer *l, int *c, int *h, int *w)
{
    const qat_tensor *t = l->out;
    *c = t->shape[1];
    *h = t->ndim == 4 ? t->shape[2] : 1;
    *w = t->ndim == 4 ? t->shape[3] : 1;
}

/* an op giving a stream */
static qat_status new_stream_op(lowering *L, const qat_layer *l, int type, int in0, int in1, int *op)
{
    qat_status st = new_op(L, l, op);
    if (st) return st;
    int c, h, w;
    chw(&L->m->layers[l->index - 1], &c, &h, &w);
    set_op(L->w.ops[*op], type, 0, c, h, w, c, type == QATRT_OP_GAP ? 1 : h, type == QATRT_OP_GAP ? 1 : w);
    put32(L->w.ops[*op] + QNN_OP_IN0, (uint32_t)in0 + 1);
    if (in1 >= 0) put32(L->w.ops[*op] + QNN_OP_IN1, (uint32_t)in1 + 1);
    L->stream[l->index] = *op;
    return QAT_OK;
}

/* the layers from `from` up to the next compute layer on int32 tensors
 * (shortcut: ADD; global_avgpool: GAP; route: an earlier tensor; dropout,
 * flatten: as they are), then the next compute layer's input quantizer
 * on the tensor it reads (QUANT): *in becomes its levels */
static qat_status lower_stream(lowering *L, int from, int next_li, rt_tensor *in)
{
    qat_model *m = L->m;
    int end = next_li >= 0 ? next_li : m->nlayers, op = 0;
    qat_status st = QAT_OK;
    for (int j = from; j < end && !st; j++) {
        qat_layer *p = &m->layers[j];
        int a = L->stream[j - 1];
        if (is(p, "route")) {
            int t = p->from < 0 ? j + p->from : p->from;
            if (t < 0 || L->stream[t] < 0)
                return layer_error(p, "routes to %s, which has no integer tensor to take", t < 0 ? "the image" : m->layers[t].name);
            L->stream[j] = L->stream[t];
            continue;
        }
        if (a < 0) return layer_error(p, "its input has no int32 form (internal: the chain before it did not end as one)");
        if (is(p, "dropout") || is(p, "flatten")) {
            L->stream[j] = a;
        } else if (is(p, "relu") && rd_type(L, a) == QATRT_OP_ADD && L->stream[j - 1] == a && a == L->w.nops - 1) {
            put32(L->w.ops[a] + QNN_OP_FLAGS, QATC_F32_RELU); /* the add's ReLU, max(x, 0) on its keys */
            L->stream[j] = a;
        } else if (is(p, "shortcut")) {
            int t = j + p->from;
            if (t < 0 || L->stream[t] < 0)
                return layer_error(p, "adds %s, which has no int32 form", t < 0 ? "the image" : m->layers[t].name);
            int b = L->stream[t], c, h, w, c1, h1, w1;
            chw(p, &c, &h, &w);
            chw(&m->layers[t], &c1, &h1, &w1);
            st = new_stream_op(L, p, QATRT_OP_ADD, a, b, &op);
            if (!st) put32(L->w.ops[op] + QNN_OP_STRIDE, (uint32_t)(h1 / h));
        } else if (is(p, "global_avgpool")) {
            int c, h, w;
            chw(&m->layers[j - 1], &c, &h, &w);
            if ((h * w) & (h * w - 1))
                return layer_error(p, "pools a %dx%d map; the exact mean (the float model's double sum, divided) is "
                                      "implemented for 2^k values", h, w);
            st = new_stream_op(L, p, QATRT_OP_GAP, a, -1, &op);
        } else {
            return layer_error(p, "has no integer lowering on the float stream of a residual add or global pool (supported "
                                  "there: shortcut, a ReLU right after one, route, global_avgpool, dropout, flatten)");
        }
    }
    if (st) return st;
    if (next_li < 0)
        return layer_error(&m->layers[end - 1], "the model ends in an int32 tensor; its last layer must be a conv2d or linear "
                                                "giving the logits");
    /* the next compute layer's input quantizer on the tensor it reads */
    qat_layer *nx = &m->layers[next_li];
    int s = L->stream[next_li - 1], C, H, W, approx = 0;
    chw(&m->layers[next_li - 1], &C, &H, &W);
    rt_tensor out = {.c = C, .h = H, .w = W};
    if (!nx->aq.spec.q && !L->o->float_bits) { /* a float input: the next layer reads the stream (lower_wide) */
        out.stream = 1;
        out.sop = s;
        *in = out;
        return QAT_OK;
    }
    double *ones = malloc(sizeof(double) * (size_t)C);
    if (!ones) return qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
    for (int c = 0; c < C; c++) ones[c] = 1.0;
    chain ch = {.keys = 1, .sw = ones};
    int32_t *thr = NULL;
    uint8_t *flip = NULL;
    if ((st = set_target(L, nx, &ch, &out, &approx))) goto done;
    int T = out.nlev - 1;
    int64_t B = 0x7f800000; /* the key of +inf */
    thr = malloc(sizeof(int32_t) * (size_t)C * (size_t)T);
    flip = calloc(((size_t)C + 7) / 8, 1);
    if (!thr || !flip) {
        st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
        goto done;
    }
    thresholds(nx, &ch, C, B, out.lev, out.nlev, thr, flip, &st);
    if (st || (st = new_op(L, nx, &op))) goto done;
    int8_t lev8[QATRT_MAX_LEVELS];
    for (int j = 0; j < out.nlev; j++) lev8[j] = (int8_t)out.lev[j];
    set_op(L->w.ops[op], QATRT_OP_QUANT, 0, C, H, W, C, H, W);
    put32(L->w.ops[op] + QNN_OP_IN0, (uint32_t)s + 1);
    put32(L->w.ops[op] + QNN_OP_NTHR, (uint32_t)T);
    if ((st = w_blob(&L->w, op, QNN_OP_THR, thr, sizeof(int32_t) * (size_t)C * (size_t)T)) ||
        (st = w_blob(&L->w, op, QNN_OP_LEVELS, lev8, (size_t)out.nlev)))
        goto done;
    L->r->payload += (size_t)C * (size_t)T * 4 + (size_t)out.nlev;
    note(L->r->kernels, sizeof L->r->kernels, "%s: its input quantizer on int32 (%d threshold%s per channel)\n", nx->name, T,
         T == 1 ? "" : "s");
    if (approx) {
        L->r->exact = 0;
        note(L->r->approx, sizeof L->r->approx, "%s%s (input)", L->r->approx[0] ? ", " : "", nx->name);
    }
    *in = out;
done:
    free(ones);
    free(thr);
    free(flip);
    return st;
}

/* how each layer type lowers: an op of its own, or folded into the op of
 * the compute layer before it */
typedef struct {
    const char *section;
    qat_status (*lower)(lowering *L, int li, int next_li, rt_tensor *in);
    qat_status (*fold)(qat_layer *p, tail *t);
} lowering_rule;

static const lowering_rule rules[] = {
    {"conv2d", lower_compute, NULL}, {"linear", lower_compute, NULL},   {"batchnorm", NULL, fold_batchnorm},
    {"relu", NULL, fold_relu},       {"hardtanh", NULL, fold_hardtanh}, {"maxpool", NULL, fold_maxpool},
    {"dropout", NULL, fold_through}, {"flatten", NULL, fold_through},
    /* neither: they end a chain as an int32 tensor (lower_stream) */
    {"shortcut", NULL, NULL},        {"route", NULL, NULL},             {"global_avgpool", NULL, NULL},
};

static const lowering_rule *rule_for(const qat_layer *l)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (!strcmp(rules[i].section, l->type->section)) return &rules[i];
    return NULL;
}

/* "supported between layers: batchnorm, relu, ..." for messages */
static const char *rules_text(int compute)
{
    static char buf[2][256];
    char *b = buf[compute != 0];
    snprintf(b, sizeof buf[0], "supported %s: ", compute ? "compute layers" : "between layers");
    for (size_t i = 0, k = 0; i < sizeof rules / sizeof rules[0]; i++)
        if ((rules[i].lower != NULL) == (compute != 0)) {
            size_t n = strlen(b);
            snprintf(b + n, sizeof buf[0] - n, "%s%s", k++ ? ", " : "", rules[i].section);
        }
    return b;
}

/* what follows compute layer li up to the next one (next_li, -1: none)
 * folds into tl. The chain ends at the next compute layer, or as an int32
 * tensor at a layer whose output a later layer reads, or before a
 * shortcut, route or global pool (lower_stream takes it from there):
 * *to_stream, and *seg the last layer folded. */
static qat_status fold_tail(lowering *L, int li, int next_li, tail *tl, int *seg, int *to_stream)
{
    qat_model *m = L->m;
    int end = next_li >= 0 ? next_li : m->nlayers;
    qat_status st = QAT_OK;
    *seg = li;
    *to_stream = L->needed[li];
    tl->last = next_li < 0; /* as the folds see it (a max pool refuses a last layer) */
    for (int j = li + 1; j < end && !st && !*to_stream; j++) {
        qat_layer *p = &m->layers[j];
        const lowering_rule *ru = rule_for(p);
        if (ru && !ru->fold && !ru->lower) {
            *to_stream = 1;
            break;
        }
        if (!ru || !ru->fold) st = layer_error(p, "has no integer lowering (%s)", rules_text(0));
        else if (tl->npost >= MAX_POST || tl->npool >= MAX_POST) st = layer_error(p, "too many layers between two compute layers");
        else st = ru->fold(p, tl);
        *seg = j;
        *to_stream = L->needed[j];
    }
    tl->last = next_li < 0 && !*to_stream;
    if (!st && *to_stream && tl->npool)
        st = layer_error(&m->layers[tl->pools[0]], "a max pool before a residual add or a global pool has no integer lowering yet");
    return st;
}

/* the GEMM for an op: what its input levels (or the image) and its weight
 * levels allow, the cheapest first */
static qatrt_kernel choose_kernel(const rt_tensor *in, const int32_t *wl, size_t nw, int K, int pad)
{
    int w_pm1 = all_in(wl, nw, -1, 1, 1), w_ter = all_in(wl, nw, -1, 1, 0), w_i8 = all_in(wl, nw, -128, 127, 0);
    int w_p2 = 1;
    for (size_t i = 0; i < nw && w_p2; i++) w_p2 = pow2_code(wl[i]) >= 0;
    int a_pm1 = !in->u8 && all_in(in->lev, (size_t)in->nlev, -1, 1, 1);
    int a_ter = !in->u8 && all_in(in->lev, (size_t)in->nlev, -1, 1, 0);
    /* +-1 weights on the image: a bit each, expanded to +-1 bytes in the
     * kernel, unless K is small, where int8 rows let the runtime broadcast
     * whole pixels into VPDPBUSD (and the size difference is small) */
    if (in->u8) return w_pm1 && K > 64 ? QATRT_K_U8B : w_i8 ? QATRT_K_U8I8 : QATRT_K_I16;
    if (a_pm1 && w_pm1) return QATRT_K_BIN; /* a padded tap (0) is taken back per border output */
    if (a_ter && w_ter) return QATRT_K_TER;
    if (w_ter) return QATRT_K_I8T;
    if (w_p2) return QATRT_K_P2;
    if (w_i8) return QATRT_K_I8I8;
    return QATRT_K_I16;
}

/* A first layer's pixel table (T32): channel c's pixel p as the loader
 * normalises it, x = (p / 255 - mean_c) / std_c in float, times 2^S and
 * rounded, S as large as K |x| wmax < 2^31 allows (at most 30): a zero
 * pad is the normalised 0 exactly, and the rounding, at most 2^-(S+1),
 * is below float32's own at the pixel values (S >= 23 for a 3x3x3 layer of
 * int8 weights up to 3). The table goes to *out (c x 256 int32); *xmax
 * gets its largest |value|, *bits S. */
static qat_status pixel_table(lowering *L, int K, int64_t wmax, int32_t **out, int64_t *xmax, int *bits)
{
    const qat_model *m = L->m;
    double big = 0;
    for (int c = 0; c < m->c; c++)
        for (int p = 0; p < 256; p++) {
            float mu = L->o->mean ? L->o->mean[c] : 0.0f, sd = L->o->std ? L->o->std[c] : 1.0f;
            big = fmax(big, fabs((double)qat_data_pixel_grid((uint8_t)p, mu, sd, L->o->pixel_grid)));
        }
    int S = 30;
    while (S > 0 && (double)K * (double)(wmax ? wmax : 1) * ldexp(big, S) >= 2147483647.0) S--;
    int32_t *t = malloc(sizeof(int32_t) * (size_t)m->c * 256);
    if (!t) return qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
    *xmax = 0;
    for (int c = 0; c < m->c; c++)
        for (int p = 0; p < 256; p++) {
            float mu = L->o->mean ? L->o->mean[c] : 0.0f, sd = L->o->std ? L->o->std[c] : 1.0f;
            t[c * 256 + p] = (int32_t)lrint(ldexp((double)qat_data_pixel_grid((uint8_t)p, mu, sd, L->o->pixel_grid), S));
            *xmax = llabs((long long)t[c * 256 + p]) > *xmax ? llabs((long long)t[c * 256 + p]) : *xmax;
        }
    *out = t;
    *bits = S;
    return QAT_OK;
}

/* a compute layer's output as a stream (F32 stage): per channel [e, bias,
 * a, b] so that the runtime's float32 operations (softfloat.h) are the
 * chain's: acc 2^e (acc sa sw[c], a power of two: the float model's
 * exact conv sum), + bias, one batchnorm, a ReLU. Checked against the
 * chain on accumulators across [-B, B]. */
static qat_status lower_f32(lowering *L, const qat_layer *l, int op, const chain *ch, int cout, int64_t B)
{
    int flags = ch->bias ? QATC_F32_BIAS : 0, nbn = 0;
    for (int i = 0; i < ch->npost; i++) {
        const post_op *p = &ch->post[i];
        if (p->kind == POST_BN && nbn == 0 && !(flags & QATC_F32_RELU)) nbn++, flags |= QATC_F32_BN;
        else if (p->kind == POST_RELU && !(flags & QATC_F32_RELU)) flags |= QATC_F32_RELU;
        else return layer_error(l, "before a residual add, route or global pool, its output may go through one batchnorm "
                                   "and a ReLU (no more, and no HardTanh or max pool yet)");
    }
    if (ch->u8 || ch->off)
        return layer_error(l, "a residual stream from %s has no exact integer form yet",
                           ch->u8 ? "the raw image's accumulator" : "a layer after emptied channels");
    int32_t *q = calloc((size_t)cout, 16);
    if (!q) return qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
    qat_status st = QAT_OK;
    /* a scale that is not a power of two: the float model's conv sum is
     * not the accumulator exactly scaled (its products round), so the
     * stream is float32(acc) times the scale, close but not exact */
    for (int c = 0; c < cout; c++) {
        int e;
        double s = ch->sa * ch->sw[c];
        if (s != 0 && frexp(fabs(s), &e) != 0.5) flags |= QATC_F32_MUL;
    }
    if (flags & QATC_F32_MUL) {
        L->r->exact = 0;
        note(L->r->approx, sizeof L->r->approx, "%s%s (its scale is not a power of two: the stream after it)",
             L->r->approx[0] ? ", " : "", l->name);
    }
    for (int c = 0; c < cout && !st; c++) {
        double s = ch->sa * ch->sw[c];
        int e = 0;
        if (s != 0) {
            frexp(fabs(s), &e);
            e -= 1;
        }
        uint32_t bits[3] = {0, 0, 0};
        if (ch->bias) memcpy(&bits[0], &ch->bias[c], 4);
        for (int i = 0; i < ch->npost; i++)
            if (ch->post[i].kind == POST_BN) memcpy(&bits[1], &ch->post[i].a[c], 4), memcpy(&bits[2], &ch->post[i].b[c], 4);
        int32_t *qc = q + 4 * (size_t)c;
        if (s < 0) st = layer_error(l, "channel %d: a negative accumulator scale", c);
        qc[0] = e;
        if (flags & QATC_F32_MUL) {
            float sf = (float)s;
            uint32_t sb;
            memcpy(&sb, &sf, 4);
            qc[0] = (int32_t)sb;
        }
        for (int j = 0; j < 3; j++) qc[1 + j] = (int32_t)bits[j];
        /* the runtime's float32 arithmetic against the chain's */
        for (int64_t k = 0; k <= 2048 && !st && !(flags & QATC_F32_MUL); k++) {
            int64_t acc = B <= 1024 ? -B + k : -B + (2 * B) * k / 2048;
            if (acc > B) break;
            float x = chain_value(ch, c, acc);
            uint32_t xb;
            memcpy(&xb, &x, 4);
            if (qatc_f32_stage(qc, flags, (int32_t)acc) != qatc_key(xb))
                st = layer_error(l, "channel %d: the integer float32 stage gives key %d at accumulator %lld, the float "
                                    "model %g (internal error)", c, qatc_f32_stage(qc, flags, (int32_t)acc), (long long)acc,
                                 (double)x);
        }
    }
    if (!st) {
        put32(L->w.ops[op] + QNN_OP_STAGE, QATRT_STAGE_F32);
        put32(L->w.ops[op] + QNN_OP_FLAGS, (uint32_t)(flags | (int)(L->w.ops[op][QNN_OP_FLAGS] & 1)));
        st = w_blob(&L->w, op, QNN_OP_REQ, q, (size_t)cout * 16);
        L->r->payload += (size_t)cout * 16;
    }
    free(q);
    return st;
}

/* a conv2d or linear layer and what follows it up to the next one: one
 * CONV op (and the pools after its thresholds) */
/* the tail's max pools as MAXPOOL ops after the op that gave *out (levels,
 * or a stream's keys, which order as their floats: a pool commutes with the
 * thresholds or the float32 stage before it, both non-decreasing); *out
 * takes the pooled shape, *last the last pool's op */
static qat_status emit_pools(lowering *L, const tail *tl, rt_tensor *out, int *last)
{
    for (int i = 0; i < tl->npool; i++) {
        qat_layer *p = &L->m->layers[tl->pools[i]];
        int pop = 0;
        qat_status st = new_op(L, p, &pop);
        if (st) return st;
        int ph = p->out->shape[2], pw = p->out->shape[3];
        set_op(L->w.ops[pop], QATRT_OP_MAXPOOL, 0, out->c, out->h, out->w, out->c, ph, pw);
        put32(L->w.ops[pop] + QNN_OP_KH, (uint32_t)p->size);
        put32(L->w.ops[pop] + QNN_OP_KW, (uint32_t)p->size);
        put32(L->w.ops[pop] + QNN_OP_STRIDE, (uint32_t)(p->stride ? p->stride : p->size));
        out->h = ph;
        out->w = pw;
        if (last) *last = pop;
    }
    return QAT_OK;
}

static qat_status lower_wide(lowering *L, int li, int next_li, rt_tensor *in);

static qat_status lower_compute(lowering *L, int li, int next_li, rt_tensor *in)
{
    qat_model *m = L->m;
    qat_layer *l = &m->layers[li];
    /* what the config leaves in float arithmetic, unless asked to quantize it */
    /* (float weights, a float input, or ALQ's multi-bit weights on the
     * image giving the next layer a float input; training sums those
     * exactly too, layers/layer.c) */
    int alq_float_out = in->u8 && l->wq.spec.q && !strcmp(l->wq.spec.q->name, "alq") && next_li >= 0 &&
                        !m->layers[next_li].aq.spec.q;
    if (!L->o->float_bits && (in->stream || (in->u8 && !l->wq.spec.q) || alq_float_out)) return lower_wide(L, li, next_li, in);
    qat_export_result *r = L->r;
    int conv = is(l, "conv2d");
    int cin = in->c, h = in->h, w = in->w;
    int cout = conv ? l->filters : l->out->shape[1];
    int kh = conv ? l->size : h, kw = conv ? l->size : w, stride = conv ? l->stride : 1, pad = conv ? l->pad : 0;
    /* the layer before may have dropped emptied channels: the weights have
     * cin0 input channels, the integer graph cin */
    int cin0 = L->drop_keep ? L->drop_c0 : cin;
    int K = cin * kh * kw, K0 = cin0 * kh * kw, taps = kh * kw;
    int oh = conv ? l->out->shape[2] : 1, ow = conv ? l->out->shape[3] : 1;
    if (!conv && (int)l->w->shape[1] != K0) return layer_error(l, "expects %d inputs; the integer graph gives %d", l->w->shape[1], K0);
    /* a first layer whose zero padding (0 after normalisation, not pixel 0)
     * or per-channel normalisation the accumulator of raw pixels cannot
     * express reads the pixels through a table of their normalised values
     * in fixed point (T32) */
    int t32 = in->u8 && pad > 0;
    for (int c = 1; in->u8 && c < m->c && L->o->std; c++)
        t32 |= L->o->std[c] != L->o->std[0] || L->o->mean[c] != L->o->mean[0];
    qat_status st = QAT_OK;
    int32_t *wl = malloc(sizeof(int32_t) * (size_t)cout * K0);
    double *sw = malloc(sizeof(double) * (size_t)cout), *wsum = calloc((size_t)cout, sizeof(double));
    int64_t *aoff = NULL;
    int32_t *thr = NULL, *lev0 = NULL, *table = NULL;
    uint8_t *flip = NULL, *keep = NULL;
    int *orows = NULL;
    tail tl;
    memset(&tl, 0, sizeof tl);
    int approx_w = 0, approx_a = 0;
    if (!wl || !sw || !wsum) {
        st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
        goto done;
    }
    /* operands: what the input levels and weight levels allow */
    int64_t lmax = in->u8 ? 255 : 0; /* the largest |input level| */
    for (int i = 0; !in->u8 && i < in->nlev; i++) lmax = llabs((long long)in->lev[i]) > lmax ? llabs((long long)in->lev[i]) : lmax;
    if ((st = weight_levels(L, l, cout, K0, lmax ? lmax : 1, wl, sw, &approx_w))) goto done;
    if (L->drop_keep) {
        /* a dropped input channel is a constant level v: its weights add
         * v times their sum to every accumulator (no padding reaches it, or
         * v is 0); that goes to aoff, the rest of the row closes up */
        if (!(aoff = calloc((size_t)cout, sizeof *aoff))) {
            st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
            goto done;
        }
        for (int o = 0; o < cout; o++) {
            int32_t *src = wl + (size_t)o * K0, *dst = wl + (size_t)o * K;
            for (int c = 0, ri = 0; c < cin0; c++) {
                if (!L->drop_keep[c]) {
                    for (int t = 0; t < taps; t++) aoff[o] += (int64_t)L->drop_lev[c] * src[(size_t)c * taps + t];
                    continue;
                }
                memmove(dst + (size_t)ri++ * taps, src + (size_t)c * taps, sizeof(int32_t) * (size_t)taps);
            }
        }
    }
    {
        int32_t *tmp = malloc(sizeof(int32_t) * (size_t)K);
        if (!tmp) {
            st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
            goto done;
        }
        to_hwc(wl, cout, cin, kh, kw, tmp);
        free(tmp);
    }
    size_t nw = (size_t)cout * K;
    for (int c = 0; c < cout; c++)
        for (int k = 0; k < K; k++) wsum[c] += wl[(size_t)c * K + k];
    /* ALQ: its planes and coordinates as they are (one masked sum per plane) */
    int alq = l->wq.spec.q && l->wq.spec.q->owns_weights && !strcmp(l->wq.spec.q->name, "alq");
    qatrt_kernel kern = alq ? QATRT_K_MB : choose_kernel(in, wl, nw, K, pad);
    int64_t wmax = 0;
    for (size_t i = 0; i < nw; i++) wmax = llabs((long long)wl[i]) > wmax ? llabs((long long)wl[i]) : wmax;
    int u8 = in->u8; /* the chain's accumulator: of raw pixels, or of levels (or table values) times sa */
    double sa = in->sa;
    if (t32) {
        if (alq || !all_in(wl, nw, -128, 127, 0)) {
            st = layer_error(l, "a first layer with padding or per-channel normalisation needs int8 weight levels (its "
                                "pixels go through a table of their normalised values)");
            goto done;
        }
        int S = 0;
        if ((st = pixel_table(L, K, wmax, &table, &lmax, &S))) goto done;
        kern = QATRT_K_T32;
        u8 = 0;
        sa = ldexp(1.0, -S);
        /* the float model's sums are this accumulator only when they cannot
         * round: pixels on the grid (the table exact), weights small
         * integers times a power of two, every partial sum below 2^24 grid
         * units (qat_data_pixel_grid) */
        int G = L->o->pixel_grid, pow2 = 1;
        for (int c = 0; c < cout && pow2; c++) {
            int e;
            pow2 = frexp(fabs(sw[c]), &e) == 0.5 || sw[c] == 0;
        }
        if (!G || S < G || !pow2 || (double)K * (double)(wmax ? wmax : 1) * ldexp((double)lmax, G - S) >= 16777216.0)
            note(r->kernels, sizeof r->kernels,
                 "%s: its float sums can round (%s), so a sum at a threshold may decide otherwise than the table's exact "
                 "one\n", l->name,
                 !G ? "pixel_grid = 0" : S < G ? "the table is coarser than the pixel grid" :
                 !pow2 ? "its weight scale is not a power of two" : "a sum can reach 2^24 grid units");
    }
    int64_t B = (int64_t)K * lmax * (wmax ? wmax : 1); /* |acc| <= B */
    if (B >= INT32_MAX) {
        st = layer_error(l, "its accumulator could reach %lld, beyond int32", (long long)B);
        goto done;
    }
    /* what follows up to the next compute layer folds into the chain */
    int seg = li, to_stream = 0;
    if ((st = fold_tail(L, li, next_li, &tl, &seg, &to_stream))) goto done;
    /* a float input next (no quantizer): it reads this layer's output as a
     * stream, when the chain can end as one (else set_target refuses it,
     * pointing to --float-layers) */
    if (next_li >= 0 && !m->layers[next_li].aq.spec.q && !L->o->float_bits && !tl.npool && !u8 && !aoff) to_stream = 1;
    chain ch = {.u8 = u8, .sa = sa, .sw = sw, .wsum = wsum, .bias = l->b ? l->b->x : NULL, .off = aoff,
                .npost = tl.npost};
    if (u8) {
        double sd = L->o->std ? L->o->std[0] : 1.0, mu = L->o->mean ? L->o->mean[0] : 0.0;
        ch.inv255std = 1.0 / (255.0 * sd);
        ch.meanstd = mu / sd;
    }
    memcpy(ch.post, tl.post, sizeof tl.post);
    /* a channel whose folded function decreases (negative BN scale) gets
     * negated weights when they can be, so the runtime need not negate */
    if (next_li >= 0 && !to_stream && !L->o->keep_flips)
        for (int c = 0; c < cout; c++) {
            int32_t *row = wl + (size_t)c * K, lowest = kern == QATRT_K_I16 || kern == QATRT_K_MB ? -32768 : -128;
            int ok = chain_dir(&ch, c) < 0;
            for (int k = 0; k < K && ok; k++) ok = row[k] > lowest;
            if (!ok) continue;
            for (int k = 0; k < K; k++) row[k] = -row[k];
            sw[c] = -sw[c];
            wsum[c] = -wsum[c];
            if (aoff) aoff[c] = -aoff[c];
        }
    rt_tensor out = {.c = cout, .h = oh, .w = ow};
    int T = 0, nflip = 0, cout2 = cout, ndrop = 0;
    if (next_li >= 0 && !to_stream) {
        if ((st = set_target(L, &m->layers[next_li], &ch, &out, &approx_a))) goto done;
        T = out.nlev - 1;
        thr = malloc(sizeof(int32_t) * (size_t)cout * (size_t)T);
        flip = calloc(((size_t)cout + 7) / 8, 1);
        keep = malloc((size_t)cout);
        lev0 = calloc((size_t)cout, sizeof *lev0);
        if (!thr || !flip || !keep || !lev0) {
            st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
            goto done;
        }
        nflip = thresholds(l, &ch, cout, B, out.lev, out.nlev, thr, flip, &st);
        if (st) goto done;
        /* emptied channels: every weight 0, so one level whatever the input
         * (acc = 0); the next layer folds them unless its zero padding
         * would meet a nonzero level (keep_emptied: all stay) */
        const qat_layer *nx = &m->layers[next_li];
        int npad = is(nx, "conv2d") && nx->pad > 0, kept = 0;
        for (int c = 0; c < cout; c++) {
            int zero = !L->o->keep_emptied;
            for (int k = 0; k < K && zero; k++) zero = wl[(size_t)c * K + k] == 0;
            lev0[c] = zero ? chain_level(&ch, c, 0) : 0;
            keep[c] = !zero || (npad && lev0[c] != 0);
            kept += keep[c];
        }
        if (!kept) keep[0] = 1, kept = 1; /* a graph needs a channel */
        ndrop = cout - kept;
    }
    if (!(orows = malloc(sizeof(int) * (size_t)cout))) {
        st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
        goto done;
    }
    cout2 = 0;
    for (int c = 0; c < cout; c++)
        if (!ndrop || keep[c]) orows[cout2++] = c;
    if (ndrop) { /* close up the kept channels' rows, scales, thresholds, flip bits */
        uint8_t *flip2 = calloc(((size_t)cout + 7) / 8, 1);
        if (!flip2) {
            st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
            goto done;
        }
        nflip = 0;
        for (int ri = 0; ri < cout2; ri++) {
            int c = orows[ri];
            memmove(wl + (size_t)ri * K, wl + (size_t)c * K, sizeof(int32_t) * (size_t)K);
            memmove(thr + (size_t)ri * T, thr + (size_t)c * T, sizeof(int32_t) * (size_t)T);
            sw[ri] = sw[c];
            wsum[ri] = wsum[c];
            if (flip[c / 8] >> (c % 8) & 1) flip2[ri / 8] |= (uint8_t)(1u << (ri % 8)), nflip++;
        }
        free(flip);
        flip = flip2;
        out.c = cout2;
        r->emptied += ndrop;
    }
    int op = 0;
    if ((st = new_op(L, l, &op))) goto done;
    uint8_t *rec = L->w.ops[op];
    set_op(rec, QATRT_OP_CONV, in->u8, cin, h, w, cout2, oh, ow);
    put32(rec + QNN_OP_KH, (uint32_t)kh);
    put32(rec + QNN_OP_KW, (uint32_t)kw);
    put32(rec + QNN_OP_STRIDE, (uint32_t)stride);
    put32(rec + QNN_OP_PAD, (uint32_t)pad);
    put32(rec + QNN_OP_KERNEL, (uint32_t)kern);
    if (alq) {
        size_t bytes = 0;
        if ((st = encode_mb(L, op, l, cout2, orows, cin0, L->drop_keep, cin, kh, kw, wl, sw, &bytes))) goto done;
        r->payload += bytes;
        r->weight_bytes += bytes;
    } else {
        if ((st = encode_weights(L, op, kern, wl, cout2, K))) goto done;
        r->payload += ((size_t)cout2 * K * (size_t)bits_of(kern) + 7) / 8;
        r->weight_bytes += ((size_t)cout2 * K * (size_t)bits_of(kern) + 7) / 8;
    }
    if (table) {
        if ((st = w_blob(&L->w, op, QNN_OP_LUT, table, sizeof(int32_t) * (size_t)m->c * 256))) goto done;
        r->payload += sizeof(int32_t) * (size_t)m->c * 256;
    }
    r->float_bytes += (size_t)cout * K0 * 4;
    if (next_li >= 0 && !to_stream) {
        int8_t lev8[QATRT_MAX_LEVELS];
        for (int j = 0; j < out.nlev; j++) lev8[j] = (int8_t)out.lev[j];
        put32(rec + QNN_OP_STAGE, QATRT_STAGE_THRESH);
        put32(rec + QNN_OP_NTHR, (uint32_t)T);
        if ((st = w_blob(&L->w, op, QNN_OP_THR, thr, sizeof(int32_t) * (size_t)cout2 * (size_t)T)) ||
            (st = w_blob(&L->w, op, QNN_OP_LEVELS, lev8, (size_t)out.nlev)) ||
            (nflip && (st = w_blob(&L->w, op, QNN_OP_FLIP, flip, ((size_t)cout2 + 7) / 8))))
            goto done;
        r->payload += (size_t)cout2 * (size_t)T * 4 + (size_t)out.nlev + (nflip ? ((size_t)cout2 + 7) / 8 : 0);
        note(r->kernels, sizeof r->kernels, "%s: %s, %d threshold%s per channel", l->name, qatrt_kernel_name(kern), T,
             T == 1 ? "" : "s");
        if (ndrop)
            note(r->kernels, sizeof r->kernels, "; %d of %d channels emptied, dropped (constants folded into %s)", ndrop,
                 cout, m->layers[next_li].name);
        note(r->kernels, sizeof r->kernels, "\n");
        /* the pools, now on levels */
        if ((st = emit_pools(L, &tl, &out, NULL))) goto done;
    } else if (to_stream) {
        if ((st = lower_f32(L, l, op, &ch, cout, B))) goto done;
        L->stream[seg] = op;
        note(r->kernels, sizeof r->kernels, "%s: %s, a float32 stream\n", l->name, qatrt_kernel_name(kern));
    } else {
        /* int32 logits = round(real * 2^S): real = A[c] acc + Bc[c] exactly
         * affine (the chain has only BN and a bias here) */
        if (l->oq.spec.q) {
            st = layer_error(l, "a quantized output (last_output policy) is not supported by the exporter yet");
            goto done;
        }
        for (int i = 0; i < tl.npost; i++)
            if (tl.post[i].kind != POST_BN) {
                st = layer_error(l, "only batchnorm may follow the last compute layer (its logits must be affine)");
                goto done;
            }
        double Amax = 0, R = 0, *A = malloc(sizeof(double) * (size_t)cout), *Bc = malloc(sizeof(double) * (size_t)cout);
        int32_t *req = calloc((size_t)cout, 16);
        if (!A || !Bc || !req) {
            free(A), free(Bc), free(req);
            st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
            goto done;
        }
        for (int c = 0; c < cout; c++) {
            double a = u8 ? sw[c] * ch.inv255std : sa * sw[c];
            double b = u8 ? -sw[c] * ch.meanstd * wsum[c] : 0.0;
            if (aoff) b += a * (double)aoff[c]; /* the dropped inputs' constant part */
            b += l->b ? l->b->x[c] : 0.0;
            for (int i = 0; i < tl.npost; i++) {
                a *= tl.post[i].a[c];
                b = b * tl.post[i].a[c] + tl.post[i].b[c];
            }
            A[c] = a;
            Bc[c] = b;
            Amax = fmax(Amax, fabs(a));
            R = fmax(R, fabs(a) * (double)B + fabs(b));
        }
        int S = R > 0 ? (int)floor(log2(2147483000.0 / R)) : 24;
        if (S > 40) S = 40;
        for (int c = 0; c < cout; c++) {
            double as = A[c] * ldexp(1.0, S);
            int sh = 0;
            if (as != 0) {
                int e;
                frexp(as, &e); /* |as| in [2^(e-1), 2^e) */
                sh = 30 - e;
                if (sh < 0) sh = 0;
                if (sh > 62) sh = 62;
            }
            double mult = nearbyint(as * ldexp(1.0, sh)), bias = nearbyint(Bc[c] * ldexp(1.0, S + sh));
            if (fabs(mult) > 2147483647.0 || fabs(bias) > ldexp(1.0, 61)) {
                free(A), free(Bc), free(req);
                st = layer_error(l, "channel %d's logit scale does not fit the dyadic form", c);
                goto done;
            }
            int64_t bi = (int64_t)bias;
            req[4 * c] = (int32_t)mult;
            req[4 * c + 1] = sh;
            req[4 * c + 2] = (int32_t)(uint32_t)((uint64_t)bi & 0xffffffffu);
            req[4 * c + 3] = (int32_t)(uint32_t)((uint64_t)bi >> 32);
        }
        put32(rec + QNN_OP_STAGE, QATRT_STAGE_LOGITS);
        st = w_blob(&L->w, op, QNN_OP_REQ, req, (size_t)cout * 16);
        r->payload += (size_t)cout * 16;
        free(A), free(Bc), free(req);
        if (st) goto done;
        note(r->kernels, sizeof r->kernels, "%s: %s, int32 logits (dyadic, 2^%d per unit)\n", l->name, qatrt_kernel_name(kern), S);
    }
    /* each layer quantized after training by name: its weights, or its
     * input (the next layer's, whose quantizer this op's thresholds are) */
    if (approx_w) note(r->approx, sizeof r->approx, "%s%s (weights)", r->approx[0] ? ", " : "", l->name);
    if (approx_a) note(r->approx, sizeof r->approx, "%s%s (input)", r->approx[0] ? ", " : "", m->layers[next_li].name);
    if (approx_w || approx_a) r->exact = 0;
    *in = out;
    if (to_stream) st = lower_stream(L, seg + 1, next_li, in);
    /* the next layer folds this one's dropped channels */
    free(L->drop_keep);
    free(L->drop_lev);
    L->drop_keep = ndrop ? keep : NULL;
    L->drop_lev = ndrop ? lev0 : NULL;
    L->drop_c0 = cout;
    if (ndrop) keep = NULL, lev0 = NULL;
done:
    for (int i = 0; i < tl.npost; i++) {
        free(tl.post[i].a);
        free(tl.post[i].b);
    }
    free(wl);
    free(sw);
    free(wsum);
    free(thr);
    free(flip);
    free(keep);
    free(lev0);
    free(orows);
    free(table);
    free(aoff);
    return st;
}

/* bits of |v| */
static int bits64(uint64_t v)
{
    int n = 0;
    while (v) n++, v >>= 1;
    return n;
}

/* where weight i of a layer in the framework's order (c, ky, kx) per
 * output channel goes in the runtime's (ky, kx, c) order (to_hwc's map) */
static size_t hwc_at(size_t i, size_t K, int cin, int kh, int kw)
{
    size_t o = i / K, k = i % K, taps = (size_t)kh * kw, c = k / taps, t = k % taps;
    return o * K + t * (size_t)cin + c;
}

/* A layer the config leaves in float arithmetic: float weights on the
 * image (a first layer kept in float, as DST's), or a float input (TWN's
 * activations), read from the image or a stream, as an X64 op: int64
 * operands (the image through a table of its normalised pixels, exact on
 * the loader's grid; a stream's floats in fixed point 2^-F; float weights
 * in fixed point 2^-Sw, or integer levels), the sum exact in int64, then
 * one rounding to float32 and the chain's bias, batchnorm and ReLU in
 * float32 arithmetic (softfloat.h): a stream, or the last layer's logits
 * as stream keys. The float model sums in float32, rounding on the way, so
 * the two agree to the last bits, not bit for bit: marked approximate,
 * with the predictions expected to agree. */
static qat_status lower_wide(lowering *L, int li, int next_li, rt_tensor *in)
{
    qat_model *m = L->m;
    qat_layer *l = &m->layers[li];
    qat_export_result *r = L->r;
    int conv = is(l, "conv2d");
    int cin = in->c, h = in->h, w = in->w;
    int cout = conv ? l->filters : l->out->shape[1];
    int kh = conv ? l->size : h, kw = conv ? l->size : w, stride = conv ? l->stride : 1, pad = conv ? l->pad : 0;
    int oh = conv ? l->out->shape[2] : 1, ow = conv ? l->out->shape[3] : 1;
    int K = cin * kh * kw, kbits = bits64((uint64_t)K - 1);
    if (L->drop_keep)
        return layer_error(l, "a float layer after emptied channels has no integer lowering yet; export with --float-layers "
                              "int8|int16 to quantize it after training");
    if (!conv && (int)l->w->shape[1] != K) return layer_error(l, "expects %d inputs; the integer graph gives %d", l->w->shape[1], K);
    qat_status st = QAT_OK;
    int32_t *wl = malloc(sizeof(int32_t) * (size_t)cout * (size_t)K), *table = NULL, *q = calloc((size_t)cout, 16);
    int64_t *wq = malloc(sizeof(int64_t) * (size_t)cout * (size_t)K);
    double *sw = malloc(sizeof(double) * (size_t)cout);
    tail tl;
    memset(&tl, 0, sizeof tl);
    if (!wl || !wq || !sw || !q) {
        st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
        goto done;
    }
    /* the weights: levels times a scale per channel, or float in fixed point */
    const float *wf = l->wq.out ? l->wq.out->x : l->w->x;
    int wbits = 30, abits, e_in = 0, fw = !l->wq.spec.q, approx = 0;
    if (!fw) {
        if ((st = weight_levels(L, l, cout, K, 1, wl, sw, &approx))) goto done;
        int64_t wmax = 1;
        for (size_t i = 0; i < (size_t)cout * K; i++) wmax = llabs((long long)wl[i]) > wmax ? llabs((long long)wl[i]) : wmax;
        wbits = bits64((uint64_t)wmax);
    }
    /* the input: the image's table (its largest value fixes the weights'
     * bits), or a stream in fixed point (the weights' bits fix its range) */
    int32_t fl[2] = {0, 0};
    if (in->u8) {
        int G = L->o->pixel_grid, S = G > 0 ? G : 24;
        if (!(table = malloc(sizeof(int32_t) * (size_t)m->c * 256))) {
            st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
            goto done;
        }
        int64_t tmax = 1;
        for (int c = 0; c < m->c; c++)
            for (int p = 0; p < 256; p++) {
                float mu = L->o->mean ? L->o->mean[c] : 0.0f, sd = L->o->std ? L->o->std[c] : 1.0f;
                double x = ldexp((double)qat_data_pixel_grid((uint8_t)p, mu, sd, G), S);
                if (fabs(x) >= 1073741824.0) {
                    st = layer_error(l, "channel %d: pixel %d's normalised value does not fit the table", c, p);
                    goto done;
                }
                table[c * 256 + p] = (int32_t)lrint(x);
                if (G <= 0 && (double)table[c * 256 + p] != x) approx = 1; /* off the grid: rounded */
                tmax = llabs((long long)table[c * 256 + p]) > tmax ? llabs((long long)table[c * 256 + p]) : tmax;
            }
        abits = bits64((uint64_t)tmax);
        e_in = -S;
        if (fw) wbits = 62 - abits - kbits;
    } else if (fw) {
        wbits = 30;
    }
    if (fw) { /* float weights: w 2^Sw rounded, |w 2^Sw| < 2^(wbits - 1) */
        double wmax = 0;
        for (size_t i = 0; i < (size_t)cout * K; i++) wmax = fmax(wmax, fabs((double)wf[i]));
        int e = 0;
        if (wmax > 0) frexp(wmax, &e);
        int Sw = wbits - 1 - e;
        for (size_t i = 0; i < (size_t)cout * K; i++) {
            double v = ldexp((double)wf[i], Sw);
            wq[hwc_at(i, K, cin, kh, kw)] = (int64_t)llrint(v);
            if (nearbyint(v) != v) approx = 1; /* a weight below 2^-Sw's precision */
        }
        for (int c = 0; c < cout; c++) sw[c] = ldexp(1.0, -Sw);
    } else {
        for (size_t i = 0; i < (size_t)cout * K; i++) wq[hwc_at(i, K, cin, kh, kw)] = wl[i];
    }
    if (!in->u8) {
        /* a stream in fixed point: |sum| <= (the largest row's sum of
         * |weights|) 2^abits <= 2^62 (the kernel sums modulo 2^64, so only
         * the sum must fit) */
        uint64_t l1max = 1;
        for (int c = 0; c < cout; c++) {
            uint64_t l1 = 0;
            for (int k = 0; k < K; k++) l1 += (uint64_t)llabs((long long)wq[(size_t)c * K + k]);
            l1max = l1 > l1max ? l1 : l1max;
        }
        abits = 62 - bits64(l1max);
        fl[1] = abits;      /* inputs saturate at 2^abits - 1 */
        fl[0] = abits - 17; /* values up to 2^16 in magnitude are not */
        e_in = -fl[0];
        /* each input moves by at most 2^-(F+1): at F >= 16 a sum moves less
         * than the float model's own float32 GEMM rounds it, unless the
         * inputs are far below 1 (the predictions are what --verify holds) */
        if (fl[0] < 16) {
            st = layer_error(l, "its weights (rows summing to %llu in magnitude) leave its float input %d bits of fixed "
                                "point; export with --float-layers int8|int16 to quantize it after training",
                             (unsigned long long)l1max, fl[0]);
            goto done;
        }
    }
    /* what follows, up to the stream or the logits */
    int seg = li, to_stream = 0;
    if ((st = fold_tail(L, li, next_li, &tl, &seg, &to_stream))) goto done;
    int flags = l->b ? QATC_F32_BIAS : 0, mul = 0;
    for (int i = 0; i < tl.npost; i++) {
        const post_op *p = &tl.post[i];
        if (p->kind == POST_BN && !(flags & (QATC_F32_BN | QATC_F32_RELU))) flags |= QATC_F32_BN;
        else if (p->kind == POST_RELU && !(flags & QATC_F32_RELU)) flags |= QATC_F32_RELU;
        else {
            st = layer_error(l, "after a float layer, its output may go through one batchnorm and a ReLU (no more, and no "
                                "HardTanh yet); export with --float-layers int8|int16 to quantize it after training");
            goto done;
        }
    }
    /* per channel: acc 2^e exactly, or float32(acc) times the float32 scale */
    for (int c = 0; c < cout; c++) {
        int e;
        if (sw[c] != 0 && frexp(fabs(sw[c]), &e) != 0.5) mul = 1;
        if (sw[c] < 0) {
            st = layer_error(l, "channel %d: a negative weight scale", c);
            goto done;
        }
    }
    if (mul) flags |= QATC_F32_MUL;
    for (int c = 0; c < cout; c++) {
        int32_t *qc = q + 4 * (size_t)c;
        if (mul) {
            float sf = (float)ldexp(sw[c], e_in);
            memcpy(&qc[0], &sf, 4);
        } else {
            int e = 0;
            if (sw[c] != 0) frexp(sw[c], &e);
            qc[0] = sw[c] != 0 ? e - 1 + e_in : 0;
        }
        if (l->b) memcpy(&qc[1], &l->b->x[c], 4);
        for (int i = 0; i < tl.npost; i++)
            if (tl.post[i].kind == POST_BN) memcpy(&qc[2], &tl.post[i].a[c], 4), memcpy(&qc[3], &tl.post[i].b[c], 4);
    }
    int op = 0;
    if ((st = new_op(L, l, &op))) goto done;
    uint8_t *rec = L->w.ops[op];
    set_op(rec, QATRT_OP_CONV, in->u8, cin, h, w, cout, oh, ow);
    if (in->stream) put32(rec + QNN_OP_IN0, (uint32_t)in->sop + 1);
    put32(rec + QNN_OP_KH, (uint32_t)kh);
    put32(rec + QNN_OP_KW, (uint32_t)kw);
    put32(rec + QNN_OP_STRIDE, (uint32_t)stride);
    put32(rec + QNN_OP_PAD, (uint32_t)pad);
    put32(rec + QNN_OP_KERNEL, QATRT_K_X64);
    int last = next_li < 0 && !to_stream;
    put32(rec + QNN_OP_STAGE, last ? QATRT_STAGE_LOGITS : QATRT_STAGE_F32);
    /* ALQ: its planes and coordinates as they are (a multi-bit blob, FLAGS
     * bit 5), the runtime widens them once; else the weights at the bits
     * their largest needs (two's complement) */
    int alq = !fw && l->wq.spec.q && l->wq.spec.q->owns_weights && !strcmp(l->wq.spec.q->name, "alq");
    put32(rec + QNN_OP_FLAGS, (uint32_t)(flags | in->u8 | (alq ? QATC_X64_MB : 0)));
    int b = 1;
    for (size_t i = 0; i < (size_t)cout * K; i++)
        while (b < 64 && (wq[i] < -((int64_t)1 << (b - 1)) || wq[i] > ((int64_t)1 << (b - 1)) - 1)) b++;
    put32(rec + QNN_OP_NTHR, alq ? 0u : (uint32_t)b);
    size_t wbytes = ((size_t)cout * K * (size_t)b + 7) / 8;
    if (alq) { /* the levels in the runtime's (ky, kx, c) order, which encode_mb checks its planes against */
        int *orows = malloc(sizeof(int) * (size_t)cout);
        int32_t *wh = malloc(sizeof(int32_t) * (size_t)cout * (size_t)K);
        if (!orows || !wh) st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
        for (int c = 0; !st && c < cout; c++) orows[c] = c;
        for (size_t i = 0; !st && i < (size_t)cout * K; i++) wh[i] = (int32_t)wq[i];
        if (!st) st = encode_mb(L, op, l, cout, orows, cin, NULL, cin, kh, kw, wh, sw, &wbytes);
        free(orows), free(wh);
        if (st) goto done;
    } else {
        uint8_t *wb = calloc(wbytes, 1);
        if (!wb) {
            st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
            goto done;
        }
        for (size_t i = 0; i < (size_t)cout * K; i++)
            for (int j = 0; j < b; j++)
                if ((uint64_t)wq[i] >> j & 1) wb[(i * (size_t)b + (size_t)j) / 8] |= (uint8_t)(1u << ((i * (size_t)b + (size_t)j) % 8));
        st = w_blob(&L->w, op, QNN_OP_WEIGHTS, wb, wbytes);
        free(wb);
        if (st) goto done;
    }
    if (in->u8) st = w_blob(&L->w, op, QNN_OP_LUT, table, sizeof(int32_t) * (size_t)m->c * 256);
    else st = w_blob(&L->w, op, QNN_OP_LUT, fl, sizeof fl);
    if (!st) st = w_blob(&L->w, op, QNN_OP_REQ, q, (size_t)cout * 16);
    if (st) goto done;
    /* the payload: the weights (float32, their levels' bits, or ALQ's
     * blob), the table, the stage */
    size_t pbytes = alq ? wbytes : ((size_t)cout * K * (size_t)(fw ? 32 : b) + 7) / 8;
    r->payload += pbytes + (in->u8 ? sizeof(int32_t) * (size_t)m->c * 256 : sizeof fl) + (size_t)cout * 16;
    r->weight_bytes += pbytes;
    r->float_bytes += (size_t)cout * K * 4;
    r->exact = 0;
    note(r->approx, sizeof r->approx, "%s%s (float arithmetic: its exact sum rounded once)", r->approx[0] ? ", " : "",
         l->name);
    if (approx) note(r->approx, sizeof r->approx, " (rounded: %s)", in->u8 && L->o->pixel_grid <= 0 ? "pixels off a grid" : "tiny weights");
    note(r->kernels, sizeof r->kernels, "%s: %s on %s, %s\n", l->name, qatrt_kernel_name(QATRT_K_X64),
         in->u8 ? "the image's table" : "a stream in fixed point", last ? "float32 logits as keys" : "a float32 stream");
    rt_tensor out = {.c = cout, .h = oh, .w = ow};
    if ((st = emit_pools(L, &tl, &out, &op))) goto done; /* on the stream's keys */
    *in = out;
    if (!last) {
        L->stream[seg] = op;
        st = lower_stream(L, seg + 1, next_li, in);
    }
done:
    for (int i = 0; i < tl.npost; i++) {
        free(tl.post[i].a);
        free(tl.post[i].b);
    }
    free(wl);
    free(wq);
    free(sw);
    free(table);
    free(q);
    return st;
}

/* the first layer's quantized input: one table per channel, u8 -> level */
static qat_status lower_lut(lowering *L, qat_layer *first, rt_tensor *t)
{
    chain ch = {0};
    int approx = 0;
    qat_status st = set_target(L, first, &ch, t, &approx);
    if (st) return st;
    int op = 0;
    if ((st = new_op(L, first, &op))) return st;
    qat_model *m = L->m;
    set_op(L->w.ops[op], QATRT_OP_LUT, 1, m->c, m->h, m->w, m->c, m->h, m->w);
    int8_t *lut = malloc((size_t)m->c * 256);
    if (!lut) return qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
    for (int c = 0; c < m->c; c++)
        for (int p = 0; p < 256; p++) {
            float mu = L->o->mean ? L->o->mean[c] : 0.0f, sd = L->o->std ? L->o->std[c] : 1.0f;
            float x = qat_data_pixel_grid((uint8_t)p, mu, sd, L->o->pixel_grid), q;
            qat_qnode_apply(&first->aq, &m->g, &x, &q, 1);
            int32_t lq = round_level((double)q / ch.qs);
            if (lq < -128 || lq > 127) {
                free(lut);
                return layer_error(first, "channel %d: input level %d of pixel %d does not fit int8", c, (int)lq, p);
            }
            lut[c * 256 + p] = (int8_t)lq;
        }
    st = w_blob(&L->w, op, QNN_OP_LUT, lut, (size_t)m->c * 256);
    L->r->payload += (size_t)m->c * 256;
    free(lut);
    t->u8 = 0;
    return st;
}

static qat_status calibrate(lowering *L)
{
    qat_model *m = L->m;
    const qat_export_opts *o = L->o;
    if (!o->float_bits || !o->calib_x || o->calib_n < 1) return QAT_OK;
    L->calib_lo = malloc(sizeof(float) * (size_t)m->nlayers);
    L->calib_hi = malloc(sizeof(float) * (size_t)m->nlayers);
    if (!L->calib_lo || !L->calib_hi) return qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
    for (int i = 0; i < m->nlayers; i++) {
        L->calib_lo[i] = INFINITY;
        L->calib_hi[i] = -INFINITY;
    }
    size_t isz = (size_t)m->c * m->h * m->w;
    for (int b = 0; b < o->calib_n; b += m->batch) {
        int n = o->calib_n - b < m->batch ? o->calib_n - b : m->batch;
        qat_model_forward(m, o->calib_x + (size_t)b * isz, NULL, n, 0);
        for (int i = 0; i < m->nlayers; i++) {
            const qat_tensor *x = m->layers[i].in;
            for (size_t j = 0; j < x->n; j++) {
                L->calib_lo[i] = fminf(L->calib_lo[i], x->x[j]);
                L->calib_hi[i] = fmaxf(L->calib_hi[i], x->x[j]);
            }
        }
    }
    return QAT_OK;
}

static qat_status lower_all(lowering *L);

qat_status qat_export(qat_model *m, const qat_export_opts *o, qat_export_result *r)
{
    memset(r, 0, sizeof *r);
    r->exact = 1;
    if (o->float_bits != 0 && o->float_bits != 8 && o->float_bits != 16)
        return qat_error_set(QAT_ERR_ARG, "export: float layers can be quantized to 8 or 16 bits, not %d", o->float_bits);
    if (o->qnn_version != 0 && o->qnn_version != 3 && o->qnn_version != QATRT_VERSION)
        return qat_error_set(QAT_ERR_ARG, "export: .qnn version %d cannot be written; 3 or %d", o->qnn_version, QATRT_VERSION);
    /* a NaN or an infinity would reach float-to-integer conversions (undefined
     * behaviour) and a negative variance has no square root */
    qat_status st = qat_model_check_values(m);
    if (st) return qat_error_wrap(st, "export: the model cannot be lowered");
    lowering L = {.m = m, .o = o, .r = r};
    st = calibrate(&L);
    /* one eval forward fills every quantizer's output (weights, scales) */
    if (!st) {
        size_t isz = (size_t)m->c * m->h * m->w;
        float *zero = calloc(isz, sizeof(float));
        if (!zero) st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
        else qat_model_forward(m, zero, NULL, 1, 0);
        free(zero);
    }
    /* what later shortcuts and routes read */
    L.needed = calloc((size_t)m->nlayers, 1);
    L.stream = malloc(sizeof(int) * (size_t)m->nlayers);
    if (!st && (!L.needed || !L.stream)) st = qat_error_set(QAT_ERR_MEMORY, "export: out of memory");
    for (int j = 0; j < m->nlayers && !st; j++) {
        const qat_layer *p = &m->layers[j];
        int t = is(p, "shortcut") ? j + p->from : is(p, "route") ? (p->from < 0 ? j + p->from : p->from) : -2;
        if (t == -1) st = layer_error(p, "reads the image; the integer graph has no int32 form of it");
        else if (t >= 0) L.needed[t] = 1;
    }
    if (!st) st = lower_all(&L);
    free(L.w.data);
    free(L.calib_lo);
    free(L.calib_hi);
    free(L.drop_keep);
    free(L.drop_lev);
    free(L.needed);
    free(L.stream);
    if (st) qat_export_free(r);
    return st;
}

/* the whole graph, then the file into L->r */
static qat_status lower_all(lowering *L)
{
    qat_model *m = L->m;
    qat_status st = QAT_OK;
    for (int j = 0; j < m->nlayers; j++) L->stream[j] = -1;
    int first = -1;
    for (int i = 0; i < m->nlayers && first < 0 && !st; i++) {
        qat_layer *l = &m->layers[i];
        const lowering_rule *ru = rule_for(l);
        if (ru && ru->lower) first = i;
        else if (!ru || ru->fold != fold_through)
            st = layer_error(l, "comes before the first compute layer; the integer graph starts with a conv2d or linear on the image");
    }
    rt_tensor t = {.c = m->c, .h = m->h, .w = m->w, .u8 = 1};
    if (!st && first < 0) st = qat_error_set(QAT_ERR_SHAPE, "export: the model has no conv2d or linear layer");
    if (!st && m->layers[first].aq.spec.q) st = lower_lut(L, &m->layers[first], &t);
    for (int i = first; i >= 0 && !st;) {
        int next = -1;
        for (int j = i + 1; j < m->nlayers && next < 0; j++)
            if (rule_for(&m->layers[j]) && rule_for(&m->layers[j])->lower) next = j;
        st = rule_for(&m->layers[i])->lower(L, i, next, &t);
        i = next;
    }
    if (!st) st = w_finish(&L->w, m, L->o->qnn_version ? L->o->qnn_version : QATRT_VERSION, &L->r->bytes, &L->r->size);
    return st;
}

void qat_export_free(qat_export_result *r)
{
    free(r->bytes);
    r->bytes = NULL;
    r->size = 0;
}
