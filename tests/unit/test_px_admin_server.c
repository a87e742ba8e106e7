/*
 * Unit tests for the admin HTTP server (proxy/px_admin.c) over real loopback sockets: the
 * loop runs in the test's thread with fake probe and metrics callbacks, while a client thread
 * speaks raw HTTP with blocking sockets. Covers routing, HEAD, keep-alive and pipelining,
 * malformed and oversized requests, refused bodies, slow and idle peers, the connection
 * limit, oversized responses, closing with connections open, and a port already in use.
 * Every case ends with uv_loop_close() == 0, so a leaked handle fails it.
 */
#include "px_admin.h"
#include "px_alloc.h"
#include "px_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* ------------------------------------------------------------------------------------------ */
/* The fake owner.                                                                             */

typedef struct fake {
    int ready_status;   /* what /readiness answers */
    size_t metrics_len; /* bytes of metrics to write; 0: a short text */
    int probe_calls, metrics_calls;
} fake_t;

static int fake_probe(void *arg, px_admin_probe_t which, px_dbuf_t *body)
{
    fake_t *f = arg;
    f->probe_calls++;
    switch (which) {
    case PX_ADMIN_LIVENESS:
        px_dbuf_printf(body, "{\"status\":\"alive\"}\n");
        return 200;
    case PX_ADMIN_STARTUP:
        px_dbuf_printf(body, "{\"status\":\"started\"}\n");
        return 200;
    default:
        px_dbuf_printf(body, "{\"status\":\"%s\"}\n", f->ready_status == 200 ? "ready" : "no");
        return f->ready_status;
    }
}

static void fake_metrics(void *arg, px_dbuf_t *out)
{
    fake_t *f = arg;
    f->metrics_calls++;
    if (!f->metrics_len) {
        px_dbuf_printf(out, "# HELP x_total X.\n# TYPE x_total counter\nx_total %d\n",
                       f->metrics_calls);
        return;
    }
    for (size_t i = 0; i < f->metrics_len && !out->failed; i++)
        px_dbuf_put_u8(out, 'm');
}

static const px_admin_ops_t fake_ops = {.probe = fake_probe, .metrics = fake_metrics};

/* ------------------------------------------------------------------------------------------ */
/* The case runner: the loop here, the client in a thread.                                     */

typedef struct tcase tcase_t;
typedef void (*client_fn)(tcase_t *t);

struct tcase {
    uv_loop_t loop;
    px_admin_t *ad;
    uv_async_t finished; /* the client thread is done */
    uv_timer_t watchdog;
    pthread_t thread;
    client_fn client;
    fake_t fake;
    int port;
    int done_calls;
    px_admin_stats_t stats; /* taken just before closing */
    char failure[1024];     /* the client thread's first failed check */
    int keep_fds[2];        /* client sockets left open until the loop has ended */
};

static tcase_t *cur;

static void on_done(void *arg)
{
    tcase_t *t = arg;
    t->done_calls++;
}

static void on_finished(uv_async_t *a)
{
    tcase_t *t = container_of(a, tcase_t, finished);
    px_admin_get_stats(t->ad, &t->stats);
    px_admin_close(t->ad, on_done, t);
    uv_close((uv_handle_t *)&t->finished, NULL);
    uv_close((uv_handle_t *)&t->watchdog, NULL);
}

static void on_watchdog(uv_timer_t *w)
{
    (void)w;
    PX_FAIL("the case hung");
}

static void *client_main(void *arg)
{
    tcase_t *t = arg;
    t->client(t);
    uv_async_send(&t->finished);
    return NULL;
}

