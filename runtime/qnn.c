/* qnn.c: the .qnn reader. The file is hostile until proven otherwise: the
 * checksum is verified first, then every field is range-checked and every
 * blob's offset and size checked against the file and against what the op's
 * shapes require, before any pointer into the file is formed. Messages name
 * the byte offset of the field at fault (docs/format.md has the layout). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "qatrt.h"
#include "softfloat.h"
#include "qnn_fields.h"


static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static qatrt_status fail(qatrt_error *err, qatrt_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static qatrt_status fail(qatrt_error *err, qatrt_status s, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return s;
}

uint32_t qatrt_crc32(uint32_t crc, const void *data, size_t n)
{
    /* reflected polynomial 0xEDB88320, four bits at a time */
    static const uint32_t t[16] = {0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
                                   0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
                                   0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c};
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ t[crc & 15];
        crc = (crc >> 4) ^ t[crc & 15];
    }
    return ~crc;
}

const char *qatrt_status_name(qatrt_status s)
{
    switch (s) {
    case QATRT_OK: return "ok";
    case QATRT_ERR_FORMAT: return "format error";
    case QATRT_ERR_CHECKSUM: return "checksum mismatch";
    case QATRT_ERR_VERSION: return "unsupported version";
    case QATRT_ERR_ARG: return "bad argument";
    case QATRT_ERR_SPACE: return "workspace too small";
    case QATRT_ERR_UNPREPARED: return "workspace not prepared for this model (qatrt_prepare)";
    }
    return "unknown status";
}

const char *qatrt_kernel_name(qatrt_kernel k)
{
    static const char *const names[QATRT_K_COUNT] = {
        [QATRT_K_BIN] = "binary", [QATRT_K_TER] = "ternary", [QATRT_K_I8T] = "int8 x ternary",
        [QATRT_K_U8I8] = "uint8 x int8", [QATRT_K_I8I8] = "int8 x int8", [QATRT_K_I16] = "int16",
        [QATRT_K_P2] = "power-of-two shift-add", [QATRT_K_U8B] = "uint8 x binary", [QATRT_K_MB] = "multi-bit binary",
        [QATRT_K_T32] = "uint8 table x int8", [QATRT_K_X64] = "int64 (a float layer's exact sum)"};
    return k > 0 && k < QATRT_K_COUNT ? names[k] : "?";
}

/* the largest |weight| of a CONV op, from its encoding (scanning int8 and
 * int16 weights: an int16 layer is only safe with the values it holds);
 * of an X64 op, the largest sum of a channel's |weights| */
static int64_t weight_bound(const qatrt_op *op)
{
    int64_t m = 0;
    size_t n = (size_t)op->K * (size_t)op->cout;
    switch (op->kernel) {
    case QATRT_K_BIN: case QATRT_K_TER: case QATRT_K_I8T: case QATRT_K_U8B: return 1;
    case QATRT_K_P2: return 64;
    case QATRT_K_MB: { /* a group's weights are at most the sum of its |coefficients| */
        size_t q = 0;
        for (size_t g = 0; g < (size_t)op->cout * (size_t)op->mb.gc; g++) {
            int64_t s = 0;
            for (int i = 0; i < op->mb.bw[g]; i++, q++) s += op->mb.coef[q] < 0 ? -op->mb.coef[q] : op->mb.coef[q];
            if (s > m) m = s;
        }
        return m;
    }
    case QATRT_K_X64: /* the largest row's sum of |weights| (its sum is what must fit) */
        if (op->x64_mb) { /* int16 weights (read_mb): no sum reaches 2^62 */
            for (size_t c = 0; c < (size_t)op->cout; c++) {
                int64_t s = qatrt_mb_row(&op->mb, c, NULL, 0, 0);
                if (s > m) m = s;
            }
            return m;
        }
        for (size_t c = 0; c < (size_t)op->cout; c++) {
            int64_t s = 0;
            for (size_t k = 0; k < (size_t)op->K; k++) {
                int64_t v = qatc_wide_weight(op->weights, c * (size_t)op->K + k, op->nthr);
                if (v < -((int64_t)1 << 62) || v > ((int64_t)1 << 62)) return (int64_t)1 << 62; /* refused by the caller */
                s += v < 0 ? -v : v;
                if (s >= (int64_t)1 << 62) return (int64_t)1 << 62;
            }
            if (s > m) m = s;
        }
        return m;
    case QATRT_K_I16:
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = (const uint8_t *)op->weights + 2 * i;
            int64_t v = (int16_t)(uint16_t)(p[0] | p[1] << 8);
            if (v < 0) v = -v;
            if (v > m) m = v;
        }
        return m;
    default:
        for (size_t i = 0; i < n; i++) {
            int64_t v = ((const int8_t *)op->weights)[i];
            if (v < 0) v = -v;
            if (v > m) m = v;
        }
        return m;
    }
}

size_t qatrt_weight_bytes(qatrt_kernel k, int cout, int K)
{
    size_t n = (size_t)cout * (size_t)K;
    switch (k) {
    case QATRT_K_BIN: case QATRT_K_U8B: return (n + 7) / 8;
    case QATRT_K_TER: case QATRT_K_I8T: return 2 * ((n + 7) / 8);
    case QATRT_K_U8I8: case QATRT_K_I8I8: case QATRT_K_T32: return n;
    case QATRT_K_I16: return 2 * n;
    case QATRT_K_P2: return (n + 1) / 2;
    default: return 0;
    }
}

size_t qatrt_weight_row(qatrt_kernel k, int taps, int cin)
{
    size_t K = (size_t)taps * (size_t)cin, kw = (K + 63) / 64;
    switch (k) {
    case QATRT_K_BIN: return ((size_t)taps * (((size_t)cin + 7) / 8) * 8 + 63) / 64 * 8;
    case QATRT_K_TER: case QATRT_K_I8T: return 2 * kw * 8;
    case QATRT_K_U8B: return kw * 8;
    case QATRT_K_U8I8: case QATRT_K_I8I8: case QATRT_K_T32: return K;
    case QATRT_K_I16: return 2 * K;
    case QATRT_K_X64: return 8 * K;
    case QATRT_K_P2: return (K + 1) / 2;
    default: return 0;
    }
}

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

/* an op record's fields (qnn_fields.h); its blobs, in order */
enum { B_WEIGHTS, B_BSUM, B_THR, B_LEVELS, B_REQ, B_LUT, B_FLIP };
static const char *const blob_name[QNN_NBLOBS] = {"weights", "weight sums", "thresholds", "levels", "requantization",
                                                  "table", "flip bits"};

/* the file being read, and its current op record decoded (any version):
 * each field's value, each blob's offset and size and the byte naming it */
