/* test_ckptfile.c: the checkpoint container: exact byte layout, round trip,
 * every truncation and every byte flip rejected, structural errors behind a
 * valid CRC, atomic commit (old file intact, no temp left), and an unknown
 * optimizer kind behind a valid CRC. Exit 0 on success. */
#include "ckptfile.h"
#include "checkpoint.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "qat_test.h"


static char dir[64];
static char path[128];

static int write_file(const char *p, const uint8_t *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    if (!f) return 0;
    int ok = fwrite(b, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static uint8_t *slurp(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_crc(uint8_t *b, size_t n)
{
    put32(b + n - 4, (uint32_t)crc32(crc32(0, Z_NULL, 0), b, (uInt)(n - 4)));
}

/* Reads bytes b as a checkpoint file; returns the status, checks that a
 * failure left nothing behind. */
static qat_status read_bytes(const uint8_t *b, size_t n)
{
    char p[160];
    snprintf(p, sizeof p, "%s/probe.ckpt", dir);
    if (!write_file(p, b, n)) {
        CHECK(0, "cannot write %s", p);
        return QAT_ERR_IO;
    }
    qat_ckpt ck;
    qat_status st = qat_ckpt_read(&ck, p);
    if (st != QAT_OK)
        CHECK(ck.buf == NULL && ck.rec == NULL && ck.nrec == 0 && ck.path == NULL,
              "partial result after error");
    qat_ckpt_free(&ck);
    return st;
}

static int no_temp_files(void)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int ok = 1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) {
            fprintf(stderr, "  leftover temp file %s\n", e->d_name);
            ok = 0;
        }
    closedir(d);
    return ok;
}

/* ---- the exact layout of a one-record file, built by hand ---- */
static void test_layout(void)
{
    qat_ckpt_writer *w;
    int dims[1] = {2};
    int32_t v[2] = {-2, 0x01020304};
    CHECK(qat_ckpt_writer_open(&w, path) == QAT_OK, "open: %s", qat_last_error());
    CHECK(qat_ckpt_writer_add(w, "ab", QAT_CKPT_I32, 1, dims, v, sizeof v) == QAT_OK, "add: %s",
          qat_last_error());
    CHECK(qat_ckpt_writer_commit(w) == QAT_OK, "commit: %s", qat_last_error());
    uint8_t want[] = {'Q', 'A', 'T', 'C', 'K', 'P', 'T', 0, 1, 0, 0, 0, 1, 0, 0, 0, /* header */
                      2, 0, 'a', 'b', 2, 1, 2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0,     /* record */
                      0xfe, 0xff, 0xff, 0xff, 0x04, 0x03, 0x02, 0x01,              /* payload */
                      0, 0, 0, 0};                                                 /* crc */
    fix_crc(want, sizeof want);
    size_t n = 0;
    uint8_t *got = slurp(path, &n);
    CHECK(got && n == sizeof want && memcmp(got, want, n) == 0, "layout differs (%zu bytes)", n);
    free(got);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644, "mode %o", sb.st_mode & 0777);
}

/* ---- round trip ---- */
enum { BIGN = 2 * 5 * 7 * 1000 }; /* crosses the writer's 64 KiB staging buffer */

