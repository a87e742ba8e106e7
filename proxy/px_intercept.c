/*
 * COPY/UNLOAD interception: where the relay hands Query and Parse messages to the rewriter
 * (px_rewrite.h, pure) and sends the result on. Active when any [s3] key gives it work:
 * aws_iam_role, forward_s3_credentials or tempdir (something to inject or resolve), or a policy
 * key (allowed_iam_roles non-empty, allow_client_credentials = false) that must see every
 * statement; otherwise the relay never calls in here.
 *
 * A message already whole in the read buffer is tested with px_rewrite_maybe and rewritten in
 * place of the original. A larger one is judged by px_rewrite_lead on its first bytes: OTHER
 * streams through untouched (the hot path stays free of lexing), COPY/UNLOAD or undecided is
 * collected in a buffer bounded by max_statement_size and rewritten whole; beyond that bound
 * it is refused (54000) and the rest of it discarded. Under a policy a large Query led by
 * OTHER is collected and checked whole too; one beyond the bound is judged by its first
 * max_statement_size bytes and, when they hold no "copy"/"unload", streamed on with every later
 * piece scanned for those words before it is forwarded (a hit ends the session, see
 * stream_abort).
 *
 * Refusals keep PostgreSQL's transaction semantics exactly: instead of the statement the server
 * gets a sentinel that fails to parse and names a unique token; the ErrorResponse that names the
 * token is replaced on its way back by one with the refusal's SQLSTATE and message. The server
 * thus aborts the transaction or skips to Sync just as if it had refused the statement itself.
 * Refusals awaiting their answer are tracked in a small FIFO; when it is full the client's next
 * message waits (its bytes stay in the read buffer, which stops reading when full) until answers
 * come back, and a refused Parse that the server will skip anyway (its batch already failed on
 * an earlier refusal) takes no slot. Sessions that never refuse pay for none of this.
 */
#include "px_conn.h"

#include "px_alloc.h"
#include "px_err.h"
#include "px_log.h"
#include "px_rewrite.h"

#include <stdio.h>
#include <string.h>

/* Refusals whose answer has not come back yet. More wait: the client is not read meanwhile. */
#define ICPT_FIFO 32

typedef struct px_refusal {
    uint64_t rfq_index; /* the ReadyForQuery after which the server's answer cannot come */
    char token[48];
    char sqlstate[6];
    char message[256];
} px_refusal_t;

/*
 * The timer that resumes a paused client once answers have made room. It lives in its own
 * allocation because the interception state is freed from the client's last close callback,
 * while a libuv handle may only be freed from its own: px__icpt_free detaches it (c = NULL) and
 * closes it, and its close callback frees it.
 */
typedef struct icpt_kick {
    uv_timer_t timer;
    px_client_t *c; /* NULL once the interception state is gone */
} icpt_kick_t;

struct px_icpt {
    px_rewrite_opts_t opts;
    bool check_policy_on_big; /* policy keys set: large Queries must be checked whole */
    bool forward;             /* forward_s3_credentials: inject the proxy's own keys */
    uint32_t max_stmt;        /* [proxy] max_statement_size */
    /* The message being collected: header and body. Bounded by max_stmt + header. */
    px_dbuf_t acc;
    uint8_t acc_type;
    uint32_t acc_len; /* its length word */
    bool acc_discard; /* being discarded (refused as too large) */
    /* Policy keys set, and a Query over max_stmt whose first keyword is not COPY/UNLOAD: only
     * its first max_stmt bytes are collected. Without "copy" or "unload" in them the Query is
     * streamed on, each later piece scanned the same way before it is forwarded (scan). */
    bool acc_prefix;
    px_rewrite_scan_t scan;
    px_refusal_t fifo[ICPT_FIFO];
    unsigned head, n;
    uint32_t next_token;
    /* The ReadyForQuery index of the extended-protocol batch that already holds a refused Parse
     * (0: none). The server fails that sentinel and skips everything up to the batch's Sync, so
     * a later refused Parse of the same batch is never answered and needs no FIFO slot. */
    uint64_t failed_batch_rfq;
    bool paused;       /* a refusal is waiting for a free FIFO slot */
    icpt_kick_t *kick; /* created on the first pause */
};

