/* test_gradcomm.c: the gradient exchange's codecs (optim/gradcomm.c) with
 * exact expected numbers: binary16 rounding, int8 and 1-bit blocks, and
 * the error feedback residual carried from one step to the next. */
#include <math.h>

#include "gradcomm.h"
#include "qat_test.h"

static void test_f16(void)
{
    CHECK(qat_gradcomm_f16(1.0f) == 0x3c00, "1.0 -> %04x", qat_gradcomm_f16(1.0f));
    CHECK(qat_gradcomm_f16(-2.0f) == 0xc000, "-2.0 -> %04x", qat_gradcomm_f16(-2.0f));
    CHECK(qat_gradcomm_f16(65504.0f) == 0x7bff, "max");
    CHECK(qat_gradcomm_f16(1e6f) == 0x7bff && qat_gradcomm_f16(-INFINITY) == 0xfbff, "saturates");
    CHECK((qat_gradcomm_f16(NAN) & 0x7e00) == 0x7e00, "NaN stays NaN");
    /* ties to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 */
    CHECK(qat_gradcomm_f16(1.0f + 0x1p-11f) == 0x3c00, "tie down to even");
    CHECK(qat_gradcomm_f16(1.0f + 3 * 0x1p-11f) == 0x3c02, "tie up to even");
    CHECK(qat_gradcomm_f16(0x1p-24f) == 0x0001, "smallest subnormal");
    CHECK(qat_gradcomm_f16(0x1p-26f) == 0x0000, "below half of it: 0");
    CHECK(qat_gradcomm_f16(0x1p-25f) == 0x0000, "half of it: a tie, to even 0");
    CHECK(qat_gradcomm_f16(3 * 0x1p-25f) == 0x0002, "1.5 of it: a tie, to even 2");
    CHECK(qat_gradcomm_f16(5 * 0x1p-26f) == 0x0001, "1.25 of it: 1");
    CHECK(qat_gradcomm_f16(-0x1.8p-20f) == 0x8018, "-1.5 * 2^-20: 24 * 2^-24");
    CHECK(qat_gradcomm_f16(0x1.ffcp-15f) == 0x0400, "rounds up into the smallest normal");
    /* every finite half survives the round trip */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        if (qat_gradcomm_f16(qat_gradcomm_f32((uint16_t)h)) != h) bad++;
    }
    CHECK(bad == 0, "%d halves change on a round trip", bad);
}

static void test_int8(void)
{
    float g[4] = {1.0f, -0.5f, 0.25f, 0.0f}, e[4] = {0};
    unsigned char buf[64];
    CHECK(qat_gradcomm_bytes(QAT_GRADCOMM_INT8, 4) == 8, "4 + 4 bytes");
    CHECK(qat_gradcomm_bytes(QAT_GRADCOMM_INT8, 257) == 8 + 260, "two scales, 257 codes padded");
    qat_gradcomm_encode(QAT_GRADCOMM_INT8, g, e, 4, buf);
    float acc[4] = {0};
    qat_gradcomm_decode_add(QAT_GRADCOMM_INT8, buf, 4, acc);
    float s = 1.0f / 127.0f;
    /* -0.5 / s = -63.5 rounds to even, -64 */
    float want[4] = {127 * s, -64 * s, 32 * s, 0};
    for (int i = 0; i < 4; i++) {
        CHECK(acc[i] == want[i], "int8 value %d: %g, want %g", i, acc[i], want[i]);
        CHECK(e[i] == g[i] - want[i], "int8 residual %d: %g, want %g", i, e[i], g[i] - want[i]);
    }
}

static void test_1bit(void)
{
    /* step 1: mean |v| = 2, so +-2; the residual keeps what the code lost */
    float g[4] = {1, -3, 2, -2}, e[4] = {0}, acc[4] = {0};
    unsigned char buf[16];
    CHECK(qat_gradcomm_bytes(QAT_GRADCOMM_1BIT, 4) == 8, "a scale and a padded byte of signs");
    qat_gradcomm_encode(QAT_GRADCOMM_1BIT, g, e, 4, buf);
    qat_gradcomm_decode_add(QAT_GRADCOMM_1BIT, buf, 4, acc);
    float want1[4] = {2, -2, 2, -2}, e1[4] = {-1, -1, 0, 0};
    for (int i = 0; i < 4; i++) CHECK(acc[i] == want1[i] && e[i] == e1[i], "step 1, %d: %g %g", i, acc[i], e[i]);
    /* step 2, a zero gradient: what is sent is last step's residual alone
     * (mean |v| = 0.5; 0 sends +) */
    float z[4] = {0}, acc2[4] = {0};
    qat_gradcomm_encode(QAT_GRADCOMM_1BIT, z, e, 4, buf);
    qat_gradcomm_decode_add(QAT_GRADCOMM_1BIT, buf, 4, acc2);
    float want2[4] = {-0.5f, -0.5f, 0.5f, 0.5f};
    for (int i = 0; i < 4; i++)
        CHECK(acc2[i] == want2[i] && e[i] == -0.5f, "step 2, %d: %g %g", i, acc2[i], e[i]);
}

