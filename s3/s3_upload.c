/*
 * Multipart upload (CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
 * AbortMultipartUpload) as a handle the caller drives one step at a time: the step's callback is
 * the backpressure signal ("send the next part now"), and parts are borrowed from the caller, so
 * an upload holds no more than the part in flight (plus auth_http's copies of it).
 *
 * The handle outlives its steps and the client: closing the client fails the step in flight
 * with AUTH_E_CANCELED and detaches the handle, which s3_upload_free then just frees. Freeing a
 * live upload (created, neither completed nor aborted) starts a background abort with no
 * callback, so an abandoned COPY leaves no billed parts behind.
 */
#include "s3_int.h"

#include "px_alloc.h"
#include "px_err.h"
#include "s3_xml.h"

#include <stdio.h>
#include <string.h>

typedef enum up_state {
    UP_CREATING = 0,
    UP_READY,
    UP_PART,
    UP_COMPLETING,
    UP_ABORTING,
    UP_COMPLETED,
    UP_ABORTED,
    UP_FAILED, /* creation failed: nothing exists on S3 */
} up_state_t;

struct s3_upload {
    s3_client_t *client; /* NULL once the client closed (detached) */
    char *bucket, *key;
    char *upload_id; /* NULL until created */
    char **etags;    /* per part, as UploadPart returned them */
    size_t nparts, cap;
    uint64_t bytes;
    bool short_part; /* a part below S3_PART_MIN went up: it was the last */
    up_state_t state;
    s3_op_t *step;   /* the step in flight (its ctx points back here) */
    size_t part_len; /* bytes of the part in flight */
    int complete_retries;
    char *etag; /* the object's, after complete */
    struct s3_upload *prev, *next;
};

#define COMPLETE_RETRIES 2

/* ---------------------------------------------------------------------------------------------
 * Handle bookkeeping
 */

static void up_link(s3_client_t *c, s3_upload_t *up)
{
    up->client = c;
    up->prev = NULL;
    up->next = c->uploads;
    if (c->uploads)
        c->uploads->prev = up;
    c->uploads = up;
}

static void up_unlink(s3_upload_t *up)
{
    s3_client_t *c = up->client;
    if (!c)
        return;
    if (up->prev)
        up->prev->next = up->next;
    else if (c->uploads == up)
        c->uploads = up->next;
    if (up->next)
        up->next->prev = up->prev;
    up->prev = up->next = NULL;
    up->client = NULL;
}

void s3__uploads_detach(s3_client_t *c)
{
    while (c->uploads)
        up_unlink(c->uploads);
}

static void up_free_fields(s3_upload_t *up)
{
    for (size_t i = 0; i < up->nparts; i++)
        px_free(up->etags[i]);
    px_free(up->etags);
    px_free(up->bucket);
    px_free(up->key);
    px_free(up->upload_id);
    px_free(up->etag);
    px_free(up);
}

const char *s3_upload_id(const s3_upload_t *up)
{
    return up->upload_id;
}

const char *s3_upload_etag(const s3_upload_t *up)
{
    return up->etag;
}

size_t s3_upload_parts(const s3_upload_t *up)
{
    return up->nparts;
}

uint64_t s3_upload_bytes(const s3_upload_t *up)
{
    return up->bytes;
}

/* ---------------------------------------------------------------------------------------------
 * Steps
 */

/* The state a failed step leaves the upload in. */
static up_state_t state_after_failure(const s3_upload_t *up, up_state_t during)
{
    switch (during) {
    case UP_CREATING:
        return UP_FAILED;
    case UP_PART:
    case UP_COMPLETING:
    case UP_ABORTING:
        /* The upload still exists: the caller may retry the step, abort, or free (which
         * aborts in the background). */
        return UP_READY;
    default:
        return up->state;
    }
}

static void step_fail(s3_op_t *op, const s3_error_t *err)
{
    s3_upload_t *up = op->ctx;
    up->step = NULL;
    up->state = state_after_failure(up, up->state);
    op->cb.upload(up, err, op->arg);
}

/* Success of a step: the op is finished before the user may free the upload. */
static void step_succeed(s3_op_t *op, up_state_t next)
{
    s3_upload_t *up = op->ctx;
    up->step = NULL;
    up->state = next;
    s3__op_detach(op);
    op->cb.upload(up, NULL, op->arg);
    s3__op_done(op);
}

static void step_fail_code(s3_op_t *op, int code, const char *msg, int status)
{
    s3_error_t e;
    s3__error_set(&e, code, "%s", msg);
    e.http_status = status;
    s3__op_fail_now(op, &e);
}

/* A new step op for `up`, with key and uploadId filled in. */
static s3_op_t *step_new(s3_upload_t *up, s3__resp_fn on_resp, s3_upload_cb cb, void *arg, int *rc)
{
    s3_op_t *op = s3__op_new(up->client, up->bucket, on_resp, step_fail, arg);
    if (!op) {
        *rc = UV_ENOMEM;
        return NULL;
    }
    op->cb.upload = cb;
    op->ctx = up;
    *rc = s3__op_set_key(op, up->key, strlen(up->key));
    if (!*rc && up->upload_id)
        s3_query_add(&op->query, "uploadId", up->upload_id, strlen(up->upload_id));
    if (!*rc && op->query.failed)
        *rc = UV_ENOMEM; /* upload ids are short (s3_xml_parse_initiate): only memory fails */
    if (*rc) {
        s3__op_abandon(op);
        return NULL;
    }
    return op;
}

