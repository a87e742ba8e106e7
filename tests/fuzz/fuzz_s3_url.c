/*
 * libFuzzer target for s3/s3_url: the input is a URL (up to the first NUL); what follows the NUL,
 * if anything, is a relative location to join to it. Checks, besides not crashing: a parsed URL
 * formats to an s3:// URL that parses again to the same bucket and key and never carries the
 * credentials; a rejection gives a static reason; joins give exactly one '/' between tempdir and
 * location; role chain counts agree with the single-ARN check.
 */
#include "px_buf.h"
#include "px_err.h"
#include "s3_url.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_s3_url: invariant failed at line %d: %s\n", __LINE__, #cond);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

static void check_parse(const char *s, size_t n)
{
    s3_url_t u;
    const char *why = NULL;
    int rc = s3_url_parse(s, n, &u, &why);
    if (rc != 0) {
        CHECK(rc == S3_E_URL);
        CHECK(why && why[0]);
        /* Reasons are fixed, short texts (they can hold no piece of the input). */
        CHECK(strlen(why) < 100);
        CHECK(u.bucket[0] == 0 && u.access_key_id[0] == 0 && u.secret_access_key[0] == 0);
        return;
    }
    CHECK(why == NULL);
    CHECK(s3_url_is_s3(s, n) && s3_url_has_scheme(s, n));
    size_t bl = strlen(u.bucket);
    CHECK(bl >= 3 && bl <= S3_BUCKET_MAX);
    CHECK(u.key_len <= S3_KEY_MAX && strlen(u.key) == u.key_len);
    CHECK(!has_ctl(u.key, u.key_len));
    if (u.has_credentials)
        CHECK(u.access_key_id[0] && u.secret_access_key[0]);
    else
        CHECK(!u.access_key_id[0] && !u.secret_access_key[0]);

    px_dbuf_t b;
    px_dbuf_init(&b, 0);
    s3_url_format(&u, &b);
    CHECK(!b.failed);
    s3_url_t v;
    CHECK(s3_url_parse((const char *)b.data, b.len, &v, NULL) == 0);
    CHECK(!v.has_credentials && v.scheme == S3_SCHEME_S3);
    CHECK(!strcmp(u.bucket, v.bucket) && u.key_len == v.key_len &&
          !memcmp(u.key, v.key, u.key_len));
    /* Exactly scheme, bucket and key: no room for the credentials. */
    CHECK(b.len == 5 + bl + 1 + u.key_len && !memcmp(b.data, "s3://", 5) &&
          !memcmp(b.data + 5, u.bucket, bl) && b.data[5 + bl] == '/' &&
          !memcmp(b.data + 6 + bl, u.key, u.key_len));
    px_dbuf_free(&b);
    s3_url_wipe(&u);
    CHECK(u.secret_access_key[0] == 0);
}

static void check_join(const char *tempdir, const char *rel, size_t rl)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 0);
    int rc = s3_url_join(tempdir, rel, rl, &b);
    if (rc == 0) {
        s3_url_t t;
        CHECK(s3_url_parse(tempdir, strlen(tempdir), &t, NULL) == 0);
        CHECK(b.len >= 5 && !memcmp(b.data, "s3://", 5));
        /* No "//" where tempdir and location meet. */
        size_t kl = t.key_len;
        while (kl && t.key[kl - 1] == '/')
            kl--;
        size_t join_at = 5 + strlen(t.bucket) + 1 + kl;
        CHECK(join_at <= b.len);
        if (join_at < b.len && kl)
            CHECK(b.data[join_at - 1] != '/' || b.data[join_at] != '/');
        if (!has_ctl(rel, rl)) {
            s3_url_t j;
            CHECK(s3_url_parse((const char *)b.data, b.len, &j, NULL) == 0);
            CHECK(!j.has_credentials && !strcmp(j.bucket, t.bucket));
        }
        s3_url_wipe(&t);
    } else {
        CHECK(rc == S3_E_URL);
        CHECK(b.len == 0);
    }
    px_dbuf_free(&b);
}

static void check_roles(const char *s, size_t n)
{
    const char *why = NULL;
    int count = s3_iam_role_chain_check(s, n, &why);
    if (count < 0) {
        CHECK(why && why[0]);
        return;
    }
    CHECK(why == NULL);
    CHECK(count >= 1 && count <= S3_ROLE_CHAIN_MAX);
    int commas = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',')
            continue;
        CHECK(s3_iam_role_arn_valid(s + start, i - start, NULL));
        commas += i < n;
        start = i + 1;
    }
    CHECK(count == commas + 1);
    CHECK(!memchr(s, '\'', n) && !memchr(s, ' ', n) && !memchr(s, '\\', n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t n = nul ? (size_t)(nul - data) : size;
    check_parse(s, n);
    check_roles(s, n);
    (void)s3_url_has_scheme(s, n);

    char *tempdir = malloc(n + 1);
    if (!tempdir)
        return 0;
    memcpy(tempdir, s, n);
    tempdir[n] = 0;
    const char *rel = nul ? (const char *)nul + 1 : "";
    size_t rl = nul ? size - n - 1 : 0;
    check_join(tempdir, rel, rl);
    free(tempdir);
    return 0;
}