static void write_sample(const char *p, float *big)
{
    qat_ckpt_writer *w;
    float wts[12];
    for (int i = 0; i < 12; i++) wts[i] = (float)i * 0.25f - 1.0f;
    wts[5] = -0.0f;
    int32_t labels[5] = {-1, 0, 1, 2147483647, -2147483647 - 1};
    uint64_t step = 0x0123456789abcdefULL;
    const char cfg[] = "[net]\nlr = 0.1\n";
    int d2[2] = {3, 4}, d1[1] = {5}, d0[2] = {0, 3}, d4[4] = {2, 5, 7, 1000};
    CHECK(qat_ckpt_writer_open(&w, p) == QAT_OK, "open: %s", qat_last_error());
    if (!w) return;
    CHECK(qat_ckpt_writer_add(w, "conv1.weight", QAT_CKPT_F32, 2, d2, wts, sizeof wts) == QAT_OK,
          "add: %s", qat_last_error());
    CHECK(qat_ckpt_writer_add(w, "labels", QAT_CKPT_I32, 1, d1, labels, sizeof labels) == QAT_OK,
          "add: %s", qat_last_error());
    CHECK(qat_ckpt_writer_add(w, "step", QAT_CKPT_U64, 0, NULL, &step, sizeof step) == QAT_OK,
          "add: %s", qat_last_error());
    CHECK(qat_ckpt_writer_add(w, "cfg", QAT_CKPT_BYTES, 0, NULL, cfg, sizeof cfg - 1) == QAT_OK,
          "add: %s", qat_last_error());
    CHECK(qat_ckpt_writer_add(w, "empty", QAT_CKPT_F32, 2, d0, NULL, 0) == QAT_OK, "add: %s",
          qat_last_error());
    if (big)
        CHECK(qat_ckpt_writer_add(w, "big", QAT_CKPT_F32, 4, d4, big, BIGN * sizeof(float)) == QAT_OK,
              "add: %s", qat_last_error());
    /* argument errors leave the writer usable */
    CHECK(qat_ckpt_writer_add(w, "labels", QAT_CKPT_I32, 1, d1, labels, sizeof labels) == QAT_ERR_ARG,
          "duplicate name accepted");
    CHECK(qat_ckpt_writer_add(w, "x", QAT_CKPT_F32, 2, d2, wts, 8) == QAT_ERR_ARG, "size mismatch");
    CHECK(qat_ckpt_writer_add(w, "", QAT_CKPT_F32, 0, NULL, NULL, 0) == QAT_ERR_ARG, "empty name");
    CHECK(qat_ckpt_writer_add(w, "x", 7, 0, NULL, NULL, 0) == QAT_ERR_ARG, "dtype");
    CHECK(qat_ckpt_writer_add(w, "x", QAT_CKPT_F32, 5, d4, NULL, 0) == QAT_ERR_ARG, "ndim");
    CHECK(qat_ckpt_writer_add(w, "x", QAT_CKPT_U64, 0, NULL, &step, 3) == QAT_ERR_ARG, "partial u64");
    char longname[300];
    memset(longname, 'n', 299);
    longname[299] = 0;
    CHECK(qat_ckpt_writer_add(w, longname, QAT_CKPT_BYTES, 0, NULL, NULL, 0) == QAT_ERR_ARG, "long name");
    CHECK(qat_ckpt_writer_commit(w) == QAT_OK, "commit: %s", qat_last_error());
}

static void test_round_trip(void)
{
    float *big = malloc(BIGN * sizeof *big);
    for (int i = 0; i < BIGN; i++) big[i] = (float)i * 1e-3f - 7.0f;
    write_sample(path, big);
    CHECK(no_temp_files(), "temp files after commit");
    qat_ckpt ck;
    qat_status st = qat_ckpt_read(&ck, path);
    CHECK(st == QAT_OK, "read: %s", qat_last_error());
    if (st != QAT_OK) {
        free(big);
        return;
    }
    CHECK(ck.nrec == 6 && ck.version == 1, "nrec %d version %u", ck.nrec, ck.version);
    const qat_ckpt_record *r = qat_ckpt_find(&ck, "conv1.weight");
    CHECK(r && r->dtype == QAT_CKPT_F32 && r->ndim == 2 && r->dims[0] == 3 && r->dims[1] == 4 &&
              r->dims[2] == 0 && r->nbytes == 48 && r->offset == 16 + 2 + 12 + 2 + 8 + 8,
          "conv1.weight record");
    float wts[12];
    CHECK(r && qat_ckpt_record_copy(r, QAT_CKPT_F32, wts, sizeof wts) == QAT_OK, "copy");
    CHECK(wts[0] == -1.0f && wts[11] == 1.75f && wts[5] == 0.0f && signbit(wts[5]), "weights values");
    CHECK(r && memcmp((const uint8_t *)ck.buf + r->offset, r->data, 4) == 0, "offset vs data");
    CHECK(r && qat_ckpt_record_copy(r, QAT_CKPT_I32, wts, sizeof wts) == QAT_ERR_MISMATCH &&
              strstr(qat_last_error(), "conv1.weight"),
          "dtype mismatch: %s", qat_last_error());
    CHECK(r && qat_ckpt_record_copy(r, QAT_CKPT_F32, wts, 44) == QAT_ERR_MISMATCH, "size mismatch");

    r = qat_ckpt_find(&ck, "labels");
    int32_t labels[5];
    CHECK(r && qat_ckpt_record_copy(r, QAT_CKPT_I32, labels, sizeof labels) == QAT_OK &&
              labels[0] == -1 && labels[3] == 2147483647 && labels[4] == -2147483647 - 1,
          "labels");
    r = qat_ckpt_find(&ck, "step");
    uint64_t step = 0;
    CHECK(r && r->ndim == 0 && qat_ckpt_record_copy(r, QAT_CKPT_U64, &step, 8) == QAT_OK &&
              step == 0x0123456789abcdefULL,
          "step");
    r = qat_ckpt_find(&ck, "cfg");
    CHECK(r && r->dtype == QAT_CKPT_BYTES && r->nbytes == 15 && memcmp(r->data, "[net]\nlr = 0.1\n", 15) == 0,
          "cfg blob");
    r = qat_ckpt_find(&ck, "empty");
    CHECK(r && r->nbytes == 0 && r->dims[0] == 0 && r->dims[1] == 3, "empty");
    r = qat_ckpt_find(&ck, "big");
    float *back = malloc(BIGN * sizeof *back);
    CHECK(r && r->ndim == 4 && r->dims[3] == 1000 &&
              qat_ckpt_record_copy(r, QAT_CKPT_F32, back, BIGN * sizeof *back) == QAT_OK &&
              memcmp(back, big, BIGN * sizeof *back) == 0,
          "big");
    CHECK(qat_ckpt_find(&ck, "nope") == NULL, "find missing");
    CHECK(strcmp(ck.path, path) == 0, "path");
    qat_ckpt_free(&ck);
    qat_ckpt_free(&ck);
    free(back);
    free(big);
}

