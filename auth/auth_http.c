/*
 * libcurl multi on libuv (curl's docs/examples/multi-uv.c with STYLE.md §4.5's fixes): one CURLM
 * and one uv_timer_t per client, one uv_poll_t per socket, CURLOPT_PRIVATE back to our request,
 * negative poll status as CURL_CSELECT_ERR, every CURLMcode checked, requests completed only
 * from the info-drain function with callbacks after curl_multi_remove_handle. On top: the AWS
 * call (SigV4 per attempt, full-jitter retries, clock-skew correction). Never blocks or logs;
 * request and response bytes that may hold secrets are wiped, curl's own buffers included.
 */
#include "auth_http.h"

#include "px_alloc.h"
#include "px_buf.h"
#include "px_err.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define USER_AGENT_HEADER "User-Agent: rsproxy/0.1"

typedef struct http_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    auth_http_t *http;
} http_sock_t;

struct auth_http_req {
    auth_http_t *http;
    CURL *easy;
    struct curl_slist *hdrs; /* owned; header lines may carry tokens: wiped on free */
    uint8_t *body;           /* owned copy of the request body; wiped on free */
    size_t bodylen;
    char *url;
    px_dbuf_t resp_body; /* capped at max_body; secret-safe growth */
    px_dbuf_t resp_hdrs; /* "Name: value\n" lines of the last response, capped */
    size_t max_body;
    bool secret;
    bool too_big;
    bool hdr_overflow;
    int sink_err;
    long status_seen; /* status of the response being received (from the status line) */
    auth_http_sink_fn sink;
    void *sink_arg;
    auth_http_cb cb; /* NULL once canceled */
    void *arg;
    int cancel_err; /* set when close removed the transfer: delivered from the close path */
    struct auth_http_req *prev, *next;
    char errbuf[CURL_ERROR_SIZE];
};

struct auth_aws_call {
    auth_http_t *http;
    uv_timer_t timer;    /* retry backoff; closing it is how the call is freed */
    auth_aws_call_cb cb; /* NULL once canceled or delivered */
    void *arg;
    auth_http_req_t *req; /* attempt in flight, or NULL */
    /* Owned copies of everything an attempt needs, since attempts outlive the caller's opts. */
    char *method, *url, *host_header, *sign_path, *query, *region, *payload_hash;
    auth_http_header_t *headers; /* names and values in one block, `hblock` */
    char *hblock;
    size_t hblocklen;
    size_t nheaders;
    uint8_t *body;
    size_t bodylen;
    auth_aws_creds_t creds;
    bool has_creds;
    auth_aws_service_t service;
    auth_aws_proto_t proto;
    bool s3, idempotent, secret_body;
    int max_attempts;
    long connect_timeout_ms, timeout_ms;
    size_t max_body;
    auth_http_sink_fn sink;
    void *sink_arg;
    int attempt;       /* attempts started */
    bool skew_retried; /* one clock-skew retry per call */
    bool closing;
    auth_aws_error_t pending_err; /* delivered from the close callback when closing the client */
    bool pending_deliver;
    struct auth_aws_call *prev, *next;
};

struct auth_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int pending_closes; /* handles whose close callback has not run yet */
    int busy;           /* depth of our uv callbacks that iterate curl state */
    bool closing;
    bool multi_gone;
    void (*done)(void *);
    void *done_arg;
    auth_http_req_t *reqs;     /* in flight */
    auth_http_req_t *canceled; /* removed by close, callbacks owed */
    auth_aws_call_t *calls;
    uint8_t *ca_pem;
    size_t ca_len;
    int64_t skew_ms;
    uint64_t rng;
    long retry_base_ms, retry_max_ms;
};

/* ---------------------------------------------------------------------------------------------
 * Process-wide libcurl setup. curl_global_init must run once, before any thread uses curl; we
 * route curl's allocations through wiping wrappers because its buffers hold response bodies.
 */

typedef union curl_hdr {
    size_t n;
    max_align_t align;
} curl_hdr_t;

static void *cw_malloc(size_t n)
{
    if (n > SIZE_MAX - sizeof(curl_hdr_t))
        return NULL;
    curl_hdr_t *h = px_malloc(sizeof(*h) + n);
    if (!h)
        return NULL;
    h->n = n;
    return h + 1;
}

static void cw_free(void *p)
{
    if (!p)
        return;
    curl_hdr_t *h = (curl_hdr_t *)p - 1;
    px_wipe(h + 1, h->n);
    px_free(h);
}

static void *cw_realloc(void *p, size_t n)
{
    if (!p)
        return cw_malloc(n);
    curl_hdr_t *h = (curl_hdr_t *)p - 1;
    void *q = cw_malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, PX_MIN(n, h->n));
    cw_free(p);
    return q;
}

static char *cw_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = cw_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void *cw_calloc(size_t count, size_t n)
{
    if (n && count > SIZE_MAX / n)
        return NULL;
    void *p = cw_malloc(count * n);
    if (p)
        memset(p, 0, count * n);
    return p;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_rc =
        curl_global_init_mem(CURL_GLOBAL_ALL, cw_malloc, cw_free, cw_realloc, cw_strdup, cw_calloc);
}

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 */

static uint64_t rng_next(auth_http_t *h)
{
    /* xorshift64*: jitter needs spread, not secrecy. */
    uint64_t x = h->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    h->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static bool has_crlf(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

const char *auth_http_resp_header(const auth_http_resp_t *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strlen(r->headers[i].name) == n && px_ascii_ieq(r->headers[i].name, n, name))
            return r->headers[i].value;
    }
    return NULL;
}

