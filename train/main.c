/* main.c: the qat command line. The only place that prints or exits: it
 * turns the library's statuses into messages and exit codes (0 ok, 1
 * failure, 2 usage). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cblas.h>

#include "dst.h"
#include "cli.h"
#include "report.h"
#include "trainer.h"



const char *prog = "qat";

static const char usage_main[] =
    "usage: qat COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  train CONFIG       train a model described by a config file\n"
    "  eval CKPT          evaluate a checkpoint on the test split\n"
    "  summary CONFIG|CKPT  per layer: output shape, parameters, MACs, bits, storage\n"
    "  bench train CONFIG measure training images/s on synthetic data\n"
    "  lloyd --bits N     DST's power-of-two activation error (Table 1)\n"
    "  export CKPT        lower a trained model to integer-only .qnn (or C source)\n"
    "  infer MODEL.qnn    run an exported model on images or a dataset's test split\n"
    "  report RUN_DIR...  one HTML page of a run's charts (several runs overlaid)\n"
    "\n"
    "'qat COMMAND --help' describes a command's options.\n";

static const char usage_train[] =
    "usage: qat train CONFIG [--data DIR] [--dataset NAME] [--out DIR] [--epochs N] [--seed N]\n"
    "                        [--threads N] [--init-from CKPT | --resume CKPT [--override]] [--until N]\n"
    "                        [--max-steps N] [--quiet] [--report]\n"
    "\n"
    "  --data DIR      folder holding the dataset's files (default: $QAT_DATA/<name>,\n"
    "                  then ./data/<name>; Fashion-MNIST also /usr/share/datasets)\n"
    "  --dataset NAME  override [net] dataset (mnist, fashion-mnist, cifar10, ...):\n"
    "                  the same image shape and classes\n"
    "  --out DIR       where metrics.jsonl, last.ckpt, best.ckpt, summary.json go\n"
    "                  (default: runs/<config name>)\n"
    "  --epochs N      override [net] epochs\n"
    "  --seed N        override [net] seed\n"
    "  --threads N     threads for our kernels and OpenBLAS (default: all CPUs)\n"
    "  --init-from CKPT  start from the weights of a run of the same architecture\n"
    "                  (a float one, say); quantizers initialise from them\n"
    "  --resume CKPT   continue from a checkpoint of the same model, with the run's\n"
    "                  own --epochs, --seed, --threads, --max-steps, --dataset and\n"
    "                  --data (kept in the checkpoint; one given differently is an\n"
    "                  error, --override takes it)\n"
    "  --until N       stop after epoch N (schedules still span all epochs;\n"
    "                  continue later with --resume)\n"
    "  --max-steps N   at most N steps per epoch and N batches per evaluation\n"
    "                  (smoke tests)\n"
    "  --quiet         no progress output\n"
    "  --report        write OUT/report.html (qat report) after every epoch and at the end\n";

static const char usage_eval[] =
    "usage: qat eval CKPT [--data DIR] [--json] [--threads N] [--batch B]\n"
    "\n"
    "Rebuilds the model from the config stored in CKPT and reports test loss and\n"
    "accuracy (with --json: {\"test_acc\": ..., \"test_loss\": ..., \"n\": ...}).\n";

static const char usage_summary[] =
    "usage: qat summary CONFIG | RUN.ckpt\n"
    "  per layer: output shape, parameters, MACs, weight and input quantizers, and\n"
    "  weight storage; a checkpoint gives its trained bitwidths (ALQ's pruned ones)\n";

static const char usage_bench[] =
    "usage: qat bench train CONFIG [--batch B] [--steps N] [--threads T] [--warmup N] [--json]\n"
    "\n"
    "Times training steps (forward, backward, optimizer) on synthetic N(0,1)\n"
    "inputs and random labels; reports the median and the best step as images/s.\n";

int usage_error(const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return EXIT_USAGE;
}

int fail(void)
{
    fprintf(stderr, "%s: error: %s\n", prog, qat_last_error());
    return 1;
}

int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}


const char *opt_value(args *a, const char *name)
{
    const char *s = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(s, name, n) != 0) return NULL;
    if (s[n] == '=') return s + n + 1;
    if (s[n] != 0) return NULL;
    if (a->i + 1 >= a->argc) {
        a->err = usage_error(a->usage, "option %s needs a value", name);
        return NULL;
    }
    return a->argv[++a->i];
}

int opt_int(args *a, const char *name, long lo, long hi, long *out, int *matched)
{
    const char *v = opt_value(a, name);
    if (!v) return a->err == 0;
    *matched = 1;
    if (!parse_int(v, lo, hi, out)) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s expects an integer in %ld..%ld, got '%%s'", name, lo, hi);
        a->err = usage_error(a->usage, msg, v);
        return 0;
    }
    return 1;
}

/* ---- train --------------------------------------------------------------- */
typedef struct {
    int tty, quiet;
    double last;
    int epoch;                 /* the epoch the bar shows, */
    double epoch_start;        /* when it started, */
    double epoch_seconds;      /* and how long the last whole one took (0: none yet) */
    /* --report: OUT/report.html after every epoch */
    const char *report_out, *out_dir, *command;
} progress_ctx;

