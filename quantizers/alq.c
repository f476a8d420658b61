/* alq.c: ALQ, adaptive loss-aware quantization of multi-bit networks
 * (../shared/papers/alq-multi-bit.txt; spec ../shared/specs/alq.md, cited
 * "spec §k"). The quantizer owns its layer's weights: each group g of n
 * weights is w_g = B_g alpha_g with I_g +-1 planes and positive
 * coordinates (Eq. 1-3); no float copy is kept (Sec. 3.1: "no STE and no
 * latent full-precision weights"), the layer sees the float view B alpha,
 * recomputed every forward. The numerics of one group live in alq_math.c;
 * this file keeps the state, steps it in the schedule's phases and prunes
 * over every ALQ layer of the model at once.
 *
 * The step in each phase (spec §7's per-iteration pseudo-code):
 *   basis (and train): the w-domain AMSGrad step gives the target
 *        tau = w_hat - g / H (Eq. 19, g = lr m-hat, H = sqrt(v-hat max));
 *        B takes the nearest level codes of tau (Eq. 17-20), alpha the
 *        H-weighted least-squares fit of tau (Eq. 22-23, lambda 1e-6),
 *        negative coordinates flip with their plane; the alpha-domain
 *        moments are rebuilt from the w-domain ones (spec §6.4);
 *   coord: AMSGrad on alpha alone with G_alpha = B^T G (Eq. 14, 21), the
 *        w-domain moments kept current; negative coordinates flip (§12.7);
 *   prune: the alpha-domain moments take B^T G; every live coordinate's
 *        Eq. 13 score f = -g_a alpha + H_a alpha^2 / 2 is ranked over all
 *        layers together and the smallest are removed with their planes
 *        (Eq. 11-15), by the code's geometric schedule (a fraction pr of
 *        the coordinates per pruning epoch, each layer proposing its top_k
 *        share) or the paper's linear one (evenly down to a target average
 *        bitwidth over the run's pruning epochs);
 *   ste: "STE with loss-aware" (spec §8): latent float weights w (from
 *        w_hat when the phase starts), tau = w - g / H, B and alpha as in a
 *        basis step, then w <- tau.
 * The optimizer must be AMSGrad: the projection reads its moments. qat's
 * AMSGrad adds eps after the bias correction (H = sqrt(v-hat max) + eps),
 * so tau is exactly the step qat's AMSGrad would take. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alq.h"
#include "qmath.h"

#define ALQ_AUTO QAT_ALQ_STRUCT_COUNT
enum { ALQ_PRUNE_GEOMETRIC = 0, ALQ_PRUNE_LINEAR, ALQ_PRUNE_COUNT };

typedef struct {
    int structure;   /* qat_alq_struct, or ALQ_AUTO */
    int subchannels; /* S of the sub-channel structure; 0: the smallest giving groups of <= 512 */
    int prune;       /* ALQ_PRUNE_* */
    float pr, top_k; /* geometric: about 1 - e^-pr of the coordinates go per pruning epoch; per-layer proposals */
    float target;    /* linear: average bits per weight after the last pruning epoch */
} alq_opts;
_Static_assert(sizeof(alq_opts) <= QAT_QOPTS_BYTES, "alq settings");

static const char *const struct_names[ALQ_AUTO + 1] = {"channel", "kernel", "pixel", "subchannel", "auto"};
static const char *const prune_names[ALQ_PRUNE_COUNT] = {"geometric", "linear"};
static const qat_qkey alq_keys[] = {
    QAT_QKEY_ENUM_OF("alq_struct", alq_opts, structure, ALQ_AUTO, struct_names, QAT_QROLE_WEIGHT),
    QAT_QKEY_INT_OF("alq_subchannels", alq_opts, subchannels, 0, 0, 1 << 20, QAT_QROLE_WEIGHT),
    QAT_QKEY_ENUM_OF("alq_prune", alq_opts, prune, ALQ_PRUNE_GEOMETRIC, prune_names, QAT_QROLE_WEIGHT),
    QAT_QKEY_FLOAT_OF("alq_pr", alq_opts, pr, 0.8, 0, 50, QAT_QROLE_WEIGHT),
    QAT_QKEY_FLOAT_OF("alq_top_k", alq_opts, top_k, 0.005, 1e-6, 1, QAT_QROLE_WEIGHT),
    QAT_QKEY_FLOAT_OF("alq_target_bits", alq_opts, target, 1, 0, QAT_ALQ_MAX_BITS, QAT_QROLE_WEIGHT),
};

