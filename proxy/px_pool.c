/*
 * Session pooling ([pool] pool_mode = session): when a client leaves between transactions, its
 * upstream session is reset with server_reset_query and parked in px->pool (oldest first); the next
 * client whose startup packet is byte for byte the same (user, database and every parameter, so the
 * session's defaults are the ones it asked for) gets it instead of a new login. That skips the IAM
 * call, TCP, TLS and the login, and hands the client a warm backend (PostgreSQL's caches,
 * Redshift's slow session start).
 *
 * What is never reused: a session left inside a transaction, mid-message or mid-COPY, with a
 * request still running or extended-protocol messages not yet closed by a Sync (an implicit
 * transaction the reset would commit), after a FATAL error, with a cancel for it possibly still
 * on its way (it would hit the next client's query), whose reset failed or did not end idle,
 * older than server_lifetime, opened under an earlier configuration, or that sends anything but
 * notices and parameter changes while it waits. Those end as they would without pooling
 * (Terminate).
 *
 * The client of a pooled session sees a normal login: AuthenticationOk, the ParameterStatus set
 * the server reported last (kept from the relay's stream), the proxy's own BackendKeyData and
 * ReadyForQuery. Cancels reach the pooled server through the client's link to it, as always.
 */
#include "px_conn.h"

#include "px_alloc.h"
#include "px_err.h"
#include "px_log.h"

#include <stdio.h>
#include <string.h>