int auth_http_endpoint_parse(const char *endpoint, char *host_header, size_t hcap, char *base_path,
                             size_t pcap, bool *https)
{
    const char *p = endpoint;
    bool tls;
    if (strncasecmp(p, "https://", 8) == 0) {
        tls = true;
        p += 8;
    } else if (strncasecmp(p, "http://", 7) == 0) {
        tls = false;
        p += 7;
    } else {
        return UV_EINVAL;
    }
    size_t alen = strcspn(p, "/?#");
    const char *rest = p + alen;
    if (alen == 0 || memchr(p, '@', alen) || *rest == '?' || *rest == '#')
        return UV_EINVAL;
    /* host, then an optional :port; an IPv6 literal keeps its brackets. */
    const char *host = p;
    size_t hlen = alen;
    const char *port = NULL;
    size_t portlen = 0;
    if (host[0] == '[') {
        const char *rb = memchr(host, ']', alen);
        if (!rb)
            return UV_EINVAL;
        hlen = (size_t)(rb - host) + 1;
    } else {
        const char *colon = memchr(host, ':', alen);
        if (colon)
            hlen = (size_t)(colon - host);
    }
    if (hlen < alen) {
        if (host[hlen] != ':')
            return UV_EINVAL;
        port = host + hlen + 1;
        portlen = alen - hlen - 1;
        if (portlen == 0 || portlen > 5)
            return UV_EINVAL;
        unsigned pv = 0;
        for (size_t i = 0; i < portlen; i++) {
            if (port[i] < '0' || port[i] > '9')
                return UV_EINVAL;
            pv = pv * 10 + (unsigned)(port[i] - '0');
        }
        if (pv == 0 || pv > 65535)
            return UV_EINVAL;
    }
    if (hlen == 0)
        return UV_EINVAL;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= 0x20 || c >= 0x7f)
            return UV_EINVAL;
    }
    bool default_port = port && ((tls && portlen == 3 && memcmp(port, "443", 3) == 0) ||
                                 (!tls && portlen == 2 && memcmp(port, "80", 2) == 0));
    int n;
    if (port && !default_port)
        n = snprintf(host_header, hcap, "%.*s:%.*s", (int)hlen, host, (int)portlen, port);
    else
        n = snprintf(host_header, hcap, "%.*s", (int)hlen, host);
    if (n < 0 || (size_t)n >= hcap)
        return UV_EINVAL;
    for (char *c = host_header; *c; c++)
        *c = px_ascii_lower(*c);
    size_t rlen = strlen(rest);
    while (rlen > 0 && rest[rlen - 1] == '/')
        rlen--;
    for (size_t i = 0; i < rlen; i++) {
        unsigned char c = (unsigned char)rest[i];
        if (c <= 0x20 || c >= 0x7f)
            return UV_EINVAL;
    }
    if (rlen >= pcap)
        return UV_EINVAL;
    memcpy(base_path, rest, rlen);
    base_path[rlen] = '\0';
    if (https)
        *https = tls;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Close bookkeeping
 */

static void http_maybe_done(auth_http_t *h);

static void sock_closed_cb(uv_handle_t *handle)
{
    http_sock_t *s = container_of((uv_poll_t *)handle, http_sock_t, poll);
    auth_http_t *h = s->http;
    px_free(s);
    h->pending_closes--;
    http_maybe_done(h);
}

/* ---------------------------------------------------------------------------------------------
 * Callbacks from curl. They only touch libuv handles, never call back into curl.
 */

static void on_uv_socket(uv_poll_t *poll, int status, int events);

/* CURLMOPT_SOCKETFUNCTION: return 0, or -1 to make curl fail the transfers on this socket. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    auth_http_t *h = userp;
    http_sock_t *s = socketp;
    PX_UNUSED(easy);
    if (action == CURL_POLL_REMOVE) {
        if (s) {
            /* Synchronously: curl may close the fd right after we return, and a polled fd must
             * not be closed under libuv. */
            uv_poll_stop(&s->poll);
            h->pending_closes++;
            uv_close((uv_handle_t *)&s->poll, sock_closed_cb);
            if (!h->multi_gone)
                curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        if (h->multi_gone)
            return -1;
        s = px_calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->fd = fd;
        s->http = h;
        if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
            px_free(s);
            return -1;
        }
        if (curl_multi_assign(h->multi, fd, s) != CURLM_OK) {
            h->pending_closes++;
            uv_close((uv_handle_t *)&s->poll, sock_closed_cb);
            return -1;
        }
    }
    int events = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    if (uv_poll_start(&s->poll, events, on_uv_socket) != 0)
        return -1;
    return 0;
}

static void on_uv_timeout(uv_timer_t *t);

/* CURLMOPT_TIMERFUNCTION: return 0, or -1 to fail every transfer. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    auth_http_t *h = userp;
    PX_UNUSED(multi);
    if (timeout_ms < 0) {
        uv_timer_stop(&h->timer);
        return 0;
    }
    /* A 0 ms libuv timer still fires from the loop, never from inside this callback, so curl is
     * not re-entered. */
    return uv_timer_start(&h->timer, on_uv_timeout, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

/* CURLOPT_WRITEFUNCTION: bytes consumed; anything else aborts with CURLE_WRITE_ERROR. */
static size_t on_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    auth_http_req_t *r = userdata;
    size_t n = size * nmemb;
    if (r->sink && r->status_seen >= 200 && r->status_seen < 300) {
        int rc = r->sink((const uint8_t *)ptr, n, r->sink_arg);
        if (rc != 0) {
            r->sink_err = rc;
            return 0;
        }
        return n;
    }
    bool ok = r->secret ? auth__secret_append(&r->resp_body, ptr, n)
                        : (px_dbuf_put(&r->resp_body, ptr, n), !r->resp_body.failed);
    if (!ok) {
        r->too_big = r->resp_body.len + n > r->max_body;
        if (!r->too_big)
            r->sink_err = UV_ENOMEM;
        return 0;
    }
    return n;
}

