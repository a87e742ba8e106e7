/*
 * Client connections: the startup exchange (SSLRequest and GSSENCRequest answered 'N',
 * CancelRequest, StartupMessage with PostgreSQL 15's checks, NegotiateProtocolVersion), client
 * authentication (trust, loopback-only unless allowed; SCRAM-SHA-256 against the auth file), the
 * wait for IAM credentials, the upstream login, and the one close path.
 *
 * The client never sees AuthenticationOk before the upstream has accepted the login, so a
 * refused login reaches it as a login error (upstream's own ErrorResponse, or 08001 with the
 * reason). Relaying after login lives in px_relay.c; this file decides what the connection is
 * doing, px_sock moves its bytes.
 */
#include "px_conn.h"

#include "px_alloc.h"
#include "px_err.h"
#include "px_log.h"

#include <assert.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const client_state_names[PX_CLIENT_NSTATES] = {
    "startup", "auth", "creds", "connecting", "login_params", "active", "closing",
};

/* Legal transitions (STYLE.md 7.8). Any state may go to CLOSING. */
static const bool client_allowed[PX_CLIENT_NSTATES][PX_CLIENT_NSTATES] = {
    [PX_CLIENT_STARTUP] =
        {[PX_CLIENT_AUTH] = true, [PX_CLIENT_CREDS] = true, [PX_CLIENT_CONNECTING] = true},
    [PX_CLIENT_AUTH] = {[PX_CLIENT_CREDS] = true, [PX_CLIENT_CONNECTING] = true},
    [PX_CLIENT_CREDS] = {[PX_CLIENT_CONNECTING] = true},
    [PX_CLIENT_CONNECTING] = {[PX_CLIENT_LOGIN_PARAMS] = true},
    [PX_CLIENT_LOGIN_PARAMS] = {[PX_CLIENT_ACTIVE] = true},
    [PX_CLIENT_ACTIVE] = {[PX_CLIENT_ACTIVE] = false},
    [PX_CLIENT_CLOSING] = {[PX_CLIENT_CLOSING] = false},
};

void px__client_set_state(px_client_t *c, px_client_state_t next)
{
    if (next != PX_CLIENT_CLOSING && !client_allowed[c->state][next]) {
        /* Corrupted internal state: loud in the log, fatal in debug builds. */
        px_log_ctx(PX_LOG_ERROR, c->ctx, "illegal state transition %s -> %s",
                   client_state_names[c->state], client_state_names[next]);
        assert(!"illegal client state transition");
    }
    px_log_ctx(PX_LOG_TRACE, c->ctx, "state %s -> %s", client_state_names[c->state],
               client_state_names[next]);
    px_proxy_t *px = c->px;
    px_list_remove(&c->link);
    px->nclients[c->state]--;
    c->state = next;
    px_list_append(&px->clients[next], &c->link);
    px->nclients[next]++;
}

void px__client_update_ctx(px_client_t *c)
{
    if (c->st.user)
        snprintf(c->ctx, sizeof(c->ctx), "C-%u %s@%s %s", c->id, c->st.user, c->st.database,
                 c->peer);
    else
        snprintf(c->ctx, sizeof(c->ctx), "C-%u %s", c->id, c->peer);
}

/* ------------------------------------------------------------------------------------------ */

static void client_free(px_client_t *c)
{
    px_proxy_t *px = c->px;
    px_list_remove(&c->link);
    px->nclients[c->state]--;
    px->stats.bytes_from_clients += c->sock.bytes_in;
    px->stats.bytes_to_clients += c->sock.bytes_out;
    if (c->scram)
        auth_scram_server_free(c->scram);
    if (c->icpt)
        px__icpt_free(c->icpt);
    px_free(c->startup);
    cfg_unref(c->cfg);
    px_free(c);
    px__proxy_client_gone(px);
}

static void maybe_free(px_client_t *c)
{
    if (c->state == PX_CLIENT_CLOSING && c->pending_closes == 0)
        client_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    px_client_t *c = container_of(h, px_client_t, timer);
    c->pending_closes--;
    maybe_free(c);
}

