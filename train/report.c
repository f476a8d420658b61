/* report.c: qat report: reads what runs wrote (metrics.jsonl, hist/ CSVs,
 * summary.json, last.ckpt) and writes one HTML page of SVG charts (svg.h),
 * tables and the config; the page is built in memory and written
 * atomically. Also qat summary's per-layer row and export --verify's record. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "export.h"
#include "report.h"
#include "svg.h"

/* ---- JSON, flattened: {"a": 1, "b": {"c": 2}} gives a = 1, b.c = 2 -------- */
typedef struct {
    char *key;
    double num; /* NaN for null and strings */
    char *str;  /* a string value, or NULL */
} jfield;

typedef struct {
    jfield *f;
    int n, cap;
} jobj;

typedef struct {
    const char *s, *p, *end;
    const char *file;
    int line;
} jparse;

static void jobj_free(jobj *o)
{
    for (int i = 0; i < o->n; i++) {
        free(o->f[i].key);
        free(o->f[i].str);
    }
    free(o->f);
    memset(o, 0, sizeof *o);
}

static qat_status jerr(const jparse *j, const char *what)
{
    return qat_error_set(QAT_ERR_FORMAT, "%s:%d: byte %ld: %s", j->file, j->line, (long)(j->p - j->s) + 1, what);
}

static qat_status jadd(jobj *o, const char *key, double num, char *str)
{
    if (o->n == o->cap) {
        int nc = o->cap ? o->cap * 2 : 32;
        jfield *f = realloc(o->f, sizeof *f * (size_t)nc);
        if (!f) return qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
        o->f = f;
        o->cap = nc;
    }
    char *k = strdup(key);
    if (!k) return qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
    o->f[o->n++] = (jfield){k, num, str};
    return QAT_OK;
}

static void jws(jparse *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

/* a string at j->p (after its opening quote is checked here) into a new
 * allocation; \u escapes outside ASCII become '?' (names and paths qat
 * writes are ASCII or raw UTF-8, which passes through) */
static qat_status jstring(jparse *j, char **out)
{
    if (j->p >= j->end || *j->p != '"') return jerr(j, "expected a string");
    const char *q = ++j->p;
    size_t cap = 16, n = 0;
    char *b = malloc(cap);
    if (!b) return qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
    for (; q < j->end && *q != '"'; q++) {
        char ch = *q;
        if ((unsigned char)ch < 0x20) {
            free(b);
            j->p = q;
            return jerr(j, "control character in a string");
        }
        if (ch == '\\') {
            if (++q >= j->end) break;
            switch (*q) {
            case 'n': ch = '\n'; break;
            case 't': ch = '\t'; break;
            case 'r': ch = '\r'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case '"': case '\\': case '/': ch = *q; break;
            case 'u': {
                unsigned v = 0;
                for (int i = 1; i <= 4; i++) {
                    char h = q + i < j->end ? q[i] : 0;
                    int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                            : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                    if (d < 0) {
                        free(b);
                        j->p = q;
                        return jerr(j, "bad \\u escape");
                    }
                    v = v * 16 + (unsigned)d;
                }
                q += 4;
                ch = v < 0x80 ? (char)v : '?';
                break;
            }
            default:
                free(b);
                j->p = q;
                return jerr(j, "bad escape in a string");
            }
        }
        if (n + 2 > cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                return qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
            }
            b = nb;
        }
        b[n++] = ch;
    }
    if (q >= j->end) {
        free(b);
        j->p = q;
        return jerr(j, "string not closed");
    }
    b[n] = 0;
    j->p = q + 1;
    *out = b;
    return QAT_OK;
}

static qat_status jvalue(jparse *j, const char *path, jobj *o, int depth)
{
    jws(j);
    if (j->p >= j->end) return jerr(j, "expected a value");
    if (depth > 8) return jerr(j, "nested too deep");
    char c = *j->p;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        jws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return QAT_OK;
        }
        for (int i = 0;; i++) {
            char key[256];
            if (c == '{') {
                char *k;
                qat_status st = jstring(j, &k);
                if (st) return st;
                snprintf(key, sizeof key, "%s%s%s", path, *path ? "." : "", k);
                free(k);
                jws(j);
                if (j->p >= j->end || *j->p != ':') return jerr(j, "expected ':' after a key");
                j->p++;
            } else {
                snprintf(key, sizeof key, "%s%s%d", path, *path ? "." : "", i);
            }
            qat_status st = jvalue(j, key, o, depth + 1);
            if (st) return st;
            jws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                jws(j);
                continue;
            }
            if (j->p < j->end && *j->p == close) {
                j->p++;
                return QAT_OK;
            }
            return jerr(j, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    if (c == '"') {
        char *s;
        qat_status st = jstring(j, &s);
        if (st) return st;
        if ((st = jadd(o, path, NAN, s))) free(s);
        return st;
    }
    static const struct {
        const char *word;
        double v;
    } words[] = {{"true", 1}, {"false", 0}, {"null", NAN}};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i].word);
        if ((size_t)(j->end - j->p) >= n && !strncmp(j->p, words[i].word, n)) {
            j->p += n;
            return jadd(o, path, words[i].v, NULL);
        }
    }
    char buf[64];
    size_t n = 0;
    while (j->p + n < j->end && n < sizeof buf - 1 && strchr("+-0123456789.eE", j->p[n])) n++;
    memcpy(buf, j->p, n);
    buf[n] = 0;
    char *e;
    double v = strtod(buf, &e);
    if (n == 0 || *e) return jerr(j, "expected a number, a string, true, false, null, an object or an array");
    j->p += n;
    return jadd(o, path, v, NULL);
}

