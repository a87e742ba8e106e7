/*
 * Growable writer and bounds-checked reader; see px_buf.h. Growth doubles up to the limit.
 */
#include "px_buf.h"
#include "px_alloc.h"

#include <stdio.h>
#include <string.h>

void px_dbuf_init(px_dbuf_t *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit ? limit : PX_DBUF_NOLIMIT;
}

void px_dbuf_init_secret(px_dbuf_t *b, size_t limit)
{
    px_dbuf_init(b, limit);
    b->secret = true;
}

void px_dbuf_free(px_dbuf_t *b)
{
    px_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void px_dbuf_free_secret(px_dbuf_t *b)
{
    px_wipe(b->data, b->cap);
    px_dbuf_free(b);
}

void px_dbuf_reset(px_dbuf_t *b)
{
    b->len = 0;
    b->failed = false;
}

bool px_dbuf_reserve(px_dbuf_t *b, size_t extra)
{
    if (b->failed)
        return false;
    /* +1 keeps room for px_dbuf_cstr's terminator without a second growth. */
    if (extra > b->limit || b->len > b->limit - extra) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap *= 2;
    uint8_t *nd;
    if (b->secret) {
        nd = px_malloc(ncap);
        if (nd && b->data) {
            memcpy(nd, b->data, b->len);
            px_wipe(b->data, b->cap);
            px_free(b->data);
        }
    } else {
        nd = px_realloc(b->data, ncap);
    }
    if (!nd) {
        b->failed = true;
        return false;
    }
    b->data = nd;
    b->cap = ncap;
    return true;
}

void px_dbuf_put(px_dbuf_t *b, const void *p, size_t n)
{
    if (!px_dbuf_reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

void px_dbuf_put_u8(px_dbuf_t *b, uint8_t v)
{
    px_dbuf_put(b, &v, 1);
}

void px_dbuf_put_u16(px_dbuf_t *b, uint16_t v)
{
    uint8_t t[2];
    px_put_u16(t, v);
    px_dbuf_put(b, t, 2);
}

void px_dbuf_put_u32(px_dbuf_t *b, uint32_t v)
{
    uint8_t t[4];
    px_put_u32(t, v);
    px_dbuf_put(b, t, 4);
}

void px_dbuf_put_str(px_dbuf_t *b, const char *s)
{
    px_dbuf_put(b, s, strlen(s) + 1);
}

void px_dbuf_put_cstr(px_dbuf_t *b, const char *s)
{
    px_dbuf_put(b, s, strlen(s));
}

void px_dbuf_vprintf(px_dbuf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if (!px_dbuf_reserve(b, (size_t)n))
        return;
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void px_dbuf_printf(px_dbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    px_dbuf_vprintf(b, fmt, ap);
    va_end(ap);
}

char *px_dbuf_cstr(px_dbuf_t *b)
{
    if (!px_dbuf_reserve(b, 0))
        return NULL;
    b->data[b->len] = '\0';
    return (char *)b->data;
}

uint8_t *px_dbuf_steal(px_dbuf_t *b, size_t *len)
{
    uint8_t *d = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
    return d;
}

size_t px_dbuf_frame_begin(px_dbuf_t *b, uint8_t type)
{
    if (type)
        px_dbuf_put_u8(b, type);
    size_t lenpos = b->len;
    px_dbuf_put_u32(b, 0); /* patched by px_dbuf_frame_end */
    return lenpos;
}

void px_dbuf_frame_end(px_dbuf_t *b, size_t lenpos)
{
    if (b->failed)
        return;
    px_put_u32(b->data + lenpos, (uint32_t)(b->len - lenpos));
}

uint8_t px_rd_u8(px_rd_t *r)
{
    const uint8_t *p = px_rd_bytes(r, 1);
    return p ? p[0] : 0;
}

uint16_t px_rd_u16(px_rd_t *r)
{
    const uint8_t *p = px_rd_bytes(r, 2);
    return p ? px_get_u16(p) : 0;
}

uint32_t px_rd_u32(px_rd_t *r)
{
    const uint8_t *p = px_rd_bytes(r, 4);
    return p ? px_get_u32(p) : 0;
}

const uint8_t *px_rd_bytes(px_rd_t *r, size_t n)
{
    if (r->err || n > r->len - r->off) {
        r->err = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

const char *px_rd_str(px_rd_t *r, size_t *n)
{
    if (r->err || r->off == r->len) {
        r->err = true; /* also keeps memchr away from a NULL, zero-length input */
        return NULL;
    }
    const uint8_t *start = r->p + r->off;
    const uint8_t *nul = memchr(start, 0, r->len - r->off);
    if (!nul) {
        r->err = true;
        return NULL;
    }
    if (n)
        *n = (size_t)(nul - start);
    r->off += (size_t)(nul - start) + 1;
    return (const char *)start;
}
