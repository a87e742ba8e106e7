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

#include "cfg.h"
#include "px_util.h"

#include <stdint.h>
#include <uv.h>

typedef struct auth_iam auth_iam_t;
typedef struct auth_iam_req auth_iam_req_t;

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

/* `creds` (on success) or `err` (on failure) is valid only during the call; copy what you keep. */
typedef void (*auth_iam_creds_cb)(const auth_db_creds_t *creds, const auth_iam_error_t *err,
                                  void *arg);

int auth_iam_new(uv_loop_t *loop, cfg_t *cfg, auth_iam_t **out) PX_MUSTCHECK;
/* A reload: new requests use the new snapshot; cache entries whose key changed are dropped. */
void auth_iam_set_config(auth_iam_t *iam, cfg_t *cfg);
/* Cancels everything in flight (callbacks get AUTH_E_CANCELED), closes handles; `done` runs once
 * every handle is closed, after which the object is freed. */
void auth_iam_close(auth_iam_t *iam, void (*done)(void *arg), void *arg);

/* Database credentials for the client's startup user and database. `req` (may be NULL) lets the
 * caller cancel if the client goes away; after auth_iam_cancel the callback is not called. */
int auth_iam_get_db_creds(auth_iam_t *iam, const char *client_user, const char *dbname,
                          auth_iam_creds_cb cb, void *arg, auth_iam_req_t **req) PX_MUSTCHECK;
void auth_iam_cancel(auth_iam_req_t *req);

#endif
