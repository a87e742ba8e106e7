/*
 * Types shared by the AWS side of auth/: a set of provider credentials with its expiry, the error
 * every AWS-facing function reports (our code + AWS's code and message + HTTP status), the
 * services rsproxy talks to, and the pure parsers for what AWS sends back (awsQuery XML, JSON 1.1,
 * the credential endpoints' JSON, timestamps). Parsers never log, never read the clock and copy
 * what they return into px_malloc'd strings the caller owns.
 */
#ifndef AUTH_AWS_H
#define AUTH_AWS_H

#include "auth_sigv4.h"
#include "px_buf.h"
#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The services we sign for; the index also selects AWS_ENDPOINT_URL_<SERVICE>. */
typedef enum auth_aws_service {
    AUTH_SVC_REDSHIFT = 0,
    AUTH_SVC_REDSHIFT_SERVERLESS,
    AUTH_SVC_STS,
    AUTH_SVC_S3,
    AUTH_SVC_COUNT,
} auth_aws_service_t;

/* Signing name ("redshift-serverless"), which is also the endpoint prefix. */
const char *auth_aws_service_signing_name(auth_aws_service_t svc);
/* Suffix of AWS_ENDPOINT_URL_<X> ("REDSHIFT_SERVERLESS"). */
const char *auth_aws_service_env_suffix(auth_aws_service_t svc);
/* Key inside a [services NAME] section of ~/.aws/config ("redshift_serverless"). */
const char *auth_aws_service_config_key(auth_aws_service_t svc);

/* Temporary or long-term AWS credentials. Every string is px_malloc'd and owned by the struct;
 * auth_aws_creds_clear wipes the secrets before freeing them. */
typedef struct auth_aws_creds {
    char *access_key_id;
    char *secret_access_key; /* secret */
    char *session_token;     /* secret; NULL when none */
    int64_t expiration_ms;   /* Unix ms; 0 = does not expire */
} auth_aws_creds_t;

void auth_aws_creds_clear(auth_aws_creds_t *c);
/* Deep copy; 0 or UV_ENOMEM (dst is left cleared on failure). */
int auth_aws_creds_copy(auth_aws_creds_t *dst, const auth_aws_creds_t *src) PX_MUSTCHECK;
/* A borrowed view for the signer. */
auth_aws_keys_t auth_aws_creds_keys(const auth_aws_creds_t *c);

/*
 * What went wrong talking to AWS. `code` is one of px_err.h's AUTH_E_* (or UV_ENOMEM): AUTH_E_AWS
 * when AWS answered with an error code, AUTH_E_THROTTLED when throttling outlasted the retries,
 * AUTH_E_HTTP / AUTH_E_TIMEOUT for transport failures, AUTH_E_PARSE for an unreadable answer,
 * AUTH_E_NOCREDS when the provider chain found nothing. `unreachable` is true for failures that
 * say nothing about the caller's permissions (transport, timeout, 5xx, throttling): the proxy
 * answers those with SQLSTATE 08001 and everything else with 28000.
 *
 * Messages are sanitised (control characters replaced, length capped) and never contain secrets:
 * nothing that builds them ever sees a secret except as an opaque value it does not print.
 */
typedef struct auth_aws_error {
    int code;
    int http_status; /* 0 when no HTTP response was received */
    bool unreachable;
    char aws_code[96];   /* "AccessDenied", "ClusterNotFound"; "" when not from AWS */
    char message[512];   /* human-readable */
    char request_id[80]; /* x-amzn-RequestId or the body's RequestId; "" when none */
} auth_aws_error_t;

/* Checks what a credential source handed us before it goes into headers and signatures: an
 * alphanumeric key id, printable secrets without spaces, quotes or line breaks. 0 or
 * AUTH_E_PARSE (err names the field, never the value). */
int auth_aws_creds_validate(const auth_aws_creds_t *c, auth_aws_error_t *err) PX_MUSTCHECK;

/* Sets code, aws_code (may be NULL) and a formatted message; clears the other fields. */
void auth_aws_error_set(auth_aws_error_t *e, int code, const char *aws_code, const char *fmt, ...)
    PX_PRINTF(4, 5);
/* Copies `n` bytes of untrusted text into dst (cap bytes with NUL), replacing control characters
 * and invalid bytes with '?', so peer text can go into messages and logs safely. */
void auth_aws_sanitize(char *dst, size_t cap, const char *src, size_t n);
/* True for the codes botocore's standard retry mode treats as throttling (reference §6). */
bool auth_aws_code_is_throttle(const char *aws_code);
/* True for the codes the SDKs treat as clock skew (reference §6). */
bool auth_aws_code_is_skew(const char *aws_code);
/* True for HTTP statuses retried as transient: 429, 500, 502, 503, 504, 509. */
bool auth_aws_status_is_transient(int status);

/*
 * Timestamps, always UTC, to Unix milliseconds. ISO 8601 / RFC 3339: "2019-12-27T19:44:51Z",
 * with optional fractional seconds (any number of digits, truncated to ms), 'Z' or an offset
 * "+hh:mm" / "-hhmm" / "+hh"; a space or lower-case 't'/'z' are accepted as botocore's parser does;
 * no zone at all is read as UTC. Years 1970..9999. Returns 0 or AUTH_E_PARSE.
 */
