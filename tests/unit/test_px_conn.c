/*
 * Loopback tests of the whole daemon (px_proxy) with real libuv sockets: the proxy runs on its
 * own loop in a thread, a scripted PostgreSQL-like upstream answers in other threads, and each
 * case talks to the proxy over a blocking socket like a client would. Covers the startup
 * exchange (SSLRequest, versions, NegotiateProtocolVersion, limits, bad lengths), login and its
 * failures, relaying (pipelining, messages far larger than the buffer, backpressure), the
 * proxy's own BackendKeyData and cancel forwarding, Terminate, upstream loss before and in the
 * middle of a message, malformed client messages, and the shutdown drain. Every malformed-input
 * case also checks that a well-behaved client is still served afterwards.
 */
#include "cfg.h"
#include "px_alloc.h"
#include "px_log.h"
#include "px_proxy.h"
#include "px_test.h"
#include "px_util.h"
#include "test_px_certs.h"

#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define IO_TIMEOUT_MS 5000

/* The scripted upstream can speak TLS: its session sockets then have an SSL object here, and the
 * blocking helpers below go through it. Each entry is set and cleared by the one thread that
 * owns the socket. */
static SSL *fd_ssl[4096];
static bool use_tls; /* the current case runs with sslmode = verify-full upstream */

/* ------------------------------------------------------------------------------------------ */
/* Blocking socket helpers.                                                                   */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0)
        abort();
    close(fd);
    return ntohs(a.sin_port);
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 200; i++) {
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            return fd;
        }
        close(fd);
        usleep(10000);
        fd = socket(AF_INET, SOCK_STREAM, 0);
    }
    close(fd);
    return -1;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    SSL *ssl = fd >= 0 && fd < 4096 ? fd_ssl[fd] : NULL;
    if (ssl)
        return n == 0 || (SSL_write(ssl, p, (int)n) == (int)n);
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads exactly n bytes; 1 on success, 0 on EOF, -1 on timeout or error. */
static int recv_all(int fd, void *p, size_t n, int timeout_ms)
{
    uint8_t *b = p;
    SSL *ssl = fd >= 0 && fd < 4096 ? fd_ssl[fd] : NULL;
    while (n > 0) {
        if (!ssl || SSL_pending(ssl) == 0) {
            struct pollfd pf = {.fd = fd, .events = POLLIN};
            int r = poll(&pf, 1, timeout_ms);
            if (r <= 0)
                return -1;
        }
        ssize_t got = ssl ? SSL_read(ssl, b, (int)n) : recv(fd, b, n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got == 0)
            return 0;
        if (got < 0)
            return -1;
        b += got;
        n -= (size_t)got;
    }
    return 1;
}

/* True when the peer closes (EOF or reset) within the timeout, with nothing more to read. */
static bool wait_closed(int fd, int timeout_ms)
{
    uint8_t b[4096];
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, timeout_ms) <= 0)
            return false;
        ssize_t got = recv(fd, b, sizeof(b), 0);
        if (got <= 0)
            return true;
    }
}

typedef struct msg {
    uint8_t type;
    uint32_t len;  /* body length */
    uint8_t *body; /* malloc'd, NUL-terminated for convenience */
} msg_t;

static void msg_free(msg_t *m)
{
    free(m->body);
    m->body = NULL;
}

/* Reads one typed message; 1, 0 (EOF) or -1. */
static int read_msg(int fd, msg_t *m, int timeout_ms)
{
    uint8_t h[5];
    int r = recv_all(fd, h, 5, timeout_ms);
    if (r != 1)
        return r;
    m->type = h[0];
    uint32_t l = px_get_u32(h + 1);
    if (l < 4 || l > (64u << 20))
        return -1;
    m->len = l - 4;
    m->body = malloc(m->len + 1);
    if (!m->body)
        return -1;
    m->body[m->len] = 0;
    if (m->len && recv_all(fd, m->body, m->len, timeout_ms) != 1) {
        msg_free(m);
        return -1;
    }
    return 1;
}

static bool send_msg(int fd, uint8_t type, const void *body, size_t n)
{
    uint8_t h[5];
    h[0] = type;
    px_put_u32(h + 1, (uint32_t)(n + 4));
    return send_all(fd, h, 5) && (n == 0 || send_all(fd, body, n));
}

static bool send_query(int fd, const char *sql)
{
    return send_msg(fd, 'Q', sql, strlen(sql) + 1);
}

/* The value of one field of an ErrorResponse body, or "". */
static const char *err_field(const msg_t *m, char code)
{
    size_t off = 0;
    while (off < m->len && m->body[off]) {
        char c = (char)m->body[off++];
        const char *v = (const char *)m->body + off;
        if (c == code)
            return v;
        off += strlen(v) + 1;
    }
    return "";
}

static size_t startup_packet(uint8_t *buf, uint32_t version, const char *const *kv)
{
    size_t off = 8;
    for (; *kv; kv++) {
        size_t l = strlen(*kv) + 1;
        memcpy(buf + off, *kv, l);
        off += l;
    }
    buf[off++] = 0;
    px_put_u32(buf, (uint32_t)off);
    px_put_u32(buf + 4, version);
    return off;
}

/* ------------------------------------------------------------------------------------------ */
/* The scripted upstream.                                                                     */

#define UP_PID 4242u
#define UP_KEY 0x11223344u

typedef enum up_login {
    UP_LOGIN_CLEARTEXT = 0, /* asks for a cleartext password, checks it */
    UP_LOGIN_REJECT,        /* answers the startup with ErrorResponse 28P01 */
    UP_LOGIN_STALL,         /* sends AuthenticationOk, then nothing */
} up_login_t;

static struct upstream {
    int port;
    int lfd;
    pthread_t thread;
    atomic_bool stop;
    up_login_t login;
    /* What the last session received (under mu). */
    pthread_mutex_t mu;
    char startup_user[64], startup_db[64], startup_app[64], password[64];
    bool saw_pq_option;
    char types[256]; /* message types received after login, in order */
    size_t ntypes;
    uint32_t cancel_pid, cancel_key; /* last CancelRequest received */
    int cancels;
    atomic_int sleeping; /* sessions waiting in "sleep" */
    atomic_bool cancel_flag;
    int sessions;
    char *last_query;       /* text of the last Query (malloc'd) */
    char *last_parse;       /* statement name and text of the last Parse: "name|sql" */
    size_t last_parse_tail; /* bytes after the Parse's query (parameter types) */
} up;

static void up_set(char **slot, const char *a, const char *b)
{
    pthread_mutex_lock(&up.mu);
    free(*slot);
    size_t la = strlen(a), lb = b ? strlen(b) : 0;
    *slot = malloc(la + lb + 2);
    memcpy(*slot, a, la);
    if (b) {
        (*slot)[la] = '|';
        memcpy(*slot + la + 1, b, lb + 1);
    } else {
        (*slot)[la] = 0;
    }
    pthread_mutex_unlock(&up.mu);
}

/* A copy of a recorded text (the caller frees it). */
static char *up_get(char **slot)
{
    pthread_mutex_lock(&up.mu);
    char *c = *slot ? strdup(*slot) : strdup("");
    pthread_mutex_unlock(&up.mu);
    return c;
}

static void up_record_type(uint8_t t)
{
    pthread_mutex_lock(&up.mu);
    if (up.ntypes < sizeof(up.types) - 1)
        up.types[up.ntypes++] = (char)t;
    up.types[up.ntypes] = 0;
    pthread_mutex_unlock(&up.mu);
}

static bool up_send_error(int fd, const char *sev, const char *code, const char *text)
{
    uint8_t b[512];
    int n =
        snprintf((char *)b, sizeof(b), "S%s%cV%s%cC%s%cM%s%c", sev, 0, sev, 0, code, 0, text, 0);
    b[n++] = 0;
    return send_msg(fd, 'E', b, (size_t)n);
}

static bool up_ready(int fd)
{
    return send_msg(fd, 'Z', "I", 1);
}

