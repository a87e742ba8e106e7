/*
 * The IAM side of upstream login, as the proxy sees it: one auth_iam_t per event loop owns the
 * HTTP client, the AWS credential provider chain and the temporary-credential cache. The proxy
 * asks for database credentials for (client user, database) and gets a callback exactly once,
 * never synchronously, with either credentials or an error that can be shown to the client.
 *
 * Single flight: however many clients wait for the same cache key, one AWS call is made.
 * Credentials are refreshed refresh_margin_seconds before Expiration and never handed out
 * expired. Secrets in auth_db_creds_t are wiped when the cache drops them.
 */
#ifndef AUTH_IAM_H
#define AUTH_IAM_H

#include "auth_sigv4.h"
#include "cfg.h"
#include "px_util.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct auth_iam auth_iam_t;
typedef struct auth_iam_req auth_iam_req_t;
struct auth_http;

typedef struct auth_db_creds {
    const char *db_user;     /* exactly as AWS returned it: "IAM:alice", "IAMA:bob", "IAMR:role" */
    const char *db_password; /* secret */
    int64_t expiration_ms;   /* Unix ms */
    const char *host;        /* endpoint to connect to: [upstream] host or the discovered one */
    int port;
} auth_db_creds_t;

typedef struct auth_iam_error {
    int code;             /* AUTH_E_* */
    const char *aws_code; /* e.g. "AccessDenied", "ClusterNotFound"; NULL when not from AWS */
    const char *message;  /* human-readable, never a secret */
    bool unreachable;     /* AWS could not be reached (client gets 08001, else 28000) */
} auth_iam_error_t;

/* `creds` (on success) or `err` (on failure) is valid only during the call; copy what you keep.
 * The request handle is freed when the callback returns: do not cancel it afterwards. */
typedef void (*auth_iam_creds_cb)(const auth_db_creds_t *creds, const auth_iam_error_t *err,
                                  void *arg);

/* The limit on distinct cache keys (user, database, ...) kept at once. Idle entries beyond it are
 * evicted least recently used first. */
#define AUTH_IAM_MAX_ENTRIES 4096

int auth_iam_new(uv_loop_t *loop, cfg_t *cfg, auth_iam_t **out) PX_MUSTCHECK;
/* A reload: new requests use the new snapshot; cache entries whose key changed are dropped.
 * The AWS config and credentials files are read again on next use. */
void auth_iam_set_config(auth_iam_t *iam, cfg_t *cfg);
/* Cancels everything in flight (callbacks get AUTH_E_CANCELED), closes handles; `done` runs once
 * every handle is closed, after which the object is freed. */
void auth_iam_close(auth_iam_t *iam, void (*done)(void *arg), void *arg);

/* Database credentials for the client's startup user and database. `req` (may be NULL) lets the
 * caller cancel if the client goes away; after auth_iam_cancel the callback is not called. */
int auth_iam_get_db_creds(auth_iam_t *iam, const char *client_user, const char *dbname,
                          auth_iam_creds_cb cb, void *arg, auth_iam_req_t **req) PX_MUSTCHECK;
void auth_iam_cancel(auth_iam_req_t *req);

/*
 * For `rsproxy --check`: one fetch that bypasses the cache (the result is cached afterwards), and
 * a description of how it was obtained, for printing. All strings are valid only during the call
 * and never contain secrets.
 */
typedef struct auth_iam_check_info {
    const char *provider;      /* where rsproxy's AWS credentials came from */
    const char *profile;       /* AWS profile in effect */
    const char *region;        /* NULL when none was found */
    const char *region_source; /* "[iam] region", "AWS_REGION", ... */
    const char *api;           /* "redshift:GetClusterCredentials", ... */
    const char *api_endpoint;  /* URL the API was called at */
    bool host_discovered;      /* the host came from DescribeClusters / GetWorkgroup */
} auth_iam_check_info_t;

typedef void (*auth_iam_check_cb)(const auth_db_creds_t *creds, const auth_iam_error_t *err,
                                  const auth_iam_check_info_t *info, void *arg);
int auth_iam_check(auth_iam_t *iam, const char *client_user, const char *dbname,
                   auth_iam_check_cb cb, void *arg) PX_MUSTCHECK;

/*
 * The proxy's own AWS credentials (the provider chain's result), for [s3]
 * forward_s3_credentials and the proxy's own S3 traffic. `keys` point into storage valid only
 * during the call (copy them; wipe the copies); `region` may be NULL; `s3_endpoint` is the S3
 * base URL (an AWS_ENDPOINT_URL_S3 style override, or the regional default). Same rules as
 * auth_iam_get_db_creds: exactly once, never synchronously, not after auth_iam_cancel.
 */
/* The chain renews temporary keys in the background this long before they expire, when asked
 * for them within that window (the answer that triggers it still carries the old keys). */
#define AUTH_IAM_AWS_KEYS_REFRESH_AHEAD_MS (20 * 60 * 1000)
typedef void (*auth_iam_keys_cb)(const auth_aws_keys_t *keys, int64_t expiration_ms,
                                 const char *region, const char *s3_endpoint,
                                 const auth_iam_error_t *err, void *arg);
int auth_iam_get_aws_keys(auth_iam_t *iam, auth_iam_keys_cb cb, void *arg,
                          auth_iam_req_t **req) PX_MUSTCHECK;

/*
 * What the cache did to get database credentials, for the proxy's log: one call per fetch that
 * ended (a first fetch, a refresh, a refetch after a failure), never per cache hit and never per
 * waiting client. Every string is valid only during the call and none holds a secret.
 */
typedef struct auth_iam_fetch_info {
    bool ok;
    bool refresh;          /* the entry already held credentials (a refresh, not a first fetch) */
    const char *target;    /* [iam] cluster_identifier, workgroup_name or custom_domain_name */
    const char *api;       /* "redshift:GetClusterCredentials", ...; failed: the failing stage */
    const char *db_user;   /* ok: as AWS returned it ("IAM:alice"); failed: as asked ("" when
                            * the IAM identity decides it) */
    const char *dbname;    /* the database the credentials were asked for */
    int64_t expiration_ms; /* ok: Unix ms; failed: 0 */
    const char *provider;  /* where rsproxy's own AWS credentials came from; NULL if unknown */
    const char *profile;   /* the AWS profile in effect; NULL if none */
    const char *aws_code;  /* failed: AWS's error code, NULL when not from AWS */
    const char *message;   /* failed: why (sanitised); ok: NULL */
} auth_iam_fetch_info_t;

typedef void (*auth_iam_fetch_cb)(const auth_iam_fetch_info_t *info, void *arg);

/* Installs the fetch observer (NULL removes it). It is called from the loop, inside the cache's
 * own callbacks, before the waiting requests are answered: it must not call into auth_iam. */
void auth_iam_set_fetch_observer(auth_iam_t *iam, auth_iam_fetch_cb cb, void *arg);

/* The HTTP client this object owns (auth_http.h), for s3/ to share. Valid until close. */
struct auth_http *auth_iam_http(auth_iam_t *iam);

#endif
