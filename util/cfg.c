/* cfg.c: Darknet-style config parsing (see cfg.h). The text is parsed once
 * into sections of key/value strings; typed getters convert on demand so that
 * each bad value is reported with its file, line, section and key. */
#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_MAX_FILE (16u << 20)

/* ---- small helpers ---- */

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static const char *cfg_path(const qat_cfg *c) { return c->path ? c->path : "<text>"; }

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f'; }

static void trim(const char **p, size_t *n)
{
    while (*n > 0 && is_space(**p)) (*p)++, (*n)--;
    while (*n > 0 && is_space((*p)[*n - 1])) (*n)--;
}

/* Grows an array whose capacity is the next power of two of its count, so
 * that no separate capacity field is needed. Returns the (maybe moved) array
 * with room for one more element, or NULL (the old array is still valid). */
static void *grow(void *arr, int n, size_t elem)
{
    if (n > 0 && (n & (n - 1)) != 0) return arr;
    if (n >= INT_MAX / 2) return NULL;
    size_t cap = n == 0 ? 4 : (size_t)n * 2;
    return realloc(arr, cap * elem);
}

qat_status qat_cfg_error_at(const qat_cfg *c, int line, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) return qat_error_set(QAT_ERR_CONFIG, "%s:%d: %s", cfg_path(c), line, msg);
    return qat_error_set(QAT_ERR_CONFIG, "%s: %s", cfg_path(c), msg);
}

void qat_cfg_free(qat_cfg *c)
{
    if (!c) return;
    for (int i = 0; i < c->nsec; i++) {
        qat_cfg_section *s = &c->sec[i];
        for (int j = 0; j < s->nkv; j++) {
            free(s->kv[j].key);
            free(s->kv[j].val);
        }
        free(s->kv);
        free(s->name);
    }
    free(c->sec);
    free(c->text);
    free(c->path);
    memset(c, 0, sizeof *c);
}

/* ---- parsing ---- */

static qat_status oom(const qat_cfg *c)
{
    return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory while parsing the config", cfg_path(c));
}

static qat_status parse_header(qat_cfg *c, const char *p, size_t n, int line)
{
    /* p[0] == '[' and the line is trimmed and comment-free */
    const char *close = memchr(p, ']', n);
    if (!close)
        return qat_cfg_error_at(c, line, "unterminated section header '%.*s' (missing ']')",
                                (int)(n > 80 ? 80 : n), p);
    const char *name = p + 1;
    size_t nlen = (size_t)(close - name);
    const char *rest = close + 1;
    size_t rlen = n - (size_t)(rest - p);
    trim(&rest, &rlen);
    trim(&name, &nlen);
    if (rlen > 0)
        return qat_cfg_error_at(c, line, "unexpected text '%.*s' after section header [%.*s]",
                                (int)(rlen > 80 ? 80 : rlen), rest, (int)(nlen > 80 ? 80 : nlen),
                                name);
    if (nlen == 0) return qat_cfg_error_at(c, line, "empty section name '[]'");
    for (size_t i = 0; i < nlen; i++)
        if (name[i] == '[')
            return qat_cfg_error_at(c, line, "stray '[' in section header '%.*s'",
                                    (int)(n > 80 ? 80 : n), p);
    qat_cfg_section *secs = grow(c->sec, c->nsec, sizeof *c->sec);
    if (!secs) return oom(c);
    c->sec = secs;
    qat_cfg_section *s = &c->sec[c->nsec];
    memset(s, 0, sizeof *s);
    s->name = dup_n(name, nlen);
    if (!s->name) return oom(c);
    s->line = line;
    c->nsec++;
    return QAT_OK;
}

