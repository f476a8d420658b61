/* test_alq_node.c: the alq weight quantizer as a node (quantizers/alq.c) on
 * two owned weights at once, a linear [4, 64] (sub-channel-wise, groups of
 * 64) and a conv [3, 2, 3, 3] (channel-wise, groups of 18), stepped with
 * an AMSGrad optimizer over both, on 2 threads:
 *   - the float view is B alpha of the sketched state;
 *   - a basis step does not increase Eq. 10's model of the loss, its alpha
 *     solves Eq. 23's normal equations, and the alpha moments are rebuilt
 *     as spec section 6.4 says;
 *   - a coordinate step is Eq. 21's AMSGrad step on B^T G, worked in double;
 *   - pruning (linear and geometric schedules) removes exactly the
 *     coordinates of smallest Eq. 13 score over both layers together;
 *   - the STE phase starts its latent weights from w_hat and moves them to
 *     tau = w - g / H;
 *   - a state loads back as saved, and broken ones are refused naming the
 *     group and element. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alq.h"
#include "qat_test.h"

#define NN 2

typedef struct {
    qat_graph g;
    qat_qnode n[NN];
    qat_tensor *w[NN], *y[NN];
    qat_optim o;
    float *scratch;
    size_t N;
} alq_rig;

static void build(alq_rig *r, int prune, float target, float pr, float top_k)
{
    memset(r, 0, sizeof *r);
    CHECK(qat_graph_init(&r->g, 1, 2, 11) == QAT_OK, "graph");
    int s1[2] = {4, 64}, s2[4] = {3, 2, 3, 3};
    const int *shapes[NN] = {s1, s2};
    int ndims[NN] = {2, 4};
    for (int k = 0; k < NN; k++) {
        qat_qspec s;
        qat_qspec_default(&s);
        s.q = qat_quantizer_find("alq");
        s.bits = 4;
        CHECK(qat_qspec_set(&s, "alq_prune", prune) == QAT_OK && qat_qspec_set(&s, "alq_target_bits", target) == QAT_OK &&
                  qat_qspec_set(&s, "alq_pr", pr) == QAT_OK && qat_qspec_set(&s, "alq_top_k", top_k) == QAT_OK,
              "settings: %s", qat_last_error());
        char name[8];
        snprintf(name, sizeof name, "w%d", k);
        r->w[k] = qat_quantize_owned(&r->g, &r->n[k], &s, ndims[k], shapes[k], name);
        CHECK(r->w[k] != NULL, "build %s: %s", name, qat_last_error());
        r->y[k] = qat_mean(&r->g, r->w[k]);
    }
    CHECK(qat_graph_compile(&r->g, r->y, NN) == QAT_OK, "compile: %s", qat_last_error());
    qat_rng rng;
    qat_rng_seed(&rng, 5);
    size_t scratch = 0;
    for (int k = 0; k < NN; k++) {
        r->n[k].owned_off = r->N;
        r->N += r->w[k]->n;
        for (size_t j = 0; j < r->w[k]->n; j++) r->w[k]->x[j] = 0.2f * qat_rng_normal(&rng);
        qat_qnode_init(&r->n[k], &rng); /* sketched from those floats */
        scratch += r->n[k].spec.q->step_scratch(&r->n[k], r->g.threads);
    }
    qat_optim_cfg oc;
    qat_optim_cfg_default(&oc, QAT_OPTIM_AMSGRAD);
    CHECK(qat_optim_init(&r->o, &oc, r->N) == QAT_OK, "optim");
    r->scratch = malloc(sizeof(float) * scratch);
}

static void rig_free(alq_rig *r)
{
    for (int k = 0; k < NN; k++) qat_qnode_free(&r->n[k]);
    qat_optim_free(&r->o);
    qat_graph_free(&r->g);
    free(r->scratch);
}

/* forward (the float views), then gradients G drawn from rng */
static void forward_grads(alq_rig *r, qat_rng *rng)
{
    qat_graph_zero_grad(&r->g);
    qat_graph_forward(&r->g);
    for (int k = 0; k < NN; k++)
        for (size_t j = 0; j < r->w[k]->n; j++) r->w[k]->g[j] = 0.05f * qat_rng_normal(rng);
}

