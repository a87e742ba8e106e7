/*
 * Unit tests for auth_sigv4: the official AWS SigV4 suite (tests/data/sigv4/suite, see its
 * README), the vectors of reference/redshift-aws.md §6 (S3 documentation examples, Redshift and
 * Redshift Serverless calls), URI encoding, X-Amz-Date, input validation, token redaction and
 * out-of-memory paths. The botocore cross-check lives in tests/integration/sigv4/.
 */
#include "auth_sigv4.h"
#include "px_alloc.h"
#include "px_err.h"
#include "px_test.h"

#include <dirent.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

/* The suite's credentials and time (2015-08-30T12:36:00Z). */
#define SUITE_AKID   "AKIDEXAMPLE"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_TIME   INT64_C(1440938160)
/* The S3 documentation's credentials and time (2013-05-24T00:00:00Z). */
#define DOC_AKID     "AKIAIOSFODNN7EXAMPLE"
#define DOC_SECRET   "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define DOC_TIME     INT64_C(1369353600)
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        PX_FAIL("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = px_malloc((size_t)n + 1);
    ASSERT(buf != NULL);
    ASSERT_EQ(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = (size_t)n;
    return buf;
}

static const char *find_add(const auth_sigv4_out_t *o, const char *name)
{
    for (size_t i = 0; i < o->nadd; i++)
        if (strcmp(o->add[i].name, name) == 0)
            return o->add[i].value;
    return NULL;
}

/* Signs with the S3 documentation's credentials; `want` is the expected Authorization. */
static void check_doc_vector(auth_sigv4_req_t *req, const char *want)
{
    auth_aws_keys_t keys = {DOC_AKID, DOC_SECRET, NULL};
    auth_sigv4_out_t out;
    req->time_unix = DOC_TIME;
    req->region = "us-east-1";
    ASSERT_OK(auth_sigv4_sign(req, &keys, &out));
    ASSERT_STR_EQ(find_add(&out, "Authorization"), want);
    ASSERT_STR_EQ(find_add(&out, "X-Amz-Date"), "20130524T000000Z");
    auth_sigv4_out_free(&out);
}

/*
 * One test-suite case: a signed request as published (.sreq). The request line gives method,
 * path and query; X-Amz-Date, X-Amz-Security-Token and Authorization are what the signer must
 * produce, every other header is input; a blank line starts the body.
 */
static void run_suite_case(const char *dir, const char *name)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/%s.sreq", dir, name);
    char *text = read_file(path, NULL);

    auth_http_header_t hdrs[16];
    size_t nh = 0;
    const char *want_auth = NULL, *want_date = NULL, *token = NULL;
    char *body = NULL;

    char *line = text, *next;
    char *method = NULL, *target = NULL;
    for (int ln = 0; line; ln++, line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (ln == 0) {
            /* "METHOD target HTTP/1.1"; the target may contain spaces (get-space). */
            char *sp = strchr(line, ' '), *ver = strstr(line, " HTTP/1.1");
            ASSERT(sp && ver && ver > sp);
            *sp = '\0';
            *ver = '\0';
            method = line;
            target = sp + 1;
            continue;
        }
        if (*line == '\0') {
            body = next;
            break;
        }
        char *colon = strchr(line, ':');
        ASSERT(colon != NULL);
        *colon = '\0';
        char *value = colon + 1;
        if (strcasecmp(line, "Authorization") == 0) {
            while (*value == ' ')
                value++;
            want_auth = value;
        } else if (strcasecmp(line, "X-Amz-Date") == 0) {
            want_date = value;
        } else if (strcasecmp(line, "X-Amz-Security-Token") == 0) {
            token = value;
        } else {
            ASSERT(nh < PX_ARRAY_SIZE(hdrs));
            hdrs[nh++] = (auth_http_header_t){line, value};
        }
    }
    ASSERT(method && want_auth && want_date);
    ASSERT_STR_EQ(want_date, "20150830T123600Z");

    char *query = strchr(target, '?');
    if (query)
        *query++ = '\0';
    auth_sigv4_req_t req = {
        .method = method,
        .path = target,
        .query = query,
        .headers = hdrs,
        .nheaders = nh,
        .body = (const uint8_t *)body,
        .bodylen = body ? strlen(body) : 0,
        .region = "us-east-1",
        .service = "service",
        .time_unix = SUITE_TIME,
        /* post-sts-header-after adds the token after signing; the others sign it. */
        .sign_session_token = strstr(want_auth, "x-amz-security-token") != NULL,
    };
    auth_aws_keys_t keys = {SUITE_AKID, SUITE_SECRET, token};
    auth_sigv4_out_t out;
    int rc = auth_sigv4_sign(&req, &keys, &out);
    if (rc != 0)
        PX_FAIL("%s: sign returned %d (%s)", name, rc, px_strerror(rc));
    const char *got = find_add(&out, "Authorization");
    if (!got || strcmp(got, want_auth) != 0)
        PX_FAIL("%s:\n  got:      %s\n  expected: %s\n  canonical request:\n%s", name,
                got ? got : "(none)", want_auth, px_dbuf_cstr(&out.canonical_request));
    ASSERT_STR_EQ(find_add(&out, "X-Amz-Date"), want_date);
    if (token)
        ASSERT_STR_EQ(find_add(&out, "X-Amz-Security-Token"), token);
    ASSERT(find_add(&out, "X-Amz-Content-Sha256") == NULL);

    /* Where the suite publishes the intermediate steps, they must match too. */
    snprintf(path, sizeof(path), "%s/%s.creq", dir, name);
    if (access(path, R_OK) == 0) {
        char *creq = read_file(path, NULL);
        ASSERT_STR_EQ(px_dbuf_cstr(&out.canonical_request), creq);
        px_free(creq);
    }
    snprintf(path, sizeof(path), "%s/%s.sts", dir, name);
    if (access(path, R_OK) == 0) {
        char *sts = read_file(path, NULL);
        ASSERT_STR_EQ(px_dbuf_cstr(&out.string_to_sign), sts);
        px_free(sts);
    }
    auth_sigv4_out_free(&out);
    px_free(text);
}

