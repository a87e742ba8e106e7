/*
 * Types shared by s3/'s pure parsers (s3_xml.h) and its asynchronous client (s3_client.h): the
 * error every S3 operation reports, a page of ListObjectsV2, a bucket lifecycle configuration
 * and the outcome of a DeleteObjects batch. Strings in these structs are px_malloc'd and owned
 * by the struct; each has a _free function.
 */
#ifndef S3_TYPES_H
#define S3_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* S3 limits that shape the API (S3 API reference). */
#define S3_LIST_MAX_KEYS       1000 /* ListObjectsV2 max-keys */
#define S3_DELETE_MAX_KEYS     1000 /* DeleteObjects keys per request */
#define S3_LIFECYCLE_MAX_RULES 1000
#define S3_PART_MIN            ((size_t)5 << 20) /* every part but the last */
#define S3_PART_MAX_COUNT      10000

/*
 * What went wrong. `code` is a px_err.h code:
 *   S3_E_HTTP        S3 answered with an error; s3_code and message say which (for answers
 *                    without a body, such as HEAD, s3_code is derived from the status:
 *                    "NotFound", "Forbidden", "PermanentRedirect", ...);
 *   S3_E_PARSE       an answer that could not be understood (also a 200 without the document
 *                    the operation returns);
 *   AUTH_E_THROTTLED SlowDown (or another throttling code) outlasted the retries;
 *   AUTH_E_HTTP, AUTH_E_TIMEOUT  transport failures (after auth_http's retries);
 *   AUTH_E_NOCREDS, AUTH_E_* from the credential provider chain;
 *   PX_E_TOOBIG      a response above the operation's bound;
 *   UV_EINVAL        a request that cannot be expressed (see each function);
 *   UV_ENOMEM;
 *   AUTH_E_CANCELED  the client was closed with the operation in flight.
 * `unreachable` is true for failures that say nothing about permissions (transport, 5xx,
 * throttling). Messages are sanitised (no control characters) and never contain a secret.
 */
typedef struct s3_error {
    int code;
    int http_status; /* 0 when no HTTP response was received */
    bool unreachable;
    char s3_code[96];    /* "NoSuchKey", "AccessDenied", "SignatureDoesNotMatch"; "" when none */
    char message[512];   /* S3's <Message>, or our own description */
    char request_id[80]; /* x-amz-request-id or <RequestId>; "" when none */
    char region[48];     /* the bucket's region when S3 named it (<Region>, x-amz-bucket-region) */
} s3_error_t;

/* One object of a listing. */
typedef struct s3_object {
    char *key; /* decoded (EncodingType=url undone); NUL-terminated, never contains NUL */
    size_t key_len;
    uint64_t size;
    char *etag;               /* as S3 sent it, quotes included; "" when absent */
    int64_t last_modified_ms; /* Unix ms; -1 when absent or unreadable */
} s3_object_t;

/* One page of ListObjectsV2. */
typedef struct s3_list_page {
    s3_object_t *objects;
    size_t nobjects;
    char **prefixes; /* CommonPrefixes (with a delimiter), decoded */
    size_t nprefixes;
    bool truncated;
    char *next_token; /* NextContinuationToken: non-NULL exactly when truncated */
} s3_list_page_t;

void s3_list_page_free(s3_list_page_t *p);

/*
 * One lifecycle rule, reduced to what the tempdir check needs (reference §8.5). A rule limits
 * itself to a prefix in one of three places: <Filter><Prefix>, <Filter><And><Prefix>, or the
 * deprecated top-level <Rule><Prefix>. S3 allows only one of them; if a document carries more,
 * every one is kept and each must match (the conservative reading).
 */
typedef struct s3_lifecycle_rule {
    char *id;     /* <ID>, "" when absent */
    bool enabled; /* <Status> is exactly "Enabled" */
    bool has_filter;
    bool has_legacy_prefix;
    char *prefixes[3]; /* prefix constraints found, NULL-padded; "" is a prefix that matches all */
    size_t nprefixes;
    bool has_tags; /* the filter also selects by tag (informational) */
    bool has_size; /* ... or by object size */
    bool expires;  /* has an <Expiration> action */
} s3_lifecycle_rule_t;

typedef struct s3_lifecycle {
    s3_lifecycle_rule_t *rules;
    size_t nrules;
} s3_lifecycle_t;

void s3_lifecycle_free(s3_lifecycle_t *lc);

/* Keys a DeleteObjects request could not delete. */
typedef struct s3_delete_error {
    char *key;
    char *code;
    char *message;
} s3_delete_error_t;

typedef struct s3_delete_result {
    size_t ndeleted; /* <Deleted> entries (0 in quiet mode, where only errors are listed) */
    s3_delete_error_t *errors;
    size_t nerrors;
} s3_delete_result_t;

void s3_delete_result_free(s3_delete_result_t *r);

#endif