/* ---- hostile input ---- */
static void test_corruption(void)
{
    char small[160];
    snprintf(small, sizeof small, "%s/small.ckpt", dir);
    write_sample(small, NULL); /* ~200 bytes: every length and every byte */
    size_t n = 0;
    uint8_t *good = slurp(small, &n);
    CHECK(good && n > 100, "sample size %zu", n);
    if (!good) return;
    CHECK(read_bytes(good, n) == QAT_OK, "pristine: %s", qat_last_error());
    uint8_t *b = malloc(n);

    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        qat_status st = read_bytes(good, len);
        if (st != QAT_ERR_FORMAT && st != QAT_ERR_CHECKSUM) bad++;
        /* same truncation with a CRC that matches: must be a format error */
        if (len >= 20) {
            memcpy(b, good, len);
            fix_crc(b, len);
            st = read_bytes(b, len);
            if (st != QAT_ERR_FORMAT) {
                bad++;
                fprintf(stderr, "  truncated to %zu with valid crc: %s\n", len, qat_status_name(st));
            }
        }
    }
    CHECK(bad == 0, "%d truncations not rejected", bad);

    bad = 0;
    int crcflip_ok = 0;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            memcpy(b, good, n);
            b[i] ^= k ? 0xff : 0x01;
            qat_status st = read_bytes(b, n);
            if (st != QAT_ERR_FORMAT && st != QAT_ERR_CHECKSUM) {
                bad++;
                fprintf(stderr, "  flip at %zu: %s\n", i, qat_status_name(st));
            }
            if (i >= 16 && i < n - 4 && st != QAT_ERR_CHECKSUM) {
                bad++;
                fprintf(stderr, "  flip at %zu in the records not a checksum error\n", i);
            }
            /* same flip with a matching CRC: structure checks alone, no crash */
            if (i < n - 4) {
                fix_crc(b, n);
                st = read_bytes(b, n);
                if (st == QAT_OK) crcflip_ok++;
                else if (st != QAT_ERR_FORMAT) bad++;
            }
        }
    CHECK(bad == 0, "%d byte flips not rejected properly", bad);
    CHECK(crcflip_ok > 0, "payload flips with a fixed CRC should still read");

    /* A corrupted payload length behind a valid CRC: record 0's u64 size sits
     * at 16 + 2 + 12 (name) + 2 + 8 (dims) = 40. */
    memcpy(b, good, n);
    b[40] += 4;
    fix_crc(b, n);
    qat_status st = read_bytes(b, n);
    CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), "record 0 ('conv1.weight') at offset 40"),
          "length corruption: %s", qat_last_error());
    /* dims that agree with the bigger payload: it then runs past the end */
    memcpy(b, good, n);
    for (int i = 0; i < 8; i++) b[40 + i] = (uint8_t)(0xfffffffc00000004ULL >> (8 * i));
    put32(b + 32, 0x7fffffff);
    put32(b + 36, 0x7fffffff);
    fix_crc(b, n);
    st = read_bytes(b, n);
    CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), "at offset 40: payload of"), "huge: %s", qat_last_error());
    /* name length zero */
    memcpy(b, good, n);
    b[16] = 0;
    fix_crc(b, n);
    st = read_bytes(b, n);
    CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), "record 0 at offset 16: name length 0"),
          "name length: %s", qat_last_error());
    /* absurd record count */
    memcpy(b, good, n);
    put32(b + 12, 0xffffffffu);
    fix_crc(b, n);
    st = read_bytes(b, n);
    CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), "offset 12"), "count: %s", qat_last_error());
    /* one record too few: trailing bytes */
    memcpy(b, good, n);
    put32(b + 12, 4);
    fix_crc(b, n);
    st = read_bytes(b, n);
    CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), "after the last of 4 records"),
          "trailing: %s", qat_last_error());
    /* plain CRC damage */
    memcpy(b, good, n);
    b[n - 1] ^= 0x80;
    st = read_bytes(b, n);
    CHECK(st == QAT_ERR_CHECKSUM && strstr(qat_last_error(), "stored 0x") &&
              strstr(qat_last_error(), "computed 0x"),
          "crc: %s", qat_last_error());

    /* wrong magic, named by byte */
    memcpy(b, good, n);
    b[5] = 'X';
    st = read_bytes(b, n);
    CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), "byte 5 is 0x58, expected 0x50"),
          "magic: %s", qat_last_error());
    st = read_bytes((const uint8_t *)"PK\3\4 this is a zip", 19);
    CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), "not a qat checkpoint: byte 0"),
          "zip: %s", qat_last_error());
    /* a future version, CRC fixed so only the version is wrong */
    memcpy(b, good, n);
    put32(b + 8, 2);
    fix_crc(b, n);
    st = read_bytes(b, n);
    CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), "version 2 is newer"), "version: %s",
          qat_last_error());
    st = read_bytes(b, 0);
    CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), "too short"), "empty: %s", qat_last_error());

    /* duplicate names, valid CRC */
    uint8_t dup[] = {'Q', 'A', 'T', 'C', 'K', 'P', 'T', 0, 1, 0, 0, 0, 2, 0, 0, 0,
                     1, 0, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* "a", bytes, ndim 0, 0 bytes */
                     1, 0, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                     0, 0, 0, 0};
    fix_crc(dup, sizeof dup);
    st = read_bytes(dup, sizeof dup);
    CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), "record 1 ('a'") &&
              strstr(qat_last_error(), "same name as record 0"),
          "dup: %s", qat_last_error());
    dup[31] = 'b';
    fix_crc(dup, sizeof dup);
    CHECK(read_bytes(dup, sizeof dup) == QAT_OK, "distinct names: %s", qat_last_error());

    qat_ckpt ck;
    st = qat_ckpt_read(&ck, "/nonexistent/x.ckpt");
    CHECK(st == QAT_ERR_IO && strstr(qat_last_error(), "/nonexistent/x.ckpt: cannot open"), "missing");
    free(b);
    free(good);
    remove(small);
    char probe[160];
    snprintf(probe, sizeof probe, "%s/probe.ckpt", dir);
    remove(probe);
}

