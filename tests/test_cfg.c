/* test_cfg.c: the config parser: every getter on a good config, every syntax
 * error with its exact "name:LINE:" prefix, bad values, ranges, lists,
 * defaults, unknown-key suggestions and a missing file. Exit 0 on success. */
#include "cfg.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat_test.h"


static qat_status parse_str(qat_cfg *c, const char *name, const char *text)
{
    return qat_cfg_parse_text(c, name, text, strlen(text));
}

/* Parsing `text` must fail with QAT_ERR_CONFIG, a message starting with
 * `prefix` and containing `needle`. */
static void expect_parse_error(const char *text, const char *prefix, const char *needle)
{
    qat_cfg c;
    qat_status st = qat_cfg_parse_text(&c, "t.cfg", text, strlen(text));
    const char *m = qat_last_error();
    CHECK(st == QAT_ERR_CONFIG, "text <<%s>>: status %s", text, qat_status_name(st));
    CHECK(strncmp(m, prefix, strlen(prefix)) == 0, "text <<%s>>: message '%s' lacks prefix '%s'",
          text, m, prefix);
    CHECK(strstr(m, needle) != NULL, "text <<%s>>: message '%s' lacks '%s'", text, m, needle);
    CHECK(c.sec == NULL && c.text == NULL && c.nsec == 0, "failed parse left a partial result");
    qat_cfg_free(&c);
}

static void expect_msg(qat_status st, qat_status want, const char *prefix, const char *needle,
                       const char *what)
{
    const char *m = qat_last_error();
    CHECK(st == want, "%s: status %s, want %s", what, qat_status_name(st), qat_status_name(want));
    if (st == QAT_OK) return;
    CHECK(strncmp(m, prefix, strlen(prefix)) == 0, "%s: message '%s' lacks prefix '%s'", what, m,
          prefix);
    CHECK(strstr(m, needle) != NULL, "%s: message '%s' lacks '%s'", what, m, needle);
}

static const char good[] =
    "# a comment line\r\n"
    "[net]\r\n"
    "batch = 64   ; trailing comment\r\n"
    "  lr=0.01\n"
    "\n"
    "momentum = 0.9 # why not\n"
    "shuffle = yes\n"
    "augment = False\n"
    "policy = steps\n"
    "steps = 30,60, 90\n"
    "dataset = mnist\n"
    "\n"
    "[convolutional]\n"
    "filters=32\n"
    "[convolutional]\n"
    "filters = 64\n"
    "size = 3\n";

/* a UTF-8 byte-order mark at the top is skipped, not a character of line 1 */
static void test_bom(void)
{
    static const char text[] = "\xEF\xBB\xBF[net]\nbatch = 4\n";
    qat_cfg c;
    qat_status st = qat_cfg_parse_text(&c, "bom.cfg", text, strlen(text));
    CHECK(st == QAT_OK, "BOM: %s", qat_last_error());
    if (st != QAT_OK) return;
    CHECK(c.nsec == 1 && strcmp(c.sec[0].name, "net") == 0 && c.sec[0].line == 1, "BOM: section '%s' line %d",
          c.nsec ? c.sec[0].name : "", c.nsec ? c.sec[0].line : 0);
    qat_cfg_free(&c);
}

