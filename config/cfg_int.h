/*
 * Internals shared by the config/ sources (never included outside config/): the snapshot arena,
 * per-key origins, key-table lookups, value conversion and the error collector behind
 * cfg_report_t. The public contract is cfg.h.
 */
#ifndef CFG_INT_H
#define CFG_INT_H

#include "cfg.h"
#include "px_util.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Hard bounds on what a peer (the file's author, or the fuzzer) can make us hold. */
#define CFG_MAX_FILE          (1024 * 1024) /* bytes of INI text */
#define CFG_MAX_LINE          65536         /* bytes per line, without the line end */
#define CFG_MAX_ERRORS        100           /* error lines kept; the rest are counted */
#define CFG_MAX_PASSWORD_FILE 4096          /* bytes read from upstream.password_file */

/*
 * A snapshot's memory: a chain of chunks that is freed, and wiped first, as a whole. Everything a
 * cfg_t points to lives here, so a snapshot has exactly one owner and one free path, and secrets
 * (the upstream password, whether current or overridden during loading) cannot survive the free.
 */
typedef struct cfg_chunk cfg_chunk_t;
typedef struct cfg_arena {
    cfg_chunk_t *head;
} cfg_arena_t;

void *cfg_arena_alloc(cfg_arena_t *a, size_t n);
char *cfg_arena_strndup(cfg_arena_t *a, const char *s, size_t n);
char *cfg_arena_printf(cfg_arena_t *a, const char *fmt, ...) PX_PRINTF(2, 3);
/* Wipes every chunk, then frees them. */
void cfg_arena_free(cfg_arena_t *a);

typedef enum cfg_from {
    CFG_FROM_DEFAULT = 0,
    CFG_FROM_FILE,
    CFG_FROM_ENV,
} cfg_from_t;

/* Where one key's value came from; cfg_t._origins has one per table entry, in table order. */
struct cfg_origin {
    cfg_from_t from;
    int line;          /* CFG_FROM_FILE: 1-based line */
    const char *where; /* "file:line", "env RSPROXY_X_Y" or "default" (in the arena) */
    const char *env;   /* CFG_FROM_ENV: the variable's name (in the arena) */
};

/* The allocation behind every cfg_t: the arena travels with the snapshot it owns. */
typedef struct cfg_snap {
    cfg_arena_t arena;
    cfg_t cfg;
} cfg_snap_t;

static inline cfg_snap_t *cfg_snap_of(const cfg_t *c)
{
    return container_of((cfg_t *)c, cfg_snap_t, cfg);
}

/* Key table helpers (cfg_keys.c). */
const cfg_key_t *cfg_key_find(const char *section, const char *name);
size_t cfg_key_index(const cfg_key_t *k);
/* Known sections in documentation order, and a one-line description of each. */
const char *const *cfg_sections(size_t *n);
bool cfg_section_known(const char *section, size_t len);
const char *cfg_section_doc(const char *section);
/* "RSPROXY_<SECTION>_<KEY>" into buf (at least 64 bytes). */
void cfg_key_env_name(const cfg_key_t *k, char *buf, size_t buflen);
/* Pointer to the key's field inside a snapshot. */
static inline void *cfg_key_field(const cfg_t *c, const cfg_key_t *k)
{
    return (char *)c + k->offset;
}

/*
 * Best suggestion for a misspelt name among `n` candidates: the closest by optimal string
 * alignment distance, ignoring ASCII case, within a threshold that grows with the length. NULL
 * when nothing is close.
 */
const char *cfg_suggest(const char *name, size_t len, const char *const *cands, size_t n);

/*
 * Converts text to key k's type and stores it in the snapshot. On a bad value returns CFG_E_VALUE
 * with a message in msg that never quotes a secret; UV_ENOMEM when the arena cannot grow.
 */
int cfg_value_set(cfg_t *c, const cfg_key_t *k, const char *text, char *msg, size_t msglen);
/* Writes a printable, length-capped rendering of a non-secret value for messages. */
void cfg_value_quote(const char *v, char *buf, size_t buflen);

/* Error collection. Stages order the final report: the file by line, then the environment, then
 * the cross-key checks, then the caller's hook, each in the order reported. */
enum cfg_stage {
    CFG_STAGE_FILE = 0,
    CFG_STAGE_ENV,
    CFG_STAGE_CHECK,
    CFG_STAGE_HOOK,
};

struct cfg_err {
    int code;
    int stage;
    int line;
    size_t seq;
    char *msg; /* px_malloc'd, one line without '\n' */
};

struct cfg_report {
    const char *name; /* the file name used in messages */
    int stage;        /* stage of errors added through cfg_report_error */
    struct cfg_err *errs;
    size_t n, cap;
    size_t dropped; /* errors beyond CFG_MAX_ERRORS */
    size_t seq;
    size_t total;
    bool oom;
};

void cfg_report_init(cfg_report_t *r, const char *name);
void cfg_report_free(cfg_report_t *r);
void cfg_report_add(cfg_report_t *r, int code, int stage, int line, const char *fmt, ...)
    PX_PRINTF(5, 6);
void cfg_report_addv(cfg_report_t *r, int code, int stage, int line, const char *fmt, va_list ap);
/* Reports at the location the key's value came from ("file:line: section.key: ", "env X: "). */
void cfg_report_key(cfg_report_t *r, const cfg_t *c, const cfg_key_t *k, int code, const char *fmt,
                    ...) PX_PRINTF(5, 6);
/* Sorts, writes every error one per line into err, and returns the code of the first one. */
int cfg_report_finish(cfg_report_t *r, char *err, size_t errlen);

/* Parsing (cfg_parse.c): the file text, then the environment, into an initialized snapshot. */
void cfg_parse_text(cfg_t *c, cfg_report_t *r, const char *text, size_t len);
void cfg_parse_env(cfg_t *c, cfg_report_t *r, char *const *envp);

/* Cross-key validation (cfg_validate.c); reads upstream.password_file. */
void cfg_validate_generic(cfg_t *c, cfg_report_t *r);

/* Reads a whole regular file of at most `max` bytes into a px_malloc'd NUL-terminated buffer.
 * Returns 0, or a negative errno-style code (UV_E*) with *why naming the problem when it is
 * not an errno (too large, not a regular file). */
int cfg_read_file(const char *path, size_t max, char **out, size_t *len, int *mode,
                  const char **why);

#endif
