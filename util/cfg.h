/* cfg.h: the Darknet-style config parser. It turns a text of `[section]`
 * headers and `key = value` lines into sections, hands out typed, range-checked
 * values, and reports every typo or bad value as "PATH:LINE: ..." errors.
 *
 * Syntax
 *   [name]            starts a section (names may repeat: one per layer)
 *   key = value       whitespace around key and value is trimmed
 *   # or ;            starts a comment running to the end of the line
 *   blank lines are fine, CRLF line ends are tolerated.
 * Errors (QAT_ERR_CONFIG, message "PATH:LINE: ..."): a key before any
 * section, a line that is neither a header nor `key = value`, an empty key,
 * an empty value, a key with whitespace inside, a duplicate key in one
 * section (both lines named), an unterminated `[`, an empty section name,
 * text after `]`, a NUL byte. A missing or unreadable file is QAT_ERR_IO
 * ("PATH: ..."); allocation failure is QAT_ERR_MEMORY.
 *
 * Ownership: a qat_cfg owns every string in it (path, raw text, names, keys,
 * values); qat_cfg_free releases them. Pointers handed out by the getters
 * (qat_cfg_get_str) live as long as the qat_cfg. A failed parse leaves the
 * qat_cfg zeroed (nothing to free, though freeing it is harmless).
 *
 * Getters: a key that is absent gives *out = def and QAT_OK. A key that is
 * present but malformed or out of range gives QAT_ERR_CONFIG with
 * "PATH:LINE: [section] key 'lr': expected a number, got 'abc'" and leaves
 * *out untouched. Every getter marks the key used and records it as asked
 * (for typo suggestions), so call the getters for all keys a section accepts,
 * then qat_cfg_check_unused(). The `key` argument is stored by pointer in
 * `asked`: pass string literals (or strings that outlive the qat_cfg). Only
 * the first 64 distinct asked keys are recorded; more only weakens
 * suggestions. Passing NULL for c, s, key or out is a bug (QAT_ASSERT). */
#ifndef QAT_CFG_H
#define QAT_CFG_H

#include <stddef.h>

#include "qat_util.h"

#define QAT_CFG_MAX_ASKED 64

typedef struct {
    char *key, *val;
    int line; /* 1-based line of the key in the text */
    int used; /* set by any getter that asked for this key */
} qat_cfg_kv;

typedef struct {
    char *name; /* without the brackets, trimmed */
    int line;   /* line of the header */
    qat_cfg_kv *kv;
    int nkv;
    const char *asked[QAT_CFG_MAX_ASKED]; /* keys asked by getters, distinct */
    int nasked;
} qat_cfg_section;

typedef struct {
    char *path;      /* file path (or the name given to parse_text) */
    char *text;      /* the raw text, NUL-terminated (a checkpoint stores it) */
    size_t text_len; /* bytes of text, without the terminating NUL */
    qat_cfg_section *sec;
    int nsec;
} qat_cfg;

/* Reads and parses a file (at most 16 MiB). Keeps the raw text in c->text. */
qat_status qat_cfg_parse_file(qat_cfg *c, const char *path);
/* Parses len bytes of text (need not be NUL-terminated). `name` is used as
 * the path in messages (NULL means "<text>"). */
qat_status qat_cfg_parse_text(qat_cfg *c, const char *name, const char *text, size_t len);
void qat_cfg_free(qat_cfg *c);

/* Integer in [lo, hi] (inclusive), decimal, optional sign, nothing else. */
qat_status qat_cfg_get_int(qat_cfg *c, qat_cfg_section *s, const char *key, int def, int lo,
                           int hi, int *out);
/* Finite float in [lo, hi] (inclusive); NaN, inf and out-of-range exponents
 * are rejected. */
qat_status qat_cfg_get_float(qat_cfg *c, qat_cfg_section *s, const char *key, float def,
                             float lo, float hi, float *out);
/* *out points into the qat_cfg (or is def, which may be NULL). */
qat_status qat_cfg_get_str(qat_cfg *c, qat_cfg_section *s, const char *key, const char *def,
                           const char **out);
/* 0/1/true/false/yes/no, case-insensitive; *out is 0 or 1. */
qat_status qat_cfg_get_bool(qat_cfg *c, qat_cfg_section *s, const char *key, int def, int *out);
/* *out is the index in names[] of the value (exact match), or def when the key
 * is absent. The error lists the allowed names. */
qat_status qat_cfg_get_enum(qat_cfg *c, qat_cfg_section *s, const char *key,
                            const char *const *names, int nnames, int def, int *out);
/* Comma-separated integers ("30,60, 90") into out[0..cap); *n is the count
 * (0 when the key is absent). Empty items and more than cap items are errors. */
qat_status qat_cfg_get_int_list(qat_cfg *c, qat_cfg_section *s, const char *key, int *out,
                                int cap, int *n);
/* Comma-separated finite floats ("0.4914, 0.4822, 0.4465") into out[0..cap),
 * each in [lo, hi]; *n is the count (0 when the key is absent, and out is
 * then untouched). Empty items, items that are not numbers or out of range,
 * and more than cap items are errors naming the item. */
qat_status qat_cfg_get_float_list(qat_cfg *c, qat_cfg_section *s, const char *key, float lo,
                                  float hi, float *out, int cap, int *n);
/* 1 when the key is present in the section. Does not mark it used. */
int qat_cfg_has(const qat_cfg_section *s, const char *key);

/* After a section is consumed: the first key no getter asked for gives
 * QAT_ERR_CONFIG "PATH:LINE: unknown key 'lrr' in [net] (did you mean 'lr'?)"
 * (closest asked key by case-insensitive edit distance), or lists the known
 * keys when none is close. */
qat_status qat_cfg_check_unused(const qat_cfg *c, const qat_cfg_section *s);
/* Sets QAT_ERR_CONFIG with "PATH:LINE: msg" ("PATH: msg" when line <= 0) and
 * returns it; for errors the caller finds (unknown section names ...). */
qat_status qat_cfg_error_at(const qat_cfg *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