/* the run's page (qat train --report); a failure is a warning while the
 * run goes on */
static int write_run_report(const progress_ctx *c)
{
    const char *runs[1] = {c->out_dir};
    qat_report_opts ro = {.runs = runs, .nruns = 1, .out = c->report_out, .command = c->command};
    if (qat_report_write(&ro) == QAT_OK) return 1;
    fprintf(stderr, "%s: warning: the report: %s\n", prog, qat_last_error());
    return 0;
}

/* argv as one line, arguments with spaces or quotes in single quotes */
static void join_command(char *buf, size_t n, int argc, char **argv)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < argc && k + 1 < n; i++) {
        const char *a = argv[i];
        int quote = !*a || strpbrk(a, " \t\"'\\$`*?;&|<>()") != NULL;
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? " " : "", quote ? "'" : "");
        for (; *a && k + 5 < n; a++)
            k += (size_t)(*a == '\'' ? snprintf(buf + k, n - k, "'\\''") : snprintf(buf + k, n - k, "%c", *a));
        if (quote && k + 1 < n) k += (size_t)snprintf(buf + k, n - k, "'");
    }
}

/* "42s", "3m07s", "2h05m" */
static void fmt_duration(char *b, size_t n, double s)
{
    int t = s > 0 && s < 3.6e8 ? (int)(s + 0.5) : 0; /* under 100000 hours */
    if (t < 60) snprintf(b, n, "%ds", t);
    else if (t < 3600) snprintf(b, n, "%dm%02ds", t / 60, t % 60);
    else snprintf(b, n, "%dh%02dm", t / 3600, t % 3600 / 60);
}

/* on a terminal: one line redrawn, the epoch's bar with images/s and the
 * time left in the epoch and in the run (the epochs still to come at the
 * length of the last whole one, its evaluation included) */
