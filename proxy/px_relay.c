/*
 * The relay: every message after login, both ways, forwarded by length straight out of the
 * source's read buffer (pgbouncer's design). Only the 5-byte header of each message is looked at;
 * a message larger than the buffer streams through in pieces. The few messages the proxy acts on
 * are examined whole: ReadyForQuery (transaction state, in-flight count), BackendKeyData
 * (replaced by the proxy's own key), ErrorResponse (FATAL tracking and refusal substitution),
 * Terminate, and Query/Parse when COPY/UNLOAD rewriting is on (px_intercept.c).
 *
 * Backpressure: a side is read only while the other side has no queued writes; the bytes of a
 * queued write stay valid because its buffer is reference-counted and not reused meanwhile. One
 * write per read batch in the common case, no allocation per message, no copies except what TLS
 * itself needs.
 */
#include "px_conn.h"

#include "px_err.h"
#include "px_log.h"

#include <stdio.h>
#include <string.h>

typedef enum relay_result {
    RELAY_OK = 0,
    RELAY_CLOSED, /* the connection was closed (or failed) */
} relay_result_t;

/* ------------------------------------------------------------------------------------------ */

void px__relay_upstream_lost(px_client_t *c, const char *why)
{
    px_server_t *sv = c->server;
    if (sv) {
        c->server = NULL;
        sv->client = NULL;
        px__server_close(sv, why);
    }
    if (c->state == PX_CLIENT_CLOSING)
        return;
    px_log_ctx(PX_LOG_INFO, c->ctx, "upstream lost: %s", why);
    if (c->fatal_seen) {
        /* The server said why in its own FATAL error; another message would only confuse. */
        px__client_close_after_error(c, why);
        return;
    }
    /* libpq's words for this situation; the client gets them only between messages (a message
     * cut in half can only be followed by the close). */
    px__client_fail(c, "08006", "server closed the connection unexpectedly");
}

static relay_result_t flush_s2c(px_client_t *c, px_sock_t *src, uint32_t *sent)
{
    if (src->pos <= *sent)
        return RELAY_OK;
    int rc = px_sock_write_borrowed(&c->sock, src, px_sock_data(src) + *sent, src->pos - *sent);
    *sent = src->pos;
    if (rc) {
        char why[128];
        snprintf(why, sizeof(why), "client connection error: %s", px_strerror(rc));
        px__client_close(c, why);
        return RELAY_CLOSED;
    }
    return RELAY_OK;
}

bool px__relay_flush_c2s(px_client_t *c, uint32_t *sent)
{
    px_sock_t *src = &c->sock;
    if (src->pos <= *sent)
        return true;
    px_server_t *sv = c->server;
    if (!sv)
        return false;
    int rc = px_sock_write_borrowed(&sv->sock, src, px_sock_data(src) + *sent, src->pos - *sent);
    *sent = src->pos;
    if (rc) {
        char why[160];
        snprintf(why, sizeof(why), "write to server failed: %s",
                 sv->sock.tls && px_tls_errcode(sv->sock.tls) ? px_tls_errmsg(sv->sock.tls)
                                                              : px_strerror(rc));
        px__relay_upstream_lost(c, why);
        return false;
    }
    return true;
}

/* Writes a message the proxy built to the client, after what has been forwarded so far. */
static relay_result_t inject_s2c(px_client_t *c, const void *p, size_t n)
{
    int rc = px_sock_write_copy(&c->sock, p, n);
    if (rc) {
        px__client_close(c, "client connection error while writing");
        return RELAY_CLOSED;
    }
    return RELAY_OK;
}

