/*
 * The error collector behind cfg_report_t: every problem found while loading becomes one line
 * "<where>: <subject>: <message>", kept in a bounded list, sorted (file errors by line, then the
 * environment, then cross-key checks, then the caller's hook) and written into the caller's
 * buffer. Callers make sure messages never contain secrets; this file only formats and orders.
 */
#include "cfg_int.h"

#include "px_alloc.h"
#include "px_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

void cfg_report_init(cfg_report_t *r, const char *name)
{
    memset(r, 0, sizeof(*r));
    r->name = name;
    r->stage = CFG_STAGE_CHECK;
}

void cfg_report_free(cfg_report_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        px_free(r->errs[i].msg);
    px_free(r->errs);
    r->errs = NULL;
    r->n = r->cap = 0;
}

static int err_cmp(const struct cfg_err *a, const struct cfg_err *b)
{
    if (a->stage != b->stage)
        return a->stage < b->stage ? -1 : 1;
    /* Only the file's errors are ordered by line: the environment and the checks report in a
     * deliberate order of their own. */
    if (a->stage == CFG_STAGE_FILE && a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

static int err_qsort_cmp(const void *a, const void *b)
{
    return err_cmp(a, b);
}

void cfg_report_addv(cfg_report_t *r, int code, int stage, int line, const char *fmt, va_list ap)
{
    r->total++;
    va_list ap2;
    va_copy(ap2, ap);
    int len = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (len < 0) {
        len = 0;
        fmt = "";
    }
    struct cfg_err e = {.code = code, .stage = stage, .line = line, .seq = r->seq++};

    size_t slot = r->n;
    if (r->n == CFG_MAX_ERRORS) {
        /* Full: keep the errors that sort first, so that the first line of the report is right
         * even when a huge file produces thousands of errors in a different order. */
        size_t worst = 0;
        for (size_t i = 1; i < r->n; i++)
            if (err_cmp(&r->errs[i], &r->errs[worst]) > 0)
                worst = i;
        r->dropped++;
        if (err_cmp(&e, &r->errs[worst]) >= 0)
            return;
        slot = worst;
    } else if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        struct cfg_err *ne = px_realloc(r->errs, cap * sizeof(*ne));
        if (!ne) {
            r->oom = true;
            return;
        }
        r->errs = ne;
        r->cap = cap;
    }
    e.msg = px_malloc((size_t)len + 1);
    if (!e.msg) {
        r->oom = true;
        return;
    }
    vsnprintf(e.msg, (size_t)len + 1, fmt, ap);
    if (slot == r->n) {
        r->n++;
    } else {
        px_free(r->errs[slot].msg);
    }
    r->errs[slot] = e;
}

void cfg_report_add(cfg_report_t *r, int code, int stage, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cfg_report_addv(r, code, stage, line, fmt, ap);
    va_end(ap);
}

/* Formats "<where>: " for a key from its origin into buf. */
static int key_line(const cfg_report_t *r, const cfg_t *c, const cfg_key_t *k, char *buf,
                    size_t buflen)
{
    const struct cfg_origin *o = c && c->_origins ? &c->_origins[cfg_key_index(k)] : NULL;
    if (o && o->from == CFG_FROM_ENV) {
        snprintf(buf, buflen, "env %s", o->env);
        return 0;
    }
    if (o && o->from == CFG_FROM_FILE) {
        snprintf(buf, buflen, "%s:%d: %s.%s", r->name, o->line, k->section, k->name);
        return o->line;
    }
    snprintf(buf, buflen, "%s: %s.%s", r->name, k->section, k->name);
    return 0;
}

static void report_keyv(cfg_report_t *r, const cfg_t *c, const cfg_key_t *k, int code,
                        const char *fmt, va_list ap)
{
    char where[256], msg[1024];
    int line = key_line(r, c, k, where, sizeof(where));
    vsnprintf(msg, sizeof(msg), fmt, ap);
    cfg_report_add(r, code, r->stage, line, "%s: %s", where, msg);
}

void cfg_report_key(cfg_report_t *r, const cfg_t *c, const cfg_key_t *k, int code, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_keyv(r, c, k, code, fmt, ap);
    va_end(ap);
}

void cfg_report_error(cfg_report_t *r, const cfg_t *c, const char *section, const char *key,
                      const char *fmt, ...)
{
    if (!r)
        return;
    va_list ap;
    va_start(ap, fmt);
    const cfg_key_t *k = section && key ? cfg_key_find(section, key) : NULL;
    if (k) {
        report_keyv(r, c, k, CFG_E_VALUE, fmt, ap);
    } else {
        /* A hook may speak about something that is not one key; place it at the file. */
        char msg[1024];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        if (section && key)
            cfg_report_add(r, CFG_E_VALUE, r->stage, 0, "%s: %s.%s: %s", r->name, section, key,
                           msg);
        else
            cfg_report_add(r, CFG_E_VALUE, r->stage, 0, "%s: %s", r->name, msg);
    }
    va_end(ap);
}

/* Appends s and a newline when the whole line fits; false otherwise. */
static bool put_line(char *err, size_t errlen, size_t *o, const char *s)
{
    size_t n = strlen(s);
    if (*o + n + 2 > errlen)
        return false;
    memcpy(err + *o, s, n);
    err[*o + n] = '\n';
    *o += n + 1;
    err[*o] = '\0';
    return true;
}

int cfg_report_finish(cfg_report_t *r, char *err, size_t errlen)
{
    if (r->n)
        qsort(r->errs, r->n, sizeof(*r->errs), err_qsort_cmp);
    int code = r->oom ? UV_ENOMEM : r->n ? r->errs[0].code : r->total ? CFG_E_VALUE : 0;
    if (!err || errlen == 0)
        return code;
    err[0] = '\0';
    size_t o = 0;
    if (r->oom && !put_line(err, errlen, &o, "out of memory while loading the configuration"))
        return code;
    for (size_t i = 0; i < r->n; i++) {
        if (put_line(err, errlen, &o, r->errs[i].msg))
            continue;
        if (o == 0) {
            /* Not even the first line fits: a cut first line beats an empty report. */
            snprintf(err, errlen, "%s", r->errs[i].msg);
            return code;
        }
        char more[64];
        snprintf(more, sizeof(more), "... and %zu more errors", r->n - i + r->dropped);
        put_line(err, errlen, &o, more);
        return code;
    }
    if (r->dropped) {
        char more[64];
        snprintf(more, sizeof(more), "... and %zu more errors", r->dropped);
        put_line(err, errlen, &o, more);
    }
    return code;
}
