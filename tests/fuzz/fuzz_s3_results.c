/*
 * libFuzzer target for the rest of s3/'s parsers of peer bytes, picked by the first input byte:
 * 0 CreateMultipartUpload results, 1 CompleteMultipartUpload results (including 200 with
 * <Error>), 2 DeleteObjects results, 3 Content-Range and Content-Length headers, 4 a round trip
 * of s3_xml_escape through the listing parser (what we escape must come back byte for byte).
 */
#include "px_buf.h"
#include "px_err.h"
#include "s3_req.h"
#include "px_alloc.h"
#include "s3_xml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_s3_results: invariant failed at line %d: %s\n", __LINE__,        \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void round_trip(const uint8_t *s, size_t n)
{
    px_dbuf_t d;
    px_dbuf_init(&d, PX_DBUF_NOLIMIT);
    px_dbuf_put_cstr(&d, "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>");
    bool ok = s3_xml_escape(&d, (const char *)s, n);
    CHECK(ok == s3_xml_text_ok((const char *)s, n));
    if (ok && n > 0 && n <= 4096 && !memchr(s, 0, n)) {
        px_dbuf_put_cstr(&d, "</Key><Size>1</Size></Contents></ListBucketResult>");
        s3_list_page_t p;
        CHECK(s3_xml_parse_list(d.data, d.len, &p) == 0);
        CHECK(p.nobjects == 1 && p.objects[0].key_len == n);
        CHECK(memcmp(p.objects[0].key, s, n) == 0);
        s3_list_page_free(&p);
    }
    px_dbuf_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0: {
        char *id = NULL;
        if (s3_xml_parse_initiate(p, n, &id) == 0) {
            CHECK(id && id[0]);
            for (const char *c = id; *c; c++)
                CHECK((unsigned char)*c > 0x20 && (unsigned char)*c < 0x7f);
            px_free(id);
        } else {
            CHECK(id == NULL);
        }
        break;
    }
    case 1: {
        char *etag = NULL;
        s3_error_t e;
        memset(&e, 0, sizeof(e));
        int rc = s3_xml_parse_complete(p, n, &etag, &e);
        CHECK(rc == 0 || rc == S3_E_HTTP || rc == S3_E_PARSE || rc == UV_ENOMEM);
        CHECK((rc == 0) == (etag != NULL));
        if (rc == S3_E_HTTP)
            CHECK(e.s3_code[0] != '\0');
        px_free(etag);
        break;
    }
    case 2: {
        s3_delete_result_t r;
        if (s3_xml_parse_delete_result(p, n, &r) == 0) {
            for (size_t i = 0; i < r.nerrors; i++)
                CHECK(r.errors[i].key && r.errors[i].code && r.errors[i].message);
            s3_delete_result_free(&r);
        } else {
            CHECK(r.errors == NULL && r.nerrors == 0 && r.ndeleted == 0);
        }
        break;
    }
    case 3: {
        char *s = malloc(n + 1);
        memcpy(s, p, n);
        s[n] = '\0';
        uint64_t a, b, t;
        if (s3_parse_content_range(s, &a, &b, &t) == 0)
            CHECK(a <= b && b < t);
        uint64_t len;
        (void)!s3_parse_content_length(s, &len);
        free(s);
        break;
    }
    case 4:
        round_trip(p, n);
        break;
    }
    return 0;
}
