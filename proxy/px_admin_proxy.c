/*
 * The admin endpoint bound to the daemon: what /startup, /readiness and /liveness mean for
 * rsproxy, the snapshot /metrics renders, the health bookkeeping behind the px_proxy_note_*
 * hooks, and the endpoint's lifetime next to the proxy's.
 *
 * Probe semantics (also in README.md, "Health checks and metrics"):
 *   /liveness   200 whenever the event loop answers at all.
 *   /startup    200 once the listeners are bound and, in IAM mode, the AWS credential chain
 *               has produced keys once or failed. A failure still counts as "started": it is
 *               reported by /readiness, retried in the background, and the pod is not
 *               restarted in a loop over something a restart cannot fix.
 *   /readiness  503 while draining after SIGTERM, while the credential chain is failing, or
 *               after PX_ADMIN_UNREADY_STREAK proxy-wide upstream login failures in a row
 *               within PX_ADMIN_UNREADY_WINDOW; 200 otherwise. A client's own mistake (wrong
 *               password, unknown database or user) never counts, so readiness does not flap
 *               on one bad client.
 *
 * This file never changes the proxy's state beyond the health fields of its stats.
 */
#include "px_admin.h"

#include "px_admin_prom.h"
#include "px_alloc.h"
#include "px_conn.h"
#include "px_err.h"
#include "px_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How often the credential chain is retried while it fails: 2 s, 4 s, ... up to a minute. */
#define CREDS_RETRY_MAX_MS 60000
#define CREDS_TICK_MS      1000

typedef struct admin_glue {
    px_proxy_t *px;
    px_admin_t *server;
    uv_timer_t tick; /* retries of a failing credential chain */
    int pending_closes;
    bool closing;
    uint64_t last_creds_try; /* loop time */
    double start_time_s;
} admin_glue_t;

/* ------------------------------------------------------------------------------------------ */
/* Classification (pure).                                                                      */

static bool sqlstate_class(const char *sqlstate, const char *cls)
{
    return sqlstate && strlen(sqlstate) == 5 && sqlstate[0] == cls[0] && sqlstate[1] == cls[1];
}

px_login_fail_t px_admin_classify_login(int code, const char *sqlstate, bool upstream_said,
                                        bool fixed_user, bool *proxy_wide)
{
    *proxy_wide = false;
    if (upstream_said) {
        /* Upstream answered with its own ErrorResponse. Refusing the credentials is about this
         * client, unless every client logs in as the same configured user. Running out of
         * connections (53), "cannot connect now" and shutdowns (57), system and internal
         * errors (58, XX) and connection exceptions (08) are everyone's. */
        if (sqlstate_class(sqlstate, "28")) {
            *proxy_wide = fixed_user;
            return PX_LOGIN_FAIL_AUTH;
        }
        *proxy_wide = sqlstate_class(sqlstate, "53") || sqlstate_class(sqlstate, "57") ||
                      sqlstate_class(sqlstate, "58") || sqlstate_class(sqlstate, "XX") ||
                      sqlstate_class(sqlstate, "08");
        return PX_LOGIN_FAIL_REFUSED;
    }
    switch (code) {
    case AUTH_E_AWS:
    case AUTH_E_HTTP:
    case AUTH_E_PARSE:
    case AUTH_E_NOCREDS:
    case AUTH_E_EXPIRED:
    case AUTH_E_THROTTLED:
    case AUTH_E_TIMEOUT:
    case AUTH_E_CANCELED:
        return PX_LOGIN_FAIL_IAM; /* px_proxy_note_iam decides about those */
    case AUTH_E_FAILED:
    case AUTH_E_MECH:
    case AUTH_E_VERIFY:
    case PX_E_UNSUPPORTED:
        *proxy_wide = fixed_user;
        return PX_LOGIN_FAIL_AUTH;
    case PX_E_TLS:
    case PX_E_TLS_VERIFY:
    case PX_E_NOSSL:
        *proxy_wide = true;
        return PX_LOGIN_FAIL_TLS;
    case UV_ETIMEDOUT:
        *proxy_wide = true;
        return PX_LOGIN_FAIL_TIMEOUT;
    case UV_EAI_ADDRFAMILY:
    case UV_EAI_AGAIN:
    case UV_EAI_BADFLAGS:
    case UV_EAI_BADHINTS:
    case UV_EAI_CANCELED:
    case UV_EAI_FAIL:
    case UV_EAI_FAMILY:
    case UV_EAI_MEMORY:
    case UV_EAI_NODATA:
    case UV_EAI_NONAME:
    case UV_EAI_OVERFLOW:
    case UV_EAI_PROTOCOL:
    case UV_EAI_SERVICE:
    case UV_EAI_SOCKTYPE:
        *proxy_wide = true;
        return PX_LOGIN_FAIL_DNS;
    case PX_E_PROTO:
    case AUTH_E_PROTO:
        *proxy_wide = true;
        return PX_LOGIN_FAIL_PROTOCOL;
    case PX_E_UPSTREAM_EOF:
    case UV_EOF:
    case UV_ECONNREFUSED:
    case UV_ECONNRESET:
    case UV_ECONNABORTED:
    case UV_EPIPE:
    case UV_ENETUNREACH:
    case UV_ENETDOWN:
    case UV_EHOSTUNREACH:
    case UV_EADDRNOTAVAIL:
    case UV_ENOTCONN:
        *proxy_wide = true;
        return PX_LOGIN_FAIL_NETWORK;
    default:
        return PX_LOGIN_FAIL_OTHER;
    }
}

