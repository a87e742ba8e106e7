/*
 * Loop tests for auth_http: libcurl multi on libuv against the scripted local server. Covers the
 * raw exchange (bodies, headers, caps, timeouts, refused connections, cancel and close with
 * transfers in flight) and AWS calls (signing headers, retries on throttling and 5xx with
 * backoff, no retry on AccessDenied, clock-skew correction, JSON errors, transport retries, a
 * streaming sink). Every test checks that callbacks come once, never synchronously, and that no
 * handle is left open.
 */
#include "auth_http.h"
#include "px_alloc.h"
#include "px_err.h"
#include "px_test.h"
#include "test_auth_server.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * A scripted server: answers[i] is used for the i-th request (the last one repeats).
 */

typedef struct script {
    ts_response_t answers[6];
    int nanswers;
    int seen;
    ts_request_t last; /* copy of the last request (body truncated) */
    char last_body[4096];
    int64_t server_skew_s; /* the server's clock minus ours, for Date headers */
    bool check_date_skew;  /* reject X-Amz-Date further than 2 min from the server clock */
} script_t;

static void script_handler(const ts_request_t *req, ts_response_t *resp, void *arg)
{
    script_t *s = arg;
    int i = s->seen < s->nanswers ? s->seen : s->nanswers - 1;
    s->seen++;
    s->last = *req;
    size_t n = req->bodylen < sizeof(s->last_body) - 1 ? req->bodylen : sizeof(s->last_body) - 1;
    memcpy(s->last_body, req->body, n);
    s->last_body[n] = '\0';
    *resp = s->answers[i];
    if (s->server_skew_s) {
        char date[40];
        ts_http_date((int64_t)(px_now_unix_ms() / 1000) + s->server_skew_s, date);
        size_t len = strlen(resp->headers);
        snprintf(resp->headers + len, sizeof(resp->headers) - len, "Date: %s\r\n", date);
    }
    if (s->check_date_skew && i == s->nanswers - 1) {
        char amz[32];
        int64_t server_now = px_now_unix_ms() / 1000 + s->server_skew_s;
        struct tm tm = {0};
        if (!ts_header(req, "X-Amz-Date", amz, sizeof(amz)) ||
            !strptime(amz, "%Y%m%dT%H%M%SZ", &tm) ||
            llabs((long long)timegm(&tm) - server_now) > 120) {
            resp->status = 403;
            snprintf(resp->body, sizeof(resp->body),
                     "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>Signature "
                     "expired</Message></Error></ErrorResponse>");
        }
    }
}

static void answer(script_t *s, int status, const char *headers, const char *body)
{
    ts_response_t *r = &s->answers[s->nanswers++];
    memset(r, 0, sizeof(*r));
    r->status = status;
    snprintf(r->headers, sizeof(r->headers), "%s", headers ? headers : "");
    snprintf(r->body, sizeof(r->body), "%s", body ? body : "");
}

#define THROTTLE_XML                                                                               \
    "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded"       \
    "</Message></Error><RequestId>req-th</RequestId></ErrorResponse>"

/* ---------------------------------------------------------------------------------------------
 * Test plumbing
 */

typedef struct env {
    uv_loop_t loop;
    auth_http_t *http;
    ts_server_t *srv;
    int port;
    script_t script;
    char url[128];
    bool closed;
} env_t;

static void env_start(env_t *e)
{
    memset(e, 0, sizeof(*e));
    ASSERT_OK(uv_loop_init(&e->loop));
    ASSERT_OK(auth_http_new(&e->loop, &e->http));
    auth_http_set_retry(e->http, 5, 20);
    ASSERT_OK(ts_start(&e->loop, script_handler, &e->script, &e->srv, &e->port));
    snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%d", e->port);
}

static void closed_cb(void *arg)
{
    *(bool *)arg = true;
}

static void env_finish(env_t *e)
{
    if (e->http)
        auth_http_close(e->http, closed_cb, &e->closed);
    ts_stop(e->srv);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    ASSERT(e->closed);
    ASSERT_EQ(ts_open_handles(&e->loop), 0);
    px_test_loop_close(&e->loop);
}