int px__pool_server_init(px_server_t *sv, const px_client_t *c)
{
    sv->cfg_gen = c->cfg_gen; /* the snapshot its credentials and settings came from */
    if (c->cfg->pool.mode != CFG_POOL_SESSION || !c->startup)
        return 0;
    sv->pool_key = px_malloc(c->startup_len);
    if (!sv->pool_key)
        return UV_ENOMEM;
    memcpy(sv->pool_key, c->startup, c->startup_len);
    sv->pool_key_len = (uint32_t)c->startup_len;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* ParameterStatus: the last value of each name, as the whole message the server sent.      */

static const char *param_name(const uint8_t *m, uint32_t total)
{
    const char *name, *value;
    if (total < PX_MSG_HDR ||
        !px_msg_be_parse_param(m + PX_MSG_HDR, total - PX_MSG_HDR, &name, &value))
        return NULL;
    return name;
}

void px__pool_note_param(px_server_t *sv, const uint8_t *m, uint32_t total)
{
    if (!sv->pool_key || sv->params_bad)
        return;
    const char *name = param_name(m, total);
    if (!name) {
        sv->params_bad = true;
        return;
    }
    /* Rare (login, SET of a reported setting, the reset): rebuilt without the old entry. */
    px_dbuf_t next;
    px_dbuf_init(&next, PX_POOL_PARAMS_MAX);
    size_t off = 0;
    while (off + PX_MSG_HDR <= sv->params.len) {
        const uint8_t *e = sv->params.data + off;
        uint32_t etotal = 1 + px_get_u32(e + 1);
        const char *ename = param_name(e, etotal);
        if (!ename || strcmp(ename, name) != 0)
            px_dbuf_put(&next, e, etotal);
        off += etotal;
    }
    px_dbuf_put(&next, m, total);
    if (next.failed) {
        px_dbuf_free(&next);
        sv->params_bad = true;
        return;
    }
    px_dbuf_free(&sv->params);
    sv->params = next;
}

/* ------------------------------------------------------------------------------------------ */
/* Into the pool.                                                                             */

/* Servers leave the pool by px__server_terminate or px__server_close too: their begin_close
 * calls this. */
void px__pool_forget(px_server_t *sv)
{
    if (px_list_empty(&sv->pool_link))
        return;
    px_list_remove(&sv->pool_link);
    sv->px->npool--;
    sv->px->stats.pool_idle = sv->px->npool;
}

static void on_reset_timeout(uv_timer_t *t)
{
    px_server_t *sv = container_of(t, px_server_t, timer);
    sv->px->stats.pool_resets_failed++;
    px_log_ctx(PX_LOG_WARN, sv->ctx, "server_reset_query did not finish in time; closing");
    px__server_close(sv, "reset timed out");
}

static void go_idle(px_server_t *sv)
{
    px_proxy_t *px = sv->px;
    const cfg_t *cfg = px->cfg;
    uv_timer_stop(&sv->timer);
    if (px->shutting_down || sv->cfg_gen != px->cfg_gen || cfg->pool.mode != CFG_POOL_SESSION ||
        cfg->pool.max_idle_servers == 0) {
        px__server_terminate(sv, "not kept in the pool");
        return;
    }
    while (px->npool >= (uint32_t)cfg->pool.max_idle_servers) {
        px_server_t *oldest = container_of(px->pool.next, px_server_t, pool_link);
        px__server_terminate(oldest, "pool full (max_idle_servers)");
    }
    px__server_set_state(sv, PX_SERVER_IDLE);
    sv->idle_ms = uv_now(px->loop);
    px_list_append(&px->pool, &sv->pool_link);
    px->npool++;
    px->stats.pool_idle = px->npool;
    px_log_ctx(PX_LOG_DEBUG, sv->ctx, "pooled (%u idle)", px->npool);
}

/* Messages from a server whose client has left: the reset's answers, then nothing but notices
 * and parameter changes. Returns false when the server was ended. */
static bool pool_message(px_server_t *sv, uint8_t type, const uint8_t *m, uint32_t total)
{
    switch (type) {
    case 'N':
        return true;
    case 'S':
        px__pool_note_param(sv, m, total);
        return true;
    case 'C': /* the reset's CommandComplete, rows or an empty query: all fine while resetting */
    case 'T':
    case 'D':
    case 'I':
        if (sv->state == PX_SERVER_RESETTING)
            return true;
        break;
    case 'Z':
        if (sv->state == PX_SERVER_RESETTING && total == PX_MSG_HDR + 1 && m[PX_MSG_HDR] == 'I') {
            go_idle(sv);
            return sv->state == PX_SERVER_IDLE;
        }
        break;
    case 'E': {
        px_be_error_t e;
        bool ok = px_msg_be_parse_error(m + PX_MSG_HDR, total - PX_MSG_HDR, &e);
        if (sv->state == PX_SERVER_RESETTING) {
            sv->px->stats.pool_resets_failed++;
            px_log_ctx(PX_LOG_WARN, sv->ctx,
                       "server_reset_query failed, session not reused: sqlstate=%s message=\"%s\"",
                       ok && e.sqlstate ? e.sqlstate : "?", ok && e.message ? e.message : "");
        } else {
            px_log_ctx(PX_LOG_INFO, sv->ctx, "idle pooled session ended by the server: %s",
                       ok && e.message ? e.message : "error");
        }
        px__server_terminate(sv, "error from the server while pooled");
        return false;
    }
    default:
        break;
    }
    px_log_ctx(PX_LOG_DEBUG, sv->ctx, "unexpected message type 0x%02x while %s; not reused", type,
               sv->state == PX_SERVER_RESETTING ? "resetting" : "pooled");
    px__server_terminate(sv, "unexpected message while pooled");
    return false;
}

static void pool_read(px_server_t *sv)
{
    px_sock_t *s = &sv->sock;
    for (;;) {
        while ((sv->state == PX_SERVER_RESETTING || sv->state == PX_SERVER_IDLE) &&
               px_sock_unread(s) >= PX_MSG_HDR) {
            const uint8_t *m = px_sock_data(s) + s->pos;
            uint32_t len = px_get_u32(m + 1);
            if (len < 4 || len > px_sock_cap(s) - 1) {
                px__server_close(sv, "invalid or oversized message while pooled");
                return;
            }
            if (px_sock_unread(s) < 1 + len)
                break;
            s->pos += 1 + len;
            if (!pool_message(sv, m[0], m, 1 + len))
                return;
        }
        int n = px_sock_refill(s);
        if (n > 0)
            continue;
        if (n < 0) {
            px__server_close(sv, "connection lost while pooled");
            return;
        }
        break;
    }
    px_sock_read_start(s);
}

void px__pool_server_event(px_server_t *sv, px_sock_ev_t ev, int status)
{
    (void)status;
    switch (ev) {
    case PX_EV_READ:
        pool_read(sv);
        return;
    case PX_EV_EOF:
    case PX_EV_ERROR:
        if (sv->state == PX_SERVER_RESETTING)
            sv->px->stats.pool_resets_failed++;
        px__server_close(sv, "server closed the connection while pooled");
        return;
    default:
        return;
    }
}

static const char *not_reusable(const px_client_t *c, const px_server_t *sv)
{
    const px_proxy_t *px = c->px;
    if (!sv->pool_key || sv->params_bad)
        return "not poolable";
    if (px->shutting_down || c->draining)
        return "shutting down";
    if (sv->cfg_gen != px->cfg_gen || px->cfg->pool.mode != CFG_POOL_SESSION)
        return "configuration changed";
    if (c->state != PX_CLIENT_ACTIVE || sv->state != PX_SERVER_ACTIVE)
        return "session not open";
    /* Extended-protocol messages without their Sync may hold an implicit transaction open,
     * which the reset would commit. */
    if (c->rfq_seen != c->rfq_expected || c->txstatus != 'I' || c->copy_in || c->unsynced)
        return "transaction or request in progress";
    if (c->in_s2c)
        return "closed while relaying a server message";
    uint64_t now = uv_now(px->loop);
    if (sv->cancel_ms &&
        now - sv->cancel_ms < (uint64_t)c->cfg->upstream.connect_timeout * 1000 + 1000)
        return "a cancel request for it may still be on its way";
    if (!px_framer_at_boundary(&c->c2s) || !px_framer_at_boundary(&c->s2c) || c->c2s_cut ||
        c->body_mode != PX_BODY_FORWARD)
        return "in the middle of a message";
    if (c->fatal_seen || sv->sock.closing || sv->sock.error_reported || !sv->sock.inited)
        return "server connection failing";
    if (now - sv->born_ms >= (uint64_t)px->cfg->pool.server_lifetime * 1000)
        return "older than server_lifetime";
    return NULL;
}

bool px__pool_release(px_client_t *c)
{
    px_server_t *sv = c->server;
    if (!sv || c->cfg->pool.mode != CFG_POOL_SESSION)
        return false;
    const char *why = not_reusable(c, sv);
    if (why) {
        px_log_ctx(PX_LOG_DEBUG, sv->ctx, "not pooled: %s", why);
        return false;
    }
    const char *reset = c->px->cfg->pool.server_reset_query;
    px_dbuf_t q;
    px_dbuf_init(&q, PX_MSG_SMALL_LIMIT);
    if (reset[0]) {
        size_t lp = px_dbuf_frame_begin(&q, 'Q');
        px_dbuf_put_str(&q, reset);
        px_dbuf_frame_end(&q, lp);
    }
    int rc = q.failed ? UV_ENOMEM : 0;
    if (rc == 0 && q.len > 0)
        rc = px_sock_write_copy(&sv->sock, q.data, q.len);
    px_dbuf_free(&q);
    if (rc) {
        px_log_ctx(PX_LOG_DEBUG, sv->ctx, "not pooled: %s", px_strerror(rc));
        return false;
    }
    /* The server is ours now: the client closes without touching it. */
    c->server = NULL;
    sv->client = NULL;
    sv->owner = NULL;
    sv->owner_arg = NULL;
    px__server_set_state(sv, PX_SERVER_RESETTING);
    if (!reset[0]) {
        go_idle(sv);
        if (sv->state == PX_SERVER_IDLE)
            pool_read(sv); /* what is buffered already: only notices and parameters may be */
        return true;
    }
    uv_timer_stop(&sv->timer);
    uv_timer_start(&sv->timer, on_reset_timeout, (uint64_t)c->cfg->upstream.connect_timeout * 1000,
                   0);
    /* Whatever the relay left unread (it may have stopped for the client's backpressure) is
     * parsed here like the rest. */
    pool_read(sv);
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Out of the pool.                                                                           */

static void retitle(px_server_t *sv, uint32_t id)
{
    /* "S-<id> user@db host:port": the new client's id, the rest unchanged. */
    const char *rest = strchr(sv->ctx, ' ');
    char tail[sizeof(sv->ctx)];
    snprintf(tail, sizeof(tail), "%s", rest ? rest + 1 : "");
    snprintf(sv->ctx, sizeof(sv->ctx), "S-%u %.420s", id, tail);
    sv->id = id;
}

bool px__pool_take(px_client_t *c)
{
    px_proxy_t *px = c->px;
    if (c->cfg->pool.mode != CFG_POOL_SESSION || !c->startup || px->npool == 0)
        return false;
    uint64_t now = uv_now(px->loop);
    px_server_t *sv = NULL;
    px_list_t *pos;
    /* The most recently used first: its backend is the warmest. */
    for (pos = px->pool.prev; pos != &px->pool; pos = pos->prev) {
        px_server_t *cand = container_of(pos, px_server_t, pool_link);
        if (cand->pool_key_len == c->startup_len && cand->cfg_gen == px->cfg_gen &&
            c->cfg_gen == px->cfg_gen && !cand->params_bad &&
            now - cand->born_ms < (uint64_t)px->cfg->pool.server_lifetime * 1000 &&
            memcmp(cand->pool_key, c->startup, c->startup_len) == 0) {
            sv = cand;
            break;
        }
    }
    if (!sv)
        return false;
    /* What a login would have sent: AuthenticationOk, the parameters, our key, idle. */
    px_dbuf_t b;
    px_dbuf_init(&b, PX_POOL_PARAMS_MAX + 64);
    static const uint8_t auth_ok[9] = {'R', 0, 0, 0, 8, 0, 0, 0, 0};
    px_dbuf_put(&b, auth_ok, sizeof(auth_ok));
    px_dbuf_put(&b, sv->params.data, sv->params.len);
    px_msg_be_build_keydata(&b, c->id, c->cancel_key);
    static const uint8_t rfq[6] = {'Z', 0, 0, 0, 5, 'I'};
    px_dbuf_put(&b, rfq, sizeof(rfq));
    if (b.failed) {
        px_dbuf_free(&b);
        return false;
    }
    px__pool_forget(sv);
    retitle(sv, c->id);
    sv->client = c;
    c->server = sv;
    sv->reuses++;
    px->stats.pool_reused++;
    px__client_set_state(c, PX_CLIENT_CONNECTING);
    px__client_set_state(c, PX_CLIENT_LOGIN_PARAMS);
    int rc = px_sock_write_copy(&c->sock, b.data, b.len);
    px_dbuf_free(&b);
    if (rc) {
        px__client_close(c, "client went away during login");
        return true;
    }
    px_log_ctx(PX_LOG_DEBUG, c->ctx, "reusing pooled upstream session (reuse %u, idle %llu ms)",
               sv->reuses, (unsigned long long)(now - sv->idle_ms));
    c->txstatus = 'I';
    px__cancel_register(px, c);
    px__relay_activate(c, sv);
    px_sock_read_start(&sv->sock);
    px__relay_c2s(c); /* bytes the client sent early */
    return true;
}

void px__pool_sweep(px_proxy_t *px, bool all)
{
    const cfg_t *cfg = px->cfg;
    uint64_t now = uv_now(px->loop);
    px_list_t *pos, *tmp;
    px_list_for_each_safe(pos, tmp, &px->pool)
    {
        px_server_t *sv = container_of(pos, px_server_t, pool_link);
        const char *why = NULL;
        if (all)
            why = "shutting down";
        else if (sv->cfg_gen != px->cfg_gen || cfg->pool.mode != CFG_POOL_SESSION)
            why = "configuration changed";
        else if (now - sv->idle_ms >= (uint64_t)cfg->pool.server_idle_timeout * 1000)
            why = "server_idle_timeout";
        else if (now - sv->born_ms >= (uint64_t)cfg->pool.server_lifetime * 1000)
            why = "server_lifetime";
        if (why)
            px__server_terminate(sv, why);
    }
}
