/*
 * The S3 client: its lifecycle and close protocol, and the request engine every operation goes
 * through. The operations themselves live in s3_ops.c (single requests), s3_get.c (ranged GET),
 * s3_upload.c (multipart), s3_stage.c (staging cleanup) and s3_lifecycle.c (the tempdir check).
 *
 * One request of an op goes: credentials (static, or auth_iam's cache, asynchronously) →
 * endpoint, region and addressing (s3_req.c) → payload hash (inline, or on libuv's thread pool
 * for large bodies) → auth_aws_call (SigV4, retries, skew correction) → error conversion
 * (s3_xml.c) and at most one retry in the bucket's own region → the op's response function.
 * This module never logs; errors go back to the caller as s3_error_t.
 */
#include "s3_int.h"

#include "px_alloc.h"
#include "px_err.h"
#include "s3_xml.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------------------------------------
 * Errors
 */

void s3__error_set(s3_error_t *e, int code, const char *fmt, ...)
{
    memset(e, 0, sizeof(*e));
    e->code = code;
    e->unreachable = code == AUTH_E_HTTP || code == AUTH_E_TIMEOUT;
    va_list ap;
    va_start(ap, fmt);
    char tmp[sizeof(e->message)];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    auth_aws_sanitize(e->message, sizeof(e->message), tmp, PX_MIN((size_t)n, sizeof(tmp) - 1));
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    if (src)
        auth_aws_sanitize(dst, cap, src, strlen(src));
}

/* auth_http's error plus the last response; S3 error bodies and headers win over auth's generic
 * reading, because only they carry <Region>, and HEAD answers have no body at all. */
void s3__error_from_aws(s3_error_t *e, const auth_aws_error_t *a, const auth_http_resp_t *resp)
{
    memset(e, 0, sizeof(*e));
    e->code = a->code;
    e->http_status = a->http_status;
    e->unreachable = a->unreachable;
    copy_field(e->s3_code, sizeof(e->s3_code), a->aws_code);
    copy_field(e->message, sizeof(e->message), a->message);
    copy_field(e->request_id, sizeof(e->request_id), a->request_id);
    if (!resp || resp->status < 300)
        return;
    e->http_status = resp->status;
    if (e->code == AUTH_E_AWS)
        e->code = S3_E_HTTP;
    /* Our own parser (fuzzed, S3's shapes, <Region>) decides; auth's generic one only found
     * the code for its retry decisions. */
    e->s3_code[0] = '\0';
    if (!(resp->bodylen && s3_xml_parse_error(resp->body, resp->bodylen, e))) {
        s3_status_code_name(resp->status, e->s3_code, sizeof(e->s3_code));
        snprintf(e->message, sizeof(e->message), "HTTP %d from S3 without an error document",
                 resp->status);
    }
    if (!e->message[0])
        snprintf(e->message, sizeof(e->message), "%s", e->s3_code);
    const char *rid = auth_http_resp_header(resp, "x-amz-request-id");
    if (rid && !e->request_id[0])
        copy_field(e->request_id, sizeof(e->request_id), rid);
    const char *br = auth_http_resp_header(resp, "x-amz-bucket-region");
    if (br && !e->region[0])
        copy_field(e->region, sizeof(e->region), br);
}

static void error_from_code(s3_error_t *e, int code, const char *what)
{
    s3__error_set(e, code, "%s: %s", what, px_strerror(code));
}

/* ---------------------------------------------------------------------------------------------
 * Client lifecycle
 *
 * Errors found where a callback may not run (inside s3_client_close, inside s3_get_resume, after
 * a hash finished while the client closed) are queued on the op (`pending`) and delivered from
 * one 0 ms timer, in queue order. The same timer is the client's only handle: closing it is the
 * last step of s3_client_close, and its close callback is where the client's memory goes.
 */

/* Delivers every queued error. A user callback may queue more (they are delivered in this same
 * run) or cancel queued ops (freed here without a callback). */
static void defer_cb(uv_timer_t *t)
{
    s3_client_t *c = container_of(t, s3_client_t, defer);
    while (c->dq_head) {
        s3_op_t *op = c->dq_head;
        c->dq_head = op->dq_next;
        if (!c->dq_head)
            c->dq_tail = NULL;
        op->dq_next = NULL;
        op->queued = false;
        if (op->canceled) {
            s3__op_free(op);
            continue;
        }
        s3__op_detach(op);
        if (op->on_fail)
            op->on_fail(op, &op->pending);
        s3__op_free(op);
    }
    s3__client_maybe_finish(c);
}

