/*
 * Unit tests for the pure parts of s3/ besides XML: bucket and key rules, endpoint and region
 * precedence, the path-style / virtual-hosted addressing table, query encoding, Content-Range,
 * status-derived codes, UUIDs, the lifecycle rule-matching table and messages (spark-redshift's
 * WARN text word for word), and staging prefixes.
 */
#include "px_buf.h"
#include "px_err.h"
#include "px_test.h"
#include "s3_lifecycle.h"
#include "s3_req.h"
#include "s3_stage.h"

#include <string.h>
#include <uv.h>

PX_TEST(bucket_rules)
{
    ASSERT(s3_bucket_name_ok("rsproxy-test"));
    ASSERT(s3_bucket_name_ok("my.dotted.bucket"));
    ASSERT(s3_bucket_name_ok("Legacy_Bucket"));
    ASSERT(!s3_bucket_name_ok("ab"));
    ASSERT(!s3_bucket_name_ok(NULL));
    ASSERT(!s3_bucket_name_ok("has/slash"));
    ASSERT(!s3_bucket_name_ok("has space"));
    ASSERT(!s3_bucket_name_ok("a234567890123456789012345678901234567890123456789012345678901234"));
    ASSERT(s3_bucket_dns_compatible("rsproxy-test"));
    ASSERT(s3_bucket_dns_compatible("a1b"));
    ASSERT(!s3_bucket_dns_compatible("my.dotted.bucket"));
    ASSERT(!s3_bucket_dns_compatible("Legacy_Bucket"));
    ASSERT(!s3_bucket_dns_compatible("-abc"));
    ASSERT(!s3_bucket_dns_compatible("abc-"));
}

PX_TEST(key_rules)
{
    ASSERT(s3_key_check("tmp/a.csv", 9) == NULL);
    ASSERT(s3_key_check("tmp/..a/.b/a..", 14) == NULL);
    ASSERT(s3_key_check("a//b", 4) == NULL);
    ASSERT(s3_key_check("", 0) != NULL);
    ASSERT(s3_key_check("a\0b", 3) != NULL);
    ASSERT(s3_key_check(".", 1) != NULL);
    ASSERT(s3_key_check("..", 2) != NULL);
    ASSERT(s3_key_check("a/./b", 5) != NULL);
    ASSERT(s3_key_check("a/../b", 6) != NULL);
    ASSERT(s3_key_check("a/..", 4) != NULL);
    ASSERT(s3_key_check("./a", 3) != NULL);
    char big[1100];
    memset(big, 'k', sizeof(big));
    ASSERT(s3_key_check(big, 1024) == NULL);
    ASSERT(s3_key_check(big, 1025) != NULL);
}

PX_TEST(aws_endpoint_detection)
{
    ASSERT(s3_endpoint_is_aws("https://s3.us-east-1.amazonaws.com"));
    ASSERT(s3_endpoint_is_aws("https://s3.amazonaws.com/"));
    ASSERT(s3_endpoint_is_aws("https://s3-us-west-2.amazonaws.com"));
    ASSERT(s3_endpoint_is_aws("https://s3.cn-north-1.amazonaws.com.cn"));
    ASSERT(s3_endpoint_is_aws("https://s3.dualstack.eu-west-1.amazonaws.com:443"));
    ASSERT(!s3_endpoint_is_aws("http://127.0.0.1:9000"));
    ASSERT(!s3_endpoint_is_aws("http://localhost:4566"));
    ASSERT(!s3_endpoint_is_aws("https://minio.example.com"));
    ASSERT(!s3_endpoint_is_aws("https://s3.us-east-1.amazonaws.com/base"));
    ASSERT(!s3_endpoint_is_aws("https://sts.us-east-1.amazonaws.com"));
    ASSERT(!s3_endpoint_is_aws("https://s3.evil-amazonaws.com"));
    ASSERT(!s3_endpoint_is_aws("not a url"));
}

typedef struct addr_case {
    const char *endpoint;
    s3_addressing_t mode;
    const char *bucket;
    const char *key; /* NULL: bucket-level */
    int rc;
    const char *ep, *path;
    bool virt;
} addr_case_t;

