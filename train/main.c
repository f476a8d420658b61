/* main.c: the qat command line. The only place that prints or exits: it
 * turns the library's statuses into messages and exit codes (0 ok, 1
 * failure, 2 usage). Each command is an option table (cli.h) that drives
 * its parsing and its --help. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "blascore.h"
#include "cli.h"
#include "dist.h"
#include "dst.h"
#include "report.h"
#include "trainer.h"

#define NOPTS(t) ((int)(sizeof(t) / sizeof((t)[0])))
/* what --help says of --data and --threads everywhere */
#define DATA_DEFAULT "$QAT_DATA/<usual folder>, then ./data/<usual folder>"
#define THREADS_DEFAULT "all CPUs"

/* ---- train --------------------------------------------------------------- */
static char train_command[4096]; /* argv joined (join_command) */

typedef struct {
    int tty, quiet;
    double last;
    int epoch;                 /* the epoch the bar shows, */
    double epoch_start;        /* when it started, */
    double epoch_seconds;      /* and how long the last whole one took (0: none yet) */
    /* --report: OUT/report.html after every epoch */
    const char *report_out, *out_dir, *command;
} progress_ctx;

/* the run's page (qat train --report) */
static qat_status write_run_report(const progress_ctx *c)
{
    const char *runs[1] = {c->out_dir};
    qat_report_opts ro = {.runs = runs, .nruns = 1, .out = c->report_out, .command = c->command};
    return qat_report_write(&ro);
}

