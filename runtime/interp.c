/* interp.c: runs a loaded .qnn model on a batch of uint8 images.
 *
 * Activations between ops are NHWC, one image after another, in one of two
 * storages chosen per op from who reads them:
 *   packed  the op feeding a binary layer (through any max pools) stores
 *           signs: ceil(C / 8) bytes per pixel, bit c % 8 of byte c / 8 set
 *           for -1 (the padding bits 0), which is the binary kernel's row
 *           encoding pixel by pixel (docs/format.md), so a binary layer's
 *           im2col is whole-byte copies and its THRESH writes bits directly;
 *   int8    C levels per pixel for every other reader.
 * Each CONV lays its input out as rows of the kernel's operand encoding (one
 * row per output position of every image, kernel taps in (ky, kx, c) order,
 * the weights' order), runs one GEMM for the whole batch and applies its
 * stage to the [positions x channels] accumulators, which are already NHWC.
 * A CONV whose THRESH stage gives signs to a binary layer (a binary layer
 * on whole 32-bit words per pixel, or the int16 table first layer) instead
 * runs as a direct convolution image by image (kern.h qatrt_dconv): its
 * input copied once with its zero border, no im2col rows, no accumulators
 * in memory, the bits straight from the kernel.
 * Integer arithmetic only; no allocation (the caller's workspace). */
#include <string.h>

#include "qatrt.h"
#include "softfloat.h"

#define ALIGN_UP(x) (((x) + (size_t)QATRT_ALIGN - 1) & ~((size_t)QATRT_ALIGN - 1))
/* bytes kept free after every buffer: copy8 reads and writes whole 8-byte
 * words and may run up to 7 bytes past the end of what it copies */
#define SLACK 64

static size_t cbytes(int c) { return ((size_t)c + 7) / 8; }

/* what the storage and kernel choices below come to, per op, worked out
 * once per call of the runtime's entry points (make_plan) */
typedef struct {
    /* pout: op i's output is packed signs: every op reading it is a binary
     * CONV, or a max pool whose own output is packed (the reader made sure
     * some op reads every output but the last); pin: its input is */
    unsigned char pout[QATRT_MAX_OPS], pin[QATRT_MAX_OPS];
    signed char dk[QATRT_MAX_OPS]; /* dconv_kind */
    unsigned char pool[QATRT_MAX_OPS]; /* pool_fused: op i + 1, a max pool, runs inside op i */
} plan;

/* bytes of one im2col row (one output position) in the kernel's encoding */
static size_t a_row(const qatrt_op *op)
{
    size_t kw = ((size_t)op->K + 63) / 64;
    switch (op->kernel) {
    case QATRT_K_BIN: return qatrt_weight_row(QATRT_K_BIN, op->kh * op->kw, op->cin);
    case QATRT_K_TER: return 2 * kw * 8;
    case QATRT_K_I16: return 2 * (size_t)op->K;
    case QATRT_K_T32: return (op->t16 ? 2 : 4) * (size_t)op->K;
    case QATRT_K_X64: return 8 * (size_t)op->K;
    default: return (size_t)op->K;
    }
}

/* a multi-bit op whose rows are in the stored (ky, kx, c) order */
static int mb_hwc(const qatrt_op *op) { return op->mb_order == 1 || op->cin == 1 || op->kh * op->kw == 1; }

/* the input is the one row (a linear layer), already in the kernel's
 * encoding: int8 / uint8 bytes, or packed signs that fill whole words */
static int direct_input(const qatrt_op *op)
{
    if (op->kh != op->h || op->kw != op->w || op->pad != 0) return 0;
    switch (op->kernel) {
    case QATRT_K_BIN: return (size_t)op->h * op->w * cbytes(op->cin) == a_row(op);
    case QATRT_K_TER: case QATRT_K_I16: case QATRT_K_T32: case QATRT_K_X64: return 0;
    case QATRT_K_MB: return mb_hwc(op); /* rows in (c, ky, kx) order are gathered */
    default: return 1;
    }
}

/* A CONV whose stage gives signs to a binary layer runs as a direct
 * convolution (kern.h qatrt_dconv) when its kernel has one: no im2col, no
 * accumulators in memory, the threshold (and a binary layer's padding)
 * in the kernel's last step. The input map is copied with its zero
 * border into the col buffer first. */
enum { DC_NONE, DC_BIN, DC_I16 };

static int dconv_kind(const qatrt_model *m, const plan *pl, int i)
{
    const qatrt_op *op = &m->ops[i];
    if (op->type != QATRT_OP_CONV || op->stage != QATRT_STAGE_THRESH || op->nthr != 1 || op->levels[0] != -1 ||
        op->levels[1] != 1 || op->cout % 16 || direct_input(op) || !pl->pout[i])
        return DC_NONE;
    if (op->kernel == QATRT_K_BIN && pl->pin[i] && cbytes(op->cin) % 4 == 0 && op->pad <= 1) return DC_BIN;
    if (op->kernel == QATRT_K_T32 && op->t16 && op->in_u8) return DC_I16;
    return DC_NONE;
}

/* a padded binary layer run through im2col (not a direct convolution):
 * with pad 1 its border outputs fall into 16 classes (kern.h
 * qatrt_dconv_cls), and pad_fix takes one prepared vector of each class's
 * padded-tap weight sums back, not tap by tap */
static int pad_classes(const qatrt_op *op) { return op->type == QATRT_OP_CONV && op->padfix && op->pad == 1; }

/* bytes of op i's prepared direct-convolution weights (and bounds), or of
 * its padding classes' corrections */
static size_t dc_prep_bytes(const qatrt_model *m, const plan *pl, int i)
{
    const qatrt_op *op = &m->ops[i];
    switch (pl->dk[i]) {
    case DC_BIN: return ALIGN_UP(qatrt_bconv_words(op->cout, op->kh * op->kw, cbytes(op->cin)) * 4 + 16 * (size_t)op->cout * 4);
    case DC_I16: return ALIGN_UP(qatrt_i16conv_values(op->cout, op->kh, op->kw, (size_t)op->cin) * 2);
    default: return pad_classes(op) ? ALIGN_UP(16 * (size_t)op->cout * 4) : 0;
    }
}

/* bytes of op i's padded input map (one image, with SLACK after it) */
static size_t dc_map_bytes(const qatrt_op *op, int kind)
{
    size_t pix = (size_t)(op->h + 2 * op->pad) * (size_t)(op->w + 2 * op->pad);
    return pix * (kind == DC_BIN ? cbytes(op->cin) : 2 * (size_t)op->cin) + SLACK;
}

/* everything qatrt_prepare lays out: the reader's part, then the direct
 * convolutions' */
static size_t prep_bytes(const qatrt_model *m, const plan *pl)
{
    size_t n = m->prep_size;
    for (int i = 0; i < m->nops; i++) n += dc_prep_bytes(m, pl, i);
    return n;
}

/* A binary direct convolution whose one reader is the next op, a 2x2
 * stride-2 max pool, pools in the kernel's last step (kern.h qatrt_dconv
 * pool) straight into the pool's buffer, which is free then: op i + 1's
 * slot had its last reader at i at the latest, i.e. it is op i's input
 * at worst, which the kernel only reads when it is not padded first. */