/* one JSON object in [s, end) into o */
static qat_status json_parse(const char *s, size_t len, const char *file, int line, jobj *o)
{
    jparse j = {s, s, s + len, file, line};
    jws(&j);
    if (j.p >= j.end || *j.p != '{') return jerr(&j, "expected '{'");
    qat_status st = jvalue(&j, "", o, 0);
    if (st) return st;
    jws(&j);
    return j.p < j.end ? jerr(&j, "text after the object") : QAT_OK;
}

static double jnum(const jobj *o, const char *key)
{
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->f[i].key, key)) return o->f[i].num;
    return NAN;
}

static const char *jstr(const jobj *o, const char *key)
{
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->f[i].key, key)) return o->f[i].str;
    return NULL;
}

/* a whole file into a NUL-terminated allocation; *missing when it does not exist */
static qat_status read_text(const char *path, char **out, size_t *len, int *missing)
{
    *out = NULL;
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) {
            *missing = 1;
            return QAT_OK;
        }
        return qat_error_set(QAT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    size_t cap = 4096, n = 0, r;
    char *b = malloc(cap);
    while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!b) return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory", path);
    if (bad) {
        free(b);
        return qat_error_set(QAT_ERR_IO, "%s: read error", path);
    }
    b[n] = 0;
    *out = b;
    *len = n;
    return QAT_OK;
}

/* ---- a run on disk ---------------------------------------------------------- */
typedef struct {
    char layer[64], kind[16]; /* kind: weight, weight_train, act */
    int epoch, nb;
    double *x, *frac; /* bin centres, fraction of the values in each bin */
} hist;

typedef struct {
    const char *dir;
    char label[256];
    jobj *ep; /* one per metrics line */
    int nep;
    jobj sum;
    int has_sum;
    hist *h;
    int nh;
    int has_model;
    char model_note[1400]; /* why the model is not there */
    int epochs;           /* the run's epochs and dataset (its --epochs and --dataset too, */
    char dataset[32];     /* qat_checkpoint_open_model), 0 and "" without a checkpoint */
    qat_model m;
    qat_cfg cfg;
    qat_net_cfg net;
} run;

static void run_free(run *r)
{
    for (int i = 0; i < r->nep; i++) jobj_free(&r->ep[i]);
    free(r->ep);
    jobj_free(&r->sum);
    for (int i = 0; i < r->nh; i++) {
        free(r->h[i].x);
        free(r->h[i].frac);
    }
    free(r->h);
    if (r->has_model) qat_model_free(&r->m);
    qat_cfg_free(&r->cfg);
}

/* RUN/name (read_text); path receives its path */
static qat_status read_run_file(const run *r, const char *name, char path[1200], char **text, size_t *len, int *missing)
{
    snprintf(path, 1200, "%s/%s", r->dir, name);
    return read_text(path, text, len, missing);
}

static qat_status read_metrics(run *r)
{
    char path[1200], *text;
    size_t len;
    int missing;
    qat_status st = read_run_file(r, "metrics.jsonl", path, &text, &len, &missing);
    if (st) return st;
    if (missing) return qat_error_set(QAT_ERR_IO, "%s: not found: is %s a run folder (qat train --out)?", path, r->dir);
    int line = 0;
    for (char *p = text; p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        line++;
        if (!nl) break; /* the line a running trainer is writing */
        if (nl > p) {
            jobj *e = realloc(r->ep, sizeof *e * (size_t)(r->nep + 1));
            if (!e) {
                st = qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
                break;
            }
            r->ep = e;
            memset(&e[r->nep], 0, sizeof e[0]);
            st = json_parse(p, (size_t)(nl - p), path, line, &e[r->nep]);
            r->nep++;
            if (st) break;
            if (!isfinite(jnum(&e[r->nep - 1], "epoch"))) {
                st = qat_error_set(QAT_ERR_FORMAT, "%s:%d: no \"epoch\" number", path, line);
                break;
            }
        }
        p = nl + 1;
    }
    free(text);
    return st;
}

static qat_status read_summary(run *r)
{
    char path[1200], *text;
    size_t len;
    int missing;
    qat_status st = read_run_file(r, "summary.json", path, &text, &len, &missing);
    if (st || missing) return st;
    st = json_parse(text, len, path, 1, &r->sum);
    r->has_sum = st == QAT_OK;
    free(text);
    return st;
}

