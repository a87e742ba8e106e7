/*
 * The scripted HTTP server of test_auth_server.h. Plain libuv TCP: one uv_tcp_t per connection,
 * a growing input buffer, a request parsed once its headers and Content-Length body are in, the
 * handler's answer written back. Deliberately small; it serves tests, not clients.
 */
#include "test_auth_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct ts_conn {
    uv_tcp_t tcp;
    ts_server_t *srv;
    char *in;
    size_t inlen, incap;
    bool stalled;
    struct ts_conn *next, *prev;
} ts_conn_t;

struct ts_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    ts_handler handler;
    void *arg;
    ts_conn_t *conns;
    int count;
    bool stopping;
};

typedef struct ts_write {
    uv_write_t w;
    char *buf;
    ts_conn_t *conn;
    bool close_after;
} ts_write_t;

void ts_http_date(int64_t unix_s, char out[40])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

const char *ts_header(const ts_request_t *r, const char *name, char *buf, size_t cap)
{
    size_t n = strlen(name);
    const char *p = r->headers;
    while (*p) {
        const char *e = strstr(p, "\r\n");
        if (!e)
            break;
        if ((size_t)(e - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(e - v);
            if (vl >= cap)
                vl = cap - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        p = e + 2;
    }
    return NULL;
}

static void conn_closed_cb(uv_handle_t *h)
{
    ts_conn_t *c = h->data;
    free(c->in);
    free(c);
}

static void conn_close(ts_conn_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    ts_server_t *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

static void write_cb(uv_write_t *w, int status)
{
    ts_write_t *wr = (ts_write_t *)w;
    if (wr->close_after || status < 0)
        conn_close(wr->conn);
    free(wr->buf);
    free(wr);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    ts_conn_t *c = h->data;
    if (c->incap - c->inlen < 65536) {
        size_t cap = c->incap ? c->incap * 2 : 131072;
        c->in = realloc(c->in, cap);
        c->incap = cap;
    }
    (void)suggested;
    buf->base = c->in + c->inlen;
    buf->len = c->incap - c->inlen;
}

/* Parses and answers every complete request in the buffer. */
static void process(ts_conn_t *c)
{
    while (!c->stalled) {
        char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
        if (!end)
            return;
        size_t hlen = (size_t)(end - c->in) + 4;
        ts_request_t *req = calloc(1, sizeof(*req));
        const char *line_end = memmem(c->in, hlen, "\r\n", 2);
        sscanf(c->in, "%15s %4095s", req->method, req->target);
        size_t hl = hlen - (size_t)(line_end + 2 - c->in);
        if (hl >= sizeof(req->headers))
            hl = sizeof(req->headers) - 1;
        memcpy(req->headers, line_end + 2, hl);
        char cl[32];
        size_t blen = 0;
        if (ts_header(req, "Content-Length", cl, sizeof(cl)))
            blen = (size_t)strtoul(cl, NULL, 10);
        if (c->inlen < hlen + blen) {
            free(req);
            return;
        }
        req->body = (uint8_t *)c->in + hlen;
        req->bodylen = blen;
        ts_response_t *resp = calloc(1, sizeof(*resp));
        c->srv->count++;
        c->srv->handler(req, resp, c->srv->arg);
        memmove(c->in, c->in + hlen + blen, c->inlen - hlen - blen);
        c->inlen -= hlen + blen;
        bool head = strcmp(req->method, "HEAD") == 0;
        free(req);
        if (resp->drop) {
            free(resp);
            conn_close(c);
            return;
        }
        if (resp->stall) {
            free(resp);
            c->stalled = true;
            return;
        }
        size_t bl = resp->bodylen ? resp->bodylen : strlen(resp->body);
        char date[40] = "";
        if (!strstr(resp->headers, "Date:"))
            ts_http_date((int64_t)time(NULL), date);
        size_t cap = bl + strlen(resp->headers) + 256;
        char *out = malloc(cap);
        int n = snprintf(out, cap,
                         "HTTP/1.1 %d X\r\n%s%s%s%sContent-Length: %zu\r\n"
                         "x-amzn-RequestId: test-req-1\r\n\r\n",
                         resp->status ? resp->status : 200, date[0] ? "Date: " : "", date,
                         date[0] ? "\r\n" : "", resp->headers, bl);
        if (!head) {
            memcpy(out + n, resp->body, bl);
            n += (int)bl;
        }
        ts_write_t *wr = calloc(1, sizeof(*wr));
        wr->buf = out;
        wr->conn = c;
        uv_buf_t b = uv_buf_init(out, (unsigned)n);
        if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
            free(out);
            free(wr);
            conn_close(c);
        }
        free(resp);
    }
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    ts_conn_t *c = st->data;
    (void)buf;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->inlen += (size_t)n;
    process(c);
}

static void connection_cb(uv_stream_t *server, int status)
{
    ts_server_t *s = server->data;
    if (status < 0)
        return;
    ts_conn_t *c = calloc(1, sizeof(*c));
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
        return;
    }
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    /* Server handles never keep the loop alive: tests run it until the client is done. */
    uv_unref((uv_handle_t *)&c->tcp);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int ts_start(uv_loop_t *loop, ts_handler h, void *arg, ts_server_t **out, int *port)
{
    ts_server_t *s = calloc(1, sizeof(*s));
    s->loop = loop;
    s->handler = h;
    s->arg = arg;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&a, 0);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&s->listener, 128, connection_cb);
    if (rc)
        return rc;
    uv_unref((uv_handle_t *)&s->listener);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *out = s;
    return 0;
}

static void listener_closed_cb(uv_handle_t *h)
{
    free(h->data);
}

void ts_stop(ts_server_t *s)
{
    while (s->conns)
        conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, listener_closed_cb);
}

int ts_count(const ts_server_t *s)
{
    return s->count;
}

static void count_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        (*(int *)arg)++;
}

int ts_open_handles(uv_loop_t *loop)
{
    int n = 0;
    uv_walk(loop, count_cb, &n);
    return n;
}
