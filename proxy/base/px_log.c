/*
 * Log line formatting. Each line is built in a stack buffer and written with one fwrite so lines
 * from several threads (the work pool) never interleave mid-line. Messages longer than the buffer
 * are truncated with a marker rather than split.
 */
#include "px_log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int px__log_level = PX_LOG_INFO;
static px_log_format_t log_format = PX_LOG_TEXT;
static FILE *log_out;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void px_log_setup(px_log_level_t level, px_log_format_t format, FILE *out)
{
    px__log_level = (int)level;
    log_format = format;
    log_out = out;
}

bool px_log_level_parse(const char *s, px_log_level_t *out)
{
    for (size_t i = 0; i < PX_ARRAY_SIZE(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (px_log_level_t)i;
            return true;
        }
    }
    return false;
}

const char *px_log_level_name(px_log_level_t level)
{
    return (unsigned)level < PX_ARRAY_SIZE(level_names) ? level_names[level] : "?";
}

/* Appends s to buf as a JSON string body (without quotes). */
static size_t json_escape(char *buf, size_t cap, size_t pos, const char *s)
{
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)c;
        } else if (c < 0x20) {
            pos += (size_t)snprintf(buf + pos, cap - pos, "\\u%04x", c);
        } else {
            buf[pos++] = (char)c;
        }
    }
    return pos;
}

/* Text lines are one event each: control bytes in a message or context (a client can put a
 * newline into its user name) are written as \xNN so nobody can forge a log line. */
static void text_sanitize(char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s), bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += ((unsigned char)s[i] < 0x20 || s[i] == 0x7f);
    if (!bad)
        return;
    /* Rewrite in place from the end; the caller's buffers leave room (see px__log_write). */
    char *r = s + n, *w = s + n + 3 * bad;
    *w = '\0';
    while (r > s) {
        unsigned char c = (unsigned char)*--r;
        if (c < 0x20 || c == 0x7f) {
            *--w = hex[c & 15];
            *--w = hex[c >> 4];
            *--w = 'x';
            *--w = '\\';
        } else {
            *--w = (char)c;
        }
    }
}

/* Copies src into dst (capacity cap) leaving room for text_sanitize to expand every byte. */
static void copy_for_sanitize(char *dst, size_t cap, const char *src)
{
    size_t room = (cap - 1) / 4, n = strlen(src);
    if (n > room)
        n = room;
    memcpy(dst, src, n);
    dst[n] = '\0';
    text_sanitize(dst);
}

void px__log_write(px_log_level_t level, const char *ctx, const char *fmt, ...)
{
    char msg[4096], line[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(msg))
        memcpy(msg + sizeof(msg) - 5, "...", 4);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03ldZ", (long)(tv.tv_usec / 1000));

    size_t pos;
    if (log_format == PX_LOG_JSON) {
        pos = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%d,",
                               ts, px_log_level_name(level), (int)getpid());
        if (ctx) {
            pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"ctx\":\"");
            pos = json_escape(line, sizeof(line), pos, ctx);
            pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\",");
        }
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"msg\":\"");
        pos = json_escape(line, sizeof(line), pos, msg);
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"}\n");
    } else {
        char smsg[sizeof(msg) * 4], sctx[1024];
        copy_for_sanitize(smsg, sizeof(smsg), msg);
        if (ctx)
            copy_for_sanitize(sctx, sizeof(sctx), ctx);
        pos = (size_t)snprintf(line, sizeof(line), "%s [%d] %s %s%s%s\n", ts, (int)getpid(),
                               px_log_level_name(level), ctx ? sctx : "", ctx ? ": " : "", smsg);
    }
    if (pos >= sizeof(line)) {
        pos = sizeof(line) - 1;
        line[pos - 1] = '\n';
    }
    FILE *out = log_out ? log_out : stderr;
    fwrite(line, 1, pos, out);
    fflush(out);
}

void px_fatal(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    px__log_write(PX_LOG_ERROR, NULL, "%s", msg);
    exit(1);
}