static qat_status read_hist_csv(const char *path, hist *h)
{
    char *text;
    size_t len;
    int missing;
    qat_status st = read_text(path, &text, &len, &missing);
    if (st) return st;
    if (missing) return qat_error_set(QAT_ERR_IO, "%s: vanished while being read", path);
    int cap = 0, line = 1;
    double total = 0;
    char *p = strchr(text, '\n');
    if (strncmp(text, "bin_lo,bin_hi,count", 19) != 0 || !p) {
        free(text);
        return qat_error_set(QAT_ERR_FORMAT, "%s:1: expected the header bin_lo,bin_hi,count", path);
    }
    for (p++; *p; line++) {
        char *nl = strchr(p, '\n');
        if (!nl) break; /* being written */
        double lo, hi, count;
        int used = 0;
        if (sscanf(p, "%lf,%lf,%lf%n", &lo, &hi, &count, &used) != 3 || p + used != nl || !(hi > lo) || !(count >= 0)) {
            free(text);
            return qat_error_set(QAT_ERR_FORMAT, "%s:%d: expected bin_lo,bin_hi,count with bin_lo < bin_hi, count >= 0",
                                 path, line + 1);
        }
        if (h->nb == cap) {
            cap = cap ? cap * 2 : 256;
            double *x = realloc(h->x, sizeof *x * (size_t)cap), *fr = x ? realloc(h->frac, sizeof *fr * (size_t)cap) : NULL;
            if (x) h->x = x;
            if (fr) h->frac = fr;
            if (!x || !fr) {
                free(text);
                return qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
            }
        }
        h->x[h->nb] = 0.5 * (lo + hi);
        h->frac[h->nb++] = count;
        total += count;
        p = nl + 1;
    }
    free(text);
    for (int i = 0; i < h->nb; i++) h->frac[i] = total > 0 ? h->frac[i] / total : 0;
    return QAT_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* hist/<layer>.<kind>.eNNN.csv, in byte order of their names */
static qat_status read_hists(run *r)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/hist", r->dir);
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? QAT_OK : qat_error_set(QAT_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0;
    qat_status st = QAT_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 10 || strcmp(de->d_name + len - 4, ".csv") != 0) continue;
        char **nn = realloc(names, sizeof *nn * (size_t)(n + 1));
        if (!nn || !(nn[n] = strdup(de->d_name))) {
            names = nn ? nn : names;
            st = qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
            break;
        }
        names = nn;
        n++;
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; st == QAT_OK && i < n; i++) {
        /* conv1.weight.e005.csv: the epoch after the last ".e", the kind before it */
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(strlen(names[i]) - 4), names[i]);
        char *e = strrchr(base, '.');
        char *end;
        long epoch = e && e[1] == 'e' ? strtol(e + 2, &end, 10) : -1;
        if (epoch < 0 || *end) continue; /* not one of ours */
        *e = 0;
        char *k = strrchr(base, '.');
        if (!k || k == base) continue;
        *k++ = 0;
        hist *h = realloc(r->h, sizeof *h * (size_t)(r->nh + 1));
        if (!h) {
            st = qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
            break;
        }
        r->h = h;
        h = &r->h[r->nh++];
        memset(h, 0, sizeof *h);
        snprintf(h->layer, sizeof h->layer, "%.63s", base);
        snprintf(h->kind, sizeof h->kind, "%.15s", k);
        h->epoch = (int)epoch;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        st = read_hist_csv(path, h);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

static qat_status run_read(run *r, const char *dir)
{
    memset(r, 0, sizeof *r);
    r->dir = dir;
    qat_status st;
    if ((st = read_metrics(r)) || (st = read_summary(r)) || (st = read_hists(r))) return st;
    char ckpt[1200];
    snprintf(ckpt, sizeof ckpt, "%s/last.ckpt", dir);
    struct stat sb;
    if (stat(ckpt, &sb) != 0) {
        snprintf(r->model_note, sizeof r->model_note, "%s: not there (a run writes it after each epoch); the layer table, the quantizer levels and the config come from it", ckpt);
    } else if (qat_checkpoint_open_model(ckpt, 1, 1, &r->m, &r->cfg, &r->net) != QAT_OK) {
        snprintf(r->model_note, sizeof r->model_note, "%s", qat_last_error());
        qat_cfg_free(&r->cfg);
    } else {
        r->has_model = 1;
        r->epochs = r->net.epochs;
        snprintf(r->dataset, sizeof r->dataset, "%s", r->net.dataset);
    }
    return QAT_OK;
}

/* ---- qat summary's row ------------------------------------------------------ */

/* MINW-Net's Table I rules (aqe-minw-net.txt, Sec. IV): the operation
 * follows the smaller bit width of inputs and weights (<= 2 XNOR, 3 SHIFT;
 * with the other side in float, "... ADDER"; both float MAC). */
static const char *minw_operation(int m, int n)
{
    int lo = m < n ? m : n, hi = m < n ? n : m;
    if (lo >= 16) return "MAC";
    const char *op = lo <= 2 ? "XNOR" : lo == 3 ? "SHIFT" : "MAC";
    if (hi >= 16) return lo <= 2 ? "XNOR ADDER" : lo == 3 ? "SHIFT ADDER" : "MAC";
    return op;
}

void qat_report_layer_row(const qat_layer *l, qat_layer_row *r)
{
    memset(r, 0, sizeof *r);
    char shape[64];
    qat_tensor o = *l->out;
    o.shape[0] = 1;
    qat_tensor_shape_str(&o, shape, sizeof shape);
    /* drop the batch from the shape: "[1, 20, 24, 24]" -> "[20, 24, 24]" */
    char *p = strchr(shape, ',');
    snprintf(r->out, sizeof r->out, "[%s", p ? p + 2 : shape + 1);
    const qat_tensor *ts[4] = {l->w, l->b, l->gamma, l->beta};
    for (int i = 0; i < 4; i++)
        if (ts[i]) r->params += ts[i]->n;
    r->macs = l->macs;
    snprintf(r->wq, sizeof r->wq, "-");
    snprintf(r->aq, sizeof r->aq, "-");
    r->op = "";
    r->bits = 32.0 * (double)r->params;
    int conv = l->w && (strcmp(l->type->section, "conv2d") == 0 || strcmp(l->type->section, "linear") == 0);
    if (!conv) return;
    int wb = qat_qspec_bits(&l->wspec), ab = qat_qspec_bits(&l->aspec);
    snprintf(r->aq, sizeof r->aq, "%s/%d", l->aspec.q ? l->aspec.q->name : "float", ab);
    if (l->wq.out && l->wq.spec.q->avg_bits) { /* its own count: ALQ's average bits and storage */
        snprintf(r->wq, sizeof r->wq, "%s/%.2f", l->wq.spec.q->name, qat_layer_weight_bits(l));
        r->bits += (double)qat_qnode_storage_bits(&l->wq) - 32.0 * (double)l->w->n;
    } else {
        snprintf(r->wq, sizeof r->wq, "%s/%d", l->wspec.q ? l->wspec.q->name : "float", wb);
        r->bits += ((double)wb - 32.0) * (double)l->w->n;
    }
    r->op = minw_operation(ab, wb);
}

