/*
 * HTTP on the event loop: libcurl multi driven by libuv (STYLE.md §4 and §7.12), one client per
 * loop, shared by auth/ (Redshift, Serverless, STS, the credential endpoints) and s3/.
 *
 * Two levels:
 *   - auth_http_send: one raw HTTP exchange (any method, capped response, optional streaming
 *     sink), no retries. Used for IMDS and container credentials.
 *   - auth_aws_call: a SigV4-signed (or unsigned) AWS API call with the SDKs' retry behaviour:
 *     up to max_attempts with exponential backoff and full jitter on throttling codes, HTTP
 *     429/5xx, and transport errors (when idempotent, or when nothing was sent); on a clock-skew
 *     error it corrects the client's clock offset from the response Date header, re-signs and
 *     retries once. Errors come back as auth_aws_error_t (AWS code + message + HTTP status).
 *
 * Callback rules for both: called exactly once, never synchronously from the starting call,
 * always after the transfer has been removed from curl; the response is valid only during the
 * call. After a cancel the callback is not called at all. auth_http_close delivers
 * AUTH_E_CANCELED to everything still in flight before `done` runs.
 */
#ifndef AUTH_HTTP_H
#define AUTH_HTTP_H

#include "auth_aws.h"
#include "auth_sigv4.h"
#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct auth_http auth_http_t;
typedef struct auth_http_req auth_http_req_t;
typedef struct auth_aws_call auth_aws_call_t;

#define AUTH_HTTP_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define AUTH_HTTP_DEFAULT_TIMEOUT_MS         30000
#define AUTH_HTTP_DEFAULT_MAX_BODY           (1u << 20)
#define AUTH_HTTP_MAX_HEADER_BYTES           (64u << 10)
#define AUTH_HTTP_MAX_HEADERS                128
#define AUTH_HTTP_MAX_URL                    8192

typedef struct auth_http_resp {
    int status; /* HTTP status; 0 when no response arrived */
    const uint8_t *body;
    size_t bodylen;                    /* 0 when a sink consumed the body */
    const auth_http_header_t *headers; /* response headers of the final response, in order */
    size_t nheaders;
    int64_t date_ms; /* the Date header as Unix ms; -1 when absent or unparseable */
    bool not_sent;   /* transport failed before any request byte could have left */
} auth_http_resp_t;

/* Case-insensitive lookup; NULL when absent. */
const char *auth_http_resp_header(const auth_http_resp_t *r, const char *name);

/*
 * Streaming sink for large bodies (S3 GET): called from inside libcurl's write callback with
 * each piece of a 2xx body. It must not call into the HTTP client or curl (no send, cancel or
 * close); return 0 to go on or a negative code to abort the transfer with that code. Error
 * bodies (status >= 300) are never streamed: they are buffered for error parsing.
 */
typedef int (*auth_http_sink_fn)(const uint8_t *p, size_t n, void *arg);

typedef struct auth_http_opts {
    const char *method;                /* "GET", "POST", "PUT", "DELETE", "HEAD" */
    const char *url;                   /* absolute http:// or https:// URL */
    const auth_http_header_t *headers; /* sent as given (names and values must be CR/LF-free) */
    size_t nheaders;
    const uint8_t *body; /* copied; NULL/0 for none */
    size_t bodylen;
    long connect_timeout_ms; /* 0: AUTH_HTTP_DEFAULT_CONNECT_TIMEOUT_MS */
    long timeout_ms;         /* whole exchange; 0: AUTH_HTTP_DEFAULT_TIMEOUT_MS */
    size_t max_body;         /* buffered response cap; 0: AUTH_HTTP_DEFAULT_MAX_BODY */
    bool secret_body;        /* the response carries secrets: wipe the buffer when done */
    auth_http_sink_fn sink;  /* optional, see above */
    void *sink_arg;
} auth_http_opts_t;

/* err: 0 (an HTTP response arrived, whatever its status), AUTH_E_HTTP, AUTH_E_TIMEOUT,
 * PX_E_TOOBIG (body above max_body), UV_ENOMEM, a sink's code, or AUTH_E_CANCELED (close).
 * `errmsg` is curl's description ("" on success); `resp` is never NULL. */
typedef void (*auth_http_cb)(int err, const char *errmsg, const auth_http_resp_t *resp, void *arg);

