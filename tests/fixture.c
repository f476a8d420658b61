/* fixture.c: see fixture.h. */
#include "fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAX_FILE (8u << 20)
#define MAX_RECORDS 256

static uint32_t rd_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float half_to_float(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = ldexpf((float)m, -24); /* subnormal (or zero) */
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), e - 25);
    return sign ? -v : v;
}

void fixture_free(fixture *fx)
{
    for (int k = 0; k < fx->n; k++) {
        free(fx->r[k].f);
        free(fx->r[k].i);
    }
    free(fx->r);
    fx->r = NULL;
    fx->n = 0;
}

/* Reads and checks the whole file; on failure prints which byte was wrong. */
int fixture_read(fixture *fx, const char *path, const char magic[8], const char *hint)
{
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open (the fixture is committed; regenerate it with %s)\n", path, hint);
        return -1;
    }
    unsigned char *buf = malloc(MAX_FILE + 1);
    size_t len = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (!buf || rerr || len > MAX_FILE || len < 20) {
        fprintf(stderr, "%s: %s\n", path,
                !buf ? "out of memory" : rerr ? "read error"
                : len > MAX_FILE ? "larger than the 8 MiB limit" : "too short for a header");
        free(buf);
        return -1;
    }
    const char *why = NULL;
    size_t at = 0;
    if (memcmp(buf, magic, 8) != 0) why = "bad magic";
    else if (rd_u32(buf + 8) != 1) at = 8, why = "unsupported version (want 1)";
    else if ((uint32_t)crc32(0L, buf, (uInt)(len - 4)) != rd_u32(buf + len - 4))
        at = len - 4, why = "CRC-32 mismatch (file damaged)";
    uint32_t count = why ? 0 : rd_u32(buf + 12);
    if (!why && (count == 0 || count > MAX_RECORDS)) at = 12, why = "record count out of range";
    if (!why && !(fx->r = calloc(count, sizeof *fx->r))) why = "out of memory";
    size_t end = len - 4;
    at = why ? at : 16;
    for (uint32_t k = 0; !why && k < count; k++, fx->n++) {
        record *r = &fx->r[k];
        if (end - at < 4) { why = "truncated name length"; break; }
        uint32_t nl = rd_u32(buf + at);
        if (nl < 1 || nl > 63) { why = "name length not in 1..63"; break; }
        at += 4;
        if (end - at < nl + 8) { why = "truncated record header"; break; }
        memcpy(r->name, buf + at, nl);
        r->name[nl] = 0;
        if (strlen(r->name) != nl) { why = "NUL inside a name"; break; }
        at += nl;
        uint32_t dt = rd_u32(buf + at), nd = rd_u32(buf + at + 4);
        if (dt > DT_I32) { why = "unknown dtype"; break; }
        at += 4;
        if (nd > 4) { why = "ndim > 4"; break; }
        at += 4;
        if (end - at < 4 * (size_t)nd) { why = "truncated dims"; break; }
        r->dtype = (int)dt;
        r->ndim = (int)nd;
        r->n = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint32_t v = rd_u32(buf + at);
            if (v < 1 || v > (1u << 24)) { why = "dim not in 1..2^24"; break; }
            r->dims[d] = (int)v;
            r->n *= v;
            at += 4;
        }
        if (why) break;
        size_t es = dt == DT_F16 ? 2 : 4;
        if (r->n > (end - at) / es) { why = "data runs past the end"; break; }
        const unsigned char *p = buf + at;
        if (dt == DT_I32) {
            if (!(r->i = malloc(r->n * sizeof *r->i))) { why = "out of memory"; break; }
            for (size_t j = 0; j < r->n; j++) r->i[j] = (int32_t)rd_u32(p + 4 * j);
        } else {
            if (!(r->f = malloc(r->n * sizeof *r->f))) { why = "out of memory"; break; }
            for (size_t j = 0; j < r->n; j++) {
                if (dt == DT_F16) {
                    r->f[j] = half_to_float((uint16_t)(p[2 * j] | p[2 * j + 1] << 8));
                } else {
                    uint32_t u = rd_u32(p + 4 * j);
                    memcpy(&r->f[j], &u, 4);
                }
                if (!isfinite(r->f[j])) { why = "non-finite value"; break; }
            }
            if (why) break;
        }
        at += r->n * es;
    }
    if (!why && at != end) why = "trailing bytes after the last record";
    free(buf);
    if (why) {
        fprintf(stderr, "%s: byte %zu: %s\n", path, at, why);
        fixture_free(fx);
        return -1;
    }
    return 0;
}
