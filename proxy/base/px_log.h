/*
 * Process-wide logging: one line per event, text or JSON, to stderr (or a file for tests). The
 * level check is a single comparison so TRACE costs nothing when off. Only proxy/ logs; the
 * libraries return error codes and messages instead. Never pass secrets to these functions.
 */
#ifndef PX_LOG_H
#define PX_LOG_H

#include "px_util.h"

#include <stdbool.h>
#include <stdio.h>

typedef enum px_log_level {
    PX_LOG_ERROR = 0,
    PX_LOG_WARN,
    PX_LOG_INFO,
    PX_LOG_DEBUG,
    PX_LOG_TRACE,
} px_log_level_t;

typedef enum px_log_format {
    PX_LOG_TEXT = 0,
    PX_LOG_JSON,
} px_log_format_t;

extern int px__log_level;

/* out may be NULL for stderr. Not thread-safe; call from the main thread. */
void px_log_setup(px_log_level_t level, px_log_format_t format, FILE *out);
bool px_log_level_parse(const char *s, px_log_level_t *out);
const char *px_log_level_name(px_log_level_t level);

#define px_log_enabled(level) ((int)(level) <= px__log_level)

/* `ctx` is an optional context such as "C-12 alice@dev 127.0.0.1:50000" (NULL for none). */
void px__log_write(px_log_level_t level, const char *ctx, const char *fmt, ...) PX_PRINTF(3, 4);

#define px_log(level, ...)                                                                         \
    do {                                                                                           \
        if (px_log_enabled(level))                                                                 \
            px__log_write(level, NULL, __VA_ARGS__);                                               \
    } while (0)

#define px_log_ctx(level, ctx, ...)                                                                \
    do {                                                                                           \
        if (px_log_enabled(level))                                                                 \
            px__log_write(level, ctx, __VA_ARGS__);                                                \
    } while (0)

/* Startup-only: logs at ERROR and exits(1). Never used on a connection path. */
_Noreturn void px_fatal(const char *fmt, ...) PX_PRINTF(1, 2);

#endif