static const alq_opts *opts(const qat_qnode *n) { return QAT_QOPTS(n, alq_opts); }

/* ---- the state: one flat block, saved as it is ----------------------------
 * [header | alpha, m_a, v_a, vmax_a (G x I_max floats each) | latent (N
 * floats) | I_g (G bytes) | B (G x I_max x n signs, plane-major per group)]
 * Planes >= I_g are 0. */
#define ALQ_MAGIC 0x31514c41u /* "ALQ1" */
typedef struct {
    uint32_t magic, imax;
    uint64_t n, G;
    int64_t t_alpha;      /* steps of the alpha-domain AMSGrad */
    uint64_t prune_start; /* linear pruning: the layer's sum I_g n when the pruning epoch began */
    uint32_t latent_ok;   /* latent holds the STE phase's float weights */
    uint32_t pad;
} alq_hdr;

typedef struct {
    alq_hdr *h;
    float *alpha, *ma, *va, *vmax, *latent;
    uint8_t *I;
    int8_t *B;
    qat_alq_grouping gp;
    int imax;
    size_t n, G, K, N; /* K = G I_max coordinates */
} alq_view;

/* the grouping the settings give for the weight's shape (spec §2 table:
 * auto is channel-wise for a first conv (C_in <= 3), kernel-wise below 32
 * input channels, pixel-wise above; linear layers sub-channel-wise) */
static qat_status grouping(const qat_qnode *n, qat_alq_grouping *gp)
{
    const qat_tensor *t = n->out;
    int s = opts(n)->structure, S = opts(n)->subchannels, cin = t->shape[1];
    if (s == ALQ_AUTO) s = t->ndim == 4 ? (cin <= 3 ? QAT_ALQ_CHANNEL : cin < 32 ? QAT_ALQ_KERNEL : QAT_ALQ_PIXEL)
                                        : QAT_ALQ_SUBCHANNEL;
    if (s == QAT_ALQ_SUBCHANNEL && S == 0) {
        int kk = t->ndim == 4 ? t->shape[2] * t->shape[3] : 1;
        for (S = 1; S < cin; S++)
            if (cin % S == 0 && (size_t)(cin / S) * (size_t)kk <= 512) break;
    }
    return qat_alq_grouping_init(gp, (qat_alq_struct)s, t->ndim, t->shape, S ? S : 1);
}

static size_t state_bytes(size_t n, size_t G, int imax)
{
    size_t K = G * (size_t)imax, N = n * G;
    return sizeof(alq_hdr) + sizeof(float) * (4 * K + N) + G + K * n;
}

static void view(const qat_qnode *n, alq_view *v)
{
    qat_status st = grouping(n, &v->gp);
    QAT_ASSERT(st == QAT_OK); /* check() passed when the node was built */
    v->imax = n->bits;
    v->n = v->gp.n;
    v->G = v->gp.G;
    v->K = v->G * (size_t)v->imax;
    v->N = v->n * v->G;
    unsigned char *p = n->state;
    v->h = (alq_hdr *)(void *)p;
    float *f = (float *)(void *)(p + sizeof(alq_hdr));
    v->alpha = f;
    v->ma = f + v->K;
    v->va = f + 2 * v->K;
    v->vmax = f + 3 * v->K;
    v->latent = f + 4 * v->K;
    v->I = (uint8_t *)(v->latent + v->N);
    v->B = (int8_t *)(v->I + v->G);
}

