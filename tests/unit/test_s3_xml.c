/*
 * Unit tests for s3/s3_xml: S3's answers as S3 writes them (error documents with and without the
 * ErrorResponse wrapping, ListObjectsV2 pages with EncodingType=url, lifecycle configurations in
 * every filter shape, multipart results including the 200-with-<Error> case, DeleteObjects
 * results), the refusals (wrong root, DTD, truncated page without a token, oversize text), and
 * the request bodies with XML escaping.
 */
#include "px_alloc.h"
#include "px_buf.h"
#include "px_err.h"
#include "px_test.h"
#include "s3_xml.h"

#include <string.h>
#include <uv.h>

#define B(s) (const uint8_t *)(s), strlen(s)

/* ---------------------------------------------------------------------------------------------
 * Errors
 */

PX_TEST(error_s3_document)
{
    const char *doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<Error><Code>SignatureDoesNotMatch</Code>"
                      "<Message>The request signature we calculated does not match the signature "
                      "you provided. Check your key and signing method.</Message>"
                      "<AWSAccessKeyId>AKIAPROXYTEST0000001</AWSAccessKeyId>"
                      "<StringToSign>AWS4-HMAC-SHA256\n20130524T000000Z</StringToSign>"
                      "<RequestId>4442587FB7D0A2F9</RequestId><HostId>abc=</HostId></Error>";
    s3_error_t e;
    memset(&e, 0, sizeof(e));
    ASSERT(s3_xml_parse_error(B(doc), &e));
    ASSERT_STR_EQ(e.s3_code, "SignatureDoesNotMatch");
    ASSERT(strncmp(e.message, "The request signature we calculated", 35) == 0);
    ASSERT_STR_EQ(e.request_id, "4442587FB7D0A2F9");
    ASSERT_STR_EQ(e.region, "");
}

PX_TEST(error_region_and_wrapping)
{
    const char *doc = "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region "
                      "'us-east-1' is wrong; expecting 'eu-west-1'</Message>"
                      "<Region>eu-west-1</Region><RequestId>R1</RequestId></Error>";
    s3_error_t e;
    memset(&e, 0, sizeof(e));
    ASSERT(s3_xml_parse_error(B(doc), &e));
    ASSERT_STR_EQ(e.s3_code, "AuthorizationHeaderMalformed");
    ASSERT_STR_EQ(e.region, "eu-west-1");

    const char *wrapped = "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"
                          "<Error><Type>Sender</Type><Code> AccessDenied </Code>"
                          "<Message>no way</Message></Error>"
                          "<RequestId>abc</RequestId></ErrorResponse>";
    memset(&e, 0, sizeof(e));
    ASSERT(s3_xml_parse_error(B(wrapped), &e));
    ASSERT_STR_EQ(e.s3_code, "AccessDenied");
    /* Control characters never reach a message. */
    const char *tab = "<Error><Code>X</Code><Message>a\tb</Message></Error>";
    memset(&e, 0, sizeof(e));
    ASSERT(s3_xml_parse_error(B(tab), &e));
    ASSERT(strchr(e.message, '\t') == NULL);
    ASSERT_STR_EQ(e.request_id, "");
}

PX_TEST(error_refusals)
{
    s3_error_t e;
    memset(&e, 0, sizeof(e));
    strcpy(e.s3_code, "keep");
    /* Not XML, no Code, another root, a DTD, truncation: false, and err left alone. */
    ASSERT(!s3_xml_parse_error(B("<html><body>502 Bad Gateway</body></html>"), &e));
    ASSERT(!s3_xml_parse_error(B("<Error><Message>no code</Message></Error>"), &e));
    ASSERT(!s3_xml_parse_error(B("<Other><Code>X</Code></Other>"), &e));
    ASSERT(!s3_xml_parse_error(B("<!DOCTYPE Error [<!ENTITY a \"x\">]><Error><Code>&a;</Code>"
                                 "</Error>"),
                               &e));
    ASSERT(!s3_xml_parse_error(B("<Error><Code>Trunc"), &e));
    ASSERT(!s3_xml_parse_error(NULL, 0, &e));
    ASSERT(!s3_xml_parse_error(B("<Error><Code></Code></Error>"), &e));
    ASSERT_STR_EQ(e.s3_code, "keep");
}

/* ---------------------------------------------------------------------------------------------
 * ListObjectsV2
 */

