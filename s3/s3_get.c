/*
 * GetObject as a sequence of ranged GETs ("Range: bytes=a-b", get_chunk bytes each), one in
 * flight at a time, each handed to the caller before the next is asked for: memory stays at one
 * chunk per GET and a slow consumer (a client reading COPY TO STDOUT) slows the download instead
 * of filling buffers. The first chunk's ETag pins the object (If-Match on the others).
 *
 * S3 answers a range request on an empty object with 416 InvalidRange, so a 416 for the first
 * chunk is followed by one plain GET (bounded by the chunk size like every other answer). A
 * server that ignores Range and answers 200 is accepted when the whole object fits in a chunk.
 * Retries of each chunk are auth_aws_call's; this file does not retry on its own.
 */
#include "s3_int.h"

#include "px_alloc.h"
#include "px_err.h"

#include <stdio.h>
#include <string.h>

typedef struct get_ctx {
    s3_get_data_cb data;
    uint64_t offset;
    uint64_t total;
    bool total_known;
    char *etag; /* of the first chunk; If-Match for the rest */
    bool plain; /* the 416 fallback (no Range header) */
    bool paused;
    bool resume_asked; /* s3_get_resume during the data callback */
} get_ctx_t;

static void get_ctx_free(void *p)
{
    get_ctx_t *g = p;
    if (!g)
        return;
    px_free(g->etag);
    px_free(g);
}

static void get_fail(s3_op_t *op, const s3_error_t *err)
{
    op->cb.get(0, err, op->arg);
}

static void get_fail_code(s3_op_t *op, int code, const char *fmt, const char *detail)
{
    s3_error_t e;
    s3__error_set(&e, code, fmt, detail);
    s3__op_fail_now(op, &e);
}

/* Prepares the request for the next chunk (or the plain fallback). */
static int get_prepare(s3_op_t *op)
{
    get_ctx_t *g = op->ctx;
    s3_client_t *c = op->client;
    op->method = "GET";
    op->idempotent = true;
    op->max_body = c->get_chunk;
    op->region_retried = false;
    if (g->plain) {
        s3__op_header_del(op, "Range");
        return 0;
    }
    char range[64];
    snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)g->offset,
             (unsigned long long)(g->offset + c->get_chunk - 1));
    int rc = s3__op_header(op, "Range", range);
    if (!rc && g->etag && *g->etag)
        rc = s3__op_header(op, "If-Match", g->etag);
    return rc;
}

static void get_finish(s3_op_t *op)
{
    get_ctx_t *g = op->ctx;
    s3__op_detach(op);
    op->cb.get(g->total, NULL, op->arg);
    s3__op_done(op);
}

/* Asks for the next chunk from a loop callback (errors are delivered at once). */
static void get_next(s3_op_t *op)
{
    int rc = get_prepare(op);
    if (!rc)
        rc = s3__op_send(op);
    if (rc) {
        s3_error_t e;
        s3__error_set(&e, rc, "cannot request the next part of the object: %s", px_strerror(rc));
        s3__op_fail_now(op, &e);
    }
}

static void get_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    get_ctx_t *g = op->ctx;
    if (err) {
        if (err->http_status == 416 && g->offset == 0 && !g->plain) {
            /* Only an empty object has no byte 0: fetch it whole (it is tiny or the answer is
             * refused as too large). */
            g->plain = true;
            get_next(op);
            return;
        }
        if (err->http_status == 412 && g->etag) {
            s3_error_t e = *err;
            snprintf(e.message, sizeof(e.message),
                     "the object changed while it was being read (ETag no longer %.64s)", g->etag);
            s3__op_fail_now(op, &e);
            return;
        }
        s3__op_fail_now(op, err);
        return;
    }
    uint64_t first = 0, last = 0, total = 0;
    size_t n = resp->bodylen;
    if (resp->status == 206) {
        const char *cr = auth_http_resp_header(resp, "Content-Range");
        if (!cr || s3_parse_content_range(cr, &first, &last, &total) != 0) {
            get_fail_code(op, S3_E_PARSE, "%s", "a 206 answer without a valid Content-Range");
            return;
        }
        if (first != g->offset || last - first + 1 != n) {
            get_fail_code(op, S3_E_PARSE, "%s",
                          "the answer's Content-Range does not match the range asked for");
            return;
        }
        if (g->total_known && total != g->total) {
            get_fail_code(op, S3_E_PARSE, "%s", "the object's size changed while it was read");
            return;
        }
    } else if (resp->status == 200) {
        /* The whole object: the 416 fallback, or a server ignoring Range (then the object fit
         * in one chunk, or max_body would have refused it). */
        if (g->offset != 0) {
            get_fail_code(op, S3_E_PARSE, "%s", "a range request was answered with 200");
            return;
        }
        total = n;
    } else {
        char detail[64];
        snprintf(detail, sizeof(detail), "%d", resp->status);
        get_fail_code(op, S3_E_PARSE, "unexpected HTTP status %s to GetObject", detail);
        return;
    }
    if (!g->total_known) {
        g->total = total;
        g->total_known = true;
        const char *etag = auth_http_resp_header(resp, "ETag");
        if (etag && *etag && !(g->etag = px_strdup(etag))) {
            get_fail_code(op, UV_ENOMEM, "%s", "out of memory");
            return;
        }
    }
    int want = S3_GET_CONTINUE;
    if (n > 0) {
        op->in_user = true;
        g->resume_asked = false;
        want = g->data(resp->body, n, g->offset, g->total, op->arg);
        if (s3__op_after_user(op))
            return;
    }
    g->offset += n;
    if (g->offset >= g->total) {
        get_finish(op);
        return;
    }
    if (want == S3_GET_PAUSE && !g->resume_asked) {
        g->paused = true;
        return;
    }
    get_next(op);
}

int s3_get_object(s3_client_t *c, const char *bucket, const char *key, s3_get_data_cb data,
                  s3_get_done_cb done, void *arg, s3_op_t **out)
{
    if (!key || !data || !done)
        return UV_EINVAL;
    if (c->closing)
        return PX_E_SHUTDOWN;
    if (!s3_bucket_name_ok(bucket) || s3_key_check(key, strlen(key)))
        return UV_EINVAL;
    get_ctx_t *g = px_calloc(1, sizeof(*g));
    if (!g)
        return UV_ENOMEM;
    g->data = data;
    s3_op_t *op = s3__op_new(c, bucket, get_resp, get_fail, arg);
    if (!op) {
        px_free(g);
        return UV_ENOMEM;
    }
    op->cb.get = done;
    op->ctx = g;
    op->ctx_free = get_ctx_free;
    int rc = s3__op_set_key(op, key, strlen(key));
    if (!rc)
        rc = get_prepare(op);
    if (!rc)
        rc = s3__op_send(op);
    if (rc) {
        s3__op_abandon(op);
        return rc;
    }
    if (out)
        *out = op;
    return 0;
}

void s3_get_resume(s3_op_t *op)
{
    if (!op || op->canceled || op->detached || op->queued || op->on_resp != get_resp)
        return;
    get_ctx_t *g = op->ctx;
    if (op->in_user) {
        g->resume_asked = true;
        return;
    }
    if (!g->paused)
        return;
    g->paused = false;
    /* The caller's context: a failure to start is delivered from the loop, never from here. */
    int rc = get_prepare(op);
    if (!rc)
        rc = s3__op_send(op);
    if (rc) {
        s3_error_t e;
        s3__error_set(&e, rc, "cannot request the next part of the object: %s", px_strerror(rc));
        s3__op_fail_later(op, &e);
    }
}