static bool up_complete(int fd, const char *tag)
{
    return send_msg(fd, 'C', tag, strlen(tag) + 1) && up_ready(fd);
}

static void up_serve_query(int fd, const char *q)
{
    if (strncmp(q, "big ", 4) == 0) {
        /* One DataRow of N bytes: far larger than any read buffer. */
        size_t n = (size_t)atol(q + 4);
        uint8_t *row = malloc(n + 6);
        px_put_u16(row, 1);
        px_put_u32(row + 2, (uint32_t)n);
        for (size_t i = 0; i < n; i++)
            row[6 + i] = (uint8_t)('a' + i % 26);
        bool ok = send_msg(fd, 'D', row, n + 6);
        free(row);
        if (ok)
            up_complete(fd, "SELECT 1");
        return;
    }
    if (strncmp(q, "rows ", 5) == 0) {
        long n = atol(q + 5);
        uint8_t *buf = malloc(64 * 1024);
        size_t used = 0;
        for (long i = 0; i < n; i++) {
            char v[32];
            int vl = snprintf(v, sizeof(v), "%ld", i);
            uint8_t *m = buf + used;
            m[0] = 'D';
            px_put_u32(m + 1, (uint32_t)(4 + 2 + 4 + vl));
            px_put_u16(m + 5, 1);
            px_put_u32(m + 7, (uint32_t)vl);
            memcpy(m + 11, v, (size_t)vl);
            used += 11 + (size_t)vl;
            if (used > 60000) {
                if (!send_all(fd, buf, used))
                    break;
                used = 0;
            }
        }
        if (used)
            send_all(fd, buf, used);
        free(buf);
        char tag[32];
        snprintf(tag, sizeof(tag), "SELECT %ld", n);
        up_complete(fd, tag);
        return;
    }
    if (strcmp(q, "die") == 0) {
        shutdown(fd, SHUT_RDWR);
        return;
    }
    if (strcmp(q, "die_mid") == 0) {
        uint8_t h[11] = {'D'};
        px_put_u32(h + 1, 4 + 2 + 4 + 1000);
        px_put_u16(h + 5, 1);
        px_put_u32(h + 7, 1000);
        send_all(fd, h, sizeof(h));
        send_all(fd, "partial", 7);
        usleep(50000);
        shutdown(fd, SHUT_RDWR);
        return;
    }
    if (strcmp(q, "fatal") == 0) {
        up_send_error(fd, "FATAL", "57P01", "terminating connection due to administrator command");
        shutdown(fd, SHUT_RDWR);
        return;
    }
    if (strcmp(q, "sleep") == 0) {
        atomic_fetch_add(&up.sleeping, 1);
        for (int i = 0; i < 500 && !atomic_load(&up.cancel_flag); i++)
            usleep(10000);
        atomic_fetch_sub(&up.sleeping, 1);
        if (atomic_exchange(&up.cancel_flag, false))
            (void)(up_send_error(fd, "ERROR", "57014", "canceling statement due to user request") &&
                   up_ready(fd));
        else
            up_complete(fd, "SELECT 1");
        return;
    }
    if (strncmp(q, "RSPROXY_REFUSED_", 16) == 0) {
        char text[200];
        snprintf(text, sizeof(text), "syntax error at or near \"%s\"", q);
        (void)(up_send_error(fd, "ERROR", "42601", text) && up_ready(fd));
        return;
    }
    char tag[64];
    snprintf(tag, sizeof(tag), "ECHO %zu", strlen(q));
    up_complete(fd, tag);
}

static SSL_CTX *up_ssl_ctx;

static void *up_session(void *arg)
{
    int fd = (int)(intptr_t)arg;
    uint8_t buf[16384];
    SSL *ssl = NULL;
again:
    if (recv_all(fd, buf, 8, IO_TIMEOUT_MS) != 1)
        goto out;
    uint32_t len = px_get_u32(buf), code = px_get_u32(buf + 4);
    if (len == 8 && code == 80877103u && !ssl) { /* SSLRequest */
        if (!up_ssl_ctx) {
            send_all(fd, "N", 1);
            goto again;
        }
        send_all(fd, "S", 1);
        ssl = SSL_new(up_ssl_ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1)
            goto out;
        fd_ssl[fd] = ssl;
        goto again;
    }
    if (len < 8 || len > sizeof(buf) ||
        (len > 8 && recv_all(fd, buf + 8, len - 8, IO_TIMEOUT_MS) != 1))
        goto out;
    if (code == 80877102u) { /* CancelRequest */
        pthread_mutex_lock(&up.mu);
        up.cancel_pid = px_get_u32(buf + 8);
        up.cancel_key = px_get_u32(buf + 12);
        up.cancels++;
        pthread_mutex_unlock(&up.mu);
        if (up.cancel_pid == UP_PID && up.cancel_key == UP_KEY)
            atomic_store(&up.cancel_flag, true);
        goto out;
    }
    if (code != 196608u)
        goto out;
    pthread_mutex_lock(&up.mu);
    up.sessions++;
    up.ntypes = 0;
    up.types[0] = 0;
    up.saw_pq_option = false;
    up.startup_app[0] = 0;
    for (size_t off = 8; off < len && buf[off];) {
        const char *k = (const char *)buf + off;
        const char *v = k + strlen(k) + 1;
        if (strcmp(k, "user") == 0)
            snprintf(up.startup_user, sizeof(up.startup_user), "%s", v);
        else if (strcmp(k, "database") == 0)
            snprintf(up.startup_db, sizeof(up.startup_db), "%s", v);
        else if (strcmp(k, "application_name") == 0)
            snprintf(up.startup_app, sizeof(up.startup_app), "%s", v);
        else if (strncmp(k, "_pq_.", 5) == 0)
            up.saw_pq_option = true;
        off = (size_t)(v - (const char *)buf) + strlen(v) + 1;
    }
    pthread_mutex_unlock(&up.mu);

    if (up.login == UP_LOGIN_REJECT) {
        up_send_error(fd, "FATAL", "28P01", "password authentication failed for user \"x\"");
        goto out;
    }
    static const uint8_t ask[4] = {0, 0, 0, 3};
    send_msg(fd, 'R', ask, 4);
    msg_t m;
    if (read_msg(fd, &m, IO_TIMEOUT_MS) != 1)
        goto out;
    if (m.type == 'p') {
        pthread_mutex_lock(&up.mu);
        snprintf(up.password, sizeof(up.password), "%s", (char *)m.body);
        pthread_mutex_unlock(&up.mu);
    }
    msg_free(&m);
    static const uint8_t ok[4] = {0, 0, 0, 0};
    send_msg(fd, 'R', ok, 4);
    if (up.login == UP_LOGIN_STALL) {
        recv_all(fd, buf, 1, 10000); /* until the proxy gives up */
        goto out;
    }
    send_msg(fd, 'S',
             "server_version\0"
             "15.0",
             20);
    send_msg(fd, 'S', "client_encoding\0UTF8", 21);
    uint8_t kd[8];
    px_put_u32(kd, UP_PID);
    px_put_u32(kd + 4, UP_KEY);
    send_msg(fd, 'K', kd, 8);
    up_ready(fd);
    bool skip_to_sync = false;
    for (;;) {
        int r = read_msg(fd, &m, 30000);
        if (r != 1)
            break;
        up_record_type(m.type);
        if (m.type == 'X') {
            msg_free(&m);
            break;
        }
        if (m.type == 'Q') {
            up_set(&up.last_query, (const char *)m.body, NULL);
            up_serve_query(fd, (const char *)m.body);
        } else if (m.type == 'P' && !skip_to_sync) {
            const char *name = (const char *)m.body;
            const char *sql = name + strlen(name) + 1;
            up_set(&up.last_parse, name, sql);
            pthread_mutex_lock(&up.mu);
            up.last_parse_tail = m.len - (size_t)(sql + strlen(sql) + 1 - (const char *)m.body);
            pthread_mutex_unlock(&up.mu);
            if (strncmp(sql, "RSPROXY_REFUSED_", 16) == 0) {
                /* As PostgreSQL: the error, then everything up to Sync is ignored. */
                char text[200];
                snprintf(text, sizeof(text), "syntax error at or near \"%s\"", sql);
                up_send_error(fd, "ERROR", "42601", text);
                skip_to_sync = true;
            } else {
                send_msg(fd, '1', NULL, 0); /* ParseComplete */
            }
        } else if (m.type == 'S') {
            skip_to_sync = false;
            up_ready(fd);
        }
        msg_free(&m);
    }
out:
    if (ssl) {
        fd_ssl[fd] = NULL;
        SSL_free(ssl);
    }
    close(fd);
    return NULL;
}