static void close_timer(px_client_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void on_close_deadline(uv_timer_t *t)
{
    px_client_t *c = container_of(t, px_client_t, timer);
    /* The client did not take its last bytes in time, or kept sending after them. */
    px_sock_close(&c->sock);
    close_timer(c);
}

/* How the client's socket goes: at once, after our last bytes, or after them while its own
 * last bytes are drained (see px_sock_close_lingering). */
typedef enum { CLOSE_NOW, CLOSE_FLUSH, CLOSE_LINGER } close_how_t;

static void client_close(px_client_t *c, const char *reason, close_how_t how)
{
    /* With CLOSE_LINGER: the rest of the message the client is in the middle of. */
    uint64_t msg_left = c->state >= PX_CLIENT_LOGIN_PARAMS ? c->c2s.body_left : 0;
    if (c->state == PX_CLIENT_CLOSING)
        return;
    px_log_level_t lvl = c->state >= PX_CLIENT_LOGIN_PARAMS ? PX_LOG_INFO : PX_LOG_DEBUG;
    px_log_ctx(lvl, c->ctx,
               "close reason=\"%s\" state=%s bytes_in=%llu bytes_out=%llu duration_ms=%llu", reason,
               client_state_names[c->state], (unsigned long long)c->sock.bytes_in,
               (unsigned long long)c->sock.bytes_out,
               (unsigned long long)(px_now_mono_ms() - c->started_ms));
    /* Session pooling: a server between transactions goes to the pool instead (and
     * c->server is cleared). */
    if (c->server && c->state == PX_CLIENT_ACTIVE)
        (void)px__pool_release(c);
    px__client_set_state(c, PX_CLIENT_CLOSING);
    if (c->iam_req) {
        auth_iam_cancel(c->iam_req);
        c->iam_req = NULL;
    }
    px__cancel_unregister(c->px, c);
    if (c->server && !c->terminating)
        px__cancel_inflight(c->px, c);
    if (c->server)
        px__server_terminate(c->server, "client closed");
    c->server = NULL;
    if (c->scram) {
        auth_scram_server_free(c->scram);
        c->scram = NULL;
    }
    uv_timer_stop(&c->timer);
    if (how == CLOSE_LINGER) {
        px_log_ctx(PX_LOG_DEBUG, c->ctx,
                   "draining the client's input (%llu bytes of its message "
                   "left) before the close",
                   (unsigned long long)msg_left);
        px_sock_close_lingering(&c->sock, msg_left);
    } else if (how == CLOSE_FLUSH)
        px_sock_close_graceful(&c->sock);
    else
        px_sock_close(&c->sock);
    if (!c->sock.closing)
        uv_timer_start(&c->timer, on_close_deadline, PX_CLOSE_FLUSH_MS, 0);
    else
        close_timer(c);
    maybe_free(c);
}

void px__client_close(px_client_t *c, const char *reason)
{
    client_close(c, reason, CLOSE_FLUSH);
}

void px__client_close_after_error(px_client_t *c, const char *reason)
{
    /* A client cut off in the middle of its message is still sending: drain it, so that it
     * can finish and read the error instead of meeting an RST. One between messages has
     * nothing in flight and is closed as soon as the error is out. */
    bool mid_input = px_sock_unread(&c->sock) > 0 ||
                     (c->state >= PX_CLIENT_LOGIN_PARAMS && !px_framer_at_boundary(&c->c2s));
    client_close(c, reason, mid_input ? CLOSE_LINGER : CLOSE_FLUSH);
}

/* Sends a whole ErrorResponse to the client if its stream is between messages. */
static void send_error(px_client_t *c, const char *severity, const char *sqlstate,
                       const char *message, const char *detail)
{
    if (!px_framer_at_boundary(&c->s2c) || c->sock.closing || c->sock.error_reported)
        return;
    px_dbuf_t b;
    px_dbuf_init(&b, 8192);
    px_msg_be_build_error(&b, severity, sqlstate, message, detail, NULL);
    if (!b.failed && px_sock_write_copy(&c->sock, b.data, b.len) != 0)
        px_log_ctx(PX_LOG_DEBUG, c->ctx, "could not send the error: client gone");
    px_dbuf_free(&b);
}

static void client_fail_detail(px_client_t *c, const char *sqlstate, const char *detail,
                               const char *fmt, va_list ap)
{
    if (c->state == PX_CLIENT_CLOSING)
        return;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    px_log_ctx(PX_LOG_INFO, c->ctx, "error sqlstate=%s message=\"%s\"", sqlstate, msg);
    send_error(c, "FATAL", sqlstate, msg, detail);
    px__client_close_after_error(c, msg);
}

void px__client_fail(px_client_t *c, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    client_fail_detail(c, sqlstate, NULL, fmt, ap);
    va_end(ap);
}

static void client_fail_d(px_client_t *c, const char *sqlstate, const char *detail, const char *fmt,
                          ...) PX_PRINTF(4, 5);
static void client_fail_d(px_client_t *c, const char *sqlstate, const char *detail, const char *fmt,
                          ...)
{
    va_list ap;
    va_start(ap, fmt);
    client_fail_detail(c, sqlstate, detail, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------------------------ */
/* Upstream login.                                                                            */

static void on_server_step(px_server_t *sv, px_server_step_t step, const char *detail)
{
    static const char *const names[] = {"dns", "tcp", "tls", "login"};
    px_client_t *c = sv->owner_arg;
    px_log_ctx(PX_LOG_DEBUG, c->ctx, "upstream %s ok: %s", names[step], detail);
}

static void on_server_ready(px_server_t *sv)
{
    px_client_t *c = sv->owner_arg;
    /* Only now does the client learn that the login worked. */
    static const uint8_t auth_ok[9] = {'R', 0, 0, 0, 8, 0, 0, 0, 0};
    int rc = px_sock_write_copy(&c->sock, auth_ok, sizeof(auth_ok));
    if (rc) {
        px__client_close(c, "client went away during login");
        return;
    }
    px__client_set_state(c, PX_CLIENT_LOGIN_PARAMS);
    px__relay_s2c(c);
}

static void on_server_fail(px_server_t *sv, const px_server_fail_t *f)
{
    px_client_t *c = sv->owner_arg;
    /* The server closes itself after this returns; make sure our close does not touch it. */
    c->server = NULL;
    sv->client = NULL;
    c->px->stats.logins_failed++;
    px_proxy_note_login_failed(c->px, f->code, f->sqlstate, f->be_error != NULL);
    px_log_ctx(PX_LOG_WARN, c->ctx, "upstream login failed sqlstate=%s error=\"%s\"", f->sqlstate,
               f->message);
    if (f->be_error && c->state != PX_CLIENT_CLOSING) {
        /* Upstream's own ErrorResponse (its SQLSTATE, e.g. 28P01), unchanged. */
        if (px_sock_write_copy(&c->sock, f->be_error, f->be_error_len) == 0)
            px__client_close_after_error(c, f->message);
        else
            client_close(c, f->message, CLOSE_NOW);
        return;
    }
    px__client_fail(c, f->sqlstate, "%s", f->message);
}

static const px_server_owner_t client_server_owner = {
    .on_step = on_server_step,
    .on_ready = on_server_ready,
    .on_fail = on_server_fail,
};

static void connect_upstream(px_client_t *c, const char *host, int port, const char *user,
                             const char *password)
{
    const cfg_t *cfg = c->cfg, *boot = c->px->boot;
    if (px__icpt_enabled(cfg) && !c->icpt && px__icpt_new(c) != 0) {
        px__client_fail(c, "53200", "out of memory");
        return;
    }
    px_server_params_t p = {
        .purpose = PX_SERVER_FOR_CLIENT,
        .host = host,
        .port = port,
        .user = user,
        .password = password,
        .database = boot->upstream.dbname && boot->upstream.dbname[0] ? boot->upstream.dbname
                                                                      : c->st.database,
        .client_startup = c->startup,
        .client_startup_len = c->startup_len,
        .connect_timeout_ms = cfg->upstream.connect_timeout * 1000,
    };
    px_server_t *sv = NULL;
    int rc = px__server_start(c->px, c->id, &p, &client_server_owner, c, &sv);
    if (rc) {
        px__client_fail(c, "08001", "could not start the upstream connection: %s", px_strerror(rc));
        return;
    }
    px__client_set_state(c, PX_CLIENT_CONNECTING);
    if (sv) {
        c->server = sv;
        sv->client = c;
        if (px__pool_server_init(sv, c) != 0)
            px__client_fail(c, "53200", "out of memory");
    }
}

static void on_iam_creds(const auth_db_creds_t *creds, const auth_iam_error_t *err, void *arg)
{
    px_client_t *c = arg;
    c->iam_req = NULL;
    if (c->state != PX_CLIENT_CREDS)
        return;
    px_proxy_note_iam(c->px, err);
    if (err) {
        c->px->stats.logins_failed++;
        px__client_fail(c, err->unreachable ? "08001" : "28000",
                        "could not get IAM database credentials: %s%s%s",
                        err->aws_code ? err->aws_code : "", err->aws_code ? ": " : "",
                        err->message ? err->message : px_strerror(err->code));
        return;
    }
    const cfg_t *boot = c->px->boot;
    const char *host = creds->host && creds->host[0] ? creds->host : boot->upstream.host;
    int port = creds->port > 0 ? creds->port : boot->upstream.port;
    connect_upstream(c, host, port, creds->db_user, creds->db_password);
}

static void begin_upstream(px_client_t *c)
{
    uv_timer_stop(&c->timer); /* the upstream side has its own connect_timeout */
    if (px__icpt_enabled(c->cfg) && !c->icpt && px__icpt_new(c) != 0) {
        px__client_fail(c, "53200", "out of memory");
        return;
    }
    if (px__pool_take(c))
        return; /* a pooled session for the same startup packet: no login needed */
    const cfg_t *cfg = c->cfg, *boot = c->px->boot;
    if (boot->upstream.auth == CFG_UPSTREAM_AUTH_IAM) {
        if (!c->px->iam) {
            px__client_fail(c, "28000", "IAM login is not available");
            return;
        }
        px__client_set_state(c, PX_CLIENT_CREDS);
        int rc = auth_iam_get_db_creds(c->px->iam, c->st.user, c->st.database, on_iam_creds, c,
                                       &c->iam_req);
        if (rc) {
            c->iam_req = NULL;
            px__client_fail(c, "28000", "could not request IAM database credentials: %s",
                            px_strerror(rc));
        }
        return;
    }
    const char *user =
        boot->upstream.user && boot->upstream.user[0] ? boot->upstream.user : c->st.user;
    connect_upstream(c, boot->upstream.host, boot->upstream.port, user, cfg->upstream.password);
}

/* ------------------------------------------------------------------------------------------ */
/* Client authentication.                                                                     */

static int send_auth(px_client_t *c, uint32_t code, const void *payload, size_t n)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 16384);
    px_msg_be_build_auth(&b, code, payload, n);
    int rc = b.failed ? UV_ENOMEM : px_sock_write_copy(&c->sock, b.data, b.len);
    px_dbuf_free(&b);
    return rc;
}

static void begin_scram(px_client_t *c)
{
    /* Known or not, the exchange runs against a stored verifier, so it costs a few HMACs and
     * never PBKDF2 on the loop: plaintext auth-file entries became verifiers when the file was
     * loaded, and an unknown user gets a mock verifier derived by HMAC from the per-process
     * secret and the name (the same salt on every attempt, as for a real user). The mock
     * exchange fails at the final step exactly like a wrong password, as in PostgreSQL. */
    char mock[PX_AUTHFILE_MOCK_MAX];
    bool known = false;
    const char *verifier =
        px_authfile_scram_verifier(c->px->authfile, c->px->mock_secret, sizeof(c->px->mock_secret),
                                   c->st.user, mock, sizeof(mock), &known);
    c->scram_known_user = known;
    /* px_authfile only ever hands out verifiers; the prefix check keeps a future change from
     * passing a password, which auth_scram_server_new would stretch right here on the loop. */
    if (!verifier || strncmp(verifier, "SCRAM-SHA-256$", 14) != 0) {
        px_wipe(mock, sizeof(mock));
        px__client_fail(c, "53200", "cannot prepare authentication");
        return;
    }
    int rc = auth_scram_server_new(verifier, NULL, &c->scram);
    px_wipe(mock, sizeof(mock));
    if (rc) {
        px__client_fail(c, "28000", "cannot start SCRAM authentication: %s", px_strerror(rc));
        return;
    }
    static const char mechs[] = "SCRAM-SHA-256\0"; /* plus the list's empty terminator */
    if (send_auth(c, AUTH_REQ_SASL, mechs, sizeof(mechs)) != 0) {
        px__client_close(c, "client went away during authentication");
        return;
    }
    px__client_set_state(c, PX_CLIENT_AUTH);
    px_sock_read_start(&c->sock);
}

static void on_auth_data(px_client_t *c)
{
    px_sock_t *s = &c->sock;
    while (c->state == PX_CLIENT_AUTH && px_sock_unread(s) >= PX_MSG_HDR) {
        const uint8_t *m = px_sock_data(s) + s->pos;
        uint32_t len = px_get_u32(m + 1);
        if (m[0] != 'p') {
            px__client_fail(c, "08P01", "expected SASL response, got message type %d", m[0]);
            return;
        }
        if (len < 4 || len > PX_MSG_SMALL_LIMIT) {
            px__client_fail(c, "08P01", "invalid message length");
            return;
        }
        if (px_sock_unread(s) < 1 + len)
            break;
        const uint8_t *body = m + PX_MSG_HDR;
        px_dbuf_t out;
        px_dbuf_init(&out, 16384);
        int rc;
        bool final = c->scram_step == 1;
        if (!final) {
            rc = auth_scram_server_first(c->scram, body, len - 4, &out);
            if (rc == 0)
                rc = out.failed ? UV_ENOMEM
                                : send_auth(c, AUTH_REQ_SASL_CONTINUE, out.data, out.len);
            c->scram_step = 1;
        } else {
            rc = auth_scram_server_final(c->scram, body, len - 4, &out);
            if (rc == 0 && !c->scram_known_user)
                rc = AUTH_E_FAILED;
            if (rc == 0)
                rc = out.failed ? UV_ENOMEM : send_auth(c, AUTH_REQ_SASL_FINAL, out.data, out.len);
        }
        px_dbuf_free_secret(&out);
        s->pos += 1 + len;
        px_sock_consumed(s);
        switch (rc) {
        case 0:
            break;
        case AUTH_E_FAILED:
            c->px->stats.clients_refused++;
            px__client_fail(c, "28P01", "password authentication failed for user \"%s\"",
                            c->st.user);
            return;
        case AUTH_E_MECH:
            px__client_fail(c, "08P01", "client selected an invalid SASL authentication mechanism");
            return;
        default:
            px__client_fail(c, "08P01", "malformed SCRAM message: %s", px_strerror(rc));
            return;
        }
        if (final) {
            auth_scram_server_free(c->scram);
            c->scram = NULL;
            px_log_ctx(PX_LOG_DEBUG, c->ctx, "client authenticated method=scram-sha-256");
            begin_upstream(c);
            return;
        }
    }
    if (c->state == PX_CLIENT_AUTH)
        px_sock_read_start(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Startup.                                                                                   */

static void begin_login(px_client_t *c)
{
    px_proxy_t *px = c->px;
    const cfg_t *cfg = c->cfg, *boot = px->boot;
    px__client_update_ctx(c);
    uint32_t live = 0;
    for (int i = 0; i < PX_CLIENT_CLOSING; i++)
        live += px->nclients[i];
    if (px->shutting_down) {
        px->stats.clients_refused++;
        px__client_fail(c, "57P03", "the database system is shutting down");
        return;
    }
    if (live > (uint32_t)cfg->proxy.max_client_conn) {
        px->stats.clients_refused++;
        px->stats.clients_refused_limit++;
        px__client_fail(c, "53300", "sorry, too many clients already");
        return;
    }
    if (c->st.need_negotiate) {
        px_dbuf_t b;
        px_dbuf_init(&b, PX_STARTUP_MAX + 64);
        px_msg_be_build_negotiate(&b, 0, c->st.pq_opts, c->st.npq_opts);
        int rc = b.failed ? UV_ENOMEM : px_sock_write_copy(&c->sock, b.data, b.len);
        px_dbuf_free(&b);
        if (rc) {
            px__client_close(c, "client went away during startup");
            return;
        }
    }
    px_log_ctx(PX_LOG_DEBUG, c->ctx, "startup protocol=%u.%u", PX_PROTO_MAJOR(c->st.version),
               PX_PROTO_MINOR(c->st.version));
    if (boot->proxy.client_auth == CFG_CLIENT_AUTH_SCRAM) {
        begin_scram(c);
        return;
    }
    if (!c->loopback && !boot->proxy.allow_remote_trust) {
        px->stats.clients_refused++;
        client_fail_d(c, "28000",
                      "Set [proxy] client_auth = scram-sha-256, or allow_remote_trust = true "
                      "on a trusted network.",
                      "client authentication \"trust\" is not allowed from non-loopback address "
                      "%s",
                      c->peer);
        return;
    }
    begin_upstream(c);
}

static void on_startup_data(px_client_t *c)
{
    px_sock_t *s = &c->sock;
    while (c->state == PX_CLIENT_STARTUP) {
        uint32_t avail = px_sock_unread(s);
        if (avail < 4)
            break;
        const uint8_t *p = px_sock_data(s) + s->pos;
        uint32_t len;
        px_msg_err_t err;
        if (!px_msg_fe_startup_len(p, &len, &err)) {
            c->px->stats.clients_refused++;
            px__client_fail(c, err.sqlstate, "%s", err.message);
            return;
        }
        if (avail < len)
            break;
        px_startup_t st;
        if (!px_msg_fe_parse_startup(p, len, &st, &err)) {
            c->px->stats.clients_refused++;
            px__client_fail(c, err.sqlstate, "%s", err.message);
            return;
        }
        switch (st.kind) {
        case PX_STARTUP_SSL:
        case PX_STARTUP_GSSENC: {
            bool ssl = st.kind == PX_STARTUP_SSL;
            bool *done = ssl ? &c->ssl_done : &c->gss_done;
            if (*done) {
                /* PostgreSQL treats a second request as a startup packet of protocol 1234.x. */
                px__client_fail(c, "0A000",
                                "unsupported frontend protocol 1234.%u: server supports 3.0 to "
                                "3.0",
                                ssl ? 5679u : 5680u);
                return;
            }
            *done = true;
            s->pos += len;
            /* Bytes that arrived with the request were sent before our answer: a client must
             * wait for it, so they can only be a bug or an injection (CVE-2021-23214). */
            if (px_sock_unread(s) > 0) {
                client_fail_d(c, "08P01",
                              "This could be either a client-software bug or evidence of an "
                              "attempted man-in-the-middle attack.",
                              ssl ? "received unencrypted data after SSL request"
                                  : "received unencrypted data after GSSAPI encryption request");
                return;
            }
            px_sock_consumed(s);
            static const uint8_t no = 'N';
            if (px_sock_write_copy(s, &no, 1) != 0) {
                px__client_close(c, "client went away during startup");
                return;
            }
            continue;
        }
        case PX_STARTUP_CANCEL:
            s->pos += len;
            px_sock_consumed(s);
            px__cancel_request(c->px, st.cancel_pid, st.cancel_key);
            client_close(c, "cancel request", CLOSE_NOW);
            return;
        case PX_STARTUP_V3:
            c->startup = px_malloc(len);
            if (!c->startup) {
                px__client_fail(c, "53200", "out of memory");
                return;
            }
            memcpy(c->startup, p, len);
            c->startup_len = len;
            /* Re-parse the copy so that user/database point into memory we own. */
            if (!px_msg_fe_parse_startup(c->startup, len, &c->st, &err)) {
                px__client_fail(c, err.sqlstate, "%s", err.message);
                return;
            }
            s->pos += len;
            px_sock_consumed(s);
            begin_login(c);
            return;
        }
    }
    if (c->state == PX_CLIENT_STARTUP)
        px_sock_read_start(s);
}

/* ------------------------------------------------------------------------------------------ */

static void client_sock_cb(px_sock_t *s, px_sock_ev_t ev, int status)
{
    px_client_t *c = container_of(s, px_client_t, sock);
    if (ev == PX_EV_CLOSED) {
        /* Only a closing client's socket closes; its timer was the close deadline. */
        c->pending_closes--;
        close_timer(c);
        maybe_free(c);
        return;
    }
    if (c->state == PX_CLIENT_CLOSING) {
        if (ev == PX_EV_EOF || ev == PX_EV_ERROR)
            px_sock_close(s);
        return;
    }
    switch (ev) {
    case PX_EV_READ:
        switch (c->state) {
        case PX_CLIENT_STARTUP:
            on_startup_data(c);
            return;
        case PX_CLIENT_AUTH:
            on_auth_data(c);
            return;
        case PX_CLIENT_ACTIVE:
            px__relay_c2s(c);
            return;
        default:
            /* Early bytes wait in the buffer until the session is up; reading stops by itself
             * when the buffer is full. */
            return;
        }
    case PX_EV_FLUSHED:
        if (c->state == PX_CLIENT_ACTIVE || c->state == PX_CLIENT_LOGIN_PARAMS)
            px__relay_s2c(c);
        return;
    case PX_EV_EOF:
        px__client_close(c, "client closed the connection");
        return;
    case PX_EV_ERROR: {
        char why[128];
        snprintf(why, sizeof(why), "client connection error: %s", px_strerror(status));
        client_close(c, why, CLOSE_NOW);
        return;
    }
    default:
        return;
    }
}

static void on_login_timeout(uv_timer_t *t)
{
    px_client_t *c = container_of(t, px_client_t, timer);
    if (c->state == PX_CLIENT_STARTUP || c->state == PX_CLIENT_AUTH)
        px__client_fail(c, "08006", "canceling authentication due to timeout");
}

void px__client_accept(px_proxy_t *px, uv_stream_t *server, bool pipe)
{
    px_client_t *c = px_calloc(1, sizeof(*c));
    if (!c) {
        px_log(PX_LOG_WARN, "accept: out of memory");
        px__proxy_reject(px, server, pipe);
        return;
    }
    c->px = px;
    c->cfg = cfg_ref(px->cfg);
    c->cfg_gen = px->cfg_gen;
    c->id = ++px->next_id ? px->next_id : ++px->next_id;
    c->started_ms = px_now_mono_ms();
    c->state = PX_CLIENT_STARTUP;
    px_list_init(&c->link);
    px_list_append(&px->clients[PX_CLIENT_STARTUP], &c->link);
    px->nclients[PX_CLIENT_STARTUP]++;
    px_framer_init(&c->c2s, PX_MSG_LARGE_LIMIT);
    px_framer_init(&c->s2c, 0x7fffffffu);
    if (RAND_bytes((uint8_t *)&c->cancel_key, sizeof(c->cancel_key)) != 1)
        c->cancel_key = (uint32_t)px_now_unix_ms() ^ (c->id * 2654435761u); /* never reached */
    px_sock_init(&c->sock, px->io, client_sock_cb);
    snprintf(c->peer, sizeof(c->peer), "?");
    px__client_update_ctx(c);

    uv_timer_init(px->loop, &c->timer);
    c->pending_closes = 1;
    int rc = px_sock_accept(&c->sock, server, pipe);
    if (c->sock.inited)
        c->pending_closes++;
    if (rc) {
        px_log(PX_LOG_WARN, "accept failed: %s", px_strerror(rc));
        client_close(c, "accept failed", CLOSE_NOW);
        return;
    }
    px->stats.clients_accepted++;
    px_sock_peer_name(&c->sock, c->peer, sizeof(c->peer), &c->loopback);
    px__client_update_ctx(c);
    px_log_ctx(PX_LOG_DEBUG, c->ctx, "accepted");

    /* A peer that never completes its startup is cut after PostgreSQL's authentication_timeout.
     * Clients beyond max_client_conn still get to send their startup packet and are then told
     * "too many clients" properly, unless even that would exhaust the process. */
    uint32_t total = 0;
    for (int i = 0; i < PX_CLIENT_NSTATES; i++)
        total += px->nclients[i];
    if (total > (uint32_t)c->cfg->proxy.max_client_conn * 2u + 64u) {
        px->stats.clients_refused++;
        px->stats.clients_refused_limit++;
        client_close(c, "too many connections", CLOSE_NOW);
        return;
    }
    uv_timer_start(&c->timer, on_login_timeout, PX_LOGIN_TIMEOUT_MS, 0);
    px_sock_read_start(&c->sock);
}

void px__client_drain_check(px_client_t *c)
{
    switch (c->state) {
    case PX_CLIENT_STARTUP:
    case PX_CLIENT_AUTH:
    case PX_CLIENT_CREDS:
    case PX_CLIENT_CONNECTING:
        px__client_fail(c, "57P03", "the database system is shutting down");
        return;
    case PX_CLIENT_LOGIN_PARAMS:
        c->draining = true;
        return;
    case PX_CLIENT_ACTIVE:
        c->draining = true;
        if (c->rfq_seen == c->rfq_expected && c->txstatus != 'T' && c->txstatus != 'E' &&
            px_framer_at_boundary(&c->c2s) && px_framer_at_boundary(&c->s2c))
            px__client_fail(c, "57P01", "terminating connection due to administrator command");
        return;
    default:
        return;
    }
}