static int pool_fused(const qatrt_model *m, const plan *pl, int i, int readers)
{
    const qatrt_op *op = &m->ops[i], *p = &m->ops[i + 1];
    if (pl->dk[i] != DC_BIN || readers != 1 || i + 1 >= m->nops || p->type != QATRT_OP_MAXPOOL || p->in0 != i ||
        p->in1 >= 0 || p->kh != 2 || p->kw != 2 || p->stride != 2 || op->oh % 2 || op->ow % 2)
        return 0;
    return op->pad > 0 || op->in0 < 0 || p->slot != m->ops[op->in0].slot;
}

static void make_plan(const qatrt_model *m, plan *pl)
{
    int nread[QATRT_MAX_OPS];
    for (int i = m->nops - 1; i >= 0; i--) { /* pout: its readers first */
        int readers = 0, ok = 1;
        for (int j = i + 1; j < m->nops; j++) {
            const qatrt_op *r = &m->ops[j];
            if (r->in0 != i && r->in1 != i) continue;
            readers++;
            ok &= r->type == QATRT_OP_MAXPOOL ? pl->pout[j] : r->type == QATRT_OP_CONV && r->kernel == QATRT_K_BIN;
        }
        pl->pout[i] = (unsigned char)(readers > 0 && ok && !qatrt_op_i32(&m->ops[i]));
        nread[i] = readers;
    }
    for (int i = 0; i < m->nops; i++) {
        pl->pin[i] = (unsigned char)(m->ops[i].in0 >= 0 && pl->pout[m->ops[i].in0]);
        pl->dk[i] = (signed char)dconv_kind(m, pl, i);
        pl->pool[i] = (unsigned char)pool_fused(m, pl, i, nread[i]);
    }
}

/* A CONV runs on a batch a few images at a time: its im2col rows and
 * accumulators for one such chunk stay within CHUNK_BYTES, so that the
 * GEMM writes and the THRESH reads them in L2 (a whole batch of a first
 * layer's accumulators, e.g. 128 x 576 x 20 x 4 bytes, would go through
 * memory). Batch 1 is one chunk. */
#define CHUNK_BYTES ((size_t)192 * 1024)

/* bytes of one accumulator */
static size_t acc_bytes(const qatrt_op *op) { return op->kernel == QATRT_K_X64 ? 8 : 4; }

static size_t chunk_images(const qatrt_op *op, size_t n)
{
    size_t per = (size_t)op->oh * op->ow * ((direct_input(op) ? 0 : a_row(op)) + acc_bytes(op) * (size_t)op->cout);
    size_t c = per ? CHUNK_BYTES / per : n;
    if (c < 1) c = 1;
    return c < n ? c : n;
}

typedef struct {
    size_t img, act, col, acc, gbuf; /* img, act: bytes per image; col, acc: of the largest chunk; gbuf: in all */
} sizes;

static sizes need(const qatrt_model *m, const plan *pl, size_t n)
{
    sizes s = {(size_t)m->c * m->h * m->w, 0, 0, 0, 0};
    for (int i = 0; i < m->nops; i++) {
        const qatrt_op *op = &m->ops[i];
        size_t pix = (size_t)op->oh * op->ow;
        size_t out = pix * (pl->pout[i] ? cbytes(op->cout) : (qatrt_op_i32(op) ? 4 : 1) * (size_t)op->cout);
        if (out > s.act) s.act = out;
        if ((size_t)op->cout > s.gbuf) s.gbuf = (size_t)op->cout;
        if (op->type != QATRT_OP_CONV) continue;
        if ((size_t)op->K > s.gbuf) s.gbuf = (size_t)op->K;
        int dk = pl->dk[i];
        if (dk != DC_NONE) {
            if (dc_map_bytes(op, dk) > s.col) s.col = dc_map_bytes(op, dk);
            continue;
        }
        size_t rows = chunk_images(op, n) * pix;
        if (!direct_input(op) && rows * a_row(op) > s.col) s.col = rows * a_row(op);
        if (rows * op->cout * acc_bytes(op) > s.acc) s.acc = rows * op->cout * acc_bytes(op);
        if ((size_t)op->K > s.gbuf) s.gbuf = (size_t)op->K;
    }
    return s;
}

static size_t workspace_size(const qatrt_model *m, const plan *pl, int batch)
{
    if (!m || m->nops < 1 || batch < 1 || batch > (1 << 20)) return 0;
    size_t n = (size_t)batch;
    sizes s = need(m, pl, n);
    return QATRT_ALIGN + prep_bytes(m, pl) + ALIGN_UP(n * s.img + SLACK) + (size_t)m->nslots * ALIGN_UP(n * s.act + SLACK) +
           ALIGN_UP(s.col + SLACK) + ALIGN_UP(s.acc) + ALIGN_UP(s.gbuf + SLACK) + QATRT_ALIGN;
}

size_t qatrt_workspace_size(const qatrt_model *m, int batch)
{
    if (!m || m->nops < 1 || m->nops > QATRT_MAX_OPS) return 0;
    plan pl;
    make_plan(m, &pl);
    return workspace_size(m, &pl, batch);
}

/* ---- the weights as the kernels read them -------------------------------
 * The file holds bit-packed weights dense: bit (or nibble) c * K + k of a
 * stream is weight k of channel c. The kernels want rows: binary rows of
 * taps padded to whole bytes and the row to words, ternary rows of two
 * word-padded planes, power-of-two rows of (K + 1) / 2 bytes. */

/* n <= 56 bits of a stream of `bytes` bytes from bit `pos` on */
static uint64_t get_bits(const uint8_t *s, size_t bytes, size_t pos, int n)
{
    uint64_t v = 0;
    size_t at = pos / 8, len = bytes - at < 8 ? bytes - at : 8;
    memcpy(&v, s + at, len);
    return (v >> (pos % 8)) & (((uint64_t)1 << n) - 1);
}

/* ORs the n bits of v into dst from bit pos on (dst zeroed beforehand);
 * bytes past the last of the n bits are not touched */
static void put_bits(uint8_t *dst, size_t pos, uint64_t v, int n)
{
    for (int i = 0; i < n; i += 8, pos += 8) {
        uint32_t w = (uint32_t)(v >> i & 0xff) << (pos % 8);
        dst[pos / 8] |= (uint8_t)w;
        if (w >> 8) dst[pos / 8 + 1] |= (uint8_t)(w >> 8);
    }
}

/* copies the bits [from, from + n) of a stream to bit `to` of dst */
static void copy_bits(uint8_t *dst, size_t to, const uint8_t *s, size_t bytes, size_t from, size_t n)
{
    for (size_t i = 0; i < n; i += 56) {
        int c = n - i < 56 ? (int)(n - i) : 56;
        put_bits(dst, to + i, get_bits(s, bytes, from + i, c), c);
    }
}

/* scratch: wrow bytes (a binary row is built there, then its words go to
 * the panels of kern.h that bgemm_pk reads) */
