/*
 * rsproxy's own AWS credentials: runs the plan of auth_awscfg.h (environment, profiles and role
 * chains through STS, web identity, credential_process, container and EC2 instance metadata) on
 * the event loop and caches the result. One fetch at a time whatever the number of waiters
 * (single flight); credentials are refreshed ahead of their expiry; a failed refresh while the
 * old credentials are still valid keeps serving them and retries with backoff.
 *
 * Files (the ~/.aws files, token files, AWS_CA_BUNDLE) are read and credential_process is run in
 * libuv's worker threads, never on the loop. The files are read on first use and again after
 * auth_chain_reload (SIGHUP) or after a failure to find credentials.
 *
 * Callbacks: exactly once, never synchronously; after auth_chain_cancel, not at all. The creds
 * and info passed are valid only during the call.
 */
#ifndef AUTH_CHAIN_H
#define AUTH_CHAIN_H

#include "auth_aws.h"
#include "auth_http.h"
#include "px_util.h"

#include <uv.h>

typedef struct auth_chain auth_chain_t;
typedef struct auth_chain_req auth_chain_req_t;

typedef struct auth_chain_info {
    const char *region;        /* NULL when none could be found */
    const char *region_source; /* "AWS_REGION", "instance metadata", ... */
    const char *provider;      /* where the credentials came from, for --check and logs */
    const char *profile;
    const char *endpoint[AUTH_SVC_COUNT]; /* base URL per service (override or default) */
    bool endpoint_overridden[AUTH_SVC_COUNT];
} auth_chain_info_t;

/* On success creds != NULL and err == NULL; on failure creds == NULL. info is always given
 * (fields may be NULL before the configuration could be loaded). */
typedef void (*auth_chain_cb)(const auth_aws_creds_t *creds, const auth_chain_info_t *info,
                              const auth_aws_error_t *err, void *arg);

typedef struct auth_chain_opts {
    char *const *envp;           /* copied; NULL: the process environment */
    const char *region_override; /* [iam] region */
    long refresh_ahead_ms;       /* refresh this long before expiry; 0: 5 minutes */
    long process_timeout_ms;     /* credential_process; 0: 60 s */
    /* No background refresh sooner than this after a successful fetch (credentials that live
     * shorter than refresh_ahead_ms would otherwise be refetched on every use); 0: 30 s. */
    long min_refresh_interval_ms;
} auth_chain_opts_t;

#define AUTH_CHAIN_FORCE_REFRESH 1u /* do not answer from the cache (after ExpiredToken) */

int auth_chain_new(uv_loop_t *loop, auth_http_t *http, const auth_chain_opts_t *o,
                   auth_chain_t **out) PX_MUSTCHECK;
/* Re-read the files and re-resolve on next use (credentials already cached stay valid until
 * then). A new region override applies from then on. */
int auth_chain_reload(auth_chain_t *ch, const char *region_override) PX_MUSTCHECK;
int auth_chain_get(auth_chain_t *ch, unsigned flags, auth_chain_cb cb, void *arg,
                   auth_chain_req_t **out) PX_MUSTCHECK;
void auth_chain_cancel(auth_chain_req_t *r);
/* Waiters get AUTH_E_CANCELED; `done` runs once handles are closed and worker jobs returned.
 * Does not close the HTTP client (the owner does, after this). */
void auth_chain_close(auth_chain_t *ch, void (*done)(void *arg), void *arg);

#endif
