/* gradcomm.c: the gradient exchange's codecs (gradcomm.h). A payload holds
 * the per-block floats first (int8: scales, 1bit: mean magnitudes), then the
 * codes, padded to 4 bytes; the same bytes decode the same on every rank. */
#include "gradcomm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const qat_gradcomm_names[QAT_GRADCOMM_COUNT] = {"fp32", "fp16", "int8", "1bit"};

static size_t nblocks(size_t n) { return (n + QAT_GRADCOMM_BLOCK - 1) / QAT_GRADCOMM_BLOCK; }
static size_t round4(size_t b) { return (b + 3) & ~(size_t)3; }

size_t qat_gradcomm_bytes(qat_gradcomm_kind k, size_t n)
{
    switch (k) {
    case QAT_GRADCOMM_FP16: return round4(2 * n);
    case QAT_GRADCOMM_INT8: return 4 * nblocks(n) + round4(n);
    case QAT_GRADCOMM_1BIT: return 4 * nblocks(n) + round4((n + 7) / 8);
    default: return 4 * n;
    }
}

uint16_t qat_gradcomm_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00u; /* NaN */
    if (ax >= 0x477fe000u) return sign | 0x7bffu; /* 65504 and beyond (Inf too) saturate */
    if (ax < 0x38800000u) { /* below 2^-14: a subnormal half, h * 2^-24, h = the float's mantissa shifted */
        uint32_t e = ax >> 23;
        if (e < 102) return sign; /* below 2^-25 */
        uint32_t m = (ax & 0x7fffffu) | 0x800000u, sh = 126 - e;
        uint32_t h = m >> sh, rem = m & ((1u << sh) - 1), half = 1u << (sh - 1);
        if (rem > half || (rem == half && (h & 1u))) h++; /* ties to even; nearbyintf is 10x slower */
        return sign | (uint16_t)h;
    }
    uint32_t h = ((((ax >> 23) - 127 + 15) << 10) | ((ax & 0x7fffffu) >> 13));
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* a carry into the exponent is right */
    return sign | (uint16_t)h;
}

float qat_gradcomm_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-8f; /* 2^-24 */
        return sign ? -v : v;
    }
    uint32_t bits = e == 31 ? sign | 0x7f800000u | (m << 13) : sign | ((e - 15 + 127) << 23) | (m << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* v[0..len): max |v| (int8) or mean |v| (1bit); non-finite when v has a NaN or Inf */
static float block_stat(qat_gradcomm_kind k, const float *v, size_t len)
{
    float m = 0;
    double s = 0;
    for (size_t i = 0; i < len; i++) {
        float a = fabsf(v[i]);
        if (!(a <= m)) m = a; /* a NaN sticks */
        s += a;
    }
    if (!isfinite(m)) return NAN;
    return k == QAT_GRADCOMM_INT8 ? m / 127.0f : (float)(s / (double)len);
}

void qat_gradcomm_encode(qat_gradcomm_kind k, const float *g, float *e, size_t n, void *out)
{
    unsigned char *o = out;
    if (k == QAT_GRADCOMM_FP32) {
        memcpy(o, g, n * sizeof *g);
        return;
    }
    memset(o, 0, qat_gradcomm_bytes(k, n));
    size_t nb = nblocks(n);
    unsigned char *codes = o + (k == QAT_GRADCOMM_FP16 ? 0 : 4 * nb);
    float v[QAT_GRADCOMM_BLOCK];
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * QAT_GRADCOMM_BLOCK, len = n - lo < QAT_GRADCOMM_BLOCK ? n - lo : QAT_GRADCOMM_BLOCK;
        int finite = 1;
        for (size_t i = 0; i < len; i++) {
            v[i] = e ? g[lo + i] + e[lo + i] : g[lo + i];
            finite &= isfinite(v[i]) != 0;
        }
        float dec[QAT_GRADCOMM_BLOCK];
        if (k == QAT_GRADCOMM_FP16) {
            for (size_t i = 0; i < len; i++) {
                uint16_t h = finite ? qat_gradcomm_f16(v[i]) : 0x7e00u;
                memcpy(codes + 2 * (lo + i), &h, 2);
                dec[i] = qat_gradcomm_f32(h);
            }
        } else {
            float s = finite ? block_stat(k, v, len) : NAN;
            memcpy(o + 4 * b, &s, 4);
            for (size_t i = 0; i < len; i++) {
                if (k == QAT_GRADCOMM_INT8) {
                    long q = s > 0 ? lrintf(v[i] / s) : 0;
                    q = q > 127 ? 127 : q < -127 ? -127 : q;
                    codes[lo + i] = (unsigned char)(int8_t)q;
                    dec[i] = (float)q * s;
                } else {
                    int neg = v[i] < 0;
                    codes[(lo + i) >> 3] |= (unsigned char)(neg << ((lo + i) & 7));
                    dec[i] = neg ? -s : s;
                }
            }
        }
        if (e && finite)
            for (size_t i = 0; i < len; i++) e[lo + i] = v[i] - dec[i];
    }
}

void qat_gradcomm_decode_add(qat_gradcomm_kind k, const void *in, size_t n, float *acc)
{
    const unsigned char *p = in;
    if (k == QAT_GRADCOMM_FP32) {
        for (size_t i = 0; i < n; i++) {
            float v;
            memcpy(&v, p + 4 * i, 4);
            acc[i] += v;
        }
        return;
    }
    if (k == QAT_GRADCOMM_FP16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            acc[i] += qat_gradcomm_f32(h);
        }
        return;
    }
    size_t nb = nblocks(n);
    const unsigned char *codes = p + 4 * nb;
    for (size_t b = 0; b < nb; b++) {
        float s;
        memcpy(&s, p + 4 * b, 4);
        size_t lo = b * QAT_GRADCOMM_BLOCK, hi = lo + QAT_GRADCOMM_BLOCK < n ? lo + QAT_GRADCOMM_BLOCK : n;
        for (size_t i = lo; i < hi; i++) {
            if (k == QAT_GRADCOMM_INT8) acc[i] += (float)(int8_t)codes[i] * s;
            else acc[i] += (codes[i >> 3] >> (i & 7)) & 1 ? -s : s;
        }
    }
}

qat_status qat_gradcomm_init(qat_gradcomm *c, qat_gradcomm_kind k, size_t n, int ranks)
{
    memset(c, 0, sizeof *c);
    c->kind = k;
    c->ranks = ranks;
    c->n = n;
    c->bytes = qat_gradcomm_bytes(k, n);
    c->block = malloc((n ? n : 1) * sizeof *c->block);
    if (k != QAT_GRADCOMM_FP32) { /* fp32 sums the block in place */
        c->resid = calloc(n ? n : 1, sizeof *c->resid);
        c->enc = malloc(c->bytes ? c->bytes : 1);
        c->all = malloc((size_t)ranks * c->bytes + 1);
    }
    if (!c->block || (k != QAT_GRADCOMM_FP32 && (!c->resid || !c->enc || !c->all))) {
        qat_gradcomm_free(c);
        return qat_error_set(QAT_ERR_MEMORY, "gradient exchange: out of memory for %zu values x %d ranks", n, ranks);
    }
    return QAT_OK;
}

void qat_gradcomm_free(qat_gradcomm *c)
{
    free(c->block);
    free(c->resid);
    free(c->enc);
    free(c->all);
    memset(c, 0, sizeof *c);
}
