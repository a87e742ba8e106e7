/*
 * The daemon as main.c, the admin endpoint and the loopback tests see it: one px_proxy_t per
 * event loop owns the listeners, the client and server connections, the upstream TLS context,
 * the IAM credential source, the cancel-key map and the signal handlers. Configuration comes in
 * as a cfg_t snapshot; SIGHUP builds a new one off the loop thread and swaps it in, and every
 * connection keeps the snapshot it started with.
 */
#ifndef PX_PROXY_H
#define PX_PROXY_H

#include "cfg.h"
#include "px_util.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

typedef struct px_proxy px_proxy_t;

/* Why an upstream login failed, as /metrics counts it (classified in px_admin_proxy.c). */
typedef enum px_login_fail {
    PX_LOGIN_FAIL_IAM = 0,  /* no IAM database credentials (AWS error or AWS unreachable) */
    PX_LOGIN_FAIL_DNS,      /* the upstream host name did not resolve */
    PX_LOGIN_FAIL_NETWORK,  /* connect refused, connection reset or closed during login */
    PX_LOGIN_FAIL_TIMEOUT,  /* [upstream] connect_timeout expired */
    PX_LOGIN_FAIL_TLS,      /* SSL refused, TLS handshake or certificate verification failed */
    PX_LOGIN_FAIL_AUTH,     /* upstream refused the credentials (SQLSTATE class 28) */
    PX_LOGIN_FAIL_REFUSED,  /* any other ErrorResponse from upstream (53300, 57P03, 3D000...) */
    PX_LOGIN_FAIL_PROTOCOL, /* upstream broke the protocol */
    PX_LOGIN_FAIL_OTHER,    /* out of memory and the like */
    PX_LOGIN_FAIL_N
} px_login_fail_t;

/* The AWS credential chain as /startup and /readiness see it (IAM mode only). */
typedef enum px_creds_state {
    PX_CREDS_UNUSED = 0, /* password mode: no AWS credentials needed */
    PX_CREDS_PENDING,    /* the first resolution has not finished */
    PX_CREDS_OK,         /* the last resolution produced keys */
    PX_CREDS_FAILED,     /* the last resolution failed for a reason every client shares */
} px_creds_state_t;

/* What /readiness decides on; written by the px_proxy_note_* hooks below. */
typedef struct px_proxy_health {
    uint32_t upstream_fail_streak;  /* proxy-wide login failures since the last login that worked */
    uint64_t upstream_last_fail_ms; /* px_now_mono_ms() of the last of them; 0: never */
    uint64_t upstream_last_ok_ms;   /* px_now_mono_ms() of the last login that worked; 0: never */
    px_login_fail_t upstream_last_reason;
    px_creds_state_t creds;
    bool creds_fetching;     /* the admin endpoint's own resolution is in flight */
    uint32_t creds_failures; /* consecutive failed resolutions (retry backoff) */
} px_proxy_health_t;

typedef struct px_proxy_stats {
    uint64_t clients_accepted;  /* connections accepted since start */
    uint64_t clients_refused;   /* refused before login (limits, protocol, auth) */
    uint64_t logins_ok;         /* upstream logins that reached ReadyForQuery */
    uint64_t logins_failed;     /* upstream logins that failed */
    uint64_t cancels_forwarded; /* CancelRequests sent upstream */
    uint64_t statements_rewritten;
    uint64_t statements_refused;
    uint64_t bytes_from_clients; /* plaintext, both closed and open connections */
    uint64_t bytes_to_clients;
    uint32_t clients_login;   /* now: in startup, authentication or upstream login */
    uint32_t clients_active;  /* now: relaying */
    uint32_t clients_closing; /* now: closing */
    uint32_t servers;         /* now: upstream connections, cancels included */
    uint64_t read_buffers;    /* now: read buffers allocated (cached ones included) */
    bool shutting_down;
    /* For /metrics and the probes (px_admin*.c); each is counted in one line at its site. */
    uint64_t clients_refused_limit;  /* of clients_refused: over max_client_conn */
    uint64_t ready_for_query;        /* ReadyForQuery relayed after login: queries answered */
    uint64_t transaction_blocks;     /* explicit transactions ended (status T or E, then I) */
    uint64_t cancel_requests;        /* CancelRequests received, forwarded or not */
    uint64_t tls_handshake_failures; /* upstream TLS handshakes that failed */
    uint64_t login_failures[PX_LOGIN_FAIL_N]; /* logins_failed by reason */
    uint64_t iam_requests_ok;                 /* IAM database credential requests, by result */
    uint64_t iam_requests_failed;
    uint64_t iam_fetches_ok;     /* credential fetches from AWS (the cache's misses and */
    uint64_t iam_fetches_failed; /*   refreshes), by result */
    uint64_t iam_refreshes;      /* of those: refreshes of credentials the cache held */
    uint64_t pool_reused;        /* client sessions given a pooled upstream session */
    uint64_t pool_resets_failed; /* server_reset_query failures (the session was closed) */
    uint32_t pool_idle;          /* now: upstream sessions waiting in the pool */
    px_proxy_health_t health;
} px_proxy_stats_t;