static qat_status alq_check(const qat_qnode *n)
{
    qat_alq_grouping gp;
    qat_status st = grouping(n, &gp);
    if (st) return qat_error_wrap(st, "alq weights '%s'", n->out->name);
    if (gp.n * gp.G > ((size_t)1 << 40) || n->bits > QAT_ALQ_MAX_BITS)
        return qat_error_set(QAT_ERR_CONFIG, "alq weights '%s': %d planes (at most %d)", n->out->name, n->bits,
                             QAT_ALQ_MAX_BITS);
    return QAT_OK;
}

static size_t alq_state_size(const qat_qnode *n)
{
    alq_view v;
    QAT_ASSERT(grouping(n, &v.gp) == QAT_OK);
    return state_bytes(v.gp.n, v.gp.G, n->bits);
}

static const int8_t *planes(const alq_view *v, size_t g) { return v->B + g * (size_t)v->imax * v->n; }

/* ---- structured sketching (Sec. 5.1, spec §3) ---------------------------- */
static void alq_init_owned(qat_qnode *n, const float *w, qat_rng *rng)
{
    (void)rng;
    alq_view v;
    view(n, &v);
    memset(n->state, 0, n->state_bytes);
    *v.h = (alq_hdr){.magic = ALQ_MAGIC, .imax = (uint32_t)v.imax, .n = v.n, .G = v.G};
    float *grp = malloc(sizeof(float) * v.n);
    QAT_ASSERT(grp); /* n floats, at model build */
    for (size_t g = 0; g < v.G; g++) {
        qat_alq_gather_group(&v.gp, g, w, grp);
        int I = 0;
        int8_t *B = v.B + g * (size_t)v.imax * v.n;
        float *a = v.alpha + g * (size_t)v.imax;
        qat_alq_sketch(grp, v.n, v.imax, B, a, &I);
        v.I[g] = (uint8_t)I;
        memset(B + (size_t)I * v.n, 0, (size_t)(v.imax - I) * v.n); /* planes >= I_g are 0 */
        for (int i = I; i < v.imax; i++) a[i] = 0;
    }
    free(grp);
}

/* ---- forward: the float view w_hat = B alpha (Eq. 2) ---------------------
 * The coordinates the network sees are fixed-point: alpha rounded to a
 * multiple of 2^-F, F the layer's largest with every |a| = alpha 2^F at
 * most 32767 / I_max. Each weight is then an integer W = sum_i a_i b_i
 * (|W| <= 32767) times 2^-F, exactly as a float, so the integer runtime
 * computes what training computed (the codebook contract); the state keeps
 * alpha in float, and the basis and coordinate steps work on it. The
 * rounding is at most 2^-16 of the layer's largest coordinate times I_max. */
static int frac_bits(const alq_view *v)
{
    float top = 0;
    for (size_t g = 0; g < v->G; g++)
        for (int i = 0; i < v->I[g]; i++) top = fmaxf(top, v->alpha[g * (size_t)v->imax + (size_t)i]);
    if (!(top > 0)) return 0;
    int F = 0;
    frexpf((float)(32767 / v->imax) / top, &F); /* 2^(F-1) <= limit / top < 2^F */
    return F - 1;
}

typedef struct {
    alq_view v;
    float *w;
    int F;
} put_task;

static void put_run(void *ctx, int b, int e, int tid)
{
    (void)tid;
    const put_task *k = ctx;
    const alq_view *v = &k->v;
    float unit = ldexpf(1.0f, -k->F);
    for (size_t g = (size_t)b; g < (size_t)e; g++) {
        const int8_t *B = planes(v, g);
        int32_t a[QAT_ALQ_MAX_BITS];
        for (int i = 0; i < v->I[g]; i++) a[i] = (int32_t)lrintf(ldexpf(v->alpha[g * (size_t)v->imax + (size_t)i], k->F));
        for (size_t j = 0; j < v->n; j++) {
            int32_t s = 0;
            for (int i = 0; i < v->I[g]; i++) s += a[i] * B[(size_t)i * v->n + j];
            k->w[qat_alq_group_offset(&v->gp, g, j)] = (float)s * unit;
        }
    }
}

