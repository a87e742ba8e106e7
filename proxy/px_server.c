/*
 * Upstream connections: asynchronous DNS (each address tried in turn), TCP, SSLRequest, TLS with
 * the configured verification, the startup packet and the password exchange (auth_pg.h), all
 * under one connect_timeout. The same object carries a session for a client, a one-shot
 * CancelRequest, or the --check login. After AuthenticationOk a session is handed to the relay
 * (px_relay.c), which owns the server-to-client stream from then on.
 *
 * Failures before that point go to the owner once (on_fail) with an SQLSTATE and a sentence the
 * client can read ("certificate verify failed: ...", "timeout expired", upstream's own
 * ErrorResponse). Passwords live only in this object, are wiped when it is freed, and never
 * reach a log line. SCRAM's PBKDF2, whose iteration count the server picks, runs on the libuv
 * thread pool so that a slow login never stalls the other sessions; the object then outlives
 * its own close until the work is back (scram_busy in px_conn.h).
 */
#include "px_conn.h"

#include "px_alloc.h"
#include "px_err.h"
#include "px_log.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const server_state_names[PX_SERVER_NSTATES] = {
    "init",         "resolving", "connecting", "ssl_request", "tls_handshake", "login",
    "login_params", "active",    "resetting",  "idle",        "closing",
};

/* Legal transitions (STYLE.md 7.8). Any state may go to CLOSING. */
static const bool server_allowed[PX_SERVER_NSTATES][PX_SERVER_NSTATES] = {
    [PX_SERVER_INIT] = {[PX_SERVER_RESOLVING] = true, [PX_SERVER_CONNECTING] = true},
    [PX_SERVER_RESOLVING] = {[PX_SERVER_CONNECTING] = true},
    [PX_SERVER_CONNECTING] =
        {[PX_SERVER_SSL_REQ] = true, [PX_SERVER_LOGIN] = true, [PX_SERVER_CONNECTING] = true},
    [PX_SERVER_SSL_REQ] = {[PX_SERVER_TLS_HANDSHAKE] = true},
    [PX_SERVER_TLS_HANDSHAKE] = {[PX_SERVER_LOGIN] = true},
    [PX_SERVER_LOGIN] = {[PX_SERVER_LOGIN_PARAMS] = true},
    [PX_SERVER_LOGIN_PARAMS] = {[PX_SERVER_ACTIVE] = true},
    [PX_SERVER_ACTIVE] = {[PX_SERVER_RESETTING] = true},
    [PX_SERVER_RESETTING] = {[PX_SERVER_IDLE] = true},
    [PX_SERVER_IDLE] = {[PX_SERVER_ACTIVE] = true},
    [PX_SERVER_CLOSING] = {[PX_SERVER_CLOSING] = false},
};

void px__server_set_state(px_server_t *sv, px_server_state_t next)
{
    if (next != PX_SERVER_CLOSING && !server_allowed[sv->state][next]) {
        px_log_ctx(PX_LOG_ERROR, sv->ctx, "illegal state transition %s -> %s",
                   server_state_names[sv->state], server_state_names[next]);
        assert(!"illegal server state transition");
    }
    px_log_ctx(PX_LOG_TRACE, sv->ctx, "state %s -> %s", server_state_names[sv->state],
               server_state_names[next]);
    sv->state = next;
}

static void server_sock_cb(px_sock_t *s, px_sock_ev_t ev, int status);
static void try_next_addr(px_server_t *sv);

/* ------------------------------------------------------------------------------------------ */

static void server_free(px_server_t *sv)
{
    px_proxy_t *px = sv->px;
    assert(!sv->scram_busy);
    if (sv->ai)
        uv_freeaddrinfo(sv->ai);
    px_free(sv->user);
    px_free_secret(sv->password);
    px_dbuf_free_secret(&sv->out);
    if (sv->scram)
        auth_scram_client_free(sv->scram);
    px_tls_ctx_unref(sv->tls_ctx);
    px_free(sv->pool_key);
    px_dbuf_free(&sv->params);
    px_list_remove(&sv->link);
    px->nservers--;
    if (sv->purpose == PX_SERVER_FOR_CANCEL)
        px->ncancel_conns--;
    px_free(sv);
    px__proxy_server_gone(px);
}

static void maybe_free(px_server_t *sv)
{
    if (sv->state == PX_SERVER_CLOSING && sv->pending_closes == 0)
        server_free(sv);
}

static void on_timer_closed(uv_handle_t *h)
{
    px_server_t *sv = container_of(h, px_server_t, timer);
    sv->pending_closes--;
    maybe_free(sv);
}

static void close_timer(px_server_t *sv)
{
    if (sv->timer_inited && !uv_is_closing((uv_handle_t *)&sv->timer))
        uv_close((uv_handle_t *)&sv->timer, on_timer_closed);
}

static void unlink_client(px_server_t *sv)
{
    if (sv->client) {
        sv->client->server = NULL;
        sv->client = NULL;
    }
}