void px__relay_activate(px_client_t *c, px_server_t *sv)
{
    bool pooled = sv->state == PX_SERVER_IDLE;
    uv_timer_stop(&sv->timer); /* connect_timeout covered the login up to here */
    /* The handshake and login left OpenSSL's record buffers (about 34 KB) behind. Give them
     * back now rather than after the idle period: a burst of logins then does not hold a set
     * per session at once, whose holes would keep the heap from shrinking afterwards. The
     * first query allocates them again, once. */
    (void)px_sock_trim_idle(&sv->sock, uv_now(c->px->loop), 0);
    px__client_set_state(c, PX_CLIENT_ACTIVE);
    px__server_set_state(sv, PX_SERVER_ACTIVE);
    if (pooled) {
        px_log_ctx(PX_LOG_INFO, c->ctx, "login ok upstream=%s:%d (%s) pooled session %s", sv->host,
                   sv->port, sv->addr_str, sv->ctx);
        return;
    }
    sv->born_ms = uv_now(c->px->loop);
    c->px->stats.logins_ok++;
    px_proxy_note_login_ok(c->px);
    px_log_ctx(PX_LOG_INFO, c->ctx, "login ok upstream=%s:%d (%s) tls=%s login_ms=%llu", sv->host,
               sv->port, sv->addr_str, sv->sock.tls ? px_tls_version(sv->sock.tls) : "off",
               (unsigned long long)(px_now_mono_ms() - c->started_ms));
}

/* ------------------------------------------------------------------------------------------ */
/* Server to client.                                                                          */

