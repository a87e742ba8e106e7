/*
 * The tempdir lifecycle check (s3_lifecycle.h): pure rule matching and message text, and the
 * asynchronous check that reads the tempdir bucket's lifecycle configuration and delivers a
 * verdict with the line to log. The semantics (any Enabled rule whose filter has no prefix or a
 * prefix the tempdir key starts with) are spark-redshift's, reference §8.5; the header explains
 * the one deliberate difference (the trailing '/').
 *
 * Nothing here logs or decides severity: the proxy logs the message at startup.
 */
#include "s3_lifecycle.h"

#include "px_alloc.h"
#include "px_err.h"
#include "s3_int.h"
#include "s3_url.h"

#include <string.h>

bool s3_lifecycle_rule_covers(const s3_lifecycle_rule_t *r, const char *key, size_t key_len)
{
    if (!r->enabled)
        return false;
    /* No filter, an empty filter, or a filter on tags or sizes only: no prefix limits the
     * rule, so it applies to the tempdir (spark-redshift's reading). */
    for (size_t i = 0; i < r->nprefixes; i++) {
        size_t pl = strlen(r->prefixes[i]);
        if (pl > key_len || memcmp(key, r->prefixes[i], pl) != 0)
            return false;
    }
    return true;
}

long s3_lifecycle_match(const s3_lifecycle_t *lc, const char *key, size_t key_len)
{
    if (!lc)
        return -1;
    for (size_t i = 0; i < lc->nrules; i++) {
        if (s3_lifecycle_rule_covers(&lc->rules[i], key, key_len))
            return (long)i;
    }
    return -1;
}

void s3_lifecycle_tempdir_key(const char *key, size_t key_len, px_dbuf_t *out)
{
    while (key_len > 0 && key[key_len - 1] == '/')
        key_len--;
    px_dbuf_put(out, key, key_len);
    if (key_len)
        px_dbuf_put_u8(out, '/');
}

void s3_lifecycle_message(s3_lifecycle_verdict_t v, const char *bucket, const char *url,
                          const char *rule_id, const s3_error_t *err, px_dbuf_t *out)
{
    switch (v) {
    case S3_LIFECYCLE_COVERED:
        px_dbuf_printf(out, "The S3 bucket %s has lifecycle rule '%s' covering %s", bucket,
                       rule_id ? rule_id : "", url ? url : "");
        break;
    case S3_LIFECYCLE_NOT_COVERED:
        /* spark-redshift's Utils.checkThatBucketHasObjectLifecycleConfiguration, verbatim. */
        px_dbuf_printf(out,
                       "The S3 bucket %s does not have an object lifecycle configuration to "
                       "ensure cleanup of temporary files. Consider configuring `tempdir` to "
                       "point to a bucket with an object lifecycle policy that automatically "
                       "deletes files after an expiration period. For more information, see "
                       "https://docs.aws.amazon.com/AmazonS3/latest/dev/object-lifecycle-mgmt.html",
                       bucket);
        break;
    case S3_LIFECYCLE_UNKNOWN:
        px_dbuf_printf(out,
                       "An error occurred while trying to read the S3 bucket lifecycle "
                       "configuration: %s",
                       err && err->message[0] ? err->message : "unknown error");
        if (err && err->s3_code[0])
            px_dbuf_printf(out, " (%s)", err->s3_code);
        break;
    }
}

/* ---------------------------------------------------------------------------------------------
 * The asynchronous check: one GET ?lifecycle, then the verdict.
 */

typedef struct check {
    s3_lifecycle_check_cb cb;
    void *arg;
    char bucket[S3_BUCKET_MAX + 1];
    char *key; /* tempdir key with its trailing '/' */
    size_t key_len;
    char *url;
} check_t;

static void check_free(void *p)
{
    check_t *ck = p;
    if (!ck)
        return;
    px_free(ck->key);
    px_free(ck->url);
    px_free(ck);
}

static void check_deliver(check_t *ck, s3_lifecycle_verdict_t v, const char *rule_id,
                          const s3_error_t *err)
{
    px_dbuf_t msg;
    px_dbuf_init(&msg, 4096);
    s3_lifecycle_message(v, ck->bucket, ck->url, rule_id, err, &msg);
    const char *text = px_dbuf_cstr(&msg);
    s3_lifecycle_result_t res = {
        .verdict = v,
        .bucket = ck->bucket,
        .url = ck->url,
        .rule_id = v == S3_LIFECYCLE_COVERED ? (rule_id ? rule_id : "") : NULL,
        .message = text ? text : "out of memory formatting the lifecycle verdict",
        .err = v == S3_LIFECYCLE_UNKNOWN ? err : NULL,
    };
    ck->cb(&res, ck->arg);
    px_dbuf_free(&msg);
}

/* The op's callback; the check context is the op's ctx and goes with it. */
static void check_lifecycle_cb(const s3_lifecycle_t *lc, const s3_error_t *err, void *arg)
{
    check_t *ck = arg;
    if (err) {
        check_deliver(ck, S3_LIFECYCLE_UNKNOWN, NULL, err);
        return;
    }
    long i = s3_lifecycle_match(lc, ck->key, ck->key_len);
    if (i < 0)
        check_deliver(ck, S3_LIFECYCLE_NOT_COVERED, NULL, NULL);
    else
        check_deliver(ck, S3_LIFECYCLE_COVERED, lc->rules[i].id, NULL);
}

int s3_lifecycle_check(s3_client_t *c, const char *tempdir, s3_lifecycle_check_cb cb, void *arg,
                       s3_op_t **out)
{
    if (!cb || !tempdir)
        return UV_EINVAL;
    s3_url_t *u = px_calloc(1, sizeof(*u));
    check_t *ck = px_calloc(1, sizeof(*ck));
    if (!u || !ck) {
        px_free(u);
        px_free(ck);
        return UV_ENOMEM;
    }
    const char *why;
    int rc = s3_url_parse(tempdir, strlen(tempdir), u, &why);
    /* Only the secrets go now: s3_url_wipe would clear the bucket and key too. */
    px_wipe(u->secret_access_key, sizeof(u->secret_access_key));
    px_wipe(u->access_key_id, sizeof(u->access_key_id));
    if (rc) {
        px_free(u);
        px_free(ck);
        return S3_E_URL;
    }
    ck->cb = cb;
    ck->arg = arg;
    memcpy(ck->bucket, u->bucket, sizeof(ck->bucket));
    px_dbuf_t k, url;
    px_dbuf_init(&k, S3_KEY_MAX + 2);
    px_dbuf_init(&url, S3_KEY_MAX + 128);
    s3_lifecycle_tempdir_key(u->key, u->key_len, &k);
    s3_url_format(u, &url);
    px_free(u);
    if (!px_dbuf_cstr(&k) || !px_dbuf_cstr(&url)) {
        px_dbuf_free(&k);
        px_dbuf_free(&url);
        px_free(ck);
        return UV_ENOMEM;
    }
    size_t n;
    ck->key_len = k.len;
    ck->key = (char *)px_dbuf_steal(&k, &n);
    ck->url = (char *)px_dbuf_steal(&url, &n);
    s3_op_t *op = NULL;
    rc = s3_get_bucket_lifecycle(c, ck->bucket, check_lifecycle_cb, ck, &op);
    if (rc) {
        check_free(ck);
        return rc;
    }
    /* The context lives exactly as long as the op, also when it is canceled. */
    op->ctx = ck;
    op->ctx_free = check_free;
    if (out)
        *out = op;
    return 0;
}