static int step_start(s3_upload_t *up, s3_op_t *op, up_state_t during)
{
    int rc = s3__op_send(op);
    if (rc) {
        s3__op_abandon(op);
        return rc;
    }
    up->step = op;
    up->state = during;
    return 0;
}

static int check_idle(const s3_upload_t *up)
{
    if (!up->client || up->client->closing)
        return PX_E_SHUTDOWN;
    if (up->step)
        return UV_EBUSY;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * CreateMultipartUpload
 */

static void create_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    s3_upload_t *up = op->ctx;
    if (err) {
        s3__op_fail_now(op, err);
        return;
    }
    char *id = NULL;
    int rc = s3_xml_parse_initiate(resp->body, resp->bodylen, &id);
    if (rc) {
        step_fail_code(op, rc, "CreateMultipartUpload answer without a usable UploadId",
                       resp->status);
        return;
    }
    up->upload_id = id;
    step_succeed(op, UP_READY);
}

int s3_upload_new(s3_client_t *c, const char *bucket, const char *key, const char *content_type,
                  s3_upload_cb cb, void *arg, s3_upload_t **out)
{
    if (!cb || !out || !key)
        return UV_EINVAL;
    if (c->closing)
        return PX_E_SHUTDOWN;
    if (!s3_bucket_name_ok(bucket) || s3_key_check(key, strlen(key)))
        return UV_EINVAL;
    s3_upload_t *up = px_calloc(1, sizeof(*up));
    if (!up)
        return UV_ENOMEM;
    up->bucket = px_strdup(bucket);
    up->key = px_strdup(key);
    if (!up->bucket || !up->key) {
        up_free_fields(up);
        return UV_ENOMEM;
    }
    up_link(c, up);
    int rc;
    s3_op_t *op = step_new(up, create_resp, cb, arg, &rc);
    if (op) {
        op->method = "POST";
        op->idempotent = false; /* a retried create could leave a second, orphaned upload */
        s3_query_add(&op->query, "uploads", NULL, 0);
        if (content_type)
            rc = s3__op_header(op, "Content-Type", content_type);
        if (rc)
            s3__op_abandon(op);
        else
            rc = step_start(up, op, UP_CREATING);
    }
    if (rc) {
        up_unlink(up);
        up_free_fields(up);
        return rc;
    }
    *out = up;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * UploadPart
 */

static void part_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    s3_upload_t *up = op->ctx;
    if (err) {
        s3__op_fail_now(op, err);
        return;
    }
    const char *etag = auth_http_resp_header(resp, "ETag");
    if (!etag || !*etag) {
        step_fail_code(op, S3_E_PARSE, "UploadPart answer without an ETag", resp->status);
        return;
    }
    if (up->nparts == up->cap) {
        size_t ncap = up->cap ? up->cap * 2 : 16;
        char **p = px_realloc(up->etags, ncap * sizeof(*p));
        if (!p) {
            step_fail_code(op, UV_ENOMEM, "out of memory", 0);
            return;
        }
        up->etags = p;
        up->cap = ncap;
    }
    if (!(up->etags[up->nparts] = px_strdup(etag))) {
        step_fail_code(op, UV_ENOMEM, "out of memory", 0);
        return;
    }
    up->nparts++;
    up->bytes += up->part_len;
    if (up->part_len < S3_PART_MIN)
        up->short_part = true;
    step_succeed(op, UP_READY);
}

int s3_upload_part(s3_upload_t *up, const uint8_t *p, size_t n, s3_upload_cb cb, void *arg)
{
    if (!up || !cb || !p || n == 0 || n > S3_PART_MAX)
        return UV_EINVAL;
    int rc = check_idle(up);
    if (rc)
        return rc;
    if (up->state != UP_READY)
        return PX_E_STATE;
    /* S3 refuses (at complete, EntityTooSmall) a short part that is not the last one; say so
     * now, while the caller can still act on it. */
    if (up->short_part || up->nparts >= S3_PART_MAX_COUNT)
        return UV_EINVAL;
    s3_op_t *op = step_new(up, part_resp, cb, arg, &rc);
    if (!op)
        return rc;
    char num[16];
    snprintf(num, sizeof(num), "%zu", up->nparts + 1);
    s3_query_add(&op->query, "partNumber", num, strlen(num));
    op->method = "PUT";
    op->idempotent = true; /* the same part number again replaces the part */
    s3__op_body_borrow(op, p, n);
    up->part_len = n;
    return step_start(up, op, UP_PART);
}

/* ---------------------------------------------------------------------------------------------
 * CompleteMultipartUpload
 */