/* The end of s3_client_close: nothing references the client any more. */
static void client_closed_cb(uv_handle_t *h)
{
    s3_client_t *c = container_of((uv_timer_t *)h, s3_client_t, defer);
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    auth_aws_creds_clear(&c->keys);
    px_free(c->endpoint);
    px_free(c->region);
    px_free(c);
    if (done)
        done(arg);
}

void s3__client_maybe_finish(s3_client_t *c)
{
    /* Live ops, hashes on the thread pool (their after-work callback reads the client) and
     * queued errors all still need the client. */
    if (!c->closing || c->ops || c->nwork > 0 || c->dq_head || c->timer_closing)
        return;
    c->timer_closing = true;
    uv_timer_stop(&c->defer);
    uv_close((uv_handle_t *)&c->defer, client_closed_cb);
}

int s3_client_new(uv_loop_t *loop, const s3_client_opts_t *o, s3_client_t **out)
{
    if (!loop || !o || !o->http || (!o->keys && !o->iam) ||
        (o->get_chunk && (o->get_chunk < S3_GET_CHUNK_MIN || o->get_chunk > S3_GET_CHUNK_MAX)) ||
        (o->region && (strlen(o->region) >= S3_REGION_MAX || !*o->region)) ||
        (o->endpoint && strlen(o->endpoint) >= S3_ENDPOINT_MAX))
        return UV_EINVAL;
    if (o->endpoint) {
        char host[S3_ENDPOINT_MAX], base[S3_ENDPOINT_MAX];
        bool https;
        if (auth_http_endpoint_parse(o->endpoint, host, sizeof(host), base, sizeof(base), &https) !=
            0)
            return UV_EINVAL;
    }
    s3_client_t *c = px_calloc(1, sizeof(*c));
    if (!c)
        return UV_ENOMEM;
    c->loop = loop;
    c->http = o->http;
    c->iam = o->iam;
    c->addressing = o->addressing;
    c->payload = o->payload;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : S3_TIMEOUT_DEFAULT_MS;
    c->max_attempts = o->max_attempts;
    c->get_chunk = o->get_chunk ? o->get_chunk : S3_GET_CHUNK_DEFAULT;
    int rc = 0;
    if (o->keys) {
        auth_aws_creds_t k = {
            .access_key_id = (char *)o->keys->access_key_id,
            .secret_access_key = (char *)o->keys->secret_access_key,
            .session_token = o->keys->session_token && *o->keys->session_token
                                 ? (char *)o->keys->session_token
                                 : NULL,
        };
        auth_aws_error_t verr;
        if (!k.access_key_id || !k.secret_access_key || auth_aws_creds_validate(&k, &verr) != 0)
            rc = UV_EINVAL;
        else if (auth_aws_creds_copy(&c->keys, &k) != 0)
            rc = UV_ENOMEM;
        else
            c->has_keys = true;
    }
    if (!rc && o->endpoint && !(c->endpoint = px_strdup(o->endpoint)))
        rc = UV_ENOMEM;
    if (!rc && o->region && !(c->region = px_strdup(o->region)))
        rc = UV_ENOMEM;
    if (!rc)
        rc = uv_timer_init(loop, &c->defer);
    if (rc) {
        auth_aws_creds_clear(&c->keys);
        px_free(c->endpoint);
        px_free(c->region);
        px_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void s3_client_close(s3_client_t *c, void (*done)(void *arg), void *arg)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    c->done = done;
    c->done_arg = arg;
    /* Upload handles belong to the caller and may outlive the client: cut their link first, so
     * the CANCELED step callbacks below already see a detached handle. */
    s3__uploads_detach(c);
    /* Every live op ends with AUTH_E_CANCELED, delivered from the timer and never from here:
     * the caller may hold locks or be in the middle of its own bookkeeping. Canceling the auth
     * requests first guarantees no other callback arrives for these ops meanwhile. */
    s3_error_t e;
    s3__error_set(&e, AUTH_E_CANCELED, "canceled: the S3 client is closing");
    for (s3_op_t *op = c->ops, *next; op; op = next) {
        next = op->next;
        if (op->queued)
            continue; /* already owed an error, delivered as it is */
        if (op->in_user) {
            op->close_pending = true; /* s3__op_after_user delivers */
            continue;
        }
        if (op->iam_req) {
            auth_iam_cancel(op->iam_req);
            op->iam_req = NULL;
        }
        if (op->call) {
            auth_aws_call_cancel(op->call);
            op->call = NULL;
        }
        if (op->in_work) {
            /* The hash cannot be stopped mid-way; the after-work callback delivers. */
            uv_cancel((uv_req_t *)&op->work);
            op->close_pending = true;
            continue;
        }
        s3__op_fail_later(op, &e);
    }
    s3__client_maybe_finish(c);
}

size_t s3_client_ops(const s3_client_t *c)
{
    return c->nops;
}

long s3__timeout_for(const s3_client_t *c, uint64_t n)
{
    /* A floor of 128 KiB/s on top of the base: a 5 MiB part gets 40 s more. */
    uint64_t extra = n / (128u << 10) * 1000u;
    uint64_t t = (uint64_t)c->timeout_ms + extra;
    return t > 3600000u ? 3600000 : (long)t;
}

/* ---------------------------------------------------------------------------------------------
 * Ops
 *
 * Who frees an op: while it is linked (c->ops) the client owns it. The code delivering its final
 * callback detaches it first (so s3_op_cancel and s3_client_close leave it alone), calls the
 * user, then frees it. A canceled op is detached at once and freed by whoever holds it at that
 * moment: s3_op_cancel itself when nothing is pending, otherwise the after-work callback (a hash
 * in flight), the deferred queue (an error queued), or s3__op_after_user (cancel from inside a
 * GET data callback).
 */

s3_op_t *s3__op_new(s3_client_t *c, const char *bucket, s3__resp_fn on_resp, s3__fail_fn on_fail,
                    void *arg)
{
    s3_op_t *op = px_calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->bucket = px_strdup(bucket ? bucket : "");
    if (!op->bucket) {
        px_free(op);
        return NULL;
    }
    op->client = c;
    op->on_resp = on_resp;
    op->on_fail = on_fail;
    op->arg = arg;
    op->max_body = S3_SMALL_MAX_BODY;
    px_dbuf_init(&op->query, S3__QUERY_MAX);
    op->next = c->ops;
    if (c->ops)
        c->ops->prev = op;
    c->ops = op;
    c->nops++;
    return op;
}

int s3__op_set_key(s3_op_t *op, const char *key, size_t len)
{
    px_free(op->key);
    op->key = NULL;
    op->key_len = 0;
    if (!key)
        return 0;
    if (!(op->key = px_strndup(key, len)))
        return UV_ENOMEM;
    op->key_len = len;
    return 0;
}

static void op_free_body(s3_op_t *op)
{
    if (op->owned_body) {
        px_wipe(op->owned_body, op->bodylen);
        px_free(op->owned_body);
    }
    op->owned_body = NULL;
    op->body = NULL;
    op->bodylen = 0;
}

void s3__op_reset_request(s3_op_t *op)
{
    op->method = NULL;
    px_dbuf_reset(&op->query);
    op->query.failed = false;
    for (size_t i = 0; i < op->nheaders; i++)
        px_free(op->hvalues[i]);
    op->nheaders = 0;
    op_free_body(op);
    op->idempotent = false;
    op->max_body = S3_SMALL_MAX_BODY;
    op->region_retried = false;
}

int s3__op_header(s3_op_t *op, const char *name, const char *value)
{
    s3__op_header_del(op, name);
    if (op->nheaders >= S3__MAX_HEADERS)
        return UV_EINVAL;
    char *v = px_strdup(value);
    if (!v)
        return UV_ENOMEM;
    op->hnames[op->nheaders] = name;
    op->hvalues[op->nheaders] = v;
    op->nheaders++;
    return 0;
}

void s3__op_header_del(s3_op_t *op, const char *name)
{
    for (size_t i = 0; i < op->nheaders; i++) {
        if (strcasecmp(op->hnames[i], name) != 0)
            continue;
        px_free(op->hvalues[i]);
        for (size_t j = i + 1; j < op->nheaders; j++) {
            op->hnames[j - 1] = op->hnames[j];
            op->hvalues[j - 1] = op->hvalues[j];
        }
        op->nheaders--;
        return;
    }
}

void s3__op_body_borrow(s3_op_t *op, const uint8_t *p, size_t n)
{
    op_free_body(op);
    op->body = p;
    op->bodylen = n;
}

int s3__op_body_copy(s3_op_t *op, const uint8_t *p, size_t n)
{
    op_free_body(op);
    if (n == 0)
        return 0;
    op->owned_body = px_malloc(n);
    if (!op->owned_body)
        return UV_ENOMEM;
    memcpy(op->owned_body, p, n);
    op->body = op->owned_body;
    op->bodylen = n;
    return 0;
}

void s3__op_body_take(s3_op_t *op, px_dbuf_t *b)
{
    op_free_body(op);
    size_t n = 0;
    op->owned_body = px_dbuf_steal(b, &n);
    op->body = op->owned_body;
    op->bodylen = op->owned_body ? n : 0;
}

void s3__op_detach(s3_op_t *op)
{
    if (op->detached)
        return;
    s3_client_t *c = op->client;
    if (op->prev)
        op->prev->next = op->next;
    else if (c->ops == op)
        c->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->prev = op->next = NULL;
    c->nops--;
    op->detached = true;
}

void s3__op_free(s3_op_t *op)
{
    if (!op)
        return;
    s3__op_reset_request(op);
    px_dbuf_free(&op->query);
    px_free(op->bucket);
    px_free(op->key);
    auth_aws_creds_clear(&op->creds);
    if (op->ctx_free)
        op->ctx_free(op->ctx);
    px_free(op);
}

void s3__op_done(s3_op_t *op)
{
    s3_client_t *c = op->client;
    s3__op_free(op);
    s3__client_maybe_finish(c);
}

void s3__op_abandon(s3_op_t *op)
{
    s3__op_detach(op);
    s3__op_done(op);
}

void s3__op_fail_now(s3_op_t *op, const s3_error_t *err)
{
    s3__op_detach(op);
    if (!op->canceled && op->on_fail)
        op->on_fail(op, err);
    s3__op_done(op);
}

void s3__op_fail_later(s3_op_t *op, const s3_error_t *err)
{
    s3_client_t *c = op->client;
    if (op->queued)
        return;
    op->pending = *err;
    op->queued = true;
    op->dq_next = NULL;
    if (c->dq_tail)
        c->dq_tail->dq_next = op;
    else
        c->dq_head = op;
    c->dq_tail = op;
    uv_timer_start(&c->defer, defer_cb, 0, 0);
}

bool s3__op_after_user(s3_op_t *op)
{
    s3_client_t *c = op->client;
    op->in_user = false;
    if (op->canceled) {
        s3__op_done(op);
        return true;
    }
    if (op->close_pending || c->closing) {
        s3_error_t e;
        s3__error_set(&e, AUTH_E_CANCELED, "canceled: the S3 client is closing");
        s3__op_fail_later(op, &e);
        return true;
    }
    return false;
}

void s3_op_cancel(s3_op_t *op)
{
    if (!op || op->canceled || (op->detached && !op->queued))
        return;
    s3_client_t *c = op->client;
    op->canceled = true;
    if (op->iam_req) {
        auth_iam_cancel(op->iam_req);
        op->iam_req = NULL;
    }
    if (op->call) {
        auth_aws_call_cancel(op->call);
        op->call = NULL;
    }
    if (op->in_work)
        uv_cancel((uv_req_t *)&op->work);
    s3__op_detach(op);
    /* Whoever holds the op right now frees it: the after-work callback, the deferred queue, or
     * the code that called into the user. */
    if (!op->in_work && !op->queued && !op->in_user)
        s3__op_free(op);
    s3__client_maybe_finish(c);
}

/* ---------------------------------------------------------------------------------------------
 * The request engine
 */

static void bucket_region_set(s3_client_t *c, const char *bucket, const char *region)
{
    for (size_t i = 0; i < S3__REGION_CACHE; i++) {
        if (strcmp(c->regions[i].bucket, bucket) == 0) {
            snprintf(c->regions[i].region, sizeof(c->regions[i].region), "%s", region);
            return;
        }
    }
    s3__bucket_region_t *slot = &c->regions[c->region_next++ % S3__REGION_CACHE];
    snprintf(slot->bucket, sizeof(slot->bucket), "%s", bucket);
    snprintf(slot->region, sizeof(slot->region), "%s", region);
}

static const char *bucket_region_get(const s3_client_t *c, const char *bucket)
{
    for (size_t i = 0; i < S3__REGION_CACHE; i++) {
        if (c->regions[i].bucket[0] && strcmp(c->regions[i].bucket, bucket) == 0)
            return c->regions[i].region;
    }
    return NULL;
}

static bool region_name_ok(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n >= S3_REGION_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
            return false;
    }
    return true;
}