static const uint8_t no_params[2] = {0, 0}; /* Parse's Int16 parameter type count: none */

bool px__icpt_enabled(const cfg_t *cfg)
{
    return (cfg->s3.aws_iam_role && cfg->s3.aws_iam_role[0]) || cfg->s3.forward_s3_credentials ||
           (cfg->s3.tempdir && cfg->s3.tempdir[0]) || cfg->s3.allowed_iam_roles.n > 0 ||
           !cfg->s3.allow_client_credentials;
}

int px__icpt_new(px_client_t *c)
{
    px_icpt_t *ic = px_calloc(1, sizeof(*ic));
    if (!ic)
        return UV_ENOMEM;
    const cfg_t *cfg = c->cfg;
    ic->opts.iam_role = cfg->s3.forward_s3_credentials ? NULL : cfg->s3.aws_iam_role;
    ic->opts.tempdir = cfg->s3.tempdir;
    ic->opts.tempdir_region = cfg->s3.tempdir_region;
    ic->opts.allowed_iam_roles = &cfg->s3.allowed_iam_roles;
    ic->opts.allow_client_credentials = cfg->s3.allow_client_credentials;
    ic->opts.forward_keys = NULL; /* looked up per statement: the proxy refreshes them */
    ic->forward = cfg->s3.forward_s3_credentials;
    ic->check_policy_on_big = cfg->s3.allowed_iam_roles.n > 0 || !cfg->s3.allow_client_credentials;
    ic->max_stmt = (uint32_t)c->px->boot->proxy.max_statement_size;
    px_dbuf_init_secret(&ic->acc, (size_t)ic->max_stmt + PX_MSG_HDR + 8);
    c->icpt = ic;
    return 0;
}

static void on_kick_closed(uv_handle_t *h)
{
    icpt_kick_t *k = container_of(h, icpt_kick_t, timer);
    px_free(k);
}

void px__icpt_free(px_icpt_t *ic)
{
    if (!ic)
        return;
    if (ic->kick) {
        ic->kick->c = NULL;
        uv_close((uv_handle_t *)&ic->kick->timer, on_kick_closed);
    }
    px_dbuf_free_secret(&ic->acc);
    px_free(ic);
}

/* ------------------------------------------------------------------------------------------ */
/* Pausing while the FIFO is full.                                                            */

static void on_kick(uv_timer_t *t)
{
    icpt_kick_t *k = container_of(t, icpt_kick_t, timer);
    /* From the loop, never from inside the relay: the client's waiting message is read again
     * from the start of its header, and goes on now that a slot is free. */
    if (k->c)
        px__relay_c2s(k->c);
}

/* Marks the client paused; false (and the client failed) when the resume timer cannot exist. */
static bool pause_client(px_client_t *c)
{
    px_icpt_t *ic = c->icpt;
    if (!ic->kick) {
        icpt_kick_t *k = px_calloc(1, sizeof(*k));
        if (!k || uv_timer_init(c->px->loop, &k->timer) != 0) {
            px_free(k);
            px__client_fail(c, "53200", "out of memory");
            return false;
        }
        k->c = c;
        ic->kick = k;
    }
    if (!ic->paused)
        px_log_ctx(PX_LOG_DEBUG, c->ctx,
                   "%d refused statements await their answers: not reading the client meanwhile",
                   ICPT_FIFO);
    ic->paused = true;
    return true;
}