typedef struct result {
    int calls;
    bool started; /* set after the starting call returned: a callback before it is synchronous */
    int err;
    int status;
    char body[70000];
    size_t bodylen;
    char date_seen;
    bool not_sent;
    auth_aws_error_t aws;
    bool aws_err;
} result_t;

static void http_cb(int err, const char *msg, const auth_http_resp_t *resp, void *arg)
{
    result_t *r = arg;
    PX_UNUSED(msg);
    if (!r->started)
        PX_FAIL("callback called synchronously");
    r->calls++;
    r->err = err;
    r->status = resp->status;
    r->not_sent = resp->not_sent;
    r->date_seen = resp->date_ms > 0;
    r->bodylen = resp->bodylen < sizeof(r->body) ? resp->bodylen : sizeof(r->body) - 1;
    if (resp->bodylen)
        memcpy(r->body, resp->body, r->bodylen);
    r->body[r->bodylen] = '\0';
}

static void call_cb(const auth_aws_error_t *err, const auth_http_resp_t *resp, void *arg)
{
    result_t *r = arg;
    if (!r->started)
        PX_FAIL("callback called synchronously");
    r->calls++;
    r->aws_err = err != NULL;
    if (err)
        r->aws = *err;
    r->status = resp->status;
    r->bodylen = resp->bodylen < sizeof(r->body) ? resp->bodylen : sizeof(r->body) - 1;
    if (resp->bodylen)
        memcpy(r->body, resp->body, r->bodylen);
    r->body[r->bodylen] = '\0';
}

static auth_aws_creds_t test_creds = {
    .access_key_id = "AKIDEXAMPLE",
    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    .session_token = "SESSIONTOKEN",
};

