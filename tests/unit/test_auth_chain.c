/*
 * Loop tests for the credential provider chain against a local fake of STS, the container
 * endpoint and IMDSv2, with real ~/.aws files, token files and credential_process scripts in a
 * temporary directory. Checks what each provider sends (signature identity, unsigned web
 * identity, Authorization header, IMDS token), caching and single flight, refresh ahead of
 * expiry, serving still-valid credentials when a refresh fails, reload, and close.
 */
#include "auth_chain.h"
#include "auth_http.h"
#include "px_alloc.h"
#include "px_err.h"
#include "px_test.h"
#include "test_auth_server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------
 * The fake AWS
 */

typedef struct fake {
    int sts, container, imds_token, imds_role, imds_creds, imds_region; /* request counts */
    int64_t expire_in_s; /* lifetime of minted credentials */
    int fail_status;     /* non-zero: STS/container/IMDS credentials answer this */
    bool imds_v1_only;   /* token PUT answers 403 */
    char last_auth[512]; /* Authorization header of the last STS/container request */
    char last_body[4096];
    char last_imds_token[128];
    int serial;
} fake_t;

static void creds_xml(fake_t *f, const char *op, ts_response_t *resp)
{
    char exp[40];
    time_t t = time(NULL) + f->expire_in_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    int sn = ++f->serial;
    snprintf(resp->body, sizeof(resp->body),
             "<%sResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><%sResult>"
             "<Credentials><AccessKeyId>ASIASTS%d</AccessKeyId><SecretAccessKey>sts/secret+%d"
             "</SecretAccessKey><SessionToken>tok%d</SessionToken><Expiration>%s</Expiration>"
             "</Credentials></%sResult></%sResponse>",
             op, op, sn, sn, sn, exp, op, op);
}

static void creds_json(fake_t *f, ts_response_t *resp, bool imds)
{
    char exp[40];
    time_t t = time(NULL) + f->expire_in_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    int sn = ++f->serial;
    snprintf(resp->body, sizeof(resp->body),
             "{%s\"AccessKeyId\":\"ASIA%s%d\",\"SecretAccessKey\":\"s%d\",\"Token\":\"t%d\","
             "\"Expiration\":\"%s\"}",
             imds ? "\"Code\":\"Success\",\"Type\":\"AWS-HMAC\"," : "", imds ? "IMDS" : "CONT", sn,
             sn, sn, exp);
}

static void fake_handler(const ts_request_t *req, ts_response_t *resp, void *arg)
{
    fake_t *f = arg;
    char v[512];
    size_t n = req->bodylen < sizeof(f->last_body) - 1 ? req->bodylen : sizeof(f->last_body) - 1;
    if (strncmp(req->target, "/latest/", 8) == 0) {
        const char *tok = ts_header(req, "x-aws-ec2-metadata-token", v, sizeof(v));
        snprintf(f->last_imds_token, sizeof(f->last_imds_token), "%s", tok ? tok : "");
        if (strcmp(req->method, "PUT") == 0 && strcmp(req->target, "/latest/api/token") == 0) {
            f->imds_token++;
            if (f->imds_v1_only ||
                !ts_header(req, "x-aws-ec2-metadata-token-ttl-seconds", v, sizeof(v))) {
                resp->status = 403;
                return;
            }
            snprintf(resp->body, sizeof(resp->body), "IMDSTOKEN%d", f->imds_token);
            return;
        }
        if (!f->imds_v1_only && !tok) {
            resp->status = 401;
            return;
        }
        if (strcmp(req->target, "/latest/meta-data/placement/region") == 0) {
            f->imds_region++;
            snprintf(resp->body, sizeof(resp->body), "eu-central-1");
        } else if (strcmp(req->target, "/latest/meta-data/iam/security-credentials/") == 0) {
            f->imds_role++;
            snprintf(resp->body, sizeof(resp->body), "my-instance-role\n");
        } else if (strcmp(req->target,
                          "/latest/meta-data/iam/security-credentials/my-instance-role") == 0) {
            f->imds_creds++;
            if (f->fail_status)
                resp->status = f->fail_status;
            else
                creds_json(f, resp, true);
        } else {
            resp->status = 404;
        }
        return;
    }
    memcpy(f->last_body, req->body, n);
    f->last_body[n] = '\0';
    const char *auth = ts_header(req, "Authorization", v, sizeof(v));
    snprintf(f->last_auth, sizeof(f->last_auth), "%s", auth ? auth : "");
    if (strncmp(req->target, "/creds", 6) == 0) {
        f->container++;
        if (f->fail_status)
            resp->status = f->fail_status;
        else
            creds_json(f, resp, false);
        return;
    }
    f->sts++;
    if (f->fail_status) {
        resp->status = f->fail_status;
        snprintf(resp->body, sizeof(resp->body),
                 "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not allowed to assume"
                 "</Message></Error></ErrorResponse>");
        return;
    }
    if (strstr(f->last_body, "Action=AssumeRoleWithWebIdentity"))
        creds_xml(f, "AssumeRoleWithWebIdentity", resp);
    else
        creds_xml(f, "AssumeRole", resp);
}