typedef struct {
    const uint8_t *base;
    size_t lo, hi; /* blobs must lie in [lo, hi) */
    qatrt_error *err;
    uint32_t version;
    size_t cur;      /* v4: the end of the last blob so far */
    size_t at;       /* the current record's first byte */
    uint32_t v[F_COUNT];
    uint32_t off[QNN_NBLOBS], size[QNN_NBLOBS];
    size_t bat[QNN_NBLOBS]; /* v2, v3: the blob's (offset, size) pair; v4: its size, or the blob mask if it has none */
} reader;

/* the byte where field f of the record at `at` starts */
static size_t fpos(const reader *r, size_t at, int f) { return at + (r->version >= 4 ? qnn_fields[f].v4 : qnn_fields[f].v3); }
static size_t fat(const reader *r, int f) { return fpos(r, r->at, f); }
/* the byte holding blob j's size */
static size_t size_at(const reader *r, int j) { return r->bat[j] + (r->version >= 4 ? 0 : 4); }

/* decodes op i's record at byte `at` into r: every reserved byte zero; v4
 * blobs laid out one after another from r->cur, the bytes between zero */
static qatrt_status decode(reader *r, int i, size_t at)
{
    const uint8_t *p = r->base + at;
    r->at = at;
    if (r->version < 4) {
        for (int f = 0; f < F_COUNT; f++) r->v[f] = rd32(p + qnn_fields[f].v3);
        for (int j = 0; j < QNN_NBLOBS; j++) {
            r->bat[j] = at + QNN_OP_WEIGHTS + 8 * (size_t)j;
            r->off[j] = rd32(p + QNN_OP_WEIGHTS + 8 * j);
            r->size[j] = rd32(p + QNN_OP_WEIGHTS + 8 * j + 4);
        }
        /* v2: the op before it, no second input; the input fields reserved */
        if (r->version < 3) r->v[F_IN0] = (uint32_t)i, r->v[F_IN1] = 0;
        for (size_t z = QNN_OP_IN0; r->version < 3 && z < QNN_OP_IN0 + 4; z++)
            if (p[z]) return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: reserved byte is %u; expected 0", at + z, p[z]);
        for (size_t z = r->version >= 3 ? QNN_OP_RES1 : QNN_OP_IN1; z < QATRT_OP_SIZE; z++)
            if (p[z]) return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: reserved byte is %u; expected 0", at + z, p[z]);
        return QATRT_OK;
    }
    for (int f = 0; f < F_COUNT; f++)
        r->v[f] = qnn_fields[f].bytes == 1 ? p[qnn_fields[f].v4] : rd16(p + qnn_fields[f].v4);
    uint32_t mask = rd16(p + QNN_OP4_BLOBS); /* bits 7..15 checked by the caller */
    size_t s = at + QNN_OP4_SIZES;
    for (int j = 0; j < QNN_NBLOBS; j++) {
        r->off[j] = r->size[j] = 0;
        r->bat[j] = at + QNN_OP4_BLOBS;
        if (!(mask >> j & 1)) continue;
        uint32_t size = rd32(r->base + s);
        size_t o = (r->cur + QATRT_ALIGN4 - 1) / QATRT_ALIGN4 * QATRT_ALIGN4;
        if (size == 0)
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: op %d's %s blob has 0 bytes; a blob an op has is never empty "
                        "(its bit in the blob mask says it has one)", s, i, blob_name[j]);
        if (o > r->hi || size > r->hi - o)
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: op %d's %s blob of %u bytes at byte %zu runs past the data area's "
                        "end, byte %zu", s, i, blob_name[j], size, o, r->hi);
        for (size_t z = r->cur; z < o; z++)
            if (r->base[z]) return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: padding byte is %u; expected 0", z, r->base[z]);
        r->bat[j] = s;
        r->off[j] = (uint32_t)o;
        r->size[j] = size;
        r->cur = o + size;
        s += 4;
    }
    return QATRT_OK;
}

/* resolves blob j of the current record; want: the exact size required (0:
 * the blob must be absent) */
static qatrt_status blob(reader *r, int j, const char *what, size_t want, const void **out)
{
    uint32_t off = r->off[j], size = r->size[j];
    size_t at = r->bat[j];
    *out = NULL;
    if (want == 0) {
        if (off || size) {
            if (r->version >= 4)
                return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: this op takes no %s blob (bit %d of its blob mask must be 0), "
                            "found one of %u bytes", at, what, j, size);
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: the %s blob must be absent for this op (offset 0, size 0), found offset %u size %u",
                        at, what, off, size);
        }
        return QATRT_OK;
    }
    if (r->version >= 4 && !size)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: this op needs a %s blob of %zu bytes (bit %d of its blob mask is 0)", at,
                    what, want, j);
    if (size != want)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: the %s blob has %u bytes; this op's shapes need %zu", size_at(r, j),
                    what, size, want);
    if (r->version < 4 && off % QATRT_ALIGN)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: the %s blob's offset %u is not a multiple of %d", at, what,
                    off, QATRT_ALIGN);
    if (off < r->lo || off > r->hi || size > r->hi - off)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: the %s blob [%u, %u) lies outside the data area [%zu, %zu)",
                    at, what, off, off + size, r->lo, r->hi);
    *out = r->base + off;
    return QATRT_OK;
}

static qatrt_status check(reader *r, size_t at, uint32_t v, const char *name, uint32_t lo, uint32_t hi, int *out)
{
    if (v < lo || v > hi)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: %s is %u; expected %u..%u", at, name, v, lo, hi);
    *out = (int)v;
    return QATRT_OK;
}

/* a header field (u32 at byte `at`) */
static qatrt_status hfield(reader *r, size_t at, const char *name, uint32_t lo, uint32_t hi, int *out)
{
    return check(r, at, rd32(r->base + at), name, lo, hi, out);
}

/* field f of the current record */
static qatrt_status field(reader *r, int f, const char *name, uint32_t lo, uint32_t hi, int *out)
{
    return check(r, fat(r, f), r->v[f], name, lo, hi, out);
}

/* The multi-bit weights blob (docs/format.md): a 32-byte header (n, gc,
 * order, imax, planes, then zeros), the cout x gc bitwidths, the cout plane
 * starts (u32, at a multiple of 4), the int16 coefficients, the planes'
 * bits (dense; the last byte's unused bits 0). Everything is checked
 * against the op's shapes and against itself. */