/* A ReadyForQuery relayed to a client: `before` is the session's previous transaction status
 * (0 for the one that ends the login, which is not counted). Inline: it runs per query. */
static inline void px_proxy_stats_rfq(px_proxy_stats_t *s, uint8_t before, uint8_t after)
{
    if (before == 0)
        return;
    s->ready_for_query++;
    if ((before == 'T' || before == 'E') && after == 'I')
        s->transaction_blocks++;
}

/*
 * Hooks from the connection code into /readiness and /metrics (implemented in
 * px_admin_proxy.c). Each is called once per login outcome, never per message.
 *   _login_ok:     the first ReadyForQuery after an upstream login (px_relay.c).
 *   _login_failed: the upstream connection of a login failed (px_client.c on_server_fail);
 *                  `sqlstate` is what the client is told, `upstream_said` is true when it is
 *                  upstream's own ErrorResponse.
 *   _iam:          an IAM database credential request for a client in login finished
 *                  (px_client.c on_iam_creds); `err` is NULL on success. A failure is a
 *                  failed login too: it is counted here, with reason "iam".
 *   _iam_fetch:    the credential cache fetched from AWS (px_proxy.c on_iam_fetch).
 */
struct auth_iam_error;
void px_proxy_note_login_ok(px_proxy_t *px);
void px_proxy_note_login_failed(px_proxy_t *px, int code, const char *sqlstate, bool upstream_said);
void px_proxy_note_iam(px_proxy_t *px, const struct auth_iam_error *err);
void px_proxy_note_iam_fetch(px_proxy_t *px, bool ok, bool refresh);

/*
 * cfg_load's validate hook for what the key table cannot check alone: the [s3] section
 * (s3_cfg_validate), and upstream settings that depend on each other (a host in password
 * mode, a readable sslrootcert file). Returns the number of errors reported.
 */
int px_cfg_validate(cfg_t *c, cfg_report_t *r, void *arg);

/*
 * Builds the daemon for `cfg` (a reference is taken): the upstream TLS context, the IAM
 * credential source in IAM mode, the client auth file in scram-sha-256 mode. `cfg_path` is
 * re-read on reload (NULL: reload is refused). Returns 0 or a negative code with a reason in
 * err; nothing is bound yet.
 */
int px_proxy_new(uv_loop_t *loop, cfg_t *cfg, const char *cfg_path, px_proxy_t **out, char *err,
                 size_t errlen) PX_MUSTCHECK;

/* Binds every listen_addr (names resolved now) and the Unix socket. */
int px_proxy_listen(px_proxy_t *px, char *err, size_t errlen) PX_MUSTCHECK;
/* The TCP port actually bound (listen_port 0 in tests picks one). */
int px_proxy_port(const px_proxy_t *px);

/* SIGINT/SIGTERM drain and stop; SIGHUP reloads. */
int px_proxy_handle_signals(px_proxy_t *px) PX_MUSTCHECK;

/*
 * Stops accepting, lets each connection finish its current transaction (bounded), then closes
 * everything; the loop then runs out of handles and uv_run returns. `fast` closes every
 * connection at once. Calling it again with fast = true hurries a drain along.
 */
void px_proxy_shutdown(px_proxy_t *px, bool fast);

/* Reloads cfg_path off the loop thread and swaps the snapshot in; logs the outcome. */
void px_proxy_reload(px_proxy_t *px);

/* The current snapshot (borrowed). */
cfg_t *px_proxy_cfg(const px_proxy_t *px);
void px_proxy_get_stats(const px_proxy_t *px, px_proxy_stats_t *out);

/*
 * `rsproxy --check`: builds a proxy for `cfg` on `loop` without listening, logs in upstream once
 * (getting IAM credentials first in IAM mode) and prints each step to `out`. Returns the exit
 * status: 0 when everything worked, 1 otherwise. Runs the loop until every handle is closed.
 */
int px_proxy_check(uv_loop_t *loop, cfg_t *cfg, FILE *out);

/* Frees the object once uv_run has returned (every handle closed). */
void px_proxy_free(px_proxy_t *px);

#endif