static void test_good(void)
{
    qat_cfg c;
    qat_status st = qat_cfg_parse_text(&c, "good.cfg", good, strlen(good));
    CHECK(st == QAT_OK, "parse: %s", qat_last_error());
    if (st != QAT_OK) return;
    CHECK(strcmp(c.path, "good.cfg") == 0, "path '%s'", c.path);
    CHECK(c.text_len == strlen(good) && memcmp(c.text, good, c.text_len) == 0, "raw text kept");
    CHECK(c.nsec == 3, "nsec %d", c.nsec);
    if (c.nsec != 3) {
        qat_cfg_free(&c);
        return;
    }
    qat_cfg_section *net = &c.sec[0];
    CHECK(strcmp(net->name, "net") == 0 && net->line == 2, "net header '%s' line %d", net->name,
          net->line);
    CHECK(net->nkv == 8, "net nkv %d", net->nkv);

    int batch = 0, shuffle = -1, augment = -1, pol = -1, steps[4], nsteps = -1, epochs = 0;
    int verbose = -1, act = -1;
    float lr = 0, mom = 0, decay = 0;
    const char *ds = NULL, *opt = NULL;
    static const char *const policies[] = {"constant", "steps", "cosine"};
    static const char *const acts[] = {"relu", "sign"};
    CHECK(qat_cfg_get_int(&c, net, "batch", 1, 1, 4096, &batch) == QAT_OK && batch == 64,
          "batch %d: %s", batch, qat_last_error());
    CHECK(qat_cfg_get_float(&c, net, "lr", 0.1f, 0, 10, &lr) == QAT_OK && lr == 0.01f, "lr %g",
          (double)lr);
    CHECK(qat_cfg_get_float(&c, net, "momentum", 0, 0, 1, &mom) == QAT_OK && mom == 0.9f, "mom");
    CHECK(qat_cfg_get_bool(&c, net, "shuffle", 0, &shuffle) == QAT_OK && shuffle == 1, "shuffle");
    CHECK(qat_cfg_get_bool(&c, net, "augment", 1, &augment) == QAT_OK && augment == 0, "augment");
    CHECK(qat_cfg_get_enum(&c, net, "policy", policies, 3, 0, &pol) == QAT_OK && pol == 1, "policy");
    CHECK(qat_cfg_get_int_list(&c, net, "steps", steps, 4, &nsteps) == QAT_OK && nsteps == 3 &&
              steps[0] == 30 && steps[1] == 60 && steps[2] == 90,
          "steps n=%d", nsteps);
    CHECK(qat_cfg_get_str(&c, net, "dataset", "cifar10", &ds) == QAT_OK && ds &&
              strcmp(ds, "mnist") == 0,
          "dataset");
    /* defaults for absent keys */
    CHECK(qat_cfg_get_int(&c, net, "epochs", 10, 1, 100, &epochs) == QAT_OK && epochs == 10, "epochs");
    CHECK(qat_cfg_get_float(&c, net, "decay", 5e-4f, 0, 1, &decay) == QAT_OK && decay == 5e-4f, "decay");
    CHECK(qat_cfg_get_str(&c, net, "optimizer", "adam", &opt) == QAT_OK && strcmp(opt, "adam") == 0,
          "opt");
    CHECK(qat_cfg_get_bool(&c, net, "verbose", 1, &verbose) == QAT_OK && verbose == 1, "verbose");
    CHECK(qat_cfg_get_enum(&c, net, "activation", acts, 2, 1, &act) == QAT_OK && act == 1, "act");
    int lst[2] = {7, 7}, nl = -1;
    CHECK(qat_cfg_get_int_list(&c, net, "milestones", lst, 2, &nl) == QAT_OK && nl == 0, "list def");
    CHECK(qat_cfg_has(net, "lr") && !qat_cfg_has(net, "epochs"), "has");
    CHECK(qat_cfg_check_unused(&c, net) == QAT_OK, "unused: %s", qat_last_error());

    qat_cfg_section *c2 = &c.sec[2];
    int filters = 0, size = 0;
    CHECK(qat_cfg_get_int(&c, c2, "filters", 1, 1, 4096, &filters) == QAT_OK && filters == 64, "filters");
    /* size not asked yet: unknown key with no close match lists the known keys */
    st = qat_cfg_check_unused(&c, c2);
    expect_msg(st, QAT_ERR_CONFIG, "good.cfg:17: ", "unknown key 'size' in [convolutional] (known keys: filters)",
               "unasked key");
    CHECK(qat_cfg_get_int(&c, c2, "size", 1, 1, 11, &size) == QAT_OK && size == 3, "size");
    CHECK(qat_cfg_check_unused(&c, c2) == QAT_OK, "c2 unused");
    /* a section nobody asked anything of */
    st = qat_cfg_check_unused(&c, &c.sec[1]);
    expect_msg(st, QAT_ERR_CONFIG, "good.cfg:14: ", "takes no keys", "section with no asked keys");
    st = qat_cfg_error_at(&c, 13, "unknown section [%s]", "convolutional");
    expect_msg(st, QAT_ERR_CONFIG, "good.cfg:13: unknown section [convolutional]", "", "error_at");
    qat_cfg_free(&c);
    qat_cfg_free(&c); /* harmless twice */
}