int auth_time_parse_iso8601(const char *s, size_t n, int64_t *out_ms) PX_MUSTCHECK;
/* RFC 7231 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), for the Date header. */
int auth_time_parse_http_date(const char *s, size_t n, int64_t *out_ms) PX_MUSTCHECK;
/* Epoch seconds as JSON gives them (integer or fractional). Rejects NaN, negative and absurd
 * values (beyond year 9999). */
int auth_time_from_epoch(double seconds, int64_t *out_ms) PX_MUSTCHECK;
/* "2019-12-27T19:44:51Z" for messages (out must hold 21 bytes). */
void auth_time_format_iso8601(int64_t ms, char out[21]);

/*
 * awsQuery XML. Each field names a path of local element names from the document root ('*'
 * matches any one element); the text of the first element on that path is copied out. Namespace
 * prefixes are ignored, DTDs and entity declarations are refused (no entity expansion at all),
 * depth is capped at AUTH_XML_MAX_DEPTH, and the input at AUTH_XML_MAX_INPUT bytes.
 */
#define AUTH_XML_MAX_DEPTH 32
#define AUTH_XML_MAX_INPUT (4u << 20)
#define AUTH_XML_MAX_VALUE (64u << 10)

typedef struct auth_xml_field {
    const char *path; /* "GetClusterCredentialsResponse/GetClusterCredentialsResult/DbUser" */
    char *value;      /* out: px_malloc'd text, NULL when the path did not occur */
    bool secret;      /* wipe this value when the parser frees temporary copies */
} auth_xml_field_t;

/* 0, AUTH_E_PARSE (malformed, too deep, too large, DTD) or UV_ENOMEM. On error every value is
 * freed and set to NULL. */
int auth_xml_extract(const uint8_t *xml, size_t n, auth_xml_field_t *fields,
                     size_t nfields) PX_MUSTCHECK;
/* Frees (wiping secrets) every value and sets it to NULL. */
void auth_xml_fields_free(auth_xml_field_t *fields, size_t nfields);

/*
 * Error bodies. Query/REST-XML: <ErrorResponse><Error><Code/><Message/></Error><RequestId/>,
 * the <Errors><Error> wrapping, and S3's bare <Error>. JSON 1.1: {"__type": "ns#Code",
 * "message": ...} (also "Message", "code"), with the x-amzn-ErrorType header as a fallback and
 * anything after ':' dropped as botocore does. Fill err->aws_code/message/request_id; return true
 * when an AWS error code was found.
 */
bool auth_parse_xml_error(const uint8_t *body, size_t n, auth_aws_error_t *err);
bool auth_parse_json_error(const uint8_t *body, size_t n, const char *error_type_header,
                           auth_aws_error_t *err);

/* Which JSON credential document: the container endpoint ({AccessKeyId, SecretAccessKey, Token,
 * Expiration}), IMDS (the same plus Code, which must be "Success" when present), or a
 * credential_process ({Version: 1, AccessKeyId, SecretAccessKey, SessionToken?, Expiration?}). */
typedef enum auth_json_creds_kind {
    AUTH_JSON_CREDS_CONTAINER = 0,
    AUTH_JSON_CREDS_IMDS,
    AUTH_JSON_CREDS_PROCESS,
} auth_json_creds_kind_t;

/* 0, AUTH_E_PARSE (err says what is wrong, never quoting a secret) or UV_ENOMEM. */
int auth_parse_json_creds(const uint8_t *body, size_t n, auth_json_creds_kind_t kind,
                          auth_aws_creds_t *out, auth_aws_error_t *err) PX_MUSTCHECK;

/* STS AssumeRole / AssumeRoleWithWebIdentity results (`op` is "AssumeRole" or
 * "AssumeRoleWithWebIdentity"). 0, AUTH_E_PARSE or UV_ENOMEM. */
int auth_parse_sts_creds(const uint8_t *body, size_t n, const char *op, auth_aws_creds_t *out,
                         auth_aws_error_t *err) PX_MUSTCHECK;

/* Appends to a buffer that holds secrets: growth copies into a fresh allocation and wipes the
 * old one (px_dbuf's realloc would leave copies behind). Respects b->limit; false (and
 * b->failed) on overflow or allocation failure. Free with px_dbuf_free_secret. */
bool auth__secret_append(px_dbuf_t *b, const void *p, size_t n);

/* JSON documents are refused above this size or nesting depth before jansson sees them. */
#define AUTH_JSON_MAX_INPUT (1u << 20)
#define AUTH_JSON_MAX_DEPTH 32

struct json_t;
/* Parses untrusted JSON with the bounds above (and duplicate keys refused); NULL on any
 * failure. Free with json_decref, after auth__json_wipe_string on every secret value taken. */
struct json_t *auth__json_load(const uint8_t *p, size_t n);
/* Wipes a JSON string value's bytes in place (no-op for other types). */
void auth__json_wipe_string(struct json_t *v);

#endif
