/*
 * S3 object operations on the event loop, through auth/'s shared HTTP client (libcurl multi on
 * libuv), signed with SigV4 under S3's rules: PutObject, multipart upload, ranged GetObject with
 * backpressure, HeadObject, ListObjectsV2, DeleteObject, DeleteObjects, and
 * GetBucketLifecycleConfiguration; the staging areas and the tempdir lifecycle check built on
 * them live in s3_stage.h and s3_lifecycle.h.
 *
 * Credentials: static keys given to the client (the ones embedded in the tempdir URL, which take
 * precedence, as in spark-redshift), else the proxy's own keys from auth_iam (the provider chain,
 * fetched per request from its cache, so refreshed keys are picked up). Endpoint, region and
 * addressing: s3_req.h. Retries: auth_aws_call's (throttling such as SlowDown, HTTP 500/503,
 * transport errors of idempotent requests), its clock-skew correction (RequestTimeTooSkewed),
 * plus one retry in the bucket's own region when S3 names it (AuthorizationHeaderMalformed,
 * PermanentRedirect).
 *
 * Callback rules, for every function taking one: called exactly once, never synchronously from
 * the starting call (a starting call that fails returns the error and never calls back). After
 * s3_op_cancel (or s3_upload_free) the callback is not called at all. s3_client_close delivers
 * AUTH_E_CANCELED to everything still in flight before `done` runs. Results and errors passed to
 * a callback are valid only during the call; the op handle is invalid once its final callback
 * has returned. Memory is bounded per operation: responses are capped (S3_*_MAX_BODY), GETs
 * move one chunk at a time.
 */
#ifndef S3_CLIENT_H
#define S3_CLIENT_H

#include "auth_sigv4.h"
#include "cfg.h"
#include "px_util.h"
#include "s3_req.h"
#include "s3_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct auth_http;
struct auth_iam;

typedef struct s3_client s3_client_t;
typedef struct s3_op s3_op_t;
typedef struct s3_upload s3_upload_t;

/* Whether request bodies are hashed into the signature. AUTO: always over http (nothing else
 * protects the bytes); over https only bodies up to 64 KiB, larger ones are sent as
 * UNSIGNED-PAYLOAD (reference §6; TLS protects them, and hashing megabytes costs loop time).
 * Bodies above 256 KiB are hashed on libuv's thread pool, never on the loop. */
typedef enum s3_payload {
    S3_PAYLOAD_AUTO = 0,
    S3_PAYLOAD_SIGNED,
    S3_PAYLOAD_UNSIGNED,
} s3_payload_t;

#define S3_PUT_MAX            ((size_t)16 << 20)  /* PutObject body bound (larger: multipart) */
#define S3_PART_MAX           ((size_t)256 << 20) /* our bound per part (S3 allows 5 GiB) */
#define S3_GET_CHUNK_DEFAULT  ((size_t)8 << 20)
#define S3_GET_CHUNK_MIN      ((size_t)1 << 10)
#define S3_GET_CHUNK_MAX      ((size_t)64 << 20)
#define S3_LIST_MAX_BODY      ((size_t)8 << 20) /* 1,000 keys of 1,024 bytes, URL-encoded */
#define S3_SMALL_MAX_BODY     ((size_t)4 << 20) /* other XML answers */
#define S3_TIMEOUT_DEFAULT_MS 30000

typedef struct s3_client_opts {
    struct auth_http *http;      /* required; shared, not owned (auth_iam_http()) */
    struct auth_iam *iam;        /* the provider chain's keys when `keys` is NULL; not owned */
    const auth_aws_keys_t *keys; /* static keys (copied, wiped on close); win over iam */
    const char *endpoint;        /* base URL override (s3_req.h precedence); NULL: resolved */
    const char *region;          /* signing region ([s3] tempdir_region); NULL: resolved */
    s3_addressing_t addressing;
    s3_payload_t payload;
    long timeout_ms;  /* per request without a body to move; 0: S3_TIMEOUT_DEFAULT_MS. Requests
                       * that move n bytes get timeout_ms + n / 128 KiB seconds. */
    int max_attempts; /* auth_aws_call attempts per request; 0: its default (3) */
    size_t get_chunk; /* GetObject range size; 0: S3_GET_CHUNK_DEFAULT */
} s3_client_opts_t;

/* 0, UV_EINVAL (no http, neither keys nor iam, a chunk size out of range, keys that fail
 * auth_aws_creds_validate) or UV_ENOMEM, or a libuv error. */
int s3_client_new(uv_loop_t *loop, const s3_client_opts_t *o, s3_client_t **out) PX_MUSTCHECK;