/* ---------------------------------------------------------------------------------------------
 * Plumbing
 */

typedef struct env {
    uv_loop_t loop;
    auth_http_t *http;
    auth_chain_t *chain;
    ts_server_t *srv;
    int port;
    fake_t fake;
    char dir[64];
    char *envp[32];
    int nenv;
    bool closed;
} env_t;

static void setenv_(env_t *e, const char *fmt, ...) PX_PRINTF(2, 3);
static void setenv_(env_t *e, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    e->envp[e->nenv++] = strdup(buf);
    e->envp[e->nenv] = NULL;
}

static void write_file(env_t *e, const char *name, const char *text, int mode)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", e->dir, name);
    FILE *f = fopen(path, "w");
    ASSERT(f);
    fputs(text, f);
    fclose(f);
    chmod(path, (mode_t)mode);
}

static void env_start(env_t *e)
{
    memset(e, 0, sizeof(*e));
    ASSERT_OK(uv_loop_init(&e->loop));
    ASSERT_OK(auth_http_new(&e->loop, &e->http));
    auth_http_set_retry(e->http, 5, 20);
    ASSERT_OK(ts_start(&e->loop, fake_handler, &e->fake, &e->srv, &e->port));
    e->fake.expire_in_s = 3600;
    snprintf(e->dir, sizeof(e->dir), "/tmp/rsproxy-chain-XXXXXX");
    ASSERT(mkdtemp(e->dir));
    /* Never let a test wander off to the real metadata address. */
    setenv_(e, "HOME=%s", e->dir);
    setenv_(e, "AWS_CONFIG_FILE=%s/config", e->dir);
    setenv_(e, "AWS_SHARED_CREDENTIALS_FILE=%s/credentials", e->dir);
    setenv_(e, "AWS_ENDPOINT_URL_STS=http://127.0.0.1:%d", e->port);
    setenv_(e, "AWS_REGION=us-east-1");
}

static void chain_start(env_t *e, const auth_chain_opts_t *extra)
{
    auth_chain_opts_t o = extra ? *extra : (auth_chain_opts_t){0};
    o.envp = e->envp;
    ASSERT_OK(auth_chain_new(&e->loop, e->http, &o, &e->chain));
}

static void chain_closed_cb(void *arg)
{
    env_t *e = arg;
    auth_http_close(e->http, NULL, NULL);
    e->closed = true;
}

static void env_finish(env_t *e)
{
    auth_chain_close(e->chain, chain_closed_cb, e);
    ts_stop(e->srv);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    ASSERT(e->closed);
    ASSERT_EQ(ts_open_handles(&e->loop), 0);
    px_test_loop_close(&e->loop);
    for (int i = 0; i < e->nenv; i++)
        free(e->envp[i]);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
    ASSERT_EQ(system(cmd), 0);
}

typedef struct got {
    int calls;
    bool started;
    bool ok;
    char akid[64], secret[64], token[64];
    int64_t exp;
    char provider[192], region[64], region_source[64], sts[128], redshift[128];
    auth_aws_error_t err;
} got_t;

