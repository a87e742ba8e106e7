/*
 * s3/ internals shared by its .c files (s3__ names): the client and operation objects and the
 * request engine every operation goes through (credentials, endpoint, addressing, off-loop
 * payload hashing, the signed call, error conversion, the bucket-region retry, deferred error
 * delivery and the close protocol). Not for use outside s3/.
 */
#ifndef S3_INT_H
#define S3_INT_H

#include "auth_aws.h"
#include "auth_http.h"
#include "auth_iam.h"
#include "px_buf.h"
#include "s3_client.h"
#include "s3_stage.h"

#include <stdarg.h>
#include <uv.h>

#define S3__MAX_HEADERS    6
#define S3__QUERY_MAX      6144 /* auth_http refuses URLs above AUTH_HTTP_MAX_URL (8 KiB) */
#define S3__REGION_CACHE   16
#define S3__HASH_INLINE    ((size_t)256 << 10) /* bodies above this are hashed off the loop */
#define S3__SIGN_HTTPS_MAX ((size_t)64 << 10)  /* AUTO payload: signed up to this over https */

typedef struct s3__bucket_region {
    char bucket[64];
    char region[S3_REGION_MAX];
} s3__bucket_region_t;

struct s3_client {
    uv_loop_t *loop;
    struct auth_http *http; /* borrowed */
    struct auth_iam *iam;   /* borrowed; NULL with static keys */
    auth_aws_creds_t keys;  /* static keys; secrets wiped on close */
    bool has_keys;
    char *endpoint; /* owned; NULL: resolved per request */
    char *region;   /* owned; NULL: resolved per request */
    s3_addressing_t addressing;
    s3_payload_t payload;
    long timeout_ms;
    int max_attempts;
    size_t get_chunk;
    uv_timer_t defer;  /* delivers queued errors from the loop */
    struct s3_op *ops; /* every live op (in flight, queued or in a user callback) */
    size_t nops;
    int nwork;             /* ops hashing on the thread pool (the client outlives them) */
    struct s3_op *dq_head; /* ops waiting for deferred delivery, in order */
    struct s3_op *dq_tail;
    struct s3_upload *uploads; /* live upload handles (detached on close) */
    s3__bucket_region_t regions[S3__REGION_CACHE];
    unsigned region_next;
    bool closing;
    bool timer_closing;
    void (*done)(void *);
    void *done_arg;
};

/* The user's callback of an op, typed by its kind. */
typedef union s3__cb {
    s3_done_cb done;
    s3_put_cb put;
    s3_head_cb head;
    s3_get_done_cb get;
    s3_list_cb list;
    s3_delete_objects_cb delete_objects;
    s3_lifecycle_get_cb lifecycle;
    s3_upload_cb upload;
    s3_cleanup_cb cleanup;
} s3__cb_t;

struct s3_op;
/* The response of one request: err is NULL for a 2xx answer (resp then holds it), else the
 * converted error (resp is the last response, status 0 after a transport failure). */
typedef void (*s3__resp_fn)(struct s3_op *op, const s3_error_t *err, const auth_http_resp_t *resp);
/* Delivers a final error to the user's callback (deferred errors, close, early failures). */
typedef void (*s3__fail_fn)(struct s3_op *op, const s3_error_t *err);

struct s3_op {
    s3_client_t *client;
    /* The request being prepared or in flight (reset between the steps of multi-step ops). */
    const char *method; /* static string */
    char *bucket;       /* owned */
    char *key;          /* owned; NULL for bucket-level requests */
    size_t key_len;
    px_dbuf_t query;
    const char *hnames[S3__MAX_HEADERS]; /* static names */
    char *hvalues[S3__MAX_HEADERS];      /* owned values */
    size_t nheaders;
    const uint8_t *body; /* borrowed, or owned_body */
    size_t bodylen;
    uint8_t *owned_body;
    bool idempotent;
    size_t max_body;
    bool region_retried; /* one retry in the bucket's own region per request */
    /* Resolved per attempt chain: credentials (copied), endpoint, region, payload hash. */
    auth_aws_creds_t creds;
    char endpoint[S3_ENDPOINT_MAX];
    char region[S3_REGION_MAX];
    char payload_hash[72]; /* "" (signer hashes), a hex SHA-256, or UNSIGNED-PAYLOAD */
    /* In flight: at most one of these. */
    auth_iam_req_t *iam_req;
    auth_aws_call_t *call;
    uv_work_t work;
    bool in_work;
    /* Lifecycle. */
    bool canceled;      /* s3_op_cancel: no more callbacks; freed when nothing is pending */
    bool detached;      /* unlinked from the client: final callback running or done */
    bool queued;        /* on the deferred-delivery queue with `pending` */
    bool in_user;       /* inside a non-final user callback (GET data) */
    bool close_pending; /* close happened during in_work/in_user: deliver CANCELED after */
    s3_error_t pending;
    s3__resp_fn on_resp;
    s3__fail_fn on_fail;
    s3__cb_t cb; /* the user's callback */
    void *arg;
    void *ctx; /* kind-specific state */
    void (*ctx_free)(void *ctx);
    struct s3_op *prev, *next; /* client->ops */
    struct s3_op *dq_next;
};

