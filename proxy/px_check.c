/*
 * `rsproxy --check`: one upstream login with the real code path (px_server.c), reported step by
 * step in plain words: DNS, TCP, TLS (with what was verified), login. In IAM mode the database
 * credentials come first, from auth_iam_check, with where the AWS credentials came from. Exit
 * status 0 when every step worked, 1 otherwise.
 *
 * Nothing here listens for clients; the loop runs only until the login finished or failed. The
 * output never contains a password, key or token.
 */
#include "px_conn.h"

#include "px_alloc.h"
#include "px_err.h"
#include "px_log.h"

#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct check_run {
    px_proxy_t *px;
    FILE *out;
    int result; /* 0 ok, 1 failed, -1 still running */
    const char *user;
    const char *login_db; /* IAM: the database credentials were asked for, logged in to */
    char *db_user_copy;
    char *password_copy; /* secret */
    char *host_copy;
    int port;
    px_server_t *sv;
} check_run_t;

static void say(check_run_t *r, const char *what, const char *fmt, ...) PX_PRINTF(3, 4);
static void say(check_run_t *r, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(r->out, "%-6s ", what);
    vfprintf(r->out, fmt, ap);
    fputc('\n', r->out);
    va_end(ap);
    fflush(r->out);
}

static void on_step(px_server_t *sv, px_server_step_t step, const char *detail)
{
    check_run_t *r = sv->owner_arg;
    switch (step) {
    case PX_STEP_RESOLVED:
        say(r, "dns", "ok: %s resolves to %s", sv->host, detail);
        break;
    case PX_STEP_TCP:
        say(r, "tcp", "ok: connected to %s port %d", detail, sv->port);
        break;
    case PX_STEP_TLS: {
        char subj[256];
        px_tls_peer_subject(sv->sock.tls, subj, sizeof(subj));
        say(r, "tls", "ok: %s; server certificate %s", detail, subj[0] ? subj : "(none)");
        break;
    }
    case PX_STEP_LOGIN:
        say(r, "login", "ok: logged in as %s", detail);
        break;
    }
}

static void on_ready(px_server_t *sv)
{
    check_run_t *r = sv->owner_arg;
    if (!r->user && !sv->sock.tls)
        say(r, "result", "ok (connection only; no login test without a user)");
    else if (!r->user)
        say(r, "result", "ok (TLS only; no login test without a user)");
    else
        say(r, "result", "ok: upstream login works");
    r->result = 0;
    r->sv = NULL;
    px__server_terminate(sv, "check done");
}

static void on_fail(px_server_t *sv, const px_server_fail_t *f)
{
    check_run_t *r = sv->owner_arg;
    const char *where = "connect";
    switch (sv->state) {
    case PX_SERVER_RESOLVING:
        where = "dns";
        break;
    case PX_SERVER_CONNECTING:
        where = "tcp";
        break;
    case PX_SERVER_SSL_REQ:
    case PX_SERVER_TLS_HANDSHAKE:
        where = "tls";
        break;
    case PX_SERVER_LOGIN:
    case PX_SERVER_LOGIN_PARAMS:
        where = "login";
        break;
    default:
        break;
    }
    say(r, where, "FAILED: %s (SQLSTATE %s)", f->message, f->sqlstate);
    r->result = 1;
    r->sv = NULL;
}

static const px_server_owner_t check_owner = {
    .on_step = on_step,
    .on_ready = on_ready,
    .on_fail = on_fail,
};

/* `database` is what a client would have asked for (upstream.dbname wins over it). */
static void start_login(check_run_t *r, const char *host, int port, const char *user,
                        const char *password, const char *database)
{
    const cfg_t *c = r->px->boot;
    px_server_params_t p = {
        .purpose = PX_SERVER_FOR_CHECK,
        .host = host,
        .port = port,
        .user = user,
        .password = password,
        .database = c->upstream.dbname && c->upstream.dbname[0] ? c->upstream.dbname : database,
        .connect_timeout_ms = r->px->cfg->upstream.connect_timeout * 1000,
    };
    r->user = user;
    say(r, "target", "%s port %d, sslmode %s", host, port,
        c->upstream.sslmode == CFG_SSLMODE_VERIFY_FULL ? "verify-full"
        : c->upstream.sslmode == CFG_SSLMODE_VERIFY_CA ? "verify-ca"
        : c->upstream.sslmode == CFG_SSLMODE_REQUIRE   ? "require"
                                                       : "disable (plaintext)");
    int rc = px__server_start(r->px, 0, &p, &check_owner, r, &r->sv);
    if (rc) {
        say(r, "start", "FAILED: %s", px_strerror(rc));
        r->result = 1;
    }
}