static void *up_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&up.stop)) {
        struct pollfd pf = {.fd = up.lfd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        int fd = accept(up.lfd, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_t t;
        pthread_create(&t, NULL, up_session, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
    return NULL;
}

static void up_start(up_login_t login)
{
    memset(&up, 0, sizeof(up));
    pthread_mutex_init(&up.mu, NULL);
    up.login = login;
    up.lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(up.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (bind(up.lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(up.lfd, 64) != 0 ||
        getsockname(up.lfd, (struct sockaddr *)&a, &l) != 0)
        abort();
    up.port = ntohs(a.sin_port);
    if (use_tls && !up_ssl_ctx) {
        const px_test_certs_t *c = px_test_certs();
        up_ssl_ctx = SSL_CTX_new(TLS_server_method());
        if (SSL_CTX_use_certificate_file(up_ssl_ctx, c->cert, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_use_PrivateKey_file(up_ssl_ctx, c->key, SSL_FILETYPE_PEM) != 1)
            abort();
    } else if (!use_tls && up_ssl_ctx) {
        SSL_CTX_free(up_ssl_ctx);
        up_ssl_ctx = NULL;
    }
    pthread_create(&up.thread, NULL, up_main, NULL);
}

static void up_stop(void)
{
    atomic_store(&up.stop, true);
    pthread_join(up.thread, NULL);
    close(up.lfd);
    usleep(20000); /* detached sessions see their sockets close */
    free(up.last_query);
    free(up.last_parse);
    up.last_query = up.last_parse = NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* The proxy under test, on its own loop thread.                                              */

static struct proxy {
    uv_loop_t loop;
    uv_async_t stop_async;
    atomic_int stop_mode; /* 1: drain, 2: fast */
    px_proxy_t *px;
    pthread_t thread;
    int port;
    char sockdir[64];
    char ini_path[128];
    cfg_t *cfg;
} pr;

static void on_stop_async(uv_async_t *a)
{
    int mode = atomic_exchange(&pr.stop_mode, 0);
    if (mode == 3) { /* reload, as SIGHUP does */
        px_proxy_reload(pr.px);
        return;
    }
    px_proxy_shutdown(pr.px, mode == 2);
    uv_close((uv_handle_t *)a, NULL);
}

static void *proxy_main(void *arg)
{
    (void)arg;
    uv_run(&pr.loop, UV_RUN_DEFAULT);
    return NULL;
}

static void proxy_start(const char *extra_ini)
{
    /* As in main(): a peer that goes away while we write gives EPIPE, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    memset(&pr, 0, sizeof(pr));
    pr.port = free_port();
    snprintf(pr.sockdir, sizeof(pr.sockdir), "/tmp/px_conn_test_XXXXXX");
    if (!mkdtemp(pr.sockdir))
        abort();
    char ini[8192];
    snprintf(ini, sizeof(ini),
             "[proxy]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir = %s\n"
             "admin_port = 0\nlog_level = %s\nbuffer_size = 4096\n%s\n"
             "[upstream]\nauth = password\nhost = %s\nport = %d\nsslmode = %s\n"
             "sslrootcert = %s\npassword = upstream-secret\nconnect_timeout = 3\n",
             pr.port, pr.sockdir, getenv("PX_TEST_LOG") ? getenv("PX_TEST_LOG") : "error",
             extra_ini ? extra_ini : "", use_tls ? "localhost" : "127.0.0.1", up.port,
             use_tls ? "verify-full" : "disable", use_tls ? px_test_certs()->ca : "system");
    /* A real file, so that a reload has something to read again. */
    snprintf(pr.ini_path, sizeof(pr.ini_path), "%s/proxy.ini", pr.sockdir);
    FILE *f = fopen(pr.ini_path, "w");
    ASSERT(f);
    fputs(ini, f);
    fclose(f);
    char err[4096];
    cfg_load_opts_t opts = {.path = pr.ini_path, .validate = px_cfg_validate};
    if (cfg_load(&opts, &pr.cfg, err, sizeof(err)) != 0)
        PX_FAIL("config: %s", err);
    px_log_setup((px_log_level_t)pr.cfg->proxy.log_level, PX_LOG_TEXT, NULL);
    ASSERT_OK(uv_loop_init(&pr.loop));
    err[0] = 0;
    if (px_proxy_new(&pr.loop, pr.cfg, pr.ini_path, &pr.px, err, sizeof(err)) != 0)
        PX_FAIL("px_proxy_new: %s", err);
    if (px_proxy_listen(pr.px, err, sizeof(err)) != 0)
        PX_FAIL("listen: %s", err);
    ASSERT_EQ(px_proxy_port(pr.px), pr.port);
    ASSERT_OK(uv_async_init(&pr.loop, &pr.stop_async, on_stop_async));
    pthread_create(&pr.thread, NULL, proxy_main, NULL);
}

/* Stops the proxy (drain or fast), waits for the loop to run out of handles, and checks that
 * nothing leaked. */
static void proxy_stop(bool fast)
{
    atomic_store(&pr.stop_mode, fast ? 2 : 1);
    uv_async_send(&pr.stop_async);
    pthread_join(pr.thread, NULL);
    px_proxy_stats_t st;
    px_proxy_get_stats(pr.px, &st);
    px_proxy_free(pr.px);
    cfg_unref(pr.cfg);
    unlink(pr.ini_path);
    rmdir(pr.sockdir);
    px_test_loop_close(&pr.loop);
    ASSERT_EQ(st.clients_login + st.clients_active + st.clients_closing, 0);
}

/* Logs in through the proxy and reads up to ReadyForQuery. Returns the fd, or fails the test.
 * The BackendKeyData the client got is stored in pid and key when given. */
static int login(const char *user, uint32_t *pid, uint32_t *key)
{
    int fd = tcp_connect(pr.port);
    ASSERT(fd >= 0);
    const char *kv[] = {"user", user, "database", "dev", "application_name", "px_test", NULL};
    uint8_t pkt[512];
    size_t n = startup_packet(pkt, 196608u, kv);
    ASSERT(send_all(fd, pkt, n));
    bool auth_ok = false;
    for (;;) {
        msg_t m;
        int r = read_msg(fd, &m, IO_TIMEOUT_MS);
        if (r != 1)
            PX_FAIL("login: connection ended (%d)", r);
        if (m.type == 'E')
            PX_FAIL("login: error %s %s", err_field(&m, 'C'), err_field(&m, 'M'));
        if (m.type == 'R') {
            ASSERT_EQ(m.len, 4);
            ASSERT_EQ(px_get_u32(m.body), 0);
            auth_ok = true;
        }
        if (m.type == 'K') {
            ASSERT(auth_ok);
            if (pid)
                *pid = px_get_u32(m.body);
            if (key)
                *key = px_get_u32(m.body + 4);
        }
        uint8_t t = m.type;
        msg_free(&m);
        if (t == 'Z')
            break;
    }
    ASSERT(auth_ok);
    return fd;
}

/* Runs a simple query and returns the CommandComplete tag (static buffer) or the SQLSTATE of
 * an error as "E:<code>". */
static const char *collect(int fd)
{
    static char result[128];
    result[0] = 0;
    for (;;) {
        msg_t m;
        int r = read_msg(fd, &m, IO_TIMEOUT_MS);
        if (r != 1) {
            snprintf(result, sizeof(result), r == 0 ? "EOF" : "TIMEOUT");
            return result;
        }
        if (m.type == 'C')
            snprintf(result, sizeof(result), "%s", (char *)m.body);
        if (m.type == 'E')
            snprintf(result, sizeof(result), "E:%s", err_field(&m, 'C'));
        uint8_t t = m.type;
        msg_free(&m);
        if (t == 'Z')
            return result;
    }
}

static const char *query(int fd, const char *sql)
{
    ASSERT(send_query(fd, sql));
    return collect(fd);
}

/* Expects an ErrorResponse with this SQLSTATE as the next message, then the close. */
static void expect_fatal(int fd, const char *sqlstate, const char *message_part)
{
    msg_t m;
    for (;;) {
        int r = read_msg(fd, &m, IO_TIMEOUT_MS);
        if (r != 1)
            PX_FAIL("expected an error %s, got %s", sqlstate, r == 0 ? "EOF" : "timeout");
        if (m.type == 'E')
            break;
        /* NegotiateProtocolVersion and 'N' answers may come first. */
        msg_free(&m);
    }
    const char *code = err_field(&m, 'C');
    char msgtext[256];
    snprintf(msgtext, sizeof(msgtext), "%s", err_field(&m, 'M'));
    bool sev = strcmp(err_field(&m, 'S'), "FATAL") == 0;
    char codebuf[8];
    snprintf(codebuf, sizeof(codebuf), "%s", code);
    msg_free(&m);
    ASSERT_STR_EQ(codebuf, sqlstate);
    if (message_part && !strstr(msgtext, message_part))
        PX_FAIL("message \"%s\" lacks \"%s\"", msgtext, message_part);
    ASSERT(sev);
    ASSERT(wait_closed(fd, IO_TIMEOUT_MS));
}

/* A normal client still gets served. */
static void assert_still_serving(void)
{
    int fd = login("healthy", NULL, NULL);
    ASSERT_STR_EQ(query(fd, "select 1"), "ECHO 8");
    close(fd);
}

/* ------------------------------------------------------------------------------------------ */

static void case_login_query_and_terminate(void)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL);
    uint32_t pid = 0, key = 0;
    int fd = login("alice", &pid, &key);
    /* The proxy's own key, not upstream's. */
    ASSERT_NE(pid, UP_PID);
    ASSERT_NE(key, UP_KEY);
    pthread_mutex_lock(&up.mu);
    ASSERT_STR_EQ(up.startup_user, "alice");
    ASSERT_STR_EQ(up.startup_db, "dev");
    ASSERT_STR_EQ(up.startup_app, "px_test");
    ASSERT_STR_EQ(up.password, "upstream-secret");
    pthread_mutex_unlock(&up.mu);
    ASSERT_STR_EQ(query(fd, "hello"), "ECHO 5");
    ASSERT(send_msg(fd, 'X', NULL, 0));
    ASSERT(wait_closed(fd, IO_TIMEOUT_MS));
    close(fd);
    usleep(50000);
    pthread_mutex_lock(&up.mu);
    ASSERT_STR_EQ(up.types, "QX"); /* Terminate was forwarded, exactly once */
    pthread_mutex_unlock(&up.mu);
    proxy_stop(true);
    up_stop();
}

PX_TEST(ssl_and_gssenc_requests_answered_n)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL);
    int fd = tcp_connect(pr.port);
    uint8_t req[8];
    px_put_u32(req, 8);
    px_put_u32(req + 4, 80877104u); /* GSSENCRequest */
    ASSERT(send_all(fd, req, 8));
    uint8_t b;
    ASSERT_EQ(recv_all(fd, &b, 1, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(b, 'N');
    px_put_u32(req + 4, 80877103u); /* SSLRequest */
    ASSERT(send_all(fd, req, 8));
    ASSERT_EQ(recv_all(fd, &b, 1, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(b, 'N');
    const char *kv[] = {"user", "bob", NULL};
    uint8_t pkt[128];
    size_t n = startup_packet(pkt, 196608u, kv);
    ASSERT(send_all(fd, pkt, n));
    msg_t m;
    ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(m.type, 'R');
    msg_free(&m);
    close(fd);
    pthread_mutex_lock(&up.mu);
    ASSERT_STR_EQ(up.startup_db, "bob"); /* database defaults to the user */
    pthread_mutex_unlock(&up.mu);
    /* A second SSLRequest is refused as PostgreSQL does. */
    fd = tcp_connect(pr.port);
    px_put_u32(req + 4, 80877103u);
    ASSERT(send_all(fd, req, 8));
    ASSERT_EQ(recv_all(fd, &b, 1, IO_TIMEOUT_MS), 1);
    ASSERT(send_all(fd, req, 8));
    expect_fatal(fd, "0A000", "unsupported frontend protocol 1234.5679");
    close(fd);
    proxy_stop(true);
    up_stop();
}

PX_TEST(garbage_after_sslrequest)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL);
    int fd = tcp_connect(pr.port);
    uint8_t req[20];
    px_put_u32(req, 8);
    px_put_u32(req + 4, 80877103u);
    memcpy(req + 8, "GARBAGEGARBA", 12);
    ASSERT(send_all(fd, req, 20));
    expect_fatal(fd, "08P01", "received unencrypted data after SSL request");
    close(fd);
    assert_still_serving();
    proxy_stop(true);
    up_stop();
}

PX_TEST(startup_errors)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL);
    uint8_t pkt[256];
    /* Length below 8. */
    int fd = tcp_connect(pr.port);
    px_put_u32(pkt, 4);
    ASSERT(send_all(fd, pkt, 4));
    expect_fatal(fd, "08P01", "invalid length of startup packet");
    close(fd);
    /* Length above 10,000 (refused before the body is read). */
    fd = tcp_connect(pr.port);
    px_put_u32(pkt, 10001);
    px_put_u32(pkt + 4, 196608u);
    ASSERT(send_all(fd, pkt, 8));
    expect_fatal(fd, "08P01", "invalid length of startup packet");
    close(fd);
    /* Protocol 2.0. */
    fd = tcp_connect(pr.port);
    const char *kv[] = {"user", "a", NULL};
    size_t n = startup_packet(pkt, 2u << 16, kv);
    ASSERT(send_all(fd, pkt, n));
    expect_fatal(fd, "0A000", "unsupported frontend protocol 2.0: server supports 3.0 to 3.0");
    close(fd);
    /* No user. */
    fd = tcp_connect(pr.port);
    const char *nouser[] = {"database", "d", NULL};
    n = startup_packet(pkt, 196608u, nouser);
    ASSERT(send_all(fd, pkt, n));
    expect_fatal(fd, "28000", "no PostgreSQL user name specified");
    close(fd);
    /* Bad layout. */
    fd = tcp_connect(pr.port);
    n = startup_packet(pkt, 196608u, kv);
    pkt[n - 1] = 'x';
    ASSERT(send_all(fd, pkt, n));
    expect_fatal(fd, "08P01", "invalid startup packet layout");
    close(fd);
    /* The largest startup packet PostgreSQL takes (10,000 bytes) works even though the
     * configured buffer_size is 4096: the buffer is never smaller than a startup packet. */
    fd = tcp_connect(pr.port);
    static uint8_t maxpkt[10000];
    size_t off = 8;
    memcpy(maxpkt + off, "user\0maxi\0options\0", 18);
    off += 18;
    memset(maxpkt + off, 'x', sizeof(maxpkt) - off - 2);
    maxpkt[sizeof(maxpkt) - 2] = 0;
    maxpkt[sizeof(maxpkt) - 1] = 0;
    px_put_u32(maxpkt, sizeof(maxpkt));
    px_put_u32(maxpkt + 4, 196608u);
    ASSERT(send_all(fd, maxpkt, sizeof(maxpkt)));
    msg_t am;
    ASSERT_EQ(read_msg(fd, &am, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(am.type, 'R');
    msg_free(&am);
    close(fd);
    /* A truncated startup packet followed by the client going away: no crash, no leak. */
    fd = tcp_connect(pr.port);
    n = startup_packet(pkt, 196608u, kv);
    ASSERT(send_all(fd, pkt, n - 3));
    close(fd);
    /* TLS sent straight away (direct TLS): garbage as a startup packet. */
    fd = tcp_connect(pr.port);
    static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x00, 0xf5, 0x01, 0x00, 0x00, 0xf1};
    ASSERT(send_all(fd, hello, sizeof(hello)));
    expect_fatal(fd, "08P01", "invalid length of startup packet");
    close(fd);
    assert_still_serving();
    proxy_stop(true);
    up_stop();
}

PX_TEST(negotiate_protocol_version)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL);
    int fd = tcp_connect(pr.port);
    const char *kv[] = {"user", "carol", "_pq_.compression", "lz4", "_pq_.x", "1", NULL};
    uint8_t pkt[256];
    size_t n = startup_packet(pkt, 196608u | 2u, kv);
    ASSERT(send_all(fd, pkt, n));
    msg_t m;
    ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(m.type, 'v');
    ASSERT_EQ(px_get_u32(m.body), 196608u);
    ASSERT_EQ(px_get_u32(m.body + 4), 2);
    ASSERT_STR_EQ((char *)m.body + 8, "_pq_.compression");
    msg_free(&m);
    ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(m.type, 'R');
    msg_free(&m);
    close(fd);
    pthread_mutex_lock(&up.mu);
    ASSERT(!up.saw_pq_option); /* stripped */
    pthread_mutex_unlock(&up.mu);
    proxy_stop(true);
    up_stop();
}

PX_TEST(upstream_login_refused_passes_its_error)
{
    up_start(UP_LOGIN_REJECT);
    proxy_start(NULL);
    int fd = tcp_connect(pr.port);
    const char *kv[] = {"user", "dave", NULL};
    uint8_t pkt[128];
    size_t n = startup_packet(pkt, 196608u, kv);
    ASSERT(send_all(fd, pkt, n));
    /* The client never sees AuthenticationOk; it gets upstream's own error. */
    expect_fatal(fd, "28P01", "password authentication failed");
    close(fd);
    proxy_stop(true);
    up_stop();
}

PX_TEST(upstream_unreachable_is_08001)
{
    up_start(UP_LOGIN_CLEARTEXT);
    int saved = up.port;
    up.port = free_port(); /* nothing listens there */
    proxy_start(NULL);
    up.port = saved;
    int fd = tcp_connect(pr.port);
    const char *kv[] = {"user", "erin", NULL};
    uint8_t pkt[128];
    size_t n = startup_packet(pkt, 196608u, kv);
    uint64_t t0 = px_now_mono_ms();
    ASSERT(send_all(fd, pkt, n));
    expect_fatal(fd, "08001", "connection refused");
    ASSERT(px_now_mono_ms() - t0 < 3000);
    close(fd);
    proxy_stop(true);
    up_stop();
}

static void case_large_messages_stream_through(void)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL); /* 4 KiB buffers */
    int fd = login("frank", NULL, NULL);
    /* A 3 MB DataRow through a 4 KiB buffer. */
    ASSERT(send_query(fd, "big 3000000"));
    msg_t m;
    ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(m.type, 'D');
    ASSERT_EQ(m.len, 3000006);
    bool intact = true;
    for (size_t i = 0; i < 3000000; i++)
        if (m.body[6 + i] != (uint8_t)('a' + i % 26))
            intact = false;
    msg_free(&m);
    ASSERT(intact);
    ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(m.type, 'C');
    msg_free(&m);
    ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(m.type, 'Z');
    msg_free(&m);
    /* A 1 MB Query the other way (CopyData-sized payloads work the same). */
    size_t qn = 1000000;
    char *q = malloc(qn + 1);
    memset(q, 'q', qn);
    q[qn] = 0;
    const char *tag = query(fd, q);
    free(q);
    ASSERT_STR_EQ(tag, "ECHO 1000000");
    close(fd);
    proxy_stop(true);
    up_stop();
}