/* Over many steps, what was sent plus the last residual is what was
 * computed (the residual telescopes); without feedback the loss piles up. */
static void test_feedback_carried(qat_gradcomm_kind k)
{
    enum { N = 1000, STEPS = 200 };
    static float g[N], e[N], sent[N], sum[N], sent_nofb[N];
    static unsigned char buf[4 * N + 64];
    memset(e, 0, sizeof e);
    memset(sent, 0, sizeof sent);
    memset(sum, 0, sizeof sum);
    memset(sent_nofb, 0, sizeof sent_nofb);
    uint64_t rs = 18;
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < N; i++) {
            /* a small steady drift under large noise: what 1-bit loses without feedback */
            double u = (double)(qat_test_splitmix64(&rs) >> 11) / 9007199254740992.0;
            g[i] = (float)((u - 0.5) * 2.0 + 0.01 * (i % 7));
            sum[i] += g[i];
        }
        qat_gradcomm_encode(k, g, e, N, buf);
        qat_gradcomm_decode_add(k, buf, N, sent);
        qat_gradcomm_encode(k, g, NULL, N, buf);
        qat_gradcomm_decode_add(k, buf, N, sent_nofb);
    }
    double err = 0, err_nofb = 0, res = 0;
    for (int i = 0; i < N; i++) {
        err = fmax(err, fabs(sent[i] + e[i] - sum[i]));
        err_nofb = fmax(err_nofb, fabs(sent_nofb[i] - sum[i]));
        res = fmax(res, fabs(e[i]));
    }
    CHECK(err < 1e-3, "%s: sent + residual differs from the sum of gradients by %g", qat_gradcomm_names[k], err);
    CHECK(res > 0 && res < 4, "%s: residual %g (carried, bounded)", qat_gradcomm_names[k], res);
    if (k == QAT_GRADCOMM_1BIT)
        CHECK(err_nofb > 10 * (res + 1e-3), "1bit without feedback: off by %g, with feedback by %g", err_nofb, res);
    printf("%s: after %d steps |sum g - sent| is %.3g with error feedback (residual %.3g), %.3g without\n",
           qat_gradcomm_names[k], STEPS, err + res, res, err_nofb);
}

static void test_nonfinite(void)
{
    float g[300], e[300], acc[300] = {0};
    for (int i = 0; i < 300; i++) {
        g[i] = 0.1f * (float)(i % 5);
        e[i] = 0.5f;
    }
    g[3] = NAN; /* block 0 (0..255) is spoiled, block 1 is not */
    static unsigned char buf[2048];
    for (int k = QAT_GRADCOMM_FP16; k < QAT_GRADCOMM_COUNT; k++) {
        for (int i = 0; i < 300; i++) e[i] = 0.5f, acc[i] = 0;
        qat_gradcomm_encode((qat_gradcomm_kind)k, g, e, 300, buf);
        qat_gradcomm_decode_add((qat_gradcomm_kind)k, buf, 300, acc);
        CHECK(isnan(acc[0]) && isnan(acc[255]), "%s: the spoiled block decodes to NaN", qat_gradcomm_names[k]);
        CHECK(e[0] == 0.5f && e[255] == 0.5f, "%s: its residual is left alone", qat_gradcomm_names[k]);
        CHECK(isfinite(acc[256]) && e[256] != 0.5f, "%s: the next block goes through", qat_gradcomm_names[k]);
    }
}

int main(void)
{
    test_f16();
    test_int8();
    test_1bit();
    for (int k = QAT_GRADCOMM_FP16; k < QAT_GRADCOMM_COUNT; k++) test_feedback_carried((qat_gradcomm_kind)k);
    test_nonfinite();
    qat_gradcomm st;
    CHECK(qat_gradcomm_init(&st, QAT_GRADCOMM_1BIT, 1000, 4) == QAT_OK && st.bytes == 4 * 4 + 128 && st.resid &&
              st.resid[999] == 0.0f,
          "init: payload and a zeroed residual");
    qat_gradcomm_free(&st);
    qat_gradcomm_free(&st);
    if (failures) printf("%d failures\n", failures);
    else printf("gradcomm: all passed\n");
    return failures != 0;
}
