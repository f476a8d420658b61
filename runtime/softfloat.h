/* softfloat.h: IEEE 754 binary32 and binary64 arithmetic, round to nearest
 * even, with integer operations only (the runtime is compiled with
 * -mgeneral-regs-only). A model's residual stream (the float tensor a
 * shortcut adds to) is kept as the trained model computes it, in float32,
 * so the integer graph decides exactly as the float one: the stream's
 * batchnorm, adds and global pool are these functions, operation for
 * operation, in the float model's order.
 *
 * Values are handled as bits (uint32_t, uint64_t); a stream tensor holds
 * int32 keys, qatc_key(bits): negative floats map below positive ones, so
 * a key compares as its float does (+0 and -0 both 0), and a quantizer on
 * the stream is thresholds on keys. No NaN is ever made by a model (the
 * exporter refuses NaN and infinite parameters); infinities pass through.
 *
 * C99, nothing but <stdint.h>; qatc_ names, which the C source export
 * renames with the model's prefix (it is inlined into runtime/refinterp.c). */
#ifndef QATC_SOFTFLOAT_H
#define QATC_SOFTFLOAT_H

#include <stdint.h>

/* a format: precision P (bits of the significand, the hidden one
 * included), the unit of the smallest subnormal 2^umin, the exponent
 * field of infinity */
typedef struct {
    int P, umin, einf;
} qatc_fmt;

static const qatc_fmt qatc_f32 = {24, -149, 255};
static const qatc_fmt qatc_f64 = {53, -1074, 2047};

static inline int qatc_bitlen(uint64_t m)
{
    int n = 0;
    if (m >> 32) n += 32, m >>= 32;
    if (m >> 16) n += 16, m >>= 16;
    if (m >> 8) n += 8, m >>= 8;
    if (m >> 4) n += 4, m >>= 4;
    if (m >> 2) n += 2, m >>= 2;
    if (m >> 1) n += 1, m >>= 1;
    return n + (int)m;
}

/* (-1)^sign (m + t) 2^e rounded to the format, t in (0, 1) when sticky,
 * else 0 (sticky only with m of at least P + 2 bits) */
static inline uint64_t qatc_pack(qatc_fmt f, int sign, uint64_t m, int e, int sticky)
{
    uint64_t s = (uint64_t)sign << (f.P == 24 ? 31 : 63), top = (uint64_t)1 << (f.P - 1);
    int L, r;
    if (!m) return s;
    L = qatc_bitlen(m);
    r = L - f.P > f.umin - e ? L - f.P : f.umin - e; /* right shift to P bits, not below the subnormal unit */
    if (r > 0) {
        if (r > 64) {
            m = 0;
        } else {
            uint64_t rem = r == 64 ? m : m & (((uint64_t)1 << r) - 1), half = (uint64_t)1 << (r - 1);
            m = r == 64 ? 0 : m >> r;
            if (rem > half || (rem == half && (sticky || (m & 1)))) m++;
        }
        e += r;
    } else if (r < 0) {
        m <<= -r;
        e += r;
    }
    if (m >> f.P) m >>= 1, e++; /* the rounding carried into a new bit */
    if (!(m & top)) return s | m; /* subnormal (e is umin) or zero */
    if (e - f.umin + 1 >= f.einf) return s | (uint64_t)f.einf << (f.P - 1);
    return s | (uint64_t)(e - f.umin + 1) << (f.P - 1) | (m & (top - 1));
}

/* bits -> sign, significand, exponent of its unit; returns 1 for an infinity */
static inline int qatc_unpack(qatc_fmt f, uint64_t b, int *sign, uint64_t *m, int *e)
{
    int ebits = f.P == 24 ? 8 : 11, field = (int)(b >> (f.P - 1) & (((uint64_t)1 << ebits) - 1));
    *sign = (int)(b >> (f.P + ebits - 1) & 1);
    *m = b & (((uint64_t)1 << (f.P - 1)) - 1);
    *e = f.umin;
    if (field == f.einf) return 1;
    if (field) *m |= (uint64_t)1 << (f.P - 1), *e = field - 1 + f.umin;
    return 0;
}

