/* binconv.c: the forward of a convolution whose input and weights are both
 * +-1 (BNN layers: sign quantizers on both), with the runtime's XOR-popcount
 * GEMM (runtime/kern.h, the one implementation training and inference
 * share). Sums of +-1 products are small integers, which float GEMM also
 * computes exactly, so the output is bit-identical to the float conv's; the
 * backward stays the float one (autograd's conv2d).
 *
 * Per step the weights' signs are packed once, as the runtime's panels;
 * per image the input's signs are packed NHWC (a byte per 8 channels), each
 * output position's row is KH*KW copies of pixel bytes, and the GEMM gives
 * [positions x filters] int32 sums, written back transposed as NCHW floats.
 * A padded tap is a 0 bit there (+1), so its weight is subtracted again:
 * per filter and kernel tap, the sum of its signs over the channels. */
#include <string.h>

#include "kern.h"
#include "layers_internal.h"

typedef struct {
    int N, C, H, W, F, KH, KW, OH, OW, sh, sw, ph, pw;
    size_t cb;     /* bytes of one pixel's signs */
    size_t kwords; /* 64-bit words of a row */
    int kbits;     /* real bits of a row: KH*KW*C */
    size_t P;      /* output positions */
} bin_geom;

static bin_geom bin_geometry(const qat_tensor *t)
{
    const qat_tensor *x = t->src[0], *w = t->src[1];
    bin_geom b = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3],
                  t->shape[2], t->shape[3], t->ip[0], t->ip[1], t->ip[2], t->ip[3], 0, 0, 0, 0};
    b.cb = ((size_t)b.C + 7) / 8;
    b.kwords = ((size_t)b.KH * b.KW * b.cb + 7) / 8;
    b.kbits = b.KH * b.KW * b.C;
    b.P = (size_t)b.OH * b.OW;
    return b;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* shared: weight rows, their panels, per-tap sign sums; per thread: the
 * image's signs (+ 8 bytes of slack), its rows, the int32 sums */
#define BIN_MAX_PATTERNS 64 /* distinct sets of padded taps (a 3x3 pad-1 conv has 9) */

static size_t bin_shared_bytes(const bin_geom *b)
{
    return align64((size_t)b->F * b->kwords * 8) + align64(qatrt_bpanel_words(b->F, (int)b->kwords) * 8) +
           align64(sizeof(int32_t) * (size_t)b->F * b->KH * b->KW) + align64(sizeof(int32_t) * b->P) +
           align64(sizeof(int32_t) * BIN_MAX_PATTERNS * (size_t)b->F);
}

static size_t bin_thread_bytes(const bin_geom *b)
{
    return align64((size_t)b->H * b->W * b->cb + 8) + align64(b->P * b->kwords * 8) +
           align64(sizeof(int32_t) * b->P * (size_t)b->F);
}

static size_t bin_scratch(const qat_tensor *t, int max_batch, int threads)
{
    bin_geom b = bin_geometry(t);
    return bin_shared_bytes(&b) + (size_t)threads * bin_thread_bytes(&b) + 256;
}

typedef struct {
    qat_tensor *t;
    bin_geom b;
    const qatrt_kernels *kt;
    const uint64_t *panels;
    const int32_t *wsum; /* [F][KH*KW] */
    const int32_t *pat;  /* per output position: its row of corr, or -1 to work it out there */
    const int32_t *corr; /* [pattern][F]: the padded taps' weight sums; row 0 is no padding */
    unsigned char *work; /* per thread: bin_thread_bytes */
} bin_task;

/* the padded taps' weight, per filter, at output (oh, ow): 0 inside */
static int bin_padded(const bin_geom *b, int oh, int ow, int *khlo, int *khhi, int *kwlo, int *kwhi)
{
    int ih0 = oh * b->sh - b->ph, iw0 = ow * b->sw - b->pw;
    *khlo = ih0 < 0 ? -ih0 : 0;
    *khhi = b->H - ih0 < b->KH ? b->H - ih0 : b->KH;
    *kwlo = iw0 < 0 ? -iw0 : 0;
    *kwhi = b->W - iw0 < b->KW ? b->W - iw0 : b->KW;
    return *khlo > 0 || *khhi < b->KH || *kwlo > 0 || *kwhi < b->KW;
}