PX_TEST(suite_vectors)
{
    const char *dir = px_test_data("sigv4/suite");
    char dirbuf[1024];
    snprintf(dirbuf, sizeof(dirbuf), "%s", dir);
    DIR *d = opendir(dirbuf);
    ASSERT(d != NULL);
    struct dirent *e;
    int cases = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".sreq") != 0)
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(n - 5), e->d_name);
        run_suite_case(dirbuf, name);
        cases++;
    }
    closedir(d);
    /* 27 cases from the AWS suite plus aws-c-auth's session-token case; a lost file fails. */
    ASSERT_EQ(cases, 28);
}

/* §6 vector 1: get-vanilla, with the string to sign spelled out. */
PX_TEST(vector_get_vanilla)
{
    auth_http_header_t h[] = {{"Host", "example.amazonaws.com"}};
    auth_sigv4_req_t req = {.method = "GET",
                            .path = "/",
                            .headers = h,
                            .nheaders = 1,
                            .region = "us-east-1",
                            .service = "service",
                            .time_unix = SUITE_TIME};
    auth_aws_keys_t keys = {SUITE_AKID, SUITE_SECRET, NULL};
    auth_sigv4_out_t out;
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT_STR_EQ(px_dbuf_cstr(&out.canonical_request),
                  "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                  "host;x-amz-date\n" EMPTY_SHA256);
    ASSERT_STR_EQ(px_dbuf_cstr(&out.string_to_sign),
                  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                  "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
    ASSERT_EQ(out.nadd, 2);
    ASSERT_STR_EQ(out.add[0].name, "X-Amz-Date");
    ASSERT_STR_EQ(out.add[0].value, "20150830T123600Z");
    ASSERT_STR_EQ(out.add[1].name, "Authorization");
    ASSERT_STR_EQ(out.add[1].value,
                  "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                  "aws4_request, SignedHeaders=host;x-amz-date, "
                  "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    auth_sigv4_out_free(&out);

    /* An empty path is "/". */
    req.path = "";
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT(strstr(out.add[1].value, "Signature=5fa00fa3") != NULL);
    auth_sigv4_out_free(&out);
    req.path = NULL;
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT(strstr(out.add[1].value, "Signature=5fa00fa3") != NULL);
    auth_sigv4_out_free(&out);
}

/* §6 vectors 2-6 (the suite covers them too; these pin the reference document's values). */
PX_TEST(vector_reference_suite_cases)
{
    auth_http_header_t h[] = {{"Host", "example.amazonaws.com"}};
    auth_aws_keys_t keys = {SUITE_AKID, SUITE_SECRET, NULL};
    auth_sigv4_out_t out;
    auth_sigv4_req_t req = {.method = "GET",
                            .path = "/",
                            .headers = h,
                            .nheaders = 1,
                            .region = "us-east-1",
                            .service = "service",
                            .time_unix = SUITE_TIME};

    req.query = "Param2=value2&Param1=value1";
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT(strstr(px_dbuf_cstr(&out.canonical_request), "\nParam1=value1&Param2=value2\n"));
    ASSERT(strstr(find_add(&out, "Authorization"),
                  "SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b79"
                  "9221646efd99d3219ec94cdf2500"));
    auth_sigv4_out_free(&out);

    /* 3: post-x-www-form-urlencoded */
    auth_http_header_t hp[] = {{"Content-Type", "application/x-www-form-urlencoded"},
                               {"Host", "example.amazonaws.com"}};
    auth_sigv4_req_t post = req;
    post.method = "POST";
    post.query = NULL;
    post.headers = hp;
    post.nheaders = 2;
    post.body = (const uint8_t *)"Param1=value1";
    post.bodylen = 13;
    ASSERT_OK(auth_sigv4_sign(&post, &keys, &out));
    ASSERT(strstr(px_dbuf_cstr(&out.canonical_request),
                  "\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"));
    ASSERT(strstr(find_add(&out, "Authorization"),
                  "SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b1813"
                  "5d722051e5ac45fc38421b1da7b9d196a0fe09473a"));
    auth_sigv4_out_free(&out);

    /* 4: get-vanilla-with-session-token */
    auth_aws_keys_t tk = {SUITE_AKID, SUITE_SECRET,
                          "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"};
    req.query = NULL;
    req.sign_session_token = true;
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT(find_add(&out, "X-Amz-Security-Token") == NULL); /* keys without a token */
    auth_sigv4_out_free(&out);
    ASSERT_OK(auth_sigv4_sign(&req, &tk, &out));
    ASSERT(strstr(find_add(&out, "Authorization"),
                  "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=07ec1639c89043a"
                  "a0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"));
    ASSERT_EQ(out.nadd, 3);
    ASSERT_STR_EQ(out.add[1].name, "X-Amz-Security-Token");
    ASSERT_STR_EQ(out.add[1].value, tk.session_token);
    auth_sigv4_out_free(&out);
    /* An empty token means none. */
    tk.session_token = "";
    ASSERT_OK(auth_sigv4_sign(&req, &tk, &out));
    ASSERT_EQ(out.nadd, 2);
    ASSERT(strstr(find_add(&out, "Authorization"), "Signature=5fa00fa3"));
    auth_sigv4_out_free(&out);
    req.sign_session_token = false;

    /* 5: get-utf8, 6: get-space */
    req.path = "/\xe1\x88\xb4";
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT(strncmp(px_dbuf_cstr(&out.canonical_request), "GET\n/%E1%88%B4\n\n", 16) == 0);
    ASSERT(strstr(find_add(&out, "Authorization"),
                  "Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"));
    auth_sigv4_out_free(&out);
    req.path = "/example space/";
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT(strncmp(px_dbuf_cstr(&out.canonical_request), "GET\n/example%20space/\n\n", 23) == 0);
    ASSERT(strstr(find_add(&out, "Authorization"),
                  "Signature=652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"));
    auth_sigv4_out_free(&out);
}

/* §6 vector 7: S3 GET Object. */
PX_TEST(vector_s3_get_object)
{
    auth_http_header_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"}, {"Range", "bytes=0-9"}};
    auth_sigv4_req_t req = {.method = "GET",
                            .path = "/test.txt",
                            .headers = h,
                            .nheaders = 2,
                            .service = "s3",
                            .s3 = true};
    check_doc_vector(&req, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                           "s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;"
                           "x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba4"
                           "8dd91039c6036bdb41");

    auth_aws_keys_t keys = {DOC_AKID, DOC_SECRET, NULL};
    auth_sigv4_out_t out;
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT_EQ(out.nadd, 3);
    ASSERT_STR_EQ(out.add[1].name, "X-Amz-Content-Sha256");
    ASSERT_STR_EQ(out.add[1].value, EMPTY_SHA256);
    ASSERT_STR_EQ(px_dbuf_cstr(&out.canonical_request),
                  "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
                  "x-amz-content-sha256:" EMPTY_SHA256 "\nx-amz-date:20130524T000000Z\n\n"
                  "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256);
    auth_sigv4_out_free(&out);
}

/* §6 vector 8: S3 PUT Object with a Date header (signed as given) and a storage class. */
PX_TEST(vector_s3_put_object)
{
    auth_http_header_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
                              {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                              {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
    auth_sigv4_req_t req = {.method = "PUT",
                            .path = "/test%24file.text",
                            .headers = h,
                            .nheaders = 3,
                            .body = (const uint8_t *)"Welcome to Amazon S3.",
                            .bodylen = 21,
                            .service = "s3",
                            .s3 = true};
    check_doc_vector(&req, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                           "s3/aws4_request, SignedHeaders=date;host;x-amz-content-sha256;"
                           "x-amz-date;x-amz-storage-class, Signature=98ad721746da40c64f1a55b78f"
                           "14c238d841ea1380cd77a1b5971af0ece108bd");
    auth_aws_keys_t keys = {DOC_AKID, DOC_SECRET, NULL};
    auth_sigv4_out_t out;
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT_STR_EQ(find_add(&out, "X-Amz-Content-Sha256"),
                  "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    auth_sigv4_out_free(&out);
}

/* §6 vectors 9 and 10: S3 sub-resource and list queries. */
PX_TEST(vector_s3_queries)
{
    auth_http_header_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"}};
    auth_sigv4_req_t req = {.method = "GET",
                            .path = "/",
                            .query = "lifecycle",
                            .headers = h,
                            .nheaders = 1,
                            .service = "s3",
                            .s3 = true};
    check_doc_vector(&req, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                           "s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                           "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136"
                           "783543");
    auth_aws_keys_t keys = {DOC_AKID, DOC_SECRET, NULL};
    auth_sigv4_out_t out;
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT(strncmp(px_dbuf_cstr(&out.canonical_request), "GET\n/\nlifecycle=\n", 17) == 0);
    auth_sigv4_out_free(&out);

    req.query = "max-keys=2&prefix=J";
    check_doc_vector(&req, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                           "s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                           "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef6"
                           "9dc6f7");
}

/* §6 vectors 11 and 12: UNSIGNED-PAYLOAD, and a key encoded once and not encoded again. */
PX_TEST(vector_s3_derived)
{
    auth_http_header_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"}, {"Range", "bytes=0-9"}};
    auth_sigv4_req_t req = {.method = "GET",
                            .path = "/test.txt",
                            .headers = h,
                            .nheaders = 2,
                            .payload_hash = "UNSIGNED-PAYLOAD",
                            .service = "s3",
                            .s3 = true};
    check_doc_vector(&req, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                           "s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;"
                           "x-amz-date, Signature=edacce68e5445863e1f916719fac26d3be9c1581fccd78"
                           "78ade0879597fc0dc1");
    auth_aws_keys_t keys = {DOC_AKID, DOC_SECRET, NULL};
    auth_sigv4_out_t out;
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT_STR_EQ(find_add(&out, "X-Amz-Content-Sha256"), "UNSIGNED-PAYLOAD");
    auth_sigv4_out_free(&out);

    /* The key "stage/my folder/a+b=c.csv", encoded once by the caller with auth_uri_encode. */
    px_dbuf_t path;
    px_dbuf_init(&path, 0);
    px_dbuf_put_u8(&path, '/');
    auth_uri_encode(&path, "stage/my folder/a+b=c.csv", 25, true);
    ASSERT_STR_EQ(px_dbuf_cstr(&path), "/stage/my%20folder/a%2Bb%3Dc.csv");
    auth_http_header_t h2[] = {{"Host", "examplebucket.s3.amazonaws.com"}};
    auth_sigv4_req_t put = {.method = "PUT",
                            .path = px_dbuf_cstr(&path),
                            .headers = h2,
                            .nheaders = 1,
                            .body = (const uint8_t *)"hello",
                            .bodylen = 5,
                            .service = "s3",
                            .s3 = true};
    check_doc_vector(&put, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                           "s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                           "Signature=5f9650c0b5383af7b3d19c5ff9856be0d6453abfb2e57af734ad36fb19"
                           "b764c4");
    ASSERT_OK(auth_sigv4_sign(&put, &keys, &out));
    ASSERT(strncmp(px_dbuf_cstr(&out.canonical_request),
                   "PUT\n/stage/my%20folder/a%2Bb%3Dc.csv\n\n", 38) == 0);
    auth_sigv4_out_free(&out);
    px_dbuf_free(&path);
}

/* §6 vectors 13 and 14: the calls the IAM code makes. */
PX_TEST(vector_redshift_apis)
{
    static const char body[] = "Action=GetClusterCredentials&ClusterIdentifier=examplecluster&"
                               "DbGroups.DbGroup.1=analysts&DbName=dev&DbUser=alice&"
                               "DurationSeconds=900&Version=2012-12-01";
    auth_http_header_t h[] = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                              {"Host", "redshift.us-east-1.amazonaws.com"}};
    auth_sigv4_req_t req = {.method = "POST",
                            .path = "/",
                            .headers = h,
                            .nheaders = 2,
                            .body = (const uint8_t *)body,
                            .bodylen = sizeof(body) - 1,
                            .service = "redshift"};
    check_doc_vector(&req, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                           "redshift/aws4_request, SignedHeaders=content-type;host;x-amz-date, "
                           "Signature=9aef0fb94b0adaada5ebcb31de44502e1e595301f950519bd48b1026e1"
                           "8758ef");

    static const char json[] = "{\"workgroupName\":\"wg1\",\"dbName\":\"dev\","
                               "\"durationSeconds\":900}";
    auth_http_header_t hs[] = {{"Content-Type", "application/x-amz-json-1.1"},
                               {"X-Amz-Target", "RedshiftServerless.GetCredentials"},
                               {"Host", "redshift-serverless.us-east-1.amazonaws.com"}};
    auth_sigv4_req_t sl = {.method = "POST",
                           .path = "/",
                           .headers = hs,
                           .nheaders = 3,
                           .body = (const uint8_t *)json,
                           .bodylen = sizeof(json) - 1,
                           .service = "redshift-serverless"};
    check_doc_vector(&sl, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                          "redshift-serverless/aws4_request, SignedHeaders=content-type;host;"
                          "x-amz-date;x-amz-target, Signature=70e8d993127db3cebec2e52d3e41bed224"
                          "2f1cc42b7c060c33345eb353052213");
}

PX_TEST(uri_encode)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 0);
    auth_uri_encode(&b, "AZaz09-_.~", 10, false);
    ASSERT_STR_EQ(px_dbuf_cstr(&b), "AZaz09-_.~");
    px_dbuf_reset(&b);
    auth_uri_encode(&b, "a b+c/d=e&f%g*h", 15, false);
    ASSERT_STR_EQ(px_dbuf_cstr(&b), "a%20b%2Bc%2Fd%3De%26f%25g%2Ah");
    px_dbuf_reset(&b);
    auth_uri_encode(&b, "/a b/c", 6, true);
    ASSERT_STR_EQ(px_dbuf_cstr(&b), "/a%20b/c");
    px_dbuf_reset(&b);
    /* Bytes above 0x7f and NUL are encoded byte by byte, upper-case hex. */
    auth_uri_encode(&b, "\xe1\x88\xb4\x00\xff", 5, true);
    ASSERT_STR_EQ(px_dbuf_cstr(&b), "%E1%88%B4%00%FF");
    px_dbuf_reset(&b);
    auth_uri_encode(&b, "", 0, true);
    ASSERT_EQ(b.len, 0);
    /* Appends rather than replaces. */
    px_dbuf_put_cstr(&b, "x=");
    auth_uri_encode(&b, "!'()", 4, false);
    ASSERT_STR_EQ(px_dbuf_cstr(&b), "x=%21%27%28%29");
    px_dbuf_free(&b);
}

PX_TEST(amz_date)
{
    char d[17];
    auth_amz_date(0, d);
    ASSERT_STR_EQ(d, "19700101T000000Z");
    auth_amz_date(SUITE_TIME, d);
    ASSERT_STR_EQ(d, "20150830T123600Z");
    auth_amz_date(951782400, d); /* 2000-02-29, a leap day in a century leap year */
    ASSERT_STR_EQ(d, "20000229T000000Z");
    auth_amz_date(951868799, d);
    ASSERT_STR_EQ(d, "20000229T235959Z");
    auth_amz_date(4107542400, d); /* 2100-03-01: 2100 is not a leap year */
    ASSERT_STR_EQ(d, "21000301T000000Z");
    auth_amz_date(1456704000, d);
    ASSERT_STR_EQ(d, "20160229T000000Z");
    auth_amz_date(INT64_C(253402300799), d);
    ASSERT_STR_EQ(d, "99991231T235959Z");
    /* Out of range clamps (sign refuses such times before using them). */
    auth_amz_date(-1, d);
    ASSERT_STR_EQ(d, "19700101T000000Z");
    auth_amz_date(INT64_MAX, d);
    ASSERT_STR_EQ(d, "99991231T235959Z");
}

/* Canonicalisation details that the suite does not pin down. */
PX_TEST(canonical_details)
{
    auth_http_header_t h[] = {{"host", "  example.amazonaws.com  "},
                              {"User-Agent", "rsproxy/0.1"},
                              {"Expect", "100-continue"},
                              {"X-Amzn-Trace-Id", "Root=1"},
                              {"Transfer-Encoding", "chunked"},
                              {"X-B", "\t two\t\t words \t"},
                              {"x-a", ""},
                              {"X-A", "second"},
                              {"x-a-b", "1"}};
    auth_sigv4_req_t req = {.method = "GET",
                            .path = "/a/./b/../c//d%2Fe/",
                            .query = "b=2&a=%7e&a=&a-b=1&c&%41=%2f+",
                            .headers = h,
                            .nheaders = PX_ARRAY_SIZE(h),
                            .region = "eu-west-1",
                            .service = "sts",
                            .time_unix = SUITE_TIME};
    auth_aws_keys_t keys = {SUITE_AKID, SUITE_SECRET, NULL};
    auth_sigv4_out_t out;
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    /* Path: dot segments and empty segments go, the once-encoded "%2F" is encoded again.
     * Query: decoded and re-encoded ("%7e" -> "~", "%41" -> "A", "+" stays a plus sign), sorted
     * as (key, value) pairs so "a" precedes "a-b". Headers: blocked ones unsigned; duplicates
     * joined in order; "x-a" sorts before "x-a-b" and "x-b". */
    ASSERT_STR_EQ(px_dbuf_cstr(&out.canonical_request),
                  "GET\n/a/c/d%252Fe/\nA=%2F%2B&a=&a=~&a-b=1&b=2&c=\n"
                  "host:example.amazonaws.com\nx-a:,second\nx-a-b:1\nx-amz-date:20150830T123600Z\n"
                  "x-b:two words\n\nhost;x-a;x-a-b;x-amz-date;x-b\n" EMPTY_SHA256);
    ASSERT(strstr(find_add(&out, "Authorization"),
                  "Credential=AKIDEXAMPLE/20150830/eu-west-1/sts/aws4_request, "
                  "SignedHeaders=host;x-a;x-a-b;x-amz-date;x-b, Signature="));
    auth_sigv4_out_free(&out);

    /* The same path under S3 rules: signed exactly as sent. */
    req.s3 = true;
    req.service = "s3";
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT(strncmp(px_dbuf_cstr(&out.canonical_request), "GET\n/a/./b/../c//d%2Fe/\n", 24) == 0);
    auth_sigv4_out_free(&out);

    /* Normalisation corner cases of the non-S3 path. */
    static const struct {
        const char *in, *want;
    } paths[] = {{"/", "/"},           {"//", "/"},
                 {"/..", "/"},         {"/../a", "/a"},
                 {"/a/.", "/a"},       {"/a/./", "/a/"},
                 {"/a/b/..", "/a"},    {"/a/b/../", "/a/"},
                 {"/.../", "/.../"},   {"/a%20b", "/a%2520b"},
                 {"/~user", "/~user"}, {"/a:b@c", "/a%3Ab%40c"}};
    req.s3 = false;
    req.service = "service";
    req.query = NULL;
    for (size_t i = 0; i < PX_ARRAY_SIZE(paths); i++) {
        req.path = paths[i].in;
        ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
        char want[64];
        snprintf(want, sizeof(want), "GET\n%s\n\n", paths[i].want);
        if (strncmp(px_dbuf_cstr(&out.canonical_request), want, strlen(want)) != 0)
            PX_FAIL("path %s: got %.40s", paths[i].in, px_dbuf_cstr(&out.canonical_request));
        auth_sigv4_out_free(&out);
    }
}

/* The session token is signed but never appears in the debugging copy. */
PX_TEST(token_redacted)
{
    static const char tok[] = "FwoGZXIvYXdzEJr//////////wEaDSECRETTOKEN";
    auth_http_header_t h[] = {{"Host", "sts.amazonaws.com"}};
    auth_sigv4_req_t req = {.method = "POST",
                            .path = "/",
                            .headers = h,
                            .nheaders = 1,
                            .region = "us-east-1",
                            .service = "sts",
                            .time_unix = SUITE_TIME,
                            .sign_session_token = true};
    auth_aws_keys_t keys = {SUITE_AKID, SUITE_SECRET, tok};
    auth_sigv4_out_t out;
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    char creq[512];
    snprintf(creq, sizeof(creq), "%s", px_dbuf_cstr(&out.canonical_request));
    ASSERT(strstr(creq, "x-amz-security-token:<redacted>\n") != NULL);
    ASSERT(strstr(creq, "SECRETTOKEN") == NULL);
    ASSERT(strstr(px_dbuf_cstr(&out.string_to_sign), "SECRETTOKEN") == NULL);
    ASSERT(strstr(px_dbuf_cstr(&out.string_to_sign), SUITE_SECRET) == NULL);
    ASSERT_STR_EQ(find_add(&out, "X-Amz-Security-Token"), tok);
    const char *sig1 = strstr(find_add(&out, "Authorization"), "Signature=");
    char saved[80];
    snprintf(saved, sizeof(saved), "%s", sig1);
    auth_sigv4_out_free(&out);

    /* The real canonical request carries the token: a different token, a different signature,
     * although the redacted copies are identical. */
    keys.session_token = "FwoGZXIvYXdzEJr//////////wEaDSECRETTOKEM";
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    ASSERT_STR_EQ(px_dbuf_cstr(&out.canonical_request), creq);
    ASSERT(strcmp(strstr(find_add(&out, "Authorization"), "Signature="), saved) != 0);
    auth_sigv4_out_free(&out);
}

PX_TEST(invalid_requests)
{
    auth_http_header_t ok[] = {{"Host", "example.amazonaws.com"}};
    auth_aws_keys_t keys = {SUITE_AKID, SUITE_SECRET, "tok"};
    auth_sigv4_req_t base = {.method = "GET",
                             .path = "/",
                             .headers = ok,
                             .nheaders = 1,
                             .region = "us-east-1",
                             .service = "service",
                             .time_unix = SUITE_TIME,
                             .sign_session_token = true};
    auth_sigv4_out_t out;
    auth_sigv4_req_t r;

#define EXPECT_PROTO(req_, keys_)                                                                  \
    do {                                                                                           \
        int _rc = auth_sigv4_sign(&(req_), (keys_), &out);                                         \
        if (_rc != AUTH_E_PROTO)                                                                   \
            PX_FAIL("line %d: expected AUTH_E_PROTO, got %d", __LINE__, _rc);                      \
        ASSERT_EQ(out.nadd, 0);                                                                    \
        auth_sigv4_out_free(&out);                                                                 \
    } while (0)

    ASSERT_OK(auth_sigv4_sign(&base, &keys, &out));
    auth_sigv4_out_free(&out);

    EXPECT_PROTO(base, NULL);
    r = base, r.method = NULL;
    EXPECT_PROTO(r, &keys);
    r = base, r.method = "GE T";
    EXPECT_PROTO(r, &keys);
    r = base, r.region = "";
    EXPECT_PROTO(r, &keys);
    r = base, r.region = "us/east";
    EXPECT_PROTO(r, &keys);
    r = base, r.service = NULL;
    EXPECT_PROTO(r, &keys);
    r = base, r.time_unix = -1;
    EXPECT_PROTO(r, &keys);
    r = base, r.time_unix = INT64_C(253402300800);
    EXPECT_PROTO(r, &keys);
    r = base, r.path = "relative";
    EXPECT_PROTO(r, &keys);
    r = base, r.path = "/a?b";
    EXPECT_PROTO(r, &keys);
    r = base, r.path = "/a#b";
    EXPECT_PROTO(r, &keys);
    r = base, r.path = "/a\r\nb";
    EXPECT_PROTO(r, &keys);
    r = base, r.s3 = true, r.path = "/a b";
    EXPECT_PROTO(r, &keys);
    r = base, r.s3 = true, r.path = "/a%2";
    EXPECT_PROTO(r, &keys);
    r = base, r.s3 = true, r.path = "/a%zz";
    EXPECT_PROTO(r, &keys);
    r = base, r.s3 = true, r.path = "/\xc3\xa9";
    EXPECT_PROTO(r, &keys);
    r = base, r.s3 = true, r.path = "/a\"b";
    EXPECT_PROTO(r, &keys);
    r = base, r.query = "a=1&&b=2";
    EXPECT_PROTO(r, &keys);
    r = base, r.query = "a=1&";
    EXPECT_PROTO(r, &keys);
    r = base, r.query = "&a=1";
    EXPECT_PROTO(r, &keys);
    r = base, r.query = "a=%4";
    EXPECT_PROTO(r, &keys);
    r = base, r.query = "a%g0=1";
    EXPECT_PROTO(r, &keys);
    r = base, r.body = NULL, r.bodylen = 3;
    EXPECT_PROTO(r, &keys);
    r = base, r.payload_hash = "";
    EXPECT_PROTO(r, &keys);
    r = base, r.payload_hash = "UNSIGNED\r\nX: y";
    EXPECT_PROTO(r, &keys);
    r = base, r.headers = NULL;
    EXPECT_PROTO(r, &keys);
    r = base, r.nheaders = 0; /* no Host */
    EXPECT_PROTO(r, &keys);

    static const auth_http_header_t bad[][2] = {
        {{"Host", "h"}, {"Authorization", "x"}},
        {{"Host", "h"}, {"X-Amz-Date", "20150830T123600Z"}},
        {{"Host", "h"}, {"x-amz-security-token", "tok"}}, /* the keys carry a token */
        {{"Host", "h"}, {"X-Bad", "a\r\nX-Injected: 1"}},
        {{"Host", "h"}, {"X-Bad", "line\nfold"}},
        {{"Host", "h"}, {"X-Bad", "del\x7f"}},
        {{"Host", "h"}, {"", "v"}},
        {{"Host", "h"}, {"Bad Name", "v"}},
        {{"Host", "h"}, {"Bad:Name", "v"}},
        {{"Host", "h"}, {"X-Null", NULL}},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
        r = base, r.headers = bad[i], r.nheaders = 2;
        EXPECT_PROTO(r, &keys);
    }
    /* S3 owns x-amz-content-sha256; other services may send it as an ordinary header. */
    auth_http_header_t sha[] = {{"Host", "h"}, {"X-Amz-Content-Sha256", EMPTY_SHA256}};
    r = base, r.headers = sha, r.nheaders = 2, r.s3 = true;
    EXPECT_PROTO(r, &keys);
    r.s3 = false;
    ASSERT_OK(auth_sigv4_sign(&r, &keys, &out));
    ASSERT(strstr(find_add(&out, "Authorization"), "x-amz-content-sha256;x-amz-date"));
    auth_sigv4_out_free(&out);
    /* ... but it must announce the payload that is signed. */
    r.body = (const uint8_t *)"x", r.bodylen = 1;
    EXPECT_PROTO(r, &keys);
    r.body = NULL, r.bodylen = 0, r.payload_hash = "UNSIGNED-PAYLOAD";
    EXPECT_PROTO(r, &keys);
    /* Without a session token, a caller's X-Amz-Security-Token is just a header. */
    auth_http_header_t tokh[] = {{"Host", "h"}, {"X-Amz-Security-Token", "abc"}};
    auth_aws_keys_t notok = {SUITE_AKID, SUITE_SECRET, NULL};
    r = base, r.headers = tokh, r.nheaders = 2;
    ASSERT_OK(auth_sigv4_sign(&r, &notok, &out));
    ASSERT(find_add(&out, "X-Amz-Security-Token") == NULL);
    auth_sigv4_out_free(&out);

    auth_aws_keys_t k = keys;
    k.access_key_id = "";
    EXPECT_PROTO(base, &k);
    k = keys, k.access_key_id = "AKID, Signature=x";
    EXPECT_PROTO(base, &k);
    k = keys, k.secret_access_key = NULL;
    EXPECT_PROTO(base, &k);
    k = keys, k.secret_access_key = "";
    EXPECT_PROTO(base, &k);
    k = keys, k.session_token = "tok\r\nX: y";
    EXPECT_PROTO(base, &k);
    char longsecret[1100];
    memset(longsecret, 'k', sizeof(longsecret) - 1);
    longsecret[sizeof(longsecret) - 1] = '\0';
    k = keys, k.secret_access_key = longsecret;
    EXPECT_PROTO(base, &k);
    longsecret[1024] = '\0'; /* the largest accepted */
    ASSERT_OK(auth_sigv4_sign(&base, &k, &out));
    auth_sigv4_out_free(&out);
#undef EXPECT_PROTO
}

/* Every allocation failure is reported as UV_ENOMEM, with nothing left behind (ASan checks
 * leaks), until enough allocations succeed. */
PX_TEST(out_of_memory)
{
    auth_http_header_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
                              {"Range", "bytes=0-9"},
                              {"X-Dup", "a"},
                              {"x-dup", "b"}};
    auth_sigv4_req_t req = {.method = "GET",
                            .path = "/a/b%20c",
                            .query = "b=1&a=2&c",
                            .headers = h,
                            .nheaders = 4,
                            .service = "s3",
                            .s3 = true,
                            .region = "us-east-1",
                            .time_unix = DOC_TIME,
                            .sign_session_token = true};
    auth_aws_keys_t keys = {DOC_AKID, DOC_SECRET, "token"};
    auth_sigv4_out_t out;
    ASSERT_OK(auth_sigv4_sign(&req, &keys, &out));
    char want[256];
    snprintf(want, sizeof(want), "%s", find_add(&out, "Authorization"));
    auth_sigv4_out_free(&out);
    int failures = 0;
    for (long n = 0; n < 1000; n++) {
        px_alloc_fail_after(n);
        int rc = auth_sigv4_sign(&req, &keys, &out);
        px_alloc_fail_after(-1);
        if (rc == 0) {
            ASSERT_STR_EQ(find_add(&out, "Authorization"), want);
            auth_sigv4_out_free(&out);
            break;
        }
        ASSERT_EQ(rc, UV_ENOMEM);
        ASSERT_EQ(out.nadd, 0);
        auth_sigv4_out_free(&out);
        failures++;
    }
    ASSERT(failures >= 5);
}
