/*
 * The pure half of building an S3 request: bucket and key rules, which endpoint and region to
 * use, path-style or virtual-hosted addressing, percent-encoding of keys and query values,
 * Content-Range, the status-derived error codes of body-less answers, and random staging names.
 * No I/O, no allocation outside the caller's buffers (RAND_bytes aside), no logging.
 *
 * Addressing rule (S3_ADDR_AUTO):
 *   - virtual-hosted ("https://<bucket>.s3.<region>.amazonaws.com/<key>") when the endpoint is
 *     AWS's own S3 (host s3.* or s3-* under amazonaws.com or amazonaws.com.cn, no base path)
 *     and the bucket name is a single DNS label (3-63 of [a-z0-9-], starting and ending with
 *     a letter or digit);
 *   - path-style ("<endpoint>/<bucket>/<key>") otherwise: for every custom endpoint
 *     (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, a local S3, an S3-compatible store) and for bucket
 *     names with dots, which would not match S3's wildcard certificate *.s3.<region>.amazonaws.com
 *     over https (and legacy names with upper case or '_' that are not host names at all).
 * S3_ADDR_VIRTUAL forces virtual-hosted addressing for DNS-compatible names on any endpoint that
 * is a host name (tests, MinIO with a wildcard domain); S3_ADDR_PATH forces path-style.
 *
 * Keys are percent-encoded once (RFC 3986 unreserved set kept, '/' kept), which is both how they
 * travel and how S3's SigV4 signs them (reference §6: no double encoding, no normalisation).
 */
#ifndef S3_REQ_H
#define S3_REQ_H

#include "px_buf.h"
#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum s3_addressing {
    S3_ADDR_AUTO = 0,
    S3_ADDR_PATH,
    S3_ADDR_VIRTUAL,
} s3_addressing_t;

#define S3_ENDPOINT_MAX 512
#define S3_REGION_MAX   48

/* Bucket names we send requests for: 3-63 of [A-Za-z0-9._-] (S3's current rules are stricter;
 * legacy us-east-1 buckets may have upper case or '_', and S3 itself judges the rest). */
bool s3_bucket_name_ok(const char *bucket);
/* A bucket name usable as one DNS label under the S3 domain (see the addressing rule). */
bool s3_bucket_dns_compatible(const char *bucket);

/*
 * Object keys we can address: 1-1024 bytes, no NUL, and no "." or ".." path segment: libcurl
 * removes dot segments from URLs (RFC 3986 §5.2.4) unless told otherwise, so such a key would be
 * signed as written but sent as another path. Returns NULL when fine, else a static reason.
 */
const char *s3_key_check(const char *key, size_t n);

/* Whether the endpoint is AWS's own S3 (see above). */
bool s3_endpoint_is_aws(const char *endpoint);

/*
 * Where a request goes: *ep_out gets the base URL to hand to auth_aws_call ("https://host[:port]
 * [/base]"), *path_out the percent-encoded path ("/", "/key", "/bucket", "/bucket/key").
 * `key` NULL means a bucket-level request. Returns 0 (and *virtual_out) or UV_EINVAL (endpoint
 * unusable, bucket or key breaking the rules above).
 */
int s3_build_location(const char *endpoint, s3_addressing_t mode, const char *bucket,
                      const char *key, size_t key_len, px_dbuf_t *ep_out, px_dbuf_t *path_out,
                      bool *virtual_out) PX_MUSTCHECK;

/* Appends "name=value" (value percent-encoded, '/' included) to a query, with '&' between
 * parameters; a NULL value appends the bare name ("lifecycle", "uploads"). */
void s3_query_add(px_dbuf_t *q, const char *name, const char *value, size_t vlen);

/*
 * Which endpoint and signing region an operation uses, in order of precedence:
 *   region:   the bucket's region learnt from S3 (redirects), then `opt_region` ([s3]
 *             tempdir_region or the caller's), then the credential chain's region, then
 *             us-east-1;
 *   endpoint: `opt_endpoint`, then the chain's S3 endpoint when it is an override (anything but
 *             AWS's default for the chain's region), then AWS's regional default for `region`.
 * *aws_default tells whether the endpoint is AWS's default (it follows the region on redirect).
 * 0 or UV_EINVAL (a result that does not fit).
 */
int s3_resolve_target(const char *opt_endpoint, const char *opt_region, const char *chain_endpoint,
                      const char *chain_region, const char *bucket_region, char *endpoint,
                      size_t epcap, char *region, size_t rcap, bool *aws_default) PX_MUSTCHECK;

/* "bytes FIRST-LAST/TOTAL" (RFC 7233 Content-Range of a 206). 0 or S3_E_PARSE; TOTAL may not be
 * "*" and FIRST <= LAST < TOTAL must hold. */
int s3_parse_content_range(const char *v, uint64_t *first, uint64_t *last,
                           uint64_t *total) PX_MUSTCHECK;

/* A decimal Content-Length. 0 or S3_E_PARSE. */
int s3_parse_content_length(const char *v, uint64_t *out) PX_MUSTCHECK;

/* The code reported for an error answer without an S3 error body (HEAD, proxies):
 * "PermanentRedirect" (301), "NotModified" (304), "BadRequest" (400), "Forbidden" (403),
 * "NotFound" (404), "MethodNotAllowed" (405), "Conflict" (409), "PreconditionFailed" (412),
 * "InvalidRange" (416), "InternalError" (500), "ServiceUnavailable" (503), else "HTTP<status>".
 * Writes into out (at least 16 bytes). */
void s3_status_code_name(int status, char *out, size_t cap);

/* A random (version 4) UUID in lower-case 8-4-4-4-12 form from 16 bytes, and the same from
 * OpenSSL's RAND_bytes (0, or UV_EIO when the generator fails). out holds 37 bytes. */
void s3_uuid4_format(const uint8_t rnd[16], char out[37]);
int s3_uuid4(char out[37]) PX_MUSTCHECK;

#endif