int auth_http_new(uv_loop_t *loop, auth_http_t **out) PX_MUSTCHECK;
/* The shutdown order of STYLE.md §4.5: every request in flight is removed from curl and later
 * gets AUTH_E_CANCELED, the multi handle is cleaned up (which closes the socket polls), the timer
 * is closed; `done` runs once every handle's close callback has fired, after which the client is
 * freed. Safe to call from inside a request callback. */
void auth_http_close(auth_http_t *h, void (*done)(void *arg), void *arg);

/* Trust only these PEM certificates for https (AWS_CA_BUNDLE's contents, read off the loop by
 * the caller); NULL restores the system store. The bytes are copied. 0 or UV_ENOMEM. */
int auth_http_set_ca_bundle(auth_http_t *h, const uint8_t *pem, size_t n) PX_MUSTCHECK;
/* Retry pacing for auth_aws_call: the n-th retry waits uniform(0, min(max, base * 2^(n-1))) ms.
 * Defaults 1000 and 20000 (botocore's standard mode); tests shorten them. */
void auth_http_set_retry(auth_http_t *h, long base_ms, long max_ms);
/* The clock offset learnt from skew errors (server time - local time), in ms. */
int64_t auth_http_clock_skew_ms(const auth_http_t *h);
void auth_http_set_clock_skew_ms(auth_http_t *h, int64_t skew_ms);

/* Starts a request. 0, or UV_EINVAL (bad options), UV_ENOMEM, PX_E_SHUTDOWN (closing): then the
 * callback is not called. `out` may be NULL. */
int auth_http_send(auth_http_t *h, const auth_http_opts_t *o, auth_http_cb cb, void *arg,
                   auth_http_req_t **out) PX_MUSTCHECK;
/* Stops the request; its callback will not be called. Not from inside a sink. */
void auth_http_cancel(auth_http_req_t *r);

/* How AWS encodes errors for this API. */
typedef enum auth_aws_proto {
    AUTH_PROTO_QUERY = 0, /* awsQuery XML: Redshift, STS */
    AUTH_PROTO_JSON,      /* JSON 1.0/1.1: Serverless */
    AUTH_PROTO_REST_XML,  /* S3 */
    AUTH_PROTO_NONE,      /* credential endpoints: no AWS error body */
} auth_aws_proto_t;

typedef struct auth_aws_call_opts {
    const char *method;
    const char *endpoint; /* "https://host[:port][/base]"; the Host header is derived from it */
    const char *path;     /* appended to the endpoint's path, already percent-encoded; "" = "/" */
    const char *query;    /* raw query without '?', NULL for none */
    const auth_http_header_t *headers; /* signed with Host (Content-Type, X-Amz-Target, ...) */
    size_t nheaders;
    const uint8_t *body;
    size_t bodylen;
    auth_aws_service_t service;
    const char *region;
    const auth_aws_creds_t *creds; /* NULL: unsigned (AssumeRoleWithWebIdentity); copied */
    auth_aws_proto_t proto;
    bool s3;                  /* S3 signing rules */
    const char *payload_hash; /* NULL: SHA-256 of the body; "UNSIGNED-PAYLOAD" for S3 */
    bool idempotent;          /* transport errors after sending may be retried */
    int max_attempts;         /* 0: 3 */
    long connect_timeout_ms, timeout_ms;
    size_t max_body;
    bool secret_body;
    auth_http_sink_fn sink;
    void *sink_arg;
} auth_aws_call_opts_t;

/* err is NULL on success (a 2xx response). On failure err says why and resp is the last
 * response (status 0 after a transport failure). Both are valid only during the call. */
typedef void (*auth_aws_call_cb)(const auth_aws_error_t *err, const auth_http_resp_t *resp,
                                 void *arg);

/* 0, UV_EINVAL, UV_ENOMEM or PX_E_SHUTDOWN (then no callback). `out` may be NULL. */
int auth_aws_call(auth_http_t *h, const auth_aws_call_opts_t *o, auth_aws_call_cb cb, void *arg,
                  auth_aws_call_t **out) PX_MUSTCHECK;
/* Stops the call (and any retry pending); its callback will not be called. */
void auth_aws_call_cancel(auth_aws_call_t *c);

/* Splits an endpoint URL into the parts signing needs; for tests and callers that build URLs.
 * host_header gets "host" or "host:port" (non-default port), exactly what is sent as Host;
 * base_path gets the endpoint's path without a trailing '/'. 0 or UV_EINVAL. */
int auth_http_endpoint_parse(const char *endpoint, char *host_header, size_t hcap, char *base_path,
                             size_t pcap, bool *https) PX_MUSTCHECK;

#endif