static void begin_close(px_server_t *sv, const char *reason)
{
    px_log_ctx(sv->purpose == PX_SERVER_FOR_CLIENT ? PX_LOG_DEBUG : PX_LOG_TRACE, sv->ctx,
               "server close reason=\"%s\" state=%s bytes_out=%llu bytes_in=%llu", reason,
               server_state_names[sv->state], (unsigned long long)sv->sock.bytes_out,
               (unsigned long long)sv->sock.bytes_in);
    unlink_client(sv);
    px__pool_forget(sv);
    px__server_set_state(sv, PX_SERVER_CLOSING);
    if (sv->scram_busy) {
        /* A proof nobody will send: drop the work if no thread has taken it yet. Either way
         * its callback still comes (UV_ECANCELED or done), and until then the worker owns
         * sv->scram, so server_free releases it. */
        (void)uv_cancel((uv_req_t *)&sv->scram_work);
    } else if (sv->scram) {
        auth_scram_client_free(sv->scram);
        sv->scram = NULL;
    }
    px_dbuf_free_secret(&sv->out);
}

void px__server_close(px_server_t *sv, const char *reason)
{
    if (sv->state == PX_SERVER_CLOSING) {
        px_sock_close(&sv->sock); /* hurry a graceful close along */
        return;
    }
    begin_close(sv, reason);
    px_sock_close(&sv->sock);
    close_timer(sv);
    maybe_free(sv);
}

static void on_close_deadline(uv_timer_t *t)
{
    px_server_t *sv = container_of(t, px_server_t, timer);
    /* The server did not take our last bytes in time: cut the connection. */
    px_sock_close(&sv->sock);
    close_timer(sv);
}

void px__server_terminate(px_server_t *sv, const char *reason)
{
    if (sv->state == PX_SERVER_CLOSING)
        return;
    /* Terminate only between messages: in the middle of a message the server would read it as
     * payload. A session that never finished logging in gets no Terminate either, nor one whose
     * client already sent its own. */
    const px_client_t *c = sv->client;
    bool boundary =
        !c || (px_framer_at_boundary(&c->c2s) && (!c->terminating || c->x_withheld) && !c->c2s_cut);
    bool logged_in = sv->state == PX_SERVER_ACTIVE || sv->state == PX_SERVER_LOGIN_PARAMS ||
                     sv->state == PX_SERVER_LOGIN || sv->state == PX_SERVER_RESETTING ||
                     sv->state == PX_SERVER_IDLE;
    /* While our SCRAM proof is being computed the server waits for a SASLResponse: PostgreSQL
     * reports any other message as a protocol violation in its log, and ends a login quietly
     * at EOF. */
    bool send =
        boundary && logged_in && !sv->scram_busy && sv->sock.inited && !sv->sock.error_reported;
    begin_close(sv, reason);
    if (send) {
        static const uint8_t terminate[5] = {'X', 0, 0, 0, 4};
        if (px_sock_write_copy(&sv->sock, terminate, sizeof(terminate)) != 0) {
            px_sock_close(&sv->sock);
            close_timer(sv);
            maybe_free(sv);
            return;
        }
    }
    if (sv->sock.inited)
        px_sock_close_graceful(&sv->sock);
    if (sv->sock.inited && !sv->sock.closing && sv->timer_inited) {
        uv_timer_stop(&sv->timer);
        uv_timer_start(&sv->timer, on_close_deadline, PX_CLOSE_FLUSH_MS, 0);
    } else {
        close_timer(sv);
    }
    maybe_free(sv);
}

/* Reports a failure to the owner once, then closes. */
static void server_fail(px_server_t *sv, int code, const char *sqlstate, const uint8_t *be_error,
                        size_t be_error_len, const char *fmt, ...) PX_PRINTF(6, 7);

static void server_fail(px_server_t *sv, int code, const char *sqlstate, const uint8_t *be_error,
                        size_t be_error_len, const char *fmt, ...)
{
    if (sv->state == PX_SERVER_CLOSING)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    px_server_fail_t f = {.code = code,
                          .sqlstate = sqlstate,
                          .message = msg,
                          .be_error = be_error,
                          .be_error_len = be_error_len};
    if (sv->timer_inited)
        uv_timer_stop(&sv->timer);
    sv->px->stats.tls_handshake_failures += sv->state == PX_SERVER_TLS_HANDSHAKE;
    if (sv->owner && sv->owner->on_fail)
        sv->owner->on_fail(sv, &f);
    px__server_close(sv, msg);
}

/* ------------------------------------------------------------------------------------------ */

static const char *state_doing(px_server_state_t s)
{
    switch (s) {
    case PX_SERVER_RESOLVING:
        return "resolving the host name";
    case PX_SERVER_CONNECTING:
        return "connecting";
    case PX_SERVER_SSL_REQ:
        return "waiting for the SSL response";
    case PX_SERVER_TLS_HANDSHAKE:
        return "in the TLS handshake";
    case PX_SERVER_LOGIN:
    case PX_SERVER_LOGIN_PARAMS:
        return "logging in";
    default:
        return "connecting";
    }
}

static void on_connect_timeout(uv_timer_t *t)
{
    px_server_t *sv = container_of(t, px_server_t, timer);
    server_fail(sv, UV_ETIMEDOUT, "08001", NULL, 0,
                "connection to server at \"%s\"%s%s%s, port %d failed: timeout expired while %s",
                sv->host, sv->addr_str[0] ? " (" : "", sv->addr_str, sv->addr_str[0] ? ")" : "",
                sv->port, state_doing(sv->state));
}