static void on_progress(void *ctx, const qat_progress *p)
{
    progress_ctx *c = ctx;
    if (c->quiet || !c->tty) return;
    double now = qat_time_now();
    if (p->step == 1 || c->epoch != p->epoch) { /* the clock of the epoch's steps starts after its first */
        c->epoch = p->epoch;
        c->epoch_start = now;
    }
    if (p->step != p->steps && now - c->last < 0.1) return;
    c->last = now;
    int width = 20, fill = (int)((double)width * p->step / p->steps);
    char bar[64], line[256], eta[32], run[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[width] = 0;
    int n = snprintf(line, sizeof line, "epoch %d/%d [%s] %d/%d loss %.4f acc %.4f %.0f img/s", p->epoch, p->epochs,
                     bar, p->step, p->steps, p->loss, p->acc, p->images_per_s);
    if (p->step > 1 && n > 0 && n < (int)sizeof line) {
        double per_step = (now - c->epoch_start) / (p->step - 1), left = per_step * (p->steps - p->step);
        double per_epoch = c->epoch_seconds > 0 ? c->epoch_seconds : per_step * p->steps;
        fmt_duration(eta, sizeof eta, left);
        fmt_duration(run, sizeof run, left + per_epoch * (p->epochs - p->epoch));
        snprintf(line + n, sizeof line - (size_t)n, " ETA %s, run %s", eta, run);
    }
    /* one terminal line, or the carriage return would redraw only its end */
    struct winsize ws;
    int cols = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col : 80;
    fprintf(stderr, "\r\033[K%.*s", cols - 1, line);
    fflush(stderr);
}

static void on_epoch(void *ctx, const qat_epoch_metrics *m)
{
    progress_ctx *c = ctx;
    c->epoch_seconds = m->seconds;
    if (c->quiet) {
        if (c->report_out) write_run_report(c);
        return;
    }
    if (c->tty) fprintf(stderr, "\r\033[K");
    fprintf(stderr, "epoch %d: lr %.3g train loss %.4f acc %.4f", m->epoch, m->lr, m->train_loss, m->train_acc);
    if (m->val_acc >= 0) fprintf(stderr, " | val acc %.4f", m->val_acc);
    fprintf(stderr, " | test loss %.4f acc %.4f", m->test_loss, m->test_acc);
    if (m->phase) fprintf(stderr, " | %s", m->phase);
    if (m->weight_bits >= 0) fprintf(stderr, " %.3f bits %.1f KB", m->weight_bits, m->weight_kb);
    fprintf(stderr, " | %.0f img/s %.1fs%s\n", m->images_per_s,
            m->seconds, m->best ? " *" : "");
    if (c->report_out) write_run_report(c);
}

/* SIGINT / SIGTERM ask the trainer to stop between steps (every file it
 * writes stays whole); SA_RESETHAND: a second one kills at once, and the
 * next run on that folder removes what it left */
static volatile sig_atomic_t stop_flag;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int cmd_train(int argc, char **argv, const char *command)
{
    args a = {argc, 0, argv, usage_train, 0};
    qat_train_opts o = {0};
    o.seed = -1;
    o.threads = default_threads();
    long v;
    int quiet = 0, report = 0;
    char outbuf[600], reportbuf[700];
    for (a.i = 0; a.i < argc; a.i++) {
        const char *s = argv[a.i];
        int m = 0;
        const char *val;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(usage_train, stdout);
            return 0;
        } else if (!strcmp(s, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(s, "--override")) {
            o.override_run = 1;
        } else if (!strcmp(s, "--report")) {
            report = 1;
        } else if ((val = opt_value(&a, "--data"))) {
            o.data_dir = val;
        } else if ((val = opt_value(&a, "--out"))) {
            o.out_dir = val;
        } else if ((val = opt_value(&a, "--dataset"))) {
            o.dataset = val;
        } else if ((val = opt_value(&a, "--resume"))) {
            o.resume = val;
        } else if ((val = opt_value(&a, "--init-from"))) {
            o.init_from = val;
        } else if (a.err) {
            return a.err;
        } else if (!opt_int(&a, "--epochs", 1, 1000000, &v, &m)) {
            return a.err;
        } else if (m) {
            o.epochs = (int)v;
        } else if (!opt_int(&a, "--seed", 0, INT_MAX, &v, &m)) {
            return a.err;
        } else if (m) {
            o.seed = v;
        } else if (!opt_int(&a, "--threads", 1, 256, &v, &m)) {
            return a.err;
        } else if (m) {
            o.threads = (int)v;
            o.threads_given = 1;
        } else if (!opt_int(&a, "--max-steps", 1, INT_MAX, &v, &m)) {
            return a.err;
        } else if (m) {
            o.max_steps = (int)v;
        } else if (!opt_int(&a, "--until", 1, 1000000, &v, &m)) {
            return a.err;
        } else if (m) {
            o.until = (int)v;
        } else if (s[0] == '-') {
            return usage_error(usage_train, "unknown option '%s'", s);
        } else if (!o.cfg_path) {
            o.cfg_path = s;
        } else {
            return usage_error(usage_train, "unexpected argument '%s'", s);
        }
    }
    if (!o.cfg_path) return usage_error(usage_train, "%s", "missing CONFIG");
    if (!o.out_dir) {
        const char *base = strrchr(o.cfg_path, '/');
        base = base ? base + 1 : o.cfg_path;
        snprintf(outbuf, sizeof outbuf, "runs/%.*s", (int)strcspn(base, "."), base);
        o.out_dir = outbuf;
    }
    progress_ctx pc = {.tty = isatty(2), .quiet = quiet, .out_dir = o.out_dir};
    if (report) {
        snprintf(reportbuf, sizeof reportbuf, "%s/report.html", o.out_dir);
        pc.report_out = reportbuf;
    }
    o.command = pc.command = command;
    catch_stop_signals();
    o.stop = &stop_flag;
    o.on_progress = on_progress;
    o.on_epoch = on_epoch;
    o.ctx = &pc;
    qat_train_result r;
    if (qat_train(&o, &r) != QAT_OK) return fail();
    if (report && !write_run_report(&pc)) return 1;
    if (!quiet)
        fprintf(stderr, "done: %s on %s (%s), %d epochs, test acc %.4f, %.0f img/s, %.1f s, peak RSS %.0f MiB -> %s\n",
                o.cfg_path, r.dataset, r.data_dir, r.epochs, r.test_acc, r.train_images_per_s, r.seconds,
                r.peak_rss_mb, o.out_dir);
    return 0;
}

/* ---- eval ---------------------------------------------------------------- */
static int cmd_eval(int argc, char **argv)
{
    args a = {argc, 0, argv, usage_eval, 0};
    const char *ckpt = NULL, *data = NULL;
    int json = 0, threads = default_threads(), batch = 256;
    long v;
    for (a.i = 0; a.i < argc; a.i++) {
        const char *s = argv[a.i], *val;
        int m = 0;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(usage_eval, stdout);
            return 0;
        } else if (!strcmp(s, "--json")) {
            json = 1;
        } else if ((val = opt_value(&a, "--data"))) {
            data = val;
        } else if (a.err) {
            return a.err;
        } else if (!opt_int(&a, "--threads", 1, 256, &v, &m)) {
            return a.err;
        } else if (m) {
            threads = (int)v;
        } else if (!opt_int(&a, "--batch", 1, 65536, &v, &m)) {
            return a.err;
        } else if (m) {
            batch = (int)v;
        } else if (s[0] == '-') {
            return usage_error(usage_eval, "unknown option '%s'", s);
        } else if (!ckpt) {
            ckpt = s;
        } else {
            return usage_error(usage_eval, "unexpected argument '%s'", s);
        }
    }
    if (!ckpt) return usage_error(usage_eval, "%s", "missing CKPT");
    qat_model m;
    qat_cfg cfg;
    qat_net_cfg net;
    if (qat_checkpoint_open_model(ckpt, batch, threads, &m, &cfg, &net) != QAT_OK) return fail();
    char dir[512];
    qat_dataset train = {0}, test = {0};
    float loss, acc;
    int rc = 0;
    if (qat_data_locate(net.dataset, data, dir, sizeof dir) != QAT_OK ||
        qat_data_load_opts(&train, &test, net.dataset, dir, &net.data) != QAT_OK ||
        qat_evaluate(&m, &test, net.mean, net.std, &loss, &acc) != QAT_OK) {
        rc = fail();
    } else if (json) {
        printf("{\"checkpoint\": \"%s\", \"dataset\": \"%s\", \"n\": %d, \"test_loss\": %.6f, \"test_acc\": %.6f}\n",
               ckpt, net.dataset, test.n, loss, acc);
    } else {
        printf("%s: %s test split (%d images): loss %.4f, accuracy %.4f\n", ckpt, net.dataset, test.n, loss, acc);
    }
    qat_dataset_free(&train);
    qat_dataset_free(&test);
    qat_model_free(&m);
    qat_cfg_free(&cfg);
    return rc;
}