PX_TEST(addressing_table)
{
    static const addr_case_t cases[] = {
        /* AWS endpoint + DNS-compatible bucket: virtual-hosted. */
        {"https://s3.us-east-1.amazonaws.com", S3_ADDR_AUTO, "rsproxy-test", "tmp/a b+c=d.csv", 0,
         "https://rsproxy-test.s3.us-east-1.amazonaws.com", "/tmp/a%20b%2Bc%3Dd.csv", true},
        {"https://s3.us-east-1.amazonaws.com", S3_ADDR_AUTO, "rsproxy-test", NULL, 0,
         "https://rsproxy-test.s3.us-east-1.amazonaws.com", "/", true},
        /* Dots (the wildcard certificate would not match) and legacy names: path-style. */
        {"https://s3.us-east-1.amazonaws.com", S3_ADDR_AUTO, "my.bucket", "k", 0,
         "https://s3.us-east-1.amazonaws.com", "/my.bucket/k", false},
        {"https://s3.us-east-1.amazonaws.com", S3_ADDR_AUTO, "Legacy_B", NULL, 0,
         "https://s3.us-east-1.amazonaws.com", "/Legacy_B", false},
        /* Custom endpoints: path-style, port and base path kept. */
        {"http://127.0.0.1:9000", S3_ADDR_AUTO, "rsproxy-test", "tmp/x", 0, "http://127.0.0.1:9000",
         "/rsproxy-test/tmp/x", false},
        {"https://store.example.com:8443/s3/", S3_ADDR_AUTO, "rsproxy-test", "k", 0,
         "https://store.example.com:8443/s3", "/rsproxy-test/k", false},
        /* Forced modes. */
        {"https://s3.us-east-1.amazonaws.com", S3_ADDR_PATH, "rsproxy-test", "k", 0,
         "https://s3.us-east-1.amazonaws.com", "/rsproxy-test/k", false},
        {"http://localhost:4566", S3_ADDR_VIRTUAL, "rsproxy-test", "k", 0,
         "http://rsproxy-test.localhost:4566", "/k", true},
        {"http://127.0.0.1:4566", S3_ADDR_VIRTUAL, "rsproxy-test", "k", 0, "http://127.0.0.1:4566",
         "/rsproxy-test/k", false},
        {"http://localhost:4566", S3_ADDR_VIRTUAL, "my.bucket", "k", 0, "http://localhost:4566",
         "/my.bucket/k", false},
        /* Keys: '/' kept, everything else outside the unreserved set encoded once, UTF-8 too. */
        {"http://h", S3_ADDR_PATH, "bkt", "a/~_-./%?#&\xc3\xa9", 0, "http://h",
         "/bkt/a/~_-./%25%3F%23%26%C3%A9", false},
        {"http://h", S3_ADDR_PATH, "bkt", "a/../b", UV_EINVAL, NULL, NULL, false},
        {"http://h", S3_ADDR_PATH, "b/x", "k", UV_EINVAL, NULL, NULL, false},
        {"ftp://h", S3_ADDR_PATH, "bkt", "k", UV_EINVAL, NULL, NULL, false},
        {"http://user@h", S3_ADDR_PATH, "bkt", "k", UV_EINVAL, NULL, NULL, false},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(cases); i++) {
        const addr_case_t *t = &cases[i];
        px_dbuf_t ep, path;
        px_dbuf_init(&ep, 4096);
        px_dbuf_init(&path, 4096);
        bool virt = !t->virt;
        int rc = s3_build_location(t->endpoint, t->mode, t->bucket, t->key,
                                   t->key ? strlen(t->key) : 0, &ep, &path, &virt);
        if (rc != t->rc)
            PX_FAIL("case %zu (%s %s): rc %d, expected %d", i, t->endpoint, t->bucket, rc, t->rc);
        if (rc == 0) {
            ASSERT_STR_EQ(px_dbuf_cstr(&ep), t->ep);
            ASSERT_STR_EQ(px_dbuf_cstr(&path), t->path);
            if (virt != t->virt)
                PX_FAIL("case %zu: virtual %d, expected %d", i, virt, t->virt);
        } else {
            ASSERT_EQ(ep.len, 0);
            ASSERT_EQ(path.len, 0);
        }
        px_dbuf_free(&ep);
        px_dbuf_free(&path);
    }
}