static void step(alq_rig *r, qat_phase_kind ph, float lr)
{
    qat_optim_begin_step(&r->o);
    qat_owned_step s = {.optim = &r->o, .lr = lr, .scratch = r->scratch, .g = &r->g, .phase = ph,
                        .phase_step = 0, .phase_steps = 1, .steps_per_epoch = 1, .phase_kind_left = 1};
    qat_qnode *nodes[NN] = {&r->n[0], &r->n[1]};
    qat_rng rng;
    qat_rng_seed(&rng, 3);
    r->n[0].spec.q->step_all(nodes, NN, &s, &rng);
    qat_graph_forward(&r->g); /* the new views */
}

/* group g of node k is the contiguous slice [g n, (g + 1) n) for both
 * shapes here. The view is B a 2^-F with a = round(alpha 2^F), F the
 * largest with every a <= 32767 / I_max: integers times the scale */
static void test_view(void)
{
    alq_rig r;
    build(&r, 0, 1, 0.8f, 0.005f);
    qat_graph_forward(&r.g);
    for (int k = 0; k < NN; k++) {
        qat_alq_node a;
        qat_alq_node_get(&r.n[k], &a);
        CHECK(a.gp.n == (k ? 18u : 64u) && a.gp.G == (k ? 3u : 4u), "node %d: %zu groups of %zu", k, a.gp.G, a.gp.n);
        float top = 0;
        for (size_t c = 0; c < a.gp.G * 4; c++) top = fmaxf(top, a.alpha[c]);
        int F = 0;
        while (ldexp(top, F + 1) <= 32767 / 4) F++;
        CHECK(ldexp(top, F) <= 32767 / 4 && ldexp(top, F) > 32767 / 8, "F %d", F);
        double scale = ldexp(1, -F);
        CHECK(r.n[k].buf->x[0] == (float)scale, "node %d: scale %g, want 2^-%d", k, r.n[k].buf->x[0], F);
        qat_levels lv;
        r.n[k].spec.q->levels(&r.n[k], &lv);
        CHECK(lv.lo == -32767 && lv.hi == 32767 && lv.step == 1 && lv.scale[0] == (float)scale, "codebook");
        int bad = 0;
        double err = 0;
        for (size_t g = 0; g < a.gp.G; g++) {
            CHECK(a.I[g] == 4, "node %d group %zu sketched to %d planes, want 4", k, g, a.I[g]);
            for (size_t j = 0; j < a.gp.n; j++) {
                long W = 0;
                double exact = 0;
                for (int i = 0; i < 4; i++) {
                    W += lrint(ldexp(a.alpha[g * 4 + (size_t)i], F)) * a.B[(g * 4 + (size_t)i) * a.gp.n + j];
                    exact += (double)a.alpha[g * 4 + (size_t)i] * a.B[(g * 4 + (size_t)i) * a.gp.n + j];
                }
                bad += r.w[k]->x[g * a.gp.n + j] != (float)((double)W * scale);
                err = fmax(err, fabs(exact - r.w[k]->x[g * a.gp.n + j]));
            }
        }
        CHECK(bad == 0, "node %d: %d view values differ from B a 2^-F", k, bad);
        CHECK(err <= 4 * 0.5 * scale, "node %d: the fixed point moves a weight by %g > 4 half units", k, err);
    }
    printf("view: the float views are B a 2^-F of the sketched groups, integers times the scale\n");
    rig_free(&r);
}

/* w_hat = B alpha in double (the state's float coordinates) */
static double what(const qat_alq_node *a, size_t g, size_t j)
{
    double s = 0;
    for (int i = 0; i < a->I[g]; i++)
        s += (double)a->alpha[g * 4 + (size_t)i] * a->B[(g * 4 + (size_t)i) * a->gp.n + j];
    return s;
}

