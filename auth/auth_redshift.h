/*
 * The Redshift APIs rsproxy calls (reference §2-3, §10): provisioned GetClusterCredentials,
 * GetClusterCredentialsWithIAM and DescribeClusters (awsQuery 2012-12-01, signing name
 * "redshift"), Serverless GetCredentials and GetWorkgroup (JSON 1.1, X-Amz-Target
 * RedshiftServerless.<Op>, signing name "redshift-serverless").
 *
 * Request builders and response parsers are pure functions (unit-tested, fuzzed); the async
 * calls put them on the shared HTTP client with the SDKs' retries. When both a custom domain and
 * a cluster identifier are configured, a failed CustomDomainName call is retried once with
 * ClusterIdentifier, as both Redshift drivers do (§10.7).
 */
#ifndef AUTH_REDSHIFT_H
#define AUTH_REDSHIFT_H

#include "auth_aws.h"
#include "auth_http.h"
#include "px_buf.h"
#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct auth_rs_request {
    const char *cluster_identifier; /* provisioned; "" or NULL when not set */
    const char *custom_domain_name;
    const char *workgroup_name;   /* non-empty: Serverless */
    const char *db_user;          /* lower-cased before sending (§10.5); unused with IAM */
    const char *db_name;          /* "" or NULL: omitted */
    const char *const *db_groups; /* lower-cased before sending */
    size_t ngroups;
    bool auto_create;
    bool with_iam;        /* GetClusterCredentialsWithIAM */
    int duration_seconds; /* 0: omitted (AWS's default of 900) */
} auth_rs_request_t;

/* Temporary database credentials: strings px_malloc'd and owned. */
typedef struct auth_rs_creds {
    char *db_user;     /* exactly as AWS returned it ("IAM:alice") */
    char *db_password; /* secret */
    int64_t expiration_ms;
} auth_rs_creds_t;

void auth_rs_creds_clear(auth_rs_creds_t *c);

static inline bool auth_rs_is_serverless(const auth_rs_request_t *r)
{
    return r->workgroup_name && r->workgroup_name[0];
}

/* Form body of GetClusterCredentials[WithIAM]; `by_domain` uses CustomDomainName instead of
 * ClusterIdentifier. Parameters in the order botocore sends them. 0, UV_EINVAL (no target or no
 * DbUser where one is needed) or UV_ENOMEM. */
int auth_rs_build_cluster_credentials(const auth_rs_request_t *r, bool by_domain,
                                      px_dbuf_t *body) PX_MUSTCHECK;
int auth_rs_build_describe_clusters(const char *cluster_identifier, px_dbuf_t *body) PX_MUSTCHECK;
/* JSON bodies for Serverless. */
int auth_rs_build_serverless_credentials(const auth_rs_request_t *r, bool by_domain,
                                         px_dbuf_t *body) PX_MUSTCHECK;
int auth_rs_build_serverless_workgroup(const char *workgroup, px_dbuf_t *body) PX_MUSTCHECK;

/* Parsers: 0, AUTH_E_PARSE (err says what is missing; never quotes the password) or
 * UV_ENOMEM. */
int auth_rs_parse_cluster_credentials(const uint8_t *body, size_t n, bool with_iam,
                                      auth_rs_creds_t *out, auth_aws_error_t *err) PX_MUSTCHECK;
int auth_rs_parse_describe_clusters(const uint8_t *body, size_t n, char **host, int *port,
                                    auth_aws_error_t *err) PX_MUSTCHECK;
int auth_rs_parse_serverless_credentials(const uint8_t *body, size_t n, auth_rs_creds_t *out,
                                         auth_aws_error_t *err) PX_MUSTCHECK;
int auth_rs_parse_serverless_workgroup(const uint8_t *body, size_t n, char **host, int *port,
                                       auth_aws_error_t *err) PX_MUSTCHECK;

/* Where and as whom the calls go. Strings are copied by the calls. */
typedef struct auth_rs_ctx {
    auth_http_t *http;
    const char *endpoint; /* base URL of the service (redshift or redshift-serverless) */
    const char *region;
    const auth_aws_creds_t *creds;
} auth_rs_ctx_t;

typedef struct auth_rs_op auth_rs_op_t;

/* Exactly once, never synchronously, not after auth_rs_cancel. creds or host valid only during
 * the call. */
typedef void (*auth_rs_creds_cb)(const auth_rs_creds_t *creds, const auth_aws_error_t *err,
                                 void *arg);
typedef void (*auth_rs_endpoint_cb)(const char *host, int port, const auth_aws_error_t *err,
                                    void *arg);

/* Temporary credentials for the request's target (provisioned or Serverless). */
int auth_rs_get_credentials(const auth_rs_ctx_t *ctx, const auth_rs_request_t *r,
                            auth_rs_creds_cb cb, void *arg, auth_rs_op_t **out) PX_MUSTCHECK;
/* Endpoint discovery: DescribeClusters or GetWorkgroup. With only a custom domain configured
 * the caller should connect to that name instead. */
int auth_rs_get_endpoint(const auth_rs_ctx_t *ctx, const auth_rs_request_t *r,
                         auth_rs_endpoint_cb cb, void *arg, auth_rs_op_t **out) PX_MUSTCHECK;
void auth_rs_cancel(auth_rs_op_t *op);

#endif