/* ---- export --verify's record ------------------------------------------------ */
qat_status qat_report_write_verify(const char *model_path, const qat_verify_record *v)
{
    char path[4096], *text = NULL;
    size_t len = 0;
    if (snprintf(path, sizeof path, "%s.verify.json", model_path) >= (int)sizeof path)
        return qat_error_set(QAT_ERR_ARG, "%s: path too long", model_path);
    FILE *f = open_memstream(&text, &len);
    if (!f) return qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
    fprintf(f, "{\"checkpoint\": \"");
    for (const char *s = v->checkpoint; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fprintf(f, "\", \"bytes\": %zu, \"weight_bytes\": %zu, \"float_bytes\": %zu, \"exact\": %s, \"n\": %d, "
               "\"differ\": %d, \"differ_near_ties\": %d, \"float_acc\": %.6f, \"int_acc\": %.6f}\n",
            v->bytes, v->weight_bytes, v->float_bytes, v->exact ? "true" : "false", v->n, v->differ, v->differ_ties,
            v->float_acc, v->int_acc);
    if (fclose(f) != 0 || !text) {
        free(text);
        return qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
    }
    qat_status st = qat_export_write_file(path, (const uint8_t *)text, len);
    free(text);
    return st;
}

/* ---- the page ------------------------------------------------------------------ */

/* a metric over the epochs of a run: x = epoch, y = value (NaN where absent) */
typedef struct {
    double *x, *y;
    int n;
} curve;

static int curve_get(const run *r, const char *key, curve *c)
{
    c->n = r->nep;
    c->x = malloc(sizeof(double) * (size_t)(r->nep ? r->nep : 1));
    c->y = malloc(sizeof(double) * (size_t)(r->nep ? r->nep : 1));
    if (!c->x || !c->y) return 0;
    int any = 0;
    for (int i = 0; i < r->nep; i++) {
        c->x[i] = jnum(&r->ep[i], "epoch");
        c->y[i] = jnum(&r->ep[i], key);
        /* -1 stands for "no validation split" */
        if (!strncmp(key, "val_", 4) && c->y[i] < 0) c->y[i] = NAN;
        any |= isfinite(c->y[i]);
    }
    return any;
}

static void curve_free(curve *c, int n)
{
    for (int i = 0; i < n; i++) {
        free(c[i].x);
        free(c[i].y);
    }
}

/* the names k of keys "PREFIX.k" (or "PREFIX.k.SUFFIX") over every epoch, in order of appearance */
static int key_names(const run *r, const char *prefix, const char *suffix, char names[][64], int cap)
{
    int n = 0;
    size_t pl = strlen(prefix), sl = suffix ? strlen(suffix) : 0;
    for (int e = 0; e < r->nep; e++)
        for (int i = 0; i < r->ep[e].n; i++) {
            const char *k = r->ep[e].f[i].key;
            size_t kl = strlen(k);
            if (strncmp(k, prefix, pl) != 0 || k[pl] != '.' || kl <= pl + 1 + sl) continue;
            if (suffix && (strcmp(k + kl - sl, suffix) != 0 || k[kl - sl - 1] != '.')) continue;
            if (!suffix && strchr(k + pl + 1, '.')) continue;
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(kl - pl - 1 - (suffix ? sl + 1 : 0)), k + pl + 1);
            int seen = 0;
            for (int j = 0; j < n && !seen; j++) seen = !strcmp(names[j], name);
            if (!seen && n < cap) snprintf(names[n++], 64, "%s", name);
        }
    return n;
}

typedef struct {
    const char *key, *label;
    int dash;
} metric;

/* one chart of several metrics of one run */
static void chart_metrics(FILE *f, const run *r, const qat_svg_chart *c, const metric *ms, int nm)
{
    curve cv[8];
    qat_svg_series s[8];
    int ns = 0;
    for (int i = 0; i < nm && i < 8; i++) {
        if (curve_get(r, ms[i].key, &cv[ns]))
            s[ns] = (qat_svg_series){cv[ns].x, cv[ns].y, cv[ns].n, ms[i].label, i, ms[i].dash}, ns++;
        else
            curve_free(&cv[ns], 1);
    }
    qat_svg_chart_write(f, c, s, ns);
    curve_free(cv, ns);
}

/* one chart of the layers' values "PREFIX.layer[.SUFFIX]" */
static void chart_layers(FILE *f, const run *r, const qat_svg_chart *c, const char *prefix, const char *suffix)
{
    char names[32][64];
    int n = key_names(r, prefix, suffix, names, 32);
    curve cv[32];
    qat_svg_series s[32];
    for (int i = 0; i < n; i++) {
        char key[200];
        snprintf(key, sizeof key, "%s.%s%s%s", prefix, names[i], suffix ? "." : "", suffix ? suffix : "");
        curve_get(r, key, &cv[i]);
        s[i] = (qat_svg_series){cv[i].x, cv[i].y, cv[i].n, names[i], i, 0};
    }
    qat_svg_chart_write(f, c, s, n);
    curve_free(cv, n);
}