static void prepare_op(const qatrt_op *op, uint8_t *dst, uint8_t *scratch)
{
    size_t K = (size_t)op->K, cin = (size_t)op->cin, taps = (size_t)op->kh * op->kw, n = (size_t)op->cout * K;
    const uint8_t *s = op->weights;
    if (op->kernel == QATRT_K_BIN) {
        size_t kw = op->wrow / 8;
        memset(dst, 0, qatrt_bpanel_words(op->cout, (int)kw) * 8);
        for (size_t c = 0; c < (size_t)op->cout; c++) {
            memset(scratch, 0, op->wrow);
            for (size_t t = 0; t < taps; t++)
                copy_bits(scratch, t * ((cin + 7) / 8) * 8, s, op->wbytes, c * K + t * cin, cin);
            for (size_t w = 0; w < kw; w++)
                memcpy(dst + ((c / 16 * kw + w) * 16 + c % 16) * 8, scratch + w * 8, 8);
        }
        return;
    }
    if (op->kernel == QATRT_K_U8B) { /* the lookup layout of kern_u8bpk.h, a row at a time */
        for (int c = 0; c < (op->cout + 15) / 16 * 16; c++) {
            memset(scratch, 0, op->wrow);
            if (c < op->cout) copy_bits(scratch, 0, s, op->wbytes, (size_t)c * K, K);
            qatrt_u8b_pack_row(op->cout, op->K, c, c < op->cout ? (const uint64_t *)(const void *)scratch : NULL, dst);
        }
        return;
    }
    memset(dst, 0, op->wrow * (size_t)op->cout);
    for (size_t c = 0; c < (size_t)op->cout; c++) {
        uint8_t *row = dst + c * op->wrow;
        switch (op->kernel) {
        case QATRT_K_TER: case QATRT_K_I8T: {
            size_t plane = (n + 7) / 8, kw8 = (K + 63) / 64 * 8;
            copy_bits(row, 0, s, plane, c * K, K);
            copy_bits(row + kw8, 0, s + plane, plane, c * K, K);
            break;
        }
        case QATRT_K_X64: /* b-bit weights (b = nthr), or a multi-bit blob's, as int64 in (ky, kx, c) order */
            if (op->x64_mb) { /* rows of 8 K bytes at multiples of 64 */
                qatrt_mb_row(&op->mb, c, (int64_t *)(void *)row, cin, op->mb_order ? 0 : taps);
                break;
            }
            for (size_t k = 0; k < K; k++) {
                int64_t v = qatc_wide_weight(s, c * K + k, op->nthr);
                memcpy(row + 8 * k, &v, 8);
            }
            break;
        default: /* power-of-two nibbles */
            copy_bits(row, 0, s, op->wbytes, 4 * c * K, 4 * K);
            break;
        }
    }
}

/* the prepared weights at the start of the workspace, made once per model:
 * the first 64 bytes say for which model (its bytes, size and CRC) */
typedef struct {
    uint64_t magic;
    const void *bytes;
    size_t size;
    uint32_t crc;
} prep_tag;

#define PREP_MAGIC 0x7065727074617171ull /* "qqatprep" */

static int prepared(const qatrt_model *m, const uint8_t *ws)
{
    prep_tag t;
    memcpy(&t, ws, sizeof t);
    return t.magic == PREP_MAGIC && t.bytes == m->data && t.size == m->size && t.crc == m->crc;
}

/* n bytes, 8 at a time: reads and writes up to 7 bytes past the end (every
 * buffer has SLACK after it). Rows are written in increasing address order,
 * so an overrun lands where the next copy or memset writes anyway. */
static inline void copy8(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        memcpy(dst + i, &v, 8);
    }
}

/* the bytes under output position (oy, ox) of an NHWC input of C bytes
 * per pixel: taps in (ky, kx) order, 0 outside the input (padding) */
static void gather_pixels(const qatrt_op *op, size_t C, const uint8_t *in, int oy, int ox, uint8_t *row)
{
    size_t run = (size_t)op->kw * C;
    int ix0 = ox * op->stride - op->pad;
    int lo = ix0 < 0 ? -ix0 : 0, hi = op->w - ix0 < op->kw ? op->w - ix0 : op->kw;
    for (int ky = 0; ky < op->kh; ky++) {
        int iy = oy * op->stride - op->pad + ky;
        uint8_t *d = row + (size_t)ky * run;
        if (iy < 0 || iy >= op->h || hi <= lo) {
            memset(d, 0, run);
            continue;
        }
        if (lo) memset(d, 0, (size_t)lo * C);
        copy8(d + (size_t)lo * C, in + ((size_t)iy * op->w + (size_t)(ix0 + lo)) * C, (size_t)(hi - lo) * C);
        if (hi < op->kw) memset(d + (size_t)hi * C, 0, (size_t)(op->kw - hi) * C);
    }
}

/* the K bytes under (oy, ox) of an NHWC int8/uint8 input, (ky, kx, c) order */
static void gather_bytes(const qatrt_op *op, const uint8_t *in, int oy, int ox, uint8_t *row)
{
    gather_pixels(op, (size_t)op->cin, in, oy, ox, row);
}

/* a T32 row under (oy, ox): each tap's pixels through their channel's
 * table, int32 (t16 NULL) or the prepared int16 one (t16: the values >>
 * t16_shift) into int16 rows; taps in the padding 0 (the normalised zero,
 * exactly) */
static void gather_table(const qatrt_op *op, const int16_t *t16, const uint8_t *in, int oy, int ox, void *row)
{
    int C = op->cin;
    size_t at = 0;
    for (int ky = 0; ky < op->kh; ky++) {
        int iy = oy * op->stride - op->pad + ky;
        for (int kx = 0; kx < op->kw; kx++, at += (size_t)C) {
            int ix = ox * op->stride - op->pad + kx;
            int out = iy < 0 || iy >= op->h || ix < 0 || ix >= op->w;
            const uint8_t *px = in + ((size_t)(out ? 0 : iy) * op->w + (size_t)(out ? 0 : ix)) * (size_t)C;
            for (int c = 0; c < C; c++) {
                size_t t = (size_t)c * 256 + px[c];
                if (t16) ((int16_t *)row)[at + (size_t)c] = out ? 0 : t16[t];
                else ((int32_t *)row)[at + (size_t)c] = out ? 0 : op->table[t];
            }
        }
    }
}

/* the binary kernel's row under (oy, ox) from packed NHWC signs: kh
 * copies of kw pixels, then zero words' tail; a padded tap is zero bits,
 * +1, which pad_fix takes back */
static void gather_bits(const qatrt_op *op, const uint8_t *in, int oy, int ox, uint8_t *row, size_t arow)
{
    size_t cb = cbytes(op->cin), run = (size_t)op->kw * cb;
    int ix0 = ox * op->stride - op->pad, iy0 = oy * op->stride - op->pad;
    int lo = ix0 < 0 ? -ix0 : 0, hi = op->w - ix0 < op->kw ? op->w - ix0 : op->kw;
    if (lo == 0 && hi == op->kw && iy0 >= 0 && iy0 + op->kh <= op->h) { /* inside: whole runs, word by word */
        const uint8_t *src = in + ((size_t)iy0 * op->w + (size_t)ix0) * cb;
        size_t pitch = (size_t)op->w * cb, tail = arow - (size_t)op->kh * run;
        for (int ky = 0; ky < op->kh; ky++) copy8(row + (size_t)ky * run, src + (size_t)ky * pitch, run);
        for (size_t i = 0; i < tail; i += 8) {
            uint64_t z = 0;
            memcpy(row + (size_t)op->kh * run + i, &z, 8);
        }
        return;
    }
    gather_pixels(op, cb, in, oy, ox, row);
    memset(row + (size_t)op->kh * run, 0, arow - (size_t)op->kh * run);
}