/*
 * The proxy's client for its [s3] configuration: keys embedded in tempdir win over the chain
 * (iam); region from tempdir_region, else the chain's; endpoint from the chain (which honours
 * AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and the profile's services section). With embedded keys
 * the chain is not asked at all, so the endpoint override is read from `envp`
 * (AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true;
 * envp NULL means the process environment) and the region from tempdir_region, [iam] region,
 * AWS_REGION or AWS_DEFAULT_REGION. `tune` (may be NULL) supplies addressing, payload,
 * timeout_ms, max_attempts and get_chunk; its other fields are ignored. The HTTP client is
 * auth_iam_http(iam), so iam is required. Returns 0, S3_E_URL (tempdir empty or invalid),
 * UV_EINVAL, or what s3_client_new returns; *why (may be NULL) gets a static reason.
 *
 * Startup, in the proxy: after auth_iam_new, when [s3] tempdir is set,
 *   s3_client_new_from_cfg(loop, iam, cfg, NULL, NULL, &s3, &why)   (log `why` on failure),
 * then, when [s3] check_lifecycle is true, s3_lifecycle_check (s3_lifecycle.h). On shutdown
 * close it with s3_client_close before auth_iam_close. A reload builds a new client the same way
 * (keys, tempdir and region may have changed) and closes the old one.
 */
int s3_client_new_from_cfg(uv_loop_t *loop, struct auth_iam *iam, const cfg_t *cfg,
                           const s3_client_opts_t *tune, char *const *envp, s3_client_t **out,
                           const char **why) PX_MUSTCHECK;

/* Ops in flight get AUTH_E_CANCELED (from the loop), uploads are detached (their handles stay
 * valid until s3_upload_free, which then only frees memory), static keys are wiped; `done` runs
 * once every callback has been delivered and every handle closed, after which the client is
 * freed. Close the client before the auth_http/auth_iam it uses. Safe inside a callback. */
void s3_client_close(s3_client_t *c, void (*done)(void *arg), void *arg);

/* Stops an operation; its callbacks are not called afterwards. A no-op on an op whose final
 * callback is running. */
void s3_op_cancel(s3_op_t *op);

/* Operations in flight (for tests and metrics). */
size_t s3_client_ops(const s3_client_t *c);

/* ---------------------------------------------------------------------------------------------
 * Single objects. `op` out-parameters may be NULL. Bucket and key rules: s3_req.h (UV_EINVAL).
 */

/* err NULL on success. */
typedef void (*s3_done_cb)(const s3_error_t *err, void *arg);

/* PutObject of a body up to S3_PUT_MAX bytes (copied; free it when this returns). `etag` is the
 * ETag header as S3 sent it. content_type may be NULL. */
typedef void (*s3_put_cb)(const char *etag, const s3_error_t *err, void *arg);
int s3_put_object(s3_client_t *c, const char *bucket, const char *key, const uint8_t *body,
                  size_t n, const char *content_type, s3_put_cb cb, void *arg,
                  s3_op_t **op) PX_MUSTCHECK;

typedef struct s3_head {
    uint64_t size;
    const char *etag;         /* "" when absent */
    const char *content_type; /* "" when absent */
    int64_t last_modified_ms; /* -1 when absent */
} s3_head_t;
typedef void (*s3_head_cb)(const s3_head_t *head, const s3_error_t *err, void *arg);
/* HeadObject; a missing key fails with S3_E_HTTP, http_status 404, s3_code "NotFound". */
int s3_head_object(s3_client_t *c, const char *bucket, const char *key, s3_head_cb cb, void *arg,
                   s3_op_t **op) PX_MUSTCHECK;

/* DeleteObject (S3 answers success for a missing key too). */
int s3_delete_object(s3_client_t *c, const char *bucket, const char *key, s3_done_cb cb, void *arg,
                     s3_op_t **op) PX_MUSTCHECK;

/*
 * GetObject, streamed in ranged chunks of get_chunk bytes, one at a time: `data` receives each
 * chunk in order (p valid only during the call; `total` is the object size) and returns
 * S3_GET_CONTINUE to have the next chunk fetched, or S3_GET_PAUSE to wait for s3_get_resume.
 * Chunks after the first carry If-Match with the first chunk's ETag, so an object replaced
 * mid-read fails (PreconditionFailed) instead of mixing versions. `done` runs once: after the
 * last chunk with err NULL, or with the error (after which no data call follows). Inside `data`
 * the op may be canceled or resumed. An empty object gives no data call.
 */
enum { S3_GET_CONTINUE = 0, S3_GET_PAUSE = 1 };
typedef int (*s3_get_data_cb)(const uint8_t *p, size_t n, uint64_t offset, uint64_t total,
                              void *arg);