static auth_aws_call_opts_t query_call(env_t *e)
{
    static const auth_http_header_t h[] = {
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    auth_aws_call_opts_t o = {
        .method = "POST",
        .endpoint = e->url,
        .path = "/",
        .headers = h,
        .nheaders = 1,
        .body = (const uint8_t *)"Action=DescribeClusters&Version=2012-12-01",
        .bodylen = 42,
        .service = AUTH_SVC_REDSHIFT,
        .region = "us-east-1",
        .creds = &test_creds,
        .proto = AUTH_PROTO_QUERY,
        .idempotent = true,
    };
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * Raw exchanges
 */

PX_TEST(get_and_post)
{
    env_t e;
    env_start(&e);
    answer(&e.script, 200, "X-Test: yes\r\n", "hello");
    result_t r = {0};
    char url[160];
    snprintf(url, sizeof(url), "%s/path?q=1", e.url);
    auth_http_header_t h[] = {{"X-Custom", "v1"}, {"Content-Type", "text/plain"}};
    auth_http_opts_t o = {.method = "POST",
                          .url = url,
                          .headers = h,
                          .nheaders = 2,
                          .body = (const uint8_t *)"payload",
                          .bodylen = 7};
    ASSERT_OK(auth_http_send(e.http, &o, http_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "hello");
    ASSERT(r.date_seen);
    ASSERT_STR_EQ(e.script.last.method, "POST");
    ASSERT_STR_EQ(e.script.last.target, "/path?q=1");
    ASSERT_STR_EQ(e.script.last_body, "payload");
    char v[64];
    ASSERT_STR_EQ(ts_header(&e.script.last, "X-Custom", v, sizeof(v)), "v1");
    ASSERT_STR_EQ(ts_header(&e.script.last, "Content-Type", v, sizeof(v)), "text/plain");
    ASSERT(ts_header(&e.script.last, "Expect", v, sizeof(v)) == NULL);
    ASSERT(strstr(ts_header(&e.script.last, "User-Agent", v, sizeof(v)), "rsproxy"));

    /* A GET on the same client reuses the connection pool and works the same. */
    memset(&r, 0, sizeof(r));
    auth_http_opts_t g = {.method = "GET", .url = url};
    ASSERT_OK(auth_http_send(e.http, &g, http_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT_STR_EQ(e.script.last.method, "GET");
    ASSERT_EQ(e.script.last.bodylen, 0);
    env_finish(&e);
}

PX_TEST(rejects_bad_options)
{
    env_t e;
    env_start(&e);
    result_t r = {0};
    auth_http_header_t inj[] = {{"X-A", "v\r\nX-Injected: 1"}};
    auth_http_opts_t o = {.method = "GET", .url = e.url, .headers = inj, .nheaders = 1};
    ASSERT_EQ(auth_http_send(e.http, &o, http_cb, &r, NULL), UV_EINVAL);
    auth_http_opts_t f = {.method = "GET", .url = "file:///etc/passwd"};
    ASSERT_EQ(auth_http_send(e.http, &f, http_cb, &r, NULL), UV_EINVAL);
    auth_aws_call_opts_t c = query_call(&e);
    c.endpoint = "https://user:pw@host";
    ASSERT_EQ(auth_aws_call(e.http, &c, call_cb, &r, NULL), UV_EINVAL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 0);
    env_finish(&e);
}

PX_TEST(body_cap)
{
    env_t e;
    env_start(&e);
    ts_response_t *a = &e.script.answers[e.script.nanswers++];
    memset(a, 0, sizeof(*a));
    memset(a->body, 'b', 5000);
    a->bodylen = 5000;
    result_t r = {0};
    auth_http_opts_t o = {.method = "GET", .url = e.url, .max_body = 1024};
    ASSERT_OK(auth_http_send(e.http, &o, http_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(r.err, PX_E_TOOBIG);
    ASSERT_EQ(r.bodylen, 0);
    /* Exactly at the cap is fine. */
    memset(&r, 0, sizeof(r));
    auth_http_opts_t o2 = {.method = "GET", .url = e.url, .max_body = 5000, .secret_body = true};
    ASSERT_OK(auth_http_send(e.http, &o2, http_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(r.bodylen, 5000);
    env_finish(&e);
}

PX_TEST(timeout_and_refused)
{
    env_t e;
    env_start(&e);
    e.script.answers[0].stall = true;
    e.script.nanswers = 1;
    result_t r = {0};
    auth_http_opts_t o = {.method = "GET", .url = e.url, .timeout_ms = 200};
    uint64_t t0 = uv_hrtime();
    ASSERT_OK(auth_http_send(e.http, &o, http_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(r.err, AUTH_E_TIMEOUT);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    ASSERT(ms >= 150 && ms < 5000);

    /* A port nobody listens on: refused, and known to be unsent. */
    ts_server_t *tmp;
    int port;
    script_t s2 = {0};
    ASSERT_OK(ts_start(&e.loop, script_handler, &s2, &tmp, &port));
    ts_stop(tmp);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    memset(&r, 0, sizeof(r));
    auth_http_opts_t o2 = {.method = "GET", .url = url};
    ASSERT_OK(auth_http_send(e.http, &o2, http_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(r.err, AUTH_E_HTTP);
    ASSERT(r.not_sent);
    env_finish(&e);
}

PX_TEST(cancel_and_close_in_flight)
{
    env_t e;
    env_start(&e);
    e.script.answers[0].stall = true;
    e.script.nanswers = 1;
    result_t r1 = {0}, r2 = {0}, r3 = {0};
    auth_http_opts_t o = {.method = "GET", .url = e.url};
    auth_http_req_t *req1;
    ASSERT_OK(auth_http_send(e.http, &o, http_cb, &r1, &req1));
    ASSERT_OK(auth_http_send(e.http, &o, http_cb, &r2, NULL));
    auth_aws_call_opts_t c = query_call(&e);
    ASSERT_OK(auth_aws_call(e.http, &c, call_cb, &r3, NULL));
    r1.started = r2.started = r3.started = true;
    /* Let the requests reach the server. */
    while (e.script.seen < 3)
        uv_run(&e.loop, UV_RUN_ONCE);
    auth_http_cancel(req1);
    auth_http_close(e.http, closed_cb, &e.closed);
    ASSERT_EQ(r2.calls, 0); /* never from inside close */
    ASSERT_EQ(r3.calls, 0);
    e.http = NULL;
    ts_stop(e.srv);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT(e.closed);
    ASSERT_EQ(r1.calls, 0); /* canceled: no callback */
    ASSERT_EQ(r2.calls, 1);
    ASSERT_EQ(r2.err, AUTH_E_CANCELED);
    ASSERT_EQ(r3.calls, 1);
    ASSERT_EQ(r3.aws.code, AUTH_E_CANCELED);
    ASSERT_EQ(ts_open_handles(&e.loop), 0);
    px_test_loop_close(&e.loop);
}

/* Closing from inside a completion callback is allowed. */
static void close_from_cb(int err, const char *msg, const auth_http_resp_t *resp, void *arg)
{
    env_t *e = arg;
    PX_UNUSED(err);
    PX_UNUSED(msg);
    PX_UNUSED(resp);
    auth_http_close(e->http, closed_cb, &e->closed);
    e->http = NULL;
}

PX_TEST(close_inside_callback)
{
    env_t e;
    env_start(&e);
    answer(&e.script, 200, NULL, "x");
    auth_http_opts_t o = {.method = "GET", .url = e.url};
    ASSERT_OK(auth_http_send(e.http, &o, close_from_cb, &e, NULL));
    result_t r = {.started = true};
    ASSERT_OK(auth_http_send(e.http, &o, http_cb, &r, NULL));
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT(e.closed);
    ASSERT_EQ(r.calls, 1); /* completed, or canceled by the close: either way exactly once */
    env_finish(&e);
}

static int sink_fn(const uint8_t *p, size_t n, void *arg)
{
    result_t *r = arg;
    if (r->bodylen + n > sizeof(r->body))
        return PX_E_TOOBIG;
    memcpy(r->body + r->bodylen, p, n);
    r->bodylen += n;
    return 0;
}

static void sink_done_cb(int err, const char *msg, const auth_http_resp_t *resp, void *arg)
{
    result_t *r = arg;
    PX_UNUSED(msg);
    r->calls++;
    r->err = err;
    r->status = resp->status;
    ASSERT_EQ(resp->bodylen, 0); /* the sink had it all */
}

PX_TEST(streaming_sink)
{
    env_t e;
    env_start(&e);
    ts_response_t *a = &e.script.answers[e.script.nanswers++];
    memset(a, 0, sizeof(*a));
    for (int i = 0; i < 60000; i++)
        a->body[i] = (char)('a' + i % 26);
    a->bodylen = 60000;
    result_t r = {0};
    auth_http_opts_t o = {
        .method = "GET", .url = e.url, .max_body = 100, .sink = sink_fn, .sink_arg = &r};
    ASSERT_OK(auth_http_send(e.http, &o, sink_done_cb, &r, NULL));
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(r.bodylen, 60000);
    ASSERT_MEM_EQ(r.body, a->body, 60000);
    env_finish(&e);
}

/* ---------------------------------------------------------------------------------------------
 * AWS calls
 */

PX_TEST(aws_call_signs)
{
    env_t e;
    env_start(&e);
    answer(&e.script, 200, NULL, "<ok/>");
    result_t r = {0};
    auth_aws_call_opts_t c = query_call(&e);
    ASSERT_OK(auth_aws_call(e.http, &c, call_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT(!r.aws_err);
    ASSERT_STR_EQ(r.body, "<ok/>");
    char v[512];
    ASSERT(ts_header(&e.script.last, "Authorization", v, sizeof(v)));
    ASSERT(strstr(v, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
    ASSERT(strstr(v, "/us-east-1/redshift/aws4_request"));
    ASSERT(strstr(v, "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"));
    ASSERT_STR_EQ(ts_header(&e.script.last, "X-Amz-Security-Token", v, sizeof(v)), "SESSIONTOKEN");
    ASSERT(ts_header(&e.script.last, "X-Amz-Date", v, sizeof(v)));
    char host[64];
    snprintf(host, sizeof(host), "127.0.0.1:%d", e.port);
    ASSERT_STR_EQ(ts_header(&e.script.last, "Host", v, sizeof(v)), host);
    ASSERT_STR_EQ(e.script.last_body, "Action=DescribeClusters&Version=2012-12-01");
    env_finish(&e);
}

PX_TEST(aws_call_retries_throttling_then_succeeds)
{
    env_t e;
    env_start(&e);
    answer(&e.script, 400, NULL, THROTTLE_XML);
    answer(&e.script, 503, NULL, "<html>Service Unavailable</html>");
    answer(&e.script, 200, NULL, "<ok/>");
    result_t r = {0};
    auth_aws_call_opts_t c = query_call(&e);
    ASSERT_OK(auth_aws_call(e.http, &c, call_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT(!r.aws_err);
    ASSERT_EQ(e.script.seen, 3);
    env_finish(&e);
}

PX_TEST(aws_call_throttling_exhausts_attempts)
{
    env_t e;
    env_start(&e);
    answer(&e.script, 400, NULL, THROTTLE_XML);
    result_t r = {0};
    auth_aws_call_opts_t c = query_call(&e);
    c.max_attempts = 4;
    ASSERT_OK(auth_aws_call(e.http, &c, call_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT(r.aws_err);
    ASSERT_EQ(r.aws.code, AUTH_E_THROTTLED);
    ASSERT_STR_EQ(r.aws.aws_code, "Throttling");
    ASSERT(r.aws.unreachable);
    ASSERT_EQ(r.aws.http_status, 400);
    ASSERT(strstr(r.aws.message, "Rate exceeded"));
    ASSERT(strstr(r.aws.message, "4 attempts"));
    ASSERT_EQ(e.script.seen, 4);
    env_finish(&e);
}

PX_TEST(aws_call_access_denied_not_retried)
{
    env_t e;
    env_start(&e);
    answer(&e.script, 403, NULL,
           "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: "
           "arn:aws:iam::1:user/x is not authorized to perform: redshift:GetClusterCredentials"
           "</Message></Error><RequestId>rid-9</RequestId></ErrorResponse>");
    result_t r = {0};
    auth_aws_call_opts_t c = query_call(&e);
    ASSERT_OK(auth_aws_call(e.http, &c, call_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(r.aws.code, AUTH_E_AWS);
    ASSERT_STR_EQ(r.aws.aws_code, "AccessDenied");
    ASSERT(!r.aws.unreachable);
    ASSERT_EQ(r.aws.http_status, 403);
    ASSERT(strstr(r.aws.message, "not authorized"));
    ASSERT_STR_EQ(r.aws.request_id, "test-req-1"); /* the header wins over the body */
    ASSERT_EQ(e.script.seen, 1);
    env_finish(&e);
}

PX_TEST(aws_call_corrects_clock_skew)
{
    env_t e;
    env_start(&e);
    /* The server's clock is an hour ahead: our first signature is "expired"; the Date header
     * lets us correct, re-sign and succeed. */
    e.script.server_skew_s = 3600;
    e.script.check_date_skew = true;
    answer(&e.script, 200, NULL, "<ok/>");
    result_t r = {0};
    auth_aws_call_opts_t c = query_call(&e);
    ASSERT_OK(auth_aws_call(e.http, &c, call_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT(!r.aws_err);
    ASSERT_EQ(e.script.seen, 2);
    int64_t skew = auth_http_clock_skew_ms(e.http);
    ASSERT(skew > 3590000 && skew < 3610000);
    /* The next call signs with the corrected clock straight away. */
    memset(&r, 0, sizeof(r));
    ASSERT_OK(auth_aws_call(e.http, &c, call_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT(!r.aws_err);
    ASSERT_EQ(e.script.seen, 3);
    env_finish(&e);
}

PX_TEST(aws_call_bad_signature_not_retried)
{
    env_t e;
    env_start(&e);
    /* A wrong secret also says SignatureDoesNotMatch, but the clocks agree: no retry. */
    answer(&e.script, 403, NULL,
           "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>The request "
           "signature we calculated does not match</Message></Error></ErrorResponse>");
    result_t r = {0};
    auth_aws_call_opts_t c = query_call(&e);
    ASSERT_OK(auth_aws_call(e.http, &c, call_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.aws.code, AUTH_E_AWS);
    ASSERT_STR_EQ(r.aws.aws_code, "SignatureDoesNotMatch");
    ASSERT_EQ(e.script.seen, 1);
    ASSERT_EQ(auth_http_clock_skew_ms(e.http), 0);
    env_finish(&e);
}

PX_TEST(aws_call_json_errors_and_unsigned)
{
    env_t e;
    env_start(&e);
    answer(&e.script, 400, "x-amzn-ErrorType: ValidationException:http://x/\r\n",
           "{\"message\":\"workgroupName must match ^[a-z0-9-]+$\"}");
    result_t r = {0};
    auth_aws_call_opts_t c = query_call(&e);
    c.proto = AUTH_PROTO_JSON;
    c.service = AUTH_SVC_REDSHIFT_SERVERLESS;
    c.creds = NULL; /* unsigned */
    ASSERT_OK(auth_aws_call(e.http, &c, call_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.aws.code, AUTH_E_AWS);
    ASSERT_STR_EQ(r.aws.aws_code, "ValidationException");
    ASSERT(strstr(r.aws.message, "workgroupName"));
    char v[256];
    ASSERT(ts_header(&e.script.last, "Authorization", v, sizeof(v)) == NULL);
    env_finish(&e);
}

PX_TEST(aws_call_transport_retry)
{
    env_t e;
    env_start(&e);
    e.script.answers[0].drop = true;
    e.script.nanswers = 1;
    answer(&e.script, 200, NULL, "<ok/>");
    result_t r = {0};
    auth_aws_call_opts_t c = query_call(&e);
    ASSERT_OK(auth_aws_call(e.http, &c, call_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT(!r.aws_err);
    ASSERT_EQ(e.script.seen, 2);

    env_finish(&e);

    /* Not idempotent and sent: a dropped connection is final. (A fresh client, because curl
     * itself retries a request whose reused keep-alive connection turned out dead.) */
    env_start(&e);
    e.script.answers[0].drop = true;
    e.script.nanswers = 1;
    answer(&e.script, 200, NULL, "<ok/>");
    memset(&r, 0, sizeof(r));
    c = query_call(&e);
    c.idempotent = false;
    ASSERT_OK(auth_aws_call(e.http, &c, call_cb, &r, NULL));
    r.started = true;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ASSERT(r.aws_err);
    ASSERT_EQ(r.aws.code, AUTH_E_HTTP);
    ASSERT(r.aws.unreachable);
    ASSERT_EQ(e.script.seen, 1);
    env_finish(&e);
}

PX_TEST(aws_call_cancel_during_backoff)
{
    env_t e;
    env_start(&e);
    auth_http_set_retry(e.http, 60000, 60000); /* a long wait we will cut short */
    answer(&e.script, 400, NULL, THROTTLE_XML);
    result_t r = {.started = true};
    auth_aws_call_opts_t c = query_call(&e);
    auth_aws_call_t *call;
    ASSERT_OK(auth_aws_call(e.http, &c, call_cb, &r, &call));
    while (e.script.seen < 1)
        uv_run(&e.loop, UV_RUN_ONCE);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    auth_aws_call_cancel(call);
    env_finish(&e);
    ASSERT_EQ(r.calls, 0);
}

PX_TEST(aws_call_survives_allocation_failures)
{
    for (long n = 0; n < 40; n++) {
        env_t e;
        env_start(&e);
        answer(&e.script, 200, NULL, "<ok/>");
        result_t r = {.started = true};
        auth_aws_call_opts_t c = query_call(&e);
        px_alloc_fail_after(n);
        int rc = auth_aws_call(e.http, &c, call_cb, &r, NULL);
        px_alloc_fail_after(-1);
        if (rc == 0) {
            uv_run(&e.loop, UV_RUN_DEFAULT);
            ASSERT_EQ(r.calls, 1);
        } else {
            ASSERT_EQ(rc, UV_ENOMEM);
        }
        env_finish(&e);
    }
}