/* a padded binary layer: the border outputs' accumulators counted +1 at
 * each padded tap; the true input there is 0, so take back the channel's
 * weights at those taps (tap sums, prepared) */
static void pad_fix(const qatrt_op *op, int n, const int32_t *tapsum, int32_t *acc)
{
    size_t N = (size_t)op->cout, T = (size_t)op->kh * op->kw;
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < op->oh; oy++) {
            int iy0 = oy * op->stride - op->pad, yin = iy0 >= 0 && iy0 + op->kh <= op->h;
            for (int ox = 0; ox < op->ow; ox++) {
                int ix0 = ox * op->stride - op->pad;
                if (yin && ix0 >= 0 && ix0 + op->kw <= op->w) continue;
                int32_t *a = acc + (((size_t)i * op->oh + (size_t)oy) * op->ow + (size_t)ox) * N;
                for (int ky = 0; ky < op->kh; ky++)
                    for (int kx = 0; kx < op->kw; kx++) {
                        int iy = iy0 + ky, ix = ix0 + kx;
                        if (iy >= 0 && iy < op->h && ix >= 0 && ix < op->w) continue;
                        const int32_t *t = tapsum + (size_t)(ky * op->kw + kx);
                        for (size_t c = 0; c < N; c++) a[c] -= t[c * T];
                    }
            }
        }
}

/* pad_fix by border class (pad_classes): corr[cls N + c] the weight sum
 * over class cls's padded taps */
static void pad_fix_cls(const qatrt_op *op, int n, const int32_t *corr, int32_t *acc)
{
    size_t N = (size_t)op->cout;
    qatrt_dconv d = {.kh = op->kh, .kw = op->kw, .stride = op->stride, .h = op->h, .w = op->w, .pad = 1};
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < op->oh; oy++) {
            int edge = oy == 0 || oy == op->oh - 1;
            for (int ox = 0; ox < op->ow; ox += edge || ox == op->ow - 1 ? 1 : op->ow - 1 - ox) {
                int cls = qatrt_dconv_cls(&d, oy, ox);
                if (!cls) continue;
                int32_t *a = acc + (((size_t)i * op->oh + (size_t)oy) * op->ow + (size_t)ox) * N;
                const int32_t *t = corr + (size_t)cls * N;
                for (size_t c = 0; c < N; c++) a[c] -= t[c];
            }
        }
}

/* bits != NULL: the op's signs straight from the kernel (fused_bits) */
static void gemm(const qatrt_op *op, const qatrt_kernels *k, const void *W, const void *pan, int M, const void *A,
                 size_t arow, int32_t *C, uint8_t *bits)
{
    int N = op->cout, K = op->K;
    size_t ldc = (size_t)N;
    if (bits) {
        k->u8i8gemm_bits(M, N, K, A, arow, W, op->wrow, op->thr, op->flip, bits, cbytes(N));
        return;
    }
    if (pan && k->i8panel) { /* int8 weights from their panels (K > QATRT_I8_SMALL_K) */
        if (op->kernel == QATRT_K_U8I8) k->u8i8gemm_pk(M, N, K, A, arow, pan, C, ldc);
        else k->i8i8gemm_pk(M, N, K, A, arow, pan, op->bsum, C, ldc);
        return;
    }
    switch (op->kernel) {
    case QATRT_K_BIN: k->bgemm_pk(M, N, (int)(arow / 8), K, A, arow / 8, W, C, ldc); break;
    case QATRT_K_TER: k->tgemm(M, N, (int)(arow / 16), A, arow / 8, W, op->wrow / 8, C, ldc); break;
    case QATRT_K_I8T: k->i8tgemm(M, N, K, A, arow, W, op->wrow / 8, C, ldc); break;
    case QATRT_K_U8I8: k->u8i8gemm(M, N, K, A, arow, W, op->wrow, C, ldc); break;
    case QATRT_K_I8I8: k->i8i8gemm(M, N, K, A, arow, W, op->wrow, op->bsum, C, ldc); break;
    case QATRT_K_I16: k->i16gemm(M, N, K, A, arow / 2, W, op->wrow / 2, C, ldc); break;
    case QATRT_K_P2: k->p2gemm(M, N, K, A, arow, W, op->wrow, C, ldc); break;
    case QATRT_K_U8B: k->u8bgemm_pk(M, N, K, A, arow, W, C, ldc); break;
    case QATRT_K_MB: k->mbgemm(M, N, K, A, arow, op->in_u8, &op->mb, C, ldc); break;
    case QATRT_K_T32:
        if (op->t16) k->i16gemm(M, N, K, A, arow / 2, (const int16_t *)W, (size_t)K, C, ldc);
        else k->i32i8gemm(M, N, K, A, arow / 4, W, op->wrow, C, ldc);
        break;
    default: break; /* the reader admits no other kernel */
    }
}

/* n kernel rows of up to 8 bytes, a word each (what runs past a row is
 * rewritten by the next, the last lands in the slack) */
static inline __attribute__((always_inline)) void words_rows(uint8_t *dst, const uint8_t *src, size_t run,
                                                             size_t pitch, int n)
{
    for (int ky = 0; ky < n; ky++) {
        uint64_t v;
        memcpy(&v, src + (size_t)ky * pitch, 8);
        memcpy(dst + (size_t)ky * run, &v, 8);
    }
}