static int run_has(const run *r, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (int e = 0; e < r->nep; e++)
        for (int i = 0; i < r->ep[e].n; i++)
            if (!strncmp(r->ep[e].f[i].key, prefix, pl)) return 1;
    return 0;
}

static const qat_layer *model_layer(const run *r, const char *name)
{
    for (int i = 0; r->has_model && i < r->m.nlayers; i++)
        if (!strcmp(r->m.layers[i].name, name)) return &r->m.layers[i];
    return NULL;
}

/* a quantizer's levels as values (level x scale; the mean scale when there
 * is one per channel); 0 when it has none to draw, with note saying why */
static int quant_levels(const qat_qnode *q, double *out, int cap, char *note, size_t nn)
{
    note[0] = 0;
    if (!q->out || !q->spec.q || !q->spec.q->levels) return 0;
    qat_levels L;
    memset(&L, 0, sizeof L);
    q->spec.q->levels(q, &L);
    if (L.nscale < 1 || !L.scale) return 0;
    double scale = 0, zero = 0;
    for (int i = 0; i < L.nscale; i++) {
        scale += L.scale[i];
        zero += L.zero ? L.zero[i] : 0;
    }
    scale /= L.nscale;
    zero /= L.nscale;
    int n = L.table ? L.ntable : L.step > 0 ? (L.hi - L.lo) / L.step + 1 : 0;
    if (n <= 0) return 0;
    if (n > cap) {
        snprintf(note, nn, "%s: %d levels (too many to mark)", q->spec.q->name, n);
        return 0;
    }
    for (int i = 0; i < n; i++) out[i] = (L.table ? L.table[i] : L.lo + i * L.step - zero) * scale;
    snprintf(note, nn, "%s levels%s", q->spec.q->name, L.nscale > 1 ? " (mean of per-channel scales)" : "");
    return n;
}

static const char *kind_title(const char *kind)
{
    if (!strcmp(kind, "weight")) return "latent weights";
    if (!strcmp(kind, "weight_train")) return "weights as training uses them";
    if (!strcmp(kind, "act")) return "input activations";
    return kind;
}

static void section_histograms(FILE *f, const run *r)
{
    if (!r->nh) return;
    fprintf(f, "<h3>Weight and activation distributions</h3>\n<p class=\"note\">Histograms of the epochs listed in "
               "<code>histograms =</code>; dashed lines: the quantizer's levels in the last checkpoint.</p>\n"
               "<div class=\"grid\">\n");
    for (int i = 0; i < r->nh; i++) {
        int first = 1;
        for (int j = 0; j < i && first; j++)
            first = strcmp(r->h[j].layer, r->h[i].layer) || strcmp(r->h[j].kind, r->h[i].kind);
        if (!first) continue;
        qat_svg_series s[16];
        char labels[16][24];
        int ns = 0;
        for (int j = i; j < r->nh && ns < 16; j++) {
            const hist *h = &r->h[j];
            if (strcmp(h->layer, r->h[i].layer) || strcmp(h->kind, r->h[i].kind)) continue;
            snprintf(labels[ns], sizeof labels[ns], "epoch %d", h->epoch);
            s[ns] = (qat_svg_series){h->x, h->frac, h->nb, labels[ns], ns, 0};
            ns++;
        }
        double marks[64];
        char note[128] = "";
        int nmarks = 0;
        const qat_layer *l = model_layer(r, r->h[i].layer);
        if (l) nmarks = quant_levels(strcmp(r->h[i].kind, "act") ? &l->wq : &l->aq, marks, 64, note, sizeof note);
        char id[128], title[160];
        snprintf(id, sizeof id, "hist-%s-%s", r->h[i].layer, r->h[i].kind);
        snprintf(title, sizeof title, "%s: %s", r->h[i].layer, kind_title(r->h[i].kind));
        qat_svg_chart c = {.id = id, .title = title, .xlabel = "value", .ylabel = "fraction", .logy = 0, .yzero = 1,
                           .steps = 1, .marks = marks, .nmarks = nmarks, .mark_label = note};
        fprintf(f, "<figure>");
        qat_svg_chart_write(f, &c, s, ns);
        if (!nmarks && note[0]) {
            fprintf(f, "<figcaption>");
            qat_svg_escape(f, note);
            fprintf(f, "</figcaption>");
        }
        fprintf(f, "</figure>\n");
    }
    fprintf(f, "</div>\n");
}