static void step(px_server_t *sv, px_server_step_t st, const char *detail)
{
    px_log_ctx(PX_LOG_TRACE, sv->ctx, "upstream step=%d %s", (int)st, detail);
    if (sv->owner && sv->owner->on_step)
        sv->owner->on_step(sv, st, detail);
}

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
    buf[0] = '\0';
    if (sa->sa_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)sa, buf, len);
    else if (sa->sa_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)sa, buf, len);
}

/* ------------------------------------------------------------------------------------------ */

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    px_server_t *sv = container_of(req, px_server_t, gai);
    sv->gai_active = false;
    sv->pending_closes--;
    if (sv->state == PX_SERVER_CLOSING) {
        if (res)
            uv_freeaddrinfo(res);
        maybe_free(sv);
        return;
    }
    if (status < 0) {
        server_fail(sv, status, "08001", NULL, 0,
                    "could not translate host name \"%s\" to address: %s", sv->host,
                    status == UV_EAI_NONAME ? "Name or service not known" : uv_strerror(status));
        return;
    }
    sv->ai = res;
    sv->ai_next = res;
    unsigned n = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        n++;
    char detail[64];
    snprintf(detail, sizeof(detail), "%u address%s", n, n == 1 ? "" : "es");
    step(sv, PX_STEP_RESOLVED, detail);
    try_next_addr(sv);
}

static void send_startup(px_server_t *sv)
{
    int rc = 0;
    if (sv->purpose == PX_SERVER_FOR_CANCEL) {
        px_dbuf_reset(&sv->out);
        px_msg_fe_build_cancel(&sv->out, sv->cancel_pid, sv->cancel_key);
        rc = sv->out.failed ? UV_ENOMEM : px_sock_write_copy(&sv->sock, sv->out.data, sv->out.len);
        if (rc) {
            px__server_close(sv, "cannot send cancel request");
            return;
        }
        /* PostgreSQL closes a cancel connection without answering; so do we, politely (no
         * Terminate: this is not a session). */
        px__server_terminate(sv, "cancel request sent");
        return;
    }
    if (sv->purpose == PX_SERVER_FOR_CHECK && !sv->user) {
        uv_timer_stop(&sv->timer);
        if (sv->owner && sv->owner->on_ready)
            sv->owner->on_ready(sv);
        return;
    }
    /* sv->out holds the startup packet built at start. */
    rc = sv->out.failed ? UV_ENOMEM : px_sock_write_copy(&sv->sock, sv->out.data, sv->out.len);
    px_dbuf_reset(&sv->out);
    if (rc) {
        server_fail(sv, rc, "08001", NULL, 0, "could not send startup packet: %s", px_strerror(rc));
        return;
    }
    px__server_set_state(sv, PX_SERVER_LOGIN);
    px_sock_read_start(&sv->sock);
}

static void on_connect(uv_connect_t *req, int status)
{
    px_server_t *sv = container_of(req, px_server_t, conn_req);
    if (sv->state == PX_SERVER_CLOSING || status == UV_ECANCELED)
        return;
    if (status < 0) {
        snprintf(sv->last_error, sizeof(sv->last_error),
                 "connection to server at \"%s\" (%s), port %d failed: %s", sv->host, sv->addr_str,
                 sv->port, uv_strerror(status));
        px_log_ctx(PX_LOG_DEBUG, sv->ctx, "connect failed addr=%s error=\"%s\"", sv->addr_str,
                   uv_strerror(status));
        /* The next address needs a fresh handle; it is tried once this one has closed. */
        px_sock_close(&sv->sock);
        return;
    }
    step(sv, PX_STEP_TCP, sv->addr_str);
    if (!sv->tls_ctx) {
        send_startup(sv);
        return;
    }
    px_dbuf_t req_buf;
    px_dbuf_init(&req_buf, 64);
    px_msg_fe_build_sslrequest(&req_buf);
    int rc = px_sock_write_copy(&sv->sock, req_buf.data, req_buf.len);
    px_dbuf_free(&req_buf);
    if (rc) {
        server_fail(sv, rc, "08001", NULL, 0,
                    "connection to server at \"%s\" (%s), port %d failed: %s", sv->host,
                    sv->addr_str, sv->port, px_strerror(rc));
        return;
    }
    px__server_set_state(sv, PX_SERVER_SSL_REQ);
    px_sock_read_start(&sv->sock);
}

static void try_next_addr(px_server_t *sv)
{
    if (sv->state == PX_SERVER_CLOSING)
        return;
    if (sv->fixed_addr) {
        if (sv->fixed_tried) {
            server_fail(sv, UV_ECONNREFUSED, "08001", NULL, 0, "%s",
                        sv->last_error[0] ? sv->last_error : "no address to connect to");
            return;
        }
        sv->fixed_tried = true; /* sv->addr was set at start */
    } else {
        struct addrinfo *a = sv->ai_next;
        while (a && a->ai_addrlen > sizeof(sv->addr))
            a = a->ai_next;
        if (!a) {
            server_fail(sv, UV_ECONNREFUSED, "08001", NULL, 0, "%s",
                        sv->last_error[0] ? sv->last_error : "no address to connect to");
            return;
        }
        sv->ai_next = a->ai_next;
        memcpy(&sv->addr, a->ai_addr, a->ai_addrlen);
    }
    format_addr((const struct sockaddr *)&sv->addr, sv->addr_str, sizeof(sv->addr_str));
    if (sv->state != PX_SERVER_CONNECTING)
        px__server_set_state(sv, PX_SERVER_CONNECTING);
    px_sock_init(&sv->sock, sv->px->io, server_sock_cb);
    int rc = px_sock_open_tcp(&sv->sock);
    if (rc == 0)
        sv->pending_closes++; /* this attempt's handle */
    if (rc == 0)
        rc = uv_tcp_connect(&sv->conn_req, &sv->sock.h.tcp, (const struct sockaddr *)&sv->addr,
                            on_connect);
    if (rc) {
        snprintf(sv->last_error, sizeof(sv->last_error),
                 "connection to server at \"%s\" (%s), port %d failed: %s", sv->host, sv->addr_str,
                 sv->port, uv_strerror(rc));
        if (sv->sock.inited) {
            px_sock_close(&sv->sock); /* CLOSED moves on to the next address */
            return;
        }
        try_next_addr(sv);
    }
}