/* ---- atomic commit ---- */
static void test_atomic(void)
{
    write_sample(path, NULL);
    size_t n0 = 0, n1 = 0;
    uint8_t *before = slurp(path, &n0), *after;
    int dims[1] = {4};
    float v[4] = {1, 2, 3, 4};

    /* abort after writing */
    qat_ckpt_writer *w;
    CHECK(qat_ckpt_writer_open(&w, path) == QAT_OK, "open");
    CHECK(qat_ckpt_writer_add(w, "v", QAT_CKPT_F32, 1, dims, v, sizeof v) == QAT_OK, "add");
    qat_ckpt_writer_abort(w);
    after = slurp(path, &n1);
    CHECK(after && n1 == n0 && memcmp(before, after, n0) == 0, "abort changed the old file");
    CHECK(no_temp_files(), "temp file after abort");
    free(after);

    /* a write that fails for real: the file size limit */
    size_t bign = 1u << 20;
    uint8_t *blob = calloc(1, bign);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    CHECK(qat_ckpt_writer_open(&w, path) == QAT_OK, "open");
    qat_status st = qat_ckpt_writer_add(w, "blob", QAT_CKPT_BYTES, 0, NULL, blob, bign);
    if (st == QAT_OK) st = qat_ckpt_writer_commit(w);
    else {
        CHECK(qat_ckpt_writer_add(w, "v", QAT_CKPT_F32, 1, dims, v, sizeof v) == QAT_ERR_IO,
              "poisoned writer accepted a record");
        st = qat_ckpt_writer_commit(w);
    }
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    CHECK(st == QAT_ERR_IO, "oversized write: %s %s", qat_status_name(st), qat_last_error());
    after = slurp(path, &n1);
    CHECK(after && n1 == n0 && memcmp(before, after, n0) == 0, "failed write changed the old file");
    CHECK(no_temp_files(), "temp file after failed write");
    free(after);
    free(blob);

    /* rename fails: the target is a directory */
    char sub[160];
    snprintf(sub, sizeof sub, "%s/adir", dir);
    mkdir(sub, 0755);
    CHECK(qat_ckpt_writer_open(&w, sub) == QAT_OK, "open");
    CHECK(qat_ckpt_writer_add(w, "v", QAT_CKPT_F32, 1, dims, v, sizeof v) == QAT_OK, "add");
    st = qat_ckpt_writer_commit(w);
    CHECK(st == QAT_ERR_IO && strstr(qat_last_error(), "cannot rename"), "rename: %s", qat_last_error());
    CHECK(no_temp_files(), "temp file after failed rename");
    rmdir(sub);

    /* nowhere to write */
    CHECK(qat_ckpt_writer_open(&w, "/nonexistent/dir/x.ckpt") == QAT_ERR_IO && w == NULL,
          "open in a missing dir");

    /* a successful commit replaces the file */
    CHECK(qat_ckpt_writer_open(&w, path) == QAT_OK, "open");
    CHECK(qat_ckpt_writer_commit(w) == QAT_OK, "commit empty");
    qat_ckpt ck;
    CHECK(qat_ckpt_read(&ck, path) == QAT_OK && ck.nrec == 0 && ck.size == 20, "empty checkpoint");
    qat_ckpt_free(&ck);
    CHECK(no_temp_files(), "temp files at the end");
    free(before);
}

