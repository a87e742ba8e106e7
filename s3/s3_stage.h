/*
 * Staging areas under [s3] tempdir for the COPY FROM STDIN / TO STDOUT emulation (reference
 * §8.2, as spark-redshift's per-query temp dirs): each operation gets its own prefix
 * `<tempdir>/<uuid>/` with a random version-4 UUID from OpenSSL's RAND_bytes, so concurrent
 * sessions, proxies and retries never share objects; cleanup lists everything under the prefix
 * and deletes it in DeleteObjects batches.
 *
 * s3_stage_new is pure apart from the random bytes (no I/O); cleanup is an operation on an
 * s3_client_t with s3_client.h's callback rules.
 */
#ifndef S3_STAGE_H
#define S3_STAGE_H

#include "px_buf.h"
#include "px_util.h"
#include "s3_client.h"

#include <stdint.h>

typedef struct s3_stage s3_stage_t;

/* A fresh staging area under `tempdir` (an s3://, s3a:// or s3n:// URL; embedded credentials are
 * ignored here: the client carries them). 0, S3_E_URL (with *why, a static reason, when not
 * NULL), UV_EIO (the random generator failed) or UV_ENOMEM. */
int s3_stage_new(const char *tempdir, s3_stage_t **out, const char **why) PX_MUSTCHECK;
void s3_stage_free(s3_stage_t *st);

const char *s3_stage_bucket(const s3_stage_t *st);
/* The key prefix, "<tempdir key>/<uuid>/" with exactly one '/' at each joint; never empty. */
const char *s3_stage_prefix(const s3_stage_t *st);
/* "s3://<bucket>/<prefix>" for SQL (COPY ... FROM, UNLOAD ... TO); never credentials. */
const char *s3_stage_url(const s3_stage_t *st);
/* Appends the key of `name` inside the stage (prefix + name) to out. 0, UV_EINVAL (a name that
 * is empty, starts with '/', or makes a key s3_key_check refuses) or UV_ENOMEM. */
int s3_stage_key(const s3_stage_t *st, const char *name, px_dbuf_t *out) PX_MUSTCHECK;

/*
 * Deletes every object whose key starts with `prefix`: ListObjectsV2 pages of up to 1,000 keys,
 * each deleted with one DeleteObjects (keys XML cannot carry are deleted one by one). `prefix`
 * must be non-empty and end in '/', so a mistake can never empty a bucket. `deleted` counts the
 * objects removed. Keys S3 refused to delete do not stop the walk: the callback then gets
 * S3_E_HTTP with the first refusal's code and a message counting them. Incomplete multipart
 * uploads are not listed here: abort them through s3_upload_abort / s3_upload_free.
 */
typedef void (*s3_cleanup_cb)(uint64_t deleted, const s3_error_t *err, void *arg);
int s3_delete_prefix(s3_client_t *c, const char *bucket, const char *prefix, s3_cleanup_cb cb,
                     void *arg, s3_op_t **op) PX_MUSTCHECK;
/* s3_delete_prefix over the stage's prefix; the stage may be freed once this returns. */
int s3_stage_cleanup(s3_client_t *c, const s3_stage_t *st, s3_cleanup_cb cb, void *arg,
                     s3_op_t **op) PX_MUSTCHECK;

#endif