static bool complete_retryable(const s3_error_t *e)
{
    return strcmp(e->s3_code, "InternalError") == 0 || strcmp(e->s3_code, "SlowDown") == 0 ||
           strcmp(e->s3_code, "ServiceUnavailable") == 0;
}

static void complete_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    s3_upload_t *up = op->ctx;
    if (err) {
        s3__op_fail_now(op, err);
        return;
    }
    char *etag = NULL;
    s3_error_t e;
    memset(&e, 0, sizeof(e));
    int rc = s3_xml_parse_complete(resp->body, resp->bodylen, &etag, &e);
    if (rc == 0) {
        px_free(up->etag);
        up->etag = etag;
        step_succeed(op, UP_COMPLETED);
        return;
    }
    if (rc == S3_E_HTTP) {
        /* 200 with an <Error>: S3 failed after accepting the request. */
        e.code = S3_E_HTTP;
        e.http_status = resp->status;
        e.unreachable = complete_retryable(&e);
        if (complete_retryable(&e) && up->complete_retries < COMPLETE_RETRIES &&
            !op->client->closing) {
            up->complete_retries++;
            op->region_retried = false;
            if (s3__op_send(op) == 0)
                return;
        }
        s3__op_fail_now(op, &e);
        return;
    }
    step_fail_code(op, rc, "CompleteMultipartUpload answer is not a result", resp->status);
}

int s3_upload_complete(s3_upload_t *up, s3_upload_cb cb, void *arg)
{
    if (!up || !cb)
        return UV_EINVAL;
    int rc = check_idle(up);
    if (rc)
        return rc;
    if (up->state != UP_READY)
        return PX_E_STATE;
    if (up->nparts == 0)
        return UV_EINVAL;
    px_dbuf_t body;
    px_dbuf_init(&body, (size_t)2 << 20);
    rc = s3_xml_build_complete((const char *const *)up->etags, up->nparts, &body);
    if (rc) {
        px_dbuf_free(&body);
        return rc;
    }
    s3_op_t *op = step_new(up, complete_resp, cb, arg, &rc);
    if (!op) {
        px_dbuf_free(&body);
        return rc;
    }
    op->method = "POST";
    op->idempotent = false;
    rc = s3__op_header(op, "Content-Type", "application/xml");
    if (rc) {
        px_dbuf_free(&body);
        s3__op_abandon(op);
        return rc;
    }
    s3__op_body_take(op, &body);
    up->complete_retries = 0;
    return step_start(up, op, UP_COMPLETING);
}

/* ---------------------------------------------------------------------------------------------
 * AbortMultipartUpload
 */

static void abort_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    PX_UNUSED(resp);
    /* An upload S3 no longer knows is as aborted as it gets. */
    if (err && !(err->code == S3_E_HTTP && strcmp(err->s3_code, "NoSuchUpload") == 0)) {
        s3__op_fail_now(op, err);
        return;
    }
    step_succeed(op, UP_ABORTED);
}

static void setup_abort(s3_op_t *op)
{
    op->method = "DELETE";
    op->idempotent = true;
}

int s3_upload_abort(s3_upload_t *up, s3_upload_cb cb, void *arg)
{
    if (!up || !cb)
        return UV_EINVAL;
    if (!up->client || up->client->closing)
        return PX_E_SHUTDOWN;
    if (up->step && up->state == UP_PART) {
        /* Documented: the part's callback is not called. */
        s3_op_cancel(up->step);
        up->step = NULL;
        up->state = UP_READY;
    }
    int rc = check_idle(up);
    if (rc)
        return rc;
    if (up->state != UP_READY || !up->upload_id)
        return PX_E_STATE;
    s3_op_t *op = step_new(up, abort_resp, cb, arg, &rc);
    if (!op)
        return rc;
    setup_abort(op);
    return step_start(up, op, UP_ABORTING);
}

/* Background abort after s3_upload_free: no callback, nothing to report to. */
static void bg_abort_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    PX_UNUSED(err);
    PX_UNUSED(resp);
    s3__op_detach(op);
    s3__op_done(op);
}

static void start_background_abort(s3_upload_t *up)
{
    s3_op_t *op = s3__op_new(up->client, up->bucket, bg_abort_resp, NULL, NULL);
    if (!op)
        return;
    int rc = s3__op_set_key(op, up->key, strlen(up->key));
    s3_query_add(&op->query, "uploadId", up->upload_id, strlen(up->upload_id));
    setup_abort(op);
    if (!rc && !op->query.failed)
        rc = s3__op_send(op);
    else if (!rc)
        rc = UV_EINVAL;
    if (rc)
        s3__op_abandon(op);
}

void s3_upload_free(s3_upload_t *up)
{
    if (!up)
        return;
    if (up->step) {
        s3_op_cancel(up->step);
        up->step = NULL;
    }
    s3_client_t *c = up->client;
    bool live = up->upload_id && up->state != UP_COMPLETED && up->state != UP_ABORTED;
    if (c && !c->closing && live)
        start_background_abort(up);
    up_unlink(up);
    up_free_fields(up);
}