static void test_basis(void)
{
    alq_rig r;
    build(&r, 0, 1, 0.8f, 0.005f);
    qat_rng rng;
    qat_rng_seed(&rng, 9);
    for (int it = 0; it < 3; it++) { /* a few steps, so the moments differ from the first step's */
        forward_grads(&r, &rng);
        float *before = malloc(sizeof(float) * r.N), *mh = malloc(sizeof(float) * r.N), *vh = malloc(sizeof(float) * r.N);
        for (int k = 0; k < NN; k++) memcpy(before + r.n[k].owned_off, r.w[k]->x, sizeof(float) * r.w[k]->n);
        float lr = 0.01f;
        step(&r, QAT_PHASE_BASIS, lr);
        qat_optim_moments(&r.o, 0, r.N, mh, vh);
        double f = 0, scale = 0;
        for (int k = 0; k < NN; k++) {
            qat_alq_node a;
            qat_alq_node_get(&r.n[k], &a);
            size_t n = a.gp.n, off = r.n[k].owned_off;
            for (size_t g = 0; g < a.gp.G; g++) {
                double nrm[QAT_ALQ_MAX_BITS] = {0}, ma[QAT_ALQ_MAX_BITS] = {0}, va[QAT_ALQ_MAX_BITS] = {0}, sH = 0;
                for (size_t j = 0; j < n; j++) {
                    size_t p = g * n + j;
                    double gj = lr * (double)mh[off + p], H = sqrt((double)vh[off + p]) + r.o.cfg.eps;
                    double d = what(&a, g, j) - before[off + p], tau = before[off + p] - gj / H;
                    f += gj * d + 0.5 * H * d * d; /* Eq. 10 */
                    sH += H * (fabs(what(&a, g, j)) + fabs(tau));
                    scale += gj * gj / H;
                    for (int i = 0; i < a.I[g]; i++) { /* B^T H (B alpha - tau) */
                        double b = a.B[(g * 4 + (size_t)i) * n + j];
                        nrm[i] += b * H * (what(&a, g, j) - tau);
                        ma[i] += b * r.o.m[off + p];
                        va[i] += r.o.v[off + p];
                    }
                }
                for (int i = 0; i < a.I[g]; i++) {
                    /* the normal equations, B^T H (B alpha - tau) = -lambda alpha, up to float rounding */
                    CHECK(fabs(nrm[i]) <= 1e-5 * sH + 2e-6 * a.alpha[g * 4 + (size_t)i],
                          "node %d group %zu plane %d: B^T H (B alpha - tau) = %g (scale %g)", k, g, i, nrm[i], sH);
                    CHECK(fabs(a.m[g * 4 + (size_t)i] - ma[i]) <= 1e-5 * (fabs(ma[i]) + 1e-6) &&
                              fabs(a.v[g * 4 + (size_t)i] - va[i]) <= 1e-5 * va[i],
                          "node %d group %zu plane %d: alpha moments %g %g, want B^T m = %g, sum v = %g", k, g, i,
                          a.m[g * 4 + (size_t)i], a.v[g * 4 + (size_t)i], ma[i], va[i]);
                    CHECK(a.alpha[g * 4 + (size_t)i] >= 0, "negative alpha");
                }
            }
        }
        /* keeping B and alpha scores 0: the step may only lower the model */
        CHECK(f <= 1e-6 * scale, "step %d: Eq. 10 model %g > 0 (scale %g)", it, f, scale);
        printf("basis step %d: Eq. 10 model %.3g (<= 0), normal equations and moments hold\n", it, f);
        free(before), free(mh), free(vh);
    }
    rig_free(&r);
}

/* a default rig (geometric pruning) with gradients drawn from seed; with
 * warm, one basis step first and new gradients (moments and t_alpha that
 * are not zero) */
static void start(alq_rig *r, qat_rng *rng, uint64_t seed, int warm)
{
    build(r, 0, 1, 0.8f, 0.005f);
    qat_rng_seed(rng, seed);
    forward_grads(r, rng);
    if (!warm) return;
    step(r, QAT_PHASE_BASIS, 0.01f);
    forward_grads(r, rng);
}