/* the CONV's accumulators for n images: [n * oh * ow][cout] */
static void run_conv(const qatrt_op *op, const qatrt_kernels *k, const void *W, const void *pan, int n, int in_packed,
                     const uint8_t *in,
                     uint8_t *col, uint8_t *gbuf, int32_t *acc, uint8_t *bits)
{
    size_t P = (size_t)op->oh * op->ow, arow = a_row(op);
    size_t isz = (size_t)op->h * op->w * (in_packed ? cbytes(op->cin) : (size_t)op->cin);
    if (direct_input(op)) {
        gemm(op, k, W, pan, n, in, isz, acc, bits);
        return;
    }
    uint8_t *dst = col;
    if (op->pad == 0 && op->kernel != QATRT_K_BIN && op->kernel != QATRT_K_TER && op->kernel != QATRT_K_I16 &&
        op->kernel != QATRT_K_T32 &&
        (op->kernel != QATRT_K_MB || mb_hwc(op))) {
        /* the common case in one tight loop: kh copies of kw pixels per row
         * (the shape in locals: the stores through dst could alias *op) */
        size_t C = (size_t)op->cin, run = (size_t)op->kw * C, pitch = (size_t)op->w * C;
        size_t step = (size_t)op->stride * C, ystep = (size_t)op->stride * pitch;
        const int kh = op->kh, oh = op->oh, ow = op->ow;
        for (int i = 0; i < n; i++)
            for (int oy = 0; oy < oh; oy++) {
                const uint8_t *src = in + (size_t)i * isz + (size_t)oy * ystep;
                if (run <= 8 && kh == 5) /* LeNet's conv1, unrolled: the loop was the cost */
                    for (int ox = 0; ox < ow; ox++, dst += arow, src += step)
                        words_rows(dst, src, run, pitch, 5);
                else if (run <= 8) /* a first layer's few pixels: one word per kernel row */
                    for (int ox = 0; ox < ow; ox++, dst += arow, src += step)
                        words_rows(dst, src, run, pitch, kh);
                else
                    for (int ox = 0; ox < ow; ox++, dst += arow, src += step)
                        for (int ky = 0; ky < kh; ky++)
                            copy8(dst + (size_t)ky * run, src + (size_t)ky * pitch, run);
            }
        gemm(op, k, W, pan, (int)((size_t)n * P), col, arow, acc, bits);
        return;
    }
    for (int i = 0; i < n; i++) {
        const uint8_t *x = in + (size_t)i * isz;
        for (int oy = 0; oy < op->oh; oy++)
            for (int ox = 0; ox < op->ow; ox++, dst += arow) {
                if (op->kernel == QATRT_K_BIN) {
                    gather_bits(op, x, oy, ox, dst, arow);
                } else if (op->kernel == QATRT_K_TER) {
                    gather_bytes(op, x, oy, ox, gbuf);
                    qatrt_pack_ternary((const int8_t *)gbuf, op->K, (int)(arow / 16), (uint64_t *)(void *)dst);
                } else if (op->kernel == QATRT_K_MB && !mb_hwc(op)) {
                    /* the groups' order: (c, ky, kx), as the layer's weights in training */
                    gather_bytes(op, x, oy, ox, gbuf);
                    size_t C = (size_t)op->cin, T = (size_t)op->kh * op->kw;
                    for (size_t r = 0; r < T; r++)
                        for (size_t ci = 0; ci < C; ci++) dst[ci * T + r] = gbuf[r * C + ci];
                } else if (op->kernel == QATRT_K_T32) {
                    gather_table(op, op->t16 ? (const int16_t *)W - (size_t)op->cin * 256 : NULL, x, oy, ox, dst);
                } else if (op->kernel == QATRT_K_I16) {
                    gather_bytes(op, x, oy, ox, gbuf);
                    int16_t *d = (int16_t *)(void *)dst;
                    if (op->in_u8)
                        for (int j = 0; j < op->K; j++) d[j] = (int16_t)gbuf[j];
                    else
                        for (int j = 0; j < op->K; j++) d[j] = (int16_t)(int8_t)gbuf[j];
                } else {
                    gather_bytes(op, x, oy, ox, dst);
                }
            }
    }
    gemm(op, k, W, pan, (int)((size_t)n * P), col, arow, acc, bits);
    if (op->t16 && op->t16_shift)
        for (size_t i = 0; i < (size_t)n * P * (size_t)op->cout; i++) acc[i] = (int32_t)((uint32_t)acc[i] << op->t16_shift);
}

/* a uint8 x int8 CONV whose stage gives signs to a binary layer: the
 * kernel thresholds its accumulators itself (u8i8gemm_bits) */
static int fused_bits(const qatrt_op *op, int packed)
{
    return op->kernel == QATRT_K_U8I8 && op->stage == QATRT_STAGE_THRESH && packed && op->nthr == 1 &&
           op->levels[0] == -1 && op->levels[1] == 1;
}

/* C int8 levels -> ceil(C / 8) bytes of signs */
static void pack_pixel(const int8_t *lv, int C, uint8_t *out)
{
    memset(out, 0, cbytes(C));
    for (int c = 0; c < C; c++) out[c / 8] |= (uint8_t)((lv[c] < 0) << (c % 8));
}

/* rows of C int8 levels (out, N bytes apart), by the thresh_levels kernel;
 * or packed at pk, a row at a time through out */
static void thresh_levels(const qatrt_op *op, const qatrt_kernels *k, size_t rows, const int32_t *acc, int8_t *out,
                          uint8_t *pk)
{
    int N = op->cout;
    if (!pk) {
        k->thresh_levels((int)rows, N, acc, (size_t)N, op->thr, op->nthr, op->flip, op->levels, out, (size_t)N);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        k->thresh_levels(1, N, acc + r * (size_t)N, (size_t)N, op->thr, op->nthr, op->flip, op->levels, out, (size_t)N);
        pack_pixel(out, N, pk + r * cbytes(N));
    }
}

/* one threshold per channel, int8 levels out: the thresh_bits kernel one
 * row at a time into gbuf, each bit then widened to its level (bit set:
 * s < t, levels[0]; clear: levels[1]), 8 channels per 64-bit word */
static void thresh_one(const qatrt_op *op, const qatrt_kernels *k, size_t rows, const int32_t *acc, int8_t *out,
                       uint8_t *gbuf)
{
    int N = op->cout;
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t hi = (uint64_t)(uint8_t)op->levels[1] * ones, diff = hi ^ (uint64_t)(uint8_t)op->levels[0] * ones;
    for (size_t r = 0; r < rows; r++) {
        k->thresh_bits(1, N, acc + r * (size_t)N, (size_t)N, op->thr, op->flip, gbuf, cbytes(N));
        int8_t *o = out + r * (size_t)N;
        for (int c = 0; c < N; c += 8) {
            uint64_t x = (uint64_t)gbuf[c / 8] * ones & 0x8040201008040201ull; /* bit j alone in byte j */
            uint64_t m = (((x + 0x7f7f7f7f7f7f7f7full) | x) & 0x8080808080808080ull) >> 7; /* byte j: 1 if set */
            uint64_t v = hi ^ (m * 0xff & diff);
            for (int j = 0; j < 8 && c + j < N; j++) o[c + j] = (int8_t)(uint8_t)(v >> 8 * j);
        }
    }
}

static void stage_thresh(const qatrt_op *op, const qatrt_kernels *k, size_t rows, int packed, const int32_t *acc,
                         uint8_t *out, uint8_t *gbuf)
{
    if (!packed && op->nthr == 1) thresh_one(op, k, rows, acc, (int8_t *)out, gbuf);
    else if (!packed) thresh_levels(op, k, rows, acc, (int8_t *)out, NULL);
    else if (op->nthr == 1 && op->levels[0] == -1 && op->levels[1] == 1)
        k->thresh_bits((int)rows, op->cout, acc, (size_t)op->cout, op->thr, op->flip, out, cbytes(op->cout));
    else thresh_levels(op, k, rows, acc, (int8_t *)gbuf, out); /* levels the reader checked are +-1 */
}

static void stage_logits(const qatrt_op *op, size_t n, const int32_t *C, int32_t *logits)
{
    int N = op->cout;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < N; c++) {
            const int32_t *q = op->req + 4 * c;
            int64_t bias = (int64_t)((uint64_t)(uint32_t)q[2] | (uint64_t)(uint32_t)q[3] << 32);
            int64_t v = (int64_t)C[(size_t)i * N + c] * q[0] + bias;
            if (q[1]) v = (v + ((int64_t)1 << (q[1] - 1))) >> q[1];
            logits[(size_t)i * N + c] = v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
        }
}

/* max over windows: int8 levels, or a stream's int32 keys (they order as
 * their floats), by value; packed signs (bit set = -1) by AND, since the
 * max of +-1 values is -1 only when all are -1 (8 bytes at a time: pixels
 * are written in order, so what runs past one pixel's bytes is rewritten
 * by the next, and the last lands in the slack) */
