/*
 * PostgreSQL v3 wire codec: startup-packet parsing with PostgreSQL 15's checks and messages, the
 * streaming framer the relay runs over its read buffers, parsers for the few backend messages
 * the proxy acts on, and builders for the messages it sends itself.
 *
 * Everything here is pure and bounded by the input length: no allocation except into the caller's
 * px_dbuf_t, no I/O, no logging. Parsers never trust a length or a NUL they have not checked;
 * each one has a fuzz target (tests/fuzz/fuzz_px_*.c).
 */
#include "px_msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void set_err(px_msg_err_t *err, const char *sqlstate, const char *fmt, ...) PX_PRINTF(3, 4);

static void set_err(px_msg_err_t *err, const char *sqlstate, const char *fmt, ...)
{
    if (!err)
        return;
    err->sqlstate = sqlstate;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

/* Length of the NUL-terminated string at p, bounded by n; n when there is no NUL. */
static size_t bounded_strlen(const uint8_t *p, size_t n)
{
    const uint8_t *z = memchr(p, 0, n);
    return z ? (size_t)(z - p) : n;
}

/* ------------------------------------------------------------------------------------------ */

bool px_msg_fe_startup_len(const uint8_t hdr[4], uint32_t *len, px_msg_err_t *err)
{
    uint32_t l = px_get_u32(hdr);
    /* PostgreSQL requires room for the protocol code (len >= 8 with the length word) and refuses
     * anything longer than MAX_STARTUP_PACKET_LENGTH before reading it. */
    if (l < 8 || l > PX_STARTUP_MAX) {
        set_err(err, "08P01", "invalid length of startup packet");
        return false;
    }
    *len = l;
    return true;
}

bool px_msg_fe_parse_startup(const uint8_t *pkt, size_t len, px_startup_t *out, px_msg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (len < 8 || len > PX_STARTUP_MAX || px_get_u32(pkt) != len) {
        set_err(err, "08P01", "invalid length of startup packet");
        return false;
    }
    uint32_t code = px_get_u32(pkt + 4);
    switch (code) {
    case PX_SSL_CODE:
    case PX_GSSENC_CODE:
        /* Both are exactly 8 bytes; PostgreSQL reads the code only, so extra bytes inside the
         * stated length would be a malformed packet. */
        if (len != 8) {
            set_err(err, "08P01", "invalid length of startup packet");
            return false;
        }
        out->kind = code == PX_SSL_CODE ? PX_STARTUP_SSL : PX_STARTUP_GSSENC;
        return true;
    case PX_CANCEL_CODE:
        if (len != 16) {
            set_err(err, "08P01", "invalid length of startup packet");
            return false;
        }
        out->kind = PX_STARTUP_CANCEL;
        out->cancel_pid = px_get_u32(pkt + 8);
        out->cancel_key = px_get_u32(pkt + 12);
        return true;
    default:
        break;
    }

    /* PostgreSQL 15 speaks 3.0 only (2.0 went away in 14); a 3.x minor above 0 is answered with
     * NegotiateProtocolVersion rather than refused. */
    if (PX_PROTO_MAJOR(code) != 3) {
        set_err(err, "0A000", "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
                PX_PROTO_MAJOR(code), PX_PROTO_MINOR(code));
        return false;
    }
    out->kind = PX_STARTUP_V3;
    out->version = code;
    out->need_negotiate = PX_PROTO_MINOR(code) > 0;

    /* The key/value list: the same walk as ProcessStartupPacket, which stops at an empty key and
     * then insists that this terminator is the last byte of the packet. */
    size_t off = 8;
    while (off < len) {
        const uint8_t *name = pkt + off;
        size_t nlen = bounded_strlen(name, len - off);
        if (nlen == 0)
            break; /* the terminator */
        size_t voff = off + nlen + 1;
        if (voff >= len)
            break; /* missing value: complained about below */
        const uint8_t *val = pkt + voff;
        size_t vlen = bounded_strlen(val, len - voff);
        if (voff + vlen >= len)
            break; /* value without its NUL */
        const char *k = (const char *)name, *v = (const char *)val;
        if (strcmp(k, "user") == 0) {
            out->user = v;
        } else if (strcmp(k, "database") == 0) {
            out->database = v;
        } else if (strncmp(k, "_pq_.", 5) == 0) {
            if (out->npq_opts >= PX_STARTUP_MAX_PQ_OPTS) {
                set_err(err, "08P01", "too many protocol options in startup packet");
                return false;
            }
            out->pq_opts[out->npq_opts++] = k;
            out->need_negotiate = true;
        }
        off = voff + vlen + 1;
    }
    if (off != len - 1 || pkt[off] != 0) {
        set_err(err, "08P01", "invalid startup packet layout: expected terminator as last byte");
        return false;
    }
    if (!out->user || out->user[0] == '\0') {
        set_err(err, "28000", "no PostgreSQL user name specified in startup packet");
        return false;
    }
    if (!out->database || out->database[0] == '\0')
        out->database = out->user;
    return true;
}

void px_msg_startup_iter_init(px_startup_iter_t *it, const uint8_t *pkt, size_t len)
{
    it->p = pkt;
    it->len = len;
    it->off = 8;
}

bool px_msg_startup_iter_next(px_startup_iter_t *it, const char **key, const char **val)
{
    if (it->off >= it->len)
        return false;
    const uint8_t *name = it->p + it->off;
    size_t nlen = bounded_strlen(name, it->len - it->off);
    if (nlen == 0)
        return false;
    size_t voff = it->off + nlen + 1;
    if (voff >= it->len)
        return false;
    size_t vlen = bounded_strlen(it->p + voff, it->len - voff);
    if (voff + vlen >= it->len)
        return false;
    *key = (const char *)name;
    *val = (const char *)(it->p + voff);
    it->off = voff + vlen + 1;
    return true;
}

bool px_msg_startup_key_forwarded(const char *key)
{
    return strcmp(key, "user") != 0 && strcmp(key, "database") != 0 &&
           strncmp(key, "_pq_.", 5) != 0;
}

void px_msg_fe_build_startup(px_dbuf_t *b, const char *user, const char *database,
                             const uint8_t *extra, size_t extralen)
{
    size_t lenpos = px_dbuf_frame_begin(b, 0);
    px_dbuf_put_u32(b, PX_PROTO_V3);
    px_dbuf_put_str(b, "user");
    px_dbuf_put_str(b, user);
    px_dbuf_put_str(b, "database");
    px_dbuf_put_str(b, database);
    if (extra) {
        px_startup_iter_t it;
        const char *k, *v;
        px_msg_startup_iter_init(&it, extra, extralen);
        while (px_msg_startup_iter_next(&it, &k, &v)) {
            if (!px_msg_startup_key_forwarded(k))
                continue;
            px_dbuf_put_str(b, k);
            px_dbuf_put_str(b, v);
        }
    }
    px_dbuf_put_u8(b, 0);
    px_dbuf_frame_end(b, lenpos);
}

void px_msg_fe_build_sslrequest(px_dbuf_t *b)
{
    px_dbuf_put_u32(b, 8);
    px_dbuf_put_u32(b, PX_SSL_CODE);
}

void px_msg_fe_build_cancel(px_dbuf_t *b, uint32_t pid, uint32_t key)
{
    px_dbuf_put_u32(b, 16);
    px_dbuf_put_u32(b, PX_CANCEL_CODE);
    px_dbuf_put_u32(b, pid);
    px_dbuf_put_u32(b, key);
}

void px_msg_fe_build_terminate(px_dbuf_t *b)
{
    px_dbuf_put_u8(b, 'X');
    px_dbuf_put_u32(b, 4);
}

/* ------------------------------------------------------------------------------------------ */

uint32_t px_msg_fe_limit(uint8_t type)
{
    /* PostgreSQL 15 postgres.c SocketBackend: the message types a backend accepts after login
     * and the maximum length it reads for each. Anything else is "invalid frontend message
     * type" (08P01), including 'p' which is only valid during authentication. */
    switch (type) {
    case 'Q': /* Query */
    case 'P': /* Parse */
    case 'B': /* Bind */
    case 'F': /* FunctionCall */
    case 'd': /* CopyData */
    case 'c': /* CopyDone */
    case 'f': /* CopyFail */
        return PX_MSG_LARGE_LIMIT;
    case 'C': /* Close */
    case 'D': /* Describe */
    case 'E': /* Execute */
    case 'H': /* Flush */
    case 'S': /* Sync */
    case 'X': /* Terminate */
        return PX_MSG_SMALL_LIMIT;
    default:
        return 0;
    }
}

void px_framer_init(px_framer_t *f, uint32_t max_len)
{
    f->body_left = 0;
    f->type = 0;
    f->max_len = max_len < 4 ? 4 : max_len;
}

void px_framer_step(px_framer_t *f, const uint8_t *p, size_t n, px_frame_t *out)
{
    out->type = f->type;
    out->len = 0;
    out->n = 0;
    if (f->body_left > 0) {
        size_t take = n < f->body_left ? n : f->body_left;
        f->body_left -= (uint32_t)take;
        out->ev = take > 0 ? PX_FRAME_BODY : PX_FRAME_NEED;
        out->n = take;
        return;
    }
    if (n < PX_MSG_HDR) {
        out->ev = PX_FRAME_NEED;
        return;
    }
    uint32_t len = px_get_u32(p + 1);
    if (len < 4 || len > f->max_len) {
        out->ev = PX_FRAME_BAD;
        out->type = p[0];
        out->len = len;
        return;
    }
    f->type = p[0];
    f->body_left = len - 4;
    out->ev = PX_FRAME_HEADER;
    out->type = p[0];
    out->len = len;
    out->n = PX_MSG_HDR;
}

/* ------------------------------------------------------------------------------------------ */

bool px_msg_be_parse_auth(const uint8_t *body, size_t n, uint32_t *code, const uint8_t **payload,
                          size_t *plen)
{
    if (n < 4)
        return false;
    *code = px_get_u32(body);
    *payload = body + 4;
    *plen = n - 4;
    return true;
}

bool px_msg_be_parse_keydata(const uint8_t *body, size_t n, uint32_t *pid, uint32_t *key)
{
    if (n != 8)
        return false;
    *pid = px_get_u32(body);
    *key = px_get_u32(body + 4);
    return true;
}

bool px_msg_be_parse_rfq(const uint8_t *body, size_t n, uint8_t *status)
{
    if (n != 1 || (body[0] != 'I' && body[0] != 'T' && body[0] != 'E'))
        return false;
    *status = body[0];
    return true;
}

bool px_msg_be_parse_param(const uint8_t *body, size_t n, const char **name, const char **value)
{
    size_t l1 = bounded_strlen(body, n);
    if (l1 >= n)
        return false;
    size_t l2 = bounded_strlen(body + l1 + 1, n - l1 - 1);
    if (l1 + 1 + l2 != n - 1)
        return false;
    *name = (const char *)body;
    *value = (const char *)body + l1 + 1;
    return true;
}

bool px_msg_be_parse_negotiate(const uint8_t *body, size_t n, uint32_t *minor, uint32_t *nopts)
{
    if (n < 8)
        return false;
    *minor = px_get_u32(body);
    *nopts = px_get_u32(body + 4);
    size_t off = 8;
    for (uint32_t i = 0; i < *nopts; i++) {
        if (off >= n)
            return false;
        size_t l = bounded_strlen(body + off, n - off);
        if (off + l >= n)
            return false;
        off += l + 1;
    }
    return off == n;
}

bool px_msg_be_parse_error(const uint8_t *body, size_t n, px_be_error_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *sev_s = NULL;
    size_t off = 0;
    /* Fields: Byte1 code, String value; the list ends with a zero byte which must be last. */
    while (off < n) {
        uint8_t code = body[off++];
        if (code == 0) {
            if (!out->severity)
                out->severity = sev_s;
            return off == n;
        }
        if (off >= n)
            return false;
        size_t l = bounded_strlen(body + off, n - off);
        if (off + l >= n)
            return false;
        const char *v = (const char *)body + off;
        switch (code) {
        case 'S':
            sev_s = v;
            break;
        case 'V':
            out->severity = v;
            break;
        case 'C':
            out->sqlstate = v;
            break;
        case 'M':
            out->message = v;
            break;
        case 'D':
            out->detail = v;
            break;
        case 'H':
            out->hint = v;
            break;
        default:
            break;
        }
        off += l + 1;
    }
    return false; /* no terminator */
}

/* ------------------------------------------------------------------------------------------ */

void px_msg_be_build_error(px_dbuf_t *b, const char *severity, const char *sqlstate,
                           const char *message, const char *detail, const char *hint)
{
    size_t lenpos = px_dbuf_frame_begin(b, 'E');
    px_dbuf_put_u8(b, 'S');
    px_dbuf_put_str(b, severity);
    px_dbuf_put_u8(b, 'V');
    px_dbuf_put_str(b, severity);
    px_dbuf_put_u8(b, 'C');
    px_dbuf_put_str(b, sqlstate);
    px_dbuf_put_u8(b, 'M');
    px_dbuf_put_str(b, message);
    if (detail && *detail) {
        px_dbuf_put_u8(b, 'D');
        px_dbuf_put_str(b, detail);
    }
    if (hint && *hint) {
        px_dbuf_put_u8(b, 'H');
        px_dbuf_put_str(b, hint);
    }
    px_dbuf_put_u8(b, 0);
    px_dbuf_frame_end(b, lenpos);
}

void px_msg_be_rebuild_error(px_dbuf_t *b, const uint8_t *src, size_t n, const char *sqlstate,
                             const char *message)
{
    size_t lenpos = px_dbuf_frame_begin(b, 'E');
    size_t off = 0;
    bool have_c = false, have_m = false;
    while (off < n) {
        uint8_t code = src[off++];
        if (code == 0 || off >= n)
            break;
        size_t l = bounded_strlen(src + off, n - off);
        if (off + l >= n)
            break;
        const char *v = (const char *)src + off;
        off += l + 1;
        switch (code) {
        case 'C':
            if (!have_c) {
                px_dbuf_put_u8(b, 'C');
                px_dbuf_put_str(b, sqlstate);
                have_c = true;
            }
            break;
        case 'M':
            if (!have_m) {
                px_dbuf_put_u8(b, 'M');
                px_dbuf_put_str(b, message);
                have_m = true;
            }
            break;
        case 'P': /* the position of the sentinel means nothing to the client */
        case 'p':
        case 'q':
        case 'D': /* detail and hint describe the sentinel's error, not ours */
        case 'H':
        case 'W':
            break;
        default:
            px_dbuf_put_u8(b, code);
            px_dbuf_put_str(b, v);
            break;
        }
    }
    if (!have_c) {
        px_dbuf_put_u8(b, 'C');
        px_dbuf_put_str(b, sqlstate);
    }
    if (!have_m) {
        px_dbuf_put_u8(b, 'M');
        px_dbuf_put_str(b, message);
    }
    px_dbuf_put_u8(b, 0);
    px_dbuf_frame_end(b, lenpos);
}

void px_msg_be_build_negotiate(px_dbuf_t *b, uint32_t minor, const char *const *opts,
                               unsigned nopts)
{
    size_t lenpos = px_dbuf_frame_begin(b, 'v');
    /* PostgreSQL sends PG_PROTOCOL_LATEST here, i.e. the whole 3.minor code, and libpq reads it
     * that way; the protocol documentation's "newest minor" is the same number for 3.0. */
    px_dbuf_put_u32(b, (3u << 16) | minor);
    px_dbuf_put_u32(b, nopts);
    for (unsigned i = 0; i < nopts; i++)
        px_dbuf_put_str(b, opts[i]);
    px_dbuf_frame_end(b, lenpos);
}

void px_msg_be_build_auth(px_dbuf_t *b, uint32_t code, const void *payload, size_t n)
{
    size_t lenpos = px_dbuf_frame_begin(b, 'R');
    px_dbuf_put_u32(b, code);
    if (n)
        px_dbuf_put(b, payload, n);
    px_dbuf_frame_end(b, lenpos);
}

void px_msg_be_build_keydata(px_dbuf_t *b, uint32_t pid, uint32_t key)
{
    size_t lenpos = px_dbuf_frame_begin(b, 'K');
    px_dbuf_put_u32(b, pid);
    px_dbuf_put_u32(b, key);
    px_dbuf_frame_end(b, lenpos);
}

/* ------------------------------------------------------------------------------------------ */

bool px_msg_fe_locate_sql(uint8_t type, const uint8_t *body, size_t n, bool complete,
                          const char **sql, size_t *sql_len, const uint8_t **tail, size_t *tail_len)
{
    size_t off = 0;
    if (type == 'P') {
        size_t l = bounded_strlen(body, n);
        if (l >= n)
            return false; /* malformed, or (incomplete) the name is not all there yet */
        off = l + 1;
    } else if (type != 'Q') {
        return false;
    }
    size_t l = bounded_strlen(body + off, n - off);
    *sql = (const char *)body + off;
    *sql_len = l;
    if (off + l >= n) {
        /* No NUL yet: an error for a complete message, a prefix otherwise. */
        *tail = NULL;
        *tail_len = 0;
        return !complete;
    }
    *tail = body + off + l + 1;
    *tail_len = n - (off + l + 1);
    if (type == 'Q' && complete && *tail_len != 0)
        return false; /* PostgreSQL: "invalid message format" for trailing bytes */
    return true;
}

void px_msg_fe_build_sql(px_dbuf_t *b, uint8_t type, const char *name, const char *sql,
                         size_t sql_len, const uint8_t *tail, size_t tail_len)
{
    size_t lenpos = px_dbuf_frame_begin(b, type);
    if (type == 'P')
        px_dbuf_put_str(b, name ? name : "");
    px_dbuf_put(b, sql, sql_len);
    px_dbuf_put_u8(b, 0);
    if (tail_len)
        px_dbuf_put(b, tail, tail_len);
    px_dbuf_frame_end(b, lenpos);
}
