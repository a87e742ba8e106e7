/*
 * /metrics rendering in Prometheus text format 0.0.4 (see px_admin_prom.h). The writer checks
 * names and escapes label values and HELP text; the renderer maps px_proxy_stats_t and the
 * admin endpoint's own counters onto stable metric names, documented in
 * README.md ("Health checks and metrics").
 *
 * Naming follows Prometheus' conventions: an `rsproxy_` prefix, `_total` on counters, base
 * units (`_bytes`, `_seconds`), and one family per quantity with labels for its parts (state,
 * reason, result) so that sum() over a family is meaningful.
 */
#include "px_admin_prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static bool name_char(char c, bool first, bool colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (c == ':')
        return colon;
    return !first && c >= '0' && c <= '9';
}

bool px_prom_name_ok(const char *name)
{
    if (!name || !name[0])
        return false;
    for (size_t i = 0; name[i]; i++)
        if (!name_char(name[i], i == 0, true))
            return false;
    return true;
}

bool px_prom_label_name_ok(const char *name)
{
    if (!name || !name[0] || (name[0] == '_' && name[1] == '_'))
        return false;
    for (size_t i = 0; name[i]; i++)
        if (!name_char(name[i], i == 0, false))
            return false;
    return true;
}

void px_prom_put_label_value(px_dbuf_t *b, const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (v[i]) {
        case '\\':
            px_dbuf_put(b, "\\\\", 2);
            break;
        case '"':
            px_dbuf_put(b, "\\\"", 2);
            break;
        case '\n':
            px_dbuf_put(b, "\\n", 2);
            break;
        default:
            px_dbuf_put_u8(b, (uint8_t)v[i]);
            break;
        }
    }
}

void px_prom_put_help(px_dbuf_t *b, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            px_dbuf_put(b, "\\\\", 2);
        else if (*p == '\n')
            px_dbuf_put(b, "\\n", 2);
        else
            px_dbuf_put_u8(b, (uint8_t)*p);
    }
}

void px_prom_family(px_dbuf_t *b, const char *name, px_prom_type_t type, const char *help)
{
    if (!px_prom_name_ok(name)) {
        b->failed = true;
        return;
    }
    px_dbuf_printf(b, "# HELP %s ", name);
    px_prom_put_help(b, help);
    px_dbuf_printf(b, "\n# TYPE %s %s\n", name, type == PX_PROM_COUNTER ? "counter" : "gauge");
}

static void put_name_labels(px_dbuf_t *b, const char *name, const char *const *labels)
{
    if (!px_prom_name_ok(name)) {
        b->failed = true;
        return;
    }
    px_dbuf_put_cstr(b, name);
    if (!labels || !labels[0])
        return;
    px_dbuf_put_u8(b, '{');
    for (size_t i = 0; labels[i]; i += 2) {
        if (!px_prom_label_name_ok(labels[i]) || !labels[i + 1]) {
            b->failed = true;
            return;
        }
        if (i)
            px_dbuf_put_u8(b, ',');
        px_dbuf_put_cstr(b, labels[i]);
        px_dbuf_put(b, "=\"", 2);
        px_prom_put_label_value(b, labels[i + 1], strlen(labels[i + 1]));
        px_dbuf_put_u8(b, '"');
    }
    px_dbuf_put_u8(b, '}');
}

void px_prom_sample(px_dbuf_t *b, const char *name, const char *const *labels, uint64_t value)
{
    put_name_labels(b, name, labels);
    px_dbuf_printf(b, " %" PRIu64 "\n", value);
}

void px_prom_sample_f(px_dbuf_t *b, const char *name, const char *const *labels, double value)
{
    put_name_labels(b, name, labels);
    /* Go's ParseFloat reads what Prometheus accepts: NaN, +Inf, -Inf and decimal floats. */
    if (isnan(value))
        px_dbuf_printf(b, " NaN\n");
    else if (isinf(value))
        px_dbuf_printf(b, " %cInf\n", value > 0 ? '+' : '-');
    else
        px_dbuf_printf(b, " %.15g\n", value);
}

/* ------------------------------------------------------------------------------------------ */

/* Label values for px_login_fail_t, in enum order. */
static const char *const login_fail_names[PX_LOGIN_FAIL_N] = {
    [PX_LOGIN_FAIL_IAM] = "iam",         [PX_LOGIN_FAIL_DNS] = "dns",
    [PX_LOGIN_FAIL_NETWORK] = "network", [PX_LOGIN_FAIL_TIMEOUT] = "timeout",
    [PX_LOGIN_FAIL_TLS] = "tls",         [PX_LOGIN_FAIL_AUTH] = "auth",
    [PX_LOGIN_FAIL_REFUSED] = "refused", [PX_LOGIN_FAIL_PROTOCOL] = "protocol",
    [PX_LOGIN_FAIL_OTHER] = "other",
};

