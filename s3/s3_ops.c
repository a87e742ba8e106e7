/*
 * The single-request S3 operations on top of the request engine (s3_client.c): PutObject,
 * HeadObject, DeleteObject, ListObjectsV2, DeleteObjects and GetBucketLifecycleConfiguration,
 * and the client built from the proxy's [s3] configuration. Each entry point validates its
 * arguments, fills one op's request and starts it; each response function parses the answer
 * (s3_xml.c) and calls the user's callback exactly once, after the op is detached, so a callback
 * may cancel, start new operations or close the client.
 */
#include "s3_int.h"

#include "auth_awscfg.h"
#include "px_alloc.h"
#include "px_b64.h"
#include "px_err.h"
#include "s3_url.h"
#include "s3_xml.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h> /* environ (_GNU_SOURCE) */

/* ---------------------------------------------------------------------------------------------
 * Validation shared by the entry points
 */

static int check_target(const s3_client_t *c, const char *bucket, const char *key)
{
    if (c->closing)
        return PX_E_SHUTDOWN;
    if (!s3_bucket_name_ok(bucket))
        return UV_EINVAL;
    if (key && s3_key_check(key, strlen(key)))
        return UV_EINVAL;
    return 0;
}

/* Starts a freshly built op, or abandons it; returns what the entry point returns. */
static int start_or_abandon(s3_op_t *op, int rc, s3_op_t **out)
{
    if (rc == 0)
        rc = s3__op_send(op);
    if (rc) {
        s3__op_abandon(op);
        return rc;
    }
    if (out)
        *out = op;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * PutObject
 */

static void put_fail(s3_op_t *op, const s3_error_t *err)
{
    op->cb.put(NULL, err, op->arg);
}

static void put_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    if (err) {
        s3__op_fail_now(op, err);
        return;
    }
    const char *etag = auth_http_resp_header(resp, "ETag");
    s3__op_detach(op);
    op->cb.put(etag ? etag : "", NULL, op->arg);
    s3__op_done(op);
}

int s3_put_object(s3_client_t *c, const char *bucket, const char *key, const uint8_t *body,
                  size_t n, const char *content_type, s3_put_cb cb, void *arg, s3_op_t **out)
{
    if (!key || !cb || (n && !body) || n > S3_PUT_MAX)
        return UV_EINVAL;
    int rc = check_target(c, bucket, key);
    if (rc)
        return rc;
    s3_op_t *op = s3__op_new(c, bucket, put_resp, put_fail, arg);
    if (!op)
        return UV_ENOMEM;
    op->cb.put = cb;
    op->method = "PUT";
    op->idempotent = true;
    rc = s3__op_set_key(op, key, strlen(key));
    if (!rc)
        rc = s3__op_body_copy(op, body, n);
    if (!rc && content_type)
        rc = s3__op_header(op, "Content-Type", content_type);
    return start_or_abandon(op, rc, out);
}

/* ---------------------------------------------------------------------------------------------
 * HeadObject
 */

static void head_fail(s3_op_t *op, const s3_error_t *err)
{
    op->cb.head(NULL, err, op->arg);
}

static void head_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    if (err) {
        s3__op_fail_now(op, err);
        return;
    }
    s3_head_t h = {.last_modified_ms = -1};
    const char *cl = auth_http_resp_header(resp, "Content-Length");
    if (!cl || s3_parse_content_length(cl, &h.size) != 0) {
        s3_error_t e;
        s3__error_set(&e, S3_E_PARSE, "HeadObject answer without a valid Content-Length");
        s3__op_fail_now(op, &e);
        return;
    }
    const char *v = auth_http_resp_header(resp, "ETag");
    h.etag = v ? v : "";
    v = auth_http_resp_header(resp, "Content-Type");
    h.content_type = v ? v : "";
    v = auth_http_resp_header(resp, "Last-Modified");
    int64_t ms;
    if (v && auth_time_parse_http_date(v, strlen(v), &ms) == 0)
        h.last_modified_ms = ms;
    s3__op_detach(op);
    op->cb.head(&h, NULL, op->arg);
    s3__op_done(op);
}