/* ------------------------------------------------------------------------------------------ */

static void on_ssl_response(px_server_t *sv)
{
    px_sock_t *s = &sv->sock;
    if (px_sock_unread(s) < 1)
        return;
    uint8_t b = px_sock_data(s)[s->pos];
    if (b == 'S') {
        /* Anything after the 'S' arrived before the handshake, i.e. in plaintext that anyone on
         * the path could have written (CVE-2021-23222): refuse rather than treat it as TLS. */
        if (px_sock_unread(s) > 1) {
            server_fail(sv, PX_E_PROTO, "08001", NULL, 0,
                        "server sent unexpected data after accepting the SSL request");
            return;
        }
        s->pos++;
        px_sock_consumed(s);
        px_tls_t *tls = NULL;
        int rc = px_tls_new_client(sv->tls_ctx, sv->host, &tls);
        if (rc == 0)
            rc = px_sock_tls_start(s, tls);
        else
            tls = NULL;
        if (rc) {
            if (!s->tls && tls)
                px_tls_free(tls);
            server_fail(sv, rc, "08001", NULL, 0,
                        "connection to server at \"%s\" (%s), port %d failed: %s", sv->host,
                        sv->addr_str, sv->port,
                        s->tls ? px_tls_errmsg(s->tls) : "cannot start TLS");
            return;
        }
        px__server_set_state(sv, PX_SERVER_TLS_HANDSHAKE);
        return;
    }
    if (b == 'N') {
        server_fail(sv, PX_E_NOSSL, "08001", NULL, 0,
                    "connection to server at \"%s\" (%s), port %d failed: server does not "
                    "support SSL, but SSL was required",
                    sv->host, sv->addr_str, sv->port);
        return;
    }
    if (b == 'E') {
        /* An error before TLS is unauthenticated text; like libpq since CVE-2024-10977, do not
         * pass its contents on. */
        server_fail(sv, PX_E_PROTO, "08001", NULL, 0,
                    "connection to server at \"%s\" (%s), port %d failed: server sent an error "
                    "response during SSL exchange",
                    sv->host, sv->addr_str, sv->port);
        return;
    }
    server_fail(sv, PX_E_PROTO, "08001", NULL, 0,
                "received invalid response to SSL negotiation: 0x%02x", b);
}

static void on_tls_ready(px_server_t *sv)
{
    char detail[256];
    const char *verify = "not verified (sslmode require)";
    switch (px_tls_ctx_mode(sv->tls_ctx)) {
    case CFG_SSLMODE_VERIFY_FULL:
        verify = "certificate chain and host name verified";
        break;
    case CFG_SSLMODE_VERIFY_CA:
        verify = "certificate chain verified (host name not checked)";
        break;
    default:
        break;
    }
    snprintf(detail, sizeof(detail), "%s %s, %s", px_tls_version(sv->sock.tls),
             px_tls_cipher(sv->sock.tls), verify);
    step(sv, PX_STEP_TLS, detail);
    send_startup(sv);
}

/* Frames and sends a password-type message ('p' or 'd'), then wipes the staging buffer. */
static int send_auth_msg(px_server_t *sv, uint8_t type, const void *body, size_t n)
{
    px_dbuf_t b;
    px_dbuf_init(&b, PX_MSG_SMALL_LIMIT * 8);
    size_t lp = px_dbuf_frame_begin(&b, type);
    px_dbuf_put(&b, body, n);
    px_dbuf_frame_end(&b, lp);
    int rc = b.failed ? UV_ENOMEM : px_sock_write_copy(&sv->sock, b.data, b.len);
    px_dbuf_free_secret(&b);
    return rc;
}

static void on_login_data(px_server_t *sv);

/* ------------------------------------------------------------------------------------------ */
/* SCRAM's proof on the thread pool. The count of PBKDF2 iterations is the server's choice (up to
 * AUTH_SCRAM_MAX_ITERATIONS, about 2 s of CPU); on the loop it would stall every session. */

static void scram_work(uv_work_t *w)
{
    /* A pool thread. It touches sv->scram and sv->scram_rc only; the loop leaves both alone
     * while scram_busy, and uv_queue_work orders the memory both ways. */
    px_server_t *sv = container_of(w, px_server_t, scram_work);
    sv->scram_rc = auth_scram_client_compute(sv->scram);
}