static void alq_forward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    put_task k = {.w = t->x};
    view(n, &k.v);
    k.F = frac_bits(&k.v);
    qat_qscale(n)[0] = ldexpf(1.0f, -k.F);
    qat_graph_parallel(g, (int)k.v.G, put_run, &k);
}

/* the codebook: integer weights W = sum_i a_i b_i times 2^-F (the last forward's) */
static void alq_levels(const qat_qnode *n, qat_levels *out)
{
    *out = (qat_levels){.lo = -32767, .hi = 32767, .step = 1, .scale = qat_qscale(n), .nscale = 1};
}

static void alq_backward(qat_qnode *n, qat_tensor *t, qat_graph *g)
{
    (void)n, (void)t, (void)g; /* t->g, dl/dw_hat, goes to the step */
}

/* ---- the steps ------------------------------------------------------------ */
typedef struct {
    alq_view v;
    const qat_owned_step *s;
    const qat_optim *o;
    size_t off;
    const float *src;   /* the weights tau is taken from: w_hat, or the latent weights (ste) */
    const float *delta; /* the w-domain AMSGrad step of src */
    const float *grad;  /* dl/dw_hat */
    float *work;        /* 6 n floats per thread */
    double bc1a, bc2a;  /* alpha-domain bias corrections (coord, prune) */
    int failed;         /* groups whose alpha solve failed (kept their alpha) */
} step_task;

/* H_j = sqrt(v-hat max_j) + eps, as qat_optim_update's denominator */
static float hess(const qat_optim *o, size_t k) { return sqrtf(o->vmax[k]) / o->k.bc2_sqrt + o->cfg.eps; }

/* basis / train / ste: Eq. 17-23 and the moments' rebuild (spec §6.4) */
static void basis_run(void *ctx, int b, int e, int tid)
{
    step_task *k = ctx;
    const alq_view *v = &k->v;
    size_t n = v->n;
    float *tau = k->work + (size_t)tid * 6 * n, *H = tau + n, *m = H + n, *vv = m + n, *vm = vv + n;
    for (size_t g = (size_t)b; g < (size_t)e; g++) {
        int I = v->I[g];
        if (I == 0) continue;
        int8_t *B = v->B + g * (size_t)v->imax * n;
        float *a = v->alpha + g * (size_t)v->imax;
        for (size_t j = 0; j < n; j++) {
            size_t p = qat_alq_group_offset(&v->gp, g, j), q = k->off + p;
            tau[j] = k->src[p] + k->delta[p]; /* Eq. 19: w - g / H */
            H[j] = hess(k->o, q);
            m[j] = k->o->m[q];
            vv[j] = k->o->v[q];
            vm[j] = k->o->vmax[q];
        }
        qat_alq_basis_step(tau, n, a, I, B);
        if (qat_alq_solve_alpha(tau, H, B, n, I, QAT_ALQ_LAMBDA, a) != QAT_OK) k->failed++; /* keeps alpha */
        size_t c = g * (size_t)v->imax;
        qat_alq_rebuild_moments(m, vv, vm, B, n, I, v->ma + c, v->va + c, v->vmax + c);
        if (k->s->phase == QAT_PHASE_STE)
            for (size_t j = 0; j < n; j++) v->latent[qat_alq_group_offset(&v->gp, g, j)] = tau[j];
    }
}