static void case_pipelining_and_backpressure(void)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL);
    int fd = login("grace", NULL, NULL);
    /* Ten queries in one write; answers come back in order. */
    char batch[1024];
    size_t bl = 0;
    for (int i = 0; i < 10; i++) {
        char q[32];
        int ql = snprintf(q, sizeof(q), "q%*d", i + 1, i);
        batch[bl] = 'Q';
        px_put_u32((uint8_t *)batch + bl + 1, (uint32_t)(4 + ql + 1));
        memcpy(batch + bl + 5, q, (size_t)ql + 1);
        bl += 5 + (size_t)ql + 1;
    }
    ASSERT(send_all(fd, batch, bl));
    for (int i = 0; i < 10; i++) {
        msg_t m;
        ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
        ASSERT_EQ(m.type, 'C');
        char want[32];
        snprintf(want, sizeof(want), "ECHO %d", i + 2);
        ASSERT_STR_EQ((char *)m.body, want);
        msg_free(&m);
        ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
        ASSERT_EQ(m.type, 'Z');
        msg_free(&m);
    }
    /* 300,000 rows while the client does not read for a while: the proxy stops reading the
     * server instead of buffering, then everything arrives. */
    ASSERT(send_query(fd, "rows 300000"));
    usleep(300000);
    px_proxy_stats_t st;
    px_proxy_get_stats(pr.px, &st);
    ASSERT(st.read_buffers <= 8);
    long rows = 0;
    for (;;) {
        msg_t m;
        ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
        uint8_t t = m.type;
        if (t == 'D') {
            char want[32];
            snprintf(want, sizeof(want), "%ld", rows);
            if (m.len != 6 + strlen(want) || memcmp(m.body + 6, want, strlen(want)) != 0)
                PX_FAIL("row %ld corrupted", rows);
            rows++;
        } else if (t == 'C') {
            ASSERT_STR_EQ((char *)m.body, "SELECT 300000");
        }
        msg_free(&m);
        if (t == 'Z')
            break;
    }
    ASSERT_EQ(rows, 300000);
    close(fd);
    proxy_stop(true);
    up_stop();
}