static void scram_after_work(uv_work_t *w, int status)
{
    px_server_t *sv = container_of(w, px_server_t, scram_work);
    sv->scram_busy = false;
    sv->pending_closes--;
    if (sv->state == PX_SERVER_CLOSING) {
        /* Closed meanwhile (client gone, connect_timeout, shutdown, the server hung up): the
         * proof is never sent; the object was only waiting for this callback to be freed. */
        px_log_ctx(PX_LOG_DEBUG, sv->ctx, "upstream scram proof discarded%s: connection closed",
                   status == UV_ECANCELED ? " before it was computed" : "");
        maybe_free(sv);
        return;
    }
    assert(sv->state == PX_SERVER_LOGIN);
    int rc = status ? status : sv->scram_rc;
    px_log_ctx(PX_LOG_DEBUG, sv->ctx, "upstream scram proof computed iterations=%d ms=%llu",
               auth_scram_client_iterations(sv->scram),
               (unsigned long long)(uv_now(sv->px->loop) - sv->scram_t0_ms));
    px_dbuf_t out;
    px_dbuf_init(&out, PX_MSG_SMALL_LIMIT * 8);
    if (rc == 0)
        rc = auth_scram_client_final(sv->scram, &out);
    if (rc == 0)
        rc = out.failed ? UV_ENOMEM : send_auth_msg(sv, 'p', out.data, out.len);
    px_dbuf_free_secret(&out);
    if (rc) {
        server_fail(sv, rc, rc == UV_ENOMEM ? "53200" : "08001", NULL, 0,
                    "authentication with the server failed: %s", px_strerror(rc));
        return;
    }
    /* Whatever the server sent meanwhile (normally nothing) waited in the read buffer. */
    on_login_data(sv);
}

static int scram_work_start(px_server_t *sv)
{
    int rc = uv_queue_work(sv->px->loop, &sv->scram_work, scram_work, scram_after_work);
    if (rc)
        return rc;
    sv->scram_busy = true;
    sv->pending_closes++; /* the request: the object must outlive it */
    sv->scram_t0_ms = uv_now(sv->px->loop);
    return 0;
}

/* Handles one AuthenticationRequest. Returns false when the server was failed. */
static bool on_auth_request(px_server_t *sv, const uint8_t *body, size_t n)
{
    uint32_t code;
    const uint8_t *pl;
    size_t plen;
    if (!px_msg_be_parse_auth(body, n, &code, &pl, &plen)) {
        server_fail(sv, PX_E_PROTO, "08001", NULL, 0, "invalid authentication request from server");
        return false;
    }
    const char *pw = sv->password ? sv->password : "";
    px_dbuf_t out;
    px_dbuf_init(&out, PX_MSG_SMALL_LIMIT * 8);
    int rc = 0;
    switch (code) {
    case AUTH_REQ_OK:
        px_dbuf_free(&out);
        if (sv->sasl_started && !sv->sasl_done) {
            server_fail(sv, PX_E_PROTO, "08001", NULL, 0,
                        "server sent AuthenticationOk before completing SCRAM authentication");
            return false;
        }
        return true;
    case AUTH_REQ_CLEARTEXT:
        if (!sv->password)
            goto no_password;
        px_dbuf_put_str(&out, pw);
        rc = out.failed ? UV_ENOMEM : send_auth_msg(sv, 'p', out.data, out.len);
        break;
    case AUTH_REQ_MD5: {
        if (!sv->password)
            goto no_password;
        if (plen != 4) {
            rc = AUTH_E_PROTO;
            break;
        }
        char md5[36];
        rc = auth_md5_response(sv->user, pw, pl, md5);
        if (rc == 0)
            rc = send_auth_msg(sv, 'p', md5, strlen(md5) + 1);
        px_wipe(md5, sizeof(md5));
        break;
    }
    case AUTH_REQ_SASL:
        if (!sv->password)
            goto no_password;
        if (sv->sasl_started) {
            rc = AUTH_E_PROTO;
            break;
        }
        rc = auth_sasl_choose(pl, plen);
        if (rc == AUTH_E_MECH) {
            px_dbuf_free(&out);
            server_fail(sv, rc, "28000", NULL, 0,
                        "the server offered no SASL mechanism this proxy supports "
                        "(SCRAM-SHA-256 without channel binding)");
            return false;
        }
        if (rc == 0)
            rc = auth_scram_client_new(pw, NULL, &sv->scram);
        if (rc == 0)
            rc = auth_scram_client_initial(sv->scram, &out);
        if (rc == 0)
            rc = out.failed ? UV_ENOMEM : send_auth_msg(sv, 'p', out.data, out.len);
        sv->sasl_started = true;
        break;
    case AUTH_REQ_SASL_CONTINUE:
        if (!sv->scram || sv->sasl_done) {
            rc = AUTH_E_PROTO;
            break;
        }
        /* Checked here, so a malformed server-first fails at once; the PBKDF2 and the answer
         * follow from the thread pool (scram_after_work). */
        rc = auth_scram_client_prepare(sv->scram, pl, plen);
        if (rc == 0)
            rc = scram_work_start(sv);
        break;
    case AUTH_REQ_SASL_FINAL:
        if (!sv->scram || sv->sasl_done) {
            rc = AUTH_E_PROTO;
            break;
        }
        rc = auth_scram_client_finish(sv->scram, pl, plen);
        if (rc == AUTH_E_VERIFY) {
            px_dbuf_free(&out);
            server_fail(sv, rc, "28000", NULL, 0,
                        "SCRAM authentication failed: the server's signature did not verify");
            return false;
        }
        sv->sasl_done = rc == 0;
        break;
    case AUTH_REQ_DIGEST: {
        if (!sv->password)
            goto no_password;
        char nonce[32];
        snprintf(nonce, sizeof(nonce), "%lld", (long long)px_now_unix_ms());
        rc = auth_digest_response(pl, plen, pw, nonce, &out);
        if (rc == AUTH_E_MECH) {
            px_dbuf_free(&out);
            server_fail(sv, rc, "28000", NULL, 0,
                        "unsupported authentication method requested by the server "
                        "(digest algorithm other than SHA-256)");
            return false;
        }
        if (rc == 0)
            rc = out.failed ? UV_ENOMEM : send_auth_msg(sv, 'd', out.data, out.len);
        break;
    }
    default:
        px_dbuf_free(&out);
        server_fail(sv, PX_E_UNSUPPORTED, "28000", NULL, 0,
                    "unsupported authentication method requested by the server (code %u)", code);
        return false;
    }
    px_dbuf_free_secret(&out);
    if (rc) {
        server_fail(sv, rc, rc == UV_ENOMEM ? "53200" : "08001", NULL, 0,
                    "authentication with the server failed: %s", px_strerror(rc));
        return false;
    }
    return true;
no_password:
    px_dbuf_free(&out);
    server_fail(sv, AUTH_E_FAILED, "28000", NULL, 0,
                "the server requested a password for user \"%s\" but none is configured", sv->user);
    return false;
}