static void section_layers(FILE *f, const run *r)
{
    fprintf(f, "<h3>Layers</h3>\n");
    if (!r->has_model) {
        fprintf(f, "<p class=\"note\">No model: ");
        qat_svg_escape(f, r->model_note);
        fprintf(f, "</p>\n");
        return;
    }
    fprintf(f, "<table class=\"layers\"><tr><th>#</th><th>layer</th><th>type</th><th>output</th><th>params</th>"
               "<th>MACs</th><th>weights</th><th>input</th><th>stored KiB</th><th>fp32 KiB</th><th>op (Table I)</th></tr>\n");
    double packed = 0, full = 0;
    for (int i = 0; i < r->m.nlayers; i++) {
        const qat_layer *l = &r->m.layers[i];
        qat_layer_row row;
        qat_report_layer_row(l, &row);
        fprintf(f, "<tr><td>%d</td><td>", i);
        qat_svg_escape(f, l->name);
        fprintf(f, "</td><td>%s</td><td>%s</td><td>%zu</td><td>%lld</td><td>%s</td><td>%s</td><td>%.1f</td><td>%.1f</td>"
                   "<td>%s</td></tr>\n", l->type->section, row.out, row.params, row.macs, row.wq, row.aq,
                row.bits / 8192.0, 32.0 * (double)row.params / 8192.0, row.op);
        packed += row.bits / 8;
        full += 4.0 * (double)row.params;
    }
    fprintf(f, "</table>\n");
    double wb, wbytes, fbytes;
    qat_model_weight_storage(&r->m, &wb, &wbytes, &fbytes);
    fprintf(f, "<p>Parameters %.1f KiB stored, %.1f KiB as float32 (%.2fx). Weights alone, as the papers count them: "
               "<b>%.1f KB</b> against %.1f KB float32 (%.1fx), <b>%.3f bits</b> per weight on average.</p>\n",
            packed / 1024, full / 1024, packed > 0 ? full / packed : 1.0, wbytes / 1000, fbytes / 1000,
            wbytes > 0 ? fbytes / wbytes : 1.0, wb);
}

static void fmt_pct(char *b, size_t n, double v)
{
    if (isfinite(v) && v >= 0) snprintf(b, n, "%.2f %%", 100 * v);
    else snprintf(b, n, "-");
}

static void fmt_num(char *b, size_t n, const char *fmt, double v)
{
    if (isfinite(v)) snprintf(b, n, fmt, v);
    else snprintf(b, n, "-");
}

/* the last epoch's value of key, or NaN */
static double last_value(const run *r, const char *key)
{
    for (int e = r->nep - 1; e >= 0; e--) {
        double v = jnum(&r->ep[e], key);
        if (isfinite(v)) return v;
    }
    return NAN;
}

static void section_run(FILE *f, const run *r, int idx, const char *command)
{
    fprintf(f, "<section class=\"run\" data-run=\"%d\">\n<h2>", idx);
    qat_svg_escape(f, r->label);
    fprintf(f, "</h2>\n<p>");
    const char *cfgp = r->has_sum ? jstr(&r->sum, "config") : NULL;
    const char *ds = r->has_sum ? jstr(&r->sum, "dataset") : r->dataset[0] ? r->dataset : NULL;
    if (cfgp) {
        fprintf(f, "<code>");
        qat_svg_escape(f, cfgp);
        fprintf(f, "</code> ");
    }
    if (ds) {
        fprintf(f, "on ");
        qat_svg_escape(f, ds);
    }
    int total = r->has_sum ? (int)jnum(&r->sum, "epochs") : r->epochs;
    fprintf(f, ": %d epoch%s recorded", r->nep, r->nep == 1 ? "" : "s");
    if (total > 0) fprintf(f, " of %d", total);
    if (!r->has_sum) fprintf(f, " (no summary.json: the run is going on, or stopped before its end)");
    char a[32], b[32], c[32];
    fmt_pct(a, sizeof a, last_value(r, "test_acc"));
    fmt_pct(b, sizeof b, r->has_sum ? jnum(&r->sum, "best_val_acc") : NAN);
    fmt_num(c, sizeof c, "%.0f", last_value(r, "images_per_s"));
    fprintf(f, ". Last test accuracy <b>%s</b>, best validation accuracy %s, %s images/s.</p>\n", a, b, c);

    fprintf(f, "<h3>Training</h3>\n<div class=\"grid\">\n");
    static const metric loss[] = {{"train_loss", "train", 0}, {"val_loss", "validation", 1}, {"test_loss", "test", 2}};
    static const metric acc[] = {{"train_acc", "train", 0}, {"val_acc", "validation", 1}, {"test_acc", "test", 2}};
    static const metric lr[] = {{"lr", "learning rate", 0}};
    static const metric ips[] = {{"images_per_s", "training", 0}};
    chart_metrics(f, r, &(qat_svg_chart){.id = "loss", .title = "Loss", .xlabel = "epoch", .ylabel = "cross-entropy",
                                         .logy = -1, .yzero = 1, .xint = 1}, loss, 3);
    chart_metrics(f, r, &(qat_svg_chart){.id = "accuracy", .title = "Accuracy", .xlabel = "epoch",
                                         .ylabel = "accuracy", .xint = 1}, acc, 3);
    chart_metrics(f, r, &(qat_svg_chart){.id = "lr", .title = "Learning rate (last step of the epoch)",
                                         .xlabel = "epoch", .ylabel = "lr", .logy = -1, .yzero = 1, .xint = 1}, lr, 1);
    chart_metrics(f, r, &(qat_svg_chart){.id = "images_per_s", .title = "Training speed", .xlabel = "epoch",
                                         .ylabel = "images/s", .yzero = 1, .xint = 1}, ips, 1);
    fprintf(f, "</div>\n");

    if (run_has(r, "flip_ratio.") || run_has(r, "layers.") || run_has(r, "weight_bits.")) {
        fprintf(f, "<h3>Quantization</h3>\n<div class=\"grid\">\n");
        if (run_has(r, "flip_ratio."))
            chart_layers(f, r, &(qat_svg_chart){.id = "flip_ratio", .title = "Flip ratio of binary weights",
                                                .xlabel = "epoch", .ylabel = "signs changed", .logy = -1, .yzero = 1,
                                                .xint = 1}, "flip_ratio", NULL);
        if (run_has(r, "layers.")) {
            chart_layers(f, r, &(qat_svg_chart){.id = "sparsity", .title = "Sparsity (weights quantized to 0)",
                                                .xlabel = "epoch", .ylabel = "fraction", .yzero = 1, .xint = 1},
                         "layers", "sparsity");
            chart_layers(f, r, &(qat_svg_chart){.id = "near_level", .title = "Weights within 0.05 of a level",
                                                .xlabel = "epoch", .ylabel = "fraction", .yzero = 1, .xint = 1},
                         "layers", "near_level");
        }
        if (run_has(r, "weight_bits."))
            chart_layers(f, r, &(qat_svg_chart){.id = "weight_bits", .title = "Bits per weight, per layer",
                                                .xlabel = "epoch", .ylabel = "bits", .yzero = 1, .xint = 1},
                         "weight_bits", NULL);
        fprintf(f, "</div>\n");
    }
    section_layers(f, r);
    section_histograms(f, r);

    fprintf(f, "<h3>Config and command</h3>\n<p>Command: <code>");
    const char *cmd = r->has_sum ? jstr(&r->sum, "command") : NULL;
    if (!cmd) cmd = command;
    qat_svg_escape(f, cmd ? cmd : "not recorded (summary.json keeps it, written when a run ends)");
    fprintf(f, "</code></p>\n");
    if (r->has_model) {
        fprintf(f, "<pre class=\"config\">");
        qat_svg_escape(f, r->cfg.text);
        fprintf(f, "</pre>\n");
    }
    fprintf(f, "</section>\n");
}

