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

/*
 * Input rules (anything else is AUTH_E_PROTO, so a request is never signed in a form the service
 * could read differently):
 * - path: starts with '/' (or is ""/NULL for "/"), no '?', '#' or control bytes. For S3 it must
 *   be encoded once already (auth_uri_encode(..., keep_slash=true) of the key) and is signed
 *   exactly as given; other services get it normalised and encoded again.
 * - query: "k=v&k2" pieces, each percent escape complete ("%4" is refused), no empty piece
 *   ("a&&b", a trailing '&'). '+' is a literal plus sign, not a space.
 * - headers: token names, values without CR/LF/controls (HTAB allowed). Host is required. The
 *   signer writes X-Amz-Date and Authorization, and X-Amz-Security-Token (when keys carry a
 *   token) and X-Amz-Content-Sha256 (S3): passing any of those yourself is refused. Outside S3
 *   an X-Amz-Content-Sha256 header must equal the payload hash. A Date header is signed as
 *   given (X-Amz-Date is still added and wins). User-Agent, Expect, X-Amzn-Trace-Id and
 *   Transfer-Encoding are never signed, so they may change after signing.
 * - region, service, access key: non-empty printable ASCII without '/', ',' or spaces; secret
 *   key at most 1024 bytes; time_unix within 1970..9999.
 */
typedef struct auth_sigv4_req {
    const char *method; /* "GET", "POST", ... (used as given; AWS methods are upper case) */
    const char *path;   /* as sent on the wire (already percent-encoded once), "" means "/" */
    const char *query;  /* raw query as sent, without '?', NULL or "" for none */
    const auth_http_header_t *headers; /* must include Host; X-Amz-Date is added here */
    size_t nheaders;
    const uint8_t *body; /* hashed unless payload_hash is given */
    size_t bodylen;
    const char *payload_hash; /* NULL: hex SHA-256 of body; or e.g. "UNSIGNED-PAYLOAD" */
    const char *region;
    const char *service; /* "redshift", "redshift-serverless", "sts", "s3" */
    int64_t time_unix;   /* signing time, seconds since the epoch (skew-corrected by the caller) */
    bool s3;             /* S3 rules: single encoding, no normalisation, x-amz-content-sha256 */
    /* true (botocore's practice, and what STS, Redshift and S3 expect): X-Amz-Security-Token is
     * signed. false adds it after signing (the suite's post-sts-header-after). NB: a zeroed
     * struct means false; callers set it explicitly. */
    bool sign_session_token;
} auth_sigv4_req_t;

typedef struct auth_sigv4_out {
    /* Headers the caller must add to the request, in this order (name: value), NUL-terminated:
     * X-Amz-Date, [X-Amz-Security-Token], [X-Amz-Content-Sha256 (S3)], Authorization. */
    auth_http_header_t add[4];
    size_t nadd;
    px_dbuf_t strings; /* owns the storage `add` points into */
    /* For tests and trace-free debugging: never contain secrets (the session token appears as
     * "<redacted>" in canonical_request; the string to sign hashes the real one). */
    px_dbuf_t canonical_request;
    px_dbuf_t string_to_sign;
} auth_sigv4_out_t;

/* Signs the request. Returns 0, UV_ENOMEM (also when OpenSSL cannot allocate), or AUTH_E_PROTO
 * when required fields are missing or break the rules above; on failure `out` holds nothing
 * (nadd == 0). Call auth_sigv4_out_free in every case. */
int auth_sigv4_sign(const auth_sigv4_req_t *req, const auth_aws_keys_t *keys,
                    auth_sigv4_out_t *out) PX_MUSTCHECK;
void auth_sigv4_out_free(auth_sigv4_out_t *out);

/* RFC 3986 percent-encoding with AWS's unreserved set (A-Z a-z 0-9 - _ . ~), uppercase hex;
 * `keep_slash` leaves '/' alone (paths). Appends to out. */
void auth_uri_encode(px_dbuf_t *out, const char *s, size_t n, bool keep_slash);

/* "YYYYMMDD'T'HHMMSS'Z'" for a Unix time, into out[17]. */
void auth_amz_date(int64_t t, char out[17]);

#endif
