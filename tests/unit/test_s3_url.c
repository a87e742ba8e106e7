/*
 * Unit tests for s3/s3_url: parsing (schemes, bucket rules, keys, embedded credentials with
 * percent-decoding), formatting, joining relative locations to the tempdir, role ARNs and
 * chains, and the [s3] tempdir validation hook run through a real cfg_load().
 */
#include "px_buf.h"
#include "px_err.h"
#include "s3_url.h"
#include "px_test.h"

#include <string.h>
#include <uv.h>

static void parse_ok(const char *url, s3_scheme_t scheme, const char *bucket, const char *key)
{
    s3_url_t u;
    const char *why = "unset";
    int rc = s3_url_parse(url, strlen(url), &u, &why);
    if (rc != 0)
        PX_FAIL("s3_url_parse(%s) failed: %s", url, why);
    ASSERT(why == NULL);
    ASSERT_EQ(u.scheme, scheme);
    ASSERT_STR_EQ(u.bucket, bucket);
    ASSERT_STR_EQ(u.key, key);
    ASSERT_EQ(u.key_len, strlen(key));
    ASSERT(!u.has_credentials);
}

static void parse_bad(const char *url, const char *why_part)
{
    s3_url_t u;
    const char *why = NULL;
    int rc = s3_url_parse(url, strlen(url), &u, &why);
    if (rc != S3_E_URL)
        PX_FAIL("s3_url_parse(%s) returned %d, expected S3_E_URL", url, rc);
    ASSERT(why != NULL);
    if (!strstr(why, why_part))
        PX_FAIL("s3_url_parse(%s): reason \"%s\" lacks \"%s\"", url, why, why_part);
    /* Nothing of a rejected URL survives in the struct. */
    ASSERT_EQ(u.bucket[0], 0);
    ASSERT_EQ(u.secret_access_key[0], 0);
}

PX_TEST(parse_schemes_and_keys)
{
    parse_ok("s3://rsproxy-test/tmp/x", S3_SCHEME_S3, "rsproxy-test", "tmp/x");
    parse_ok("s3a://rsproxy-test/tmp/", S3_SCHEME_S3A, "rsproxy-test", "tmp/");
    parse_ok("s3n://rsproxy-test", S3_SCHEME_S3N, "rsproxy-test", "");
    parse_ok("S3A://rsproxy-test/", S3_SCHEME_S3A, "rsproxy-test", "");
    parse_ok("s3://a.b-c.123/k%20ey//x?y#z", S3_SCHEME_S3, "a.b-c.123", "k%20ey//x?y#z");
    parse_ok("s3://abc/users/bob@example.com/x", S3_SCHEME_S3, "abc", "users/bob@example.com/x");
    parse_ok("s3://1.2.3/x", S3_SCHEME_S3, "1.2.3", "x"); /* three parts: not an IP address */
}

PX_TEST(parse_rejects)
{
    parse_bad("", "not an s3://");
    parse_bad("https://rsproxy-test/x", "not an s3://");
    parse_bad("s3:/rsproxy-test/x", "not an s3://");
    parse_bad("rsproxy-test/x", "not an s3://");
    parse_bad("s3://ab/x", "3 to 63");
    parse_bad("s3:///x", "3 to 63");
    parse_bad("s3://a234567890123456789012345678901234567890123456789012345678901234/x", "3 to 63");
    parse_bad("s3://Upper/x", "lower-case");
    parse_bad("s3://under_score/x", "lower-case");
    parse_bad("s3://-abc/x", "start and end");
    parse_bad("s3://abc./x", "start and end");
    parse_bad("s3://a..b/x", "\"..\"");
    parse_bad("s3://192.168.5.4/x", "IP address");
    parse_bad("s3://xn--abc/x", "prefix");
    parse_bad("s3://sthree-abc/x", "prefix");
    parse_bad("s3://abc-s3alias/x", "suffix");
    parse_bad("s3://abc--ol-s3/x", "suffix");
    parse_bad("s3://rsproxy-test:443/x", "lower-case");
    parse_bad("s3://rsproxy-test/a\nb", "control character");
    char big[1200];
    memcpy(big, "s3://abc/", 9);
    memset(big + 9, 'k', 1025);
    big[9 + 1025] = 0;
    parse_bad(big, "1024");
    big[9 + 1024] = 0;
    s3_url_t u;
    ASSERT_OK(s3_url_parse(big, strlen(big), &u, NULL));
    ASSERT_EQ(u.key_len, 1024);
}

