/*
 * Fuzz target: the admin endpoint's request parser (px_admin_parser_feed) over an arbitrary
 * byte stream, split the way sockets split it. The first 4 bytes choose chunk sizes; the rest
 * is the stream. Every split must give the same requests (path, method, keep-alive, end
 * offset) and the same final error as parsing the stream at once (see same_error for the one
 * allowed difference); nothing may be consumed
 * beyond what was given; a served request has a NUL-terminated path starting with '/' and
 * within the cap; an error has a status the server knows. The stream also goes through the
 * Prometheus label-value escaper, whose output must hold no raw line feed or bare quote.
 */
#include "px_admin.h"
#include "px_admin_http.h"
#include "px_admin_prom.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXREQ 64

typedef struct trace {
    int n;
    int error;
    uint64_t hash; /* over every request's path, method, keep-alive and end offset */
} trace_t;

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static bool known_status(int st)
{
    for (int i = 0; i < PX_ADMIN_NCODES; i++)
        if (px_admin_codes[i] == st)
            return true;
    return false;
}

static void check_req(const px_admin_req_t *r)
{
    size_t len = strnlen(r->path, sizeof(r->path));
    if (len >= sizeof(r->path) || len > PX_ADMIN_MAX_TARGET)
        abort();
    if (r->status == 0) {
        if (r->path[0] != '/' || !r->method_name)
            abort();
        if (r->http_major != 1 || r->http_minor > 1)
            abort();
    } else if (!known_status(r->status) || r->status < 400 || !r->error) {
        abort();
    }
}

static void run(const uint8_t *s, size_t n, const uint8_t *chunks, size_t nchunks, trace_t *t)
{
    px_admin_parser_t p;
    px_admin_parser_init(&p);
    memset(t, 0, sizeof(*t));
    t->hash = 1469598103934665603ull;
    size_t have = 0, pos = 0, ci = 0;
    for (;;) {
        size_t c = nchunks ? (size_t)chunks[ci++ % nchunks] + 1 : n;
        have = have + c > n ? n : have + c;
        while (pos < have) {
            size_t used = 0;
            px_admin_req_t r;
            px_admin_parse_t rc = px_admin_parser_feed(&p, s + pos, have - pos, &used, &r);
            if (used > have - pos)
                abort();
            pos += used;
            if (rc == PX_ADMIN_PARSE_MORE) {
                if (pos != have)
                    abort();
                continue;
            }
            check_req(&r);
            if (rc == PX_ADMIN_PARSE_ERROR) {
                if (r.status == 0)
                    abort();
                t->error = r.status;
                return;
            }
            if (r.status != 0 || used == 0)
                abort();
            t->hash = mix(t->hash, r.path, strlen(r.path) + 1);
            t->hash = mix(t->hash, &r.method, sizeof(r.method));
            t->hash = mix(t->hash, &r.keep_alive, sizeof(r.keep_alive));
            t->hash = mix(t->hash, &pos, sizeof(pos));
            if (++t->n >= MAXREQ)
                return;
        }
        if (have == n)
            return;
    }
}

static void check_escape(const uint8_t *s, size_t n)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 0);
    px_prom_put_label_value(&b, (const char *)s, n);
    if (b.failed) {
        px_dbuf_free(&b);
        return;
    }
    for (size_t i = 0; i < b.len; i++) {
        if (b.data[i] == '\n')
            abort();
        if (b.data[i] == '\\' || b.data[i] == '"') {
            if (b.data[i] == '"')
                abort(); /* a quote is always preceded by its backslash, consumed below */
            if (i + 1 >= b.len)
                abort();
            uint8_t e = b.data[++i];
            if (e != '\\' && e != '"' && e != 'n')
                abort();
        }
    }
    px_dbuf_free(&b);
}

/*
 * Every check fires at the same byte of the stream however it is split, except one: llhttp
 * reports a target piecewise at the end of each input piece, so in a target that is both over
 * the cap and malformed further on, a split stream meets the cap (414) first while the whole
 * stream meets the bad byte (400) first. Both answers are right for such a request.
 */
static bool same_error(int a, int b)
{
    if (a == b)
        return true;
    return a != 0 && b != 0 && (a == 414 || b == 414);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    const uint8_t *chunks = data;
    const uint8_t *s = data + 4;
    size_t n = size - 4;
    trace_t whole, split, bytes;
    run(s, n, NULL, 0, &whole);
    run(s, n, chunks, 4, &split);
    static const uint8_t one = 0;
    run(s, n, &one, 1, &bytes);
    if (whole.n != split.n || whole.hash != split.hash || !same_error(whole.error, split.error))
        abort();
    if (whole.n != bytes.n || whole.hash != bytes.hash || !same_error(whole.error, bytes.error))
        abort();
    check_escape(s, n);
    return 0;
}