static void call_cb(const auth_aws_error_t *aerr, const auth_http_resp_t *resp, void *arg);

/* Signs and sends the request with what op->creds/endpoint/region/payload_hash hold. The
 * location is rebuilt per attempt chain because a region redirect may change the endpoint.
 * auth_aws_call copies everything it is given (body included), so the op's request may be reset
 * or the caller's buffer reused as soon as this returns. */
static int op_dispatch(s3_op_t *op)
{
    s3_client_t *c = op->client;
    if (op->query.failed)
        return UV_EINVAL;
    px_dbuf_t ep, path;
    px_dbuf_init(&ep, S3_ENDPOINT_MAX + 80);
    px_dbuf_init(&path, 8192);
    bool virt;
    int rc = s3_build_location(op->endpoint, c->addressing, op->bucket, op->key, op->key_len, &ep,
                               &path, &virt);
    if (rc) {
        px_dbuf_free(&ep);
        px_dbuf_free(&path);
        return rc;
    }
    auth_http_header_t hdrs[S3__MAX_HEADERS];
    for (size_t i = 0; i < op->nheaders; i++) {
        hdrs[i].name = op->hnames[i];
        hdrs[i].value = op->hvalues[i];
    }
    const char *query = px_dbuf_cstr(&op->query);
    auth_aws_call_opts_t o = {
        .method = op->method,
        .endpoint = px_dbuf_cstr(&ep),
        .path = px_dbuf_cstr(&path),
        .query = query && *query ? query : NULL,
        .headers = hdrs,
        .nheaders = op->nheaders,
        .body = op->body,
        .bodylen = op->bodylen,
        .service = AUTH_SVC_S3,
        .region = op->region,
        .creds = &op->creds,
        .proto = AUTH_PROTO_REST_XML,
        .s3 = true,
        .payload_hash = op->payload_hash[0] ? op->payload_hash : NULL,
        .idempotent = op->idempotent,
        .max_attempts = c->max_attempts,
        .timeout_ms =
            s3__timeout_for(c, op->bodylen + (op->max_body > S3_SMALL_MAX_BODY ? op->max_body : 0)),
        .max_body = op->max_body,
    };
    rc = auth_aws_call(c->http, &o, call_cb, op, &op->call);
    px_dbuf_free(&ep);
    px_dbuf_free(&path);
    if (rc)
        op->call = NULL;
    return rc;
}

