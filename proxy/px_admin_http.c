/*
 * The admin endpoint's request parser (see px_admin_http.h): llhttp in strict request mode,
 * with callbacks that copy only what routing needs (the target, whether "Host" is present)
 * into capped buffers, and a pause after each complete request so that pipelined requests
 * come out one at a time.
 *
 * It does not route, answer or touch sockets; px_admin.c does. It does not percent-decode the
 * path either: the endpoint's paths are plain ASCII and compared byte for byte, so an encoded
 * variant is simply not found.
 */
#include "px_admin_http.h"

#include <stdio.h>
#include <string.h>

static px_admin_parser_t *parser_of(llhttp_t *h)
{
    return container_of(h, px_admin_parser_t, _http);
}

/* Records an error for the current request. Returned from a callback, -1 makes llhttp stop
 * with HPE_USER or HPE_CB_*; feed then reports this status instead of a generic 400. */
static int fail_with(px_admin_parser_t *p, int status, const char *why)
{
    if (!p->_status) {
        p->_status = status;
        p->_error = why;
    }
    return -1;
}

/* llhttp callbacks: 0 continues, -1 stops with an error, HPE_PAUSED stops resumably. */

static int on_message_begin(llhttp_t *h)
{
    px_admin_parser_t *p = parser_of(h);
    p->_target_len = 0;
    p->_target[0] = '\0';
    p->_field_len = 0;
    p->_nheaders = 0;
    p->_nhost = 0;
    p->_complete = false;
    return 0;
}

/* May run several times for one target (once per piece of input it spans): append. */
static int on_url(llhttp_t *h, const char *at, size_t n)
{
    px_admin_parser_t *p = parser_of(h);
    if (n > PX_ADMIN_MAX_TARGET - p->_target_len)
        return fail_with(p, 414, "request target too long");
    memcpy(p->_target + p->_target_len, at, n);
    p->_target_len += n;
    p->_target[p->_target_len] = '\0';
    return 0;
}

/* Also piecewise. Only "Host" matters, so longer names are remembered as "too long to be it"
 * (a length past the buffer) rather than stored. */
static int on_header_field(llhttp_t *h, const char *at, size_t n)
{
    px_admin_parser_t *p = parser_of(h);
    if (p->_field_len + n <= sizeof(p->_field)) {
        memcpy(p->_field + p->_field_len, at, n);
        p->_field_len += n;
    } else {
        p->_field_len = sizeof(p->_field) + 1;
    }
    return 0;
}

static int on_header_field_complete(llhttp_t *h)
{
    px_admin_parser_t *p = parser_of(h);
    if (++p->_nheaders > PX_ADMIN_MAX_HEADERS)
        return fail_with(p, 431, "too many header fields");
    if (p->_field_len == 4 && px_ascii_ieq(p->_field, 4, "host"))
        p->_nhost++;
    p->_field_len = 0;
    return 0;
}

/*
 * The head is complete: check what llhttp leaves to the application. Returning -1 here stops
 * the parser before any body byte is read, which is what refusing a body means.
 */