PX_TEST(resolve_target_precedence)
{
    char ep[S3_ENDPOINT_MAX], region[S3_REGION_MAX];
    bool def;
    /* Nothing known: us-east-1 and its default endpoint. */
    ASSERT_OK(s3_resolve_target(NULL, NULL, NULL, NULL, NULL, ep, sizeof(ep), region,
                                sizeof(region), &def));
    ASSERT_STR_EQ(region, "us-east-1");
    ASSERT_STR_EQ(ep, "https://s3.us-east-1.amazonaws.com");
    ASSERT(def);
    /* The chain's default endpoint follows tempdir_region. */
    ASSERT_OK(s3_resolve_target(NULL, "eu-west-1", "https://s3.us-east-1.amazonaws.com",
                                "us-east-1", NULL, ep, sizeof(ep), region, sizeof(region), &def));
    ASSERT_STR_EQ(region, "eu-west-1");
    ASSERT_STR_EQ(ep, "https://s3.eu-west-1.amazonaws.com");
    ASSERT(def);
    /* A chain override (AWS_ENDPOINT_URL_S3) is kept whatever the region. */
    ASSERT_OK(s3_resolve_target(NULL, "eu-west-1", "http://127.0.0.1:9000", "us-east-1", NULL, ep,
                                sizeof(ep), region, sizeof(region), &def));
    ASSERT_STR_EQ(ep, "http://127.0.0.1:9000");
    ASSERT_STR_EQ(region, "eu-west-1");
    ASSERT(!def);
    /* The bucket's learnt region beats everything for signing. */
    ASSERT_OK(s3_resolve_target(NULL, "eu-west-1", NULL, "us-east-1", "ap-south-1", ep, sizeof(ep),
                                region, sizeof(region), &def));
    ASSERT_STR_EQ(region, "ap-south-1");
    ASSERT_STR_EQ(ep, "https://s3.ap-south-1.amazonaws.com");
    /* The caller's endpoint beats the chain's. */
    ASSERT_OK(s3_resolve_target("http://localhost:1", NULL, "http://127.0.0.1:9000", "us-west-2",
                                NULL, ep, sizeof(ep), region, sizeof(region), &def));
    ASSERT_STR_EQ(ep, "http://localhost:1");
    ASSERT_STR_EQ(region, "us-west-2");
    /* The global endpoint counts as a default; China gets .com.cn. */
    ASSERT_OK(s3_resolve_target(NULL, "cn-north-1", "https://s3.amazonaws.com", NULL, NULL, ep,
                                sizeof(ep), region, sizeof(region), &def));
    ASSERT_STR_EQ(ep, "https://s3.cn-north-1.amazonaws.com.cn");
    char tiny[8];
    ASSERT_EQ(s3_resolve_target("http://long.example.com", NULL, NULL, NULL, NULL, tiny,
                                sizeof(tiny), region, sizeof(region), &def),
              UV_EINVAL);
}

PX_TEST(query_encoding)
{
    px_dbuf_t q;
    px_dbuf_init(&q, 4096);
    s3_query_add(&q, "list-type", "2", 1);
    s3_query_add(&q, "prefix", "tmp/a b+c", 9);
    s3_query_add(&q, "continuation-token", "1ue/x+y=", 8);
    s3_query_add(&q, "lifecycle", NULL, 0);
    ASSERT_STR_EQ(px_dbuf_cstr(&q), "list-type=2&prefix=tmp%2Fa%20b%2Bc&continuation-token="
                                    "1ue%2Fx%2By%3D&lifecycle");
    px_dbuf_free(&q);
}

PX_TEST(content_range_and_length)
{
    uint64_t a, b, t;
    ASSERT_OK(s3_parse_content_range("bytes 0-9/100", &a, &b, &t));
    ASSERT(a == 0 && b == 9 && t == 100);
    ASSERT_OK(s3_parse_content_range("bytes 99-99/100", &a, &b, &t));
    ASSERT_OK(
        s3_parse_content_range("Bytes 0-18446744073709551613/18446744073709551614", &a, &b, &t));
    const char *bad[] = {"bytes 0-9/*",
                         "bytes */100",
                         "bytes 9-0/100",
                         "bytes 0-100/100",
                         "bytes 0-9/100x",
                         "0-9/100",
                         "bytes -1-9/100",
                         "bytes 0-9",
                         "bytes 0-9/99999999999999999999999",
                         ""};
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
        if (s3_parse_content_range(bad[i], &a, &b, &t) != S3_E_PARSE)
            PX_FAIL("Content-Range \"%s\" accepted", bad[i]);
    }
    ASSERT_EQ(s3_parse_content_range(NULL, &a, &b, &t), S3_E_PARSE);
    ASSERT_OK(s3_parse_content_length("12345", &a));
    ASSERT_EQ(a, 12345);
    ASSERT_EQ(s3_parse_content_length("12a", &a), S3_E_PARSE);
    ASSERT_EQ(s3_parse_content_length("-1", &a), S3_E_PARSE);
    ASSERT_EQ(s3_parse_content_length("", &a), S3_E_PARSE);
}

PX_TEST(status_codes)
{
    char c[32];
    s3_status_code_name(404, c, sizeof(c));
    ASSERT_STR_EQ(c, "NotFound");
    s3_status_code_name(403, c, sizeof(c));
    ASSERT_STR_EQ(c, "Forbidden");
    s3_status_code_name(301, c, sizeof(c));
    ASSERT_STR_EQ(c, "PermanentRedirect");
    s3_status_code_name(418, c, sizeof(c));
    ASSERT_STR_EQ(c, "HTTP418");
}