/* ---- summary ------------------------------------------------------------- */
static int load_model(const char *path, int batch, int threads, qat_model *m, qat_cfg *cfg, qat_net_cfg *net)
{
    qat_layer *layers;
    int n;
    memset(cfg, 0, sizeof *cfg);
    if (qat_cfg_parse_file(cfg, path) != QAT_OK || qat_netcfg_read(cfg, net, &layers, &n) != QAT_OK) return 0;
    if (batch <= 0) batch = net->batch;
    if (qat_model_build(m, layers, n, net->c, net->h, net->w, batch, threads, net->seed) != QAT_OK) return 0;
    return 1;
}

static int cmd_summary(int argc, char **argv)
{
    if (argc != 1 || argv[0][0] == '-') {
        if (argc >= 1 && (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help"))) {
            fputs(usage_summary, stdout);
            return 0;
        }
        return usage_error(usage_summary, "%s", argc ? "expects exactly one CONFIG" : "missing CONFIG");
    }
    qat_model m;
    qat_cfg cfg;
    qat_net_cfg net;
    size_t len = strlen(argv[0]);
    int ckpt = len > 5 && strcmp(argv[0] + len - 5, ".ckpt") == 0;
    if (ckpt ? qat_checkpoint_open_model(argv[0], 1, 1, &m, &cfg, &net) != QAT_OK
             : !load_model(argv[0], 1, 1, &m, &cfg, &net)) {
        qat_cfg_free(&cfg);
        return fail();
    }
    printf("%s: %s, input [%d, %d, %d], %d classes\n\n", argv[0], net.dataset, net.c, net.h, net.w, net.nclass);
    printf("%-4s %-10s %-15s %-15s %10s %12s %-14s %-14s %10s %10s %s\n", "#", "layer", "type", "output", "params",
           "MACs", "weights", "input", "packed KiB", "fp32 KiB", "op (Table I)");
    size_t tp = 0;
    long long tm = 0;
    double packed = 0, full = 0;
    for (int i = 0; i < m.nlayers; i++) {
        const qat_layer *l = &m.layers[i];
        qat_layer_row r;
        qat_report_layer_row(l, &r);
        printf("%-4d %-10s %-15s %-15s %10zu %12lld %-14s %-14s %10.1f %10.1f %s\n", i, l->name, l->type->section, r.out,
               r.params, r.macs, r.wq, r.aq, r.bits / 8192.0, 32.0 * (double)r.params / 8192.0, r.op);
        tp += r.params;
        tm += r.macs;
        packed += r.bits / 8.0;
        full += 4.0 * (double)r.params;
    }
    size_t nb = m.g.nbuffers;
    printf("\ntotal: %zu trainable parameters, %lld MACs per image, %zu buffer values\n", tp, tm, nb);
    printf("parameter memory: %.1f KiB packed, %.1f KiB as float32: %.2fx compression\n", packed / 1024.0,
           full / 1024.0, packed > 0 ? full / packed : 1.0);
    double wb, wbytes, fbytes;
    qat_model_weight_storage(&m, &wb, &wbytes, &fbytes);
    printf("weights alone, as the papers count them: %.1f KB (1000 bytes) against %.1f KB float32: %.1fx, "
           "%.3f bits per weight on average\n", wbytes / 1000, fbytes / 1000, wbytes > 0 ? fbytes / wbytes : 1.0, wb);
    qat_model_free(&m);
    qat_cfg_free(&cfg);
    return 0;
}

/* ---- bench ---------------------------------------------------------------- */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_bench(int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "train") != 0) {
        if (argc >= 1 && (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help"))) {
            fputs(usage_bench, stdout);
            return 0;
        }
        return usage_error(usage_bench, "%s", "the benchmark to run: 'train'");
    }
    args a = {argc, 0, argv, usage_bench, 0};
    const char *cfgp = NULL;
    long batch = 0, steps = 20, threads = default_threads(), warmup = 3, v;
    int json = 0;
    for (a.i = 1; a.i < argc; a.i++) {
        const char *s = argv[a.i];
        int m = 0;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(usage_bench, stdout);
            return 0;
        } else if (!strcmp(s, "--json")) {
            json = 1;
        } else if (!opt_int(&a, "--batch", 1, 65536, &v, &m)) {
            return a.err;
        } else if (m) {
            batch = v;
        } else if (!opt_int(&a, "--steps", 1, 1000000, &v, &m)) {
            return a.err;
        } else if (m) {
            steps = v;
        } else if (!opt_int(&a, "--threads", 1, 256, &v, &m)) {
            return a.err;
        } else if (m) {
            threads = v;
        } else if (!opt_int(&a, "--warmup", 0, 1000, &v, &m)) {
            return a.err;
        } else if (m) {
            warmup = v;
        } else if (s[0] == '-') {
            return usage_error(usage_bench, "unknown option '%s'", s);
        } else if (!cfgp) {
            cfgp = s;
        } else {
            return usage_error(usage_bench, "unexpected argument '%s'", s);
        }
    }
    if (!cfgp) return usage_error(usage_bench, "%s", "missing CONFIG");
    qat_model m;
    qat_cfg cfg;
    qat_net_cfg net;
    if (!load_model(cfgp, (int)batch, (int)threads, &m, &cfg, &net)) {
        qat_cfg_free(&cfg);
        return fail();
    }
    batch = m.batch;
    qat_optimizer o;
    if (qat_optimizer_init(&o, &m, &net.optim) != QAT_OK) {
        qat_model_free(&m);
        qat_cfg_free(&cfg);
        return fail();
    }
    qat_rng r;
    qat_rng_seed(&r, 0);
    for (size_t i = 0; i < m.input->n; i++) m.input->x[i] = qat_rng_normal(&r);
    for (long i = 0; i < batch; i++) m.labels[i] = (int32_t)qat_rng_below(&r, (uint32_t)m.nclass);
    double *t = calloc((size_t)steps, sizeof *t);
    for (long i = 0; i < warmup; i++) qat_train_step(&m, &o, &net, net.sched.base_lr, (int)batch);
    for (long i = 0; i < steps; i++) {
        double t0 = qat_time_now();
        qat_train_step(&m, &o, &net, net.sched.base_lr, (int)batch);
        t[i] = qat_time_now() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    double med = steps % 2 ? t[steps / 2] : 0.5 * (t[steps / 2 - 1] + t[steps / 2]), best = t[0];
    if (json)
        printf("{\"config\": \"%s\", \"batch\": %ld, \"threads\": %ld, \"steps\": %ld, \"images_per_s\": %.1f, "
               "\"images_per_s_best\": %.1f, \"step_ms_median\": %.3f, \"peak_rss_mb\": %.1f}\n",
               cfgp, batch, threads, steps, (double)batch / med, (double)batch / best, med * 1e3, qat_peak_rss_mb());
    else
        printf("%s: batch %ld, %ld threads: %.1f images/s (median of %ld steps, %.2f ms), best %.1f images/s\n", cfgp,
               batch, threads, (double)batch / med, steps, med * 1e3, (double)batch / best);
    free(t);
    qat_optimizer_free(&o);
    qat_model_free(&m);
    qat_cfg_free(&cfg);
    return 0;
}