PX_TEST(parse_embedded_credentials)
{
    s3_url_t u;
    const char *url =
        "s3a://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG%2BbPx%40y@rsproxy-test/tmp/";
    ASSERT_OK(s3_url_parse(url, strlen(url), &u, NULL));
    ASSERT(u.has_credentials);
    ASSERT_STR_EQ(u.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    ASSERT_STR_EQ(u.secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPx@y");
    ASSERT_STR_EQ(u.bucket, "rsproxy-test");
    ASSERT_STR_EQ(u.key, "tmp/");
    /* Formatting never carries them. */
    px_dbuf_t b;
    px_dbuf_init(&b, 0);
    s3_url_format(&u, &b);
    ASSERT_STR_EQ(px_dbuf_cstr(&b), "s3://rsproxy-test/tmp/");
    px_dbuf_free(&b);
    s3_url_wipe(&u);
    ASSERT_EQ(u.secret_access_key[0], 0);

    /* An unencoded '@' in the secret: the last '@' of the authority ends the credentials. */
    const char *at = "s3://AK:se@cret@rsproxy-test/x";
    ASSERT_OK(s3_url_parse(at, strlen(at), &u, NULL));
    ASSERT_STR_EQ(u.secret_access_key, "se@cret");
    ASSERT_STR_EQ(u.bucket, "rsproxy-test");

    parse_bad("s3://AKIDONLY@rsproxy-test/x", "ACCESS_KEY_ID:SECRET");
    parse_bad("s3://:secret@rsproxy-test/x", "empty");
    parse_bad("s3://AK:@rsproxy-test/x", "empty");
    parse_bad("s3://AK:se%2@rsproxy-test/x", "percent");
    parse_bad("s3://AK:se%zzcret@rsproxy-test/x", "percent");
    parse_bad("s3://AK:se%0acret@rsproxy-test/x", "percent");
    parse_bad("s3://AK:secret@Bad_Bucket/x", "lower-case");

    /* The reason never repeats the input (where a secret could be). */
    const char *why = NULL;
    const char *secret_url = "s3://AK:TOPSECRET@b/x";
    ASSERT(s3_url_parse(secret_url, strlen(secret_url), &u, &why) == S3_E_URL);
    ASSERT(!strstr(why, "TOPSECRET"));
}

PX_TEST(scheme_predicates)
{
    ASSERT(s3_url_has_scheme("s3://b", 6));
    ASSERT(s3_url_has_scheme("emr://j-1/x", 11));
    ASSERT(s3_url_has_scheme("dynamodb://T", 12));
    ASSERT(s3_url_has_scheme("a+b.c-d://", 10));
    ASSERT(!s3_url_has_scheme("data/x.csv", 10));
    ASSERT(!s3_url_has_scheme("./data:2024/x", 13));
    ASSERT(!s3_url_has_scheme("/abs:x", 6));
    ASSERT(!s3_url_has_scheme("1abc://x", 8));
    ASSERT(!s3_url_has_scheme("://x", 4));
    ASSERT(!s3_url_has_scheme("data", 4));
    ASSERT(!s3_url_has_scheme("a_b:x", 5));
    ASSERT(s3_url_has_scheme("C:\\x", 4)); /* RFC 3986: a scheme, not a relative path */
    ASSERT(s3_url_has_scheme("data:2024/x", 11));
    ASSERT(s3_url_has_scheme("s3:/", 4));
    ASSERT(!s3_url_has_scheme("", 0));
    ASSERT(s3_url_is_s3("s3://b", 6));
    ASSERT(s3_url_is_s3("S3N://b", 7));
    ASSERT(s3_url_is_s3("s3a://", 6));
    ASSERT(!s3_url_is_s3("s3b://b", 7));
    ASSERT(!s3_url_is_s3("s3:/", 4));
    ASSERT(!s3_url_is_s3("s3a:/", 5));
}

static void join_is(const char *tempdir, const char *rel, const char *want)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 0);
    int rc = s3_url_join(tempdir, rel, strlen(rel), &b);
    if (rc != 0)
        PX_FAIL("s3_url_join(%s, %s) = %d", tempdir, rel, rc);
    ASSERT_STR_EQ(px_dbuf_cstr(&b), want);
    px_dbuf_free(&b);
}