static relay_result_t scan_s2c(px_client_t *c, px_server_t *sv, bool *kick_c2s)
{
    px_sock_t *src = &sv->sock;
    uint8_t *d = px_sock_data(src);
    uint32_t cap = px_sock_cap(src);
    uint32_t sent = src->pos;
    while (src->pos < src->end) {
        px_frame_t f;
        px_framer_step(&c->s2c, d + src->pos, src->end - src->pos, &f);
        if (f.ev == PX_FRAME_BODY) {
            src->pos += (uint32_t)f.n;
            continue;
        }
        if (f.ev == PX_FRAME_NEED)
            break;
        if (f.ev == PX_FRAME_BAD) {
            if (flush_s2c(c, src, &sent) != RELAY_OK)
                return RELAY_CLOSED;
            px_log_ctx(PX_LOG_WARN, c->ctx,
                       "server sent an invalid message length %u (type 0x%02x)", f.len, f.type);
            px__relay_upstream_lost(c, "server sent an invalid message length");
            return RELAY_CLOSED;
        }
        uint32_t total = 1 + f.len;
        uint32_t avail = src->end - src->pos;
        px_log_ctx(PX_LOG_TRACE, c->ctx, "s2c type=%c len=%u", f.type >= 32 ? f.type : '?', f.len);
        bool whole = f.type == 'Z' || f.type == 'E' || f.type == 'K' || f.type == 'S';
        if (f.type == 'G')
            c->copy_in = true;
        if (!whole || total > cap) {
            /* Forwarded as it comes; an ErrorResponse too large to hold cannot be one of ours.
             * A body already in the buffer is passed over at once rather than in a second
             * framer step (most messages arrive whole: one step each instead of two). */
            if (f.type == 'S')
                sv->params_bad = true; /* a parameter too large to keep: never pooled */
            if (avail >= total) {
                c->s2c.body_left = 0;
                src->pos += total;
            } else {
                src->pos += (uint32_t)f.n;
            }
            continue;
        }
        /* The proxy looks at this one: it is handled whole, so the framer skips its body. */
        c->s2c.body_left = 0;
        if (avail < total)
            break; /* wait for the rest (the buffer compacts to make room) */
        const uint8_t *body = d + src->pos + PX_MSG_HDR;
        size_t blen = f.len - 4;
        switch (f.type) {
        case 'Z': {
            uint8_t st;
            if (!px_msg_be_parse_rfq(body, blen, &st)) {
                if (flush_s2c(c, src, &sent) != RELAY_OK)
                    return RELAY_CLOSED;
                px__relay_upstream_lost(c, "server sent a malformed ReadyForQuery");
                return RELAY_CLOSED;
            }
            px_proxy_stats_rfq(&c->px->stats, c->txstatus, st);
            c->txstatus = st;
            if (c->state == PX_CLIENT_LOGIN_PARAMS) {
                px__relay_activate(c, sv);
                *kick_c2s = true;
            } else if (c->rfq_seen < c->rfq_expected) {
                c->rfq_seen++;
            }
            if (c->icpt)
                px__icpt_server_rfq(c);
            src->pos += total;
            break;
        }
        case 'E': {
            px_be_error_t e;
            if (px_msg_be_parse_error(body, blen, &e)) {
                if (e.severity &&
                    (strcmp(e.severity, "FATAL") == 0 || strcmp(e.severity, "PANIC") == 0))
                    c->fatal_seen = true;
                if (px__icpt_watching_errors(c)) {
                    px_dbuf_t rep;
                    px_dbuf_init(&rep, 64 * 1024);
                    if (px__icpt_server_error(c, body, blen, &rep)) {
                        if (flush_s2c(c, src, &sent) != RELAY_OK) {
                            px_dbuf_free(&rep);
                            return RELAY_CLOSED;
                        }
                        relay_result_t r = RELAY_OK;
                        if (!rep.failed)
                            r = inject_s2c(c, rep.data, rep.len);
                        px_dbuf_free(&rep);
                        src->pos += total;
                        sent = src->pos;
                        if (r != RELAY_OK)
                            return r;
                        break;
                    }
                    px_dbuf_free(&rep);
                }
            }
            src->pos += total;
            break;
        }
        case 'K': {
            /* Upstream's key stays here; the client gets the proxy's, so its CancelRequest comes
             * to us (and reaches the right server through px_cancel.c). */
            uint32_t pid, key;
            if (!px_msg_be_parse_keydata(body, blen, &pid, &key)) {
                if (flush_s2c(c, src, &sent) != RELAY_OK)
                    return RELAY_CLOSED;
                px__relay_upstream_lost(c, "server sent a malformed BackendKeyData");
                return RELAY_CLOSED;
            }
            sv->be_pid = pid;
            sv->be_key = key;
            sv->have_key = true;
            px__cancel_register(c->px, c);
            if (flush_s2c(c, src, &sent) != RELAY_OK)
                return RELAY_CLOSED;
            uint8_t ours[13] = {'K', 0, 0, 0, 12};
            px_put_u32(ours + 5, c->id);
            px_put_u32(ours + 9, c->cancel_key);
            src->pos += total;
            sent = src->pos;
            if (inject_s2c(c, ours, sizeof(ours)) != RELAY_OK)
                return RELAY_CLOSED;
            break;
        }
        case 'S':
            /* Kept for a client that gets this session from the pool (px_pool.c). */
            px__pool_note_param(sv, d + src->pos, total);
            src->pos += total;
            break;
        default:
            src->pos += total;
            break;
        }
    }
    return flush_s2c(c, src, &sent);
}