/* Debian's OpenBLAS 0.3.21 picks its kernels by CPU model: it falls back to
 * the SSE3 "Prescott" kernels on Intel CPUs newer than it knows (4x slower
 * GEMM), and gives an AMD Zen 4/5 with AVX-512 its AVX2 "Haswell"/"Zen"
 * kernels (1.4x slower convolutions, measured on a Zen 5). It reads
 * OPENBLAS_CORETYPE when the library loads, before main, so when the user
 * has not chosen, set it from the CPU's features and restart once.
 * QAT_NO_REEXEC=1 turns this off. */
static int openblas_core_rank(const char *name)
{
    static const char *const avx2[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"};
    for (int i = 0; i < 5; i++)
        if (name && strcasecmp(name, avx2[i]) == 0) return i < 2 ? 1 : 2; /* 1: AVX2 kernels, 2: AVX-512 */
    return 0;
}

static void choose_openblas_core(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("QAT_NO_REEXEC")) return;
    const char *core = NULL;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        core = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        core = "Haswell";
#endif
    if (!core) return;
    if (openblas_core_rank(openblas_get_corename()) >= openblas_core_rank(core))
        return; /* OpenBLAS chose kernels as wide as the CPU's */
    setenv("OPENBLAS_CORETYPE", core, 1);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return;
    self[n] = 0;
    execv(self, argv);
    /* exec failed: carry on with the slow kernels */
}