PX_TEST(uuid4)
{
    uint8_t zero[16] = {0}, ones[16];
    memset(ones, 0xff, sizeof(ones));
    char u[37];
    s3_uuid4_format(zero, u);
    ASSERT_STR_EQ(u, "00000000-0000-4000-8000-000000000000");
    s3_uuid4_format(ones, u);
    ASSERT_STR_EQ(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    char a[37], b[37];
    ASSERT_OK(s3_uuid4(a));
    ASSERT_OK(s3_uuid4(b));
    ASSERT(strcmp(a, b) != 0);
    ASSERT_EQ(strlen(a), 36);
    ASSERT(a[14] == '4' && (a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b'));
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle rule matching
 */

typedef struct lc_case {
    const char *name;
    bool enabled;
    const char *prefixes[3]; /* NULL-terminated */
    const char *key;
    bool covers;
} lc_case_t;

PX_TEST(lifecycle_rule_table)
{
    static const lc_case_t cases[] = {
        {"disabled, no filter", false, {NULL}, "tmp/", false},
        {"enabled, no filter", true, {NULL}, "tmp/", true},
        {"enabled, no filter, bucket root", true, {NULL}, "", true},
        {"empty prefix", true, {"", NULL}, "tmp/", true},
        {"exact prefix", true, {"tmp/", NULL}, "tmp/", true},
        {"shorter prefix", true, {"tm", NULL}, "tmp/", true},
        {"prefix without slash", true, {"tmp", NULL}, "tmp/", true},
        {"longer prefix", true, {"tmp/x", NULL}, "tmp/", false},
        {"other prefix", true, {"logs/", NULL}, "tmp/", false},
        {"case matters", true, {"TMP/", NULL}, "tmp/", false},
        {"nested tempdir", true, {"a/", NULL}, "a/b/c/", true},
        {"bucket-root tempdir, prefixed rule", true, {"tmp/", NULL}, "", false},
        {"two prefixes, both match", true, {"a/", "a/b", NULL}, "a/b/", true},
        {"two prefixes, one fails", true, {"a/", "c/", NULL}, "a/b/", false},
        {"disabled but matching", false, {"tmp/", NULL}, "tmp/", false},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(cases); i++) {
        const lc_case_t *t = &cases[i];
        s3_lifecycle_rule_t r;
        memset(&r, 0, sizeof(r));
        r.enabled = t->enabled;
        while (r.nprefixes < 3 && t->prefixes[r.nprefixes]) {
            r.prefixes[r.nprefixes] = (char *)t->prefixes[r.nprefixes];
            r.nprefixes++;
        }
        bool got = s3_lifecycle_rule_covers(&r, t->key, strlen(t->key));
        if (got != t->covers)
            PX_FAIL("%s: covers=%d, expected %d", t->name, got, t->covers);
    }
}

PX_TEST(lifecycle_match_and_key)
{
    ASSERT_EQ(s3_lifecycle_match(NULL, "tmp/", 4), -1);
    s3_lifecycle_rule_t rules[3];
    memset(rules, 0, sizeof(rules));
    rules[0].enabled = false;
    rules[1].enabled = true;
    rules[1].prefixes[0] = (char *)"logs/";
    rules[1].nprefixes = 1;
    rules[2].enabled = true;
    rules[2].prefixes[0] = (char *)"tmp/";
    rules[2].nprefixes = 1;
    s3_lifecycle_t lc = {.rules = rules, .nrules = 3};
    ASSERT_EQ(s3_lifecycle_match(&lc, "tmp/", 4), 2);
    ASSERT_EQ(s3_lifecycle_match(&lc, "other/", 6), -1);
    lc.nrules = 0;
    ASSERT_EQ(s3_lifecycle_match(&lc, "tmp/", 4), -1);

    px_dbuf_t k;
    px_dbuf_init(&k, 4096);
    s3_lifecycle_tempdir_key("tmp", 3, &k);
    ASSERT_STR_EQ(px_dbuf_cstr(&k), "tmp/");
    px_dbuf_reset(&k);
    s3_lifecycle_tempdir_key("tmp///", 6, &k);
    ASSERT_STR_EQ(px_dbuf_cstr(&k), "tmp/");
    px_dbuf_reset(&k);
    s3_lifecycle_tempdir_key("", 0, &k);
    ASSERT_STR_EQ(px_dbuf_cstr(&k), "");
    px_dbuf_free(&k);
}

PX_TEST(lifecycle_messages)
{
    px_dbuf_t m;
    px_dbuf_init(&m, 8192);
    s3_lifecycle_message(S3_LIFECYCLE_NOT_COVERED, "rsproxy-test", "s3://rsproxy-test/tmp/", NULL,
                         NULL, &m);
    ASSERT_STR_EQ(px_dbuf_cstr(&m),
                  "The S3 bucket rsproxy-test does not have an object lifecycle configuration to "
                  "ensure cleanup of temporary files. Consider configuring `tempdir` to point to "
                  "a bucket with an object lifecycle policy that automatically deletes files "
                  "after an expiration period. For more information, see "
                  "https://docs.aws.amazon.com/AmazonS3/latest/dev/object-lifecycle-mgmt.html");
    px_dbuf_reset(&m);
    s3_lifecycle_message(S3_LIFECYCLE_COVERED, "b", "s3://b/tmp/", "expire-tmp", NULL, &m);
    ASSERT_STR_EQ(px_dbuf_cstr(&m), "The S3 bucket b has lifecycle rule 'expire-tmp' covering "
                                    "s3://b/tmp/");
    px_dbuf_reset(&m);
    s3_error_t e;
    memset(&e, 0, sizeof(e));
    strcpy(e.s3_code, "AccessDenied");
    strcpy(e.message, "Access Denied");
    s3_lifecycle_message(S3_LIFECYCLE_UNKNOWN, "b", "s3://b/", NULL, &e, &m);
    ASSERT_STR_EQ(px_dbuf_cstr(&m), "An error occurred while trying to read the S3 bucket "
                                    "lifecycle configuration: Access Denied (AccessDenied)");
    px_dbuf_free(&m);
}

/* ---------------------------------------------------------------------------------------------
 * Staging areas
 */

static bool is_uuid(const char *s)
{
    if (strlen(s) < 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

PX_TEST(stage_prefixes)
{
    s3_stage_t *st = NULL, *st2 = NULL;
    const char *why = NULL;
    ASSERT_OK(s3_stage_new("s3a://AKIAEXAMPLE:se%2Fcret@rsproxy-test/tmp/", &st, &why));
    ASSERT_STR_EQ(s3_stage_bucket(st), "rsproxy-test");
    const char *p = s3_stage_prefix(st);
    ASSERT(strncmp(p, "tmp/", 4) == 0 && is_uuid(p + 4) && strcmp(p + 40, "/") == 0);
    const char *url = s3_stage_url(st);
    ASSERT(strncmp(url, "s3://rsproxy-test/tmp/", 22) == 0);
    ASSERT_STR_EQ(url + 18, p);
    ASSERT(strstr(url, "AKIA") == NULL && strstr(url, "cret") == NULL);
    px_dbuf_t k;
    px_dbuf_init(&k, 4096);
    ASSERT_OK(s3_stage_key(st, "part-0000.csv", &k));
    ASSERT(strncmp(px_dbuf_cstr(&k), p, strlen(p)) == 0);
    ASSERT_STR_EQ(px_dbuf_cstr(&k) + strlen(p), "part-0000.csv");
    ASSERT_EQ(s3_stage_key(st, "", &k), UV_EINVAL);
    ASSERT_EQ(s3_stage_key(st, "/abs", &k), UV_EINVAL);
    ASSERT_EQ(s3_stage_key(st, "../escape", &k), UV_EINVAL);
    px_dbuf_free(&k);

    /* Two stages never share a prefix; slashes at the joint are normalised. */
    ASSERT_OK(s3_stage_new("s3://rsproxy-test/tmp", &st2, NULL));
    ASSERT(strcmp(s3_stage_prefix(st), s3_stage_prefix(st2)) != 0);
    ASSERT(strncmp(s3_stage_prefix(st2), "tmp/", 4) == 0 && is_uuid(s3_stage_prefix(st2) + 4));
    s3_stage_free(st2);
    ASSERT_OK(s3_stage_new("s3://rsproxy-test", &st2, NULL));
    ASSERT(is_uuid(s3_stage_prefix(st2)) && strlen(s3_stage_prefix(st2)) == 37);
    s3_stage_free(st2);
    s3_stage_free(st);

    ASSERT_EQ(s3_stage_new("https://rsproxy-test/tmp", &st, &why), S3_E_URL);
    ASSERT(why != NULL);
    ASSERT_EQ(s3_stage_new("", &st, &why), S3_E_URL);
    char big[1100];
    memcpy(big, "s3://abc/", 9);
    memset(big + 9, 'k', 1000);
    big[1009] = 0;
    ASSERT_EQ(s3_stage_new(big, &st, &why), S3_E_URL);
}