void px__relay_s2c(px_client_t *c)
{
    px_server_t *sv = c->server;
    if (!sv || (c->state != PX_CLIENT_ACTIVE && c->state != PX_CLIENT_LOGIN_PARAMS))
        return;
    px_sock_t *src = &sv->sock, *dst = &c->sock;
    bool kick_c2s = false;
    for (;;) {
        if (px_sock_write_pending(dst)) {
            /* Resumed by the client's PX_EV_FLUSHED. */
            px_sock_read_stop(src);
            goto out;
        }
        /* Whatever was examined before has been written: the buffer space is free again. */
        px_sock_consumed(src);
        if (px_sock_unread(src) > 0) {
            c->in_s2c = true;
            relay_result_t r = scan_s2c(c, sv, &kick_c2s);
            c->in_s2c = false;
            if (r != RELAY_OK)
                return;
            if (c->server != sv || c->state == PX_CLIENT_CLOSING)
                return;
            if (px_sock_write_pending(dst)) {
                px_sock_read_stop(src);
                goto out;
            }
            px_sock_consumed(src);
        }
        if (src->tls) {
            int n = px_sock_tls_fill(src);
            if (n > 0)
                continue;
            if (n < 0) {
                px__relay_upstream_lost(c, n == UV_EOF ? "server closed the connection"
                                                       : px_tls_errmsg(src->tls));
                return;
            }
        }
        break;
    }
    px_sock_read_start(src);
out:
    if (kick_c2s)
        px__relay_c2s(c); /* early client bytes waited for the session to open */
    if (c->draining && c->state == PX_CLIENT_ACTIVE)
        px__client_drain_check(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Client to server.                                                                          */

static relay_result_t client_protocol_error(px_client_t *c, uint32_t *sent, const char *fmt,
                                            unsigned arg)
{
    /* What came before the bad message is still passed on, as PostgreSQL would have processed
     * it before reading the bad one. */
    if (!px__relay_flush_c2s(c, sent))
        return RELAY_CLOSED;
    px__client_fail(c, "08P01", fmt, arg);
    return RELAY_CLOSED;
}

static relay_result_t scan_c2s(px_client_t *c)
{
    px_sock_t *src = &c->sock;
    uint8_t *d = px_sock_data(src);
    uint32_t sent = src->pos;
    while (src->pos < src->end && !c->terminating) {
        px_frame_t f;
        px_framer_step(&c->c2s, d + src->pos, src->end - src->pos, &f);
        if (f.ev == PX_FRAME_BODY) {
            if (c->body_mode == PX_BODY_FORWARD) {
                src->pos += (uint32_t)f.n;
                continue;
            }
            if (c->body_mode == PX_BODY_SCAN) {
                /* Forwarded with the rest at the next flush, once looked at. */
                bool last = px_framer_at_boundary(&c->c2s);
                if (!px__icpt_client_scan(c, d + src->pos, f.n))
                    return RELAY_CLOSED;
                src->pos += (uint32_t)f.n;
                if (last)
                    c->body_mode = PX_BODY_FORWARD;
                continue;
            }
            /* A message being collected for rewriting, or discarded: not forwarded. */
            if (!px__relay_flush_c2s(c, &sent))
                return RELAY_CLOSED;
            bool last = px_framer_at_boundary(&c->c2s);
            const uint8_t *p = d + src->pos;
            src->pos += (uint32_t)f.n;
            sent = src->pos;
            if (last)
                c->body_mode = PX_BODY_FORWARD;
            if (!px__icpt_client_body(c, p, f.n, last))
                return RELAY_CLOSED;
            if (c->state != PX_CLIENT_ACTIVE)
                return RELAY_CLOSED;
            continue;
        }
        if (f.ev == PX_FRAME_NEED)
            break;
        if (f.ev == PX_FRAME_BAD)
            return client_protocol_error(c, &sent, "invalid message length %u", f.len);
        uint32_t limit = px_msg_fe_limit(f.type);
        if (limit == 0) {
            c->c2s.body_left = 0;
            return client_protocol_error(c, &sent, "invalid frontend message type %u", f.type);
        }
        if (f.len > limit) {
            c->c2s.body_left = 0;
            return client_protocol_error(c, &sent, "invalid message length %u", f.len);
        }
        px_log_ctx(PX_LOG_TRACE, c->ctx, "c2s type=%c len=%u", f.type, f.len);
        switch (f.type) {
        case 'B':
        case 'D':
        case 'C':
        case 'H':
            c->unsynced = true;
            break;
        case 'X':
            /* Forward Terminate, then close both sides cleanly once it is out. Under session
             * pooling it is held back: the server may serve the next client, and
             * px__server_terminate sends one of its own if it does not. */
            if (c->cfg->pool.mode == CFG_POOL_SESSION) {
                if (!px__relay_flush_c2s(c, &sent))
                    return RELAY_CLOSED;
                sent = src->pos + (uint32_t)f.n;
                c->x_withheld = true;
            }
            src->pos += (uint32_t)f.n;
            c->terminating = true;
            continue;
        case 'S':
            c->syncs_since_exec++;
            c->unsynced = false;
            /* fallthrough */
        case 'F':
            c->rfq_expected++;
            break;
        case 'E':
            c->syncs_since_exec = 0;
            c->unsynced = true;
            break;
        case 'c':
        case 'f':
            if (c->copy_in) {
                /* CopyDone/CopyFail: the Syncs since the Execute reached a server in copy-in
                 * mode, which ignored them. */
                uint64_t open = c->rfq_expected - c->rfq_seen;
                c->rfq_expected -= c->syncs_since_exec < open ? c->syncs_since_exec : open;
                c->syncs_since_exec = 0;
                c->copy_in = false;
            }
            break;
        case 'Q':
            c->syncs_since_exec = 0;
            c->rfq_expected++;
            /* fallthrough */
        case 'P':
            if (f.type == 'P')
                c->unsynced = true;
            if (c->icpt) {
                px_icpt_action_t a = px__icpt_client_msg(c, f.type, f.len, &sent);
                switch (a) {
                case PX_ICPT_FORWARD:
                    break;
                case PX_ICPT_WAIT:
                    if (f.type == 'Q')
                        c->rfq_expected--; /* counted again when the header is re-read */
                    c->c2s.body_left = 0;
                    goto out;
                case PX_ICPT_DONE:
                    if (c->state != PX_CLIENT_ACTIVE)
                        return RELAY_CLOSED;
                    continue;
                case PX_ICPT_FAIL:
                    return RELAY_CLOSED;
                }
            }
            break;
        default:
            break;
        }
        if (c->body_mode == PX_BODY_FORWARD && src->end - src->pos >= 1 + f.len) {
            /* The whole body is here: forward it with the header, without a BODY step. */
            c->c2s.body_left = 0;
            src->pos += 1 + f.len;
        } else {
            src->pos += (uint32_t)f.n;
        }
    }
out:
    if (!px__relay_flush_c2s(c, &sent))
        return RELAY_CLOSED;
    if (c->terminating) {
        px__client_close(c, "client sent Terminate");
        return RELAY_CLOSED;
    }
    return RELAY_OK;
}

void px__relay_c2s(px_client_t *c)
{
    px_server_t *sv = c->server;
    if (!sv || c->state != PX_CLIENT_ACTIVE)
        return;
    px_sock_t *src = &c->sock, *dst = &sv->sock;
    if (px_sock_write_pending(dst)) {
        /* Resumed by the server's PX_EV_FLUSHED. */
        px_sock_read_stop(src);
        return;
    }
    px_sock_consumed(src);
    if (px_sock_unread(src) > 0) {
        if (scan_c2s(c) != RELAY_OK)
            return;
        if (c->server != sv || c->state != PX_CLIENT_ACTIVE)
            return;
        if (px_sock_write_pending(dst)) {
            px_sock_read_stop(src);
            return;
        }
        px_sock_consumed(src);
    }
    px_sock_read_start(src);
}

void px__relay_server_event(px_server_t *sv, px_sock_ev_t ev, int status)
{
    px_client_t *c = sv->client;
    if (!c) {
        px__server_close(sv, "client gone");
        return;
    }
    switch (ev) {
    case PX_EV_READ:
        px__relay_s2c(c);
        return;
    case PX_EV_FLUSHED:
        px__relay_c2s(c);
        return;
    case PX_EV_EOF:
        px__relay_upstream_lost(c, "server closed the connection");
        return;
    case PX_EV_ERROR: {
        char why[256];
        if (sv->sock.tls && px_tls_errcode(sv->sock.tls))
            snprintf(why, sizeof(why), "server connection error: %s", px_tls_errmsg(sv->sock.tls));
        else
            snprintf(why, sizeof(why), "server connection error: %s", px_strerror(status));
        px__relay_upstream_lost(c, why);
        return;
    }
    default:
        return;
    }
}