/* one AMSGrad step of the alpha-domain moments on G_a; coord also moves alpha */
static void coord_run(void *ctx, int b, int e, int tid)
{
    step_task *k = ctx;
    const alq_view *v = &k->v;
    size_t n = v->n;
    float *G = k->work + (size_t)tid * 6 * n, ga[QAT_ALQ_MAX_BITS];
    const qat_optim *o = k->o;
    float b1 = (float)o->k.beta1, b2 = (float)o->k.beta2, lr = k->s->lr, wd = k->s->wd, eps = o->cfg.eps;
    float step = (float)(lr / k->bc1a), bc2s = (float)sqrt(k->bc2a);
    int move = k->s->phase == QAT_PHASE_COORD;
    for (size_t g = (size_t)b; g < (size_t)e; g++) {
        int I = v->I[g];
        if (I == 0) continue;
        int8_t *B = v->B + g * (size_t)v->imax * n;
        size_t c = g * (size_t)v->imax;
        float *a = v->alpha + c, *m = v->ma + c, *vv = v->va + c, *vm = v->vmax + c;
        qat_alq_gather_group(&v->gp, g, k->grad, G);
        qat_alq_grad_alpha(G, B, n, I, ga); /* Eq. 14 */
        for (int i = 0; i < I; i++) {
            float d = ga[i] + (move ? wd * a[i] : 0.0f); /* the L2 on alpha of Sec. 3.3 */
            m[i] = b1 * m[i] + (1 - b1) * d;
            vv[i] = b2 * vv[i] + (1 - b2) * d * d;
            vm[i] = vm[i] > vv[i] ? vm[i] : vv[i];
            if (move) a[i] -= step * m[i] / (sqrtf(vm[i]) / bc2s + eps); /* Eq. 21 */
        }
        if (!move) continue;
        for (int i = 0; i < I; i++)
            if (a[i] < 0) m[i] = -m[i]; /* the flipped coordinate's gradient flips too */
        qat_alq_make_positive(B, a, n, I);
    }
}

static void alpha_bias(step_task *k)
{
    int64_t t = ++k->v.h->t_alpha;
    k->bc1a = 1.0 - pow(k->o->k.beta1, (double)t);
    k->bc2a = 1.0 - pow(k->o->k.beta2, (double)t);
}

static void node_step(qat_qnode *n, const qat_owned_step *s)
{
    step_task k = {.s = s, .o = s->optim, .off = n->owned_off, .grad = n->out->g, .src = n->out->x};
    view(n, &k.v);
    size_t N = k.v.N;
    float *delta = s->scratch;
    k.work = s->scratch + N;
    k.delta = delta;
    qat_phase_kind ph = s->phase;
    if (ph == QAT_PHASE_STE) {
        if (!k.v.h->latent_ok) memcpy(k.v.latent, n->out->x, sizeof(float) * N);
        k.v.h->latent_ok = 1;
        k.src = k.v.latent;
    } else k.v.h->latent_ok = 0;
    /* the w-domain moments take G in every phase but pruning (spec §6.3, §5) */
    if (ph != QAT_PHASE_PRUNE) qat_optim_delta_at(s->optim, n->owned_off, N, k.src, k.grad, s->lr, s->wd, delta);
    if (ph == QAT_PHASE_COORD || ph == QAT_PHASE_PRUNE) {
        alpha_bias(&k);
        qat_graph_parallel(s->g, (int)k.v.G, coord_run, &k);
    } else {
        qat_graph_parallel(s->g, (int)k.v.G, basis_run, &k);
        k.v.h->t_alpha++; /* the rebuilt alpha moments count as a step (the code's) */
    }
}

/* ---- pruning over every ALQ layer (Sec. 3.2, Eq. 11-15) ------------------- */
extern const qat_quantizer qat_q_alq;

static uint64_t live_bits(const alq_view *v) /* sum_g I_g n */
{
    uint64_t s = 0;
    for (size_t g = 0; g < v->G; g++) s += v->I[g];
    return s * v->n;
}