static inline uint64_t qatc_fadd(qatc_fmt f, uint64_t a, uint64_t b)
{
    int sa, sb, ea, eb, d, sticky = 0, g = 62 - f.P;
    uint64_t ma, mb, m;
    if (qatc_unpack(f, a, &sa, &ma, &ea)) return a;
    if (qatc_unpack(f, b, &sb, &mb, &eb)) return b;
    if (!ma && !mb) return sa && sb ? a : 0; /* +0 unless both are -0 */
    if (!mb) return a;
    if (!ma) return b;
    if (ea < eb || (ea == eb && ma < mb)) { /* |a| >= |b| */
        uint64_t t = ma;
        int u = ea;
        ma = mb, mb = t, ea = eb, eb = u;
        u = sa, sa = sb, sb = u;
    }
    ma <<= g, mb <<= g; /* g guard bits: the larger's top at bit 61 */
    d = ea - eb;
    if (d >= 64) {
        sticky = 1, mb = 0;
    } else if (d) {
        sticky = (mb & (((uint64_t)1 << d) - 1)) != 0;
        mb >>= d;
    }
    if (sa == sb) {
        m = ma + mb;
    } else {
        m = ma - mb - (uint64_t)sticky; /* a sticky remainder was subtracted too: m + (1 - t) */
        if (!m && !sticky) return 0; /* x - x = +0 */
    }
    return qatc_pack(f, sa, m, ea - g, sticky);
}

/* leading zeros of a nonzero 32-bit value */
static inline int qatc_clz32(uint32_t v)
{
#ifdef __GNUC__
    return __builtin_clz(v);
#else
    return 32 - qatc_bitlen(v);
#endif
}

/* float32 a + b: both normal (the common case) in 32-bit integers, six
 * guard bits with the sticky bit jammed into the last; anything else, and
 * a result leaving the normal range, by qatc_fadd */
static inline uint32_t qatc_f32_add(uint32_t a, uint32_t b)
{
    uint32_t aa = a & 0x7fffffffu, bb = b & 0x7fffffffu, ma, mb, m, rem;
    int ea, eb, d;
    if (aa < bb) {
        uint32_t t = a;
        a = b, b = t, t = aa, aa = bb, bb = t;
    }
    ea = (int)(aa >> 23), eb = (int)(bb >> 23);
    if (eb == 0 || ea == 255) return (uint32_t)qatc_fadd(qatc_f32, a, b);
    ma = ((aa & 0x7fffffu) | 0x800000u) << 6, mb = ((bb & 0x7fffffu) | 0x800000u) << 6;
    d = ea - eb;
    if (d > 31) mb = 1;
    else if (d) mb = (mb >> d) | ((mb & ((1u << d) - 1)) != 0);
    if ((a ^ b) >> 31) {
        int s;
        m = ma - mb;
        if (!m) return 0;
        s = qatc_clz32(m) - 2; /* the top back to bit 29 */
        if (s >= ea) return (uint32_t)qatc_fadd(qatc_f32, a, b);
        m <<= s, ea -= s;
    } else {
        m = ma + mb;
        if (m >> 30) m = (m >> 1) | (m & 1), ea++;
    }
    rem = m & 63, m >>= 6;
    if (rem > 32 || (rem == 32 && (m & 1))) m++;
    if (m >> 24) m >>= 1, ea++;
    if (ea >= 255) return (a & 0x80000000u) | 0x7f800000u;
    return (a & 0x80000000u) | (uint32_t)ea << 23 | (m & 0x7fffffu);
}

static inline uint32_t qatc_f32_mul(uint32_t a, uint32_t b)
{
    int sa, sb, ea, eb, ia, ib;
    uint64_t ma, mb;
    {   /* both normal, the product too: 24 x 24 bits, one rounding */
        int xa = (int)(a >> 23 & 0xff), xb = (int)(b >> 23 & 0xff), x = xa + xb - 127;
        if (xa && xb && xa != 255 && xb != 255 && x > 0 && x < 253) {
            uint64_t p = (uint64_t)((a & 0x7fffffu) | 0x800000u) * ((b & 0x7fffffu) | 0x800000u);
            int sh = (int)(p >> 47) + 23; /* p in [2^46, 2^48) */
            uint64_t q = p >> sh, rem = p & (((uint64_t)1 << sh) - 1), half = (uint64_t)1 << (sh - 1);
            x += sh - 23;
            if (rem > half || (rem == half && (q & 1))) q++;
            if (q >> 24) q >>= 1, x++;
            if (x < 255) return ((a ^ b) & 0x80000000u) | (uint32_t)x << 23 | (uint32_t)(q & 0x7fffffu);
        }
    }
    ia = qatc_unpack(qatc_f32, a, &sa, &ma, &ea);
    ib = qatc_unpack(qatc_f32, b, &sb, &mb, &eb);
    if (ia || ib) return (uint32_t)(sa ^ sb) << 31 | 0x7f800000u;
    return (uint32_t)qatc_pack(qatc_f32, sa ^ sb, ma * mb, ea + eb, 0);
}

/* acc 2^e as one float32 rounding */
static inline uint32_t qatc_f32_scaled(int64_t acc, int e)
{
    if (acc != 0 && acc > -16777216 && acc < 16777216) { /* exact: 24 bits */
        uint32_t u = (uint32_t)(acc < 0 ? -acc : acc);
        int s = qatc_clz32(u) - 8, x = e + 150 - s; /* u << s has its top at bit 23 */
        if (x > 0 && x < 255) return (acc < 0 ? 0x80000000u : 0) | (uint32_t)x << 23 | ((u << s) & 0x7fffffu);
    }
    return (uint32_t)qatc_pack(qatc_f32, acc < 0, acc < 0 ? (uint64_t)0 - (uint64_t)acc : (uint64_t)acc, e, 0);
}