/* after an epoch: a page that cannot be written is a warning, the run goes on */
static void epoch_report(const progress_ctx *c)
{
    if (c->report_out && write_run_report(c) != QAT_OK)
        fprintf(stderr, "%s: warning: the report: %s\n", qat_cli_prog, qat_last_error());
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
        epoch_report(c);
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
    epoch_report(c);
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


enum { TR_DATA, TR_DATASET, TR_OUT, TR_EPOCHS, TR_SEED, TR_THREADS, TR_INIT_FROM, TR_RESUME, TR_OVERRIDE, TR_UNTIL,
       TR_MAX_STEPS, TR_QUIET, TR_REPORT, TR_COUNT };
static const qat_cli_opt train_opts[] = {
    [TR_DATA] = {"--data", NULL, QAT_CLI_STR, "DIR", .shown = DATA_DEFAULT,
                 .help = "the folder holding the dataset's files (Fashion-MNIST also\n"
                         "/usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist)"},
    [TR_DATASET] = {"--dataset", NULL, QAT_CLI_STR, "NAME", .shown = "the config's [net] dataset",
                    .help = "another dataset of the same image shape and classes\n"
                            "(mnist, fashion-mnist, cifar10, cifar100, folder)"},
    [TR_OUT] = {"--out", NULL, QAT_CLI_STR, "DIR", .shown = "runs/<config name>",
                .help = "where metrics.jsonl, last.ckpt, best.ckpt, summary.json go"},
    [TR_EPOCHS] = {"--epochs", NULL, QAT_CLI_INT, "N", 1, 1000000, .shown = "the config's [net] epochs",
                   .help = "epochs to train (the schedule spans them)"},
    [TR_SEED] = {"--seed", NULL, QAT_CLI_INT, "N", 0, INT_MAX, .shown = "the config's [net] seed",
                 .help = "the seed of initialisation, shuffling and augmentation"},
    [TR_THREADS] = {"--threads", NULL, QAT_CLI_INT, "N", 1, 256, .shown = THREADS_DEFAULT,
                    .help = "threads for qat's kernels (OpenBLAS runs on one)"},
    [TR_INIT_FROM] = {"--init-from", NULL, QAT_CLI_STR, "CKPT",
                      .help = "start from the weights of a run of the same architecture\n"
                              "(a float one, say); quantizers initialise from them"},
    [TR_RESUME] = {"--resume", NULL, QAT_CLI_STR, "CKPT",
                   .help = "continue from a checkpoint of the same model, with the run's\n"
                           "own --epochs, --seed, --threads, --max-steps, --dataset and\n"
                           "--data (kept in the checkpoint; one given differently is an\n"
                           "error, --override takes it)"},
    [TR_OVERRIDE] = {"--override", NULL, QAT_CLI_FLAG, .help = "with --resume: take the settings given here"},
    [TR_UNTIL] = {"--until", NULL, QAT_CLI_INT, "N", 1, 1000000, .shown = "the last epoch",
                  .help = "stop after epoch N (schedules still span all epochs;\ncontinue later with --resume)"},
    [TR_MAX_STEPS] = {"--max-steps", NULL, QAT_CLI_INT, "N", 1, INT_MAX, .shown = "every batch",
                      .help = "at most N steps per epoch and N batches per evaluation\n(smoke tests)"},
    [TR_QUIET] = {"--quiet", NULL, QAT_CLI_FLAG, .help = "no progress output"},
    [TR_REPORT] = {"--report", NULL, QAT_CLI_FLAG,
                   .help = "write OUT/report.html (qat report) after every epoch and at the end"},
};
_Static_assert(NOPTS(train_opts) == TR_COUNT, "one entry per option");

static int run_train(const qat_cli_command *c, qat_cli_val *v, int npos, char **pos)
{
    (void)c;
    (void)npos;
    qat_train_opts o = {.cfg_path = pos[0], .data_dir = v[TR_DATA].s, .dataset = v[TR_DATASET].s,
                        .out_dir = v[TR_OUT].s, .resume = v[TR_RESUME].s, .init_from = v[TR_INIT_FROM].s,
                        .override_run = v[TR_OVERRIDE].given, .seed = v[TR_SEED].given ? v[TR_SEED].i : -1,
                        .epochs = (int)v[TR_EPOCHS].i, .max_steps = (int)v[TR_MAX_STEPS].i, .until = (int)v[TR_UNTIL].i,
                        .threads = v[TR_THREADS].given ? (int)v[TR_THREADS].i : qat_cli_default_threads(),
                        .threads_given = v[TR_THREADS].given};
    int quiet = v[TR_QUIET].given, report = v[TR_REPORT].given;
    char outbuf[600], reportbuf[700];
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
    o.command = pc.command = train_command;
    catch_stop_signals();
    o.stop = &stop_flag;
    o.on_progress = on_progress;
    o.on_epoch = on_epoch;
    o.ctx = &pc;
    /* under mpirun: one rank of a data-parallel run; rank 0 alone shows and writes */
    qat_comm comm;
    int dist = qat_dist_init(&comm);
    if (dist < 0) return qat_cli_fail();
    if (dist) {
        o.comm = &comm;
        /* the ranks on this host share its cores: by default each takes its part */
        const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        if (!o.threads_given && local && atoi(local) > 1)
            o.threads = o.threads / atoi(local) > 1 ? o.threads / atoi(local) : 1;
        if (comm.rank != 0) {
            quiet = 1;
            report = 0;
            o.on_progress = NULL;
            o.on_epoch = NULL;
        }
    }
    qat_train_result r;
    if (qat_train(&o, &r) != QAT_OK) {
        if (dist) { /* the others may wait for this rank: end the job */
            fprintf(stderr, "%s: rank %d of %d: %s\n", qat_cli_prog, comm.rank, comm.size, qat_last_error());
            qat_dist_abort(1);
        }
        return qat_cli_fail();
    }
    if (dist) qat_dist_finalize();
    if (report && write_run_report(&pc) != QAT_OK) return qat_cli_fail(); /* the run is whole; its page is not */
    if (!quiet)
        fprintf(stderr, "done: %s on %s (%s), %d epochs, test acc %.4f, %.0f img/s, %.1f s, peak RSS %.0f MiB -> %s\n",
                o.cfg_path, r.dataset, r.data_dir, r.epochs, r.test_acc, r.train_images_per_s, r.seconds,
                r.peak_rss_mb, o.out_dir);
    return 0;
}

/* ---- eval ---------------------------------------------------------------- */
enum { EV_DATA, EV_JSON, EV_THREADS, EV_BATCH, EV_COUNT };
static const qat_cli_opt eval_opts[] = {
    [EV_DATA] = {"--data", NULL, QAT_CLI_STR, "DIR", .shown = DATA_DEFAULT, .help = "the folder holding the dataset's files"},
    [EV_JSON] = {"--json", NULL, QAT_CLI_FLAG,
                 .help = "{\"test_acc\": ..., \"test_loss\": ..., \"n\": ...} instead of a sentence"},
    [EV_THREADS] = {"--threads", NULL, QAT_CLI_INT, "N", 1, 256, .shown = THREADS_DEFAULT, .help = "threads"},
    [EV_BATCH] = {"--batch", NULL, QAT_CLI_INT, "B", 1, 65536, .idef = 256, .help = "images per forward pass"},
};
_Static_assert(NOPTS(eval_opts) == EV_COUNT, "one entry per option");

static int run_eval(const qat_cli_command *c, qat_cli_val *v, int npos, char **pos)
{
    (void)c;
    (void)npos;
    const char *ckpt = pos[0], *data = v[EV_DATA].s;
    int json = v[EV_JSON].given, batch = (int)v[EV_BATCH].i;
    int threads = v[EV_THREADS].given ? (int)v[EV_THREADS].i : qat_cli_default_threads();
    qat_model m;
    qat_cfg cfg;
    qat_net_cfg net;
    if (qat_checkpoint_open_model(ckpt, batch, threads, &m, &cfg, &net) != QAT_OK) return qat_cli_fail();
    char dir[512];
    qat_dataset train = {0}, test = {0};
    float loss, acc;
    int rc = 0;
    if (qat_data_locate(net.dataset, data, dir, sizeof dir) != QAT_OK ||
        qat_data_load_opts(&train, &test, net.dataset, dir, &net.data) != QAT_OK ||
        qat_evaluate(&m, &test, net.mean, net.std, net.pixel_grid, &loss, &acc) != QAT_OK) {
        rc = qat_cli_fail();
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

static int run_summary(const qat_cli_command *c, qat_cli_val *v, int npos, char **argv)
{
    (void)c;
    (void)v;
    (void)npos;
    qat_model m;
    qat_cfg cfg;
    qat_net_cfg net;
    size_t len = strlen(argv[0]);
    int ckpt = len > 5 && strcmp(argv[0] + len - 5, ".ckpt") == 0;
    if (ckpt ? qat_checkpoint_open_model(argv[0], 1, 1, &m, &cfg, &net) != QAT_OK
             : !load_model(argv[0], 1, 1, &m, &cfg, &net)) {
        qat_cfg_free(&cfg);
        return qat_cli_fail();
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
    double eb;
    int ec;
    if (qat_model_weight_storage_emptied(&m, &eb, &ec))
        printf("with the %d emptied channels removed (as qat export drops them): %.1f KB: %.1fx\n", ec, eb / 1000,
               eb > 0 ? fbytes / eb : 1.0);
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

enum { BE_BATCH, BE_STEPS, BE_THREADS, BE_WARMUP, BE_JSON, BE_COUNT };
static const qat_cli_opt bench_opts[] = {
    [BE_BATCH] = {"--batch", NULL, QAT_CLI_INT, "B", 1, 65536, .shown = "the config's batch", .help = "images per step"},
    [BE_STEPS] = {"--steps", NULL, QAT_CLI_INT, "N", 1, 1000000, .idef = 20, .help = "timed steps"},
    [BE_THREADS] = {"--threads", NULL, QAT_CLI_INT, "T", 1, 256, .shown = THREADS_DEFAULT, .help = "threads"},
    [BE_WARMUP] = {"--warmup", NULL, QAT_CLI_INT, "N", 0, 1000, .idef = 3, .help = "untimed steps first"},
    [BE_JSON] = {"--json", NULL, QAT_CLI_FLAG, .help = "one JSON object instead of a sentence"},
};
_Static_assert(NOPTS(bench_opts) == BE_COUNT, "one entry per option");

static int run_bench(const qat_cli_command *c, qat_cli_val *v, int npos, char **pos)
{
    (void)npos;
    if (strcmp(pos[0], "train") != 0) return qat_cli_usage_error(c, "the benchmark to run is 'train', not '%s'", pos[0]);
    const char *cfgp = pos[1];
    long batch = v[BE_BATCH].i, steps = v[BE_STEPS].i, warmup = v[BE_WARMUP].i;
    long threads = v[BE_THREADS].given ? v[BE_THREADS].i : qat_cli_default_threads();
    int json = v[BE_JSON].given;
    qat_model m;
    qat_cfg cfg;
    qat_net_cfg net;
    if (!load_model(cfgp, (int)batch, (int)threads, &m, &cfg, &net)) {
        qat_cfg_free(&cfg);
        return qat_cli_fail();
    }
    batch = m.batch;
    qat_optimizer o;
    if (qat_optimizer_init(&o, &m, &net.optim) != QAT_OK) {
        qat_model_free(&m);
        qat_cfg_free(&cfg);
        return qat_cli_fail();
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

/* ---- report --------------------------------------------------------------- */
enum { RE_OUT, RE_MODEL, RE_COUNT };
static const qat_cli_opt report_opts[] = {
    [RE_OUT] = {"--out", "-o", QAT_CLI_STR, "OUT.html", .shown = "RUN_DIR/report.html (one run), report.html (several)",
                .help = "the page"},
    [RE_MODEL] = {"--model", NULL, QAT_CLI_STR, "M.qnn",
                  .help = "also the exported model's size, compression and the parity\n"
                          "count 'qat export --verify' kept in M.qnn.verify.json"},
};
_Static_assert(NOPTS(report_opts) == RE_COUNT, "one entry per option");

static int run_report(const qat_cli_command *c, qat_cli_val *v, int nruns, char **pos)
{
    (void)c;
    const char *out = v[RE_OUT].s, *model = v[RE_MODEL].s;
    const char *const *runs = (const char *const *)pos;
    char outbuf[4200];
    if (!out) {
        snprintf(outbuf, sizeof outbuf, "%s%s", nruns == 1 ? runs[0] : "", nruns == 1 ? "/report.html" : "report.html");
        out = outbuf;
    }
    qat_report_opts ro = {.runs = runs, .nruns = nruns, .out = out, .model = model};
    qat_status st = qat_report_write(&ro);
    if (st != QAT_OK) return qat_cli_fail();
    printf("%s\n", out);
    return 0;
}

/* ---- lloyd ---------------------------------------------------------------- */
enum { LL_BITS, LL_Q2, LL_JSON, LL_COUNT };
static const qat_cli_opt lloyd_opts[] = {
    [LL_BITS] = {"--bits", NULL, QAT_CLI_INT, "N", 2, 30, .shown = "none, required", .help = "bits of the quantizer"},
    [LL_Q2] = {"--q2", NULL, QAT_CLI_NUM, "V", .dlo = 0, .dhi = 1e6, .shown = "the best q2, searched",
               .help = "the first nonzero level"},
    [LL_JSON] = {"--json", NULL, QAT_CLI_FLAG, .help = "one JSON object instead of a sentence"},
};
_Static_assert(NOPTS(lloyd_opts) == LL_COUNT, "one entry per option");

static int run_lloyd(const qat_cli_command *c, qat_cli_val *v, int npos, char **pos)
{
    (void)npos;
    (void)pos;
    long bits = v[LL_BITS].i;
    double q2 = v[LL_Q2].given ? v[LL_Q2].d : -1;
    int json = v[LL_JSON].given;
    if (!v[LL_BITS].given) return qat_cli_usage_error(c, "missing --bits N");
    int search = q2 < 0;
    double e = search ? qat_dst_lloyd_best((int)bits, &q2) : qat_dst_lloyd_error((int)bits, q2);
    if (json)
        printf("{\"bits\": %ld, \"q2\": %.10g, \"error\": %.10f, \"searched\": %s}\n", bits, q2, e,
               search ? "true" : "false");
    else
        printf("bits %ld, q2 %.6g%s: expected squared error %.4f\n", bits, q2, search ? " (best)" : "", e);
    return 0;
}

/* ---- the commands ----------------------------------------------------------- */
static const qat_cli_command cmd_train = {
    "train", "CONFIG", "Trains the model a config file describes (configs/ holds ready ones; README.md\nlists their keys).\n", 1, 1,
    train_opts, TR_COUNT, run_train};
static const qat_cli_command cmd_eval = {
    "eval", "CKPT",
    "Rebuilds the model from the config stored in CKPT and reports its test loss and\naccuracy.\n", 1, 1,
    eval_opts, EV_COUNT, run_eval};
static const qat_cli_command cmd_summary = {
    "summary", "CONFIG|CKPT",
    "Per layer: output shape, parameters, MACs, weight and input quantizers, and\n"
    "weight storage; a checkpoint gives its trained bitwidths (ALQ's pruned ones).\n",
    1, 1, NULL, 0, run_summary};
static const qat_cli_command cmd_bench = {
    "bench", "train CONFIG",
    "Times training steps (forward, backward, optimizer) on synthetic N(0,1)\n"
    "inputs and random labels; reports the median and the best step as images/s.\n",
    2, 2, bench_opts, BE_COUNT, run_bench};
static const qat_cli_command cmd_lloyd = {
    "lloyd", NULL,
    "Expected squared error, for a standard normal input over x >= 0, of DST's\n"
    "power-of-two activation quantizer with levels {0} and {q2 2^k, k = 0..N-2}\n"
    "(dst-low-bit-strategy.txt, Eq. 3-6, Table 1).\n",
    0, 0, lloyd_opts, LL_COUNT, run_lloyd};
static const qat_cli_command cmd_report = {
    "report", "RUN_DIR [RUN_DIR...]",
    "Writes one self-contained HTML page (inline SVG, no script, no network) of\n"
    "what the runs wrote: loss, accuracy, learning rate and images/s per epoch,\n"
    "flip ratio, sparsity and bits per layer, weight and activation histograms\n"
    "with the quantizer's levels, the layers' bits and storage, the config and\n"
    "the command. Several runs: their curves overlaid and their final numbers.\n",
    1, -1, report_opts, RE_COUNT, run_report};

/* the order of qat --help */
static const struct {
    const qat_cli_command *c;
    const char *brief;
} commands[] = {
    {&cmd_train, "train a model described by a config file"},
    {&cmd_eval, "evaluate a checkpoint on the test split"},
    {&cmd_summary, "per layer: output shape, parameters, MACs, bits, storage"},
    {&cmd_report, "one HTML page of a run's charts (several runs overlaid)"},
    {&qat_cli_export, "lower a trained model to integer-only .qnn (or C source)"},
    {&qat_cli_infer, "run an exported model on images or a dataset's test split"},
    {&cmd_bench, "measure training images/s on synthetic data"},
    {&cmd_lloyd, "DST's power-of-two activation error (Table 1)"},
};
#define NCOMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void main_help(FILE *f, int full)
{
    fprintf(f, "usage: qat COMMAND [ARGS]\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-9s %s\n", commands[i].c->name, commands[i].brief);
    if (!full) {
        fprintf(f, "\n'qat --help' lists every option; 'qat COMMAND --help' one command's.\n");
        return;
    }
    for (int i = 0; i < NCOMMANDS; i++) {
        fprintf(f, "\n");
        qat_cli_help(commands[i].c, f);
    }
}

int main(int argc, char **argv)
{
    qat_openblas_choose_core(argv);
    /* a write past `ulimit -f` fails with EFBIG and is reported with its
     * file, instead of the signal killing qat with a half-written temp */
    signal(SIGXFSZ, SIG_IGN);
    /* QAT_CONV_DIRECT=0: 3x3 convolutions on im2col + sgemm (for comparison) */
    const char *cd = getenv("QAT_CONV_DIRECT");
    if (cd && !strcmp(cd, "0")) qat_conv_direct = 0;
    if (argc < 2) {
        main_help(stderr, 0);
        return QAT_CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        main_help(stdout, 1);
        return 0;
    }
    /* the whole command line, kept in a run's summary.json */
    join_command(train_command, sizeof train_command, argc, argv);
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(cmd, commands[i].c->name)) return qat_cli_main(commands[i].c, argc - 2, argv + 2);
    fprintf(stderr, "%s: unknown command '%s'\n", qat_cli_prog, cmd);
    main_help(stderr, 0);
    return QAT_CLI_EXIT_USAGE;
}
