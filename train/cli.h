/* cli.h: what the command files of the qat executable share (cli.c owns
 * it): one option table per command, which drives both the parsing and
 * the --help text (every option with its default), error reporting, and
 * the commands themselves. */
#ifndef QAT_CLI_H
#define QAT_CLI_H

#include <stddef.h>
#include <stdio.h>

#define QAT_CLI_EXIT_USAGE 2
#define QAT_CLI_MAX_OPTS 24

extern const char *qat_cli_prog;

typedef enum { QAT_CLI_FLAG, QAT_CLI_STR, QAT_CLI_INT, QAT_CLI_NUM } qat_cli_kind;

/* One option: --name VALUE, --name=VALUE, or a flag. */
typedef struct {
    const char *name;    /* "--epochs" */
    const char *alias;   /* "-o", or NULL */
    qat_cli_kind kind;
    const char *metavar; /* "N", "DIR" (not for flags) */
    long lo, hi;         /* QAT_CLI_INT: the accepted range */
    double dlo, dhi;     /* QAT_CLI_NUM: lo < value <= hi */
    long idef;           /* QAT_CLI_INT: the value when not given */
    const char *sdef;    /* QAT_CLI_STR: the value when not given (may be NULL) */
    const char *shown;   /* the default as --help words it, when it is not idef / sdef ("all CPUs") */
    const char *help;    /* what it does; '\n' starts a new line */
} qat_cli_opt;

/* What parsing found for each option of a table (same index). */
typedef struct {
    int given;
    const char *s; /* QAT_CLI_STR */
    long i;        /* QAT_CLI_INT (also 1 for a given flag) */
    double d;      /* QAT_CLI_NUM */
} qat_cli_val;

typedef struct qat_cli_command {
    const char *name;     /* "train" */
    const char *synopsis; /* the positional arguments: "CONFIG" */
    const char *about;    /* a paragraph after the usage line, or NULL */
    int min_pos, max_pos; /* positional arguments accepted (max_pos < 0: any number) */
    const qat_cli_opt *opts;
    int nopts;
    int (*run)(const struct qat_cli_command *c, qat_cli_val *v, int npos, char **pos);
} qat_cli_command;

/* Parses argv (after the command's name) by c's table into v[0..c->nopts)
 * and the positional arguments into pos (room for argc of them). Returns
 * -1 to go on, or the exit code: 0 after --help, QAT_CLI_EXIT_USAGE after
 * a usage message. */
int qat_cli_parse(const qat_cli_command *c, int argc, char **argv, qat_cli_val *v, char **pos, int *npos);
/* The command's help: usage line, about, each option with its default. */
void qat_cli_help(const qat_cli_command *c, FILE *f);
/* "qat: MESSAGE", then the command's usage line; returns QAT_CLI_EXIT_USAGE */
int qat_cli_usage_error(const qat_cli_command *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* prints qat_last_error() and returns 1 */
int qat_cli_fail(void);
/* the CPUs online, 1..64 */
int qat_cli_default_threads(void);
/* parses and runs c: what `qat NAME ARGS...` does */
int qat_cli_main(const qat_cli_command *c, int argc, char **argv);

extern const qat_cli_command qat_cli_export, qat_cli_infer;

#endif