/* Called whenever an answer frees a slot: a paused client goes on from the loop. */
static void slot_freed(px_client_t *c)
{
    px_icpt_t *ic = c->icpt;
    if (ic->paused && ic->n < ICPT_FIFO && ic->kick &&
        !uv_is_active((uv_handle_t *)&ic->kick->timer))
        uv_timer_start(&ic->kick->timer, on_kick, 0, 0);
}

/* ------------------------------------------------------------------------------------------ */

/* Sends a message the proxy built to the server, after what was forwarded before it. */
static bool send_to_server(px_client_t *c, const px_dbuf_t *m)
{
    px_server_t *sv = c->server;
    if (!sv)
        return false;
    if (m->failed) {
        px__client_fail(c, "53200", "out of memory");
        return false;
    }
    int rc = px_sock_write_copy(&sv->sock, m->data, m->len);
    if (rc) {
        px__relay_upstream_lost(c, "write to server failed");
        return false;
    }
    return true;
}

/* Whether a refused statement of this type would be skipped by the server unanswered: a Parse
 * in an extended-protocol batch (no Sync since) that already holds a refused Parse. */
static bool skipped_by_server(const px_client_t *c, uint8_t type)
{
    return type == 'P' && c->icpt->failed_batch_rfq != 0 &&
           c->icpt->failed_batch_rfq == c->rfq_expected + 1;
}

/* Whether the next refusal of this type would need a FIFO slot that is not there. */
static bool must_wait(const px_client_t *c, uint8_t type)
{
    return c->icpt->n >= ICPT_FIFO && !skipped_by_server(c, type);
}

/*
 * Sends the sentinel in place of a refused statement and remembers what to tell the client.
 * `tail` is what follows a Parse's query string (parameter types); NULL sends none. Returns DONE,
 * WAIT (nothing sent: no slot free, the client is paused) or FAIL.
 */
static px_icpt_action_t refuse(px_client_t *c, uint8_t type, const char *name, const uint8_t *tail,
                               size_t tail_len, const char *sqlstate, const char *message)
{
    px_icpt_t *ic = c->icpt;
    bool skipped = skipped_by_server(c, type);
    if (!skipped && ic->n >= ICPT_FIFO)
        return pause_client(c) ? PX_ICPT_WAIT : PX_ICPT_FAIL;
    char token[48];
    /* Upper case and digits only: the server echoes the token as written. */
    snprintf(token, sizeof(token), "RSPROXY_REFUSED_%u_%u", c->id, ++ic->next_token);
    c->px->stats.statements_refused++;
    if (skipped) {
        /* The server skips it (an earlier refusal failed this batch): the sentinel keeps the
         * stream as the client wrote it, and nothing waits for an answer. */
        px_log_ctx(PX_LOG_DEBUG, c->ctx,
                   "statement refused sqlstate=%s in a batch that already failed: the server "
                   "skips it",
                   sqlstate);
    } else {
        px_refusal_t *r = &ic->fifo[(ic->head + ic->n) % ICPT_FIFO];
        snprintf(r->token, sizeof(r->token), "%s", token);
        snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", sqlstate);
        snprintf(r->message, sizeof(r->message), "%s", message);
        /* A Query is answered before its own ReadyForQuery (already counted); a Parse before
         * the next Sync's. */
        r->rfq_index = c->rfq_expected + (type == 'P' ? 1 : 0);
        if (type == 'P')
            ic->failed_batch_rfq = r->rfq_index;
        ic->n++;
        px_log_ctx(PX_LOG_INFO, c->ctx, "statement refused sqlstate=%s message=\"%s\"", sqlstate,
                   message);
    }

    /* A Parse must stay well-formed (name, query, Int16 parameter count) so that the server
     * fails it on the query text, which it answers with a plain syntax error, and not as a
     * protocol violation, which ends the session. */
    if (type == 'P' && !tail) {
        tail = no_params;
        tail_len = sizeof(no_params);
    }
    px_dbuf_t m;
    px_dbuf_init(&m, PX_MSG_LARGE_LIMIT);
    px_msg_fe_build_sql(&m, type, name, token, strlen(token), tail, tail_len);
    bool ok = send_to_server(c, &m);
    px_dbuf_free(&m);
    return ok ? PX_ICPT_DONE : PX_ICPT_FAIL;
}