static void run_maxpool(const qatrt_op *op, int n, int packed, const uint8_t *in, uint8_t *out)
{
    size_t bpp = packed ? cbytes(op->cin) : (size_t)op->cin * (op->i32 ? 4 : 1);
    size_t isz = (size_t)op->h * op->w * bpp, osz = (size_t)op->oh * op->ow * bpp;
    for (int i = 0; i < n; i++) {
        const uint8_t *x = in + (size_t)i * isz;
        uint8_t *y = out + (size_t)i * osz;
        for (int oy = 0; oy < op->oh; oy++)
            for (int ox = 0; ox < op->ow; ox++, y += bpp) {
                const uint8_t *w0 = x + ((size_t)(oy * op->stride) * op->w + (size_t)(ox * op->stride)) * bpp;
                if (packed) {
                    for (size_t b = 0; b < bpp; b += 8) {
                        uint64_t v = ~(uint64_t)0, t;
                        for (int ky = 0; ky < op->kh; ky++)
                            for (int kx = 0; kx < op->kw; kx++) {
                                memcpy(&t, w0 + ((size_t)ky * op->w + (size_t)kx) * bpp + b, 8);
                                v &= t;
                            }
                        memcpy(y + b, &v, 8);
                    }
                    continue;
                }
                memcpy(y, w0, bpp);
                if (op->i32) {
                    int32_t *yv = (int32_t *)(void *)y;
                    for (int ky = 0; ky < op->kh; ky++)
                        for (int kx = 0; kx < op->kw; kx++) {
                            const int32_t *p = (const int32_t *)(const void *)(w0 + ((size_t)ky * op->w + (size_t)kx) * bpp);
                            for (int c = 0; c < op->cin; c++) yv[c] = p[c] > yv[c] ? p[c] : yv[c];
                        }
                    continue;
                }
                for (int ky = 0; ky < op->kh; ky++)
                    for (int kx = 0; kx < op->kw; kx++) {
                        const uint8_t *p = w0 + ((size_t)ky * op->w + (size_t)kx) * bpp;
                        for (size_t b = 0; b < bpp; b++)
                            if ((int8_t)p[b] > (int8_t)y[b]) y[b] = p[b];
                    }
            }
    }
}

/* streams NHWC: out = in0 + in1 sub-sampled by the stride into the first
 * channels (the others keep in0, as the float shortcut does) */
static void run_add(const qatrt_op *op, const qatrt_op *o1, const qatrt_kernels *k, int n, const int32_t *a,
                    const int32_t *b, int32_t *out)
{
    size_t C = (size_t)op->cin, C1 = (size_t)o1->cout, P = (size_t)op->h * op->w, P1 = (size_t)o1->oh * o1->ow;
    int relu = op->f32flags & QATC_F32_RELU;
    if (C1 == C && op->stride == 1) {
        k->key_add((size_t)n * P * C, a, b, out, relu);
        return;
    }
    for (int i = 0; i < n; i++)
        for (int y = 0; y < op->h; y++)
            for (int x = 0; x < op->w; x++) {
                size_t p = (size_t)i * P + (size_t)y * op->w + (size_t)x;
                const int32_t *s = b + ((size_t)i * P1 + (size_t)(y * op->stride) * o1->ow + (size_t)(x * op->stride)) * C1;
                k->key_add(C1, a + p * C, s, out + p * C, relu);
                for (size_t c = C1; c < C; c++) out[p * C + c] = relu && a[p * C + c] < 0 ? 0 : a[p * C + c];
            }
}

/* stream NHWC -> per channel the mean over the map (2^k values) */
static void run_gap(const qatrt_op *op, int n, const int32_t *in, int32_t *out)
{
    size_t C = (size_t)op->cin, P = (size_t)op->h * op->w;
    int k = 0;
    while (((size_t)1 << k) < P) k++;
    for (int i = 0; i < n; i++)
        for (size_t c = 0; c < C; c++) out[(size_t)i * C + c] = qatc_key_mean(in + (size_t)i * P * C + c, (long)P, (long)C, k);
}

/* rows of cout accumulators -> stream keys (F32 stage), from the
 * prepared table when there is one */
static void stage_f32(const qatrt_op *op, const uint8_t *prep, size_t rows, const int32_t *acc, int32_t *out)
{
    size_t N = (size_t)op->cout;
    if (op->f32tab) {
        const int32_t *tb = (const int32_t *)(const void *)(prep + op->f32tab_off);
        ptrdiff_t W = (ptrdiff_t)(2 * op->accmax + 1), mid = (ptrdiff_t)op->accmax;
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < N; c++) out[r * N + c] = tb[(ptrdiff_t)c * W + mid + acc[r * N + c]];
        return;
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < N; c++) out[r * N + c] = qatc_f32_stage(op->req + 4 * c, op->f32flags, acc[r * N + c]);
}

/* an X64 CONV on n images: rows of int64 inputs (the NHWC image through
 * its table, or a stream's keys in fixed point; 0 in the padding, the
 * normalised or the float zero), one int64 GEMM, the F32 stage's keys
 * into out (the last op: its logits) */
static void run_x64(const qatrt_op *op, const qatrt_kernels *k, const int64_t *W, int n, const uint8_t *in, int64_t *col,
                    int64_t *acc, int32_t *out)
{
    size_t C = (size_t)op->cin, P = (size_t)op->oh * op->ow, N = (size_t)op->cout, isz = (size_t)op->h * op->w * C;
    int64_t *row = col;
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < op->oh; oy++)
            for (int ox = 0; ox < op->ow; ox++)
                for (int ky = 0; ky < op->kh; ky++) {
                    int iy = oy * op->stride - op->pad + ky;
                    for (int kx = 0; kx < op->kw; kx++, row += C) {
                        int ix = ox * op->stride - op->pad + kx;
                        size_t at = (size_t)i * isz + ((size_t)iy * op->w + (size_t)ix) * C;
                        if (iy < 0 || iy >= op->h || ix < 0 || ix >= op->w) memset(row, 0, C * 8);
                        else if (op->in_u8)
                            for (size_t c = 0; c < C; c++) row[c] = op->table[c * 256 + in[at + c]];
                        else
                            for (size_t c = 0; c < C; c++)
                                row[c] = qatc_key_fixed(((const int32_t *)(const void *)in)[at + c], op->table[0], op->table[1]);
                    }
                }
    k->x64gemm((int)((size_t)n * P), (int)N, op->K, col, (size_t)op->K, W, (size_t)op->K, acc, N);
    for (size_t r = 0; r < (size_t)n * P; r++)
        for (size_t c = 0; c < N; c++) out[r * N + c] = qatc_f32_stage(op->req + 4 * c, op->f32flags, acc[r * N + c]);
}

static void run_lut(const qatrt_op *op, int n, int packed, const uint8_t *in, uint8_t *out, uint8_t *gbuf)
{
    size_t pix = (size_t)n * op->h * op->w, C = (size_t)op->cin;
    for (size_t p = 0; p < pix; p++) {
        int8_t *o = packed ? (int8_t *)gbuf : (int8_t *)out + p * C;
        for (size_t c = 0; c < C; c++) o[c] = op->lut[c * 256 + in[p * C + c]];
        if (packed) pack_pixel(o, (int)C, out + p * cbytes((int)C));
    }
}

/* a direct convolution (dconv_kind) of n images: each image's input map
 * with its zero border in col, then the kernel. dcw: the op's prepared
 * weights (and bounds); pool: out is the fused max pool's (pool_fused). */