PX_TEST(join)
{
    join_is("s3://b-1/tmp", "x/y", "s3://b-1/tmp/x/y");
    join_is("s3://b-1/tmp/", "/x/y", "s3://b-1/tmp/x/y");
    join_is("s3://b-1/tmp///", "///x", "s3://b-1/tmp/x");
    join_is("s3://b-1", "x", "s3://b-1/x");
    join_is("s3://b-1/", "x", "s3://b-1/x");
    join_is("s3://b-1/tmp", "", "s3://b-1/tmp/");
    join_is("s3a://AK:SECRET@b-1/tmp", "x", "s3://b-1/tmp/x");
    join_is("s3n://b-1/a/b/", "c", "s3://b-1/a/b/c");

    px_dbuf_t b;
    px_dbuf_init(&b, 0);
    ASSERT_EQ(s3_url_join("https://b-1/tmp", "x", 1, &b), S3_E_URL);
    ASSERT_EQ(s3_url_join(NULL, "x", 1, &b), S3_E_URL);
    char rel[1100];
    memset(rel, 'r', sizeof(rel));
    ASSERT_EQ(s3_url_join("s3://b-1/tmp", rel, 1021, &b), S3_E_URL); /* 3 + 1 + 1021 > 1024 */
    ASSERT_OK(s3_url_join("s3://b-1/tmp", rel, 1020, &b));
    ASSERT_EQ(b.len, strlen("s3://b-1/tmp/") + 1020);
    px_dbuf_free(&b);

    px_dbuf_init(&b, 8); /* too small: the buffer's failure is reported */
    ASSERT_EQ(s3_url_join("s3://b-1/tmp", "x", 1, &b), UV_ENOMEM);
    px_dbuf_free(&b);
}

PX_TEST(role_arns)
{
    static const char *const good[] = {
        "arn:aws:iam::123456789012:role/RedshiftCopy",
        "arn:aws-cn:iam::123456789012:role/a",
        "arn:aws-us-gov:iam::123456789012:role/service-role/x+y=z,.@_-"
        "A234567890123456789012345678901234567890123456789012",
        "arn:aws-iso-b:iam::123456789012:role/path/to/Name",
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(good); i++) {
        const char *s = good[i];
        const char *why = "unset";
        /* The comma is IAM's, but not ours: drop it from the one name that has it. */
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", s);
        char *comma = strchr(buf, ',');
        if (comma)
            memmove(comma, comma + 1, strlen(comma));
        if (!s3_iam_role_arn_valid(buf, strlen(buf), &why))
            PX_FAIL("%s rejected: %s", buf, why);
    }
    static const char *const bad[] = {
        "",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::12345678901:role/x",
        "arn:aws:iam::1234567890123:role/x",
        "arn:aws:iam:us-east-1:123456789012:role/x",
        "arn:aws:s3:::bucket",
        "arn:aws:iam::123456789012:user/x",
        "arn:azure:iam::123456789012:role/x",
        "arn:aws-:iam::123456789012:role/x",
        "arn:aws:iam::123456789012:role/a,b",
        "arn:aws:iam::123456789012:role/a b",
        "arn:aws:iam::123456789012:role/a'b",
        "arn:aws:iam::123456789012:role/pa'th/b",
        "arn:aws:iam::123456789012:role/pa:th/b",
        "arn:aws:iam::123456789012:role//b",
        "arn:aws:iam::123456789012:role/a//b",
        "arn:aws:iam::123456789012:role/a\\b",
        "arn:aws:iam::123456789012:role/"
        "A2345678901234567890123456789012345678901234567890123456789012345",
        " arn:aws:iam::123456789012:role/x",
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
        const char *why = NULL;
        if (s3_iam_role_arn_valid(bad[i], strlen(bad[i]), &why))
            PX_FAIL("%s accepted", bad[i]);
        ASSERT(why != NULL);
    }
}