PX_TEST(malformed_client_messages)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL);
    /* Unknown message type: 08P01 and close; the server never sees it. */
    int fd = login("henry", NULL, NULL);
    ASSERT(send_msg(fd, 'Z', "I", 1));
    expect_fatal(fd, "08P01", "invalid frontend message type 90");
    close(fd);
    usleep(50000);
    pthread_mutex_lock(&up.mu);
    ASSERT(!strchr(up.types, 'Z'));
    pthread_mutex_unlock(&up.mu);
    /* A password message after login is just as invalid. */
    fd = login("henry", NULL, NULL);
    ASSERT(send_msg(fd, 'p', "x", 2));
    expect_fatal(fd, "08P01", "invalid frontend message type 112");
    close(fd);
    /* Length word below 4. */
    fd = login("henry", NULL, NULL);
    uint8_t bad[5] = {'Q', 0, 0, 0, 3};
    ASSERT(send_all(fd, bad, 5));
    expect_fatal(fd, "08P01", "invalid message length");
    close(fd);
    /* A huge length on a message type PostgreSQL bounds at 10,000 bytes. */
    fd = login("henry", NULL, NULL);
    uint8_t big_sync[5] = {'S', 0, 0x10, 0, 0};
    ASSERT(send_all(fd, big_sync, 5));
    expect_fatal(fd, "08P01", "invalid message length");
    close(fd);
    /* A length beyond 1 GB. */
    fd = login("henry", NULL, NULL);
    uint8_t huge[5] = {'Q', 0x7f, 0xff, 0xff, 0xff};
    ASSERT(send_all(fd, huge, 5));
    expect_fatal(fd, "08P01", "invalid message length");
    close(fd);
    /* Valid messages before the bad one are still forwarded. */
    fd = login("henry", NULL, NULL);
    uint8_t mix[32];
    size_t ml = 0;
    mix[ml++] = 'H';
    px_put_u32(mix + ml, 4);
    ml += 4;
    mix[ml++] = 0x01;
    px_put_u32(mix + ml, 4);
    ml += 4;
    ASSERT(send_all(fd, mix, ml));
    expect_fatal(fd, "08P01", "invalid frontend message type 1");
    close(fd);
    usleep(50000);
    pthread_mutex_lock(&up.mu);
    ASSERT_STR_EQ(up.types, "HX"); /* Flush forwarded, then the proxy's own Terminate */
    pthread_mutex_unlock(&up.mu);
    /* The client vanishes in the middle of a message. */
    fd = login("henry", NULL, NULL);
    uint8_t partial[8] = {'Q', 0, 0, 1, 0, 's', 'e', 'l'};
    ASSERT(send_all(fd, partial, sizeof(partial)));
    close(fd);
    assert_still_serving();
    proxy_stop(true);
    up_stop();
}