static void bin_image(const bin_task *k, int n, unsigned char *work)
{
    const bin_geom *b = &k->b;
    qat_tensor *t = k->t;
    size_t HW = (size_t)b->H * b->W, arow = b->kwords * 8;
    uint8_t *signs = work;
    uint64_t *rows = (uint64_t *)(void *)(work + align64(HW * b->cb + 8));
    int32_t *acc = (int32_t *)(void *)((unsigned char *)rows + align64(b->P * arow));
    const float *x = t->src[0]->x + (size_t)n * b->C * HW;

    /* the image's signs, NHWC: bit c % 8 of byte c / 8 set for -1; eight
     * channel planes read side by side, each byte written once */
    for (size_t cb = 0; cb < b->cb; cb++) {
        int c0 = (int)cb * 8, nc = b->C - c0 < 8 ? b->C - c0 : 8;
        const float *xc = x + (size_t)c0 * HW;
        for (size_t p = 0; p < HW; p++) {
            unsigned v = 0;
            for (int j = 0; j < nc; j++) v |= (unsigned)(xc[(size_t)j * HW + p] < 0.0f) << j;
            signs[p * b->cb + cb] = (uint8_t)v;
        }
    }
    /* a row per output position: the taps' pixel bytes, 0 (+1) where padded */
    size_t run = (size_t)b->KW * b->cb;
    for (int oh = 0; oh < b->OH; oh++)
        for (int ow = 0; ow < b->OW; ow++) {
            uint8_t *row = (uint8_t *)(rows + ((size_t)oh * b->OW + ow) * b->kwords);
            int khlo, khhi, kwlo, kwhi;
            if (!bin_padded(b, oh, ow, &khlo, &khhi, &kwlo, &kwhi)) { /* the taps of a kernel row are adjacent pixels */
                int ih0 = oh * b->sh - b->ph, iw0 = ow * b->sw - b->pw;
                for (int kh = 0; kh < b->KH; kh++)
                    memcpy(row + (size_t)kh * run, signs + ((size_t)(ih0 + kh) * b->W + iw0) * b->cb, run);
                memset(row + (size_t)b->KH * run, 0, arow - (size_t)b->KH * run);
                continue;
            }
            memset(row, 0, arow);
            for (int kh = khlo; kh < khhi; kh++)
                for (int kw = kwlo; kw < kwhi; kw++) {
                    int ih = oh * b->sh - b->ph + kh, iw = ow * b->sw - b->pw + kw;
                    memcpy(row + ((size_t)kh * b->KW + kw) * b->cb, signs + ((size_t)ih * b->W + iw) * b->cb, b->cb);
                }
        }
    k->kt->bgemm_pk((int)b->P, b->F, (int)b->kwords, b->kbits, rows, b->kwords, k->panels, acc, (size_t)b->F);

    /* NCHW floats, 16 positions at a time (whole cache lines of each output
     * plane): subtract the padded taps' weights, add the bias */
    float *y = t->x + (size_t)n * b->F * b->P;
    const float *bias = t->nsrc == 3 ? t->src[2]->x : NULL;
    for (size_t p0 = 0; p0 < b->P; p0 += 16) {
        size_t np = b->P - p0 < 16 ? b->P - p0 : 16;
        const int32_t *corr[16];
        for (size_t i = 0; i < np; i++) corr[i] = k->corr + (size_t)(k->pat[p0 + i] < 0 ? 0 : k->pat[p0 + i]) * b->F;
        for (int f = 0; f < b->F; f++) {
            float bf = bias ? bias[f] : 0.0f, *yf = y + (size_t)f * b->P + p0;
            const int32_t *a = acc + p0 * (size_t)b->F + f;
            for (size_t i = 0; i < np; i++) yf[i] = (float)(a[i * (size_t)b->F] - corr[i][f]) + bf;
        }
        for (size_t i = 0; i < np; i++) /* a pattern beyond the table: summed here */
            if (k->pat[p0 + i] < 0) {
                int oh = (int)((p0 + i) / (size_t)b->OW), ow = (int)((p0 + i) % (size_t)b->OW);
                int khlo, khhi, kwlo, kwhi;
                bin_padded(b, oh, ow, &khlo, &khhi, &kwlo, &kwhi);
                for (int f = 0; f < b->F; f++) {
                    int32_t s = 0;
                    for (int kh = 0; kh < b->KH; kh++)
                        for (int kw = 0; kw < b->KW; kw++)
                            if (kh < khlo || kh >= khhi || kw < kwlo || kw >= kwhi)
                                s += k->wsum[(size_t)f * b->KH * b->KW + kh * b->KW + kw];
                    y[(size_t)f * b->P + p0 + i] -= (float)s;
                }
            }
    }
}