static void test_coord(void)
{
    alq_rig r;
    qat_rng rng;
    start(&r, &rng, 21, 1);
    float lr = 1e-3f;
    double b1 = 0.9, b2 = 0.999, eps = r.o.cfg.eps;
    int checked = 0;
    double want[NN][4 * 4];
    for (int k = 0; k < NN; k++) {
        qat_alq_node a;
        qat_alq_node_get(&r.n[k], &a);
        double t = (double)a.t_alpha + 1, bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
        for (size_t g = 0; g < a.gp.G; g++)
            for (int i = 0; i < a.I[g]; i++) {
                size_t c = g * 4 + (size_t)i;
                double ga = 0;
                for (size_t j = 0; j < a.gp.n; j++) ga += a.B[c * a.gp.n + j] * (double)r.w[k]->g[g * a.gp.n + j];
                double m = b1 * a.m[c] + (1 - b1) * ga, v = b2 * a.v[c] + (1 - b2) * ga * ga;
                double vm = v > a.vmax[c] ? v : a.vmax[c];
                want[k][c] = a.alpha[c] - lr / bc1 * m / (sqrt(vm) / sqrt(bc2) + eps); /* Eq. 21 */
            }
    }
    step(&r, QAT_PHASE_COORD, lr);
    for (int k = 0; k < NN; k++) {
        qat_alq_node a;
        qat_alq_node_get(&r.n[k], &a);
        for (size_t g = 0; g < a.gp.G; g++)
            for (int i = 0; i < a.I[g]; i++, checked++) {
                size_t c = g * 4 + (size_t)i;
                /* a coordinate that went negative flipped with its plane */
                CHECK(fabs(a.alpha[c] - fabs(want[k][c])) <= 1e-5 * fabs(want[k][c]) + 1e-7,
                      "node %d coordinate %zu: %.9g, want |%.9g|", k, c, a.alpha[c], want[k][c]);
            }
    }
    printf("coordinate step: %d coordinates match Eq. 21 in double\n", checked);
    rig_free(&r);
}

typedef struct {
    double score;
    int k;
    size_t g;
    float alpha;
} coord;

static int by_score(const void *a, const void *b)
{
    double x = ((const coord *)a)->score, y = ((const coord *)b)->score;
    return x < y ? -1 : x > y;
}

/* every live coordinate's Eq. 13 score after the pruning step's moment
 * update (the moments predicted from the state before it), sorted */
static size_t scores(alq_rig *r, float lr, coord *out, uint64_t *bits, uint64_t *weights)
{
    double b1 = 0.9, b2 = 0.999, eps = r->o.cfg.eps;
    size_t n = 0;
    *bits = *weights = 0;
    for (int k = 0; k < NN; k++) {
        qat_alq_node a;
        qat_alq_node_get(&r->n[k], &a);
        double t = (double)a.t_alpha + 1, bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
        *weights += a.gp.n * a.gp.G;
        for (size_t g = 0; g < a.gp.G; g++)
            for (int i = 0; i < a.I[g]; i++) {
                size_t c = g * 4 + (size_t)i;
                double ga = 0;
                for (size_t j = 0; j < a.gp.n; j++) ga += a.B[c * a.gp.n + j] * (double)r->w[k]->g[g * a.gp.n + j];
                double m = b1 * a.m[c] + (1 - b1) * ga, v = b2 * a.v[c] + (1 - b2) * ga * ga;
                double vm = v > a.vmax[c] ? v : a.vmax[c];
                double gal = lr / bc1 * m, H = sqrt(vm) / sqrt(bc2) + eps, al = a.alpha[c];
                out[n++] = (coord){-gal * al + 0.5 * H * al * al, k, g, a.alpha[c]}; /* Eq. 13 */
                *bits += a.gp.n;
            }
    }
    qsort(out, n, sizeof *out, by_score);
    return n;
}

/* the coordinates that remain are exactly all but out[0..cut) */
static void expect_pruned(alq_rig *r, const coord *c, size_t n, size_t cut, const char *what)
{
    int missing = 0, kept = 0;
    for (size_t q = 0; q < n; q++) {
        qat_alq_node a;
        qat_alq_node_get(&r->n[c[q].k], &a);
        int found = 0;
        for (int i = 0; i < a.I[c[q].g]; i++) found |= a.alpha[c[q].g * 4 + (size_t)i] == c[q].alpha;
        if (q < cut) kept += found;
        else missing += !found;
    }
    CHECK(kept == 0 && missing == 0, "%s: %d of the %zu lowest scores kept, %d others removed", what, kept, cut, missing);
}