static void case_upstream_loss(void)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL);
    /* Between messages: the client is told, as libpq would put it. */
    int fd = login("ivan", NULL, NULL);
    ASSERT(send_query(fd, "die"));
    expect_fatal(fd, "08006", "server closed the connection unexpectedly");
    close(fd);
    /* In the middle of a message: nothing can be appended, the connection just closes. */
    fd = login("ivan", NULL, NULL);
    ASSERT(send_query(fd, "die_mid"));
    uint8_t h[5];
    ASSERT_EQ(recv_all(fd, h, 5, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(h[0], 'D');
    /* Exactly the rest of the cut message arrives, then EOF: no ErrorResponse after it. */
    uint8_t rest[64];
    ssize_t got = 0;
    for (;;) {
        ssize_t r = recv(fd, rest, sizeof(rest), 0);
        if (r <= 0)
            break;
        got += r;
    }
    ASSERT_EQ(got, 6 + 7);
    close(fd);
    /* Upstream's own FATAL: passed on, and no second error after it. */
    fd = login("ivan", NULL, NULL);
    ASSERT(send_query(fd, "fatal"));
    expect_fatal(fd, "57P01", "administrator command");
    close(fd);
    assert_still_serving();
    proxy_stop(true);
    up_stop();
}

static void case_cancel_request_is_mapped(void)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL);
    uint32_t pid, key;
    int fd = login("judy", &pid, &key);
    ASSERT(send_query(fd, "sleep"));
    for (int i = 0; i < 200 && atomic_load(&up.sleeping) == 0; i++)
        usleep(10000);
    ASSERT_EQ(atomic_load(&up.sleeping), 1);
    /* A wrong key is ignored silently. */
    int cfd = tcp_connect(pr.port);
    uint8_t cr[16];
    px_put_u32(cr, 16);
    px_put_u32(cr + 4, 80877102u);
    px_put_u32(cr + 8, pid);
    px_put_u32(cr + 12, key ^ 1);
    ASSERT(send_all(cfd, cr, 16));
    ASSERT(wait_closed(cfd, IO_TIMEOUT_MS));
    close(cfd);
    usleep(100000);
    pthread_mutex_lock(&up.mu);
    ASSERT_EQ(up.cancels, 0);
    pthread_mutex_unlock(&up.mu);
    /* The right key: upstream gets its own key on a new connection. */
    cfd = tcp_connect(pr.port);
    px_put_u32(cr + 12, key);
    ASSERT(send_all(cfd, cr, 16));
    ASSERT(wait_closed(cfd, IO_TIMEOUT_MS));
    close(cfd);
    ASSERT_STR_EQ(collect(fd), "E:57014"); /* the sleeping query was cancelled */
    pthread_mutex_lock(&up.mu);
    ASSERT_EQ(up.cancels, 1);
    ASSERT_EQ(up.cancel_pid, UP_PID);
    ASSERT_EQ(up.cancel_key, UP_KEY);
    pthread_mutex_unlock(&up.mu);
    close(fd);
    proxy_stop(true);
    up_stop();
}

PX_TEST(unix_socket)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s/.s.PGSQL.%d", pr.sockdir, pr.port);
    ASSERT_OK(connect(fd, (struct sockaddr *)&a, sizeof(a)));
    const char *kv[] = {"user", "kim", NULL};
    uint8_t pkt[128];
    size_t n = startup_packet(pkt, 196608u, kv);
    ASSERT(send_all(fd, pkt, n));
    msg_t m;
    ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(m.type, 'R');
    msg_free(&m);
    close(fd);
    proxy_stop(true);
    /* The socket file is removed at shutdown. */
    ASSERT(access(a.sun_path, F_OK) != 0);
    up_stop();
}

PX_TEST(max_client_conn)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start("max_client_conn = 2");
    int a = login("l1", NULL, NULL);
    int b = login("l2", NULL, NULL);
    int c = tcp_connect(pr.port);
    const char *kv[] = {"user", "l3", NULL};
    uint8_t pkt[128];
    size_t n = startup_packet(pkt, 196608u, kv);
    ASSERT(send_all(c, pkt, n));
    expect_fatal(c, "53300", "sorry, too many clients already");
    close(c);
    close(a);
    usleep(100000);
    int d = login("l4", NULL, NULL);
    close(b);
    close(d);
    proxy_stop(true);
    up_stop();
}

PX_TEST(shutdown_drains_idle_sessions)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL);
    int fd = login("mia", NULL, NULL);
    int busy = login("nick", NULL, NULL);
    ASSERT(send_query(busy, "sleep"));
    for (int i = 0; i < 200 && atomic_load(&up.sleeping) == 0; i++)
        usleep(10000);
    atomic_store(&pr.stop_mode, 1);
    uv_async_send(&pr.stop_async);
    /* The idle session is told at once; the busy one finishes its query first. */
    expect_fatal(fd, "57P01", "terminating connection due to administrator command");
    close(fd);
    usleep(100000);
    ASSERT_EQ(atomic_load(&up.sleeping), 1); /* still running */
    atomic_store(&up.cancel_flag, true);     /* let it finish (with an error) */
    ASSERT_STR_EQ(collect(busy), "E:57014");
    expect_fatal(busy, "57P01", "administrator command");
    close(busy);
    pthread_join(pr.thread, NULL);
    px_proxy_stats_t st;
    px_proxy_get_stats(pr.px, &st);
    px_proxy_free(pr.px);
    cfg_unref(pr.cfg);
    unlink(pr.ini_path);
    rmdir(pr.sockdir);
    px_test_loop_close(&pr.loop);
    ASSERT(st.shutting_down);
    up_stop();
}

/* ------------------------------------------------------------------------------------------ */
/* COPY/UNLOAD interception.                                                                  */

#define ROLE  "arn:aws:iam::123456789012:role/RedshiftCopy"
#define OTHER "arn:aws:iam::123456789012:role/Other"

static bool send_parse(int fd, const char *name, const char *sql, uint16_t nparams)
{
    uint8_t buf[16384];
    size_t n = 0;
    memcpy(buf, name, strlen(name) + 1);
    n += strlen(name) + 1;
    memcpy(buf + n, sql, strlen(sql) + 1);
    n += strlen(sql) + 1;
    px_put_u16(buf + n, nparams);
    n += 2;
    for (uint16_t i = 0; i < nparams; i++) {
        px_put_u32(buf + n, 25);
        n += 4;
    }
    return send_msg(fd, 'P', buf, n);
}

/* Reads until ReadyForQuery; returns the message types seen, and the first error's SQLSTATE. */
static void collect_types(int fd, char *types, size_t cap, char *sqlstate)
{
    size_t n = 0;
    sqlstate[0] = 0;
    for (;;) {
        msg_t m;
        ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
        if (n + 1 < cap)
            types[n++] = (char)m.type;
        if (m.type == 'E' && !sqlstate[0])
            snprintf(sqlstate, 6, "%s", err_field(&m, 'C'));
        uint8_t t = m.type;
        msg_free(&m);
        if (t == 'Z')
            break;
    }
    types[n] = 0;
}