/*
 * Rewrites one whole Query/Parse body and sends the result (or the sentinel). Returns
 * PX_ICPT_FORWARD when the original bytes should go as they are, PX_ICPT_DONE when something
 * was sent in their place, PX_ICPT_WAIT when a refusal found no free slot (nothing sent),
 * PX_ICPT_FAIL when the connection was failed.
 */
static px_icpt_action_t rewrite_whole(px_client_t *c, uint8_t type, const uint8_t *body,
                                      size_t blen)
{
    px_icpt_t *ic = c->icpt;
    const char *sql;
    size_t sql_len;
    const uint8_t *tail;
    size_t tail_len;
    if (!px_msg_fe_locate_sql(type, body, blen, true, &sql, &sql_len, &tail, &tail_len))
        return PX_ICPT_FORWARD; /* malformed: the server says so in its own words */
    if (!px_rewrite_maybe(sql, sql_len))
        return PX_ICPT_FORWARD;
    const char *name = type == 'P' ? (const char *)body : NULL;
    /* forward_s3_credentials: the proxy's current keys, borrowed for this call. Without any,
     * a stand-in lets the rewriter say whether the statement needed them at all (only a COPY
     * or UNLOAD it would change is refused; anything else passes). */
    static const auth_aws_keys_t no_keys = {"AKIARSPROXYNOKEYS000", "-", NULL};
    auth_aws_keys_t keys;
    const char *why = NULL;
    ic->opts.forward_keys = ic->forward ? px__fwd_keys(c->px, &keys, &why) : NULL;
    bool keys_missing = ic->forward && !ic->opts.forward_keys;
    if (keys_missing)
        ic->opts.forward_keys = &no_keys;
    /* The rewritten text may carry forwarded keys: no copy of it may stay in freed memory. */
    px_dbuf_t out;
    px_dbuf_init_secret(&out, (size_t)ic->max_stmt + 64 * 1024);
    px_rewrite_result_t res;
    int rc = px_rewrite_sql(&ic->opts, sql, sql_len, &out, &res);
    ic->opts.forward_keys = NULL; /* borrowed for this call only */
    if (rc) {
        px_dbuf_free_secret(&out);
        px__client_fail(c, "53200", "out of memory while rewriting a statement");
        return PX_ICPT_FAIL;
    }
    px_icpt_action_t act = PX_ICPT_FORWARD;
    if (keys_missing && res.verdict == PX_REWRITE_CHANGED) {
        res.verdict = PX_REWRITE_REFUSED;
        snprintf(res.sqlstate, sizeof(res.sqlstate), "55000");
        snprintf(res.message, sizeof(res.message),
                 "rsproxy has no AWS credentials to forward for this statement yet: %s", why);
    }
    switch (res.verdict) {
    case PX_REWRITE_UNCHANGED:
        break;
    case PX_REWRITE_CHANGED: {
        px_dbuf_t m;
        px_dbuf_init_secret(&m, PX_MSG_LARGE_LIMIT);
        px_msg_fe_build_sql(&m, type, name, (const char *)out.data, out.len, tail, tail_len);
        c->px->stats.statements_rewritten +=
            (uint64_t)(res.statements_rewritten > 0 ? res.statements_rewritten : 1);
        px_log_ctx(PX_LOG_DEBUG, c->ctx, "rewrote %d COPY/UNLOAD statement(s) in %s message",
                   res.statements_rewritten, type == 'Q' ? "Query" : "Parse");
        act = send_to_server(c, &m) ? PX_ICPT_DONE : PX_ICPT_FAIL;
        px_dbuf_free_secret(&m);
        break;
    }
    case PX_REWRITE_REFUSED:
        act = refuse(c, type, name, tail, tail_len, res.sqlstate[0] ? res.sqlstate : "42501",
                     res.message);
        break;
    }
    px_dbuf_free_secret(&out);
    return act;
}