const char *px_admin_login_fail_name(px_login_fail_t r)
{
    return (unsigned)r < PX_LOGIN_FAIL_N ? login_fail_names[r] : "other";
}

static void one(px_dbuf_t *b, const char *name, px_prom_type_t type, const char *help,
                uint64_t value)
{
    px_prom_family(b, name, type, help);
    px_prom_sample(b, name, NULL, value);
}

static void labelled(px_dbuf_t *b, const char *name, const char *label, const char *lvalue,
                     uint64_t value)
{
    const char *const labels[] = {label, lvalue, NULL};
    px_prom_sample(b, name, labels, value);
}

void px_admin_metrics_render(px_dbuf_t *b, const px_admin_metrics_t *m)
{
    const px_proxy_stats_t *s = &m->stats;

    /* The process. */
    px_prom_family(b, "rsproxy_build_info", PX_PROM_GAUGE,
                   "rsproxy's version, as a label; the value is always 1.");
    labelled(b, "rsproxy_build_info", "version", m->version ? m->version : "unknown", 1);
    px_prom_family(b, "process_start_time_seconds", PX_PROM_GAUGE,
                   "Start time of the process since the Unix epoch, in seconds.");
    px_prom_sample_f(b, "process_start_time_seconds", NULL, m->start_time_s);
    one(b, "rsproxy_ready", PX_PROM_GAUGE,
        "1 when /readiness answers 200 (accepting clients, upstream healthy), else 0.",
        m->ready ? 1 : 0);
    one(b, "rsproxy_shutting_down", PX_PROM_GAUGE,
        "1 after SIGINT/SIGTERM while sessions drain, else 0.", s->shutting_down ? 1 : 0);

    /* Clients. */
    one(b, "rsproxy_max_client_conn", PX_PROM_GAUGE,
        "The configured [proxy] max_client_conn limit.",
        m->max_client_conn > 0 ? (uint64_t)m->max_client_conn : 0);
    px_prom_family(b, "rsproxy_client_connections", PX_PROM_GAUGE,
                   "Client connections now, by state: login (startup, authentication, "
                   "upstream login), active (relaying), closing.");
    labelled(b, "rsproxy_client_connections", "state", "login", s->clients_login);
    labelled(b, "rsproxy_client_connections", "state", "active", s->clients_active);
    labelled(b, "rsproxy_client_connections", "state", "closing", s->clients_closing);
    one(b, "rsproxy_client_connections_accepted_total", PX_PROM_COUNTER,
        "Client connections accepted.", s->clients_accepted);
    px_prom_family(b, "rsproxy_client_connections_refused_total", PX_PROM_COUNTER,
                   "Client connections refused before login: over max_client_conn, or for "
                   "any other reason (protocol error, failed client authentication, "
                   "shutting down).");
    uint64_t limit = s->clients_refused_limit;
    labelled(b, "rsproxy_client_connections_refused_total", "reason", "max_client_conn", limit);
    labelled(b, "rsproxy_client_connections_refused_total", "reason", "other",
             s->clients_refused >= limit ? s->clients_refused - limit : 0);
    one(b, "rsproxy_client_received_bytes_total", PX_PROM_COUNTER,
        "Bytes received from clients (relayed upstream, or answered by the proxy).",
        s->bytes_from_clients);
    one(b, "rsproxy_client_sent_bytes_total", PX_PROM_COUNTER,
        "Bytes sent to clients (relayed from upstream, or written by the proxy).",
        s->bytes_to_clients);
    one(b, "rsproxy_ready_for_query_total", PX_PROM_COUNTER,
        "ReadyForQuery messages relayed to clients after login: one per simple query, "
        "extended-protocol Sync or function call answered.",
        s->ready_for_query);
    one(b, "rsproxy_transaction_blocks_total", PX_PROM_COUNTER,
        "Explicit transaction blocks ended (BEGIN ... COMMIT or ROLLBACK).", s->transaction_blocks);
    one(b, "rsproxy_cancel_requests_total", PX_PROM_COUNTER,
        "CancelRequests received from clients, forwarded or not.", s->cancel_requests);
    one(b, "rsproxy_cancel_requests_forwarded_total", PX_PROM_COUNTER,
        "Cancel requests sent upstream (a client's, or for a client that went away "
        "while its query ran).",
        s->cancels_forwarded);
    one(b, "rsproxy_statements_rewritten_total", PX_PROM_COUNTER,
        "COPY and UNLOAD statements rewritten (authorization or location added).",
        s->statements_rewritten);
    one(b, "rsproxy_statements_refused_total", PX_PROM_COUNTER,
        "COPY and UNLOAD statements refused by policy or size.", s->statements_refused);

    /* Upstream. */
    one(b, "rsproxy_upstream_connections", PX_PROM_GAUGE,
        "Upstream connections now, including those opened to forward a cancel.", s->servers);
    one(b, "rsproxy_upstream_logins_total", PX_PROM_COUNTER,
        "Upstream logins that reached ReadyForQuery.", s->logins_ok);
    one(b, "rsproxy_pool_idle_servers", PX_PROM_GAUGE,
        "Upstream sessions waiting in the pool for a client ([pool] pool_mode = session).",
        s->pool_idle);
    one(b, "rsproxy_pool_reused_total", PX_PROM_COUNTER,
        "Client sessions that got a pooled upstream session instead of a new login.",
        s->pool_reused);
    one(b, "rsproxy_pool_reset_failures_total", PX_PROM_COUNTER,
        "Upstream sessions closed instead of pooled because server_reset_query failed or "
        "timed out.",
        s->pool_resets_failed);
    px_prom_family(b, "rsproxy_upstream_login_failures_total", PX_PROM_COUNTER,
                   "Upstream logins that failed, by reason: iam, dns, network, timeout, tls, "
                   "auth (SQLSTATE class 28), refused (another upstream error), protocol, "
                   "other.");
    for (int r = 0; r < PX_LOGIN_FAIL_N; r++)
        labelled(b, "rsproxy_upstream_login_failures_total", "reason", login_fail_names[r],
                 s->login_failures[r]);
    one(b, "rsproxy_upstream_tls_handshake_failures_total", PX_PROM_COUNTER,
        "Upstream TLS handshakes that failed (certificate verification included).",
        s->tls_handshake_failures);
    px_prom_family(b, "rsproxy_iam_credential_requests_total", PX_PROM_COUNTER,
                   "IAM database credential requests made for clients, by result (served "
                   "from the cache or fetched).");
    labelled(b, "rsproxy_iam_credential_requests_total", "result", "ok", s->iam_requests_ok);
    labelled(b, "rsproxy_iam_credential_requests_total", "result", "error", s->iam_requests_failed);
    px_prom_family(b, "rsproxy_iam_credential_fetches_total", PX_PROM_COUNTER,
                   "Database credential fetches from AWS (GetClusterCredentials and the like) "
                   "by the credential cache, by result: first fetches and refreshes, one per "
                   "key however many clients wait.");
    labelled(b, "rsproxy_iam_credential_fetches_total", "result", "ok", s->iam_fetches_ok);
    labelled(b, "rsproxy_iam_credential_fetches_total", "result", "error", s->iam_fetches_failed);
    one(b, "rsproxy_iam_credential_refreshes_total", PX_PROM_COUNTER,
        "Of the fetches: refreshes of credentials the cache already held, before they expired.",
        s->iam_refreshes);
    if (m->iam) {
        static const char *const creds_names[] = {"unused", "pending", "ok", "failed"};
        px_prom_family(b, "rsproxy_aws_credentials", PX_PROM_GAUGE,
                       "The AWS credential chain's state (IAM mode): 1 for the current state "
                       "(pending, ok or failed), 0 for the others.");
        for (int st = PX_CREDS_PENDING; st <= PX_CREDS_FAILED; st++)
            labelled(b, "rsproxy_aws_credentials", "state", creds_names[st],
                     s->health.creds == (px_creds_state_t)st ? 1 : 0);
    }
    one(b, "rsproxy_read_buffers", PX_PROM_GAUGE,
        "Connection read buffers allocated now, cached ones included.", s->read_buffers);

    /* The admin endpoint itself. */
    one(b, "rsproxy_admin_connections", PX_PROM_GAUGE, "Admin HTTP connections now.",
        m->admin.connections);
    one(b, "rsproxy_admin_connections_refused_total", PX_PROM_COUNTER,
        "Admin HTTP connections closed at once because too many were open and busy.",
        m->admin.connections_refused);
    one(b, "rsproxy_admin_connections_evicted_total", PX_PROM_COUNTER,
        "Idle admin HTTP connections closed to make room for a new one.",
        m->admin.connections_evicted);
    px_prom_family(b, "rsproxy_admin_requests_total", PX_PROM_COUNTER,
                   "Admin HTTP requests answered, by status code (this scrape not included).");
    for (int i = 0; i < PX_ADMIN_NCODES; i++) {
        char code[8];
        snprintf(code, sizeof(code), "%d", px_admin_codes[i]);
        labelled(b, "rsproxy_admin_requests_total", "code", code, m->admin.requests[i]);
    }
}
