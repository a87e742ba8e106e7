/*
 * The admin HTTP server (see px_admin.h): listeners on admin_addr, one connection object per
 * peer with its own llhttp parser (px_admin_http.c), routing of the four read-only paths, and
 * the limits a peer cannot get around: a bounded number of connections, a deadline on every
 * request head, idle connection and response write, a capped response, no request bodies.
 *
 * It does not know what the probes mean or where the metrics come from: px_admin_ops_t
 * supplies both. Nothing here changes the proxy's state; every path answers from a snapshot.
 *
 * Lifecycle: px_admin_close() closes every handle; each close callback counts down
 * pending_closes and the last one frees the object (STYLE.md 7.3), so a connection callback
 * never runs against freed memory.
 */
#include "px_admin.h"

#include "px_admin_http.h"
#include "px_alloc.h"
#include "px_err.h"
#include "px_list.h"
#include "px_listen.h"
#include "px_log.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Bytes read at once per connection. Requests are parsed as they arrive, so this bounds only
 * what waits behind a response being written (pipelined requests), not the head size. */
#define ADMIN_READ_BUF 4096
/* After a response that ends the connection: how long unread input is drained before the
 * socket is closed, so that a refused body does not turn our FIN into an RST that could
 * destroy the response before the client reads it (a "lingering close"). */
#define ADMIN_LINGER_MS 2000

const int px_admin_codes[PX_ADMIN_NCODES] = {200, 400, 404, 405, 408, 413, 414, 431, 500, 503, 505};

typedef struct admin_listener {
    px_list_t link;
    px_admin_t *ad;
    uv_tcp_t tcp;
    bool accept_stalled; /* see px_admin.accept_stalled */
    char name[INET6_ADDRSTRLEN + 16];
} admin_listener_t;

typedef enum conn_state {
    CONN_READING = 0, /* parsing requests as bytes arrive */
    CONN_WRITING,     /* a response is being written; reading is stopped */
    CONN_LINGER,      /* the last response is out: discarding input until EOF or deadline */
    CONN_CLOSING,
} conn_state_t;

typedef struct admin_conn {
    px_list_t link; /* in ad->conns */
    px_admin_t *ad;
    conn_state_t state;
    uv_tcp_t tcp;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    px_admin_parser_t parser;
    px_dbuf_t head;    /* the response being written: status line and headers (owned) */
    px_dbuf_t body;    /* and its body (owned); both freed when the write ends */
    uint64_t deadline; /* loop time at which the janitor acts (see conn_timeout) */
    bool reading;
    bool in_request;  /* bytes of a request that is not complete yet have arrived */
    bool close_after; /* the response being written is the connection's last */
    bool eof;         /* the peer has finished sending */
    size_t off, len;  /* unparsed input: buf[off, len) */
    char peer[INET6_ADDRSTRLEN + 16];
    uint8_t buf[ADMIN_READ_BUF];
} admin_conn_t;

struct px_admin {
    uv_loop_t *loop;
    px_admin_ops_t ops;
    void *arg;
    px_list_t listeners;
    px_list_t conns;
    uv_timer_t janitor; /* one timer walks every connection's deadline (STYLE.md 7.3) */
    bool janitor_inited;
    unsigned max_conns;
    unsigned nclosing; /* connections closed and not yet freed (they do not hold a slot) */
    uint64_t head_timeout, idle_timeout;
    int port;
    int pending_closes; /* handles opened and not yet closed */
    /* A listener whose pending connection could not even be accepted to be refused (out of
     * memory): libuv stops watching it until that connection is accepted, so the janitor
     * tries again. */
    bool accept_stalled;
    bool closing;
    void (*done)(void *arg);
    void *done_arg;
    px_admin_stats_t stats;
    uint64_t last_warn_ms;
};

static void process(admin_conn_t *c);
static void unstall(px_admin_t *ad);

/* ------------------------------------------------------------------------------------------ */
/* Closing.                                                                                    */

static void maybe_done(px_admin_t *ad)
{
    if (!ad->closing || ad->pending_closes > 0)
        return;
    void (*done)(void *) = ad->done;
    void *arg = ad->done_arg;
    px_free(ad);
    if (done)
        done(arg);
}