static void got_cb(const auth_aws_creds_t *c, const auth_chain_info_t *info,
                   const auth_aws_error_t *err, void *arg)
{
    got_t *g = arg;
    if (!g->started)
        PX_FAIL("callback called synchronously");
    g->calls++;
    g->ok = c != NULL;
    if (c) {
        ASSERT(err == NULL);
        snprintf(g->akid, sizeof(g->akid), "%s", c->access_key_id);
        snprintf(g->secret, sizeof(g->secret), "%s", c->secret_access_key);
        snprintf(g->token, sizeof(g->token), "%s", c->session_token ? c->session_token : "");
        g->exp = c->expiration_ms;
    } else {
        ASSERT(err != NULL);
        g->err = *err;
    }
    snprintf(g->provider, sizeof(g->provider), "%s", info->provider ? info->provider : "");
    snprintf(g->region, sizeof(g->region), "%s", info->region ? info->region : "");
    snprintf(g->region_source, sizeof(g->region_source), "%s",
             info->region_source ? info->region_source : "");
    snprintf(g->sts, sizeof(g->sts), "%s",
             info->endpoint[AUTH_SVC_STS] ? info->endpoint[AUTH_SVC_STS] : "");
    snprintf(g->redshift, sizeof(g->redshift), "%s",
             info->endpoint[AUTH_SVC_REDSHIFT] ? info->endpoint[AUTH_SVC_REDSHIFT] : "");
}

static void get(env_t *e, unsigned flags, got_t *g)
{
    memset(g, 0, sizeof(*g));
    ASSERT_OK(auth_chain_get(e->chain, flags, got_cb, g, NULL));
    g->started = true;
    uv_run(&e->loop, UV_RUN_DEFAULT);
    ASSERT_EQ(g->calls, 1);
}

/* ---------------------------------------------------------------------------------------------
 * Providers
 */