px_icpt_action_t px__icpt_client_msg(px_client_t *c, uint8_t type, uint32_t len, uint32_t *sent)
{
    px_icpt_t *ic = c->icpt;
    /* Paused: this is the same message again (the relay re-reads its header), and nothing
     * about it can go on before a slot is free. */
    if (ic->paused) {
        if (ic->n >= ICPT_FIFO)
            return PX_ICPT_WAIT;
        ic->paused = false;
    }
    px_sock_t *src = &c->sock;
    uint8_t *d = px_sock_data(src);
    uint32_t total = 1 + len;
    uint32_t avail = src->end - src->pos;
    const uint8_t *body = d + src->pos + PX_MSG_HDR;
    size_t blen = len - 4;

    if (avail >= total) {
        /* The common case: the whole message is here. Flush what precedes it first, so that a
         * replacement keeps its place in the stream. */
        if (!px__relay_flush_c2s(c, sent))
            return PX_ICPT_FAIL;
        px_icpt_action_t a = rewrite_whole(c, type, body, blen);
        if (a == PX_ICPT_DONE) {
            c->c2s.body_left = 0;
            src->pos += total;
            *sent = src->pos;
        }
        return a;
    }
    if (total <= px_sock_cap(src))
        return PX_ICPT_WAIT; /* it fits: wait for the rest */

    /* Larger than the buffer: judge it by its beginning. */
    const char *sql;
    size_t sql_len;
    const uint8_t *tail;
    size_t tail_len;
    size_t have = avail - PX_MSG_HDR;
    px_rewrite_lead_kind_t lead = PX_LEAD_MORE;
    if (px_msg_fe_locate_sql(type, body, have, false, &sql, &sql_len, &tail, &tail_len))
        lead = px_rewrite_lead(sql, sql_len, false);
    if (lead == PX_LEAD_OTHER && !(type == 'Q' && ic->check_policy_on_big))
        return PX_ICPT_FORWARD;

    /* Collecting or discarding consumes the message for good, and its verdict may be a refusal:
     * take it on only with a slot free, so that the verdict never has to wait. */
    if (must_wait(c, type))
        return pause_client(c) ? PX_ICPT_WAIT : PX_ICPT_FAIL;
    if (!px__relay_flush_c2s(c, sent))
        return PX_ICPT_FAIL;
    ic->acc_prefix = false;
    if (blen > ic->max_stmt && type == 'Q' && lead == PX_LEAD_OTHER) {
        /* Here only under a policy: too large to hold, but most such Queries are bulk INSERTs
         * that never mention COPY. Its beginning decides (px__icpt_client_body). */
        px_dbuf_reset(&ic->acc);
        px_dbuf_put(&ic->acc, d + src->pos, PX_MSG_HDR);
        ic->acc_discard = false;
        ic->acc_prefix = true;
        c->body_mode = PX_BODY_COLLECT;
    } else if (blen > ic->max_stmt) {
        /* Too large to hold: refuse now, drop the body as it arrives. The statement name of a
         * Parse must be in the first bytes to build the sentinel. */
        const char *name = NULL;
        if (type == 'P') {
            if (!memchr(body, 0, have)) {
                px__client_fail(c, "08P01", "statement name too long");
                return PX_ICPT_FAIL;
            }
            name = (const char *)body;
        }
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "statement too large for rsproxy to check or rewrite: %zu bytes, "
                 "max_statement_size is %u",
                 blen, ic->max_stmt);
        /* The parameter types of a Parse follow the SQL, which is not here: the sentinel
         * declares none. */
        px_icpt_action_t a = refuse(c, type, name, NULL, 0, "54000", msg);
        if (a != PX_ICPT_DONE)
            return a; /* WAIT leaves the message unconsumed: it is read again on resume */
        ic->acc_discard = true;
        c->body_mode = PX_BODY_DISCARD;
    } else {
        px_dbuf_reset(&ic->acc);
        px_dbuf_put(&ic->acc, d + src->pos, PX_MSG_HDR);
        ic->acc_discard = false;
        c->body_mode = PX_BODY_COLLECT;
    }
    ic->acc_type = type;
    ic->acc_len = len;
    src->pos += PX_MSG_HDR; /* the framer already expects the body */
    *sent = src->pos;
    return PX_ICPT_DONE;
}

