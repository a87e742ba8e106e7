/*
 * Byte buffers: a growable writer with a sticky failure flag and a hard limit (px_dbuf_t, after
 * pgbouncer's PktBuf), and a bounds-checked reader with a sticky error flag (px_rd_t). Both are
 * pure; neither knows about sockets. Callers check `failed`/`err` once at the end instead of after
 * every put or get.
 */
#ifndef PX_BUF_H
#define PX_BUF_H

#include "px_util.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct px_dbuf {
    uint8_t *data; /* owned; px_dbuf_free releases it */
    size_t len;
    size_t cap;
    size_t limit; /* growth beyond this fails (sets failed) */
    bool failed;  /* sticky: an allocation failed or the limit was hit */
    bool secret;  /* growth copies and wipes instead of realloc (see px_dbuf_init_secret) */
} px_dbuf_t;

#define PX_DBUF_NOLIMIT ((size_t)1 << 40)

void px_dbuf_init(px_dbuf_t *b, size_t limit);
/* For buffers that will hold secrets (forwarded AWS keys, passwords): growing allocates a new
 * block, copies and wipes the old one, so realloc never leaves a copy in freed memory. Free
 * with px_dbuf_free_secret. */
void px_dbuf_init_secret(px_dbuf_t *b, size_t limit);
void px_dbuf_free(px_dbuf_t *b);
/* Wipes the contents before freeing (for buffers that held secrets). */
void px_dbuf_free_secret(px_dbuf_t *b);
void px_dbuf_reset(px_dbuf_t *b);
/* Makes room for `extra` more bytes; false (and failed set) when impossible. */
bool px_dbuf_reserve(px_dbuf_t *b, size_t extra);
void px_dbuf_put(px_dbuf_t *b, const void *p, size_t n);
void px_dbuf_put_u8(px_dbuf_t *b, uint8_t v);
void px_dbuf_put_u16(px_dbuf_t *b, uint16_t v);
void px_dbuf_put_u32(px_dbuf_t *b, uint32_t v);
/* Appends the string and its terminating NUL (PostgreSQL's String type). */
void px_dbuf_put_str(px_dbuf_t *b, const char *s);
/* Appends the bytes of a C string without the NUL. */
void px_dbuf_put_cstr(px_dbuf_t *b, const char *s);
void px_dbuf_printf(px_dbuf_t *b, const char *fmt, ...) PX_PRINTF(2, 3);
void px_dbuf_vprintf(px_dbuf_t *b, const char *fmt, va_list ap);
/* NUL-terminates without counting the NUL in len; returns data, or NULL when failed. */
char *px_dbuf_cstr(px_dbuf_t *b);
/* Hands the bytes to the caller (who frees them with px_free) and resets the buffer. */
uint8_t *px_dbuf_steal(px_dbuf_t *b, size_t *len);

/*
 * Length-prefixed frames: `type` 0 writes no type byte (startup-style packets). The Int32 length
 * counts itself and the body, as in the PostgreSQL protocol. _begin returns the position of the
 * length field, which _end patches once the body is written.
 */
size_t px_dbuf_frame_begin(px_dbuf_t *b, uint8_t type);
void px_dbuf_frame_end(px_dbuf_t *b, size_t lenpos);

typedef struct px_rd {
    const uint8_t *p;
    size_t len;
    size_t off;
    bool err; /* sticky: a read went past the end or a string had no NUL */
} px_rd_t;

static inline void px_rd_init(px_rd_t *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->err = false;
}
static inline size_t px_rd_left(const px_rd_t *r)
{
    return r->err ? 0 : r->len - r->off;
}
uint8_t px_rd_u8(px_rd_t *r);
uint16_t px_rd_u16(px_rd_t *r);
uint32_t px_rd_u32(px_rd_t *r);
/* Returns a pointer to n bytes inside the input, or NULL (and err) when fewer remain. */
const uint8_t *px_rd_bytes(px_rd_t *r, size_t n);
/* A NUL-terminated string inside the input; *n gets its length without the NUL. */
const char *px_rd_str(px_rd_t *r, size_t *n);

#endif