/* several runs: their curves overlaid, one colour per run */
static void section_compare(FILE *f, const run *rs, int n)
{
    static const struct {
        const char *key, *id, *title, *ylabel;
        int logy, yzero;
    } cmp[] = {
        {"test_acc", "cmp-test_acc", "Test accuracy", "accuracy", 0, 0},
        {"val_acc", "cmp-val_acc", "Validation accuracy", "accuracy", 0, 0},
        {"train_loss", "cmp-train_loss", "Training loss", "cross-entropy", -1, 1},
        {"test_loss", "cmp-test_loss", "Test loss", "cross-entropy", -1, 1},
        {"lr", "cmp-lr", "Learning rate", "lr", -1, 1},
        {"images_per_s", "cmp-images_per_s", "Training speed", "images/s", 0, 1},
        {"avg_weight_bits", "cmp-avg_weight_bits", "Average bits per weight", "bits", 0, 1},
    };
    fprintf(f, "<section class=\"compare\">\n<h2>%d runs compared</h2>\n<div class=\"grid\">\n", n);
    curve *cv = calloc((size_t)n, sizeof *cv);
    qat_svg_series *s = calloc((size_t)n, sizeof *s);
    if (!cv || !s) {
        free(cv);
        free(s);
        return;
    }
    for (size_t k = 0; k < sizeof cmp / sizeof cmp[0]; k++) {
        int any = 0;
        for (int i = 0; i < n; i++) {
            any |= curve_get(&rs[i], cmp[k].key, &cv[i]);
            s[i] = (qat_svg_series){cv[i].x, cv[i].y, cv[i].n, rs[i].label, i, 0};
        }
        if (any) {
            qat_svg_chart c = {.id = cmp[k].id, .title = cmp[k].title, .xlabel = "epoch", .ylabel = cmp[k].ylabel,
                               .logy = cmp[k].logy, .yzero = cmp[k].yzero, .xint = 1};
            qat_svg_chart_write(f, &c, s, n);
        }
        curve_free(cv, n);
    }
    free(cv);
    free(s);
    fprintf(f, "</div>\n<table class=\"final\"><tr><th>run</th><th>config</th><th>epochs</th><th>train loss</th>"
               "<th>test loss</th><th>test acc</th><th>best val acc</th><th>images/s</th><th>bits/weight</th>"
               "<th>weights KB</th></tr>\n");
    for (int i = 0; i < n; i++) {
        const run *r = &rs[i];
        char tl[32], el[32], ta[32], va[32], ip[32], wb[32], kb[32];
        fmt_num(tl, sizeof tl, "%.4f", last_value(r, "train_loss"));
        fmt_num(el, sizeof el, "%.4f", last_value(r, "test_loss"));
        fmt_pct(ta, sizeof ta, last_value(r, "test_acc"));
        fmt_pct(va, sizeof va, r->has_sum ? jnum(&r->sum, "best_val_acc") : NAN);
        fmt_num(ip, sizeof ip, "%.0f", last_value(r, "images_per_s"));
        double bits = r->has_sum ? jnum(&r->sum, "avg_weight_bits") : last_value(r, "avg_weight_bits");
        double wkb = r->has_sum ? jnum(&r->sum, "weight_kb") : last_value(r, "weight_kb");
        fmt_num(wb, sizeof wb, "%.3f", bits);
        fmt_num(kb, sizeof kb, "%.1f", wkb);
        fprintf(f, "<tr><td><span class=\"swatch\" style=\"background:%s\"></span>", qat_svg_color(i));
        qat_svg_escape(f, r->label);
        fprintf(f, "</td><td>");
        const char *cfgp = r->has_sum ? jstr(&r->sum, "config") : NULL;
        qat_svg_escape(f, cfgp ? cfgp : "-");
        fprintf(f, "</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
                r->nep, tl, el, ta, va, ip, wb, kb);
    }
    fprintf(f, "</table>\n</section>\n");
}