PX_TEST(environment)
{
    env_t e;
    env_start(&e);
    setenv_(&e, "AWS_ACCESS_KEY_ID=AKIAENVIRONMENT");
    setenv_(&e, "AWS_SECRET_ACCESS_KEY=envsecret");
    chain_start(&e, NULL);
    got_t g;
    get(&e, 0, &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(g.akid, "AKIAENVIRONMENT");
    ASSERT_STR_EQ(g.secret, "envsecret");
    ASSERT_STR_EQ(g.token, "");
    ASSERT_EQ(g.exp, 0);
    ASSERT_STR_EQ(g.provider, "environment");
    ASSERT_STR_EQ(g.region, "us-east-1");
    ASSERT_STR_EQ(g.region_source, "AWS_REGION");
    ASSERT_STR_EQ(g.redshift, "https://redshift.us-east-1.amazonaws.com");
    char want[64];
    snprintf(want, sizeof(want), "http://127.0.0.1:%d", e.port);
    ASSERT_STR_EQ(g.sts, want);
    ASSERT_EQ(e.fake.sts, 0);
    env_finish(&e);
}

PX_TEST(profile_assume_role_single_flight)
{
    env_t e;
    env_start(&e);
    setenv_(&e, "AWS_PROFILE=app");
    write_file(&e, "config",
               "[profile app]\nrole_arn = arn:aws:iam::123456789012:role/App\n"
               "source_profile = base\nrole_session_name = rsproxy-test\nexternal_id = ext/1\n",
               0600);
    write_file(&e, "credentials",
               "[base]\naws_access_key_id = AKIABASEPROFILE\naws_secret_access_key = base\n", 0600);
    chain_start(&e, NULL);
    got_t g[20];
    for (int i = 0; i < 20; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        ASSERT_OK(auth_chain_get(e.chain, 0, got_cb, &g[i], NULL));
        g[i].started = true;
    }
    uv_run(&e.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 20; i++) {
        ASSERT_EQ(g[i].calls, 1);
        ASSERT(g[i].ok);
        ASSERT_STR_EQ(g[i].akid, "ASIASTS1");
    }
    ASSERT_EQ(e.fake.sts, 1); /* single flight */
    ASSERT(strstr(e.fake.last_auth, "Credential=AKIABASEPROFILE/"));
    ASSERT(strstr(e.fake.last_auth, "/us-east-1/sts/aws4_request"));
    ASSERT(strstr(e.fake.last_body, "Action=AssumeRole&"));
    ASSERT(strstr(e.fake.last_body, "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FApp"));
    ASSERT(strstr(e.fake.last_body, "RoleSessionName=rsproxy-test"));
    ASSERT(strstr(e.fake.last_body, "ExternalId=ext%2F1"));
    ASSERT(strstr(g[0].provider, "assume role"));
    ASSERT_STR_EQ(g[0].token, "tok1");
    /* Cached: no second call. */
    got_t again;
    get(&e, 0, &again);
    ASSERT_STR_EQ(again.akid, "ASIASTS1");
    ASSERT_EQ(e.fake.sts, 1);
    /* Forced: a new call. */
    get(&e, AUTH_CHAIN_FORCE_REFRESH, &again);
    ASSERT_STR_EQ(again.akid, "ASIASTS2");
    ASSERT_EQ(e.fake.sts, 2);
    env_finish(&e);
}

PX_TEST(role_chain_two_hops)
{
    env_t e;
    env_start(&e);
    setenv_(&e, "AWS_PROFILE=top");
    write_file(&e, "config",
               "[profile top]\nrole_arn = arn:aws:iam::1:role/Top\nsource_profile = mid\n"
               "[profile mid]\nrole_arn = arn:aws:iam::1:role/Mid\nsource_profile = base\n"
               "[profile base]\naws_access_key_id = AKIABASE\naws_secret_access_key = b\n",
               0600);
    chain_start(&e, NULL);
    got_t g;
    get(&e, 0, &g);
    ASSERT(g.ok);
    ASSERT_EQ(e.fake.sts, 2);
    /* The outer role was assumed with the inner role's temporary key. */
    ASSERT(strstr(e.fake.last_auth, "Credential=ASIASTS1/"));
    ASSERT(strstr(e.fake.last_body, "role%2FTop"));
    ASSERT_STR_EQ(g.akid, "ASIASTS2");
    env_finish(&e);
}

PX_TEST(assume_role_denied)
{
    env_t e;
    env_start(&e);
    setenv_(&e, "AWS_PROFILE=app");
    write_file(&e, "config",
               "[profile app]\nrole_arn = arn:aws:iam::1:role/App\nsource_profile = base\n"
               "[profile base]\naws_access_key_id = AKIABASE\naws_secret_access_key = b\n",
               0600);
    e.fake.fail_status = 403;
    chain_start(&e, NULL);
    got_t g;
    get(&e, 0, &g);
    ASSERT(!g.ok);
    ASSERT_EQ(g.err.code, AUTH_E_AWS);
    ASSERT_STR_EQ(g.err.aws_code, "AccessDenied");
    ASSERT(strstr(g.err.message, "assume role"));
    ASSERT(strstr(g.err.message, "not allowed to assume"));
    /* Backing off: the next caller gets the failure at once, without a call. */
    get(&e, 0, &g);
    ASSERT(!g.ok);
    ASSERT_EQ(e.fake.sts, 1);
    env_finish(&e);
}

PX_TEST(credential_process)
{
    env_t e;
    env_start(&e);
    write_file(&e, "my creds.sh",
               "#!/bin/sh\n"
               "printf '{\"Version\": 1, \"AccessKeyId\": \"AKIAPROCESS%s\", "
               "\"SecretAccessKey\": \"proc/secret\", \"SessionToken\": \"ptok\", "
               "\"Expiration\": \"2099-01-01T00:00:00Z\"}' \"$1\"\n",
               0700);
    write_file(&e, "fail.sh", "#!/bin/sh\necho 'token expired, run login' >&2\nexit 3\n", 0700);
    write_file(&e, "garbage.sh", "#!/bin/sh\necho 'not json'\n", 0700);
    char cfg[512];
    snprintf(cfg, sizeof(cfg),
             "[default]\ncredential_process = \"%s/my creds.sh\" ONE\n"
             "[profile bad]\ncredential_process = %s/fail.sh\n"
             "[profile garbage]\ncredential_process = %s/garbage.sh\n"
             "[profile missing]\ncredential_process = %s/does-not-exist\n",
             e.dir, e.dir, e.dir, e.dir);
    write_file(&e, "config", cfg, 0600);
    chain_start(&e, NULL);
    got_t g;
    get(&e, 0, &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(g.akid, "AKIAPROCESSONE");
    ASSERT_STR_EQ(g.secret, "proc/secret");
    ASSERT_STR_EQ(g.token, "ptok");
    ASSERT(strstr(g.provider, "credential_process"));
    env_finish(&e);

    static const struct {
        const char *profile, *want;
    } bad[] = {
        {"bad", "exited with status 3: token expired, run login"},
        {"garbage", "not a JSON object"},
        {"missing", "cannot run"},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
        env_start(&e);
        setenv_(&e, "AWS_PROFILE=%s", bad[i].profile);
        snprintf(cfg, sizeof(cfg),
                 "[profile bad]\ncredential_process = %s/fail.sh\n"
                 "[profile garbage]\ncredential_process = %s/garbage.sh\n"
                 "[profile missing]\ncredential_process = %s/does-not-exist\n",
                 e.dir, e.dir, e.dir);
        write_file(&e, "config", cfg, 0600);
        write_file(&e, "fail.sh", "#!/bin/sh\necho 'token expired, run login' >&2\nexit 3\n", 0700);
        write_file(&e, "garbage.sh", "#!/bin/sh\necho 'not json'\n", 0700);
        chain_start(&e, NULL);
        get(&e, 0, &g);
        ASSERT(!g.ok);
        ASSERT_EQ(g.err.code, AUTH_E_NOCREDS);
        if (!strstr(g.err.message, bad[i].want))
            PX_FAIL("%s: \"%s\" lacks \"%s\"", bad[i].profile, g.err.message, bad[i].want);
        env_finish(&e);
    }
}

PX_TEST(credential_process_timeout)
{
    env_t e;
    env_start(&e);
    write_file(&e, "slow.sh", "#!/bin/sh\nsleep 30\n", 0700);
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "[default]\ncredential_process = %s/slow.sh\n", e.dir);
    write_file(&e, "config", cfg, 0600);
    auth_chain_opts_t o = {.process_timeout_ms = 300};
    chain_start(&e, &o);
    got_t g;
    uint64_t t0 = uv_hrtime();
    get(&e, 0, &g);
    ASSERT(!g.ok);
    ASSERT(strstr(g.err.message, "did not finish"));
    ASSERT((uv_hrtime() - t0) / 1000000 < 5000);
    env_finish(&e);
}

PX_TEST(web_identity_rereads_token)
{
    env_t e;
    env_start(&e);
    char path[128];
    snprintf(path, sizeof(path), "%s/token", e.dir);
    write_file(&e, "token", "eyJ.first.token\n", 0600);
    setenv_(&e, "AWS_WEB_IDENTITY_TOKEN_FILE=%s", path);
    setenv_(&e, "AWS_ROLE_ARN=arn:aws:iam::1:role/Pod");
    setenv_(&e, "AWS_ROLE_SESSION_NAME=pod-7");
    chain_start(&e, NULL);
    got_t g;
    get(&e, 0, &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(g.akid, "ASIASTS1");
    ASSERT(strstr(e.fake.last_body, "Action=AssumeRoleWithWebIdentity"));
    ASSERT(strstr(e.fake.last_body, "WebIdentityToken=eyJ.first.token&") ||
           strstr(e.fake.last_body, "WebIdentityToken=eyJ.first.token"));
    ASSERT(strstr(e.fake.last_body, "RoleSessionName=pod-7"));
    ASSERT_STR_EQ(e.fake.last_auth, ""); /* unsigned */
    write_file(&e, "token", "eyJ.rotated", 0600);
    get(&e, AUTH_CHAIN_FORCE_REFRESH, &g);
    ASSERT(strstr(e.fake.last_body, "WebIdentityToken=eyJ.rotated"));
    unlink(path);
    get(&e, AUTH_CHAIN_FORCE_REFRESH, &g);
    ASSERT(!g.ok); /* a forced refresh says why it failed */
    ASSERT(strstr(g.err.message, "token file"));
    get(&e, 0, &g);
    ASSERT(g.ok); /* the still-valid credentials are still served to everyone else */
    ASSERT_STR_EQ(g.akid, "ASIASTS2");
    env_finish(&e);
}

PX_TEST(container_with_token_file)
{
    env_t e;
    env_start(&e);
    setenv_(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:%d/creds?x=1", e.port);
    setenv_(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN=from-env");
    setenv_(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=%s/ctoken", e.dir);
    write_file(&e, "ctoken", "from-file-1", 0600);
    chain_start(&e, NULL);
    got_t g;
    get(&e, 0, &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(g.akid, "ASIACONT1");
    ASSERT_STR_EQ(e.fake.last_auth, "from-file-1");
    write_file(&e, "ctoken", "from-file-2", 0600);
    get(&e, AUTH_CHAIN_FORCE_REFRESH, &g);
    ASSERT_STR_EQ(e.fake.last_auth, "from-file-2"); /* re-read on every fetch */
    ASSERT_EQ(e.fake.container, 2);
    env_finish(&e);

    env_start(&e);
    setenv_(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:%d/creds", e.port);
    setenv_(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN=from-env");
    chain_start(&e, NULL);
    get(&e, 0, &g);
    ASSERT_STR_EQ(e.fake.last_auth, "from-env");
    env_finish(&e);
}

PX_TEST(imds_v2_and_region)
{
    env_t e;
    env_start(&e);
    /* No region configured: instance metadata supplies it. */
    ASSERT(strncmp(e.envp[e.nenv - 1], "AWS_REGION=", 11) == 0);
    free(e.envp[--e.nenv]);
    e.envp[e.nenv] = NULL;
    setenv_(&e, "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:%d", e.port);
    chain_start(&e, NULL);
    got_t g;
    get(&e, 0, &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(g.akid, "ASIAIMDS1");
    ASSERT_STR_EQ(g.provider, "EC2 instance metadata");
    ASSERT_STR_EQ(g.region, "eu-central-1");
    ASSERT_STR_EQ(g.region_source, "instance metadata");
    ASSERT_STR_EQ(g.redshift, "https://redshift.eu-central-1.amazonaws.com");
    ASSERT_EQ(e.fake.imds_region, 1);
    ASSERT_EQ(e.fake.imds_role, 1);
    ASSERT_EQ(e.fake.imds_creds, 1);
    ASSERT(strncmp(e.fake.last_imds_token, "IMDSTOKEN", 9) == 0);
    env_finish(&e);
}

PX_TEST(imds_v1_fallback_and_disabled)
{
    env_t e;
    env_start(&e);
    setenv_(&e, "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:%d", e.port);
    e.fake.imds_v1_only = true;
    chain_start(&e, NULL);
    got_t g;
    get(&e, 0, &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(e.fake.last_imds_token, "");
    env_finish(&e);

    env_start(&e);
    setenv_(&e, "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:%d", e.port);
    setenv_(&e, "AWS_EC2_METADATA_V1_DISABLED=true");
    e.fake.imds_v1_only = true;
    chain_start(&e, NULL);
    get(&e, 0, &g);
    ASSERT(!g.ok);
    ASSERT_EQ(g.err.http_status, 403);
    env_finish(&e);

    env_start(&e);
    setenv_(&e, "AWS_EC2_METADATA_DISABLED=true");
    chain_start(&e, NULL);
    get(&e, 0, &g);
    ASSERT(!g.ok);
    ASSERT_EQ(g.err.code, AUTH_E_NOCREDS);
    ASSERT(strstr(g.err.message, "no AWS credentials"));
    ASSERT_EQ(e.fake.imds_token, 0);
    env_finish(&e);
}

PX_TEST(refresh_ahead_and_failure_keeps_old)
{
    env_t e;
    env_start(&e);
    setenv_(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:%d/creds", e.port);
    e.fake.expire_in_s = 120; /* inside the 5-minute refresh-ahead window */
    auth_chain_opts_t o = {.min_refresh_interval_ms = 100};
    chain_start(&e, &o);
    got_t g;
    get(&e, 0, &g);
    ASSERT_STR_EQ(g.akid, "ASIACONT1");
    ASSERT_EQ(e.fake.container, 1); /* no refresh right after a fetch */
    get(&e, 0, &g);
    ASSERT_EQ(e.fake.container, 1);
    uv_sleep(120);
    /* The next caller is served the still-valid key at once, and a refresh runs behind it. */
    get(&e, 0, &g);
    ASSERT_STR_EQ(g.akid, "ASIACONT1");
    ASSERT_EQ(e.fake.container, 2);
    get(&e, 0, &g);
    ASSERT_STR_EQ(g.akid, "ASIACONT2");
    /* A failing endpoint: the valid key keeps being served; the refresh backs off. */
    e.fake.fail_status = 500;
    uv_sleep(120);
    int before = e.fake.container;
    get(&e, 0, &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(g.akid, "ASIACONT2");
    int after_fail = e.fake.container;
    ASSERT(after_fail > before);
    get(&e, 0, &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(g.akid, "ASIACONT2");
    ASSERT_EQ(e.fake.container, after_fail); /* within the backoff: no new call */
    /* A forced refresh reports the failure instead of the old key. */
    get(&e, AUTH_CHAIN_FORCE_REFRESH, &g);
    ASSERT(!g.ok);
    ASSERT_EQ(g.err.http_status, 500);
    ASSERT(g.err.unreachable);
    env_finish(&e);
}

PX_TEST(expired_environment_keys)
{
    env_t e;
    env_start(&e);
    setenv_(&e, "AWS_ACCESS_KEY_ID=AKIAOLD");
    setenv_(&e, "AWS_SECRET_ACCESS_KEY=s");
    setenv_(&e, "AWS_CREDENTIAL_EXPIRATION=2001-01-01T00:00:00Z");
    chain_start(&e, NULL);
    got_t g;
    get(&e, 0, &g);
    ASSERT(!g.ok);
    ASSERT_EQ(g.err.code, AUTH_E_EXPIRED);
    ASSERT(strstr(g.err.message, "2001-01-01T00:00:00Z"));
    env_finish(&e);
}

PX_TEST(reload_picks_up_files)
{
    env_t e;
    env_start(&e);
    setenv_(&e, "AWS_EC2_METADATA_DISABLED=true");
    chain_start(&e, NULL);
    got_t g;
    get(&e, 0, &g);
    ASSERT(!g.ok);
    write_file(&e, "credentials",
               "[default]\naws_access_key_id = AKIANEWFILE\naws_secret_access_key = n\n", 0600);
    ASSERT_OK(auth_chain_reload(e.chain, "ap-southeast-2"));
    get(&e, 0, &g);
    ASSERT(g.ok);
    ASSERT_STR_EQ(g.akid, "AKIANEWFILE");
    ASSERT_STR_EQ(g.region, "ap-southeast-2");
    ASSERT_STR_EQ(g.region_source, "[iam] region");
    /* A broken file is reported with its line. */
    write_file(&e, "config", "[default]\nthis is not ini\n", 0600);
    ASSERT_OK(auth_chain_reload(e.chain, NULL));
    get(&e, 0, &g);
    ASSERT(!g.ok);
    ASSERT(strstr(g.err.message, "line 2"));
    env_finish(&e);
}

PX_TEST(close_with_waiters)
{
    env_t e;
    env_start(&e);
    setenv_(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:%d/creds", e.port);
    chain_start(&e, NULL);
    got_t g1 = {0}, g2 = {0};
    auth_chain_req_t *r2;
    ASSERT_OK(auth_chain_get(e.chain, 0, got_cb, &g1, NULL));
    ASSERT_OK(auth_chain_get(e.chain, 0, got_cb, &g2, &r2));
    g1.started = g2.started = true;
    auth_chain_cancel(r2);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    env_finish(&e);
    ASSERT_EQ(g1.calls, 1);
    ASSERT(!g1.ok);
    ASSERT_EQ(g1.err.code, AUTH_E_CANCELED);
    ASSERT_EQ(g2.calls, 0);
}

PX_TEST(close_kills_running_process)
{
    env_t e;
    env_start(&e);
    write_file(&e, "slow.sh", "#!/bin/sh\nsleep 30\n", 0700);
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "[default]\ncredential_process = %s/slow.sh\n", e.dir);
    write_file(&e, "config", cfg, 0600);
    chain_start(&e, NULL); /* the default 60 s process timeout */
    got_t g = {0};
    ASSERT_OK(auth_chain_get(e.chain, 0, got_cb, &g, NULL));
    g.started = true;
    for (int i = 0; i < 25; i++) { /* load the files, start the process */
        uv_run(&e.loop, UV_RUN_NOWAIT);
        uv_sleep(20);
    }
    uint64_t t0 = uv_hrtime();
    env_finish(&e);
    ASSERT((uv_hrtime() - t0) / 1000000 < 5000); /* not the 30 s the script sleeps */
    ASSERT_EQ(g.calls, 1);
    ASSERT_EQ(g.err.code, AUTH_E_CANCELED);
}
