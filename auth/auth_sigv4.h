/*
 * AWS Signature Version 4 as a pure function (reference/redshift-aws.md §6): canonical request,
 * string to sign, signing key and Authorization header. Non-S3 services get double URI encoding
 * and path normalisation; S3 gets single encoding, no normalisation and x-amz-content-sha256.
 *
 * The caller builds the request (method, encoded path, raw query, headers, body) and receives the
 * headers to add. Nothing here allocates outside `out`, reads the clock or logs; the secret key
 * and derived keys are wiped before returning.
 */
#ifndef AUTH_SIGV4_H
#define AUTH_SIGV4_H

#include "px_buf.h"
#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A set of AWS credentials. Strings are owned by whoever built the struct. */
typedef struct auth_aws_keys {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" when none */
} auth_aws_keys_t;

typedef struct auth_http_header {
    const char *name;
    const char *value;
} auth_http_header_t;

typedef struct auth_sigv4_req {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* as sent on the wire (already percent-encoded once), "" means "/" */
    const char *query;  /* raw query as sent, without '?', NULL or "" for none */
    const auth_http_header_t *headers; /* must include Host; Date/X-Amz-Date are added here */
    size_t nheaders;
    const uint8_t *body; /* hashed unless payload_hash is given */
    size_t bodylen;
    const char *payload_hash; /* NULL: hex SHA-256 of body; or e.g. "UNSIGNED-PAYLOAD" */
    const char *region;
    const char *service; /* "redshift", "redshift-serverless", "sts", "s3" */
    int64_t time_unix;   /* signing time, seconds since the epoch (skew-corrected by the caller) */
    bool s3;             /* S3 rules: single encoding, no normalisation, x-amz-content-sha256 */
    bool sign_session_token; /* true (default practice): X-Amz-Security-Token is signed */
} auth_sigv4_req_t;

typedef struct auth_sigv4_out {
    /* Headers the caller must add to the request, in this order (name: value), NUL-terminated:
     * X-Amz-Date, [X-Amz-Security-Token], [X-Amz-Content-Sha256 (S3)], Authorization. */
    auth_http_header_t add[4];
    size_t nadd;
    px_dbuf_t strings; /* owns the storage `add` points into */
    /* For tests and trace-free debugging: never contain secrets. */
    px_dbuf_t canonical_request;
    px_dbuf_t string_to_sign;
} auth_sigv4_out_t;

/* Signs the request. Returns 0, UV_ENOMEM, or AUTH_E_PROTO when required fields are missing.
 * Call auth_sigv4_out_free in every case. */
int auth_sigv4_sign(const auth_sigv4_req_t *req, const auth_aws_keys_t *keys,
                    auth_sigv4_out_t *out) PX_MUSTCHECK;
void auth_sigv4_out_free(auth_sigv4_out_t *out);

/* RFC 3986 percent-encoding with AWS's unreserved set (A-Z a-z 0-9 - _ . ~), uppercase hex;
 * `keep_slash` leaves '/' alone (paths). Appends to out. */
void auth_uri_encode(px_dbuf_t *out, const char *s, size_t n, bool keep_slash);

/* "YYYYMMDD'T'HHMMSS'Z'" for a Unix time, into out[17]. */
void auth_amz_date(int64_t t, char out[17]);

#endif
