/*
 * The tempdir lifecycle check (reference §8.5, spark-redshift's
 * checkThatBucketHasObjectLifecycleConfiguration): staged files are deleted by rsproxy after
 * each operation, but a crash or kill leaves them behind, so the proxy warns at startup when no
 * lifecycle rule of the tempdir bucket covers the staging prefix.
 *
 * A rule covers the tempdir when its Status is Enabled and it has no filter, a filter without a
 * prefix, or a prefix (in <Filter>, in <Filter><And>, or the legacy top-level <Prefix>) that the
 * tempdir key starts with. Like spark-redshift, the check does not look at what the rule does
 * (it may only transition objects). One deliberate difference: the tempdir key is taken with a
 * trailing '/' (the staged objects all live under "<key>/<uuid>/"), so a rule on prefix
 * "tmp/" covers tempdir s3://bucket/tmp as well as s3://bucket/tmp/.
 *
 * How the proxy uses it (at startup, when [s3] check_lifecycle is true and tempdir is set):
 *   s3_lifecycle_check(client, cfg->s3.tempdir, cb, arg, NULL);
 *   cb: COVERED -> px_log(PX_LOG_INFO, "%s", res->message);
 *       NOT_COVERED or UNKNOWN -> px_log(PX_LOG_WARN, "%s", res->message);
 * The check never blocks startup or fails it.
 */
#ifndef S3_LIFECYCLE_H
#define S3_LIFECYCLE_H

#include "px_buf.h"
#include "px_util.h"
#include "s3_client.h"
#include "s3_types.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum s3_lifecycle_verdict {
    S3_LIFECYCLE_COVERED = 0,
    S3_LIFECYCLE_NOT_COVERED, /* no matching rule, or no lifecycle configuration at all */
    S3_LIFECYCLE_UNKNOWN,     /* the configuration could not be read (err says why) */
} s3_lifecycle_verdict_t;

/* Whether one rule covers objects under `key` (the rule above, pure). */
bool s3_lifecycle_rule_covers(const s3_lifecycle_rule_t *r, const char *key, size_t key_len);
/* Index of the first covering rule, or -1. lc may be NULL (no configuration). */
long s3_lifecycle_match(const s3_lifecycle_t *lc, const char *key, size_t key_len);

/* The key the check compares rule prefixes with: the tempdir's key with exactly one trailing
 * '/' ("" for a bucket root). Appends to out. */
void s3_lifecycle_tempdir_key(const char *key, size_t key_len, px_dbuf_t *out);

/*
 * The text to log (appended to out):
 *   COVERED:     "The S3 bucket <bucket> has lifecycle rule '<id>' covering <url>"
 *   NOT_COVERED: spark-redshift's WARN text, word for word: "The S3 bucket <bucket> does not
 *                have an object lifecycle configuration to ensure cleanup of temporary files.
 *                Consider configuring `tempdir` to point to a bucket with an object lifecycle
 *                policy that automatically deletes files after an expiration period. For more
 *                information, see
 *                https://docs.aws.amazon.com/AmazonS3/latest/dev/object-lifecycle-mgmt.html"
 *   UNKNOWN:     "An error occurred while trying to read the S3 bucket lifecycle configuration:
 *                <err->message> (<s3_code>)"
 * `url` is the tempdir without credentials; rule_id and err may be NULL where unused.
 */
void s3_lifecycle_message(s3_lifecycle_verdict_t v, const char *bucket, const char *url,
                          const char *rule_id, const s3_error_t *err, px_dbuf_t *out);

typedef struct s3_lifecycle_result {
    s3_lifecycle_verdict_t verdict;
    const char *bucket;
    const char *url;       /* tempdir, normalised to s3://, without credentials */
    const char *rule_id;   /* COVERED: the first covering rule's ID ("" when it has none) */
    const char *message;   /* what to log (above) */
    const s3_error_t *err; /* UNKNOWN: why; NULL otherwise */
} s3_lifecycle_result_t;

typedef void (*s3_lifecycle_check_cb)(const s3_lifecycle_result_t *res, void *arg);

/* GET ?lifecycle on the tempdir bucket, then the verdict. 0, S3_E_URL (tempdir does not parse),
 * or what s3_get_bucket_lifecycle returns; then no callback. */
int s3_lifecycle_check(s3_client_t *c, const char *tempdir, s3_lifecycle_check_cb cb, void *arg,
                       s3_op_t **op) PX_MUSTCHECK;

#endif
