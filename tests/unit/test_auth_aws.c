/*
 * Unit tests for the pure AWS pieces of auth/: timestamps, awsQuery XML extraction and errors,
 * JSON errors and credential documents, STS results, sanitising, error classification, endpoint
 * parsing, and the Redshift/Serverless request builders and response parsers (checked against
 * the reference's SigV4 vectors 13 and 14, so the bodies we build are the bodies AWS signs).
 */
#include "auth_aws.h"
#include "auth_http.h"
#include "auth_redshift.h"
#include "auth_sigv4.h"
#include "px_alloc.h"
#include "px_err.h"
#include "px_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) (const uint8_t *)(lit), strlen(lit)

static int64_t iso(const char *s)
{
    int64_t ms = -1;
    int rc = auth_time_parse_iso8601(s, strlen(s), &ms);
    return rc == 0 ? ms : -1;
}

PX_TEST(time_iso8601_forms)
{
    ASSERT_EQ(iso("2019-12-27T19:44:51.001Z"), 1577475891001LL);
    ASSERT_EQ(iso("2019-12-27T19:44:51Z"), 1577475891000LL);
    ASSERT_EQ(iso("2019-12-27T19:44:51.001234567Z"), 1577475891001LL);
    ASSERT_EQ(iso("2019-12-27T19:44:51.5Z"), 1577475891500LL);
    ASSERT_EQ(iso("2019-12-27T21:44:51+02:00"), 1577475891000LL);
    ASSERT_EQ(iso("2019-12-27T14:14:51-05:30"), 1577475891000LL);
    ASSERT_EQ(iso("2019-12-27T14:14:51-0530"), 1577475891000LL);
    ASSERT_EQ(iso("2019-12-27T21:44:51+02"), 1577475891000LL);
    ASSERT_EQ(iso("2019-12-27t19:44:51z"), 1577475891000LL);
    ASSERT_EQ(iso("2019-12-27 19:44:51Z"), 1577475891000LL);
    ASSERT_EQ(iso("2019-12-27T19:44:51"), 1577475891000LL); /* no zone: UTC, never local */
    ASSERT_EQ(iso("2024-02-29T00:00:00Z"), 1709164800000LL);
    ASSERT_EQ(iso("1970-01-01T00:00:00Z"), 0);
    ASSERT_EQ(iso("9999-12-31T23:59:59Z"), 253402300799000LL);
}

PX_TEST(time_iso8601_rejects)
{
    static const char *const bad[] = {
        "",
        "2019-12-27",
        "2019-12-27T19:44Z",
        "2019-13-27T19:44:51Z",
        "2019-02-29T00:00:00Z",
        "2019-12-32T00:00:00Z",
        "2019-12-27T24:00:00Z",
        "2019-12-27T19:60:00Z",
        "1969-12-31T23:59:59Z",
        "2019-12-27T19:44:51.Z",
        "2019-12-27T19:44:51Zjunk",
        "2019-12-27T19:44:51+25:00",
        "2019-12-27T19:44:51+02:0",
        "20191227T194451Z",
        "1970-01-01T00:30:00+01:00", /* before the epoch once the offset is applied */
        "-019-12-27T19:44:51Z",
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
        int64_t ms;
        if (auth_time_parse_iso8601(bad[i], strlen(bad[i]), &ms) != AUTH_E_PARSE)
            PX_FAIL("accepted \"%s\"", bad[i]);
    }
}