static void hash_work_cb(uv_work_t *w)
{
    s3_op_t *op = container_of(w, s3_op_t, work);
    uint8_t md[SHA256_DIGEST_LENGTH];
    /* The body is not touched by the loop thread while in_work is set (cancel and close wait
     * for the after-work callback before freeing anything). */
    if (!EVP_Digest(op->body, op->bodylen, md, NULL, EVP_sha256(), NULL)) {
        op->payload_hash[0] = '\0';
        return;
    }
    px_hex_encode(md, sizeof(md), op->payload_hash);
}

static void hash_after_cb(uv_work_t *w, int status)
{
    s3_op_t *op = container_of(w, s3_op_t, work);
    s3_client_t *c = op->client;
    op->in_work = false;
    c->nwork--;
    if (op->canceled) {
        s3__op_done(op);
        return;
    }
    s3_error_t e;
    if (op->close_pending || c->closing) {
        s3__error_set(&e, AUTH_E_CANCELED, "canceled: the S3 client is closing");
        s3__op_fail_later(op, &e);
        return;
    }
    int rc = status != 0 ? status : (op->payload_hash[0] ? op_dispatch(op) : UV_ENOMEM);
    if (rc) {
        error_from_code(&e, rc, "cannot send the S3 request");
        s3__op_fail_now(op, &e);
    }
}