/* Collected statements may carry keys (CREDENTIALS): wipe, and give big buffers back. */
static void acc_release(px_icpt_t *ic)
{
    px_dbuf_free_secret(&ic->acc);
    px_dbuf_init_secret(&ic->acc, (size_t)ic->max_stmt + PX_MSG_HDR + 8);
}

/*
 * A Query streamed under a policy has shown "copy" or "unload" after its first max_stmt bytes,
 * which are already with the server: it can be neither checked nor refused any more. The server
 * must never see the message end, so the session ends here: c2s_cut keeps px__server_terminate
 * from sending a Terminate (which could complete the message), and both connections close.
 * PostgreSQL drops a message cut short by EOF, so nothing of the Query runs.
 */
static bool stream_abort(px_client_t *c)
{
    c->c2s_cut = true;
    c->px->stats.statements_refused++;
    char msg[256];
    snprintf(msg, sizeof(msg),
             "statement too large for rsproxy to check: a Query over max_statement_size (%u "
             "bytes) mentions COPY or UNLOAD after its first %u bytes; the session is closed and "
             "nothing of the Query ran",
             c->icpt->max_stmt, c->icpt->max_stmt);
    px_log_ctx(PX_LOG_WARN, c->ctx, "statement refused sqlstate=54000 message=\"%s\"", msg);
    px__client_fail(c, "54000", "%s", msg);
    return false;
}

bool px__icpt_client_scan(px_client_t *c, const uint8_t *p, size_t n)
{
    return !px_rewrite_scan_feed(&c->icpt->scan, (const char *)p, n) || stream_abort(c);
}

/* The prefix of a Query over max_stmt is complete (acc_prefix): refuse the Query if the prefix
 * may hold a COPY or UNLOAD, as for any statement over the limit; otherwise send the prefix and
 * stream the rest, scanned. `p, n` is the rest of the current piece, `last` whether it ends the
 * message. */
static bool prefix_done(px_client_t *c, const uint8_t *p, size_t n, bool last)
{
    px_icpt_t *ic = c->icpt;
    const char *sql = (const char *)ic->acc.data + PX_MSG_HDR;
    size_t sql_len = ic->acc.len - PX_MSG_HDR;
    ic->acc_prefix = false;
    if (px_rewrite_maybe(sql, sql_len)) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "statement too large for rsproxy to check or rewrite: %u bytes, "
                 "max_statement_size is %u",
                 ic->acc_len - 4, ic->max_stmt);
        acc_release(ic);
        /* A slot was free when collection began and nothing was refused since. */
        if (refuse(c, 'Q', NULL, NULL, 0, "54000", msg) != PX_ICPT_DONE) {
            if (c->state == PX_CLIENT_ACTIVE)
                px__client_fail(c, "54000", "too many refused statements awaiting an answer");
            return false;
        }
        if (!last) {
            ic->acc_discard = true;
            c->body_mode = PX_BODY_DISCARD;
        }
        return true;
    }
    px_rewrite_scan_init(&ic->scan);
    (void)px_rewrite_scan_feed(&ic->scan, sql, sql_len);
    bool ok = send_to_server(c, &ic->acc);
    acc_release(ic);
    if (!ok)
        return false;
    px_log_ctx(PX_LOG_DEBUG, c->ctx,
               "Query over max_statement_size without COPY/UNLOAD in its first %u bytes: "
               "streamed",
               ic->max_stmt);
    if (n > 0) {
        if (!px__icpt_client_scan(c, p, n))
            return false;
        if (px_sock_write_copy(&c->server->sock, p, n) != 0) {
            px__relay_upstream_lost(c, "write to server failed");
            return false;
        }
    }
    if (!last)
        c->body_mode = PX_BODY_SCAN;
    return true;
}