/* Errors. */
void s3__error_set(s3_error_t *e, int code, const char *fmt, ...) PX_PRINTF(3, 4);
/* From auth_aws_call's error and last response: S3's error body (s3_xml_parse_error), or a code
 * derived from the status for body-less answers, request id and bucket region headers. */
void s3__error_from_aws(s3_error_t *e, const auth_aws_error_t *a, const auth_http_resp_t *resp);

/* Ops. s3__op_new links a new op (bucket copied; NULL on allocation failure); the caller sets
 * op->cb. */
s3_op_t *s3__op_new(s3_client_t *c, const char *bucket, s3__resp_fn on_resp, s3__fail_fn on_fail,
                    void *arg);
/* Sets (copies) the key; NULL for a bucket-level request. 0 or UV_ENOMEM. */
int s3__op_set_key(s3_op_t *op, const char *key, size_t len) PX_MUSTCHECK;
/* Clears method, query, headers and body for the next request of the op. */
void s3__op_reset_request(s3_op_t *op);
/* Adds a header (value copied). 0, UV_EINVAL (too many) or UV_ENOMEM. */
int s3__op_header(s3_op_t *op, const char *name, const char *value) PX_MUSTCHECK;
/* Removes a header by name (no-op when absent). */
void s3__op_header_del(s3_op_t *op, const char *name);
/* Body: borrowed (valid until the op's response) or owned (copied / taken from a dbuf). */
void s3__op_body_borrow(s3_op_t *op, const uint8_t *p, size_t n);
int s3__op_body_copy(s3_op_t *op, const uint8_t *p, size_t n) PX_MUSTCHECK;
void s3__op_body_take(s3_op_t *op, px_dbuf_t *b);
/* Starts the current request: credentials, then (maybe) hashing, then the signed call. Never
 * calls back synchronously; 0 or an error code (then nothing is in flight). */
int s3__op_send(s3_op_t *op) PX_MUSTCHECK;
/* Unlinks the op before its final callback (cancel becomes a no-op). */
void s3__op_detach(s3_op_t *op);
/* Frees a detached op (and its ctx). */
void s3__op_free(s3_op_t *op);
/* After an op's final callback: frees it and lets a closing client finish. */
void s3__op_done(s3_op_t *op);
/* Closes a closing client once nothing is left in flight (idempotent). */
void s3__client_maybe_finish(s3_client_t *c);
/* Final error now (from a loop callback): detach, on_fail, free. */
void s3__op_fail_now(s3_op_t *op, const s3_error_t *err);
/* Final error later, from the client's timer (for failures found in user context). */
void s3__op_fail_later(s3_op_t *op, const s3_error_t *err);
/* After a non-final user callback returned: frees a canceled op, or queues CANCELED when the
 * client closed meanwhile. True when the op must not be touched any more. */
bool s3__op_after_user(s3_op_t *op);
/* The starting call failed after s3__op_new: unlink and free without any callback. */
void s3__op_abandon(s3_op_t *op);

/* Request timeout for moving n bytes. */
long s3__timeout_for(const s3_client_t *c, uint64_t n);

/* Fills op's request as ListObjectsV2 (GET, query, bounds). 0 or UV_EINVAL. */
int s3__list_query(s3_op_t *op, const s3_list_opts_t *lo) PX_MUSTCHECK;
/* Fills op's request as DeleteObjects (POST ?delete, quiet XML body, Content-MD5). `lens` may be
 * NULL for NUL-terminated keys. 0, UV_EINVAL (see s3_xml_build_delete) or UV_ENOMEM. */
int s3__delete_objects_request(s3_op_t *op, const char *const *keys, const size_t *lens,
                               size_t n) PX_MUSTCHECK;

/* Uploads (s3_upload.c): detach every live upload from a closing client. */
void s3__uploads_detach(s3_client_t *c);

#endif