int s3_head_object(s3_client_t *c, const char *bucket, const char *key, s3_head_cb cb, void *arg,
                   s3_op_t **out)
{
    if (!key || !cb)
        return UV_EINVAL;
    int rc = check_target(c, bucket, key);
    if (rc)
        return rc;
    s3_op_t *op = s3__op_new(c, bucket, head_resp, head_fail, arg);
    if (!op)
        return UV_ENOMEM;
    op->cb.head = cb;
    op->method = "HEAD";
    op->idempotent = true;
    rc = s3__op_set_key(op, key, strlen(key));
    return start_or_abandon(op, rc, out);
}

/* ---------------------------------------------------------------------------------------------
 * DeleteObject
 */

static void done_fail(s3_op_t *op, const s3_error_t *err)
{
    op->cb.done(err, op->arg);
}

static void delete_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    PX_UNUSED(resp);
    if (err) {
        s3__op_fail_now(op, err);
        return;
    }
    s3__op_detach(op);
    op->cb.done(NULL, op->arg);
    s3__op_done(op);
}

int s3_delete_object(s3_client_t *c, const char *bucket, const char *key, s3_done_cb cb, void *arg,
                     s3_op_t **out)
{
    if (!key || !cb)
        return UV_EINVAL;
    int rc = check_target(c, bucket, key);
    if (rc)
        return rc;
    s3_op_t *op = s3__op_new(c, bucket, delete_resp, done_fail, arg);
    if (!op)
        return UV_ENOMEM;
    op->cb.done = cb;
    op->method = "DELETE";
    op->idempotent = true;
    rc = s3__op_set_key(op, key, strlen(key));
    return start_or_abandon(op, rc, out);
}

/* ---------------------------------------------------------------------------------------------
 * ListObjectsV2
 */

static void list_fail(s3_op_t *op, const s3_error_t *err)
{
    op->cb.list(NULL, err, op->arg);
}

static void list_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    if (err) {
        s3__op_fail_now(op, err);
        return;
    }
    s3_list_page_t page;
    int rc = s3_xml_parse_list(resp->body, resp->bodylen, &page);
    if (rc) {
        s3_error_t e;
        s3__error_set(&e, rc, "ListObjectsV2 answer is not a listing: %s", px_strerror(rc));
        e.http_status = resp->status;
        s3__op_fail_now(op, &e);
        return;
    }
    s3__op_detach(op);
    op->cb.list(&page, NULL, op->arg);
    s3_list_page_free(&page);
    s3__op_done(op);
}

int s3__list_query(s3_op_t *op, const s3_list_opts_t *lo)
{
    if (lo && (lo->max_keys < 0 || lo->max_keys > S3_LIST_MAX_KEYS))
        return UV_EINVAL;
    /* Worst case, every byte is percent-encoded: refuse what cannot fit before building, so a
     * failed buffer afterwards can only mean memory. */
    size_t raw = 0;
    if (lo) {
        const char *parts[] = {lo->prefix, lo->delimiter, lo->continuation_token, lo->start_after};
        for (size_t i = 0; i < PX_ARRAY_SIZE(parts); i++)
            raw += parts[i] ? strlen(parts[i]) : 0;
    }
    if (raw * 3 + 128 > S3__QUERY_MAX)
        return UV_EINVAL;
    op->method = "GET";
    op->idempotent = true;
    op->max_body = S3_LIST_MAX_BODY;
    px_dbuf_t *q = &op->query;
    s3_query_add(q, "list-type", "2", 1);
    /* Keys XML 1.0 cannot carry (control characters) come back encoded; decoded for callers. */
    s3_query_add(q, "encoding-type", "url", 3);
    if (lo && lo->prefix && *lo->prefix)
        s3_query_add(q, "prefix", lo->prefix, strlen(lo->prefix));
    if (lo && lo->delimiter && *lo->delimiter)
        s3_query_add(q, "delimiter", lo->delimiter, strlen(lo->delimiter));
    if (lo && lo->continuation_token && *lo->continuation_token)
        s3_query_add(q, "continuation-token", lo->continuation_token,
                     strlen(lo->continuation_token));
    if (lo && lo->start_after && *lo->start_after)
        s3_query_add(q, "start-after", lo->start_after, strlen(lo->start_after));
    if (lo && lo->max_keys > 0) {
        char mk[16];
        int n = snprintf(mk, sizeof(mk), "%d", lo->max_keys);
        s3_query_add(q, "max-keys", mk, (size_t)n);
    }
    return q->failed ? UV_ENOMEM : 0;
}