static void on_iam_check(const auth_db_creds_t *creds, const auth_iam_error_t *err,
                         const auth_iam_check_info_t *info, void *arg)
{
    check_run_t *r = arg;
    /* Only what actually happened: a step that never ran (no AWS credentials found, so no
     * API called) prints nothing rather than placeholders. info->api also names the stage
     * that failed ("AWS credentials", "endpoint discovery"); only an AWS action
     * ("service:Operation") was an API call. */
    if (info) {
        if (info->provider && info->provider[0])
            say(r, "aws", "credentials from %s%s%s", info->provider,
                info->profile ? ", profile " : "", info->profile ? info->profile : "");
        if (info->region && info->region[0]) {
            if (info->region_source && info->region_source[0])
                say(r, "aws", "region %s (from %s)", info->region, info->region_source);
            else
                say(r, "aws", "region %s", info->region);
        }
        if (info->api && strchr(info->api, ':') && info->api_endpoint && info->api_endpoint[0])
            say(r, "aws", "%s at %s", info->api, info->api_endpoint);
    }
    if (err) {
        say(r, "iam", "FAILED: %s%s%s", err->aws_code ? err->aws_code : "",
            err->aws_code ? ": " : "", err->message ? err->message : px_strerror(err->code));
        r->result = 1;
        return;
    }
    say(r, "iam", "ok: database user %s, credentials valid for %lld s%s", creds->db_user,
        (long long)((creds->expiration_ms - px_now_unix_ms()) / 1000),
        info && info->host_discovered ? ", endpoint discovered" : "");
    const cfg_t *c = r->px->boot;
    r->db_user_copy = px_strdup(creds->db_user);
    r->password_copy = px_strdup(creds->db_password);
    r->host_copy = px_strdup(creds->host && creds->host[0] ? creds->host : c->upstream.host);
    r->port = creds->port > 0 ? creds->port : c->upstream.port;
    if (!r->db_user_copy || !r->password_copy || !r->host_copy) {
        say(r, "iam", "FAILED: out of memory");
        r->result = 1;
        return;
    }
    /* The database AWS was asked about, not one named after the returned DbUser ("IAM:alice"):
     * a client connecting as alice without a dbname gets database alice, and so does this. */
    start_login(r, r->host_copy, r->port, r->db_user_copy, r->password_copy, r->login_db);
}

static const char *os_user(void)
{
    const char *u = getenv("USER");
    if (u && *u)
        return u;
    struct passwd *pw = getpwuid(getuid());
    return pw ? pw->pw_name : "postgres";
}

int px_proxy_check(uv_loop_t *loop, cfg_t *cfg, FILE *out)
{
    char err[1024] = "";
    px_proxy_t *px = NULL;
    int rc = px_proxy_new(loop, cfg, NULL, &px, err, sizeof(err));
    if (rc) {
        fprintf(out, "setup  FAILED: %s\n", err[0] ? err : px_strerror(rc));
        return 1;
    }
    check_run_t r = {.px = px, .out = out, .result = -1};
    const cfg_t *c = px->boot;
    if (c->upstream.auth == CFG_UPSTREAM_AUTH_PASSWORD) {
        const char *user = c->upstream.user && c->upstream.user[0] ? c->upstream.user : NULL;
        if (!user)
            say(&r, "note",
                "upstream.user is empty (clients log in as themselves): a user is needed for "
                "the login test, so only DNS, TCP and TLS are tested");
        start_login(&r, c->upstream.host, c->upstream.port, user, px->cfg->upstream.password, user);
    } else {
        const char *user = c->iam.db_user && c->iam.db_user[0] ? c->iam.db_user : os_user();
        if (!(c->iam.db_user && c->iam.db_user[0]) && !c->iam.with_iam &&
            !(c->iam.workgroup_name && c->iam.workgroup_name[0]))
            say(&r, "note", "iam.db_user is empty: checking as client user \"%s\"", user);
        const char *db = c->upstream.dbname && c->upstream.dbname[0] ? c->upstream.dbname : user;
        r.login_db = db;
        rc = auth_iam_check(px->iam, user, db, on_iam_check, &r);
        if (rc) {
            say(&r, "iam", "FAILED: %s", px_strerror(rc));
            r.result = 1;
        }
    }
    /* Run until the login is decided, then let the closing handles finish. */
    while (r.result < 0 && uv_run(loop, UV_RUN_ONCE))
        ;
    if (r.result < 0) {
        say(&r, "result", "FAILED: the check stopped without an answer");
        r.result = 1;
    }
    if (r.sv)
        px__server_close(r.sv, "check done");
    px__proxy_close_aws(px);
    uv_run(loop, UV_RUN_DEFAULT);
    px_free(r.db_user_copy);
    px_free_secret(r.password_copy);
    px_free(r.host_copy);
    px_proxy_free(px);
    return r.result;
}
