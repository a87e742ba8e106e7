/*
 * Loop tests for the IAM credential cache (auth_iam.h) against a local fake of Redshift and
 * Redshift Serverless: single flight under 200 concurrent logins, cache keys, lower-casing,
 * refresh inside the margin, serving still-valid credentials when a refresh fails (and never
 * expired ones), error mapping (AccessDenied, ClusterNotFound, throttling, unreachable),
 * endpoint discovery and its cache, Serverless, the CustomDomainName fallback, ExpiredToken
 * recovery, cancel, reload, --check, the proxy's own keys, and a clean close.
 */
#include "auth_http.h"
#include "auth_iam.h"
#include "cfg.h"
#include "px_alloc.h"
#include "px_err.h"
#include "px_test.h"
#include "test_auth_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------
 * Fake Redshift
 */

typedef struct fake {
    int gcc, gcc_iam, describe, sls_creds, sls_wg, total;
    int64_t expire_in_s;
    int fail_status;        /* non-zero: answer GetClusterCredentials with this status... */
    char fail_code[64];     /* ...and this code */
    int fail_count;         /* how many calls fail (-1: all) */
    bool reject_domain;     /* CustomDomainName calls fail with InvalidParameterValue */
    int expired_token_once; /* the first N calls say ExpiredToken */
    char last_body[4096];
    char last_auth[512];
    char last_target[512];
    char last_token[512];
    int serial;
} fake_t;

static bool form_get(const char *body, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *p = body;
    while (p && *p) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t n = strcspn(p + kl + 1, "&");
            if (n >= cap)
                n = cap - 1;
            memcpy(out, p + kl + 1, n);
            out[n] = '\0';
            return true;
        }
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return false;
}

