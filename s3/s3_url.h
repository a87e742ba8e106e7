/*
 * S3 URLs as Redshift, Hadoop and the spark-redshift connector write them
 * (reference/redshift-aws.md §7-8): s3://bucket/key, s3a:// and s3n:// (normalised to s3://), and
 * credentials embedded as s3://AKID:SECRET@bucket/prefix (URL-decoded and returned apart from the
 * URL, never inside the normalised form). Pure functions: no I/O, no logging; error reasons are
 * static strings that never contain any part of the input, so a secret cannot leak through them.
 *
 * Also here: the [s3] section's validation hook for cfg_load (tempdir, tempdir_region,
 * aws_iam_role, allowed_iam_roles), and the IAM role ARN check the SQL rewriter shares with it,
 * because the ARNs and the tempdir end up inside SQL string literals and must be validated in one
 * place.
 */
#ifndef S3_URL_H
#define S3_URL_H

#include "cfg.h"
#include "px_buf.h"
#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>

/* S3 bucket names are 3-63 characters; object keys at most 1024 bytes. */
#define S3_BUCKET_MAX 63
#define S3_KEY_MAX    1024
/* Bounds for embedded credentials (AWS access key ids are at most 128 characters). */
#define S3_AKID_MAX   128
#define S3_SECRET_MAX 256
/* Redshift accepts at most 10 roles in a chain (reference §7.1). */
#define S3_ROLE_CHAIN_MAX 10

typedef enum s3_scheme {
    S3_SCHEME_S3 = 0,
    S3_SCHEME_S3A,
    S3_SCHEME_S3N,
} s3_scheme_t;

typedef struct s3_url {
    s3_scheme_t scheme;             /* as written; the normalised form is always s3:// */
    char bucket[S3_BUCKET_MAX + 1]; /* validated bucket name */
    char key[S3_KEY_MAX + 1];       /* key or prefix after "bucket/", as written; may be "" */
    size_t key_len;
    bool has_credentials; /* the URL carried AKID:SECRET@ */
    /* URL-decoded credentials; secrets: wipe with s3_url_wipe() when done. */
    char access_key_id[S3_AKID_MAX + 1];
    char secret_access_key[S3_SECRET_MAX + 1];
} s3_url_t;

/*
 * Parses [s, s+n). Returns 0, or S3_E_URL with *why (when why is not NULL) set to a static
 * reason such as "bucket name is not valid". The input need not be NUL-terminated.
 */
int s3_url_parse(const char *s, size_t n, s3_url_t *u, const char **why) PX_MUSTCHECK;

/* Wipes the credentials held in u. */
void s3_url_wipe(s3_url_t *u);

/* Appends "s3://bucket/key" (never credentials) to out; check out->failed. */
void s3_url_format(const s3_url_t *u, px_dbuf_t *out);

/*
 * Whether [s, s+n) starts with a URL scheme ("<letter>[letters digits + - .]*:", RFC 3986). A
 * location without one is relative and resolved under tempdir; "s3:/b/x" or "C:\x" have one.
 */
bool s3_url_has_scheme(const char *s, size_t n);

/* Whether the scheme of [s, s+n) is s3, s3a or s3n (any case). */
bool s3_url_is_s3(const char *s, size_t n);

/*
 * Appends the normalised tempdir joined with a relative location: exactly one '/' between them
 * whatever slashes either side has ("s3://b/tmp" + "x/y" and "s3://b/tmp/" + "/x/y" both give
 * "s3://b/tmp/x/y"). tempdir must parse (s3_url_parse); its embedded credentials, if any, are
 * dropped. Returns 0, S3_E_URL (bad tempdir, or the result's key would exceed S3_KEY_MAX) or
 * UV_ENOMEM (out failed).
 */
int s3_url_join(const char *tempdir, const char *rel, size_t rel_len, px_dbuf_t *out) PX_MUSTCHECK;

/*
 * Checks one IAM role ARN, arn:<partition>:iam::<12 digits>:role/[path/]<name>, with the
 * characters IAM allows in role names except ',' (the chain separator). Returns true when valid;
 * otherwise *why gets a static reason.
 */
bool s3_iam_role_arn_valid(const char *s, size_t n, const char **why);

/*
 * Checks a comma-separated role chain as written in IAM_ROLE '...' (no spaces, 1 to
 * S3_ROLE_CHAIN_MAX ARNs, each valid). Returns the number of roles, or -1 with *why set.
 */
int s3_iam_role_chain_check(const char *s, size_t n, const char **why);

/*
 * cfg_load's validation hook (cfg_load_opts_t.validate) for [s3] tempdir: an s3/s3a/s3n URL with
 * a valid bucket and a prefix short enough for object names under it. Embedded keys are allowed
 * (the proxy uses them for its own S3 access and strips them from SQL) and never appear in a
 * message. The other [s3] keys are validated by config/ itself. `arg` is unused. Returns the
 * number of errors reported through cfg_report_error.
 */
int s3_cfg_validate(cfg_t *c, cfg_report_t *r, void *arg);

#endif