static inline uint64_t qatc_f32_to_f64(uint32_t a)
{
    int s, e;
    uint64_t m;
    if (qatc_unpack(qatc_f32, a, &s, &m, &e)) return (uint64_t)s << 63 | (uint64_t)0x7ff << 52;
    return qatc_pack(qatc_f64, s, m, e, 0);
}

/* the double a 2^-k as float32: (float)(a / 2^k), the division exact */
static inline uint32_t qatc_f64_to_f32_scaled(uint64_t a, int k)
{
    int s, e;
    uint64_t m;
    if (qatc_unpack(qatc_f64, a, &s, &m, &e)) return (uint32_t)s << 31 | 0x7f800000u;
    return (uint32_t)qatc_pack(qatc_f32, s, m, e - k, 0);
}

/* float32 bits <-> stream keys (order-preserving; -0 -> 0) */
static inline int32_t qatc_key(uint32_t b)
{
    return (b >> 31) ? -(int32_t)(b & 0x7fffffffu) : (int32_t)b;
}

static inline uint32_t qatc_unkey(int32_t k) { return k < 0 ? 0x80000000u | (uint32_t)(-(int64_t)k) : (uint32_t)k; }

/* ---- the stream ops, shared by the runtime's interpreter and the
 * reference (so they cannot differ) ---- */

/* a F32 stage's flags (the op's FLAGS bits 1..3) */
#define QATC_F32_BIAS 2
#define QATC_F32_BN 4
#define QATC_F32_RELU 8
#define QATC_F32_MUL 16 /* q[0] is a float32 scale, not an exponent */

/* channel params q = [e, bias, a, b] (float32 bits): x = acc 2^e (or, with
 * QATC_F32_MUL, float32(acc) times the float32 q[0]); x + bias; x a + b;
 * max(x, 0) as the flags say, each a float32 operation (acc: an int32
 * accumulator, or an X64 op's int64 one, exact, rounded here once) */
static inline int32_t qatc_f32_stage(const int32_t *q, int flags, int64_t acc)
{
    uint32_t x = (flags & QATC_F32_MUL) ? qatc_f32_mul(qatc_f32_scaled(acc, 0), (uint32_t)q[0]) : qatc_f32_scaled(acc, q[0]);
    if (flags & QATC_F32_BIAS) x = qatc_f32_add(x, (uint32_t)q[1]);
    if (flags & QATC_F32_BN) x = qatc_f32_add(qatc_f32_mul(x, (uint32_t)q[2]), (uint32_t)q[3]);
    if ((flags & QATC_F32_RELU) && (x >> 31)) x = 0;
    return qatc_key(x);
}

/* a stream's value in fixed point, as an X64 op reads it: the float32 of
 * key k times 2^F rounded to the nearest integer (ties to even),
 * saturated to +-(2^L - 1) (an infinity too); 0 <= F, 1 <= L <= 62 */
static inline int64_t qatc_key_fixed(int32_t k, int F, int L)
{
    int s, e, sh;
    uint64_t m, v, lim = ((uint64_t)1 << L) - 1;
    if (qatc_unpack(qatc_f32, qatc_unkey(k), &s, &m, &e)) v = lim;
    else if (!m) return 0;
    else if ((sh = e + F) >= 0) v = qatc_bitlen(m) + sh > L ? lim : m << sh;
    else if (sh < -25) v = 0; /* m < 2^24: below half a unit */
    else {
        uint64_t rem = m & (((uint64_t)1 << -sh) - 1), half = (uint64_t)1 << (-sh - 1);
        v = m >> -sh;
        if (rem > half || (rem == half && (v & 1))) v++;
        if (v > lim) v = lim;
    }
    return s ? -(int64_t)v : (int64_t)v;
}

static inline int32_t qatc_key_add(int32_t a, int32_t b) { return qatc_key(qatc_f32_add(qatc_unkey(a), qatc_unkey(b))); }

/* the mean of n = 2^k keys (stride apart) as the float model's global
 * pool computes it: a double sum in order, divided, rounded to float */
static inline int32_t qatc_key_mean(const int32_t *x, long n, long stride, int k)
{
    uint64_t s = 0;
    long i;
    for (i = 0; i < n; i++) s = qatc_fadd(qatc_f64, s, qatc_f32_to_f64(qatc_unkey(x[i * stride])));
    return qatc_key(qatc_f64_to_f32_scaled(s, k));
}

#endif