PX_TEST(list_page)
{
    const char *doc =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>rsproxy-test</Name><Prefix>tmp/</Prefix><KeyCount>2</KeyCount>"
        "<MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>"
        "<Contents><Key>tmp/a.csv</Key><LastModified>2024-05-01T10:00:00.000Z</LastModified>"
        "<ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>0</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key> tmp/ spaced </Key><Size>18446744073709551615</Size>"
        "<Owner><ID>x</ID><Key>not-this</Key></Owner></Contents>"
        "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</"
        "NextContinuationToken>"
        "</ListBucketResult>";
    s3_list_page_t p;
    ASSERT_OK(s3_xml_parse_list(B(doc), &p));
    ASSERT_EQ(p.nobjects, 2);
    ASSERT_STR_EQ(p.objects[0].key, "tmp/a.csv");
    ASSERT_EQ(p.objects[0].size, 0);
    ASSERT_STR_EQ(p.objects[0].etag, "\"d41d8cd98f00b204e9800998ecf8427e\"");
    ASSERT_EQ(p.objects[0].last_modified_ms, 1714557600000LL);
    /* Keys keep their spaces; sizes use the whole uint64 range. */
    ASSERT_STR_EQ(p.objects[1].key, " tmp/ spaced ");
    ASSERT_EQ(p.objects[1].key_len, 13);
    ASSERT(p.objects[1].size == UINT64_MAX);
    ASSERT_STR_EQ(p.objects[1].etag, "");
    ASSERT_EQ(p.objects[1].last_modified_ms, -1);
    ASSERT(p.truncated);
    ASSERT_STR_EQ(p.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    s3_list_page_free(&p);
}

PX_TEST(list_url_encoded_and_prefixes)
{
    const char *doc = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                      "<Contents><Key>tmp/a+b%2Bc%01%E2%82%AC</Key><Size>5</Size></Contents>"
                      "<CommonPrefixes><Prefix>tmp/sub+dir/</Prefix></CommonPrefixes>"
                      "<EncodingType>url</EncodingType>"
                      "<NextContinuationToken>ignored-on-last-page</NextContinuationToken>"
                      "</ListBucketResult>";
    s3_list_page_t p;
    ASSERT_OK(s3_xml_parse_list(B(doc), &p));
    ASSERT_EQ(p.nobjects, 1);
    /* unquote_plus: '+' is a space, %2B a plus, %01 a control byte, UTF-8 kept. */
    ASSERT_STR_EQ(p.objects[0].key, "tmp/a b+c\x01\xe2\x82\xac");
    ASSERT_EQ(p.objects[0].key_len, 13);
    ASSERT_EQ(p.nprefixes, 1);
    ASSERT_STR_EQ(p.prefixes[0], "tmp/sub dir/");
    ASSERT(!p.truncated);
    ASSERT(p.next_token == NULL);
    s3_list_page_free(&p);

    /* Without EncodingType the same bytes are literal. */
    const char *raw = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                      "<Contents><Key>a+b%2B</Key><Size>1</Size></Contents></ListBucketResult>";
    ASSERT_OK(s3_xml_parse_list(B(raw), &p));
    ASSERT_STR_EQ(p.objects[0].key, "a+b%2B");
    s3_list_page_free(&p);

    const char *empty = "<ListBucketResult><KeyCount>0</KeyCount>"
                        "<IsTruncated>false</IsTruncated></ListBucketResult>";
    ASSERT_OK(s3_xml_parse_list(B(empty), &p));
    ASSERT_EQ(p.nobjects, 0);
    s3_list_page_free(&p);
}

static void list_bad(const char *doc, int want)
{
    s3_list_page_t p;
    int rc = s3_xml_parse_list((const uint8_t *)doc, strlen(doc), &p);
    if (rc != want)
        PX_FAIL("s3_xml_parse_list(%s) = %d, expected %d", doc, rc, want);
    ASSERT_EQ(p.nobjects, 0);
    ASSERT(p.objects == NULL && p.next_token == NULL);
}

PX_TEST(list_refusals)
{
    /* A truncated page must say where to go on; a page must say whether it is the last. */
    list_bad("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", S3_E_PARSE);
    list_bad("<ListBucketResult><IsTruncated>true</IsTruncated>"
             "<NextContinuationToken></NextContinuationToken></ListBucketResult>",
             S3_E_PARSE);
    list_bad("<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>"
             "</ListBucketResult>",
             S3_E_PARSE);
    list_bad("<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>", S3_E_PARSE);
    list_bad("<ListAllMyBucketsResult><IsTruncated>false</IsTruncated></ListAllMyBucketsResult>",
             S3_E_PARSE);
    /* Entries we could not act on. */
    list_bad("<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Size>1</Size>"
             "</Contents></ListBucketResult>",
             S3_E_PARSE);
    list_bad("<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a</Key>"
             "</Contents></ListBucketResult>",
             S3_E_PARSE);
    list_bad("<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a</Key>"
             "<Size>-1</Size></Contents></ListBucketResult>",
             S3_E_PARSE);
    list_bad("<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a</Key>"
             "<Size>18446744073709551616</Size></Contents></ListBucketResult>",
             S3_E_PARSE);
    list_bad("<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a</Key>"
             "<Key>b</Key><Size>1</Size></Contents></ListBucketResult>",
             S3_E_PARSE);
    /* Encoded NUL, a bad escape, and an empty key after decoding. */
    list_bad("<ListBucketResult><IsTruncated>false</IsTruncated><EncodingType>url</EncodingType>"
             "<Contents><Key>a%00b</Key><Size>1</Size></Contents></ListBucketResult>",
             S3_E_PARSE);
    list_bad("<ListBucketResult><IsTruncated>false</IsTruncated><EncodingType>url</EncodingType>"
             "<Contents><Key>a%zz</Key><Size>1</Size></Contents></ListBucketResult>",
             S3_E_PARSE);
    list_bad("<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key></Key>"
             "<Size>1</Size></Contents></ListBucketResult>",
             S3_E_PARSE);
    list_bad("<ListBucketResult><IsTruncated>false</IsTruncated>"
             "<CommonPrefixes></CommonPrefixes></ListBucketResult>",
             S3_E_PARSE);
    list_bad("<ListBucketResult>", S3_E_PARSE);
}

PX_TEST(list_depth_and_size_bounds)
{
    px_dbuf_t d;
    px_dbuf_init(&d, PX_DBUF_NOLIMIT);
    px_dbuf_put_cstr(&d, "<ListBucketResult><IsTruncated>false</IsTruncated>");
    for (int i = 0; i < S3_XML_MAX_DEPTH + 2; i++)
        px_dbuf_put_cstr(&d, "<a>");
    for (int i = 0; i < S3_XML_MAX_DEPTH + 2; i++)
        px_dbuf_put_cstr(&d, "</a>");
    px_dbuf_put_cstr(&d, "</ListBucketResult>");
    list_bad(px_dbuf_cstr(&d), S3_E_PARSE);
    px_dbuf_reset(&d);
    px_dbuf_put_cstr(&d, "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>");
    for (size_t i = 0; i < S3_XML_MAX_TEXT + 1; i++)
        px_dbuf_put_u8(&d, 'k');
    px_dbuf_put_cstr(&d, "</Key><Size>1</Size></Contents></ListBucketResult>");
    list_bad(px_dbuf_cstr(&d), S3_E_PARSE);
    px_dbuf_free(&d);
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 */

PX_TEST(lifecycle_shapes)
{
    const char *doc =
        "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Rule><ID>whole</ID><Filter></Filter><Status>Enabled</Status>"
        "<Expiration><Days>1</Days></Expiration></Rule>"
        "<Rule><ID>tmp</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Disabled</Status>"
        "<Expiration><Days>1</Days></Expiration></Rule>"
        "<Rule><ID>and</ID><Filter><And><Prefix>stage/</Prefix><Tag><Key>k</Key><Value>v</Value>"
        "</Tag><ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></And></Filter>"
        "<Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1"
        "</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>"
        "<Rule><Prefix>legacy/</Prefix><Status>Enabled</Status>"
        "<Expiration><Days>3</Days></Expiration></Rule>"
        "<Rule><ID>tags</ID><Filter><Tag><Key>a</Key><Value>b</Value></Tag></Filter>"
        "<Status> Enabled </Status></Rule>"
        "<Rule><ID>nofilter</ID><Status>enabled</Status></Rule>"
        "</LifecycleConfiguration>";
    s3_lifecycle_t lc;
    ASSERT_OK(s3_xml_parse_lifecycle(B(doc), &lc));
    ASSERT_EQ(lc.nrules, 6);
    const s3_lifecycle_rule_t *r = lc.rules;
    ASSERT_STR_EQ(r[0].id, "whole");
    ASSERT(r[0].enabled && r[0].has_filter && r[0].nprefixes == 0 && r[0].expires);
    ASSERT_STR_EQ(r[1].id, "tmp");
    ASSERT(!r[1].enabled && r[1].nprefixes == 1);
    ASSERT_STR_EQ(r[1].prefixes[0], "tmp/");
    ASSERT(r[2].enabled && r[2].has_tags && r[2].has_size && !r[2].expires);
    ASSERT_EQ(r[2].nprefixes, 1);
    ASSERT_STR_EQ(r[2].prefixes[0], "stage/");
    ASSERT_STR_EQ(r[3].id, "");
    ASSERT(r[3].has_legacy_prefix && !r[3].has_filter && r[3].enabled);
    ASSERT_STR_EQ(r[3].prefixes[0], "legacy/");
    ASSERT(r[4].enabled && r[4].has_tags && r[4].nprefixes == 0);
    /* Status is case-sensitive in S3's schema: "enabled" is not Enabled. */
    ASSERT(!r[5].enabled && !r[5].has_filter);
    s3_lifecycle_free(&lc);

    const char *empty_prefix = "<LifecycleConfiguration><Rule><Filter><Prefix></Prefix></Filter>"
                               "<Status>Enabled</Status></Rule></LifecycleConfiguration>";
    ASSERT_OK(s3_xml_parse_lifecycle(B(empty_prefix), &lc));
    ASSERT_EQ(lc.rules[0].nprefixes, 1);
    ASSERT_STR_EQ(lc.rules[0].prefixes[0], "");
    s3_lifecycle_free(&lc);
}

PX_TEST(lifecycle_refusals)
{
    s3_lifecycle_t lc;
    ASSERT_EQ(
        s3_xml_parse_lifecycle(B("<Error><Code>NoSuchLifecycleConfiguration</Code></Error>"), &lc),
        S3_E_PARSE);
    ASSERT_EQ(lc.nrules, 0);
    /* Four prefix constraints in one rule is not a rule S3 would store. */
    ASSERT_EQ(s3_xml_parse_lifecycle(
                  B("<LifecycleConfiguration><Rule><Prefix>a</Prefix><Filter><Prefix>b</Prefix>"
                    "<And><Prefix>c</Prefix><Prefix>d</Prefix></And></Filter></Rule>"
                    "</LifecycleConfiguration>"),
                  &lc),
              S3_E_PARSE);
    px_dbuf_t d;
    px_dbuf_init(&d, PX_DBUF_NOLIMIT);
    px_dbuf_put_cstr(&d, "<LifecycleConfiguration>");
    for (int i = 0; i <= S3_LIFECYCLE_MAX_RULES; i++)
        px_dbuf_put_cstr(&d, "<Rule><Status>Enabled</Status></Rule>");
    px_dbuf_put_cstr(&d, "</LifecycleConfiguration>");
    ASSERT_EQ(s3_xml_parse_lifecycle(d.data, d.len, &lc), S3_E_PARSE);
    px_dbuf_free(&d);
}

/* ---------------------------------------------------------------------------------------------
 * Multipart and DeleteObjects results
 */

PX_TEST(initiate_result)
{
    char *id = NULL;
    ASSERT_OK(s3_xml_parse_initiate(
        B("<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
          "<Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE.ZWxlcGhhbnQ-</UploadId>"
          "</InitiateMultipartUploadResult>"),
        &id));
    ASSERT_STR_EQ(id, "VXBsb2FkIElE.ZWxlcGhhbnQ-");
    px_free(id);
    ASSERT_EQ(s3_xml_parse_initiate(B("<InitiateMultipartUploadResult><UploadId>a b</UploadId>"
                                      "</InitiateMultipartUploadResult>"),
                                    &id),
              S3_E_PARSE);
    ASSERT_EQ(s3_xml_parse_initiate(B("<InitiateMultipartUploadResult></"
                                      "InitiateMultipartUploadResult>"),
                                    &id),
              S3_E_PARSE);
    ASSERT_EQ(s3_xml_parse_initiate(B("<X><UploadId>a</UploadId></X>"), &id), S3_E_PARSE);
    ASSERT(id == NULL);
}

PX_TEST(complete_result_and_error_in_200)
{
    char *etag = NULL;
    s3_error_t e;
    memset(&e, 0, sizeof(e));
    ASSERT_OK(s3_xml_parse_complete(
        B("<CompleteMultipartUploadResult><Location>http://x/b/k</Location><Bucket>b</Bucket>"
          "<Key>k</Key><ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
          "</CompleteMultipartUploadResult>"),
        &etag, &e));
    ASSERT_STR_EQ(etag, "\"3858f62230ac3c915f300c664312c11f-9\"");
    px_free(etag);
    /* S3 may answer 200 and fail: the body is an Error document. */
    ASSERT_EQ(s3_xml_parse_complete(B("<Error><Code>InternalError</Code><Message>We encountered an "
                                      "internal error. Please try again.</Message></Error>"),
                                    &etag, &e),
              S3_E_HTTP);
    ASSERT(etag == NULL);
    ASSERT_STR_EQ(e.s3_code, "InternalError");
    ASSERT_EQ(s3_xml_parse_complete(B("<Error><Message>no code</Message></Error>"), &etag, &e),
              S3_E_PARSE);
    ASSERT_EQ(s3_xml_parse_complete(B("garbage"), &etag, &e), S3_E_PARSE);
}

PX_TEST(delete_result)
{
    s3_delete_result_t r;
    ASSERT_OK(s3_xml_parse_delete_result(
        B("<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
          "<Deleted><Key>a</Key></Deleted><Deleted><Key>b</Key></Deleted>"
          "<Error><Key> c </Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
          "<Error><Code>InternalError</Code></Error></DeleteResult>"),
        &r));
    ASSERT_EQ(r.ndeleted, 2);
    ASSERT_EQ(r.nerrors, 2);
    ASSERT_STR_EQ(r.errors[0].key, " c ");
    ASSERT_STR_EQ(r.errors[0].code, "AccessDenied");
    ASSERT_STR_EQ(r.errors[0].message, "Access Denied");
    ASSERT_STR_EQ(r.errors[1].key, "");
    ASSERT_STR_EQ(r.errors[1].message, "");
    s3_delete_result_free(&r);
    ASSERT_OK(s3_xml_parse_delete_result(B("<DeleteResult/>"), &r));
    ASSERT_EQ(r.ndeleted + r.nerrors, 0);
    s3_delete_result_free(&r);
    ASSERT_EQ(s3_xml_parse_delete_result(B("<Error><Code>MalformedXML</Code></Error>"), &r),
              S3_E_PARSE);
}

/* ---------------------------------------------------------------------------------------------
 * Request bodies
 */

PX_TEST(escape_rules)
{
    px_dbuf_t d;
    px_dbuf_init(&d, 4096);
    ASSERT(s3_xml_escape(&d, "a&b<c>d\"e'f\r\n\tg\xe2\x82\xac", 18));
    ASSERT_STR_EQ(px_dbuf_cstr(&d), "a&amp;b&lt;c&gt;d&quot;e&apos;f&#13;&#10;&#9;g\xe2\x82\xac");
    size_t len = d.len;
    /* Nothing is appended for text XML cannot carry. */
    ASSERT(!s3_xml_escape(&d, "a\x01", 2));
    ASSERT(!s3_xml_escape(&d, "a\0b", 3));
    ASSERT(!s3_xml_escape(&d, "\xc3", 1));             /* truncated sequence */
    ASSERT(!s3_xml_escape(&d, "\xc0\xaf", 2));         /* overlong '/' */
    ASSERT(!s3_xml_escape(&d, "\xed\xa0\x80", 3));     /* surrogate */
    ASSERT(!s3_xml_escape(&d, "\xef\xbf\xbe", 3));     /* U+FFFE */
    ASSERT(!s3_xml_escape(&d, "\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    ASSERT_EQ(d.len, len);
    ASSERT(s3_xml_text_ok("\xf0\x9f\x98\x80", 4));
    px_dbuf_free(&d);
}

PX_TEST(build_complete)
{
    px_dbuf_t d;
    px_dbuf_init(&d, 1 << 20);
    const char *etags[] = {"\"a\"", "\"b&c\""};
    ASSERT_OK(s3_xml_build_complete(etags, 2, &d));
    const char *x = px_dbuf_cstr(&d);
    ASSERT(strstr(x, "<Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>"
                     "<Part><PartNumber>2</PartNumber><ETag>&quot;b&amp;c&quot;</ETag></Part>"
                     "</CompleteMultipartUpload>"));
    ASSERT(
        strstr(x, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"));
    ASSERT_EQ(s3_xml_build_complete(etags, 0, &d), UV_EINVAL);
    const char *bad[] = {"\"a\"", "\x01"};
    size_t before = d.len;
    ASSERT_EQ(s3_xml_build_complete(bad, 2, &d), UV_EINVAL);
    ASSERT_EQ(d.len, before);
    px_dbuf_free(&d);
}

PX_TEST(build_delete)
{
    px_dbuf_t d;
    px_dbuf_init(&d, 1 << 20);
    const char *keys[] = {"tmp/a", "tmp/<b>"};
    ASSERT_OK(s3_xml_build_delete(keys, NULL, 2, true, &d));
    ASSERT_STR_EQ(px_dbuf_cstr(&d),
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
                  "<Object><Key>tmp/a</Key></Object><Object><Key>tmp/&lt;b&gt;</Key></Object>"
                  "</Delete>");
    /* Explicit lengths: keys need not be NUL-terminated. */
    px_dbuf_reset(&d);
    const char *k2[] = {"abcdef"};
    size_t l2[] = {3};
    ASSERT_OK(s3_xml_build_delete(k2, l2, 1, false, &d));
    ASSERT(strstr(px_dbuf_cstr(&d), "<Object><Key>abc</Key></Object></Delete>"));
    ASSERT(!strstr(px_dbuf_cstr(&d), "Quiet"));
    const char *ctl[] = {"ok", "bad\x02"};
    ASSERT_EQ(s3_xml_build_delete(ctl, NULL, 2, true, &d), UV_EINVAL);
    ASSERT_EQ(s3_xml_build_delete(keys, NULL, 0, true, &d), UV_EINVAL);
    ASSERT_EQ(s3_xml_build_delete(keys, NULL, S3_DELETE_MAX_KEYS + 1, true, &d), UV_EINVAL);
    const char *emptyk[] = {""};
    ASSERT_EQ(s3_xml_build_delete(emptyk, NULL, 1, true, &d), UV_EINVAL);
    px_dbuf_free(&d);
}

/* ---------------------------------------------------------------------------------------------
 * Allocation failures: every parser, failing at every allocation in turn, reports UV_ENOMEM (or
 * false) with nothing left allocated (ASan's leak check) and then succeeds once memory is back.
 */

PX_TEST(allocation_failures)
{
    const char *list = "<ListBucketResult><IsTruncated>true</IsTruncated><EncodingType>url"
                       "</EncodingType><Contents><Key>a%20b</Key><Size>1</Size><ETag>e</ETag>"
                       "</Contents><CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes>"
                       "<NextContinuationToken>t</NextContinuationToken></ListBucketResult>";
    const char *lc = "<LifecycleConfiguration><Rule><ID>r</ID><Filter><Prefix>tmp/</Prefix>"
                     "</Filter><Status>Enabled</Status></Rule><Rule><Status>Enabled</Status>"
                     "</Rule></LifecycleConfiguration>";
    const char *del = "<DeleteResult><Deleted><Key>a</Key></Deleted><Error><Key>b</Key>"
                      "<Code>AccessDenied</Code></Error></DeleteResult>";
    const char *comp = "<CompleteMultipartUploadResult><ETag>x</ETag>"
                       "</CompleteMultipartUploadResult>";
    bool done = false;
    for (long n = 0; !done && n < 500; n++) {
        px_alloc_fail_after(n);
        s3_list_page_t p;
        int r1 = s3_xml_parse_list(B(list), &p);
        if (r1 == 0)
            s3_list_page_free(&p);
        else
            ASSERT(p.objects == NULL && p.next_token == NULL);
        s3_lifecycle_t l;
        int r2 = s3_xml_parse_lifecycle(B(lc), &l);
        if (r2 == 0)
            s3_lifecycle_free(&l);
        s3_delete_result_t d;
        int r3 = s3_xml_parse_delete_result(B(del), &d);
        if (r3 == 0)
            s3_delete_result_free(&d);
        char *etag = NULL;
        s3_error_t e;
        int r4 = s3_xml_parse_complete(B(comp), &etag, &e);
        px_free(etag);
        px_alloc_fail_after(-1);
        int rcs[] = {r1, r2, r3, r4};
        for (size_t i = 0; i < PX_ARRAY_SIZE(rcs); i++) {
            if (rcs[i] != 0 && rcs[i] != UV_ENOMEM)
                PX_FAIL("n=%ld parser %zu: %d instead of UV_ENOMEM", n, i, rcs[i]);
        }
        done = r1 == 0 && r2 == 0 && r3 == 0 && r4 == 0;
    }
    px_alloc_fail_after(-1);
    ASSERT(done);
}