static void test_prune(void)
{
    coord c[2 * 4 * 7];
    uint64_t bits, weights;
    /* linear: down to 2.5 bits per weight in one pruning epoch of one step */
    alq_rig r;
    build(&r, 1, 2.5f, 0.8f, 0.005f);
    qat_rng rng;
    qat_rng_seed(&rng, 33);
    forward_grads(&r, &rng);
    step(&r, QAT_PHASE_BASIS, 0.01f);
    forward_grads(&r, &rng);
    /* an lr at which both terms of Eq. 13 decide the order (at 1e-3 the
     * gradient term hardly counts, spec section 12.3) */
    float lr = 0.05f;
    size_t n = scores(&r, lr, c, &bits, &weights);
    uint64_t target = (uint64_t)ceil(2.5 * (double)weights), done = 0;
    size_t cut = 0;
    for (; done < bits - target; cut++) done += c[cut].k ? 18 : 64;
    step(&r, QAT_PHASE_PRUNE, lr);
    expect_pruned(&r, c, n, cut, "linear");
    uint64_t after = 0;
    for (int k = 0; k < NN; k++) {
        qat_alq_node a;
        qat_alq_node_get(&r.n[k], &a);
        for (size_t g = 0; g < a.gp.G; g++) after += a.I[g] * a.gp.n;
    }
    CHECK(after <= target && after + 64 > target, "linear: %llu weight bits after, target %llu",
          (unsigned long long)after, (unsigned long long)target);
    printf("prune linear: the %zu lowest Eq. 13 scores of both layers went, %.3f bits per weight (target 2.5)\n", cut,
           (double)after / (double)weights);
    rig_free(&r);

    /* geometric, every coordinate proposed (top_k 1): int(live pr / T) go */
    build(&r, 0, 1, 0.3f, 1.0f);
    qat_rng_seed(&rng, 34);
    forward_grads(&r, &rng);
    step(&r, QAT_PHASE_BASIS, 0.01f);
    forward_grads(&r, &rng);
    n = scores(&r, lr, c, &bits, &weights);
    cut = (size_t)((double)n * 0.3f / 1.0f);
    step(&r, QAT_PHASE_PRUNE, lr);
    expect_pruned(&r, c, n, cut, "geometric");
    printf("prune geometric: the %zu lowest of %zu scores went\n", cut, n);
    /* pruned planes are zero and their coordinates 0 */
    int bad = 0;
    for (int k = 0; k < NN; k++) {
        qat_alq_node a;
        qat_alq_node_get(&r.n[k], &a);
        for (size_t g = 0; g < a.gp.G; g++)
            for (int i = a.I[g]; i < 4; i++) {
                bad += a.alpha[g * 4 + (size_t)i] != 0;
                for (size_t j = 0; j < a.gp.n; j++) bad += a.B[(g * 4 + (size_t)i) * a.gp.n + j] != 0;
            }
    }
    CHECK(bad == 0, "%d nonzero entries in pruned planes", bad);
    rig_free(&r);
}

static void test_ste(void)
{
    alq_rig r;
    qat_rng rng;
    start(&r, &rng, 41, 0);
    float *w0 = malloc(sizeof(float) * r.N), *mh = malloc(sizeof(float) * r.N), *vh = malloc(sizeof(float) * r.N);
    for (int k = 0; k < NN; k++) memcpy(w0 + r.n[k].owned_off, r.w[k]->x, sizeof(float) * r.w[k]->n);
    float lr = 0.01f;
    step(&r, QAT_PHASE_STE, lr);
    qat_optim_moments(&r.o, 0, r.N, mh, vh);
    int bad = 0;
    for (int k = 0; k < NN; k++) {
        qat_alq_node a;
        qat_alq_node_get(&r.n[k], &a);
        CHECK(a.latent_ok, "latent weights not marked");
        for (size_t j = 0; j < r.w[k]->n; j++) {
            size_t q = r.n[k].owned_off + j;
            double tau = w0[q] - lr * (double)mh[q] / (sqrt((double)vh[q]) + r.o.cfg.eps);
            bad += fabs(a.latent[j] - tau) > 1e-6 * fabs(tau) + 1e-7;
        }
    }
    CHECK(bad == 0, "%d latent weights differ from w_hat - g / H", bad);
    printf("ste: latent weights start from w_hat and step to tau\n");
    free(w0), free(mh), free(vh);
    rig_free(&r);
}

static void expect_refused(qat_qnode *n, const void *st, const char *want, const char *what)
{
    qat_status s = n->spec.q->load_state(n, st, n->state_bytes, "x.ckpt");
    CHECK(s == QAT_ERR_FORMAT && strstr(qat_last_error(), want) && strstr(qat_last_error(), "x.ckpt"),
          "%s: status %d '%s', want '%s'", what, (int)s, s ? qat_last_error() : "", want);
}