PX_TEST(role_chains)
{
    const char *why;
    const char *one = "arn:aws:iam::123456789012:role/A";
    ASSERT_EQ(s3_iam_role_chain_check(one, strlen(one), &why), 1);
    const char *two = "arn:aws:iam::123456789012:role/A,arn:aws:iam::210987654321:role/B";
    ASSERT_EQ(s3_iam_role_chain_check(two, strlen(two), &why), 2);
    char chain[1024] = "";
    for (int i = 0; i < 10; i++)
        strcat(chain, i ? ",arn:aws:iam::123456789012:role/R" : "arn:aws:iam::123456789012:role/R");
    ASSERT_EQ(s3_iam_role_chain_check(chain, strlen(chain), &why), 10);
    strcat(chain, ",arn:aws:iam::123456789012:role/R");
    ASSERT_EQ(s3_iam_role_chain_check(chain, strlen(chain), &why), -1);
    ASSERT(strstr(why, "10"));
    const char *empty = "arn:aws:iam::123456789012:role/A,";
    ASSERT_EQ(s3_iam_role_chain_check(empty, strlen(empty), &why), -1);
    const char *space = "arn:aws:iam::123456789012:role/A, arn:aws:iam::123456789012:role/B";
    ASSERT_EQ(s3_iam_role_chain_check(space, strlen(space), &why), -1);
    ASSERT_EQ(s3_iam_role_chain_check("", 0, &why), -1);
}

/* The hook through cfg_load, with an empty environment so RSPROXY_* variables cannot interfere. */
static int load_with_tempdir(const char *tempdir, char *err, size_t errlen)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "[upstream]\nauth = password\nhost = localhost\npassword = pw\n"
             "[s3]\ntempdir = %s\n",
             tempdir);
    char *const envp[] = {NULL};
    cfg_load_opts_t o = {
        .path = "test.ini",
        .text = text,
        .envp = envp,
        .validate = s3_cfg_validate,
    };
    cfg_t *c = NULL;
    err[0] = 0;
    int rc = cfg_load(&o, &c, err, errlen);
    if (c)
        cfg_unref(c);
    return rc;
}

PX_TEST(cfg_validate_tempdir)
{
    char err[2048];
    int rc = load_with_tempdir("s3://rsproxy-test/tmp/", err, sizeof(err));
    if (rc != 0)
        PX_FAIL("valid tempdir refused: %s", err);
    ASSERT_OK(load_with_tempdir("s3a://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG@rsproxy-test/",
                                err, sizeof(err)));
    ASSERT_OK(load_with_tempdir("", err, sizeof(err)));

    ASSERT(load_with_tempdir("https://rsproxy-test/tmp/", err, sizeof(err)) < 0);
    ASSERT(strstr(err, "s3.tempdir") || strstr(err, "tempdir"));
    ASSERT(strstr(err, "not a valid S3 URL"));

    ASSERT(load_with_tempdir("s3://Bad_Bucket/tmp/", err, sizeof(err)) < 0);
    ASSERT(strstr(err, "lower-case"));

    /* A bad URL with embedded keys: the secret is not in the message. */
    ASSERT(load_with_tempdir("s3://AKIAEXAMPLE:TOPSECRETVALUE@Bad_Bucket/", err, sizeof(err)) < 0);
    ASSERT(!strstr(err, "TOPSECRETVALUE"));
    ASSERT(strstr(err, "tempdir"));

    char longdir[1200] = "s3://rsproxy-test/";
    memset(longdir + strlen(longdir), 'p', 990);
    longdir[18 + 990] = 0;
    ASSERT(load_with_tempdir(longdir, err, sizeof(err)) < 0);
    ASSERT(strstr(err, "too long"));
}