/* ---- report --------------------------------------------------------------- */
static const char usage_report[] =
    "usage: qat report RUN_DIR [RUN_DIR...] [-o OUT.html] [--model MODEL.qnn]\n"
    "\n"
    "Writes one self-contained HTML page (inline SVG, no script, no network) of\n"
    "what the runs wrote: loss, accuracy, learning rate and images/s per epoch,\n"
    "flip ratio, sparsity and bits per layer, weight and activation histograms\n"
    "with the quantizer's levels, the layers' bits and storage, the config and\n"
    "the command. Several runs: their curves overlaid and their final numbers.\n"
    "  -o OUT.html       default: RUN_DIR/report.html for one run, report.html for several\n"
    "  --model M.qnn     also the exported model's size, compression and the parity\n"
    "                    'qat export --verify' recorded\n";

static int cmd_report(int argc, char **argv)
{
    args a = {argc, 0, argv, usage_report, 0};
    const char *out = NULL, *model = NULL;
    const char **runs = calloc((size_t)argc + 1, sizeof *runs);
    int nruns = 0;
    char outbuf[4200];
    if (!runs) return usage_error(usage_report, "%s", "out of memory");
    for (a.i = 0; a.i < argc; a.i++) {
        const char *s = argv[a.i], *val;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(usage_report, stdout);
            free(runs);
            return 0;
        } else if ((val = opt_value(&a, "-o")) || (val = opt_value(&a, "--out"))) {
            out = val;
        } else if ((val = opt_value(&a, "--model"))) {
            model = val;
        } else if (a.err) {
            free(runs);
            return a.err;
        } else if (s[0] == '-') {
            free(runs);
            return usage_error(usage_report, "unknown option '%s'", s);
        } else {
            runs[nruns++] = s;
        }
    }
    if (!nruns) {
        free(runs);
        return usage_error(usage_report, "%s", "missing RUN_DIR");
    }
    if (!out) {
        snprintf(outbuf, sizeof outbuf, "%s%s", nruns == 1 ? runs[0] : "", nruns == 1 ? "/report.html" : "report.html");
        out = outbuf;
    }
    qat_report_opts ro = {.runs = runs, .nruns = nruns, .out = out, .model = model};
    qat_status st = qat_report_write(&ro);
    free(runs);
    if (st != QAT_OK) return fail();
    printf("%s\n", out);
    return 0;
}