/* CURLOPT_HEADERFUNCTION: bytes consumed, as for the write callback. Keeps the headers of the
 * last response only (a 100 Continue's headers are dropped when the real status line arrives). */
static size_t on_curl_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    auth_http_req_t *r = userdata;
    size_t n = size * nmemb;
    size_t len = n;
    while (len > 0 && (ptr[len - 1] == '\n' || ptr[len - 1] == '\r'))
        len--;
    if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        px_dbuf_reset(&r->resp_hdrs);
        r->hdr_overflow = false;
        const char *sp = memchr(ptr, ' ', len);
        r->status_seen = 0;
        if (sp && (size_t)(sp - ptr) + 4 <= len) {
            long st = 0;
            for (int i = 1; i <= 3; i++)
                st = st * 10 + (sp[i] >= '0' && sp[i] <= '9' ? sp[i] - '0' : 0);
            r->status_seen = st;
        }
        /* The body that follows belongs to this response; a previous (1xx) one had none. */
        px_dbuf_reset(&r->resp_body);
        return n;
    }
    if (len == 0 || r->hdr_overflow)
        return n;
    px_dbuf_put(&r->resp_hdrs, ptr, len);
    px_dbuf_put_u8(&r->resp_hdrs, '\n');
    if (r->resp_hdrs.failed) {
        /* Too many header bytes: keep what fits, which is enough for the ones we read
         * (Date, x-amzn-*), and go on rather than fail an otherwise good response. */
        r->hdr_overflow = true;
        r->resp_hdrs.failed = false;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Completing requests
 */

static void req_free(auth_http_req_t *r)
{
    if (r->hdrs) {
        for (struct curl_slist *l = r->hdrs; l; l = l->next)
            px_wipe(l->data, strlen(l->data));
        curl_slist_free_all(r->hdrs);
    }
    if (r->body) {
        px_wipe(r->body, r->bodylen);
        px_free(r->body);
    }
    px_free(r->url);
    if (r->secret)
        px_dbuf_free_secret(&r->resp_body);
    else
        px_dbuf_free(&r->resp_body);
    px_dbuf_free(&r->resp_hdrs);
    px_free(r);
}

static void req_unlink(auth_http_req_t **list, auth_http_req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        *list = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void req_link(auth_http_req_t **list, auth_http_req_t *r)
{
    r->prev = NULL;
    r->next = *list;
    if (*list)
        (*list)->prev = r;
    *list = r;
}

static int map_curl_error(auth_http_req_t *r, CURLcode res, bool *not_sent)
{
    *not_sent = false;
    switch (res) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return AUTH_E_TIMEOUT;
    case CURLE_WRITE_ERROR:
        if (r->too_big)
            return PX_E_TOOBIG;
        return r->sink_err ? r->sink_err : AUTH_E_HTTP;
    case CURLE_OUT_OF_MEMORY:
        return UV_ENOMEM;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        *not_sent = true;
        return AUTH_E_HTTP;
    default:
        return AUTH_E_HTTP;
    }
}

/* Splits the "Name: value\n" lines into an array pointing into the (modified) buffer. */
static size_t split_headers(px_dbuf_t *raw, auth_http_header_t *out, size_t cap)
{
    if (!px_dbuf_cstr(raw))
        return 0;
    size_t n = 0;
    char *p = (char *)raw->data;
    while (*p && n < cap) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        char *colon = strchr(p, ':');
        if (colon && colon != p) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = strlen(v);
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                v[--vl] = '\0';
            out[n].name = p;
            out[n].value = v;
            n++;
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    return n;
}

/* Delivers the outcome of a finished transfer (already removed from curl), then frees it. */
static void req_deliver(auth_http_req_t *r, int err, const char *errmsg, long status, bool not_sent)
{
    auth_http_header_t hv[AUTH_HTTP_MAX_HEADERS];
    auth_http_resp_t resp = {.status = (int)status, .date_ms = -1, .not_sent = not_sent};
    if (status > 0) {
        resp.nheaders = split_headers(&r->resp_hdrs, hv, PX_ARRAY_SIZE(hv));
        resp.headers = hv;
        const char *date = auth_http_resp_header(&resp, "Date");
        int64_t ms;
        if (date && auth_time_parse_http_date(date, strlen(date), &ms) == 0)
            resp.date_ms = ms;
        /* Always NUL-terminated (both growth paths keep a spare byte), as a safety net for
         * callers that treat small bodies as text; bodylen stays the length. */
        if (r->resp_body.data && r->resp_body.len < r->resp_body.cap)
            r->resp_body.data[r->resp_body.len] = '\0';
        resp.body = r->resp_body.data;
        resp.bodylen = r->resp_body.len;
    }
    if (r->cb)
        r->cb(err, errmsg ? errmsg : "", &resp, r->arg);
    req_free(r);
}

static void req_complete(auth_http_t *h, auth_http_req_t *r, CURLcode res)
{
    req_unlink(&h->reqs, r);
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    CURLMcode mc = curl_multi_remove_handle(h->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    bool not_sent;
    int err = map_curl_error(r, res, &not_sent);
    const char *msg = r->errbuf[0] ? r->errbuf : curl_easy_strerror(res);
    if (err == 0 && mc != CURLM_OK) {
        err = AUTH_E_HTTP;
        msg = curl_multi_strerror(mc);
    }
    if (err == PX_E_TOOBIG)
        msg = "response body too large";
    if (err != 0)
        status = 0; /* a failed exchange has no usable response, whatever arrived first */
    req_deliver(r, err, err ? msg : "", status, not_sent);
}

/* The info-drain function: the only place where transfers are completed. */
static void http_drain(auth_http_t *h)
{
    CURLMsg *m;
    int left;
    while (!h->multi_gone && (m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        /* The message does not survive curl_multi_remove_handle: copy what we need first. */
        CURL *easy = m->easy_handle;
        CURLcode res = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        auth_http_req_t *r = (auth_http_req_t *)(void *)priv;
        if (r)
            req_complete(h, r, res);
    }
}

static void http_finish_close(auth_http_t *h);

/* After curl_multi_socket_action fails "the state of all transfers is uncertain": fail them all
 * rather than wait for timeouts that may never fire. */
static void http_fail_all(auth_http_t *h, CURLMcode mc)
{
    while (h->reqs) {
        auth_http_req_t *r = h->reqs;
        req_unlink(&h->reqs, r);
        curl_multi_remove_handle(h->multi, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
        req_deliver(r, AUTH_E_HTTP, curl_multi_strerror(mc), 0, false);
    }
}

static void http_after_action(auth_http_t *h, CURLMcode mc)
{
    h->busy++;
    if (mc != CURLM_OK)
        http_fail_all(h, mc);
    else
        http_drain(h);
    h->busy--;
    if (h->closing && h->busy == 0)
        http_finish_close(h);
}

static void on_uv_socket(uv_poll_t *poll, int status, int events)
{
    http_sock_t *s = container_of(poll, http_sock_t, poll);
    auth_http_t *h = s->http;
    if (h->multi_gone)
        return;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    int running;
    CURLMcode mc = curl_multi_socket_action(h->multi, s->fd, flags, &running);
    http_after_action(h, mc);
}

static void on_uv_timeout(uv_timer_t *t)
{
    auth_http_t *h = container_of(t, auth_http_t, timer);
    if (h->multi_gone)
        return;
    int running;
    CURLMcode mc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    http_after_action(h, mc);
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 */

int auth_http_new(uv_loop_t *loop, auth_http_t **out)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return AUTH_E_HTTP;
    auth_http_t *h = px_calloc(1, sizeof(*h));
    if (!h)
        return UV_ENOMEM;
    h->loop = loop;
    h->retry_base_ms = 1000;
    h->retry_max_ms = 20000;
    h->rng = (uint64_t)uv_hrtime() ^ ((uint64_t)(uintptr_t)h << 17) ^ 0x9E3779B97F4A7C15ULL;
    if (h->rng == 0)
        h->rng = 1;
    int rc = uv_timer_init(loop, &h->timer);
    if (rc) {
        px_free(h);
        return rc;
    }
    h->multi = curl_multi_init();
    if (!h->multi)
        goto fail;
    if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 16L) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 64L) != CURLM_OK)
        goto fail;
    *out = h;
    return 0;
fail:
    if (h->multi)
        curl_multi_cleanup(h->multi);
    /* The timer was initialised: it must be closed before its memory goes. Hand the client to
     * the close path with no multi, so `h` is freed from the timer's close callback. */
    h->multi = NULL;
    h->multi_gone = true;
    auth_http_close(h, NULL, NULL);
    return UV_ENOMEM;
}

static void call_close(auth_aws_call_t *c);

void auth_http_close(auth_http_t *h, void (*done)(void *arg), void *arg)
{
    if (h->closing)
        return;
    h->closing = true;
    h->done = done;
    h->done_arg = arg;
    /* 1. Every call stops (its timer closes; the callback is owed AUTH_E_CANCELED and delivered
     *    from the close callback, so never from inside this function). */
    while (h->calls) {
        auth_aws_call_t *c = h->calls;
        if (c->req) {
            auth_http_cancel(c->req);
            c->req = NULL;
        }
        if (c->cb) {
            auth_aws_error_set(&c->pending_err, AUTH_E_CANCELED, NULL,
                               "the AWS client is shutting down");
            c->pending_deliver = true;
        }
        call_close(c);
    }
    /* 2. Raw requests: removed from curl now, callbacks owed. */
    while (h->reqs) {
        auth_http_req_t *r = h->reqs;
        req_unlink(&h->reqs, r);
        if (!h->multi_gone)
            curl_multi_remove_handle(h->multi, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
        r->cancel_err = AUTH_E_CANCELED;
        req_link(&h->canceled, r);
    }
    if (h->busy == 0)
        http_finish_close(h);
}

static void timer_closed_cb(uv_handle_t *handle)
{
    auth_http_t *h = container_of((uv_timer_t *)handle, auth_http_t, timer);
    /* Deliver what close owed, from a close callback: never inside auth_http_close itself. */
    while (h->canceled) {
        auth_http_req_t *r = h->canceled;
        req_unlink(&h->canceled, r);
        req_deliver(r, r->cancel_err, "canceled: the HTTP client is closing", 0, false);
    }
    h->pending_closes--;
    http_maybe_done(h);
}

/* 3. curl_multi_cleanup (which may fire CURL_POLL_REMOVE and close polls), 4. the timer. */
static void http_finish_close(auth_http_t *h)
{
    if (!h->multi_gone) {
        /* Marked gone first: cleanup may call on_curl_socket(CURL_POLL_REMOVE), which must then
         * only close the poll and not call back into the multi handle being destroyed. */
        CURLM *m = h->multi;
        h->multi_gone = true;
        curl_multi_cleanup(m);
        h->multi = NULL;
    }
    if (!uv_is_closing((uv_handle_t *)&h->timer)) {
        uv_timer_stop(&h->timer);
        h->pending_closes++;
        uv_close((uv_handle_t *)&h->timer, timer_closed_cb);
    }
}

static void http_maybe_done(auth_http_t *h)
{
    if (!h->closing || h->pending_closes > 0 || h->busy > 0 || h->canceled || h->calls)
        return;
    if (!uv_is_closing((uv_handle_t *)&h->timer))
        return;
    void (*done)(void *) = h->done;
    void *arg = h->done_arg;
    if (h->ca_pem) {
        px_free(h->ca_pem);
    }
    px_free(h);
    if (done)
        done(arg);
}

int auth_http_set_ca_bundle(auth_http_t *h, const uint8_t *pem, size_t n)
{
    uint8_t *copy = NULL;
    if (pem && n) {
        copy = px_malloc(n);
        if (!copy)
            return UV_ENOMEM;
        memcpy(copy, pem, n);
    }
    px_free(h->ca_pem);
    h->ca_pem = copy;
    h->ca_len = copy ? n : 0;
    return 0;
}

void auth_http_set_retry(auth_http_t *h, long base_ms, long max_ms)
{
    h->retry_base_ms = base_ms > 0 ? base_ms : 1;
    h->retry_max_ms = max_ms > 0 ? max_ms : 1;
}

int64_t auth_http_clock_skew_ms(const auth_http_t *h)
{
    return h->skew_ms;
}

void auth_http_set_clock_skew_ms(auth_http_t *h, int64_t skew_ms)
{
    h->skew_ms = skew_ms;
}

/* ---------------------------------------------------------------------------------------------
 * Raw requests
 */

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (curl_easy_setopt(e, opt, val) != CURLE_OK)                                             \
            goto fail;                                                                             \
    } while (0)

int auth_http_send(auth_http_t *h, const auth_http_opts_t *o, auth_http_cb cb, void *arg,
                   auth_http_req_t **out)
{
    if (h->closing || h->multi_gone)
        return PX_E_SHUTDOWN;
    if (!o->method || !o->url || !cb || strlen(o->url) > AUTH_HTTP_MAX_URL ||
        (strncasecmp(o->url, "http://", 7) != 0 && strncasecmp(o->url, "https://", 8) != 0) ||
        has_crlf(o->url) || has_crlf(o->method))
        return UV_EINVAL;
    for (size_t i = 0; i < o->nheaders; i++) {
        if (!o->headers[i].name || !o->headers[i].value || has_crlf(o->headers[i].name) ||
            has_crlf(o->headers[i].value) || strchr(o->headers[i].name, ':'))
            return UV_EINVAL;
    }

    auth_http_req_t *r = px_calloc(1, sizeof(*r));
    if (!r)
        return UV_ENOMEM;
    r->http = h;
    r->cb = cb;
    r->arg = arg;
    r->secret = o->secret_body;
    r->sink = o->sink;
    r->sink_arg = o->sink_arg;
    r->max_body = o->max_body ? o->max_body : AUTH_HTTP_DEFAULT_MAX_BODY;
    px_dbuf_init(&r->resp_body, r->max_body);
    px_dbuf_init(&r->resp_hdrs, AUTH_HTTP_MAX_HEADER_BYTES);
    r->url = px_strdup(o->url);
    if (!r->url)
        goto fail_nomem;
    if (o->bodylen) {
        r->body = px_malloc(o->bodylen);
        if (!r->body)
            goto fail_nomem;
        memcpy(r->body, o->body, o->bodylen);
        r->bodylen = o->bodylen;
    }
    bool have_ct = false;
    for (size_t i = 0; i < o->nheaders; i++) {
        size_t len = strlen(o->headers[i].name) + strlen(o->headers[i].value) + 3;
        char *line = px_malloc(len);
        if (!line)
            goto fail_nomem;
        snprintf(line, len, "%s: %s", o->headers[i].name, o->headers[i].value);
        struct curl_slist *l = curl_slist_append(r->hdrs, line);
        px_wipe(line, len);
        px_free(line);
        if (!l)
            goto fail_nomem;
        r->hdrs = l;
        if (strcasecmp(o->headers[i].name, "Content-Type") == 0)
            have_ct = true;
    }
    /* No "Expect: 100-continue" round trip, and no form content type curl would invent. */
    static const char *const extra[] = {"Expect:", "Content-Type:", USER_AGENT_HEADER};
    for (size_t i = 0; i < PX_ARRAY_SIZE(extra); i++) {
        if (i == 1 && have_ct)
            continue;
        struct curl_slist *l = curl_slist_append(r->hdrs, extra[i]);
        if (!l)
            goto fail_nomem;
        r->hdrs = l;
    }

    CURL *e = r->easy = curl_easy_init();
    if (!e)
        goto fail_nomem;
    SETOPT(CURLOPT_PRIVATE, (void *)r);
    SETOPT(CURLOPT_URL, r->url);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms > 0
                                          ? o->connect_timeout_ms
                                          : (long)AUTH_HTTP_DEFAULT_CONNECT_TIMEOUT_MS);
    SETOPT(CURLOPT_TIMEOUT_MS,
           o->timeout_ms > 0 ? o->timeout_ms : (long)AUTH_HTTP_DEFAULT_TIMEOUT_MS);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_ERRORBUFFER, r->errbuf);
    SETOPT(CURLOPT_WRITEFUNCTION, on_curl_write);
    SETOPT(CURLOPT_WRITEDATA, (void *)r);
    SETOPT(CURLOPT_HEADERFUNCTION, on_curl_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)r);
    SETOPT(CURLOPT_HTTPHEADER, r->hdrs);
    if (h->ca_pem) {
        struct curl_blob blob = {.data = h->ca_pem, .len = h->ca_len, .flags = CURL_BLOB_COPY};
        SETOPT(CURLOPT_CAINFO_BLOB, &blob);
    }
    if (strcmp(o->method, "GET") == 0) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(o->method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(o->method, "POST") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, o->method);
        if (r->bodylen || strcmp(o->method, "POST") == 0 || strcmp(o->method, "PUT") == 0) {
            SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->bodylen);
            SETOPT(CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
        }
    }
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
        goto fail;
    req_link(&h->reqs, r);
    if (out)
        *out = r;
    return 0;