static void iso_in(int64_t s, char *out, size_t cap)
{
    time_t t = time(NULL) + s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void fake_handler(const ts_request_t *req, ts_response_t *resp, void *arg)
{
    fake_t *f = arg;
    f->total++;
    size_t n = req->bodylen < sizeof(f->last_body) - 1 ? req->bodylen : sizeof(f->last_body) - 1;
    memcpy(f->last_body, req->body, n);
    f->last_body[n] = '\0';
    char v[512];
    snprintf(f->last_auth, sizeof(f->last_auth), "%s",
             ts_header(req, "Authorization", v, sizeof(v)) ? v : "");
    snprintf(f->last_target, sizeof(f->last_target), "%s",
             ts_header(req, "X-Amz-Target", v, sizeof(v)) ? v : "");
    snprintf(f->last_token, sizeof(f->last_token), "%s",
             ts_header(req, "X-Amz-Security-Token", v, sizeof(v)) ? v : "");
    char exp[40];
    iso_in(f->expire_in_s, exp, sizeof(exp));

    if (f->expired_token_once > 0) {
        f->expired_token_once--;
        resp->status = 403;
        snprintf(resp->body, sizeof(resp->body),
                 "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>The security token "
                 "included in the request is expired</Message></Error></ErrorResponse>");
        return;
    }
    if (f->last_target[0]) { /* Serverless, JSON 1.1 */
        if (strcmp(f->last_target, "RedshiftServerless.GetWorkgroup") == 0) {
            f->sls_wg++;
            snprintf(resp->body, sizeof(resp->body),
                     "{\"workgroup\":{\"workgroupName\":\"wg1\",\"status\":\"AVAILABLE\","
                     "\"endpoint\":{\"address\":\"wg1.123456789012.us-east-1.redshift-"
                     "serverless.amazonaws.com\",\"port\":5440}}}");
        } else {
            f->sls_creds++;
            snprintf(resp->body, sizeof(resp->body),
                     "{\"dbUser\":\"IAMR:rsproxy-role\",\"dbPassword\":\"slspw%d\","
                     "\"expiration\":%lld.25}",
                     ++f->serial, (long long)time(NULL) + (long long)f->expire_in_s);
        }
        return;
    }
    char action[64] = "", user[128] = "";
    form_get(f->last_body, "Action", action, sizeof(action));
    if (strcmp(action, "DescribeClusters") == 0) {
        f->describe++;
        snprintf(resp->body, sizeof(resp->body),
                 "<DescribeClustersResponse><DescribeClustersResult><Clusters><Cluster>"
                 "<Endpoint><Address>examplecluster.abc.us-east-1.redshift.amazonaws.com"
                 "</Address><Port>5439</Port></Endpoint><ClusterStatus>available"
                 "</ClusterStatus></Cluster></Clusters></DescribeClustersResult>"
                 "</DescribeClustersResponse>");
        return;
    }
    bool iam = strcmp(action, "GetClusterCredentialsWithIAM") == 0;
    if (iam)
        f->gcc_iam++;
    else
        f->gcc++;
    if (f->reject_domain && strstr(f->last_body, "CustomDomainName=")) {
        resp->status = 400;
        snprintf(resp->body, sizeof(resp->body),
                 "<ErrorResponse><Error><Code>InvalidParameterValue</Code><Message>custom "
                 "domain not associated</Message></Error></ErrorResponse>");
        return;
    }
    if (f->fail_status && f->fail_count != 0) {
        if (f->fail_count > 0)
            f->fail_count--;
        resp->status = f->fail_status;
        snprintf(resp->body, sizeof(resp->body),
                 "<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s says no"
                 "</Message></Error><RequestId>rid-1</RequestId></ErrorResponse>",
                 f->fail_code, f->fail_code);
        return;
    }
    form_get(f->last_body, "DbUser", user, sizeof(user));
    bool autoc = strstr(f->last_body, "AutoCreate=true") != NULL;
    snprintf(resp->body, sizeof(resp->body),
             "<%sResponse><%sResult><DbUser>%s:%s</DbUser><DbPassword>pw/%d+=</DbPassword>"
             "<Expiration>%s</Expiration></%sResult></%sResponse>",
             iam ? "GetClusterCredentialsWithIAM" : "GetClusterCredentials",
             iam ? "GetClusterCredentialsWithIAM" : "GetClusterCredentials",
             iam ? "IAMR" : (autoc ? "IAMA" : "IAM"), iam ? "rsproxy-role" : user, ++f->serial, exp,
             iam ? "GetClusterCredentialsWithIAM" : "GetClusterCredentials",
             iam ? "GetClusterCredentialsWithIAM" : "GetClusterCredentials");
}

/* ---------------------------------------------------------------------------------------------
 * Plumbing
 */

typedef struct env {
    uv_loop_t loop;
    auth_iam_t *iam;
    cfg_t *cfg;
    ts_server_t *srv;
    int port;
    fake_t fake;
    char home[64];
    bool closed;
} env_t;

static cfg_t *load_cfg(const char *extra)
{
    char text[2048];
    snprintf(text, sizeof(text), "[upstream]\nauth = iam\n%s\n", extra);
    cfg_t *c = NULL;
    char err[1024];
    cfg_load_opts_t o = {.path = "test.ini", .text = text};
    char *const empty_env[] = {NULL};
    o.envp = empty_env;
    if (cfg_load(&o, &c, err, sizeof(err)) != 0)
        PX_FAIL("config: %s", err);
    return c;
}

static void env_start(env_t *e, const char *cfg_text)
{
    memset(e, 0, sizeof(*e));
    ASSERT_OK(uv_loop_init(&e->loop));
    ASSERT_OK(ts_start(&e->loop, fake_handler, &e->fake, &e->srv, &e->port));
    e->fake.expire_in_s = 900;
    snprintf(e->home, sizeof(e->home), "/tmp/rsproxy-iam-XXXXXX");
    ASSERT(mkdtemp(e->home));
    /* auth_iam reads the process environment, as the proxy does. */
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", e->port);
    setenv("HOME", e->home, 1);
    setenv("AWS_ENDPOINT_URL", url, 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIAPROXYTEST0000001", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "proxysecret", 1);
    setenv("AWS_SESSION_TOKEN", "proxytoken", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    unsetenv("AWS_PROFILE");
    e->cfg = load_cfg(cfg_text);
    ASSERT_OK(auth_iam_new(&e->loop, e->cfg, &e->iam));
    auth_http_set_retry(auth_iam_http(e->iam), 5, 20);
}

static void closed_cb(void *arg)
{
    *(bool *)arg = true;
}

static void env_finish(env_t *e)
{
    auth_iam_close(e->iam, closed_cb, &e->closed);
    ts_stop(e->srv);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    ASSERT(e->closed);
    ASSERT_EQ(ts_open_handles(&e->loop), 0);
    px_test_loop_close(&e->loop);
    cfg_unref(e->cfg);
    rmdir(e->home);
}

typedef struct got {
    int calls;
    bool started;
    bool ok;
    char user[128], password[128], host[256];
    int port;
    int64_t exp;
    int code;
    char aws_code[64], message[800];
    bool unreachable;
} got_t;

static void got_cb(const auth_db_creds_t *c, const auth_iam_error_t *err, void *arg)
{
    got_t *g = arg;
    if (!g->started)
        PX_FAIL("callback called synchronously");
    g->calls++;
    g->ok = c != NULL;
    if (c) {
        snprintf(g->user, sizeof(g->user), "%s", c->db_user);
        snprintf(g->password, sizeof(g->password), "%s", c->db_password);
        snprintf(g->host, sizeof(g->host), "%s", c->host ? c->host : "");
        g->port = c->port;
        g->exp = c->expiration_ms;
    } else {
        g->code = err->code;
        snprintf(g->aws_code, sizeof(g->aws_code), "%s", err->aws_code ? err->aws_code : "");
        snprintf(g->message, sizeof(g->message), "%s", err->message);
        g->unreachable = err->unreachable;
    }
}

static void get(env_t *e, const char *user, const char *db, got_t *g)
{
    memset(g, 0, sizeof(*g));
    ASSERT_OK(auth_iam_get_db_creds(e->iam, user, db, got_cb, g, NULL));
    g->started = true;
    uv_run(&e->loop, UV_RUN_DEFAULT);
    ASSERT_EQ(g->calls, 1);
}

#define PROVISIONED "host = db.internal\nport = 5439\n[iam]\ncluster_identifier = examplecluster\n"

/* ---------------------------------------------------------------------------------------------
 * Tests
 */

PX_TEST(single_flight_200_clients)
{
    env_t e;
    env_start(&e, PROVISIONED);
    static got_t g[200];
    for (int i = 0; i < 200; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        ASSERT_OK(auth_iam_get_db_creds(e.iam, "alice", "dev", got_cb, &g[i], NULL));
        g[i].started = true;
    }
    uv_run(&e.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 200; i++) {
        ASSERT_EQ(g[i].calls, 1);
        ASSERT(g[i].ok);
        ASSERT_STR_EQ(g[i].user, "IAM:alice");
        ASSERT_STR_EQ(g[i].password, "pw/1+=");
        ASSERT_STR_EQ(g[i].host, "db.internal");
        ASSERT_EQ(g[i].port, 5439);
    }
    ASSERT_EQ(e.fake.gcc, 1);
    ASSERT(strstr(e.fake.last_auth, "Credential=AKIAPROXYTEST0000001/"));
    ASSERT(strstr(e.fake.last_auth, "/us-east-1/redshift/aws4_request"));
    ASSERT_STR_EQ(e.fake.last_token, "proxytoken");
    ASSERT_STR_EQ(e.fake.last_body, "Action=GetClusterCredentials&ClusterIdentifier="
                                    "examplecluster&DbName=dev&DbUser=alice&DurationSeconds=900&"
                                    "Version=2012-12-01");
    /* Cached for the next login; another user or database is another key. */
    got_t x;
    get(&e, "alice", "dev", &x);
    ASSERT_EQ(e.fake.gcc, 1);
    get(&e, "ALICE", "dev", &x); /* lower-cased: the same key */
    ASSERT_EQ(e.fake.gcc, 1);
    get(&e, "alice", "other", &x);
    ASSERT_EQ(e.fake.gcc, 2);
    get(&e, "bob", "dev", &x);
    ASSERT_EQ(e.fake.gcc, 3);
    ASSERT_STR_EQ(x.user, "IAM:bob");
    env_finish(&e);
}

PX_TEST(groups_autocreate_fixed_user)
{
    env_t e;
    env_start(&e, "dbname = warehouse\n" PROVISIONED
                  "db_user = Report_User\ndb_groups = Analysts, etl\nauto_create = true\n"
                  "duration_seconds = 1800\n");
    got_t g;
    get(&e, "whoever", "ignored", &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(g.user, "IAMA:report_user");
    ASSERT_STR_EQ(e.fake.last_body,
                  "Action=GetClusterCredentials&AutoCreate=true&ClusterIdentifier=examplecluster&"
                  "DbGroups.DbGroup.1=analysts&DbGroups.DbGroup.2=etl&DbName=warehouse&"
                  "DbUser=report_user&DurationSeconds=1800&Version=2012-12-01");
    get(&e, "someone-else", "x", &g); /* fixed user and database: one key */
    ASSERT_EQ(e.fake.gcc, 1);
    env_finish(&e);
}

PX_TEST(refresh_inside_margin)
{
    env_t e;
    env_start(&e, PROVISIONED "refresh_margin_seconds = 60\n");
    e.fake.expire_in_s = 45; /* inside the margin, still usable */
    got_t g;
    get(&e, "alice", "dev", &g);
    ASSERT_STR_EQ(g.password, "pw/1+=");
    /* Inside the margin: the next login waits for fresh credentials. */
    e.fake.expire_in_s = 900;
    get(&e, "alice", "dev", &g);
    ASSERT_STR_EQ(g.password, "pw/2+=");
    ASSERT_EQ(e.fake.gcc, 2);
    ASSERT(g.exp > (int64_t)time(NULL) * 1000 + 800000);
    get(&e, "alice", "dev", &g);
    ASSERT_EQ(e.fake.gcc, 2);
    env_finish(&e);
}

PX_TEST(failed_refresh_serves_valid_never_expired)
{
    env_t e;
    env_start(&e, PROVISIONED);
    e.fake.expire_in_s = 45;
    got_t g;
    get(&e, "alice", "dev", &g);
    ASSERT(g.ok);
    /* The refresh fails: the old, still valid credentials are served. */
    e.fake.fail_status = 403;
    snprintf(e.fake.fail_code, sizeof(e.fake.fail_code), "AccessDenied");
    e.fake.fail_count = -1;
    get(&e, "alice", "dev", &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(g.password, "pw/1+=");
    ASSERT_EQ(e.fake.gcc, 2);
    /* Within the backoff no call is made, and the old credentials still come back. */
    get(&e, "alice", "dev", &g);
    ASSERT(g.ok);
    ASSERT_EQ(e.fake.gcc, 2);
    env_finish(&e);

    /* Credentials about to expire are never handed out, even when the refresh fails. */
    env_start(&e, PROVISIONED);
    e.fake.expire_in_s = 5;
    get(&e, "alice", "dev", &g);
    ASSERT(!g.ok); /* already below the safety margin when they arrived */
    ASSERT_EQ(g.code, AUTH_E_EXPIRED);
    env_finish(&e);
}

PX_TEST(error_mapping)
{
    static const struct {
        int status;
        const char *code;
        int want;
        bool unreachable;
    } cases[] = {
        {403, "AccessDenied", AUTH_E_AWS, false},
        {404, "ClusterNotFound", AUTH_E_AWS, false},
        {400, "InvalidParameterValue", AUTH_E_AWS, false},
        {400, "Throttling", AUTH_E_THROTTLED, true},
        {503, "ServiceUnavailable", AUTH_E_AWS, true},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(cases); i++) {
        env_t e;
        env_start(&e, PROVISIONED);
        e.fake.fail_status = cases[i].status;
        snprintf(e.fake.fail_code, sizeof(e.fake.fail_code), "%s", cases[i].code);
        e.fake.fail_count = -1;
        got_t g;
        get(&e, "alice", "dev", &g);
        ASSERT(!g.ok);
        ASSERT_EQ(g.code, cases[i].want);
        ASSERT_STR_EQ(g.aws_code, cases[i].code);
        ASSERT_EQ(g.unreachable, cases[i].unreachable);
        ASSERT(strstr(g.message, "redshift:GetClusterCredentials"));
        ASSERT(strstr(g.message, "says no"));
        ASSERT(!strstr(g.message, "proxysecret"));
        /* While backing off, the next client gets the same error at once, without a call. */
        int calls = e.fake.gcc;
        get(&e, "alice", "dev", &g);
        ASSERT(!g.ok);
        ASSERT_STR_EQ(g.aws_code, cases[i].code);
        ASSERT_EQ(g.unreachable, cases[i].unreachable);
        ASSERT_EQ(e.fake.gcc, calls);
        env_finish(&e);
    }

    /* Throttled twice, then fine: the retries absorb it. */
    env_t e;
    env_start(&e, PROVISIONED);
    e.fake.fail_status = 400;
    snprintf(e.fake.fail_code, sizeof(e.fake.fail_code), "Throttling");
    e.fake.fail_count = 2;
    got_t g;
    get(&e, "alice", "dev", &g);
    ASSERT(g.ok);
    ASSERT_EQ(e.fake.gcc, 3);
    env_finish(&e);

    /* AWS unreachable. */
    env_start(&e, PROVISIONED);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
    auth_iam_close(e.iam, NULL, NULL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_OK(auth_iam_new(&e.loop, e.cfg, &e.iam));
    auth_http_set_retry(auth_iam_http(e.iam), 5, 20);
    get(&e, "alice", "dev", &g);
    ASSERT(!g.ok);
    ASSERT_EQ(g.code, AUTH_E_HTTP);
    ASSERT(g.unreachable);
    ASSERT_STR_EQ(g.aws_code, "");
    env_finish(&e);
}

PX_TEST(endpoint_discovery_cached)
{
    env_t e;
    env_start(&e, "[iam]\ncluster_identifier = examplecluster\n");
    got_t g1 = {0}, g2 = {0};
    ASSERT_OK(auth_iam_get_db_creds(e.iam, "alice", "dev", got_cb, &g1, NULL));
    ASSERT_OK(auth_iam_get_db_creds(e.iam, "bob", "dev", got_cb, &g2, NULL));
    g1.started = g2.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT(g1.ok && g2.ok);
    ASSERT_STR_EQ(g1.host, "examplecluster.abc.us-east-1.redshift.amazonaws.com");
    ASSERT_EQ(g1.port, 5439);
    ASSERT_STR_EQ(g2.host, g1.host);
    ASSERT_EQ(e.fake.describe, 1); /* one discovery for both users */
    got_t g3;
    get(&e, "carol", "dev", &g3);
    ASSERT_STR_EQ(g3.host, g1.host);
    ASSERT_EQ(e.fake.describe, 1);
    ASSERT_EQ(e.fake.gcc, 3);
    env_finish(&e);
}

PX_TEST(serverless_with_discovery)
{
    env_t e;
    env_start(&e, "[iam]\nworkgroup_name = wg1\n");
    got_t g;
    get(&e, "alice", "dev", &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(g.user, "IAMR:rsproxy-role");
    ASSERT_STR_EQ(g.password, "slspw1");
    ASSERT_STR_EQ(g.host, "wg1.123456789012.us-east-1.redshift-serverless.amazonaws.com");
    ASSERT_EQ(g.port, 5440);
    ASSERT_EQ(e.fake.sls_wg, 1);
    ASSERT_EQ(e.fake.sls_creds, 1);
    ASSERT_STR_EQ(e.fake.last_target, "RedshiftServerless.GetCredentials");
    ASSERT_STR_EQ(e.fake.last_body, "{\"workgroupName\":\"wg1\",\"dbName\":\"dev\","
                                    "\"durationSeconds\":900}");
    ASSERT(strstr(e.fake.last_auth, "/us-east-1/redshift-serverless/aws4_request"));
    ASSERT(strstr(e.fake.last_auth, "x-amz-target"));
    /* The identity decides the user: every client shares the entry per database. */
    get(&e, "bob", "dev", &g);
    ASSERT_EQ(e.fake.sls_creds, 1);
    env_finish(&e);
}

PX_TEST(with_iam)
{
    env_t e;
    env_start(&e, PROVISIONED "with_iam = true\n");
    got_t g;
    get(&e, "alice", "dev", &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(g.user, "IAMR:rsproxy-role");
    ASSERT_EQ(e.fake.gcc_iam, 1);
    ASSERT(!strstr(e.fake.last_body, "DbUser"));
    env_finish(&e);
}

PX_TEST(custom_domain_falls_back_to_identifier)
{
    env_t e;
    env_start(&e, PROVISIONED "custom_domain_name = db.example.com\n");
    e.fake.reject_domain = true;
    got_t g;
    get(&e, "alice", "dev", &g);
    ASSERT(g.ok);
    ASSERT_EQ(e.fake.gcc, 2);
    ASSERT(strstr(e.fake.last_body, "ClusterIdentifier=examplecluster"));
    env_finish(&e);
}

PX_TEST(expired_provider_token_is_refreshed_once)
{
    env_t e;
    env_start(&e, PROVISIONED);
    e.fake.expired_token_once = 1;
    got_t g;
    get(&e, "alice", "dev", &g);
    ASSERT(g.ok);
    ASSERT_EQ(e.fake.total, 2);
    env_finish(&e);
    env_start(&e, PROVISIONED);
    e.fake.expired_token_once = 5;
    get(&e, "alice", "dev", &g);
    ASSERT(!g.ok);
    ASSERT_STR_EQ(g.aws_code, "ExpiredToken");
    ASSERT_EQ(e.fake.total, 2); /* one retry, not a loop */
    env_finish(&e);
}

PX_TEST(cancel_and_close)
{
    env_t e;
    env_start(&e, PROVISIONED);
    got_t g1 = {0}, g2 = {0};
    auth_iam_req_t *r1;
    ASSERT_OK(auth_iam_get_db_creds(e.iam, "alice", "dev", got_cb, &g1, &r1));
    ASSERT_OK(auth_iam_get_db_creds(e.iam, "alice", "dev", got_cb, &g2, NULL));
    g1.started = g2.started = true;
    auth_iam_cancel(r1);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(g1.calls, 0);
    ASSERT_EQ(g2.calls, 1);
    /* A canceled waiter's fetch still lands in the cache. */
    got_t g3 = {0};
    auth_iam_req_t *r3;
    ASSERT_OK(auth_iam_get_db_creds(e.iam, "zed", "dev", got_cb, &g3, &r3));
    g3.started = true;
    auth_iam_cancel(r3);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(g3.calls, 0);
    get(&e, "zed", "dev", &g3);
    ASSERT_EQ(e.fake.gcc, 2);
    /* Canceling a cache hit before its delivery works too. */
    got_t g4 = {0};
    auth_iam_req_t *r4;
    ASSERT_OK(auth_iam_get_db_creds(e.iam, "zed", "dev", got_cb, &g4, &r4));
    auth_iam_cancel(r4);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(g4.calls, 0);
    /* Close with a waiter in flight: it gets AUTH_E_CANCELED, after close returned. */
    got_t g5 = {0};
    ASSERT_OK(auth_iam_get_db_creds(e.iam, "new", "dev", got_cb, &g5, NULL));
    g5.started = true;
    auth_iam_close(e.iam, closed_cb, &e.closed);
    ASSERT_EQ(g5.calls, 0);
    ASSERT_EQ(auth_iam_get_db_creds(e.iam, "x", "y", got_cb, &g5, NULL), PX_E_SHUTDOWN);
    ts_stop(e.srv);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT(e.closed);
    ASSERT_EQ(g5.calls, 1);
    ASSERT_EQ(g5.code, AUTH_E_CANCELED);
    ASSERT_EQ(ts_open_handles(&e.loop), 0);
    px_test_loop_close(&e.loop);
    cfg_unref(e.cfg);
    rmdir(e.home);
}

PX_TEST(reload_drops_changed_keys)
{
    env_t e;
    env_start(&e, PROVISIONED);
    got_t g;
    get(&e, "alice", "dev", &g);
    ASSERT_EQ(e.fake.gcc, 1);
    cfg_t *same = load_cfg(PROVISIONED);
    auth_iam_set_config(e.iam, same);
    get(&e, "alice", "dev", &g);
    ASSERT_EQ(e.fake.gcc, 1); /* nothing that matters changed */
    cfg_t *nw = load_cfg(PROVISIONED "db_groups = newgroup\n");
    auth_iam_set_config(e.iam, nw);
    get(&e, "alice", "dev", &g);
    ASSERT_EQ(e.fake.gcc, 2);
    ASSERT(strstr(e.fake.last_body, "DbGroups.DbGroup.1=newgroup"));
    cfg_unref(same);
    cfg_unref(nw);
    env_finish(&e);
}

static void check_cb(const auth_db_creds_t *c, const auth_iam_error_t *err,
                     const auth_iam_check_info_t *info, void *arg)
{
    got_t *g = arg;
    g->calls++;
    g->ok = c && !err;
    if (c)
        snprintf(g->user, sizeof(g->user), "%s", c->db_user);
    snprintf(g->message, sizeof(g->message), "%s|%s|%s|%s|%s", info->provider, info->region,
             info->region_source, info->api, info->api_endpoint);
}

PX_TEST(check_bypasses_cache)
{
    env_t e;
    env_start(&e, PROVISIONED);
    got_t g;
    get(&e, "alice", "dev", &g);
    got_t c = {0};
    ASSERT_OK(auth_iam_check(e.iam, "alice", "dev", check_cb, &c));
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(c.calls, 1);
    ASSERT(c.ok);
    ASSERT_STR_EQ(c.user, "IAM:alice");
    ASSERT_EQ(e.fake.gcc, 2);
    char want[256];
    snprintf(want, sizeof(want),
             "environment|us-east-1|AWS_REGION|redshift:GetClusterCredentials|http://127.0.0.1:%d",
             e.port);
    ASSERT_STR_EQ(c.message, want);
    env_finish(&e);
}

static void keys_cb(const auth_aws_keys_t *k, int64_t exp, const char *region,
                    const char *s3_endpoint, const auth_iam_error_t *err, void *arg)
{
    got_t *g = arg;
    g->calls++;
    g->ok = k && !err;
    if (k)
        snprintf(g->message, sizeof(g->message), "%s|%s|%s|%s|%lld", k->access_key_id,
                 k->session_token, region, s3_endpoint, (long long)exp);
}

PX_TEST(proxy_aws_keys)
{
    env_t e;
    env_start(&e, PROVISIONED);
    got_t g = {0};
    ASSERT_OK(auth_iam_get_aws_keys(e.iam, keys_cb, &g, NULL));
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(g.calls, 1);
    ASSERT(g.ok);
    char want[256];
    snprintf(want, sizeof(want), "AKIAPROXYTEST0000001|proxytoken|us-east-1|http://127.0.0.1:%d|0",
             e.port);
    ASSERT_STR_EQ(g.message, want);
    got_t h = {0};
    auth_iam_req_t *r;
    ASSERT_OK(auth_iam_get_aws_keys(e.iam, keys_cb, &h, &r));
    auth_iam_cancel(r);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(h.calls, 0);
    env_finish(&e);
}

PX_TEST(no_credentials)
{
    env_t e;
    env_start(&e, PROVISIONED);
    auth_iam_close(e.iam, NULL, NULL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    ASSERT_OK(auth_iam_new(&e.loop, e.cfg, &e.iam));
    got_t g;
    get(&e, "alice", "dev", &g);
    ASSERT(!g.ok);
    ASSERT_EQ(g.code, AUTH_E_NOCREDS);
    ASSERT(!g.unreachable);
    ASSERT(strstr(g.message, "no AWS credentials"));
    ASSERT_EQ(e.fake.total, 0);
    env_finish(&e);
}

/* The fetch observer: one event per fetch that ended (first, refresh, failure), none per cache
 * hit, and no secret in any field. */
typedef struct seen {
    int n, ok, refreshed, failed;
    char last_user[64], last_api[64], last_code[64], last_target[64], last_provider[128];
    int64_t last_exp;
} seen_t;

static void seen_cb(const auth_iam_fetch_info_t *f, void *arg)
{
    seen_t *s = arg;
    s->n++;
    s->ok += f->ok;
    s->refreshed += f->ok && f->refresh;
    s->failed += !f->ok;
    snprintf(s->last_user, sizeof(s->last_user), "%s", f->db_user);
    snprintf(s->last_api, sizeof(s->last_api), "%s", f->api);
    snprintf(s->last_code, sizeof(s->last_code), "%s", f->aws_code ? f->aws_code : "");
    snprintf(s->last_target, sizeof(s->last_target), "%s", f->target);
    snprintf(s->last_provider, sizeof(s->last_provider), "%s", f->provider ? f->provider : "");
    s->last_exp = f->expiration_ms;
    /* Nothing the observer sees may be a secret. */
    const char *fields[] = {f->target,   f->api,     f->db_user,  f->dbname,
                            f->provider, f->profile, f->aws_code, f->message};
    for (size_t i = 0; i < PX_ARRAY_SIZE(fields); i++)
        if (fields[i] && (strstr(fields[i], "pw/") || strstr(fields[i], "proxysecret") ||
                          strstr(fields[i], "proxytoken")))
            PX_FAIL("a secret reached the fetch observer: %s", fields[i]);
}

PX_TEST(fetch_observer)
{
    env_t e;
    env_start(&e, PROVISIONED "refresh_margin_seconds = 60\n");
    seen_t s;
    memset(&s, 0, sizeof(s));
    auth_iam_set_fetch_observer(e.iam, seen_cb, &s);
    e.fake.expire_in_s = 45; /* inside the margin: the next login refreshes */
    got_t g;
    get(&e, "alice", "dev", &g);
    ASSERT_EQ(s.n, 1);
    ASSERT_EQ(s.ok, 1);
    ASSERT_EQ(s.refreshed, 0);
    ASSERT_STR_EQ(s.last_user, "IAM:alice");
    ASSERT_STR_EQ(s.last_api, "redshift:GetClusterCredentials");
    ASSERT_STR_EQ(s.last_target, "examplecluster");
    ASSERT(s.last_provider[0]);
    ASSERT_EQ(s.last_exp, g.exp);
    e.fake.expire_in_s = 900;
    get(&e, "alice", "dev", &g);
    ASSERT_EQ(s.n, 2);
    ASSERT_EQ(s.refreshed, 1);
    get(&e, "alice", "dev", &g); /* a cache hit: no event */
    ASSERT_EQ(s.n, 2);
    /* A failure: one event with AWS's code, none for the requests answered during backoff. */
    e.fake.fail_status = 403;
    snprintf(e.fake.fail_code, sizeof(e.fake.fail_code), "AccessDenied");
    e.fake.fail_count = -1;
    get(&e, "bob", "dev", &g);
    ASSERT(!g.ok);
    ASSERT_EQ(s.n, 3);
    ASSERT_EQ(s.failed, 1);
    ASSERT_STR_EQ(s.last_code, "AccessDenied");
    ASSERT_STR_EQ(s.last_user, "bob");
    get(&e, "bob", "dev", &g);
    ASSERT_EQ(s.n, 3);
    auth_iam_set_fetch_observer(e.iam, NULL, NULL);
    get(&e, "carol", "dev", &g);
    ASSERT_EQ(s.n, 3);
    env_finish(&e);
}