static int desc_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* removes coordinate i of group g, its plane and its moments */
static void prune_one(alq_view *v, size_t g, int i)
{
    size_t c = g * (size_t)v->imax;
    int I = v->I[g], J = I;
    int8_t *B = v->B + c * v->n;
    float *mom[3] = {v->ma + c, v->va + c, v->vmax + c};
    for (int k = 0; k < 3; k++) {
        memmove(mom[k] + i, mom[k] + i + 1, sizeof(float) * (size_t)(I - 1 - i));
        mom[k][I - 1] = 0;
    }
    qat_alq_remove_plane(B, v->alpha + c, v->n, &J, i);
    memset(B + (size_t)J * v->n, 0, v->n); /* planes >= I_g stay 0 */
    v->alpha[c + (size_t)J] = 0;
    v->I[g] = (uint8_t)J;
}

static void prune(qat_qnode *const *nodes, int count, const qat_owned_step *s, qat_rng *rng)
{
    /* every ALQ coordinate gets a slot: node k's start at base, slot g I_max + i */
    size_t total = 0, live = 0;
    uint64_t bits = 0, weights = 0, start = 0;
    int first_step = s->phase_step % s->steps_per_epoch == 0;
    for (int k = 0; k < count; k++) {
        if (nodes[k]->spec.q != &qat_q_alq) continue;
        alq_view v;
        view(nodes[k], &v);
        total += v.K;
        uint64_t b = live_bits(&v);
        if (first_step) v.h->prune_start = b;
        bits += b;
        start += v.h->prune_start;
        weights += v.N;
        live += b / v.n;
    }
    if (live == 0 || total > UINT32_MAX) return;
    float *score = s->scratch, *pool = score + total;
    uint32_t *order = (uint32_t *)(void *)(pool + total), *pidx = order + total;
    size_t base = 0, npool = 0;
    int linear = 0;
    const alq_opts *o0 = NULL;
    for (int k = 0; k < count; k++) {
        qat_qnode *n = nodes[k];
        if (n->spec.q != &qat_q_alq) continue;
        alq_view v;
        view(n, &v);
        o0 = o0 ? o0 : opts(n); /* the schedule is one for the model: the first layer's settings */
        linear = o0->prune == ALQ_PRUNE_LINEAR;
        double bc1 = 1.0 - pow(s->optim->k.beta1, (double)v.h->t_alpha);
        double bc2 = 1.0 - pow(s->optim->k.beta2, (double)v.h->t_alpha);
        float gs = (float)(s->lr / bc1), bs = (float)sqrt(bc2), eps = s->optim->cfg.eps;
        size_t nlive = 0;
        for (size_t g = 0; g < v.G; g++)
            for (int i = 0; i < v.imax; i++) {
                size_t c = g * (size_t)v.imax + (size_t)i;
                float H = sqrtf(v.vmax[c]) / bs + eps; /* the alpha-domain sqrt(v-hat max) */
                score[base + c] = i < v.I[g] ? qat_alq_prune_score(gs * v.ma[c], H, v.alpha[c]) : NAN; /* Eq. 13 */
                nlive += i < v.I[g];
            }
        if (!linear) { /* the code: each layer proposes its top_k share, rounded at random */
            double want = (double)nlive * opts(n)->top_k;
            size_t prop = (size_t)want + (qat_rng_uniform(rng) < want - floor(want) ? 1 : 0);
            size_t got = qat_alq_prune_select(score + base, v.K, prop, order);
            for (size_t i = 0; i < got; i++) {
                pool[npool] = score[base + order[i]];
                pidx[npool++] = (uint32_t)(base + order[i]);
            }
        }
        base += v.K;
    }
    size_t cut = 0;
    if (!linear) {
        /* int(#proposals pr / (top_k T)): about a fraction pr / T of the coordinates per step */
        double T = (double)s->phase_steps;
        cut = (size_t)((double)npool * o0->pr / (o0->top_k * T));
        cut = qat_alq_prune_select(pool, npool, cut, order);
        for (size_t i = 0; i < cut; i++) order[i] = pidx[order[i]];
    } else {
        /* this epoch ends at start - (start - target) / (pruning epochs left),
         * spread evenly over its steps; counted in weight bits (I_g n) */
        uint64_t target = (uint64_t)ceil((double)o0->target * (double)weights);
        uint64_t end = start > target ? start - (start - target) / (uint64_t)(s->phase_kind_left > 0 ? s->phase_kind_left : 1)
                                      : start;
        uint64_t rem = bits > end ? bits - end : 0;
        uint64_t left = (uint64_t)(s->steps_per_epoch - s->phase_step % s->steps_per_epoch);
        uint64_t quota = rem / left;
        if (quota == 0) return;
        size_t got = qat_alq_prune_select(score, total, live, order);
        uint64_t done = 0;
        base = 0;
        for (; cut < got && done < quota; cut++) {
            size_t at = order[cut], b0 = 0; /* the node of slot `at`: its group size */
            for (int k = 0; k < count; k++) {
                if (nodes[k]->spec.q != &qat_q_alq) continue;
                alq_view v;
                view(nodes[k], &v);
                if (at < b0 + v.K) {
                    done += v.n;
                    break;
                }
                b0 += v.K;
            }
        }
    }
    /* highest slot first: removing plane i leaves the lower planes' slots as they are */
    qsort(order, cut, sizeof *order, desc_u32);
    base = 0;
    size_t next = 0;
    for (int k = 0; k < count && next < cut; k++) {
        if (nodes[k]->spec.q != &qat_q_alq) continue;
        alq_view v;
        view(nodes[k], &v);
        base += v.K;
    }
    /* walk the nodes from the last, matching the descending slots */
    for (int k = count - 1; k >= 0 && next < cut; k--) {
        if (nodes[k]->spec.q != &qat_q_alq) continue;
        alq_view v;
        view(nodes[k], &v);
        base -= v.K;
        for (; next < cut && order[next] >= base; next++) {
            size_t c = order[next] - base, g = c / (size_t)v.imax;
            int i = (int)(c % (size_t)v.imax);
            if (i < v.I[g]) prune_one(&v, g, i);
        }
    }
}