/* ---- what train/checkpoint.c takes from the records ---- */

/* An optimizer kind that names no optimizer (a fuzzed checkpoint) is a
 * format error naming its byte; the message once printed the NULL name of
 * the unknown kind. */
static void test_optim_kind(void)
{
    static const char text[] = "[net]\ndataset = folder\nimage_size = 4\nchannels = 1\nbatch = 2\n"
                               "[flatten]\n[linear]\noutput = 3\n";
    char p[160];
    snprintf(p, sizeof p, "%s/kind.ckpt", dir);
    qat_cfg c;
    qat_net_cfg net;
    qat_layer *layers;
    int n;
    qat_model m;
    qat_optimizer o;
    qat_train_pos pos = {1, 2, 1, 0.5f, NULL};
    if (qat_cfg_parse_text(&c, "t.cfg", text, strlen(text)) != QAT_OK ||
        qat_netcfg_read(&c, &net, &layers, &n) != QAT_OK) {
        CHECK(0, "config: %s", qat_last_error());
        qat_cfg_free(&c);
        return;
    }
    if (qat_model_build(&m, layers, n, net.c, net.h, net.w, 2, 1, net.seed) != QAT_OK) {
        CHECK(0, "build: %s", qat_last_error());
        qat_cfg_free(&c);
        return;
    }
    CHECK(qat_optimizer_init(&o, &m, &net.optim) == QAT_OK, "optimizer: %s", qat_last_error());
    CHECK(qat_checkpoint_save(p, &m, c.text, c.text_len, &o, &pos) == QAT_OK, "save: %s", qat_last_error());
    qat_ckpt ck;
    size_t at = 0, size = 0;
    if (qat_ckpt_read(&ck, p) == QAT_OK && qat_ckpt_find(&ck, "optim.kind"))
        at = qat_ckpt_find(&ck, "optim.kind")->offset;
    qat_ckpt_free(&ck);
    uint8_t *b = slurp(p, &size);
    CHECK(b && at && at + 4 <= size, "no optim.kind record in %s", p);
    if (b && at && at + 4 <= size) {
        put32(b + at, 99);
        fix_crc(b, size);
        CHECK(write_file(p, b, size), "cannot write %s", p);
        CHECK(qat_ckpt_read(&ck, p) == QAT_OK, "read: %s", qat_last_error());
        qat_status st = qat_checkpoint_load_train(&ck, &m, &o, &pos);
        char want[96];
        snprintf(want, sizeof want, "byte %zu: record 'optim.kind' holds optimizer kind 99", at);
        CHECK(st == QAT_ERR_FORMAT && strstr(qat_last_error(), want), "unknown kind: status %d, %s", st,
              qat_last_error());
        printf("ok: %s\n", qat_last_error());
        qat_ckpt_free(&ck);
    }
    free(b);
    unlink(p);
    qat_optimizer_free(&o);
    qat_model_free(&m);
    qat_cfg_free(&c);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_ckptfile_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    test_layout();
    test_round_trip();
    test_corruption();
    test_atomic();
    test_optim_kind();
    remove(path);
    rmdir(dir);
    if (failures) {
        fprintf(stderr, "test_ckptfile: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_ckptfile: all checks passed\n");
    return 0;
}