static qatrt_status read_mb(reader *r, qatrt_op *op)
{
    uint32_t off = r->off[B_WEIGHTS], size = r->size[B_WEIGHTS];
    if (size < QNN_MB_TABLES)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: the multi-bit weights blob has %u bytes; its header alone takes 32",
                    size_at(r, B_WEIGHTS), size);
    const void *b;
    qatrt_status st = blob(r, B_WEIGHTS, "weights", size, &b);
    if (st) return st;
    const uint8_t *p = b;
    size_t o = off;
    uint32_t n = rd32(p + QNN_MB_N), gc = rd32(p + QNN_MB_GC), order = rd32(p + QNN_MB_ORDER), imax = rd32(p + QNN_MB_IMAX);
    uint32_t np = rd32(p + QNN_MB_PLANES);
    /* n = 0: groups of unequal sizes, given by a table of offsets */
    if (gc < 1 || (n > 0 && (uint64_t)n * gc != (uint64_t)op->K) || (n == 0 && gc > (uint32_t)op->K))
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: %u groups of %u weights per channel; this op has K = %d", o, gc, n,
                    op->K);
    if (order > 1 || (order == 1 && (n != (uint32_t)op->cin || gc != (uint32_t)(op->kh * op->kw))))
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: element order %u with groups of %u; expected 0, or 1 with groups of "
                    "one tap's %d channels", o + QNN_MB_ORDER, order, n, op->cin);
    if (imax < 1 || imax > 8)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: at most %u planes per group; expected 1..8", o + QNN_MB_IMAX, imax);
    for (size_t z = QNN_MB_RESERVED; z < QNN_MB_TABLES; z++)
        if (p[z]) return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: reserved byte is %u; expected 0", o + z, p[z]);
    uint64_t groups = (uint64_t)op->cout * gc, I_at = QNN_MB_TABLES + (n ? 0 : 4 * ((uint64_t)gc + 1));
    uint64_t chan_at = (I_at + groups + 3) / 4 * 4, bit0_at = chan_at + 4 * (uint64_t)op->cout;
    uint64_t coef_at = bit0_at + (n ? 0 : 4 * (uint64_t)op->cout), bits_at = coef_at + 2 * (uint64_t)np;
    if (bits_at > size)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: the multi-bit weights blob has %u bytes; its %llu groups and %u planes "
                    "need %llu before the planes", size_at(r, B_WEIGHTS), size, (unsigned long long)groups, np,
                    (unsigned long long)bits_at);
    if (!n) {
        if (rd32(p + QNN_MB_TABLES) != 0 || rd32(p + QNN_MB_TABLES + 4 * (size_t)gc) != (uint32_t)op->K)
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: the group offsets run %u..%u; expected 0..%d (K)", o + QNN_MB_TABLES,
                        rd32(p + QNN_MB_TABLES), rd32(p + QNN_MB_TABLES + 4 * (size_t)gc), op->K);
        for (uint64_t j = 1; j <= gc; j++)
            if (rd32(p + QNN_MB_TABLES + 4 * j) <= rd32(p + QNN_MB_TABLES - 4 + 4 * j))
                return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: group offset %u after %u; the offsets must increase",
                            o + (size_t)(QNN_MB_TABLES + 4 * j), rd32(p + QNN_MB_TABLES + 4 * j), rd32(p + QNN_MB_TABLES - 4 + 4 * j));
    }
    for (uint64_t z = I_at + groups; z < chan_at; z++)
        if (p[z]) return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: padding byte is %u; expected 0", o + (size_t)z, p[z]);
    const uint8_t *I = p + I_at;
    const int16_t *coef = (const int16_t *)(const void *)(p + coef_at);
    uint64_t q = 0, bits = 0;
    for (uint64_t c = 0; c < (uint64_t)op->cout; c++) {
        if (rd32(p + chan_at + 4 * c) != q)
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: channel %llu's planes start at %u; its groups before say %llu",
                        o + (size_t)(chan_at + 4 * c), (unsigned long long)c, rd32(p + chan_at + 4 * c),
                        (unsigned long long)q);
        if (!n && rd32(p + bit0_at + 4 * c) != bits)
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: channel %llu's planes start at bit %u; its groups before say %llu",
                        o + (size_t)(bit0_at + 4 * c), (unsigned long long)c, rd32(p + bit0_at + 4 * c),
                        (unsigned long long)bits);
        for (uint64_t j = 0; j < gc; j++) {
            uint8_t v = I[c * gc + j];
            if (v > imax)
                return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: group %llu of channel %llu has %u planes; at most %u",
                            o + (size_t)(I_at + c * gc + j), (unsigned long long)j, (unsigned long long)c, v, imax);
            int64_t s = 0;
            for (uint32_t i = 0; i < v && q + i < np; i++) {
                int16_t a = (int16_t)(uint16_t)(p[coef_at + 2 * (q + i)] | p[coef_at + 2 * (q + i) + 1] << 8);
                if (a == INT16_MIN)
                    return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: coefficient -32768 (expected -32767..32767)",
                                o + (size_t)(coef_at + 2 * (q + i)));
                s += a < 0 ? -a : a;
            }
            if (s > 32767)
                return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: group %llu of channel %llu: coefficients add up to %lld; "
                            "its weights must fit int16", o + (size_t)(coef_at + 2 * q), (unsigned long long)j,
                            (unsigned long long)c, (long long)s);
            q += v;
            bits += (uint64_t)v * (n ? n : rd32(p + QNN_MB_TABLES + 4 + 4 * j) - rd32(p + QNN_MB_TABLES + 4 * j));
            if (q > np)
                return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: the header says %u planes; the bitwidths up to group %llu of "
                            "channel %llu add up to more", o + QNN_MB_PLANES, np, (unsigned long long)j, (unsigned long long)c);
        }
    }
    if (q != np)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: the header says %u planes; the bitwidths add up to %llu", o + QNN_MB_PLANES, np,
                    (unsigned long long)q);
    uint64_t end = bits_at + (bits + 7) / 8;
    if (end != size || bits > UINT32_MAX)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: the multi-bit weights blob has %u bytes; %llu groups and %u planes "
                    "of %llu bits in all take %llu", size_at(r, B_WEIGHTS), size, (unsigned long long)groups, np,
                    (unsigned long long)bits, (unsigned long long)end);
    if (bits % 8 && (p[bits_at + bits / 8] >> (bits % 8)))
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: bits past the last plane must be 0", o + (size_t)(bits_at + bits / 8));
    op->mb = (qatrt_mb){.n = (int)n, .gc = (int)gc, .off = n ? NULL : (const uint32_t *)(const void *)(p + 32), .bw = I,
                        .chan = (const uint32_t *)(const void *)(p + chan_at),
                        .bit0 = n ? NULL : (const uint32_t *)(const void *)(p + bit0_at), .coef = coef,
                        .bits = p + bits_at, .nbits = (size_t)bits};
    op->mb_order = (int)order;
    op->wbytes = size;
    op->wrow = (size_t)op->K;
    return QATRT_OK;
}