static void alq_step_all(qat_qnode *const *nodes, int count, const qat_owned_step *s, qat_rng *rng)
{
    for (int k = 0; k < count; k++)
        if (nodes[k]->spec.q == &qat_q_alq) node_step(nodes[k], s);
    if (s->phase == QAT_PHASE_PRUNE) prune(nodes, count, s, rng);
}

static size_t alq_step_scratch(const qat_qnode *n, int threads)
{
    alq_view v;
    QAT_ASSERT(grouping(n, &v.gp) == QAT_OK);
    size_t K = v.gp.G * (size_t)n->bits;
    return v.gp.n * v.gp.G + (size_t)threads * 6 * v.gp.n + 4 * K;
}

void qat_alq_node_get(const qat_qnode *n, qat_alq_node *out)
{
    QAT_ASSERT(n->spec.q == &qat_q_alq && n->state);
    alq_view v;
    view(n, &v);
    *out = (qat_alq_node){.gp = v.gp, .imax = v.imax, .I = v.I, .B = v.B, .alpha = v.alpha, .m = v.ma, .v = v.va,
                          .vmax = v.vmax, .latent = v.latent, .latent_ok = (int)v.h->latent_ok, .t_alpha = v.h->t_alpha};
}

/* ---- checkpoints, storage ------------------------------------------------- */
static qat_status alq_load_state(qat_qnode *n, const void *state, size_t bytes, const char *from)
{
    QAT_ASSERT(bytes == n->state_bytes);
    void *keep = n->state;
    n->state = (void *)state; /* a view of the candidate; nothing is taken until it passes */
    alq_view v;
    view(n, &v);
    n->state = keep;
    const char *w = n->out->name;
    if (v.h->magic != ALQ_MAGIC || v.h->imax != (uint32_t)v.imax || v.h->n != v.n || v.h->G != v.G)
        return qat_error_set(QAT_ERR_FORMAT, "%s: ALQ state of '%s': header says %llu groups of %llu, %u planes; this "
                             "layer has %zu groups of %zu, %d planes", from, w, (unsigned long long)v.h->G,
                             (unsigned long long)v.h->n, v.h->imax, v.G, v.n, v.imax);
    for (size_t g = 0; g < v.G; g++) {
        if (v.I[g] > v.imax)
            return qat_error_set(QAT_ERR_FORMAT, "%s: ALQ state of '%s': group %zu has %d planes, at most %d", from, w, g,
                                 v.I[g], v.imax);
        for (int i = 0; i < v.imax; i++) {
            size_t c = g * (size_t)v.imax + (size_t)i;
            int liv = i < v.I[g];
            if (!isfinite(v.alpha[c]) || (liv && v.alpha[c] < 0) || !isfinite(v.ma[c]) || !(v.va[c] >= 0) ||
                !(v.vmax[c] >= 0) || isinf(v.va[c]) || isinf(v.vmax[c]))
                return qat_error_set(QAT_ERR_FORMAT, "%s: ALQ state of '%s': coordinate %d of group %zu (alpha %g, "
                                     "moments %g %g %g) is not a finite %s", from, w, i, g, (double)v.alpha[c],
                                     (double)v.ma[c], (double)v.va[c], (double)v.vmax[c],
                                     liv ? "alpha >= 0 with v >= 0" : "value");
            const int8_t *B = v.B + c * v.n;
            for (size_t j = 0; j < v.n; j++)
                if (liv ? (B[j] != 1 && B[j] != -1) : B[j] != 0)
                    return qat_error_set(QAT_ERR_FORMAT, "%s: ALQ state of '%s': sign %d of plane %d of group %zu, "
                                         "element %zu; expected %s", from, w, B[j], i, g, j, liv ? "+-1" : "0 (a pruned plane)");
        }
    }
    for (size_t j = 0; j < v.N; j++)
        if (!isfinite(v.latent[j]))
            return qat_error_set(QAT_ERR_FORMAT, "%s: ALQ state of '%s': latent weight %zu is not finite", from, w, j);
    memcpy(n->state, state, bytes);
    return QAT_OK;
}