static void bin_task_fn(void *ctx, int begin, int end, int tid)
{
    bin_task *k = ctx;
    unsigned char *work = k->work + (size_t)tid * bin_thread_bytes(&k->b);
    for (int n = begin; n < end; n++) bin_image(k, n, work);
}

static void bin_forward(qat_tensor *t, qat_graph *g)
{
    bin_task k = {.t = t, .b = bin_geometry(t)};
    const bin_geom *b = &k.b;
    k.kt = qatrt_kernels_for(qatrt_isa_select(NULL));
    unsigned char *shared = qat_graph_scratch(g, bin_shared_bytes(b));
    uint64_t *wrows = (uint64_t *)(void *)shared;
    uint64_t *panels = (uint64_t *)(void *)(shared + align64((size_t)b->F * b->kwords * 8));
    int32_t *wsum = (int32_t *)(void *)((unsigned char *)panels + align64(qatrt_bpanel_words(b->F, (int)b->kwords) * 8));
    k.work = qat_graph_scratch(g, (size_t)g->threads * bin_thread_bytes(b));

    /* the weights' signs in the rows' layout (tap-major, a byte per 8
     * channels), once per forward: they change every step */
    const float *w = t->src[1]->x;
    int taps = b->KH * b->KW;
    memset(wrows, 0, (size_t)b->F * b->kwords * 8);
    for (int f = 0; f < b->F; f++) {
        uint8_t *row = (uint8_t *)(wrows + (size_t)f * b->kwords);
        int32_t *ws = wsum + (size_t)f * taps;
        for (int q = 0; q < taps; q++) ws[q] = 0;
        for (int c = 0; c < b->C; c++)
            for (int q = 0; q < taps; q++) {
                int neg = w[((size_t)f * b->C + c) * taps + q] < 0.0f;
                row[(size_t)q * b->cb + c / 8] |= (uint8_t)(neg << (c % 8));
                ws[q] += neg ? -1 : 1;
            }
    }
    qatrt_pack_bpanel(b->F, (int)b->kwords, wrows, b->kwords, panels);
    k.panels = panels;
    k.wsum = wsum;

    /* each output position's set of padded taps, as a mask; a row of
     * corrections per distinct set (row 0: none) */
    int32_t *pat = (int32_t *)(void *)((unsigned char *)wsum + align64(sizeof(int32_t) * (size_t)b->F * taps));
    int32_t *corr = (int32_t *)(void *)((unsigned char *)pat + align64(sizeof(int32_t) * b->P));
    uint64_t masks[BIN_MAX_PATTERNS] = {0};
    int npat = 1;
    memset(corr, 0, sizeof(int32_t) * (size_t)b->F);
    for (int oh = 0; oh < b->OH; oh++)
        for (int ow = 0; ow < b->OW; ow++) {
            int khlo, khhi, kwlo, kwhi, id = 0;
            uint64_t mask = 0;
            if (bin_padded(b, oh, ow, &khlo, &khhi, &kwlo, &kwhi)) {
                for (int kh = 0; kh < b->KH; kh++)
                    for (int kw = 0; kw < b->KW; kw++)
                        if (kh < khlo || kh >= khhi || kw < kwlo || kw >= kwhi) mask |= 1ull << ((kh * b->KW + kw) & 63);
                id = -1;
                for (int q = 1; q < npat && id < 0; q++)
                    if (masks[q] == mask) id = q;
                if (id < 0 && taps <= 64 && npat < BIN_MAX_PATTERNS) {
                    id = npat++;
                    masks[id] = mask;
                    for (int f = 0; f < b->F; f++) {
                        int32_t sum = 0;
                        for (int q = 0; q < taps; q++)
                            if (mask >> q & 1) sum += wsum[(size_t)f * taps + q];
                        corr[(size_t)id * b->F + f] = sum;
                    }
                }
            }
            pat[(size_t)oh * b->OW + ow] = id;
        }
    k.pat = pat;
    k.corr = corr;
    qat_graph_parallel(g, t->shape[0], bin_task_fn, &k);
}

static const qat_custom_op bin_op = {
    .name = "binconv2d",
    .scratch_bytes = bin_scratch,
    .forward = bin_forward,
};

int qat_layer_binary_forward_ok(const qat_qspec *w, const qat_qspec *a)
{
    return w->q && a->q && w->q->unit_signs && a->q->unit_signs;
}

void qat_layer_binary_forward(qat_tensor *conv) { qat_conv2d_set_forward(conv, &bin_op, NULL); }