typedef void (*s3_get_done_cb)(uint64_t total, const s3_error_t *err, void *arg);
int s3_get_object(s3_client_t *c, const char *bucket, const char *key, s3_get_data_cb data,
                  s3_get_done_cb done, void *arg, s3_op_t **op) PX_MUSTCHECK;
/* Fetches the next chunk of a paused GET; a no-op otherwise. */
void s3_get_resume(s3_op_t *op);

/* ---------------------------------------------------------------------------------------------
 * Buckets
 */

typedef struct s3_list_opts {
    const char *prefix;             /* NULL: whole bucket */
    const char *delimiter;          /* NULL: none (flat listing) */
    const char *continuation_token; /* the previous page's next_token; NULL for the first */
    const char *start_after;        /* NULL: none */
    int max_keys;                   /* 1..1000; 0: S3's default (1000) */
} s3_list_opts_t;

/* One page of ListObjectsV2 (with encoding-type=url, decoded for the caller). Page through with
 * page->next_token while page->truncated. */
typedef void (*s3_list_cb)(const s3_list_page_t *page, const s3_error_t *err, void *arg);
int s3_list_objects(s3_client_t *c, const char *bucket, const s3_list_opts_t *lo, s3_list_cb cb,
                    void *arg, s3_op_t **op) PX_MUSTCHECK;

/* DeleteObjects of 1..1000 keys (quiet mode, Content-MD5 as S3 requires). `res` lists the keys S3
 * could not delete; the call itself succeeds when S3 answered 200. UV_EINVAL for keys XML 1.0
 * cannot carry (s3_xml_escape): delete those with s3_delete_object. */
typedef void (*s3_delete_objects_cb)(const s3_delete_result_t *res, const s3_error_t *err,
                                     void *arg);
int s3_delete_objects(s3_client_t *c, const char *bucket, const char *const *keys, size_t n,
                      s3_delete_objects_cb cb, void *arg, s3_op_t **op) PX_MUSTCHECK;

/* GetBucketLifecycleConfiguration. A bucket without one (404 NoSuchLifecycleConfiguration) is a
 * success with lc NULL. */
typedef void (*s3_lifecycle_get_cb)(const s3_lifecycle_t *lc, const s3_error_t *err, void *arg);
int s3_get_bucket_lifecycle(s3_client_t *c, const char *bucket, s3_lifecycle_get_cb cb, void *arg,
                            s3_op_t **op) PX_MUSTCHECK;

/* ---------------------------------------------------------------------------------------------
 * Multipart upload. One step at a time per upload (UV_EBUSY otherwise); each step's callback
 * says when the next may start. Parts are numbered 1, 2, ... in call order; every part but the
 * last must hold at least S3_PART_MIN bytes (a shorter part is taken as the last one, and a part
 * after it is UV_EINVAL); at most S3_PART_MAX_COUNT parts of at most S3_PART_MAX bytes.
 */

/* Called once per step. `up` stays valid (until s3_upload_free); err NULL on success. */
typedef void (*s3_upload_cb)(s3_upload_t *up, const s3_error_t *err, void *arg);

/* CreateMultipartUpload; `cb` when the upload exists (or failed). *out is valid at once. */
int s3_upload_new(s3_client_t *c, const char *bucket, const char *key, const char *content_type,
                  s3_upload_cb cb, void *arg, s3_upload_t **out) PX_MUSTCHECK;
/* UploadPart of p[0..n): the bytes are borrowed until `cb` runs (or the upload is freed); do
 * not change them before. The ETag is kept for complete. */
int s3_upload_part(s3_upload_t *up, const uint8_t *p, size_t n, s3_upload_cb cb,
                   void *arg) PX_MUSTCHECK;
/* CompleteMultipartUpload with every part's ETag (a 200 carrying an <Error> is a failure; an
 * InternalError there is retried twice, as S3 advises). At least one part must have been
 * uploaded. */
int s3_upload_complete(s3_upload_t *up, s3_upload_cb cb, void *arg) PX_MUSTCHECK;
/* AbortMultipartUpload; stops a part in flight first (its callback is then not called). */
int s3_upload_abort(s3_upload_t *up, s3_upload_cb cb, void *arg) PX_MUSTCHECK;
/* Frees the handle (not from inside one of its callbacks' callers other than the callback
 * itself). An upload that was created and neither completed nor aborted is aborted in the
 * background, best effort, so no parts are left behind to be billed. */
void s3_upload_free(s3_upload_t *up);

const char *s3_upload_id(const s3_upload_t *up);   /* NULL before creation */
const char *s3_upload_etag(const s3_upload_t *up); /* the object's ETag after complete */
size_t s3_upload_parts(const s3_upload_t *up);
uint64_t s3_upload_bytes(const s3_upload_t *up);

#endif