static void counts(const qat_qnode *n, size_t *G, size_t *sum, size_t *gn)
{
    alq_view v;
    view(n, &v);
    size_t s = 0;
    for (size_t g = 0; g < v.G; g++) s += v.I[g];
    *G = v.G, *sum = s, *gn = v.n;
}

/* Sec. 5.4.1 (spec §10): bases, float32 coordinates and the I_g table */
static uint64_t alq_storage_bits(const qat_qnode *n)
{
    size_t G, sum, gn;
    counts(n, &G, &sum, &gn);
    return qat_alq_storage_bits(gn, G, sum, n->bits);
}

static double alq_avg_bits(const qat_qnode *n)
{
    size_t G, sum, gn;
    counts(n, &G, &sum, &gn);
    return G ? (double)sum / (double)G : 0;
}

const qat_quantizer qat_q_alq = {
    .name = "alq", .roles = QAT_QROLE_WEIGHT, .default_bits = 6, .min_bits = 1, .max_bits = QAT_ALQ_MAX_BITS,
    .forward = alq_forward, .backward = alq_backward, .levels = alq_levels, .owns_weights = 1, .needs_amsgrad = 1,
    .state_size = alq_state_size, .init_owned = alq_init_owned, .load_state = alq_load_state,
    .step_all = alq_step_all, .step_scratch = alq_step_scratch, .check = alq_check,
    .storage_bits = alq_storage_bits, .avg_bits = alq_avg_bits,
    .opts_size = sizeof(alq_opts), QAT_QKEYS(alq_keys),
};