/* the op whose levels op i reads: its input, through any max pools */
static int producer(const qatrt_model *m, int i)
{
    int k = m->ops[i].in0;
    while (k >= 0 && m->ops[k].type == QATRT_OP_MAXPOOL) k = m->ops[k].in0;
    return k;
}

/* every output but the last op's is read by a later op; the outputs
 * share buffers: op i's goes to the lowest slot whose output has had its
 * last reader before i (a chain: two slots, in turn) */
static qatrt_status assign_slots(qatrt_model *m, const size_t *rec, qatrt_error *err)
{
    int last[QATRT_MAX_OPS], owner[QATRT_MAX_OPS];
    for (int i = 0; i < m->nops; i++) last[i] = -1, owner[i] = -1;
    for (int j = 0; j < m->nops; j++) {
        if (m->ops[j].in0 >= 0) last[m->ops[j].in0] = j;
        if (m->ops[j].in1 >= 0) last[m->ops[j].in1] = j;
    }
    m->nslots = 0;
    for (int i = 0; i < m->nops; i++) {
        if (i + 1 < m->nops && last[i] < 0)
            return fail(err, QATRT_ERR_FORMAT, "byte %zu: no op reads op %d's output", rec[i], i);
        int s = 0;
        while (s < m->nslots && owner[s] >= 0 && last[owner[s]] >= i) s++;
        if (s == m->nslots) m->nslots++;
        owner[s] = i;
        m->ops[i].slot = s;
    }
    return QATRT_OK;
}

/* a THRESH stage's or a QUANT op's thresholds, flip bits and levels */
static qatrt_status read_thresh(reader *r, qatrt_op *op)
{
    qatrt_status st;
    const void *b;
    if ((st = field(r, F_NTHR, "the threshold count", 1, QATRT_MAX_LEVELS - 1, &op->nthr))) return st;
    if ((st = blob(r, B_THR, "thresholds", (size_t)op->cout * (size_t)op->nthr * 4, &b))) return st;
    op->thr = b;
    /* the flip bits are optional: absent when no channel is flipped (and
     * always for QUANT, whose function never decreases) */
    if (op->type == QATRT_OP_CONV && r->size[B_FLIP] != 0) {
        if ((st = blob(r, B_FLIP, "flip bits", ((size_t)op->cout + 7) / 8, &b))) return st;
        op->flip = b;
    } else if ((st = blob(r, B_FLIP, "flip bits", 0, &b))) {
        return st;
    }
    if ((st = blob(r, B_LEVELS, "levels", (size_t)op->nthr + 1, &b))) return st;
    op->levels = b;
    if ((st = blob(r, B_REQ, "requantization", 0, &b))) return st;
    /* per channel ascending, as the kernels count them (thresh_levels) */
    for (int c = 0; c < op->cout; c++)
        for (int j = 1; j < op->nthr; j++) {
            const int32_t *t = op->thr + (size_t)c * (size_t)op->nthr;
            if (t[j] < t[j - 1])
                return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: thresholds of channel %d must ascend (%d after %d)",
                            (size_t)((const uint8_t *)(t + j) - r->base), c, t[j], t[j - 1]);
        }
    for (int j = 1; j <= op->nthr; j++)
        if (op->levels[j] < op->levels[j - 1])
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: levels must ascend (%d after %d)",
                        (size_t)((const uint8_t *)(op->levels + j) - r->base), op->levels[j], op->levels[j - 1]);
    return QATRT_OK;
}

/* ADD, GAP, QUANT: the ops on int32 tensors (their shapes checked against
 * their inputs by the caller) */
static qatrt_status read_i32_op(reader *r, int i, qatrt_op *op, const qatrt_model *m)
{
    qatrt_status st;
    const void *b;
    int gap = op->type == QATRT_OP_GAP;
    if (op->cout != op->cin || op->oh != (gap ? 1 : op->h) || op->ow != (gap ? 1 : op->w))
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: op %d (%s) gives [%d, %d, %d] from [%d, %d, %d]; expected [%d, %d, %d]",
                    fat(r, F_COUT), i, gap ? "GAP" : op->type == QATRT_OP_ADD ? "ADD" : "QUANT", op->cout, op->oh, op->ow,
                    op->cin, op->h, op->w, op->cin, gap ? 1 : op->h, gap ? 1 : op->w);
    for (int f = F_KH; f < F_IN0; f++) {
        if ((op->type == QATRT_OP_ADD && f == F_STRIDE) || (op->type == QATRT_OP_QUANT && f == F_NTHR)) continue;
        if (r->v[f]) return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: unused field of op %d must be 0", fat(r, f), i);
    }
    if (op->type == QATRT_OP_QUANT) {
        if ((st = read_thresh(r, op))) return st;
        for (int j = 0; j < QNN_NBLOBS; j++)
            if (j != B_THR && j != B_LEVELS && j != B_FLIP && j != B_REQ && (st = blob(r, j, "unused", 0, &b))) return st;
        return QATRT_OK;
    }
    for (int j = 0; j < QNN_NBLOBS; j++)
        if ((st = blob(r, j, "unused", 0, &b))) return st;
    if (op->type == QATRT_OP_GAP) {
        if ((op->h * op->w) & (op->h * op->w - 1))
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: a GAP over %dx%d values; the exact mean needs a power of two",
                        fat(r, F_H), op->h, op->w);
        return QATRT_OK;
    }
    /* ADD: the second input sub-sampled by the stride into the first channels */
    const qatrt_op *o1 = &m->ops[op->in1];
    if ((st = field(r, F_STRIDE, "the stride of an ADD", 1, QATRT_MAX_DIM, &op->stride))) return st;
    if (!qatrt_op_i32(o1) || o1->cout > op->cin || (int64_t)(op->h - 1) * op->stride >= o1->oh ||
        (int64_t)op->h * op->stride < o1->oh || (int64_t)(op->w - 1) * op->stride >= o1->ow ||
        (int64_t)op->w * op->stride < o1->ow)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: op %d adds op %d's [%d, %d, %d]%s to [%d, %d, %d] with stride %d; expected "
                    "an int32 tensor of at most %d channels whose map the stride takes to %dx%d",
                    fat(r, F_IN1), i, op->in1, o1->cout, o1->oh, o1->ow, qatrt_op_i32(o1) ? "" : " (not int32)", op->cin,
                    op->h, op->w, op->stride, op->cin, op->h, op->w);
    return QATRT_OK;
}