int s3_list_objects(s3_client_t *c, const char *bucket, const s3_list_opts_t *lo, s3_list_cb cb,
                    void *arg, s3_op_t **out)
{
    if (!cb)
        return UV_EINVAL;
    int rc = check_target(c, bucket, NULL);
    if (rc)
        return rc;
    s3_op_t *op = s3__op_new(c, bucket, list_resp, list_fail, arg);
    if (!op)
        return UV_ENOMEM;
    op->cb.list = cb;
    rc = s3__list_query(op, lo);
    return start_or_abandon(op, rc, out);
}

/* ---------------------------------------------------------------------------------------------
 * DeleteObjects
 */

int s3__delete_objects_request(s3_op_t *op, const char *const *keys, const size_t *lens, size_t n)
{
    px_dbuf_t body;
    /* 1,000 keys of 1,024 bytes, each byte escaped as at most 6: about 6.2 MB. */
    px_dbuf_init(&body, (size_t)8 << 20);
    int rc = s3_xml_build_delete(keys, lens, n, true, &body);
    if (rc) {
        px_dbuf_free(&body);
        return rc;
    }
    /* S3 requires an integrity header on DeleteObjects (API reference: Content-MD5 "is
     * required for all Multi-Object Delete requests"). */
    uint8_t md[16];
    unsigned mdlen = 0;
    if (!EVP_Digest(body.data, body.len, md, &mdlen, EVP_md5(), NULL) || mdlen != 16) {
        px_dbuf_free(&body);
        return UV_ENOMEM;
    }
    char md5b64[32];
    px_b64_encode_to(md5b64, md, sizeof(md));
    op->method = "POST";
    op->idempotent = true;
    s3_query_add(&op->query, "delete", NULL, 0);
    rc = s3__op_header(op, "Content-MD5", md5b64);
    if (!rc)
        rc = s3__op_header(op, "Content-Type", "application/xml");
    if (rc) {
        px_dbuf_free(&body);
        return rc;
    }
    s3__op_body_take(op, &body);
    return op->bodylen ? 0 : UV_ENOMEM;
}

static void delobjs_fail(s3_op_t *op, const s3_error_t *err)
{
    op->cb.delete_objects(NULL, err, op->arg);
}

static void delobjs_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    if (err) {
        s3__op_fail_now(op, err);
        return;
    }
    s3_delete_result_t res;
    int rc = s3_xml_parse_delete_result(resp->body, resp->bodylen, &res);
    if (rc) {
        s3_error_t e;
        s3__error_set(&e, rc, "DeleteObjects answer is not a result: %s", px_strerror(rc));
        e.http_status = resp->status;
        s3__op_fail_now(op, &e);
        return;
    }
    s3__op_detach(op);
    op->cb.delete_objects(&res, NULL, op->arg);
    s3_delete_result_free(&res);
    s3__op_done(op);
}

int s3_delete_objects(s3_client_t *c, const char *bucket, const char *const *keys, size_t n,
                      s3_delete_objects_cb cb, void *arg, s3_op_t **out)
{
    if (!cb || !keys || n == 0 || n > S3_DELETE_MAX_KEYS)
        return UV_EINVAL;
    int rc = check_target(c, bucket, NULL);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (!keys[i] || s3_key_check(keys[i], strlen(keys[i])))
            return UV_EINVAL;
    }
    s3_op_t *op = s3__op_new(c, bucket, delobjs_resp, delobjs_fail, arg);
    if (!op)
        return UV_ENOMEM;
    op->cb.delete_objects = cb;
    rc = s3__delete_objects_request(op, keys, NULL, n);
    return start_or_abandon(op, rc, out);
}

/* ---------------------------------------------------------------------------------------------
 * GetBucketLifecycleConfiguration
 */

static void lifecycle_fail(s3_op_t *op, const s3_error_t *err)
{
    op->cb.lifecycle(NULL, err, op->arg);
}