static int on_headers_complete(llhttp_t *h)
{
    px_admin_parser_t *p = parser_of(h);
    if (h->http_major != 1)
        return fail_with(p, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    /* RFC 9112 3.2: an HTTP/1.1 request without exactly one Host is a 400. */
    if ((h->http_minor >= 1 && p->_nhost == 0) || p->_nhost > 1)
        return fail_with(p, 400, p->_nhost ? "more than one Host header" : "no Host header");
    if ((h->flags & (F_CHUNKED | F_TRANSFER_ENCODING)) ||
        ((h->flags & F_CONTENT_LENGTH) && h->content_length > 0))
        return fail_with(p, 413, "the admin endpoint takes no request body");
    return 0;
}

/* Pausing here makes llhttp_execute return right after this request's last byte, which is how
 * feed learns where it ends. */
static int on_message_complete(llhttp_t *h)
{
    parser_of(h)->_complete = true;
    return HPE_PAUSED;
}

/* Built once, constant, shared by every connection (llhttp keeps only a pointer to it). This
 * is what llhttp_settings_init would produce (every callback NULL) plus ours, without a
 * runtime initialisation step that two loops could race on. */
static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

void px_admin_parser_init(px_admin_parser_t *p)
{
    memset(p, 0, sizeof(*p));
    llhttp_init(&p->_http, HTTP_REQUEST, &settings);
}

const char *px_admin_status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/*
 * The path of the request target: origin-form ("/metrics?x") or absolute-form
 * ("http://host:9187/metrics", which RFC 9112 3.2.2 says servers must accept). The query and a
 * fragment are dropped. False for the authority and asterisk forms, which only CONNECT and
 * OPTIONS use.
 */
static bool target_path(const char *t, size_t n, char *out, size_t cap)
{
    size_t start = 0;
    if (n == 0)
        return false;
    if (t[0] != '/') {
        const char *sep = memchr(t, ':', n);
        if (!sep || (size_t)(sep - t) + 3 > n || sep[1] != '/' || sep[2] != '/')
            return false;
        size_t scheme = (size_t)(sep - t);
        if (!px_ascii_ieq(t, scheme, "http") && !px_ascii_ieq(t, scheme, "https"))
            return false;
        start = scheme + 3;
        while (start < n && t[start] != '/' && t[start] != '?' && t[start] != '#')
            start++;
        if (start == n || t[start] != '/') {
            snprintf(out, cap, "/");
            return true;
        }
    }
    size_t end = start;
    while (end < n && t[end] != '?' && t[end] != '#')
        end++;
    if (end - start >= cap)
        return false; /* cannot happen: the target itself is capped below cap */
    memcpy(out, t + start, end - start);
    out[end - start] = '\0';
    return true;
}

static void req_clear(px_admin_req_t *req)
{
    req->status = 0;
    req->error = NULL;
    req->method = PX_ADMIN_OTHER;
    req->method_name = "-";
    req->path[0] = '\0';
    req->http_major = req->http_minor = 0;
    req->keep_alive = false;
}

static px_admin_parse_t fail(px_admin_parser_t *p, px_admin_req_t *req, int status, const char *why)
{
    if (!p->_status) {
        p->_status = status;
        p->_error = why;
    }
    p->_failed = true;
    req_clear(req);
    req->status = p->_status;
    req->error = p->_error;
    return PX_ADMIN_PARSE_ERROR;
}

px_admin_parse_t px_admin_parser_feed(px_admin_parser_t *p, const uint8_t *data, size_t len,
                                      size_t *used, px_admin_req_t *req)
{
    *used = 0;
    if (p->_failed)
        return fail(p, req, 400, "malformed request");
    if (len == 0)
        return PX_ADMIN_PARSE_MORE;
    llhttp_t *h = &p->_http;
    const char *start = (const char *)data;
    /* llhttp never sees more than one byte past the head limit of the current request. Every
     * check then happens at the same byte of the stream however the input is split, so the
     * same stream always gets the same answer (the fuzz target relies on it). */
    size_t room = PX_ADMIN_MAX_HEAD + 1 - p->_head;
    size_t n = len < room ? len : room;
    llhttp_errno_t rc = llhttp_execute(h, start, n);
    if (rc == HPE_OK) {
        *used = n;
        p->_head += n;
        if (p->_head > PX_ADMIN_MAX_HEAD)
            return fail(p, req, 431, "request head too large");
        return PX_ADMIN_PARSE_MORE; /* n == len here: a shorter n reaches the limit */
    }
    if (rc == HPE_PAUSED && p->_complete) {
        n = (size_t)(llhttp_get_error_pos(h) - start);
        *used = n;
        p->_head += n;
        if (p->_head > PX_ADMIN_MAX_HEAD)
            return fail(p, req, 431, "request head too large");
        req_clear(req);
        if (!target_path(p->_target, p->_target_len, req->path, sizeof(req->path)))
            return fail(p, req, 400, "invalid request target");
        req->method = h->method == HTTP_GET    ? PX_ADMIN_GET
                      : h->method == HTTP_HEAD ? PX_ADMIN_HEAD
                                               : PX_ADMIN_OTHER;
        req->method_name = llhttp_method_name((llhttp_method_t)h->method);
        req->http_major = h->http_major;
        req->http_minor = h->http_minor;
        /* An Upgrade (or CONNECT) would switch protocols after this request; we answer it
         * as plain HTTP and close instead. */
        req->keep_alive = llhttp_should_keep_alive(h) && !h->upgrade;
        p->_head = 0;
        p->_complete = false;
        llhttp_resume(h);
        return PX_ADMIN_PARSE_REQUEST;
    }
    /* HPE_PAUSED_UPGRADE: bytes after a request that asked to switch protocols. */
    if (rc == HPE_PAUSED_UPGRADE)
        return fail(p, req, 400, "protocol upgrade is not supported");
    if (rc == HPE_INVALID_VERSION)
        return fail(p, req, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    return fail(p, req, 400, "malformed request");
}