static qatrt_status read_op(reader *r, int i, size_t at, qatrt_op *op, const qatrt_model *m)
{
    qatrt_status st;
    int type = 0, flags = 0;
    memset(op, 0, sizeof *op);
    if ((st = decode(r, i, at))) return st;
    if ((st = field(r, F_TYPE, "the op type", 1, QATRT_OP_LAST, &type)) || (st = field(r, F_FLAGS, "the flags", 0, 63, &flags)))
        return st;
    op->type = (qatrt_op_type)type;
    op->in_u8 = flags & 1;
    op->f32flags = flags & 30;
    op->x64_mb = flags >> 5 & 1;
    /* v3: the op names its input (0 the image, k op k - 1); v2: the op before it */
    uint32_t in0 = r->v[F_IN0], in1 = r->v[F_IN1];
    if (in0 > (uint32_t)i)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: op %d reads input %u; expected 0 (the image) .. %d (an op before it)",
                    fat(r, F_IN0), i, in0, i);
    if (op->type == QATRT_OP_ADD ? in1 < 1 || in1 > (uint32_t)i : in1 != 0)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: op %d's second input is %u; expected %s", fat(r, F_IN1), i, in1,
                    op->type == QATRT_OP_ADD ? "1 .. the op's own index (an ADD reads an op before it)"
                                             : "0 (only an ADD takes one)");
    op->in0 = (int)in0 - 1;
    op->in1 = (int)in1 - 1;
    const qatrt_op *prev = in0 ? &m->ops[in0 - 1] : NULL;
    if ((st = field(r, F_CIN, "the input channels", 1, QATRT_MAX_DIM, &op->cin)) ||
        (st = field(r, F_H, "the input height", 1, QATRT_MAX_DIM, &op->h)) ||
        (st = field(r, F_W, "the input width", 1, QATRT_MAX_DIM, &op->w)) ||
        (st = field(r, F_COUT, "the output channels", 1, QATRT_MAX_DIM, &op->cout)) ||
        (st = field(r, F_OH, "the output height", 1, QATRT_MAX_DIM, &op->oh)) ||
        (st = field(r, F_OW, "the output width", 1, QATRT_MAX_DIM, &op->ow)))
        return st;
    /* the op's input is the image or an earlier op's output */
    int pc = prev ? prev->cout : m->c, ph = prev ? prev->oh : m->h, pw = prev ? prev->ow : m->w;
    if (op->cin != pc || op->h != ph || op->w != pw)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: op %d's input is [%d, %d, %d] but %s gives [%d, %d, %d]", fat(r, F_CIN),
                    i, op->cin, op->h, op->w, prev ? "the op it reads" : "the model's image", pc, ph, pw);
    if (op->in_u8 != !prev)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: only an op reading the image reads uint8 (flags bit 0 is %d for op %d)",
                    fat(r, F_FLAGS), op->in_u8, i);
    if ((uint64_t)op->cin * op->h * op->w > (1u << 28) || (uint64_t)op->cout * op->oh * op->ow > (1u << 28))
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: op %d's tensors exceed 2^28 values", fat(r, F_CIN), i);
    /* int32 tensors go to ADD, GAP and QUANT, and only there */
    /* (an X64 CONV reads the image or a stream, a max pool levels or a stream, giving the same) */
    int x64 = r->v[F_TYPE] == QATRT_OP_CONV && r->v[F_KERNEL] == QATRT_K_X64;
    if (op->x64_mb && !x64)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: flags bit 5 (multi-bit weights) belongs to an X64 CONV; op %d is "
                    "not one", fat(r, F_FLAGS), i);
    int wants = op->type == QATRT_OP_ADD || op->type == QATRT_OP_GAP || op->type == QATRT_OP_QUANT || (x64 && prev);
    if (op->type == QATRT_OP_MAXPOOL) wants = op->i32 = prev && qatrt_op_i32(prev);
    if (wants != (prev && qatrt_op_i32(prev)))
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: op %d reads %s; its type takes %s", fat(r, F_IN0), i,
                    !prev ? "the image" : qatrt_op_i32(prev) ? "a stream" : "levels",
                    x64 ? "the image or a stream" : wants ? "a stream (a F32 stage, ADD or GAP)" : "the image or levels");
    if (wants && !x64 && op->type != QATRT_OP_MAXPOOL) return read_i32_op(r, i, op, m);

    if (op->type == QATRT_OP_LUT) {
        if (!op->in_u8) return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: a LUT op must be the first op", fat(r, F_TYPE));
        if (op->cout != op->cin || op->oh != op->h || op->ow != op->w)
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: a LUT op keeps its input's shape", fat(r, F_COUT));
        for (int f = F_KH; f < F_IN0; f++)
            if (r->v[f]) return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: unused field of a LUT op must be 0", fat(r, f));
        const void *b;
        if ((st = blob(r, B_LUT, "lut", (size_t)op->cin * 256, &b))) return st;
        op->lut = b;
        for (int j = 0; j < QNN_NBLOBS; j++)
            if (j != B_LUT && (st = blob(r, j, "unused", 0, &b))) return st;
        return QATRT_OK;
    }
    if ((st = field(r, F_KH, "the kernel height", 1, (uint32_t)op->h, &op->kh)) ||
        (st = field(r, F_KW, "the kernel width", 1, (uint32_t)op->w, &op->kw)) ||
        (st = field(r, F_STRIDE, "the stride", 1, QATRT_MAX_DIM, &op->stride)))
        return st;
    if (op->type == QATRT_OP_MAXPOOL) {
        if ((st = field(r, F_PAD, "the pad of a max pool", 0, 0, &op->pad))) return st;
        if (op->in_u8) return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: a max pool cannot read the image", fat(r, F_FLAGS));
        if (op->cout != op->cin)
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: a max pool keeps the channel count (%d), found %d", fat(r, F_COUT),
                        op->cin, op->cout);
    } else if ((st = field(r, F_PAD, "the pad", 0, (uint32_t)(op->kh < op->kw ? op->kh : op->kw) - 1, &op->pad)))
        return st;
    int eh = (op->h + 2 * op->pad - op->kh) / op->stride + 1, ew = (op->w + 2 * op->pad - op->kw) / op->stride + 1;
    if (op->h + 2 * op->pad < op->kh || op->w + 2 * op->pad < op->kw || op->oh != eh || op->ow != ew)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: output %dx%d does not follow from input %dx%d, kernel %dx%d, stride %d, pad %d (expected %dx%d)",
                    fat(r, F_OH), op->oh, op->ow, op->h, op->w, op->kh, op->kw, op->stride, op->pad, eh, ew);
    const void *b;
    if (op->type == QATRT_OP_MAXPOOL) {
        for (int f = F_KERNEL; f < F_IN0; f++)
            if (r->v[f]) return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: unused field of a max pool must be 0", fat(r, f));
        for (int j = 0; j < QNN_NBLOBS; j++)
            if ((st = blob(r, j, "unused", 0, &b))) return st;
        return QATRT_OK;
    }
    /* CONV */
    int kernel = 0, stage = 0;
    if ((st = field(r, F_KERNEL, "the kernel", 1, QATRT_K_COUNT - 1, &kernel)) ||
        (st = field(r, F_STAGE, "the stage", 1, 3, &stage)))
        return st;
    op->kernel = (qatrt_kernel)kernel;
    op->stage = (qatrt_stage)stage;
    op->K = op->kh * op->kw * op->cin; /* <= 2^28: kh <= h, kw <= w */
    if (op->in_u8 != (op->kernel == QATRT_K_U8I8 || op->kernel == QATRT_K_U8B || op->kernel == QATRT_K_T32 ||
                      ((op->kernel == QATRT_K_I16 || op->kernel == QATRT_K_MB || op->kernel == QATRT_K_X64) && op->in_u8)))
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: kernel '%s' %s the uint8 image", fat(r, F_KERNEL),
                    qatrt_kernel_name(op->kernel), op->in_u8 ? "cannot read" : "reads only");
    op->wrow = qatrt_weight_row(op->kernel, op->kh * op->kw, op->cin);
    op->wbytes = qatrt_weight_bytes(op->kernel, op->cout, op->K);
    if (x64) { /* b-bit weights, b in NTHR; or a multi-bit blob, NTHR 0 */
        if ((st = op->x64_mb ? field(r, F_NTHR, "an X64 op's weight bits (0: its weights are a multi-bit blob)", 0, 0, &op->nthr)
                             : field(r, F_NTHR, "an X64 op's weight bits", 1, 64, &op->nthr)))
            return st;
        op->wbytes = ((size_t)op->cout * (size_t)op->K * (size_t)op->nthr + 7) / 8;
    }
    op->prep = op->kernel == QATRT_K_BIN || op->kernel == QATRT_K_TER || op->kernel == QATRT_K_I8T ||
               op->kernel == QATRT_K_P2 || op->kernel == QATRT_K_U8B || op->kernel == QATRT_K_X64;
    if (op->kernel == QATRT_K_MB || op->x64_mb) {
        if ((st = read_mb(r, op))) return st;
        op->weights = r->base + r->off[B_WEIGHTS];
        if (x64) op->wrow = qatrt_weight_row(QATRT_K_X64, op->kh * op->kw, op->cin); /* expanded to int64 rows */
    } else if ((st = blob(r, B_WEIGHTS, "weights", op->wbytes, &op->weights))) {
        return st;
    }
    if ((st = blob(r, B_BSUM, "weight sums", op->kernel == QATRT_K_I8I8 ? (size_t)op->cout * 4 : 0, &b)))
        return st;
    op->bsum = b;
    /* T32, X64 on the image: the pixel table, int32 per channel and pixel
     * value; X64 on a stream: [F, L] */
    size_t tb = op->kernel == QATRT_K_T32 || (x64 && op->in_u8) ? (size_t)op->cin * 256 * 4 : x64 ? 8 : 0;
    if ((st = blob(r, B_LUT, x64 && !op->in_u8 ? "fixed point" : "pixel table", tb, &b))) return st;
    op->table = b;
    if (x64 && !op->in_u8) {
        size_t fp = (size_t)((const uint8_t *)b - r->base);
        if (op->table[0] < 0 || op->table[0] > 62)
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: the stream's fixed point 2^%d; expected 0..62", fp, op->table[0]);
        if (op->table[1] < 1 || op->table[1] > 62)
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: the inputs' bound 2^%d; expected 1..62", fp + 4, op->table[1]);
    }
    if (x64 && op->stage == QATRT_STAGE_THRESH)
        return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: an X64 op's stage is F32 or LOGITS", fat(r, F_STAGE));
    if (op->stage == QATRT_STAGE_THRESH) {
        if ((st = read_thresh(r, op))) return st;
    } else {
        if (!x64 && (st = field(r, F_NTHR, "the threshold count of a LOGITS or F32 stage", 0, 0, &op->nthr))) return st;
        if (op->stage == QATRT_STAGE_LOGITS && (op->oh != 1 || op->ow != 1))
            return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: a LOGITS stage needs a 1x1 output, found %dx%d", fat(r, F_OH),
                        op->oh, op->ow);
        if ((st = blob(r, B_THR, "thresholds", 0, &b)) || (st = blob(r, B_LEVELS, "levels", 0, &b)) ||
            (st = blob(r, B_FLIP, "flip bits", 0, &b)) ||
            (st = blob(r, B_REQ, "requantization", (size_t)op->cout * 16, &b)))
            return st;
        op->req = b;
        int f32 = op->stage == QATRT_STAGE_F32 || x64;
        for (int c = 0; c < op->cout && f32; c++) {
            const int32_t *q = op->req + 4 * c;
            size_t qat = (size_t)((const uint8_t *)q - r->base);
            if ((op->f32flags & QATC_F32_MUL) && ((uint32_t)q[0] >> 23 & 0xff) == 0xff)
                return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: channel %d's scale is not finite", qat, c);
            if (!(op->f32flags & QATC_F32_MUL) && (q[0] < -400 || q[0] > 400))
                return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: channel %d's scale exponent is %d; expected -400..400", qat, c, q[0]);
            for (int j = 1; j < 4; j++)
                if (((uint32_t)q[j] >> 23 & 0xff) == 0xff)
                    return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: channel %d's parameter is not finite", qat + 4 * (size_t)j, c);
        }
        for (int c = 0; c < op->cout && !f32; c++) {
            const int32_t *q = op->req + 4 * c;
            int64_t bias = (int64_t)((uint64_t)(uint32_t)q[2] | (uint64_t)(uint32_t)q[3] << 32);
            size_t qat = (size_t)((const uint8_t *)q - r->base);
            if (q[1] < 0 || q[1] > 62)
                return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: channel %d's shift is %d; expected 0..62", qat + 4, c, q[1]);
            if (bias > ((int64_t)1 << 61) || bias < -((int64_t)1 << 61))
                return fail(r->err, QATRT_ERR_FORMAT, "byte %zu: channel %d's bias exceeds 2^61", qat + 8, c);
        }
    }
    return QATRT_OK;
}