static void case_copy_unload_rewriting(void)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start("max_statement_size = 8192\n[s3]\naws_iam_role = " ROLE "\n"
                "allowed_iam_roles = " ROLE "\ntempdir = s3://rsproxy-test/tmp/\n");
    int fd = login("olga", NULL, NULL);
    char *q;

    /* Other statements pass byte for byte. */
    ASSERT_STR_EQ(query(fd, "select 'copy' as x"), "ECHO 18");
    q = up_get(&up.last_query);
    ASSERT_STR_EQ(q, "select 'copy' as x");
    free(q);

    /* A COPY without authorization gets the role. */
    ASSERT_STR_EQ(query(fd, "copy t from 's3://b/data.csv' csv"), "ECHO 88"); /* rewritten length */
    q = up_get(&up.last_query);
    ASSERT_STR_EQ(q, "copy t from 's3://b/data.csv' IAM_ROLE '" ROLE "' csv");
    free(q);

    /* A role outside allowed_iam_roles: refused with 42501; the session goes on. */
    ASSERT_STR_EQ(query(fd, "copy t from 's3://b/k' iam_role '" OTHER "'"), "E:42501");
    q = up_get(&up.last_query);
    ASSERT(strncmp(q, "RSPROXY_REFUSED_", 16) == 0);
    free(q);
    ASSERT_STR_EQ(query(fd, "select 2"), "ECHO 8");

    /* A COPY larger than the 4 KiB read buffer is collected and rewritten whole. */
    char big[7000];
    int bl = snprintf(big, sizeof(big), "copy t from 's3://b/k' csv /* ");
    memset(big + bl, 'c', 6000);
    strcpy(big + bl + 6000, " */");
    const char *tag = query(fd, big);
    ASSERT(strncmp(tag, "ECHO ", 5) == 0);
    q = up_get(&up.last_query);
    ASSERT(strstr(q, "'s3://b/k' IAM_ROLE '" ROLE "' csv /* cccc"));
    ASSERT_EQ(strlen(q), strlen(big) + strlen(" IAM_ROLE '" ROLE "'"));
    free(q);

    /* Beyond max_statement_size: refused (54000), the rest of it discarded. */
    char *huge = malloc(20000);
    int hl = snprintf(huge, 20000, "copy t from 's3://b/k' /* ");
    memset(huge + hl, 'h', 15000);
    strcpy(huge + hl + 15000, " */");
    ASSERT_STR_EQ(query(fd, huge), "E:54000");
    free(huge);
    ASSERT_STR_EQ(query(fd, "select 3"), "ECHO 8");

    /* A large non-COPY statement: checked (policy keys are set) and passed on unchanged. */
    char sel[7000];
    int sl = snprintf(sel, sizeof(sel), "select '");
    memset(sel + sl, 's', 6000);
    strcpy(sel + sl + 6000, "'");
    ASSERT_STR_EQ(query(fd, sel), "ECHO 6009");
    q = up_get(&up.last_query);
    ASSERT_STR_EQ(q, sel);
    free(q);

    /* Parse: same statement name and parameter types, rewritten SQL. */
    char types[32], state[8];
    ASSERT(send_parse(fd, "s1", "unload ('select 1') to 'exports/t_'", 2));
    ASSERT(send_msg(fd, 'S', NULL, 0));
    collect_types(fd, types, sizeof(types), state);
    ASSERT_STR_EQ(types, "1Z");
    q = up_get(&up.last_parse);
    ASSERT_STR_EQ(q, "s1|unload ('select 1') to 's3://rsproxy-test/tmp/exports/t_' IAM_ROLE '" ROLE
                     "'");
    free(q);
    pthread_mutex_lock(&up.mu);
    ASSERT_EQ(up.last_parse_tail, 2 + 2 * 4);
    pthread_mutex_unlock(&up.mu);

    /* A refused Parse: the server skips to Sync exactly as if it had refused it itself. */
    ASSERT(send_parse(fd, "s2", "copy t from 's3://b/k' iam_role '" OTHER "'", 1));
    ASSERT(send_msg(fd, 'B', "\0s2\0\0\0\0\0\0\0", 10));
    ASSERT(send_msg(fd, 'E', "\0\0\0\0\0", 5));
    ASSERT(send_msg(fd, 'S', NULL, 0));
    collect_types(fd, types, sizeof(types), state);
    ASSERT_STR_EQ(types, "EZ");
    ASSERT_STR_EQ(state, "42501");
    q = up_get(&up.last_parse);
    ASSERT(strncmp(q, "s2|RSPROXY_REFUSED_", 19) == 0);
    free(q);
    ASSERT_STR_EQ(query(fd, "select 4"), "ECHO 8");

    px_proxy_stats_t st;
    px_proxy_get_stats(pr.px, &st);
    ASSERT_EQ(st.statements_refused, 3);
    ASSERT(st.statements_rewritten >= 3);
    close(fd);
    proxy_stop(true);
    up_stop();
}

PX_TEST(rewriting_off_leaves_copy_alone)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start(NULL);
    int fd = login("pat", NULL, NULL);
    ASSERT_STR_EQ(query(fd, "copy t from 's3://b/k' csv"), "ECHO 26");
    char *q = up_get(&up.last_query);
    ASSERT_STR_EQ(q, "copy t from 's3://b/k' csv");
    free(q);
    close(fd);
    proxy_stop(true);
    up_stop();
}

/* ------------------------------------------------------------------------------------------ */
/* client_auth = scram-sha-256 against an auth file.                                          */

#include "auth_pg.h"

static char authfile_path[128];

static void write_authfile(void)
{
    snprintf(authfile_path, sizeof(authfile_path), "/tmp/px_conn_auth_XXXXXX");
    int fd = mkstemp(authfile_path);
    ASSERT(fd >= 0);
    px_dbuf_t v;
    px_dbuf_init(&v, 4096);
    ASSERT_OK(
        auth_scram_make_verifier("verysecret", (const uint8_t *)"0123456789abcdef", 16, 4096, &v));
    char text[1024];
    int n = snprintf(text, sizeof(text),
                     "; rsproxy test users\n\"sam\" \"plainpw\"\n\"vera\" \"%.*s\"\n", (int)v.len,
                     (const char *)v.data);
    px_dbuf_free(&v);
    ASSERT(write(fd, text, (size_t)n) == n);
    close(fd);
}

/* Runs the client side of SCRAM; returns the SQLSTATE of a FATAL error, or "" when the proxy
 * answered AuthenticationOk (then *fd_out stays open for queries). */
static const char *scram_login(const char *user, const char *password, int *fd_out)
{
    static char state[8];
    state[0] = 0;
    int fd = tcp_connect(pr.port);
    *fd_out = fd;
    const char *kv[] = {"user", user, NULL};
    uint8_t pkt[128];
    size_t n = startup_packet(pkt, 196608u, kv);
    ASSERT(send_all(fd, pkt, n));
    auth_scram_client_t *sc = NULL;
    ASSERT_OK(auth_scram_client_new(password, NULL, &sc));
    px_dbuf_t out;
    px_dbuf_init(&out, 65536);
    for (;;) {
        msg_t m;
        ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
        if (m.type == 'E') {
            snprintf(state, sizeof(state), "%s", err_field(&m, 'C'));
            msg_free(&m);
            break;
        }
        ASSERT_EQ(m.type, 'R');
        uint32_t code = px_get_u32(m.body);
        px_dbuf_reset(&out);
        if (code == AUTH_REQ_SASL) {
            ASSERT_OK(auth_sasl_choose(m.body + 4, m.len - 4));
            ASSERT_OK(auth_scram_client_initial(sc, &out));
            ASSERT(send_msg(fd, 'p', out.data, out.len));
        } else if (code == AUTH_REQ_SASL_CONTINUE) {
            ASSERT_OK(auth_scram_client_continue(sc, m.body + 4, m.len - 4, &out));
            ASSERT(send_msg(fd, 'p', out.data, out.len));
        } else if (code == AUTH_REQ_SASL_FINAL) {
            /* The proxy proves it knows the verifier too. */
            ASSERT_OK(auth_scram_client_finish(sc, m.body + 4, m.len - 4));
        } else {
            ASSERT_EQ(code, AUTH_REQ_OK);
            ASSERT(auth_scram_client_verified(sc));
            msg_free(&m);
            break;
        }
        msg_free(&m);
    }
    px_dbuf_free_secret(&out);
    auth_scram_client_free(sc);
    return state;
}

