/* fuzz_util.h: what the libFuzzer targets of tests/fuzz/ share: one private
 * temp folder per process for readers that take paths, and a cheap upper
 * bound on a parsed model's size, so that no target writes outside its folder
 * and no fuzzed config makes the fuzzer allocate gigabytes. Header-only
 * (static functions): each target is built from its own .c by scripts/fuzz. */
#ifndef QAT_FUZZ_UTIL_H
#define QAT_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

static char fuzz_dir_path[64];
static const char *const *fuzz_dir_names; /* the names a target writes, for clean-up */
static int fuzz_dir_nnames;

static void fuzz_dir_remove(void)
{
    char p[256];
    for (int i = fuzz_dir_nnames - 1; i >= 0; i--) { /* files before the folders holding them */
        snprintf(p, sizeof p, "%s/%s", fuzz_dir_path, fuzz_dir_names[i]);
        if (unlink(p) != 0) rmdir(p);
    }
    rmdir(fuzz_dir_path);
}

/* The process's folder (created on first use, removed at a normal exit).
 * names[0..n) are every file or folder (relative) a target may create in it,
 * folders before their files; a crash leaves the folder behind, which is
 * what one wants to reproduce it. Aborts if /tmp is unusable: a fuzzer that
 * cannot write its input would test nothing. */
static const char *fuzz_dir(const char *const *names, int n)
{
    if (!fuzz_dir_path[0]) {
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "/tmp/qat-fuzz-XXXXXX");
        if (!mkdtemp(fuzz_dir_path)) abort();
        fuzz_dir_names = names;
        fuzz_dir_nnames = n;
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

/* Removes every file of the last input, so that one input never sees what
 * the one before left (each run must depend on its own bytes only). */
static void fuzz_dir_clear(void)
{
    char p[256];
    for (int i = fuzz_dir_nnames - 1; i >= 0; i--) {
        snprintf(p, sizeof p, "%s/%s", fuzz_dir_path, fuzz_dir_names[i]);
        unlink(p);
    }
}

/* Writes len bytes to dir/name, gzip-compressed when gz (zlib's gzip format,
 * so that the readers' gzip path sees streams the fuzzer shaped inside). */
static void fuzz_write(const char *name, const uint8_t *data, size_t len, int gz)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", fuzz_dir_path, name);
    if (gz) {
        gzFile f = gzopen(p, "wb1");
        if (!f) abort();
        if (len && gzwrite(f, data, (unsigned)len) != (int)len) abort();
        if (gzclose(f) != Z_OK) abort();
        return;
    }
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    if (len && fwrite(data, 1, len, f) != len) abort();
    if (fclose(f) != 0) abort();
}

#ifdef QAT_LAYER_H
/* Limits of a model the targets build (batch 2): far above LeNet-5's
 * 61,706 parameters and 0.42 M MACs, far below what would make each run
 * cost more than milliseconds or the process more than a few hundred MB. */
#define FUZZ_MAX_INPUT (1 << 16)   /* c*h*w of the image */
#define FUZZ_MAX_PARAMS 1000000.0
#define FUZZ_MAX_MACS 4000000.0    /* per image; bounds im2col columns too */
#define FUZZ_MAX_ACTS 2000000.0    /* sum over layers of output elements */

static double fuzz_out_side(double in, int size, int stride, int pad)
{
    double o = (in + 2.0 * pad - size) / stride + 1.0;
    return o < 1.0 ? 1.0 : o; /* a map that vanishes fails the build anyway */
}

/* 1 when the layers parsed from a config cannot make a big model. An upper
 * bound only, from the settings alone, before anything is allocated: a
 * [route] may take any earlier output, so it is given the largest channels
 * and sides seen so far; shapes that do not fit together are left to
 * qat_model_build to refuse. */
static int fuzz_model_small(int c, int h, int w, const qat_layer *ls, int n)
{
    if ((double)c * h * w > FUZZ_MAX_INPUT) return 0;
    double C = c, H = h, W = w, maxc = C, maxh = H, maxw = W;
    double params = 0, macs = 0, acts = C * H * W;
    for (int i = 0; i < n; i++) {
        const qat_layer *l = &ls[i];
        const char *t = l->type->section;
        if (strcmp(t, "conv2d") == 0) {
            double k = C * l->size * l->size;
            H = fuzz_out_side(H, l->size, l->stride, l->pad);
            W = fuzz_out_side(W, l->size, l->stride, l->pad);
            params += l->filters * (k + 1);
            macs += l->filters * k * H * W;
            C = l->filters;
        } else if (strcmp(t, "linear") == 0) {
            double k = C * H * W;
            params += l->filters * (k + 1);
            macs += l->filters * k;
            C = l->filters;
            H = W = 1;
        } else if (strcmp(t, "maxpool") == 0 || strcmp(t, "avgpool") == 0) {
            H = fuzz_out_side(H, l->size, l->stride, l->pad);
            W = fuzz_out_side(W, l->size, l->stride, l->pad);
        } else if (strcmp(t, "global_avgpool") == 0) {
            H = W = 1;
        } else if (strcmp(t, "flatten") == 0) {
            C *= H * W;
            H = W = 1;
        } else if (strcmp(t, "batchnorm") == 0) {
            params += 4 * C;
        } else if (strcmp(t, "route") == 0) {
            C = maxc;
            H = maxh;
            W = maxw;
        } /* relu, hardtanh, dropout, shortcut keep their input's shape */
        maxc = C > maxc ? C : maxc;
        maxh = H > maxh ? H : maxh;
        maxw = W > maxw ? W : maxw;
        acts += C * H * W;
        if (params > FUZZ_MAX_PARAMS || macs > FUZZ_MAX_MACS || acts > FUZZ_MAX_ACTS) return 0;
    }
    return 1;
}
#endif

#endif