static void test_syntax_errors(void)
{
    expect_parse_error("lr = 1\n[net]\n", "t.cfg:1: ", "before any [section]");
    expect_parse_error("# c\n\n  ; c\nlr = 1\n", "t.cfg:4: ", "before any [section]");
    expect_parse_error("[net]\nbatch 64\n", "t.cfg:2: ", "expected '[section]' or 'key = value'");
    expect_parse_error("[net]\r\nbatch = 1\r\n = 3\r\n", "t.cfg:3: ", "empty key");
    expect_parse_error("[net]\nlr = 1\nbatch = 2\nlr = 3\n", "t.cfg:4: ",
                       "duplicate key 'lr' in [net] (first set on line 2)");
    expect_parse_error("[net]\n[conv\nx=1\n", "t.cfg:2: ", "unterminated section header");
    expect_parse_error("[net]\nlr =\n", "t.cfg:2: ", "has no value");
    expect_parse_error("[net]\nlr = # nothing\n", "t.cfg:2: ", "has no value");
    expect_parse_error("[]\n", "t.cfg:1: ", "empty section name");
    expect_parse_error("[net] x\n", "t.cfg:1: ", "after section header");
    expect_parse_error("[net]\nlearning rate = 1\n", "t.cfg:2: ", "contains whitespace");
    const char nul[] = "[net]\nlr = 1\0\n";
    qat_cfg c;
    qat_status st = qat_cfg_parse_text(&c, "t.cfg", nul, sizeof nul - 1);
    expect_msg(st, QAT_ERR_CONFIG, "t.cfg:2: ", "NUL", "NUL byte");
    /* same key in two sections is fine; no trailing newline is fine */
    st = parse_str(&c, "t.cfg", "[a]\nk=1\n[a]\nk=2");
    CHECK(st == QAT_OK && c.nsec == 2 && strcmp(c.sec[1].kv[0].val, "2") == 0, "repeat sections: %s",
          qat_last_error());
    qat_cfg_free(&c);
    st = qat_cfg_parse_text(&c, NULL, "", 0);
    CHECK(st == QAT_OK && c.nsec == 0, "empty text");
    qat_cfg_free(&c);
}