static void run_dconv(const qatrt_op *op, int kind, const qatrt_kernels *k, const uint8_t *prep, const uint8_t *dcw,
                      size_t n, const uint8_t *in, uint8_t *col, uint8_t *out, int pool)
{
    int p = op->pad, pw = op->w + 2 * p, ph = op->h + 2 * p;
    size_t cb = cbytes(op->cin), C = (size_t)op->cin, ocb = cbytes(op->cout);
    size_t px = kind == DC_BIN ? cb : C, isz = (size_t)op->h * op->w * px;
    size_t osz = (size_t)(pool ? op->oh / 2 * (op->ow / 2) : op->oh * op->ow) * ocb;
    qatrt_dconv d = {.oh = op->oh, .ow = op->ow, .kh = op->kh, .kw = op->kw, .stride = op->stride, .h = op->h,
                     .w = op->w, .pad = p, .px = px, .row = (size_t)pw * px, .N = op->cout, .W = dcw,
                     .flip = op->flip, .ldo = ocb, .pool = pool};
    if (kind == DC_BIN) {
        d.thr = (const int32_t *)(const void *)(dcw + qatrt_bconv_words(op->cout, op->kh * op->kw, cb) * 4);
        size_t rowb = (size_t)pw * cb, inner = (size_t)op->w * cb;
        if (p) { /* the border stays zero from one image to the next */
            memset(col, 0, rowb * (size_t)p);
            memset(col + rowb * (size_t)(ph - p), 0, rowb * (size_t)p + SLACK);
            for (int y = 0; y < op->h; y++) {
                uint8_t *r = col + rowb * (size_t)(y + p);
                memset(r, 0, cb * (size_t)p);
                memset(r + cb * (size_t)p + inner, 0, cb * (size_t)p);
            }
        }
        for (size_t i = 0; i < n; i++) {
            const uint8_t *x = in + i * isz;
            d.out = out + i * osz;
            if (!p) {
                k->bconv_bits(&d, x);
                continue;
            }
            for (int y = 0; y < op->h; y++) memcpy(col + rowb * (size_t)(y + p) + cb * (size_t)p, x + (size_t)y * inner, inner);
            k->bconv_bits(&d, col);
        }
        return;
    }
    /* DC_I16: each pixel through its channel's int16 table; the padding
     * 0, the normalised zero; a zero after the map (the kernel may read
     * one value past a kernel row, times a zero weight) */
    const int16_t *t16 = (const int16_t *)(const void *)(prep + op->t16_off);
    int16_t *map = (int16_t *)(void *)col;
    size_t rowv = (size_t)pw * C;
    d.thr = op->thr;
    d.shift = op->t16_shift;
    memset(map, 0, rowv * (size_t)p * 2);
    memset(map + rowv * (size_t)(ph - p), 0, rowv * (size_t)p * 2 + SLACK);
    for (int y = 0; y < op->h; y++) { /* the side borders, which stay zero from one image to the next */
        int16_t *r = map + rowv * (size_t)(y + p);
        for (size_t j = 0; j < C * (size_t)p; j++) r[j] = 0, r[rowv - 1 - j] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        d.out = out + i * osz; /* CHW: the caller's image itself */
        k->tab16_map(op->cin, op->h, op->w, in + i * isz, t16, map + rowv * (size_t)p + C * (size_t)p, rowv);
        k->i16conv_bits(&d, map);
    }
}

qatrt_status qatrt_prepare(const qatrt_model *m, void *ws_, size_t ws_size)
{
    if (!m || m->nops < 1) return QATRT_ERR_ARG;
    if (m->nops > QATRT_MAX_OPS) return QATRT_ERR_ARG;
    plan pl;
    make_plan(m, &pl);
    size_t need_bytes = workspace_size(m, &pl, 1);
    if (need_bytes == 0) return QATRT_ERR_ARG;
    if (!ws_ || ws_size < need_bytes || (uintptr_t)ws_ % QATRT_ALIGN) return QATRT_ERR_SPACE;
    uint8_t *ws = ws_, *prep = ws + QATRT_ALIGN;
    /* scratch for a row: the last area of a one-image workspace (K + SLACK
     * bytes >= any op's wrow), past the prepared weights */
    uint8_t *scratch = ws + need_bytes - QATRT_ALIGN - ALIGN_UP(need(m, &pl, 1).gbuf + SLACK);
    for (int i = 0; i < m->nops; i++) {
        const qatrt_op *op = &m->ops[i];
        if (op->type != QATRT_OP_CONV) continue;
        if (op->prep) prepare_op(op, prep + op->prep_off, scratch);
        if (op->padfix) { /* channel c's weights at tap t: bit (c K + t cin + ci) of the dense stream, set for -1 */
            int32_t *ts = (int32_t *)(void *)(prep + op->padfix_off);
            size_t T = (size_t)op->kh * op->kw, K = (size_t)op->K;
            for (size_t c = 0; c < (size_t)op->cout; c++)
                for (size_t t = 0; t < T; t++) {
                    int32_t s = 0;
                    for (size_t ci = 0; ci < (size_t)op->cin; ci++) {
                        size_t b = c * K + t * (size_t)op->cin + ci;
                        s += (((const uint8_t *)op->weights)[b / 8] >> (b % 8) & 1) ? -1 : 1;
                    }
                    ts[c * T + t] = s;
                }
        }
        if (op->t16) { /* the table >> shift, then the weights widened */
            int16_t *t = (int16_t *)(void *)(prep + op->t16_off);
            for (size_t v = 0; v < (size_t)op->cin * 256; v++) t[v] = (int16_t)(op->table[v] >> op->t16_shift);
            for (size_t v = 0; v < (size_t)op->cout * (size_t)op->K; v++)
                t[(size_t)op->cin * 256 + v] = ((const int8_t *)op->weights)[v];
        }
        if (op->f32tab) {
            int32_t *tb = (int32_t *)(void *)(prep + op->f32tab_off);
            size_t W = (size_t)(2 * op->accmax + 1);
            for (size_t c = 0; c < (size_t)op->cout; c++)
                for (size_t j = 0; j < W; j++)
                    tb[c * W + j] = qatc_f32_stage(op->req + 4 * c, op->f32flags, (int32_t)((int64_t)j - op->accmax));
        }
        if (op->pan) qatrt_pack_i8panel(op->cout, op->K, op->weights, op->wrow, (int8_t *)(prep + op->pan_off));
    }
    size_t dco = m->prep_size; /* the direct convolutions' weights, after the reader's */
    for (int i = 0; i < m->nops; i++) {
        const qatrt_op *op = &m->ops[i];
        uint8_t *dst = prep + dco;
        switch (pl.dk[i]) {
        case DC_BIN: {
            size_t words = qatrt_bconv_words(op->cout, op->kh * op->kw, cbytes(op->cin));
            qatrt_pack_bconv(op->cout, op->kh * op->kw, cbytes(op->cin), (const uint64_t *)(const void *)(prep + op->prep_off),
                             (int)(op->wrow / 8), (uint32_t *)(void *)dst);
            qatrt_bconv_bounds(op->cout, op->K, op->kh, op->kw, op->pad, op->thr, op->flip,
                               op->padfix ? (const int32_t *)(const void *)(prep + op->padfix_off) : NULL,
                               (int32_t *)(void *)(dst + words * 4));
            break;
        }
        case DC_I16:
            qatrt_pack_i16conv(op->cout, op->kh, op->kw, (size_t)op->cin,
                               (const int16_t *)(const void *)(prep + op->t16_off) + (size_t)op->cin * 256, (size_t)op->K,
                               (int16_t *)(void *)dst);
            break;
        default:
            if (pad_classes(op)) { /* as qatrt_bconv_bounds finds its padded taps */
                const int32_t *ts = (const int32_t *)(const void *)(prep + op->padfix_off);
                int32_t *corr = (int32_t *)(void *)dst;
                for (int cls = 0; cls < 16; cls++)
                    for (int c = 0; c < op->cout; c++) {
                        int32_t sum = 0;
                        for (int ky = 0; ky < op->kh; ky++)
                            for (int kx = 0; kx < op->kw; kx++)
                                if ((cls & 4 && ky == 0) || (cls & 8 && ky == op->kh - 1) || (cls & 1 && kx == 0) ||
                                    (cls & 2 && kx == op->kw - 1))
                                    sum += ts[(size_t)c * (size_t)(op->kh * op->kw) + (size_t)(ky * op->kw + kx)];
                        corr[(size_t)cls * (size_t)op->cout + (size_t)c] = sum;
                    }
            }
            break;
        }
        dco += dc_prep_bytes(m, &pl, i);
    }
    prep_tag t = {PREP_MAGIC, m->data, m->size, m->crc};
    memcpy(ws, &t, sizeof t);
    return QATRT_OK;
}