fail:
    if (r->easy)
        curl_easy_cleanup(r->easy);
    r->easy = NULL;
    req_free(r);
    return UV_ENOMEM;
fail_nomem:
    if (r->easy)
        curl_easy_cleanup(r->easy);
    r->easy = NULL;
    req_free(r);
    return UV_ENOMEM;
}

void auth_http_cancel(auth_http_req_t *r)
{
    if (!r)
        return;
    auth_http_t *h = r->http;
    if (r->cancel_err) {
        /* Already removed by close; only the owed callback is left: drop it. */
        r->cb = NULL;
        return;
    }
    req_unlink(&h->reqs, r);
    if (!h->multi_gone)
        curl_multi_remove_handle(h->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    req_free(r);
}

/* ---------------------------------------------------------------------------------------------
 * AWS calls
 */

static void call_unlink(auth_aws_call_t *c)
{
    auth_http_t *h = c->http;
    if (c->prev)
        c->prev->next = c->next;
    else if (h->calls == c)
        h->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void call_free(auth_aws_call_t *c)
{
    px_free(c->method);
    px_free(c->url);
    px_free(c->host_header);
    px_free(c->sign_path);
    px_free(c->query);
    px_free(c->region);
    px_free(c->payload_hash);
    px_free(c->headers);
    if (c->hblock) {
        px_wipe(c->hblock, c->hblocklen);
        px_free(c->hblock);
    }
    if (c->body) {
        px_wipe(c->body, c->bodylen);
        px_free(c->body);
    }
    auth_aws_creds_clear(&c->creds);
    px_free(c);
}

static void call_timer_closed_cb(uv_handle_t *handle)
{
    auth_aws_call_t *c = container_of((uv_timer_t *)handle, auth_aws_call_t, timer);
    auth_http_t *h = c->http;
    if (c->pending_deliver && c->cb) {
        auth_http_resp_t none = {.date_ms = -1};
        auth_aws_call_cb cb = c->cb;
        c->cb = NULL;
        cb(&c->pending_err, &none, c->arg);
    }
    call_free(c);
    h->pending_closes--;
    http_maybe_done(h);
}

static void call_close(auth_aws_call_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    call_unlink(c);
    uv_timer_stop(&c->timer);
    c->http->pending_closes++;
    uv_close((uv_handle_t *)&c->timer, call_timer_closed_cb);
}

static void call_finish(auth_aws_call_t *c, const auth_aws_error_t *err,
                        const auth_http_resp_t *resp)
{
    auth_aws_call_cb cb = c->cb;
    c->cb = NULL;
    c->req = NULL;
    call_close(c);
    if (cb)
        cb(err, resp, c->arg);
}

static void call_attempt_cb(int err, const char *errmsg, const auth_http_resp_t *resp, void *arg);

static void call_retry_timer_cb(uv_timer_t *t);

/* Signs (with the skew-corrected clock) and sends one attempt. */
static int call_attempt(auth_aws_call_t *c, auth_aws_error_t *err)
{
    auth_http_t *h = c->http;
    c->attempt++;
    auth_http_header_t hdrs[40];
    size_t nh = 0;
    hdrs[nh].name = "Host";
    hdrs[nh].value = c->host_header;
    nh++;
    for (size_t i = 0; i < c->nheaders && nh < 32; i++)
        hdrs[nh++] = c->headers[i];
    auth_sigv4_out_t sig;
    memset(&sig, 0, sizeof(sig));
    bool signed_req = false;
    if (c->has_creds) {
        auth_sigv4_req_t sr = {
            .method = c->method,
            .path = c->sign_path,
            .query = c->query,
            .headers = hdrs,
            .nheaders = nh,
            .body = c->body,
            .bodylen = c->bodylen,
            .payload_hash = c->payload_hash,
            .region = c->region,
            .service = auth_aws_service_signing_name(c->service),
            .time_unix = (px_now_unix_ms() + h->skew_ms) / 1000,
            .s3 = c->s3,
            .sign_session_token = true,
        };
        auth_aws_keys_t keys = auth_aws_creds_keys(&c->creds);
        int rc = auth_sigv4_sign(&sr, &keys, &sig);
        if (rc != 0) {
            auth_sigv4_out_free(&sig);
            auth_aws_error_set(err, rc, NULL, "cannot sign the %s request: %s",
                               auth_aws_service_signing_name(c->service), px_strerror(rc));
            return rc;
        }
        signed_req = true;
        for (size_t i = 0; i < sig.nadd && nh < PX_ARRAY_SIZE(hdrs); i++)
            hdrs[nh++] = sig.add[i];
    }
    auth_http_opts_t ho = {
        .method = c->method,
        .url = c->url,
        .headers = hdrs,
        .nheaders = nh,
        .body = c->body,
        .bodylen = c->bodylen,
        .connect_timeout_ms = c->connect_timeout_ms,
        .timeout_ms = c->timeout_ms,
        .max_body = c->max_body,
        .secret_body = c->secret_body,
        .sink = c->sink,
        .sink_arg = c->sink_arg,
    };
    int rc = auth_http_send(h, &ho, call_attempt_cb, c, &c->req);
    if (signed_req)
        auth_sigv4_out_free(&sig);
    if (rc != 0) {
        c->req = NULL;
        auth_aws_error_set(err, rc, NULL, "cannot start the request: %s", px_strerror(rc));
        return rc;
    }
    return 0;
}

static uint64_t backoff_ms(auth_http_t *h, int retry_no)
{
    uint64_t cap = (uint64_t)h->retry_base_ms;
    for (int i = 1; i < retry_no && cap < (uint64_t)h->retry_max_ms; i++)
        cap *= 2;
    if (cap > (uint64_t)h->retry_max_ms)
        cap = (uint64_t)h->retry_max_ms;
    /* Full jitter (AWS architecture blog "Exponential Backoff And Jitter"). */
    return rng_next(h) % (cap + 1);
}

static void fill_error_from_response(auth_aws_call_t *c, const auth_http_resp_t *resp,
                                     auth_aws_error_t *err)
{
    memset(err, 0, sizeof(*err));
    err->http_status = resp->status;
    bool found = false;
    if (resp->bodylen) {
        if (c->proto == AUTH_PROTO_QUERY || c->proto == AUTH_PROTO_REST_XML)
            found = auth_parse_xml_error(resp->body, resp->bodylen, err);
        else if (c->proto == AUTH_PROTO_JSON)
            found = auth_parse_json_error(resp->body, resp->bodylen,
                                          auth_http_resp_header(resp, "x-amzn-ErrorType"), err);
    } else if (c->proto == AUTH_PROTO_JSON) {
        found =
            auth_parse_json_error(NULL, 0, auth_http_resp_header(resp, "x-amzn-ErrorType"), err);
    }
    const char *rid = auth_http_resp_header(resp, "x-amzn-RequestId");
    if (!rid)
        rid = auth_http_resp_header(resp, "x-amz-request-id");
    if (rid)
        auth_aws_sanitize(err->request_id, sizeof(err->request_id), rid, strlen(rid));
    err->code = AUTH_E_AWS;
    if (!found) {
        err->aws_code[0] = '\0';
        snprintf(err->message, sizeof(err->message), "HTTP %d from %s without an AWS error body",
                 resp->status, c->host_header);
    } else if (!err->message[0]) {
        snprintf(err->message, sizeof(err->message), "%s", err->aws_code);
    }
}

static void call_attempt_cb(int herr, const char *errmsg, const auth_http_resp_t *resp, void *arg)
{
    auth_aws_call_t *c = arg;
    auth_http_t *h = c->http;
    c->req = NULL;
    auth_aws_error_t err;
    bool retry = false;
    bool skew_fix = false;

    if (herr == AUTH_E_CANCELED) {
        auth_aws_error_set(&err, herr, NULL, "canceled");
        call_finish(c, &err, resp);
        return;
    }
    if (herr != 0) {
        auth_aws_error_set(&err, herr, NULL, "%s %s: %s", c->method, c->host_header,
                           herr == PX_E_TOOBIG ? "response too large" : errmsg);
        err.unreachable = herr == AUTH_E_HTTP || herr == AUTH_E_TIMEOUT;
        retry =
            (herr == AUTH_E_HTTP || herr == AUTH_E_TIMEOUT) && (c->idempotent || resp->not_sent);
    } else if (resp->status >= 200 && resp->status < 300) {
        call_finish(c, NULL, resp);
        return;
    } else {
        fill_error_from_response(c, resp, &err);
        if (auth_aws_code_is_throttle(err.aws_code)) {
            retry = true;
            err.unreachable = true;
        } else if (auth_aws_status_is_transient(resp->status)) {
            retry = true;
            err.unreachable = true;
        } else if (auth_aws_code_is_skew(err.aws_code) && !c->skew_retried && resp->date_ms > 0) {
            /* Only a real clock difference is worth a retry: a wrong secret also answers
             * SignatureDoesNotMatch, with a server clock that agrees with ours. */
            int64_t server_skew = resp->date_ms - px_now_unix_ms();
            int64_t diff = server_skew - h->skew_ms;
            if (diff > 60000 || diff < -60000) {
                h->skew_ms = server_skew;
                c->skew_retried = true;
                skew_fix = true;
            }
        }
    }

    if (skew_fix) {
        /* Re-sign now with the corrected time; this retry does not count against attempts. */
        c->attempt--;
        auth_aws_error_t serr;
        if (call_attempt(c, &serr) != 0)
            call_finish(c, &serr, resp);
        return;
    }
    if (retry && c->attempt < c->max_attempts && !h->closing) {
        uint64_t delay = backoff_ms(h, c->attempt);
        if (uv_timer_start(&c->timer, call_retry_timer_cb, delay, 0) == 0)
            return;
    }
    if (retry && herr == 0 && auth_aws_code_is_throttle(err.aws_code))
        err.code = AUTH_E_THROTTLED;
    if (c->attempt > 1) {
        size_t len = strlen(err.message);
        snprintf(err.message + len, sizeof(err.message) - len, " (after %d attempts)", c->attempt);
    }
    call_finish(c, &err, resp);
}

static void call_retry_timer_cb(uv_timer_t *t)
{
    auth_aws_call_t *c = container_of(t, auth_aws_call_t, timer);
    auth_aws_error_t err;
    if (call_attempt(c, &err) != 0) {
        auth_http_resp_t none = {.date_ms = -1};
        call_finish(c, &err, &none);
    }
}

/* Delivers an error that is known before any attempt could start, from a 0 ms timer. */
static void call_early_error_cb(uv_timer_t *t)
{
    auth_aws_call_t *c = container_of(t, auth_aws_call_t, timer);
    auth_http_resp_t none = {.date_ms = -1};
    call_finish(c, &c->pending_err, &none);
}

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = px_strdup(s);
    if (!d)
        *oom = true;
    return d;
}

int auth_aws_call(auth_http_t *h, const auth_aws_call_opts_t *o, auth_aws_call_cb cb, void *arg,
                  auth_aws_call_t **out)
{
    if (h->closing)
        return PX_E_SHUTDOWN;
    if (!o->method || !o->endpoint || !cb || (o->creds && !o->region) ||
        o->service >= AUTH_SVC_COUNT || o->nheaders > 24)
        return UV_EINVAL;
    char host[512], base[1024];
    bool https;
    if (auth_http_endpoint_parse(o->endpoint, host, sizeof(host), base, sizeof(base), &https) != 0)
        return UV_EINVAL;
    const char *path = o->path && *o->path ? o->path : "/";
    if (path[0] != '/' || has_crlf(path) || (o->query && has_crlf(o->query)))
        return UV_EINVAL;

    auth_aws_call_t *c = px_calloc(1, sizeof(*c));
    if (!c)
        return UV_ENOMEM;
    c->http = h;
    c->cb = cb;
    c->arg = arg;
    c->service = o->service;
    c->proto = o->proto;
    c->s3 = o->s3;
    c->idempotent = o->idempotent;
    c->secret_body = o->secret_body;
    c->max_attempts = o->max_attempts > 0 ? o->max_attempts : 3;
    c->connect_timeout_ms = o->connect_timeout_ms;
    c->timeout_ms = o->timeout_ms;
    c->max_body = o->max_body;
    c->sink = o->sink;
    c->sink_arg = o->sink_arg;

    bool oom = false;
    size_t plen = strlen(base) + strlen(path) + 1;
    c->sign_path = px_malloc(plen);
    if (c->sign_path)
        snprintf(c->sign_path, plen, "%s%s", base, path);
    else
        oom = true;
    c->method = dup_or_null(o->method, &oom);
    c->host_header = dup_or_null(host, &oom);
    c->query = o->query && *o->query ? dup_or_null(o->query, &oom) : NULL;
    c->region = dup_or_null(o->region, &oom);
    c->payload_hash = dup_or_null(o->payload_hash, &oom);
    if (!oom) {
        size_t ulen =
            strlen(o->endpoint) + strlen(path) + (c->query ? strlen(c->query) + 1 : 0) + 16;
        c->url = px_malloc(ulen);
        if (c->url)
            snprintf(c->url, ulen, "%s://%s%s%s%s", https ? "https" : "http", host, c->sign_path,
                     c->query ? "?" : "", c->query ? c->query : "");
        else
            oom = true;
    }
    if (!oom && o->nheaders) {
        size_t total = 0;
        for (size_t i = 0; i < o->nheaders; i++) {
            if (!o->headers[i].name || !o->headers[i].value) {
                call_free(c);
                return UV_EINVAL;
            }
            total += strlen(o->headers[i].name) + strlen(o->headers[i].value) + 2;
        }
        c->hblock = px_malloc(total);
        c->headers = px_calloc(o->nheaders, sizeof(*c->headers));
        if (c->hblock && c->headers) {
            c->hblocklen = total;
            char *p = c->hblock;
            for (size_t i = 0; i < o->nheaders; i++) {
                size_t a = strlen(o->headers[i].name) + 1, b = strlen(o->headers[i].value) + 1;
                memcpy(p, o->headers[i].name, a);
                c->headers[i].name = p;
                p += a;
                memcpy(p, o->headers[i].value, b);
                c->headers[i].value = p;
                p += b;
            }
            c->nheaders = o->nheaders;
        } else {
            oom = true;
        }
    }
    if (!oom && o->bodylen) {
        c->body = px_malloc(o->bodylen);
        if (c->body) {
            memcpy(c->body, o->body, o->bodylen);
            c->bodylen = o->bodylen;
        } else {
            oom = true;
        }
    }
    if (!oom && o->creds) {
        if (auth_aws_creds_copy(&c->creds, o->creds) != 0)
            oom = true;
        else
            c->has_creds = true;
    }
    if (oom) {
        call_free(c);
        return UV_ENOMEM;
    }
    int rc = uv_timer_init(h->loop, &c->timer);
    if (rc) {
        call_free(c);
        return rc;
    }
    c->next = h->calls;
    if (h->calls)
        h->calls->prev = c;
    h->calls = c;
    if (out)
        *out = c;
    if (call_attempt(c, &c->pending_err) != 0) {
        /* Never call back synchronously: report the failure from the loop. */
        if (uv_timer_start(&c->timer, call_early_error_cb, 0, 0) != 0) {
            c->cb = NULL;
            call_close(c);
            if (out)
                *out = NULL;
            return UV_ENOMEM;
        }
    }
    return 0;
}

void auth_aws_call_cancel(auth_aws_call_t *c)
{
    if (!c || c->closing)
        return;
    c->cb = NULL;
    if (c->req) {
        auth_http_cancel(c->req);
        c->req = NULL;
    }
    call_close(c);
}