static void lifecycle_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    if (err && strcmp(err->s3_code, "NoSuchLifecycleConfiguration") == 0) {
        /* Reference §8.5: no configuration at all means no rules. */
        s3__op_detach(op);
        op->cb.lifecycle(NULL, NULL, op->arg);
        s3__op_done(op);
        return;
    }
    if (err) {
        s3__op_fail_now(op, err);
        return;
    }
    s3_lifecycle_t lc;
    int rc = s3_xml_parse_lifecycle(resp->body, resp->bodylen, &lc);
    if (rc) {
        s3_error_t e;
        s3__error_set(&e, rc, "lifecycle answer is not a configuration: %s", px_strerror(rc));
        e.http_status = resp->status;
        s3__op_fail_now(op, &e);
        return;
    }
    s3__op_detach(op);
    op->cb.lifecycle(&lc, NULL, op->arg);
    s3_lifecycle_free(&lc);
    s3__op_done(op);
}

int s3_get_bucket_lifecycle(s3_client_t *c, const char *bucket, s3_lifecycle_get_cb cb, void *arg,
                            s3_op_t **out)
{
    if (!cb)
        return UV_EINVAL;
    int rc = check_target(c, bucket, NULL);
    if (rc)
        return rc;
    s3_op_t *op = s3__op_new(c, bucket, lifecycle_resp, lifecycle_fail, arg);
    if (!op)
        return UV_ENOMEM;
    op->cb.lifecycle = cb;
    op->method = "GET";
    op->idempotent = true;
    s3_query_add(&op->query, "lifecycle", NULL, 0);
    return start_or_abandon(op, 0, out);
}

/* ---------------------------------------------------------------------------------------------
 * From the configuration
 */

int s3_client_new_from_cfg(uv_loop_t *loop, struct auth_iam *iam, const cfg_t *cfg,
                           const s3_client_opts_t *tune, char *const *envp, s3_client_t **out,
                           const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    const char *td = cfg->s3.tempdir;
    if (!td || !*td) {
        *why = "[s3] tempdir is not set";
        return S3_E_URL;
    }
    s3_url_t *u = px_calloc(1, sizeof(*u));
    if (!u)
        return UV_ENOMEM;
    int rc = s3_url_parse(td, strlen(td), u, why);
    if (rc) {
        s3_url_wipe(u);
        px_free(u);
        return S3_E_URL;
    }
    char *const *env = envp ? envp : environ;
    const char *tr =
        cfg->s3.tempdir_region && *cfg->s3.tempdir_region ? cfg->s3.tempdir_region : NULL;
    s3_client_opts_t o = {.http = iam ? auth_iam_http(iam) : NULL, .iam = iam, .region = tr};
    if (tune) {
        o.addressing = tune->addressing;
        o.payload = tune->payload;
        o.timeout_ms = tune->timeout_ms;
        o.max_attempts = tune->max_attempts;
        o.get_chunk = tune->get_chunk;
    }
    auth_aws_keys_t keys;
    if (u->has_credentials) {
        /* spark-redshift's precedence: keys in the tempdir URL are the ones for S3. The chain is
         * not consulted, so the endpoint override and region come from the environment. */
        keys.access_key_id = u->access_key_id;
        keys.secret_access_key = u->secret_access_key;
        keys.session_token = NULL;
        o.keys = &keys;
        const char *ignore = auth_env_get(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
        if (!(ignore && strcasecmp(ignore, "true") == 0)) {
            const char *ep = auth_env_get(env, "AWS_ENDPOINT_URL_S3");
            if (!ep || !*ep)
                ep = auth_env_get(env, "AWS_ENDPOINT_URL");
            if (ep && *ep)
                o.endpoint = ep;
        }
        if (!o.region && cfg->iam.region && *cfg->iam.region)
            o.region = cfg->iam.region;
        if (!o.region)
            o.region = auth_env_get(env, "AWS_REGION");
        if (!o.region || !*o.region)
            o.region = auth_env_get(env, "AWS_DEFAULT_REGION");
        if (o.region && !*o.region)
            o.region = NULL;
        if (!o.http) {
            s3_url_wipe(u);
            px_free(u);
            *why = "the S3 client needs the IAM module's HTTP client";
            return UV_EINVAL;
        }
    } else if (!iam) {
        s3_url_wipe(u);
        px_free(u);
        *why = "no AWS credentials for S3: the tempdir has none and there is no provider chain";
        return UV_EINVAL;
    }
    rc = s3_client_new(loop, &o, out);
    s3_url_wipe(u);
    px_free(u);
    if (rc && !*why)
        *why = rc == UV_EINVAL ? "invalid S3 settings (endpoint, region or embedded keys)"
                               : "cannot create the S3 client";
    return rc;
}