PX_TEST(time_http_date_and_epoch)
{
    int64_t ms;
    ASSERT_OK(auth_time_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", 29, &ms));
    ASSERT_EQ(ms, 784111777000LL);
    ASSERT_EQ(auth_time_parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC", 29, &ms), AUTH_E_PARSE);
    ASSERT_EQ(auth_time_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", 30, &ms), AUTH_E_PARSE);
    ASSERT_EQ(auth_time_parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT", 29, &ms), AUTH_E_PARSE);

    ASSERT_OK(auth_time_from_epoch(1577475891.001, &ms));
    ASSERT(ms >= 1577475891000LL && ms <= 1577475891001LL);
    ASSERT_OK(auth_time_from_epoch(1577475891, &ms));
    ASSERT_EQ(ms, 1577475891000LL);
    ASSERT_EQ(auth_time_from_epoch(-1, &ms), AUTH_E_PARSE);
    ASSERT_EQ(auth_time_from_epoch(NAN, &ms), AUTH_E_PARSE);
    ASSERT_EQ(auth_time_from_epoch(INFINITY, &ms), AUTH_E_PARSE);
    ASSERT_EQ(auth_time_from_epoch(1e18, &ms), AUTH_E_PARSE);

    char out[21];
    auth_time_format_iso8601(1577475891001LL, out);
    ASSERT_STR_EQ(out, "2019-12-27T19:44:51Z");
    auth_time_format_iso8601(1709164800000LL, out);
    ASSERT_STR_EQ(out, "2024-02-29T00:00:00Z");
}

PX_TEST(xml_extract_paths)
{
    const char *doc = "<?xml version=\"1.0\"?>\n"
                      "<a:Root xmlns:a=\"urn:x\"><a:B><C>one</C><C>two</C></a:B>"
                      "<D>x<E>inner</E>y</D><F/></a:Root>";
    auth_xml_field_t f[5] = {
        {.path = "Root/B/C"}, {.path = "*/B/C"},        {.path = "Root/D"},
        {.path = "Root/F"},   {.path = "Root/Missing"},
    };
    ASSERT_OK(auth_xml_extract(S(doc), f, 5));
    ASSERT_STR_EQ(f[0].value, "one"); /* first occurrence wins */
    ASSERT_STR_EQ(f[1].value, "one");
    ASSERT_STR_EQ(f[2].value, "xy"); /* only the element's own text */
    ASSERT_STR_EQ(f[3].value, "");
    ASSERT(f[4].value == NULL);
    auth_xml_fields_free(f, 5);
    ASSERT(f[0].value == NULL);
}

PX_TEST(xml_extract_refuses)
{
    auth_xml_field_t f[1] = {{.path = "a"}};
    /* DTDs (and with them entity expansion) are refused outright. */
    const char *dtd = "<!DOCTYPE a [<!ENTITY x \"yyyy\">]><a>&x;</a>";
    ASSERT_EQ(auth_xml_extract(S(dtd), f, 1), AUTH_E_PARSE);
    ASSERT(f[0].value == NULL);
    ASSERT_EQ(auth_xml_extract(S("<a>&undefined;</a>"), f, 1), AUTH_E_PARSE);
    ASSERT_EQ(auth_xml_extract(S("<a><b></a>"), f, 1), AUTH_E_PARSE);
    ASSERT_EQ(auth_xml_extract(S("<a>1</a><a>2</a>"), f, 1), AUTH_E_PARSE);
    ASSERT_EQ(auth_xml_extract(S(""), f, 1), AUTH_E_PARSE);
    ASSERT_EQ(auth_xml_extract(S("not xml"), f, 1), AUTH_E_PARSE);

    /* Too deep. */
    char deep[1024] = "";
    for (int i = 0; i < AUTH_XML_MAX_DEPTH + 1; i++)
        strcat(deep, "<a>");
    for (int i = 0; i < AUTH_XML_MAX_DEPTH + 1; i++)
        strcat(deep, "</a>");
    ASSERT_EQ(auth_xml_extract(S(deep), f, 1), AUTH_E_PARSE);

    /* A value above the cap. */
    size_t big = AUTH_XML_MAX_VALUE + 10;
    char *doc = malloc(big + 16);
    strcpy(doc, "<a>");
    memset(doc + 3, 'x', big);
    strcpy(doc + 3 + big, "</a>");
    ASSERT_EQ(auth_xml_extract((const uint8_t *)doc, strlen(doc), f, 1), AUTH_E_PARSE);
    /* The same size elsewhere in the document is fine: only captured values are capped. */
    auth_xml_field_t g[1] = {{.path = "r/want"}};
    char *doc2 = malloc(big + 64);
    strcpy(doc2, "<r><skip>");
    memset(doc2 + 9, 'x', big);
    strcpy(doc2 + 9 + big, "</skip><want>ok</want></r>");
    ASSERT_OK(auth_xml_extract((const uint8_t *)doc2, strlen(doc2), g, 1));
    ASSERT_STR_EQ(g[0].value, "ok");
    auth_xml_fields_free(g, 1);
    free(doc);
    free(doc2);
}

PX_TEST(xml_error_forms)
{
    auth_aws_error_t e;
    memset(&e, 0, sizeof(e));
    ASSERT(auth_parse_xml_error(
        S("<ErrorResponse><Error><Type>Sender</Type><Code>InvalidGreeting</Code><Message>Hi"
          "</Message></Error><RequestId>foo-id</RequestId></ErrorResponse>"),
        &e));
    ASSERT_STR_EQ(e.aws_code, "InvalidGreeting");
    ASSERT_STR_EQ(e.message, "Hi");
    ASSERT_STR_EQ(e.request_id, "foo-id");

    memset(&e, 0, sizeof(e));
    ASSERT(auth_parse_xml_error(
        S("<Response><Errors><Error><Code>AuthFailure</Code><Message>no</Message></Error>"
          "</Errors><RequestID>r2</RequestID></Response>"),
        &e));
    ASSERT_STR_EQ(e.aws_code, "AuthFailure");
    ASSERT_STR_EQ(e.message, "no");
    ASSERT_STR_EQ(e.request_id, "r2");

    memset(&e, 0, sizeof(e));
    ASSERT(auth_parse_xml_error(S("<Error><Code>NoSuchKey</Code><Message>The key\nis gone</Message>"
                                  "<RequestId>r3</RequestId></Error>"),
                                &e));
    ASSERT_STR_EQ(e.aws_code, "NoSuchKey");
    ASSERT_STR_EQ(e.message, "The key?is gone"); /* control characters never reach logs */

    memset(&e, 0, sizeof(e));
    ASSERT(!auth_parse_xml_error(S("<html>Bad Gateway</html>"), &e));
    ASSERT(!auth_parse_xml_error(S("garbage"), &e));
    ASSERT_STR_EQ(e.aws_code, "");
}

PX_TEST(json_error_forms)
{
    auth_aws_error_t e;
    memset(&e, 0, sizeof(e));
    ASSERT(auth_parse_json_error(
        S("{\"__type\":\"com.amazon.redshiftserverless#ResourceNotFoundException\","
          "\"message\":\"Workgroup wg9 not found\"}"),
        NULL, &e));
    ASSERT_STR_EQ(e.aws_code, "ResourceNotFoundException");
    ASSERT_STR_EQ(e.message, "Workgroup wg9 not found");

    memset(&e, 0, sizeof(e));
    ASSERT(auth_parse_json_error(S("{\"Message\":\"m\"}"),
                                 "ValidationException:http://internal.amazon.com/", &e));
    ASSERT_STR_EQ(e.aws_code, "ValidationException");
    ASSERT_STR_EQ(e.message, "m");

    memset(&e, 0, sizeof(e));
    ASSERT(auth_parse_json_error(NULL, 0, "ThrottlingException", &e));
    ASSERT_STR_EQ(e.aws_code, "ThrottlingException");

    memset(&e, 0, sizeof(e));
    ASSERT(!auth_parse_json_error(S("[1,2]"), NULL, &e));
    ASSERT(!auth_parse_json_error(S("{\"a\":1,\"a\":2}"), NULL, &e));

    /* Nesting beyond the bound is refused before jansson sees it. */
    char deep[200] = "";
    for (int i = 0; i < AUTH_JSON_MAX_DEPTH + 1; i++)
        strcat(deep, "[");
    for (int i = 0; i < AUTH_JSON_MAX_DEPTH + 1; i++)
        strcat(deep, "]");
    ASSERT(auth__json_load((const uint8_t *)deep, strlen(deep)) == NULL);
}

PX_TEST(json_creds_container_imds_process)
{
    auth_aws_creds_t c;
    auth_aws_error_t e;
    const char *container = "{\"AccessKeyId\":\"ASIAC0NTAINER\",\"SecretAccessKey\":\"sec/+=\","
                            "\"Token\":\"tok+/=\",\"Expiration\":\"2030-01-01T00:00:00Z\","
                            "\"RoleArn\":\"arn:aws:iam::1:role/r\"}";
    ASSERT_OK(auth_parse_json_creds(S(container), AUTH_JSON_CREDS_CONTAINER, &c, &e));
    ASSERT_STR_EQ(c.access_key_id, "ASIAC0NTAINER");
    ASSERT_STR_EQ(c.secret_access_key, "sec/+=");
    ASSERT_STR_EQ(c.session_token, "tok+/=");
    ASSERT_EQ(c.expiration_ms, iso("2030-01-01T00:00:00Z"));
    auth_aws_creds_clear(&c);

    const char *imds = "{\"Code\":\"Success\",\"LastUpdated\":\"2030-01-01T00:00:00Z\","
                       "\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAIMDS\",\"SecretAccessKey\":"
                       "\"s\",\"Token\":\"t\",\"Expiration\":\"2030-01-01T06:00:00Z\"}";
    ASSERT_OK(auth_parse_json_creds(S(imds), AUTH_JSON_CREDS_IMDS, &c, &e));
    ASSERT_STR_EQ(c.access_key_id, "ASIAIMDS");
    auth_aws_creds_clear(&c);
    ASSERT_EQ(auth_parse_json_creds(S("{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"Message\":"
                                      "\"nope\"}"),
                                    AUTH_JSON_CREDS_IMDS, &c, &e),
              AUTH_E_AWS);
    ASSERT_STR_EQ(e.aws_code, "AssumeRoleUnauthorizedAccess");

    const char *proc = "{\"Version\":1,\"AccessKeyId\":\"AKIAPROC\",\"SecretAccessKey\":\"s\"}";
    ASSERT_OK(auth_parse_json_creds(S(proc), AUTH_JSON_CREDS_PROCESS, &c, &e));
    ASSERT(c.session_token == NULL);
    ASSERT_EQ(c.expiration_ms, 0);
    auth_aws_creds_clear(&c);
    ASSERT_EQ(auth_parse_json_creds(S("{\"Version\":2,\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
                                      "\"s\"}"),
                                    AUTH_JSON_CREDS_PROCESS, &c, &e),
              AUTH_E_PARSE);
    ASSERT(strstr(e.message, "Version"));
    ASSERT_EQ(auth_parse_json_creds(S("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\"}"),
                                    AUTH_JSON_CREDS_PROCESS, &c, &e),
              AUTH_E_PARSE);
    /* The container and IMDS documents need a token and an expiry. */
    ASSERT_EQ(auth_parse_json_creds(S("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\","
                                      "\"Expiration\":\"2030-01-01T00:00:00Z\"}"),
                                    AUTH_JSON_CREDS_CONTAINER, &c, &e),
              AUTH_E_PARSE);
    ASSERT_EQ(auth_parse_json_creds(S("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\","
                                      "\"Token\":\"t\"}"),
                                    AUTH_JSON_CREDS_CONTAINER, &c, &e),
              AUTH_E_PARSE);
    /* Header injection through a credential source is refused, and the message never quotes
     * the secret. */
    ASSERT_EQ(auth_parse_json_creds(S("{\"Version\":1,\"AccessKeyId\":\"AKIA\\r\\nX: y\","
                                      "\"SecretAccessKey\":\"s\"}"),
                                    AUTH_JSON_CREDS_PROCESS, &c, &e),
              AUTH_E_PARSE);
    ASSERT_EQ(auth_parse_json_creds(S("{\"Version\":1,\"AccessKeyId\":\"AKIA\","
                                      "\"SecretAccessKey\":\"topsecret\\nX\"}"),
                                    AUTH_JSON_CREDS_PROCESS, &c, &e),
              AUTH_E_PARSE);
    ASSERT(!strstr(e.message, "topsecret"));
    ASSERT(c.access_key_id == NULL && c.secret_access_key == NULL);
    ASSERT_EQ(auth_parse_json_creds(S("{\"Version\":1,\"AccessKeyId\":\"AKIA\","
                                      "\"SecretAccessKey\":\"s\\u0000x\"}"),
                                    AUTH_JSON_CREDS_PROCESS, &c, &e),
              AUTH_E_PARSE);
    ASSERT_EQ(auth_parse_json_creds(S("not json"), AUTH_JSON_CREDS_PROCESS, &c, &e), AUTH_E_PARSE);
}

PX_TEST(sts_results)
{
    const char *ar = "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
                     "  <AssumeRoleResult>\n    <Credentials>\n"
                     "      <AccessKeyId>ASIASTS</AccessKeyId>\n"
                     "      <SecretAccessKey>wJalr/K7+X</SecretAccessKey>\n"
                     "      <SessionToken>\n        FwoGZ+/==\n      </SessionToken>\n"
                     "      <Expiration>2030-01-01T01:00:00Z</Expiration>\n"
                     "    </Credentials>\n    <AssumedRoleUser><Arn>a</Arn></AssumedRoleUser>\n"
                     "  </AssumeRoleResult>\n</AssumeRoleResponse>\n";
    auth_aws_creds_t c;
    auth_aws_error_t e;
    ASSERT_OK(auth_parse_sts_creds(S(ar), "AssumeRole", &c, &e));
    ASSERT_STR_EQ(c.access_key_id, "ASIASTS");
    ASSERT_STR_EQ(c.secret_access_key, "wJalr/K7+X");
    ASSERT_STR_EQ(c.session_token, "FwoGZ+/==");
    ASSERT_EQ(c.expiration_ms, iso("2030-01-01T01:00:00Z"));
    auth_aws_creds_clear(&c);
    /* The wrong operation's result is not accepted. */
    ASSERT_EQ(auth_parse_sts_creds(S(ar), "AssumeRoleWithWebIdentity", &c, &e), AUTH_E_PARSE);
    ASSERT_EQ(auth_parse_sts_creds(S("<x/>"), "AssumeRole", &c, &e), AUTH_E_PARSE);
}

PX_TEST(sanitize_and_classify)
{
    char out[32];
    auth_aws_sanitize(out, sizeof(out), "a\r\nb\x1b[31m\x7f", 10);
    ASSERT_STR_EQ(out, "a??b?[31m?");
    auth_aws_sanitize(out, sizeof(out), "caf\xc3\xa9 \xff", 7);
    ASSERT_STR_EQ(out, "caf\xc3\xa9 ?");
    auth_aws_sanitize(out, 4, "abcdef", 6);
    ASSERT_STR_EQ(out, "abc");

    ASSERT(auth_aws_code_is_throttle("Throttling"));
    ASSERT(auth_aws_code_is_throttle("ThrottlingException"));
    ASSERT(auth_aws_code_is_throttle("SlowDown"));
    ASSERT(!auth_aws_code_is_throttle("AccessDenied"));
    ASSERT(!auth_aws_code_is_throttle(""));
    ASSERT(auth_aws_code_is_skew("SignatureDoesNotMatch"));
    ASSERT(auth_aws_code_is_skew("RequestTimeTooSkewed"));
    ASSERT(!auth_aws_code_is_skew("Throttling"));
    ASSERT(auth_aws_status_is_transient(503));
    ASSERT(auth_aws_status_is_transient(429));
    ASSERT(!auth_aws_status_is_transient(403));
    ASSERT(!auth_aws_status_is_transient(501));
}

PX_TEST(endpoint_parse)
{
    char host[256], base[256];
    bool https;
    ASSERT_OK(auth_http_endpoint_parse("https://Redshift.us-east-1.amazonaws.com", host,
                                       sizeof(host), base, sizeof(base), &https));
    ASSERT_STR_EQ(host, "redshift.us-east-1.amazonaws.com");
    ASSERT_STR_EQ(base, "");
    ASSERT(https);
    ASSERT_OK(
        auth_http_endpoint_parse("https://h:443/", host, sizeof(host), base, sizeof(base), &https));
    ASSERT_STR_EQ(host, "h");
    ASSERT_OK(auth_http_endpoint_parse("http://127.0.0.1:4566/base/", host, sizeof(host), base,
                                       sizeof(base), &https));
    ASSERT_STR_EQ(host, "127.0.0.1:4566");
    ASSERT_STR_EQ(base, "/base");
    ASSERT(!https);
    ASSERT_OK(auth_http_endpoint_parse("http://[::1]:8080", host, sizeof(host), base, sizeof(base),
                                       &https));
    ASSERT_STR_EQ(host, "[::1]:8080");
    ASSERT_OK(
        auth_http_endpoint_parse("http://h:80", host, sizeof(host), base, sizeof(base), &https));
    ASSERT_STR_EQ(host, "h");
    static const char *const bad[] = {
        "ftp://h",         "https://",    "https://u:p@h", "https://h?x=1",
        "https://h:99999", "https://h:x", "https://h/a b", "h"};
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++)
        if (auth_http_endpoint_parse(bad[i], host, sizeof(host), base, sizeof(base), &https) == 0)
            PX_FAIL("accepted %s", bad[i]);
}

/* The body we build for vector 13 and the signature over it must be the reference's. */
PX_TEST(redshift_body_matches_vector_13)
{
    const char *groups[] = {"Analysts"};
    auth_rs_request_t r = {
        .cluster_identifier = "examplecluster",
        .db_user = "Alice", /* lower-cased on the way out (§10.5) */
        .db_name = "dev",
        .db_groups = groups,
        .ngroups = 1,
        .duration_seconds = 900,
    };
    px_dbuf_t b;
    px_dbuf_init(&b, 4096);
    ASSERT_OK(auth_rs_build_cluster_credentials(&r, false, &b));
    const char *want = "Action=GetClusterCredentials&ClusterIdentifier=examplecluster&"
                       "DbGroups.DbGroup.1=analysts&DbName=dev&DbUser=alice&DurationSeconds=900&"
                       "Version=2012-12-01";
    ASSERT_EQ(b.len, strlen(want));
    ASSERT_MEM_EQ(b.data, want, b.len);

    auth_http_header_t h[] = {{"Host", "redshift.us-east-1.amazonaws.com"},
                              {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    auth_sigv4_req_t sr = {
        .method = "POST",
        .path = "/",
        .headers = h,
        .nheaders = 2,
        .body = b.data,
        .bodylen = b.len,
        .region = "us-east-1",
        .service = "redshift",
        .time_unix = 1369353600, /* 20130524T000000Z */
        .sign_session_token = true,
    };
    auth_aws_keys_t k = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL};
    auth_sigv4_out_t out;
    ASSERT_OK(auth_sigv4_sign(&sr, &k, &out));
    const char *authz = NULL;
    for (size_t i = 0; i < out.nadd; i++)
        if (strcmp(out.add[i].name, "Authorization") == 0)
            authz = out.add[i].value;
    ASSERT(authz && strstr(authz, "Signature=9aef0fb94b0adaada5ebcb31de44502e1e595301f950519bd48"
                                  "b1026e18758ef"));
    auth_sigv4_out_free(&out);
    px_dbuf_free(&b);
}

PX_TEST(redshift_bodies_variants)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 4096);
    auth_rs_request_t r = {.cluster_identifier = "c1",
                           .custom_domain_name = "db.example.com",
                           .db_user = "bob",
                           .auto_create = true};
    ASSERT_OK(auth_rs_build_cluster_credentials(&r, true, &b));
    ASSERT_STR_EQ(px_dbuf_cstr(&b), "Action=GetClusterCredentials&AutoCreate=true&"
                                    "CustomDomainName=db.example.com&DbUser=bob&"
                                    "Version=2012-12-01");
    px_dbuf_reset(&b);
    r.with_iam = true;
    r.db_name = "my db";
    ASSERT_OK(auth_rs_build_cluster_credentials(&r, false, &b));
    ASSERT_STR_EQ(px_dbuf_cstr(&b), "Action=GetClusterCredentialsWithIAM&ClusterIdentifier=c1&"
                                    "DbName=my%20db&Version=2012-12-01");
    px_dbuf_reset(&b);
    auth_rs_request_t none = {.db_user = "x"};
    ASSERT_EQ(auth_rs_build_cluster_credentials(&none, false, &b), UV_EINVAL);
    auth_rs_request_t nouser = {.cluster_identifier = "c"};
    ASSERT_EQ(auth_rs_build_cluster_credentials(&nouser, false, &b), UV_EINVAL);
    px_dbuf_reset(&b);
    ASSERT_OK(auth_rs_build_describe_clusters("c1", &b));
    ASSERT_STR_EQ(px_dbuf_cstr(&b), "Action=DescribeClusters&ClusterIdentifier=c1&"
                                    "Version=2012-12-01");

    /* Vector 14's body exactly. */
    px_dbuf_reset(&b);
    auth_rs_request_t s = {.workgroup_name = "wg1", .db_name = "dev", .duration_seconds = 900};
    ASSERT_OK(auth_rs_build_serverless_credentials(&s, false, &b));
    ASSERT_STR_EQ(px_dbuf_cstr(&b), "{\"workgroupName\":\"wg1\",\"dbName\":\"dev\","
                                    "\"durationSeconds\":900}");
    px_dbuf_reset(&b);
    auth_rs_request_t q = {.workgroup_name = "w", .db_name = "a\"b\\c\x01"};
    ASSERT_OK(auth_rs_build_serverless_credentials(&q, false, &b));
    ASSERT_STR_EQ(px_dbuf_cstr(&b), "{\"workgroupName\":\"w\",\"dbName\":\"a\\\"b\\\\c\\u0001\"}");
    px_dbuf_reset(&b);
    ASSERT_OK(auth_rs_build_serverless_workgroup("wg1", &b));
    ASSERT_STR_EQ(px_dbuf_cstr(&b), "{\"workgroupName\":\"wg1\"}");
    px_dbuf_free(&b);
}

PX_TEST(redshift_parsers)
{
    const char *gcc =
        "<GetClusterCredentialsResponse xmlns=\"http://redshift.amazonaws.com/doc/2012-12-01/\">\n"
        "  <GetClusterCredentialsResult>\n    <DbUser>IAM:adminuser</DbUser>\n"
        "    <Expiration>2019-12-27T19:44:51.001Z</Expiration>\n"
        "    <DbPassword>AMAFUyyuros/EXAMPLE==</DbPassword>\n"
        "  </GetClusterCredentialsResult>\n"
        "  <ResponseMetadata><RequestId>404b</RequestId></ResponseMetadata>\n"
        "</GetClusterCredentialsResponse>";
    auth_rs_creds_t c;
    auth_aws_error_t e;
    ASSERT_OK(auth_rs_parse_cluster_credentials(S(gcc), false, &c, &e));
    ASSERT_STR_EQ(c.db_user, "IAM:adminuser");
    ASSERT_STR_EQ(c.db_password, "AMAFUyyuros/EXAMPLE==");
    ASSERT_EQ(c.expiration_ms, 1577475891001LL);
    auth_rs_creds_clear(&c);
    ASSERT_EQ(auth_rs_parse_cluster_credentials(S(gcc), true, &c, &e), AUTH_E_PARSE);
    ASSERT_EQ(auth_rs_parse_cluster_credentials(
                  S("<GetClusterCredentialsResponse><GetClusterCredentialsResult><DbUser>u"
                    "</DbUser><Expiration>2030-01-01T00:00:00Z</Expiration>"
                    "</GetClusterCredentialsResult></GetClusterCredentialsResponse>"),
                  false, &c, &e),
              AUTH_E_PARSE);
    ASSERT(strstr(e.message, "DbPassword"));

    const char *dc = "<DescribeClustersResponse><DescribeClustersResult><Clusters><Cluster>"
                     "<ClusterIdentifier>examplecluster</ClusterIdentifier>"
                     "<Endpoint><Address>examplecluster.abc123.us-west-2.redshift.amazonaws.com"
                     "</Address><Port>5439</Port></Endpoint>"
                     "<ClusterStatus>available</ClusterStatus></Cluster></Clusters>"
                     "</DescribeClustersResult></DescribeClustersResponse>";
    char *host;
    int port;
    ASSERT_OK(auth_rs_parse_describe_clusters(S(dc), &host, &port, &e));
    ASSERT_STR_EQ(host, "examplecluster.abc123.us-west-2.redshift.amazonaws.com");
    ASSERT_EQ(port, 5439);
    px_free(host);
    ASSERT_EQ(auth_rs_parse_describe_clusters(
                  S("<DescribeClustersResponse><DescribeClustersResult><Clusters><Cluster>"
                    "<ClusterStatus>creating</ClusterStatus></Cluster></Clusters>"
                    "</DescribeClustersResult></DescribeClustersResponse>"),
                  &host, &port, &e),
              AUTH_E_PARSE);
    ASSERT(strstr(e.message, "creating"));
    ASSERT_EQ(auth_rs_parse_describe_clusters(
                  S("<DescribeClustersResponse><DescribeClustersResult><Clusters><Cluster>"
                    "<Endpoint><Address>bad host</Address><Port>5439</Port></Endpoint>"
                    "</Cluster></Clusters></DescribeClustersResult></DescribeClustersResponse>"),
                  &host, &port, &e),
              AUTH_E_PARSE);

    ASSERT_OK(auth_rs_parse_serverless_credentials(
        S("{\"dbUser\":\"IAMR:role\",\"dbPassword\":\"p/+=\",\"expiration\":1.8934848005E9,"
          "\"nextRefreshTime\":1.8934848E9}"),
        &c, &e));
    ASSERT_STR_EQ(c.db_user, "IAMR:role");
    ASSERT_STR_EQ(c.db_password, "p/+=");
    ASSERT(c.expiration_ms >= 1893484800499LL && c.expiration_ms <= 1893484800500LL);
    auth_rs_creds_clear(&c);
    ASSERT_OK(auth_rs_parse_serverless_credentials(
        S("{\"dbUser\":\"IAM:u\",\"dbPassword\":\"p\",\"expiration\":\"2030-01-01T00:00:00Z\"}"),
        &c, &e));
    auth_rs_creds_clear(&c);
    ASSERT_EQ(auth_rs_parse_serverless_credentials(S("{\"dbUser\":\"IAM:u\",\"dbPassword\":\"p\"}"),
                                                   &c, &e),
              AUTH_E_PARSE);
    ASSERT_EQ(auth_rs_parse_serverless_credentials(
                  S("{\"dbUser\":\"IAM:u x\",\"dbPassword\":\"p\",\"expiration\":1}"), &c, &e),
              AUTH_E_PARSE);

    ASSERT_OK(auth_rs_parse_serverless_workgroup(
        S("{\"workgroup\":{\"workgroupName\":\"wg1\",\"endpoint\":{\"address\":"
          "\"wg1.123.us-east-1.redshift-serverless.amazonaws.com\",\"port\":5439,"
          "\"vpcEndpoints\":[]},\"status\":\"AVAILABLE\"}}"),
        &host, &port, &e));
    ASSERT_STR_EQ(host, "wg1.123.us-east-1.redshift-serverless.amazonaws.com");
    ASSERT_EQ(port, 5439);
    px_free(host);
    ASSERT_EQ(auth_rs_parse_serverless_workgroup(S("{\"workgroup\":{\"status\":\"CREATING\"}}"),
                                                 &host, &port, &e),
              AUTH_E_PARSE);
    ASSERT(strstr(e.message, "CREATING"));
}

/* Every allocation failure on the parse paths ends in an error, never a crash or a leak
 * (run under ASan to see the leaks). */
PX_TEST(parsers_survive_allocation_failures)
{
    const char *ar = "<AssumeRoleResponse><AssumeRoleResult><Credentials>"
                     "<AccessKeyId>ASIA</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
                     "<SessionToken>t</SessionToken><Expiration>2030-01-01T00:00:00Z"
                     "</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";
    for (long n = 0; n < 64; n++) {
        auth_aws_creds_t c;
        auth_aws_error_t e;
        px_alloc_fail_after(n);
        int rc = auth_parse_sts_creds(S(ar), "AssumeRole", &c, &e);
        px_alloc_fail_after(-1);
        if (rc == 0) {
            ASSERT_STR_EQ(c.access_key_id, "ASIA");
            auth_aws_creds_clear(&c);
        } else {
            ASSERT(rc == UV_ENOMEM || rc == AUTH_E_PARSE);
        }
    }
}