static qat_status parse_kv(qat_cfg *c, const char *p, size_t n, int line)
{
    const char *eq = memchr(p, '=', n);
    if (!eq)
        return qat_cfg_error_at(c, line, "expected '[section]' or 'key = value', got '%.*s'",
                                (int)(n > 80 ? 80 : n), p);
    const char *key = p;
    size_t klen = (size_t)(eq - p);
    const char *val = eq + 1;
    size_t vlen = n - klen - 1;
    trim(&key, &klen);
    trim(&val, &vlen);
    if (klen == 0)
        return qat_cfg_error_at(c, line, "empty key before '=' in '%.*s'", (int)(n > 80 ? 80 : n), p);
    for (size_t i = 0; i < klen; i++)
        if (is_space(key[i]))
            return qat_cfg_error_at(c, line, "key '%.*s' contains whitespace",
                                    (int)(klen > 80 ? 80 : klen), key);
    if (c->nsec == 0)
        return qat_cfg_error_at(c, line, "key '%.*s' appears before any [section] header",
                                (int)(klen > 80 ? 80 : klen), key);
    qat_cfg_section *s = &c->sec[c->nsec - 1];
    if (vlen == 0)
        return qat_cfg_error_at(c, line,
                                "[%s] key '%.*s' has no value (write '%.*s = VALUE' or remove the line)",
                                s->name, (int)(klen > 80 ? 80 : klen), key,
                                (int)(klen > 80 ? 80 : klen), key);
    for (int i = 0; i < s->nkv; i++)
        if (strlen(s->kv[i].key) == klen && memcmp(s->kv[i].key, key, klen) == 0)
            return qat_cfg_error_at(c, line, "duplicate key '%s' in [%s] (first set on line %d)",
                                    s->kv[i].key, s->name, s->kv[i].line);
    qat_cfg_kv *kvs = grow(s->kv, s->nkv, sizeof *s->kv);
    if (!kvs) return oom(c);
    s->kv = kvs;
    qat_cfg_kv *kv = &s->kv[s->nkv];
    kv->key = dup_n(key, klen);
    kv->val = dup_n(val, vlen);
    kv->line = line;
    kv->used = 0;
    if (!kv->key || !kv->val) {
        free(kv->key);
        free(kv->val);
        return oom(c);
    }
    s->nkv++;
    return QAT_OK;
}

static qat_status parse_lines(qat_cfg *c)
{
    const char *t = c->text;
    size_t len = c->text_len, pos = 0;
    int line = 0;
    /* a UTF-8 byte-order mark (editors on Windows write one) is not text */
    if (len >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    while (pos < len) {
        const char *nl = memchr(t + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - t) : len;
        if (line == INT_MAX) return qat_cfg_error_at(c, 0, "too many lines");
        line++;
        const char *p = t + pos;
        size_t n = end - pos;
        pos = end + 1;
        if (memchr(p, '\0', n)) return qat_cfg_error_at(c, line, "NUL byte in the text");
        for (size_t i = 0; i < n; i++)
            if (p[i] == '#' || p[i] == ';') {
                n = i;
                break;
            }
        trim(&p, &n);
        if (n == 0) continue;
        qat_status st = p[0] == '[' ? parse_header(c, p, n, line) : parse_kv(c, p, n, line);
        if (st != QAT_OK) return st;
    }
    return QAT_OK;
}

/* Takes ownership of path and text (both malloc'd; text NUL-terminated). */
static qat_status parse_owned(qat_cfg *c, char *path, char *text, size_t len)
{
    memset(c, 0, sizeof *c);
    c->path = path;
    c->text = text;
    c->text_len = len;
    qat_status st = parse_lines(c);
    if (st != QAT_OK) qat_cfg_free(c);
    return st;
}

qat_status qat_cfg_parse_text(qat_cfg *c, const char *name, const char *text, size_t len)
{
    QAT_ASSERT(c != NULL);
    QAT_ASSERT(text != NULL || len == 0);
    memset(c, 0, sizeof *c);
    if (!name) name = "<text>";
    char *path = dup_n(name, strlen(name));
    char *copy = malloc(len + 1);
    if (!path || !copy) {
        free(path);
        free(copy);
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory reading the config", name);
    }
    if (len) memcpy(copy, text, len);
    copy[len] = '\0';
    return parse_owned(c, path, copy, len);
}

qat_status qat_cfg_parse_file(qat_cfg *c, const char *path)
{
    QAT_ASSERT(c != NULL && path != NULL);
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f) return qat_error_set(QAT_ERR_IO, "%s: cannot open config: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory reading the config", path);
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= CFG_MAX_FILE) {
                free(buf);
                fclose(f);
                return qat_error_set(QAT_ERR_IO, "%s: config is larger than %u MiB", path,
                                     CFG_MAX_FILE >> 20);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory reading the config", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    int err = errno;
    fclose(f);
    if (bad) {
        free(buf);
        return qat_error_set(QAT_ERR_IO, "%s: cannot read config: %s", path, strerror(err));
    }
    buf[len] = '\0';
    char *p = dup_n(path, strlen(path));
    if (!p) {
        free(buf);
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory reading the config", path);
    }
    return parse_owned(c, p, buf, len);
}

