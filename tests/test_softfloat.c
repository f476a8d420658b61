/* test_softfloat.c: runtime/softfloat.h, the integer float32/float64
 * arithmetic of residual streams, against this machine's FPU (IEEE 754,
 * round to nearest even): adds (same and distant exponents, cancellation,
 * subnormals, signed zeros, infinities), products, int x 2^e -> float32,
 * float32 -> float64, float64 / 2^k -> float32, the keys' order, and the
 * stream ops built on them (F32 stage, add, the global pool's mean). */
#include <math.h>

#include "kern.h"
#include "qat_test.h"
#include "softfloat.h"

static uint64_t seed = 20261205;

static uint64_t rnd(void) { return qat_test_splitmix64(&seed); }

static float f_of(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static uint32_t b_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static uint64_t d_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

/* float32 bits of every kind: near exponents (cancellation), subnormals,
 * zeros, infinities, anything finite */
static uint32_t any_f32(void)
{
    uint32_t b = (uint32_t)rnd();
    switch (rnd() % 8) {
    case 0: return (b & 0x807fffffu) | (uint32_t)(rnd() % 3) << 23; /* subnormal or the smallest normals */
    case 1: return b & 0x80000000u;                                  /* +-0 */
    case 2: return (b & 0x80000000u) | 0x7f800000u;                  /* +-inf */
    case 3: case 4: case 5: return (b & 0x807fffffu) | (uint32_t)(120 + rnd() % 16) << 23;
    default: return ((b >> 23 & 0xff) == 0xff) ? b & 0xbfffffffu : b;
    }
}

int main(void)
{
    long n = 3000000, bad[8] = {0};
    for (long i = 0; i < n; i++) {
        uint32_t a = any_f32(), b = any_f32(), c = any_f32();
        float fa = f_of(a), fb = f_of(b), fs = fa + fb, fp = fa * fb;
        if (!isnan(fs) && qatc_f32_add(a, b) != b_of(fs) && bad[0]++ < 3)
            printf("add %08x + %08x: FPU %08x, soft %08x\n", a, b, b_of(fs), qatc_f32_add(a, b));
        if (!isnan(fp) && qatc_f32_mul(a, b) != b_of(fp) && bad[1]++ < 3)
            printf("mul %08x * %08x: FPU %08x, soft %08x\n", a, b, b_of(fp), qatc_f32_mul(a, b));
        if (!isnan(fa) && qatc_f32_to_f64(a) != d_bits((double)fa) && bad[2]++ < 3) printf("f32->f64 %08x\n", a);
        /* doubles with digits below float32's: sums of products */
        double da = (double)fa * 1.1, db = (double)fb * 1.37, ds = da + db;
        if (!isnan(ds) && qatc_fadd(qatc_f64, d_bits(da), d_bits(db)) != d_bits(ds) && bad[3]++ < 3)
            printf("f64 add %.17g + %.17g\n", da, db);
        int k = (int)(rnd() % 12);
        float fk = (float)(da / ldexp(1.0, k));
        if (!isnan(fk) && qatc_f64_to_f32_scaled(d_bits(da), k) != b_of(fk) && bad[4]++ < 3)
            printf("f64 %.17g / 2^%d -> f32: FPU %08x, soft %08x\n", da, k, b_of(fk), qatc_f64_to_f32_scaled(d_bits(da), k));
        int32_t acc = (int32_t)rnd() >> (rnd() % 31);
        int e = (int)(rnd() % 200) - 170;
        float fe = (float)((double)acc * ldexp(1.0, e));
        if (qatc_f32_scaled(acc, e) != b_of(fe) && bad[5]++ < 3)
            printf("%d * 2^%d -> f32: FPU %08x, soft %08x\n", acc, e, b_of(fe), qatc_f32_scaled(acc, e));
        float fc = f_of(c);
        if ((fa < fc) != (qatc_key(a) < qatc_key(c)) || (fa == fc) != (qatc_key(a) == qatc_key(c)) ||
            ((a & 0x7fffffffu) && qatc_unkey(qatc_key(a)) != a)) {
            if (bad[6]++ < 3) printf("keys of %08x, %08x\n", a, c);
        }
        /* the F32 stage: acc 2^e + bias, * a + b, ReLU, each rounded */
        if ((a >> 23 & 0xff) != 0xff && (b >> 23 & 0xff) != 0xff && (c >> 23 & 0xff) != 0xff) {
            int32_t q[4] = {e > 100 ? 0 : e, (int32_t)a, (int32_t)b, (int32_t)c};
            float x = (float)((double)acc * ldexp(1.0, q[0]));
            x = x + fa;
            x = x * fb;
            x = x + fc;
            x = x > 0.0f ? x : 0.0f;
            if (!isnan(x) && qatc_f32_stage(q, QATC_F32_BIAS | QATC_F32_BN | QATC_F32_RELU, acc) != qatc_key(b_of(x)) &&
                bad[7]++ < 3)
                printf("stage %d 2^%d + %08x, * %08x + %08x\n", acc, q[0], a, b, c);
        }
    }
    for (int j = 0; j < 8; j++) CHECK(bad[j] == 0, "check %d: %ld of %ld operand sets differ from the FPU", j, bad[j], n);
    /* an X64 op's input: a stream's float32 in fixed point, x 2^F rounded
     * to nearest even (the FPU's nearbyint), saturated to +-(2^L - 1); and
     * its stage on an int64 accumulator, one rounding (the FPU's int64 ->
     * float conversion, exact in double below 2^53 then rounded once) */
    long kbad = 0, sbad = 0;
    for (long i = 0; i < 1000000; i++) {
        uint32_t a = any_f32();
        int F = (int)(rnd() % 63), L = 1 + (int)(rnd() % 62);
        double lim = ldexp(1.0, L) - 1, x = (double)f_of(a);
        double want = isinf(x) ? (x > 0 ? lim : -lim) : nearbyint(ldexp(x, F));
        if (want > lim) want = lim;
        if (want < -lim) want = -lim;
        if ((double)qatc_key_fixed(qatc_key(a), F, L) != want && kbad++ < 3)
            printf("fixed %08x 2^%d, bound 2^%d: %lld, want %.17g\n", a, F, L, (long long)qatc_key_fixed(qatc_key(a), F, L), want);
        int64_t acc = (int64_t)(rnd() >> (11 + rnd() % 53)) * (rnd() % 2 ? 1 : -1);
        int e = (int)(rnd() % 120) - 90;
        int32_t q[4] = {e, 0, 0, 0};
        float fe = (float)ldexp((double)acc, e);
        if (qatc_f32_stage(q, 0, acc) != qatc_key(b_of(fe)) && sbad++ < 3) printf("stage64 %lld 2^%d\n", (long long)acc, e);
    }
    CHECK(kbad == 0 && sbad == 0, "fixed point: %ld, int64 stage: %ld of 1000000 differ", kbad, sbad);
    /* the global pool's mean: a double sum in order, / 2^k, to float */
    for (int t = 0; t < 20000; t++) {
        int32_t keys[64];
        double s = 0;
        for (int i = 0; i < 64; i++) {
            uint32_t v = any_f32();
            if ((v >> 23 & 0xff) == 0xff) v = 0;
            keys[i] = qatc_key(v);
            s += (double)f_of(v);
        }
        float want = (float)(s / 64.0);
        CHECK(qatc_key_mean(keys, 64, 1, 6) == qatc_key(b_of(want)), "mean of 64: %08x, FPU %08x",
              qatc_unkey(qatc_key_mean(keys, 64, 1, 6)), b_of(want));
        CHECK(qatc_key_add(keys[0], keys[1]) == qatc_key(b_of(f_of(qatc_unkey(keys[0])) + f_of(qatc_unkey(keys[1])))),
              "key add");
    }
    /* every kernel table's key_add against qatc_key_add, ReLU or not, on
     * lengths that leave partial vectors */
    enum { KN = 4099 };
    static int32_t ka[KN], kb[KN], want[KN], got[KN + 1];
    for (int t = 0; t < 400; t++) {
        for (int i = 0; i < KN; i++) {
            ka[i] = qatc_key(any_f32());
            /* close magnitudes of either sign (cancellation), or anything */
            kb[i] = rnd() % 3 ? qatc_key((qatc_unkey(ka[i]) ^ (uint32_t)(rnd() % 2) << 31) + (uint32_t)(rnd() % 64))
                              : qatc_key(any_f32());
            if ((qatc_unkey(ka[i]) >> 23 & 0xff) == 0xff) ka[i] = 0;
            if ((qatc_unkey(kb[i]) >> 23 & 0xff) == 0xff) kb[i] = 0;
        }
        int relu = t & 1;
        size_t len = (size_t)(KN - t % 17);
        qatrt_key_add_scalar(len, ka, kb, want, relu);
        for (int isa = 0; isa < QATRT_ISA_COUNT; isa++) {
            if (!qatrt_isa_supported((qatrt_isa)isa)) continue;
            memset(got, 0x55, sizeof got);
            qatrt_kernels_for((qatrt_isa)isa)->key_add(len, ka, kb, got, relu);
            int differ = 0;
            for (size_t i = 0; i < len; i++) differ += got[i] != want[i];
            CHECK(differ == 0 && got[len] == 0x55555555, "%s key_add: %d of %zu lanes differ (relu %d)",
                  qatrt_isa_name((qatrt_isa)isa), differ, len, relu);
        }
    }
    printf("%s (%d failures): %ld operand sets against the FPU; key_add on every ISA\n", failures ? "FAIL" : "ok", failures, n);
    return failures != 0;
}