PX_TEST(scram_client_auth)
{
    up_start(UP_LOGIN_CLEARTEXT);
    write_authfile();
    char extra[256];
    snprintf(extra, sizeof(extra), "client_auth = scram-sha-256\nauth_file = %s\n", authfile_path);
    proxy_start(extra);
    int fd;
    /* A plaintext entry and a SCRAM verifier entry both work. */
    ASSERT_STR_EQ(scram_login("sam", "plainpw", &fd), "");
    ASSERT_STR_EQ(collect(fd), ""); /* ParameterStatus ... ReadyForQuery */
    ASSERT_STR_EQ(query(fd, "select 1"), "ECHO 8");
    close(fd);
    ASSERT_STR_EQ(scram_login("vera", "verysecret", &fd), "");
    close(fd);
    /* A wrong password and an unknown user look the same: 28P01 after the whole exchange. */
    ASSERT_STR_EQ(scram_login("vera", "wrong", &fd), "28P01");
    ASSERT(wait_closed(fd, IO_TIMEOUT_MS));
    close(fd);
    ASSERT_STR_EQ(scram_login("nobody", "x", &fd), "28P01");
    close(fd);
    /* Something other than a SASL response during authentication. */
    fd = tcp_connect(pr.port);
    const char *kv[] = {"user", "sam", NULL};
    uint8_t pkt[128];
    size_t n = startup_packet(pkt, 196608u, kv);
    ASSERT(send_all(fd, pkt, n));
    msg_t m;
    ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(m.type, 'R');
    msg_free(&m);
    ASSERT(send_query(fd, "select 1"));
    expect_fatal(fd, "08P01", "expected SASL response");
    close(fd);
    proxy_stop(true);
    unlink(authfile_path);
    up_stop();
}

PX_TEST(login_query_and_terminate)
{
    use_tls = false;
    case_login_query_and_terminate();
}

PX_TEST(tls_login_query_and_terminate)
{
    use_tls = true;
    case_login_query_and_terminate();
    use_tls = false;
}

PX_TEST(large_messages_stream_through)
{
    use_tls = false;
    case_large_messages_stream_through();
}

PX_TEST(tls_large_messages_stream_through)
{
    use_tls = true;
    case_large_messages_stream_through();
    use_tls = false;
}

PX_TEST(pipelining_and_backpressure)
{
    use_tls = false;
    case_pipelining_and_backpressure();
}

PX_TEST(tls_pipelining_and_backpressure)
{
    use_tls = true;
    case_pipelining_and_backpressure();
    use_tls = false;
}

PX_TEST(upstream_loss)
{
    use_tls = false;
    case_upstream_loss();
}

PX_TEST(tls_upstream_loss)
{
    use_tls = true;
    case_upstream_loss();
    use_tls = false;
}

PX_TEST(cancel_request_is_mapped)
{
    use_tls = false;
    case_cancel_request_is_mapped();
}

PX_TEST(tls_cancel_request_is_mapped)
{
    use_tls = true;
    case_cancel_request_is_mapped();
    use_tls = false;
}

PX_TEST(copy_unload_rewriting)
{
    use_tls = false;
    case_copy_unload_rewriting();
}

PX_TEST(tls_copy_unload_rewriting)
{
    use_tls = true;
    case_copy_unload_rewriting();
    use_tls = false;
}

PX_TEST(forward_s3_credentials)
{
    /* The proxy's own keys come from the AWS provider chain (here: the environment). */
    setenv("AWS_ACCESS_KEY_ID", "AKIAFORWARDTEST00001", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "forwarded/secret/key+value", 1);
    setenv("AWS_SESSION_TOKEN", "forwarded-session-token", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start("[s3]\nforward_s3_credentials = true\ntempdir = s3://rsproxy-test/tmp/\n");
    int fd = login("quinn", NULL, NULL);
    /* The keys are fetched right after startup; a COPY that comes first is refused (55000). */
    const char *r = "";
    for (int i = 0; i < 100; i++) {
        r = query(fd, "copy t from 'in/data.csv' csv");
        if (strcmp(r, "E:55000") != 0)
            break;
        usleep(20000);
    }
    ASSERT(strncmp(r, "ECHO ", 5) == 0);
    char *q = up_get(&up.last_query);
    ASSERT_STR_EQ(q, "copy t from 's3://rsproxy-test/tmp/in/data.csv' ACCESS_KEY_ID "
                     "'AKIAFORWARDTEST00001' SECRET_ACCESS_KEY 'forwarded/secret/key+value' "
                     "SESSION_TOKEN 'forwarded-session-token' csv");
    free(q);
    /* Statements that are not COPY/UNLOAD are untouched. */
    ASSERT_STR_EQ(query(fd, "select 'unload'"), "ECHO 15");
    close(fd);
    proxy_stop(true);
    up_stop();
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_REGION");
}

PX_TEST(reload_applies_reloadable_keys_only)
{
    up_start(UP_LOGIN_CLEARTEXT);
    proxy_start("max_client_conn = 1");
    int a = login("r1", NULL, NULL);
    int b = tcp_connect(pr.port);
    const char *kv[] = {"user", "r2", NULL};
    uint8_t pkt[128];
    size_t n = startup_packet(pkt, 196608u, kv);
    ASSERT(send_all(b, pkt, n));
    expect_fatal(b, "53300", "too many clients");
    close(b);
    /* Raise the limit (reloadable) and move the port (restart only), then reload. */
    FILE *f = fopen(pr.ini_path, "r");
    ASSERT(f);
    char text[8192];
    size_t tl = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[tl] = 0;
    char *m = strstr(text, "max_client_conn = 1");
    ASSERT(m);
    m[strlen("max_client_conn = ")] = '5';
    char port_line[64];
    snprintf(port_line, sizeof(port_line), "listen_port = %d", pr.port);
    char *pl = strstr(text, port_line);
    ASSERT(pl);
    memcpy(pl + strlen("listen_port = "), "1", 1); /* another port: ignored until restart */
    f = fopen(pr.ini_path, "w");
    fputs(text, f);
    fclose(f);
    atomic_store(&pr.stop_mode, 3);
    uv_async_send(&pr.stop_async);
    /* The reload runs on the thread pool; wait until a second session is admitted. */
    int c = -1;
    for (int i = 0; i < 100 && c < 0; i++) {
        usleep(20000);
        if (strcmp(px_proxy_cfg(pr.px)->proxy.listen_addr.items[0], "127.0.0.1") == 0 &&
            px_proxy_cfg(pr.px)->proxy.max_client_conn == 5)
            c = login("r3", NULL, NULL);
    }
    ASSERT(c >= 0);
    ASSERT_STR_EQ(query(c, "select 1"), "ECHO 8");
    /* The old port still serves: listen_port needs a restart. */
    ASSERT_EQ(px_proxy_port(pr.px), pr.port);
    close(c);
    close(a);
    proxy_stop(true);
    up_stop();
}

PX_TEST(upstream_stalls_after_authentication_ok)
{
    up_start(UP_LOGIN_STALL);
    proxy_start(NULL); /* connect_timeout = 3 */
    int fd = tcp_connect(pr.port);
    const char *kv[] = {"user", "stan", NULL};
    uint8_t pkt[128];
    size_t n = startup_packet(pkt, 196608u, kv);
    uint64_t t0 = px_now_mono_ms();
    ASSERT(send_all(fd, pkt, n));
    msg_t m;
    ASSERT_EQ(read_msg(fd, &m, IO_TIMEOUT_MS), 1);
    ASSERT_EQ(m.type, 'R'); /* the login itself was accepted */
    msg_free(&m);
    /* ... but the session never became ready: the connect timeout still applies. */
    expect_fatal(fd, "08001", "timeout expired while logging in");
    uint64_t took = px_now_mono_ms() - t0;
    ASSERT(took >= 2500 && took < 4500);
    close(fd);
    proxy_stop(true);
    up_stop();
}