bool px_admin_iam_proxy_wide(int code, const char *aws_code, bool unreachable)
{
    if (unreachable)
        return true;
    switch (code) {
    case AUTH_E_NOCREDS:
    case AUTH_E_EXPIRED:
    case AUTH_E_THROTTLED:
    case AUTH_E_TIMEOUT:
    case AUTH_E_HTTP:
    case AUTH_E_PARSE:
        return true;
    case AUTH_E_AWS:
        break;
    default:
        return false;
    }
    /* AWS answered. These codes say nothing about the client's user name: the proxy's own
     * identity, the cluster or workgroup, or the service itself is the problem. AccessDenied
     * is not among them: a policy may allow some database users and not others. */
    static const char *const wide[] = {
        "ClusterNotFound",
        "ResourceNotFoundException",
        "InvalidClusterState",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "RequestExpired",
        "InternalFailure",
        "InternalError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Throttling",
        "ThrottlingException",
    };
    if (!aws_code)
        return false;
    for (size_t i = 0; i < PX_ARRAY_SIZE(wide); i++)
        if (strcmp(aws_code, wide[i]) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Health bookkeeping (pure, on a stats object).                                               */

void px_admin_health_login_ok(px_proxy_stats_t *s, uint64_t now_ms)
{
    s->health.upstream_fail_streak = 0;
    s->health.upstream_last_ok_ms = now_ms;
}

void px_admin_health_login_failed(px_proxy_stats_t *s, px_login_fail_t reason, bool proxy_wide,
                                  uint64_t now_ms)
{
    if ((unsigned)reason >= PX_LOGIN_FAIL_N)
        reason = PX_LOGIN_FAIL_OTHER;
    s->login_failures[reason]++;
    px_proxy_health_t *h = &s->health;
    if (proxy_wide) {
        h->upstream_fail_streak++;
        h->upstream_last_fail_ms = now_ms;
        h->upstream_last_reason = reason;
    } else if (reason == PX_LOGIN_FAIL_AUTH || reason == PX_LOGIN_FAIL_REFUSED) {
        /* Upstream answered this client's login itself: it is reachable and serving. */
        h->upstream_fail_streak = 0;
    }
}

void px_admin_health_iam(px_proxy_stats_t *s, bool ok, bool chain_failed)
{
    if (ok)
        s->health.creds = PX_CREDS_OK;
    else if (chain_failed)
        s->health.creds = PX_CREDS_FAILED;
}

int px_admin_eval_probe(const px_proxy_stats_t *s, px_admin_probe_t which, uint64_t now_ms,
                        px_dbuf_t *body)
{
    px_dbuf_t scratch;
    if (!body) {
        px_dbuf_init(&scratch, 1024);
        body = &scratch;
    }
    int status = 200;
    const px_proxy_health_t *h = &s->health;
    switch (which) {
    case PX_ADMIN_LIVENESS:
        px_dbuf_printf(body, "{\"status\":\"alive\"}\n");
        break;
    case PX_ADMIN_STARTUP:
        if (h->creds == PX_CREDS_PENDING) {
            status = 503;
            px_dbuf_printf(body, "{\"status\":\"starting\",\"waiting_for\":\"aws_credentials\"}\n");
        } else {
            px_dbuf_printf(body, "{\"status\":\"started\"}\n");
        }
        break;
    case PX_ADMIN_READINESS:
        status = 503;
        if (s->shutting_down) {
            px_dbuf_printf(body, "{\"status\":\"not_ready\",\"reason\":\"draining\"}\n");
        } else if (h->creds == PX_CREDS_PENDING) {
            px_dbuf_printf(body, "{\"status\":\"not_ready\",\"reason\":\"starting\"}\n");
        } else if (h->creds == PX_CREDS_FAILED) {
            px_dbuf_printf(body, "{\"status\":\"not_ready\",\"reason\":\"aws_credentials\"}\n");
        } else if (h->upstream_fail_streak >= PX_ADMIN_UNREADY_STREAK &&
                   now_ms - h->upstream_last_fail_ms < PX_ADMIN_UNREADY_WINDOW) {
            px_dbuf_printf(body,
                           "{\"status\":\"not_ready\",\"reason\":\"upstream\","
                           "\"consecutive_failures\":%u,\"last_failure\":\"%s\","
                           "\"seconds_since_last_failure\":%llu}\n",
                           h->upstream_fail_streak,
                           px_admin_login_fail_name(h->upstream_last_reason),
                           (unsigned long long)((now_ms - h->upstream_last_fail_ms) / 1000));
        } else {
            status = 200;
            px_dbuf_printf(body, "{\"status\":\"ready\"}\n");
        }
        break;
    default:
        status = 500;
        break;
    }
    if (body == &scratch)
        px_dbuf_free(&scratch);
    return status;
}

/* ------------------------------------------------------------------------------------------ */
/* The hooks (px_proxy.h).                                                                     */

void px_proxy_note_login_ok(px_proxy_t *px)
{
    px_admin_health_login_ok(&px->stats, px_now_mono_ms());
}

void px_proxy_note_login_failed(px_proxy_t *px, int code, const char *sqlstate, bool upstream_said)
{
    const cfg_t *b = px->boot;
    bool fixed_user =
        b->upstream.auth == CFG_UPSTREAM_AUTH_PASSWORD && b->upstream.user && b->upstream.user[0];
    bool wide;
    px_login_fail_t r = px_admin_classify_login(code, sqlstate, upstream_said, fixed_user, &wide);
    px_admin_health_login_failed(&px->stats, r, wide, px_now_mono_ms());
}

void px_proxy_note_iam(px_proxy_t *px, const auth_iam_error_t *err)
{
    if (!err) {
        px->stats.iam_requests_ok++;
        px_admin_health_iam(&px->stats, true, false);
        return;
    }
    px->stats.iam_requests_failed++;
    px_admin_health_login_failed(
        &px->stats, PX_LOGIN_FAIL_IAM,
        px_admin_iam_proxy_wide(err->code, err->aws_code, err->unreachable), px_now_mono_ms());
    /* Only the chain's own failures mark the credentials as failing; an AWS API error is an
     * upstream failure above and clears when a login works again. */
    px_admin_health_iam(&px->stats, false,
                        err->code == AUTH_E_NOCREDS || err->code == AUTH_E_EXPIRED);
}

void px_proxy_note_iam_fetch(px_proxy_t *px, bool ok, bool refresh)
{
    if (ok)
        px->stats.iam_fetches_ok++;
    else
        px->stats.iam_fetches_failed++;
    if (refresh)
        px->stats.iam_refreshes++;
}

/* ------------------------------------------------------------------------------------------ */
/* The AWS credential chain at startup, and its retries while it fails.                       */

/* The callback's argument is the proxy, not this endpoint: the proxy outlives every IAM
 * request (its IAM object delivers AUTH_E_CANCELED to what is in flight when it closes, before
 * uv_run returns), whereas the endpoint may already be gone by then. */
static void on_creds(const auth_aws_keys_t *keys, int64_t expiration_ms, const char *region,
                     const char *s3_endpoint, const auth_iam_error_t *err, void *arg)
{
    px_proxy_t *px = arg;
    px_proxy_health_t *h = &px->stats.health;
    (void)keys; /* only whether they came matters; they are never copied */
    (void)expiration_ms;
    (void)region;
    (void)s3_endpoint;
    h->creds_fetching = false;
    if (err && err->code == AUTH_E_CANCELED)
        return;
    if (!err) {
        if (h->creds != PX_CREDS_OK)
            px_log(PX_LOG_INFO, "admin: the AWS credential chain produced keys");
        h->creds = PX_CREDS_OK;
        h->creds_failures = 0;
        return;
    }
    if (h->creds != PX_CREDS_FAILED)
        px_log(PX_LOG_WARN,
               "admin: cannot get AWS credentials (%s%s%s); /readiness answers 503 until "
               "they can be had (retrying)",
               err->aws_code ? err->aws_code : "", err->aws_code ? ": " : "",
               err->message ? err->message : px_strerror(err->code));
    h->creds = PX_CREDS_FAILED;
    h->creds_failures++;
}

static void fetch_creds(admin_glue_t *g)
{
    px_proxy_t *px = g->px;
    px_proxy_health_t *h = &px->stats.health;
    if (px->shutting_down || !px->iam || px->iam_closing || h->creds_fetching)
        return;
    g->last_creds_try = uv_now(px->loop);
    /* No request handle is kept: this is never cancelled, only ended by the IAM object. */
    int rc = auth_iam_get_aws_keys(px->iam, on_creds, px, NULL);
    if (rc) {
        px_log(PX_LOG_WARN, "admin: cannot ask for AWS credentials: %s", px_strerror(rc));
        h->creds = PX_CREDS_FAILED;
        h->creds_failures++;
        return;
    }
    h->creds_fetching = true;
}

static void on_tick(uv_timer_t *t)
{
    admin_glue_t *g = container_of(t, admin_glue_t, tick);
    const px_proxy_health_t *h = &g->px->stats.health;
    if (h->creds != PX_CREDS_FAILED || h->creds_fetching)
        return;
    unsigned shift = h->creds_failures < 6 ? h->creds_failures : 6;
    uint64_t wait = PX_MIN((uint64_t)1000 << shift, (uint64_t)CREDS_RETRY_MAX_MS);
    if (uv_now(g->px->loop) - g->last_creds_try >= wait)
        fetch_creds(g);
}

/* ------------------------------------------------------------------------------------------ */
/* What the endpoint serves.                                                                   */

static int glue_probe(void *arg, px_admin_probe_t which, px_dbuf_t *body)
{
    admin_glue_t *g = arg;
    px_proxy_stats_t s;
    px_proxy_get_stats(g->px, &s);
    return px_admin_eval_probe(&s, which, px_now_mono_ms(), body);
}

static void glue_metrics(void *arg, px_dbuf_t *out)
{
    admin_glue_t *g = arg;
    px_admin_metrics_t m;
    memset(&m, 0, sizeof(m));
    px_proxy_get_stats(g->px, &m.stats);
    m.version = RSPROXY_VERSION;
    m.start_time_s = g->start_time_s;
    m.max_client_conn = px_proxy_cfg(g->px)->proxy.max_client_conn;
    m.iam = g->px->boot->upstream.auth == CFG_UPSTREAM_AUTH_IAM;
    m.ready = px_admin_eval_probe(&m.stats, PX_ADMIN_READINESS, px_now_mono_ms(), NULL) == 200;
    px_admin_get_stats(g->server, &m.admin);
    px_admin_metrics_render(out, &m);
}

static const px_admin_ops_t glue_ops = {
    .probe = glue_probe,
    .metrics = glue_metrics,
};

/*
 * The process start time from /proc (field 22 of /proc/self/stat, in clock ticks after boot,
 * plus /proc/stat's btime), as Prometheus' own process collector computes it. Startup only;
 * `fallback` (now) when /proc cannot tell.
 */
static double process_start_time(double fallback)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return fallback;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) is in parentheses and may hold spaces: start after it. */
    char *p = strrchr(buf, ')');
    if (!p)
        return fallback;
    p++;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p + 1, ' ');
    }
    if (!p)
        return fallback;
    unsigned long long ticks = strtoull(p + 1, NULL, 10);
    f = fopen("/proc/stat", "r");
    if (!f)
        return fallback;
    unsigned long long btime = 0;
    char line[256];
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (btime == 0 || hz <= 0)
        return fallback;
    return (double)btime + (double)ticks / (double)hz;
}