static void run_case(client_fn fn, const px_admin_opts_t *opts_in)
{
    static tcase_t t;
    memset(&t, 0, sizeof(t));
    cur = &t;
    t.client = fn;
    t.fake.ready_status = 200;
    ASSERT_OK(uv_loop_init(&t.loop));
    px_admin_opts_t o = opts_in ? *opts_in : (px_admin_opts_t){0};
    o.addr = "127.0.0.1";
    o.port = 0;
    char err[256];
    ASSERT_OK(px_admin_new(&t.loop, &o, &fake_ops, &t.fake, &t.ad, err, sizeof(err)));
    t.port = px_admin_port(t.ad);
    ASSERT(t.port > 0);
    ASSERT_OK(uv_async_init(&t.loop, &t.finished, on_finished));
    ASSERT_OK(uv_timer_init(&t.loop, &t.watchdog));
    ASSERT_OK(uv_timer_start(&t.watchdog, on_watchdog, 20000, 0));
    ASSERT_OK(pthread_create(&t.thread, NULL, client_main, &t));
    ASSERT_OK(uv_run(&t.loop, UV_RUN_DEFAULT));
    pthread_join(t.thread, NULL);
    for (int i = 0; i < 2; i++)
        if (t.keep_fds[i] > 0)
            close(t.keep_fds[i]);
    if (t.failure[0])
        PX_FAIL("client: %s", t.failure);
    ASSERT_EQ(t.done_calls, 1);
    px_test_loop_close(&t.loop);
}

