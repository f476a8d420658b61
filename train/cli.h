/* cli.h: what the command files of the qat executable share (main.c owns
 * them): option parsing, error reporting, the commands. */
#ifndef QAT_CLI_H
#define QAT_CLI_H

#define EXIT_USAGE 2

extern const char *prog;

/* option parsing shared by the commands: --name VALUE or --name=VALUE */
typedef struct {
    int argc, i;
    char **argv;
    const char *usage;
    int err;
} args;

int usage_error(const char *usage, const char *fmt, const char *arg);
/* prints qat_last_error() and returns 1 */
int fail(void);
int parse_int(const char *s, long lo, long hi, long *out);
int default_threads(void);
/* the value of option `name` at a->i (advancing past it), or NULL (a->err
 * set when the option is there without its value) */
const char *opt_value(args *a, const char *name);
int opt_int(args *a, const char *name, long lo, long hi, long *out, int *matched);

int cmd_export(int argc, char **argv);
int cmd_infer(int argc, char **argv);

#endif