static void test_state(void)
{
    alq_rig r;
    build(&r, 0, 1, 0.8f, 0.005f);
    qat_qnode *n = &r.n[1];
    size_t bytes = n->state_bytes;
    unsigned char *good = malloc(bytes), *bad = malloc(bytes);
    memcpy(good, n->state, bytes);
    CHECK(n->spec.q->load_state(n, good, bytes, "x.ckpt") == QAT_OK && memcmp(n->state, good, bytes) == 0,
          "a valid state: %s", qat_last_error());
    qat_alq_node a;
    qat_alq_node_get(n, &a);
    const unsigned char *base = n->state;
    size_t oI = (size_t)((const unsigned char *)a.I - base), oB = (size_t)((const unsigned char *)a.B - base),
           oA = (size_t)((const unsigned char *)a.alpha - base), oV = (size_t)((const unsigned char *)a.v - base);
    memcpy(bad, good, bytes);
    bad[oI + 2] = 5;
    expect_refused(n, bad, "group 2 has 5 planes", "I_g > I_max");
    memcpy(bad, good, bytes);
    bad[oB + 18 + 7] = 0; /* group 0, plane 1, element 7 */
    expect_refused(n, bad, "plane 1 of group 0, element 7", "a zero sign in a live plane");
    memcpy(bad, good, bytes);
    float neg = -1;
    memcpy(bad + oA + sizeof(float) * 5, &neg, sizeof neg); /* group 1, coordinate 1 */
    expect_refused(n, bad, "coordinate 1 of group 1", "a negative alpha");
    memcpy(bad, good, bytes);
    float nan = NAN;
    memcpy(bad + oV, &nan, sizeof nan);
    expect_refused(n, bad, "coordinate 0 of group 0", "a NaN moment");
    memcpy(bad, good, bytes);
    bad[8] ^= 1; /* the header's group size */
    expect_refused(n, bad, "header says", "another layer's state");
    CHECK(memcmp(n->state, good, bytes) == 0, "a refused state changed the node");
    printf("state: loads back, 5 broken states refused by group and element\n");
    free(good), free(bad);
    rig_free(&r);
}

/* ---- alq_act: Eq. 24-26 ------------------------------------------------------------ */
typedef struct {
    qat_graph g;
    qat_qnode n;
    qat_tensor *x, *y;
} act_rig;

static void act_build(act_rig *r, int bits, size_t count)
{
    memset(r, 0, sizeof *r);
    qat_graph_init(&r->g, 1, 1, 3);
    int shape[2] = {1, (int)count};
    r->x = qat_graph_param(&r->g, "x", 2, shape, QAT_T_PARAM);
    qat_qspec s;
    qat_qspec_default(&s);
    s.q = qat_quantizer_find("alq_act");
    s.bits = bits;
    r->y = qat_quantize(&r->g, &r->n, &s, QAT_QROLE_ACT, r->x, "aq");
    CHECK(r->y && qat_graph_compile(&r->g, &r->y, 1) == QAT_OK, "alq_act build: %s", qat_last_error());
    qat_qnode_init(&r->n, &r->g.rng);
}

/* gamma' = [x_ref, gamma_1..I] of the node */
static float *act_gamma(act_rig *r) { return r->n.buf->x + 2 + 1; }

static void act_levels(const float *gp, int I, float *lev)
{
    for (int c = 0; c < (1 << I); c++) {
        float v = gp[0];
        for (int k = 0; k < I; k++) v += (c >> k & 1) ? gp[1 + k] : -gp[1 + k];
        lev[c] = v;
    }
}