/* ---- getters ---- */

static void note_asked(qat_cfg_section *s, const char *key)
{
    for (int i = 0; i < s->nasked; i++)
        if (strcmp(s->asked[i], key) == 0) return;
    if (s->nasked < QAT_CFG_MAX_ASKED) s->asked[s->nasked++] = key;
}

/* Records the key as asked; returns its entry (marked used) or NULL. */
static qat_cfg_kv *lookup(qat_cfg *c, qat_cfg_section *s, const char *key, const void *out)
{
    QAT_ASSERT(c != NULL && s != NULL && key != NULL && out != NULL);
    note_asked(s, key);
    for (int i = 0; i < s->nkv; i++)
        if (strcmp(s->kv[i].key, key) == 0) {
            s->kv[i].used = 1;
            return &s->kv[i];
        }
    return NULL;
}

static qat_status bad_value(const qat_cfg *c, const qat_cfg_section *s, const qat_cfg_kv *kv,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static qat_status bad_value(const qat_cfg *c, const qat_cfg_section *s, const qat_cfg_kv *kv,
                            const char *fmt, ...)
{
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qat_cfg_error_at(c, kv->line, "[%s] key '%s': %s", s->name, kv->key, msg);
}

/* Strict decimal integer, the whole string: 1 ok, 0 not an integer, -1 an
 * integer that does not fit in an int. */
static int parse_int(const char *p, size_t n, int *out)
{
    char tmp[64];
    if (n == 0) return 0;
    size_t digits = 0;
    for (size_t i = 0; i < n; i++) {
        if (isdigit((unsigned char)p[i])) digits++;
        else if (i > 0 || (p[i] != '-' && p[i] != '+')) return 0;
    }
    if (digits == 0) return 0;
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    long v = strtol(tmp, &end, 10);
    if (end != tmp + n) return 0;
    if (errno == ERANGE || v < INT_MIN || v > INT_MAX) return -1;
    *out = (int)v;
    return 1;
}

qat_status qat_cfg_get_int(qat_cfg *c, qat_cfg_section *s, const char *key, int def, int lo,
                           int hi, int *out)
{
    qat_cfg_kv *kv = lookup(c, s, key, out);
    if (!kv) {
        *out = def;
        return QAT_OK;
    }
    int v, r = parse_int(kv->val, strlen(kv->val), &v);
    if (r == 0) return bad_value(c, s, kv, "expected an integer, got '%.80s'", kv->val);
    if (r < 0) return bad_value(c, s, kv, "%.80s does not fit in an int", kv->val);
    if (v < lo || v > hi)
        return bad_value(c, s, kv, "%d is out of range [%d, %d]", v, lo, hi);
    *out = v;
    return QAT_OK;
}

qat_status qat_cfg_get_float(qat_cfg *c, qat_cfg_section *s, const char *key, float def,
                             float lo, float hi, float *out)
{
    qat_cfg_kv *kv = lookup(c, s, key, out);
    if (!kv) {
        *out = def;
        return QAT_OK;
    }
    const char *p = kv->val;
    char *end;
    errno = 0;
    float v = strtof(p, &end);
    if (end == p || *end != '\0')
        return bad_value(c, s, kv, "expected a number, got '%.80s'", p);
    if (errno == ERANGE)
        return bad_value(c, s, kv, "'%.80s' is out of the range of a float", p);
    if (!isfinite(v))
        return bad_value(c, s, kv, "expected a finite number, got '%.80s'", p);
    if (!(v >= lo && v <= hi))
        return bad_value(c, s, kv, "%g is out of range [%g, %g]", (double)v, (double)lo, (double)hi);
    *out = v;
    return QAT_OK;
}

qat_status qat_cfg_get_str(qat_cfg *c, qat_cfg_section *s, const char *key, const char *def,
                           const char **out)
{
    qat_cfg_kv *kv = lookup(c, s, key, out);
    *out = kv ? kv->val : def;
    return QAT_OK;
}

qat_status qat_cfg_get_bool(qat_cfg *c, qat_cfg_section *s, const char *key, int def, int *out)
{
    static const char *const names[] = {"0", "false", "no", "1", "true", "yes"};
    qat_cfg_kv *kv = lookup(c, s, key, out);
    if (!kv) {
        *out = def;
        return QAT_OK;
    }
    for (int i = 0; i < 6; i++)
        if (strcasecmp(kv->val, names[i]) == 0) {
            *out = i >= 3;
            return QAT_OK;
        }
    return bad_value(c, s, kv, "expected a boolean (0, 1, true, false, yes, no), got '%.80s'",
                     kv->val);
}

qat_status qat_cfg_get_enum(qat_cfg *c, qat_cfg_section *s, const char *key,
                            const char *const *names, int nnames, int def, int *out)
{
    QAT_ASSERT(names != NULL && nnames > 0);
    qat_cfg_kv *kv = lookup(c, s, key, out);
    if (!kv) {
        *out = def;
        return QAT_OK;
    }
    for (int i = 0; i < nnames; i++)
        if (strcmp(kv->val, names[i]) == 0) {
            *out = i;
            return QAT_OK;
        }
    char list[512];
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < nnames && used < sizeof list; i++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
    return bad_value(c, s, kv, "expected one of %s; got '%.80s'", list, kv->val);
}

/* The next comma-separated item of a list value at *p, trimmed (its length
 * in *len); *p moves past the comma, or becomes NULL after the last item. */
static const char *list_item(const char **p, size_t *len)
{
    const char *q = *p, *comma = strchr(q, ',');
    *len = comma ? (size_t)(comma - q) : strlen(q);
    *p = comma ? comma + 1 : NULL;
    trim(&q, len);
    return q;
}

qat_status qat_cfg_get_int_list(qat_cfg *c, qat_cfg_section *s, const char *key, int *out,
                                int cap, int *n)
{
    QAT_ASSERT(n != NULL && cap >= 0);
    qat_cfg_kv *kv = lookup(c, s, key, out);
    *n = 0;
    if (!kv) return QAT_OK;
    const char *p = kv->val;
    int count = 0;
    for (int item = 1; p; item++) {
        size_t len;
        const char *q = list_item(&p, &len);
        int v, r = parse_int(q, len, &v);
        if (len == 0)
            return bad_value(c, s, kv, "item %d of '%.80s' is empty (expected integers like '30,60,90')",
                             item, kv->val);
        if (r == 0)
            return bad_value(c, s, kv, "item %d: expected an integer, got '%.*s'", item,
                             (int)(len > 80 ? 80 : len), q);
        if (r < 0)
            return bad_value(c, s, kv, "item %d: %.*s does not fit in an int", item,
                             (int)(len > 80 ? 80 : len), q);
        if (count == cap)
            return bad_value(c, s, kv, "at most %d values are allowed", cap);
        out[count++] = v;
    }
    *n = count;
    return QAT_OK;
}

qat_status qat_cfg_get_float_list(qat_cfg *c, qat_cfg_section *s, const char *key, float lo,
                                  float hi, float *out, int cap, int *n)
{
    QAT_ASSERT(n != NULL && cap >= 0);
    qat_cfg_kv *kv = lookup(c, s, key, out);
    *n = 0;
    if (!kv) return QAT_OK;
    float vals[64];
    const char *p = kv->val;
    int count = 0;
    for (int item = 1; p; item++) {
        size_t len;
        const char *q = list_item(&p, &len);
        if (len == 0)
            return bad_value(c, s, kv, "item %d of '%.80s' is empty (expected numbers like '0.5, 0.5, 0.5')",
                             item, kv->val);
        char tmp[64];
        char *end;
        float v = 0;
        int ok = len < sizeof tmp;
        if (ok) {
            memcpy(tmp, q, len);
            tmp[len] = '\0';
            errno = 0;
            v = strtof(tmp, &end);
            ok = end == tmp + len;
        }
        if (!ok)
            return bad_value(c, s, kv, "item %d: expected a number, got '%.*s'", item,
                             (int)(len > 80 ? 80 : len), q);
        if (errno == ERANGE || !isfinite(v))
            return bad_value(c, s, kv, "item %d: expected a finite float, got '%s'", item, tmp);
        if (!(v >= lo && v <= hi))
            return bad_value(c, s, kv, "item %d: %g is out of range [%g, %g]", item, (double)v,
                             (double)lo, (double)hi);
        if (count == cap || count == 64)
            return bad_value(c, s, kv, "at most %d values are allowed", cap < 64 ? cap : 64);
        vals[count++] = v;
    }
    for (int i = 0; i < count; i++) out[i] = vals[i];
    *n = count;
    return QAT_OK;
}

int qat_cfg_has(const qat_cfg_section *s, const char *key)
{
    QAT_ASSERT(s != NULL && key != NULL);
    for (int i = 0; i < s->nkv; i++)
        if (strcmp(s->kv[i].key, key) == 0) return 1;
    return 0;
}

/* ---- unknown keys ---- */

/* Case-insensitive Levenshtein distance; -1 when either string is too long
 * to be worth a suggestion. */
static int edit_distance(const char *a, const char *b)
{
    enum { MAXL = 63 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAXL || lb > MAXL) return -1;
    int prev[MAXL + 1], cur[MAXL + 1];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int d = prev[j - 1] + sub;
            if (prev[j] + 1 < d) d = prev[j] + 1;
            if (cur[j - 1] + 1 < d) d = cur[j - 1] + 1;
            cur[j] = d;
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

qat_status qat_cfg_check_unused(const qat_cfg *c, const qat_cfg_section *s)
{
    QAT_ASSERT(c != NULL && s != NULL);
    const qat_cfg_kv *bad = NULL;
    int nbad = 0;
    for (int i = 0; i < s->nkv; i++)
        if (!s->kv[i].used) {
            if (!bad) bad = &s->kv[i];
            nbad++;
        }
    if (!bad) return QAT_OK;

    char more[64] = "";
    if (nbad > 1) snprintf(more, sizeof more, "; %d more unknown key%s", nbad - 1, nbad > 2 ? "s" : "");

    const char *best = NULL;
    int bestd = INT_MAX;
    size_t klen = strlen(bad->key);
    for (int i = 0; i < s->nasked; i++) {
        int d = edit_distance(bad->key, s->asked[i]);
        size_t alen = strlen(s->asked[i]);
        size_t longest = klen > alen ? klen : alen;
        /* close means at most 2 edits and at most a third of the word */
        if (d >= 0 && d <= 2 && (size_t)d * 3 <= longest && d < bestd) {
            best = s->asked[i];
            bestd = d;
        }
    }
    if (best)
        return qat_cfg_error_at(c, bad->line, "unknown key '%s' in [%s] (did you mean '%s'?%s)",
                                bad->key, s->name, best, more);
    if (s->nasked == 0)
        return qat_cfg_error_at(c, bad->line, "unknown key '%s' in [%s] ([%s] takes no keys%s)",
                                bad->key, s->name, s->name, more);
    char list[512];
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < s->nasked && used < sizeof list; i++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", s->asked[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
    return qat_cfg_error_at(c, bad->line, "unknown key '%s' in [%s] (known keys: %s%s)", bad->key,
                            s->name, list, more);
}