qatrt_status qatrt_run(const qatrt_model *m, const qatrt_kernels *k, void *ws, size_t ws_size, const uint8_t *images,
                       int n, int32_t *logits)
{
    if (!m || !k || !images || !logits || m->nops < 1) return QATRT_ERR_ARG;
    if (m->nops > QATRT_MAX_OPS) return QATRT_ERR_ARG;
    plan pl;
    make_plan(m, &pl);
    size_t need_bytes = workspace_size(m, &pl, n);
    if (need_bytes == 0) return QATRT_ERR_ARG;
    if (!ws || ws_size < need_bytes || (uintptr_t)ws % QATRT_ALIGN) return QATRT_ERR_SPACE;
    if (!prepared(m, ws)) return QATRT_ERR_UNPREPARED;
    size_t nn = (size_t)n;
    sizes s = need(m, &pl, nn);
    uint8_t *prep = (uint8_t *)ws + QATRT_ALIGN;
    uint8_t *img = prep + prep_bytes(m, &pl), *dcw = prep + m->prep_size;
    uint8_t *act = img + ALIGN_UP(nn * s.img + SLACK); /* m->nslots buffers of abytes */
    size_t abytes = ALIGN_UP(nn * s.act + SLACK);
    uint8_t *col = act + (size_t)m->nslots * abytes;
    int32_t *acc = (int32_t *)(void *)(col + ALIGN_UP(s.col + SLACK));
    uint8_t *gbuf = (uint8_t *)acc + ALIGN_UP(s.acc);
    /* the images, CHW, as NHWC (with slack after them for copy8), unless
     * every op on them is an int16 direct convolution, which reads CHW */
    size_t hw = (size_t)m->h * m->w, C = (size_t)m->c;
    int hwc = 0;
    for (int i = 0; i < m->nops; i++) hwc |= m->ops[i].in0 < 0 && pl.dk[i] != DC_I16;
    if (!hwc) {
    } else if (C == 1) memcpy(img, images, nn * hw);
    else
        for (size_t i = 0; i < nn; i++)
            for (size_t c = 0; c < C; c++)
                for (size_t p = 0; p < hw; p++) img[(i * hw + p) * C + c] = images[(i * C + c) * hw + p];
    for (int i = 0; i < m->nops; i++) {
        const qatrt_op *op = &m->ops[i];
        const uint8_t *in = op->in0 < 0 ? img : act + (size_t)m->ops[op->in0].slot * abytes;
        uint8_t *out = act + (size_t)op->slot * abytes;
        int pin = pl.pin[i], pout = pl.pout[i];
        switch (op->type) {
        case QATRT_OP_LUT: run_lut(op, n, pout, in, out, gbuf); break;
        case QATRT_OP_MAXPOOL:
            if (i == 0 || !pl.pool[i - 1]) run_maxpool(op, n, pin, in, out); /* else done by op i - 1 */
            break;
        case QATRT_OP_ADD:
            run_add(op, &m->ops[op->in1], k, n, (const int32_t *)(const void *)in,
                    (const int32_t *)(const void *)(act + (size_t)m->ops[op->in1].slot * abytes), (int32_t *)(void *)out);
            break;
        case QATRT_OP_GAP: run_gap(op, n, (const int32_t *)(const void *)in, (int32_t *)(void *)out); break;
        case QATRT_OP_QUANT:
            stage_thresh(op, k, nn * (size_t)op->h * op->w, pout, (const int32_t *)(const void *)in, out, gbuf);
            break;
        case QATRT_OP_CONV: {
            int dk = pl.dk[i];
            const uint8_t *opw = dcw; /* the op's part of the direct convolutions' area */
            dcw += dc_prep_bytes(m, &pl, i);
            if (dk != DC_NONE) {
                run_dconv(op, dk, k, prep, opw, nn, op->in0 < 0 ? images : in, col,
                          pl.pool[i] ? act + (size_t)m->ops[i + 1].slot * abytes : out, pl.pool[i]);
                break;
            }
            const void *W = op->prep ? (const void *)(prep + op->prep_off)
                            : op->t16 ? (const void *)(prep + op->t16_off + (size_t)op->cin * 256 * 2)
                                      : op->weights;
            const void *pan = op->pan ? (const void *)(prep + op->pan_off) : NULL;
            size_t P = (size_t)op->oh * op->ow, ci = chunk_images(op, nn);
            size_t isz = (size_t)op->h * op->w * (pin ? cbytes(op->cin) : (size_t)op->cin);
            size_t osz = P * (pout ? cbytes(op->cout) : (qatrt_op_i32(op) ? 4 : 1) * (size_t)op->cout);
            for (size_t i0 = 0; i0 < nn; i0 += ci) {
                int cn = (int)(nn - i0 < ci ? nn - i0 : ci);
                if (op->kernel == QATRT_K_X64) {
                    run_x64(op, k, (const int64_t *)W, cn, in + i0 * isz * (op->in_u8 ? 1 : 4),
                            (int64_t *)(void *)col, (int64_t *)(void *)acc,
                            op->stage == QATRT_STAGE_LOGITS ? logits + i0 * (size_t)op->cout
                                                            : (int32_t *)(void *)(out + i0 * osz));
                    continue;
                }
                if (fused_bits(op, pout)) {
                    run_conv(op, k, W, pan, cn, pin, in + i0 * isz, col, gbuf, acc, out + i0 * osz);
                    continue;
                }
                run_conv(op, k, W, pan, cn, pin, in + i0 * isz, col, gbuf, acc, NULL);
                if (pad_classes(op)) pad_fix_cls(op, cn, (const int32_t *)(const void *)opw, acc);
                else if (op->padfix) pad_fix(op, cn, (const int32_t *)(const void *)(prep + op->padfix_off), acc);
                if (op->stage == QATRT_STAGE_LOGITS) stage_logits(op, (size_t)cn, acc, logits + i0 * (size_t)op->cout);
                else if (op->stage == QATRT_STAGE_F32)
                    stage_f32(op, prep, (size_t)cn * P, acc, (int32_t *)(void *)(out + i0 * osz));
                else stage_thresh(op, k, (size_t)cn * P, pout, acc, out + i0 * osz, gbuf);
            }
            break;
        }
        }
    }
    return QATRT_OK;
}
