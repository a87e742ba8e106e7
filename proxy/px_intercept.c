/*
 * COPY/UNLOAD interception: where the relay hands Query and Parse messages to the rewriter
 * (px_rewrite.h, pure) and sends the result on. Active only when [s3] aws_iam_role,
 * forward_s3_credentials or tempdir is set; otherwise the relay never calls in here.
 *
 * A message already whole in the read buffer is tested with px_rewrite_maybe and rewritten in
 * place of the original. A larger one is judged by px_rewrite_lead on its first bytes: OTHER
 * streams through untouched (the hot path stays free of lexing), COPY/UNLOAD or undecided is
 * collected in a buffer bounded by max_statement_size and rewritten whole; beyond that bound
 * it is refused (54000) and the rest of it discarded.
 *
 * Refusals keep PostgreSQL's transaction semantics exactly: instead of the statement the server
 * gets a sentinel that fails to parse and names a unique token; the ErrorResponse that names the
 * token is replaced on its way back by one with the refusal's SQLSTATE and message. The server
 * thus aborts the transaction or skips to Sync just as if it had refused the statement itself.
 */
#include "px_conn.h"

#include "px_alloc.h"
#include "px_err.h"
#include "px_log.h"
#include "px_rewrite.h"

#include <stdio.h>
#include <string.h>

/* Refusals whose answer has not come back yet; more in flight at once closes the session. */
#define ICPT_FIFO 32

typedef struct px_refusal {
    uint64_t rfq_index; /* the ReadyForQuery after which the server's answer cannot come */
    char token[48];
    char sqlstate[6];
    char message[256];
} px_refusal_t;

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
    px_refusal_t fifo[ICPT_FIFO];
    unsigned head, n;
    uint32_t next_token;
};

bool px__icpt_enabled(const cfg_t *cfg)
{
    return (cfg->s3.aws_iam_role && cfg->s3.aws_iam_role[0]) || cfg->s3.forward_s3_credentials ||
           (cfg->s3.tempdir && cfg->s3.tempdir[0]);
}

int px__icpt_new(px_client_t *c)
{
    px_icpt_t *ic = px_calloc(1, sizeof(*ic));
    if (!ic)
        return UV_ENOMEM;
    const cfg_t *cfg = c->cfg;
    ic->opts.iam_role = cfg->s3.forward_s3_credentials ? NULL : cfg->s3.aws_iam_role;
    ic->opts.tempdir = cfg->s3.tempdir;
    ic->opts.allowed_iam_roles = &cfg->s3.allowed_iam_roles;
    ic->opts.allow_client_credentials = cfg->s3.allow_client_credentials;
    ic->opts.forward_keys = NULL; /* looked up per statement: the proxy refreshes them */
    ic->forward = cfg->s3.forward_s3_credentials;
    ic->check_policy_on_big = cfg->s3.allowed_iam_roles.n > 0 || !cfg->s3.allow_client_credentials;
    ic->max_stmt = (uint32_t)c->px->boot->proxy.max_statement_size;
    px_dbuf_init(&ic->acc, (size_t)ic->max_stmt + PX_MSG_HDR + 8);
    c->icpt = ic;
    return 0;
}

void px__icpt_free(px_icpt_t *ic)
{
    if (!ic)
        return;
    px_dbuf_free_secret(&ic->acc);
    px_free(ic);
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

/* Sends the sentinel in place of a refused statement and remembers what to tell the client. */
static bool refuse(px_client_t *c, uint8_t type, const char *name, const uint8_t *tail,
                   size_t tail_len, const char *sqlstate, const char *message)
{
    px_icpt_t *ic = c->icpt;
    if (ic->n == ICPT_FIFO) {
        px__client_fail(c, "54000", "too many refused statements awaiting an answer");
        return false;
    }
    px_refusal_t *r = &ic->fifo[(ic->head + ic->n) % ICPT_FIFO];
    /* Upper case and digits only: the server echoes the token as written. */
    snprintf(r->token, sizeof(r->token), "RSPROXY_REFUSED_%u_%u", c->id, ++ic->next_token);
    snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", sqlstate);
    snprintf(r->message, sizeof(r->message), "%s", message);
    /* A Query is answered before its own ReadyForQuery (already counted); a Parse before the
     * next Sync's. */
    r->rfq_index = c->rfq_expected + (type == 'P' ? 1 : 0);
    ic->n++;
    c->px->stats.statements_refused++;
    px_log_ctx(PX_LOG_INFO, c->ctx, "statement refused sqlstate=%s message=\"%s\"", sqlstate,
               message);

    px_dbuf_t m;
    px_dbuf_init(&m, PX_MSG_LARGE_LIMIT);
    px_msg_fe_build_sql(&m, type, name, r->token, strlen(r->token), tail, tail_len);
    bool ok = send_to_server(c, &m);
    px_dbuf_free(&m);
    return ok;
}

/*
 * Rewrites one whole Query/Parse body and sends the result (or the sentinel). Returns
 * PX_ICPT_FORWARD when the original bytes should go as they are, PX_ICPT_DONE when something
 * was sent in their place, PX_ICPT_FAIL when the connection was failed.
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
    px_dbuf_t out;
    px_dbuf_init(&out, (size_t)ic->max_stmt + 64 * 1024);
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
        px_dbuf_init(&m, PX_MSG_LARGE_LIMIT);
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
                     res.message)
                  ? PX_ICPT_DONE
                  : PX_ICPT_FAIL;
        break;
    }
    px_dbuf_free_secret(&out);
    return act;
}

px_icpt_action_t px__icpt_client_msg(px_client_t *c, uint8_t type, uint32_t len, uint32_t *sent)
{
    px_icpt_t *ic = c->icpt;
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

    if (!px__relay_flush_c2s(c, sent))
        return PX_ICPT_FAIL;
    if (blen > ic->max_stmt) {
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
        /* The parameter types of a Parse follow the SQL, which is not here: send none. */
        if (!refuse(c, type, name, NULL, 0, "54000", msg))
            return PX_ICPT_FAIL;
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

bool px__icpt_client_body(px_client_t *c, const uint8_t *p, size_t n, bool last)
{
    px_icpt_t *ic = c->icpt;
    if (ic->acc_discard) {
        if (last)
            ic->acc_discard = false;
        return true;
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
    if (a == PX_ICPT_FORWARD)
        ok = send_to_server(c, &ic->acc);
    else if (a == PX_ICPT_FAIL)
        ok = false;
    /* Collected statements may carry keys (CREDENTIALS): wipe, and give big buffers back. */
    px_dbuf_free_secret(&ic->acc);
    px_dbuf_init(&ic->acc, (size_t)ic->max_stmt + PX_MSG_HDR + 8);
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
        return true;
    }
    return false;
}

void px__icpt_server_rfq(px_client_t *c)
{
    px_icpt_t *ic = c->icpt;
    /* A refusal whose ReadyForQuery has passed without its error (the server skipped the
     * sentinel after an earlier error in the same pipeline) will never be answered. */
    while (ic->n > 0 && ic->fifo[ic->head].rfq_index <= c->rfq_seen) {
        ic->head = (ic->head + 1) % ICPT_FIFO;
        ic->n--;
    }
}