/* --check only: after AuthenticationOk, PostgreSQL and Redshift may still refuse the session
 * (a database that does not exist, a role that may not connect). Waits for ReadyForQuery or the
 * error; returns false when the server was failed or handed to the owner. */
static bool on_check_params(px_server_t *sv, uint8_t type, const uint8_t *m, uint32_t len)
{
    const uint8_t *body = m + PX_MSG_HDR;
    size_t blen = len - 4;
    switch (type) {
    case 'S': {
        const char *name, *value;
        if (px_msg_be_parse_param(body, blen, &name, &value) && strcmp(name, "server_version") == 0)
            snprintf(sv->server_version, sizeof(sv->server_version), "%s", value);
        return true;
    }
    case 'E': {
        px_be_error_t e;
        bool ok = px_msg_be_parse_error(body, blen, &e);
        server_fail(sv, AUTH_E_FAILED, ok && e.sqlstate ? e.sqlstate : "08001", m, 1 + len, "%s",
                    ok && e.message ? e.message : "the server refused the session");
        return false;
    }
    case 'Z': {
        char who[400];
        snprintf(who, sizeof(who), "user \"%s\"%s%s", sv->user ? sv->user : "",
                 sv->server_version[0] ? ", server version " : "", sv->server_version);
        step(sv, PX_STEP_LOGIN, who);
        if (sv->owner && sv->owner->on_ready)
            sv->owner->on_ready(sv);
        return false;
    }
    default: /* BackendKeyData, notices */
        return true;
    }
}

/* AuthenticationOk: what only the login needed goes, so a session idle for hours holds neither
 * the secret nor memory it will not use again (the SCRAM state, the startup packet, the address
 * list; every cancel goes to sv->addr). */
static void drop_login_state(px_server_t *sv)
{
    assert(!sv->scram_busy);
    if (sv->scram) {
        auth_scram_client_free(sv->scram);
        sv->scram = NULL;
    }
    px_dbuf_free_secret(&sv->out);
    px_free_secret(sv->password);
    sv->password = NULL;
    if (sv->ai) {
        uv_freeaddrinfo(sv->ai);
        sv->ai = sv->ai_next = NULL;
    }
}

/* Upstream refused the login with an ErrorResponse (m: the whole message, 1 + len bytes): the
 * owner forwards it to the client as it is. */
static void fail_with_server_error(px_server_t *sv, const uint8_t *m, uint32_t len)
{
    px_be_error_t e;
    if (!px_msg_be_parse_error(m + PX_MSG_HDR, len - 4, &e)) {
        server_fail(sv, PX_E_PROTO, "08001", NULL, 0,
                    "malformed error response from server during login");
        return;
    }
    px_log_ctx(PX_LOG_DEBUG, sv->ctx, "upstream refused login sqlstate=%s message=\"%s\"",
               e.sqlstate ? e.sqlstate : "?", e.message ? e.message : "");
    server_fail(sv, AUTH_E_FAILED, e.sqlstate ? e.sqlstate : "28000", m, 1 + len, "%s",
                e.message ? e.message : "login refused by the server");
}

/* The server hung up while our SCRAM proof was being computed, leaving its last messages
 * unparsed. When it said why first (PostgreSQL's authentication_timeout or a shutdown send
 * a FATAL ErrorResponse, maybe after notices), the client gets that rather than "server
 * closed the connection". Returns true when it failed the server. */