static void test_act(void)
{
    enum { N = 4000, I = 2 };
    act_rig r;
    act_build(&r, I, N);
    qat_rng rng;
    qat_rng_seed(&rng, 77);
    for (int i = 0; i < N; i++) r.x->x[i] = 2.0f * qat_rng_normal(&rng);
    qat_graph_set_training(&r.g, 0);
    qat_graph_forward(&r.g);
    /* the first batch spreads 4 levels evenly over [0, mean + 3 std of max(x, 0)] */
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        double v = r.x->x[i] > 0 ? r.x->x[i] : 0;
        s += v, s2 += v * v;
    }
    double hi = s / N + 3 * sqrt(s2 / N - (s / N) * (s / N));
    float lev[4], *gp = act_gamma(&r);
    act_levels(gp, I, lev);
    double want[4] = {0, hi / 3, 2 * hi / 3, hi}; /* codes 0 (b = -1, -1), 2, 1, 3 in level order */
    int order[4] = {0, 2, 1, 3};
    for (int k = 0; k < 4; k++)
        CHECK(fabs(lev[order[k]] - want[k]) <= 1e-5 * hi, "first levels: level %d is %g, want %g", k, lev[order[k]],
              want[k]);
    /* every output is the nearest level */
    int bad = 0;
    for (int i = 0; i < N; i++) {
        float best = lev[0];
        for (int c = 1; c < 4; c++)
            if (fabsf(r.x->x[i] - lev[c]) < fabsf(r.x->x[i] - best)) best = lev[c];
        bad += r.y->x[i] != best;
    }
    CHECK(bad == 0, "%d outputs are not the nearest level", bad);
    /* a training forward: gamma' <- 0.9 gamma' + 0.1 (D'^T D')^-1 D'^T x (Eq. 25-26),
     * the normal equations solved here by Cramer's rule on the 3 x 3 system */
    float g0[3] = {gp[0], gp[1], gp[2]};
    double A[3][3] = {{0}}, b[3] = {0};
    for (int i = 0; i < N; i++) {
        int c = 0;
        for (int k = 1; k < 4; k++)
            if (fabsf(r.x->x[i] - lev[k]) < fabsf(r.x->x[i] - lev[c])) c = k;
        double d[3] = {1, (c & 1) ? 1 : -1, (c & 2) ? 1 : -1};
        for (int p = 0; p < 3; p++) {
            b[p] += d[p] * r.x->x[i];
            for (int q = 0; q < 3; q++) A[p][q] += d[p] * d[q];
        }
    }
#define DET3(M) (M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) - M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) + \
                 M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]))
    double det = DET3(A), fit[3];
    for (int p = 0; p < 3; p++) {
        double M[3][3];
        memcpy(M, A, sizeof M);
        for (int q = 0; q < 3; q++) M[q][p] = b[q];
        fit[p] = DET3(M) / det;
    }
    qat_graph_set_training(&r.g, 1);
    qat_graph_zero_grad(&r.g);
    qat_graph_forward(&r.g);
    for (int p = 0; p < 3; p++) {
        double w = 0.9 * g0[p] + 0.1 * fabs(fit[p]) * (p ? 1 : fit[p] < 0 ? -1 : 1);
        CHECK(fabs(gp[p] - w) <= 1e-5 * fabs(w) + 1e-6, "Eq. 26: gamma'[%d] = %.7g, want %.7g", p, gp[p], w);
    }
    /* the backward passes the gradient inside the span of the levels the forward used */
    for (int i = 0; i < N; i++) r.y->g[i] = 1;
    qat_graph_backward_seeded(&r.g);
    bad = 0;
    for (int i = 0; i < N; i++) bad += r.x->g[i] != ((r.x->x[i] >= lev[0] && r.x->x[i] <= lev[3]) ? 1.0f : 0.0f);
    CHECK(bad == 0, "%d gradients outside the straight-through mask", bad);
    /* data on the levels of another gamma': from near it, repeated training
     * forwards move gamma' onto it (the alternation of nearest codes and
     * Eq. 25 is a Lloyd-like descent: from far away it can settle elsewhere) */
    float target[3] = {1.5f, 1.0f, 0.5f}, tl[4];
    act_levels(target, I, tl);
    for (int i = 0; i < N; i++) r.x->x[i] = tl[i % 4] + 0.01f * qat_rng_normal(&rng);
    gp[0] = 1.7f, gp[1] = 0.9f, gp[2] = 0.6f;
    for (int it = 0; it < 200; it++) qat_graph_forward(&r.g);
    for (int p = 0; p < 3; p++)
        CHECK(fabs(gp[p] - target[p]) < 0.01, "gamma'[%d] = %g after 200 batches on levels of %g", p, gp[p], target[p]);
    printf("alq_act: first levels, nearest codes, Eq. 25-26's refit, the STE mask, convergence to the data's levels\n");
    qat_qnode_free(&r.n);
    qat_graph_free(&r.g);
}

int main(void)
{
    test_act();
    test_view();
    test_basis();
    test_coord();
    test_prune();
    test_ste();
    test_state();
    printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
