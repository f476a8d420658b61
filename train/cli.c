/* cli.c: the qat executable's option parsing and help, both driven by each
 * command's option table (cli.h), so an option, its range and its default
 * are written once. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "qat_util.h"

const char *qat_cli_prog = "qat";

int qat_cli_fail(void)
{
    fprintf(stderr, "%s: error: %s\n", qat_cli_prog, qat_last_error());
    return 1;
}

int qat_cli_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

static void usage_line(const qat_cli_command *c, FILE *f)
{
    fprintf(f, "usage: %s %s%s%s%s\n", qat_cli_prog, c->name, c->synopsis ? " " : "", c->synopsis ? c->synopsis : "",
            c->nopts ? " [options]" : "");
}

int qat_cli_usage_error(const qat_cli_command *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s %s: ", qat_cli_prog, c->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    usage_line(c, stderr);
    fprintf(stderr, "'%s %s --help' %s.\n", qat_cli_prog, c->name, c->nopts ? "lists the options" : "describes it");
    return QAT_CLI_EXIT_USAGE;
}

void qat_cli_help(const qat_cli_command *c, FILE *f)
{
    usage_line(c, f);
    if (c->about) fprintf(f, "\n%s", c->about);
    if (!c->nopts) return;
    fprintf(f, "\noptions:\n");
    for (int i = 0; i < c->nopts; i++) {
        const qat_cli_opt *o = &c->opts[i];
        char head[64], def[96] = "";
        snprintf(head, sizeof head, "%s%s%s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "", o->name,
                 o->kind == QAT_CLI_FLAG ? "" : " ", o->kind == QAT_CLI_FLAG ? "" : o->metavar);
        if (o->shown) snprintf(def, sizeof def, "default: %s", o->shown);
        else if (o->kind == QAT_CLI_INT) snprintf(def, sizeof def, "default: %ld", o->idef);
        else if (o->kind == QAT_CLI_STR && o->sdef) snprintf(def, sizeof def, "default: %s", o->sdef);
        else if (o->kind == QAT_CLI_FLAG) snprintf(def, sizeof def, "default: off");
        else snprintf(def, sizeof def, "default: none");
        if (o->kind == QAT_CLI_INT && o->hi <= 1 << 20) /* the range, unless it is "any" */
            snprintf(def + strlen(def), sizeof def - strlen(def), "; %ld..%ld", o->lo, o->hi);
        /* the help's lines, the first beside the option, then the default */
        const char *h = o->help;
        int first = 1;
        if (strlen(head) > 22) { /* a long option on its own line */
            fprintf(f, "  %s\n", head);
            first = 0;
        }
        while (*h) {
            size_t n = strcspn(h, "\n");
            fprintf(f, "  %-22s %.*s\n", first ? head : "", (int)n, h);
            h += n;
            if (*h) h++;
            first = 0;
        }
        fprintf(f, "  %-22s (%s)\n", "", def);
    }
}

/* the value of option o at argv[*i] ("--name=V" or "--name V"), or NULL
 * when argv[*i] is not o; *missing when it is o without its value */
static const char *opt_value(const qat_cli_opt *o, int argc, char **argv, int *i, int *missing)
{
    const char *s = argv[*i];
    for (int k = 0; k < 2; k++) {
        const char *name = k ? o->alias : o->name;
        if (!name) continue;
        size_t n = strlen(name);
        if (strncmp(s, name, n) != 0) continue;
        if (o->kind == QAT_CLI_FLAG) {
            if (s[n] == 0) return s;
            continue;
        }
        if (s[n] == '=') return s + n + 1;
        if (s[n] != 0) continue;
        if (*i + 1 >= argc) {
            *missing = 1;
            return NULL;
        }
        return argv[++*i];
    }
    return NULL;
}

int qat_cli_parse(const qat_cli_command *c, int argc, char **argv, qat_cli_val *v, char **pos, int *npos)
{
    *npos = 0;
    for (int k = 0; k < c->nopts; k++)
        v[k] = (qat_cli_val){.s = c->opts[k].sdef, .i = c->opts[k].kind == QAT_CLI_INT ? c->opts[k].idef : 0};
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            qat_cli_help(c, stdout);
            return 0;
        }
        if (s[0] != '-' || s[1] == 0) { /* "-" alone is a name (standard input, by convention) */
            if (c->max_pos >= 0 && *npos >= c->max_pos)
                return qat_cli_usage_error(c, "unexpected argument '%s'", s);
            pos[(*npos)++] = argv[i];
            continue;
        }
        int k = 0, missing = 0;
        const char *val = NULL;
        for (; k < c->nopts; k++)
            if ((val = opt_value(&c->opts[k], argc, argv, &i, &missing)) || missing) break;
        if (k == c->nopts) return qat_cli_usage_error(c, "unknown option '%s'", s);
        const qat_cli_opt *o = &c->opts[k];
        if (missing) return qat_cli_usage_error(c, "option %s needs a value (%s)", o->name, o->metavar);
        v[k].given = 1;
        char *end;
        errno = 0;
        switch (o->kind) {
        case QAT_CLI_FLAG: v[k].i = 1; break;
        case QAT_CLI_STR: v[k].s = val; break;
        case QAT_CLI_INT:
            v[k].i = strtol(val, &end, 10);
            if (errno || end == val || *end || v[k].i < o->lo || v[k].i > o->hi)
                return qat_cli_usage_error(c, "%s expects an integer in %ld..%ld, got '%s'", o->name, o->lo, o->hi, val);
            break;
        case QAT_CLI_NUM:
            v[k].d = strtod(val, &end);
            if (errno || end == val || *end || !(v[k].d > o->dlo) || v[k].d > o->dhi)
                return qat_cli_usage_error(c, "%s expects a number in (%g, %g], got '%s'", o->name, o->dlo, o->dhi, val);
            break;
        }
    }
    if (*npos < c->min_pos) return qat_cli_usage_error(c, "missing %s", c->synopsis);
    return -1;
}

int qat_cli_main(const qat_cli_command *c, int argc, char **argv)
{
    qat_cli_val v[QAT_CLI_MAX_OPTS];
    QAT_ASSERT(c->nopts <= QAT_CLI_MAX_OPTS);
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (!pos) {
        fprintf(stderr, "%s: error: out of memory\n", qat_cli_prog);
        return 1;
    }
    int npos, rc = qat_cli_parse(c, argc, argv, v, pos, &npos);
    if (rc < 0) rc = c->run(c, v, npos, pos);
    free(pos);
    return rc;
}