static int level_fits(int v, qatrt_kernel k)
{
    return k == QATRT_K_BIN ? v == -1 || v == 1 : v >= -1 && v <= 1;
}

qatrt_status qatrt_load(qatrt_model *m, const void *data, size_t size, qatrt_error *err)
{
    const uint8_t *p = data;
    memset(m, 0, sizeof *m);
    if (err) err->msg[0] = 0;
    if (!data) return fail(err, QATRT_ERR_ARG, "no data");
    if ((uintptr_t)data % 8) return fail(err, QATRT_ERR_ARG, "the model's bytes must be 8-byte aligned");
    if (size < QATRT_HEADER_SIZE + 4)
        return fail(err, QATRT_ERR_FORMAT, "byte %zu: the file ends inside the %d-byte header (and checksum)", size,
                    QATRT_HEADER_SIZE);
    if (memcmp(p + QNN_H_MAGIC, QATRT_MAGIC, 8) != 0)
        return fail(err, QATRT_ERR_FORMAT, "byte 0: not a .qnn file (magic \"qat.qnn\\0\" expected)");
    uint32_t version = rd32(p + QNN_H_VERSION);
    if (version < QATRT_VERSION_MIN || version > QATRT_VERSION)
        return fail(err, QATRT_ERR_VERSION, "byte %d: .qnn version %u; this runtime reads versions %d..%d (export the "
                    "model again with this qat)", QNN_H_VERSION, version, QATRT_VERSION_MIN, QATRT_VERSION);
    uint64_t fsize = rd64(p + QNN_H_FILE_SIZE);
    if (fsize != size)
        return fail(err, QATRT_ERR_FORMAT, "byte %d: the header says the file has %llu bytes; it has %zu (truncated or padded?)",
                    QNN_H_FILE_SIZE, (unsigned long long)fsize, size);
    uint32_t stored = rd32(p + size - 4), crc = qatrt_crc32(0, p, size - 4);
    if (stored != crc)
        return fail(err, QATRT_ERR_CHECKSUM, "byte %zu: CRC-32 is %08x; the bytes before it give %08x (the file is damaged)",
                    size - 4, stored, crc);
    reader r = {.base = p, .err = err, .version = version};
    qatrt_status st;
    int hsz = 0, osz = 0, v4 = version >= 4;
    if ((st = hfield(&r, QNN_H_HEADER_SIZE, "the header size", QATRT_HEADER_SIZE, QATRT_HEADER_SIZE, &hsz)) ||
        (st = hfield(&r, QNN_H_OP_SIZE, v4 ? "the op record's fixed size" : "the op record size",
                     v4 ? QATRT_OP4_SIZE : QATRT_OP_SIZE, v4 ? QATRT_OP4_SIZE : QATRT_OP_SIZE, &osz)) ||
        (st = hfield(&r, QNN_H_NOPS, "the op count", 1, QATRT_MAX_OPS, &m->nops)) ||
        (st = hfield(&r, QNN_H_C, "the image channels", 1, QATRT_MAX_DIM, &m->c)) ||
        (st = hfield(&r, QNN_H_H, "the image height", 1, QATRT_MAX_DIM, &m->h)) ||
        (st = hfield(&r, QNN_H_W, "the image width", 1, QATRT_MAX_DIM, &m->w)) ||
        (st = hfield(&r, QNN_H_NCLASS, "the class count", 1, QATRT_MAX_DIM, &m->nclass)))
        return st;
    for (size_t z = QNN_H_RESERVED; z < QATRT_HEADER_SIZE; z++)
        if (p[z]) return fail(err, QATRT_ERR_FORMAT, "byte %zu: reserved header byte is %u; expected 0", z, p[z]);
    /* where each record starts: v2, v3 at a fixed stride; v4 after the
     * previous one's blob sizes */
    size_t rec[QATRT_MAX_OPS], table_end = QATRT_HEADER_SIZE;
    for (int i = 0; i < m->nops; i++) {
        rec[i] = table_end;
        if (!v4) {
            table_end += QATRT_OP_SIZE;
            continue;
        }
        if (table_end + QATRT_OP4_SIZE > size - 4)
            return fail(err, QATRT_ERR_FORMAT, "byte %zu: op %d's record runs past the checksum at byte %zu (the header says %d ops)",
                        table_end, i, size - 4, m->nops);
        uint32_t mask = rd16(p + table_end + QNN_OP4_BLOBS);
        if (mask >> QNN_NBLOBS)
            return fail(err, QATRT_ERR_FORMAT, "byte %zu: op %d's blob mask is 0x%x; bits %d..15 must be 0", table_end + QNN_OP4_BLOBS,
                        i, mask, QNN_NBLOBS);
        for (table_end += QATRT_OP4_SIZE; mask; mask &= mask - 1) table_end += 4;
    }
    if (table_end > size - 4)
        return fail(err, QATRT_ERR_FORMAT, "byte %d: %d op records need %zu bytes; the file has %zu before its checksum",
                    QNN_H_NOPS, m->nops, table_end, size - 4);
    r.lo = r.cur = table_end;
    r.hi = size - 4;
    for (int i = 0; i < m->nops; i++) {
        if ((st = read_op(&r, i, rec[i], &m->ops[i], m))) return st;
        if (m->ops[i].f32flags && !(m->ops[i].type == QATRT_OP_CONV && (m->ops[i].stage == QATRT_STAGE_F32 ||
                                                                         m->ops[i].kernel == QATRT_K_X64)) &&
            !(m->ops[i].type == QATRT_OP_ADD && m->ops[i].f32flags == QATC_F32_RELU))
            return fail(err, QATRT_ERR_FORMAT, "byte %zu: flags %d; bits 1..4 belong to a F32 stage (an ADD takes bit 3, its ReLU)",
                        fpos(&r, rec[i], F_FLAGS), m->ops[i].f32flags | m->ops[i].in_u8);
        if (m->ops[i].in0 < 0 && m->ops[i].type == QATRT_OP_MAXPOOL)
            return fail(err, QATRT_ERR_FORMAT, "byte %zu: a max pool cannot read the image",
                        rec[i]);
        /* the binary and ternary kernels read +-1 / {-1, 0, 1} inputs: the
         * levels the previous op can produce must be of that set; and no
         * accumulator may overflow: K max|input| max|weight| < 2^31 */
        qatrt_op *op = &m->ops[i];
        if (op->type == QATRT_OP_CONV) {
            int64_t amax = 255;
            if (op->kernel == QATRT_K_X64) { /* int64: max|input| max_c sum_k |w_ck| <= 2^62 */
                int64_t wb = weight_bound(op), lim = (int64_t)1 << 62;
                amax = 0;
                for (int v = 0; op->in_u8 && v < op->cin * 256; v++) {
                    int64_t t = op->table[v] < 0 ? -(int64_t)op->table[v] : op->table[v];
                    if (t > amax) amax = t;
                }
                if (!op->in_u8) amax = ((int64_t)1 << op->table[1]) - 1;
                if (wb && amax && (wb >= lim || amax > lim / wb))
                    return fail(err, QATRT_ERR_FORMAT, "byte %zu: inputs up to %lld times int64 weights whose rows sum to %lld "
                                "in magnitude could exceed 2^62", fpos(&r, rec[i], F_CIN), (long long)amax, (long long)wb);
                op->accmax = amax * wb;
                continue;
            }
            if (op->kernel == QATRT_K_T32) { /* its table's values, not the pixels */
                amax = 0;
                for (int v = 0; v < op->cin * 256; v++) {
                    int64_t t = op->table[v] < 0 ? -(int64_t)op->table[v] : op->table[v];
                    if (t > amax) amax = t;
                }
            }
            if (!op->in_u8) {
                int k = producer(m, i);
                amax = 0;
                const int8_t *lv = m->ops[k].type == QATRT_OP_LUT ? m->ops[k].lut : m->ops[k].levels;
                int nl = m->ops[k].type == QATRT_OP_LUT ? m->ops[k].cin * 256 : m->ops[k].nthr + 1;
                for (int v = 0; v < nl; v++) amax = lv[v] < -amax ? -lv[v] : lv[v] > amax ? lv[v] : amax;
            }
            op->accmax = (int64_t)op->K * amax * weight_bound(op);
            if (op->accmax > INT32_MAX)
                return fail(err, QATRT_ERR_FORMAT, "byte %zu: K = %d inputs up to %lld with the '%s' kernel's weights could overflow the int32 accumulator",
                            fpos(&r, rec[i], F_CIN), op->K, (long long)amax,
                            qatrt_kernel_name(op->kernel));
        }
        if (op->type == QATRT_OP_CONV && (op->kernel == QATRT_K_BIN || op->kernel == QATRT_K_TER)) {
            int k = producer(m, i);
            int bad = k < 0;
            if (!bad && m->ops[k].type == QATRT_OP_LUT)
                for (int v = 0; v < m->ops[k].cin * 256 && !bad; v++) bad = !level_fits(m->ops[k].lut[v], op->kernel);
            else if (!bad)
                for (int j = 0; j <= m->ops[k].nthr && !bad; j++) bad = !level_fits(m->ops[k].levels[j], op->kernel);
            if (bad)
                return fail(err, QATRT_ERR_FORMAT, "byte %zu: op %d's '%s' kernel needs %s inputs; op %d produces other levels",
                            fpos(&r, rec[i], F_KERNEL), i, qatrt_kernel_name(op->kernel),
                            op->kernel == QATRT_K_BIN ? "+-1" : "{-1, 0, 1}", k);
        }
    }
    const qatrt_op *last = &m->ops[m->nops - 1];
    if (last->type != QATRT_OP_CONV || last->stage != QATRT_STAGE_LOGITS || last->cout != m->nclass)
        return fail(err, QATRT_ERR_FORMAT, "byte %zu: the last op must be a CONV with a LOGITS stage giving %d classes",
                    rec[m->nops - 1], m->nclass);
    for (int i = 0; i + 1 < m->nops; i++)
        if (m->ops[i].type == QATRT_OP_CONV && m->ops[i].stage == QATRT_STAGE_LOGITS)
            return fail(err, QATRT_ERR_FORMAT, "byte %zu: only the last op may give logits",
                        fpos(&r, rec[i], F_STAGE));
    /* v4: the blobs fill the file up to its checksum */
    if (v4 && (r.cur + QATRT_ALIGN4 - 1) / QATRT_ALIGN4 * QATRT_ALIGN4 != r.hi)
        return fail(err, QATRT_ERR_FORMAT, "byte %zu: the last blob ends here; the checksum is at byte %zu (expected the next "
                    "multiple of %d)", r.cur, r.hi, QATRT_ALIGN4);
    for (size_t z = r.cur; v4 && z < r.hi; z++)
        if (p[z]) return fail(err, QATRT_ERR_FORMAT, "byte %zu: padding byte is %u; expected 0", z, p[z]);
    if ((st = assign_slots(m, rec, err))) return st;
    for (int i = 0; i < m->nops; i++) {
        qatrt_op *op = &m->ops[i];
        if (op->type != QATRT_OP_CONV) continue;
        /* panels for the int8 kernels that read them: not for a small K,
         * which u8i8gemm runs with all of B in registers */
        if ((op->kernel == QATRT_K_U8I8 || op->kernel == QATRT_K_I8I8) && op->K > QATRT_I8_SMALL_K) {
            op->pan = 1;
            op->pan_off = m->prep_size;
            m->prep_size += (qatrt_i8panel_bytes(op->cout, op->K) + QATRT_ALIGN - 1) / QATRT_ALIGN * QATRT_ALIGN;
        }
        /* a T32 table of int16 values times a power of two: int16 operands */
        if (op->kernel == QATRT_K_T32) {
            uint32_t bits = 0;
            int32_t big = 0;
            for (int v = 0; v < op->cin * 256; v++) bits |= (uint32_t)op->table[v];
            while (op->t16_shift < 24 && bits && !(bits >> op->t16_shift & 1)) op->t16_shift++;
            for (int v = 0; v < op->cin * 256; v++) {
                int32_t t = (op->table[v] < 0 ? -op->table[v] : op->table[v]) >> op->t16_shift;
                big = t > big ? t : big;
            }
            op->t16 = big <= 32767;
            if (op->t16) {
                op->t16_off = m->prep_size;
                m->prep_size += (((size_t)op->cin * 256 + (size_t)op->cout * (size_t)op->K) * 2 + QATRT_ALIGN - 1) /
                                QATRT_ALIGN * QATRT_ALIGN;
            }
        }
        /* a padded binary layer's tap sums; a F32 stage's table */
        op->padfix = op->kernel == QATRT_K_BIN && op->pad > 0;
        if (op->padfix) {
            op->padfix_off = m->prep_size;
            m->prep_size += ((size_t)op->cout * op->kh * op->kw * 4 + QATRT_ALIGN - 1) / QATRT_ALIGN * QATRT_ALIGN;
        }
        op->f32tab = op->stage == QATRT_STAGE_F32 && op->kernel != QATRT_K_X64 && op->accmax <= QATRT_F32_TABLE_MAX;
        if (op->f32tab) {
            op->f32tab_off = m->prep_size;
            m->prep_size += ((size_t)op->cout * (size_t)(2 * op->accmax + 1) * 4 + QATRT_ALIGN - 1) / QATRT_ALIGN * QATRT_ALIGN;
        }
        if (!op->prep) continue;
        op->prep_off = m->prep_size;
        size_t bytes = op->kernel == QATRT_K_BIN   ? qatrt_bpanel_words(op->cout, (int)(op->wrow / 8)) * 8
                       : op->kernel == QATRT_K_U8B ? qatrt_u8b_packed_size(op->cout, op->K)
                                                   : op->wrow * (size_t)op->cout;
        m->prep_size += (bytes + QATRT_ALIGN - 1) / QATRT_ALIGN * QATRT_ALIGN;
    }
    m->data = data;
    m->size = size;
    m->crc = crc;
    return QATRT_OK;
}