bool px__icpt_client_body(px_client_t *c, const uint8_t *p, size_t n, bool last)
{
    px_icpt_t *ic = c->icpt;
    if (ic->acc_discard) {
        if (last)
            ic->acc_discard = false;
        return true;
    }
    if (ic->acc_prefix) {
        size_t room = PX_MSG_HDR + (size_t)ic->max_stmt - ic->acc.len;
        size_t take = n < room ? n : room;
        px_dbuf_put(&ic->acc, p, take);
        if (ic->acc.failed) {
            px__client_fail(c, "53200", "out of memory while collecting a statement");
            return false;
        }
        if (take < room && !last)
            return true;
        return prefix_done(c, p + take, n - take, last);
    }
    px_dbuf_put(&ic->acc, p, n);
    if (ic->acc.failed) {
        px__client_fail(c, "53200", "out of memory while collecting a statement");
        return false;
    }
    if (!last)
        return true;
    px_icpt_action_t a =
        rewrite_whole(c, ic->acc_type, ic->acc.data + PX_MSG_HDR, ic->acc.len - PX_MSG_HDR);
    bool ok = true;
    if (a == PX_ICPT_FORWARD) {
        ok = send_to_server(c, &ic->acc);
    } else if (a == PX_ICPT_WAIT) {
        /* Cannot happen: collection starts only with a slot free and nothing else is refused
         * until this message is done. The message is consumed, so it cannot wait: fail. */
        ic->paused = false;
        px__client_fail(c, "54000", "too many refused statements awaiting an answer");
        ok = false;
    } else if (a == PX_ICPT_FAIL) {
        ok = false;
    }
    acc_release(ic);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */

bool px__icpt_watching_errors(const px_client_t *c)
{
    return c->icpt && c->icpt->n > 0;
}

bool px__icpt_server_error(px_client_t *c, const uint8_t *body, size_t n, px_dbuf_t *out)
{
    px_icpt_t *ic = c->icpt;
    px_be_error_t e;
    if (!px_msg_be_parse_error(body, n, &e) || !e.message)
        return false;
    for (unsigned i = 0; i < ic->n; i++) {
        px_refusal_t *r = &ic->fifo[(ic->head + i) % ICPT_FIFO];
        if (!strstr(e.message, r->token))
            continue;
        px_msg_be_rebuild_error(out, body, n, r->sqlstate, r->message);
        /* Remove entry i, keeping the order of the others. */
        for (unsigned j = i; j + 1 < ic->n; j++)
            ic->fifo[(ic->head + j) % ICPT_FIFO] = ic->fifo[(ic->head + j + 1) % ICPT_FIFO];
        ic->n--;
        slot_freed(c);
        return true;
    }
    return false;
}

void px__icpt_server_rfq(px_client_t *c)
{
    px_icpt_t *ic = c->icpt;
    /* A refusal whose ReadyForQuery has passed without its error (the server skipped the
     * sentinel after an earlier error in the same pipeline) will never be answered. */
    unsigned before = ic->n;
    while (ic->n > 0 && ic->fifo[ic->head].rfq_index <= c->rfq_seen) {
        ic->head = (ic->head + 1) % ICPT_FIFO;
        ic->n--;
    }
    if (ic->failed_batch_rfq != 0 && ic->failed_batch_rfq <= c->rfq_seen)
        ic->failed_batch_rfq = 0; /* that batch's Sync has been answered */
    if (ic->n < before)
        slot_freed(c);
}