static void test_bad_values(void)
{
    static const char text[] =
        "[net]\n"
        "lr = abc\n"           /* 2 */
        "batch = 64x\n"        /* 3 */
        "big = 99999999999\n"  /* 4 */
        "neg = -5\n"           /* 5 */
        "nan = nan\n"          /* 6 */
        "inf = -inf\n"         /* 7 */
        "huge = 1e60\n"        /* 8 */
        "frac = 1.5\n"         /* 9 */
        "flag = maybe\n"       /* 10 */
        "act = tanh\n"         /* 11 */
        "l1 = 1,,2\n"          /* 12 */
        "l2 = 1,2,\n"          /* 13 */
        "l3 = 1,x,3\n"         /* 14 */
        "l4 = 1,2,3,4,5\n"     /* 15 */
        "ok = 7\n"             /* 16 */
        "lrr = 0.1\n"          /* 17 */
        "frac2 = 2.5\n";       /* 18 */
    qat_cfg c;
    qat_status st = qat_cfg_parse_text(&c, "v.cfg", text, strlen(text));
    CHECK(st == QAT_OK, "parse: %s", qat_last_error());
    if (st != QAT_OK) return;
    qat_cfg_section *s = &c.sec[0];
    int i = 12345, n = -1, list[4];
    float f = 123.f;
    static const char *const acts[] = {"relu", "sign", "htanh"};

    st = qat_cfg_get_float(&c, s, "lr", 0.1f, 0, 1, &f);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:2: ", "[net] key 'lr': expected a number, got 'abc'", "lr");
    CHECK(f == 123.f, "out untouched on error");
    st = qat_cfg_get_int(&c, s, "batch", 1, 1, 100, &i);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:3: ", "[net] key 'batch': expected an integer, got '64x'", "batch");
    st = qat_cfg_get_int(&c, s, "big", 1, INT_MIN, INT_MAX, &i);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:4: ", "99999999999 does not fit in an int", "int overflow");
    st = qat_cfg_get_int(&c, s, "neg", 1, 0, 10, &i);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:5: ", "[net] key 'neg': -5 is out of range [0, 10]", "int range");
    CHECK(i == 12345, "out untouched on range error");
    st = qat_cfg_get_float(&c, s, "nan", 0, -1e30f, 1e30f, &f);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:6: ", "finite", "nan");
    st = qat_cfg_get_float(&c, s, "inf", 0, -1e30f, 1e30f, &f);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:7: ", "finite", "inf");
    st = qat_cfg_get_float(&c, s, "huge", 0, -1e30f, 1e30f, &f);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:8: ", "range of a float", "float overflow");
    st = qat_cfg_get_int(&c, s, "frac", 0, 0, 10, &i);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:9: ", "expected an integer, got '1.5'", "frac as int");
    st = qat_cfg_get_float(&c, s, "frac2", 0, 0, 2, &f);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:18: ", "2.5 is out of range [0, 2]", "float range");
    st = qat_cfg_get_bool(&c, s, "flag", 0, &i);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:10: ", "got 'maybe'", "bool");
    st = qat_cfg_get_enum(&c, s, "act", acts, 3, 0, &i);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:11: ", "expected one of relu, sign, htanh; got 'tanh'", "enum");
    st = qat_cfg_get_int_list(&c, s, "l1", list, 4, &n);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:12: ", "item 2", "list empty item");
    st = qat_cfg_get_int_list(&c, s, "l2", list, 4, &n);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:13: ", "item 3", "list trailing comma");
    st = qat_cfg_get_int_list(&c, s, "l3", list, 4, &n);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:14: ", "item 2: expected an integer, got 'x'", "list item");
    st = qat_cfg_get_int_list(&c, s, "l4", list, 4, &n);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:15: ", "at most 4 values", "list cap");
    st = qat_cfg_get_int(&c, s, "ok", 0, 7, 7, &i);
    CHECK(st == QAT_OK && i == 7, "inclusive range");
    /* a typo of an asked key: "lrr" -> "lr" */
    st = qat_cfg_check_unused(&c, s);
    expect_msg(st, QAT_ERR_CONFIG, "v.cfg:17: ", "unknown key 'lrr' in [net] (did you mean 'lr'?)",
               "suggestion");
    qat_cfg_free(&c);

    /* case-only typo, and a far-off key that gets the known-keys list */
    st = parse_str(&c, "w.cfg", "[net]\nMomentum = 1\n");
    CHECK(st == QAT_OK, "parse w");
    if (st == QAT_OK) {
        CHECK(qat_cfg_get_float(&c, &c.sec[0], "momentum", 0, 0, 1, &f) == QAT_OK && f == 0.f, "def");
        CHECK(qat_cfg_get_float(&c, &c.sec[0], "lr", 0, 0, 1, &f) == QAT_OK, "def lr");
        st = qat_cfg_check_unused(&c, &c.sec[0]);
        expect_msg(st, QAT_ERR_CONFIG, "w.cfg:2: ", "did you mean 'momentum'?", "case typo");
        qat_cfg_free(&c);
    }
    st = parse_str(&c, "x.cfg", "[net]\nzzz = 1\nyyy = 2\n");
    CHECK(st == QAT_OK, "parse x");
    if (st == QAT_OK) {
        CHECK(qat_cfg_get_float(&c, &c.sec[0], "lr", 0, 0, 1, &f) == QAT_OK, "lr");
        CHECK(qat_cfg_get_int(&c, &c.sec[0], "batch", 1, 1, 9, &i) == QAT_OK, "batch");
        st = qat_cfg_check_unused(&c, &c.sec[0]);
        expect_msg(st, QAT_ERR_CONFIG, "x.cfg:2: ",
                   "unknown key 'zzz' in [net] (known keys: lr, batch; 1 more unknown key)", "list");
        qat_cfg_free(&c);
    }
}

static void test_file(void)
{
    qat_cfg c;
    qat_status st = qat_cfg_parse_file(&c, "/nonexistent/dir/none.cfg");
    expect_msg(st, QAT_ERR_IO, "/nonexistent/dir/none.cfg: ", "cannot open", "missing file");
    CHECK(c.sec == NULL && c.path == NULL, "missing file left a result");

    char path[] = "/tmp/test_cfg_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return;
    FILE *f = fdopen(fd, "wb");
    fputs(good, f);
    /* make it big enough to cross the reader's first buffer */
    for (int k = 0; k < 500; k++) fprintf(f, "[s%d]\nkey = %d\n", k, k);
    fputs("[bad\n", f);
    fclose(f);
    st = qat_cfg_parse_file(&c, path);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, 17 + 1000 + 1);
    expect_msg(st, QAT_ERR_CONFIG, prefix, "unterminated", "file error line");

    f = fopen(path, "wb");
    fputs(good, f);
    fclose(f);
    st = qat_cfg_parse_file(&c, path);
    CHECK(st == QAT_OK && c.nsec == 3 && strcmp(c.path, path) == 0 && c.text_len == strlen(good),
          "parse_file: %s", qat_last_error());
    qat_cfg_free(&c);
    remove(path);
}

int main(void)
{
    test_good();
    test_bom();
    test_syntax_errors();
    test_bad_values();
    test_file();
    if (failures) {
        fprintf(stderr, "test_cfg: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_cfg: all checks passed\n");
    return 0;
}