/* ------------------------------------------------------------------------------------------ */
/* Lifetime.                                                                                   */

static void glue_maybe_free(admin_glue_t *g)
{
    if (--g->pending_closes == 0) {
        px_log(PX_LOG_DEBUG, "admin: endpoint closed");
        px_free(g);
    }
}

static void on_glue_handle_closed(uv_handle_t *h)
{
    glue_maybe_free(h->data);
}

static void on_server_closed(void *arg)
{
    glue_maybe_free(arg);
}

static void glue_close(admin_glue_t *g)
{
    if (g->closing)
        return;
    g->closing = true;
    g->pending_closes = 2;
    g->tick.data = g;
    uv_close((uv_handle_t *)&g->tick, on_glue_handle_closed);
    px_admin_close(g->server, on_server_closed, g);
}

/* The endpoint outlives the listeners (readiness answers 503 while sessions drain) but not the
 * sessions: the proxy's shutdown calls this once the last one is gone, so uv_run can return. */
void px__admin_stop(px_proxy_t *px)
{
    if (px->admin) {
        glue_close(px->admin);
        px->admin = NULL;
    }
}

int px__admin_start(px_proxy_t *px, char *err, size_t errlen)
{
    const cfg_t *boot = px->boot; /* admin_addr and admin_port change only on restart */
    if (boot->proxy.admin_port == 0)
        return 0;
    admin_glue_t *g = px_calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "admin endpoint: out of memory");
        return UV_ENOMEM;
    }
    g->px = px;
    g->start_time_s = process_start_time((double)px_now_unix_ms() / 1000.0);
    px_admin_opts_t o = {.addr = boot->proxy.admin_addr, .port = boot->proxy.admin_port};
    int rc = px_admin_new(px->loop, &o, &glue_ops, g, &g->server, err, errlen);
    if (rc) {
        px_free(g);
        return rc;
    }
    px->admin = g;
    /* The timer does not keep the loop alive: the endpoint's listeners do, until glue_close.
     * It runs only where there is a credential chain to retry. */
    uv_timer_init(px->loop, &g->tick);
    uv_unref((uv_handle_t *)&g->tick);
    if (boot->upstream.auth == CFG_UPSTREAM_AUTH_IAM && px->iam) {
        uv_timer_start(&g->tick, on_tick, CREDS_TICK_MS, CREDS_TICK_MS);
        px->stats.health.creds = PX_CREDS_PENDING;
        fetch_creds(g);
    }
    px_log(PX_LOG_INFO, "admin endpoint on %s port %d: /startup /readiness /liveness /metrics",
           boot->proxy.admin_addr, px_admin_port(g->server));
    return 0;
}