/* ---- lloyd ---------------------------------------------------------------- */
static const char usage_lloyd[] =
    "usage: qat lloyd --bits N [--q2 V] [--json]\n"
    "\n"
    "Expected squared error, for a standard normal input over x >= 0, of DST's\n"
    "power-of-two activation quantizer with levels {0} and {q2 2^k, k = 0..N-2}\n"
    "(dst-low-bit-strategy.txt, Eq. 3-6, Table 1). Without --q2, searches the\n"
    "best q2.\n";

static int cmd_lloyd(int argc, char **argv)
{
    args a = {argc, 0, argv, usage_lloyd, 0};
    long bits = 0, v;
    double q2 = -1;
    int json = 0;
    for (a.i = 0; a.i < argc; a.i++) {
        const char *s = argv[a.i], *val;
        int m = 0;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(usage_lloyd, stdout);
            return 0;
        } else if (!strcmp(s, "--json")) {
            json = 1;
        } else if ((val = opt_value(&a, "--q2"))) {
            char *end;
            q2 = strtod(val, &end);
            if (*end || !(q2 > 0) || q2 > 1e6) return usage_error(usage_lloyd, "--q2 expects a positive number, got '%s'", val);
        } else if (a.err) {
            return a.err;
        } else if (!opt_int(&a, "--bits", 2, 30, &v, &m)) {
            return a.err;
        } else if (m) {
            bits = v;
        } else {
            return usage_error(usage_lloyd, "unexpected argument '%s'", s);
        }
    }
    if (!bits) return usage_error(usage_lloyd, "%s", "missing --bits N");
    int search = q2 < 0;
    double e = search ? qat_dst_lloyd_best((int)bits, &q2) : qat_dst_lloyd_error((int)bits, q2);
    if (json)
        printf("{\"bits\": %ld, \"q2\": %.10g, \"error\": %.10f, \"searched\": %s}\n", bits, q2, e,
               search ? "true" : "false");
    else
        printf("bits %ld, q2 %.6g%s: expected squared error %.4f\n", bits, q2, search ? " (best)" : "", e);
    return 0;
}

int main(int argc, char **argv)
{
    choose_openblas_core(argv);
    /* a write past `ulimit -f` fails with EFBIG and is reported with its
     * file, instead of the signal killing qat with a half-written temp */
    signal(SIGXFSZ, SIG_IGN);
    /* QAT_CONV_DIRECT=0: 3x3 convolutions on im2col + sgemm (for comparison) */
    const char *cd = getenv("QAT_CONV_DIRECT");
    if (cd && !strcmp(cd, "0")) qat_conv_direct = 0;
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (!strcmp(cmd, "train")) {
        char line[4096];
        join_command(line, sizeof line, argc, argv);
        return cmd_train(argc - 2, argv + 2, line);
    }
    if (!strcmp(cmd, "report")) return cmd_report(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "summary")) return cmd_summary(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "lloyd")) return cmd_lloyd(argc - 2, argv + 2);
    if (!strcmp(cmd, "export")) return cmd_export(argc - 2, argv + 2);
    if (!strcmp(cmd, "infer")) return cmd_infer(argc - 2, argv + 2);
    fprintf(stderr, "%s: unknown command '%s'\n%s", prog, cmd, usage_main);
    return EXIT_USAGE;
}