static bool fail_with_buffered_error(px_server_t *sv)
{
    const px_sock_t *s = &sv->sock;
    const uint8_t *d = px_sock_data(s);
    uint32_t pos = s->pos;
    while (d && s->end - pos >= PX_MSG_HDR) {
        const uint8_t *m = d + pos;
        uint32_t len = px_get_u32(m + 1);
        if (len < 4 || len > s->end - pos - 1)
            return false;
        if (m[0] == 'E') {
            fail_with_server_error(sv, m, len);
            return true;
        }
        if (m[0] != 'N')
            return false;
        pos += 1 + len;
    }
    return false;
}

/* Login phase: whole messages only (all small); the relay takes over at AuthenticationOk. While
 * the SCRAM proof is computed nothing is parsed (the server has no reason to speak before our
 * answer); reading goes on so that a close is noticed, within the buffer's bound. */
static void on_login_data(px_server_t *sv)
{
    px_sock_t *s = &sv->sock;
    for (;;) {
        while ((sv->state == PX_SERVER_LOGIN || sv->state == PX_SERVER_LOGIN_PARAMS) &&
               !sv->scram_busy && px_sock_unread(s) >= PX_MSG_HDR) {
            const uint8_t *m = px_sock_data(s) + s->pos;
            uint8_t type = m[0];
            uint32_t len = px_get_u32(m + 1);
            if (len < 4 || len > px_sock_cap(s) - 1) {
                server_fail(sv, PX_E_PROTO, "08001", NULL, 0,
                            "invalid message length %u from server during login", len);
                return;
            }
            if (px_sock_unread(s) < 1 + len)
                break; /* wait; the buffer compacts on the next read */
            if (sv->state == PX_SERVER_LOGIN_PARAMS) {
                s->pos += 1 + len;
                if (!on_check_params(sv, type, m, len))
                    return;
                continue;
            }
            const uint8_t *body = m + PX_MSG_HDR;
            size_t blen = len - 4;
            switch (type) {
            case 'R':
                if (!on_auth_request(sv, body, blen))
                    return;
                s->pos += 1 + len;
                if (px_get_u32(body) == AUTH_REQ_OK) {
                    px_sock_consumed(s);
                    drop_login_state(sv);
                    px__server_set_state(sv, PX_SERVER_LOGIN_PARAMS);
                    if (sv->purpose == PX_SERVER_FOR_CHECK)
                        continue; /* the verdict comes with ReadyForQuery */
                    /* The connect timeout keeps running until ReadyForQuery (px_relay.c): a
                     * server that stalls after AuthenticationOk must not hold the client. */
                    char who[300];
                    snprintf(who, sizeof(who), "user \"%s\"", sv->user ? sv->user : "");
                    step(sv, PX_STEP_LOGIN, who);
                    if (sv->owner && sv->owner->on_ready)
                        sv->owner->on_ready(sv);
                    return;
                }
                continue;
            case 'E':
                fail_with_server_error(sv, m, len);
                return;
            case 'N': /* a notice before login completes: nobody to show it to */
            case 'v': /* NegotiateProtocolVersion: we ask for 3.0 without options */
                s->pos += 1 + len;
                continue;
            default:
                server_fail(sv, PX_E_PROTO, "08001", NULL, 0,
                            "unexpected message type 0x%02x from server during authentication",
                            type);
                return;
            }
        }
        int n = px_sock_refill(s);
        if (n > 0)
            continue;
        if (n < 0) {
            if (sv->scram_busy && fail_with_buffered_error(sv))
                return;
            server_fail(sv, n, "08001", NULL, 0, "connection to server lost during login: %s",
                        n == UV_EOF ? "server closed the connection"
                                    : (s->tls ? px_tls_errmsg(s->tls) : px_strerror(n)));
            return;
        }
        break;
    }
    px_sock_read_start(s);
}

static void server_sock_cb(px_sock_t *s, px_sock_ev_t ev, int status)
{
    px_server_t *sv = container_of(s, px_server_t, sock);
    if (ev == PX_EV_CLOSED) {
        sv->pending_closes--;
        if (sv->state == PX_SERVER_CONNECTING) {
            try_next_addr(sv); /* a failed attempt's handle is gone: next address */
            return;
        }
        maybe_free(sv);
        return;
    }
    if (sv->state == PX_SERVER_CLOSING) {
        if (ev == PX_EV_EOF || ev == PX_EV_ERROR)
            px_sock_close(s);
        return;
    }
    if ((sv->state == PX_SERVER_ACTIVE || sv->state == PX_SERVER_LOGIN_PARAMS) &&
        sv->purpose == PX_SERVER_FOR_CLIENT) {
        px__relay_server_event(sv, ev, status);
        return;
    }
    if (sv->state == PX_SERVER_RESETTING || sv->state == PX_SERVER_IDLE) {
        px__pool_server_event(sv, ev, status);
        return;
    }
    switch (ev) {
    case PX_EV_READ:
        if (sv->state == PX_SERVER_SSL_REQ)
            on_ssl_response(sv);
        else if (sv->state == PX_SERVER_LOGIN || sv->state == PX_SERVER_LOGIN_PARAMS)
            on_login_data(sv);
        else
            server_fail(sv, PX_E_PROTO, "08001", NULL, 0, "unexpected data from server while %s",
                        state_doing(sv->state));
        return;
    case PX_EV_TLS_READY:
        on_tls_ready(sv);
        return;
    case PX_EV_FLUSHED:
        return;
    case PX_EV_EOF:
    case PX_EV_ERROR: {
        if (sv->scram_busy && fail_with_buffered_error(sv))
            return;
        const char *why;
        if (s->tls && px_tls_errcode(s->tls))
            why = px_tls_errmsg(s->tls);
        else if (ev == PX_EV_EOF)
            why = "server closed the connection unexpectedly";
        else
            why = px_strerror(status);
        server_fail(sv, status ? status : PX_E_UPSTREAM_EOF, "08001", NULL, 0,
                    "connection to server at \"%s\" (%s), port %d failed: %s", sv->host,
                    sv->addr_str, sv->port, why);
        return;
    }
    default:
        return;
    }
}