static qat_status section_model(FILE *f, const char *path, const run *rs, int n)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return qat_error_set(QAT_ERR_IO, "%s: %s", path, strerror(errno));
    char vpath[4200], *text;
    size_t len;
    int missing;
    snprintf(vpath, sizeof vpath, "%s.verify.json", path);
    qat_status st = read_text(vpath, &text, &len, &missing);
    if (st) return st;
    jobj v = {0};
    if (!missing) {
        st = json_parse(text, len, vpath, 1, &v);
        free(text);
        if (st) {
            jobj_free(&v);
            return st;
        }
    }
    double fbytes = missing ? NAN : jnum(&v, "float_bytes");
    for (int i = 0; i < n && !isfinite(fbytes); i++) {
        double wb, wbytes, fb;
        if (rs[i].has_model) {
            qat_model_weight_storage(&rs[i].m, &wb, &wbytes, &fb);
            fbytes = fb;
        }
    }
    fprintf(f, "<section class=\"model\">\n<h2>Exported model</h2>\n<p><code>");
    qat_svg_escape(f, path);
    fprintf(f, "</code>: <b>%lld bytes</b> (%.1f KB)", (long long)sb.st_size, (double)sb.st_size / 1000);
    if (isfinite(fbytes) && sb.st_size > 0)
        fprintf(f, ", <b>%.1fx</b> smaller than the float32 weights (%.1f KB)", fbytes / (double)sb.st_size, fbytes / 1000);
    fprintf(f, ".</p>\n<p class=\"parity\">");
    if (missing) {
        fprintf(f, "Not verified: <code>qat export --verify</code> writes <code>");
        qat_svg_escape(f, vpath);
        fprintf(f, "</code>.");
    } else {
        int exact = jnum(&v, "exact") == 1;
        fprintf(f, "<code>qat export --verify</code> on %.0f test images: %s <b>%.0f</b> predictions differ "
                   "(%.0f of them near-ties); float model accuracy %.2f %%, integer model %.2f %%.",
                jnum(&v, "n"), exact ? "parity:" : "agreement (layers quantized after training or float arithmetic done in integers):", jnum(&v, "differ"),
                jnum(&v, "differ_near_ties"), 100 * jnum(&v, "float_acc"), 100 * jnum(&v, "int_acc"));
    }
    fprintf(f, "</p>\n</section>\n");
    jobj_free(&v);
    return QAT_OK;
}

static const char page_style[] =
    "body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:24px;color:#222;max-width:1460px}"
    "h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}"
    "h3{font-size:15px;margin:20px 0 8px}"
    ".grid{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{font-size:11px;color:#555}"
    "svg.chart{border:1px solid #ddd;background:#fff}"
    "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
    "td:nth-child(2),th:nth-child(2),table.final td:first-child{text-align:left}table{margin-top:12px}"
    "pre.config{background:#f6f6f6;padding:8px;font-size:11px;max-height:420px;overflow:auto}"
    ".note{color:#555;font-size:12px}.swatch{display:inline-block;width:12px;height:12px;margin-right:6px}"
    "details{margin-top:16px}summary{cursor:pointer;font-weight:bold}";

qat_status qat_report_write(const qat_report_opts *o)
{
    if (!o || o->nruns < 1 || !o->out) return qat_error_set(QAT_ERR_ARG, "qat report: no run folder or no output");
    run *rs = calloc((size_t)o->nruns, sizeof *rs);
    if (!rs) return qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
    qat_status st = QAT_OK;
    int nread = 0;
    for (; nread < o->nruns && st == QAT_OK; nread++) st = run_read(&rs[nread], o->runs[nread]);
    /* labels: the folder's last name, or the whole path when two runs share it */
    for (int i = 0; i < nread; i++) {
        const char *d = o->runs[i];
        size_t len = strlen(d);
        while (len > 1 && d[len - 1] == '/') len--;
        const char *b = d + len;
        while (b > d && b[-1] != '/') b--;
        snprintf(rs[i].label, sizeof rs[i].label, "%.*s", (int)(d + len - b), b);
    }
    for (int i = 0; i < nread; i++)
        for (int j = 0; j < nread; j++)
            if (i != j && !strcmp(rs[i].label, rs[j].label) && strcmp(rs[i].label, o->runs[i]) != 0) {
                snprintf(rs[i].label, sizeof rs[i].label, "%s", o->runs[i]);
                j = -1; /* compare again with the longer label */
            }
    char *text = NULL;
    size_t len = 0;
    FILE *f = st ? NULL : open_memstream(&text, &len);
    if (!st && !f) st = qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
    if (f) {
        fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>qat report: ");
        for (int i = 0; i < o->nruns; i++) {
            if (i) fputs(", ", f);
            qat_svg_escape(f, rs[i].label);
        }
        fprintf(f, "</title>\n<style>%s</style></head><body>\n<h1>qat report</h1>\n", page_style);
        if (o->nruns > 1) section_compare(f, rs, o->nruns);
        if (o->model) st = section_model(f, o->model, rs, o->nruns);
        for (int i = 0; !st && i < o->nruns; i++) {
            if (o->nruns > 1) {
                fprintf(f, "<details><summary>");
                qat_svg_escape(f, rs[i].label);
                fprintf(f, "</summary>\n");
            }
            section_run(f, &rs[i], i, o->command);
            if (o->nruns > 1) fprintf(f, "</details>\n");
        }
        fprintf(f, "</body></html>\n");
        if (fclose(f) != 0 && !st) st = qat_error_set(QAT_ERR_MEMORY, "report: out of memory");
        if (!st) st = qat_export_write_file(o->out, (const uint8_t *)text, len);
        free(text);
    }
    for (int i = 0; i < nread; i++) run_free(&rs[i]);
    free(rs);
    return st;
}