/* Credentials are known: resolve where the request goes and how its payload is signed. */
static int op_resolved(s3_op_t *op, const auth_aws_creds_t *creds, const char *chain_endpoint,
                       const char *chain_region)
{
    s3_client_t *c = op->client;
    auth_aws_creds_clear(&op->creds);
    if (auth_aws_creds_copy(&op->creds, creds) != 0)
        return UV_ENOMEM;
    bool aws_default;
    int rc = s3_resolve_target(c->endpoint, c->region, chain_endpoint, chain_region,
                               bucket_region_get(c, op->bucket), op->endpoint, sizeof(op->endpoint),
                               op->region, sizeof(op->region), &aws_default);
    if (rc)
        return rc;
    op->payload_hash[0] = '\0';
    if (op->bodylen == 0)
        return op_dispatch(op);
    bool https = strncasecmp(op->endpoint, "https://", 8) == 0;
    bool sign = c->payload == S3_PAYLOAD_SIGNED ||
                (c->payload == S3_PAYLOAD_AUTO && (!https || op->bodylen <= S3__SIGN_HTTPS_MAX));
    if (!sign) {
        snprintf(op->payload_hash, sizeof(op->payload_hash), "UNSIGNED-PAYLOAD");
        return op_dispatch(op);
    }
    if (op->bodylen <= S3__HASH_INLINE)
        return op_dispatch(op); /* the signer hashes it; cheap at this size */
    /* The worker reads the body while the caller may cancel and reuse a borrowed buffer (a
     * thread cannot be stopped mid-hash), so it hashes a copy the op owns. auth_aws_call copies
     * the body anyway; this only happens for large signed payloads (plain http). */
    if (!op->owned_body && (rc = s3__op_body_copy(op, op->body, op->bodylen)) != 0)
        return rc;
    rc = uv_queue_work(c->loop, &op->work, hash_work_cb, hash_after_cb);
    if (rc)
        return rc;
    op->in_work = true;
    c->nwork++;
    return 0;
}