static void on_conn_closed(uv_handle_t *h)
{
    admin_conn_t *c = container_of(h, admin_conn_t, tcp);
    px_admin_t *ad = c->ad;
    px_list_remove(&c->link);
    ad->stats.connections--;
    ad->nclosing--;
    px_dbuf_free(&c->head);
    px_dbuf_free(&c->body);
    px_free(c);
    ad->pending_closes--;
    maybe_done(ad);
}

/* The one close path of a connection. A write in flight is cancelled by uv_close and its
 * callback runs (with UV_ECANCELED) before on_conn_closed frees the object. */
static void conn_close(admin_conn_t *c, const char *why)
{
    if (c->state == CONN_CLOSING)
        return;
    px_log(PX_LOG_TRACE, "admin: close peer=%s reason=\"%s\"", c->peer, why);
    c->state = CONN_CLOSING;
    c->ad->nclosing++;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_handle_closed(uv_handle_t *h)
{
    px_admin_t *ad = h->data;
    ad->pending_closes--;
    maybe_done(ad);
}

static void on_listener_closed(uv_handle_t *h)
{
    admin_listener_t *l = container_of(h, admin_listener_t, tcp);
    px_admin_t *ad = l->ad;
    px_list_remove(&l->link);
    px_free(l);
    ad->pending_closes--;
    maybe_done(ad);
}

static void on_reject_closed(uv_handle_t *h)
{
    px_admin_t *ad = h->data;
    px_free(h);
    ad->pending_closes--;
    maybe_done(ad);
}

void px_admin_close(px_admin_t *ad, void (*done)(void *arg), void *arg)
{
    if (!ad || ad->closing)
        return;
    ad->closing = true;
    ad->done = done;
    ad->done_arg = arg;
    px_list_t *pos, *tmp;
    px_list_for_each_safe(pos, tmp, &ad->listeners)
    {
        admin_listener_t *l = container_of(pos, admin_listener_t, link);
        if (!uv_is_closing((uv_handle_t *)&l->tcp))
            uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    }
    px_list_for_each_safe(pos, tmp, &ad->conns)
    {
        conn_close(container_of(pos, admin_conn_t, link), "admin endpoint closing");
    }
    if (ad->janitor_inited) {
        ad->janitor_inited = false;
        ad->janitor.data = ad;
        uv_close((uv_handle_t *)&ad->janitor, on_handle_closed);
    }
    /* With nothing open (a failed start), the done callback must still come from the loop. */
    if (ad->pending_closes == 0) {
        uv_timer_t *t = px_malloc(sizeof(*t));
        if (t && uv_timer_init(ad->loop, t) == 0) {
            t->data = ad;
            ad->pending_closes++;
            uv_close((uv_handle_t *)t, on_reject_closed);
        } else {
            px_free(t);
            maybe_done(ad);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Responses.                                                                                  */

static int code_index(int status)
{
    for (int i = 0; i < PX_ADMIN_NCODES; i++)
        if (px_admin_codes[i] == status)
            return i;
    return -1;
}

/* RFC 9110 6.6.1: an origin server with a clock sends Date on 2xx, 3xx and 4xx answers. The
 * process never calls setlocale, so strftime's names are the C locale's English ones. */
static void put_date(px_dbuf_t *b)
{
    time_t now = time(NULL);
    struct tm tm;
    char date[64];
    if (gmtime_r(&now, &tm) && strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm))
        px_dbuf_printf(b, "Date: %s\r\n", date);
}

/* Keeps a request path printable and short for the log: the peer chose those bytes. */
static void log_path(const char *path, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; path[i] && o + 5 < cap; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
}

static void on_write(uv_write_t *w, int status);

/* Answers one request (or a parse error) and stops reading until the answer is written. */
static void respond(admin_conn_t *c, const px_admin_req_t *req)
{
    px_admin_t *ad = c->ad;
    const char *ctype = "application/json";
    int status = req->status;
    bool head_only = req->status == 0 && req->method == PX_ADMIN_HEAD;
    bool allow = false;
    px_dbuf_init(&c->body, PX_ADMIN_MAX_RESPONSE);
    px_dbuf_init(&c->head, 2048);
    if (status) {
        ctype = "text/plain; charset=utf-8";
        px_dbuf_printf(&c->body, "%s\n", req->error ? req->error : px_admin_status_text(status));
    } else {
        px_admin_probe_t probe = PX_ADMIN_LIVENESS;
        bool metrics = false, found = true;
        if (strcmp(req->path, "/liveness") == 0)
            probe = PX_ADMIN_LIVENESS;
        else if (strcmp(req->path, "/readiness") == 0)
            probe = PX_ADMIN_READINESS;
        else if (strcmp(req->path, "/startup") == 0)
            probe = PX_ADMIN_STARTUP;
        else if (strcmp(req->path, "/metrics") == 0)
            metrics = true;
        else
            found = false;
        if (!found) {
            status = 404;
            ctype = "text/plain; charset=utf-8";
            px_dbuf_printf(&c->body, "not found: the admin endpoint serves /startup, /readiness, "
                                     "/liveness and /metrics\n");
        } else if (req->method == PX_ADMIN_OTHER) {
            status = 405;
            allow = true;
            ctype = "text/plain; charset=utf-8";
            px_dbuf_printf(&c->body, "method not allowed: use GET or HEAD\n");
        } else if (metrics) {
            status = 200;
            ctype = "text/plain; version=0.0.4; charset=utf-8";
            ad->ops.metrics(ad->arg, &c->body);
        } else {
            status = ad->ops.probe(ad->arg, probe, &c->body);
        }
        if (c->body.failed) {
            px_log(PX_LOG_ERROR, "admin: the response to %s is too large or out of memory",
                   req->path);
            status = 500;
            ctype = "text/plain; charset=utf-8";
            px_dbuf_free(&c->body);
            px_dbuf_init(&c->body, 256);
            px_dbuf_printf(&c->body, "internal error\n");
        }
    }
    c->close_after = status >= 400 && status != 404 && status != 405 && status != 503;
    c->close_after = c->close_after || !req->keep_alive || c->eof || ad->closing;

    px_dbuf_t *h = &c->head;
    px_dbuf_printf(h, "HTTP/1.1 %d %s\r\n", status, px_admin_status_text(status));
    px_dbuf_printf(h, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, c->body.len);
    px_dbuf_printf(h, "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n");
    if (allow)
        px_dbuf_printf(h, "Allow: GET, HEAD\r\n");
    if (status < 500)
        put_date(h);
    /* HTTP/1.0 peers keep the connection only when told so explicitly. */
    if (c->close_after)
        px_dbuf_printf(h, "Connection: close\r\n");
    else if (req->http_major == 1 && req->http_minor == 0)
        px_dbuf_printf(h, "Connection: keep-alive\r\n");
    px_dbuf_printf(h, "\r\n");

    int ci = code_index(status);
    if (ci >= 0)
        ad->stats.requests[ci]++;
    if (px_log_enabled(PX_LOG_DEBUG)) {
        char path[160];
        log_path(req->path, path, sizeof(path));
        px_log(PX_LOG_DEBUG, "admin: peer=%s method=%s path=\"%s\" status=%d bytes=%zu%s%s",
               c->peer, req->method_name, path, status, c->body.len, req->error ? " error=" : "",
               req->error ? req->error : "");
    }

    if (h->failed) {
        conn_close(c, "out of memory");
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init((char *)h->data, (unsigned)h->len),
                        uv_buf_init((char *)c->body.data, (unsigned)c->body.len)};
    unsigned nbufs = head_only || c->body.len == 0 ? 1 : 2;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    c->state = CONN_WRITING;
    c->in_request = false;
    c->deadline = uv_now(ad->loop) + ad->head_timeout;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write);
    if (rc)
        conn_close(c, uv_strerror(rc));
}

/* ------------------------------------------------------------------------------------------ */
/* Reading.                                                                                    */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    admin_conn_t *c = container_of(h, admin_conn_t, tcp);
    (void)suggested;
    if (c->state == CONN_LINGER) {
        /* Discarded input: the whole buffer is scratch space. */
        *buf = uv_buf_init((char *)c->buf, sizeof(c->buf));
        return;
    }
    *buf = uv_buf_init((char *)c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
    (void)r;
    (void)status; /* the linger deadline or the peer's EOF ends the connection either way */
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    admin_conn_t *c = container_of(s, admin_conn_t, tcp);
    (void)buf;
    if (c->state == CONN_CLOSING || nread == 0)
        return;
    if (nread < 0) {
        if (c->state == CONN_WRITING) {
            /* The answer is on its way; the connection ends once it is written. */
            c->eof = true;
            return;
        }
        conn_close(c, nread == UV_EOF ? "peer closed" : uv_strerror((int)nread));
        return;
    }
    if (c->state == CONN_LINGER)
        return;
    if (!c->in_request) {
        /* The first byte of a request starts its clock: the rest must follow in time. */
        c->in_request = true;
        c->deadline = uv_now(c->ad->loop) + c->ad->head_timeout;
    }
    c->len += (size_t)nread;
    process(c);
}

static void start_reading(admin_conn_t *c)
{
    if (c->reading)
        return;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc) {
        conn_close(c, uv_strerror(rc));
        return;
    }
    c->reading = true;
}

/* Parses what has arrived and answers the first complete request; the rest waits in the
 * buffer until that answer is written (pipelining, in order). */
static void process(admin_conn_t *c)
{
    while (c->state == CONN_READING && c->off < c->len) {
        size_t used = 0;
        px_admin_req_t req;
        px_admin_parse_t r =
            px_admin_parser_feed(&c->parser, c->buf + c->off, c->len - c->off, &used, &req);
        c->off += used;
        if (r == PX_ADMIN_PARSE_MORE)
            continue;
        if (r == PX_ADMIN_PARSE_ERROR)
            c->off = c->len; /* the rest cannot be read as HTTP */
        respond(c, &req);
    }
    if (c->off == c->len) {
        c->off = c->len = 0;
    } else if (c->off > 0 && c->state != CONN_CLOSING) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->state != CONN_READING)
        return;
    if (c->eof) {
        conn_close(c, "peer closed");
        return;
    }
    start_reading(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Writing and the end of a response.                                                          */

static void on_write(uv_write_t *w, int status)
{
    admin_conn_t *c = container_of(w, admin_conn_t, wreq);
    px_dbuf_free(&c->head);
    px_dbuf_free(&c->body);
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    px_admin_t *ad = c->ad;
    if (c->close_after || ad->closing) {
        if (c->eof) {
            conn_close(c, "response sent");
            return;
        }
        /* Half-close, then drain what the peer still sends until it closes too. */
        c->state = CONN_LINGER;
        c->deadline = uv_now(ad->loop) + ADMIN_LINGER_MS;
        c->off = c->len = 0;
        if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
            conn_close(c, "response sent");
            return;
        }
        start_reading(c);
        return;
    }
    c->state = CONN_READING;
    c->deadline = uv_now(ad->loop) + ad->idle_timeout;
    /* Bytes already buffered belong to the next request: its clock is already running. */
    if (c->len > c->off) {
        c->in_request = true;
        c->deadline = uv_now(ad->loop) + ad->head_timeout;
    }
    process(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Deadlines.                                                                                  */

static void conn_timeout(admin_conn_t *c)
{
    switch (c->state) {
    case CONN_READING:
        if (c->in_request) {
            /* A slow or stalled request (slowloris): tell it why, then close. */
            px_admin_req_t req = {
                .status = 408, .error = "request not received in time", .method_name = "-"};
            c->off = c->len = 0;
            respond(c, &req);
            return;
        }
        conn_close(c, "idle");
        return;
    case CONN_WRITING:
        conn_close(c, "response not taken in time");
        return;
    case CONN_LINGER:
        conn_close(c, "linger over");
        return;
    default:
        return;
    }
}

static void on_janitor(uv_timer_t *t)
{
    px_admin_t *ad = container_of(t, px_admin_t, janitor);
    uint64_t now = uv_now(ad->loop);
    px_list_t *pos, *tmp;
    px_list_for_each_safe(pos, tmp, &ad->conns)
    {
        admin_conn_t *c = container_of(pos, admin_conn_t, link);
        if (c->state != CONN_CLOSING && now >= c->deadline)
            conn_timeout(c);
    }
    if (ad->accept_stalled)
        unstall(ad);
}

/* ------------------------------------------------------------------------------------------ */
/* Accepting.                                                                                  */

static void peer_name(uv_tcp_t *tcp, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sl) == 0)
        px_addr_name((struct sockaddr *)&ss, out, cap);
    else
        snprintf(out, cap, "?");
}

/* Over the connection limit: accepted (so the backlog does not fill) and closed at once.
 * Returns false when even that failed for want of memory. */
static bool reject(px_admin_t *ad, uv_stream_t *server)
{
    uv_tcp_t *t = px_malloc(sizeof(*t));
    if (!t || uv_tcp_init(ad->loop, t) != 0) {
        px_free(t);
        return false;
    }
    t->data = ad;
    ad->pending_closes++;
    (void)uv_accept(server, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_reject_closed);
    return true;
}

static bool warn_now(px_admin_t *ad)
{
    /* Floods come in bursts: one line per second is enough. */
    uint64_t now = px_now_mono_ms();
    if (now - ad->last_warn_ms < 1000)
        return false;
    ad->last_warn_ms = now;
    return true;
}

/* The connection given up for a new one at the limit, as nginx reuses its keep-alive
 * connections: the longest-open one waiting for a request of which nothing has arrived (kept
 * alive between requests, or not started). One in the middle of a request or a response is
 * never picked, so opening connections cannot cut anybody's request short, and a peer that
 * holds every slot idle cannot lock the kubelet's probes out (a flood of new connections still
 * can evict a probe accepted in the same burst before its request is read). */
static admin_conn_t *idle_victim(px_admin_t *ad)
{
    px_list_t *pos, *tmp;
    px_list_for_each_safe(pos, tmp, &ad->conns)
    {
        admin_conn_t *c = container_of(pos, admin_conn_t, link);
        if (c->state == CONN_READING && !c->in_request && c->off == c->len)
            return c;
    }
    return NULL;
}

/* Takes the listener's pending connection: served, or refused when every slot is busy. */
static void admit(admin_listener_t *l)
{
    px_admin_t *ad = l->ad;
    uv_stream_t *server = (uv_stream_t *)&l->tcp;
    if (ad->stats.connections - ad->nclosing >= ad->max_conns) {
        admin_conn_t *victim = idle_victim(ad);
        if (victim) {
            ad->stats.connections_evicted++;
            conn_close(victim, "idle, and the connection limit is reached");
        } else {
            ad->stats.connections_refused++;
            if (warn_now(ad))
                px_log(PX_LOG_WARN, "admin: %u connections busy; closing new ones", ad->max_conns);
            if (!reject(ad, server))
                l->accept_stalled = ad->accept_stalled = true;
            return;
        }
    }
    admin_conn_t *c = px_calloc(1, sizeof(*c));
    if (!c || uv_tcp_init(ad->loop, &c->tcp) != 0) {
        px_free(c);
        if (warn_now(ad))
            px_log(PX_LOG_WARN, "admin: out of memory accepting a connection");
        if (!reject(ad, server))
            l->accept_stalled = ad->accept_stalled = true;
        return;
    }
    c->ad = ad;
    c->state = CONN_READING;
    px_list_init(&c->link);
    px_list_append(&ad->conns, &c->link);
    ad->stats.connections++;
    ad->pending_closes++;
    px_admin_parser_init(&c->parser);
    px_dbuf_init(&c->head, 0);
    px_dbuf_init(&c->body, 0);
    snprintf(c->peer, sizeof(c->peer), "?");
    /* The first request must start within the head timeout too: a connection that never
     * sends anything holds one of the few slots. */
    c->deadline = uv_now(ad->loop) + ad->head_timeout;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc) {
        conn_close(c, uv_strerror(rc));
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    peer_name(&c->tcp, c->peer, sizeof(c->peer));
    start_reading(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    admin_listener_t *l = container_of(server, admin_listener_t, tcp);
    px_admin_t *ad = l->ad;
    if (ad->closing)
        return;
    if (status < 0) {
        if (warn_now(ad))
            px_log(PX_LOG_WARN, "admin: accept on %s failed: %s", l->name, uv_strerror(status));
        return;
    }
    admit(l);
}

/* The janitor's retry of listeners stalled by an allocation failure. */
static void unstall(px_admin_t *ad)
{
    ad->accept_stalled = false;
    px_list_t *pos, *tmp;
    px_list_for_each_safe(pos, tmp, &ad->listeners)
    {
        admin_listener_t *l = container_of(pos, admin_listener_t, link);
        if (l->accept_stalled) {
            l->accept_stalled = false;
            admit(l);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Listening.                                                                                  */

static int listen_one(px_admin_t *ad, struct sockaddr *sa, char *err, size_t errlen)
{
    if (ad->port)
        px_listen_set_port(sa,
                           ad->port); /* port 0 (tests): every address gets the first one's port */
    admin_listener_t *l = px_calloc(1, sizeof(*l));
    if (!l)
        return UV_ENOMEM;
    px_addr_name(sa, l->name, sizeof(l->name));
    int rc = uv_tcp_init(ad->loop, &l->tcp);
    if (rc) {
        snprintf(err, errlen, "admin endpoint %s: %s", l->name, uv_strerror(rc));
        px_free(l);
        return rc;
    }
    l->ad = ad;
    px_list_init(&l->link);
    px_list_append(&ad->listeners, &l->link);
    ad->pending_closes++;
    int port = 0;
    rc = px_listen_tcp(&l->tcp, sa, 64, on_connection, &port);
    if (rc) {
        snprintf(err, errlen, "admin endpoint %s: %s", l->name, uv_strerror(rc));
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
        return rc;
    }
    if (!ad->port) {
        ad->port = port;
        px_listen_set_port(sa, port);
        px_addr_name(sa, l->name, sizeof(l->name));
    }
    return 0;
}

static int bind_cb(void *arg, struct sockaddr *sa, char *err, size_t errlen)
{
    return listen_one(arg, sa, err, errlen);
}

int px_admin_new(uv_loop_t *loop, const px_admin_opts_t *o, const px_admin_ops_t *ops, void *arg,
                 px_admin_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!o->addr || !o->addr[0] || o->port < 0 || o->port > 65535 || !ops || !ops->probe ||
        !ops->metrics) {
        snprintf(err, errlen, "admin endpoint: invalid options");
        return UV_EINVAL;
    }
    px_admin_t *ad = px_calloc(1, sizeof(*ad));
    if (!ad) {
        snprintf(err, errlen, "admin endpoint: out of memory");
        return UV_ENOMEM;
    }
    ad->loop = loop;
    ad->ops = *ops;
    ad->arg = arg;
    px_list_init(&ad->listeners);
    px_list_init(&ad->conns);
    ad->max_conns = o->max_conns ? o->max_conns : PX_ADMIN_DEFAULT_MAX_CONNS;
    ad->head_timeout = o->head_timeout_ms ? o->head_timeout_ms : PX_ADMIN_DEFAULT_HEAD_TIMEOUT;
    ad->idle_timeout = o->idle_timeout_ms ? o->idle_timeout_ms : PX_ADMIN_DEFAULT_IDLE_TIMEOUT;
    ad->port = 0;

    int rc = px_listen_each(ad->loop, "admin_addr", o->addr, o->port, bind_cb, ad, err, errlen);
    if (rc == 0) {
        rc = uv_timer_init(loop, &ad->janitor);
        if (rc == 0) {
            ad->janitor_inited = true;
            ad->pending_closes++;
            /* A quarter of the shortest deadline: timeouts fire at most 25% late. */
            uint64_t tick = PX_MIN(ad->head_timeout, ad->idle_timeout) / 4;
            tick = PX_MAX(tick, 20u);
            tick = PX_MIN(tick, 1000u);
            uv_timer_start(&ad->janitor, on_janitor, tick, tick);
            uv_unref((uv_handle_t *)&ad->janitor); /* the listeners keep the loop alive */
        } else {
            snprintf(err, errlen, "admin endpoint: %s", uv_strerror(rc));
        }
    }
    if (rc) {
        px_admin_close(ad, NULL, NULL);
        return rc;
    }
    *out = ad;
    return 0;
}

int px_admin_port(const px_admin_t *ad)
{
    return ad->port;
}

void px_admin_get_stats(const px_admin_t *ad, px_admin_stats_t *out)
{
    *out = ad->stats;
}