/* The deferred start: connect to a fixed address, or report a DNS call that could not start. */
static void on_kick(uv_timer_t *t)
{
    px_server_t *sv = container_of(t, px_server_t, timer);
    uint64_t now = uv_now(sv->px->loop);
    uint64_t left = sv->deadline_ms > now ? sv->deadline_ms - now : 1;
    uv_timer_start(&sv->timer, on_connect_timeout, left, 0);
    if (!sv->fixed_addr) {
        server_fail(sv, UV_EAI_FAIL, "08001", NULL, 0, "%s", sv->last_error);
        return;
    }
    px__server_set_state(sv, PX_SERVER_CONNECTING);
    try_next_addr(sv);
}

/* ------------------------------------------------------------------------------------------ */

int px__server_start(px_proxy_t *px, uint32_t id, const px_server_params_t *p,
                     const px_server_owner_t *owner, void *owner_arg, px_server_t **out)
{
    *out = NULL;
    px_server_t *sv = px_calloc(1, sizeof(*sv));
    if (!sv)
        return UV_ENOMEM;
    sv->px = px;
    sv->id = id;
    sv->purpose = p->purpose;
    sv->owner = owner;
    sv->owner_arg = owner_arg;
    sv->port = p->port;
    snprintf(sv->host, sizeof(sv->host), "%s", p->host ? p->host : "");
    snprintf(sv->ctx, sizeof(sv->ctx), "S-%u %.100s@%.100s %.200s:%d", id, p->user ? p->user : "-",
             p->database ? p->database : "-", sv->host, sv->port);
    px_list_init(&sv->link);
    px_list_init(&sv->pool_link);
    px_dbuf_init(&sv->params, PX_POOL_PARAMS_MAX);
    px_list_append(&px->servers, &sv->link);
    px->nservers++;
    if (p->purpose == PX_SERVER_FOR_CANCEL)
        px->ncancel_conns++;
    px_dbuf_init(&sv->out, PX_STARTUP_MAX + 1024);
    px_sock_init(&sv->sock, px->io, server_sock_cb);

    int rc = uv_timer_init(px->loop, &sv->timer);
    if (rc) {
        sv->state = PX_SERVER_CLOSING;
        server_free(sv);
        return rc;
    }
    sv->timer_inited = true;
    sv->pending_closes = 1; /* the timer; sockets and DNS requests add theirs */

    if (p->user && !(sv->user = px_strdup(p->user)))
        rc = UV_ENOMEM;
    if (rc == 0 && p->password && !(sv->password = px_strdup(p->password)))
        rc = UV_ENOMEM;
    sv->cancel_pid = p->cancel_pid;
    sv->cancel_key = p->cancel_key;
    if (rc == 0 && px->tls_ctx)
        sv->tls_ctx = px_tls_ctx_ref(px->tls_ctx);
    if (rc == 0 && p->purpose != PX_SERVER_FOR_CANCEL && p->user) {
        px_msg_fe_build_startup(&sv->out, p->user, p->database ? p->database : p->user,
                                p->client_startup, p->client_startup_len);
        if (sv->out.failed)
            rc = UV_ENOMEM;
    }
    if (rc) {
        px__server_close(sv, "cannot start");
        return rc;
    }
    sv->connect_timeout_ms = p->connect_timeout_ms > 0 ? p->connect_timeout_ms : 10000;
    sv->deadline_ms = uv_now(px->loop) + (uint64_t)sv->connect_timeout_ms;

    if (p->addr) {
        /* A known address: cancels go to the very server that runs the session. The connect
         * starts from a 0 ms timer so that every outcome reaches the owner from a callback. */
        size_t alen = p->addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                     : sizeof(struct sockaddr_in);
        memcpy(&sv->addr, p->addr, alen);
        sv->fixed_addr = true;
        uv_timer_start(&sv->timer, on_kick, 0, 0);
        *out = sv;
        return 0;
    }

    char port[16];
    snprintf(port, sizeof(port), "%d", sv->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    px__server_set_state(sv, PX_SERVER_RESOLVING);
    rc = uv_getaddrinfo(px->loop, &sv->gai, on_gai, sv->host, port, &hints);
    if (rc) {
        /* Reported like any later failure: through on_fail, from a callback. */
        snprintf(sv->last_error, sizeof(sv->last_error),
                 "could not translate host name \"%s\" to address: %s", sv->host, uv_strerror(rc));
        uv_timer_start(&sv->timer, on_kick, 0, 0);
        *out = sv;
        return 0;
    }
    sv->gai_active = true;
    sv->pending_closes++;
    uv_timer_start(&sv->timer, on_connect_timeout, (uint64_t)sv->connect_timeout_ms, 0);
    *out = sv;
    return 0;
}