/* Checks in the client thread record the first failure (no longjmp across threads). */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fail_client(t, __LINE__, __VA_ARGS__);                                                 \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static void fail_client(tcase_t *t, int line, const char *fmt, ...) PX_PRINTF(3, 4);
static void fail_client(tcase_t *t, int line, const char *fmt, ...)
{
    if (t->failure[0])
        return;
    int n = snprintf(t->failure, sizeof(t->failure), "line %d: ", line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->failure + n, sizeof(t->failure) - (size_t)n, fmt, ap);
    va_end(ap);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A string literal without its terminating NUL. */
#define send_lit(fd, lit) send_all((fd), (lit), sizeof(lit) - 1)

static bool send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

typedef struct resp {
    int status;
    char head[4096];
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
    long content_length;
} resp_t;

/* Reads one response: the head up to the blank line, then Content-Length bytes of body
 * (none for HEAD). Returns false on EOF, timeout or a malformed head. */
static bool read_resp(int fd, resp_t *r, bool head_request)
{
    memset(r, 0, sizeof(*r));
    size_t n = 0;
    while (n < sizeof(r->head) - 1) {
        ssize_t k = recv(fd, r->head + n, 1, 0);
        if (k <= 0)
            return false;
        n++;
        r->head[n] = '\0';
        if (n >= 4 && memcmp(r->head + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    if (sscanf(r->head, "HTTP/1.1 %d ", &r->status) != 1)
        return false;
    const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
    if (!cl)
        return false;
    r->content_length = strtol(cl + 18, NULL, 10);
    size_t want = head_request ? 0 : (size_t)r->content_length;
    r->body = malloc(want + 1);
    if (!r->body)
        return false;
    while (r->body_len < want) {
        ssize_t k = recv(fd, r->body + r->body_len, want - r->body_len, 0);
        if (k <= 0)
            return false;
        r->body_len += (size_t)k;
    }
    r->body[r->body_len] = '\0';
    return true;
}

/* True when the server closes the connection (EOF or reset) within the receive timeout. */
static bool closed_by_server(int fd)
{
    char c;
    ssize_t k = recv(fd, &c, 1, 0);
    return k == 0 || (k < 0 && errno == ECONNRESET);
}

static bool has_header(const resp_t *r, const char *line)
{
    char want[256];
    snprintf(want, sizeof(want), "\r\n%s\r\n", line);
    return strcasestr(r->head, want) != NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One request on a fresh connection. */
static bool request(tcase_t *t, const char *raw, resp_t *r, bool head_request)
{
    int fd = connect_to(t->port);
    if (fd < 0)
        return false;
    bool ok = send_all(fd, raw, strlen(raw)) && read_resp(fd, r, head_request);
    close(fd);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* Cases.                                                                                      */

#define S_HEAD "HEAD /liveness HTTP/1.1\r\nHost: x\r\n\r\n"

static void client_routes(tcase_t *t)
{
    resp_t r;
    CHECK(request(t, "GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n", &r, false), "liveness");
    CHECK(r.status == 200 && strcmp(r.body, "{\"status\":\"alive\"}\n") == 0, "%d %s", r.status,
          r.body);
    CHECK(has_header(&r, "Content-Type: application/json"), "%s", r.head);
    CHECK(has_header(&r, "Cache-Control: no-store"), "%s", r.head);
    CHECK(strstr(r.head, "\r\nDate: ") != NULL, "%s", r.head);
    free(r.body);

    CHECK(request(t, "GET /startup HTTP/1.1\r\nHost: x\r\n\r\n", &r, false), "startup");
    CHECK(r.status == 200 && strstr(r.body, "started"), "%d", r.status);
    free(r.body);

    t->fake.ready_status = 503;
    CHECK(request(t, "GET /readiness HTTP/1.1\r\nHost: x\r\n\r\n", &r, false), "readiness");
    CHECK(r.status == 503 && strstr(r.head, "Service Unavailable"), "%s", r.head);
    /* A 503 probe answer keeps the connection: it is an answer, not an error. */
    CHECK(!has_header(&r, "Connection: close"), "%s", r.head);
    free(r.body);

    CHECK(request(t, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r, false), "metrics");
    CHECK(r.status == 200 && strstr(r.body, "x_total 1\n"), "%d %s", r.status, r.body);
    CHECK(has_header(&r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"), "%s", r.head);
    free(r.body);

    /* HEAD: the same head, Content-Length included, and no body. */
    int fd = connect_to(t->port);
    CHECK(fd >= 0, "connect");
    CHECK(send_all(fd, S_HEAD, strlen(S_HEAD)), "send");
    CHECK(read_resp(fd, &r, true), "head response");
    CHECK(r.status == 200 && r.content_length == (long)strlen("{\"status\":\"alive\"}\n"), "%s",
          r.head);
    free(r.body);
    /* The next response starts right away: no body bytes came in between. */
    CHECK(send_lit(fd, "GET /startup HTTP/1.1\r\nHost: x\r\n\r\n"), "send");
    CHECK(read_resp(fd, &r, false) && r.status == 200, "after HEAD");
    free(r.body);
    close(fd);

    CHECK(request(t, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &r, false), "404");
    CHECK(r.status == 404 && strstr(r.body, "/metrics"), "%d", r.status);
    free(r.body);
    CHECK(request(t, "GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n", &r, false), "404b");
    CHECK(r.status == 404, "%d", r.status);
    free(r.body);
    CHECK(request(t, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r, false),
          "405");
    CHECK(r.status == 405 && has_header(&r, "Allow: GET, HEAD"), "%s", r.head);
    free(r.body);
    CHECK(request(t, "GET http://x:1/liveness?y HTTP/1.1\r\nHost: x\r\n\r\n", &r, false), "abs");
    CHECK(r.status == 200, "%d", r.status);
    free(r.body);
}

PX_TEST(routes)
{
    run_case(client_routes, NULL);
    ASSERT_EQ(cur->stats.requests[0], 6);  /* 200 */
    ASSERT_EQ(cur->stats.requests[2], 2);  /* 404 */
    ASSERT_EQ(cur->stats.requests[3], 1);  /* 405 */
    ASSERT_EQ(cur->stats.requests[9], 1);  /* 503 */
    ASSERT_EQ(cur->fake.metrics_calls, 1); /* HEAD and 404/405 did not render metrics */
}

static void client_pipelined(tcase_t *t)
{
    int fd = connect_to(t->port);
    CHECK(fd >= 0, "connect");
    static const char reqs[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CHECK(send_all(fd, reqs, sizeof(reqs) - 1), "send");
    resp_t r;
    CHECK(read_resp(fd, &r, false) && r.status == 200 && strstr(r.body, "x_total 1\n"), "1st");
    CHECK(!has_header(&r, "Connection: close"), "%s", r.head);
    free(r.body);
    CHECK(read_resp(fd, &r, false) && r.status == 200 && strstr(r.body, "alive"), "2nd");
    free(r.body);
    CHECK(read_resp(fd, &r, false) && r.status == 200 && strstr(r.body, "x_total 2\n"), "3rd");
    CHECK(has_header(&r, "Connection: close"), "%s", r.head);
    free(r.body);
    CHECK(closed_by_server(fd), "closed after Connection: close");
    close(fd);

    /* HTTP/1.0: closed after the answer unless asked to keep it. */
    fd = connect_to(t->port);
    CHECK(fd >= 0, "connect");
    CHECK(send_lit(fd, "GET /liveness HTTP/1.0\r\n\r\n"), "send");
    CHECK(read_resp(fd, &r, false) && r.status == 200, "1.0");
    free(r.body);
    CHECK(closed_by_server(fd), "1.0 closed");
    close(fd);
    fd = connect_to(t->port);
    CHECK(fd >= 0, "connect");
    static const char ka[] = "GET /liveness HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    CHECK(send_all(fd, ka, sizeof(ka) - 1), "send");
    CHECK(read_resp(fd, &r, false) && has_header(&r, "Connection: keep-alive"), "1.0 ka");
    free(r.body);
    CHECK(send_all(fd, ka, sizeof(ka) - 1), "send");
    CHECK(read_resp(fd, &r, false) && r.status == 200, "1.0 ka second");
    free(r.body);
    close(fd);
}

PX_TEST(keepalive_and_pipelining)
{
    run_case(client_pipelined, NULL);
    ASSERT_EQ(cur->stats.requests[0], 6);
}

static void client_malformed(tcase_t *t)
{
    resp_t r;
    int fd = connect_to(t->port);
    CHECK(fd >= 0, "connect");
    CHECK(send_lit(fd, "hello there\r\n\r\n"), "send");
    CHECK(read_resp(fd, &r, false) && r.status == 400, "400");
    CHECK(has_header(&r, "Connection: close"), "%s", r.head);
    free(r.body);
    CHECK(closed_by_server(fd), "closed after 400");
    close(fd);

    /* 12 KiB of headers: 431, then closed. */
    fd = connect_to(t->port);
    CHECK(fd >= 0, "connect");
    char big[13000];
    int n = snprintf(big, sizeof(big), "GET /metrics HTTP/1.1\r\nHost: x\r\n");
    while (n < 12 * 1024)
        n += snprintf(big + n, sizeof(big) - (size_t)n, "X-Pad: %0100d\r\n", 0);
    n += snprintf(big + n, sizeof(big) - (size_t)n, "\r\n");
    send_all(fd, big, (size_t)n); /* the server may close before taking it all */
    CHECK(read_resp(fd, &r, false) && r.status == 431, "431");
    free(r.body);
    CHECK(closed_by_server(fd), "closed after 431");
    close(fd);

    /* A body is refused, and the answer survives the unread body (lingering close). */
    fd = connect_to(t->port);
    CHECK(fd >= 0, "connect");
    static char post[8192 + 100];
    n = snprintf(post, sizeof(post),
                 "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 8192\r\n\r\n");
    memset(post + n, 'b', 8192);
    CHECK(send_all(fd, post, (size_t)n + 8192), "send");
    CHECK(read_resp(fd, &r, false) && r.status == 413, "413");
    free(r.body);
    shutdown(fd, SHUT_WR);
    CHECK(closed_by_server(fd), "closed after 413");
    close(fd);

    /* A TLS ClientHello on the plain port. */
    fd = connect_to(t->port);
    CHECK(fd >= 0, "connect");
    static const char hello[] = "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03";
    CHECK(send_all(fd, hello, sizeof(hello) - 1), "send");
    CHECK(read_resp(fd, &r, false) && r.status == 400, "tls hello");
    free(r.body);
    close(fd);

    /* The endpoint still serves. */
    CHECK(request(t, "GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) && r.status == 200,
          "after malformed");
    free(r.body);
}

PX_TEST(malformed_requests)
{
    run_case(client_malformed, NULL);
    ASSERT_EQ(cur->stats.requests[1], 2); /* 400 */
    ASSERT_EQ(cur->stats.requests[5], 1); /* 413 */
    ASSERT_EQ(cur->stats.requests[7], 1); /* 431 */
}

static void client_slow(tcase_t *t)
{
    /* Slowloris: a head trickling in, one byte every 100 ms, is answered 408 and closed
     * once the head timeout (300 ms) passes, long before it could finish. */
    int fd = connect_to(t->port);
    CHECK(fd >= 0, "connect");
    double start = now_s();
    static const char head[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaa";
    for (size_t i = 0; i < sizeof(head) - 1 && now_s() - start < 3; i++) {
        if (!send_all(fd, head + i, 1))
            break;
        usleep(100 * 1000);
        char peek;
        if (recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
            break; /* the answer is there */
    }
    resp_t r;
    CHECK(read_resp(fd, &r, false), "a 408");
    CHECK(r.status == 408, "%d", r.status);
    CHECK(has_header(&r, "Connection: close"), "%s", r.head);
    free(r.body);
    CHECK(closed_by_server(fd), "closed after 408");
    /* Bounds far above the timeouts (a loaded CI machine under ASan) and far below the
     * defaults of 10 s and 60 s, which would mean the configured ones were ignored. */
    CHECK(now_s() - start < 4.0, "took %.2f s", now_s() - start);
    close(fd);

    /* A connection that sends nothing at all is closed after the head timeout. */
    fd = connect_to(t->port);
    CHECK(fd >= 0, "connect");
    start = now_s();
    CHECK(closed_by_server(fd), "silent connection closed");
    CHECK(now_s() - start < 4.0, "took %.2f s", now_s() - start);
    close(fd);

    /* A kept-alive connection is closed after the idle timeout (600 ms), silently. */
    fd = connect_to(t->port);
    CHECK(fd >= 0, "connect");
    CHECK(send_lit(fd, "GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n"), "send");
    CHECK(read_resp(fd, &r, false) && r.status == 200, "first");
    free(r.body);
    start = now_s();
    CHECK(closed_by_server(fd), "idle closed");
    double idle = now_s() - start;
    CHECK(idle > 0.4 && idle < 4.0, "idle close after %.2f s", idle);
    close(fd);
}

PX_TEST(slow_and_idle_peers)
{
    px_admin_opts_t o = {.head_timeout_ms = 300, .idle_timeout_ms = 600};
    run_case(client_slow, &o);
    ASSERT_EQ(cur->stats.requests[4], 1); /* 408 */
}

#define S_LIVE "GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n"

/* One whole request and the start of the next in one segment: when the answer to the first
 * arrives, the server has read the rest too, so the connection is in the middle of a request
 * (no sleep to guess with). */
static bool served_on(int fd, const char *raw)
{
    resp_t r;
    bool ok = send_all(fd, raw, strlen(raw)) && read_resp(fd, &r, false) && r.status == 200;
    if (ok)
        free(r.body);
    return ok;
}

static bool make_busy(int fd)
{
    return served_on(fd, S_LIVE "GET /live");
}

static void client_limit_busy(tcase_t *t)
{
    int a = connect_to(t->port), b = connect_to(t->port);
    CHECK(a >= 0 && b >= 0, "connect");
    CHECK(make_busy(a) && make_busy(b), "two connections in the middle of a request");
    int c = connect_to(t->port);
    CHECK(c >= 0, "connect");
    CHECK(closed_by_server(c), "the third connection is closed at once");
    close(c);
    CHECK(served_on(a, "ness HTTP/1.1\r\nHost: x\r\n\r\n"), "first request finished");
    CHECK(served_on(b, "ness HTTP/1.1\r\nHost: x\r\n\r\n"), "second request finished");
    /* Slots come back once connections close. The server closes its end when it sees ours
     * end; a connection made after that is accepted in a later loop turn than the close
     * callbacks that free the slots, so it is never refused (no sleep to guess with). */
    shutdown(a, SHUT_WR);
    shutdown(b, SHUT_WR);
    CHECK(closed_by_server(a), "first closed after its EOF");
    CHECK(closed_by_server(b), "second closed after its EOF");
    close(a);
    close(b);
    resp_t r;
    CHECK(request(t, S_LIVE, &r, false) && r.status == 200, "served again");
    free(r.body);
}

PX_TEST(connection_limit_all_busy)
{
    px_admin_opts_t o = {.max_conns = 2};
    run_case(client_limit_busy, &o);
    ASSERT_EQ(cur->stats.connections_refused, 1);
    ASSERT_EQ(cur->stats.connections_evicted, 0);
}

static void client_limit_idle(tcase_t *t)
{
    /* a: kept alive between requests; b: in the middle of one; c: new. */
    int a = connect_to(t->port);
    CHECK(a >= 0 && served_on(a, S_LIVE), "first connection served");
    int b = connect_to(t->port);
    CHECK(b >= 0 && make_busy(b), "second connection in the middle of a request");
    int c = connect_to(t->port);
    CHECK(c >= 0 && served_on(c, S_LIVE), "the third connection is served");
    CHECK(closed_by_server(a), "the idle one made room for it");
    close(a);
    CHECK(served_on(b, "ness HTTP/1.1\r\nHost: x\r\n\r\n"), "the busy one was left alone");
    /* Now b and c are idle: a new connection that has sent nothing yet is idle too, and the
     * longest-open one goes first. */
    int d = connect_to(t->port);
    CHECK(d >= 0 && served_on(d, S_LIVE), "the fourth connection is served");
    CHECK(closed_by_server(b), "the longest-open idle one made room");
    CHECK(served_on(c, S_LIVE), "the newer idle one stays");
    close(b);
    close(c);
    close(d);
}

PX_TEST(connection_limit_evicts_idle)
{
    px_admin_opts_t o = {.max_conns = 2};
    run_case(client_limit_idle, &o);
    ASSERT_EQ(cur->stats.connections_refused, 0);
    ASSERT_EQ(cur->stats.connections_evicted, 2);
}

static void client_big_metrics(tcase_t *t)
{
    resp_t r;
    t->fake.metrics_len = PX_ADMIN_MAX_RESPONSE - 1;
    CHECK(request(t, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r, false), "big");
    CHECK(r.status == 200 && r.body_len == PX_ADMIN_MAX_RESPONSE - 1, "%d %zu", r.status,
          r.body_len);
    free(r.body);
    t->fake.metrics_len = PX_ADMIN_MAX_RESPONSE + 1;
    CHECK(request(t, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r, false), "too big");
    CHECK(r.status == 500, "%d", r.status);
    free(r.body);
}

PX_TEST(response_cap)
{
    run_case(client_big_metrics, NULL);
    ASSERT_EQ(cur->stats.requests[8], 1); /* 500 */
}

static void client_open_at_close(tcase_t *t)
{
    /* Leaves a connection mid-request and one idle while the server closes. */
    int a = connect_to(t->port), b = connect_to(t->port);
    t->keep_fds[0] = a;
    t->keep_fds[1] = b;
    CHECK(a >= 0 && b >= 0, "connect");
    CHECK(send_lit(a, "GET /metr"), "send");
    usleep(100 * 1000);
}

PX_TEST(close_with_open_connections)
{
    run_case(client_open_at_close, NULL);
    ASSERT_EQ(cur->stats.connections, 2);
}

static void count_done(void *arg)
{
    (*(int *)arg)++;
}

PX_TEST(port_in_use)
{
    uv_loop_t loop;
    ASSERT_OK(uv_loop_init(&loop));
    fake_t f = {.ready_status = 200};
    px_admin_t *a = NULL, *b = NULL;
    char err[256];
    px_admin_opts_t o = {.addr = "127.0.0.1", .port = 0};
    ASSERT_OK(px_admin_new(&loop, &o, &fake_ops, &f, &a, err, sizeof(err)));
    o.port = px_admin_port(a);
    int rc = px_admin_new(&loop, &o, &fake_ops, &f, &b, err, sizeof(err));
    ASSERT_EQ(rc, UV_EADDRINUSE);
    ASSERT(b == NULL);
    if (!strstr(err, "address already in use") || !strstr(err, "127.0.0.1:"))
        PX_FAIL("err: %s", err);
    /* A name that does not resolve and an invalid address fail cleanly too. */
    o.addr = "no-such-host.invalid";
    ASSERT(px_admin_new(&loop, &o, &fake_ops, &f, &b, err, sizeof(err)) != 0);
    ASSERT(strstr(err, "cannot resolve admin_addr"));
    o.addr = "";
    ASSERT_EQ(px_admin_new(&loop, &o, &fake_ops, &f, &b, err, sizeof(err)), UV_EINVAL);
    int done = 0;
    px_admin_close(a, count_done, &done);
    px_admin_close(a, count_done, &done); /* ignored: already closing */
    ASSERT_EQ(done, 0);                   /* never synchronously */
    ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    ASSERT_EQ(done, 1);
    px_test_loop_close(&loop);
}

PX_TEST(localhost_by_name)
{
    uv_loop_t loop;
    ASSERT_OK(uv_loop_init(&loop));
    fake_t f = {.ready_status = 200};
    px_admin_t *a = NULL;
    char err[256];
    px_admin_opts_t o = {.addr = "localhost", .port = 0};
    ASSERT_OK(px_admin_new(&loop, &o, &fake_ops, &f, &a, err, sizeof(err)));
    ASSERT(px_admin_port(a) > 0);
    int fd = connect_to(px_admin_port(a));
    ASSERT(fd >= 0);
    close(fd);
    px_admin_close(a, NULL, NULL);
    ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    px_test_loop_close(&loop);
}

/* Runs the loop a turn at a time until `fd` has something to read (or the server closed it),
 * for cases that drive the loop from the test's own thread. */
static bool pump_until_readable(uv_loop_t *loop, int fd, double seconds)
{
    double end = now_s() + seconds;
    while (now_s() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        char ch;
        ssize_t k = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return true;
        usleep(2000);
    }
    return false;
}

PX_TEST(accept_out_of_memory_is_retried)
{
    /* When not even a refusal can be allocated, libuv stops watching the listener until its
     * pending connection is accepted: the janitor must take it later, or the endpoint would
     * be deaf for good. */
    uv_loop_t loop;
    ASSERT_OK(uv_loop_init(&loop));
    fake_t f = {.ready_status = 200};
    px_admin_t *a = NULL;
    char err[256];
    px_admin_opts_t o = {.addr = "127.0.0.1", .port = 0, .head_timeout_ms = 200};
    ASSERT_OK(px_admin_new(&loop, &o, &fake_ops, &f, &a, err, sizeof(err)));
    int fd = connect_to(px_admin_port(a)); /* completes in the kernel's backlog */
    ASSERT(fd >= 0);
    ASSERT(send_lit(fd, S_LIVE));
    px_alloc_fail_after(0);
    uv_run(&loop, UV_RUN_NOWAIT); /* the accept: nothing can be allocated */
    px_alloc_fail_after(-1);
    px_admin_stats_t st;
    px_admin_get_stats(a, &st);
    ASSERT_EQ(st.connections, 0);
    ASSERT(pump_until_readable(&loop, fd, 5.0));
    resp_t r;
    ASSERT(read_resp(fd, &r, false));
    ASSERT_EQ(r.status, 200);
    free(r.body);
    close(fd);
    px_admin_close(a, NULL, NULL);
    ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    px_test_loop_close(&loop);
}