/* auth_iam's answer: the chain's keys (from its cache, refreshed ahead of expiry), its region
 * and S3 endpoint. Asked per request, so a long GET or upload follows key rotation. */
static void keys_cb(const auth_aws_keys_t *keys, int64_t expiration_ms, const char *region,
                    const char *s3_endpoint, const auth_iam_error_t *err, void *arg)
{
    s3_op_t *op = arg;
    op->iam_req = NULL;
    s3_error_t e;
    if (err) {
        s3__error_set(&e, err->code, "%s", err->message ? err->message : "no AWS credentials");
        copy_field(e.s3_code, sizeof(e.s3_code), err->aws_code);
        e.unreachable = err->unreachable;
        s3__op_fail_now(op, &e);
        return;
    }
    /* A borrowed view; op_resolved copies it. */
    auth_aws_creds_t k = {
        .access_key_id = (char *)keys->access_key_id,
        .secret_access_key = (char *)keys->secret_access_key,
        .session_token =
            keys->session_token && *keys->session_token ? (char *)keys->session_token : NULL,
        .expiration_ms = expiration_ms,
    };
    int rc = op_resolved(op, &k, s3_endpoint, region);
    if (rc) {
        error_from_code(&e, rc, "cannot send the S3 request");
        s3__op_fail_now(op, &e);
    }
}

int s3__op_send(s3_op_t *op)
{
    s3_client_t *c = op->client;
    if (c->closing)
        return PX_E_SHUTDOWN;
    if (!op->method)
        return UV_EINVAL;
    if (c->has_keys)
        return op_resolved(op, &c->keys, NULL, NULL);
    return auth_iam_get_aws_keys(c->iam, keys_cb, op, &op->iam_req);
}

/* S3's ways of saying "this bucket lives in another region": AuthorizationHeaderMalformed with
 * <Region> (a request signed for the wrong region), 301 PermanentRedirect with
 * x-amz-bucket-region (a request sent to the wrong regional endpoint). */
static bool is_region_redirect(const s3_error_t *e)
{
    return e->code == S3_E_HTTP && e->region[0] &&
           (e->http_status == 301 || strcmp(e->s3_code, "AuthorizationHeaderMalformed") == 0 ||
            strcmp(e->s3_code, "PermanentRedirect") == 0 ||
            strcmp(e->s3_code, "IllegalLocationConstraintException") == 0);
}

/* auth_aws_call's answer, after its own retries (throttling, 5xx, transport, skew). */
static void call_cb(const auth_aws_error_t *aerr, const auth_http_resp_t *resp, void *arg)
{
    s3_op_t *op = arg;
    op->call = NULL;
    if (!aerr) {
        op->on_resp(op, NULL, resp);
        return;
    }
    s3_error_t e;
    s3__error_from_aws(&e, aerr, resp);
    if (!op->region_retried && is_region_redirect(&e) && region_name_ok(e.region) &&
        strcmp(e.region, op->region) != 0 && !op->client->closing) {
        /* S3 named the bucket's region: remember it and sign for it (and, on AWS's default
         * endpoint, go to that region's endpoint), once per request. */
        bucket_region_set(op->client, op->bucket, e.region);
        op->region_retried = true;
        if (s3__op_send(op) == 0)
            return;
    }
    op->on_resp(op, &e, resp);
}
