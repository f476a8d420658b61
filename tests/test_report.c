/* test_report.c: qat report on run folders written here (no data, no
 * training): the charts a run's files call for, the log scale of a loss
 * that spans decades, the overlay of several runs, the line a running
 * trainer is still writing left out, the same page twice, and bad files
 * named with their line and byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report.h"

#include "qat_test.h"

static char tmp[] = "/tmp/qat-report-XXXXXX";

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

/* a BNN-like run: the loss falls from 2.3 to 0.002 (three decades), binary
 * flip ratios, sparsity, a histogram of epoch 1 and 3 for one layer */
static void make_run(const char *dir, double scale)
{
    mkdir(dir, 0755);
    char hist[600], line[1024], text[8192] = "";
    const double loss[3] = {2.3, 0.05, 0.002};
    for (int e = 1; e <= 3; e++) {
        snprintf(line, sizeof line,
                 "{\"epoch\": %d, \"lr\": %g, \"train_loss\": %g, \"train_acc\": %g, \"val_loss\": -1, "
                 "\"val_acc\": -1, \"test_loss\": %g, \"test_acc\": %g, \"images_per_s\": %g, \"seconds\": 1.5, "
                 "\"best\": true, \"flip_ratio\": {\"conv2\": %g, \"fc1\": %g}, \"layers\": {\"conv2\": "
                 "{\"sparsity\": 0, \"near_level\": %g}, \"fc1\": {\"sparsity\": 0.1, \"near_level\": 0.5}}}\n",
                 e, 0.001 / e, loss[e - 1] * scale, 0.5 + 0.1 * e, loss[e - 1] * 1.1, 0.55 + 0.1 * e, 1000.0 * e,
                 0.1 / e, 0.2 / e, 0.3 * e);
        strcat(text, line);
    }
    strcat(text, "{\"epoch\": 4, \"lr\": 0.0002, \"train_lo"); /* being written */
    write_file(dir, "metrics.jsonl", text);
    write_file(dir, "summary.json",
               "{\n  \"config\": \"configs/mnist/lenet5_bnn.cfg\",\n  \"dataset\": \"mnist\",\n  \"command\": "
               "\"qat train configs/mnist/lenet5_bnn.cfg --epochs 3 <&>\",\n  \"epochs\": 3,\n  \"test_acc\": 0.85,\n"
               "  \"best_val_acc\": -1,\n  \"weight_bits\": {\"conv2\": 1.0}\n}\n");
    snprintf(hist, sizeof hist, "%s/hist", dir);
    mkdir(hist, 0755);
    for (int e = 1; e <= 3; e += 2) {
        char csv[4096] = "bin_lo,bin_hi,count\n", name[64];
        for (int b = 0; b < 20; b++) {
            snprintf(line, sizeof line, "%.6f,%.6f,%d\n", -1.5 + 0.15 * b, -1.5 + 0.15 * (b + 1), b < 10 ? b * e : 20 - b);
            strcat(csv, line);
        }
        snprintf(name, sizeof name, "hist/conv2.weight.e%03d.csv", e);
        write_file(dir, name, csv);
    }
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void test_one_run(const char *a)
{
    char out[600];
    snprintf(out, sizeof out, "%s/one.html", tmp);
    const char *runs[] = {a};
    qat_report_opts o = {.runs = runs, .nruns = 1, .out = out};
    CHECK(qat_report_write(&o) == QAT_OK, "one run: %s", qat_last_error());
    char *page = read_all(out);
    CHECK(page != NULL, "no page at %s", out);
    if (!page) return;
    static const char *const charts[] = {"loss", "accuracy", "lr", "images_per_s", "flip_ratio", "sparsity",
                                         "near_level", "hist-conv2-weight"};
    for (size_t i = 0; i < sizeof charts / sizeof charts[0]; i++) {
        char want[80];
        snprintf(want, sizeof want, "data-chart=\"%s\"", charts[i]);
        CHECK(count(page, want) == 1, "one run: %d charts %s", count(page, want), charts[i]);
    }
    /* the loss spans three decades: its y axis is logarithmic, with 1, 0.1, 0.01, 0.001 */
    const char *loss = strstr(page, "data-chart=\"loss\"");
    const char *axis = loss ? strstr(loss, "<g class=\"axis y\"") : NULL;
    CHECK(axis && !strncmp(axis, "<g class=\"axis y\" data-scale=\"log\"", 34), "the loss is not on a log axis");
    CHECK(axis && strstr(axis, ">0.001</text>") && strstr(axis, ">1</text>"), "the loss's decades are not labelled");
    const char *acc = strstr(page, "data-chart=\"accuracy\"");
    CHECK(acc && strstr(acc, "data-scale=\"linear\""), "accuracy is not linear");
    /* no validation split (-1): no validation curve in the legend */
    const char *legend = loss ? strstr(loss, "<g class=\"legend\">") : NULL;
    const char *end = legend ? strstr(legend, "</g>") : NULL;
    CHECK(legend && end && strstr(legend, ">train<") < end && !(strstr(legend, ">validation<") &&
          strstr(legend, ">validation<") < end), "the loss legend: train, test and no validation (val_loss is -1)");
    /* 3 whole epochs, the fourth still being written is left out */
    CHECK(strstr(page, "3 epochs recorded of 3"), "the epochs recorded");
    CHECK(count(page, "epoch 1<") == 1 && count(page, "epoch 3<") == 1, "the histogram's epochs in its legend");
    CHECK(strstr(page, "--epochs 3 &lt;&amp;&gt;"), "the command is not escaped");
    CHECK(strstr(page, "last.ckpt: not there"), "the missing checkpoint is not said");
    CHECK(!strstr(page, "<script"), "a script in the page");
    /* the same files give the same page */
    char out2[600];
    snprintf(out2, sizeof out2, "%s/one-again.html", tmp);
    o.out = out2;
    CHECK(qat_report_write(&o) == QAT_OK, "again: %s", qat_last_error());
    char *page2 = read_all(out2);
    CHECK(page2 && !strcmp(page, page2), "two reports of the same run differ");
    free(page2);
    free(page);
}

static void test_several(const char *a, const char *b)
{
    char out[600];
    snprintf(out, sizeof out, "%s/two.html", tmp);
    const char *runs[] = {a, b};
    qat_report_opts o = {.runs = runs, .nruns = 2, .out = out};
    CHECK(qat_report_write(&o) == QAT_OK, "two runs: %s", qat_last_error());
    char *page = read_all(out);
    if (!page) return;
    const char *c = strstr(page, "data-chart=\"cmp-train_loss\"");
    const char *legend = c ? strstr(c, "<g class=\"legend\">") : NULL;
    CHECK(legend && strstr(legend, ">ste<") && strstr(legend, ">aqe<"), "the overlay's legend names both runs");
    CHECK(count(page, "<details>") == 2 && strstr(page, "class=\"final\""), "each run folded below, a final table");
    CHECK(!strstr(page, "data-chart=\"cmp-val_acc\""), "a validation chart for runs without a validation split");
    free(page);
}

/* bad input: named with the file, the line and the byte */
static void test_bad(const char *a)
{
    char bad[600], out[600];
    snprintf(bad, sizeof bad, "%s/bad", tmp);
    snprintf(out, sizeof out, "%s/bad.html", tmp);
    const char *runs[] = {bad};
    qat_report_opts o = {.runs = runs, .nruns = 1, .out = out};
    mkdir(bad, 0755);
    CHECK(qat_report_write(&o) == QAT_ERR_IO && strstr(qat_last_error(), "metrics.jsonl: not found"), "empty folder: %s",
          qat_last_error());
    write_file(bad, "metrics.jsonl", "{\"epoch\": 1, \"lr\": 0.1}\n{\"epoch\": 2, \"lr\" 0.1}\n");
    CHECK(qat_report_write(&o) == QAT_ERR_FORMAT && strstr(qat_last_error(), "metrics.jsonl:2: byte 19: expected ':'"),
          "bad metrics: %s", qat_last_error());
    write_file(bad, "metrics.jsonl", "{\"epoch\": 1, \"lr\": 0.1}\n{\"lr\": 0.1}\n");
    CHECK(qat_report_write(&o) == QAT_ERR_FORMAT && strstr(qat_last_error(), "metrics.jsonl:2: no \"epoch\""),
          "a line without its epoch: %s", qat_last_error());
    write_file(bad, "metrics.jsonl", "{\"epoch\": 1, \"name\": \"a\\qb\"}\n");
    CHECK(qat_report_write(&o) == QAT_ERR_FORMAT && strstr(qat_last_error(), "metrics.jsonl:1: byte 25: bad escape"),
          "a bad escape: %s", qat_last_error());
    write_file(bad, "metrics.jsonl", "{\"epoch\": 1}\n");
    mkdir(strcat(strcpy(out, bad), "/hist"), 0755);
    snprintf(out, sizeof out, "%s/bad.html", tmp);
    write_file(bad, "hist/fc1.act.e001.csv", "bin_lo,bin_hi,count\n-1,0,3\n0,1,x\n");
    CHECK(qat_report_write(&o) == QAT_ERR_FORMAT && strstr(qat_last_error(), "fc1.act.e001.csv:3: expected"),
          "a bad histogram: %s", qat_last_error());
    CHECK(access(out, F_OK) != 0, "a failed report left %s", out);
    /* a .qnn that is not there */
    const char *good[] = {a};
    qat_report_opts m = {.runs = good, .nruns = 1, .out = out, .model = "/nonexistent/m.qnn"};
    CHECK(qat_report_write(&m) == QAT_ERR_IO && strstr(qat_last_error(), "/nonexistent/m.qnn"), "missing model: %s",
          qat_last_error());
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!mkdtemp(tmp)) return 1;
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/ste", tmp);
    snprintf(b, sizeof b, "%s/aqe", tmp);
    make_run(a, 1.0);
    make_run(b, 0.7);
    test_one_run(a);
    test_several(a, b);
    test_bad(a);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmp);
    printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
